"""The ``train`` command: one Katib trial from arguments to metric lines, preemption-safe."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import (
    AsyncCheckpointWriter,
    checkpoint_path,
    load_checkpoint,
    remove_stale_temporaries,
)
from trainer.compile_policy import compile_decision
from trainer.config import RunConfig
from trainer.data import global_batch_at
from trainer.distributed import Dist, LaunchError, dist_env, rank_from_env
from trainer.errors import (
    EXIT_BAD_ARGS,
    EXIT_NON_FINITE_LOSS,
    CheckpointError,
    NonFiniteLossError,
    OutOfMemoryError,
    PreemptedError,
    TrainerError,
)
from trainer.gpu_meter import GpuMeter, meter_for_torch_device
from trainer.katib_metrics import DIVERGED_METRIC, chance_metrics, metric_names_for_task
from trainer.optim import lr_lambda
from trainer.parallel import (
    check_batch_split,
    default_num_workers,
    pick_device,
    uses_sync_batchnorm,
    wrap_for_training,
)
from trainer.process_clock import PROCESS_START
from trainer.prom_exporter import TrainingExporter
from trainer.reporter import MetricReporter
from trainer.tasks import PreparedTask, load_ref


class StopFlag:
    """Turns SIGTERM into a flag the training loop checks between steps.

    Under torchrun the launcher forwards its own SIGTERM to every worker, but the workers see it at
    slightly different steps; the loop therefore only acts on the flag after an all-reduce, so all
    ranks stop after the same step.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def install(self) -> None:
        """Catch SIGTERM (main thread only)."""
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def restore(self) -> None:
        """Put the previous SIGTERM handler back."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def log(message: str) -> None:
    """A progress note on stderr (no ``name=value`` pairs, so Katib's parser ignores it); rank 0 only."""
    if rank_from_env() == 0:
        print(f"trainer: {message}", file=sys.stderr, flush=True)


def _oom_error(cfg: RunConfig, exc: BaseException, world_size: int = 1) -> OutOfMemoryError:
    shape = f"--max-seq-length {cfg.max_seq_length}" if cfg.is_text else f"--image-size {cfg.image_size}"
    batch = f"--batch-size {cfg.batch_size}"
    if world_size > 1:
        batch += f" per process (global batch {cfg.batch_size * world_size} over {world_size} processes)"
    return OutOfMemoryError(
        f"out of memory at {batch} (task {cfg.task}, model {cfg.model}, {shape}); "
        f"this batch size does not fit the device, try a smaller --batch-size ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''})"
    )


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _diverged(value: float, what: str, cfg: RunConfig, epoch: int, step: int, where: str = "") -> str:
    return (
        f"{what} became {value}{where} at epoch {epoch + 1}, step {step}: training diverged "
        f"(--learning-rate {cfg.learning_rate:g} is probably too high for --batch-size {cfg.batch_size}); "
        f"stopping the trial"
    )


def _check_finite(value: torch.Tensor, what: str, cfg: RunConfig, epoch: int, step: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteLossError(_diverged(float(value.sum()), what, cfg, epoch, step))


def prepare(cfg: RunConfig, device: torch.device, num_workers: int, dist: Dist | None = None) -> PreparedTask:
    """Build ``cfg.task`` with its registered ``prepare`` (imported here: no transformers for vision and vice versa)."""
    if device.type == "cuda":

        def autocast() -> Any:
            return torch.autocast("cuda", dtype=torch.bfloat16)

    else:
        autocast = contextlib.nullcontext
    return load_ref(cfg.spec.prepare)(cfg, device, autocast, num_workers, dist)


class Trial:
    """State of one training run: task, optimizer schedule, costs carried over from earlier runs.

    Under torchrun every rank holds a Trial; the methods that talk to the other ranks (``costs``,
    ``save``, ``restore``, the checks in ``run_epoch``) are called by all ranks at the same points.
    """

    def __init__(
        self,
        cfg: RunConfig,
        device: torch.device,
        task: PreparedTask,
        meter: GpuMeter,
        reporter: MetricReporter,
        exporter: TrainingExporter,
        stop: StopFlag,
        dist: Dist | None = None,
    ) -> None:
        self.cfg, self.device, self.task = cfg, device, task
        self.meter, self.reporter, self.exporter, self.stop = meter, reporter, exporter, stop
        self.dist = dist or Dist()
        # one optimizer step per global batch on every rank, so the schedule is the single-process one
        self.total_steps = task.steps_per_epoch * cfg.num_epochs
        warmup = round(cfg.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            task.optimizer, lr_lambda(task.schedule, self.total_steps, warmup)
        )
        self.sync_batchnorm = uses_sync_batchnorm(cfg, device, self.dist.env)
        self.compiled, self.compile_reason = compile_decision(cfg, device, self.total_steps)
        task.model, self.net, self.eval_net = wrap_for_training(
            task.model, device, self.dist, self.sync_batchnorm, self.compiled
        )
        self.writer = AsyncCheckpointWriter(cfg.checkpoint_dir, pin_memory=device.type == "cuda")
        self.last_save = time.monotonic()  # the interval counts from the start (or the resume)
        self.history: list[dict[str, float | int]] = []
        self.prior = {"train_seconds": 0.0, "gpu_seconds": 0.0, "gpu_energy_j": 0.0, "samples": 0}
        self.train_seconds = 0.0  # this process
        self.samples = 0  # this process
        self.start_epoch, self.start_step = 0, 0
        self.partial_loss, self.partial_count = 0.0, 0
        self.check_every = 25 if device.type == "cuda" else 1
        self.diverged: str | None = None  # why the run diverged, when it reported instead of failing

    # -- checkpoints -------------------------------------------------------------------------------
    def costs(self) -> dict[str, float]:
        """Cost totals over this and earlier (preempted) runs, summed over ranks (collective).

        GPU seconds and energy add up each rank's own GPU; ``train_seconds`` is the slowest rank's.
        """
        reading = self.meter.read()
        gpu_seconds, energy, samples = self.dist.sum([reading.gpu_seconds, reading.energy_j, self.samples])
        (train_seconds,) = self.dist.max([self.train_seconds])
        return {
            "train_seconds": self.prior["train_seconds"] + train_seconds,
            "gpu_seconds": self.prior["gpu_seconds"] + gpu_seconds,
            "gpu_energy_j": self.prior["gpu_energy_j"] + energy,
            "samples": int(self.prior["samples"] + samples),
        }

    def save(
        self, epoch: int, step: int, loss_sum: float, count: int, wait: bool = True, running_s: float = 0.0
    ) -> Path:
        """Checkpoint at (epoch, step): weights, optimizer, schedule, RNG, history and costs.

        Collective: rank 0 writes (atomically) with every rank's RNG state and the partial loss summed
        over ranks. ``wait``: the file is on disk when this returns, on every rank (a preemption
        save: no rank exits before it is); otherwise rank 0 writes it in the background (the
        interval saves: training goes on). ``running_s``: training seconds of the epoch in progress
        not yet counted in ``train_seconds`` (a mid-epoch save).
        """
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rngs = self.dist.gather_objects(rng)
        self.train_seconds += running_s
        try:
            costs = self.costs()
        finally:
            self.train_seconds -= running_s
        loss_total, count_total = self.dist.sum([loss_sum, count])
        state: dict[str, Any] = {
            "fingerprint": self.cfg.fingerprint(),
            "epoch": epoch,
            "step": step,
            "model": self.task.model.state_dict(),
            "optimizer": self.task.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rngs[0],
            "history": self.history,
            "history_times": list(self.reporter.epoch_times),
            "costs": costs,
            "partial": {"loss_sum": loss_total, "count": int(count_total)},
            "steps_per_epoch": self.task.steps_per_epoch,
            "world_size": self.dist.world_size,
        }
        if self.dist.enabled:
            state["rng_ranks"] = rngs

        self.last_save = time.monotonic()
        return self._write(state, wait)

    def _write(self, state: dict[str, Any], wait: bool) -> Path:
        """Rank 0 writes ``state`` (now, or in the background); every rank learns of a failure."""

        def write() -> Path:
            if self.dist.is_main:
                if not wait:
                    self.writer.submit(state)
                    return checkpoint_path(self.cfg.checkpoint_dir)
                return self.writer.write(state)
            return checkpoint_path(self.cfg.checkpoint_dir)

        return self.dist.agree(write, "writing the checkpoint")

    def save_finished(self) -> Path:
        """After the last epoch: the small finished marker instead of a full checkpoint (collective).

        It holds what a restarted pod of this finished trial needs to print its metric lines again
        without training (history, their times, costs); no weights or optimizer state, which nothing
        would read. It replaces the last training checkpoint once the background write (if any) ends.
        """
        state: dict[str, Any] = {
            "fingerprint": self.cfg.fingerprint(),
            "epoch": self.cfg.num_epochs,
            "step": 0,
            "finished": True,
            "history": self.history,
            "history_times": list(self.reporter.epoch_times),
            "costs": self.costs(),
            "steps_per_epoch": self.task.steps_per_epoch,
            "world_size": self.dist.world_size,
        }
        return self._write(state, wait=True)

    def save_due(self) -> bool:
        """Whether ``--checkpoint-interval-s`` has passed since the last save (rank 0's clock)."""
        interval = self.cfg.checkpoint_interval_s
        return interval > 0 and time.monotonic() - self.last_save >= interval

    def _load(self) -> dict[str, Any] | None:
        state = load_checkpoint(self.cfg.checkpoint_dir, self.cfg.fingerprint())
        if state is None:
            return None
        path = checkpoint_path(self.cfg.checkpoint_dir)
        saved_steps = state.get("steps_per_epoch", self.task.steps_per_epoch)
        if saved_steps != self.task.steps_per_epoch:
            raise CheckpointError(
                f"checkpoint {path} was written by {state.get('world_size', 1)} process(es) with "
                f"{saved_steps} steps per epoch; this run has {self.dist.world_size} process(es) and "
                f"{self.task.steps_per_epoch} steps per epoch (the short last batch is dropped when it "
                f"cannot be split over the processes); resume with the same number of processes, or "
                f"delete {path} to start the trial from scratch"
            )
        if state.get("finished"):
            return state
        try:
            self.task.model.load_state_dict(state["model"])
            self.task.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model/optimizer "
                f"({type(exc).__name__}: {str(exc).splitlines()[0]}); delete it to start the trial from scratch"
            ) from exc
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == self.dist.world_size:
            rng = ranks[self.dist.rank]
        elif not self.dist.enabled:
            rng = state["rng"]
        else:  # written by another number of processes: fresh per-rank streams, still deterministic
            torch.manual_seed(rank_seed(self.cfg.seed, self.dist.rank) + 7919 * (state["epoch"] + 1))
            log(
                f"the checkpoint was written by {state.get('world_size', 1)} process(es), this run has "
                f"{self.dist.world_size}: the random streams (dropout) restart from a new seed"
            )
            return
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def restore(self) -> bool:
        """Load a matching checkpoint if there is one; True when resumed (collective).

        Every rank reads the file itself (to the CPU, then into its own model copy); the ranks then
        check that they all found the same one, which fails when the checkpoint folder is not shared
        by all nodes.
        """
        if self.dist.is_main:  # no rank has saved yet: a temporary file is a crashed write's leftover
            for path in remove_stale_temporaries(self.cfg.checkpoint_dir):
                log(f"removed {path}, left by a checkpoint write that was cut off")
        state = self.dist.agree(self._load, "reading the checkpoint")
        where = (-1, -1) if state is None else (int(state["epoch"]), int(state["step"]))
        found = [tuple(int(v) for v in row) for row in self.dist.per_rank(where)]
        if len(set(found)) > 1:
            seen = "; ".join(
                f"rank {r}: " + ("none" if e < 0 else f"epoch {e} step {s}") for r, (e, s) in enumerate(found)
            )
            error = CheckpointError(
                f"the processes do not see the same checkpoint in --checkpoint-dir "
                f"{self.cfg.checkpoint_dir} ({seen}); every node must mount the same checkpoint folder "
                f"(a ReadWriteMany volume) so that all ranks resume together"
            )
            error.collective = True
            raise error
        if state is None:
            return False
        if not state.get("finished"):
            self._restore_rng(state)
        self.start_epoch, self.start_step = int(state["epoch"]), int(state["step"])
        self.history = list(state.get("history", []))
        self.prior = dict(state.get("costs", self.prior))
        partial = state.get("partial", {})
        if self.dist.is_main:  # the saved partial loss is the sum over ranks: count it once
            self.partial_loss = float(partial.get("loss_sum", 0.0))
            self.partial_count = int(partial.get("count", 0))
        self.reporter.replay(self.history, list(state.get("history_times", [])))
        log(
            f"resuming from {checkpoint_path(self.cfg.checkpoint_dir)}: {len(self.history)} of "
            f"{self.cfg.num_epochs} epochs done, continuing at epoch {self.start_epoch + 1} step {self.start_step}"
        )
        return True

    # -- training ----------------------------------------------------------------------------------
    def _preempt(self, epoch: int, step: int, loss_sum: float, count: int, why: str) -> PreemptedError:
        path = self.save(epoch, step, loss_sum, count)
        error = PreemptedError(
            f"{why}: saved checkpoint at epoch {epoch + 1} step {step} to {path}; rerun the same command to resume"
        )
        error.collective = self.dist.enabled
        return error

    def _poll(self, loss_sum: torch.Tensor, epoch: int, step: int) -> tuple[bool, bool]:
        """Raise when the training loss is not finite (on any rank); return (stop, save now).

        Stop: any rank saw SIGTERM. Save now: the checkpoint interval has passed on rank 0's clock.
        One process checks its own values. Several exchange (loss sum, SIGTERM seen, save due) in
        one all-reduce, so every rank takes the same decisions after the same step.
        """
        if not self.dist.enabled:
            _check_finite(loss_sum, "the training loss", self.cfg, epoch, step)
            return self.stop.requested, self.save_due()
        due = self.dist.is_main and self.save_due()
        rows = self.dist.per_rank([float(loss_sum), float(self.stop.requested), float(due)])
        bad = [r for r, row in enumerate(rows) if not math.isfinite(row[0])]
        if bad:
            ranks = ", ".join(map(str, bad))
            error = NonFiniteLossError(
                _diverged(rows[bad[0]][0], "the training loss", self.cfg, epoch, step, f" on rank(s) {ranks}")
            )
            error.collective = True
            raise error
        return any(row[1] for row in rows), any(row[2] for row in rows)

    def _backward(self, loss: torch.Tensor, n: int, step: int) -> None:
        """Backward pass; under DDP the rank's mean loss is weighted by its share of the global batch.

        DDP averages gradients over ranks; with the weight ``n * world / global_n`` the average is the
        gradient of the global batch's mean loss even when the last batch splits unevenly (the weight
        is exactly 1 for full batches).
        """
        if self.dist.enabled:
            total = global_batch_at(self.task.train_size, self.cfg.batch_size * self.dist.world_size, step)
            weight = n * self.dist.world_size / total
            if weight != 1.0:
                loss = loss * weight
        loss.backward()

    def run_epoch(self, epoch: int, first_step: int) -> dict[str, float | int]:
        """Train one epoch from ``first_step``, then evaluate; returns the epoch's metric dict."""
        cfg, task = self.cfg, self.task
        carried = epoch == self.start_epoch
        loss_sum = torch.tensor(
            self.partial_loss if carried else 0.0, dtype=torch.float64, device=self.device
        )
        count = self.partial_count if carried else 0
        task.model.train()
        step = first_step
        began = time.monotonic()
        window_start, window_samples = began, 0
        for batch in task.train_batches(epoch, first_step):
            n = self.train_step(batch, epoch, step, loss_sum)
            count += n
            step += 1
            self.samples += n
            window_samples += n
            local_stop = not self.dist.enabled and self.stop.requested
            if step % self.check_every == 0 or local_stop:
                try:
                    stop, due = self._poll(loss_sum, epoch, step)
                except NonFiniteLossError:
                    self._sync_time(began)  # the diverged run's train_seconds include this epoch
                    raise
                if stop:
                    self._sync_time(began)
                    raise self._preempt(epoch, step, float(loss_sum), count, "received SIGTERM")
                if due and step < task.steps_per_epoch:  # at the epoch's end the epoch-end save decides
                    self.save(
                        epoch, step, float(loss_sum), count, wait=False, running_s=time.monotonic() - began
                    )
                now = time.monotonic()
                self.exporter.update(
                    step=epoch * task.steps_per_epoch + step,
                    samples_per_second=window_samples * self.dist.world_size / max(now - window_start, 1e-9),
                    loss=float(loss_sum) / max(count, 1),
                    gpu_utilization=self.meter.current_utilization(),
                )
                window_start, window_samples = now, 0
        self._sync_time(began)
        if self._poll(loss_sum, epoch, step)[0]:
            raise self._preempt(epoch, step, float(loss_sum), count, "received SIGTERM")
        loss_total, count_total = self.dist.sum([float(loss_sum), count])
        # every rank evaluates with rank 0's BatchNorm statistics, the ones the checkpoint holds
        self.dist.broadcast_state(list(task.model.buffers()))
        metrics = task.evaluate(self.eval_net)
        for name, value in metrics.items():
            if not math.isfinite(value):  # the same values on every rank: all raise together
                error = NonFiniteLossError(_diverged(value, f"the validation {name}", cfg, epoch, step))
                error.collective = self.dist.enabled
                raise error
        self.partial_loss, self.partial_count = 0.0, 0
        return {"epoch": epoch + 1, **metrics, "train_loss": loss_total / max(count_total, 1)}

    def train_step(self, batch: Any, epoch: int, step: int, loss_sum: torch.Tensor) -> int:
        """One optimizer step on ``batch``; adds the batch's summed loss to ``loss_sum`` (on the device).

        Nothing here waits for the device: the loss stays a device tensor (checked every
        ``check_every`` steps by ``_poll``), so the host runs ahead and queues the next steps.
        Returns the batch's sample count (known on the host).
        """
        task = self.task
        loss, n = task.batch_loss(self.net, batch, epoch, step)
        self._backward(loss, n, step)
        task.optimizer.step()
        self.scheduler.step()
        task.optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().double() * n
        return n

    def _sync_time(self, began: float) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_seconds += time.monotonic() - began

    def _epoch_end_flags(self) -> tuple[bool, bool]:
        """(stop: any rank saw SIGTERM, save: the interval passed on rank 0 or it is 0), one all-reduce."""
        due = self.cfg.checkpoint_interval_s == 0 or self.save_due()
        if not self.dist.enabled:
            return self.stop.requested, due
        stop, save = self.dist.max([float(self.stop.requested), float(self.dist.is_main and due)])
        return stop > 0, save > 0

    def run(self) -> dict[str, float | int]:
        """Train the remaining epochs, report each, and return the final metrics.

        A divergence (NaN/inf loss or validation metric) is a result, not an infrastructure failure:
        unless ``--fail-on-divergence``, the final metrics are chance level with ``diverged=1`` and
        ``self.diverged`` holds the reason (see ``diverged_result``).
        """
        try:
            try:
                result = self._run_epochs()
            except NonFiniteLossError as exc:
                if self.cfg.fail_on_divergence:
                    raise
                result = self.diverged_result(str(exc))
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                self.writer.wait()  # no background write is cut off by the exit (its file is complete)
            raise
        self.writer.wait()
        return result

    def diverged_result(self, reason: str) -> dict[str, float | int]:
        """Final metrics of a diverged run: chance-level quality, the costs so far, ``diverged=1``.

        Why exit 0: a trial that exits non-zero fails its Job (podFailurePolicy FailJob), Katib marks
        the Trial Failed (``pkg/controller.v1beta1/trial``: the Job's Failed condition) and counts it
        against ``maxFailedTrialCount`` (``experiment/util/status_util.go``), so a few too-high
        learning rates could fail a whole Experiment, while the suggestion service never learns from
        a failed trial. Reported, the configuration is an ordinary Succeeded trial at chance level.
        The epoch lines printed before the divergence stay in the log (a ``max`` strategy still sees
        them); the final line, which ``latest`` picks, describes the diverged model. Collective under
        torchrun: every rank raises the divergence at the same step.
        """
        self.diverged = reason
        log(
            f"{reason}; reporting chance-level metrics with {DIVERGED_METRIC}=1 and exiting 0 "
            f"(--fail-on-divergence exits {EXIT_NON_FINITE_LOSS} instead)"
        )
        return {**chance_metrics(self.cfg.task), **self.cost_metrics(), DIVERGED_METRIC: 1}

    def cost_metrics(self) -> dict[str, float]:
        """The final line's cost metrics over this and earlier runs (collective, see ``costs``)."""
        costs = self.costs()
        seconds = costs["train_seconds"]
        return {
            "gpu_seconds": costs["gpu_seconds"],
            "train_seconds": seconds,
            "gpu_energy_j": costs["gpu_energy_j"],
            "samples_per_second": costs["samples"] / seconds if seconds else 0.0,
        }

    def _run_epochs(self) -> dict[str, float | int]:
        cfg = self.cfg
        for epoch in range(self.start_epoch, cfg.num_epochs):
            first_step = self.start_step if epoch == self.start_epoch else 0
            epoch_metrics = self.run_epoch(epoch, first_step)
            self.history.append(epoch_metrics)
            self.reporter.epoch(epoch_metrics)
            self.exporter.update(epoch=epoch + 1)
            if epoch + 1 == cfg.num_epochs:  # done: no full checkpoint, only the finished marker
                self.save_finished()
                break
            stop, due = self._epoch_end_flags()
            asked = cfg.stop_after_epoch == epoch + 1
            if stop or asked or due:  # on SIGTERM or --stop-after-epoch: on disk before the exit
                self.save(epoch + 1, 0, 0.0, 0, wait=stop or asked)
            if asked:
                error = PreemptedError(
                    f"stopped after epoch {epoch + 1} as --stop-after-epoch asked; checkpoint saved to "
                    f"{checkpoint_path(cfg.checkpoint_dir)}; rerun without the flag to resume"
                )
                error.collective = self.dist.enabled
                raise error
            if stop:
                error = PreemptedError(
                    f"received SIGTERM: saved checkpoint after epoch {epoch + 1} to "
                    f"{checkpoint_path(cfg.checkpoint_dir)}; rerun the same command to resume"
                )
                error.collective = self.dist.enabled
                raise error
        last = self.history[-1]
        names = metric_names_for_task(cfg.task)
        final: dict[str, float | int] = {name: last[name] for name in names if name in last}
        final.update(self.cost_metrics())
        return final


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams (dropout) after the model is built."""
    return seed * 1_000_003 + 7_919 * (rank + 1)


def _unwritable(folder: str) -> str | None:
    """Why ``folder`` cannot hold the trial's files (created if missing), or None when it can.

    Checked before any work so that a bad mount fails in a second, not after the first epoch.
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"not a writable directory ({exc.strerror or exc})"
    return None


def _argument_error(message: str, every_rank: bool = True) -> int:
    """Print an argument error and return exit code 2.

    ``every_rank``: every rank finds this same error (the arguments, the torchrun variables), so
    rank 0 alone prints it. Otherwise it is this rank's own (its ``LOCAL_RANK`` has no GPU), and this
    rank prints it, as ``trainer[rank N]: ...`` when it is not rank 0.
    """
    rank = rank_from_env()
    prefix = "" if rank == 0 else f"trainer[rank {rank}]: "
    if rank == 0 or not every_rank:
        print(f"{prefix}python -m trainer train: error: {message}", file=sys.stderr, flush=True)
    return EXIT_BAD_ARGS


def run_training(args: argparse.Namespace) -> int:
    """Run the ``train`` subcommand; raises TrainerError subclasses for the documented failures.

    Under torchrun (``WORLD_SIZE`` > 1) this process is one rank of a data-parallel job: it joins the
    process group after the arguments are checked and always leaves it before returning.
    """
    try:
        cfg = RunConfig.from_args(args)
    except argparse.ArgumentTypeError as exc:
        return _argument_error(str(exc))
    try:
        env = dist_env()
    except LaunchError as exc:
        return _argument_error(str(exc))
    try:
        device = pick_device(cfg.device, env)  # per rank: its LOCAL_RANK may have no GPU
    except LaunchError as exc:
        return _argument_error(str(exc), every_rank=False)
    try:
        check_batch_split(cfg, device, env)
    except LaunchError as exc:
        return _argument_error(str(exc))
    # only rank 0 writes metrics.json and checkpoints (the others only read the checkpoint folder)
    for flag, folder in (("--output-dir", cfg.output_dir), ("--checkpoint-dir", cfg.checkpoint_dir)):
        problem = _unwritable(folder) if env.is_main else None
        if problem:
            return _argument_error(f"{flag} {folder}: {problem}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if device.type == "cpu" and cfg.preset == "tiny" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # tiny models: threads only add overhead, and trials run side by side
    dist = Dist(env)
    together = False  # whether every rank leaves at this point (then they leave the group in step)
    try:
        dist.start(device, cfg.dist_timeout)
        code = _train(cfg, device, dist)
        together = True
        return code
    except TrainerError as exc:
        together = exc.collective
        raise
    finally:
        dist.close(wait_for_peers=together)


def _train(cfg: RunConfig, device: torch.device, dist: Dist) -> int:
    torch.manual_seed(cfg.seed)
    meter = meter_for_torch_device(device, started_at=PROCESS_START, only_current=dist.enabled)
    reading = meter.read()
    (gpu_total,) = dist.sum([reading.gpu_count])
    names = [name for names in dist.gather_objects(reading.names) for name in names]
    run_info: dict[str, Any] = {
        "task": cfg.task,
        "preset": cfg.preset,
        "model": cfg.model,
        "device": reading.device,
        "gpu_count": int(gpu_total),
        "gpu_names": names,
        "nvml": meter.nvml_available,
        "world_size": dist.world_size,
        "settings": cfg.fingerprint(),
        "command": [sys.executable, "-m", "trainer", *sys.argv[1:]],
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if dist.enabled:
        run_info["distributed"] = {
            "backend": dist.backend,
            "world_size": dist.world_size,
            "global_batch_size": cfg.batch_size * dist.world_size,
            "batch_size_per_process": cfg.batch_size,
            "sync_batchnorm": uses_sync_batchnorm(cfg, device, dist.env),
        }
    push = cfg.katib_db_manager_address if cfg.push_metrics else None
    reporter = MetricReporter(cfg.output_dir, run_info, push_address=push, silent=not dist.is_main)
    stop = StopFlag()
    stop.install()
    exporter: TrainingExporter | None = None
    try:
        try:
            exporter = TrainingExporter(cfg.metrics_port if dist.is_main else None, cfg.task)
        except OSError as exc:
            raise TrainerError(f"--metrics-port {cfg.metrics_port}: cannot serve metrics ({exc})") from exc
        num_workers = (
            cfg.num_workers if cfg.num_workers is not None else default_num_workers(device, dist.env)
        )
        try:
            task = dist.agree(lambda: prepare(cfg, device, num_workers, dist), "loading the model and data")
            if dist.enabled:  # the model is built (the same on every rank): now per-rank dropout streams
                torch.manual_seed(rank_seed(cfg.seed, dist.rank))
            reporter.run_info.update(task.info)
            per_process = f" per process, {cfg.batch_size * dist.world_size} global" if dist.enabled else ""
            log(
                f"{cfg.task} ({cfg.preset} preset) on {device}"
                + (f" and {dist.world_size - 1} more processes ({dist.backend})" if dist.enabled else "")
                + f", model {task.info.get('model_source')}, {task.train_size} training examples, "
                f"batch {cfg.batch_size}{per_process}, {task.steps_per_epoch} steps per epoch"
            )
            notes = cfg.tiny_scaling_notes()
            if notes:
                log(f"{'; '.join(notes)} (see docs/trainer.md, 'Presets')")
            trial = Trial(cfg, device, task, meter, reporter, exporter, stop, dist)
            log(f"torch.compile {'on' if trial.compiled else 'off'} ({trial.compile_reason})")
            trial.restore()
            final = trial.run()
        except TrainerError:
            raise
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if _is_oom(exc):
                raise _oom_error(cfg, exc, dist.world_size) from exc
            raise
        if trial.diverged is not None:
            reporter.finish(final, status="diverged", message=trial.diverged)
        else:
            reporter.finish(final)
        return 0
    except TrainerError as exc:
        status = "preempted" if isinstance(exc, PreemptedError) else "failed"
        with contextlib.suppress(Exception):
            reporter.fail(status, str(exc))
        raise
    finally:
        stop.restore()
        if exporter is not None:
            exporter.close()
        meter.close()
