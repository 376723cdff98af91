"""Fitting the surrogate to a history: the first public seam of the surrogate search.

``fit_model(space, history, settings, seed, priors)`` returns a ``FittedModel``: the fitted surrogate
with the rows and transformed outputs it was fitted on, exactly as ``bayesopt.surrogate_search`` fits
it. The model comes from a ``SurrogateFactory`` (default ``make_surrogate``: the model of
``settings.algorithm``); a prototype passes its own factory instead of patching this module
(``bench/optimizers/experimental.py``). ``client/surrogate_report.py`` calls ``fit_model`` to measure
the service's model on an experiment's later trials.

Fit data (``fit_data``): the own observed losses (failed trials imputed with the worst observed loss,
unless ``failed_trials=ignore``) transformed together (``surrogates.transform_outputs``); under warm
start the prior experiments' rows follow with one indicator column per prior experiment (0 for the
own rows), each prior's losses transformed on their own (ranks per experiment, so scales mix).
"""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.fit_subset import select_rows
from suggestion_service.history import History
from suggestion_service.prior_math import PriorData
from suggestion_service.settings import Settings
from suggestion_service.space import SearchSpace
from suggestion_service.surrogates import ForestSurrogate, GPSurrogate, Surrogate, transform_outputs

#: Most own fit rows per surrogate (above: ``fit_subset.select_rows``). The GP's cost is cubic in its
#: rows (10,000 rows: 45 s and 3 GiB per call; 1,000: about 2 s per call at 10,000 trials); the
#: forest's is n log n per tree (5,000 rows x 64 trees: about 4 s on 2 cores; 2,000: about 1.5 s, which
#: keeps a 10,000-trial call under the 5 s target with history parsing and the subset choice included).
MAX_FIT_ROWS: dict[str, int] = {"surrogate-gp": 1000, "surrogate-rf": 2000}
#: With less time than this left before the call's deadline, the GP's optimiser gets at most
#: ``SHORT_TIME_RESTARTS`` restarts (the default setting's: a late reply still has the usual model).
FIT_RESERVE_SECONDS = 5.0
SHORT_TIME_RESTARTS = 1

#: Builds an unfitted model: (settings, seed, task_columns, n_own, n_own_observed) -> Surrogate
#: (the signature of ``make_surrogate``).
SurrogateFactory = Callable[[Settings, int, int, int, int], Surrogate]


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


@dataclass(frozen=True)
class FittedModel:
    """A surrogate fitted to a history (and priors), with the data it saw.

    X / y: the fit rows (encoded, task columns last) and their transformed outputs, own observed rows
    first; n_observed: how many rows are own observations; seed: the seed the model (and the cost
    model of ei_per_cost) uses; fit_seconds: time taken by ``fit_model``.
    """

    space: SearchSpace
    model: Surrogate
    X: np.ndarray
    y: np.ndarray
    n_observed: int
    priors: PriorData | None
    seed: int
    fit_seconds: float = 0.0

    @property
    def task_columns(self) -> int:
        """Warm-start indicator columns appended to the encoding (one per prior experiment)."""
        return self.priors.n_sources if self.priors is not None else 0

    @property
    def prior_y(self) -> np.ndarray | None:
        """Transformed outputs of the prior rows (None without priors)."""
        return None if self.priors is None else self.y[len(self.y) - len(self.priors) :]

    def encode(self, raws: np.ndarray) -> np.ndarray:
        """Raw configuration rows -> the model's input rows (task columns 0: this experiment)."""
        X = self.space.encode_raw(raws)
        k = self.task_columns
        return np.hstack([X, np.zeros((len(X), k))]) if k else X

    def predict_raw(self, raws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (transformed loss units) at raw configuration rows of this experiment."""
        return self.model.predict(self.encode(raws))


def fit_model(
    space: SearchSpace,
    history: History,
    settings: Settings,
    seed: int,
    priors: PriorData | None = None,
    *,
    surrogate: SurrogateFactory = make_surrogate,
    deadline: Deadline = NO_DEADLINE,
) -> FittedModel:
    """Fit ``surrogate(settings, seed, ...)`` to the history's fit data (see the module docstring);
    ``priors`` without rows count as none. Above ``MAX_FIT_ROWS`` own rows the model sees a bounded
    subset of them (``fit_subset.select_rows``; ``n_observed`` counts the observations in it); with
    less than ``FIT_RESERVE_SECONDS`` left before ``deadline`` the GP's optimiser gets at most
    ``SHORT_TIME_RESTARTS`` restarts."""
    t0 = time.perf_counter()
    if priors is not None and not len(priors):
        priors = None
    k = priors.n_sources if priors is not None else 0
    X, y = fit_data(space, history, settings, priors, k)
    n_obs = len(history.observed)
    n_own = len(X) - (len(priors) if priors is not None else 0)
    limit = MAX_FIT_ROWS.get(settings.algorithm)
    if limit is not None and n_own > limit:  # bounded memory and time: a fixed subset of own rows
        keep = select_rows(X[:n_own], y[:n_own], limit, n_ordered=n_obs)
        X = np.vstack([X[keep], X[n_own:]])
        y = np.concatenate([y[keep], y[n_own:]])
        n_obs, n_own = int(np.sum(keep < n_obs)), len(keep)
    if deadline.remaining() < FIT_RESERVE_SECONDS and settings.gp_restarts > SHORT_TIME_RESTARTS:
        settings = replace(settings, gp_restarts=SHORT_TIME_RESTARTS)  # time is short: fewer restarts
    model = surrogate(settings, seed, k, n_own, n_obs).fit(X, y)
    return FittedModel(space, model, X, y, n_obs, priors, seed, time.perf_counter() - t0)


def cost_log_predictions(history: History, X_pool: np.ndarray, seed: int) -> np.ndarray | None:
    """Predicted log cost of the candidates from a GP on observed log costs (None if < 2 costs)."""
    rows = [(o.x, o.cost) for o in history.observed if o.cost is not None]
    if len(rows) < 2:
        return None
    X = np.vstack([r[0] for r in rows])
    log_cost = np.log(np.maximum(np.array([r[1] for r in rows], dtype=float), 1e-9))
    keep = select_rows(X, None, MAX_FIT_ROWS["surrogate-gp"])  # all rows unless the history is large
    X, log_cost = X[keep], log_cost[keep]
    if np.ptp(log_cost) < 1e-12:
        return np.full(len(X_pool), float(log_cost[0]))
    model = GPSurrogate(random_state=seed, restarts=0, prior_offset=0.0).fit(X, log_cost)
    mu, _ = model.predict(X_pool)
    return mu
