"""``--compile auto|on|off``: whether a trial runs its model through ``torch.compile``.

Compiling costs a fixed time before the first step (tracing, Inductor's kernel generation and
autotuning) and saves a fraction of every later step. It pays back within one trial only when the
trial has enough steps: ``auto`` compiles when the trial's optimizer steps reach the task family's
``COMPILE_MIN_STEPS`` on a GPU, and never on the CPU (a minute of compiling for seconds of training).

The thresholds live here and only here. They are placeholders until measured on a GPU: the
trial-shaped benchmark (``python -m trainer bench --shapes trial``) gives, per family, the compile
time C and the eager and compiled step times; the threshold is then C / (eager - compiled) steps,
rounded up. Until then they are deliberately above every seed trial (the longest: SST-2 at batch 16
for 4 epochs, 16,837 steps; CIFAR-10 at batch 32 for 20 epochs, 31,250 steps), so ``auto`` keeps the
seed's Experiments eager, as before, until a measurement shows that compiling pays back. Text batches
vary in length (dynamic padding, length buckets), which costs recompiles, hence the higher bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from trainer.config import RunConfig

COMPILE_CHOICES = ("auto", "on", "off")
# AWAITING GPU MEASUREMENT (see the module docstring): optimizer steps per trial from which ``auto`` compiles.
COMPILE_MIN_STEPS = {"text": 100_000, "vision": 50_000}


def compile_decision(cfg: RunConfig, device: torch.device, total_steps: int) -> tuple[bool, str]:
    """(compile or not, why) for ``cfg.compile`` on ``device`` with ``total_steps`` optimizer steps."""
    if cfg.compile == "on":
        return True, "--compile on"
    if cfg.compile == "off":
        return False, "--compile off"
    if cfg.compile != "auto":
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}, got {cfg.compile!r}")
    family = cfg.spec.family
    threshold = COMPILE_MIN_STEPS[family]
    if device.type != "cuda":
        return False, f"--compile auto: not on {device.type} (compiling takes longer than a CPU trial gains)"
    if total_steps >= threshold:
        return True, f"--compile auto: {total_steps} steps >= {threshold} ({family} tasks)"
    return (
        False,
        f"--compile auto: {total_steps} steps < {threshold} ({family} tasks), compiling would not pay back",
    )
