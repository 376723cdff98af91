"""The four algorithms as functions (space, history, settings, n) -> n raw configurations.

* ``grid``: every grid point once, in a shuffled order fixed by (experiment name, random_state).
* ``random``: independent draws honouring step and log scales; in a finite space drawn without
  replacement while unseen configurations remain.
* ``surrogate-gp`` / ``surrogate-rf``: ``bayesopt.surrogate_search``.

When a finite space has fewer unseen configurations than asked, the shortfall is filled with
configurations already tried -- best observed first, then running, then failed ones -- because Katib
rejects a reply with fewer assignments than requested; the result is flagged ``exhausted``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from suggestion_service import bayesopt
from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.errors import InvalidArgument
from suggestion_service.history import History
from suggestion_service.prior_math import PriorData
from suggestion_service.seeding import rng_from
from suggestion_service.settings import Settings
from suggestion_service.space import ENUMERATE_MAX, SearchSpace

logger = logging.getLogger(__name__)

_RANDOM_REJECTION_ROUNDS = 20


@dataclass
class Proposal:
    """``n`` raw rows plus what happened while choosing them."""

    raws: list[np.ndarray]
    exhausted: bool
    fit_seconds: float


def check_grid(space: SearchSpace) -> int:
    """The grid size; InvalidArgument if a DOUBLE has no step or the grid is too large to enumerate."""
    missing = space.continuous_names()
    if missing:
        raise InvalidArgument(
            f"algorithm grid needs a step for every double parameter; no feasibleSpace.step for {missing}"
        )
    size = int(space.size())  # type: ignore[arg-type]
    if size > ENUMERATE_MAX:
        raise InvalidArgument(
            f"the grid has {size} configurations; algorithm grid supports at most {ENUMERATE_MAX}"
        )
    return size


def grid(
    space: SearchSpace, history: History, settings: Settings, n: int, experiment_name: str
) -> list[np.ndarray]:
    """The first ``n`` unseen grid points in the experiment's fixed shuffled order."""
    size = check_grid(space)
    order = rng_from("grid-order", experiment_name, settings.random_state).permutation(size)
    seen = history.seen_keys()
    if seen:
        seen_flat = space.flat_indices(np.array(sorted(seen), dtype=float))
        order = order[~np.isin(order, seen_flat)]
    return list(space.raws_of_indices(order[:n]))


def random_search(space: SearchSpace, history: History, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random draws; distinct and unseen in finite spaces while unseen configurations remain."""
    if not space.is_finite():
        raws = space.sample_raw(rng.random((n, len(space.params))))
        return [space.canonical(r) for r in raws]
    taken = set(history.seen_keys())
    picks: list[np.ndarray] = []
    for _ in range(_RANDOM_REJECTION_ROUNDS):
        if len(picks) >= n:
            break
        for row in space.sample_raw(rng.random((4 * (n - len(picks)), len(space.params)))):
            key = space.raw_key(row)
            if key not in taken:
                taken.add(key)
                picks.append(row)
                if len(picks) == n:
                    break
    size = int(space.size())  # type: ignore[arg-type]
    if len(picks) < n and size <= ENUMERATE_MAX:  # rejection failed: draw from the unseen rest
        taken_flat = space.flat_indices(np.array(sorted(taken), dtype=float))
        rest = rng.permutation(np.setdiff1d(np.arange(size), taken_flat))[: n - len(picks)]
        picks.extend(space.raws_of_indices(rest))
    return picks


def _fill(space: SearchSpace, history: History, picks: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Pad ``picks`` to ``n`` by re-proposing tried configurations: best observed, running, failed."""
    sources = [o.raw for o in history.best_first()] + list(history.pending_raw) + list(history.failed_raw)
    pool: list[np.ndarray] = []
    keys: set[tuple] = set()
    for row in sources + list(picks):
        k = space.raw_key(row)
        if k not in keys:
            keys.add(k)
            pool.append(row)
    if not pool:  # impossible unless n > 0 and the space is empty, which validation forbids
        raise RuntimeError("no configuration to re-propose")
    out = list(picks)
    i = 0
    while len(out) < n:
        out.append(pool[i % len(pool)])
        i += 1
    return out


def propose(
    space: SearchSpace,
    history: History,
    settings: Settings,
    n: int,
    rng: np.random.Generator,
    experiment_name: str,
    priors: PriorData | None = None,
    *,
    deadline: Deadline = NO_DEADLINE,
    parts: bayesopt.SearchParts = bayesopt.DEFAULT_PARTS,
) -> Proposal:
    """Exactly ``n`` raw rows from ``settings.algorithm``, padded (and flagged) if the space ran out.
    ``priors`` (warm start), ``deadline`` and ``parts`` (model and acquisition) only concern the
    surrogate algorithms (``bayesopt.surrogate_search``)."""
    fit_seconds = 0.0
    if settings.algorithm == "grid":
        picks = grid(space, history, settings, n, experiment_name)
    elif settings.algorithm == "random":
        picks = random_search(space, history, n, rng)
    else:
        result = bayesopt.surrogate_search(
            space, history, settings, n, rng, priors, deadline=deadline, parts=parts
        )
        picks, fit_seconds = result.raws, result.fit_seconds
    exhausted = len(picks) < n
    if exhausted:
        logger.warning(
            "search space exhausted: %s configurations, %d tried, %d requested, %d unseen left; "
            "re-proposing the best tried configurations",
            space.size(),
            len(history.seen_keys()),
            n,
            len(picks),
        )
        picks = _fill(space, history, picks, n)
    return Proposal(raws=picks, exhausted=exhausted, fit_seconds=fit_seconds)
