"""Proposing a batch from a fitted model: the second public seam of the surrogate search.

``propose_batch(fitted, history, settings, pool, n, rng, acquire)`` picks ``n`` unseen configurations
from the candidate ``pool`` with the ``Acquisition`` ``acquire``:

1. The running trials and this reply's earlier picks (``earlier``: the design picks) are fantasised
   (kriging believer: the model's mean; constant liar: the mean transformed output) and conditioned on
   in one refit with fixed hyperparameters.
2. The candidates are scored; outside enumerable spaces, local candidates around the best candidates
   and incumbents (own, then prior) join the pool, and then the acquisition is climbed from the best
   ``CLIMB_STARTS`` of them (``acq_optimize.maximise``: L-BFGS-B on the continuous dimensions of a
   GP, coordinate line search on the discrete ones); the climbed rows join the pool too. Not under
   ``ei_per_cost``, whose cost model is fitted per call on the pool.
3. The first pick maximises the acquisition over every candidate; each later pick updates the
   posterior of a shortlist by a rank-one step (``Surrogate.fantasy_posterior``) with the fantasised
   pick and re-scores it. Every pick is canonicalised and checked against everything tried and picked.
4. Once ``deadline`` has passed, the rest of the batch comes from the pool in its quasi-random order
   (logged as a warning): Katib rejects a short reply, so a complete, partly unmodelled one in time
   beats none. Candidates are scored in chunks of ``SCORE_CHUNK``; a deadline passed while scoring
   drops the unscored chunks (at least ``max(SCORE_CHUNK, 4 n)`` candidates stay).

Before the first own observation (warm start) the candidates are ranked by the predicted mean
(``acquisition.predicted_mean``) instead of ``acquire``.
"""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix)

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from suggestion_service import acq_optimize, candidates
from suggestion_service.acquisition import Acquisition, predicted_mean
from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.history import History
from suggestion_service.model_fit import FittedModel, cost_log_predictions
from suggestion_service.settings import Settings
from suggestion_service.space import SearchSpace
from suggestion_service.surrogates import FantasyPosterior, Surrogate

#: The deadline warning keeps the logger name it has always had (log filters select on it).
logger = logging.getLogger("suggestion_service.bayesopt")

_REFINE_TOP = 8
_REFINE_INCUMBENTS = 3
_REFINE_PER_CENTER = 24
_SHORTLIST = 256
#: Best distinct candidates the acquisition is climbed from (``acq_optimize.maximise``).
CLIMB_STARTS = 8
#: Candidates scored per step (the GP's cross-covariance of one chunk: SCORE_CHUNK x fit rows).
SCORE_CHUNK = 4096


@dataclass
class Picks:
    """Raw rows chosen by an algorithm (possibly fewer than asked when a finite space runs out)."""

    raws: list[np.ndarray]
    fit_seconds: float = 0.0


@dataclass
class _Scored:
    """The candidate pool (raw and encoded rows), their acquisition values and predicted log costs."""

    pool: np.ndarray
    X: np.ndarray
    acq: np.ndarray
    log_cost: np.ndarray | None

    def extended(
        self, raws: np.ndarray, X: np.ndarray, acq: np.ndarray, log_cost: np.ndarray | None
    ) -> _Scored:
        """These candidates followed by ``raws`` (encoded ``X``, scores ``acq``); predicted log costs
        are kept only when both parts have them."""
        both = self.log_cost is not None and log_cost is not None
        return _Scored(
            np.vstack([self.pool, raws]),
            np.vstack([self.X, X]),
            np.concatenate([self.acq, acq]),
            np.concatenate([self.log_cost, log_cost]) if both else None,  # type: ignore[list-item]
        )


def score_candidates(
    model: Surrogate, X: np.ndarray, acquire: Acquisition, best: float, log_cost: np.ndarray | None = None
) -> np.ndarray:
    """Acquisition values of the encoded candidate rows ``X`` under ``model``."""
    return acquire(*model.predict(X), best, log_cost)


def _score_in_chunks(
    model: Surrogate,
    X: np.ndarray,
    acquire: Acquisition,
    best: float,
    log_cost: np.ndarray | None,
    deadline: Deadline,
    keep: int,
) -> np.ndarray:
    """``score_candidates`` over ``X`` in chunks of ``SCORE_CHUNK`` rows (bounded working memory);
    once ``deadline`` has passed and at least ``keep`` rows are scored, the rest are left unscored
    (the result is then shorter than ``X``)."""
    if len(X) <= SCORE_CHUNK:
        return score_candidates(model, X, acquire, best, log_cost)
    parts: list[np.ndarray] = []
    for start in range(0, len(X), SCORE_CHUNK):
        if start >= keep and deadline.passed():
            break
        stop = start + SCORE_CHUNK
        cost = None if log_cost is None else log_cost[start:stop]
        parts.append(score_candidates(model, X[start:stop], acquire, best, cost))
    return np.concatenate(parts)


def _condition_on_earlier(
    fitted: FittedModel, earlier: Sequence[np.ndarray], lie: float | None, best: float
) -> tuple[Surrogate, float]:
    """The model conditioned on the fantasised ``earlier`` raw rows (one refit), and the incumbent
    (a believed fantasy is an incumbent too)."""
    if not earlier:
        return fitted.model, best
    X_earlier = fitted.encode(np.vstack(earlier))
    y_earlier = fitted.model.predict(X_earlier)[0] if lie is None else np.full(len(X_earlier), lie)
    current = fitted.model.conditioned(
        np.vstack([fitted.X, X_earlier]), np.concatenate([fitted.y, y_earlier])
    )
    return current, min(best, float(y_earlier.min()))


def _prior_incumbents(fitted: FittedModel) -> list[np.ndarray]:
    """The best prior rows (by transformed output), as local-refinement centres after the own ones."""
    prior_y = fitted.prior_y
    if fitted.priors is None or prior_y is None or not len(fitted.priors):
        return []
    order = np.argsort(prior_y, kind="stable")[:_REFINE_INCUMBENTS]
    return [fitted.priors.raw[i] for i in order]


def _refine(
    fitted: FittedModel,
    history: History,
    rng: np.random.Generator,
    scored: _Scored,
    taken: set[tuple],
    score: Acquisition,
    model: Surrogate,
    best: float,
) -> _Scored:
    """``scored`` plus local candidates around its best rows and the incumbents (not in ``taken``)."""
    space = fitted.space
    top = scored.pool[np.argsort(-scored.acq, kind="stable")[:_REFINE_TOP]]
    incumbents = np.vstack(
        [top[:0]] + [o.raw for o in history.best_first()[:_REFINE_INCUMBENTS]] + _prior_incumbents(fitted)
    )[:_REFINE_INCUMBENTS]
    local = candidates.refine(space, rng, np.vstack([top, incumbents]), _REFINE_PER_CENTER, taken)
    if not len(local):
        return scored
    X_local = fitted.encode(local)
    local_cost = (
        cost_log_predictions(history, space.encode_raw(local), fitted.seed)
        if scored.log_cost is not None
        else None
    )
    return scored.extended(
        local, X_local, score_candidates(model, X_local, score, best, local_cost), local_cost
    )


def _climb(
    fitted: FittedModel,
    scored: _Scored,
    taken: set[tuple],
    score: Acquisition,
    model: Surrogate,
    best: float,
) -> _Scored:
    """``scored`` plus the canonical rows climbed from its ``CLIMB_STARTS`` best distinct rows (those
    not in ``taken`` and new), scored like the rest; unchanged under a cost model (see the module
    docstring)."""
    if scored.log_cost is not None or not len(scored.pool):
        return scored
    space = fitted.space
    order = np.argsort(-scored.acq, kind="stable")[: 4 * CLIMB_STARTS]
    starts = candidates.exclude(space, scored.pool[order], set())[:CLIMB_STARTS]
    if not len(starts):
        return scored

    def values(X: np.ndarray) -> np.ndarray:
        return score_candidates(model, X, score, best)

    climbed = acq_optimize.maximise(space, starts, fitted.encode, values, smooth=model.smooth)
    climbed = np.vstack([space.canonical(r) for r in climbed])
    pool_keys = {space.raw_key(r) for r in scored.pool} if space.is_finite() else set()
    climbed = candidates.exclude(space, climbed, taken | pool_keys)
    if not len(climbed):
        return scored
    X_new = fitted.encode(climbed)
    return scored.extended(climbed, X_new, values(X_new), None)


def propose_batch(
    fitted: FittedModel,
    history: History,
    settings: Settings,
    pool: np.ndarray,
    n: int,
    rng: np.random.Generator,
    acquire: Acquisition,
    *,
    earlier: Sequence[np.ndarray] = (),
    deadline: Deadline = NO_DEADLINE,
) -> Picks:
    """Up to ``n`` canonical raw rows from ``pool`` (raw candidate rows, unseen), none tried, in
    ``earlier`` or repeated (see the module docstring); ``fit_seconds``: time spent conditioning."""
    space = fitted.space
    t0 = time.perf_counter()
    X_pool = fitted.encode(pool)
    n_obs = fitted.n_observed
    # The incumbent: the best own observation; before the first one (warm start), the best prediction.
    best = float(fitted.y[:n_obs].min()) if n_obs else float(fitted.model.predict(X_pool)[0].min())
    # Before the first own observation (warm start) the picks follow the model's mean: the prior's best
    # region first (expected improvement over a predicted incumbent would chase the prior's gaps instead).
    score = acquire if n_obs else predicted_mean
    lie = float(np.mean(fitted.y)) if settings.batch_strategy == "constant_liar" else None
    current, best = _condition_on_earlier(fitted, [*history.pending_raw, *earlier], lie, best)
    fit_seconds = time.perf_counter() - t0 if len(history.pending_raw) or len(earlier) else 0.0

    log_cost = (
        cost_log_predictions(history, space.encode_raw(pool), fitted.seed)
        if settings.acquisition == "ei_per_cost"
        else None
    )
    acq = _score_in_chunks(current, X_pool, score, best, log_cost, deadline, keep=max(SCORE_CHUNK, 4 * n))
    if len(acq) < len(pool):  # the deadline passed while scoring: the unscored candidates are dropped
        logger.warning("deadline reached while scoring: %d of %d candidates scored", len(acq), len(pool))
        pool, X_pool = pool[: len(acq)], X_pool[: len(acq)]
        log_cost = None if log_cost is None else log_cost[: len(acq)]
    scored = _Scored(pool, X_pool, acq, log_cost)
    seen = history.seen_keys()
    if not candidates.is_enumerable(space):  # local refinement around the best candidates and incumbents
        taken = seen | {space.raw_key(r) for r in earlier}
        if space.is_finite():  # never score (and so never pick) one configuration twice
            taken |= {space.raw_key(r) for r in pool}
        scored = _refine(fitted, history, rng, scored, taken, score, current, best)
        scored = _climb(fitted, scored, taken, score, current, best)
    picks, loop_seconds = _pick(
        scored, current, score, best, lie, n, seen | {space.raw_key(r) for r in earlier}, fitted, deadline,
        len(earlier),
    )  # fmt: skip
    return Picks(picks, fit_seconds=fit_seconds + loop_seconds)


def _pick(
    scored: _Scored,
    current: Surrogate,
    score: Acquisition,
    best: float,
    lie: float | None,
    n: int,
    taken_keys: set[tuple],
    fitted: FittedModel,
    deadline: Deadline,
    n_earlier: int,
) -> tuple[list[np.ndarray], float]:
    """The pick loop: the first pick maximises over every candidate; later picks re-score a shortlist
    of the best candidates under the posterior updated with the fantasised earlier picks. Pool rows
    are raw values; a pick is canonicalised (continuous doubles rounded to the strings Katib gets), so
    two rows can become one assignment: a clash with ``taken_keys`` (updated) moves on to the next row."""
    space, pool, acq, log_cost = fitted.space, scored.pool, scored.acq, scored.log_cost
    shortlist = np.argsort(-acq, kind="stable")[: max(_SHORTLIST, 4 * n)]
    available = np.ones(len(pool), dtype=bool)
    posterior: FantasyPosterior | None = None
    picks: list[np.ndarray] = []
    seconds = 0.0
    for step in range(n):
        if step and deadline.passed():
            rest = fill_from_pool(space, pool, available, taken_keys, n - step)
            logger.warning(
                "batch of %d: deadline reached after %d model picks; %d finished from the candidate pool",
                n_earlier + n,
                n_earlier + len(picks),
                len(rest),
            )
            picks.extend(rest)
            break
        raw = None
        while raw is None and available.any():
            if step == 0:
                idx = np.flatnonzero(available)
                j = int(idx[int(np.argmax(acq[idx]))])
            else:
                idx = shortlist[available[shortlist]]
                if len(idx) == 0:  # shortlist used up by clashes: score what is left of the pool
                    idx = np.flatnonzero(available)
                cost = None if log_cost is None else log_cost[idx]
                j = int(idx[int(np.argmax(score(*posterior.predict_candidates(idx), best, cost)))])  # type: ignore[union-attr]
            available[j] = False
            candidate = space.canonical(pool[j])
            key = space.raw_key(candidate)
            if key not in taken_keys:
                taken_keys.add(key)
                raw = candidate
        if raw is None:
            break
        picks.append(raw)
        if step + 1 < n:
            t1 = time.perf_counter()
            if posterior is None:
                posterior = current.fantasy_posterior(scored.X, capacity=n - step - 1)
            best = min(best, posterior.add(fitted.encode(raw[None, :])[0], lie))
            seconds += time.perf_counter() - t1
    return picks, seconds


def fill_from_pool(
    space: SearchSpace, pool: np.ndarray, available: np.ndarray, taken_keys: set[tuple], k: int
) -> list[np.ndarray]:
    """Up to ``k`` canonical rows of the unused ``pool`` rows in pool order (scrambled Sobol or a
    shuffled enumeration, then local candidates), skipping assignments in ``taken_keys`` (updated)."""
    out: list[np.ndarray] = []
    for j in np.flatnonzero(available):
        if len(out) == k:
            break
        available[j] = False
        candidate = space.canonical(pool[j])
        key = space.raw_key(candidate)
        if key not in taken_keys:
            taken_keys.add(key)
            out.append(candidate)
    return out
