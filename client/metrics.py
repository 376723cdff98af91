"""Metric helpers shared with the rest of the project (no second parser lives in the client).

- metric value strings (Katib's "unavailable", "", NaN ...) -> ``suggestion_service.history.parse_metric_value``
- trial stdout in Katib's StdOut format -> ``trainer.katib_metrics.parse_metric_lines`` / ``observation``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def parse_value(value: str | float | None) -> float | None:
    """A metric value string -> float, or None when Katib would treat it as unavailable."""
    if value is None:
        return None
    from suggestion_service.history import parse_metric_value

    return parse_metric_value(str(value))


def observe_stdout(text: str, metric_names: Sequence[str], strategies: Mapping[str, str]) -> dict[str, str]:
    """Katib's observation of a trial's combined stdout/stderr: metric -> value string by strategy."""
    from trainer.katib_metrics import observation, parse_metric_lines

    points = parse_metric_lines(text, list(metric_names))
    return dict(observation(points, dict(strategies)))
