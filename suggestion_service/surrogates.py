"""Surrogate models behind one small interface: ``fit(X, y)``, ``predict(X) -> (mean, std)``.

Batch proposals add fantasised observations with the fitted hyperparameters kept: ``conditioned(X,
y)`` refits the model on a whole data set at once (the running trials of a request), and
``fantasy_posterior(C)`` returns a ``FantasyPosterior`` over candidate rows ``C`` that takes one
fantasised pick at a time by an exact rank-one update (GP: O(n |C|) per pick instead of an O(n^3)
refit; forest: a leaf-mean update) -- the same posterior as ``conditioned`` on all the fantasies so far.

* ``GPSurrogate``: scikit-learn Gaussian process, ConstantKernel * Matern(nu=2.5, one length scale per
  encoded column, ARD) + WhiteKernel, with a slightly pessimistic prior mean (``PRIOR_MEAN_OFFSET``).
  The bounds act as weak priors on standardised outputs over [0, 1] inputs: signal variance 0.05..20,
  length scales 0.03..20, noise 1e-6..0.5. Hyperparameters are fitted on at most 64 points (the best
  half plus a random rest) by L-BFGS-B with an exact vectorised gradient of the same likelihood
  (``matern52_nll``, ~10x faster than sklearn's), then the GP is refitted on all points with those
  hyperparameters: fast at 200+ trials. Under warm start the last columns are task indicators (one per
  prior experiment) whose ARD length scales learn how related the prior experiments are.
* ``ForestSurrogate``: extra-trees or random forest; the spread of the trees' predictions is the std.

Outputs are transformed first (``transform_outputs``): Gaussian rank scores by default, which makes
a diverged run or an imputed failure one rank lower instead of a huge outlier.
"""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Protocol

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.special import ndtri
from scipy.stats import rankdata
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Kernel, Matern, Product, Sum, WhiteKernel

HYPER_FIT_MAX_POINTS = 64
# The GP's prior mean, in standard deviations of the observed losses above their mean: far from the data
# a configuration is expected to be somewhat worse than the average one tried so far (most of a search
# space is), so expected improvement explores less blindly. Measured on the benchmark grids
# (docs/benchmarks.md): 0.5 lowered trials-to-best on the seed-shaped grids by about 5-10%.
PRIOR_MEAN_OFFSET = 0.5
_LBFGS_MAXITER = 100
#: Rows predicted per ``GaussianProcessRegressor.predict`` call (working memory ~ rows x fit rows).
PREDICT_CHUNK = 4096


class Surrogate(Protocol):
    """What the acquisition step needs from a model (lower y is better everywhere in the core).

    ``smooth``: whether the prediction is differentiable in the inputs (the acquisition's local
    maximisation climbs continuous dimensions by gradient only then, ``acq_optimize``)."""

    smooth: bool

    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Fit to encoded rows X (n, D) and outputs y (n,)."""
        ...

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation (of the latent function) at X."""
        ...

    def conditioned(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Same hyperparameters, refitted on (X, y)."""
        ...

    def fantasy_posterior(self, C: np.ndarray, capacity: int = 0) -> FantasyPosterior:
        """This model's posterior over the candidate rows C (n_c, D), ready for ``capacity``
        fantasised observations (a hint: more are accepted)."""
        ...


class FantasyPosterior(Protocol):
    """A fitted model's posterior over fixed candidate rows ``C``, updated by one fantasised
    observation at a time; always equal (to rounding) to ``conditioned`` on the fit data plus every
    fantasy added so far, in the same output units as ``Surrogate.predict``."""

    def predict_candidates(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent std at the candidate rows ``C[idx]``."""
        ...

    def add(self, x: np.ndarray, y: float | None = None) -> float:
        """Fantasise observing ``y`` at the encoded row ``x`` (None: the current posterior mean at x,
        the kriging believer); returns the value used."""
        ...


def transform_outputs(y: np.ndarray, kind: str) -> np.ndarray:
    """Map losses to a well-scaled target: "rank" (Gaussian rank scores, ties averaged) or "standardize"."""
    y = np.asarray(y, dtype=float)
    if len(y) == 0:
        return y.copy()
    if kind == "rank":
        ranks = rankdata(y, method="average")
        return ndtri((ranks - 0.5) / len(y))
    if kind == "standardize":
        sd = float(np.std(y))
        return (y - float(np.mean(y))) / (sd if sd > 0 else 1.0)
    raise ValueError(f"unknown output transform {kind!r}; allowed: rank, standardize")


_SQRT5 = math.sqrt(5.0)
_GPR_ALPHA = 1e-10  # GaussianProcessRegressor's default diagonal jitter


def matern52_nll(theta: np.ndarray, D2: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood and its gradient for ``default_kernel`` at log-parameters ``theta``.

    theta = [log constant, log length_scale_1..D, log noise] (the order of ``default_kernel().theta``);
    D2[i, j, d] = (x_id - x_jd)^2. Same value as sklearn's ``log_marginal_likelihood`` (negated), but
    vectorised without sklearn's per-call kernel bookkeeping, so hyperparameter fitting is ~10x faster.
    """
    n = len(y)
    c = math.exp(theta[0])
    inv_l2 = np.exp(-2.0 * theta[1:-1])
    noise = math.exp(theta[-1])
    r = np.sqrt(np.maximum(D2 @ inv_l2, 0.0))
    e = np.exp(-_SQRT5 * r)
    G = (1.0 + _SQRT5 * r) * e
    M = G + (5.0 / 3.0) * r * r * e
    K = c * M
    K[np.diag_indices(n)] += noise + _GPR_ALPHA
    try:
        L = cholesky(K, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = cho_solve((L, True), y, check_finite=False)
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * math.log(2.0 * math.pi)
    W = cho_solve((L, True), np.eye(n), check_finite=False) - np.outer(alpha, alpha)
    grad = np.empty_like(theta)
    grad[0] = 0.5 * c * float(np.sum(W * M))
    grad[1:-1] = 0.5 * c * (5.0 / 3.0) * np.einsum("ij,ijd->d", W * G, D2) * inv_l2
    grad[-1] = 0.5 * noise * float(np.trace(W))
    return nll, grad


def _fast_lbfgs(obj_func, initial_theta, bounds, *, D2: np.ndarray, y: np.ndarray):
    """sklearn ``optimizer`` callable: L-BFGS-B on ``matern52_nll`` (``obj_func`` is the slow equivalent)."""
    result = minimize(
        matern52_nll,
        initial_theta,
        args=(D2, y),
        method="L-BFGS-B",
        jac=True,
        bounds=bounds,
        options={"maxiter": _LBFGS_MAXITER},
    )
    return result.x, result.fun


LENGTH_SCALE_BOUNDS = (0.03, 20.0)
#: Initial length scale of a task-indicator column (warm start): correlation 0.9 between the same
#: configuration in this experiment and in a prior one. Fixed at this value while the fit data has fewer
#: than two own observations to learn it from. 3.0 beat 1.5 (correlation 0.7) on the warm-start benchmark.
TASK_LENGTH_SCALE = 3.0


def default_kernel(
    width: int,
    task_columns: int = 0,
    fix_task_length_scale: bool = False,
    length_scale_bounds: tuple[float, float] = LENGTH_SCALE_BOUNDS,
) -> Kernel:
    """ConstantKernel * Matern(2.5, ARD) + WhiteKernel with prior-like bounds for standardised data
    (``length_scale_bounds``: of every encoded column's length scale).

    The last ``task_columns`` of the ``width`` columns are warm-start task indicators: their length
    scales start at ``TASK_LENGTH_SCALE`` (and stay there when ``fix_task_length_scale``); a short
    learned length scale means the prior experiment's outcomes say little about this one.
    """
    if not 0 <= task_columns <= width:
        raise ValueError(f"task_columns must be in [0, {width}], got {task_columns}")
    if not task_columns:
        return ConstantKernel(1.0, (0.05, 20.0)) * Matern(
            length_scale=np.full(width, 0.5), length_scale_bounds=length_scale_bounds, nu=2.5
        ) + WhiteKernel(1e-3, (1e-6, 0.5))
    n_x = width - task_columns
    init = np.concatenate([np.full(n_x, 0.5), np.full(task_columns, TASK_LENGTH_SCALE)])
    bounds = np.array([length_scale_bounds] * width, dtype=float)
    if fix_task_length_scale:
        bounds[n_x:] = TASK_LENGTH_SCALE
    return ConstantKernel(1.0, (0.05, 20.0)) * Matern(
        length_scale=init, length_scale_bounds=bounds, nu=2.5
    ) + WhiteKernel(1e-3, (1e-6, 0.5))


def _is_default_structure(kernel: Kernel) -> bool:
    """Whether ``kernel`` is ConstantKernel * Matern(nu=2.5) + WhiteKernel (``default_kernel``'s form)."""
    return (
        isinstance(kernel, Sum)
        and isinstance(kernel.k2, WhiteKernel)
        and isinstance(kernel.k1, Product)
        and isinstance(kernel.k1.k1, ConstantKernel)
        and isinstance(kernel.k1.k2, Matern)
        and kernel.k1.k2.nu == 2.5
    )


class GPSurrogate:
    """Gaussian-process surrogate (see the module docstring)."""

    smooth = True

    def __init__(
        self,
        random_state: int = 0,
        restarts: int = 1,
        kernel: Kernel | None = None,
        prior_offset: float = PRIOR_MEAN_OFFSET,
        *,
        task_columns: int = 0,
        fix_task_length_scale: bool = False,
        keep_first: int = 0,
        length_scale_bounds: tuple[float, float] = LENGTH_SCALE_BOUNDS,
    ) -> None:
        self.random_state = random_state
        self.restarts = restarts
        self.kernel = kernel
        self.prior_offset = prior_offset
        self.task_columns = task_columns
        self.fix_task_length_scale = fix_task_length_scale
        self.keep_first = keep_first
        self.length_scale_bounds = length_scale_bounds
        self._gp: GaussianProcessRegressor | None = None
        self._mean = 0.0
        self._scale = 1.0

    def _subsample(self, y: np.ndarray) -> np.ndarray:
        """Rows for the hyperparameter fit: all if few; else the first ``keep_first`` (up to half; the
        experiment's own rows under warm start, which teach the task length scales), then the best of
        the rest up to half, then a seeded random rest."""
        n = len(y)
        if n <= HYPER_FIT_MAX_POINTS:
            return np.arange(n)
        half = HYPER_FIT_MAX_POINTS // 2
        first = np.arange(min(self.keep_first, n))
        if len(first) > half:
            first = np.random.default_rng(self.random_state).choice(first, size=half, replace=False)
        others = np.setdiff1d(np.arange(n), first)
        order = others[np.argsort(y[others], kind="stable")]
        best = order[: max(0, half - len(first))]
        rest = order[len(best) :]
        rng = np.random.default_rng(self.random_state)
        extra = rng.choice(rest, size=HYPER_FIT_MAX_POINTS - len(first) - len(best), replace=False)
        return np.sort(np.concatenate([first, best, extra]))

    def fit(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        """Fit hyperparameters (unless a kernel was given) and the GP; returns self."""
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        sd = float(np.std(y))
        self._scale = sd if sd > 1e-12 else 1.0
        self._mean = float(np.mean(y)) + self.prior_offset * self._scale
        z = (y - self._mean) / self._scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kernel = self.kernel
            if kernel is None:
                idx = self._subsample(z)
                Xs, zs = X[idx], z[idx]
                D2 = Xs[:, None, :] - Xs[None, :, :]
                np.square(D2, out=D2)  # in place: 64 x 64 x width doubles, once
                hyper = GaussianProcessRegressor(
                    default_kernel(
                        X.shape[1], self.task_columns, self.fix_task_length_scale, self.length_scale_bounds
                    ),
                    optimizer=partial(_fast_lbfgs, D2=D2, y=zs),
                    n_restarts_optimizer=self.restarts,
                    normalize_y=False,
                    random_state=self.random_state,
                ).fit(Xs, zs)
                kernel = hyper.kernel_
                if len(idx) == len(y):
                    self._gp, self.kernel = hyper, kernel
                    return self
            self.kernel = kernel
            self._gp = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=False).fit(X, z)
        return self

    def _noise(self) -> float:
        k = self.kernel
        if k is not None and hasattr(k, "k2") and isinstance(k.k2, WhiteKernel):
            return float(k.k2.noise_level)
        return 0.0

    def _latent(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent mean and variance (scaled units) at X: ``GaussianProcessRegressor.predict``'s
        arithmetic written out for this kernel (sklearn's per-call kernel bookkeeping costs more than
        the arithmetic at the few hundred rows a call of the acquisition's climb predicts), with
        sklearn's own predict for any other kernel."""
        gp = self._gp
        kernel = gp.kernel_  # type: ignore[union-attr]
        if not _is_default_structure(kernel):
            mu, sd = gp.predict(X, return_std=True)  # type: ignore[union-attr]
            return mu, sd**2 - self._noise()
        c = float(kernel.k1.k1.constant_value)
        ls = np.broadcast_to(np.asarray(kernel.k1.k2.length_scale, dtype=float), (X.shape[1],))
        r = cdist(X / ls, gp.X_train_ / ls)  # type: ignore[union-attr]
        K = c * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * np.exp(-_SQRT5 * r)
        V = solve_triangular(gp.L_, K.T, lower=True, check_finite=False)  # type: ignore[union-attr]
        return K @ gp.alpha_, c - np.einsum("ij,ij->j", V, V)  # type: ignore[union-attr]

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent std (observation noise removed) in the units of the fitted y."""
        if self._gp is None:
            raise RuntimeError("GPSurrogate.predict called before fit")
        X = np.asarray(X, dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # bounded memory: a (rows x fit rows) cross-covariance per chunk
            parts = [self._latent(X[i : i + PREDICT_CHUNK]) for i in range(0, max(len(X), 1), PREDICT_CHUNK)]
        mu = np.concatenate([p[0] for p in parts])
        var = np.maximum(np.concatenate([p[1] for p in parts]), 1e-12)
        return mu * self._scale + self._mean, np.sqrt(var) * self._scale

    def conditioned(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        """A GP with the fitted kernel and output scaling, refitted on (X, y)."""
        other = GPSurrogate(
            self.random_state,
            self.restarts,
            self.kernel,
            self.prior_offset,
            task_columns=self.task_columns,
            fix_task_length_scale=self.fix_task_length_scale,
            keep_first=self.keep_first,
            length_scale_bounds=self.length_scale_bounds,
        )
        z = (np.asarray(y, dtype=float) - self._mean) / self._scale
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other._gp = GaussianProcessRegressor(self.kernel, optimizer=None, normalize_y=False).fit(
                np.asarray(X, dtype=float), z
            )
        other._mean, other._scale = self._mean, self._scale
        return other

    def fantasy_posterior(self, C: np.ndarray, capacity: int = 0) -> GPFantasyPosterior:
        """The posterior over candidate rows C, updated by rank-one Cholesky steps (see
        ``GPFantasyPosterior``)."""
        if self._gp is None:
            raise RuntimeError("GPSurrogate.fantasy_posterior called before fit")
        return GPFantasyPosterior(self._gp, self._noise(), self._mean, self._scale, C, capacity)

    def length_scales(self) -> np.ndarray:
        """Fitted ARD length scales (for diagnostics and tests)."""
        return np.atleast_1d(self.kernel.k1.k2.length_scale)  # type: ignore[union-attr]


class GPFantasyPosterior:
    """The GP posterior over candidate rows C under fantasised observations, without refitting.

    With L the Cholesky factor of K + (noise + jitter) I over the n training rows and fantasies so
    far, beta = L^-1 z (z: the scaled outputs) and V = L^-1 k(X, C) for the candidates tracked so far,
    a fantasy (x, z_x) appends the row (l, d) to L, with l = L^-1 k(X, x) and
    d = sqrt(k(x, x) + noise + jitter - l.l); then v = (k(x, C) - l.V) / d is V's new row, the
    candidates' variance drops by v^2 and their mean moves by v (z_x - mu(x)) / d (zero for the kriging
    believer, z_x = mu(x)). O(n |C|) per fantasy where ``GaussianProcessRegressor.fit`` on the grown
    data is O(n^3) (plus O(n^2 |C|) to predict). Candidates are tracked on first use of
    ``predict_candidates``, so the columns never asked for cost nothing. Kernel hyperparameters and the
    output scaling stay those of the fitted model, as with ``GPSurrogate.conditioned``.
    """

    def __init__(
        self,
        gp: GaussianProcessRegressor,
        noise: float,
        mean: float,
        scale: float,
        C: np.ndarray,
        capacity: int = 0,
    ) -> None:
        self._kernel = gp.kernel_
        self._noise = noise
        self._jitter = float(gp.alpha)
        self._mean, self._scale = mean, scale
        self._C = np.asarray(C, dtype=float)
        n = len(gp.X_train_)
        self._n = n
        self._X = np.empty((n + capacity, self._C.shape[1]))
        self._X[:n] = gp.X_train_
        self._L = np.eye(n + capacity)  # rows past the current ones stay the identity (see ``_solve``)
        self._L[:n, :n] = gp.L_
        self._beta = np.empty(n + capacity)
        self._beta[:n] = solve_triangular(gp.L_, gp.y_train_, lower=True, check_finite=False)
        self._col = np.full(len(self._C), -1, dtype=np.int64)  # column of V per candidate; -1: not yet
        self._tracked = np.empty(0, dtype=np.int64)  # candidate index per column
        self._V = np.empty((n + capacity, 0))
        self._mu = np.empty(0)  # posterior mean and latent variance (scaled units) per column
        self._var = np.empty(0)

    def _solve(self, K: np.ndarray) -> np.ndarray:
        """L^-1 K over the current m rows. A vector is solved against the whole buffer, whose rows
        past m are the identity (zeros there stay zeros): LAPACK then reads L in place, where the
        m x m corner would be copied first, which costs more than the solve itself."""
        m = self._n
        if K.ndim == 1:
            rhs = np.zeros(len(self._L))
            rhs[:m] = K
            return solve_triangular(self._L, rhs, lower=True, check_finite=False)[:m]
        return solve_triangular(self._L[:m, :m], K, lower=True, check_finite=False)

    def _track(self, idx: np.ndarray) -> None:
        """Give the candidates ``idx`` columns of V (from scratch: O(n^2) each, once)."""
        new = np.unique(idx[self._col[idx] < 0])
        if not len(new):
            return
        m = self._n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            W = self._solve(self._kernel(self._X[:m], self._C[new]))
            prior_var = self._kernel.diag(self._C[new]) - self._noise
        V = np.empty((len(self._V), self._V.shape[1] + len(new)))
        V[:m, : self._V.shape[1]] = self._V[:m]
        V[:m, self._V.shape[1] :] = W
        self._col[new] = np.arange(self._V.shape[1], V.shape[1])
        self._V = V
        self._tracked = np.concatenate([self._tracked, new])
        self._mu = np.concatenate([self._mu, W.T @ self._beta[:m]])
        self._var = np.concatenate([self._var, prior_var - np.einsum("ij,ij->j", W, W)])

    def predict_candidates(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent std at ``C[idx]``, like ``GPSurrogate.predict`` on the conditioned GP."""
        idx = np.asarray(idx, dtype=np.int64)
        self._track(idx)
        cols = self._col[idx]
        var = np.maximum(self._var[cols], 1e-12)
        return self._mu[cols] * self._scale + self._mean, np.sqrt(var) * self._scale

    def _grow(self) -> None:
        """Double the room for fantasies (when more come than the ``capacity`` hint)."""
        size = len(self._X)
        new = max(2 * size, size + 8)
        X, L = np.empty((new, self._X.shape[1])), np.eye(new)
        beta, V = np.empty(new), np.empty((new, self._V.shape[1]))
        X[:size], L[:size, :size], beta[:size], V[:size] = self._X, self._L, self._beta, self._V
        self._X, self._L, self._beta, self._V = X, L, beta, V

    def add(self, x: np.ndarray, y: float | None = None) -> float:
        """Condition on the fantasy (x, y); y None = the current posterior mean at x (kriging believer)."""
        x = np.asarray(x, dtype=float)[None, :]
        m = self._n
        if m == len(self._X):
            self._grow()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            l = self._solve(self._kernel(self._X[:m], x)[:, 0])  # noqa: E741 (the Cholesky row)
            d = math.sqrt(max(float(self._kernel.diag(x)[0]) + self._jitter - float(l @ l), self._jitter))
            k_c = self._kernel(x, self._C[self._tracked])[0]
        mu_x = float(l @ self._beta[:m])
        z = mu_x if y is None else (float(y) - self._mean) / self._scale
        b = (z - mu_x) / d
        v = (k_c - l @ self._V[:m]) / d
        self._mu += v * b
        self._var -= v * v
        self._V[m] = v
        self._L[m, :m], self._L[m, m] = l, d
        self._beta[m] = b
        self._X[m] = x[0]
        self._n = m + 1
        return mu_x * self._scale + self._mean if y is None else float(y)


class ForestSurrogate:
    """scikit-learn ``RandomForestRegressor`` (``kind="random_forest"``: bootstrap samples,
    ``max_features=0.8``) or ``ExtraTreesRegressor`` (``kind="extra_trees"``: every row, random split
    points), ``min_samples_leaf=1``, ``n_trees`` trees.

    Mean: the average of the trees' predictions, i.e. scikit-learn's ``predict``. Each tree's leaf
    value is the mean of the training outputs in that leaf weighted by the tree's in-bag counts (how
    often its bootstrap drew each row; 1 for every row without bootstrap), exactly as scikit-learn
    computes it; the leaf statistics are kept here as weighted sums so that they can be updated.

    Std: the population standard deviation (ddof=0) of the individual trees' predictions, with a
    1e-12 variance floor -- the ensemble's disagreement, which grows away from the data. It is not a
    calibrated predictive std and has no within-leaf noise term.

    ``conditioned`` keeps the tree structures (no re-splitting, ~100x cheaper than growing new trees
    for every pick of a batch) and recomputes the leaf values from new outputs: the fit rows keep
    their in-bag counts and every further row (a fantasy) counts once in every tree (the expected
    bootstrap count), so a fantasised point pulls its leaves towards the fantasy value and shrinks
    the spread there.
    """

    smooth = False  # piecewise constant: no gradient

    def __init__(self, random_state: int = 0, n_trees: int = 64, kind: str = "random_forest") -> None:
        if kind not in ("extra_trees", "random_forest"):
            raise ValueError(f"unknown forest kind {kind!r}; allowed: extra_trees, random_forest")
        self.random_state = random_state
        self.n_trees = n_trees
        self.kind = kind
        self._model: ExtraTreesRegressor | RandomForestRegressor | None = None
        self._offsets = np.zeros(1, dtype=np.int64)
        self._X_fit = np.zeros((0, 0))
        self._in_bag = np.zeros((0, n_trees))
        self._sums = np.zeros(0)
        self._weights = np.zeros(0)
        self._means = np.zeros(0)

    @property
    def estimator(self) -> ExtraTreesRegressor | RandomForestRegressor:
        """The fitted scikit-learn ensemble (its ``predict`` is this model's mean before conditioning)."""
        if self._model is None:
            raise RuntimeError("ForestSurrogate.estimator used before fit")
        return self._model

    def fit(self, X: np.ndarray, y: np.ndarray) -> ForestSurrogate:
        """Grow the ensemble and compute the leaf values; returns self."""
        if self.kind == "extra_trees":
            model = ExtraTreesRegressor(
                n_estimators=self.n_trees, min_samples_leaf=1, bootstrap=False, random_state=self.random_state
            )
        else:
            model = RandomForestRegressor(
                n_estimators=self.n_trees,
                min_samples_leaf=1,
                max_features=0.8,
                bootstrap=True,
                random_state=self.random_state,
            )
        X = np.array(X, dtype=float)
        self._model = model.fit(X, np.asarray(y, dtype=float))
        sizes = np.array([t.tree_.node_count for t in self._model.estimators_], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._X_fit = X
        self._in_bag = _in_bag_counts(self._model, len(X))
        self._set_leaf_values(X, y)
        return self

    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """Global leaf ids (n, trees): each tree's node ids shifted into one flat array."""
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        leaves = np.column_stack([t.tree_.apply(X32) for t in self._model.estimators_])  # type: ignore[union-attr]
        return leaves.astype(np.int64) + self._offsets[None, :]

    def _row_weights(self, X: np.ndarray) -> np.ndarray:
        """Each row's weight in each tree (n, trees): the in-bag counts for the fit rows, which must
        come first, and 1 for every further row."""
        n_fit = len(self._X_fit)
        if len(X) < n_fit or not np.array_equal(X[:n_fit], self._X_fit):
            raise ValueError("ForestSurrogate.conditioned needs the fit rows first, then the added rows")
        return np.vstack([self._in_bag, np.ones((len(X) - n_fit, self.n_trees))])

    def _set_leaf_values(self, X: np.ndarray, y: np.ndarray) -> None:
        """Leaf sums of weight x output, leaf weights and their ratio (the leaf values) from (X, y)."""
        X = np.asarray(X, dtype=float)
        total = int(self._offsets[-1] + self._model.estimators_[-1].tree_.node_count)  # type: ignore[union-attr]
        leaves = self._leaves(X).ravel()
        weights = self._row_weights(X)
        self._sums = np.bincount(
            leaves, weights=(weights * np.asarray(y, dtype=float)[:, None]).ravel(), minlength=total
        )
        self._weights = np.bincount(leaves, weights=weights.ravel(), minlength=total)
        self._means = np.divide(self._sums, self._weights, out=np.zeros(total), where=self._weights > 0)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std across trees."""
        if self._model is None:
            raise RuntimeError("ForestSurrogate.predict called before fit")
        return _tree_mean_std(self._means[self._leaves(np.asarray(X, dtype=float))])

    def conditioned(self, X: np.ndarray, y: np.ndarray) -> ForestSurrogate:
        """Same trees, leaf values recomputed from (X, y); X starts with the fit rows (ValueError
        otherwise), which keep their in-bag counts, and every further row counts once per tree."""
        other = ForestSurrogate(self.random_state, self.n_trees, self.kind)
        other._model, other._offsets = self._model, self._offsets
        other._X_fit, other._in_bag = self._X_fit, self._in_bag
        other._set_leaf_values(X, y)
        return other

    def fantasy_posterior(self, C: np.ndarray, capacity: int = 0) -> ForestFantasyPosterior:
        """The ensemble's predictions over candidate rows C, updated leaf by leaf (``capacity`` is
        not needed: the update is O(trees) whatever the number of fantasies)."""
        if self._model is None:
            raise RuntimeError("ForestSurrogate.fantasy_posterior called before fit")
        return ForestFantasyPosterior(self, C)


def _in_bag_counts(model: ExtraTreesRegressor | RandomForestRegressor, n: int) -> np.ndarray:
    """(n, trees): how many times each tree's bootstrap drew each row (all 1 without bootstrap) --
    the sample weights scikit-learn grew each tree with."""
    if not model.bootstrap:
        return np.ones((n, len(model.estimators_)))
    return np.column_stack([np.bincount(s, minlength=n) for s in model.estimators_samples_]).astype(float)


def _tree_mean_std(per_tree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (variance floored at 1e-12) across the trees' predictions (n, trees)."""
    return per_tree.mean(axis=1), np.sqrt(per_tree.var(axis=1) + 1e-12)


class ForestFantasyPosterior:
    """``ForestSurrogate.conditioned`` one fantasy at a time: a fantasy adds its value to the weighted
    sum, and 1 to the weight, of the one leaf it reaches in each tree, and only those leaf values
    change. The candidates' leaves are found once. Sums accumulate in the order ``conditioned``'s
    ``bincount`` uses, so the leaf values are the same to the last bit."""

    def __init__(self, model: ForestSurrogate, C: np.ndarray) -> None:
        self._model = model
        self._sums = model._sums.copy()
        self._weights = model._weights.copy()
        self._means = model._means.copy()
        self._leaves_c = model._leaves(np.asarray(C, dtype=float))

    def predict_candidates(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std across trees at ``C[idx]``."""
        return _tree_mean_std(self._means[self._leaves_c[idx]])

    def add(self, x: np.ndarray, y: float | None = None) -> float:
        """Add (x, y) with weight 1 to the leaves x reaches (y None: the ensemble's current mean at x)."""
        leaves = self._model._leaves(np.asarray(x, dtype=float)[None, :])[0]
        value = float(self._means[leaves].mean()) if y is None else float(y)
        self._sums[leaves] += value
        self._weights[leaves] += 1.0
        self._means[leaves] = self._sums[leaves] / self._weights[leaves]
        return value
