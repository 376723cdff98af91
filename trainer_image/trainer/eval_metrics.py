"""Validation metrics from predictions: accuracy, binary F1 (positive class 1), top-5 accuracy.

F1 follows scikit-learn's ``f1_score(average="binary", zero_division=0)`` (the tests check it against
scikit-learn); it is computed here because importing scikit-learn costs over a second per trial.
"""

from __future__ import annotations

import torch


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of predictions equal to the labels."""
    if predictions.shape != labels.shape or labels.numel() == 0:
        raise ValueError(
            f"need equal, non-empty shapes, got {tuple(predictions.shape)} and {tuple(labels.shape)}"
        )
    return float((predictions == labels).float().mean())


def binary_f1(predictions: torch.Tensor, labels: torch.Tensor, positive: int = 1) -> float:
    """F1 of the positive class: 2TP / (2TP + FP + FN); 0.0 when there are no positives at all."""
    if predictions.shape != labels.shape or labels.numel() == 0:
        raise ValueError(
            f"need equal, non-empty shapes, got {tuple(predictions.shape)} and {tuple(labels.shape)}"
        )
    pred_pos = predictions == positive
    true_pos = labels == positive
    tp = int((pred_pos & true_pos).sum())
    fp = int((pred_pos & ~true_pos).sum())
    fn = int((~pred_pos & true_pos).sum())
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2 * tp / denominator


def top_k_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    """Fraction of rows whose label is among the ``k`` highest logits (k capped at the class count)."""
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or labels.numel() == 0:
        raise ValueError(
            f"need logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())
