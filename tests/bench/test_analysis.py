"""The optimizer-tuning analysis: sweep runs and paired comparisons, prototype patches, limits numbers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.analysis import limits, sweep
from bench.optimizers import experimental
from bench.optimizers.service import ServiceBackend
from bench.optimizers.tasks import GridTask, load_table
from suggestion_service import acquisition, bayesopt

TABLE = """# a test table
learning_rate,batch_size,optimizer,accuracy,train_seconds
1e-3,16,adam,0.70,2.0
1e-3,16,sgd,0.65,1.0
1e-3,32,adam,0.72,2.5
1e-3,32,sgd,,1.5
1e-2,16,adam,0.91,3.0
1e-2,16,sgd,0.80,1.0
1e-2,32,adam,0.906,2.0
1e-2,32,sgd,0.78,1.2
"""


@pytest.fixture
def table(tmp_path: Path) -> GridTask:
    path = tmp_path / "toy.csv"
    path.write_text(TABLE)
    return load_table(path)


@pytest.fixture(scope="module")
def backend() -> Iterator[ServiceBackend]:
    with ServiceBackend() as be:
        yield be


def test_parse_seeds_and_tables_reject_bad_input() -> None:
    assert sweep.parse_seeds("3-5") == [3, 4, 5]
    assert sweep.parse_seeds("1,9") == [1, 9]
    for bad in ("5-3", "a-b", "x"):
        with pytest.raises(ValueError, match="seeds must look like"):
            sweep.parse_seeds(bad)
    assert set(sweep.table_names("seed")) <= set(sweep.table_names("all"))
    with pytest.raises(ValueError, match="unknown tables"):
        sweep.table_names("no_such_table")


def _rows(variant: str, values: list[float]) -> list[dict[str, str]]:
    return [
        {"table": "t", "variant": variant, "seed": str(i), "trials_to_best": str(v)}
        for i, v in enumerate(values)
    ]


def test_compare_pairs_by_table_and_seed() -> None:
    base = [5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    rows = _rows("a", base) + _rows("b", [v - 2 for v in base]) + _rows("c", base[:4])
    cmp = sweep.compare(rows, "b", "a", "trials_to_best", ["t"])
    assert cmp is not None
    assert (cmp.n, cmp.diff, cmp.better, cmp.worse) == (8, -2.0, 8, 0)
    assert cmp.lo == cmp.hi == -2.0 and cmp.p < 0.05
    same = sweep.compare(rows, "c", "a", "trials_to_best", ["t"])
    assert same is not None and (same.n, same.diff, same.p) == (4, 0.0, 1.0)
    assert sweep.compare(rows, "b", "a", "trials_to_best", ["other"]) is None


def test_patched_restores_and_rejects_missing_attributes() -> None:
    original = bayesopt.make_surrogate
    with experimental.patched(bayesopt, "make_surrogate", None):
        assert bayesopt.make_surrogate is None
    assert bayesopt.make_surrogate is original
    with pytest.raises(AttributeError, match="no attribute"), experimental.patched(bayesopt, "nope", 1):
        pass


def test_prototype_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="prior offset"):
        experimental.prior_offset(-1.0)
    with pytest.raises(ValueError, match="0 < lo < hi"):
        experimental.length_scale_bounds(0.5, 0.1)
    with pytest.raises(ValueError, match="subset"):
        experimental.portfolio(("ei", "thompson"))


def test_sweep_runs_settings_and_prototypes_through_the_service(
    table: GridTask, backend: ServiceBackend
) -> None:
    score = acquisition.score
    rows = [sweep.one_run(table, sweep.SWEEP[name], backend, seed=1)
            for name in ("gp", "gp-pi-n2", "gp-port3", "gp-oracle")]  # fmt: skip
    assert acquisition.score is score  # the prototype patch is gone after its run
    for row in rows:
        assert 1 <= row["trials_to_near"] <= row["trials_to_best"] <= row["trials"] <= 3 * table.size
        assert row["trials_to_best"] == row["trials"]  # runs stop at the best
        assert 0 < float(row["cost_to_best"]) <= 3.0 and row["error"] == ""
    again = sweep.one_run(table, sweep.SWEEP["gp"], backend, seed=1)
    assert again["trials_to_best"] == rows[0]["trials_to_best"]  # deterministic per (table, seed)


def test_full_table_kernel_and_leave_best_out(table: GridTask) -> None:
    kernel = experimental.full_table_kernel(table)
    assert np.all(np.isfinite(kernel.theta))
    pi, rank = limits.leave_best_out(table)
    assert 0.0 <= pi <= 1.0 and 1 <= rank <= table.size


def test_grid_limits_counts(table: GridTask) -> None:
    g = limits.grid_limits(table)
    assert (g.n, g.best, g.runner_up) == (8, 0.91, 0.906)
    assert g.within_01 == 1 and g.within_05 == 2  # 0.906 is 0.44% below 0.91
    assert g.random_best == pytest.approx(9 / 2) and g.random_near == pytest.approx(9 / 3)
    assert g.se is None  # no evaluation-set size known for the toy table


def test_bounds_table_from_sweep_rows(table: GridTask) -> None:
    g = limits.grid_limits(table)
    rows = [{"table": "toy", "variant": v, "seed": str(s), "trials_to_best": str(b), "trials_to_near": str(n)}
            for v, b, n in (("gp", 6, 4), ("gp-oracle", 4, 3), ("gp-pi-oracle", 3, 2)) for s in (0, 1)]  # fmt: skip
    lines, means = limits.bounds_table([g], rows)
    assert "| toy | 6.00 | 4.00 | 3.00 |" in lines[-2]
    assert means[0] == 6.0 and means[6] == 2.0 and means[3] == pytest.approx(limits.design_bound(8, 3))
    assert limits.bounds_table([g], [])[0] == []


def test_design_bound() -> None:
    assert limits.design_bound(24, 3) == pytest.approx(3 / 24 * 2 + 21 / 24 * 4)
    assert limits.design_bound(1, 1) == 1.0
    assert limits.design_bound(24, 3, 3) < limits.design_bound(24, 3)  # ties make the best easier to hit
    assert limits.design_bound(4, 3, 4) == 1.0


def test_noise_summary_ranks_the_seed_42_best() -> None:
    rows = [
        {"task": "x", "rank": "1", "config": "a", "seed": "42", "accuracy": "0.80"},
        {"task": "x", "rank": "1", "config": "a", "seed": "1", "accuracy": "0.50"},
        {"task": "x", "rank": "2", "config": "b", "seed": "42", "accuracy": "0.78"},
        {"task": "x", "rank": "2", "config": "b", "seed": "1", "accuracy": "0.76"},
    ]
    s = limits.noise_summary(rows)["x"]
    assert s["rank_of_best"] == 2 and s["gap42"] == pytest.approx(0.02) and s["top_rank42"] == 2
    assert s["sd"] == pytest.approx(math.sqrt((0.045 + 0.0002) / 2))
    table = limits.noise_table(rows, show=1)
    assert len(table) == 2 + 2 and "| x | 1 | 2 |" in table[2] and "| x | 2 | 1 |" in table[3]
