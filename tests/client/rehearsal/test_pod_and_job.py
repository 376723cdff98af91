"""Katib's command wrapping, the kubelet's expansion, path mapping, and the Job's retry decisions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.rehearsal.account import TrialAccount, saved_on_signal
from client.rehearsal.job import JobOutcome, judge
from client.rehearsal.pod import (
    DISRUPTION_TARGET,
    PathMap,
    PodOutcome,
    expand,
    kill_session,
    session_pids,
    wrapped_command,
)
from katib_model.collector import CollectorSpec
from katib_model.retry import retry_rules

STDOUT = CollectorSpec()  # Katib's default: StdOut, /var/log/katib/metrics.log


def test_wrapping_matches_katibs_webhook_tests() -> None:
    # inject_webhook_test.go TestWrapWorkerContainer (metricsFile "metric.log")
    relative = CollectorSpec(path="metric.log")
    expected = ["sh", "-c", "python main.py 1>metric.log 2>&1 && echo completed > $$$$.pid"]
    assert wrapped_command(["python main.py"], relative) == expected
    assert wrapped_command(["sh", "-c", "python main.py"], relative) == expected


def test_wrapping_joins_arguments_unquoted_and_file_collectors_keep_stdout() -> None:
    argv = ["python", "-m", "trainer", "train", "--learning-rate", "2e-5"]
    assert wrapped_command(argv, STDOUT) == [
        "sh",
        "-c",
        "python -m trainer train --learning-rate 2e-5 1>/var/log/katib/metrics.log 2>&1 "
        "&& echo completed > /var/log/katib/$$$$.pid",
    ]
    file_collector = CollectorSpec(kind="File", path="/out/metrics.txt")
    assert wrapped_command(["bash", "-c", "run"], file_collector) == [
        "bash",
        "-c",
        "run && echo completed > /out/$$$$.pid",
    ]


def test_kubelet_expansion() -> None:
    env = {"A": "x", "B": "$(A)"}
    assert expand("$(A)/$(MISSING)/$$(A)/$$$$", env) == "x/$(MISSING)/$(A)/$$"
    assert expand("echo $$$$.pid", {}) == "echo $$.pid"


def test_path_map_rewrites_only_whole_path_components(tmp_path: Path) -> None:
    paths = PathMap({"/cache": tmp_path / "c", "/var/log/katib": tmp_path / "k"})
    text = "--cache-dir /cache x=/cache/hf 1>/var/log/katib/metrics.log /cachex /a/cache '/cache'"
    assert paths.rewrite(text) == (
        f"--cache-dir {tmp_path}/c x={tmp_path}/c/hf 1>{tmp_path}/k/metrics.log /cachex /a/cache '{tmp_path}/c'"
    )
    assert paths.host("/cache/hf/x") == tmp_path / "c" / "hf" / "x"
    with pytest.raises(KeyError):
        paths.host("/elsewhere")


def test_sigterm_kills_the_wrapper_sh_and_leaves_its_child_until_the_session_is_killed() -> None:
    """What the rehearsal's preemption relies on: the wrapper sh does not forward SIGTERM."""
    child = f"{sys.executable} -c 'import time; time.sleep(60)'"
    shell = subprocess.Popen(
        ["sh", "-c", f"{child} 1>/dev/null 2>&1 && echo completed"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while len(session_pids(shell.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(shell.pid, signal.SIGTERM)
        assert shell.wait(timeout=10) == -signal.SIGTERM
        left = session_pids(shell.pid)
        assert left, "the child should still run after its wrapper died"
    finally:
        kill_session(shell.pid)
    deadline = time.monotonic() + 10
    while session_pids(shell.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_pids(shell.pid) == []


JOB = {
    "kind": "Job",
    "spec": {
        "backoffLimit": 2,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "training", "operator": "In", "values": [2]},
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
    },
}


def _pod(codes: dict[str, int], preempted: bool = False) -> PodOutcome:
    conditions = {DISRUPTION_TARGET: "True"} if preempted else {}
    return PodOutcome("p", "Failed", codes, conditions, Path("log"), None, None, preempted=preempted)


def test_retry_decisions_follow_the_pod_failure_policy_and_backoff_limit() -> None:
    rules = retry_rules(JOB)
    collector = "metrics-logger-and-collector"
    assert judge(rules, _pod({"training": 2, collector: 255}), 0) == ("FailJob", "PodFailurePolicy")
    assert judge(rules, _pod({"training": 143, collector: 143}, preempted=True), 5) == ("Ignore", None)
    assert judge(rules, _pod({"training": 3, collector: 255}), 0) == ("Count", None)
    assert judge(rules, _pod({"training": 3, collector: 255}), 1) == ("Count", None)
    assert judge(rules, _pod({"training": 3, collector: 255}), 2) == ("Count", "BackoffLimitExceeded")
    # a collector that fails alone (exit 255) is no FailJob: the rule names the training container
    assert judge(rules, _pod({"training": 0, collector: 2}), 0) == ("Count", None)
    unlimited = retry_rules({"kind": "PyTorchJob", "spec": {"runPolicy": {}}})
    assert judge(unlimited, _pod({"training": 1}), 100) == ("Count", None)


def test_path_map_names_absolute_folders_whatever_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make rehearse` passes a relative work folder; each pod runs in its own folder, so a relative
    # host path in the rewritten command landed inside the pod's workspace (the cache marker went missing)
    monkeypatch.chdir(tmp_path)
    paths = PathMap({"/cache": Path("runs/cache")})
    assert paths.rewrite("> /cache/.ready") == f"> {tmp_path}/runs/cache/.ready"
    assert paths.host("/cache/x") == tmp_path / "runs" / "cache" / "x"


def _preempted_trial(resume: tuple[int, int] | None, saved: bool | None) -> TrialAccount:
    pod = PodOutcome("p0", "Failed", {"training": 143}, {}, Path("log"), None, None, preempted=True)
    job = JobOutcome(
        "Complete", pods=[pod, PodOutcome("p1", "Succeeded", {"training": 0}, {}, Path("l"), None, None)]
    )
    return TrialAccount("t", {}, "Succeeded", "", job, 2, [1, 2], "0.5", resume, saved)


def test_a_resume_at_step_0_is_a_finding_only_when_the_trainer_did_not_save_on_the_signal() -> None:
    # an epoch of one step (16 stand-in images at batch 32) has no point inside it: saving on SIGTERM
    # there resumes at step 0, which is not a lost signal
    assert _preempted_trial((2, 0), saved=True).findings() == []
    assert "did not reach the trainer" in _preempted_trial((2, 0), saved=False).findings()[0]
    assert "did not reach the trainer" in _preempted_trial((2, 0), saved=None).findings()[0]
    assert _preempted_trial((2, 3), saved=None).findings() == []
    assert "did not resume" in _preempted_trial(None, saved=True).findings()[0]
    assert saved_on_signal("SIGTERM: saved checkpoint at epoch 2 step 0 to /ck/checkpoint.pt; rerun ...")
    assert saved_on_signal(
        "trainer: error: received SIGTERM: saved checkpoint after epoch 1 to /ck/checkpoint.pt"
    )
    assert not saved_on_signal("epoch=1 accuracy=0.5")
