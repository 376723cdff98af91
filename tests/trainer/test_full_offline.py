"""The ``full`` preset's loading code against a cache in warm-cache's layout, offline (not mocked)."""

from __future__ import annotations

import json

import pytest
from trainer.katib_metrics import metric_names_for_task, parse_metric_lines

from tests.trainer.cache_fixtures import fill_dataset, fill_resnet50_weights, fill_text_model
from tests.trainer.helpers import run_cli


def full_args(task: str, tmp_path, *extra: str) -> list[str]:
    return [
        "train",
        "--task",
        task,
        "--learning-rate",
        "2e-3" if task != "cifar10" else "0.05",
        "--batch-size",
        "16",
        "--num-epochs",
        "1",
        "--preset",
        "full",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--output-dir",
        str(tmp_path / "out"),
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "mrpc"])
def test_text_full_preset_reads_the_cache_offline(task: str, tmp_path) -> None:
    cache = tmp_path / "cache"
    model = fill_text_model(cache)
    fill_dataset(cache, task, sizes={"train": 64, "validation": 32, "test": 8})
    run = run_cli(full_args(task, tmp_path), HF_HUB_OFFLINE="1")
    assert run.code == 0, run.err
    assert str(model) in run.err  # the cached save_pretrained folder was used
    names = metric_names_for_task(task)
    assert {p.name for p in parse_metric_lines(run.out, names)} == set(names)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["train_examples"] == 64 and report["eval_examples"] == 32


@pytest.mark.slow
def test_vision_full_preset_reads_the_cache_offline(tmp_path) -> None:
    cache = tmp_path / "cache"
    weights = fill_resnet50_weights(cache)
    fill_dataset(cache, "cifar10", sizes={"train": 16, "test": 8})
    run = run_cli(
        full_args("cifar10", tmp_path, "--image-size", "32", "--batch-size", "8"), HF_HUB_OFFLINE="1"
    )
    assert run.code == 0, run.err
    assert weights.name in run.err
    names = metric_names_for_task("cifar10")
    assert {p.name for p in parse_metric_lines(run.out, names)} == set(names)


def test_pretrained_resnet_loads_cached_weights(tmp_path, monkeypatch) -> None:
    import torch
    from trainer.cli import build_parser
    from trainer.config import RunConfig
    from trainer.vision_task import load_vision_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = fill_resnet50_weights(tmp_path)
    args = build_parser().parse_args(
        [
            "train",
            "--task",
            "cifar10",
            "--learning-rate",
            "0.1",
            "--batch-size",
            "8",
            "--num-epochs",
            "1",
            "--cache-dir",
            str(tmp_path),
        ]
    )
    model, source, imagenet = load_vision_model(RunConfig.from_args(args))
    saved = torch.load(weights, weights_only=True)
    assert imagenet and "ImageNet" in source
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    assert model.fc.out_features == 10
