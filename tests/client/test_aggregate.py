"""Aggregation: cost per trial, best, cost/trials to target, speed-up vs grid, ties, failures, gaps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from client.aggregate import (
    SRC_CPU_TIME,
    SRC_GPU_METRIC,
    SRC_TRAIN_SECONDS,
    SRC_WALL,
    SRC_WALL_X_GPUS,
    TrialCost,
    compare,
    summarize,
    trial_cost,
)
from client.errors import ClientError
from client.model import Experiment, Trial

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def trial(
    name: str,
    start: float,
    end: float | None,
    acc: float | None = None,
    condition: str = "Succeeded",
    gpus: float = 1.0,
    **metrics: float,
) -> Trial:
    values = dict(metrics)
    if acc is not None:
        values["accuracy"] = acc
    return Trial(
        name=name,
        parameters={"lr": name},
        condition=condition,
        metrics=values,
        start_time=T0 + timedelta(seconds=start),
        completion_time=None if end is None else T0 + timedelta(seconds=end),
        gpus=gpus,
    )


def experiment(
    name: str, algorithm: str, trials: list[Trial], task: str = "sst2", **kw: object
) -> Experiment:
    return Experiment(name=name, namespace="ns", task=task, algorithm=algorithm, trials=trials, **kw)


def test_trial_cost_sources() -> None:
    assert trial_cost(trial("a", 0, 600, 0.5, gpu_seconds=900.0)) == TrialCost(900.0, "gpu", SRC_GPU_METRIC)
    # gpu_seconds of 0 (or absent) falls back to wall time x requested GPUs
    assert trial_cost(trial("b", 0, 600, 0.5, gpus=2, gpu_seconds=0.0)) == TrialCost(
        1200.0, "gpu", SRC_WALL_X_GPUS
    )
    # no GPU at all: device-seconds, from train_seconds, else wall time
    assert trial_cost(trial("c", 0, 600, 0.5, gpus=0, train_seconds=42.0)) == TrialCost(
        42.0, "cpu", SRC_TRAIN_SECONDS
    )
    assert trial_cost(trial("d", 0, 600, 0.5, gpus=0)) == TrialCost(600.0, "cpu", SRC_WALL)
    # a local run measured the trial process's CPU time: it wins over both wall clocks
    measured = replace(trial("f", 0, 600, 0.5, gpus=0, train_seconds=42.0), cpu_seconds=7.25)
    assert trial_cost(measured) == TrialCost(7.25, "cpu", SRC_CPU_TIME)
    assert trial_cost(replace(measured, cpu_seconds=float("nan"))).source == SRC_TRAIN_SECONDS
    # GPU costs are unchanged by it (the cluster path), and a running trial still costs its wall time
    assert trial_cost(replace(measured, gpus=1)) == TrialCost(600.0, "gpu", SRC_WALL_X_GPUS)
    assert trial_cost(replace(trial("g", 0, 600, 0.5, gpu_seconds=900.0), cpu_seconds=7.25)).seconds == 900.0
    busy = replace(measured, condition="Running", completion_time=None)
    assert trial_cost(busy, now=T0 + timedelta(seconds=30)) == TrialCost(30.0, "cpu", SRC_WALL)
    running = trial("e", 0, None, None, condition="Running", gpus=1)
    assert trial_cost(running, now=T0 + timedelta(seconds=30)).seconds == 30.0


def hand_case() -> list[Experiment]:
    """The worked example of docs/client.md (also used against the fake cluster)."""
    grid = experiment(
        "sst2-grid",
        "grid",
        [
            trial("g1", 0, 600, 0.70),  # 600 GPU-s (wall x 1 GPU)
            trial("g2", 0, 700, 0.80, gpu_seconds=900.0),  # 900 from the metric
            trial("g3", 600, 900, None, condition="Failed"),  # 300, counts as cost and as failed
            trial("g4", 700, 1900, 0.85, gpus=2),  # 2400
        ],
    )
    gp = experiment(
        "sst2-surrogate-gp",
        "surrogate-gp",
        [
            trial("s1", 0, 600, 0.75),  # 600
            trial("s2", 0, 900, 0.86, f1=0.8),  # 900 -> reaches 0.85 after 1500 s
            trial("s3", 600, 1000, None, condition="MetricsUnavailable"),  # 400
        ],
    )
    return [gp, grid]


def test_hand_computed_comparison() -> None:
    result = compare(hand_case(), now=T0 + timedelta(hours=1))
    assert [t.task for t in result.tasks] == ["sst2"]
    task = result.tasks[0]
    assert task.target == 0.85 and task.target_source == "grid's best"
    grid, gp = task.rows  # grid first, whatever the input order
    assert (grid.algorithm, gp.algorithm) == ("grid", "surrogate-gp")
    assert grid.best_value == 0.85 and grid.best_trial == "g4"
    assert grid.cost_hours == pytest.approx(4200 / 3600)
    assert grid.hours_to_target == pytest.approx(4200 / 3600) and grid.trials_to_target == 4
    assert grid.failed == 1 and grid.trials_completed == 4
    assert gp.best_value == 0.86 and gp.best_parameters == {"lr": "s2"} and gp.best_metrics == {"f1": 0.8}
    assert gp.cost_hours == pytest.approx(1900 / 3600)
    assert gp.hours_to_target == pytest.approx(1500 / 3600) and gp.trials_to_target == 2
    assert gp.failed == 1
    assert grid.speedup_vs_grid == pytest.approx(1.0)
    assert gp.speedup_vs_grid == pytest.approx(4200 / 1500)
    assert result.cost_label == "GPU-hours"
    assert grid.cost_sources == {SRC_GPU_METRIC: 1, SRC_WALL_X_GPUS: 3}


def test_curve_is_best_so_far_in_completion_order() -> None:
    grid = hand_case()[1]
    summary = summarize(grid)
    assert [p.trial for p in summary.curve] == ["g1", "g2", "g3", "g4"]
    assert [p.best_so_far for p in summary.curve] == [0.70, 0.80, 0.80, 0.85]
    assert [round(p.cumulative_hours * 3600) for p in summary.curve] == [600, 1500, 1800, 4200]


def test_explicit_target_and_tolerance() -> None:
    by_target = compare(hand_case(), target=0.8)
    grid, gp = by_target.tasks[0].rows
    assert grid.trials_to_target == 2 and grid.hours_to_target == pytest.approx(1500 / 3600)
    assert gp.trials_to_target == 2 and gp.speedup_vs_grid == pytest.approx(1.0)
    by_tolerance = compare(hand_case(), tolerance=0.1)  # best any 0.86 -> target 0.76
    task = by_tolerance.tasks[0]
    assert task.target == pytest.approx(0.76)
    grid, gp = task.rows
    assert grid.trials_to_target == 2 and gp.trials_to_target == 2
    unreachable = compare(hand_case(), target=0.99)
    assert all(r.hours_to_target is None and r.speedup_vs_grid is None for r in unreachable.tasks[0].rows)


def test_ties_first_completed_wins_and_float_noise_reaches() -> None:
    grid = experiment("t-grid", "grid", [trial("late", 0, 900, 0.9), trial("early", 0, 300, 0.9)], task="t")
    rnd = experiment("t-random", "random", [trial("r1", 0, 100, 0.9 - 1e-12)], task="t")
    result = compare([grid, rnd])
    g, r = result.tasks[0].rows
    assert (
        g.best_trial == "early" and g.trials_to_target == 1 and g.hours_to_target == pytest.approx(300 / 3600)
    )
    assert r.trials_to_target == 1
    assert r.speedup_vs_grid == pytest.approx(3.0)


def test_minimize_objective() -> None:
    kw = {"objective_metric": "loss", "objective_type": "minimize"}
    grid = experiment(
        "m-grid",
        "grid",
        [
            trial("a", 0, 10, None, loss=0.5),
            trial("b", 0, 20, None, loss=0.2),
            trial("c", 0, 30, None, loss=0.3),
        ],
        task="m",
        **kw,
    )
    summary = compare([grid]).tasks[0].rows[0]
    assert summary.best_value == 0.2 and summary.best_trial == "b" and summary.trials_to_target == 2


def test_missing_metrics_failed_only_and_no_grid() -> None:
    # a Succeeded trial without the objective value: no crash, a note; no grid: target = best found
    rnd = experiment(
        "x-random",
        "random",
        [trial("r1", 0, 60, None), trial("r2", 0, 120, 0.6), trial("r3", 0, 30, None, condition="Failed")],
        task="x",
    )
    only_failed = experiment(
        "x-surrogate-gp", "surrogate-gp", [trial("f", 0, 60, None, condition="Failed")], task="x"
    )
    result = compare([rnd, only_failed])
    task = result.tasks[0]
    assert task.target == 0.6 and task.target_source.startswith("best found")
    r, f = task.rows
    assert r.best_value == 0.6 and r.trials_to_target == 3  # r3 (30 s), r1 (60 s), r2 (120 s)
    assert any("without a accuracy value" in n for n in r.notes)
    assert f.best_value is None and f.hours_to_target is None and f.failed == 1
    assert r.speedup_vs_grid is None  # no grid to compare with


def test_running_trials_cost_so_far_but_not_on_curve() -> None:
    exp = experiment(
        "r-grid", "grid", [trial("a", 0, 60, 0.5), trial("b", 0, None, None, condition="Running")]
    )
    summary = summarize(exp, now=T0 + timedelta(seconds=120))
    assert summary.cost_hours == pytest.approx(180 / 3600)
    assert [p.trial for p in summary.curve] == ["a"] and summary.running == 1


def test_cpu_cost_label_is_honest() -> None:
    local = experiment("c-grid", "grid", [trial("a", 0, 60, 0.5, gpus=0, train_seconds=10.0)], source="local")
    result = compare([local])
    assert result.cost_label == "device-hours (CPU, local)" and result.cost_kind == "cpu"


def test_empty_comparison_and_bad_tolerance() -> None:
    with pytest.raises(ClientError, match="nothing to compare"):
        compare([])
    with pytest.raises(ClientError, match="tolerance"):
        compare(hand_case(), tolerance=-1)


def test_conflicting_objectives_in_one_task() -> None:
    a = experiment("a-grid", "grid", [trial("a", 0, 1, 0.5)], task="a")
    b = experiment("a-random", "random", [trial("b", 0, 1, 0.5)], task="a", objective_type="minimize")
    with pytest.raises(ClientError, match="disagree on the objective"):
        compare([a, b])
