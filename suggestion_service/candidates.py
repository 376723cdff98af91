"""Candidate configurations for the acquisition step, and the space-filling initial design.

* Finite spaces with at most ``ENUMERATE_LIMIT`` configurations are enumerated exactly (every
  unseen configuration is scored, so the acquisition maximum is exact).
* Larger or continuous spaces: scrambled Sobol points plus uniform draws (``n_candidates`` in all),
  then ``refine`` adds local perturbations around the best-scoring candidates and the incumbents.
* ``space_filling`` is the initial design: greedy maximin that first covers every value of the
  parameters with few values (measured on the benchmark grids: about 5% fewer trials to the best).
"""

# ruff: noqa: N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import math

import numpy as np
from scipy.stats import qmc

from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.space import SearchSpace

ENUMERATE_LIMIT = 20_000
#: Most encoded candidate cells (candidates x encoded width) a call may hold: 16M doubles = 128 MiB per
#: copy of the candidate matrix (a call holds a few), so no accepted request nears the 1 GiB pod limit.
#: ``n_candidates`` x width above it is INVALID_ARGUMENT; a finite space above it is sampled, not
#: enumerated.
MAX_CANDIDATE_CELLS = 16_000_000
_REFINE_SCALES = (0.02, 0.06, 0.15)
_LEVELS_MAX = 8  # parameters with at most this many values get every value into the design early


def is_enumerable(space: SearchSpace) -> bool:
    """True for finite spaces small enough to score every configuration (at most ``ENUMERATE_LIMIT``
    of them and ``MAX_CANDIDATE_CELLS`` encoded cells)."""
    size = space.size()
    return size is not None and size <= ENUMERATE_LIMIT and size * space.width <= MAX_CANDIDATE_CELLS


def exclude(space: SearchSpace, raws: np.ndarray, keys: set[tuple]) -> np.ndarray:
    """Rows of ``raws`` whose key is not in ``keys`` and not repeated (first occurrence kept)."""
    if len(raws) == 0:
        return raws
    kept, seen = [], set(keys)
    for i, row in enumerate(raws):
        k = space.raw_key(row)
        if k not in seen:
            seen.add(k)
            kept.append(i)
    return raws[np.asarray(kept, dtype=int)] if kept else raws[:0]


def sobol_uniform(dim: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points of [0, 1)^dim: a scrambled Sobol sequence (power-of-two prefix) topped up uniformly."""
    m = max(0, math.floor(math.log2(max(n, 1))))
    with np.errstate(all="ignore"):
        sobol = qmc.Sobol(d=dim, scramble=True, seed=rng).random_base2(m)
    sobol = sobol[:n]
    extra = rng.random((n - len(sobol), dim))
    return np.clip(np.vstack([sobol, extra]), 0.0, np.nextafter(1.0, 0.0))


def pool(space: SearchSpace, rng: np.random.Generator, n_candidates: int, seen: set[tuple]) -> np.ndarray:
    """Unseen candidate raw rows, in a seeded random order (so ties break randomly but reproducibly)."""
    if is_enumerable(space):
        raws = space.enumerate_raw()
        if seen:
            seen_flat = space.flat_indices(np.array(sorted(seen), dtype=float))
            raws = raws[~np.isin(np.arange(len(raws)), seen_flat)]
        return raws[rng.permutation(len(raws))]
    raws = space.sample_raw(sobol_uniform(len(space.params), n_candidates, rng))
    if space.is_finite():
        raws = exclude(space, raws, seen)
    return raws


def top_up(
    space: SearchSpace, rng: np.random.Generator, raws: np.ndarray, n: int, seen: set[tuple], rounds: int = 8
) -> np.ndarray:
    """``raws`` (a non-enumerated pool) plus further draws of ``pool`` until it has ``n`` rows (in a
    finite space distinct and unseen ones, so it can stay short when few are left after ``rounds``
    draws)."""
    for _ in range(rounds):
        if len(raws) >= n:
            break
        taken = seen | {space.raw_key(r) for r in raws} if space.is_finite() else seen
        raws = np.vstack([raws, pool(space, rng, n - len(raws), taken)])
    return raws


def refine(
    space: SearchSpace,
    rng: np.random.Generator,
    centers: np.ndarray,
    per_center: int,
    seen: set[tuple],
) -> np.ndarray:
    """Local candidates: ``per_center`` perturbations of each centre row, spread over three step sizes."""
    if len(centers) == 0 or per_center <= 0:
        return np.empty((0, len(space.params)))
    out = []
    reps = max(1, per_center // len(_REFINE_SCALES))
    for scale in _REFINE_SCALES:
        out.append(space.perturb_raw(np.repeat(centers, reps, axis=0), rng, scale))
    raws = np.vstack(out)
    if space.is_finite():
        raws = exclude(space, raws, seen)
    return raws


def space_filling(
    space: SearchSpace,
    rng: np.random.Generator,
    n: int,
    existing_raw: np.ndarray,
    candidates_raw: np.ndarray,
    *,
    deadline: Deadline = NO_DEADLINE,
) -> np.ndarray:
    """Greedy maximin with level coverage: pick ``n`` candidates, each first bringing in as many values
    not tried yet of parameters with at most ``_LEVELS_MAX`` values as possible (so a 3-value learning
    rate gets its middle value too, not only the two extremes that pure maximin prefers), then as far
    as possible (encoded Euclidean distance) from the existing configurations and the earlier picks.
    With nothing existing the first pick is a random candidate. Returns up to ``n`` raw rows (fewer if
    there are fewer candidates). Once ``deadline`` has passed (after the first pick) the rest are the
    unchosen candidates in their (seeded random) order: each greedy pick costs O(candidates x width)."""
    n = min(n, len(candidates_raw))
    if n <= 0:
        return candidates_raw[:0]
    X = space.encode_raw(candidates_raw)
    jitter = rng.random(len(X)) * 1e-9
    min_d = np.full(len(X), np.inf)
    if len(existing_raw):
        E = space.encode_raw(existing_raw)
        for e in E:
            np.minimum(min_d, np.sum((X - e) ** 2, axis=1), out=min_d)
    # Level coverage: for each parameter with few values, which values no configuration has used yet.
    levelled = [i for i, p in enumerate(space.params) if p.count is not None and p.count <= _LEVELS_MAX]
    used = [set(np.asarray(existing_raw)[:, i].tolist()) if len(existing_raw) else set() for i in levelled]
    width = float(X.shape[1]) + 1.0  # larger than any squared distance in [0, 1]^width
    chosen: list[int] = []
    for _ in range(n):
        if chosen and deadline.passed():
            rest = np.setdiff1d(np.arange(len(X)), chosen, assume_unique=True)[: n - len(chosen)]
            chosen.extend(int(i) for i in rest)
            break
        if not np.isfinite(min_d).any() and not any(used):
            i = int(rng.integers(len(X)))
        else:
            fresh = np.zeros(len(X))
            for k, col in enumerate(levelled):
                fresh += ~np.isin(candidates_raw[:, col], list(used[k]))
            score = fresh * width + np.where(np.isfinite(min_d), min_d, 0.0) + jitter
            score[chosen] = -1.0
            i = int(np.argmax(score))
        chosen.append(i)
        for k, col in enumerate(levelled):
            used[k].add(float(candidates_raw[i, col]))
        np.minimum(min_d, np.sum((X - X[i]) ** 2, axis=1), out=min_d)
        min_d[chosen] = -1.0
    return candidates_raw[np.asarray(chosen, dtype=int)]
