"""Issue 15: requests that used to end in INTERNAL, bounded fit data, and every phase under the deadline."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service import candidates, engine
from suggestion_service.bayesopt import SearchParts
from suggestion_service.deadline import Deadline
from suggestion_service.errors import InvalidArgument
from suggestion_service.fit_subset import select_rows
from suggestion_service.history import build_history
from suggestion_service.model_fit import MAX_FIT_ROWS, fit_model, make_surrogate
from suggestion_service.numbers import NumberError, to_decimal, to_float, to_int
from suggestion_service.settings import parse_settings
from suggestion_service.space import SearchSpace

from .builders import TS, continuous_space, make_experiment, make_request, make_trial, param


def _valid(request, result) -> None:
    space = SearchSpace.from_proto(request.experiment.spec.parameter_specs.parameters)
    assert len(result.assignments) == request.current_request_number
    assert all(space.contains(a) for a in result.assignments)


# ---- 1: more assignments asked than candidates scored ------------------------------------------------
@pytest.mark.parametrize("n_trials", [0, 1])
def test_more_assignments_than_candidates_before_any_model(n_trials: int) -> None:
    exp = make_experiment(
        "many", [param("x", "double", min="0", max="1")], "surrogate-gp", settings=[("n_candidates", "64")]
    )
    trials = [make_trial("t0", {"x": "0.5"}, TS.SUCCEEDED, {"accuracy": "0.7"})][:n_trials]
    request = make_request(exp, trials, 65)
    engine.validate_experiment(exp)
    result = engine.get_suggestions(request)
    _valid(request, result)
    assert len({a["x"] for a in result.assignments}) == 65 and not result.exhausted


# ---- 2: absurd numbers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["1e999999999", "-1e999999999", "1e400", "nan", "inf", "", "abc", "9" * 400, "0x10", None]
)
def test_the_checked_conversion_raises_only_number_error(text) -> None:
    for convert in (to_float, to_decimal, to_int):
        if convert is to_int and text == "9" * 400:
            text = "9" * 5000  # an int of 400 digits is an int; Python refuses to parse 5000
        with pytest.raises(NumberError):
            convert(text)


def test_the_checked_conversion_keeps_exact_values() -> None:
    assert str(to_decimal(" 0.005 ")) == "0.005" and to_float("1e-3") == 0.001 and to_int(" -7 ") == -7
    assert to_decimal("1e-999999999").is_finite()  # tiny: exact, arithmetic on it only underflows


@pytest.mark.parametrize(
    "spec",
    [
        param("a", "int", min="1", max="8"),
        param("a", "double", min="0", max="1", step="0.1"),
        param("a", "double", min="0", max="1"),
        param("a", "discrete", values=["1", "2"]),
    ],
)
@pytest.mark.parametrize("value", ["1e999999999", "-1e999999999", "1e-999999999", "1e308"])
def test_an_absurd_assignment_is_skipped_like_any_unusable_trial(spec, value: str) -> None:
    exp = make_experiment("absurd", [spec], "surrogate-gp")
    trials = [make_trial("bad", {"a": value}, TS.SUCCEEDED, {"accuracy": "0.5"})]
    space = SearchSpace.from_proto([spec])
    history = build_history(space, trials, exp.spec.objective, None)
    if value != "1e-999999999":  # beyond the range (a tiny value may round to a feasible one)
        assert not history.observed and not history.failed and not history.pending
    request = make_request(exp, trials, 2)
    _valid(request, engine.get_suggestions(request))


def test_absurd_settings_are_invalid_argument() -> None:
    for name, value in [("n_candidates", "1e999999999"), ("xi", "1e999999999"), ("random_state", "9" * 5000)]:
        with pytest.raises(InvalidArgument, match=name):
            parse_settings("surrogate-gp", [(name, value)])


# ---- 3: bounded fit data and candidate memory -----------------------------------------------------------
def test_the_fit_subset_is_bounded_deterministic_and_keeps_best_and_recent() -> None:
    rng = np.random.default_rng(0)
    rows, loss = rng.random((5000, 3)), rng.random(5000)
    keep = select_rows(rows, loss, 1000, n_ordered=4000)
    assert len(keep) == 1000 == len(set(keep.tolist())) and np.all(np.diff(keep) > 0)
    assert np.array_equal(keep, select_rows(rows, loss, 1000, n_ordered=4000))
    assert set(np.argsort(loss)[:250].tolist()) <= set(keep.tolist())
    assert set(range(3750, 4000)) - set(np.argsort(loss)[:250].tolist()) <= set(keep.tolist())
    assert np.array_equal(select_rows(rows[:900], loss[:900], 1000), np.arange(900))


def test_a_large_history_is_fitted_on_a_bounded_subset_with_its_best_observation() -> None:
    params = continuous_space()
    space = SearchSpace.from_proto(params)
    rng = np.random.default_rng(1)
    raws = space.sample_raw(rng.random((1500, len(space.params))))
    trials = [
        make_trial(f"t{i}", space.assignment(r), metrics={"accuracy": f"{rng.random():.6f}"})
        for i, r in enumerate(raws)
    ]
    exp = make_experiment("large", params, "surrogate-gp")
    settings = parse_settings("surrogate-gp", [])
    history = build_history(space, trials, exp.spec.objective, None)
    fitted = fit_model(space, history, settings, seed=0)
    limit = MAX_FIT_ROWS["surrogate-gp"]
    assert len(fitted.X) == limit == fitted.n_observed
    assert float(fitted.y.min()) == float(fitted.y[: fitted.n_observed].min())
    request = make_request(exp, trials, 3)
    _valid(request, engine.get_suggestions(request))


def test_candidate_cells_beyond_the_memory_budget_are_invalid_argument() -> None:
    wide = [param(f"c{i}", "categorical", values=[f"v{j}" for j in range(100)]) for i in range(5)]
    exp = make_experiment("wide", wide, "surrogate-gp", settings=[("n_candidates", "50000")])
    with pytest.raises(InvalidArgument, match=f"at most {candidates.MAX_CANDIDATE_CELLS}"):
        engine.validate_experiment(exp)
    with pytest.raises(InvalidArgument, match="n_candidates"):
        engine.get_suggestions(make_request(exp, [], 1))


# ---- 4: every phase under the deadline ------------------------------------------------------------------
def _history(n: int) -> list:
    space = SearchSpace.from_proto(continuous_space())
    rng = np.random.default_rng(2)
    return [
        make_trial(f"t{i}", space.assignment(r), metrics={"accuracy": f"{rng.random():.4f}"})
        for i, r in enumerate(space.sample_raw(rng.random((n, len(space.params)))))
    ]


@pytest.mark.parametrize("algorithm", ["surrogate-gp", "surrogate-rf"])
@pytest.mark.parametrize("seconds", [-1.0, 0.0, 0.05])
def test_a_design_past_its_deadline_is_complete(algorithm: str, seconds: float) -> None:
    exp = make_experiment("late-design", continuous_space(), algorithm, settings=[("n_candidates", "4096")])
    request = make_request(exp, [], 200)
    result = engine.get_suggestions(request, deadline=Deadline.after(seconds))
    _valid(request, result)
    assert len({tuple(sorted(a.items())) for a in result.assignments}) == 200


def test_the_design_loop_stops_at_the_deadline() -> None:
    space = SearchSpace.from_proto(continuous_space())
    rng = np.random.default_rng(0)
    pool = space.sample_raw(rng.random((500, len(space.params))))
    late = candidates.space_filling(space, rng, 50, pool[:0], pool, deadline=Deadline.after(-1))
    on_time = candidates.space_filling(space, np.random.default_rng(0), 50, pool[:0], pool)
    assert len(late) == 50 == len({tuple(r) for r in late})
    assert np.array_equal(late[1:], np.delete(pool, np.flatnonzero((pool == late[0]).all(1)), axis=0)[:49])
    assert not np.array_equal(late, on_time)


def test_a_fit_when_time_is_short_restarts_the_optimiser_less() -> None:
    exp = make_experiment("late-fit", continuous_space(), "surrogate-gp", settings=[("gp_restarts", "10")])
    request = make_request(exp, _history(12), 3)
    restarts: list[int] = []

    def recording(settings, seed, *args):
        restarts.append(settings.gp_restarts)
        return make_surrogate(settings, seed, *args)

    parts = SearchParts(surrogate=recording)
    _valid(request, engine.get_suggestions(request, parts=parts))
    _valid(request, engine.get_suggestions(request, parts=parts, deadline=Deadline.after(1.0)))
    _valid(request, engine.get_suggestions(request, parts=parts, deadline=Deadline.after(-1)))
    assert restarts == [10, 1, 1]


def test_scoring_past_the_deadline_keeps_enough_candidates_for_the_batch() -> None:
    exp = make_experiment(
        "late-score", continuous_space(), "surrogate-gp", settings=[("n_candidates", "20000")]
    )
    request = make_request(exp, _history(12), 40)
    result = engine.get_suggestions(request, deadline=Deadline.after(-1))
    _valid(request, result)
    assert len({tuple(sorted(a.items())) for a in result.assignments}) == 40
