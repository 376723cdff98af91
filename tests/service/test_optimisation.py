"""Optimisation sanity: on a 24-point Katib-shaped grid surrogate-gp finds the best clearly faster than
random order, whose expected cost is (N + 1) / 2 = 12.5 trials."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service.engine import get_suggestions
from suggestion_service.space import SearchSpace

from .builders import bert_space, make_experiment, make_request, make_trial


def accuracy(a: dict[str, str]) -> float:
    """A BERT-like response: best lr in the middle of the list, smaller batches, longer training."""
    lr = {"2e-5": 0.0, "3e-5": 0.04, "5e-5": 0.02}[a["learning_rate"]]
    return (0.80 + lr + 0.02 * (a["batch_size"] == "16") + 0.015 * (a["num_epochs"] == "4")
            - 0.01 * (a["max_seq_length"] == "128") + 0.01 * (a["batch_size"] == "16") * (a["num_epochs"] == "4"))  # fmt: skip


def trials_to_best(algorithm: str, seed: int, parallel: int) -> int:
    space = SearchSpace.from_proto(bert_space())
    best = max(accuracy(c) for c in space.enumerate())
    exp = make_experiment(f"sst2-{seed}", bert_space(), algorithm, settings=[("random_state", str(seed))])
    trials: list = []
    while len(trials) < 24:
        for a in get_suggestions(make_request(exp, trials, min(parallel, 24 - len(trials)))).assignments:
            trials.append(make_trial(f"t{len(trials)}", a, metrics={"accuracy": repr(accuracy(a))}))
            if accuracy(a) == best:
                return len(trials)
    raise AssertionError("the best configuration was never proposed on a 24-point grid")


def test_the_synthetic_grid_has_a_unique_best() -> None:
    values = sorted(accuracy(c) for c in SearchSpace.from_proto(bert_space()).enumerate())
    assert values[-1] > values[-2]


@pytest.mark.slow
@pytest.mark.parametrize(("algorithm", "parallel", "bound"), [("surrogate-gp", 1, 9.0), ("surrogate-gp", 3, 10.0),
                                                              ("surrogate-rf", 1, 10.5)])  # fmt: skip
def test_surrogate_finds_the_best_faster_than_random(algorithm: str, parallel: int, bound: float) -> None:
    counts = [trials_to_best(algorithm, seed, parallel) for seed in range(10)]
    assert np.mean(counts) <= bound, counts


@pytest.mark.slow
def test_random_needs_about_half_the_grid() -> None:
    counts = [trials_to_best("random", seed, 1) for seed in range(30)]
    assert 8.0 <= np.mean(counts) <= 17.0, counts
