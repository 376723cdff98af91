"""PROTOTYPES for the optimizer-tuning study (bench/analysis/sweep.py): not the service's algorithms.

Each prototype is a ``Prototype``: a function from the grid task (or None) to the
``suggestion_service.bayesopt.SearchParts`` the service should answer with -- a surrogate factory and
an acquisition factory, passed to the real gRPC service as arguments (``start_server(parts=...)``,
started in-process by ``bench.optimizers.service.ServiceBackend``). Nothing of ``suggestion_service``
is patched, so a prototype affects exactly the runs it is given to. Nothing here is published as
"ours" in the benchmark tables; a prototype that measures well is a code change to port into
``suggestion_service`` (the recommendation in docs/benchmarks.md, section ``optimizers-tuning``, gives
the exact change).

Prototypes:

* ``prior_offset(x)``: the GP's pessimistic prior mean offset (``GPSurrogate.prior_offset``; service:
  ``surrogates.PRIOR_MEAN_OFFSET``, 0.5).
* ``length_scale_bounds(lo, hi)``: the Matern ARD length-scale bounds of the search's GP
  (``GPSurrogate.length_scale_bounds``; service: ``surrogates.LENGTH_SCALE_BOUNDS``).
* ``portfolio(kinds)``: a stateless acquisition portfolio: the acquisition used for a call is
  ``kinds[n_observed % len(kinds)]`` (a deterministic round robin over EI / PI / UCB, the stateless
  cousin of gp_hedge, which needs per-experiment state the service does not keep).
* ``oracle_kernel(task)``: the limits study's "near-perfect model": the GP kernel hyperparameters are
  fitted once on the WHOLE table (every configuration, rank-transformed) and held fixed, so each run's
  model only lacks the data, not the hyperparameters.
"""

# ruff: noqa: N806  (matrix notation: X is a design matrix)

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.optimizers.tasks import GridTask
from suggestion_service.acquisition import Acquisition, best_is_shared, from_settings, scorer
from suggestion_service.bayesopt import SearchParts
from suggestion_service.history import History
from suggestion_service.model_fit import SurrogateFactory, make_surrogate
from suggestion_service.settings import Settings
from suggestion_service.space import SearchSpace
from suggestion_service.surrogates import GPSurrogate, Surrogate, transform_outputs

#: A prototype: the search parts for a grid task (None: a task without a table, e.g. a function).
Prototype = Callable[[GridTask | None], SearchParts]


def gp_factory(**options: Any) -> SurrogateFactory:
    """A surrogate factory: the service's own model (``make_surrogate``), with the GP built with
    ``options`` (``GPSurrogate`` constructor arguments) in place of the service's values; the forest is
    unchanged."""
    names = tuple(inspect.signature(GPSurrogate).parameters)  # each stored as the same-named attribute
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise TypeError(f"GPSurrogate has no option {unknown}: the prototype is out of date")

    def make(settings: Settings, seed: int, task_columns: int, n_own: int, n_own_observed: int) -> Surrogate:
        model = make_surrogate(settings, seed, task_columns, n_own, n_own_observed)
        if not isinstance(model, GPSurrogate):
            return model
        return GPSurrogate(**{**{name: getattr(model, name) for name in names}, **options})

    return make


def _constant(parts: SearchParts) -> Prototype:
    """A prototype whose parts do not depend on the task."""
    return lambda _task: parts


def prior_offset(offset: float) -> Prototype:
    """Prototype: the GP prior mean ``offset`` standard deviations on the bad side (service: 0.5)."""
    if not 0.0 <= offset <= 5.0:
        raise ValueError(f"prior offset must be in [0, 5], got {offset}")
    return _constant(SearchParts(surrogate=gp_factory(prior_offset=offset)))


def length_scale_bounds(lo: float, hi: float) -> Prototype:
    """Prototype: the GP's Matern length-scale bounds (lo, hi) on the [0, 1] encoding (service: 0.03, 20).
    The cost model of ei_per_cost keeps the service's bounds."""
    if not 0.0 < lo < hi:
        raise ValueError(f"length-scale bounds need 0 < lo < hi, got {lo}, {hi}")
    return _constant(SearchParts(surrogate=gp_factory(length_scale_bounds=(lo, hi))))


def portfolio(kinds: Sequence[str], kappa: float = 1.96) -> Prototype:
    """Prototype: round-robin acquisition ``kinds[n_observed % len(kinds)]`` (see the module docstring);
    ``kappa`` for ucb, the settings' xi and cost exponent for every kind."""
    allowed = ("ei", "pi", "ucb")
    if not kinds or set(kinds) - set(allowed):
        raise ValueError(f"portfolio kinds must be a non-empty subset of {allowed}, got {list(kinds)}")
    chosen_kinds = tuple(kinds)

    def acquisition(settings: Settings, history: History, space: SearchSpace) -> Acquisition:
        chosen = chosen_kinds[len(history.observed) % len(chosen_kinds)]
        return scorer(
            chosen,
            xi=settings.xi,
            kappa=kappa if chosen == "ucb" else settings.kappa,
            cost_exponent=settings.cost_exponent,
        )

    return _constant(SearchParts(acquisition=acquisition))


def trials_since_improvement(history: History) -> int:
    """Completed trials (in request order) after the first one that reached the best value so far."""
    losses = history.losses()
    if not len(losses):
        return 0
    first_best = int(np.flatnonzero(losses <= losses.min())[0])
    return len(losses) - 1 - first_best


def stall_explore(after: int, kind: str = "ucb", kappa: float = 3.0, xi: float = 0.0) -> Prototype:
    """Prototype: the settings' acquisition until ``after`` completed trials in a row have not improved
    on the best, then ``kind`` (ucb with ``kappa``, or ei/pi with ``xi``) for the calls that follow,
    until one improves again."""

    def acquisition(settings: Settings, history: History, space: SearchSpace) -> Acquisition:
        if trials_since_improvement(history) >= after:
            return scorer(kind, xi=xi, kappa=kappa, cost_exponent=settings.cost_exponent)
        return from_settings(settings, history, space)

    return _constant(SearchParts(acquisition=acquisition))


def tie_explore(kind: str = "ei", xi: float = 0.5, kappa: float = 3.0) -> Prototype:
    """Prototype: outside enumerable spaces, while two or more completed trials share the best value
    (``acquisition.best_is_shared``: a plateau of a quantised metric), ``kind`` (ei/pi with ``xi``, or
    ucb with ``kappa``) instead of the settings' acquisition. With ei and xi 0.5 this is what the
    service's ``acquisition: auto`` became (``acquisition.for_call``)."""
    from suggestion_service import candidates

    def acquisition(settings: Settings, history: History, space: SearchSpace) -> Acquisition:
        if not candidates.is_enumerable(space) and best_is_shared(history):
            return scorer(kind, xi=xi, kappa=kappa, cost_exponent=settings.cost_exponent)
        return from_settings(settings, history, space)

    return _constant(SearchParts(acquisition=acquisition))


def full_table_kernel(task: GridTask, restarts: int = 5, seed: int = 0) -> Any:
    """The GP kernel (hyperparameters) fitted on every configuration of ``task`` (rank-transformed
    losses; failed configurations imputed with the worst loss, as the service does)."""
    space = task._space  # the service's SearchSpace of the table
    keys = list(task.values)
    X = space.encode_raw(np.array(keys, dtype=float))  # type: ignore[attr-defined]
    finite = [v for v in task.values.values() if v is not None]
    worst = min(finite) if task.maximize else max(finite)
    loss = np.array([task.loss(worst if task.values[k] is None else task.values[k]) for k in keys])
    y = transform_outputs(loss, "rank")
    return GPSurrogate(random_state=seed, restarts=restarts).fit(X, y).kernel


def oracle_kernel(restarts: int = 5) -> Prototype:
    """Prototype (limits study): the GP with hyperparameters fitted on the whole table, held fixed. The
    parts of a task are made once (the same object for every run on it)."""
    cache: dict[str, SearchParts] = {}

    def parts(task: GridTask | None) -> SearchParts:
        if not isinstance(task, GridTask):
            raise ValueError("oracle_kernel needs a grid task (the whole table is its training set)")
        if task.name not in cache:
            cache[task.name] = SearchParts(surrogate=gp_factory(kernel=full_table_kernel(task, restarts)))
        return cache[task.name]

    return parts
