"""Warm start end to end over gRPC: ValidateAlgorithmSettings and GetSuggestions with a prior source
(the Kubernetes source against the fake API server, and a static in-memory source)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from suggestion_service.__main__ import main as service_main
from suggestion_service.kube_priors import KubernetesPriorSource
from suggestion_service.priors import PriorExperiment, PriorTrial, StaticPriorSource
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.server import start_server
from tests.client.fake_k8s import FakeKubeAPI

from .builders import bert_space, make_experiment, make_request
from .test_kube_priors import NS, experiment_object
from .test_warm_start import BEST, GRID, bert_value

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI(namespaces=(NS,)).start()
    api.put("experiments", experiment_object("sst2-random"))
    for i, a in enumerate(GRID[1::2]):
        v = str(bert_value(a))
        api.add_trial(
            NS, "sst2-random", f"sst2-random-{i:03d}", a, "Succeeded", metrics={"accuracy": (v, v, v)}
        )
    yield api
    api.stop()


@pytest.fixture
def stub(fake: FakeKubeAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[api_pb2_grpc.SuggestionStub]:
    monkeypatch.setenv("POD_NAMESPACE", NS)
    server = start_server("127.0.0.1", 0, prior_source=KubernetesPriorSource(fake.url, token="t"))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield api_pb2_grpc.SuggestionStub(channel)
    server.stop(grace=1)


def experiment(refs: str = "sst2-random", algorithm: str = "surrogate-gp") -> api_pb2.Experiment:
    return make_experiment("mrpc-gp", bert_space(), algorithm, settings=[("warm_start_experiments", refs)])


def validate(stub: api_pb2_grpc.SuggestionStub, exp: api_pb2.Experiment) -> None:
    stub.ValidateAlgorithmSettings(api_pb2.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=30)


def test_validate_and_suggest_from_the_cluster(stub, fake: FakeKubeAPI, caplog) -> None:
    validate(stub, experiment())
    validate(stub, experiment(f"{NS}/sst2-random", "surrogate-rf"))
    with caplog.at_level("INFO", logger="suggestion_service"):
        reply = stub.GetSuggestions(make_request(experiment(), [], 2), timeout=30)
    picks = [{a.name: a.value for a in pa.assignments} for pa in reply.parameter_assignments]
    assert len(picks) == 2 and picks[0]["learning_rate"] == "3e-5"
    assert any("GetSuggestions" in r.getMessage() and "prior=12" in r.getMessage() for r in caplog.records)
    # One experiment GET and one trial list for the validation and the call together: the cache works.
    assert sum(1 for _, p in fake.requests if p.endswith("/experiments/sst2-random")) == 1


@pytest.mark.parametrize("rpc", ["validate", "suggest"])
def test_missing_or_forbidden_priors_are_invalid_argument(stub, fake: FakeKubeAPI, rpc: str) -> None:
    fake.deny(NS, "trials", "list")
    calls = {
        "validate": lambda exp: validate(stub, exp),
        "suggest": lambda exp: stub.GetSuggestions(make_request(exp, [], 1), timeout=30),
    }
    for refs, text in [
        ("does-not-exist", "experiment katib-surrogate/does-not-exist: not found"),
        ("sst2-random", 'cannot list resource "trials"'),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            calls[rpc](experiment(refs))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert text in err.value.details() and "warm_start_experiments" in err.value.details()


def test_api_server_errors_are_unavailable_then_recover(stub, fake: FakeKubeAPI) -> None:
    fake.fail_next(503)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSuggestions(make_request(experiment(), [], 1), timeout=30)
    assert err.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "will be retried" in err.value.details() and "HTTP 503" in err.value.details()
    assert len(stub.GetSuggestions(make_request(experiment(), [], 1), timeout=30).parameter_assignments) == 1


def test_objective_mismatch_is_invalid_argument(stub, fake: FakeKubeAPI) -> None:
    exp = make_experiment(
        "mrpc-gp",
        bert_space(),
        "surrogate-gp",
        settings=[("warm_start_experiments", "sst2-random")],
        maximize=False,
    )
    with pytest.raises(grpc.RpcError) as err:
        validate(stub, exp)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "needs the same objective metric and direction" in err.value.details()


def test_static_source_and_no_source() -> None:
    prior = PriorExperiment(
        "default",
        "sst2",
        "accuracy",
        "maximize",
        tuple(PriorTrial(a, {"accuracy": str(bert_value(a))}) for a in GRID),
    )
    exp = make_experiment(
        "mrpc", bert_space(), "surrogate-rf", settings=[("warm_start_experiments", "default/sst2")]
    )
    with_source = start_server("127.0.0.1", 0, prior_source=StaticPriorSource([prior]))
    without = start_server("127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{with_source.port}") as channel:
            reply = api_pb2_grpc.SuggestionStub(channel).GetSuggestions(make_request(exp, [], 1), timeout=30)
            assert {a.name: a.value for a in reply.parameter_assignments[0].assignments} == BEST
        with (
            grpc.insecure_channel(f"127.0.0.1:{without.port}") as channel,
            pytest.raises(grpc.RpcError) as err,
        ):
            validate(api_pb2_grpc.SuggestionStub(channel), exp)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "no prior-trial source" in err.value.details()
    finally:
        with_source.stop(grace=1)
        without.stop(grace=1)


def test_command_line_flags(capsys) -> None:
    assert service_main(["--kube-token-file", "/x"]) == 2
    assert "need --kube-api-url" in capsys.readouterr().err
    assert service_main(["--warm-start-source", "kubernetes", "--port", "0"]) == 2
    assert "not in a Kubernetes pod" in capsys.readouterr().err


@pytest.mark.slow
def test_service_process_reads_priors_from_the_api(fake: FakeKubeAPI, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    proc = subprocess.Popen(
        [sys.executable, "-m", "suggestion_service", "--host", "127.0.0.1", "--port", "0",
         "--warm-start-source", "kubernetes", "--kube-api-url", fake.url, "--kube-token-file", str(token)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "POD_NAMESPACE": NS},
    )  # fmt: skip
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        port = int(line.split("port=")[1].split()[0])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            validate(api_pb2_grpc.SuggestionStub(channel), experiment())
        assert all(h == "Bearer t" for h in fake.auth_headers)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
