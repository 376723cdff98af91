"""The tiny preset is learnable: a sensible learning rate beats a tiny one, and epochs help."""

from __future__ import annotations

import re

import pytest

from tests.trainer.helpers import trial_args

# seed-range rates (the tiny text preset scales them by TINY_TEXT_LR_SCALE); TINY ones barely move
GOOD = {"sst2": "3e-5", "mrpc": "3e-5", "cifar10": "0.1"}
TINY = {"sst2": "1e-8", "mrpc": "1e-8", "cifar10": "1e-5"}
EPOCHS = {"sst2": 4, "mrpc": 4, "cifar10": 10}
EXTRA = {"sst2": ("--max-seq-length", "256"), "mrpc": ("--max-seq-length", "256"), "cifar10": ()}


def accuracy_of(out: str) -> float:
    return float(re.findall(r"accuracy=(\S+)", out.strip().splitlines()[-1])[0])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "mrpc", "cifar10"])
def test_good_learning_rate_beats_tiny_one(task: str, in_process, tmp_path) -> None:
    extra, epochs = EXTRA[task], EPOCHS[task]
    good = in_process(trial_args(task, tmp_path / "good", *extra, lr=GOOD[task], epochs=epochs, batch=16))
    bad = in_process(trial_args(task, tmp_path / "bad", *extra, lr=TINY[task], epochs=epochs, batch=16))
    short = in_process(trial_args(task, tmp_path / "short", *extra, lr=GOOD[task], epochs=1, batch=16))
    assert good.code == bad.code == short.code == 0
    assert accuracy_of(good.out) >= accuracy_of(bad.out) + 0.1
    assert accuracy_of(good.out) > accuracy_of(short.out)
    assert accuracy_of(good.out) < 0.95  # noisy labels and overlapping cues: no task is trivially solved
