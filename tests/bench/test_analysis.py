"""The optimizer-tuning analysis: sweep runs and paired comparisons, prototypes (search parts), limits numbers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench.analysis import limits, sweep
from bench.optimizers import experimental
from bench.optimizers.service import ServiceBackend
from bench.optimizers.tasks import GridTask, load_table
from suggestion_service import acquisition, bayesopt, model_fit, surrogates
from suggestion_service.settings import parse_settings
from suggestion_service.surrogates import ForestSurrogate, GPSurrogate

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


def test_prototypes_are_search_parts_and_change_no_module() -> None:
    """A prototype is the search parts the service is given, built from the service's own pieces; the
    service's modules keep their functions and constants."""
    before = (acquisition.score, acquisition.from_settings, model_fit.make_surrogate,
              surrogates.LENGTH_SCALE_BOUNDS, surrogates.PRIOR_MEAN_OFFSET, bayesopt.DEFAULT_PARTS)  # fmt: skip
    gp_settings = parse_settings("surrogate-gp", [("gp_restarts", "2")])
    offset = experimental.prior_offset(1.0)(None)
    gp = offset.surrogate(gp_settings, 7, 0, 0, 0)
    assert isinstance(gp, GPSurrogate) and (gp.prior_offset, gp.random_state, gp.restarts) == (1.0, 7, 2)
    assert offset.acquisition is acquisition.from_settings
    warm = offset.surrogate(gp_settings, 7, 2, 5, 1)  # warm start: the service's task-column options stay
    assert (warm.task_columns, warm.fix_task_length_scale, warm.keep_first) == (2, True, 5)  # type: ignore[attr-defined]
    bounds = experimental.length_scale_bounds(0.1, 20.0)(None).surrogate(gp_settings, 0, 0, 0, 0)
    assert bounds.length_scale_bounds == (0.1, 20.0)  # type: ignore[attr-defined]
    forest = offset.surrogate(parse_settings("surrogate-rf", []), 0, 0, 0, 0)
    assert isinstance(forest, ForestSurrogate)  # GP options leave the forest alone
    with pytest.raises(TypeError, match="no option"):
        experimental.gp_factory(no_such_option=1)
    # the round robin: call n uses kinds[n_observed % 3], ucb with the portfolio's kappa
    round_robin = experimental.portfolio(("ei", "pi", "ucb"), kappa=3.0)(None)
    assert round_robin.surrogate is model_fit.make_surrogate
    mu, sd = np.array([0.0, 1.0, -0.5]), np.array([1.0, 0.2, 0.1])
    for n_observed, expected in ((0, acquisition.log_expected_improvement(mu, sd, 0.1)),
                                 (4, acquisition.log_probability_of_improvement(mu, sd, 0.1)),
                                 (5, acquisition.confidence_bound(mu, sd, 3.0))):  # fmt: skip
        history = SimpleNamespace(observed=[None] * n_observed)
        got = round_robin.acquisition(gp_settings, history, None)(mu, sd, 0.1, None)  # type: ignore[arg-type]
        assert np.array_equal(got, expected)
    assert before == (acquisition.score, acquisition.from_settings, model_fit.make_surrogate,
                      surrogates.LENGTH_SCALE_BOUNDS, surrogates.PRIOR_MEAN_OFFSET, bayesopt.DEFAULT_PARTS)  # fmt: skip


def test_oracle_parts_are_made_once_per_table(table: GridTask) -> None:
    oracle = experimental.oracle_kernel(restarts=0)
    parts = oracle(table)
    assert oracle(table) is parts  # one loopback server serves every run on the table
    gp = parts.surrogate(parse_settings("surrogate-gp", []), 0, 0, 0, 0)
    assert gp.kernel is not None  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="needs a grid task"):
        oracle(None)


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
    assert acquisition.score is score  # prototypes are arguments: nothing of the service is replaced
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
