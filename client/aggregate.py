"""Aggregation: per-experiment summaries and per-task comparisons (best, cost, cost-to-target, speed-up).

Pure functions over the result model; both sources (cluster, local store) and every reporter go through
here, so the numbers cannot differ between the terminal table, the files and the plot.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from client.errors import ClientError
from client.model import (
    EARLY_STOPPED,
    FAILED_CONDITIONS,
    KILLED,
    MAXIMIZE,
    RUNNING,
    SUCCEEDED,
    Experiment,
    Trial,
    utcnow,
)

GPU = "gpu"
CPU = "cpu"
NO_COST = "none"
SRC_GPU_METRIC = "gpu_seconds metric"
SRC_WALL_X_GPUS = "wall time x requested GPUs"
SRC_CPU_TIME = "trial process CPU time, user + sys (no GPU)"
SRC_TRAIN_SECONDS = "train_seconds metric (no GPU)"
SRC_WALL = "wall time (no GPU)"
SRC_UNKNOWN = "no timing"
COST_METRICS = frozenset({"gpu_seconds", "train_seconds", "gpu_energy_j"})
ALGORITHM_ORDER = ("grid", "random", "surrogate-gp", "surrogate-rf")
GRID = "grid"
_BEST_CONDITIONS = frozenset({SUCCEEDED, EARLY_STOPPED})


@dataclass(frozen=True)
class TrialCost:
    """What one trial cost: seconds of GPU (or, without GPUs, device) time, and where the number came from."""

    seconds: float
    kind: str
    source: str


def trial_cost(trial: Trial, now: datetime | None = None) -> TrialCost:
    """GPU-seconds from the ``gpu_seconds`` metric; when absent or 0, wall time x requested GPUs.

    Without GPUs (local CPU runs) the cost is device-seconds: the CPU time (user + sys) the local runner
    measured for the trial's process, which does not depend on how busy the machine was; for a stored
    trial without that measurement, the ``train_seconds`` metric, else wall time (both wall clocks, so
    they grow when other work shares the CPU). Cluster trials never carry the measurement. A running
    trial costs its wall time so far.
    """
    gpu_seconds = trial.metrics.get("gpu_seconds")
    if gpu_seconds is not None and gpu_seconds > 0 and math.isfinite(gpu_seconds):
        return TrialCost(float(gpu_seconds), GPU, SRC_GPU_METRIC)
    wall = trial.wall_seconds(now)
    if trial.gpus > 0 and wall is not None:
        return TrialCost(wall * trial.gpus, GPU, SRC_WALL_X_GPUS)
    cpu = trial.cpu_seconds
    if trial.is_terminal and cpu is not None and cpu >= 0 and math.isfinite(cpu):
        return TrialCost(float(cpu), CPU, SRC_CPU_TIME)
    train_seconds = trial.metrics.get("train_seconds")
    if trial.is_terminal and train_seconds is not None and train_seconds > 0 and math.isfinite(train_seconds):
        return TrialCost(float(train_seconds), CPU, SRC_TRAIN_SECONDS)
    if wall is not None:
        return TrialCost(wall, CPU, SRC_WALL)
    return TrialCost(0.0, NO_COST, SRC_UNKNOWN)


def cost_label(kinds: set[str], local: bool) -> str:
    """The honest name of the cost column for a set of cost kinds."""
    kinds = kinds - {NO_COST}
    if kinds == {CPU}:
        return "device-hours (CPU, local)" if local else "device-hours (CPU)"
    if kinds == {GPU, CPU}:
        return "GPU/device-hours (mixed)"
    return "GPU-hours"


def reaches(value: float, target: float, objective_type: str) -> bool:
    """True when ``value`` is at least as good as ``target`` (float noise tolerated)."""
    eps = 1e-9 * max(1.0, abs(target))
    return value >= target - eps if objective_type == MAXIMIZE else value <= target + eps


def completion_order(trials: list[Trial]) -> list[Trial]:
    """Finished trials in the order they completed (those without a completion time last, by name)."""
    done = [t for t in trials if t.is_terminal]
    return sorted(
        done,
        key=lambda t: (
            t.completion_time is None,
            t.completion_time.timestamp() if t.completion_time else 0.0,
            t.start_time.timestamp() if t.start_time else 0.0,
            t.name,
        ),
    )


@dataclass
class CurvePoint:
    """One finished trial on the best-so-far curve."""

    trial: str
    cumulative_hours: float
    value: float | None
    best_so_far: float | None


@dataclass
class ExperimentSummary:
    """Everything the reporters show about one experiment."""

    name: str
    namespace: str
    task: str
    algorithm: str
    condition: str
    source: str
    objective_metric: str
    objective_type: str
    trials_total: int
    trials_completed: int
    succeeded: int
    failed: int
    killed: int
    running: int
    pending: int
    max_trial_count: int | None
    reason: str = ""
    best_value: float | None = None
    best_trial: str | None = None
    best_parameters: dict[str, str] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    cost_hours: float = 0.0
    cost_kind: str = NO_COST
    cost_sources: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float | None = None
    target: float | None = None
    hours_to_target: float | None = None
    trials_to_target: int | None = None
    speedup_vs_grid: float | None = None
    curve: list[CurvePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def best_is_better(self, a: float, b: float) -> bool:
        """Direction-aware strict comparison."""
        return a > b if self.objective_type == MAXIMIZE else a < b


def summarize(experiment: Experiment, now: datetime | None = None) -> ExperimentSummary:
    """Best objective, counts, cost and the best-so-far curve of one experiment (no target yet)."""
    now = now or utcnow()
    metric = experiment.objective_metric
    summary = ExperimentSummary(
        name=experiment.name,
        namespace=experiment.namespace,
        task=experiment.task,
        algorithm=experiment.algorithm,
        condition=experiment.condition,
        source=experiment.source,
        objective_metric=metric,
        objective_type=experiment.objective_type,
        trials_total=len(experiment.trials),
        trials_completed=sum(1 for t in experiment.trials if t.is_terminal),
        succeeded=experiment.count(SUCCEEDED),
        failed=sum(1 for t in experiment.trials if t.condition in FAILED_CONDITIONS),
        killed=experiment.count(KILLED),
        running=experiment.count(RUNNING),
        pending=sum(1 for t in experiment.trials if not t.is_terminal and t.condition != RUNNING),
        max_trial_count=experiment.max_trial_count,
        elapsed_seconds=experiment.elapsed_seconds(now),
        notes=list(experiment.notes),
    )
    summary.reason = experiment.reason

    kinds: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    total = 0.0
    for trial in experiment.trials:
        if not trial.is_terminal and trial.condition != RUNNING:
            continue
        cost = trial_cost(trial, now)
        total += cost.seconds
        kinds[cost.kind] += 1
        sources[cost.source] += 1
    summary.cost_hours = total / 3600.0
    real_kinds = set(kinds) - {NO_COST}
    summary.cost_kind = (
        NO_COST if not real_kinds else next(iter(real_kinds)) if len(real_kinds) == 1 else "mixed"
    )
    summary.cost_sources = dict(sorted(sources.items()))

    cumulative = 0.0
    best: float | None = None
    for trial in completion_order(experiment.trials):
        cumulative += trial_cost(trial, now).seconds
        value = trial.metrics.get(metric) if trial.condition in _BEST_CONDITIONS else None
        if value is not None and not math.isfinite(value):
            value = None
        if value is not None and (best is None or summary.best_is_better(value, best)):
            best = value
            summary.best_value = value
            summary.best_trial = trial.name
            summary.best_parameters = dict(trial.parameters)
            summary.best_metrics = {
                k: v for k, v in trial.metrics.items() if k != metric and k not in COST_METRICS
            }
        summary.curve.append(CurvePoint(trial.name, cumulative / 3600.0, value, best))
    no_metrics = [t.name for t in experiment.trials if t.condition == SUCCEEDED and metric not in t.metrics]
    if no_metrics:
        summary.notes.append(f"{len(no_metrics)} succeeded trial(s) without a {metric} value")
    return summary


def apply_target(summary: ExperimentSummary, target: float | None) -> None:
    """Fill cost and trials until the experiment first reached ``target`` (completion order)."""
    summary.target = target
    summary.hours_to_target = None
    summary.trials_to_target = None
    if target is None:
        return
    for index, point in enumerate(summary.curve):
        if point.value is not None and reaches(point.value, target, summary.objective_type):
            summary.hours_to_target = point.cumulative_hours
            summary.trials_to_target = index + 1
            return


def speedup(reference_hours: float | None, hours: float | None) -> float | None:
    """reference / hours (how many times less cost than the reference); None when undefined."""
    if reference_hours is None or hours is None or hours <= 0 or reference_hours <= 0:
        return None
    return reference_hours / hours


@dataclass
class TaskComparison:
    """All experiments of one task against one target."""

    task: str
    objective_metric: str
    objective_type: str
    target: float | None
    target_source: str
    best_any: float | None
    rows: list[ExperimentSummary]


@dataclass
class Comparison:
    """The full comparison the reporters render."""

    tasks: list[TaskComparison]
    cost_label: str
    cost_kind: str
    source: str
    generated_at: datetime
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[ExperimentSummary]:
        """Every experiment summary, task by task."""
        return [row for task in self.tasks for row in task.rows]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO strings)."""
        out = asdict(self)
        out["generated_at"] = self.generated_at.isoformat()
        return out


def group_notes(notes: list[tuple[str, str]]) -> list[str]:
    """One line per distinct note, naming the experiments it applies to ("all N experiments" if all)."""
    names = {name for name, _ in notes}
    grouped: dict[str, list[str]] = {}
    for name, note in notes:
        grouped.setdefault(note, []).append(name)
    out = []
    for note, which in grouped.items():
        if len(which) == 1:
            out.append(f"{which[0]}: {note}")
        elif len(names) > 2 and set(which) == names:
            out.append(f"{note} (all {len(which)} experiments)")
        else:
            out.append(f"{note} ({', '.join(which)})")
    return out


def _algorithm_key(algorithm: str) -> tuple[int, str]:
    return (ALGORITHM_ORDER.index(algorithm), "") if algorithm in ALGORITHM_ORDER else (99, algorithm)


def compare(
    experiments: list[Experiment],
    *,
    target: float | None = None,
    tolerance: float | None = None,
    now: datetime | None = None,
) -> Comparison:
    """Compare experiments task by task.

    The target of a task is ``target`` if given; else within ``tolerance`` of the best value any
    algorithm found; else the grid experiment's best (the best any algorithm found when the task has
    no grid experiment). Speed-up = grid's cost-to-target / this experiment's cost-to-target.
    """
    if not experiments:
        raise ClientError(
            "nothing to compare: no experiments matched; check --namespace/--task/--algorithm "
            "(or run them first: `python -m client submit`, or `compare --local`)"
        )
    if tolerance is not None and (tolerance < 0 or not math.isfinite(tolerance)):
        raise ClientError(f"--tolerance must be a finite number >= 0, got {tolerance}")
    if target is not None and not math.isfinite(target):
        raise ClientError(f"--target must be a finite number, got {target}")
    now = now or utcnow()
    by_task: dict[str, list[ExperimentSummary]] = {}
    for experiment in experiments:
        by_task.setdefault(experiment.task, []).append(summarize(experiment, now))
    tasks: list[TaskComparison] = []
    all_kinds: set[str] = set()
    for task in sorted(by_task):
        rows = sorted(by_task[task], key=lambda r: (_algorithm_key(r.algorithm), r.name))
        objective_types = {r.objective_type for r in rows}
        metrics = {r.objective_metric for r in rows}
        if len(objective_types) > 1 or len(metrics) > 1:
            raise ClientError(
                f"task {task}: experiments disagree on the objective ({', '.join(sorted(metrics))}, "
                f"{', '.join(sorted(objective_types))}); compare them separately with --algorithm"
            )
        objective_type = rows[0].objective_type
        best_any: float | None = None
        for row in rows:
            if row.best_value is not None and (
                best_any is None or row.best_is_better(row.best_value, best_any)
            ):
                best_any = row.best_value
        grid = next((r for r in rows if r.algorithm == GRID), None)
        if target is not None:
            task_target, source = target, f"--target {target:g}"
        elif tolerance is not None:
            if best_any is None:
                task_target, source = None, "no trial succeeded"
            else:
                task_target = best_any - tolerance if objective_type == MAXIMIZE else best_any + tolerance
                source = f"within {tolerance:g} of the best found ({best_any:.4f})"
        elif grid is not None and grid.best_value is not None:
            task_target, source = grid.best_value, "grid's best"
        elif best_any is not None:
            task_target = best_any
            source = (
                "best found (no grid result)" if grid is None or grid.best_value is None else "grid's best"
            )
        else:
            task_target, source = None, "no trial succeeded"
        for row in rows:
            apply_target(row, task_target)
            all_kinds.add(row.cost_kind)
        reference = grid.hours_to_target if grid is not None else None
        for row in rows:
            row.speedup_vs_grid = speedup(reference, row.hours_to_target)
        tasks.append(
            TaskComparison(
                task, rows[0].objective_metric, objective_type, task_target, source, best_any, rows
            )
        )
    kinds = {k for k in all_kinds if k in (GPU, CPU)} | ({GPU, CPU} if "mixed" in all_kinds else set())
    local = all(e.source == "local" for e in experiments)
    notes = group_notes([(row.name, note) for task in tasks for row in task.rows for note in row.notes])
    return Comparison(
        tasks=tasks,
        cost_label=cost_label(kinds, local),
        cost_kind="mixed" if len(kinds) > 1 else (next(iter(kinds)) if kinds else NO_COST),
        source="local" if local else "cluster",
        generated_at=now,
        notes=notes,
    )
