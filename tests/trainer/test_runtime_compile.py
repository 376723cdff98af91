"""``--compile auto|on|off``: the documented rule, one place for the thresholds."""

from __future__ import annotations

import pytest
import torch
from trainer.cli import build_parser
from trainer.compile_policy import COMPILE_MIN_STEPS, compile_decision
from trainer.config import RunConfig


def config(task: str, choice: str) -> RunConfig:
    args = ["train", "--task", task, "--learning-rate", "0.1", "--batch-size", "32", "--num-epochs", "1"]
    return RunConfig.from_args(build_parser().parse_args([*args, "--compile", choice]))


CUDA = torch.device("cuda", 0)  # a device object only: nothing runs on it


@pytest.mark.parametrize(("task", "family"), [("sst2", "text"), ("cifar10", "vision")])
def test_auto_compiles_gpu_trials_with_enough_steps_only(task: str, family: str) -> None:
    threshold = COMPILE_MIN_STEPS[family]
    assert compile_decision(config(task, "auto"), CUDA, threshold)[0] is True
    compiled, why = compile_decision(config(task, "auto"), CUDA, threshold - 1)
    assert compiled is False and f"{threshold - 1} steps < {threshold}" in why
    # never on the CPU, however long the trial
    assert compile_decision(config(task, "auto"), torch.device("cpu"), 10 * threshold)[0] is False


def test_on_and_off_override_the_rule() -> None:
    assert compile_decision(config("sst2", "on"), torch.device("cpu"), 1) == (True, "--compile on")
    assert compile_decision(config("sst2", "off"), CUDA, 10**9) == (False, "--compile off")


def test_the_text_bar_is_higher_than_the_vision_bar() -> None:
    """Variable sequence lengths cost text trials recompiles, so they need more steps to pay back."""
    assert COMPILE_MIN_STEPS["text"] > COMPILE_MIN_STEPS["vision"] > 0
