"""Where a failed trial's output is: the local trial folders, and the reading of a Trial's command and
volumes (client/trial_logs.py). The cluster's end-to-end case is in test_cluster.py."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from client.cli import main
from client.trial_logs import cluster_log_locations, local_log_locations
from tests.client.test_local import manifests, run_local  # noqa: F401  (manifests is a fixture)


def test_compare_and_status_local_name_the_failed_trials_log_files(
    tmp_path: Path,
    manifests: Path,  # noqa: F811  (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_TRAINER_FAIL_UNITS", "16")
    code, out = run_local(tmp_path, manifests, "--algorithm", "grid")
    assert code == 0, out
    status = io.StringIO()
    code = main(["status", "--local", "--store", str(tmp_path / "store.sqlite")],
                console=Console(file=status, width=80, color_system=None))  # fmt: skip
    assert code == 0
    for text in (out, status.getvalue()):
        block = text.split("Logs of failed trials:\n")[1]
        named = re.findall(r"^  (toy-grid-\S+) \(toy-grid, Failed: exit code 1", block, re.M)
        paths = [Path(p) for p in re.findall(r"^    log: (\S+)$", block, re.M)]
        assert len(named) == 2 and len(paths) == 2  # the two units=16 trials, one whole line each
        for name, path in zip(named, paths, strict=True):
            assert path == (tmp_path / "work" / "toy-grid" / name / "stdout.log").resolve()
            assert "CUDA out of memory (simulated)" in path.read_text()


def test_local_folders_list_the_trainers_own_log_when_there_is_one(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "trainer.log").write_text("=== run started\n")
    assert local_log_locations(str(tmp_path)) == [
        f"log: {tmp_path / 'stdout.log'}",
        f"log: {tmp_path / 'ckpt' / 'trainer.log'}",
    ]
    assert local_log_locations("") == []


def trial_object(container: dict, volumes: list, **spec: object) -> dict:
    run_spec = {
        "kind": "Job",
        "spec": {"template": {"spec": {"containers": [container], "volumes": volumes}}},
    }
    return {
        "metadata": {"name": "t1", "namespace": "ns"},
        "spec": {"primaryContainerName": "training", "runSpec": run_spec, **spec},
    }


def test_a_trial_with_another_collector_reads_the_training_container() -> None:
    """Without the StdOut collector nothing is redirected: the training container's own log is the one,
    and a checkpoint folder mounted from a sub-path of a claim is named as a path on that claim."""
    container = {
        "name": "training",
        "command": ["sh", "-c", "python -m trainer train --task sst2 --checkpoint-dir /ckpt/run1"],
        "volumeMounts": [{"name": "data", "mountPath": "/ckpt", "subPath": "trials"}],
    }
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]
    obj = trial_object(container, volumes, retainRun=True, metricsCollector={"collector": {"kind": "File"}})
    assert cluster_log_locations(obj) == [
        "pod logs: kubectl -n ns logs -l katib.kubeflow.org/trial=t1 -c training --prefix --tail=-1",
        "trainer log: trials/run1/trainer.log on PVC shared (/ckpt/run1/trainer.log in the trial's pod)",
    ]


def test_odd_trial_objects_give_what_can_be_told_and_never_raise() -> None:
    plain = {"name": "training", "command": ["python", "train.py"]}  # not our trainer: no trainer.log
    assert cluster_log_locations(trial_object(plain, [])) == [
        "pod logs: none (the pods were deleted with the trial's Job: trialTemplate.retain is off)"
    ]
    unmounted = {"name": "training", "command": ["python", "-m", "trainer", "train", "--output-dir", "/o"]}
    assert cluster_log_locations(trial_object(unmounted, []))[1] == (
        "trainer log: /o/checkpoint/trainer.log in the container's own filesystem: gone with the pod"
    )
    for odd in ({}, {"spec": []}, {"spec": {"runSpec": "x", "retainRun": "yes"}}):
        assert cluster_log_locations(odd)[0].startswith("pod logs: none")
