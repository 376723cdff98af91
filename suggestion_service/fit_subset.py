"""Which rows a GP is fitted on when a history is large: a bounded, deterministic subset.

An exact GP costs O(n^2) memory and O(n^3) time in its fit rows (10,000 trials: 3 GiB and 45 s per
call), so above ``limit`` rows it is fitted on ``limit`` of them:

1. the ``limit / 4`` best rows (lowest transformed loss): the incumbents the acquisition improves on;
2. the ``limit / 4`` most recent observed rows not taken yet (the request's trial order): what the
   search is exploring now;
3. the rest by greedy maximin (farthest point first) over the remaining rows in the encoded space,
   so every region that was tried keeps some evidence. Wide encodings are projected to
   ``_PROJECTED_WIDTH`` columns by a fixed Gaussian matrix first (distances preserved roughly, cost
   bounded).

No randomness beyond the fixed projection: the same history gives the same subset. Below the limit
every row is used, so small histories are fitted exactly as before.
"""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix)

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

_PROJECTED_WIDTH = 32
#: Chosen rows per block of the initial distance computation (bounds its memory: rows x 256 doubles).
_CHUNK = 256


def _spread(X: np.ndarray, chosen: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """``k`` of the ``candidates`` rows of X by greedy maximin away from the ``chosen`` rows."""
    if k <= 0 or not len(candidates):
        return candidates[:0]
    if X.shape[1] > _PROJECTED_WIDTH:
        projection = np.random.default_rng(0).normal(size=(X.shape[1], _PROJECTED_WIDTH))
        X = X @ projection / np.sqrt(_PROJECTED_WIDTH)
    C = X[candidates]
    min_d = np.full(len(C), np.inf)
    for start in range(0, len(chosen), _CHUNK):  # distances to the chosen rows, a block at a time
        block = cdist(C, X[chosen[start : start + _CHUNK]], "sqeuclidean")
        np.minimum(min_d, block.min(axis=1), out=min_d)
    picked: list[int] = []
    for _ in range(min(k, len(C))):
        j = int(np.argmax(min_d))  # the first of equals: deterministic
        picked.append(j)
        np.minimum(min_d, cdist(C, C[j : j + 1], "sqeuclidean")[:, 0], out=min_d)
        min_d[j] = -1.0
    return candidates[np.asarray(picked, dtype=np.int64)]


def select_rows(
    X: np.ndarray, loss: np.ndarray | None, limit: int, n_ordered: int | None = None
) -> np.ndarray:
    """Sorted indices of at most ``limit`` rows of ``X`` (see the module docstring); every index when
    there are no more rows than ``limit``. ``loss``: the rows' transformed losses (None: no "best"
    share, recent and spread only); ``n_ordered``: the first rows are in trial order and recency is
    taken among them (default: all rows; imputed failed rows that follow them enter by spread only)."""
    n = len(X)
    n_ordered = n if n_ordered is None else n_ordered
    if n <= limit:
        return np.arange(n)
    quarter = limit // 4
    best = np.argsort(loss, kind="stable")[:quarter] if loss is not None else np.empty(0, np.int64)
    taken = np.zeros(n, dtype=bool)
    taken[best] = True
    recent = np.flatnonzero(~taken[:n_ordered])[::-1][:quarter]
    taken[recent] = True
    chosen = np.concatenate([best, recent]).astype(np.int64)
    spread = _spread(X, chosen, np.flatnonzero(~taken), limit - len(chosen))
    return np.sort(np.concatenate([chosen, spread]))
