"""Argument types and choices of the ``bench`` subcommand (no torch import: the parser stays cheap)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from trainer.arg_types import csv_choices, int_range

# torch.compile's modes. The cudagraph ones ("reduce-overhead", "max-autotune") replay captured graphs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDAGRAPH_MODES = frozenset({"reduce-overhead", "max-autotune"})


def int_list(low: int, high: int) -> Callable[[str], list[int]]:
    """A type for a comma-separated, non-empty list of distinct integers in ``[low, high]`` (order kept)."""
    item = int_range(low, high)

    def parse(text: str) -> list[int]:
        parts = [part.strip() for part in text.split(",")]
        if not text.strip() or any(not part for part in parts):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of integers in [{low}, {high}], got {text!r}"
            )
        try:
            values = [item(part) for part in parts]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None
        return list(dict.fromkeys(values))

    parse.__name__ = "list"
    return parse


TRIAL_TASKS = ("sst2", "mrpc", "cifar10")
TRIAL_MODES = ("eager", "compiled", "none")
REFERENCES = ("hf", "torchvision", "none")


def add_trial_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the trial-shaped benchmark (``python -m trainer.bench_trial_cli``; see docs/trainer.md)."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument(
        "--preset",
        choices=("full", "tiny"),
        default="full",
        help="full: BERT-base / ResNet-50 at 160 px; tiny: the tiny preset's models (CPU plumbing check)",
    )
    parser.add_argument(
        "--tasks", type=csv_choices(TRIAL_TASKS), default=list(TRIAL_TASKS), help="seed tasks to time"
    )
    parser.add_argument(
        "--batch-sizes",
        type=int_list(1, 4096),
        default=None,
        help="batch sizes (default: each task's seed search space: 16,32 text, 32,64 CIFAR-10)",
    )
    parser.add_argument(
        "--steps",
        type=int_range(2, 10000),
        default=None,
        help="steps per timed epoch (default 40 GPU, 4 CPU); per epoch and per trial are extrapolated",
    )
    parser.add_argument(
        "--modes",
        type=csv_choices(TRIAL_MODES),
        default=["eager", "compiled"],
        help="eager and/or compiled (torch.compile, as train --compile): per-step time and compile time; "
        "none: no trial rows (only references or the sharing sweep)",
    )
    parser.add_argument(
        "--references",
        type=csv_choices(REFERENCES),
        default=["hf", "torchvision"],
        help="side-by-side references: hf (Hugging Face Trainer, text tasks), torchvision (classification "
        "recipe, CIFAR-10), none",
    )
    parser.add_argument(
        "--sharing",
        type=int_list(1, 16),
        default=None,
        help="concurrent trials per GPU to sweep, e.g. 1,2,4,7 (plain sharing; MPS too where available)",
    )
    parser.add_argument(
        "--sharing-task", choices=TRIAL_TASKS, default="sst2", help="the trial the sharing sweep runs"
    )
    parser.add_argument(
        "--sharing-batch", type=int_range(1, 4096), default=32, help="its batch size (default 32)"
    )
    parser.add_argument(
        "--sharing-timeout",
        type=int_range(10, 36000),
        default=300,
        help="seconds each group of concurrent trials may take",
    )
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count (no MFU)")
    parser.add_argument("--quiet", action="store_true", help="print no tables (the sharing sweep's copies)")
    parser.add_argument(
        "--work-dir", default=None, help="synthetic cache and runs (default: a temporary folder)"
    )
    parser.add_argument(
        "--json", default=None, help="write the raw results here (rewritten after each measurement)"
    )
    parser.add_argument(
        "--include", action="append", default=None, help="JSON results of an earlier run to add to the tables"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="measure nothing: render the --include results"
    )
    parser.add_argument("--write", default=None, help="Markdown file whose trainer-trial section is replaced")
    parser.add_argument(
        "--command-label", default=None, help="command shown above the tables (default: this command line)"
    )
