"""Batch picks: the incremental fantasy posterior equals a refit per pick; the RPC deadline completes a
late batch from the candidate pool."""

# ruff: noqa: N803, N806  (matrix notation: X is a design matrix)

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from suggestion_service import engine
from suggestion_service.acquisition import log_expected_improvement
from suggestion_service.deadline import NO_DEADLINE, Deadline
from suggestion_service.server import SuggestionServicer, reply_margin, work_deadline
from suggestion_service.surrogates import ForestSurrogate, GPSurrogate, Surrogate

from .builders import bert_space, continuous_space, make_experiment, make_request, make_trial

N_PICKS = 7


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.random((30, 3))
    y = np.sin(4 * X[:, 0]) + (X[:, 1] - 0.4) ** 2 + 0.05 * rng.standard_normal(30)
    return X, y, rng.random((150, 3))


def _greedy(
    model: Surrogate, X: np.ndarray, y: np.ndarray, C: np.ndarray, lie: float | None, incremental: bool
) -> tuple[list[int], list[tuple[np.ndarray, np.ndarray]]]:
    """N_PICKS expected-improvement picks over C, each fantasised at its rounded row (as a pick is
    canonicalised) before the next; returns the picks and the posterior over all of C before each.

    incremental: ``fantasy_posterior`` (capacity 2, so it must grow; the first steps ask about a part
    of C only, so the rest is tracked after fantasies), else ``conditioned`` on everything per pick."""
    posterior = model.fantasy_posterior(C, capacity=2) if incremental else None
    fit_X, fit_y, best = X, y, float(y.min())
    picks: list[int] = []
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    part = np.arange(0, len(C), 3)
    for step in range(N_PICKS):
        idx = part if step < 3 else np.arange(len(C))
        if posterior is not None:
            mu, sd = posterior.predict_candidates(idx)
        else:
            mu, sd = model.conditioned(fit_X, fit_y).predict(C[idx])
        seen.append((mu, sd))
        order = np.argsort(-log_expected_improvement(mu, sd, best), kind="stable")
        j = int(next(i for i in idx[order] if i not in picks))
        picks.append(j)
        x = np.round(C[j], 3)
        if posterior is not None:
            value = posterior.add(x, lie)
        else:
            value = float(model.conditioned(fit_X, fit_y).predict(x[None, :])[0][0]) if lie is None else lie
        fit_X, fit_y = np.vstack([fit_X, x]), np.append(fit_y, value)
        best = min(best, value)
    return picks, seen


@pytest.mark.parametrize("lie", [None, 0.25], ids=["kriging_believer", "constant_liar"])
@pytest.mark.parametrize("kind", ["gp", "forest"])
def test_fantasy_posterior_matches_a_refit_per_pick(kind: str, lie: float | None) -> None:
    X, y, C = _problem()
    model = GPSurrogate(random_state=0) if kind == "gp" else ForestSurrogate(random_state=0, n_trees=16)
    model.fit(X, y)
    picks, got = _greedy(model, X, y, C, lie, incremental=True)
    ref_picks, want = _greedy(model, X, y, C, lie, incremental=False)
    assert picks == ref_picks
    assert len(set(picks)) == N_PICKS
    for (mu, sd), (ref_mu, ref_sd) in zip(got, want, strict=True):
        np.testing.assert_allclose(mu, ref_mu, rtol=0, atol=1e-9)
        np.testing.assert_allclose(sd, ref_sd, rtol=1e-7, atol=1e-9)
    if lie is not None:  # a lie away from the mean moves the posterior mean, so the check has teeth
        assert not np.allclose(got[-1][0], model.predict(C)[0])


def _continuous_history(n: int) -> list:
    rng = np.random.default_rng(0)
    return [
        make_trial(
            f"t{i}",
            {"lr": f"{10 ** rng.uniform(-5, -1):.6g}", "layers": str(rng.integers(1, 9)), "dropout": "0.1"},
            metrics={"accuracy": f"{rng.uniform(0.5, 0.9):.4f}"},
        )
        for i in range(n)
    ]


def _keys(assignments: list[dict[str, str]]) -> set[tuple]:
    return {tuple(sorted(a.items())) for a in assignments}


@pytest.mark.parametrize("algorithm", ["surrogate-gp", "surrogate-rf"])
def test_a_batch_past_its_deadline_is_completed_from_the_pool(algorithm: str, caplog) -> None:
    exp = make_experiment("late", continuous_space(), algorithm)
    trials = _continuous_history(12)
    request = make_request(exp, trials, 20)
    full = engine.get_suggestions(request).assignments
    assert engine.get_suggestions(request, deadline=Deadline.after(3600)).assignments == full
    with caplog.at_level(logging.WARNING):
        late = engine.get_suggestions(request, deadline=Deadline.after(-1)).assignments
    assert len(late) == 20 == len(_keys(late))
    assert not _keys(late) & _keys(
        [{a.name: a.value for a in t.spec.parameter_assignments.assignments} for t in trials]
    )
    assert late[0] == full[0]  # the first pick is always the model's
    assert late != full
    assert "deadline reached after 1 model picks; 19 finished from the candidate pool" in caplog.text


def test_a_late_batch_in_a_finite_space_repeats_nothing() -> None:
    space = bert_space()
    configs = [
        {"learning_rate": lr, "batch_size": bs, "max_seq_length": "128", "num_epochs": ne}
        for lr in ("2e-5", "3e-5", "5e-5")
        for bs in ("16", "32")
        for ne in ("3", "4")
    ]
    trials = [
        make_trial(f"t{i}", c, metrics={"accuracy": str(0.6 + i / 100)}) for i, c in enumerate(configs[:10])
    ]
    exp = make_experiment("late-grid", space, "surrogate-gp")
    result = engine.get_suggestions(make_request(exp, trials, 14), deadline=Deadline.after(-1))
    assert not result.exhausted
    got = _keys(result.assignments)
    assert len(got) == 14
    assert not got & _keys(configs[:10])


class _Context:
    """The part of grpc.ServicerContext the GetSuggestions handler uses."""

    def __init__(self, remaining: float) -> None:
        self.remaining = remaining

    def time_remaining(self) -> float:
        return self.remaining

    def abort(self, code, details) -> None:
        raise AssertionError(f"aborted: {code} {details}")


def test_work_deadline_keeps_a_margin_and_ignores_no_deadline() -> None:
    assert work_deadline(_Context(9.223372035058544e18)) == NO_DEADLINE  # grpc's "no deadline"
    assert not NO_DEADLINE.passed()
    now = time.monotonic()
    assert now + 54 < work_deadline(_Context(60.0)).at < time.monotonic() + 55.1  # type: ignore[operator]
    assert reply_margin(60.0) == 5.0
    assert reply_margin(2.0) == pytest.approx(0.2)
    assert work_deadline(_Context(0.0)).at <= time.monotonic()  # type: ignore[operator]
    assert work_deadline(_Context(0.0)).passed()


def test_the_handler_answers_in_full_when_the_deadline_has_passed(caplog) -> None:
    exp = make_experiment("late-rpc", continuous_space(), "surrogate-gp")
    request = make_request(exp, _continuous_history(12), 6)
    with caplog.at_level(logging.WARNING):
        reply = SuggestionServicer().GetSuggestions(request, _Context(0.0))
    assert len(reply.parameter_assignments) == 6
    assert "5 finished from the candidate pool" in caplog.text
