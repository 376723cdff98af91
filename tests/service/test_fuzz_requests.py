"""Bad input over real gRPC: fuzzed Katib requests never crash, hang or get INTERNAL.

Every request below goes through an in-process ``start_server`` on loopback (protobuf encoding, the
handler, the status mapping). Each answer must be either a valid reply (exactly ``n`` feasible
assignments) or INVALID_ARGUMENT with a one-line message; anything else -- INTERNAL, UNKNOWN,
DEADLINE_EXCEEDED (a hang), a dropped connection -- fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from suggestion_service import engine
from suggestion_service.bayesopt import SearchParts
from suggestion_service.errors import InvalidArgument
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.server import RunningServer, start_server
from suggestion_service.settings import ALGORITHMS
from suggestion_service.space import SearchSpace

from .builders import TS, bert_space, make_experiment, make_request, make_trial, param

RPC_TIMEOUT_S = 30.0  # a reply slower than this on a tiny fuzzed request counts as a hang
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
_METHODS = ("GetSuggestions", "ValidateAlgorithmSettings")
INT32 = st.integers(-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = start_server("127.0.0.1", 0)
    yield srv
    srv.stop(0)


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


def _check_error(err: grpc.RpcError) -> str:
    """An error is acceptable only as INVALID_ARGUMENT with a clear one-line message."""
    code, details = err.code(), err.details() or ""
    assert code is grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"
    assert details.strip() and "\n" not in details and "Traceback" not in details, repr(details)
    return details


def _ask(channel: grpc.Channel, request: api_pb2.GetSuggestionsRequest) -> str | None:
    """GetSuggestions over the wire; checks the reply when OK. Returns the error message or None."""
    stub = api_pb2_grpc.SuggestionStub(channel)
    try:
        reply = stub.GetSuggestions(request, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as err:
        return _check_error(err)
    got = [{a.name: a.value for a in pa.assignments} for pa in reply.parameter_assignments]
    assert len(got) == request.current_request_number
    space = SearchSpace.from_proto(request.experiment.spec.parameter_specs.parameters)
    for assignment in got:
        assert list(assignment) == list(space.names) and space.contains(assignment), assignment
    return None


def _validate(channel: grpc.Channel, experiment: api_pb2.Experiment) -> str | None:
    stub = api_pb2_grpc.SuggestionStub(channel)
    try:
        stub.ValidateAlgorithmSettings(
            api_pb2.ValidateAlgorithmSettingsRequest(experiment=experiment), timeout=RPC_TIMEOUT_S
        )
    except grpc.RpcError as err:
        return _check_error(err)
    return None


# ---- strategies: hostile text, raw enum integers, messy specs and trials ---------------------------
NUMBER_TEXT = st.one_of(
    st.sampled_from(
        ["", " ", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e999999999", "1e-999999",
         "1e-400", "0x10", "1_000", " 1 ", "1e308", "-1e308", "5e-324", "0", "-0", "1", "-1", "2", "10",
         "0.5", "0.05", "1e-5", "3.0", "abc", "1/2", "١", "9" * 400]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)  # fmt: skip
NAMES = st.sampled_from(["a", "b", "c", "", "a"])
ENUM = st.one_of(st.sampled_from([0, 1, 2, 3, 4]), INT32)


@st.composite
def chaotic_param(draw: st.DrawFn) -> api_pb2.ParameterSpec:
    return api_pb2.ParameterSpec(
        name=draw(NAMES),
        parameter_type=draw(ENUM),
        feasible_space=api_pb2.FeasibleSpace(
            min=draw(NUMBER_TEXT),
            max=draw(NUMBER_TEXT),
            step=draw(st.one_of(st.just(""), NUMBER_TEXT)),
            list=draw(st.lists(NUMBER_TEXT, max_size=5)),
            distribution=draw(ENUM),
        ),
    )


@st.composite
def plausible_param(draw: st.DrawFn, name: str) -> api_pb2.ParameterSpec:
    """A valid spec (so that the OK path is fuzzed too), with extreme but legal values."""
    kind = draw(st.sampled_from(["double", "int", "discrete", "categorical"]))
    if kind in ("double", "int"):
        lo = draw(
            st.sampled_from([0, 1, -5, 2, 1000]) if kind == "int" else st.sampled_from([0, 1e-5, 0.5, -3.5])
        )
        width = draw(st.sampled_from([1, 3, 10, 10**6] if kind == "int" else [1e-9, 0.5, 10.0, 1e300]))
        hi = lo + width
        step = draw(st.sampled_from(["", "", "1"] if kind == "int" else ["", "", repr(width / 4)]))
        log = lo > 0 and draw(st.booleans())
        text = str if kind == "int" else repr
        return param(
            name, kind, min=text(lo), max=text(hi), step=step, distribution="logUniform" if log else None
        )
    pool = (
        ["1", "2", "1e-5", "0.1", "32", "-7", "1e300"]
        if kind == "discrete"
        else ["x", "y", "", " ", "ü", "1"]
    )
    values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True))
    return param(name, kind, values=values)


@st.composite
def experiments(draw: st.DrawFn) -> api_pb2.Experiment:
    """Half chaotic; half valid experiments of which a third get one field broken."""
    setting_names = st.sampled_from(
        ["acquisition", "n_candidates", "random_state", "xi", "kappa", "cost_metric", "n_initial_points",
         "batch_strategy", "failed_trials", "n_trees", "gp_restarts", "bogus", ""]
    )  # fmt: skip
    if draw(st.booleans()):
        return make_experiment(
            draw(st.text(max_size=20)),
            draw(st.lists(chaotic_param(), min_size=1, max_size=4)),
            draw(st.sampled_from([*ALGORITHMS, "", "bogus", "surrogate-GP"])),
            settings=draw(st.lists(st.tuples(setting_names, NUMBER_TEXT), max_size=3)),
            maximize=draw(st.booleans()),
            metric=draw(st.sampled_from(["accuracy", "", "loss"])),
            max_trial_count=draw(st.one_of(st.integers(0, 50), INT32)),
            parallel_trial_count=draw(st.one_of(st.integers(0, 8), INT32)),
        )
    algorithm = draw(st.sampled_from(ALGORITHMS))
    params = [draw(plausible_param(f"p{i}")) for i in range(draw(st.integers(1, 4)))]
    if algorithm == "grid":
        for p in params:
            if p.parameter_type == api_pb2.DOUBLE and not p.feasible_space.step:
                p.feasible_space.step = repr((float(p.feasible_space.max) - float(p.feasible_space.min)) / 5)
    exp = make_experiment(draw(st.text(max_size=20)), params, algorithm, maximize=draw(st.booleans()))
    if draw(st.integers(0, 2)) == 0:  # break one thing
        broken = draw(st.sampled_from(["param", "setting", "objective", "metric"]))
        if broken == "param":
            exp.spec.parameter_specs.parameters.append(draw(chaotic_param()))
        elif broken == "setting":
            name, value = draw(st.tuples(setting_names, NUMBER_TEXT))
            exp.spec.algorithm.algorithm_settings.add(name=name, value=value)
        elif broken == "objective":
            exp.spec.objective.type = draw(INT32)
        else:
            exp.spec.objective.objective_metric_name = ""
    return exp


@st.composite
def trials_for(draw: st.DrawFn, experiment: api_pb2.Experiment) -> list[api_pb2.Trial]:
    names = [p.name for p in experiment.spec.parameter_specs.parameters] + ["zzz"]
    out = []
    for i in range(draw(st.integers(0, 8))):
        assignment = {name: draw(NUMBER_TEXT) for name in draw(st.lists(st.sampled_from(names), max_size=5))}
        metrics = {
            draw(st.sampled_from(["accuracy", "loss", "gpu_seconds", ""])): draw(NUMBER_TEXT)
            for _ in range(draw(st.integers(0, 2)))
        }
        out.append(make_trial(f"t{i}", assignment, draw(ENUM), metrics))
    return out


@st.composite
def request_numbers(draw: st.DrawFn) -> int:
    """Mostly the batch sizes Katib sends (1-8); one draw in four is hostile."""
    if draw(st.integers(0, 3)) > 0:
        return draw(st.integers(1, 8))
    return draw(
        st.one_of(
            st.integers(-3, 0),
            st.sampled_from([-(2**31), -1, engine.MAX_REQUEST_NUMBER + 1, 10**6, 2**31 - 1]),
        )
    )


@FUZZ
@given(data=st.data())
def test_fuzzed_get_suggestions_is_valid_or_invalid_argument(channel, data) -> None:
    exp = data.draw(experiments())
    request = make_request(exp, data.draw(trials_for(exp)), 0)
    request.current_request_number = data.draw(request_numbers())
    request.total_request_number = data.draw(st.one_of(st.integers(0, 20), INT32))
    event("reply" if (m := _ask(channel, request)) is None else "INVALID_ARGUMENT " + m[:40])


@FUZZ
@given(exp=experiments())
def test_fuzzed_validate_is_ok_or_invalid_argument(channel, exp) -> None:
    event("valid" if _validate(channel, exp) is None else "INVALID_ARGUMENT")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300), method=st.sampled_from(_METHODS))
def test_random_bytes_are_invalid_argument_or_a_valid_reply(channel, payload: bytes, method: str) -> None:
    call = channel.unary_unary(f"/api.v1.beta1.Suggestion/{method}")  # bytes in, bytes out
    try:
        call(payload, timeout=RPC_TIMEOUT_S)
        event("reply")
    except grpc.RpcError as err:
        event("undecodable" if "not a valid" in _check_error(err) else "decoded, INVALID_ARGUMENT")


def test_a_message_that_is_not_a_katib_request_is_invalid_argument(channel) -> None:
    call = channel.unary_unary("/api.v1.beta1.Suggestion/GetSuggestions")
    with pytest.raises(grpc.RpcError) as err:
        call(b"\xff\xff\xff\xff", timeout=RPC_TIMEOUT_S)
    assert "GetSuggestionsRequest" in _check_error(err.value)


# ---- named edge cases, each with the message a user would see ----------------------------------------
def _space(*params: api_pb2.ParameterSpec) -> Sequence[api_pb2.ParameterSpec]:
    return list(params)


EDGE_CASES = [
    ("no parameters", _space(), "no parameters"),
    ("empty name", _space(param("", "double", min="0", max="1")), "empty name"),
    ("min > max", _space(param("a", "double", min="2", max="1")), "must be smaller than max"),
    ("missing max", _space(param("a", "int", min="1")), "feasibleSpace.max is required"),
    ("non-numeric min", _space(param("a", "double", min="abc", max="1")), "'abc' is not a number"),
    ("NaN bound", _space(param("a", "double", min="nan", max="1")), "finite"),
    ("bound beyond double", _space(param("a", "double", min="0", max="1e400")), "double range"),
    ("huge exponent", _space(param("a", "double", min="0", max="1e999999999")), "double range"),
    ("range overflows", _space(param("a", "double", min="-1e308", max="1e308")), "overflows a double"),
    ("step tiny", _space(param("a", "double", min="0", max="1", step="1e-999999")), "more than"),
    ("int range huge", _space(param("a", "int", min="0", max="100000000000000000000")), "more than"),
    ("empty list", _space(param("a", "categorical")), "list is empty"),
    ("discrete text", _space(param("a", "discrete", values=["1", "x"])), "use categorical"),
    ("discrete span", _space(param("a", "discrete", values=["1e308", "-1e308"])), "overflows a double"),
    ("duplicates", _space(param("a", "categorical", values=["x", "x"])), "duplicate"),
    ("normal dist", _space(param("a", "double", min="0", max="1", distribution="normal")), "not supported"),
    (
        "unknown type",
        _space(
            api_pb2.ParameterSpec(name="a", parameter_type=77, feasible_space=api_pb2.FeasibleSpace(min="0"))
        ),
        "parameter type 77",
    ),
    (
        "unknown distribution",
        _space(
            api_pb2.ParameterSpec(
                name="a",
                parameter_type=api_pb2.DOUBLE,
                feasible_space=api_pb2.FeasibleSpace(min="0", max="1", distribution=-9),
            )
        ),
        "unknown distribution value -9",
    ),
    (
        "10k parameters",
        _space(*(param(f"p{i}", "double", min="0", max="1") for i in range(10_000))),
        f"at most {engine.MAX_PARAMETERS}",
    ),
    (
        "10k categorical parameters",
        _space(*(param(f"p{i}", "categorical", values=["a", "b", "c"]) for i in range(10_000))),
        f"at most {engine.MAX_PARAMETERS}",
    ),
    (
        "one 100k-value categorical",
        _space(param("a", "categorical", values=[str(i) for i in range(100_000)])),
        f"at most {engine.MAX_ENCODED_WIDTH}",
    ),
    (
        "astronomical finite space",
        _space(*(param(f"p{i}", "categorical", values=list("abcde")) for i in range(900))),
        "at most 10^300",
    ),
]


@pytest.mark.parametrize(("space", "needle"), [c[1:] for c in EDGE_CASES], ids=[c[0] for c in EDGE_CASES])
@pytest.mark.parametrize("algorithm", ["surrogate-gp", "random"])
def test_bad_search_spaces_are_invalid_argument_quickly(channel, algorithm, space, needle) -> None:
    exp = make_experiment("edge", space, algorithm)
    for message in (_validate(channel, exp), _ask(channel, make_request(exp, [], 2))):
        assert message is not None and needle in message, message
    built: list[int] = []  # rejected up front: no model is ever built (timing: bench/service_latency.py)
    counting = SearchParts(surrogate=lambda settings, seed, *args: built.append(seed))  # type: ignore[arg-type,func-returns-value]
    with pytest.raises(InvalidArgument, match=re.escape(needle)):
        engine.get_suggestions(make_request(exp, [], 2), parts=counting)
    assert not built


@pytest.mark.parametrize("n", [-1, -(2**31), engine.MAX_REQUEST_NUMBER + 1, 2**31 - 1])
def test_request_numbers_out_of_range_are_invalid_argument(channel, n: int) -> None:
    exp = make_experiment("e", bert_space(), "surrogate-rf")
    message = _ask(channel, make_request(exp, [], n))
    assert message is not None and "current_request_number" in message and str(n) in message


def test_thousand_parameter_space_gets_a_valid_reply(channel) -> None:
    space = [param(f"p{i}", "double", min="0", max="1") for i in range(engine.MAX_PARAMETERS)]
    assert _ask(channel, make_request(make_experiment("wide", space, "random"), [], 2)) is None


def test_bad_metric_values_and_unknown_trial_names_are_skipped_not_fatal(channel) -> None:
    exp = make_experiment("metrics", bert_space(), "surrogate-gp")
    good = {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"}
    trials = [
        make_trial(f"t{i}", good, TS.SUCCEEDED, {"accuracy": value})
        for i, value in enumerate(["nan", "NaN", "inf", "-inf", "1e400", "", "abc", "0x1p3"])
    ]
    trials += [
        make_trial("unknown-name", {**good, "dropout": "0.1"}, TS.SUCCEEDED, {"accuracy": "0.9"}),
        make_trial("missing-name", {"learning_rate": "2e-5"}, TS.SUCCEEDED, {"accuracy": "0.9"}),
        make_trial("infeasible", {**good, "batch_size": "17"}, TS.SUCCEEDED, {"accuracy": "0.9"}),
        make_trial("unknown-condition", good, 99, {"accuracy": "0.9"}),
    ]
    assert _ask(channel, make_request(exp, trials, 4)) is None


def test_server_still_serving_after_the_fuzzing(server: RunningServer, channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    resp = health.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), timeout=10)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    assert _ask(channel, make_request(make_experiment("after", bert_space(), "surrogate-gp"), [], 3)) is None


def test_lenient_registration_covers_every_rpc_of_the_proto() -> None:
    """``add_suggestion_servicer`` replaces the generated registration: it must list the same RPCs."""
    from suggestion_service import server as server_module

    service = api_pb2.DESCRIPTOR.services_by_name["Suggestion"]
    assert service.full_name == server_module._SERVICE_NAME
    assert {m.name for m in service.methods} == set(_METHODS)
