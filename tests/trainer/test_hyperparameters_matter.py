"""The tiny preset is learnable: a sensible learning rate beats a tiny one, and epochs help."""

from __future__ import annotations

import re

import pytest

from tests.trainer.helpers import trial_args

GOOD = {"sst2": "2e-3", "mrpc": "2e-3", "cifar10": "0.05"}
TINY = {"sst2": "1e-6", "mrpc": "1e-6", "cifar10": "1e-5"}


def accuracy_of(out: str) -> float:
    return float(re.findall(r"accuracy=(\S+)", out.strip().splitlines()[-1])[0])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "mrpc", "cifar10"])
def test_good_learning_rate_beats_tiny_one(task: str, in_process, tmp_path) -> None:
    good = in_process(trial_args(task, tmp_path / "good", lr=GOOD[task], epochs=4, batch=16))
    bad = in_process(trial_args(task, tmp_path / "bad", lr=TINY[task], epochs=4, batch=16))
    short = in_process(trial_args(task, tmp_path / "short", lr=GOOD[task], epochs=1, batch=16))
    assert good.code == bad.code == short.code == 0
    assert accuracy_of(good.out) >= accuracy_of(bad.out) + 0.1
    assert accuracy_of(good.out) > accuracy_of(short.out)
