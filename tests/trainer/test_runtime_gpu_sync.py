"""On a GPU: steady-state training steps of every task never wait for the device (no host sync).

``torch.cuda.set_sync_debug_mode("error")`` makes any synchronizing CUDA call (``.item()``, a blocking
copy, ``nonzero``, a pageable host-to-device copy, transformers' ``padding_mask.all()``) raise. The
steps run through the trial's own code: the task's loader or resident batches, ``batch_loss``, and
``Trial.train_step`` (backward, optimizer, schedule, the running loss sum). Skipped without CUDA.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TASKS = [("sst2", "3e-5", 2), ("mrpc", "3e-5", 0), ("cifar10", "0.05", 0)]

WARMUP_STEPS = 3  # first steps allocate, pick cuDNN algorithms, start loader workers: not steady state
CHECKED_STEPS = 5


def run_steps(task: str, lr: str, workers: int, device: torch.device, folder, checked) -> torch.Tensor:
    """Warm-up steps, then ``CHECKED_STEPS`` steps inside the ``checked`` context; the loss sum."""
    from trainer.cli import build_parser
    from trainer.config import RunConfig
    from trainer.engine import StopFlag, Trial, prepare

    args = ["train", "--task", task, "--learning-rate", lr, "--batch-size", "16", "--num-epochs", "1"]
    args += ["--preset", "tiny", "--output-dir", str(folder), "--compile", "off"]
    cfg = RunConfig.from_args(build_parser().parse_args(args))
    torch.manual_seed(cfg.seed)
    prepared = prepare(cfg, device, workers)
    assert prepared.steps_per_epoch > WARMUP_STEPS + CHECKED_STEPS
    trial = Trial(cfg, device, prepared, None, None, None, StopFlag())  # type: ignore[arg-type]
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    batches = iter(prepared.train_batches(0, 0))
    for step in range(WARMUP_STEPS):
        trial.train_step(next(batches), 0, step, loss_sum)
    with checked():
        for step in range(WARMUP_STEPS, WARMUP_STEPS + CHECKED_STEPS):
            trial.train_step(next(batches), 0, step, loss_sum)
    return loss_sum


@contextlib.contextmanager
def no_sync_allowed():
    """Any synchronizing CUDA call inside raises."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


@needs_cuda
@pytest.mark.parametrize(("task", "lr", "workers"), TASKS)
def test_steady_state_steps_make_no_host_sync(task: str, lr: str, workers: int, tmp_path) -> None:
    loss_sum = run_steps(task, lr, workers, torch.device("cuda", 0), tmp_path, no_sync_allowed)
    assert torch.isfinite(loss_sum).item()


@pytest.mark.slow
@pytest.mark.parametrize(("task", "lr", "workers"), TASKS)
def test_the_same_steps_run_on_the_cpu(task: str, lr: str, workers: int, tmp_path) -> None:
    """The harness above, on the CPU (no sync to detect there): the steps train through Trial.train_step."""
    loss_sum = run_steps(task, lr, workers, torch.device("cpu"), tmp_path, contextlib.nullcontext)
    assert torch.isfinite(loss_sum).item() and loss_sum.item() > 0
