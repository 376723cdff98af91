"""The gRPC layer in-process: handlers, status codes, health, metrics, concurrency limit, shutdown."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from suggestion_service.__main__ import build_parser
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.server import RunningServer, start_server
from tests.service.builders import bert_space, make_experiment, make_request, make_trial

COND = api_pb2.TrialStatus.TrialConditionType


@pytest.fixture
def running() -> Iterator[RunningServer]:
    srv = start_server("127.0.0.1", 0, metrics_port=0)
    yield srv
    srv.stop(0)


@pytest.fixture
def stub(running: RunningServer) -> Iterator[api_pb2_grpc.SuggestionStub]:
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield api_pb2_grpc.SuggestionStub(channel)


def _assignments(reply: api_pb2.GetSuggestionsReply) -> list[dict[str, str]]:
    return [{a.name: a.value for a in pa.assignments} for pa in reply.parameter_assignments]


@pytest.mark.parametrize("algorithm", ["surrogate-gp", "surrogate-rf", "grid", "random"])
def test_every_algorithm_answers_with_exactly_n_feasible_assignments(stub, algorithm: str) -> None:
    space = bert_space()
    exp = make_experiment("sst2-" + algorithm, space, algorithm)
    done = make_trial(
        "t1",
        {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"},
        COND.Value("SUCCEEDED"),
        {"accuracy": "0.9"},
    )
    reply = stub.GetSuggestions(make_request(exp, [done], 4), timeout=60)
    got = _assignments(reply)
    assert len(got) == 4
    allowed = {p.name: set(p.feasible_space.list) for p in space}
    for a in got:
        assert set(a) == set(allowed)
        assert all(v in allowed[k] for k, v in a.items())
    assert len({tuple(sorted(a.items())) for a in got}) == 4
    # Katib names the trials and ignores our algorithm settings unless we set them: we set neither.
    assert all(pa.trial_name == "" for pa in reply.parameter_assignments)
    assert not reply.HasField("algorithm")


def test_zero_requested_gives_an_empty_reply(stub) -> None:
    exp = make_experiment("e", bert_space(), "surrogate-gp")
    assert _assignments(stub.GetSuggestions(make_request(exp, [], 0), timeout=30)) == []


@pytest.mark.parametrize(
    ("algorithm", "settings", "needle"),
    [
        ("surrogate-gp", [("acquisition", "banana")], "acquisition"),
        ("surrogate-gp", [("no_such_setting", "1")], "no_such_setting"),
        ("bayesian-magic", [], "bayesian-magic"),
    ],
)
def test_bad_settings_are_invalid_argument_in_both_rpcs(stub, algorithm, settings, needle) -> None:
    exp = make_experiment("e", bert_space(), algorithm, settings=settings)
    with pytest.raises(grpc.RpcError) as err:
        stub.ValidateAlgorithmSettings(api_pb2.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=30)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(make_request(exp, [], 1), timeout=30)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_valid_settings_validate_ok(stub) -> None:
    exp = make_experiment("e", bert_space(), "surrogate-gp", settings=[("acquisition", "ucb")])
    stub.ValidateAlgorithmSettings(api_pb2.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=30)


def test_unexpected_exception_becomes_internal_with_one_line(stub, monkeypatch) -> None:
    from suggestion_service import engine

    def boom(*_args, **_kwargs):
        raise RuntimeError("first line\nsecond line with internals")

    monkeypatch.setattr(engine, "get_suggestions", boom)
    exp = make_experiment("e", bert_space(), "surrogate-gp")
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(make_request(exp, [], 1), timeout=30)
    assert err.value.code() is grpc.StatusCode.INTERNAL
    assert err.value.details() == "internal error in GetSuggestions: RuntimeError: first line"


def test_health_serving_then_not_serving_on_shutdown() -> None:
    srv = start_server("127.0.0.1", 0)
    with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "manager.v1beta1.Suggestion"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    srv.stop(0)
    # enter_graceful_shutdown() flipped every key before the port closed.
    check = srv.health.Check(health_pb2.HealthCheckRequest(service="manager.v1beta1.Suggestion"), None)
    assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_metrics_endpoint_counts_requests_errors_and_history(running: RunningServer, stub) -> None:
    exp = make_experiment("e", bert_space(), "surrogate-gp")
    stub.GetSuggestions(make_request(exp, [], 2), timeout=30)
    bad = make_experiment("e", bert_space(), "surrogate-gp", settings=[("acquisition", "banana")])
    with pytest.raises(grpc.RpcError):
        stub.GetSuggestions(make_request(bad, [], 1), timeout=30)
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert (
        'katib_surrogate_requests_total{algorithm="surrogate-gp",code="OK",rpc="GetSuggestions"} 1.0' in text
    )
    assert (
        'katib_surrogate_errors_total{algorithm="surrogate-gp",code="INVALID_ARGUMENT",rpc="GetSuggestions"} 1.0'
        in text
    )
    assert 'katib_surrogate_request_seconds_count{algorithm="surrogate-gp",rpc="GetSuggestions"} 2.0' in text
    assert 'katib_surrogate_history_trials_count{algorithm="surrogate-gp"} 2.0' in text
    assert 'katib_surrogate_fit_seconds_count{algorithm="surrogate-gp"} 1.0' in text
    assert 'katib_surrogate_assignments_total{algorithm="surrogate-gp"} 2.0' in text


def test_one_log_line_per_request(stub, caplog) -> None:
    caplog.set_level("INFO", logger="suggestion_service")
    exp = make_experiment("sst2-surrogate-rf", bert_space(), "surrogate-rf")
    stub.GetSuggestions(make_request(exp, [], 3), timeout=30)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GetSuggestions")]
    assert len(lines) == 1
    line = lines[0]
    for part in (
        "experiment=sst2-surrogate-rf",
        "algorithm=surrogate-rf",
        "requested=3",
        "trials=0",
        "code=OK",
    ):
        assert part in line
    assert " ms=" in line


def test_requests_over_the_concurrency_limit_get_resource_exhausted(monkeypatch) -> None:
    from suggestion_service import engine

    release = threading.Event()
    entered = threading.Event()
    real = engine.get_suggestions

    def slow(*args, **kwargs):
        entered.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "get_suggestions", slow)
    srv = start_server("127.0.0.1", 0, max_concurrent_rpcs=1)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            exp = make_experiment("e", bert_space(), "random")
            first = stub.GetSuggestions.future(make_request(exp, [], 1), timeout=30)
            assert entered.wait(10)
            with pytest.raises(grpc.RpcError) as err:
                stub.GetSuggestions(make_request(exp, [], 1), timeout=30)
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            release.set()
            assert len(first.result().parameter_assignments) == 1
    finally:
        release.set()
        srv.stop(0)


def test_oversized_messages_are_refused() -> None:
    srv = start_server("127.0.0.1", 0, max_message_bytes=4096)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = api_pb2_grpc.SuggestionStub(channel)
            exp = make_experiment("x" * 10_000, bert_space(), "random")
            with pytest.raises(grpc.RpcError) as err:
                stub.GetSuggestions(make_request(exp, [], 1), timeout=30)
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        srv.stop(0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "expected 0-65535"),
        (["--port", "abc"], "expected an integer"),
        (["--workers", "0"], "positive integer"),
    ],
)
def test_cli_rejects_bad_flags(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_defaults_are_what_katib_dials() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.metrics_port) == ("0.0.0.0", 6789, None)


def test_dockerfile_entrypoint_and_pins_match_the_project() -> None:
    """The image runs this package's __main__ and pins exactly the lock's versions."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "suggestion_service/Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "suggestion_service"]' in dockerfile
    assert "USER 65532" in dockerfile
    lock = dict(
        line.split("==")
        for line in (root / "requirements/constraints.txt").read_text().split()
        if "==" in line
    )
    for line in (root / "suggestion_service/requirements.txt").read_text().split():
        name, version = line.split("==")
        assert lock.get(name) == version, f"{name}=={version} in the image, {lock.get(name)} in the lock"
