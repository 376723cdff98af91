"""Katib's file metrics collector and the trial controller's metric summary, ported from its Go code.

Read from kubeflow/katib (v0.19 and master agree):

- ``pkg/metricscollector/v1beta1/file-metricscollector/file-metricscollector.go``
  (``CollectObservationLog``, ``parseLogsInTextFormat``, ``parseLogsInJsonFormat``, ``parseTimestamp``,
  ``newObservationLog``, ``GetFilterRegexpList``): the whole file is read once the main process has
  ended and split on ``\\n``. TEXT: a line is read only if it contains one of the metric names as a
  substring; its timestamp is the first space-separated token when that parses as RFC3339Nano (else
  the zero time ``0001-01-01T00:00:00Z``); every filter regex (default ``DEFAULT_FILTER``) is matched
  against the line, group 1 is the name, group 2 the value (both trimmed), and only the experiment's
  metric names are kept. JSON: every non-empty line must be a JSON object (else the collector fails);
  a metric is read only when its value is a JSON *string*; ``timestamp`` is an RFC3339Nano string or
  a float of Unix seconds (with Katib's quirk: the digits after the point are taken as nanoseconds).
  When the objective (the first name) has no value, the log is one ``unavailable`` objective entry.
- ``cmd/metricscollector/v1beta1/file-metricscollector/main.go`` and ``common/pns.go``: the collector
  waits for the main process (the wrapper ``sh``), then reads ``<metrics dir>/<pid>.pid``; when it is
  missing or does not say ``completed`` the collector fails and reports nothing.
- ``pkg/webhook/v1beta1/pod/inject_webhook.go``: the filters reach the collector joined with ``;`` and
  are split on ``;`` again (a filter containing ``;`` is cut in two).
- ``pkg/controller.v1beta1/trial/trial_controller_util.go`` (``getMetrics``): each metric with a
  strategy gets min, max (over values that parse as floats) and latest (newest timestamp, later
  entries win ties), all ``unavailable`` until seen; the suggestion request then picks min/max/latest
  by strategy, falling back to latest when min/max is ``unavailable`` (``suggestionclient.go``).

Go's RE2 classes (``\\w``, ``\\d``, ``\\s``) are ASCII-only: the regexes compile with ``re.ASCII``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from trainer.katib_metrics import MetricPoint, MetricSummary, parse_metric_lines, parse_rfc3339
from trainer.katib_metrics import summarize as summarize_points

from katib_model.collector import DEFAULT_FILTER, JSON, TEXT

UNAVAILABLE = "unavailable"
ZERO_TIME = "0001-01-01T00:00:00Z"
COMPLETED, EARLY_STOPPED = "completed", "early-stopped"
TIMESTAMP_KEY = "timestamp"
_INT64_MAX = 2**63 - 1


class CollectorError(Exception):
    """The collector fails (Go's ``klog.Fatalf``): nothing is reported for this pod."""


@dataclass(frozen=True)
class MetricLog:
    """One ``api.v1beta1.MetricLog``: the timestamp string as stored, the metric name and raw value."""

    timestamp: str
    name: str
    value: str


def filters_as_passed(filters: Sequence[str]) -> list[str]:
    """The filters as the collector receives them: joined with ``;`` by the webhook, split again."""
    joined = ";".join(filters)
    return joined.split(";") if joined else []


def filter_regexes(filters: Sequence[str]) -> list[re.Pattern[str]]:
    """``GetFilterRegexpList``: the default filter when there is none (CollectorError for a bad one)."""
    out = []
    for text in filters_as_passed(filters) or [DEFAULT_FILTER]:
        try:
            out.append(re.compile(text, re.ASCII))
        except re.error as err:
            raise CollectorError(
                f"metrics filter {text!r} is not a valid regular expression: {err}"
            ) from None
    return out


def is_rfc3339(token: str) -> bool:
    """Whether Go's ``time.Parse(time.RFC3339Nano, token)`` accepts ``token``."""
    return parse_rfc3339(token) is not None


def parse_text(lines: Iterable[str], metrics: Sequence[str], filters: Sequence[str]) -> list[MetricLog]:
    """``parseLogsInTextFormat`` before the objective check (the trainer's parser, which is Katib's, with
    the collector's filters), timestamps as stored."""
    points = parse_metric_lines("\n".join(lines), metrics, filter_regexes(filters))
    return [MetricLog(p.stamp or ZERO_TIME, p.name, p.value) for p in points]


def json_timestamp(value: object) -> str:
    """``parseTimestamp``: an RFC3339Nano string as is, a float of Unix seconds formatted (quirk kept:
    the digits after the point are read as a count of nanoseconds); "" when neither."""
    if isinstance(value, str):
        return value if value and is_rfc3339(value) else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    number = float(value)
    if not math.isfinite(number):
        return ""
    whole, _, fraction = format(Decimal(repr(number)), "f").partition(".")
    seconds, nanos = int(whole), int(fraction) if fraction else 0
    if abs(seconds) > _INT64_MAX or nanos > _INT64_MAX:
        return ""
    seconds, nanos = seconds + nanos // 1_000_000_000, nanos % 1_000_000_000
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{nanos:09d}".rstrip("0")
    return f"{stamp}{'.' + digits if digits else ''}Z"


def parse_json(lines: Iterable[str], metrics: Sequence[str]) -> list[MetricLog]:
    """``parseLogsInJsonFormat`` before the objective check (CollectorError for a line that is not an
    object, as Go's unmarshalling into a map fails)."""
    logs: list[MetricLog] = []
    for line in lines:
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise CollectorError(f"failed to parse the json object: {err}") from None
        if not isinstance(obj, dict):
            raise CollectorError(f"failed to parse the json object: {line[:80]!r} is not an object")
        timestamp = json_timestamp(obj[TIMESTAMP_KEY]) if TIMESTAMP_KEY in obj else ""
        for name in metrics:
            value = obj.get(name)
            if isinstance(value, str):
                logs.append(MetricLog(timestamp or ZERO_TIME, name, value))
    return logs


def collect_observation_log(
    text: str, metrics: Sequence[str], filters: Sequence[str] = (), file_format: str = TEXT
) -> list[MetricLog]:
    """``CollectObservationLog`` over a metrics file's content; ``metrics[0]`` is the objective."""
    if file_format not in (TEXT, JSON):
        raise CollectorError(f"format must be set {TEXT} or {JSON}, got {file_format!r}")
    lines = text.split("\n")
    logs = parse_text(lines, metrics, filters) if file_format == TEXT else parse_json(lines, metrics)
    if not any(log.name == metrics[0] for log in logs):
        return [MetricLog(ZERO_TIME, metrics[0], UNAVAILABLE)]
    return logs


def read_marker(text: str | None) -> str:
    """What the collector concludes from the main process's ``<pid>.pid`` marker file (None: missing):
    ``completed`` or ``early-stopped``; CollectorError otherwise (the training container failed)."""
    if text is None:
        raise CollectorError("training container is failed: no completed marker for the main process")
    content = text.strip()
    if content in (COMPLETED, EARLY_STOPPED):
        return content
    raise CollectorError(f"unable to find marker: {COMPLETED} in the marker file with contents: {text!r}")


def summarize(logs: Iterable[MetricLog], strategies: Mapping[str, str]) -> dict[str, MetricSummary]:
    """``getMetrics``: min/max/latest of every metric that has a strategy (ValueError for a timestamp
    that does not parse, as the controller's error)."""
    points = []
    for log in logs:
        if log.name not in strategies:
            continue
        when = parse_rfc3339(log.timestamp)
        if when is None:
            raise ValueError(f"failed to parse timestamps {log.timestamp}")
        points.append(MetricPoint(when, log.name, log.value, log.timestamp))
    return summarize_points(points, strategies)


def observation_values(
    summaries: Mapping[str, MetricSummary], strategies: Mapping[str, str]
) -> dict[str, str]:
    """The metric values a GetSuggestions request carries for the trial (``convertTrialObservation``)."""
    return {name: summary.pick(strategies.get(name, "latest")) for name, summary in summaries.items()}
