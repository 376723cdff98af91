"""Argument types and choices of the ``bench`` subcommand (no torch import: the parser stays cheap)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from trainer.arg_types import int_range

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
