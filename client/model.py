"""The one result model both sources fill: experiment -> trials -> parameters, metrics, condition, times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

# Katib Trial condition types (the last condition whose status is "True" is the trial's state).
CREATED = "Created"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
KILLED = "Killed"
FAILED = "Failed"
METRICS_UNAVAILABLE = "MetricsUnavailable"
EARLY_STOPPED = "EarlyStopped"

TRIAL_CONDITIONS = (CREATED, RUNNING, SUCCEEDED, KILLED, FAILED, METRICS_UNAVAILABLE, EARLY_STOPPED)
TERMINAL_CONDITIONS = frozenset({SUCCEEDED, KILLED, FAILED, METRICS_UNAVAILABLE, EARLY_STOPPED})
# Katib counts these two against maxFailedTrialCount.
FAILED_CONDITIONS = frozenset({FAILED, METRICS_UNAVAILABLE})

MAXIMIZE = "maximize"
MINIMIZE = "minimize"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (all model times are)."""
    return datetime.now(UTC)


@dataclass
class Trial:
    """One Katib trial: its assignment, state, observation (strategy-picked, numeric) and cost inputs."""

    name: str
    parameters: dict[str, str]
    condition: str = CREATED
    metrics: dict[str, float] = field(default_factory=dict)
    start_time: datetime | None = None
    completion_time: datetime | None = None
    gpus: float = 0.0
    message: str = ""
    cpu_seconds: float | None = None  # user + sys CPU time of the trial's process, measured by local runs
    #: Where the trial's output can be read after it ended (kubectl commands, file paths), one per line.
    logs: list[str] = field(default_factory=list)

    @property
    def is_terminal(self) -> bool:
        """True when the trial has finished in any way (Katib's 'completed' set)."""
        return self.condition in TERMINAL_CONDITIONS

    def wall_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds between start and completion (or ``now`` for a running trial); None if never started."""
        if self.start_time is None:
            return None
        end = self.completion_time
        if end is None:
            if self.is_terminal:
                return None
            end = now or utcnow()
        return max(0.0, (end - self.start_time).total_seconds())


@dataclass
class Experiment:
    """One Katib experiment and its trials, as read from the cluster or the local store."""

    name: str
    namespace: str
    task: str
    algorithm: str
    objective_metric: str = "accuracy"
    objective_type: str = MAXIMIZE
    additional_metrics: list[str] = field(default_factory=list)
    goal: float | None = None
    parallel_trial_count: int | None = None
    max_trial_count: int | None = None
    max_failed_trial_count: int | None = None
    condition: str = CREATED
    reason: str = ""
    start_time: datetime | None = None
    completion_time: datetime | None = None
    trials: list[Trial] = field(default_factory=list)
    source: str = "cluster"
    notes: list[str] = field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        """True once the experiment reached Succeeded or Failed."""
        return self.condition in (SUCCEEDED, FAILED)

    def count(self, condition: str) -> int:
        """Number of trials currently in ``condition``."""
        return sum(1 for t in self.trials if t.condition == condition)

    def elapsed_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the experiment started (until completion when finished)."""
        start = self.start_time
        if start is None:
            starts = [t.start_time for t in self.trials if t.start_time is not None]
            if not starts:
                return None
            start = min(starts)
        end = self.completion_time or (None if self.is_finished else (now or utcnow()))
        if end is None:
            ends = [t.completion_time for t in self.trials if t.completion_time is not None]
            end = max(ends) if ends else start
        return max(0.0, (end - start).total_seconds())

    def better(self, a: float, b: float) -> bool:
        """True when objective value ``a`` is strictly better than ``b`` for this experiment's direction."""
        return a > b if self.objective_type == MAXIMIZE else a < b
