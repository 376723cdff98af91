"""Trial-shaped benchmark: the seed's trials, timed through the real training path and extrapolated.

A configuration (task, batch size, eager or compiled) is built exactly as ``train`` builds it
(``trainer.engine.prepare`` and ``Trial`` over a ``RunConfig`` parsed from ``train`` flags) on
synthetic data of the trial's shape (:mod:`trainer.bench_synthetic`): BERT with dynamic padding and a
padding mask on SST-2/MRPC-like lengths, ResNet-50 at 160 px on CIFAR-like images. It then runs

1. a warm-up epoch of ``steps`` steps plus an evaluation (model compile, cuDNN autotuning);
2. a timed epoch of ``steps`` steps plus an evaluation (``Trial.run_epoch``), and the same epoch from
   step ``steps // 2`` on: their training parts (each evaluation is timed on its own) differ by
   ``steps // 2`` steps, free of per-epoch costs;
3. the checkpoints: a synchronous save (what a preemption costs), a
   background interval save (the loop's part: the snapshot; and the background write) and the
   finished marker (``Trial.save``, ``Trial.save_finished``),

and extrapolates: per epoch = real steps x per-step time + evaluation + the epoch's other fixed costs
(loader start); per trial = epochs x per epoch + the warm-up epoch's extra time (compile) + one
interval save per ``--checkpoint-interval-s`` (300 s by default) + the finished marker. One GPU per trial, so GPU-seconds = seconds.
MFU counts the timed epoch's forward and backward FLOPs with ``torch.utils.flop_counter`` on the actual
padded batches (eager model, the same shapes). The evaluation set has the real split's size in the
full preset (timed as is); in the tiny preset it is small and scaled linearly to the real size.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.bench import sync
from trainer.bench_peaks import lookup_peak
from trainer.bench_synthetic import SyntheticCache, build_cache
from trainer.config import DEFAULT_CHECKPOINT_INTERVAL_S


@dataclass(frozen=True)
class TrialShape:
    """One seed Experiment's trial: real split sizes and its search space's batch sizes and epochs."""

    task: str
    train_examples: int
    eval_examples: int
    batch_sizes: tuple[int, ...]
    epochs: tuple[int, ...]
    learning_rate: float
    weight_decay: float
    image_size: int | None = None


# From manifests/30-experiment-*-grid.yaml and the GLUE/CIFAR-10 split sizes.
SEED_TRIALS = {
    "sst2": TrialShape("sst2", 67_349, 872, (16, 32), (3, 4), 2e-5, 0.01),
    "mrpc": TrialShape("mrpc", 3_668, 408, (16, 32), (3, 4), 2e-5, 0.01),
    "cifar10": TrialShape("cifar10", 50_000, 10_000, (32, 64), (10, 20), 0.1, 1e-4, image_size=160),
}
TINY_EVAL_EXAMPLES = 64
TINY_IMAGE_SIZE = 12
MEASURE_INTERVAL_S = 86400  # train's --checkpoint-interval-s maximum


def synthetic_sizes(shape: TrialShape, batch: int, steps: int, preset: str) -> tuple[int, int]:
    """(train, eval) examples of the synthetic split: ``steps`` full batches; the real eval size in ``full``."""
    return batch * steps, shape.eval_examples if preset == "full" else TINY_EVAL_EXAMPLES


def trial_config(
    shape: TrialShape, batch: int, preset: str, device: str, cache: SyntheticCache, out: Path, compiled: bool
) -> Any:
    """The ``RunConfig`` that ``train`` would build for this trial (parsed from ``train`` flags)."""
    from trainer.cli_parser import build_parser
    from trainer.config import RunConfig

    flags = [
        "train",
        "--task",
        shape.task,
        "--learning-rate",
        str(shape.learning_rate),
        "--batch-size",
        str(batch),
        "--num-epochs",
        str(max(shape.epochs)),
        "--weight-decay",
        str(shape.weight_decay),
        "--device",
        device,
        "--output-dir",
        str(out),
        "--cache-dir",
        str(cache.cache_dir),
    ]
    if cache.model:  # text: the synthetic BERT folder, through the full preset's path
        flags += ["--preset", "full", "--model", cache.model]
    elif preset == "full":
        flags += ["--preset", "full", "--model", "resnet50", "--image-size", str(shape.image_size)]
    else:
        flags += ["--preset", "tiny", "--image-size", str(TINY_IMAGE_SIZE)]
    # no interval save during the short timed epochs: the saves are timed on their own and extrapolated
    flags += ["--compile", "on" if compiled else "off", "--checkpoint-interval-s", str(MEASURE_INTERVAL_S)]
    return RunConfig.from_args(build_parser().parse_args(flags))


def _timed(device: torch.device, work: Any) -> tuple[Any, float]:
    sync(device)
    began = time.perf_counter()
    result = work()
    sync(device)
    return result, time.perf_counter() - began


class EvalTimer:
    """Wraps ``task.evaluate`` to time each evaluation ``Trial.run_epoch`` makes (synchronised)."""

    def __init__(self, task: Any, device: torch.device) -> None:
        self.task, self.device = task, device
        self.original = task.evaluate
        self.times: list[float] = []
        task.evaluate = self

    def __call__(self, net: Any) -> Any:
        """Evaluate ``net`` with the task's own evaluation, timed."""
        result, seconds = _timed(self.device, lambda: self.original(net))
        self.times.append(seconds)
        return result

    @property
    def last_s(self) -> float:
        """Seconds of the latest evaluation."""
        return self.times[-1]

    def restore(self) -> None:
        """Put the task's own ``evaluate`` back."""
        self.task.evaluate = self.original


def count_train_flops(task: Any, epoch: int) -> tuple[float, int]:
    """(forward+backward FLOPs, steps) of one epoch's batches through the eager model (no update)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = task.model
    counter = FlopCounterMode(display=False)
    steps = 0
    with counter:
        for step, batch in enumerate(task.train_batches(epoch, 0)):
            loss, _n = task.batch_loss(model, batch, epoch, step)
            loss.backward()
            steps += 1
    task.optimizer.zero_grad(set_to_none=True)
    return float(counter.get_total_flops()), steps


def real_steps_per_epoch(shape: TrialShape, batch: int) -> int:
    """Optimizer steps of one real epoch (the trainer's rule: a last batch of 1 image is dropped)."""
    from trainer.data import steps_per_epoch

    min_batch = 2 if shape.image_size is not None else 1
    return steps_per_epoch(shape.train_examples, batch, min_batch=min_batch)


def extrapolate(
    shape: TrialShape,
    batch: int,
    step_s: float,
    per_epoch_s: float,
    save_s: float,
    finished_s: float,
    warmup_extra_s: float,
    interval_s: float,
) -> dict[str, Any]:
    """Per-epoch and per-trial seconds (= GPU-seconds on one GPU) from the measured parts.

    ``per_epoch_s``: what an epoch costs besides its steps (evaluation, loader start). Checkpoints as
    ``train`` takes them: one every ``interval_s`` seconds of the trial (``--checkpoint-interval-s``;
    0: after every epoch but the last), each costing the training loop ``save_s`` (the snapshot; the
    write runs in the background), and the small finished marker (``finished_s``) at the end.
    """
    steps = real_steps_per_epoch(shape, batch)
    epoch_s = steps * step_s + per_epoch_s
    per_trial, saves = {}, {}
    for epochs in shape.epochs:
        base = epochs * epoch_s + warmup_extra_s
        count = math.floor(base / interval_s) if interval_s > 0 else epochs - 1
        saves[str(epochs)] = count
        per_trial[str(epochs)] = base + count * save_s + finished_s
    amortised = save_s * (epoch_s / interval_s if interval_s > 0 else 1.0)
    return {
        "real_steps_per_epoch": steps,
        "gpu_s_per_epoch": epoch_s + amortised,
        "gpu_s_per_trial": per_trial,
        "checkpoints_per_trial": saves,
        "checkpoint_interval_s": interval_s,
    }


def measure_trial(
    task_name: str,
    batch: int,
    *,
    preset: str,
    device_choice: str,
    steps: int,
    compiled: bool,
    work_dir: Path,
    count_flops: bool = True,
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
) -> dict[str, Any]:
    """Time one trial configuration through ``trainer.engine`` and return its row (see module doc)."""
    from trainer.bench import device_name, mode_label
    from trainer.engine import StopFlag, Trial, prepare
    from trainer.gpu_meter import meter_for_torch_device
    from trainer.parallel import default_num_workers, pick_device
    from trainer.prom_exporter import TrainingExporter
    from trainer.reporter import MetricReporter

    shape = SEED_TRIALS[task_name]
    device = pick_device(device_choice)
    train_n, eval_n = synthetic_sizes(shape, batch, steps, preset)
    cache = build_cache(work_dir / "cache", task_name, preset, train_n, eval_n)
    out = work_dir / "runs" / f"{task_name}-{preset}-bs{batch}-{'compiled' if compiled else 'eager'}"
    cfg = trial_config(shape, batch, preset, device_choice, cache, out, compiled)
    torch.manual_seed(cfg.seed)
    from trainer.distributed import dist_env

    workers = cfg.num_workers if cfg.num_workers is not None else default_num_workers(device, dist_env())
    task, setup_s = _timed(device, lambda: prepare(cfg, device, workers))
    meter = meter_for_torch_device(device)
    reporter = MetricReporter(cfg.output_dir, {"task": cfg.task, "bench": "trial"}, silent=True)
    exporter = TrainingExporter(None, cfg.task)
    trial = Trial(cfg, device, task, meter, reporter, exporter, StopFlag())
    evaluations = EvalTimer(task, device)
    try:
        _, first_s = _timed(device, lambda: trial.run_epoch(0, 0))
        steps_run = task.steps_per_epoch
        half = steps_run // 2
        before = meter.read()
        _, epoch_s = _timed(device, lambda: trial.run_epoch(1, 0))
        after = meter.read()
        train_s = epoch_s - evaluations.last_s
        _, part_s = _timed(device, lambda: trial.run_epoch(1, half))
        part_train_s = part_s - evaluations.last_s
        eval_s = min(evaluations.times[1:])  # the steady evaluations (the first one warms up)
        _, checkpoint_s = _timed(device, lambda: trial.save(2, 0, 0.0, 0))  # synchronous: a preemption save
        _, submit_s = _timed(device, lambda: trial.save(2, 0, 0.0, 0, wait=False))  # an interval save
        _, background_s = _timed(device, trial.writer.wait)
        _, finished_s = _timed(device, trial.save_finished)
        # the training parts of the epoch from step 0 and of the one from step `half` differ by `half`
        # steps only: per-step time without the per-epoch costs (loader start), counted once per epoch.
        # When timing noise swallows that difference (a few tiny CPU steps), the whole epoch's
        # training time per step is the estimate (it then includes the loader start).
        step_s, step_estimate = (train_s - part_train_s) / half, "difference"
        if step_s <= 0:
            step_s, step_estimate = train_s / steps_run, "whole epoch"
        epoch_overhead_s = max(train_s - steps_run * step_s, 0.0)
        flops = count_train_flops(task, 1)[0] if count_flops else None
    finally:
        evaluations.restore()
        with contextlib.suppress(Exception):
            trial.writer.wait()
        meter.close()
    name = device_name(device)
    peak = lookup_peak(name)
    eval_examples = task.info.get("eval_examples", eval_n)
    eval_scale = shape.eval_examples / eval_examples if eval_examples else 1.0
    row: dict[str, Any] = {
        "kind": "trial",
        "task": task_name,
        "preset": preset,
        "batch_size": batch,
        "mode": mode_label("default" if compiled else None),
        "compiled": compiled,
        "device": name,
        "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
        "timed_steps": steps_run,
        "step_ms": 1000 * step_s,
        "step_estimate": step_estimate,
        "samples_per_second": batch / step_s if step_s else None,
        "eval_s": eval_s,
        "eval_examples_timed": eval_examples,
        "eval_scale": eval_scale,
        "checkpoint_s": checkpoint_s,
        "checkpoint_submit_s": submit_s,
        "checkpoint_background_s": background_s,
        "finished_marker_s": finished_s,
        "compile_reason": trial.compile_reason,
        "epoch_overhead_s": epoch_overhead_s,
        "warmup_extra_s": max(0.0, first_s - epoch_s),
        "setup_s": setup_s,
        "train_gflop_per_step": flops / steps_run / 1e9 if flops else None,
        "mfu": flops / steps_run / step_s / peak.flops if flops and peak.flops and step_s else None,
        "peak_note": peak.note,
        "energy_j_timed_epoch": after.energy_j - before.energy_j,
        "energy_basis": after.energy_basis,
        "shared_gpu": after.shared,
        "epochs": list(shape.epochs),
    }
    per_epoch_s = eval_s * eval_scale + epoch_overhead_s
    row.update(
        extrapolate(
            shape,
            batch,
            step_s,
            per_epoch_s,
            submit_s,
            finished_s,
            row["warmup_extra_s"],
            checkpoint_interval_s,
        )
    )
    if device.type == "cuda":
        with contextlib.suppress(Exception):
            row["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def compile_choice(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, batch): eager or compiled, whichever costs fewer GPU-seconds for the seed's shortest trial."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        if row.get("kind") != "trial" or row.get("error"):
            continue
        key = (row["task"], row["batch_size"])
        shortest = str(min(row["epochs"]))
        if key not in best or row["gpu_s_per_trial"][shortest] < best[key]["gpu_s_per_trial"][shortest]:
            best[key] = row
    return [
        {"task": t, "batch_size": b, "mode": r["mode"], "gpu_s_per_trial": r["gpu_s_per_trial"]}
        for (t, b), r in sorted(best.items())
    ]
