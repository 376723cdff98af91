"""The surrogate-model search (surrogate-gp / surrogate-rf): design, fit, fantasise, acquire.

One call proposes ``n`` configurations (``surrogate_search``), from three public steps that the
surrogate report (``client/surrogate_report.py``) and the benchmark prototypes
(``bench/optimizers/experimental.py``) call too:

1. *Initial design* (``initial_design``). While fewer than ``n_initial_points`` trials exist
   (completed, running or failed) -- or fewer than two completed ones, when no model can be fitted --
   configurations come from a greedy maximin design over the candidates, away from every
   configuration already tried and covering every value of the parameters with few values
   (``candidates.space_filling``).
2. *Model* (``model_fit.fit_model`` -> ``FittedModel``). Observed losses (failed trials imputed with
   the worst observed loss, unless ``failed_trials=ignore``) are rank-transformed and the surrogate
   is fitted on the encoded configurations.
3. *Batch* (``batch.propose_batch``). Running trials and the earlier picks of this reply are
   fantasised (kriging believer: the model's mean; constant liar: the mean transformed output), the
   model is conditioned on them with fixed hyperparameters, and the next pick maximises the
   acquisition over the unseen candidates. Fantasies make a parallel batch diverse instead of N copies
   of one point. Before the first own observation (possible only under warm start) candidates are
   ranked by the predicted mean instead. The running trials are conditioned on in one refit; each pick
   after that updates the candidates' posterior by a rank-one step (``Surrogate.fantasy_posterior``),
   so a pick costs O(n x candidates), not a refit (1000 picks over 500 trials: seconds, not minutes).
4. *Deadline.* A batch still being picked when the ``Deadline`` argument has passed (the gRPC handler
   passes its RPC deadline less a margin) is completed from the candidate pool in its quasi-random
   order, with the same de-duplication, and a warning is logged: Katib rejects a reply with fewer
   assignments than asked and would resend the same request after DEADLINE_EXCEEDED, so a complete,
   partly unmodelled reply in time beats none. Such a reply depends on timing; every other reply is
   deterministic.

The model and the acquisition are arguments (``SearchParts``: a ``SurrogateFactory`` and an
``AcquisitionFactory``); the service uses ``DEFAULT_PARTS`` (``make_surrogate``,
``acquisition.from_settings``), a prototype passes its own.

Warm start (``priors``): the prior experiments' trials join the fit data with one indicator column per
prior experiment (0 for this experiment's rows), whose ARD length scale (GP) or splits (forest) learn
how far the prior outcomes carry over; each source's losses are transformed on their own (ranks per
experiment), so different scales mix. Priors never count as this experiment's trials (design count,
de-duplication, exhaustion, failed-trial imputation) and never block a configuration. With at least
``default_initial_points`` prior points the automatic design shrinks to ``WARM_INITIAL_POINTS`` and
the model is used from the first call (see docs/service-algorithms.md, "Warm start").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from suggestion_service import acquisition, candidates
from suggestion_service.batch import Picks, propose_batch
from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.history import History
from suggestion_service.model_fit import SurrogateFactory, fit_model, make_surrogate
from suggestion_service.prior_math import PriorData
from suggestion_service.settings import Settings
from suggestion_service.space import SearchSpace

#: Automatic design size when enough prior points are available (see ``initial_points``); chosen with
#: bench/warm_start.py (docs/benchmarks.md, section warm-start).
WARM_INITIAL_POINTS = 0


@dataclass(frozen=True)
class SearchParts:
    """The replaceable parts of the surrogate search: how the model is built (``surrogate``, called as
    ``make_surrogate`` is) and how candidates are scored in a call (``acquisition``, called as
    ``acquisition.from_settings`` is)."""

    surrogate: SurrogateFactory = make_surrogate
    acquisition: acquisition.AcquisitionFactory = acquisition.from_settings


#: The service's own parts.
DEFAULT_PARTS = SearchParts()


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


def model_ready(space: SearchSpace, history: History, priors: PriorData | None) -> bool:
    """Whether a model can be fitted: at least two own observations, or enough prior points
    (``warm_ready``); until then every pick is a design pick."""
    return len(history.observed) >= 2 or warm_ready(space, priors)


def initial_design(
    space: SearchSpace,
    history: History,
    settings: Settings,
    n: int,
    rng: np.random.Generator,
    pool: np.ndarray,
    priors: PriorData | None = None,
    *,
    deadline: Deadline = NO_DEADLINE,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The design picks of this call (canonical raw rows; none once the model is ready and the design
    is complete) and the candidate ``pool`` without them (finite spaces). Before a model can be fitted
    every pick is a design pick, and a pool smaller than the request is topped up with more
    candidates; a design still being picked at ``deadline`` is completed in pool order
    (``candidates.space_filling``)."""
    tried_raw = np.vstack([history.observed_raw(), history.pending_raw, history.failed_raw])
    n_init = initial_points(space, settings, priors)
    n_tried = len(history.observed) + len(history.pending) + len(history.failed)
    n_design = n if not model_ready(space, history, priors) else min(n, max(0, n_init - n_tried))
    if not n_design:
        return [], pool
    if n_design > len(pool) and not candidates.is_enumerable(space):
        # More design points asked than candidates drawn (n_candidates < current_request_number):
        # draw more, so the design alone can answer before any model can be fitted.
        pool = candidates.top_up(space, rng, pool, n_design, history.seen_keys())
    design = candidates.space_filling(space, rng, n_design, tried_raw, pool, deadline=deadline)
    picks = [space.canonical(r) for r in design]
    if space.is_finite():
        pool = candidates.exclude(space, pool, {space.raw_key(r) for r in picks})
    return picks, pool


def surrogate_search(
    space: SearchSpace,
    history: History,
    settings: Settings,
    n: int,
    rng: np.random.Generator,
    priors: PriorData | None = None,
    *,
    deadline: Deadline = NO_DEADLINE,
    parts: SearchParts = DEFAULT_PARTS,
) -> Picks:
    """Propose up to ``n`` unseen configurations (see the module docstring)."""
    pool = candidates.pool(space, rng, settings.n_candidates, history.seen_keys())
    if priors is not None and not len(priors):
        priors = None
    picks, pool = initial_design(space, history, settings, n, rng, pool, priors, deadline=deadline)
    remaining = n - len(picks)
    if remaining <= 0 or len(pool) == 0 or not model_ready(space, history, priors):
        return Picks(picks)  # done, out of candidates (padded by the caller), or nothing to fit yet
    seed = int(rng.integers(2**31 - 1))
    fitted = fit_model(space, history, settings, seed, priors, surrogate=parts.surrogate, deadline=deadline)
    acquire = parts.acquisition(settings, history, space)
    batch = propose_batch(
        fitted, history, settings, pool, remaining, rng, acquire, earlier=picks, deadline=deadline
    )
    return Picks(picks + batch.raws, fit_seconds=fitted.fit_seconds + batch.fit_seconds)
