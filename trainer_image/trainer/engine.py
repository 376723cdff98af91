"""The ``train`` command: one Katib trial from arguments to metric lines, preemption-safe."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from trainer.cli import PROCESS_START
from trainer.config import RunConfig
from trainer.errors import (
    EXIT_BAD_ARGS,
    NonFiniteLossError,
    OutOfMemoryError,
    PreemptedError,
    TrainerError,
)
from trainer.gpu_meter import GpuMeter, meter_for_torch_device
from trainer.katib_metrics import metric_names_for_task
from trainer.prom_exporter import TrainingExporter
from trainer.reporter import MetricReporter
from trainer.tasks import PreparedTask, lr_lambda


class StopFlag:
    """Turns SIGTERM into a flag the training loop checks between steps."""

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
    """A progress note on stderr (no ``name=value`` pairs, so Katib's parser ignores it)."""
    print(f"trainer: {message}", file=sys.stderr, flush=True)


def pick_device(choice: str) -> torch.device:
    """``auto`` -> CUDA when visible, else CPU; ``cuda`` without a GPU is an argument error."""
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    if choice == "cuda":
        error = TrainerError(
            "--device cuda was requested but torch sees no CUDA device; use --device auto or cpu"
        )
        error.exit_code = EXIT_BAD_ARGS
        raise error
    return torch.device("cpu")


def _oom_error(cfg: RunConfig, exc: BaseException) -> OutOfMemoryError:
    shape = f"--max-seq-length {cfg.max_seq_length}" if cfg.is_text else f"--image-size {cfg.image_size}"
    return OutOfMemoryError(
        f"out of memory at --batch-size {cfg.batch_size} (task {cfg.task}, model {cfg.model}, {shape}); "
        f"this batch size does not fit the device, try a smaller --batch-size ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else ''})"
    )


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _check_finite(value: torch.Tensor, what: str, cfg: RunConfig, epoch: int, step: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteLossError(
            f"{what} became {float(value.sum())} at epoch {epoch + 1}, step {step}: training diverged "
            f"(--learning-rate {cfg.learning_rate:g} is probably too high for --batch-size {cfg.batch_size}); "
            f"stopping the trial"
        )


def prepare(cfg: RunConfig, device: torch.device, num_workers: int) -> PreparedTask:
    """Build the task family for ``cfg.task`` (lazy imports: no transformers for vision and vice versa)."""
    if device.type == "cuda":

        def autocast() -> Any:
            return torch.autocast("cuda", dtype=torch.bfloat16)

    else:
        autocast = contextlib.nullcontext
    if cfg.is_text:
        from trainer.text_task import prepare_text

        return prepare_text(cfg, device, autocast, num_workers)
    from trainer.vision_task import prepare_vision

    return prepare_vision(cfg, device, autocast, num_workers)


class Trial:
    """State of one training run: task, optimizer schedule, costs carried over from earlier runs."""

    def __init__(
        self,
        cfg: RunConfig,
        device: torch.device,
        task: PreparedTask,
        meter: GpuMeter,
        reporter: MetricReporter,
        exporter: TrainingExporter,
        stop: StopFlag,
    ) -> None:
        self.cfg, self.device, self.task = cfg, device, task
        self.meter, self.reporter, self.exporter, self.stop = meter, reporter, exporter, stop
        self.total_steps = task.steps_per_epoch * cfg.num_epochs
        warmup = round(cfg.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            task.optimizer, lr_lambda(task.schedule, self.total_steps, warmup)
        )
        self.net: Callable[..., Any] = torch.compile(task.model) if cfg.compile else task.model
        self.history: list[dict[str, float | int]] = []
        self.prior = {"train_seconds": 0.0, "gpu_seconds": 0.0, "gpu_energy_j": 0.0, "samples": 0}
        self.train_seconds = 0.0  # this process
        self.samples = 0  # this process
        self.start_epoch, self.start_step = 0, 0
        self.partial_loss, self.partial_count = 0.0, 0
        self.check_every = 25 if device.type == "cuda" else 1

    # -- checkpoints -------------------------------------------------------------------------------
    def costs(self) -> dict[str, float]:
        """Cost totals over this and earlier (preempted) runs."""
        reading = self.meter.read()
        return {
            "train_seconds": self.prior["train_seconds"] + self.train_seconds,
            "gpu_seconds": self.prior["gpu_seconds"] + reading.gpu_seconds,
            "gpu_energy_j": self.prior["gpu_energy_j"] + reading.energy_j,
            "samples": self.prior["samples"] + self.samples,
        }

    def save(self, epoch: int, step: int, loss_sum: float, count: int) -> Path:
        """Checkpoint at (epoch, step): weights, optimizer, schedule, RNG, history and costs."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return save_checkpoint(
            self.cfg.checkpoint_dir,
            {
                "fingerprint": self.cfg.fingerprint(),
                "epoch": epoch,
                "step": step,
                "model": self.task.model.state_dict(),
                "optimizer": self.task.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng,
                "history": self.history,
                "costs": self.costs(),
                "partial": {"loss_sum": loss_sum, "count": count},
            },
        )

    def restore(self) -> bool:
        """Load a matching checkpoint if there is one; True when resumed."""
        state = load_checkpoint(self.cfg.checkpoint_dir, self.cfg.fingerprint())
        if state is None:
            return False
        try:
            self.task.model.load_state_dict(state["model"])
            self.task.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if self.device.type == "cuda" and "cuda" in state["rng"]:
                torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            from trainer.errors import CheckpointError

            raise CheckpointError(
                f"checkpoint {checkpoint_path(self.cfg.checkpoint_dir)} does not fit this model/optimizer "
                f"({type(exc).__name__}: {str(exc).splitlines()[0]}); delete it to start the trial from scratch"
            ) from exc
        self.start_epoch, self.start_step = int(state["epoch"]), int(state["step"])
        self.history = list(state.get("history", []))
        self.prior = dict(state.get("costs", self.prior))
        partial = state.get("partial", {})
        self.partial_loss, self.partial_count = (
            float(partial.get("loss_sum", 0.0)),
            int(partial.get("count", 0)),
        )
        self.reporter.replay(self.history)
        log(
            f"resuming from {checkpoint_path(self.cfg.checkpoint_dir)}: {len(self.history)} of "
            f"{self.cfg.num_epochs} epochs done, continuing at epoch {self.start_epoch + 1} step {self.start_step}"
        )
        return True

    # -- training ----------------------------------------------------------------------------------
    def _preempt(self, epoch: int, step: int, loss_sum: float, count: int, why: str) -> PreemptedError:
        path = self.save(epoch, step, loss_sum, count)
        return PreemptedError(
            f"{why}: saved checkpoint at epoch {epoch + 1} step {step} to {path}; rerun the same command to resume"
        )

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
            if self.stop.requested:
                self._sync_time(began)
                raise self._preempt(epoch, step, float(loss_sum), count, "received SIGTERM")
            loss, n = task.batch_loss(self.net, batch, epoch, step)
            loss.backward()
            task.optimizer.step()
            self.scheduler.step()
            task.optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().double() * n
            count += n
            step += 1
            self.samples += n
            window_samples += n
            if step % self.check_every == 0:
                _check_finite(loss_sum, "the training loss", cfg, epoch, step)
                now = time.monotonic()
                self.exporter.update(
                    step=epoch * task.steps_per_epoch + step,
                    samples_per_second=window_samples / max(now - window_start, 1e-9),
                    loss=float(loss_sum) / max(count, 1),
                    gpu_utilization=self.meter.current_utilization(),
                )
                window_start, window_samples = now, 0
        self._sync_time(began)
        _check_finite(loss_sum, "the training loss", cfg, epoch, step)
        if self.stop.requested:
            raise self._preempt(epoch, step, float(loss_sum), count, "received SIGTERM")
        metrics = task.evaluate(self.net)
        for name, value in metrics.items():
            _check_finite(torch.tensor(value), f"the validation {name}", cfg, epoch, step)
        self.partial_loss, self.partial_count = 0.0, 0
        return {"epoch": epoch + 1, **metrics, "train_loss": float(loss_sum) / max(count, 1)}

    def _sync_time(self, began: float) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_seconds += time.monotonic() - began

    def run(self) -> dict[str, float | int]:
        """Train the remaining epochs, report each, and return the final metrics."""
        cfg = self.cfg
        for epoch in range(self.start_epoch, cfg.num_epochs):
            first_step = self.start_step if epoch == self.start_epoch else 0
            epoch_metrics = self.run_epoch(epoch, first_step)
            self.history.append(epoch_metrics)
            self.reporter.epoch(epoch_metrics)
            self.save(epoch + 1, 0, 0.0, 0)
            self.exporter.update(epoch=epoch + 1)
            if cfg.stop_after_epoch == epoch + 1 and epoch + 1 < cfg.num_epochs:
                raise PreemptedError(
                    f"stopped after epoch {epoch + 1} as --stop-after-epoch asked; checkpoint saved to "
                    f"{checkpoint_path(cfg.checkpoint_dir)}; rerun without the flag to resume"
                )
            if self.stop.requested and epoch + 1 < cfg.num_epochs:
                raise PreemptedError(
                    f"received SIGTERM: saved checkpoint after epoch {epoch + 1} to "
                    f"{checkpoint_path(cfg.checkpoint_dir)}; rerun the same command to resume"
                )
        last = self.history[-1]
        costs = self.costs()
        names = metric_names_for_task(cfg.task)
        final: dict[str, float | int] = {name: last[name] for name in names if name in last}
        final.update(
            {
                "gpu_seconds": costs["gpu_seconds"],
                "train_seconds": costs["train_seconds"],
                "gpu_energy_j": costs["gpu_energy_j"],
                "samples_per_second": costs["samples"] / costs["train_seconds"]
                if costs["train_seconds"]
                else 0.0,
            }
        )
        return final


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


def run_training(args: argparse.Namespace) -> int:
    """Run the ``train`` subcommand; raises TrainerError subclasses for the documented failures."""
    try:
        cfg = RunConfig.from_args(args)
    except argparse.ArgumentTypeError as exc:
        print(f"python -m trainer train: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_ARGS
    for flag, folder in (("--output-dir", cfg.output_dir), ("--checkpoint-dir", cfg.checkpoint_dir)):
        problem = _unwritable(folder)
        if problem:
            print(f"python -m trainer train: error: {flag} {folder}: {problem}", file=sys.stderr, flush=True)
            return EXIT_BAD_ARGS
    device = pick_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if device.type == "cpu" and cfg.preset == "tiny" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # tiny models: threads only add overhead, and trials run side by side
    torch.manual_seed(cfg.seed)
    meter = meter_for_torch_device(device, started_at=PROCESS_START)
    reading = meter.read()
    run_info = {
        "task": cfg.task,
        "preset": cfg.preset,
        "model": cfg.model,
        "device": reading.device,
        "gpu_count": reading.gpu_count,
        "gpu_names": reading.names,
        "nvml": meter.nvml_available,
        "settings": cfg.fingerprint(),
        "command": [sys.executable, "-m", "trainer", *sys.argv[1:]],
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    push = cfg.katib_db_manager_address if cfg.push_metrics else None
    reporter = MetricReporter(cfg.output_dir, run_info, push_address=push)
    stop = StopFlag()
    stop.install()
    exporter: TrainingExporter | None = None
    try:
        try:
            exporter = TrainingExporter(cfg.metrics_port, cfg.task)
        except OSError as exc:
            raise TrainerError(f"--metrics-port {cfg.metrics_port}: cannot serve metrics ({exc})") from exc
        num_workers = (
            cfg.num_workers
            if cfg.num_workers is not None
            else (min(4, os.cpu_count() or 1) if device.type == "cuda" else 0)
        )
        try:
            task = prepare(cfg, device, num_workers)
            reporter.run_info.update(task.info)
            log(
                f"{cfg.task} ({cfg.preset} preset) on {device}, model {task.info.get('model_source')}, "
                f"{task.train_size} training examples, {task.steps_per_epoch} steps per epoch"
            )
            notes = cfg.tiny_scaling_notes()
            if notes:
                log(f"{'; '.join(notes)} (see docs/trainer.md, 'Presets')")
            trial = Trial(cfg, device, task, meter, reporter, exporter, stop)
            trial.restore()
            final = trial.run()
        except TrainerError:
            raise
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if _is_oom(exc):
                raise _oom_error(cfg, exc) from exc
            raise
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
