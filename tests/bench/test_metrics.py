"""Benchmark metrics: trials/cost to the best, censoring, normalised live scores, paired tests, ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.optimizers import metrics
from bench.optimizers.harness import RunResult, TrialRecord
from bench.optimizers.spaces import Param, canonical_key, catalog
from bench.optimizers.tasks import GridTask, Task


def small_grid() -> GridTask:
    """2 x 3 grid; the best (0.9) is ("b", "3"); ("a", "3") = 0.8975 is within 0.5%."""
    params = [Param("opt", "categorical", values=("a", "b")), Param("n", "discrete", values=("1", "2", "3"))]
    space = catalog(params)
    table = {
        ("a", "1"): 0.5,
        ("a", "2"): 0.6,
        ("a", "3"): 0.8975,
        ("b", "1"): 0.7,
        ("b", "2"): None,
        ("b", "3"): 0.9,
    }
    values = {canonical_key(space, {"opt": o, "n": n}): v for (o, n), v in table.items()}
    costs = {k: 10.0 for k in values}
    return GridTask("toy", params, values, costs)


def run_of(task: Task, configs: list[tuple[str, str]], optimizer: str = "x", seed: int = 0) -> RunResult:
    records = []
    for i, (o, n) in enumerate(configs, start=1):
        ev = task.evaluate({"opt": o, "n": n})
        records.append(TrialRecord(task.name, optimizer, seed, "seq", i, f"n={n};opt={o}", ev.value, ev.cost, 0.0, 0.0,
                                   (o, n) in configs[: i - 1]))  # fmt: skip
    return RunResult(task.name, optimizer, seed, "seq", records)


def outcome_map(task: GridTask, run: RunResult) -> dict[str, float]:
    return {o.metric: o.value for o in metrics.grid_outcomes(task, run)}


def test_grid_task_facts() -> None:
    task = small_grid()
    assert task.best == 0.9 and task.n_best() == 1 and task.n_near() == 2
    assert task.total_cost() == 60.0
    assert task.expected_random_order(1) == pytest.approx(3.5)  # (N + 1) / 2 for a unique best
    assert task.evaluate({"opt": "b", "n": "2"}).value is None  # a failed configuration


def test_trials_and_cost_to_best_and_near() -> None:
    task = small_grid()
    out = outcome_map(task, run_of(task, [("a", "1"), ("a", "3"), ("b", "1"), ("b", "3")]))
    assert out["trials_to_best"] == 4 and out["trials_to_near"] == 2
    assert out["cost_to_best"] == pytest.approx(40 / 60) and out["cost_to_near"] == pytest.approx(20 / 60)
    assert out["missed"] == 0 and out["repeats"] == 0


def test_a_run_that_never_finds_the_best_is_censored_at_its_length() -> None:
    task = small_grid()
    out = outcome_map(task, run_of(task, [("a", "1"), ("a", "1"), ("b", "2")]))
    assert out["trials_to_best"] == 3 and out["missed"] == 1 and out["repeats"] == 1
    assert out["cost_to_best"] == pytest.approx(30 / 60)


def test_live_scores_are_zero_for_random_and_full_for_the_best_found() -> None:
    task = small_grid()  # used as a "live" task: the metric only needs loss()
    runs = [
        run_of(task, [("a", "1"), ("a", "2")], "random", 0),
        run_of(task, [("a", "2"), ("b", "1")], "random", 1),
        run_of(task, [("b", "3"), ("a", "1")], "ours", 0),
    ]
    out = {(o.optimizer, o.seed, o.problem): o.value for o in metrics.live_outcomes({"toy": task}, runs, [2])}
    # random's mean best loss after 2 trials = mean(-0.6, -0.7); the best loss found anywhere = -0.9
    assert out[("ours", 0, "toy/seq/b2")] == pytest.approx(0.0)
    assert np.mean([out[("random", 0, "toy/seq/b2")], out[("random", 1, "toy/seq/b2")]]) == pytest.approx(1.0)


def test_win_tie_loss_uses_a_paired_test() -> None:
    seeds = range(12)
    ours = {s: 5.0 + 0.1 * s for s in seeds}
    worse = {s: 9.0 + 0.2 * s for s in seeds}
    assert metrics.win_tie_loss(ours, worse) == "win"
    assert metrics.win_tie_loss(worse, ours) == "loss"
    assert metrics.win_tie_loss(ours, dict(ours)) == "tie"
    noisy = {s: ours[s] + (0.5 if s % 2 else -0.5) for s in seeds}
    assert metrics.win_tie_loss(ours, noisy) == "tie"
    few = {s: ours[s] for s in range(3)}
    assert metrics.win_tie_loss(few, {s: 100.0 for s in range(3)}) == "tie"  # 3 seeds cannot reach p < 0.05


def test_mean_ranks_and_common_optimizers() -> None:
    values = {
        "p1": {"a": {0: 1.0}, "b": {0: 2.0}, "c": {0: 3.0}},
        "p2": {"a": {0: 2.0}, "b": {0: 2.0}, "c": {0: 1.0}},
        "p3": {"a": {0: 1.0}, "b": {0: 5.0}},
    }
    assert metrics.common_optimizers(values, ["a", "b", "c"]) == ["a", "b"]
    ranks = metrics.mean_ranks(values, ["a", "b", "c"])  # p3 lacks c: only p1 and p2 count
    assert ranks == {"a": pytest.approx(1.75), "b": pytest.approx(2.25), "c": pytest.approx(2.0)}


def test_ratio_to_random() -> None:
    per = {"random": {0: 10.0, 1: 14.0}, "ours": {0: 4.0, 1: 2.0}}
    assert metrics.ratio_to_random(per, "ours") == pytest.approx(0.25)
    assert metrics.ratio_to_random(
        {"random": {0: -1.0}, "ours": {0: -2.0}}, "ours", log_scale=True
    ) == pytest.approx(0.1)
    assert math.isnan(metrics.ratio_to_random({"ours": {0: 1.0}}, "ours"))
