"""Tiny-preset trials end to end: Katib-parsable output, metrics.json, exit codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from trainer.katib_metrics import KATIB_METRIC_REGEX, metric_names_for_task, observation, parse_metric_lines

from tests.trainer.helpers import run_cli, trial_args

TIMESTAMPED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z ")


@pytest.mark.parametrize("task", ["sst2", "mrpc", "cifar10"])
def test_tiny_trial_prints_katib_lines(task: str, tmp_path) -> None:
    started = datetime.now(UTC).replace(microsecond=0)
    run = run_cli(trial_args(task, tmp_path, epochs=2))
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    # stdout holds only metric lines: 2 epochs + the final line, each starting with an RFC3339 time
    assert len(lines) == 3, run.out
    assert all(TIMESTAMPED.match(line) for line in lines), run.out
    assert "\x1b" not in run.out + run.err and "\r" not in run.out
    # stderr never carries name=value pairs that Katib (which also reads stderr) could pick up
    names = metric_names_for_task(task)
    assert parse_metric_lines(run.err, names) == []

    points = parse_metric_lines(run.out, names)
    ended = datetime.now(UTC) + timedelta(seconds=1)
    assert all(p.timestamp is not None and started <= p.timestamp <= ended for p in points)
    for name in names:
        assert any(p.name == name for p in points), f"{name} missing from {run.out}"
    for line in lines:  # the raw regex consumes each value completely
        for name, value, *_ in re.findall(KATIB_METRIC_REGEX, line):
            assert f"{name}={value}" in line.split()
            float(value)
    final = dict(re.findall(r"(\w+)=(\S+)", lines[-1]))
    assert set(final) == set(names)
    assert float(final["gpu_seconds"]) == 0.0 and float(final["gpu_energy_j"]) == 0.0  # no NVML here
    assert float(final["train_seconds"]) > 0 and float(final["samples_per_second"]) > 0
    summary = observation(points, {"accuracy": "max"})
    assert 0.0 <= float(summary["accuracy"]) <= 1.0

    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "completed" and report["device"] == "cpu" and report["nvml"] is False
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    assert report["final"]["accuracy"] == pytest.approx(float(final["accuracy"]))
    assert report["settings"]["task"] == task


def test_absurd_learning_rate_stops_with_a_clear_message(in_process, tmp_path) -> None:
    run = in_process(trial_args("cifar10", tmp_path, "--fail-on-divergence", lr="90", epochs=3))
    assert run.code == 3, run.err
    assert "training diverged" in run.err and "--learning-rate 90" in run.err
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "failed" and "diverged" in report["message"]
    assert report["final"] is None


def test_missing_cache_names_path_and_command(in_process, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = trial_args("mrpc", tmp_path)
    args[args.index("tiny")] = "full"
    run = in_process(args)
    assert run.code == 5, run.err
    cache = tmp_path / "cache"
    assert str(cache / "datasets" / "mrpc") in run.err
    assert f"python -m trainer warm-cache --tasks mrpc --cache-dir {cache}" in run.err


def test_missing_resnet_weights_offline(in_process, tmp_path, monkeypatch) -> None:
    from tests.trainer.cache_fixtures import fill_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fill_dataset(tmp_path / "cache", "cifar10", sizes={"train": 8, "test": 4})
    args = trial_args("cifar10", tmp_path)
    args[args.index("tiny")] = "full"
    run = in_process(args)
    assert run.code == 5, run.err
    assert "resnet50-11ad3fa6.pth" in run.err and "warm-cache --tasks cifar10" in run.err


def test_push_metrics_without_katib_fails_clearly(tmp_path, monkeypatch) -> None:
    # A child process, as in a pod: the test process also holds the service's protobuf stubs, which
    # clash with the SDK's (same symbols), and that is not the situation being tested.
    monkeypatch.delenv("KATIB_TRIAL_NAME", raising=False)
    run = run_cli(trial_args("sst2", tmp_path, "--push-metrics", epochs=1))
    assert run.code == 7, run.err
    assert "pushing metrics to katib-db-manager.kubeflow:6789 failed" in run.err


def test_push_metrics_reports_an_sdk_that_cannot_load(in_process, tmp_path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name.startswith("kubeflow.katib"):
            raise TypeError("Couldn't build proto file into descriptor pool: duplicate symbol")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    run = in_process(trial_args("sst2", tmp_path, "--push-metrics", epochs=1))
    assert run.code == 7, run.err
    assert "loading it failed: TypeError" in run.err


def test_metrics_port_serves_prometheus(in_process, tmp_path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = in_process(trial_args("sst2", tmp_path, "--metrics-port", str(port), epochs=1))
    assert run.code == 0, run.err
    with socket.socket() as sock:  # the server is shut down when the trial ends
        assert sock.connect_ex(("127.0.0.1", port)) != 0
