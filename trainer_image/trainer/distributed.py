"""Data-parallel training under ``torchrun``: the process group, and the few collectives the trainer uses.

A trial started by ``torchrun`` (``WORLD_SIZE`` > 1 with ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in the environment) joins a process group (NCCL on CUDA, gloo on the CPU). A plain
``python -m trainer train`` is one process and never creates a group: every method here is then a
cheap no-op, so the single-process path computes exactly what it did before.

Every collective below must be called by all ranks at the same point of the program; the trainer
only calls them at places every rank reaches deterministically (step counts, epoch ends, checkpoints).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from trainer.errors import EXIT_BAD_ARGS, TrainerError

DEFAULT_TIMEOUT_S = 1800
_T = TypeVar("_T")


class LaunchError(TrainerError):
    """The torchrun environment is incomplete or inconsistent (an argument error: exit 2)."""

    exit_code = EXIT_BAD_ARGS


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job, as torchrun describes it (no torch import)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        """Whether this is one of several processes (a process group is needed)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints metrics, writes files and serves Prometheus."""
        return self.rank == 0


def _env_int(environ: Mapping[str, str], name: str, low: int, high: int | None = None) -> int:
    text = environ.get(name)
    if text is None:
        raise LaunchError(
            f"WORLD_SIZE={environ.get('WORLD_SIZE')} asks for data-parallel training but {name} is not set; "
            f"start multi-process trials with torchrun (it sets RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, "
            f"MASTER_ADDR, MASTER_PORT), e.g. torchrun --nproc-per-node 4 -m trainer train ..."
        )
    try:
        value = int(text)
    except ValueError:
        raise LaunchError(f"environment variable {name}={text!r} is not an integer") from None
    top = "" if high is None else f", at most {high}"
    if value < low or (high is not None and value > high):
        raise LaunchError(f"environment variable {name}={value} must be at least {low}{top}")
    return value


def dist_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read torchrun's variables; ``WORLD_SIZE`` unset or 1 means a single process (nothing else is read)."""
    environ = os.environ if environ is None else environ
    if environ.get("WORLD_SIZE") in (None, "", "1"):
        return DistEnv()
    world = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0, world - 1)
    local_rank = _env_int(environ, "LOCAL_RANK", 0, world - 1)
    local_world = (
        _env_int(environ, "LOCAL_WORLD_SIZE", 1, world) if environ.get("LOCAL_WORLD_SIZE") else world
    )
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not environ.get(name):
            raise LaunchError(
                f"WORLD_SIZE={world} asks for data-parallel training but {name} is not set; "
                f"start multi-process trials with torchrun"
            )
    return DistEnv(world, rank, local_rank, local_world)


def rank_from_env() -> int:
    """This process's rank (0 outside torchrun, or when the environment cannot be read)."""
    try:
        return int(os.environ.get("RANK", "0")) if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else 0
    except ValueError:
        return 0


def shard_bounds(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``rank`` when ``total`` items are cut into ``world_size`` contiguous parts.

    Part sizes differ by at most one, earlier parts are never larger than later ones, and the parts in
    rank order are the whole range (nothing repeated, nothing padded).
    """
    return total * rank // world_size, total * (rank + 1) // world_size


class Dist:
    """The process group of a torchrun job, or a no-op stand-in for a single process."""

    def __init__(self, env: DistEnv | None = None) -> None:
        self.env = env or DistEnv()
        self.backend: str | None = None
        self._device: Any = None  # where collectives' tensors live: the rank's GPU for NCCL, else CPU
        self._started = False

    @property
    def enabled(self) -> bool:
        """Whether there are several processes."""
        return self.env.enabled

    @property
    def rank(self) -> int:
        """Global rank (0 in a single process)."""
        return self.env.rank

    @property
    def world_size(self) -> int:
        """Number of processes (1 in a single process)."""
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        """Whether this process is rank 0."""
        return self.env.is_main

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, device: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Join the group (NCCL for a CUDA ``device``, gloo otherwise); a no-op for one process.

        ``timeout_s`` bounds how long a collective waits for a missing peer before the job fails.
        """
        if not self.enabled or self._started:
            return
        import torch
        import torch.distributed as tdist

        cuda = getattr(device, "type", "cpu") == "cuda"
        self.backend = "nccl" if cuda else "gloo"
        self._device = device if cuda else torch.device("cpu")
        kwargs: dict[str, Any] = {"backend": self.backend, "timeout": timedelta(seconds=timeout_s)}
        if cuda:
            kwargs["device_id"] = device  # binds the communicator to this rank's GPU up front
        tdist.init_process_group(**kwargs)
        self._started = True

    def close(self, wait_for_peers: bool = False) -> None:
        """Leave the group (safe to call more than once, and when it was never joined).

        ``wait_for_peers``: first wait until every rank is leaving too (only where all ranks get
        here, e.g. a completed trial; a rank that fails alone must not wait for peers that are stuck
        elsewhere). The DDP wrapper and other holders of the group are collected before it is
        destroyed, so no gloo/NCCL object outlives it into interpreter shutdown.
        """
        if not self._started:
            return
        import gc

        import torch.distributed as tdist

        if wait_for_peers:
            with contextlib.suppress(Exception):
                tdist.barrier()
        self._started = False
        gc.collect()
        if tdist.is_initialized():
            tdist.destroy_process_group()

    # -- collectives -----------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self._started:
            import torch.distributed as tdist

            tdist.barrier()

    def per_rank(self, values: Sequence[float]) -> list[list[float]]:
        """Every rank's ``values`` (same length on each rank), indexed ``[rank][i]``, exact (float64).

        One all-reduce: each rank writes its values into its own row of a zero matrix. NaN and inf
        stay in the row of the rank that produced them.
        """
        if not self._started:
            return [list(map(float, values))]
        import torch
        import torch.distributed as tdist

        table = torch.zeros((self.world_size, len(values)), dtype=torch.float64, device=self._device)
        table[self.rank] = torch.tensor([float(v) for v in values], dtype=torch.float64)
        tdist.all_reduce(table)
        return table.cpu().tolist()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks."""
        rows = self.per_rank(values)
        return [sum(row[i] for row in rows) for i in range(len(values))]

    def max(self, values: Sequence[float]) -> list[float]:
        """Element-wise maximum of ``values`` over ranks."""
        rows = self.per_rank(values)
        return [max(row[i] for row in rows) for i in range(len(values))]

    def gather_objects(self, obj: _T) -> list[_T]:
        """Every rank's picklable ``obj``, in rank order."""
        if not self._started:
            return [obj]
        import torch.distributed as tdist

        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def gather_rows(self, local: Any) -> Any:
        """Concatenate every rank's tensor along dim 0 in rank order (row counts may differ, even be 0).

        Returns a CPU tensor on every rank. Rows are padded only for the transfer and cut off again,
        so the result holds each rank's rows exactly once.
        """
        if not self._started:
            return local.cpu()
        import torch
        import torch.distributed as tdist

        rows = torch.tensor([local.shape[0]], dtype=torch.long, device=self._device)
        sizes = [torch.zeros_like(rows) for _ in range(self.world_size)]
        tdist.all_gather(sizes, rows)
        counts = [int(s.item()) for s in sizes]
        longest = max(counts)
        if longest == 0:
            return local.cpu()
        padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=self._device)
        padded[: local.shape[0]] = local.to(self._device)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        tdist.all_gather(parts, padded)
        return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)]).cpu()

    def broadcast_state(self, tensors: Sequence[Any]) -> None:
        """Overwrite ``tensors`` (e.g. a model's buffers) on every rank with rank 0's values, in place."""
        if not self._started:
            return
        import torch.distributed as tdist

        for tensor in tensors:
            if tensor.device == self._device:
                tdist.broadcast(tensor, src=0)
            else:
                staged = tensor.to(self._device)
                tdist.broadcast(staged, src=0)
                tensor.copy_(staged)

    def agree(self, work: Callable[[], _T], what: str) -> _T:
        """Run ``work`` on every rank; if it raises on any rank, raise on all of them.

        The rank whose ``work`` failed re-raises its own exception; the others raise a TrainerError
        naming the failed rank(s), with the failing rank's exit code, marked ``peer_report`` (printed
        once, by rank 0); when every rank failed, the errors are marked ``collective``. Without this, a rank that fails alone would leave its peers waiting in the
        next collective until the timeout.
        """
        error: BaseException | None = None
        result: Any = None
        try:
            result = work()
        except Exception as exc:
            error = exc
        if not self._started:
            if error is not None:
                raise error
            return result
        code = getattr(error, "exit_code", 1) if error is not None else 0
        codes = [int(row[0]) for row in self.per_rank([code])]
        if error is not None:
            if all(codes) and isinstance(error, TrainerError):
                error.collective = True  # every rank failed: rank 0's message says it once
            raise error
        failed = [r for r, c in enumerate(codes) if c]
        if failed:
            peer = TrainerError(
                f"rank(s) {', '.join(map(str, failed))} failed while {what} (see their error message); "
                f"every rank stops"
            )
            peer.exit_code = codes[failed[0]]
            peer.peer_report = True
            raise peer
        return result
