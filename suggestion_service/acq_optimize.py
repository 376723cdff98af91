"""Local maximisation of the acquisition from the best candidates (spaces too large to enumerate).

The candidate pool (scrambled Sobol points plus random perturbations, ``candidates``) finds the
acquisition's good regions but not its maximum within them: in a continuous dimension the best of a
few thousand quasi-random points is typically a few percent of the range away from the optimum, and
on a flat region of the model (the incumbent's plateau) every perturbation scores about the same.
``maximise`` climbs from the best ``starts`` candidates, as Optuna's GP sampler and BoTorch do:

* **Continuous dimensions** (DOUBLE without step) by L-BFGS-B on the encoded [0, 1] coordinates,
  all starts in one problem (their objectives are independent, so the summed objective's gradient is
  block-diagonal and one L-BFGS-B run optimises every start). Only for smooth models (the GP); the
  gradient is a central finite difference computed for every start and coordinate in one prediction
  call (2 x starts x dimensions rows), which is cheaper here than an analytic gradient through the
  acquisition's log-space formulas.
* **Discrete dimensions** (INT, DOUBLE with step, DISCRETE, CATEGORICAL) by coordinate line search:
  for each parameter every value (up to ``LINE_SEARCH_VALUES`` values; larger ranges: steps of
  1, 2, 4, ... values either way) with the other parameters held, and the start moves to the best
  one if it beats the current value. For every model, including the forest (whose prediction is
  piecewise constant, so it gets no gradient step).

The two alternate until no start moves or ``rounds`` rounds ran. The climb takes no deadline: it is
part of choosing the reply's first pick, which never depends on timing, and its cost is bounded
independently of the pool and the history's length beyond the fit rows (``rounds`` x (at most
``LBFGS_MAXITER`` predictions of 2 x starts x dimensions + 1 rows, plus one line search per
parameter)); docs/benchmarks.md (service-latency) measures it within the service's budgets. The result is one raw row per start (possibly unchanged); the caller scores them with the
other candidates, so a climb that does not beat the pool changes nothing.
"""

# ruff: noqa: N806  (matrix notation: X is a design matrix)

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from suggestion_service.space import SearchSpace

#: Acquisition values (larger is better) of model-input rows.
Values = Callable[[np.ndarray], np.ndarray]
#: Raw configuration rows -> the model's input rows.
Encoder = Callable[[np.ndarray], np.ndarray]

#: Parameters with at most this many values are line-searched over every value; larger ones by
#: doubling steps either way.
LINE_SEARCH_VALUES = 32
LBFGS_MAXITER = 20
ROUNDS = 2
_FD_STEP = 1e-4  # on the [0, 1] encoding; central differences (error O(h^2))


def _continuous_columns(space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
    """(parameter indices, encoded column indices) of the continuous parameters."""
    idx = [i for i, p in enumerate(space.params) if p.count is None]
    return np.asarray(idx, dtype=int), np.asarray([space.slices[i].start for i in idx], dtype=int)


def _climb_continuous(
    space: SearchSpace, raws: np.ndarray, encode: Encoder, values: Values, maxiter: int
) -> np.ndarray:
    """L-BFGS-B over the continuous coordinates of every start at once; returns the moved raw rows
    (a start whose value did not improve keeps its row)."""
    params, cols = _continuous_columns(space)
    S, c = len(raws), len(cols)
    X0 = encode(raws)
    u0 = np.clip(X0[:, cols], 0.0, 1.0)
    h = _FD_STEP

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        U = flat.reshape(S, c)
        # rows: the points, then +h and -h along each coordinate (clipped at the bounds)
        X = np.repeat(X0, 1 + 2 * c, axis=0).reshape(S, 1 + 2 * c, X0.shape[1])
        X[:, :, cols] = U[:, None, :]
        hi = np.minimum(U + h, 1.0)
        lo = np.maximum(U - h, 0.0)
        for j in range(c):
            X[:, 1 + 2 * j, cols[j]] = hi[:, j]
            X[:, 2 + 2 * j, cols[j]] = lo[:, j]
        v = values(X.reshape(-1, X0.shape[1])).reshape(S, 1 + 2 * c)
        v = np.where(np.isfinite(v), v, -1e300)
        width = np.maximum(hi - lo, 1e-12)
        grad = (v[:, 1::2] - v[:, 2::2]) / width
        return -float(v[:, 0].sum()), -grad.ravel()

    start_values = values(X0)
    result = minimize(
        objective, u0.ravel(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * (S * c),
        options={"maxiter": maxiter},
    )  # fmt: skip
    U = np.clip(result.x.reshape(S, c), 0.0, 1.0)
    moved = raws.copy()
    for j, i in enumerate(params):
        moved[:, i] = space.params[i].decode(U[:, j : j + 1])
    better = values(encode(moved)) > start_values
    return np.where(better[:, None], moved, raws)


def _line_values(count: int, current: float) -> np.ndarray:
    """The raw values a line search tries for a parameter with ``count`` values at ``current``."""
    if count <= LINE_SEARCH_VALUES:
        return np.arange(count, dtype=float)
    steps = 2.0 ** np.arange(int(np.log2(count)) + 1)
    tried = np.concatenate([current - steps, current + steps])
    return np.unique(tried[(tried >= 0) & (tried < count)])


def _climb_discrete(
    space: SearchSpace, raws: np.ndarray, encode: Encoder, values: Values
) -> tuple[np.ndarray, bool]:
    """One pass of coordinate line search over every discrete parameter (in order, each from the rows
    the previous one left); returns the rows and whether any moved."""
    rows = raws.copy()
    current = values(encode(rows))
    moved_any = False
    for i, p in enumerate(space.params):
        if p.count is None or p.count < 2:
            continue
        trial_rows, owners = [], []
        for s, row in enumerate(rows):
            for v in _line_values(int(p.count), float(row[i])):
                if v != row[i]:
                    r = row.copy()
                    r[i] = v
                    trial_rows.append(r)
                    owners.append(s)
        if not trial_rows:
            continue
        T = np.vstack(trial_rows)
        tv = values(encode(T))
        owner = np.asarray(owners)
        for s in range(len(rows)):
            mine = np.flatnonzero(owner == s)
            if len(mine) == 0:
                continue
            k = mine[int(np.argmax(tv[mine]))]
            if tv[k] > current[s]:
                rows[s], current[s] = T[k], tv[k]
                moved_any = True
    return rows, moved_any


def maximise(
    space: SearchSpace,
    starts: np.ndarray,
    encode: Encoder,
    values: Values,
    *,
    smooth: bool,
    rounds: int = ROUNDS,
    maxiter: int = LBFGS_MAXITER,
) -> np.ndarray:
    """Raw rows climbed from the raw rows ``starts`` (one per start; see the module docstring).
    ``values`` scores model-input rows (larger is better), ``encode`` maps raw rows to them, ``smooth``
    says whether the model has a useful gradient (continuous dimensions are climbed only then)."""
    rows = np.array(starts, dtype=float, copy=True)
    if len(rows) == 0:
        return rows
    has_continuous = smooth and any(p.count is None for p in space.params)
    has_discrete = any(p.count is not None and p.count > 1 for p in space.params)
    for _ in range(rounds):
        if has_continuous:
            rows = _climb_continuous(space, rows, encode, values, maxiter)
        moved = False
        if has_discrete:
            rows, moved = _climb_discrete(space, rows, encode, values)
        if not moved:
            break  # the continuous climb already converged from where the discrete one left the rows
    return rows
