"""The manifests under Katib v0.19's and Kubernetes' runtime rules (issue 14, defects 1, 2, 4 and 7b).

- The pod environment is the image's ``ENV`` overlaid by the container's ``env``: the warm-cache Job
  must turn every Hugging Face offline switch off, the trials must keep them all on.
- Katib's pod webhook (``pkg/webhook/v1beta1/pod/utils.go``, ``wrapWorkerContainer``) runs the primary
  container as ``sh -c "<command and args joined by spaces> 1>/var/log/katib/metrics.log 2>&1 && echo
  completed > /var/log/katib/$$$$.pid"``; the kubelet turns ``$$`` into ``$``. The kubelet runs a
  container's preStop hook, then SIGTERMs its main process (that ``sh``). The trainer must save and
  exit 143 so the ``completed`` marker is not written: Katib's collector then fails without reporting
  (``pkg/metricscollector/v1beta1/common/pns.go``, ``WaitPIDs``: "Unable to read file ... .pid") and
  the Job retries the pod.
- A Job's podFailurePolicy: the first matching rule decides (``katib_model.retry``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from client.rehearsal.pod import expand, wrapped_command
from client.rehearsal.pod_env import container_env, dockerfile_env
from katib_model.collector import CollectorSpec
from katib_model.experiment import KatibExperiment
from katib_model.retry import COUNT, FAIL_JOB, IGNORE, retry_rules

from .helpers import MANIFESTS, REPO, training_container

DOCKERFILE = REPO / "trainer_image" / "Dockerfile"
KATIB_METRICS_FILE = "/var/log/katib/metrics.log"
SIDECAR = "metrics-logger-and-collector"
HF_LIBRARIES = ("huggingface_hub", "datasets", "transformers")
TRIAL_FILES = sorted(
    p for p in MANIFESTS.rglob("*.yaml") if "experiment" in p.name and "templates" not in p.parts
)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _experiment(path: Path) -> dict[str, Any]:
    (exp,) = [d for d in _docs(path) if d["kind"] == "Experiment"]
    return exp


def _primary(exp: dict[str, Any]) -> dict[str, Any]:
    """The primary container of every pod template of the trial workload (Job, or PyTorchJob replicas)."""
    spec = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]
    name = exp["spec"]["trialTemplate"]["primaryContainerName"]
    pods = (
        [spec["template"]]
        if "template" in spec
        else [r["template"] for r in spec["pytorchReplicaSpecs"].values()]
    )
    return [c for pod in pods for c in pod["spec"]["containers"] if c["name"] == name]


# --------------------------------------------------------------------------------------------------
# Defect 1: the effective environment


def effective_env(container: dict[str, Any]) -> dict[str, str]:
    """What the container's processes see: the image's ENV, then the container's env over it."""
    return container_env(dockerfile_env(DOCKERFILE), container)


def offline_switches() -> set[str]:
    """Every ``*_OFFLINE`` variable the installed Hugging Face libraries read (their own source)."""
    names: set[str] = set()
    for library in HF_LIBRARIES:
        spec = importlib.util.find_spec(library)
        assert spec is not None and spec.origin is not None, library
        for source in Path(spec.origin).parent.rglob("*.py"):
            names.update(
                re.findall(r"environ(?:\.get)?[(\[]\s*[\"']([A-Z_]*OFFLINE)[\"']", source.read_text())
            )
    return names


def library_offline(env: dict[str, str]) -> dict[str, bool]:
    """Ask the libraries themselves, in a process with exactly ``env``, whether they are offline."""
    code = (
        "import json, huggingface_hub.constants as h, datasets.config as d, transformers.utils.hub as t\n"
        "print(json.dumps({'huggingface_hub': h.HF_HUB_OFFLINE, 'datasets': d.HF_HUB_OFFLINE, "
        "'transformers': t.is_offline_mode()}))"
    )
    keep = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    env = {**keep, **{k: v for k, v in env.items() if k not in ("HOME", "HF_HOME", "PYTHONPATH")}}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_libraries_read_the_three_offline_switches() -> None:
    assert offline_switches() == {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"}


def test_the_cache_job_can_download_and_every_trial_stays_offline() -> None:
    from huggingface_hub.constants import ENV_VARS_TRUE_VALUES

    switches = offline_switches()
    (job,) = [d for d in _docs(MANIFESTS / "20-cache.yaml") if d["kind"] == "Job"]
    cache_env = effective_env(job["spec"]["template"]["spec"]["containers"][0])
    on = {name: cache_env.get(name, "").upper() in ENV_VARS_TRUE_VALUES for name in switches}
    assert not any(on.values()), f"offline switches left on for the warm-cache Job: {on}"
    assert library_offline(cache_env) == dict.fromkeys(HF_LIBRARIES, False)

    assert TRIAL_FILES
    for path in TRIAL_FILES:
        for container in _primary(_experiment(path)):
            env = effective_env(container)
            off = [n for n in switches if env.get(n, "").upper() not in ENV_VARS_TRUE_VALUES]
            assert not off, f"{path.name}: offline switches off for a trial: {off}"
    trial_env = effective_env(training_container(_experiment(MANIFESTS / "30-experiment-sst2-grid.yaml")))
    assert library_offline(trial_env) == dict.fromkeys(HF_LIBRARIES, True)


def test_the_effective_environment_check_can_fail() -> None:
    """The defect as it was: only HF_HUB_OFFLINE=0 over the image's ENV leaves datasets offline."""
    env = {**dockerfile_env(DOCKERFILE), "HF_HUB_OFFLINE": "0"}
    assert env["HF_DATASETS_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert library_offline(env)["datasets"] is True


# --------------------------------------------------------------------------------------------------
# Defect 4: podFailurePolicy


def test_deterministic_failures_fail_the_job_and_preemption_is_retried() -> None:
    from trainer import errors

    assert set(errors.DETERMINISTIC_EXIT_CODES) == {2, 3, 4, 5, 6}
    assert not {errors.EXIT_PREEMPTED, errors.EXIT_UNEXPECTED, errors.EXIT_METRICS_PUSH} & set(
        errors.DETERMINISTIC_EXIT_CODES
    )
    jobs = [p for p in TRIAL_FILES if _experiment(p)["spec"]["trialTemplate"]["trialSpec"]["kind"] == "Job"]
    assert len(jobs) >= 13
    for path in jobs:
        exp = _experiment(path)
        rules = retry_rules(exp["spec"]["trialTemplate"]["trialSpec"])
        primary = exp["spec"]["trialTemplate"]["primaryContainerName"]
        disrupted = {"DisruptionTarget": "True"}
        for code in errors.DETERMINISTIC_EXIT_CODES:
            # the sidecar exits 255 (klog.Fatalf) whenever the trainer failed: only the trainer's code counts
            assert rules.action({primary: code, SIDECAR: 255}) == FAIL_JOB, (path.name, code)
            assert rules.action({primary: code, SIDECAR: 255}, disrupted) == IGNORE, (path.name, code)
        for code in (errors.EXIT_PREEMPTED, errors.EXIT_UNEXPECTED, errors.EXIT_METRICS_PUSH, 137):
            assert rules.action({primary: code, SIDECAR: 255}) == COUNT, (path.name, code)
        assert rules.action({primary: errors.EXIT_PREEMPTED, SIDECAR: 255}, disrupted) == IGNORE
        assert rules.attempts() == 3


# --------------------------------------------------------------------------------------------------
# Defect 2: preemption under Katib's wrapper


def _trial_argv(tmp: Path, epochs: str) -> tuple[dict[str, Any], list[str]]:
    exp = _experiment(MANIFESTS / "30-experiment-sst2-grid.yaml")
    model = KatibExperiment.from_body(exp)
    assignment = {"learning_rate": "3e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": epochs}
    workload = model.trial_workload(assignment, "sst2-grid-abc123")
    (container,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "training"]
    command = list(container["command"])
    assert command[:3] == ["python", "-m", "trainer"]
    # this machine's interpreter and folders; the trainer keeps the last value of a repeated flag
    command[0] = sys.executable
    command += ["--preset", "tiny", "--cache-dir", str(tmp / "cache"), "--output-dir", str(tmp / "out")]
    command += ["--checkpoint-dir", str(tmp / "checkpoints")]
    return container, command


def _start_pod(command: list[str], katib_dir: Path) -> subprocess.Popen[bytes]:
    katib_dir.mkdir(parents=True)
    *shell, script = wrapped_command(command, CollectorSpec(path=str(katib_dir / "metrics.log")))
    script = expand(script, {})  # the kubelet's expansion: no env references, $$ -> $
    assert script.endswith(f"2>&1 && echo completed > {katib_dir}/$$.pid")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "trainer_image"),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.Popen([*shell, script], env=env, start_new_session=True)


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and re.search(pattern, path.read_text(), re.MULTILINE):
            return
        assert proc.poll() is None, f"the pod ended early: {path.read_text() if path.exists() else ''}"
        time.sleep(0.05)
    pytest.fail(f"{pattern!r} never appeared in {path}")


@pytest.mark.slow
def test_preemption_under_katibs_wrapper_saves_and_is_retried_then_resumes(tmp_path: Path) -> None:
    from trainer.katib_metrics import observation, parse_metric_lines

    container, command = _trial_argv(tmp_path, epochs="4")
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop == ["python", "-m", "trainer.preempt", "--metrics-dir", "/var/log/katib"]

    first = tmp_path / "pod-1" / "katib"
    sh = _start_pod(command, first)
    try:
        _wait_for(first / "metrics.log", r"epoch=1 ", sh)
        # the kubelet: preStop hook first (it returns once the trainer has exited), then SIGTERM to the sh
        hook = subprocess.run(
            [sys.executable, *pre_stop[1:], "--metrics-dir", str(first)],
            env={**os.environ, "PYTHONPATH": str(REPO / "trainer_image")},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert hook.returncode == 0 and "sent SIGTERM" in hook.stdout, hook.stdout + hook.stderr
        if sh.poll() is None:  # usually gone already: the trainer exited, so did its wrapper
            sh.send_signal(signal.SIGTERM)
        code = sh.wait(timeout=30)
    finally:
        if sh.poll() is None:
            os.killpg(sh.pid, signal.SIGKILL)
    log_1 = (first / "metrics.log").read_text()
    assert code == 143, log_1  # the trainer's preemption code, passed through by the wrapper
    assert "received SIGTERM: saved checkpoint" in log_1, log_1
    assert (tmp_path / "checkpoints" / "checkpoint.pt").is_file()
    # no marker: Katib's collector fails without reporting and the pod counts as failed (exit 143)
    assert sorted(p.name for p in first.iterdir()) == ["metrics.log"]
    first_epochs = [line for line in log_1.splitlines() if " epoch=" in line]
    assert first_epochs

    second = tmp_path / "pod-2" / "katib"
    sh = _start_pod(command, second)
    assert sh.wait(timeout=180) == 0
    log_2 = (second / "metrics.log").read_text()
    marker = [p for p in second.iterdir() if p.suffix == ".pid"]
    assert [p.read_text().strip() for p in marker] == ["completed"] and marker[0].stem == str(sh.pid)
    epochs = [line for line in log_2.splitlines() if " epoch=" in line]
    assert [re.search(r"epoch=(\d+)", line).group(1) for line in epochs] == ["1", "2", "3", "4"]
    assert epochs[: len(first_epochs)] == first_epochs  # replayed unchanged, original timestamps
    names = ["accuracy", "f1", "eval_loss"]
    points = parse_metric_lines(log_2, names)
    stamps = [p.timestamp for p in parse_metric_lines(log_2, ["epoch"])]
    assert stamps == sorted(stamps)
    best = max(float(re.search(r"accuracy=(\S+)", line).group(1)) for line in epochs)
    assert float(observation(points, {"accuracy": "max"})["accuracy"]) == best


@pytest.mark.slow
def test_without_the_hook_the_wrappers_sh_dies_and_leaves_the_trainer_running(tmp_path: Path) -> None:
    """Why the hook exists: SIGTERM to Katib's ``sh`` is not forwarded (the runtime would SIGKILL the rest)."""
    _, command = _trial_argv(tmp_path, epochs="30")
    katib_dir = tmp_path / "pod" / "katib"
    sh = _start_pod(command, katib_dir)
    try:
        _wait_for(katib_dir / "metrics.log", r"epoch=1 ", sh)
        sh.send_signal(signal.SIGTERM)
        assert sh.wait(timeout=10) == -signal.SIGTERM
        time.sleep(1.0)
        survivors = subprocess.run(
            ["pgrep", "-s", str(sh.pid)], capture_output=True, text=True
        ).stdout.split()
        assert survivors, "the trainer was expected to outlive its wrapper"
        assert "received SIGTERM" not in (katib_dir / "metrics.log").read_text()
    finally:
        os.killpg(sh.pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------------
# Defect 7b: a failed trial's output must outlive its pod


def _workload_ttl(exp: dict[str, Any]) -> Any:
    """ttlSecondsAfterFinished of the trial workload (a Job's spec, a PyTorchJob's runPolicy)."""
    spec = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]
    return spec.get("ttlSecondsAfterFinished", (spec.get("runPolicy") or {}).get("ttlSecondsAfterFinished"))


def test_finished_trials_keep_their_pods_for_a_while_and_the_trainer_log_is_on_the_pvc() -> None:
    """Katib's trial controller deletes a finished trial's Job (and its pods, their logs) unless
    ``trialTemplate.retain`` (``pkg/controller.v1beta1/trial/trial_controller.go``, ``reconcileJob``);
    kept, they are removed a week after they finish. The trainer's own log, written beside its
    checkpoint, lands on the checkpoints PVC in every cluster Experiment."""
    from trainer.trial_log import trial_log_path

    files = [*TRIAL_FILES, MANIFESTS / "optional" / "pytorchjob-cifar10-ddp.yaml"]
    assert len(files) >= 18
    for path in files:
        exp = _experiment(path)
        assert exp["spec"]["trialTemplate"].get("retain") is True, path.name
        assert _workload_ttl(exp) == 7 * 24 * 3600, path.name
        if "smoke-cpu" in path.parts:
            continue  # the CPU smoke variant has no PVCs (emptyDir volumes); its pods are retained
        model = KatibExperiment.from_body(exp)
        assignment = {p["name"]: p["feasibleSpace"]["list"][0] for p in exp["spec"]["parameters"]}
        workload = model.trial_workload(assignment, "trial-x1")
        pods = [workload["spec"]["template"]] if "template" in workload["spec"] else [
            r["template"] for r in workload["spec"]["pytorchReplicaSpecs"].values()
        ]  # fmt: skip
        for pod in pods:
            (container,) = [
                c
                for c in pod["spec"]["containers"]
                if c["name"] == model.trial_template.primary_container_name
            ]
            argv = container["command"]
            log = trial_log_path(argv[argv.index("train") + 1 :])
            assert log == Path("/checkpoints/trial-x1/trainer.log"), path.name
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/checkpoints"]
            (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
            assert volume["persistentVolumeClaim"]["claimName"] == "katib-surrogate-checkpoints", path.name


def test_a_failing_trial_under_katibs_wrapper_leaves_its_output_on_the_checkpoint_volume(
    tmp_path: Path,
) -> None:
    """Under the StdOut collector's wrapper all output goes into the collector's file (an emptyDir,
    gone with the pod); the trainer's own copy in the checkpoint folder keeps it, and its exit reason."""
    _, command = _trial_argv(tmp_path, epochs="1")
    command += ["--num-epochs", "0"]  # a bad value, as a wrong substitution would give
    katib_dir = tmp_path / "pod" / "katib"
    sh = _start_pod(command, katib_dir)
    assert sh.wait(timeout=60) == 2
    collected = (katib_dir / "metrics.log").read_text()
    message = "argument --num-epochs: must be an integer in [1, 1000], got '0'"
    assert message in collected
    assert not [p for p in katib_dir.iterdir() if p.suffix == ".pid"]  # no marker: Katib sees a failure
    log = (tmp_path / "checkpoints" / "trainer.log").read_text()
    assert message in log and log.rstrip().endswith("exit 2 (bad arguments)")
