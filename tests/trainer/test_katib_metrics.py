"""Katib metric lines: the trainer's format against Katib's own parsing rules."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trainer.katib_metrics import (
    COST_METRICS,
    KATIB_METRIC_REGEX,
    MetricPoint,
    format_metric_line,
    metric_names_for_task,
    observation,
    parse_metric_lines,
    parse_rfc3339,
)

WHEN = datetime(2026, 11, 27, 23, 41, 2, tzinfo=UTC)


def test_line_matches_the_documented_example() -> None:
    line = format_metric_line({"epoch": 2, "accuracy": 0.9231, "f1": 0.9012, "eval_loss": 0.2511}, WHEN)
    assert line == "2026-11-27T23:41:02Z epoch=2 accuracy=0.9231 f1=0.9012 eval_loss=0.2511"


def test_katib_regex_reads_every_pair_fully() -> None:
    line = format_metric_line({"accuracy": 1 / 3, "gpu_energy_j": 1.5e7, "tiny": 3e-9, "neg": -2.5}, WHEN)
    found = re.findall(KATIB_METRIC_REGEX, line)
    assert [(name, value) for name, value, *_ in found] == [
        ("accuracy", "0.33333333"),
        ("gpu_energy_j", "15000000"),
        ("tiny", "3e-09"),
        ("neg", "-2.5"),
    ]


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(10**12), 10**12),
        min_size=1,
        max_size=6,
    )
)
def test_round_trip_through_katib_parsing(metrics: dict[str, float]) -> None:
    line = format_metric_line(metrics, WHEN)
    points = parse_metric_lines(line, metrics.keys())
    assert [p.name for p in points] == list(metrics)
    for point in points:
        assert point.timestamp == WHEN
        expected = metrics[point.name]
        assert math.isclose(float(point.value), expected, rel_tol=1e-7, abs_tol=1e-300)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_metric_line({"accuracy": value}, WHEN)


@pytest.mark.parametrize("name", ["val/acc", "a.b", "", "loss|x", "naïve"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        format_metric_line({name: 1.0}, WHEN)


def test_bools_and_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="int or float"):
        format_metric_line({"ok": True}, WHEN)
    with pytest.raises(ValueError, match="int or float"):
        format_metric_line({"ok": "1"}, WHEN)  # type: ignore[dict-item]


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        format_metric_line({"a": 1}, datetime(2026, 1, 1))


def test_parse_follows_katib_filtering() -> None:
    text = "\n".join(
        [
            "2026-11-27T23:41:02Z epoch=1 accuracy=0.5 eval_loss=0.7",
            "INFO loss=0.3 other=1",  # no metric name in the line: skipped
            "2026-11-27T23:41:03.5+01:00 top5_accuracy=0.9 accuracy=0.6",
            "no-timestamp accuracy=0.7",
            "accuracy=nan",
        ]
    )
    points = parse_metric_lines(text, ["accuracy", "eval_loss"])
    assert points == [
        MetricPoint(WHEN, "accuracy", "0.5"),
        MetricPoint(WHEN, "eval_loss", "0.7"),
        MetricPoint(datetime(2026, 11, 27, 22, 41, 3, 500000, tzinfo=UTC), "accuracy", "0.6"),
        MetricPoint(None, "accuracy", "0.7"),
        MetricPoint(None, "accuracy", ""),
    ]
    everything = parse_metric_lines("x=1 y-z = 2", None)
    assert [(p.name, p.value) for p in everything] == [("x", "1"), ("y-z", "2")]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("2026-11-27T23:41:02Z", WHEN),
        ("2026-11-27T23:41:02.123456789Z", WHEN.replace(microsecond=123456)),
        ("2026-11-28T00:41:02+01:00", WHEN),
        ("2026-11-27 23:41:02Z", None),
        ("2026-13-27T23:41:02Z", None),
        ("2026-11-27T23:41:02", None),
        ("1764286862", None),
    ],
)
def test_rfc3339_like_go(token: str, expected: datetime | None) -> None:
    assert parse_rfc3339(token) == expected


def test_observation_min_max_latest() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    points = [
        MetricPoint(t0, "accuracy", "0.5"),
        MetricPoint(t0 + timedelta(seconds=2), "accuracy", "0.9"),
        MetricPoint(t0 + timedelta(seconds=3), "accuracy", "0.7"),
        MetricPoint(t0 + timedelta(seconds=1), "eval_loss", "0.4"),
        MetricPoint(t0, "eval_loss", "0.2"),
        MetricPoint(t0, "broken", ""),
        MetricPoint(None, "old", "1"),
        MetricPoint(None, "old", "2"),
        MetricPoint(t0, "huge", "1e999"),
    ]
    strategies = {
        "accuracy": "max",
        "eval_loss": "min",
        "broken": "max",
        "old": "latest",
        "missing": "min",
        "huge": "max",
    }
    assert observation(points, strategies) == {
        "accuracy": "0.9",
        "eval_loss": "0.2",
        "broken": "",  # no numeric value: Katib falls back to Latest
        "old": "2",  # equal (zero) timestamps: the later line wins
        "missing": "unavailable",
        "huge": "1e999",  # out of float range: not numeric for Go, so Latest
    }
    assert observation(points, {"accuracy": "latest"}) == {"accuracy": "0.7"}
    with pytest.raises(ValueError, match="strategy"):
        observation(points, {"accuracy": "mean"})


def test_timezones_normalise_to_utc() -> None:
    tz = timezone(timedelta(hours=-5))
    line = format_metric_line({"accuracy": 0.5}, datetime(2026, 11, 27, 18, 41, 2, tzinfo=tz))
    assert line.startswith("2026-11-27T23:41:02Z ")


def test_metric_names_per_task() -> None:
    assert metric_names_for_task("sst2")[:2] == ["accuracy", "f1"]
    assert metric_names_for_task("cifar10")[:2] == ["accuracy", "top5_accuracy"]
    for task in ("sst2", "mrpc", "cifar10"):
        names = metric_names_for_task(task)
        assert set(COST_METRICS) <= set(names)
        assert {"eval_loss", "samples_per_second"} <= set(names)
    with pytest.raises(ValueError, match="allowed"):
        metric_names_for_task("imagenet")


def test_module_does_not_import_torch() -> None:
    code = "import sys, trainer.katib_metrics; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
