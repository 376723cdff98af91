"""Checkpoints: resume gives the uninterrupted result; SIGTERM saves; bad checkpoints are refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
from trainer.katib_metrics import parse_metric_lines

from tests.trainer.helpers import REPO, child_env, run_cli, trial_args

QUALITY = ("accuracy", "f1", "top5_accuracy", "eval_loss")


def final_quality(out: str) -> dict[str, str]:
    last = out.strip().splitlines()[-1]
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", last) if k in QUALITY}


def epochs_printed(out: str) -> list[int]:
    return [int(p.value) for p in parse_metric_lines(out, ["epoch"])]


def epoch_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if " epoch=" in line]


@pytest.mark.parametrize("task", ["sst2", "cifar10"])
def test_resume_after_preemption_equals_uninterrupted_run(task: str, in_process, tmp_path) -> None:
    reference = in_process(trial_args(task, tmp_path / "ref", epochs=3))
    assert reference.code == 0, reference.err

    first = in_process(trial_args(task, tmp_path / "cut", "--stop-after-epoch", "1", epochs=3))
    assert first.code == 143, first.err
    assert "--stop-after-epoch" in first.err
    assert epochs_printed(first.out) == [1]
    second = in_process(trial_args(task, tmp_path / "cut", epochs=3))
    assert second.code == 0, second.err
    assert "resuming from" in second.err
    # Katib reads only the new pod's log: epoch 1 again, exactly as printed (same timestamp), then 2, 3
    assert epochs_printed(second.out) == [1, 2, 3]  # no lost epoch, no epoch trained twice
    assert epoch_lines(second.out)[0] == epoch_lines(first.out)[0]
    assert final_quality(second.out) == final_quality(reference.out)
    report = json.loads((tmp_path / "cut" / "out" / "metrics.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2, 3]
    assert report["status"] == "completed"


def test_rerun_after_completion_reports_again_without_training(in_process, tmp_path) -> None:
    done = in_process(trial_args("sst2", tmp_path, epochs=1))
    again = in_process(trial_args("sst2", tmp_path, epochs=1))
    assert again.code == 0, again.err
    assert epoch_lines(again.out) == epoch_lines(done.out)  # replayed, not trained again
    assert "resuming from" in again.err and "1 of 1 epochs done" in again.err
    assert final_quality(again.out) == final_quality(done.out)


@pytest.mark.slow
def test_sigterm_mid_run_saves_and_resume_completes(in_process, tmp_path) -> None:
    args = trial_args("sst2", tmp_path / "cut", epochs=10, batch=16)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None
    first_lines = [proc.stdout.readline()]  # blocks until epoch 1 is reported
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    first_out = "".join(first_lines) + out
    assert proc.returncode == 143, err
    assert "received SIGTERM: saved checkpoint" in err
    report = json.loads((tmp_path / "cut" / "out" / "metrics.json").read_text())
    assert report["status"] == "preempted"

    second = run_cli(args)
    assert second.code == 0, second.err
    assert epochs_printed(second.out) == list(range(1, 11))
    done_before = epoch_lines(first_out)
    assert epoch_lines(second.out)[: len(done_before)] == done_before
    reference = in_process(trial_args("sst2", tmp_path / "ref", epochs=10, batch=16))
    assert final_quality(second.out) == final_quality(reference.out)


def test_corrupt_checkpoint_is_an_error_not_a_restart(in_process, tmp_path) -> None:
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint")
    run = in_process(trial_args("sst2", tmp_path, epochs=1))
    assert run.code == 6
    assert f"checkpoint {ckpt} is corrupt or unreadable" in run.err
    assert run.out == ""
    assert ckpt.read_bytes() == b"not a checkpoint"


def test_checkpoint_from_other_arguments_is_refused(in_process, tmp_path) -> None:
    first = in_process(trial_args("sst2", tmp_path, "--stop-after-epoch", "1", epochs=2))
    assert first.code == 143
    other = in_process(trial_args("sst2", tmp_path, lr="5e-5", epochs=2))
    assert other.code == 6
    assert "different arguments (learning_rate: checkpoint 3e-05 vs now 5e-05)" in other.err


def test_checkpoint_files_are_replaced_atomically(tmp_path) -> None:
    import torch
    from trainer.checkpoint import load_checkpoint, save_checkpoint

    assert load_checkpoint(tmp_path, {"a": 1}) is None
    state = {"fingerprint": {"a": 1}, "epoch": 1, "step": 0, "model": {"w": torch.ones(2)}}
    state.update({"optimizer": {}, "scheduler": {}, "rng": {"torch": torch.get_rng_state()}})
    save_checkpoint(tmp_path, state)
    save_checkpoint(tmp_path, {**state, "epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    loaded = load_checkpoint(tmp_path, {"a": 1})
    assert loaded is not None and loaded["epoch"] == 2
    assert torch.equal(loaded["model"]["w"], torch.ones(2))


def test_a_checkpoint_that_cannot_be_written_is_a_clear_error_and_keeps_the_last_one(
    in_process, tmp_path, monkeypatch
) -> None:
    """A full checkpoint volume: exit 6 with the file and the cause, the epoch-1 checkpoint intact, no
    temporary file left behind, and the rerun resumes from epoch 1. The epoch-2 save fails on the
    background thread; the error reaches the trial at its next save (here the finished marker)."""
    import errno

    import torch
    from trainer.checkpoint import load_checkpoint

    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(obj["epoch"])
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    args = trial_args("sst2", tmp_path, "--checkpoint-interval-s", "0", epochs=3)
    run = in_process(args)
    assert run.code == 6, run.err
    assert saves == [1, 2]  # the failed write was not retried, and nothing was written after it
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    expected = (
        f"cannot write the checkpoint {ckpt}: No space left on device (the previous checkpoint is kept)"
    )
    assert expected in run.err
    assert "Traceback" not in run.err
    # no temporary file left behind: the checkpoint and the trial's own log (trainer/trial_log.py) only
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["checkpoint.pt", "trainer.log"]
    monkeypatch.setattr(torch, "save", real_save)
    state = torch.load(ckpt, weights_only=False)
    assert load_checkpoint(ckpt.parent, state["fingerprint"])["epoch"] == 1
    rerun = in_process(args)
    assert rerun.code == 0, rerun.err
    assert epochs_printed(rerun.out) == [1, 2, 3]  # epoch 1 replayed from the checkpoint, 2 and 3 trained
    assert epoch_lines(rerun.out)[0] == epoch_lines(run.out)[0]
