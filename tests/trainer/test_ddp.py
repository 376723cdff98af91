"""Data-parallel trials: 2 CPU processes (gloo) under torchrun, as the PyTorchJob runs them.

Each launch costs two Python + torch start-ups (about 10 s of CPU here), so these tests use the tiny
preset, one thread per rank and as few epochs as the property needs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch.multiprocessing as mp
from trainer.katib_metrics import metric_names_for_task, parse_metric_lines

from tests.trainer.ddp_helpers import (
    collectives_worker,
    free_port,
    launch_ranks,
    single_process_evaluation,
    torchrun,
    torchrun_command,
)
from tests.trainer.helpers import REPO, child_env, trial_args

QUALITY = {"sst2": ("accuracy", "f1", "eval_loss"), "cifar10": ("accuracy", "top5_accuracy", "eval_loss")}


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def epochs_printed(out: str) -> list[int]:
    return [int(p.value) for p in parse_metric_lines(out, ["epoch"])]


def final_line(out: str) -> dict[str, float]:
    lines = [line for line in out.splitlines() if line and "epoch=" not in line]
    assert len(lines) == 1, out
    return {p.name: float(p.value) for p in parse_metric_lines(lines[0])}


def test_collectives_on_two_processes(tmp_path: Path) -> None:
    mp.start_processes(
        collectives_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="spawn", join=True
    )
    zero, one = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert zero["gather_empty_last"] == one["gather_empty_last"] == [[0, 1], [2, 3], [4, 5]]
    assert zero["gather_uneven"] == one["gather_uneven"] == [[0, 0], [1, 1], [1, 2]]
    assert zero["per_rank"][0] == [0, 1.0] and zero["per_rank"][1][0] == 1
    assert zero["per_rank"][1][1] != zero["per_rank"][1][1]  # NaN stays in rank 1's row
    assert zero["sum"] == [3, 1.0] and zero["max"] == [1, 0]
    assert zero["objects"] == [{"rank": 0}, {"rank": 1}]
    # rank 1 fails alone: it raises its own error, rank 0 raises one that names rank 1, same exit code
    assert one["agree"] == [5, False, False, "rank 1 cannot read its cache"]
    assert zero["agree"][:3] == [5, False, True] and "rank(s) 1 failed while testing" in zero["agree"][3]
    assert zero["broadcast"] == one["broadcast"] == [0.0, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["cifar10", "sst2"])
def test_torchrun_trial_reports_once_and_matches_a_single_process_evaluation(
    task: str, tmp_path: Path
) -> None:
    # --batch-size is per process: 2 ranks x 16 = the global batch 32
    args = trial_args(task, tmp_path, epochs=2, batch=16)
    # stopped after epoch 1, the checkpoint holds the model that epoch 1's line describes (a finished
    # trial keeps no weights, only its metrics)
    cut = torchrun([*args, "--stop-after-epoch", "1"])
    assert cut.code != 0 and "--stop-after-epoch" in cut.err, cut.err[-3000:]
    (line,) = [line for line in cut.out.splitlines() if "epoch=" in line]
    epoch_1 = {p.name: float(p.value) for p in parse_metric_lines(line)}
    # the sharded evaluation equals one process evaluating the saved model on the whole split
    alone = single_process_evaluation(args, tmp_path / "ckpt" / "checkpoint.pt")
    for name in QUALITY[task]:
        if name == "eval_loss":
            assert epoch_1[name] == pytest.approx(alone[name], rel=1e-6), name
        else:
            assert epoch_1[name] == pytest.approx(alone[name], abs=1e-8), name  # printed with 8 digits

    run = torchrun(args)
    assert run.code == 0, run.err[-3000:]
    # one set of Katib lines in the pod log, although both ranks ran the whole trial
    assert epochs_printed(run.out) == [1, 2], run.out
    final = final_line(run.out)
    assert set(final) == set(metric_names_for_task(task))
    assert final["gpu_seconds"] == 0.0 and final["train_seconds"] > 0
    assert run.err.count("steps per epoch") == 1  # progress notes from rank 0 only
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "completed" and report["world_size"] == 2
    assert report["distributed"] == {
        "backend": "gloo",
        "world_size": 2,
        "global_batch_size": 32,
        "batch_size_per_process": 16,
        "sync_batchnorm": False,
    }


def test_one_image_per_cpu_process_is_refused_by_every_rank_before_training(tmp_path: Path) -> None:
    runs = launch_ranks(trial_args("cifar10", tmp_path, epochs=1, batch=1))
    assert [r.code for r in runs] == [2, 2]
    message = "--batch-size 1 is the batch of each of the 2 CPU processes; BatchNorm needs at least 2"
    assert message in runs[0].err
    assert runs[1].err == "" and runs[0].out == runs[1].out == ""  # said once, by rank 0
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    args = trial_args("cifar10", tmp_path, "--fail-on-divergence", epochs=2, batch=16)
    runs = launch_ranks(args, module="tests.trainer.ddp_nan_worker", NAN_ON_RANK="1", NAN_AT_STEP="2")
    assert [r.code for r in runs] == [3, 3], [r.err[-2000:] for r in runs]
    assert "the training loss became nan on rank(s) 1 at epoch 1, step 3: training diverged" in runs[0].err
    assert runs[1].err == ""  # the shared error is printed once
    assert runs[0].out == runs[1].out == ""  # no metric line for a diverged epoch
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "failed" and "on rank(s) 1" in report["message"]


def test_nan_on_one_rank_is_reported_once_as_a_diverged_result(tmp_path: Path) -> None:
    args = trial_args("cifar10", tmp_path, epochs=2, batch=16)
    runs = launch_ranks(args, module="tests.trainer.ddp_nan_worker", NAN_ON_RANK="1", NAN_AT_STEP="2")
    assert [r.code for r in runs] == [0, 0], [r.err[-2000:] for r in runs]
    assert runs[1].out == "" and runs[1].err == ""  # rank 0 reports for the job
    final = final_line(runs[0].out)
    assert final["diverged"] == 1 and final["accuracy"] == 0.1 and final["train_seconds"] > 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "diverged" and "on rank(s) 1" in report["message"]


@pytest.mark.slow
def test_sigterm_to_torchrun_saves_and_the_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    args = trial_args("sst2", tmp_path / "cut", epochs=3, batch=8)
    proc = subprocess.Popen(
        torchrun_command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # epoch 1 is reported: the job is inside epoch 2 now
    proc.send_signal(signal.SIGTERM)  # what the kubelet sends the pod's main process (torchrun)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err[-3000:]  # torchrun exits 1 after its workers stopped
    # said once (rank 0); mid-epoch 2, or after epoch 1 when the signal came during that checkpoint
    assert err.count("trainer: error: received SIGTERM: saved checkpoint") == 1, err[-3000:]
    assert "trainer[rank 1]" not in err
    report = json.loads((tmp_path / "cut" / "out" / "metrics.json").read_text())
    assert report["status"] == "preempted"

    second = torchrun(args)
    assert second.code == 0, second.err[-3000:]
    assert "resuming from" in second.err
    assert epochs_printed(second.out) == [1, 2, 3]  # the epochs before the preemption replayed
    assert second.out.splitlines()[: len(epochs_printed(first + out))] == (first + out).splitlines()

    reference = torchrun(trial_args("sst2", tmp_path / "ref", epochs=3, batch=8))
    assert reference.code == 0, reference.err[-3000:]
    resumed, whole = final_line(second.out), final_line(reference.out)
    for name in QUALITY["sst2"]:  # mid-epoch resume: every rank's RNG and the partial loss restored
        assert resumed[name] == whole[name], name


@pytest.mark.slow
def test_killed_job_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    args = trial_args("sst2", tmp_path, "--checkpoint-interval-s", "0", epochs=5, batch=8)
    proc = subprocess.Popen(
        torchrun_command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.readline()  # two epochs reported (each is checkpointed right after)
    doomed = [proc.pid, *descendants(proc.pid)]  # torchrun starts its workers in their own sessions
    assert len(doomed) >= 3
    for pid in doomed:  # the node is gone: launcher and both ranks die at once
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    rerun = torchrun(args)
    assert rerun.code == 0, rerun.err[-3000:]
    assert "resuming from" in rerun.err
    assert epochs_printed(rerun.out) == [1, 2, 3, 4, 5], rerun.out  # checkpointed epochs replayed
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "completed"
    assert [e["epoch"] for e in report["epochs"]] == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_sigterm_to_torchrun_mid_epoch_with_loader_workers_saves_and_resumes(tmp_path: Path) -> None:
    # rank 0 signals torchrun itself at a known step, while every rank's DataLoader worker is running
    args = trial_args("sst2", tmp_path, "--num-workers", "1", epochs=3, batch=8)
    proc = subprocess.run(
        torchrun_command(args, module="tests.trainer.ddp_sigterm_worker"),
        capture_output=True,
        text=True,
        timeout=240,
        env=child_env(SIGTERM_LAUNCHER_AT="1:2"),
        cwd=REPO,
    )
    err = proc.stderr
    assert proc.returncode != 0, err[-3000:]
    assert "exited unexpectedly" not in err and "killed by signal" not in err, err[-3000:]
    assert err.count("trainer: error: received SIGTERM: saved checkpoint at epoch 2 step") == 1, err[-3000:]
    assert epochs_printed(proc.stdout) == [1]
    rerun = torchrun(args)
    assert rerun.code == 0, rerun.err[-3000:]
    assert "continuing at epoch 2 step" in rerun.err and epochs_printed(rerun.out) == [1, 2, 3]
    assert rerun.out.splitlines()[0] == proc.stdout.splitlines()[0]  # epoch 1 as first printed
