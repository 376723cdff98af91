"""Katib StdOut metric lines: how the trainer writes them and how Katib reads them back.

This module must stay free of torch (the comparison client imports it). It reproduces, in Python,
the TEXT parsing of Katib's file/StdOut metrics collector
(``pkg/metricscollector/v1beta1/file-metricscollector``) and the min/max/latest summary of the trial
controller (``pkg/controller.v1beta1/trial/trial_controller_util.go: getMetrics``), so tests and the
local runner see exactly what a cluster would record.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from trainer.tasks import TEXT_METRICS as TEXT_METRICS  # re-exported: each family's quality metrics
from trainer.tasks import VISION_METRICS as VISION_METRICS
from trainer.tasks import get_task, task_names

# Katib's default metrics filter (pkg/metricscollector/v1beta1/common/const.go). Go's RE2 classes are
# ASCII-only, hence re.ASCII when compiling it here.
KATIB_METRIC_REGEX = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
_METRIC_RE = re.compile(KATIB_METRIC_REGEX, re.ASCII)

UNAVAILABLE = "unavailable"
OBJECTIVE_METRIC = "accuracy"
COST_METRICS = ("gpu_seconds", "train_seconds", "gpu_energy_j")
EVAL_LOSS = "eval_loss"
SAMPLES_PER_SECOND = "samples_per_second"
# The tasks registered when this module loads, by family (trainer.tasks is the source; read the
# registry itself where a task registered later must count).
TEXT_TASKS = task_names("text")
VISION_TASKS = task_names("vision")
TASKS = task_names()
STRATEGIES = ("min", "max", "latest")
# Printed as ``diverged=1`` on the final line of a trial whose loss became NaN/inf (and nowhere else);
# collect it with additionalMetricNames + metricStrategies ``max`` to see it in Katib.
DIVERGED_METRIC = "diverged"

_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
# Go's time.RFC3339Nano layout as time.Parse accepts it: fraction optional, Z or a numeric offset.
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


_FRACTION = re.compile(r"T\d{2}:\d{2}:\d{2}\.(\d+)")


@dataclass(frozen=True)
class MetricPoint:
    """One metric value as Katib's collector records it (value kept as the raw string)."""

    timestamp: datetime | None
    name: str
    value: str
    #: The RFC3339Nano token as written ("" when the line had none): Katib stores the string and orders
    #: by its instant to the nanosecond, finer than ``timestamp`` holds.
    stamp: str = field(default="", compare=False)

    def instant(self) -> tuple[datetime, int]:
        """(whole second, nanoseconds) of the point's time, the zero time when it has none."""
        when = self.timestamp or _ZERO_TIME
        fraction = _FRACTION.search(self.stamp) if self.stamp else None
        nanos = int(fraction.group(1)[:9].ljust(9, "0")) if fraction else when.microsecond * 1000
        return when.replace(microsecond=0), nanos


@dataclass(frozen=True)
class MetricSummary:
    """Katib's stored summary of one metric of a trial (``common.v1beta1.Metric``): min, max (over values
    that parse as floats) and latest value strings, ``unavailable`` until seen."""

    name: str
    min: str = UNAVAILABLE
    max: str = UNAVAILABLE
    latest: str = UNAVAILABLE

    def pick(self, strategy: str) -> str:
        """The value a suggestion request carries for ``strategy`` (min/max fall back to latest)."""
        if strategy == "min" and self.min != UNAVAILABLE:
            return self.min
        if strategy == "max" and self.max != UNAVAILABLE:
            return self.max
        return self.latest


def metric_names_for_task(task: str) -> list[str]:
    """Names of the metrics on the trainer's final line for registered ``task`` (objective first)."""
    quality = get_task(task).quality_metrics
    return [OBJECTIVE_METRIC, *quality, EVAL_LOSS, *COST_METRICS, SAMPLES_PER_SECOND]


def chance_metrics(task: str) -> dict[str, float]:
    """The quality metrics of a model whose outputs carry no information (uniform over the k labels).

    What a diverged trial reports (see ``DIVERGED_METRIC``): accuracy 1/k, top-5 accuracy min(5, k)/k
    and ``eval_loss`` ln k (the cross-entropy of uniform probabilities). F1 depends on the split's
    positive rate, so it has no data-free chance value and is left out.
    """
    spec = get_task(task)
    k = spec.num_labels
    values = {OBJECTIVE_METRIC: 1.0 / k, "top5_accuracy": min(5, k) / k, EVAL_LOSS: math.log(k)}
    return {name: value for name, value in values.items() if name in metric_names_for_task(task)}


def format_value(value: float | int) -> str:
    """Render a finite number so that Katib's regex captures all of it (no nan/inf, no ``_``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"metric values must be int or float, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"metric value must be finite, got {number!r}")
    text = f"{number:.8g}"
    return "0" if text == "-0" else text


def format_timestamp(when: datetime | None = None) -> str:
    """RFC3339 UTC timestamp with second resolution, e.g. ``2026-11-27T23:41:02Z``."""
    when = datetime.now(UTC) if when is None else when
    if when.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (UTC), got a naive datetime")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_metric_line(metrics: Mapping[str, float | int], when: datetime | None = None) -> str:
    """One Katib metric line: an RFC3339 UTC timestamp followed by ``name=value`` pairs."""
    if not metrics:
        raise ValueError("at least one metric is needed for a metric line")
    parts = [format_timestamp(when)]
    for name, value in metrics.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"metric name {name!r} is invalid: use only letters, digits, '_' and '-'")
        try:
            parts.append(f"{name}={format_value(value)}")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metric {name}: {exc}") from exc
    return " ".join(parts)


def parse_rfc3339(token: str) -> datetime | None:
    """Parse ``token`` like Go's ``time.Parse(time.RFC3339Nano, ...)``; None when Go would fail."""
    match = _RFC3339_RE.fullmatch(token)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0").ljust(9, "0")[:6])
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
    except ValueError:
        return None
    if zone == "Z":
        return parsed.replace(tzinfo=UTC)
    try:
        offset = datetime.strptime(zone.replace(":", ""), "%z").tzinfo
    except ValueError:
        return None
    return parsed.replace(tzinfo=offset).astimezone(UTC)


def parse_metric_lines(
    text: str, metric_names: Iterable[str] | None = None, filters: Sequence[re.Pattern[str]] | None = None
) -> list[MetricPoint]:
    """Parse trainer output as Katib's StdOut collector does (TEXT format).

    With ``metric_names``, only lines containing one of the names as a substring are read and only
    those names are kept (Katib's behaviour); without, every ``name=value`` match is returned. The
    timestamp is the line's first space-separated token when it is RFC3339, else None (Katib stores
    ``0001-01-01T00:00:00Z``). ``filters``: the collector's ``metricsFormat`` regexes (group 1 the name,
    group 2 the value; a regex with fewer groups matches nothing), default Katib's default filter.
    """
    names = None if metric_names is None else list(metric_names)
    regexes = list(filters) if filters else [_METRIC_RE]
    points: list[MetricPoint] = []
    for line in text.split("\n"):
        if names is not None and not any(name in line for name in names):
            continue
        head = line.split(" ", 1)
        timestamp = parse_rfc3339(head[0]) if len(head) == 2 else None
        stamp = head[0] if timestamp is not None else ""
        for regex in regexes:
            if regex.groups < 2:
                continue
            for match in regex.finditer(line):
                name, value = (match.group(1) or "").strip(), (match.group(2) or "").strip()
                if names is None or name in names:
                    points.append(MetricPoint(timestamp, name, value, stamp))
    return points


def go_parse_float(text: str) -> float | None:
    """``strconv.ParseFloat(text, 64)`` or None where Go returns an error (syntax or range)."""
    if "_" in text or text != text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isinf(value) and "inf" not in text.lower():
        return None  # out of range: Go returns ErrRange
    return value


def summarize(points: Iterable[MetricPoint], names: Iterable[str]) -> dict[str, MetricSummary]:
    """Katib's per-metric summary (``getMetrics``) of every metric in ``names``: min and max over the
    values that parse as floats, latest by newest instant (later points win ties)."""
    wanted = list(names)
    lowest: dict[str, tuple[float, str]] = {}
    highest: dict[str, tuple[float, str]] = {}
    latest: dict[str, tuple[tuple[datetime, int], str]] = {}
    for point in points:
        if point.name not in wanted:
            continue
        number = go_parse_float(point.value)
        if number is not None:
            if point.name not in lowest:
                lowest[point.name] = highest[point.name] = (number, point.value)
            elif number < lowest[point.name][0]:
                lowest[point.name] = (number, point.value)
            elif number > highest[point.name][0]:
                highest[point.name] = (number, point.value)
        when = point.instant()
        previous = latest.get(point.name)
        if previous is None or not previous[0] > when:
            latest[point.name] = (when, point.value)
    return {
        name: MetricSummary(
            name,
            lowest[name][1] if name in lowest else UNAVAILABLE,
            highest[name][1] if name in highest else UNAVAILABLE,
            latest[name][1] if name in latest else UNAVAILABLE,
        )
        for name in wanted
    }


def observation(points: Iterable[MetricPoint], strategies: Mapping[str, str]) -> dict[str, str]:
    """Katib's per-metric summary: the value each metric's strategy picks (min, max or latest).

    Min/Max consider only values that parse as floats; Latest is the value with the newest
    timestamp (later lines win ties). A metric with no value is ``"unavailable"``; for min/max with
    no numeric value the Latest value is used, as Katib does when it builds suggestion requests.
    """
    for name, strategy in strategies.items():
        if strategy not in STRATEGIES:
            raise ValueError(
                f"metric {name}: strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
            )
    summary = summarize(points, strategies)
    return {name: summary[name].pick(strategy) for name, strategy in strategies.items()}
