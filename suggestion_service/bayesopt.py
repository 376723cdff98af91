"""The surrogate-model search (surrogate-gp / surrogate-rf): design, fit, fantasise, acquire.

One call proposes ``n`` configurations:

1. *Initial design.* While fewer than ``n_initial_points`` trials exist (completed, running or failed)
   -- or fewer than two completed ones, when no model can be fitted -- configurations come from a
   greedy maximin design over the candidates, away from every configuration already tried and
   covering every value of the parameters with few values (``candidates.space_filling``).
2. *Model.* Observed losses (failed trials imputed with the worst observed loss, unless
   ``failed_trials=ignore``) are rank-transformed and the surrogate is fitted on the encoded
   configurations.
3. *Batch.* Running trials and the earlier picks of this reply are fantasised (kriging believer: the
   model's mean; constant liar: the mean transformed output), the model is conditioned on them with
   fixed hyperparameters, and the next pick maximises the acquisition over the unseen candidates.
   Fantasies make a parallel batch diverse instead of N copies of one point.
"""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from suggestion_service import acquisition, candidates
from suggestion_service.history import History
from suggestion_service.settings import Settings
from suggestion_service.space import SearchSpace
from suggestion_service.surrogates import ForestSurrogate, GPSurrogate, Surrogate, transform_outputs

_REFINE_TOP = 8
_REFINE_INCUMBENTS = 3
_REFINE_PER_CENTER = 24
_SHORTLIST = 256


@dataclass
class Picks:
    """Raw rows chosen by an algorithm (possibly fewer than asked when a finite space runs out)."""

    raws: list[np.ndarray]
    fit_seconds: float = 0.0


def default_initial_points(space: SearchSpace) -> int:
    """Automatic ``n_initial_points``: clamp(parameters + 1, 2, 5), and at most max(2, ceil(size / 8)).

    d + 1 points are the fewest that let a model see every parameter vary once; more than 5 random
    trials are wasted on the small Katib grids this service targets, and the size / 8 cap keeps the
    design to about an eighth of a finite space (3 of a 24-point grid instead of skopt's 10 random
    draws, i.e. 40% of the budget). Katib's first call usually asks for ``parallelTrialCount`` points
    with no history at all; those are design points whatever this number is.
    """
    n = min(5, max(2, len(space.params) + 1))
    size = space.size()
    if size is not None:
        n = min(n, max(2, math.ceil(size / 8)))
    return n


def make_surrogate(settings: Settings, seed: int) -> Surrogate:
    """The model for ``settings.algorithm``."""
    if settings.algorithm == "surrogate-gp":
        return GPSurrogate(random_state=seed, restarts=settings.gp_restarts)
    if settings.algorithm == "surrogate-rf":
        return ForestSurrogate(random_state=seed, n_trees=settings.n_trees, kind=settings.forest_kind)
    raise ValueError(f"{settings.algorithm!r} is not a surrogate algorithm")


def _cost_log_predictions(history: History, X_pool: np.ndarray, seed: int) -> np.ndarray | None:
    """Predicted log cost of the candidates from a GP on observed log costs (None if < 2 costs)."""
    rows = [(o.x, o.cost) for o in history.observed if o.cost is not None]
    if len(rows) < 2:
        return None
    X = np.vstack([r[0] for r in rows])
    log_cost = np.log(np.maximum(np.array([r[1] for r in rows], dtype=float), 1e-9))
    if np.ptp(log_cost) < 1e-12:
        return np.full(len(X_pool), float(log_cost[0]))
    model = GPSurrogate(random_state=seed, restarts=0, prior_offset=0.0).fit(X, log_cost)
    mu, _ = model.predict(X_pool)
    return mu


def surrogate_search(
    space: SearchSpace, history: History, settings: Settings, n: int, rng: np.random.Generator
) -> Picks:
    """Propose up to ``n`` unseen configurations (see the module docstring)."""
    seen = history.seen_keys()
    pool = candidates.pool(space, rng, settings.n_candidates, seen)
    picks: list[np.ndarray] = []
    tried_raw = np.vstack([history.observed_raw(), history.pending_raw, history.failed_raw])

    n_init = settings.n_initial_points or default_initial_points(space)
    n_tried = len(history.observed) + len(history.pending) + len(history.failed)
    n_design = n if len(history.observed) < 2 else min(n, max(0, n_init - n_tried))
    if n_design:
        design = candidates.space_filling(space, rng, n_design, tried_raw, pool)
        picks.extend(space.canonical(r) for r in design)
        if space.is_finite():
            pool = candidates.exclude(space, pool, {space.raw_key(r) for r in picks})
    remaining = n - len(picks)
    if remaining <= 0 or len(pool) == 0:
        return Picks(picks)

    t0 = time.perf_counter()
    seed = int(rng.integers(2**31 - 1))
    loss = history.losses()
    X_fit = np.vstack([o.x for o in history.observed])
    if settings.failed_trials == "worst" and len(history.failed_raw):
        X_fit = np.vstack([X_fit, space.encode_raw(history.failed_raw)])
        loss = np.concatenate([loss, np.full(len(history.failed_raw), loss.max())])
    y_fit = transform_outputs(loss, settings.output_transform)
    model = make_surrogate(settings, seed).fit(X_fit, y_fit)
    fit_seconds = time.perf_counter() - t0
    best = float(y_fit[: len(history.observed)].min())

    def fantasy(current: Surrogate, X_new: np.ndarray) -> np.ndarray:
        if settings.batch_strategy == "constant_liar":
            return np.full(len(X_new), float(np.mean(y_fit)))
        return current.predict(X_new)[0]

    def acquire(current: Surrogate, X: np.ndarray, log_cost: np.ndarray | None) -> np.ndarray:
        mu, sd = current.predict(X)  # reads ``best`` at call time
        return acquisition.score(
            settings.acquisition,
            mu,
            sd,
            best,
            xi=settings.xi,
            kappa=settings.kappa,
            log_cost=log_cost,
            cost_exponent=settings.cost_exponent,
        )

    def condition(fant_X: list[np.ndarray], fant_y: list[np.ndarray]) -> Surrogate:
        nonlocal fit_seconds
        t1 = time.perf_counter()
        out = model.conditioned(np.vstack([X_fit, *fant_X]), np.concatenate([y_fit, *fant_y]))
        fit_seconds += time.perf_counter() - t1
        return out

    # Running trials and this reply's design picks are fantasised before the first model pick.
    fant_X: list[np.ndarray] = []
    fant_y: list[np.ndarray] = []
    earlier = [r for r in history.pending_raw] + picks
    if earlier:
        fant_X.append(space.encode_raw(np.vstack(earlier)))
        fant_y.append(fantasy(model, fant_X[0]))
    current = condition(fant_X, fant_y) if fant_X else model
    best = min([best, *[float(v.min()) for v in fant_y]])  # a believed fantasy is an incumbent too

    X_pool = space.encode_raw(pool)
    log_cost = _cost_log_predictions(history, X_pool, seed) if settings.acquisition == "ei_per_cost" else None
    acq = acquire(current, X_pool, log_cost)
    if not candidates.is_enumerable(space):  # local refinement around the best candidates and incumbents
        top = pool[np.argsort(-acq, kind="stable")[:_REFINE_TOP]]
        incumbents = np.vstack([o.raw for o in history.best_first()[:_REFINE_INCUMBENTS]])
        taken = seen | {space.raw_key(r) for r in picks}
        if space.is_finite():  # never score (and so never pick) one configuration twice
            taken |= {space.raw_key(r) for r in pool}
        local = candidates.refine(space, rng, np.vstack([top, incumbents]), _REFINE_PER_CENTER, taken)
        if len(local):
            X_local = space.encode_raw(local)
            local_cost = _cost_log_predictions(history, X_local, seed) if log_cost is not None else None
            pool, X_pool = np.vstack([pool, local]), np.vstack([X_pool, X_local])
            acq = np.concatenate([acq, acquire(current, X_local, local_cost)])
            if log_cost is not None and local_cost is not None:
                log_cost = np.concatenate([log_cost, local_cost])

    # The first pick maximises over every candidate; later picks re-score a shortlist of the best
    # candidates under the model conditioned on the fantasised earlier picks.
    shortlist = np.argsort(-acq, kind="stable")[: max(_SHORTLIST, 4 * remaining)]
    available = np.ones(len(pool), dtype=bool)
    # Pool rows are raw values; a pick is canonicalised (continuous doubles rounded to the strings Katib
    # gets), so two rows can become one assignment: every pick is checked against everything tried and
    # every earlier pick, in any space, and a clash moves on to the next-best row.
    taken_keys = seen | {space.raw_key(r) for r in picks}
    for step in range(remaining):
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
                j = int(idx[int(np.argmax(acquire(current, X_pool[idx], cost)))])
            available[j] = False
            candidate = space.canonical(pool[j])
            key = space.raw_key(candidate)
            if key not in taken_keys:
                taken_keys.add(key)
                raw = candidate
        if raw is None:
            break
        picks.append(raw)
        if step + 1 < remaining:
            x = space.encode_raw(raw[None, :])
            fant_X.append(x)
            fant_y.append(fantasy(current, x))
            best = min(best, float(fant_y[-1].min()))
            current = condition(fant_X, fant_y)
    return Picks(picks, fit_seconds=fit_seconds)
