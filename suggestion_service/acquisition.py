"""Acquisition functions on a minimisation problem (lower loss is better); larger scores are better.

Expected improvement is computed in log space so that it still ranks candidates whose plain EI
underflows to 0 (far below the incumbent, z << 0): log h(z) with h(z) = phi(z) + z Phi(z) uses
``erfcx`` for z < -1 and the asymptotic series for very negative z (the LogEI formulation of
Ament et al., NeurIPS 2023).

The surrogate search scores candidates through an ``Acquisition``: a function of the model's mean and
std at the candidates, the incumbent and the predicted log cost. ``from_settings`` is the one the
settings name (``score`` with their xi, kappa and cost exponent); the search takes an
``AcquisitionFactory`` (default ``from_settings``), so a prototype acquisition is an argument, not a
patch of this module (``bench/optimizers/experimental.py``). ``predicted_mean`` ranks by the mean
alone (warm start before the first own observation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

from suggestion_service import candidates

if TYPE_CHECKING:
    from suggestion_service.history import History
    from suggestion_service.settings import Settings
    from suggestion_service.space import SearchSpace

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
_SQRT2 = math.sqrt(2.0)


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z * Phi(z)), accurate for every real z."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    mid = z > -1.0
    zm = z[mid]
    out[mid] = np.log(np.exp(-0.5 * zm * zm - _LOG_SQRT_2PI) + zm * ndtr(zm))
    low = ~mid
    zl = z[low]
    far = zl < -1e4
    near = ~far
    zn = zl[near]
    # h(z) = phi(z) * (1 - |z| sqrt(pi/2) erfcx(|z|/sqrt2)) for z < 0
    inner = np.log1p(-np.abs(zn) * _SQRT_HALF_PI * erfcx(np.abs(zn) / _SQRT2))
    vals = np.empty_like(zl)
    vals[near] = -0.5 * zn * zn - _LOG_SQRT_2PI + inner
    zf = zl[far]
    vals[far] = -0.5 * zf * zf - _LOG_SQRT_2PI - 2.0 * np.log(np.abs(zf))
    out[low] = vals
    return out


def log_expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """log E[max(best - xi - f, 0)] for f ~ N(mu, sd^2)."""
    sd = np.maximum(np.asarray(sd, dtype=float), 1e-12)
    z = (best - xi - np.asarray(mu, dtype=float)) / sd
    return log_h(z) + np.log(sd)


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """Plain EI (exp of the log form; underflows to 0 far from the incumbent)."""
    return np.exp(log_expected_improvement(mu, sd, best, xi))


def log_probability_of_improvement(
    mu: np.ndarray, sd: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """log P(f < best - xi)."""
    sd = np.maximum(np.asarray(sd, dtype=float), 1e-12)
    return log_ndtr((best - xi - np.asarray(mu, dtype=float)) / sd)


def confidence_bound(mu: np.ndarray, sd: np.ndarray, kappa: float) -> np.ndarray:
    """Negated lower confidence bound -(mu - kappa * sd): the UCB of the objective being maximised."""
    return kappa * np.asarray(sd, dtype=float) - np.asarray(mu, dtype=float)


#: The acquisition kinds ``score`` computes.
KINDS = ("ei", "ucb", "pi", "ei_per_cost")


def score(
    kind: str,
    mu: np.ndarray,
    sd: np.ndarray,
    best: float,
    *,
    xi: float,
    kappa: float,
    log_cost: np.ndarray | None = None,
    cost_exponent: float = 1.0,
) -> np.ndarray:
    """Acquisition values of candidates (larger is better) for kind ei | pi | ucb | ei_per_cost.

    ``log_cost`` is the cost model's predicted mean log cost; ei_per_cost = log EI - alpha * log cost,
    i.e. the log of EI / cost^alpha. Without a cost prediction it equals ei.
    """
    if kind == "ei":
        return log_expected_improvement(mu, sd, best, xi)
    if kind == "pi":
        return log_probability_of_improvement(mu, sd, best, xi)
    if kind == "ucb":
        return confidence_bound(mu, sd, kappa)
    if kind == "ei_per_cost":
        log_ei = log_expected_improvement(mu, sd, best, xi)
        if log_cost is None:
            return log_ei
        return log_ei - cost_exponent * np.asarray(log_cost, dtype=float)
    raise ValueError(f"unknown acquisition {kind!r}; allowed: ei, ucb, pi, ei_per_cost")


class Acquisition(Protocol):
    """Scores of candidates (larger is better) on a minimisation problem."""

    def __call__(
        self, mu: np.ndarray, sd: np.ndarray, best: float, log_cost: np.ndarray | None
    ) -> np.ndarray:
        """``mu``/``sd``: the model's mean and latent std at the candidates; ``best``: the incumbent
        (lowest) output; ``log_cost``: predicted log cost of the candidates (None: no cost model)."""
        ...


#: The acquisition of one call: (settings, history, space) -> Acquisition (the signature of
#: ``from_settings``).
AcquisitionFactory = Callable[["Settings", "History", "SearchSpace"], Acquisition]


def scorer(kind: str, *, xi: float, kappa: float, cost_exponent: float = 1.0) -> Acquisition:
    """The ``Acquisition`` computing ``score(kind, ...)`` with these parameters (ValueError for an
    unknown kind, raised now rather than at the first call)."""
    if kind not in KINDS:
        raise ValueError(f"unknown acquisition {kind!r}; allowed: {', '.join(KINDS)}")

    def acquire(mu: np.ndarray, sd: np.ndarray, best: float, log_cost: np.ndarray | None) -> np.ndarray:
        return score(kind, mu, sd, best, xi=xi, kappa=kappa, log_cost=log_cost, cost_exponent=cost_exponent)

    return acquire


#: ``auto``'s improvement margin (xi, in transformed output units) while completed trials share the best
#: value outside enumerable spaces (``best_is_shared``).
PLATEAU_XI = 0.5


def best_is_shared(history: History) -> bool:
    """Whether at least two completed trials reached exactly the best value so far: a plateau of a
    quantised metric (accuracy on a small validation set moves in steps of 1/examples), where plain EI
    keeps proposing neighbours of the incumbents that can only tie it."""
    losses = history.losses()
    if len(losses) < 2:
        return False
    best = float(losses.min())
    return int(np.sum(np.abs(losses - best) <= 1e-12 * max(1.0, abs(best)))) >= 2


def for_call(settings: Settings, history: History, space: SearchSpace) -> tuple[str, float]:
    """This call's acquisition kind and xi: the settings' own, except for ``auto``:

    * enumerable spaces (``candidates.is_enumerable``): ei after an even number of completed trials,
      pi after an odd one. Ten benchmark grids, holdout seeds: -0.37 trials to the best against plain
      ei (p 0.004); on continuous and mixed spaces the alternation did worse (docs/benchmarks.md,
      optimizers-tuning);
    * other spaces: ei, with xi at least ``PLATEAU_XI`` while ``best_is_shared`` (live SVM task of the
      benchmark, accuracy in steps of 1/569: closer to the best on 3 of 4 settings on two random
      streams; problems without ties are unaffected)."""
    kind, xi = settings.acquisition, settings.xi
    if kind != "auto":
        return kind, xi
    if candidates.is_enumerable(space):
        return ("pi" if len(history.observed) % 2 == 1 else "ei"), xi
    return "ei", (max(xi, PLATEAU_XI) if best_is_shared(history) else xi)


def from_settings(settings: Settings, history: History, space: SearchSpace) -> Acquisition:
    """``scorer`` of this call's kind and xi (``for_call``) with the settings' kappa and cost
    exponent."""
    kind, xi = for_call(settings, history, space)
    return scorer(kind, xi=xi, kappa=settings.kappa, cost_exponent=settings.cost_exponent)


def predicted_mean(mu: np.ndarray, sd: np.ndarray, best: float, log_cost: np.ndarray | None) -> np.ndarray:
    """Rank by the predicted mean alone (-mu): exploitation, no uncertainty bonus."""
    return -np.asarray(mu)
