"""What the training loop needs from a task family, in one small interface."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class PreparedTask:
    """A model with its data, loss, evaluation and optimizer, ready for ``engine.train_loop``.

    ``train_batches(epoch, start_step)`` yields the epoch's batches from ``start_step`` on;
    ``batch_loss(model, batch, epoch, step)`` returns (mean loss, samples in batch);
    ``evaluate(model)`` returns the validation metrics (``accuracy`` and friends, ``eval_loss``).
    """

    model: nn.Module
    train_size: int
    steps_per_epoch: int
    train_batches: Callable[[int, int], Iterable[Any]]
    batch_loss: Callable[[nn.Module, Any, int, int], tuple[torch.Tensor, int]]
    evaluate: Callable[[nn.Module], dict[str, float]]
    optimizer: torch.optim.Optimizer
    schedule: str  # "linear" (warm-up then linear decay) or "cosine" (warm-up then cosine decay)
    info: dict[str, Any] = field(default_factory=dict)


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at optimizer step ``step`` (LambdaLR convention)."""
    import math

    total = max(1, total_steps)
    warm = min(max(0, warmup_steps), total)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        progress = min(max(progress, 0.0), 1.0)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups: weight decay on weight matrices/kernels, none on biases and norm scales."""
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def fused_kwargs(device: torch.device) -> dict[str, bool]:
    """``fused=True`` on CUDA (single-kernel optimizer step), nothing on CPU."""
    return {"fused": True} if device.type == "cuda" else {}
