"""Surrogate models: fit/predict behaviour, fantasies, and the GP likelihood gradient."""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from sklearn.gaussian_process import GaussianProcessRegressor

from suggestion_service.surrogates import (
    HYPER_FIT_MAX_POINTS,
    ForestSurrogate,
    GPSurrogate,
    default_kernel,
    matern52_nll,
    transform_outputs,
)


def smooth(X: np.ndarray) -> np.ndarray:
    return np.sin(3 * X[:, 0]) + (X[:, 1] - 0.3) ** 2


def test_nll_and_gradient_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.random((25, 3)), rng.standard_normal(25)
    gp = GaussianProcessRegressor(default_kernel(3), optimizer=None).fit(X, y)
    D2 = (X[:, None, :] - X[None, :, :]) ** 2
    for _ in range(3):
        theta = np.log(np.r_[rng.uniform(0.1, 5), rng.uniform(0.05, 3, 3), rng.uniform(1e-4, 0.3)])
        lml, grad = gp.log_marginal_likelihood(theta, eval_gradient=True)
        nll, ngrad = matern52_nll(theta, D2, y)
        assert nll == pytest.approx(-lml, rel=1e-10)
        assert ngrad == pytest.approx(-grad, rel=1e-8, abs=1e-10)
        numeric = approx_fprime(theta, lambda t: matern52_nll(t, D2, y)[0], 1e-6)
        assert ngrad == pytest.approx(numeric, rel=1e-3, abs=1e-4)


def test_gp_interpolates_and_is_uncertain_away_from_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((30, 2))
    gp = GPSurrogate(random_state=0).fit(X, smooth(X))
    mu, sd = gp.predict(X)
    assert mu == pytest.approx(smooth(X), abs=0.05)
    test = rng.random((200, 2))
    mu_t, _ = gp.predict(test)
    assert np.corrcoef(mu_t, smooth(test))[0, 1] > 0.95
    _, sd_far = gp.predict(np.array([[3.0, 3.0]]))
    assert sd_far[0] > 5 * sd.mean()


def test_gp_ard_finds_the_irrelevant_dimension() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    gp = GPSurrogate(random_state=0).fit(X, smooth(X))  # column 2 is irrelevant
    ls = gp.length_scales()
    assert ls[2] > 3 * ls[0]


def test_gp_hyperparameters_use_a_subsample_but_predict_from_all_points() -> None:
    rng = np.random.default_rng(3)
    X = rng.random((HYPER_FIT_MAX_POINTS * 2, 2))
    y = smooth(X)
    gp = GPSurrogate(random_state=0, restarts=0).fit(X, y)
    mu, _ = gp.predict(X)
    assert mu == pytest.approx(y, abs=0.05)


def test_gp_conditioning_on_a_fantasy_shrinks_uncertainty_there() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((10, 2))
    y = smooth(X)
    gp = GPSurrogate(random_state=0).fit(X, y)
    x_new = np.array([[0.95, 0.95]])
    mu0, sd0 = gp.predict(x_new)
    gp2 = gp.conditioned(np.vstack([X, x_new]), np.r_[y, mu0])
    mu1, sd1 = gp2.predict(x_new)
    assert sd1[0] < 0.2 * sd0[0]
    assert mu1[0] == pytest.approx(mu0[0], abs=0.05)
    assert np.allclose(gp2.length_scales(), gp.length_scales())


@pytest.mark.parametrize("kind", ["random_forest", "extra_trees"])
def test_forest_predicts_and_conditions(kind: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((60, 2))
    model = ForestSurrogate(random_state=0, n_trees=32, kind=kind).fit(X, smooth(X))
    test = rng.random((100, 2))
    mu, sd = model.predict(test)
    assert np.corrcoef(mu, smooth(test))[0, 1] > 0.8
    assert np.all(sd >= 0)
    x_new = test[:1]
    fantasy = model.conditioned(np.vstack([X, x_new]), np.r_[smooth(X), mu[:1]])
    _, sd_new = fantasy.predict(x_new)
    assert sd_new[0] < sd[0]
    with pytest.raises(ValueError, match="forest kind"):
        ForestSurrogate(kind="gbrt")


def test_transform_outputs() -> None:
    y = np.array([0.1, 0.2, 100.0, 0.15])
    r = transform_outputs(y, "rank")
    assert np.argsort(r).tolist() == np.argsort(y).tolist()
    assert r.max() < 1.2  # the outlier is just the top rank
    s = transform_outputs(y, "standardize")
    assert s.mean() == pytest.approx(0.0) and s.std() == pytest.approx(1.0)
    assert transform_outputs(np.array([1.0, 1.0]), "standardize").tolist() == [0.0, 0.0]
    ties = transform_outputs(np.array([1.0, 1.0, 2.0]), "rank")
    assert ties[0] == ties[1] < ties[2]
    with pytest.raises(ValueError, match="output transform"):
        transform_outputs(y, "log")
