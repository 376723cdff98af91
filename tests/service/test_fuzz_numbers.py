"""Extreme and malformed numbers in every numeric field, for every parameter type and algorithm, over
the wire: a valid reply or INVALID_ARGUMENT, never INTERNAL; and whatever ValidateAlgorithmSettings
accepts, GetSuggestions serves (issue 15). ``event`` counts land in hypothesis' statistics
(``pytest --hypothesis-show-statistics``); docs/reliability.md records a run's counts."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from suggestion_service.server import start_server
from suggestion_service.settings import ALGORITHMS

from .builders import make_experiment, make_request, make_trial, param
from .test_fuzz_requests import _ask, _validate

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
EXTREME = st.one_of(
    st.sampled_from(
        ["1e999999999", "-1e999999999", "1e-999999999", "1e308", "-1e308", "1.7976931348623157e308",
         "1.8e308", "5e-324", "-0", "nan", "inf", "", " ", "abc", "0x10", "1_0", "9" * 400, "1e400"]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
)  # fmt: skip
SPACES = {
    "int": param("a", "int", min="1", max="8"),
    "int-log": param("a", "int", min="1", max="1000", distribution="logUniform"),
    "stepped": param("a", "double", min="0", max="1", step="0.1"),
    "double": param("a", "double", min="1e-5", max="1", distribution="logUniform"),
    "discrete": param("a", "discrete", values=["1e-5", "0.1", "32"]),
    "categorical": param("a", "categorical", values=["x", "y"]),
}
SETTING_RANGES = {  # numeric settings, with values inside and outside their documented ranges
    "n_candidates": ["64", "65", "50000", "63", "1e999999999"],
    "random_state": ["0", "4294967295", "4294967296", "-1", "9" * 5000],
    "n_initial_points": ["1", "1000", "0", "1e3"],
    "xi": ["0", "10", "1e-999999999", "nan"],
    "kappa": ["0", "100", "1e308"],
    "gp_restarts": ["0", "10", "11"],
    "n_trees": ["8", "1000", "7"],
}


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    srv = start_server("127.0.0.1", 0)
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as ch:
        yield ch
    srv.stop(0)


@FUZZ
@given(data=st.data())
def test_extreme_numbers_in_assignments_metrics_and_bounds(channel, data) -> None:
    kind = data.draw(st.sampled_from(sorted(SPACES)))
    algorithm = data.draw(st.sampled_from(ALGORITHMS))
    spec = SPACES[kind].__deepcopy__()
    if data.draw(st.integers(0, 3)) == 0 and kind not in ("discrete", "categorical"):
        setattr(spec.feasible_space, data.draw(st.sampled_from(["min", "max", "step"])), data.draw(EXTREME))
    parallel = data.draw(st.integers(1, 8))
    exp = make_experiment("extreme", [spec], algorithm, parallel_trial_count=parallel)
    trials = [
        make_trial(f"t{i}", {"a": data.draw(EXTREME)}, data.draw(st.sampled_from([1, 2, 4, 6])),
                   {"accuracy": data.draw(EXTREME)})
        for i in range(data.draw(st.integers(0, 6)))
    ]  # fmt: skip
    message = _ask(channel, make_request(exp, trials, data.draw(st.integers(1, parallel))))
    event(f"{kind} {algorithm}: " + ("reply" if message is None else "INVALID_ARGUMENT"))


@FUZZ
@given(data=st.data())
def test_what_validate_accepts_get_suggestions_serves(channel, data) -> None:
    algorithm = data.draw(st.sampled_from(["surrogate-gp", "surrogate-rf"]))
    names = data.draw(st.lists(st.sampled_from(sorted(SETTING_RANGES)), max_size=3, unique=True))
    if algorithm == "surrogate-gp":
        names = [n for n in names if n != "n_trees"]
    else:
        names = [n for n in names if n not in ("gp_restarts", "xi", "kappa")]
    chosen = [(n, data.draw(st.sampled_from(SETTING_RANGES[n]))) for n in names]
    if any(n == "kappa" for n, _ in chosen):
        chosen.append(("acquisition", "ucb"))
    specs = [SPACES[k] for k in data.draw(st.lists(st.sampled_from(sorted(SPACES)), min_size=1, max_size=3))]
    params = [s.__deepcopy__() for s in specs]
    for i, p in enumerate(params):
        p.name = f"p{i}"
    parallel = data.draw(st.integers(1, 8))
    exp = make_experiment("served", params, algorithm, settings=chosen, parallel_trial_count=parallel)
    if _validate(channel, exp) is not None:
        event("rejected by Validate")
        return
    for n in (1, parallel):
        assert _ask(channel, make_request(exp, [], n)) is None, (chosen, n)
    event("validated and served")
