"""Katib trials -> what the algorithms learn from: observed (x, y, cost), pending and failed configurations.

The service is stateless: the history is rebuilt from ``request.trials`` on every call.
"""

# ruff: noqa: N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from suggestion_service.errors import InvalidArgument
from suggestion_service.numbers import NumberError, to_float
from suggestion_service.proto import api_pb2
from suggestion_service.space import SearchSpace

logger = logging.getLogger(__name__)

_TS = api_pb2.TrialStatus
COMPLETED = frozenset({_TS.SUCCEEDED, _TS.EARLYSTOPPED})
PENDING = frozenset({_TS.CREATED, _TS.RUNNING, _TS.UNKNOWN})
FAILED = frozenset({_TS.FAILED, _TS.KILLED, _TS.METRICSUNAVAILABLE})


def parse_metric_value(text: str) -> float | None:
    """Parse a Katib metric string; None unless it is a finite number.

    ``"0.93"`` -> 0.93, ``"1e-3"`` -> 0.001; ``""``, ``"unavailable"``, ``"nan"``, ``"inf"`` -> None.
    """
    try:
        return to_float(str(text))
    except NumberError:
        return None


@dataclass(frozen=True)
class Observation:
    """A completed trial with a finite objective value (``y`` as reported, not negated)."""

    assignment: dict[str, str]
    x: np.ndarray
    y: float
    cost: float | None
    trial_name: str
    raw: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class History:
    """Everything the algorithms know about an experiment, rebuilt from the request's trials."""

    observed: list[Observation]
    pending: list[dict[str, str]]
    failed: list[dict[str, str]]
    maximize: bool
    pending_raw: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))
    failed_raw: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0)))

    def losses(self) -> np.ndarray:
        """Objective values of ``observed`` as losses (lower is better: negated when maximizing)."""
        y = np.array([o.y for o in self.observed], dtype=float)
        return -y if self.maximize else y

    def observed_raw(self) -> np.ndarray:
        """Raw rows of the observed configurations."""
        if not self.observed:
            return np.empty((0, self.pending_raw.shape[1] if self.pending_raw.ndim == 2 else 0))
        return np.vstack([o.raw for o in self.observed])

    def seen_keys(self) -> set[tuple]:
        """Keys of every configuration that is completed, running or failed (for finite-space dedup)."""
        rows = [o.raw for o in self.observed] + list(self.pending_raw) + list(self.failed_raw)
        return {SearchSpace.raw_key(r) for r in rows}

    def best_first(self) -> list[Observation]:
        """Observations sorted best objective first (ties keep trial order)."""
        order = np.argsort(self.losses(), kind="stable")
        return [self.observed[i] for i in order]


def _metric(trial: api_pb2.Trial, name: str) -> tuple[bool, float | None]:
    """(present, finite value) of the metric ``name``; the last finite value wins if repeated."""
    present, value = False, None
    for m in trial.status.observation.metrics:
        if m.name == name:
            present = True
            parsed = parse_metric_value(m.value)
            if parsed is not None:
                value = parsed
    return present, value


def build_history(
    space: SearchSpace,
    trials: Sequence[api_pb2.Trial],
    objective: api_pb2.ObjectiveSpec,
    cost_metric: str | None,
) -> History:
    """Sort Katib trials into observed / pending / failed.

    * SUCCEEDED and EARLYSTOPPED with a finite objective -> observed; without one -> failed.
    * CREATED, RUNNING, UNKNOWN -> pending. FAILED, KILLED, METRICSUNAVAILABLE -> failed.
    * Trials whose assignments do not fit the space (unknown or missing names, infeasible values)
      are skipped with a warning; they never crash the call.
    * Cost is the finite, non-negative value of ``cost_metric`` (None when absent).
    """
    if objective.type == api_pb2.UNKNOWN:
        raise InvalidArgument("objective.type is UNKNOWN; allowed: MINIMIZE or MAXIMIZE")
    if objective.type not in (api_pb2.MINIMIZE, api_pb2.MAXIMIZE):
        raise InvalidArgument(f"objective.type {objective.type} is not known; allowed: MINIMIZE or MAXIMIZE")
    metric_name = objective.objective_metric_name
    if not metric_name:
        raise InvalidArgument("objective.objective_metric_name is empty; name the metric to optimise")
    observed: list[Observation] = []
    pending: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    pending_raw: list[np.ndarray] = []
    failed_raw: list[np.ndarray] = []
    for trial in trials:
        assignment = {a.name: a.value for a in trial.spec.parameter_assignments.assignments}
        if len(assignment) != len(trial.spec.parameter_assignments.assignments):
            logger.warning("skipping trial %r: a parameter is assigned twice", trial.name)
            continue
        try:
            raw = space.raw(assignment)
        except ValueError as exc:
            logger.warning("skipping trial %r: %s", trial.name, exc)
            continue
        clean = space.assignment(raw)
        condition = trial.status.condition
        if condition in COMPLETED:
            _, y = _metric(trial, metric_name)
            if y is None:
                failed.append(clean)
                failed_raw.append(raw)
                continue
            cost = None
            if cost_metric:
                _, c = _metric(trial, cost_metric)
                cost = c if c is not None and c >= 0 else None
            observed.append(Observation(clean, raw, y, cost, trial.name, raw))  # x encoded below
        elif condition in FAILED:
            failed.append(clean)
            failed_raw.append(raw)
        elif condition in PENDING:
            pending.append(clean)
            pending_raw.append(raw)
        else:
            logger.warning("trial %r has unknown condition %s; treating it as pending", trial.name, condition)
            pending.append(clean)
            pending_raw.append(raw)
    p = len(space.params)

    def stack(rows: list[np.ndarray]) -> np.ndarray:
        return np.vstack(rows) if rows else np.empty((0, p))

    if observed:  # encode all at once (x was a placeholder above)
        X = space.encode_raw(np.vstack([o.raw for o in observed]))
        observed = [
            Observation(o.assignment, X[i], o.y, o.cost, o.trial_name, o.raw) for i, o in enumerate(observed)
        ]
    return History(
        observed=observed,
        pending=pending,
        failed=failed,
        maximize=objective.type == api_pb2.MAXIMIZE,
        pending_raw=stack(pending_raw),
        failed_raw=stack(failed_raw),
    )
