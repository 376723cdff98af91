"""The warm-start benchmark: priors, pair plumbing, the summary statistics, and a tiny real run."""

from __future__ import annotations

import numpy as np
import pytest

from bench import warm_start as ws
from bench.optimizers.tasks import TABLES_DIR, load_table


@pytest.fixture(scope="module")
def mrpc():
    return load_table(TABLES_DIR / "tiny_mrpc.csv", "tiny_mrpc")


def test_prior_is_a_seeded_random_baseline_of_distinct_configurations(mrpc) -> None:
    a = ws.random_baseline(mrpc, 12, ["p", 1])
    b = ws.random_baseline(mrpc, 12, ["p", 1])
    c = ws.random_baseline(mrpc, 12, ["p", 2])
    keys = [mrpc.key(t.assignment) for t in a]
    assert len(set(keys)) == 12 and a == b and a != c
    for t in a:
        value = mrpc.evaluate(t.assignment).value
        assert t.succeeded == (value is not None)
        if value is not None:
            assert float(t.metrics["accuracy"]) == value


def test_mirrored_table_reverses_the_order(mrpc) -> None:
    m = ws.mirrored(mrpc, "m")
    keys = [k for k, v in mrpc.values.items() if v is not None]
    best, worst = max(keys, key=mrpc.values.get), min(keys, key=mrpc.values.get)
    assert m.values[best] == pytest.approx(mrpc.values[worst]) and m.values[worst] == pytest.approx(
        mrpc.values[best]
    )


def test_prior_names_are_kubernetes_names() -> None:
    import re

    for pair in ws.PAIRS:
        name = ws.prior_name(pair, 19)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63


def test_summary_statistics_on_known_rows() -> None:
    rows = []
    for seed in range(8):
        for variant, trials in (("gp", 6.0 + seed % 3), ("gp-warm", 1.0 + seed % 2)):
            values = {"trials_to_best": trials, "trials_to_near": trials, "cost_to_best": trials / 24}
            rows.append(ws.Row("p", "re-tune", variant, seed, values, int(trials), 10.0))
    records, table = ws.summarize(rows, range(8))
    best = next(r for r in records if r["metric"] == "trials_to_best")
    assert best["mean_cold"] == pytest.approx(np.mean([6 + s % 3 for s in range(8)]))
    assert best["mean_warm"] == pytest.approx(1.5)
    assert best["verdict"] == "better" and best["p_value"] < 0.05
    assert "| p | re-tune | gp-warm vs gp | 1.50 / 6.88 |" in table
    assert ws.wilcoxon_p(np.ones(5), np.ones(5)) == 1.0


@pytest.mark.slow
def test_tiny_real_run_re_tune_beats_cold(tmp_path) -> None:
    pair = next(p for p in ws.PAIRS if p.kind == "re-tune")
    tables = ws.load_tables([pair])
    rows, runs = ws.run_all(tables, [pair], [0, 1, 2], 12, ["gp", "gp-warm"], log=False)
    assert len(rows) == 6 and all(not r.error for r in runs)
    mean = {
        v: np.mean([r.values["trials_to_best"] for r in rows if r.variant == v]) for v in ("gp", "gp-warm")
    }
    assert mean["gp-warm"] < mean["gp"]
