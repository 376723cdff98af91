"""Optimizer helpers shared by the task families: learning-rate schedules and parameter groups."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at optimizer step ``step`` (LambdaLR convention)."""
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
