"""Atomic checkpoints for preemptible trials, tied to the arguments that produced them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainer.errors import CheckpointError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "fingerprint", "epoch", "step", "model", "optimizer", "scheduler", "rng")


def checkpoint_path(directory: str | Path) -> Path:
    """The single checkpoint file kept in ``directory``."""
    return Path(directory) / CHECKPOINT_FILE


def save_checkpoint(directory: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to a temporary file in ``directory``, fsync it, then ``os.replace`` it in place.

    The previous checkpoint stays intact until the new one is complete. A write that fails (volume
    full, read-only, gone) raises CheckpointError naming the file and the cause.
    """
    path = checkpoint_path(directory)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format_version": FORMAT_VERSION, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        kept = "the previous checkpoint is kept" if path.exists() else "no earlier checkpoint exists"
        raise CheckpointError(
            f"cannot write the checkpoint {path}: {err.strerror or err} ({kept}); free space on the "
            "--checkpoint-dir volume or give it a larger one, then rerun the trial to resume"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _describe_difference(saved: dict[str, Any], current: dict[str, Any]) -> str:
    keys = sorted(set(saved) | set(current))
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]
    return "; ".join(diffs)


def load_checkpoint(directory: str | Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state, None when there is no checkpoint, or CheckpointError when it is unusable.

    A checkpoint that cannot be read, lacks fields, or was written for other arguments is an error:
    the trial must not silently start again from zero.
    """
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    remedy = f"delete {path} to start the trial from scratch, or restore an intact copy"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc}); {remedy}"
        ) from exc
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint {path} lacks required fields {', '.join(REQUIRED_KEYS)}; {remedy}")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state['format_version']}, this trainer reads "
            f"{FORMAT_VERSION}; {remedy}"
        )
    if state["fingerprint"] != fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with different arguments "
            f"({_describe_difference(state['fingerprint'], fingerprint)}); use another --checkpoint-dir, "
            f"or {remedy}"
        )
    return state
