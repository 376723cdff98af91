"""A new task is one module plus one registration: a task registered at run time is offered by the CLI,
named in the metrics, loaded, trained and warmed without any other change; and the readers outside
the trainer (manifests, tiny-grid tables) list exactly the registered tasks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from trainer import tasks, warm_cache
from trainer.cli import build_parser
from trainer.config import RunConfig
from trainer.katib_metrics import metric_names_for_task, parse_metric_lines
from trainer.tiny_data import TEXT_SIZES, Splits, sst2_splits, tiny_dataset

from tests.trainer.helpers import REPO, trial_args

REVIEWS = tasks.text_task(
    "reviews",
    "Reviews",
    hub_dataset=("example/reviews", None),
    columns=("review", "stars"),
    tiny_data="tests.trainer.test_task_registry:review_splits",
)


def review_splits(rng: np.random.Generator) -> Splits:
    """The task's module: tiny SST-2-like sentences under the columns ``review`` and ``stars``."""
    return {
        split: {"review": columns["sentence"], "stars": columns["label"]}
        for split, columns in sst2_splits(rng).items()
    }


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the registry for this test (the built-in tasks), restored afterwards."""
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_a_registered_task_is_offered_by_the_cli(registry, capsys: pytest.CaptureFixture[str]) -> None:
    train = (
        "train",
        "--task",
        "reviews",
        "--learning-rate",
        "3e-5",
        "--batch-size",
        "16",
        "--num-epochs",
        "3",
    )
    with pytest.raises(SystemExit):
        parse(*train)
    assert "invalid choice: 'reviews'" in capsys.readouterr().err

    tasks.register_task(REVIEWS)
    assert parse(*train).task == "reviews"
    assert parse("warm-cache").tasks == ["sst2", "mrpc", "cifar10", "reviews"]
    assert parse("warm-cache", "--tasks", "reviews,cifar10").tasks == ["reviews", "cifar10"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        parse("train", "--help")
    assert "(SST-2, MRPC, CIFAR-10, Reviews)" in " ".join(capsys.readouterr().out.split())

    cfg = RunConfig.from_args(parse(*train))  # the text family's defaults
    assert (cfg.model, cfg.weight_decay, cfg.warmup_ratio, cfg.lr_scale) == (
        "bert-base-uncased",
        0.01,
        0.1,
        1.0,
    )
    tiny = RunConfig.from_args(parse(*train, "--preset", "tiny"))
    assert (tiny.model, tiny.lr_scale, tiny.is_text) == ("tiny-bert", tasks.TINY_TEXT_LR_SCALE, True)


def test_a_registered_task_has_metrics_and_tiny_data(registry) -> None:
    with pytest.raises(ValueError, match="unknown task 'reviews'; allowed: sst2, mrpc, cifar10"):
        metric_names_for_task("reviews")
    tasks.register_task(REVIEWS)
    assert metric_names_for_task("reviews") == metric_names_for_task("sst2")
    assert metric_names_for_task("reviews")[:2] == ["accuracy", "f1"]

    data = tiny_dataset("reviews")
    assert {split: len(columns["review"]) for split, columns in data.items()} == TEXT_SIZES["sst2"]
    assert set(data["train"]) == {"review", "stars"} and set(data["train"]["stars"]) == {0, 1}
    assert data["train"]["review"] != tiny_dataset("sst2")["train"]["sentence"]  # its own seed


def test_a_registered_task_trains_end_to_end(registry, in_process, tmp_path: Path) -> None:
    tasks.register_task(REVIEWS)
    args = trial_args("sst2", tmp_path, epochs=2)
    args[args.index("--task") + 1] = "reviews"
    run = in_process(args)
    assert run.code == 0, run.err
    names = metric_names_for_task("reviews")
    final = {p.name: float(p.value) for p in parse_metric_lines(run.out.splitlines()[-1], names)}
    assert set(final) == set(names)
    assert 0.5 < final["accuracy"] <= 1.0 and 0.0 <= final["f1"] <= 1.0
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_warm_cache_fetches_each_listed_model_once_then_the_datasets(
    registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tasks.register_task(REVIEWS)
    calls: list[str] = []
    monkeypatch.setattr(
        warm_cache,
        "model_warmers",
        lambda cache_dir, text_model: {
            entry: (lambda entry=entry: calls.append(f"{entry} {text_model}"))
            for entry in tasks.MODEL_ENTRIES
        },
    )
    monkeypatch.setattr(warm_cache, "warm_dataset", lambda cache_dir, task: calls.append(f"dataset {task}"))
    warm_cache.warm_cache(["reviews", "cifar10", "sst2"], tmp_path / "cache", text_model="m")
    assert calls == [
        "text-model m",
        "resnet50-imagenet m",
        "dataset reviews",
        "dataset cifar10",
        "dataset sst2",
    ]
    assert set(warm_cache.model_warmers(tmp_path, "m")) == set(tasks.MODEL_ENTRIES)


def test_registration_checks_the_spec(registry) -> None:
    tasks.register_task(REVIEWS)
    assert tasks.register_task(REVIEWS) is REVIEWS  # the same spec again: nothing changes
    with pytest.raises(ValueError, match="'reviews' is already registered"):
        tasks.register_task(
            tasks.text_task("reviews", "Other", hub_dataset=("x", None), columns=("a", "b"), tiny_data="m:f")
        )
    bad = {
        "name must match": {"name": "Bad-Name"},
        "family must be one of text, vision": {"family": "audio"},
        "prepare must be 'module:function'": {"prepare": "trainer.text_task.prepare_text"},
        "text tasks are binary": {"num_labels": 3},
        "columns must name at least one input": {"columns": ("stars",)},
        "warm_models \\['bert'\\] not in": {"warm_models": ("bert",)},
    }
    for message, change in bad.items():
        fields = {"hub_dataset": ("x", None), "columns": ("a", "b"), "tiny_data": "m:f", **change}
        with pytest.raises(ValueError, match=message):
            tasks.text_task(fields.pop("name", "fine"), "Fine", **fields)
    with pytest.raises(ValueError, match="one image column and the label"):
        tasks.vision_task(
            "pics", "Pics", hub_dataset=("x", None), columns=("a", "b", "c"), num_labels=3, tiny_data="m:f"
        )
    assert tasks.task_names() == ("sst2", "mrpc", "cifar10", "reviews")
    assert tasks.task_names("vision") == ("cifar10",)


def _generator() -> ModuleType:
    """manifests/generate.py, loaded as the manifest tests load it."""
    name = "katib_manifests_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "manifests" / "generate.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_the_readers_outside_the_trainer_list_the_registered_tasks() -> None:
    from bench import tiny_grid_tables

    builtin = tasks.all_tasks()
    gen = _generator()
    assert tuple(gen.TASK_TEMPLATES) == tasks.task_names() == tiny_grid_tables.TASKS
    assert gen.TASK_TITLES == {"sst2": "SST-2", "mrpc": "MRPC", "cifar10": "CIFAR-10"}
    assert gen.base_values(gen.Options())["tasks"] == "sst2,mrpc,cifar10"
    assert tiny_grid_tables.QUALITY == {"sst2": "f1", "mrpc": "f1", "cifar10": "top5_accuracy"}
    assert {spec.name: spec.family for spec in builtin} == {
        "sst2": "text",
        "mrpc": "text",
        "cifar10": "vision",
    }
