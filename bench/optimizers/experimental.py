"""PROTOTYPES for the optimizer-tuning study (bench/analysis/sweep.py): not the service's algorithms.

Each prototype is a context manager that temporarily replaces one function of ``suggestion_service``
in this process, so the real gRPC service (started in-process by ``ServiceBackend``) answers with the
changed algorithm while the patch is active. The sweep runs one run at a time, so a patch affects
exactly the runs it wraps. Nothing here is published as "ours" in the benchmark tables; a prototype
that measures well is a code change to port into ``suggestion_service`` (the recommendation in
docs/benchmarks.md, section ``optimizers-tuning``, gives the exact change).

Prototypes:

* ``prior_offset(x)``: the GP's pessimistic prior mean offset (``surrogates.PRIOR_MEAN_OFFSET``, 0.5).
* ``length_scale_bounds(lo, hi)``: the Matern ARD length-scale bounds of ``surrogates.default_kernel``.
* ``portfolio(kinds)``: a stateless acquisition portfolio: the acquisition used for a call is
  ``kinds[n_observed % len(kinds)]`` (a deterministic round robin over EI / PI / UCB, the stateless
  cousin of gp_hedge, which needs per-experiment state the service does not keep).
* ``oracle_kernel(task)``: the limits study's "near-perfect model": the GP kernel hyperparameters are
  fitted once on the WHOLE table (every configuration, rank-transformed) and held fixed, so each run's
  model only lacks the data, not the hyperparameters.
"""

# ruff: noqa: N806  (matrix notation: X is a design matrix)

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from bench.optimizers.tasks import GridTask
from suggestion_service import acquisition, bayesopt, surrogates
from suggestion_service.settings import Settings
from suggestion_service.surrogates import GPSurrogate, transform_outputs

Patch = Callable[[GridTask | None], contextlib.AbstractContextManager[None]]


@contextlib.contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``owner.name = value`` for the duration of the block, then restore it."""
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no attribute {name!r} to patch")
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _gp_factory(**attributes: Any) -> Callable[..., Any]:
    """A ``bayesopt.make_surrogate`` replacement: the service's own model, with ``attributes`` set on it
    when it is a GPSurrogate (the forest is unchanged). Arguments pass through unchanged, so the
    prototype follows whatever the service's signature is."""
    original = bayesopt.make_surrogate

    def make(settings: Settings, seed: int, *args: Any, **kwargs: Any) -> Any:
        model = original(settings, seed, *args, **kwargs)
        if isinstance(model, GPSurrogate):
            for name, value in attributes.items():
                if not hasattr(model, name):
                    raise AttributeError(
                        f"GPSurrogate has no attribute {name!r}: the prototype is out of date"
                    )
                setattr(model, name, value)
        return model

    return make


def prior_offset(offset: float) -> Patch:
    """Prototype: the GP prior mean ``offset`` standard deviations on the bad side (service: 0.5)."""
    if not 0.0 <= offset <= 5.0:
        raise ValueError(f"prior offset must be in [0, 5], got {offset}")

    def patch(_task: GridTask | None) -> contextlib.AbstractContextManager[None]:
        return patched(bayesopt, "make_surrogate", _gp_factory(prior_offset=offset))

    return patch


def length_scale_bounds(lo: float, hi: float) -> Patch:
    """Prototype: Matern length-scale bounds (lo, hi) on the [0, 1] encoding (service: 0.03, 20), set
    through ``surrogates.LENGTH_SCALE_BOUNDS``, which ``default_kernel`` reads when it is called."""
    if not 0.0 < lo < hi:
        raise ValueError(f"length-scale bounds need 0 < lo < hi, got {lo}, {hi}")

    def patch(_task: GridTask | None) -> contextlib.AbstractContextManager[None]:
        return patched(surrogates, "LENGTH_SCALE_BOUNDS", (lo, hi))

    return patch


def portfolio(kinds: Sequence[str], kappa: float = 1.96) -> Patch:
    """Prototype: round-robin acquisition ``kinds[n_observed % len(kinds)]`` (see the module docstring)."""
    allowed = ("ei", "pi", "ucb")
    if not kinds or set(kinds) - set(allowed):
        raise ValueError(f"portfolio kinds must be a non-empty subset of {allowed}, got {list(kinds)}")
    state = {"n": 0}
    original_search = bayesopt.surrogate_search
    original_score = acquisition.score

    def search(space: Any, history: Any, *args: Any, **kwargs: Any) -> Any:
        state["n"] = len(history.observed)
        return original_search(space, history, *args, **kwargs)

    def score(kind: str, mu: np.ndarray, sd: np.ndarray, best: float, **kw: Any) -> np.ndarray:
        chosen = kinds[state["n"] % len(kinds)]
        if chosen == "ucb":
            kw = {**kw, "kappa": kappa}
        return original_score(chosen, mu, sd, best, **kw)

    @contextlib.contextmanager
    def both(_task: GridTask | None) -> Iterator[None]:
        with patched(bayesopt, "surrogate_search", search), patched(acquisition, "score", score):
            yield

    # algorithms.propose calls bayesopt.surrogate_search through the module, so the wrapper is seen.
    return both


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


def oracle_kernel(restarts: int = 5) -> Patch:
    """Prototype (limits study): the GP with hyperparameters fitted on the whole table, held fixed."""
    cache: dict[str, Any] = {}

    def patch(task: GridTask | None) -> contextlib.AbstractContextManager[None]:
        if not isinstance(task, GridTask):
            raise ValueError("oracle_kernel needs a grid task (the whole table is its training set)")
        if task.name not in cache:
            cache[task.name] = full_table_kernel(task, restarts)
        return patched(bayesopt, "make_surrogate", _gp_factory(kernel=cache[task.name]))

    return patch
