"""Checkpoints that do not stall training: background writes, an interval, no full save at the end."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch
from trainer.checkpoint import (
    AsyncCheckpointWriter,
    checkpoint_path,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from trainer.errors import CheckpointError

from tests.trainer.helpers import REPO, child_env, trial_args


def state(epoch: int, weight: torch.Tensor) -> dict:
    return {
        "fingerprint": {"a": 1},
        "epoch": epoch,
        "step": 0,
        "model": {"w": weight},
        "optimizer": {},
        "scheduler": {},
        "rng": {"torch": torch.get_rng_state()},
    }


def test_a_background_save_writes_the_state_as_it_was_when_submitted(tmp_path) -> None:
    writer = AsyncCheckpointWriter(tmp_path)
    weight = torch.ones(3)
    writer.submit(state(1, weight))
    weight.mul_(5)  # the next optimizer step, while the file is being written
    writer.wait()
    loaded = load_checkpoint(tmp_path, {"a": 1})
    assert loaded is not None and torch.equal(loaded["model"]["w"], torch.ones(3))
    assert writer.saves == 1


def test_a_synchronous_save_waits_for_the_background_one_and_wins(tmp_path, monkeypatch) -> None:
    """SIGTERM during a background write: the preemption save lands after it, so the file is the newest."""
    release, real_save = threading.Event(), torch.save

    def slow_save(obj, f, *args, **kwargs):
        if obj["epoch"] == 1:
            release.wait(10)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", slow_save)
    writer = AsyncCheckpointWriter(tmp_path)
    writer.submit(state(1, torch.zeros(2)))
    assert writer.busy
    threading.Timer(0.2, release.set).start()
    writer.write(state(2, torch.zeros(2)))
    assert not writer.busy
    assert load_checkpoint(tmp_path, {"a": 1})["epoch"] == 2


def test_a_failed_background_write_is_reported_at_the_next_save_and_keeps_the_old_file(
    tmp_path, monkeypatch
) -> None:
    save_checkpoint(tmp_path, state(1, torch.ones(2)))
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_fail)
    writer = AsyncCheckpointWriter(tmp_path)
    writer.submit(state(2, torch.ones(2)))
    with pytest.raises(CheckpointError, match="No space left on device"):
        writer.submit(state(3, torch.ones(2)))
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(tmp_path, {"a": 1})["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


CRASH = """
import os, sys, torch
from trainer.checkpoint import AsyncCheckpointWriter
real_save = torch.save
def crash(obj, f, *args, **kwargs):
    f.write(b"x" * 4096)
    f.flush()
    os._exit(9)  # the node dies in the middle of the write
torch.save = crash
writer = AsyncCheckpointWriter(sys.argv[1])
writer.submit({"fingerprint": {"a": 1}, "epoch": 2, "step": 0, "model": {}, "optimizer": {},
               "scheduler": {}, "rng": {}})
writer.wait()
"""


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path) -> None:
    save_checkpoint(tmp_path, state(1, torch.ones(2)))
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path)], env=child_env(), cwd=REPO, timeout=120, check=False
    )
    assert proc.returncode == 9
    loaded = load_checkpoint(tmp_path, {"a": 1})
    assert loaded is not None and loaded["epoch"] == 1
    # the cut-off write left its temporary file; the next run removes it before it saves anything
    (stale,) = [p for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def saved(monkeypatch) -> list[tuple[int, int, bool]]:
    """(epoch, step, finished) of every checkpoint file the trial writes, in order."""
    import trainer.checkpoint as checkpoint

    real, calls = checkpoint.save_checkpoint, []

    def record(directory, payload):
        calls.append((payload["epoch"], payload["step"], bool(payload.get("finished"))))
        return real(directory, payload)

    monkeypatch.setattr(checkpoint, "save_checkpoint", record)
    return calls


def test_a_trial_within_the_interval_writes_only_the_small_finished_marker(
    in_process, tmp_path, monkeypatch
) -> None:
    calls = saved(monkeypatch)
    run = in_process(trial_args("sst2", tmp_path, epochs=2))
    assert run.code == 0, run.err
    assert calls == [(2, 0, True)]  # no full checkpoint after an epoch, none after the last one
    marker = torch.load(checkpoint_path(tmp_path / "ckpt"), weights_only=True)
    assert marker["finished"] and "model" not in marker and "optimizer" not in marker
    assert [e["epoch"] for e in marker["history"]] == [1, 2]


def test_interval_zero_saves_every_epoch_but_the_last(in_process, tmp_path, monkeypatch) -> None:
    calls = saved(monkeypatch)
    run = in_process(trial_args("sst2", tmp_path, "--checkpoint-interval-s", "0", epochs=3))
    assert run.code == 0, run.err
    assert calls == [(1, 0, False), (2, 0, False), (3, 0, True)]


def test_an_elapsed_interval_saves_mid_epoch_and_the_trial_still_matches(
    in_process, tmp_path, monkeypatch
) -> None:
    reference = in_process(trial_args("sst2", tmp_path / "ref", epochs=2))
    calls = saved(monkeypatch)
    run = in_process(trial_args("sst2", tmp_path / "often", "--checkpoint-interval-s", "1e-9", epochs=2))
    assert run.code == 0, run.err
    mid_epoch = [c for c in calls if c[1] > 0]
    assert mid_epoch and all(not finished for _e, _s, finished in mid_epoch)
    assert calls[-1] == (2, 0, True)
    # saving (snapshots of the state, RNG reads) does not change what is trained
    assert run.out.splitlines()[-1].split()[1:4] == reference.out.splitlines()[-1].split()[1:4]
