"""The rehearsal's port of Katib's file metrics collector and trial metric summary.

Most cases are Katib's own Go tests (kubeflow/katib ``file-metricscollector_test.go``,
``inject_webhook_test.go``), with their inputs and expected outputs copied.
"""

from __future__ import annotations

import pytest

from client.rehearsal.collector import (
    UNAVAILABLE,
    ZERO_TIME,
    CollectorError,
    MetricLog,
    collect_observation_log,
    filters_as_passed,
    json_timestamp,
    observation_values,
    read_marker,
    summarize,
)
from katib_model.collector import JSON, TEXT

KATIB_FILTER = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"


def _logs(*rows: tuple[str, str, str]) -> list[MetricLog]:
    return [MetricLog(*row) for row in rows]


def test_json_format_katib_positive_case() -> None:
    text = """{"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": 1638422847.28721, "trial": "0"}
{"acc": "0.9349666833877563", "checkpoint_path": "", "global_step": "0", "timestamp": 1638422847.287801, "trial": "0"}
{"checkpoint_path": "", "global_step": "1", "loss": "0.1414974331855774", "timestamp": "2021-12-02T14:27:50.000035161Z", "trial": "0"}
{"acc": "0.9586416482925415", "checkpoint_path": "", "global_step": "1", "timestamp": "2021-12-02T14:27:50.000037459Z", "trial": "0"}
{"checkpoint_path": "", "global_step": "2", "loss": "0.10683439671993256", "trial": "0"}"""
    assert collect_observation_log(text, ["acc", "loss"], (), JSON) == _logs(
        ("2021-12-02T05:27:27.000028721Z", "loss", "0.22082142531871796"),
        ("2021-12-02T05:27:27.000287801Z", "acc", "0.9349666833877563"),
        ("2021-12-02T14:27:50.000035161Z", "loss", "0.1414974331855774"),
        ("2021-12-02T14:27:50.000037459Z", "acc", "0.9586416482925415"),
        (ZERO_TIME, "loss", "0.10683439671993256"),
    )


def test_text_format_katib_positive_case_with_custom_filter() -> None:
    text = """2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.8078};{metricName: loss, metricValue: 0.5183}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.6752}
2024-03-04T17:55:08Z INFO     {metricName: loss, metricValue: 0.3634}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 100}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 888.333}
2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: -0.4759}
{metricName: loss, metricValue: 0.8671}"""
    stamp = "2024-03-04T17:55:08Z"
    assert collect_observation_log(text, ["accuracy", "loss"], [KATIB_FILTER], TEXT) == _logs(
        (stamp, "accuracy", "0.8078"),
        (stamp, "loss", "0.5183"),
        (stamp, "accuracy", "0.6752"),
        (stamp, "loss", "0.3634"),
        (stamp, "accuracy", "100"),
        (stamp, "accuracy", "888.333"),
        (stamp, "accuracy", "-0.4759"),
        (ZERO_TIME, "loss", "0.8671"),
    )


@pytest.mark.parametrize(
    "text",
    [
        # Katib's "Invalid case for logs in TEXT format": no value matches the filter
        "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: .333}\n"
        "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: -.333}\n"
        "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: - 345.333}\n"
        "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 888.}",
        # "Invalid formatted file for logs in TEXT format": the objective line is cut
        "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.6752\n"
        "2024-03-04T17:55:08Z INFO     {metricName: loss, metricValue: 0.3634}",
    ],
)
def test_text_without_objective_reports_unavailable(text: str) -> None:
    assert collect_observation_log(text, ["accuracy", "loss"], [KATIB_FILTER], TEXT) == _logs(
        (ZERO_TIME, "accuracy", UNAVAILABLE)
    )


def test_invalid_timestamps_become_the_zero_time() -> None:
    text = (
        "2024-03-04T17:55:08Z INFO     {metricName: accuracy, metricValue: 0.6752}\n"
        "invalid INFO     {metricName: loss, metricValue: 0.3634}"
    )
    assert collect_observation_log(text, ["accuracy", "loss"], [KATIB_FILTER], TEXT) == _logs(
        ("2024-03-04T17:55:08Z", "accuracy", "0.6752"), (ZERO_TIME, "loss", "0.3634")
    )
    json_text = (
        '{"checkpoint_path": "", "global_step": "0", "loss": "0.22082142531871796", "timestamp": "invalid", "trial": "0"}\n'
        '{"acc": "0.9349666833877563", "checkpoint_path": "", "global_step": "0", "timestamp": 1638422847, "trial": "0"}'
    )
    assert collect_observation_log(json_text, ["acc", "loss"], (), JSON) == _logs(
        (ZERO_TIME, "loss", "0.22082142531871796"), ("2021-12-02T05:27:27Z", "acc", "0.9349666833877563")
    )


def test_malformed_json_and_unknown_format_fail_the_collector() -> None:
    bad = '"checkpoint_path": "", "loss": "0.22", "timestamp": 1638422847.28721\n{"acc": "0.93", "trial": "0'
    with pytest.raises(CollectorError, match="json"):
        collect_observation_log(bad, ["acc", "loss"], (), JSON)
    with pytest.raises(CollectorError, match="json"):
        collect_observation_log('["a list is not an object"]', ["acc"], (), JSON)
    with pytest.raises(CollectorError, match="format"):
        collect_observation_log("acc=1", ["acc"], (), "invalid")


def test_default_filter_reads_the_trainers_lines_and_keeps_only_named_metrics() -> None:
    text = (
        "trainer: loading\n"
        "2026-11-27T23:41:02Z epoch=1 accuracy=0.5 eval_loss=0.7 train_loss=0.69\n"
        "2026-11-27T23:41:03.5+01:00 epoch=2 accuracy=.75 eval_loss=6e-1\n"
        "no timestamp accuracy=0.8 f1=\n"
    )
    assert collect_observation_log(text, ["accuracy", "eval_loss", "f1"]) == _logs(
        ("2026-11-27T23:41:02Z", "accuracy", "0.5"),
        ("2026-11-27T23:41:02Z", "eval_loss", "0.7"),
        ("2026-11-27T23:41:03.5+01:00", "accuracy", ".75"),
        ("2026-11-27T23:41:03.5+01:00", "eval_loss", "6e-1"),
        (ZERO_TIME, "accuracy", "0.8"),
        (ZERO_TIME, "f1", ""),
    )
    # a line is read only when it contains a metric name: "loss" alone does not select train_loss lines
    assert collect_observation_log("x train_loss=1", ["loss"]) == _logs((ZERO_TIME, "loss", UNAVAILABLE))


def test_filters_are_joined_and_split_on_semicolons_by_the_webhook() -> None:
    assert filters_as_passed([]) == []
    assert filters_as_passed(["a=(\\w+)", "b;c"]) == ["a=(\\w+)", "b", "c"]


def test_json_float_timestamps_keep_katibs_fraction_quirk() -> None:
    assert json_timestamp(1638422847.5) == "2021-12-02T05:27:27.000000005Z"  # ".5" read as 5 ns
    assert json_timestamp(1638422847) == "2021-12-02T05:27:27Z"
    assert json_timestamp("2021-12-02T14:27:50Z") == "2021-12-02T14:27:50Z"
    assert json_timestamp("") == json_timestamp("yesterday") == json_timestamp(True) == ""


def test_marker_decides_whether_the_collector_reports() -> None:
    assert read_marker("completed\n") == "completed"
    assert read_marker("early-stopped") == "early-stopped"
    with pytest.raises(CollectorError, match="failed"):
        read_marker(None)
    with pytest.raises(CollectorError, match="marker"):
        read_marker("done")


def test_summary_follows_get_metrics_and_the_request_picks_by_strategy() -> None:
    logs = _logs(
        ("2026-01-01T00:00:02Z", "accuracy", "0.7"),
        ("2026-01-01T00:00:01Z", "accuracy", "0.9"),  # older: not the latest
        ("2026-01-01T00:00:02Z", "accuracy", "0.6"),  # same time, later entry: the latest
        ("2026-01-01T00:00:03Z", "loss", "unavailable"),
        (ZERO_TIME, "gpu_seconds", "12"),
        ("2026-01-01T00:00:05Z", "ignored", "1"),
    )
    strategies = {"accuracy": "max", "loss": "min", "gpu_seconds": "latest", "f1": "max"}
    summary = summarize(logs, strategies)
    assert (summary["accuracy"].min, summary["accuracy"].max, summary["accuracy"].latest) == (
        "0.6",
        "0.9",
        "0.6",
    )
    assert (summary["loss"].min, summary["loss"].latest) == (UNAVAILABLE, "unavailable")
    assert set(summary) == set(strategies)
    assert observation_values(summary, strategies) == {
        "accuracy": "0.9",
        "loss": "unavailable",  # min unavailable: falls back to latest
        "gpu_seconds": "12",
        "f1": UNAVAILABLE,
    }
    with pytest.raises(ValueError, match="timestamps"):
        summarize(_logs(("not-a-time", "accuracy", "1")), {"accuracy": "max"})


def test_the_trainer_image_writes_for_the_filter_katib_reads_by_default() -> None:
    # the trainer image cannot import katib_model, so its copy of Katib's default filter is checked here
    from trainer.katib_metrics import KATIB_METRIC_REGEX

    from katib_model.collector import DEFAULT_FILTER

    assert KATIB_METRIC_REGEX == DEFAULT_FILTER
