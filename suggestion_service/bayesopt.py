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
   Fantasies make a parallel batch diverse instead of N copies of one point. Before the first own
   observation (possible only under warm start) candidates are ranked by the predicted mean instead.
   The running trials are conditioned on in one refit; each pick after that updates the candidates'
   posterior by a rank-one step (``Surrogate.fantasy_posterior``), so a pick costs O(n x candidates),
   not a refit (1000 picks over 500 trials: seconds, not minutes).
4. *Deadline.* Inside ``deadline.using_deadline(t)`` (the gRPC handler passes its RPC deadline less a margin)
   a batch still being picked at ``time.monotonic() >= t`` is completed from the candidate pool in its
   quasi-random order, with the same de-duplication, and a warning is logged: Katib rejects a reply
   with fewer assignments than asked and would resend the same request after DEADLINE_EXCEEDED, so a
   complete, partly unmodelled reply in time beats none. Such a reply depends on timing; every other
   reply is deterministic.

Warm start (``priors``): the prior experiments' trials join the fit data with one indicator column per
prior experiment (0 for this experiment's rows), whose ARD length scale (GP) or splits (forest) learn
how far the prior outcomes carry over; each source's losses are transformed on their own (ranks per
experiment), so different scales mix. Priors never count as this experiment's trials (design count,
de-duplication, exhaustion, failed-trial imputation) and never block a configuration. With at least
``default_initial_points`` prior points the automatic design shrinks to ``WARM_INITIAL_POINTS`` and
the model is used from the first call (see docs/service-algorithms.md, "Warm start").
"""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from suggestion_service import acquisition, candidates
from suggestion_service.deadline import past_deadline
from suggestion_service.history import History
from suggestion_service.settings import Settings
from suggestion_service.space import SearchSpace
from suggestion_service.surrogates import (
    FantasyPosterior,
    ForestSurrogate,
    GPSurrogate,
    Surrogate,
    transform_outputs,
)
from suggestion_service.warm_start import PriorData

logger = logging.getLogger(__name__)

_REFINE_TOP = 8
_REFINE_INCUMBENTS = 3
_REFINE_PER_CENTER = 24
_SHORTLIST = 256
#: Automatic design size when enough prior points are available (see ``initial_points``); chosen with
#: bench/warm_start.py (docs/benchmarks.md, section warm-start).
WARM_INITIAL_POINTS = 0


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


def warm_ready(space: SearchSpace, priors: PriorData | None) -> bool:
    """True when the prior points can replace the space-filling design: at least as many as the cold
    design would give the first model (``default_initial_points``)."""
    return priors is not None and len(priors) >= max(2, default_initial_points(space))


def initial_points(space: SearchSpace, settings: Settings, priors: PriorData | None) -> int:
    """Design size: ``n_initial_points`` if set; else ``WARM_INITIAL_POINTS`` when ``warm_ready``; else
    ``default_initial_points``."""
    if settings.n_initial_points:
        return settings.n_initial_points
    return WARM_INITIAL_POINTS if warm_ready(space, priors) else default_initial_points(space)


def make_surrogate(
    settings: Settings, seed: int, task_columns: int = 0, n_own: int = 0, n_own_observed: int = 0
) -> Surrogate:
    """The model for ``settings.algorithm``. Warm start: ``task_columns`` indicator columns come last,
    the first ``n_own`` fit rows are this experiment's, and the task length scales stay fixed while
    fewer than two of them (``n_own_observed``) are real observations."""
    if settings.algorithm == "surrogate-gp":
        return GPSurrogate(
            random_state=seed,
            restarts=settings.gp_restarts,
            task_columns=task_columns,
            fix_task_length_scale=task_columns > 0 and n_own_observed < 2,
            keep_first=n_own if task_columns else 0,
        )
    if settings.algorithm == "surrogate-rf":
        return ForestSurrogate(random_state=seed, n_trees=settings.n_trees, kind=settings.forest_kind)
    raise ValueError(f"{settings.algorithm!r} is not a surrogate algorithm")


def _prior_incumbents(priors: PriorData | None, y_prior: np.ndarray | None) -> list[np.ndarray]:
    """The best prior rows (by transformed output), as local-refinement centres after the own ones."""
    if priors is None or y_prior is None or not len(priors):
        return []
    order = np.argsort(y_prior, kind="stable")[:_REFINE_INCUMBENTS]
    return [priors.raw[i] for i in order]


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


def fit_data(
    space: SearchSpace, history: History, settings: Settings, priors: PriorData | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Encoded fit rows (own observed, own failed, priors; ``k`` indicator columns appended) and their
    transformed outputs (own losses, failed imputed with the worst own loss, transformed together;
    each prior experiment's losses transformed on their own)."""
    n_obs = len(history.observed)
    X_parts = [np.vstack([o.x for o in history.observed])] if n_obs else []
    y_parts: list[np.ndarray] = []
    impute = settings.failed_trials == "worst" and len(history.failed_raw) > 0
    if n_obs:
        loss = history.losses()
        if impute:
            loss = np.concatenate([loss, np.full(len(history.failed_raw), loss.max())])
        y_parts.append(transform_outputs(loss, settings.output_transform))
    if impute:
        X_parts.append(space.encode_raw(history.failed_raw))
    if k:
        X_own = np.vstack(X_parts) if X_parts else np.empty((0, space.width))
        X_parts = [np.hstack([X_own, np.zeros((len(X_own), k))])]
        prior_y = np.empty(len(priors))  # type: ignore[arg-type]
        for i in range(k):
            rows = priors.source == i  # type: ignore[union-attr]
            prior_y[rows] = transform_outputs(priors.losses[rows], settings.output_transform)  # type: ignore[union-attr]
        if impute and not n_obs:  # no own loss to impute with: the worst prior score
            y_parts.append(np.full(len(history.failed_raw), float(prior_y.max())))
        X_parts.append(np.hstack([priors.X, np.eye(k)[priors.source]]))  # type: ignore[union-attr]
        y_parts.append(prior_y)
    return np.vstack(X_parts), np.concatenate(y_parts)


def surrogate_search(
    space: SearchSpace,
    history: History,
    settings: Settings,
    n: int,
    rng: np.random.Generator,
    priors: PriorData | None = None,
) -> Picks:
    """Propose up to ``n`` unseen configurations (see the module docstring)."""
    seen = history.seen_keys()
    pool = candidates.pool(space, rng, settings.n_candidates, seen)
    picks: list[np.ndarray] = []
    tried_raw = np.vstack([history.observed_raw(), history.pending_raw, history.failed_raw])
    if priors is not None and not len(priors):
        priors = None
    k = priors.n_sources if priors is not None else 0

    def encode(raws: np.ndarray) -> np.ndarray:
        X = space.encode_raw(raws)
        return np.hstack([X, np.zeros((len(X), k))]) if k else X

    n_init = initial_points(space, settings, priors)
    n_tried = len(history.observed) + len(history.pending) + len(history.failed)
    model_ready = len(history.observed) >= 2 or warm_ready(space, priors)
    n_design = n if not model_ready else min(n, max(0, n_init - n_tried))
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
    X_fit, y_fit = fit_data(space, history, settings, priors, k)
    n_obs = len(history.observed)
    n_own = len(X_fit) - (len(priors) if priors is not None else 0)
    model = make_surrogate(settings, seed, k, n_own, n_obs).fit(X_fit, y_fit)
    fit_seconds = time.perf_counter() - t0
    X_pool = encode(pool)
    # The incumbent: the best own observation; before the first one (warm start), the best prediction.
    best = float(y_fit[:n_obs].min()) if n_obs else float(model.predict(X_pool)[0].min())
    # Before the first own observation (warm start) the picks follow the model's mean: the prior's best
    # region first (expected improvement over a predicted incumbent would chase the prior's gaps instead).
    exploit = not n_obs

    lie = float(np.mean(y_fit)) if settings.batch_strategy == "constant_liar" else None

    def score(mu: np.ndarray, sd: np.ndarray, log_cost: np.ndarray | None) -> np.ndarray:
        # reads ``best`` at call time
        if exploit:
            return -mu
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

    def acquire(current: Surrogate, X: np.ndarray, log_cost: np.ndarray | None) -> np.ndarray:
        return score(*current.predict(X), log_cost)

    # Running trials and this reply's design picks are fantasised (all at once, by the fitted model) and
    # conditioned on in one refit before the first model pick.
    current = model
    earlier = [r for r in history.pending_raw] + picks
    if earlier:
        t1 = time.perf_counter()
        X_earlier = encode(np.vstack(earlier))
        y_earlier = model.predict(X_earlier)[0] if lie is None else np.full(len(X_earlier), lie)
        current = model.conditioned(np.vstack([X_fit, X_earlier]), np.concatenate([y_fit, y_earlier]))
        fit_seconds += time.perf_counter() - t1
        best = min(best, float(y_earlier.min()))  # a believed fantasy is an incumbent too

    log_cost = (
        _cost_log_predictions(history, space.encode_raw(pool), seed)
        if settings.acquisition == "ei_per_cost"
        else None
    )
    acq = acquire(current, X_pool, log_cost)
    if not candidates.is_enumerable(space):  # local refinement around the best candidates and incumbents
        top = pool[np.argsort(-acq, kind="stable")[:_REFINE_TOP]]
        incumbents = np.vstack(
            [top[:0]]
            + [o.raw for o in history.best_first()[:_REFINE_INCUMBENTS]]
            + _prior_incumbents(priors, y_fit[len(y_fit) - len(priors) :] if priors is not None else None)
        )[:_REFINE_INCUMBENTS]
        taken = seen | {space.raw_key(r) for r in picks}
        if space.is_finite():  # never score (and so never pick) one configuration twice
            taken |= {space.raw_key(r) for r in pool}
        local = candidates.refine(space, rng, np.vstack([top, incumbents]), _REFINE_PER_CENTER, taken)
        if len(local):
            X_local = encode(local)
            local_cost = (
                _cost_log_predictions(history, space.encode_raw(local), seed)
                if log_cost is not None
                else None
            )
            pool, X_pool = np.vstack([pool, local]), np.vstack([X_pool, X_local])
            acq = np.concatenate([acq, acquire(current, X_local, local_cost)])
            if log_cost is not None and local_cost is not None:
                log_cost = np.concatenate([log_cost, local_cost])

    # The first pick maximises over every candidate; later picks re-score a shortlist of the best
    # candidates under the posterior updated with the fantasised earlier picks.
    shortlist = np.argsort(-acq, kind="stable")[: max(_SHORTLIST, 4 * remaining)]
    available = np.ones(len(pool), dtype=bool)
    # Pool rows are raw values; a pick is canonicalised (continuous doubles rounded to the strings Katib
    # gets), so two rows can become one assignment: every pick is checked against everything tried and
    # every earlier pick, in any space, and a clash moves on to the next-best row.
    taken_keys = seen | {space.raw_key(r) for r in picks}
    posterior: FantasyPosterior | None = None
    for step in range(remaining):
        if step and past_deadline():
            rest = _fill_from_pool(space, pool, available, taken_keys, remaining - step)
            logger.warning(
                "batch of %d: deadline reached after %d model picks; %d finished from the candidate pool",
                n,
                len(picks),
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
                j = int(idx[int(np.argmax(score(*posterior.predict_candidates(idx), cost)))])  # type: ignore[union-attr]
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
            t1 = time.perf_counter()
            if posterior is None:
                posterior = current.fantasy_posterior(X_pool, capacity=remaining - step - 1)
            best = min(best, posterior.add(encode(raw[None, :])[0], lie))
            fit_seconds += time.perf_counter() - t1
    return Picks(picks, fit_seconds=fit_seconds)


def _fill_from_pool(
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
