"""Surrogate models: fit/predict behaviour, fantasies, and the GP likelihood gradient."""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix, as in scikit-learn's fit(X, y))

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.tree import DecisionTreeRegressor

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


FOREST_KINDS = {"random_forest": RandomForestRegressor, "extra_trees": ExtraTreesRegressor}


def _forest_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.random((50, 3))
    return X, smooth(X) + 0.1 * rng.standard_normal(50), rng.random((200, 3))


def _assert_tree_mean_and_spread(mu: np.ndarray, sd: np.ndarray, per_tree: np.ndarray) -> None:
    """mu, sd are the mean and the population std (variance floored at 1e-12) of per_tree (trees, n)."""
    np.testing.assert_allclose(mu, per_tree.mean(axis=0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(sd**2 - 1e-12, per_tree.var(axis=0), rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", FOREST_KINDS)
def test_forest_is_the_sklearn_ensemble(kind: str) -> None:
    X, y, test = _forest_problem()
    model = ForestSurrogate(random_state=7, n_trees=24, kind=kind).fit(X, y)
    assert type(model.estimator) is FOREST_KINDS[kind]
    reference = clone(model.estimator).fit(X, y)  # fitted independently: same parameters, seed and data
    mu, sd = model.predict(test)
    np.testing.assert_allclose(mu, reference.predict(test), rtol=0, atol=1e-9)
    _assert_tree_mean_and_spread(mu, sd, np.array([t.predict(test) for t in reference.estimators_]))


def _tree_with_fantasies(tree: DecisionTreeRegressor, X_f: np.ndarray, y_f: np.ndarray) -> np.ndarray:
    """A fitted tree's leaf values after adding rows (X_f, y_f) of weight 1 to its leaves, from
    scikit-learn's own leaf statistics (mean and in-bag weight per node)."""
    nodes = tree.tree_
    sums = nodes.value[:, 0, 0] * nodes.weighted_n_node_samples
    weights = nodes.weighted_n_node_samples.copy()
    leaves = tree.apply(X_f)
    np.add.at(sums, leaves, y_f)
    np.add.at(weights, leaves, 1.0)
    return sums / weights


@pytest.mark.parametrize("kind", FOREST_KINDS)
def test_forest_fantasies_add_rows_to_sklearns_leaf_statistics(kind: str) -> None:
    X, y, test = _forest_problem()
    model = ForestSurrogate(random_state=3, n_trees=24, kind=kind).fit(X, y)
    reference = clone(model.estimator).fit(X, y)
    X_f, y_f = test[:6], np.array([3.0, -2.0, 3.0, 0.5, 3.0, -1.0])  # far from the data: the means move
    per_tree = np.array([_tree_with_fantasies(t, X_f, y_f)[t.apply(test)] for t in reference.estimators_])
    _assert_tree_mean_and_spread(
        *model.conditioned(np.vstack([X, X_f]), np.r_[y, y_f]).predict(test), per_tree
    )
    posterior = model.fantasy_posterior(test)
    for x, value in zip(X_f, y_f, strict=True):
        assert posterior.add(x, value) == value
    _assert_tree_mean_and_spread(*posterior.predict_candidates(np.arange(len(test))), per_tree)
    assert np.abs(per_tree.mean(axis=0) - reference.predict(test)).max() > 0.1
    with pytest.raises(ValueError, match="fit rows first"):
        model.conditioned(X[1:], y[1:])


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


def test_gp_predictions_equal_scikit_learn_predict_including_chunked_calls() -> None:
    """The written-out prediction of the default kernel is sklearn's ``predict(return_std=True)``, with
    the noise removed from the variance, in the fitted output units (also across PREDICT_CHUNK)."""
    import warnings

    from suggestion_service import surrogates

    rng = np.random.default_rng(5)
    X, y = rng.random((70, 4)), rng.normal(size=70)
    gp = surrogates.GPSurrogate(random_state=2).fit(X, y)
    C = rng.random((surrogates.PREDICT_CHUNK + 17, 4))
    mu, sd = gp.predict(C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_mu, ref_sd = gp._gp.predict(C, return_std=True)
    ref_var = np.maximum(ref_sd**2 - gp.kernel.k2.noise_level, 1e-12)
    assert np.allclose(mu, ref_mu * gp._scale + gp._mean, rtol=0, atol=1e-10)
    assert np.allclose(sd, np.sqrt(ref_var) * gp._scale, rtol=0, atol=1e-10)
