"""submit / status / compare against a stateful fake Kubernetes API, through the REAL kubernetes client."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from client.cli import main
from client.errors import ClientError
from client.katib_source import KatibSource
from tests.client.fake_k8s import FakeKubeAPI, at

DATA = Path(__file__).parent / "data"
NS = "katib-surrogate"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OBJECTIVE = {
    "type": "maximize",
    "objectiveMetricName": "accuracy",
    "additionalMetricNames": ["f1", "eval_loss", "gpu_seconds"],
    "metricStrategies": [
        {"name": "accuracy", "value": "max"},
        {"name": "f1", "value": "max"},
        {"name": "eval_loss", "value": "min"},
        {"name": "gpu_seconds", "value": "latest"},
    ],
}


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI().start()
    yield api
    api.stop()


@pytest.fixture
def kubeconfig(fake: FakeKubeAPI, tmp_path: Path) -> str:
    return str(fake.write_kubeconfig(tmp_path / "kubeconfig"))


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), console=Console(file=out, width=250, color_system=None))
    return code, out.getvalue()


def experiment_cr(name: str, task: str, algorithm: str, max_trials: int = 4) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"katib-surrogate/task": task, "katib-surrogate/algorithm": algorithm},
        },
        "spec": {
            "objective": OBJECTIVE,
            "algorithm": {"algorithmName": algorithm},
            "parallelTrialCount": 2,
            "maxTrialCount": max_trials,
            "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2"]}}
            ],
        },
    }


def metric(value: str) -> tuple[str, str, str]:
    return (value, value, value)


def load_hand_case(fake: FakeKubeAPI) -> None:
    """The hand-computed case of test_aggregate, as Katib would store it in the cluster."""
    fake.put("experiments", experiment_cr("sst2-grid", "sst2", "grid"))
    fake.put("experiments", experiment_cr("sst2-surrogate-gp", "sst2", "surrogate-gp", max_trials=3))
    fake.put("experiments", experiment_cr("cifar10-random", "cifar10", "random", max_trials=2))
    add = fake.add_trial
    g = "sst2-grid"
    add(NS, g, "sst2-grid-aaaa1111", {"lr": "1"}, "Succeeded", {"accuracy": ("0.6", "0.70", "0.70")},
        T0, at(T0, 600), objective=OBJECTIVE)  # fmt: skip
    add(NS, g, "sst2-grid-bbbb2222", {"lr": "2"}, "Succeeded",
        {"accuracy": ("0.7", "0.80", "0.79"), "gpu_seconds": metric("900")}, T0, at(T0, 700),
        objective=OBJECTIVE)  # fmt: skip
    add(
        NS,
        g,
        "sst2-grid-cccc3333",
        {"lr": "3"},
        "Failed",
        None,
        at(T0, 600),
        at(T0, 900),
        objective=OBJECTIVE,
    )
    add(NS, g, "sst2-grid-dddd4444", {"lr": "4"}, "Succeeded", {"accuracy": ("0.5", "0.85", "0.85")},
        at(T0, 700), at(T0, 1900), gpus=2, objective=OBJECTIVE)  # fmt: skip
    s = "sst2-surrogate-gp"
    add(NS, s, "sst2-surrogate-gp-x1", {"lr": "1"}, "Succeeded", {"accuracy": metric("0.75")},
        T0, at(T0, 600), objective=OBJECTIVE)  # fmt: skip
    add(NS, s, "sst2-surrogate-gp-x2", {"lr": "9"}, "Succeeded",
        {"accuracy": ("0.5", "0.86", "0.84"), "f1": ("0.7", "0.8", "0.8"), "eval_loss": ("0.3", "0.9", "0.4")},
        T0, at(T0, 900), objective=OBJECTIVE)  # fmt: skip
    # a trial with no metrics at all, as Katib marks it
    add(NS, s, "sst2-surrogate-gp-x3", {"lr": "5"}, "MetricsUnavailable", {"accuracy": metric("unavailable")},
        at(T0, 600), at(T0, 1000), objective=OBJECTIVE)  # fmt: skip
    fake.set_experiment_status(NS, g, "Succeeded", T0, at(T0, 1900))
    fake.set_experiment_status(NS, s, "Succeeded", T0, at(T0, 1000))
    fake.set_experiment_status(NS, "cifar10-random", "Running", T0)
    add(
        NS,
        "cifar10-random",
        "cifar10-random-r1",
        {"lr": "1"},
        "Running",
        None,
        at(T0, 0),
        objective=OBJECTIVE,
    )


# --- submit -------------------------------------------------------------------------------------------------
def test_submit_creates_then_reports_existing(fake: FakeKubeAPI, kubeconfig: str) -> None:
    code, out = run_cli("submit", "--manifests", str(DATA), "--kubeconfig", kubeconfig)
    assert code == 0, out
    assert out.count("created") == 2
    body = fake.get("experiments", NS, "toy-grid")
    assert body is not None and body["spec"]["algorithm"]["algorithmName"] == "grid"
    assert body["metadata"]["uid"]
    code, out = run_cli("submit", "--manifests", str(DATA), "--kubeconfig", kubeconfig, "--algorithm", "grid")
    assert code == 0 and "exists" in out and "1 experiment(s) already existed" in out


def test_submit_to_another_namespace_and_context(fake: FakeKubeAPI, tmp_path: Path) -> None:
    config = str(fake.write_kubeconfig(tmp_path / "kc", context="lab"))
    code, _ = run_cli(
        "submit", "--manifests", str(DATA), "--kubeconfig", config, "--context", "lab", "-n", "default"
    )
    assert code == 0
    assert fake.get("experiments", "default", "toy-random") is not None
    assert fake.get("experiments", NS, "toy-random") is None


def test_submit_dry_run_touches_nothing(fake: FakeKubeAPI, kubeconfig: str) -> None:
    code, out = run_cli("submit", "--manifests", str(DATA), "--kubeconfig", kubeconfig, "--dry-run")
    assert code == 0 and "would create experiment katib-surrogate/toy-grid" in out
    assert fake.requests == []


@pytest.mark.parametrize(
    ("setup", "argv", "expected"),
    [
        ("forbidden", ["-n", "secret"], "forbidden: not allowed to create experiments"),
        ("none", ["-n", "missing-ns"], 'namespaces "missing-ns" not found'),
        ("no-katib", [], "Katib CRDs (kubeflow.org/v1beta1 experiments, trials) are not installed"),
        ("none", ["--context", "nope"], "cannot load kubeconfig"),
        ("none", ["--task", "nlp"], "unknown task 'nlp'"),
    ],
)
def test_submit_errors_are_one_line(
    fake: FakeKubeAPI,
    kubeconfig: str,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    argv: list[str],
    expected: str,
) -> None:
    fake.katib_installed = setup != "no-katib"
    code, _ = run_cli("submit", "--manifests", str(DATA), "--kubeconfig", kubeconfig, *argv)
    err = capsys.readouterr().err
    assert code == 1
    assert expected in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_unreachable_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = FakeKubeAPI()
    config = dead.write_kubeconfig(tmp_path / "kc")
    config.write_text(config.read_text().replace(str(dead.server.server_port), str(port)))
    dead.server.server_close()
    code, _ = run_cli("status", "--kubeconfig", str(config))
    err = capsys.readouterr().err
    assert (
        code == 1 and "cannot reach the Kubernetes API at http://127.0.0.1:" in err and err.count("\n") == 1
    )


def test_transient_errors_are_retried(fake: FakeKubeAPI, kubeconfig: str) -> None:
    fake.fail_next(503)
    code, out = run_cli("submit", "--manifests", str(DATA), "--kubeconfig", kubeconfig, "--algorithm", "grid")
    assert code == 0 and "created" in out
    assert fake.get("experiments", NS, "toy-grid") is not None
    assert fake.requests[0] == fake.requests[1]  # the same call, repeated


def test_persistent_5xx_gives_up_with_backoff(fake: FakeKubeAPI, kubeconfig: str) -> None:
    sleeps: list[float] = []
    source = KatibSource.connect(kubeconfig=kubeconfig, attempts=4, backoff=0.25, sleep=sleeps.append)
    fake.fail_next(500, 502, 503, 504)
    with pytest.raises(ClientError, match=r"kept failing .* \(HTTP 504 .*\) after 4 attempts"):
        source.check_katib()
    assert sleeps == [0.25, 0.5, 1.0]


def test_fake_api_merge_patch_and_selectors_with_the_real_client(fake: FakeKubeAPI, kubeconfig: str) -> None:
    source = KatibSource.connect(kubeconfig=kubeconfig)
    load_hand_case(fake)
    api = source.api
    patched = api.patch_namespaced_custom_object(
        "kubeflow.org", "v1beta1", NS, "experiments", "sst2-grid", {"spec": {"maxTrialCount": 8}}
    )
    assert patched["spec"]["maxTrialCount"] == 8 and patched["spec"]["parallelTrialCount"] == 2
    names = [o["metadata"]["name"] for o in source.list_experiments(NS, tasks=["sst2"], algorithms=["grid"])]
    assert names == ["sst2-grid"]
    trials, _rv = source.list_trials(NS, "sst2-surrogate-gp")
    assert sorted(t["metadata"]["name"] for t in trials) == [f"sst2-surrogate-gp-x{i}" for i in (1, 2, 3)]


# --- status / compare -------------------------------------------------------------------------------------
def test_status_table(fake: FakeKubeAPI, kubeconfig: str) -> None:
    load_hand_case(fake)
    code, out = run_cli("status", "--kubeconfig", kubeconfig)
    assert code == 0, out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    grid = lines["sst2-grid"]
    assert "4/4 done: 1 Failed, 3 Succeeded" in grid and "0.8500" in grid and "31m40s" in grid
    assert "1.17" in grid  # 4200 GPU-seconds
    gp = lines["sst2-surrogate-gp"]
    assert "1 MetricsUnavailable, 2 Succeeded" in gp and "0.8600" in gp and "0.5278" in gp
    assert "Running" in lines["cifar10-random"] and "1 Running" in lines["cifar10-random"]


def test_compare_hand_computed(fake: FakeKubeAPI, kubeconfig: str, tmp_path: Path) -> None:
    load_hand_case(fake)
    out_dir = tmp_path / "report"
    code, out = run_cli("compare", "--kubeconfig", kubeconfig, "--task", "sst2", "--output", str(out_dir))
    assert code == 0, out
    assert "2.80x" in out and "GPU-hours" in out and "Target per task: sst2: 0.8500 (grid's best)" in out
    data = json.loads((out_dir / "comparison.json").read_text())
    (task,) = data["tasks"]
    rows = {r["algorithm"]: r for r in task["rows"]}
    assert rows["grid"]["hours_to_target"] == pytest.approx(4200 / 3600)
    assert rows["surrogate-gp"]["hours_to_target"] == pytest.approx(1500 / 3600)
    assert rows["surrogate-gp"]["speedup_vs_grid"] == pytest.approx(2.8)
    assert rows["surrogate-gp"]["best_value"] == 0.86  # max strategy, not the latest 0.84
    assert rows["surrogate-gp"]["best_metrics"] == {"f1": 0.8, "eval_loss": 0.3}
    assert rows["surrogate-gp"]["failed"] == 1 and rows["grid"]["failed"] == 1
    csv_text = (out_dir / "comparison.csv").read_text().splitlines()
    assert csv_text[0].startswith("task,algorithm,experiment") and len(csv_text) == 3
    md = (out_dir / "comparison.md").read_text()
    assert "## sst2 (accuracy, maximize); target 0.8500 (grid's best)" in md and "| 2.80x |" in md
    assert (out_dir / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_errors(fake: FakeKubeAPI, kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli("compare", "--kubeconfig", kubeconfig)
    assert code == 1 and "nothing to compare" in capsys.readouterr().err
    code, _ = run_cli("compare", "--kubeconfig", kubeconfig, "--experiment", "nope")
    assert (
        code == 1 and "experiment 'nope' not found in namespace 'katib-surrogate'" in capsys.readouterr().err
    )
    code, _ = run_cli("compare", "--kubeconfig", kubeconfig, "-n", "secret")
    assert code == 1 and "forbidden" in capsys.readouterr().err
    code, _ = run_cli("compare", "--kubeconfig", kubeconfig, "--target", "0.9", "--tolerance", "0.1")
    err = capsys.readouterr().err
    assert code == 2 and "not allowed with argument" in err and err.count("\n") == 1
    code, _ = run_cli("compare", "--max-trials", "3")
    assert code == 2 and "add --local" in capsys.readouterr().err


def test_status_watch_until_finished(fake: FakeKubeAPI, kubeconfig: str) -> None:
    load_hand_case(fake)

    def finish_later() -> None:
        time.sleep(1.0)
        fake.add_trial(NS, "cifar10-random", "cifar10-random-r1", {"lr": "1"}, "Succeeded",
                       {"accuracy": metric("0.6")}, T0, at(T0, 300), objective=OBJECTIVE)  # fmt: skip
        fake.add_trial(NS, "cifar10-random", "cifar10-random-r2", {"lr": "2"}, "Succeeded",
                       {"accuracy": metric("0.7")}, T0, at(T0, 400), objective=OBJECTIVE)  # fmt: skip
        fake.set_experiment_status(NS, "cifar10-random", "Succeeded", T0, at(T0, 400))

    thread = threading.Thread(target=finish_later)
    started = time.monotonic()
    thread.start()
    code, out = run_cli("status", "--kubeconfig", kubeconfig, "--watch", "--interval", "1")
    thread.join()
    assert code == 0
    assert out.count("Katib experiments (cluster)") >= 2
    last = out.split("Katib experiments (cluster)")[-1]
    assert "cifar10-random" in last and "0.7000" in last and "Running" not in last
    assert time.monotonic() - started < 15
    # the watch used the Kubernetes watch API on trials
    assert any(path.endswith("/trials") for method, path in fake.requests if method == "GET")


def test_missing_metrics_and_running_trials_do_not_break_compare(fake: FakeKubeAPI, kubeconfig: str) -> None:
    load_hand_case(fake)
    code, out = run_cli("compare", "--kubeconfig", kubeconfig, "--task", "cifar10")
    assert code == 0, out
    assert "cifar10" in out and "(+1 active)" in out and "Target per task: cifar10: none" in out


def test_prometheus_unreachable_is_a_warning(fake: FakeKubeAPI, kubeconfig: str) -> None:
    load_hand_case(fake)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out = run_cli(
        "compare", "--kubeconfig", kubeconfig, "--task", "sst2", "--prometheus", f"http://127.0.0.1:{port}"
    )
    assert code == 0
    assert "Prometheus at http://127.0.0.1:" in out and "unreachable" in out and "cross-check skipped" in out


def test_prometheus_cross_check(fake: FakeKubeAPI, kubeconfig: str) -> None:
    """A tiny Prometheus query API: 2 GPUs seen for 10 steps of 15 s (300 GPU-s), 50% utilisation."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs

    queries: list[str] = []

    class Prom(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            query = form["query"][0]
            queries.append(query)
            value = "2" if query.startswith("count(") else "50"
            found = 'pod=~"(' in query and "sst2-grid" in query
            result = [{"metric": {}, "values": [[i * 15, value] for i in range(10)]}] if found else []
            body = json.dumps(
                {"status": "success", "data": {"resultType": "matrix", "result": result}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Prom)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        load_hand_case(fake)
        url = f"http://127.0.0.1:{server.server_port}"
        code, out = run_cli("compare", "--kubeconfig", kubeconfig, "--task", "sst2", "--algorithm", "grid",
                            "--prometheus", url)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, out
    assert "DCGM: sst2-grid used 0.0833 GPU-hours, 0.07x the trials' figure, mean GPU utilisation 50%" in out
    assert any('namespace="katib-surrogate"' in q and "sst2-grid-aaaa1111" in q for q in queries)


def test_wait_for_change_returns_on_a_trial_event(fake: FakeKubeAPI, kubeconfig: str) -> None:
    load_hand_case(fake)
    source = KatibSource.connect(kubeconfig=kubeconfig)
    source.load(NS)
    timer = threading.Timer(0.3, lambda: fake.add_trial(NS, "cifar10-random", "cifar10-random-r9", {"lr": "1"},
                                                        "Running", None, T0, objective=OBJECTIVE))  # fmt: skip
    started = time.monotonic()
    timer.start()
    assert source.wait_for_change(NS, 10, source.last_resource_version) is True
    assert time.monotonic() - started < 5
    assert source.wait_for_change(NS, 1, str(fake.resource_version)) is False  # nothing new: times out


def test_status_without_experiments(
    fake: FakeKubeAPI, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli("status", "--kubeconfig", kubeconfig)
    assert code == 1 and "no experiments found in namespace katib-surrogate" in capsys.readouterr().err


# --- where a failed trial's logs are ------------------------------------------------------------------------
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def manifest(path: str) -> dict[str, Any]:
    """A committed Experiment manifest (under manifests/)."""
    import yaml

    return yaml.safe_load((MANIFESTS / path).read_text())


def katib_trial(fake: FakeKubeAPI, body: dict[str, Any], name: str, condition: str, message: str) -> None:
    """A Trial as Katib v0.19's experiment controller creates it from the Experiment ``body`` (runSpec
    substituted; retainRun, metricsCollector, primaryContainerName copied: experiment_controller_util.go)."""
    from katib_model.experiment import KatibExperiment

    experiment = KatibExperiment.from_body(body)
    assignment = {p["name"]: p["feasibleSpace"]["list"][0] for p in body["spec"]["parameters"]}
    obj = fake.add_trial(NS, experiment.name, name, assignment, condition, None, T0, at(T0, 60),
                         objective=body["spec"]["objective"])  # fmt: skip
    template = body["spec"]["trialTemplate"]
    obj["spec"].update(
        runSpec=experiment.trial_workload(assignment, name),
        retainRun=template.get("retain", False),
        metricsCollector=body["spec"]["metricsCollectorSpec"],
        primaryContainerName=template["primaryContainerName"],
    )
    obj["status"]["conditions"][-1]["message"] = message
    fake.put("trials", obj)


def test_status_and_compare_say_where_a_failed_trials_logs_are(fake: FakeKubeAPI, kubeconfig: str) -> None:
    """The trial from the committed manifest: its pods are retained, so the exact `kubectl logs` of
    Katib's collector sidecar (where StdOut trials' output goes), and its trainer.log on the PVC."""
    fake.put("experiments", experiment_cr("sst2-grid", "sst2", "grid"))
    katib_trial(fake, manifest("30-experiment-sst2-grid.yaml"), "sst2-grid-x9", "Failed",
                "Job has reached the specified backoff limit")  # fmt: skip
    fake.add_trial(NS, "sst2-grid", "sst2-grid-ok", {"lr": "1"}, "Succeeded", {"accuracy": metric("0.7")},
                   T0, at(T0, 60), objective=OBJECTIVE)  # fmt: skip
    expected = [
        "Logs of failed trials:",
        "  sst2-grid-x9 (sst2-grid, Failed: Job has reached the specified backoff limit)",
        "    pod logs: kubectl -n katib-surrogate logs -l katib.kubeflow.org/trial=sst2-grid-x9 "
        "-c metrics-logger-and-collector --prefix --tail=-1",
        "    trainer log: sst2-grid-x9/trainer.log on PVC katib-surrogate-checkpoints "
        "(/checkpoints/sst2-grid-x9/trainer.log in the trial's pod)",
    ]
    for command in ("status", "compare"):
        code, out = run_cli(command, "--kubeconfig", kubeconfig)
        assert code == 0, out
        lines = [line.rstrip() for line in out.splitlines()]
        start = lines.index("Logs of failed trials:")
        assert lines[start : start + 4] == expected, command
        assert "sst2-grid-ok" not in out.split("Logs of failed trials:")[1]  # only failed trials


def test_a_trial_whose_pods_were_deleted_says_so(fake: FakeKubeAPI, kubeconfig: str) -> None:
    """Without trialTemplate.retain Katib deleted the Job and its pods; the smoke variant's checkpoint
    folder is an emptyDir, so its trainer.log went with them: both are said, not hidden."""
    body = manifest("optional/smoke-cpu/30-experiment-sst2-random.yaml")
    body["spec"]["trialTemplate"]["retain"] = False
    fake.put("experiments", experiment_cr("sst2-random", "sst2", "random"))
    katib_trial(fake, body, "sst2-random-m1", "MetricsUnavailable", "Metrics are not available")
    code, out = run_cli("status", "--kubeconfig", kubeconfig)
    assert code == 0, out
    block = out.split("Logs of failed trials:")[1]
    assert "sst2-random-m1 (sst2-random, MetricsUnavailable: Metrics are not available)" in block
    assert "pod logs: none (the pods were deleted with the trial's Job: trialTemplate.retain is off)" in block
    assert (
        "trainer log: /checkpoints/sst2-random-m1/trainer.log on emptyDir volume checkpoints: deleted"
        in block
    )
