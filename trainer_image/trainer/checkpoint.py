"""Atomic checkpoints for preemptible trials, tied to the arguments that produced them.

Two kinds of file share one name: a *training* checkpoint (weights, optimizer, schedule, RNG: what a
resumed run continues from) and a *finished* marker (``finished: True``, history and costs only: a
restarted pod of a finished trial replays its metric lines without training and without the
gigabyte of weights and optimizer state it would never read). ``AsyncCheckpointWriter`` writes
training checkpoints in the background so that training goes on while the file is written.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trainer.errors import CheckpointError

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "fingerprint", "epoch", "step", "model", "optimizer", "scheduler", "rng")
FINISHED_KEYS = ("format_version", "fingerprint", "epoch", "step", "finished", "history", "costs")


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


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files of writes a crash cut off (``.checkpoint.pt.*.tmp``); returns them.

    Call it only when no write into ``directory`` can be in flight (before the trial's first save).
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f".{CHECKPOINT_FILE}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


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
    required = FINISHED_KEYS if isinstance(state, dict) and state.get("finished") else REQUIRED_KEYS
    if not isinstance(state, dict) or any(key not in state for key in required):
        raise CheckpointError(f"checkpoint {path} lacks required fields {', '.join(required)}; {remedy}")
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


def _snapshot(value: Any, pin: bool, buffers: dict[str, torch.Tensor], key: str = "") -> Any:
    """A copy of ``value`` that later in-place updates of the training state cannot change.

    CUDA tensors are copied into pinned CPU buffers with ``non_blocking=True``: the copies are queued
    on the current stream behind the step that produced the values and before the next one, so the
    training thread never waits for them (``AsyncCheckpointWriter`` waits on an event before writing).
    The pinned buffers are kept in ``buffers`` (by position in the state) and reused by the next
    snapshot: allocating pinned memory is slow. CPU tensors are cloned.
    """
    if isinstance(value, torch.Tensor):
        if value.device.type == "cpu":
            return value.detach().clone()
        buffer = buffers.get(key)
        if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
            buffer = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=pin)
            buffers[key] = buffer
        buffer.copy_(value.detach(), non_blocking=pin)
        return buffer
    if isinstance(value, dict):
        return {k: _snapshot(v, pin, buffers, f"{key}/{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_snapshot(v, pin, buffers, f"{key}/{i}") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


class AsyncCheckpointWriter:
    """Writes checkpoints on a background thread, one at a time, each complete or not at all.

    ``submit(state)`` snapshots ``state`` on the calling (training) thread, see ``_snapshot``, and
    returns at once; a thread then waits for the copies to land, and writes the file with
    ``save_checkpoint`` (temporary file, fsync, atomic rename: a crash mid-write keeps the previous
    checkpoint). A new ``submit`` or ``wait`` first waits for the write in flight and raises its
    error (a CheckpointError) on the training thread. ``write`` is a synchronous save, used on
    SIGTERM and for the finished marker.
    """

    def __init__(self, directory: str | Path, pin_memory: bool = False) -> None:
        self.directory = Path(directory)
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self._buffers: dict[str, torch.Tensor] = {}
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.saves = 0  # files written by this writer (completed)

    def _run(self, state: dict[str, Any], ready: Callable[[], None]) -> None:
        try:
            ready()
            save_checkpoint(self.directory, state)
            self.saves += 1
        except BaseException as exc:  # re-raised on the training thread by wait()
            self._error = exc

    def submit(self, state: dict[str, Any]) -> None:
        """Start writing ``state`` in the background (after the previous write finished)."""
        self.wait()
        snapshot = _snapshot(state, self.pin_memory, self._buffers)
        ready: Callable[[], None] = lambda: None  # noqa: E731
        if self.pin_memory:
            event = torch.cuda.Event()
            event.record()
            ready = event.synchronize
        self._thread = threading.Thread(
            target=self._run, args=(snapshot, ready), name="checkpoint", daemon=True
        )
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise the error it met."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def write(self, state: dict[str, Any]) -> Path:
        """Write ``state`` now (after the write in flight) and return the checkpoint's path."""
        self.wait()
        path = save_checkpoint(self.directory, state)
        self.saves += 1
        return path

    @property
    def busy(self) -> bool:
        """Whether a background write is still in progress."""
        return self._thread is not None and self._thread.is_alive()
