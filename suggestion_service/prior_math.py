"""Warm-start prior data: the trials of earlier experiments as prior observations for the models.

Pure functions of (search space, fetched ``PriorExperiment`` objects, objective, own observations); the
fetching and caching is ``prior_fetch``.

* ``prior_data`` keeps the prior trials that fit this search space (matched by parameter name; extra
  parameters of the prior are ignored), caps them at ``warm_start_max_trials`` and logs one line per
  experiment saying how many were dropped and why (``PriorStats``). The models see them with one
  indicator column per prior experiment (see ``bayesopt``).
* ``drop_unrelated`` leaves out, for one call, a prior experiment that contradicts this experiment's own
  observations (negative transfer); ``check_usable`` rejects a prior none of whose trials fits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from suggestion_service.errors import InvalidArgument
from suggestion_service.history import parse_metric_value
from suggestion_service.priors import PriorExperiment
from suggestion_service.proto import api_pb2
from suggestion_service.seeding import rng_from
from suggestion_service.space import SearchSpace

#: The warm-start log lines keep the logger name they have always had (log filters select on it).
logger = logging.getLogger("suggestion_service.warm_start")

_EXAMPLES_PER_REASON = 2


@dataclass
class PriorStats:
    """How many trials of one prior experiment were used, and why the others were dropped."""

    ref: str
    total: int = 0
    used: int = 0
    capped: int = 0
    not_succeeded: int = 0
    no_objective: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # parameter name -> trials without it
    outside: list[str] = field(default_factory=list)  # examples of values outside the space
    n_outside: int = 0

    def describe(self, examples: bool = True) -> str:
        """One log line: ``used 10 of 14 trials; dropped: 2 not succeeded, ...``; ``examples``: with
        examples of the values outside this space (prior data: for the log, never an error message)."""
        reasons = []
        if self.not_succeeded:
            reasons.append(f"{self.not_succeeded} not succeeded")
        if self.no_objective:
            reasons.append(f"{self.no_objective} without a finite objective value")
        if self.missing:
            names = ", ".join(f"{k!r} ({v})" for k, v in sorted(self.missing.items()))
            reasons.append(f"{sum(self.missing.values())} missing a parameter of this experiment: {names}")
        if self.n_outside:
            shown = f" (e.g. {'; '.join(self.outside)})" if examples and self.outside else ""
            reasons.append(f"{self.n_outside} with a value outside this search space{shown}")
        if self.capped:
            reasons.append(f"{self.capped} over warm_start_max_trials")
        text = f"warm start from {self.ref}: using {self.used} of {self.total} trials"
        return text + ("; dropped " + ", ".join(reasons) if reasons else "")


@dataclass(frozen=True)
class PriorData:
    """Prior observations for the models.

    raw / X: raw and encoded rows; source: index of the prior experiment of each row (0..k-1);
    losses: objective values as losses (negated when maximizing), comparable within one source only.
    """

    refs: tuple[str, ...]
    raw: np.ndarray
    X: np.ndarray
    source: np.ndarray
    losses: np.ndarray
    stats: tuple[PriorStats, ...]

    @property
    def n_sources(self) -> int:
        """Number of prior experiments (the models get one indicator column each)."""
        return len(self.refs)

    def __len__(self) -> int:
        return len(self.losses)

    def fingerprint(self) -> list:
        """Order-independent content, mixed into the seed (the same priors give the same reply)."""
        rows = [
            [self.refs[int(s)], SearchSpace.raw_key(r), repr(float(y))]
            for r, s, y in zip(self.raw, self.source, self.losses, strict=True)
        ]
        return sorted(rows, key=repr)


def _usable_rows(
    space: SearchSpace, prior: PriorExperiment, metric: str, maximize: bool, stats: PriorStats
) -> tuple[list[np.ndarray], list[float]]:
    raws: list[np.ndarray] = []
    losses: list[float] = []
    names = set(space.names)
    for trial in prior.trials:
        stats.total += 1
        if not trial.succeeded:
            stats.not_succeeded += 1
            continue
        y = parse_metric_value(trial.metrics.get(metric, ""))
        if y is None:
            stats.no_objective += 1
            continue
        missing = sorted(names - set(trial.assignment))
        if missing:
            for name in missing:
                stats.missing[name] = stats.missing.get(name, 0) + 1
            continue
        try:
            raw = space.raw({k: v for k, v in trial.assignment.items() if k in names})
        except (ValueError, ArithmeticError) as exc:  # e.g. decimal.Overflow on an absurd number
            stats.n_outside += 1
            if len(stats.outside) < _EXAMPLES_PER_REASON:
                stats.outside.append(str(exc))
            continue
        raws.append(space.canonical(raw))
        losses.append(-y if maximize else y)
    # A canonical order, so the reply does not depend on the order the source listed the trials in.
    order = sorted(range(len(raws)), key=lambda i: (SearchSpace.raw_key(raws[i]), losses[i]))
    return [raws[i] for i in order], [losses[i] for i in order]


def _cap(raws: list[np.ndarray], losses: list[float], keep: int, seed_parts: list) -> list[int]:
    """Indices of at most ``keep`` rows: the best half of ``keep`` and a seeded random rest."""
    n = len(losses)
    if n <= keep:
        return list(range(n))
    order = np.argsort(np.asarray(losses), kind="stable")
    best = order[: keep // 2]
    rest = order[keep // 2 :]
    extra = rng_from("warm-cap", *seed_parts).choice(rest, size=keep - len(best), replace=False)
    return sorted(int(i) for i in np.concatenate([best, extra]))


def prior_data(
    space: SearchSpace,
    priors: Sequence[PriorExperiment],
    objective: api_pb2.ObjectiveSpec,
    max_trials: int,
    log: bool = True,
) -> PriorData:
    """The usable prior trials of ``priors`` in this space (see the module doc); logs one line per
    experiment (INFO when trials were dropped, DEBUG otherwise)."""
    maximize = objective.type == api_pb2.MAXIMIZE
    metric = objective.objective_metric_name
    per_source: list[tuple[list[np.ndarray], list[float]]] = []
    stats: list[PriorStats] = []
    for prior in priors:
        st = PriorStats(prior.ref)
        per_source.append(_usable_rows(space, prior, metric, maximize, st))
        stats.append(st)
    total = sum(len(losses) for _, losses in per_source)
    raws_all: list[np.ndarray] = []
    losses_all: list[float] = []
    source: list[int] = []
    for i, ((raws, losses), st) in enumerate(zip(per_source, stats, strict=True)):
        keep = len(losses) if total <= max_trials else max(1, (max_trials * len(losses)) // total)
        idx = _cap(raws, losses, keep, [st.ref, len(losses), keep])
        st.used, st.capped = len(idx), len(losses) - len(idx)
        raws_all.extend(raws[j] for j in idx)
        losses_all.extend(losses[j] for j in idx)
        source.extend([i] * len(idx))
        if log:
            dropped = st.total - st.used
            logger.log(logging.INFO if dropped else logging.DEBUG, "%s", st.describe())
    p = len(space.params)
    raw = np.vstack(raws_all) if raws_all else np.empty((0, p))
    return PriorData(
        refs=tuple(prior.ref for prior in priors),
        raw=raw,
        X=space.encode_raw(raw) if len(raw) else np.empty((0, space.width)),
        source=np.asarray(source, dtype=int),
        losses=np.asarray(losses_all, dtype=float),
        stats=tuple(stats),
    )


#: Transfer check: with at least this many own observations, a prior experiment whose predictions for
#: them rank-correlate negatively with what this experiment measured is left out of the call's model.
TRANSFER_CHECK_MIN_OWN = 4
_TRANSFER_NEIGHBOURS = 3


def drop_unrelated(data: PriorData, X_own: np.ndarray, own_losses: np.ndarray) -> PriorData:  # noqa: N803
    """``data`` without the prior experiments that contradict this experiment's own observations.

    Each prior experiment predicts every own configuration by the mean loss of its nearest prior rows
    (3 nearest, encoded distance); when there are at least ``TRANSFER_CHECK_MIN_OWN`` own observations and
    the Spearman rank correlation between those predictions and the own losses is negative, the prior is
    dropped for this call (logged). Recomputed on every call, so a prior returns when the evidence turns.
    """
    from scipy.stats import spearmanr

    if len(own_losses) < TRANSFER_CHECK_MIN_OWN or not len(data):
        return data
    keep = np.ones(len(data), dtype=bool)
    for i, ref in enumerate(data.refs):
        rows = data.source == i
        if not rows.any():
            continue
        x_prior, y_prior = data.X[rows], data.losses[rows]
        d = ((X_own[:, None, :] - x_prior[None, :, :]) ** 2).sum(axis=2)
        k = min(_TRANSFER_NEIGHBOURS, len(y_prior))
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        predicted = y_prior[nearest].mean(axis=1)
        if np.ptp(predicted) < 1e-12 or np.ptp(own_losses) < 1e-12:
            continue
        rho = float(spearmanr(predicted, own_losses).statistic)
        if rho < 0:
            keep &= ~rows
            logger.info(
                "warm start: leaving out %s for this call: its outcomes rank-correlate negatively "
                "(Spearman %.2f) with the %d trials of this experiment (negative transfer)",
                ref,
                rho,
                len(own_losses),
            )
    if keep.all():
        return data
    return PriorData(
        refs=data.refs,
        raw=data.raw[keep],
        X=data.X[keep],
        source=data.source[keep],
        losses=data.losses[keep],
        stats=data.stats,
    )


def check_usable(data: PriorData) -> None:
    """InvalidArgument when a prior experiment has finished trials with an objective value but none of
    them fits this search space (a renamed parameter or a different space: surely a mistake). The
    message names the experiment, counts and this experiment's parameter names, never a prior's
    parameter or metric values (it reaches this Experiment's status; the prior may be another
    namespace's)."""
    for st in data.stats:
        fitting_candidates = st.total - st.not_succeeded - st.no_objective
        if fitting_candidates > 0 and st.used == 0:
            raise InvalidArgument(
                f"setting warm_start_experiments: none of the {fitting_candidates} succeeded trials of "
                f"experiment {st.ref} fits this search space; {st.describe(examples=False)}. Warm start "
                "matches parameters by name and needs every parameter of this experiment in the prior trials"
            )
