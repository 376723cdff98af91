"""Validation metrics on known predictions, and F1 against scikit-learn."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score
from trainer.eval_metrics import accuracy, binary_f1, top_k_accuracy


def test_known_values() -> None:
    preds = torch.tensor([1, 0, 1, 1, 0, 0])
    labels = torch.tensor([1, 0, 0, 1, 1, 0])
    assert accuracy(preds, labels) == pytest.approx(4 / 6)
    # TP=2, FP=1, FN=1 -> F1 = 4 / 6
    assert binary_f1(preds, labels) == pytest.approx(2 / 3)
    assert binary_f1(torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_f1_matches_scikit_learn(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    preds = torch.randint(0, 2, (50,), generator=gen)
    labels = torch.randint(0, 2, (50,), generator=gen)
    assert binary_f1(preds, labels) == pytest.approx(f1_score(labels.numpy(), preds.numpy(), zero_division=0))


def test_top5() -> None:
    logits = torch.tensor([[9.0, 8, 7, 6, 5, 4, 3, 2, 1, 0], [0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9]])
    assert top_k_accuracy(logits, torch.tensor([4, 0]), 5) == pytest.approx(0.5)
    assert top_k_accuracy(logits, torch.tensor([5, 9]), 5) == pytest.approx(0.5)
    assert top_k_accuracy(logits, torch.tensor([0, 9]), 1) == pytest.approx(1.0)
    assert top_k_accuracy(logits[:, :3], torch.tensor([2, 0]), 5) == pytest.approx(1.0)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="shapes"):
        accuracy(torch.tensor([1]), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="logits"):
        top_k_accuracy(torch.zeros(3), torch.zeros(3, dtype=torch.long))
