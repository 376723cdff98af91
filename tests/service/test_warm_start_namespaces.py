"""Warm start is confined to the service's own namespace unless the operator allows others, and its
errors never carry another experiment's parameter or metric values."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from suggestion_service import engine
from suggestion_service.__main__ import build_parser
from suggestion_service.errors import InvalidArgument
from suggestion_service.prior_fetch import ANY_NAMESPACE, WarmStart, parse_namespaces
from suggestion_service.priors import PriorExperiment, PriorTrial, StaticPriorSource
from suggestion_service.proto import api_pb2, api_pb2_grpc
from suggestion_service.server import start_server
from tests.client.fake_k8s import FakeKubeAPI

from .builders import make_request
from .test_kube_priors import NS, experiment_object
from .test_warm_start import GRID, ScriptedSource, bert_value, prior_experiment, warm_experiment

ROOT = Path(__file__).resolve().parents[2]
FLAG_HINT = "--warm-start-namespaces=team-b in the args of this algorithm's katib-config entry"


def rejections(exp: api_pb2.Experiment, ws: WarmStart) -> list[str]:
    """The INVALID_ARGUMENT messages of validation and of a first GetSuggestions for ``exp``."""
    messages = []
    for call in (
        lambda: engine.validate_experiment(exp, ws),
        lambda: engine.get_suggestions(make_request(exp, [], 1), ws),
    ):
        with pytest.raises(InvalidArgument) as err:
            call()
        messages.append(str(err.value))
    return messages


def test_another_namespace_is_rejected_by_default_before_anything_is_read() -> None:
    source = ScriptedSource(prior_experiment("sst2", "team-b"))
    ws = WarmStart(source, namespace="team-a")
    for message in rejections(warm_experiment(refs="sst2,team-b/sst2"), ws):
        assert "team-b/sst2 is in namespace 'team-b'" in message
        assert "only from 'team-a'" in message and FLAG_HINT in message
        assert "an Experiment cannot set it" in message
    assert source.calls == 0


def test_the_own_namespace_needs_no_permission_written_out_or_bare() -> None:
    prior = prior_experiment("sst2", "team-a")
    for refs in ("sst2", "team-a/sst2"):
        ws = WarmStart(StaticPriorSource([prior]), namespace="team-a")
        engine.validate_experiment(warm_experiment(refs=refs), ws)


def test_namespaces_the_operator_allows_are_read_and_others_still_rejected() -> None:
    priors = [prior_experiment("sst2", "team-b"), prior_experiment("cola", "team-c")]
    ws = WarmStart(StaticPriorSource(priors), namespace="team-a", allowed_namespaces={"team-b"})
    engine.validate_experiment(warm_experiment(refs="team-b/sst2"), ws)
    with pytest.raises(InvalidArgument, match="only from 'team-a', 'team-b'") as err:
        engine.validate_experiment(warm_experiment(refs="team-b/sst2,team-c/cola"), ws)
    assert "team-c/cola is in namespace 'team-c'" in str(err.value)
    anywhere = WarmStart(StaticPriorSource(priors), namespace="team-a", allowed_namespaces=[ANY_NAMESPACE])
    engine.validate_experiment(warm_experiment(refs="team-b/sst2,team-c/cola"), anywhere)


def test_parse_namespaces() -> None:
    assert parse_namespaces(" team-b, team-c ,") == {"team-b", "team-c"}
    assert parse_namespaces("*") == {ANY_NAMESPACE}
    for bad in ("", " , ", "Team", "a/b", "x" * 64, "team b", "-team"):
        with pytest.raises(ValueError, match="comma-separated namespaces"):
            parse_namespaces(bad)


def test_the_flag_and_its_default(capsys) -> None:
    assert build_parser().parse_args([]).warm_start_namespaces == frozenset()
    args = build_parser().parse_args(["--warm-start-namespaces", "team-b,team-c"])
    assert args.warm_start_namespaces == {"team-b", "team-c"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--warm-start-namespaces", "Team_B"])
    assert "comma-separated namespaces" in capsys.readouterr().err


# ---- over gRPC: ValidateAlgorithmSettings rejects what the server does not allow ---------------------


def _validate(port: int, refs: str) -> grpc.RpcError | None:
    exp = warm_experiment(refs=refs)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            api_pb2_grpc.SuggestionStub(channel).ValidateAlgorithmSettings(
                api_pb2.ValidateAlgorithmSettingsRequest(experiment=exp), timeout=30
            )
        except grpc.RpcError as err:
            return err
    return None


def test_validate_over_grpc_follows_the_servers_allowed_namespaces(monkeypatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "team-a")
    source = StaticPriorSource([prior_experiment("sst2", "team-b")])
    confined = start_server("127.0.0.1", 0, prior_source=source)
    allowing = start_server("127.0.0.1", 0, prior_source=source, warm_start_namespaces=["team-b"])
    try:
        err = _validate(confined.port, "team-b/sst2")
        assert err is not None and err.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "team-b/sst2 is in namespace 'team-b'" in err.details() and FLAG_HINT in err.details()
        assert _validate(allowing.port, "team-b/sst2") is None
    finally:
        confined.stop(grace=1)
        allowing.stop(grace=1)


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI(namespaces=(NS, "team-b")).start()
    api.put("experiments", experiment_object("sst2", namespace="team-b"))
    for i, a in enumerate(GRID[:6]):
        v = str(bert_value(a))
        api.add_trial("team-b", "sst2", f"sst2-{i:03d}", a, "Succeeded", metrics={"accuracy": (v, v, v)})
    yield api
    api.stop()


@pytest.mark.slow
def test_service_process_reads_another_namespace_only_with_the_flag(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    base = [sys.executable, "-m", "suggestion_service", "--host", "127.0.0.1", "--port", "0",
            "--warm-start-source", "kubernetes", "--kube-api-url", fake.url, "--kube-token-file", str(token)]  # fmt: skip
    for extra, allowed in (([], False), (["--warm-start-namespaces", "team-b"], True)):
        proc = subprocess.Popen(
            base + extra, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"PATH": "/usr/bin:/bin", "POD_NAMESPACE": NS},
        )  # fmt: skip
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            err = _validate(int(line.split("port=")[1].split()[0]), "team-b/sst2")
            if allowed:
                assert err is None
            else:
                assert err is not None and err.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert "--warm-start-namespaces=team-b" in err.details()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


# ---- errors name the reference, never the prior's data ------------------------------------------------

SECRET_LR = "0.000123456789"
SECRET_METRIC = "0.987654321"


def _secret_prior(**kwargs) -> PriorExperiment:
    """A prior of team-b whose trials all hold a learning rate this space does not list."""
    trials = tuple(
        PriorTrial({**a, "learning_rate": SECRET_LR}, {"accuracy": SECRET_METRIC}) for a in GRID[:4]
    )
    return PriorExperiment("team-b", "sst2", kwargs.get("metric", "accuracy"), "maximize", trials)


def test_a_prior_that_does_not_fit_is_rejected_without_its_values(caplog) -> None:
    ws = WarmStart(StaticPriorSource([_secret_prior()]), namespace="team-a", allowed_namespaces={"team-b"})
    exp = warm_experiment(refs="team-b/sst2")
    with (
        caplog.at_level(logging.INFO, logger="suggestion_service.warm_start"),
        pytest.raises(InvalidArgument) as err,
    ):
        engine.validate_experiment(exp, ws)
    message = str(err.value)
    assert "experiment team-b/sst2 fits this search space" in message
    assert "4 with a value outside this search space" in message
    assert SECRET_LR not in message and SECRET_METRIC not in message
    assert SECRET_LR in caplog.text  # the pod's log keeps an example, for the operator


def test_an_objective_mismatch_names_the_objectives_not_the_trials() -> None:
    ws = WarmStart(
        StaticPriorSource([_secret_prior(metric="f1")]), namespace="team-a", allowed_namespaces={"team-b"}
    )
    for message in rejections(warm_experiment(refs="team-b/sst2"), ws):
        assert "team-b/sst2 has objective maximize 'f1'" in message
        assert SECRET_LR not in message and SECRET_METRIC not in message
