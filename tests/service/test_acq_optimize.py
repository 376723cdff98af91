"""The acquisition's local maximisation (``acq_optimize``) and its place in a reply.

References are independent of the climb: analytic optima, brute-force enumeration of a finite space,
and a dense grid of the same acquisition over a 1-D continuous space."""

# ruff: noqa: N803  (matrix notation: X is a design matrix)

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service import acq_optimize, acquisition
from suggestion_service.batch import propose_batch
from suggestion_service.history import build_history
from suggestion_service.model_fit import fit_model
from suggestion_service.proto import api_pb2
from suggestion_service.settings import parse_settings
from suggestion_service.space import SearchSpace
from tests.service.builders import make_experiment, make_request, make_trial, param


def _space(specs: list[api_pb2.ParameterSpec]) -> SearchSpace:
    return SearchSpace.from_proto(specs)


def test_continuous_climb_reaches_the_analytic_maximum_from_every_start() -> None:
    space = _space([param("a", "double", min="0", max="1"), param("b", "double", min="-5", max="5")])
    target = np.array([0.3, 0.8])  # on the encoded [0, 1] axes: a = 0.3, b = 3.0

    def values(X: np.ndarray) -> np.ndarray:
        return -np.sum((X - target) ** 2, axis=1)

    starts = space.sample_raw(np.random.default_rng(0).random((6, 2)))
    climbed = acq_optimize.maximise(space, starts, space.encode_raw, values, smooth=True)
    assert np.allclose(climbed, [[0.3, 3.0]] * 6, atol=1e-3)


def test_continuous_dimensions_are_not_climbed_for_a_model_without_gradient() -> None:
    space = _space([param("a", "double", min="0", max="1")])
    starts = np.array([[0.1], [0.9]])
    climbed = acq_optimize.maximise(space, starts, space.encode_raw, lambda X: -X[:, 0], smooth=False)
    assert np.array_equal(climbed, starts)


def test_discrete_line_search_finds_the_enumerated_best_of_a_separable_function() -> None:
    space = _space([
        param("opt", "categorical", values=["adam", "sgd", "adamw", "lamb"]),
        param("layers", "int", min="1", max="12"),
        param("width", "discrete", values=["64", "128", "256", "512"]),
    ])  # fmt: skip
    rng = np.random.default_rng(3)
    w = rng.normal(size=space.width)

    def values(X: np.ndarray) -> np.ndarray:  # separable: one term per encoded column
        return -((X - 0.37) ** 2) @ np.abs(w) + X @ w * 0.1

    every = space.enumerate_raw()
    best = every[int(np.argmax(values(space.encode_raw(every))))]
    starts = every[rng.choice(len(every), size=5, replace=False)]
    climbed = acq_optimize.maximise(space, starts, space.encode_raw, values, smooth=True)
    assert all(np.array_equal(row, best) for row in climbed)


def test_a_climb_never_leaves_the_space_nor_ends_worse_than_its_start() -> None:
    space = _space([
        param("lr", "double", min="1e-5", max="1e-1", distribution="logUniform"),
        param("layers", "int", min="1", max="100"),
        param("act", "categorical", values=["relu", "gelu"]),
    ])  # fmt: skip
    rng = np.random.default_rng(7)
    w = rng.normal(size=(space.width, 5))

    def values(X: np.ndarray) -> np.ndarray:  # bumpy: many local maxima
        return np.sin(X @ w * 7.0).sum(axis=1)

    starts = space.sample_raw(rng.random((10, 3)))
    climbed = acq_optimize.maximise(space, starts, space.encode_raw, values, smooth=True)
    for row in climbed:
        assert space.contains(space.assignment(row))
    assert np.all(values(space.encode_raw(climbed)) >= values(space.encode_raw(starts)) - 1e-12)


def test_large_integer_ranges_are_searched_by_doubling_steps() -> None:
    assert list(acq_optimize._line_values(8, 3.0)) == list(range(8))
    tried = acq_optimize._line_values(1000, 500.0)
    assert {499.0, 501.0, 498.0, 502.0, 244.0, 756.0} <= set(tried.tolist())
    assert tried.min() >= 0 and tried.max() < 1000 and 500.0 not in tried


@pytest.mark.parametrize("acq", ["ei", "ucb", "pi"])
def test_the_first_pick_maximises_the_acquisition_of_a_1d_gp_to_a_dense_grid(acq: str) -> None:
    """The model's first pick in a continuous space is the acquisition's maximum: at least as good as
    the best of 20,001 evenly spaced points (the pool alone is 2,048 quasi-random ones)."""
    specs = [param("x", "double", min="0", max="1")]
    exp = make_experiment(
        "climb", specs, "surrogate-gp", settings=[("acquisition", acq)], maximize=False, metric="loss"
    )
    xs = [0.05, 0.2, 0.45, 0.62, 0.8, 0.97]
    trials = [
        make_trial(f"t{i}", {"x": str(x)}, metrics={"loss": str(np.sin(9 * x) + x)}) for i, x in enumerate(xs)
    ]
    request = make_request(exp, trials, 1)
    space = SearchSpace.from_proto(request.experiment.spec.parameter_specs.parameters)
    settings = parse_settings("surrogate-gp", [("acquisition", acq)])
    history = build_history(space, request.trials, request.experiment.spec.objective, None)
    fitted = fit_model(space, history, settings, seed=11)
    score = acquisition.from_settings(settings, history, space)
    best = float(fitted.y[: fitted.n_observed].min())
    grid = np.linspace(0.0, 1.0, 20_001)[:, None]
    reference = float(np.max(score(*fitted.model.predict(grid), best, None)))
    pool = space.sample_raw(np.random.default_rng(0).random((2048, 1)))
    picks = propose_batch(fitted, history, settings, pool, 1, np.random.default_rng(1), score)
    got = float(score(*fitted.model.predict(space.encode_raw(np.vstack(picks.raws))), best, None)[0])
    assert got >= reference - 1e-6 * max(1.0, abs(reference))
