"""Acquisition functions: log-EI stability and agreement with the closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from suggestion_service import acquisition


def test_log_h_matches_the_direct_formula_where_that_is_accurate() -> None:
    z = np.linspace(-8, 6, 300)
    direct = np.log(norm.pdf(z) + z * norm.cdf(z))
    assert acquisition.log_h(z) == pytest.approx(direct, rel=1e-9, abs=1e-9)


def test_log_h_is_finite_and_increasing_far_below_the_incumbent() -> None:
    z = -np.logspace(0, 6, 400)[::-1]
    values = acquisition.log_h(z)
    assert np.all(np.isfinite(values))
    assert np.all(np.diff(values) > 0)
    # asymptote: log h(z) ~ -z^2/2 - log(sqrt(2 pi)) - 2 log|z|
    zz = np.array([-50.0, -500.0])
    approx = -0.5 * zz**2 - 0.5 * np.log(2 * np.pi) - 2 * np.log(np.abs(zz))
    assert acquisition.log_h(zz) == pytest.approx(approx, rel=1e-3)


def test_expected_improvement_closed_form() -> None:
    mu, sd, best = np.array([0.0, 1.0, -1.0]), np.array([1.0, 0.5, 2.0]), 0.2
    z = (best - mu) / sd
    closed = (best - mu) * norm.cdf(z) + sd * norm.pdf(z)
    assert acquisition.expected_improvement(mu, sd, best) == pytest.approx(closed)
    # far-away candidates still get distinct, ordered scores where plain EI is exactly 0
    far = acquisition.log_expected_improvement(np.array([60.0, 80.0]), np.array([1.0, 1.0]), 0.0)
    assert np.all(np.isfinite(far)) and far[0] > far[1]
    assert acquisition.expected_improvement(np.array([60.0]), np.array([1.0]), 0.0)[0] == 0.0


def test_xi_lowers_ei_and_pi() -> None:
    mu, sd = np.array([0.0]), np.array([1.0])
    assert acquisition.log_expected_improvement(mu, sd, 0.0, 0.5) < acquisition.log_expected_improvement(
        mu, sd, 0.0
    )
    assert acquisition.log_probability_of_improvement(mu, sd, 0.0) == pytest.approx(np.log(0.5))


def test_score_kinds() -> None:
    mu, sd = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    ucb = acquisition.score("ucb", mu, sd, 0.0, xi=0.0, kappa=2.0)
    assert ucb.tolist() == [2.0, 4.0]
    cheap_first = acquisition.score(
        "ei_per_cost", np.zeros(2), np.ones(2), 0.0, xi=0.0, kappa=0.0, log_cost=np.log([10.0, 100.0])
    )
    assert cheap_first[0] - cheap_first[1] == pytest.approx(np.log(10.0))
    assert acquisition.score("ei_per_cost", mu, sd, 0.0, xi=0.0, kappa=0.0) == pytest.approx(
        acquisition.score("ei", mu, sd, 0.0, xi=0.0, kappa=0.0)
    )
    with pytest.raises(ValueError, match="unknown acquisition"):
        acquisition.score("lcb", mu, sd, 0.0, xi=0.0, kappa=0.0)


def test_auto_alternates_ei_and_pi_on_grids_and_widens_xi_on_a_plateau_elsewhere() -> None:
    """``auto``: on an enumerable space ei after an even number of results and pi after an odd one;
    on a continuous space ei, with xi raised to PLATEAU_XI only while two results tie for the best;
    any explicit acquisition is used as set."""
    from types import SimpleNamespace

    from suggestion_service.settings import parse_settings
    from suggestion_service.space import SearchSpace
    from tests.service.builders import param

    grid = SearchSpace.from_proto([param("a", "int", min="1", max="8")])
    line = SearchSpace.from_proto([param("x", "double", min="0", max="1")])
    auto = parse_settings("surrogate-gp", [])

    def history(*losses: float) -> SimpleNamespace:
        values = np.array(losses)
        return SimpleNamespace(observed=list(values), losses=lambda: values)

    assert acquisition.for_call(auto, history(0.3, 0.2), grid) == ("ei", 0.0)
    assert acquisition.for_call(auto, history(0.3, 0.2, 0.1), grid) == ("pi", 0.0)
    assert acquisition.for_call(auto, history(0.3, 0.2, 0.1), line) == ("ei", 0.0)
    assert acquisition.for_call(auto, history(0.3, 0.1, 0.1), line) == ("ei", acquisition.PLATEAU_XI)
    assert acquisition.for_call(auto, history(0.1, 0.1, 0.3), grid) == ("pi", 0.0)
    explicit = parse_settings("surrogate-gp", [("acquisition", "ei"), ("xi", "0.1")])
    assert acquisition.for_call(explicit, history(0.3, 0.1, 0.1), line) == ("ei", 0.1)
    assert acquisition.for_call(explicit, history(0.3, 0.2, 0.1), grid) == ("ei", 0.1)
