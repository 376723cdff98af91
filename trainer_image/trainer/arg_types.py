"""argparse value types that check ranges and say what is allowed (no torch import)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def float_range(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """A type that parses a finite float inside the interval (bounds open or closed)."""
    allowed = _interval(low, high, low_open, high_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {allowed}, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be in {allowed}, got {text!r}")
        return value

    parse.__name__ = f"number in {allowed}"
    return parse


def int_range(low: int, high: int) -> Callable[[str], int]:
    """A type that parses an integer in ``[low, high]``; integral floats such as ``"32.0"`` pass."""
    allowed = f"[{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer in {allowed}, got {text!r}") from None
            if not math.isfinite(number) or not number.is_integer():
                raise argparse.ArgumentTypeError(f"expected an integer in {allowed}, got {text!r}") from None
            value = int(number)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {allowed}, got {text!r}")
        return value

    parse.__name__ = f"integer in {allowed}"
    return parse


def csv_choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A type for a comma-separated, non-empty list whose items come from ``allowed``."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        bad = [item for item in items if item not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(allowed)}, got {text!r}"
            )
        return list(dict.fromkeys(items))

    parse.__name__ = "list"
    return parse
