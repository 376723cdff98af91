"""Trial-shaped benchmark: synthetic shapes, extrapolation, references' pieces, tables, flags (CPU, tiny)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from trainer.bench_args import add_trial_flags
from trainer.bench_reference_hf import phase_seconds
from trainer.bench_reference_tv import _accuracy, recipe_transforms
from trainer.bench_synthetic import build_cache, text_columns
from trainer.bench_trial import SEED_TRIALS, compile_choice, extrapolate, real_steps_per_epoch
from trainer.bench_trial_cli import build_parser, main
from trainer.bench_trial_report import render


def test_seed_trials_match_the_seed_experiments() -> None:
    """Batch sizes and epochs are the grid Experiments' search spaces (manifests/30-experiment-*-grid.yaml)."""
    import yaml

    for task, shape in SEED_TRIALS.items():
        doc = yaml.safe_load(Path(f"manifests/30-experiment-{task}-grid.yaml").read_text())
        space = {p["name"]: [float(v) for v in p["feasibleSpace"]["list"]] for p in doc["spec"]["parameters"]}
        assert sorted(shape.batch_sizes) == sorted(int(v) for v in space["batch_size"])
        assert sorted(shape.epochs) == sorted(int(v) for v in space["num_epochs"])
        assert shape.learning_rate in space["learning_rate"]


@pytest.mark.parametrize(
    ("task", "batch", "expected"), [("sst2", 32, 2105), ("mrpc", 16, 230), ("cifar10", 64, 782)]
)
def test_real_steps_per_epoch_are_the_split_over_the_batch(task: str, batch: int, expected: int) -> None:
    assert (
        real_steps_per_epoch(SEED_TRIALS[task], batch)
        == expected
        == math.ceil(SEED_TRIALS[task].train_examples / batch)
    )


def test_extrapolation_counts_steps_evaluation_and_the_trainers_checkpoints() -> None:
    shape = SEED_TRIALS["mrpc"]
    out = extrapolate(
        shape,
        16,
        step_s=0.5,
        per_epoch_s=5.0,
        save_s=2.0,
        finished_s=0.1,
        warmup_extra_s=30.0,
        interval_s=300.0,
    )
    epoch = 230 * 0.5 + 5.0  # 120 s
    # 3 epochs: 390 s of training -> 1 interval save; 4 epochs: 510 s -> 1
    assert out["checkpoints_per_trial"] == {"3": 1, "4": 1}
    assert out["gpu_s_per_trial"] == {
        "3": pytest.approx(3 * epoch + 30 + 2.0 + 0.1),
        "4": pytest.approx(4 * epoch + 30 + 2.0 + 0.1),
    }
    every_epoch = extrapolate(
        shape, 16, step_s=0.5, per_epoch_s=5.0, save_s=2.0, finished_s=0.1, warmup_extra_s=0.0, interval_s=0.0
    )
    assert every_epoch["checkpoints_per_trial"] == {"3": 2, "4": 3}  # every epoch but the last
    assert every_epoch["gpu_s_per_epoch"] == pytest.approx(epoch + 2.0)


def _tokens(cache_model: str, columns: dict[str, list[str]], task: str) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cache_model)
    texts = [columns["sentence"]] if task == "sst2" else [columns["sentence1"], columns["sentence2"]]
    return [len(ids) for ids in tokenizer(*texts, truncation=True, max_length=128)["input_ids"]]


def test_synthetic_text_has_the_tasks_token_lengths(tmp_path: Path) -> None:
    """SST-2: mostly 20-60 tokens, none over 66; MRPC pairs: about 40-100 tokens."""
    cache = build_cache(tmp_path, "sst2", "tiny", 8, 8)
    assert cache.model is not None and (cache.cache_dir / "ready.json").is_file()
    rng = np.random.default_rng(0)
    sst2 = np.array(_tokens(cache.model, text_columns("sst2", 2000, 1000, rng), "sst2"))
    assert sst2.max() <= 66 and sst2.min() >= 6
    assert 0.8 <= np.mean((sst2 >= 20) & (sst2 <= 60)) <= 0.95
    mrpc = np.array(_tokens(cache.model, text_columns("mrpc", 2000, 1000, rng), "mrpc"))
    assert 45 <= np.median(mrpc) <= 60 and mrpc.max() <= 103
    assert np.mean((mrpc >= 40) & (mrpc <= 100)) >= 0.85


def test_synthetic_cache_is_reused(tmp_path: Path) -> None:
    first = build_cache(tmp_path, "mrpc", "tiny", 8, 8)
    stamp = (first.cache_dir / "ready.json").stat().st_mtime_ns
    again = build_cache(tmp_path, "mrpc", "tiny", 8, 8)
    assert again == first and (first.cache_dir / "ready.json").stat().st_mtime_ns == stamp


def test_unknown_synthetic_text_task_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed: sst2, mrpc"):
        text_columns("cifar10", 4, 100, np.random.default_rng(0))


def test_hf_phases_come_from_the_last_epoch_of_the_timeline() -> None:
    events = [("epoch_begin", 0, 0.0), ("epoch_end", 3, 5.0), ("evaluate", 3, 6.0), ("save", 3, 8.0)]
    events += [("epoch_begin", 3, 10.0), ("epoch_end", 6, 12.0), ("evaluate", 6, 12.5), ("save", 6, 13.5)]
    assert phase_seconds(events) == {"train_s": 2.0, "eval_s": 0.5, "checkpoint_s": 1.0}
    with pytest.raises(RuntimeError, match="did not report"):
        phase_seconds(events[:6])


def test_recipe_accuracy_matches_a_direct_count() -> None:
    torch.manual_seed(0)
    output, target = torch.randn(50, 10), torch.randint(0, 10, (50,))
    top1, top5 = _accuracy(output, target, (1, 5))
    direct5 = sum(int(t in o.topk(5).indices) for o, t in zip(output, target, strict=True))
    assert float(top1) == pytest.approx(100 * float((output.argmax(1) == target).float().mean()))
    assert float(top5) == pytest.approx(100 * direct5 / 50)


def test_recipe_transforms_give_the_trial_resolution() -> None:
    from PIL import Image

    train, evaluation = recipe_transforms(160)
    image = Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8))
    assert train(image).shape == evaluation(image).shape == (3, 160, 160)
    assert train(image).dtype == torch.float32


def _trial_row(task: str, batch: int, mode: str, per_trial: dict[str, float]) -> dict[str, object]:
    return {
        "kind": "trial", "task": task, "preset": "full", "batch_size": batch, "mode": mode, "device": "NVIDIA H100 PCIe",
        "dtype": "bf16 autocast", "timed_steps": 40, "step_ms": 20.0, "samples_per_second": 800.0, "mfu": 0.1,
        "eval_s": 1.0, "eval_scale": 1.0, "checkpoint_s": 2.0, "checkpoint_submit_s": 0.3, "warmup_extra_s": 5.0, "gpu_s_per_epoch": 100.0,
        "gpu_s_per_trial": per_trial, "epochs": [int(e) for e in per_trial],
    }  # fmt: skip


def test_compile_choice_takes_the_cheaper_trial_compile_time_included() -> None:
    rows = [
        _trial_row("mrpc", 16, "eager", {"3": 300.0, "4": 400.0}),
        _trial_row("mrpc", 16, "compile default", {"3": 320.0, "4": 390.0}),  # pays back only at 4 epochs
        _trial_row("sst2", 32, "eager", {"3": 9000.0, "4": 12000.0}),
        _trial_row("sst2", 32, "compile default", {"3": 7000.0, "4": 9000.0}),
        {"kind": "trial", "task": "sst2", "batch_size": 32, "mode": "eager", "error": "OOM: out of memory"},
    ]
    choice = {(c["task"], c["batch_size"]): c["mode"] for c in compile_choice(rows)}
    assert choice == {("mrpc", 16): "eager", ("sst2", 32): "compile default"}


def test_report_shows_the_ratio_against_each_reference() -> None:
    ours = _trial_row("mrpc", 16, "eager", {"3": 300.0, "4": 400.0})
    theirs = {
        "kind": "reference", "reference": "hf-trainer", "task": "mrpc", "batch_size": 16, "dtype": "bf16",
        "step_ms": 40.0, "gpu_s_per_trial": {"3": 600.0, "4": 800.0},
    }  # fmt: skip
    failed = {
        "kind": "reference",
        "reference": "torchvision-recipe",
        "task": "cifar10",
        "batch_size": 64,
        "error": "OOM: x",
    }
    markdown = render([ours, theirs, failed], "python -m trainer.bench_trial_cli --preset full")
    ratio_row = next(line for line in markdown.splitlines() if "Hugging Face Trainer" in line)
    assert ratio_row.rstrip(" |").endswith("0.50")  # 300 / 600
    assert "OOM: x" in markdown and "`python -m trainer.bench_trial_cli --preset full`" in markdown


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--steps", "1"], "--steps"),
        (["--tasks", "imagenet"], "--tasks"),
        (["--sharing", "0"], "--sharing"),
        (["--sharing", "1,,2"], "--sharing"),
        (["--modes", "fast"], "--modes"),
        (["--references", "keras"], "--references"),
        (["--preset", "huge"], "--preset"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(
    flags: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(flags)
    assert exc.value.code == 2 and named in capsys.readouterr().err


def test_trial_flags_also_fit_another_parser() -> None:
    """``add_trial_flags`` is what a ``bench-trial`` subcommand of the trainer CLI would add."""
    import argparse

    parser = argparse.ArgumentParser()
    add_trial_flags(parser)
    args = parser.parse_args(["--sharing", "1,2,4,7", "--tasks", "mrpc"])
    assert args.sharing == [1, 2, 4, 7] and args.tasks == ["mrpc"] and args.modes == ["eager", "compiled"]


def test_report_only_renders_included_rows_into_the_section(tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([_trial_row("sst2", 16, "eager", {"3": 1000.0, "4": 1300.0})]))
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nhand-written text\n")
    assert (
        main(
            [
                "--report-only",
                "--include",
                str(rows),
                "--write",
                str(doc),
                "--command-label",
                "CMD",
                "--quiet",
            ]
        )
        == 0
    )
    text = doc.read_text()
    assert (
        "hand-written text" in text
        and "<!-- BEGIN trainer-trial -->" in text
        and "<!-- END trainer-trial -->" in text
    )
    assert "3 ep: 1,000 / 4 ep: 1,300" in text and "`CMD`" in text


@pytest.mark.slow
def test_tiny_text_trial_and_hf_reference_end_to_end(tmp_path: Path) -> None:
    """The real training path and Hugging Face Trainer on CPU: every row finishes with sane numbers."""
    out = tmp_path / "rows.json"
    code = main([
        "--device", "cpu", "--preset", "tiny", "--tasks", "mrpc", "--batch-sizes", "8", "--steps", "4",
        "--modes", "eager", "--references", "hf", "--work-dir", str(tmp_path / "work"), "--json", str(out), "--quiet",
    ])  # fmt: skip
    rows = json.loads(out.read_text())
    assert code == 0, rows
    trial, reference = rows
    assert (trial["kind"], reference["reference"]) == ("trial", "hf-trainer")
    assert trial["timed_steps"] == 4 and trial["mfu"] is None and trial["train_gflop_per_step"] > 0
    assert trial["real_steps_per_epoch"] == reference["real_steps_per_epoch"] == 459  # 3,668 / 8
    for row in rows:
        assert row["step_ms"] > 0 and row["gpu_s_per_trial"]["4"] > row["gpu_s_per_trial"]["3"] > 0


@pytest.mark.slow
def test_tiny_vision_trial_and_torchvision_reference_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    code = main([
        "--device", "cpu", "--preset", "tiny", "--tasks", "cifar10", "--batch-sizes", "16", "--steps", "4",
        "--modes", "eager", "--references", "torchvision", "--no-flops", "--work-dir", str(tmp_path / "work"),
        "--json", str(out), "--quiet",
    ])  # fmt: skip
    rows = json.loads(out.read_text())
    assert code == 0, rows
    assert [r.get("reference", r["kind"]) for r in rows] == ["trial", "torchvision-recipe"]
    assert rows[1]["timed_steps"] == 4 and rows[1]["real_steps_per_epoch"] == 3125
    assert all(r["gpu_s_per_trial"]["20"] > r["gpu_s_per_trial"]["10"] > 0 for r in rows)


def test_eval_timer_times_each_evaluation_and_restores_the_task() -> None:
    from types import SimpleNamespace

    from trainer.bench_trial import EvalTimer

    def evaluate(net: object) -> dict[str, float]:
        return {"accuracy": 0.5, "net": float(net is None)}

    task = SimpleNamespace(evaluate=evaluate)
    timer = EvalTimer(task, torch.device("cpu"))
    assert task.evaluate(None) == {"accuracy": 0.5, "net": 1.0}  # what Trial.run_epoch calls
    task.evaluate(None)
    assert len(timer.times) == 2 and timer.last_s == timer.times[-1] >= 0
    timer.restore()
    assert task.evaluate is evaluate
