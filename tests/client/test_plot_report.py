"""The PNG plot (valid, one panel per task, not blank), the reporters and the manifest reader."""

from __future__ import annotations

import csv
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from client.aggregate import compare
from client.errors import ClientError
from client.experiments import count_gpus, load_experiments
from client.plot import DPI, PANEL_HEIGHT_IN, PANEL_WIDTH_IN, comparison_figure, plot_comparison
from client.report import comparison_csv, comparison_markdown, fmt_duration, fmt_hours
from tests.client.test_aggregate import experiment, hand_case, trial

DATA = Path(__file__).parent / "data"


def two_tasks() -> list:
    other = [
        experiment("c-grid", "grid", [trial("c1", 0, 100, 0.3), trial("c2", 0, 200, 0.4)], task="cifar10"),
        experiment("c-random", "random", [trial("r1", 0, 50, 0.45)], task="cifar10"),
    ]
    return [*hand_case(), *other]


def test_png_has_one_panel_per_task_and_is_not_blank(tmp_path: Path) -> None:
    comparison = compare(two_tasks())
    fig = comparison_figure(comparison)
    assert [ax.get_title() for ax in fig.axes] == ["cifar10", "sst2"]
    assert all(len(ax.get_lines()) >= 2 for ax in fig.axes)  # algorithm lines + the target line
    path = plot_comparison(comparison, tmp_path / "comparison.png")
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert (width, height) == (int(2 * PANEL_WIDTH_IN * DPI), int(PANEL_HEIGHT_IN * DPI))
    pixels = imread(path)[..., :3]
    for half in (pixels[:, : width // 2], pixels[:, width // 2 :]):  # each panel has drawn content
        assert float(np.std(half)) > 0.05
        assert (half.reshape(-1, 3) < 0.9).any(axis=1).mean() > 0.01


def test_markdown_and_csv() -> None:
    comparison = compare(hand_case())
    md = comparison_markdown(comparison)
    assert "| grid | 0.8500 | 4 | 1 | 1.17 | 1.17 | 4 | 1.00x | lr=g4 | - |" in md
    assert "| surrogate-gp | 0.8600 | 3 | 1 | 0.5278 | 0.4167 | 2 | 2.80x | lr=s2 | f1=0.8000 |" in md
    assert "GPU-hours to target" in md
    rows = list(csv.DictReader(io.StringIO(comparison_csv(comparison))))
    assert [r["algorithm"] for r in rows] == ["grid", "surrogate-gp"]
    assert float(rows[1]["speedup_vs_grid"]) == pytest.approx(2.8) and rows[1]["trials_to_target"] == "2"
    assert rows[0]["cost_unit"] == "GPU-hours" and rows[1]["best_parameters"] == '{"lr": "s2"}'


def test_formatting() -> None:
    assert fmt_hours(None) == "-" and fmt_hours(0) == "0" and fmt_hours(0.00123456) == "0.001235"
    assert fmt_hours(12.345) == "12.35"
    assert fmt_duration(3723) == "1h02m03s" and fmt_duration(65) == "1m05s" and fmt_duration(4.4) == "4s"


def test_manifest_reader_defaults_and_filters(tmp_path: Path) -> None:
    defs = load_experiments(DATA)
    assert [(d.task, d.algorithm) for d in defs] == [("toy", "grid"), ("toy", "random")]
    grid = defs[0]
    assert grid.metric_strategies["eval_loss"] == "min" and grid.gpus_per_trial == 1.0
    assert grid.metric_names[0] == "accuracy"
    with pytest.raises(ClientError, match=r"unknown algorithm 'bayes'.*available: grid, random"):
        load_experiments(DATA, algorithms=["bayes"])
    with pytest.raises(ClientError, match="does not exist"):
        load_experiments(tmp_path / "nope")
    (tmp_path / "bad.yaml").write_text("kind: Experiment\n  bad: [")
    with pytest.raises(ClientError, match=r"bad\.yaml line 2: not valid YAML"):
        load_experiments(tmp_path)


def test_count_gpus_job_and_pytorchjob() -> None:
    job = {"spec": {"parallelism": 2, "template": {"spec": {
        "initContainers": [{"name": "init", "resources": {"limits": {"nvidia.com/gpu": 1}}}],
        "containers": [{"name": "training", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}}  # fmt: skip
    assert count_gpus(job) == 4.0  # init containers do not hold GPUs for the trial
    pytorch = {"spec": {"pytorchReplicaSpecs": {
        "Master": {"replicas": 1, "template": {"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": 1}}}]}}},
        "Worker": {"replicas": 3, "template": {"spec": {"containers": [{"resources": {"requests": {"nvidia.com/gpu": 1}}}]}}},
    }}}  # fmt: skip
    assert count_gpus(pytorch) == 4.0


def test_verdicts_say_who_reached_the_grids_best_and_the_speedup() -> None:
    from client.report import comparison_table, verdicts

    comparison = compare(two_tasks())
    assert verdicts(comparison) == [
        # cifar10 grid reaches 0.4 after 100 + 200 s, random reaches it after 50 s: 300 / 50
        "cifar10: grid's best 0.4000 reached by random after 1 trial (grid: 2), 6.00x speed-up vs grid",
        "sst2: grid's best 0.8500 reached by surrogate-gp after 2 trials (grid: 4), 2.80x speed-up vs grid",
    ]
    out = io.StringIO()
    from rich.console import Console

    Console(file=out, width=300, color_system=None).print(comparison_table(comparison))
    assert "sst2: grid's best 0.8500 reached by surrogate-gp after 2 trials (grid: 4)" in out.getvalue()
    md = comparison_markdown(comparison)
    assert "## Who reached the target" in md and "- cifar10: grid's best 0.4000 reached by random" in md
    missed = verdicts(compare(hand_case(), target=0.99))
    assert missed == ["sst2: target 0.9900 reached by none; not reached by surrogate-gp (best 0.8600)"]


def test_failed_trial_logs_lists_each_failed_trial_most_recent_first() -> None:
    from dataclasses import replace

    from client.report import failed_trial_logs

    failed = [
        replace(
            trial(f"t{i}", 0, 100 * i, condition="Failed"),
            message=f"exit {i}\nsecond line",
            logs=[f"log: /w/t{i}"],
        )
        for i in range(1, 8)
    ]
    unavailable = replace(trial("m", 0, 50, condition="MetricsUnavailable"), message="")
    ok = trial("ok", 0, 10, 0.9)
    lines = failed_trial_logs([experiment("e", "grid", [ok, unavailable, *failed])], shown=3)
    assert lines == [
        "Logs of failed trials:",
        "  t7 (e, Failed: exit 7)",
        "    log: /w/t7",
        "  t6 (e, Failed: exit 6)",
        "    log: /w/t6",
        "  t5 (e, Failed: exit 5)",
        "    log: /w/t5",
        "  e: 5 more failed, same places: t4, t3, t2, t1, m",
    ]
    assert failed_trial_logs([experiment("e", "grid", [unavailable])])[1:] == [
        "  m (e, MetricsUnavailable)",
        "    no log location is known",
    ]
    assert failed_trial_logs([experiment("e", "grid", [ok])]) == []
