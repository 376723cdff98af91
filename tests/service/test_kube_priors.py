"""The Kubernetes prior source against the fake API server (tests/client/fake_k8s.py) on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from suggestion_service.errors import Unavailable
from suggestion_service.kube_priors import (
    KubernetesPriorSource,
    make_prior_source,
    pick_metric,
    trial_from_object,
)
from suggestion_service.prior_fetch import WarmStart
from suggestion_service.priors import (
    NoPriorSource,
    PriorError,
    PriorForbidden,
    PriorNotFound,
    PriorUnavailable,
)
from tests.client.fake_k8s import FakeKubeAPI

NS = "katib-surrogate"


OBJECTIVE = {
    "type": "maximize",
    "objectiveMetricName": "accuracy",
    "additionalMetricNames": ["f1"],
    "metricStrategies": [{"name": "accuracy", "value": "max"}, {"name": "f1", "value": "latest"}],
}


def experiment_object(name: str, objective: dict | None = None, namespace: str = NS) -> dict:
    """An Experiment as the API server stores it (only what the source reads matters)."""
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": objective or OBJECTIVE,
            "algorithm": {"algorithmName": "random"},
        },
    }


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI(namespaces=(NS, "team-b")).start()
    yield api
    api.stop()


def load_sst2(fake: FakeKubeAPI, n: int = 5) -> None:
    """Experiment sst2-random with ``n`` succeeded trials, one failed, one running, and another
    experiment's trial in the same namespace."""
    fake.put("experiments", experiment_object("sst2-random"))
    for i in range(n):
        fake.add_trial(
            NS, "sst2-random", f"sst2-random-{i:03d}", {"learning_rate": "3e-5", "batch_size": str(16 + i)},
            "Succeeded", metrics={"accuracy": ("0.5", f"0.8{i}", "0.7"), "f1": ("0.1", "0.9", f"0.6{i}")},
            objective=OBJECTIVE,
        )  # fmt: skip
    fake.add_trial(
        NS, "sst2-random", "sst2-random-failed", {"learning_rate": "5e-5", "batch_size": "32"}, "Failed"
    )
    fake.add_trial(
        NS, "sst2-random", "sst2-random-running", {"learning_rate": "2e-5", "batch_size": "32"}, "Running"
    )
    fake.add_trial(NS, "other", "other-000", {"learning_rate": "2e-5", "batch_size": "16"}, "Succeeded",
                   metrics={"accuracy": ("0.1", "0.1", "0.1")})  # fmt: skip


def source(fake: FakeKubeAPI, **kwargs) -> KubernetesPriorSource:
    return KubernetesPriorSource(fake.url, token=kwargs.pop("token", "sa-token"), **kwargs)


def test_fetch_reads_objective_and_labelled_trials_with_metric_strategies(fake: FakeKubeAPI) -> None:
    load_sst2(fake)
    prior = source(fake).fetch(NS, "sst2-random")
    assert (prior.ref, prior.objective_metric_name, prior.objective_type) == (
        f"{NS}/sst2-random",
        "accuracy",
        "maximize",
    )
    assert len(prior.trials) == 7  # the other experiment's trial is not selected
    done = [t for t in prior.trials if t.succeeded]
    assert len(done) == 5
    first = next(t for t in done if t.assignment["batch_size"] == "16")
    assert first.assignment == {"learning_rate": "3e-5", "batch_size": "16"}
    assert first.metrics == {"accuracy": "0.80", "f1": "0.60"}  # max for accuracy, latest for f1
    assert {t.succeeded for t in prior.trials if t.assignment["learning_rate"] != "3e-5"} == {False}
    assert ("GET", f"/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments/sst2-random") in fake.requests
    assert all(h == "Bearer sa-token" for h in fake.auth_headers)


def test_pagination_follows_continue_tokens(fake: FakeKubeAPI) -> None:
    load_sst2(fake, n=11)
    prior = source(fake, page_size=4).fetch(NS, "sst2-random")
    assert len(prior.trials) == 13  # 11 succeeded, 1 failed, 1 running
    pages = [p for m, p in fake.requests if p.endswith("/trials")]
    assert len(pages) == 4  # ceil(13 / 4)


def test_missing_experiment_is_not_found(fake: FakeKubeAPI) -> None:
    with pytest.raises(
        PriorNotFound, match=rf"experiment {NS}/nope: not found \(HTTP 404: .*\"nope\" not found"
    ):
        source(fake).fetch(NS, "nope")


def test_rbac_forbidden_on_trials_names_the_missing_rule(fake: FakeKubeAPI) -> None:
    load_sst2(fake)
    fake.deny(NS, "trials", "list")
    with pytest.raises(PriorForbidden) as err:
        source(fake).fetch(NS, "sst2-random")
    message = str(err.value)
    assert (
        'trials.kubeflow.org is forbidden: User "system:serviceaccount:katib-surrogate:katib-surrogate-suggestion" '
        'cannot list resource "trials" in API group "kubeflow.org" in the namespace "katib-surrogate"'
    ) in message
    assert "get/list on trials" in message and "manifests/optional/warm-start" in message


def test_rbac_forbidden_on_the_experiment(fake: FakeKubeAPI) -> None:
    load_sst2(fake)
    fake.deny(NS, "experiments", "get")
    with pytest.raises(
        PriorForbidden, match=r'experiments.kubeflow.org "sst2-random" is forbidden: .* cannot get'
    ):
        source(fake).fetch(NS, "sst2-random")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_unavailable(fake: FakeKubeAPI, status: int) -> None:
    load_sst2(fake)
    fake.fail_next(status)
    with pytest.raises(PriorUnavailable, match=f"HTTP {status}"):
        source(fake).fetch(NS, "sst2-random")
    assert len(source(fake).fetch(NS, "sst2-random").trials) == 7  # the next call works


def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PriorUnavailable, match="cannot reach the Kubernetes API"):
        KubernetesPriorSource(f"http://127.0.0.1:{port}", timeout_s=2).fetch(NS, "x")


def test_token_file_is_reread_so_rotated_tokens_work(fake: FakeKubeAPI, tmp_path: Path) -> None:
    load_sst2(fake)
    token = tmp_path / "token"
    token.write_text("old-token\n")
    fake.require_tokens("old-token")
    src = KubernetesPriorSource(fake.url, token_file=token)
    src.fetch(NS, "sst2-random")
    token.write_text("new-token\n")
    fake.require_tokens("new-token")
    assert len(src.fetch(NS, "sst2-random").trials) == 7
    fake.require_tokens("other-token")
    with pytest.raises(PriorForbidden, match="rejected the service account token"):
        src.fetch(NS, "sst2-random")


def test_experiment_without_objective_is_an_error(fake: FakeKubeAPI) -> None:
    fake.put("experiments", experiment_object("broken", {"type": "maximize"}))
    with pytest.raises(PriorError, match="has no usable objective"):
        source(fake).fetch(NS, "broken")


def test_the_trials_own_metric_strategies_win(fake: FakeKubeAPI) -> None:
    fake.put("experiments", experiment_object("e"))
    fake.add_trial(NS, "e", "e-0", {"x": "1"}, "Succeeded", metrics={"accuracy": ("0.1", "0.9", "0.5")},
                   objective={**OBJECTIVE, "metricStrategies": [{"name": "accuracy", "value": "latest"}]})  # fmt: skip
    fake.add_trial(NS, "e", "e-1", {"x": "2"}, "Succeeded", metrics={"accuracy": ("0.1", "0.9", "0.5")},
                   objective={"type": "maximize", "objectiveMetricName": "accuracy"})  # fmt: skip
    trials = source(fake).fetch(NS, "e").trials
    assert [t.metrics["accuracy"] for t in trials] == ["0.5", "0.9"]


def test_pick_metric_follows_katib() -> None:
    metric = {"min": "0.1", "max": "0.9", "latest": "0.5"}
    assert [pick_metric(metric, s) for s in ("min", "max", "latest")] == ["0.1", "0.9", "0.5"]
    assert pick_metric({"max": "unavailable", "latest": "0.4"}, "max") == "0.4"
    assert pick_metric({}, "max") == ""


def test_in_cluster_and_auto_configuration(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    src = KubernetesPriorSource.in_cluster(env, tmp_path)
    assert src.api_url == "https://10.0.0.1:443" and src.token_file == tmp_path / "token"
    assert KubernetesPriorSource.in_cluster(
        {**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path
    ).api_url == ("https://[fd00::1]:443")
    with pytest.raises(ValueError, match="KUBERNETES_SERVICE_HOST/PORT are not set"):
        KubernetesPriorSource.in_cluster({}, tmp_path)
    assert isinstance(make_prior_source("auto", env={}), NoPriorSource)
    assert isinstance(make_prior_source("none", api_url="http://127.0.0.1:1"), NoPriorSource)
    assert make_prior_source("kubernetes", api_url="http://127.0.0.1:1").api_url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="not in a Kubernetes pod"):
        make_prior_source("kubernetes", env={})
    with pytest.raises(ValueError, match="unknown warm-start source 'k8s'"):
        make_prior_source("k8s")
    with pytest.raises(ValueError, match="invalid Kubernetes API URL"):
        KubernetesPriorSource("ftp://x")


# ---- malformed answers and tokens: always a PriorError, never an uncaught exception (-> INTERNAL) ------


class RawHTTP:
    """A loopback server that answers every connection with the same raw bytes (a broken proxy or API
    server: not necessarily valid HTTP), after holding it until ``release`` is set or ``hold_s`` has
    passed (0: at once); ``answered`` is set once it has sent an answer."""

    def __init__(self, payload: bytes, hold_s: float = 0.0) -> None:
        self.payload = payload
        self.hold_s = hold_s
        self.release = threading.Event()
        self.answered = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            if self.hold_s:
                self.release.wait(self.hold_s)
            try:
                conn.sendall(self.payload)
            except OSError:
                return
            self.answered.set()

    def close(self) -> None:
        self.release.set()
        self.sock.close()


_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    "payload",
    [
        b"HELLO\r\n\r\n",  # not an HTTP status line
        _JSON + b'Content-Length: 100\r\n\r\n{"kind":',  # connection closed mid-body
        b"HTTP/1.1 500 Oops\r\nContent-Length: 100\r\n\r\n{",  # error answer cut short
        _JSON + b"Content-Length: 2\r\n\r\n\xff\xfe",  # not UTF-8
        _JSON + b"Content-Length: 100000\r\n\r\n" + b"[" * 100000,  # nested too deep to decode
    ],
    ids=["bad-status-line", "truncated-body", "truncated-error", "not-utf8", "deep-json"],
)
def test_unreadable_answers_are_unavailable(payload: bytes) -> None:
    server = RawHTTP(payload)
    try:
        with pytest.raises(PriorUnavailable, match=f"experiment {NS}/x"):
            KubernetesPriorSource(server.url, token="t", timeout_s=5).fetch(NS, "x")
    finally:
        server.close()


def test_unreadable_answer_is_unavailable_through_warm_start() -> None:
    server = RawHTTP(b"HELLO\r\n\r\n")
    try:
        ws = WarmStart(KubernetesPriorSource(server.url, token="t", timeout_s=5), namespace=NS)
        with pytest.raises(Unavailable, match="will be retried"):
            ws.fetch(NS, "x")
    finally:
        server.close()


@pytest.mark.parametrize(
    "token",
    [b"\xff\xfe-not-utf8", b"line-one\nline-two", "t\u2603ken".encode()],
    ids=["not-utf8", "two-lines", "not-latin1"],
)
def test_a_token_file_that_holds_no_usable_token_is_unavailable(
    fake: FakeKubeAPI, tmp_path: Path, token
) -> None:
    load_sst2(fake)
    path = tmp_path / "token"
    path.write_bytes(token)
    with pytest.raises(PriorUnavailable, match="service account token"):
        KubernetesPriorSource(fake.url, token_file=path).fetch(NS, "sst2-random")


@pytest.mark.parametrize(
    "obj",
    [
        {"spec": {"parameterAssignments": 5}},
        {"spec": {"parameterAssignments": "x=1"}},
        {"status": {"observation": {"metrics": 3}}},
        {"status": {"observation": 3, "conditions": {"type": "Succeeded"}}},
        {"spec": {"objective": {"metricStrategies": 7}}},
        {"spec": {"objective": {"additionalMetricNames": 1}}},
        {"spec": {"objective": {"metricStrategies": [{"name": "accuracy", "value": 3}]}}},
        {"spec": 1, "status": "Succeeded"},
    ],
)
def test_malformed_trial_objects_are_read_without_crashing(obj: dict) -> None:
    trial = trial_from_object(obj, {"accuracy": "max"})
    assert not trial.succeeded and trial.assignment == {} and trial.metrics == {}


def test_malformed_trials_and_objective_from_the_api_do_not_crash(fake: FakeKubeAPI) -> None:
    fake.put(
        "experiments",
        experiment_object("e", {**OBJECTIVE, "additionalMetricNames": 1, "metricStrategies": 7}),
    )
    fake.add_trial(NS, "e", "e-0", {"x": "1"}, "Succeeded", metrics={"accuracy": ("0.1", "0.9", "0.5")})
    bad = fake.add_trial(NS, "e", "e-1", {"x": "2"}, "Succeeded", metrics={"accuracy": ("0.1", "0.9", "0.5")})
    bad["spec"]["parameterAssignments"] = 5
    fake.put("trials", bad)
    trials = sorted(source(fake).fetch(NS, "e").trials, key=lambda t: len(t.assignment))
    assert [t.assignment for t in trials] == [{}, {"x": "1"}]
    assert trials[1].metrics == {"accuracy": "0.9"}  # maximize: max by default


def test_a_trial_objective_without_a_type_keeps_the_experiments_strategies() -> None:
    obj = {
        "spec": {"objective": {"objectiveMetricName": "accuracy"}},
        "status": {
            "observation": {"metrics": [{"name": "accuracy", "min": "0.1", "max": "0.9", "latest": "0.5"}]}
        },
    }
    assert trial_from_object(obj, {"accuracy": "max"}).metrics == {"accuracy": "0.9"}
