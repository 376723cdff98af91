"""The trainer's tasks: what each one is (``TaskSpec``, in one registry) and what a built task hands
the training loop (``PreparedTask``).

Everything that differs between tasks is read from the registry: the CLI's ``--task`` and
``warm-cache --tasks`` choices, the metric names, the dataset, its columns and evaluation split, the
tiny preset's data and scaling, the models and their cache entries, and the readers outside the
trainer (``manifests/generate.py``, ``bench/tiny_grid_tables.py``). Adding a task is one module (its
tiny data, and its own ``prepare`` function if it is neither a text nor an image classification task
like the ones below) plus one ``register_task`` call at the end of this file (see docs/trainer.md).

No torch here: the CLI parser, the comparison client and the manifest generator import this module.
A task names its code as ``"module:function"``, imported only when a trial of that task runs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

FAMILIES = ("text", "vision")
# Quality metrics each family reports after the objective (``accuracy``).
TEXT_METRICS = ("f1",)
VISION_METRICS = ("top5_accuracy",)
# Model entries ``warm-cache`` knows how to download (trainer.warm_cache.MODEL_WARMERS).
MODEL_ENTRIES = ("text-model", "resnet50-imagenet")
# The seed's BERT learning rates (2e-5..5e-5) are fine-tuning rates for a *pretrained* model; the tiny
# preset's BERT is trained from scratch in seconds and sits at the majority class at those rates. It
# therefore scales the given rate by this factor (printed in the trial log), so that the same Experiment
# spec still ranks learning rates meaningfully at tiny scale. `--lr-scale` overrides it.
TINY_TEXT_LR_SCALE = 100.0
# A tiny CIFAR trial takes ~100x fewer SGD steps than a real one, so the total decay lr*wd*steps that
# the seed's weight decays (1e-4, 1e-3) stand for would vanish; the tiny vision preset scales them by this.
TINY_VISION_WD_SCALE = 10.0
_NAME_RE = re.compile(r"[a-z][a-z0-9]*")
_REF_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class TaskSpec:
    """One task: its data, model family, metrics, cache entries and tiny-preset settings.

    ``prepare`` and ``tiny_data`` are ``"module:function"`` references: ``prepare(cfg, device,
    autocast, num_workers, dist)`` returns a ``PreparedTask``; ``tiny_data(rng)`` returns the tiny
    preset's ``{split: {column: values}}`` from a ``numpy.random.Generator`` seeded per task.
    """

    name: str  # --task value, cache folder datasets/<name>, Experiment and table names
    title: str  # how people write it, e.g. "SST-2"
    family: str  # "text" (BERT, AdamW, linear decay) or "vision" (ResNet, SGD, cosine decay)
    prepare: str
    tiny_data: str
    hub_dataset: tuple[str, str | None]  # (hub repository, configuration) of the full dataset
    columns: tuple[str, ...]  # what a trial reads from each split: inputs, then the label
    eval_split: str  # the split the metrics are computed on ("validation" or "test")
    num_labels: int
    quality_metrics: tuple[str, ...]  # reported after accuracy; the first one is the table's quality
    default_model: str  # --model when not given (full preset)
    tiny_model: str  # the model of the tiny preset (built in code)
    models: tuple[str, ...]  # allowed --model values; empty: any hub name or save_pretrained folder
    warm_models: tuple[str, ...]  # model entries warm-cache downloads for this task (MODEL_ENTRIES)
    default_weight_decay: float
    default_warmup_ratio: float
    tiny_lr_scale: float = 1.0  # --lr-scale default in the tiny preset
    tiny_weight_decay_scale: float = 1.0  # factor on --weight-decay in the tiny preset

    def __post_init__(self) -> None:
        problems = []
        if not _NAME_RE.fullmatch(self.name):
            problems.append("name must match [a-z][a-z0-9]* (it names folders and Experiments)")
        if self.family not in FAMILIES:
            problems.append(f"family must be one of {', '.join(FAMILIES)}")
        problems += [
            f"{what} must be 'module:function'"
            for what, ref in (("prepare", self.prepare), ("tiny_data", self.tiny_data))
            if not _REF_RE.fullmatch(ref)
        ]
        if len(self.columns) < 2:
            problems.append("columns must name at least one input and the label")
        if self.family == "vision" and len(self.columns) != 2:
            problems.append("vision tasks read one image column and the label")
        if self.family == "text" and self.num_labels != 2:
            problems.append("text tasks are binary classification (num_labels 2, f1)")
        if self.num_labels < 2:
            problems.append("num_labels must be at least 2")
        unknown = sorted(set(self.warm_models) - set(MODEL_ENTRIES))
        if unknown:
            problems.append(f"warm_models {unknown} not in {', '.join(MODEL_ENTRIES)}")
        if problems:
            raise ValueError(f"task {self.name!r}: " + "; ".join(problems))

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns the model reads (every column but the label)."""
        return self.columns[:-1]

    @property
    def label_column(self) -> str:
        """The column holding the class index."""
        return self.columns[-1]


def text_task(name: str, title: str, **fields: Any) -> TaskSpec:
    """A GLUE-like binary sentence (or sentence-pair) classification task: BERT, AdamW, linear decay."""
    defaults: dict[str, Any] = {
        "family": "text",
        "prepare": "trainer.text_task:prepare_text",
        "eval_split": "validation",
        "num_labels": 2,
        "quality_metrics": TEXT_METRICS,
        "default_model": "bert-base-uncased",
        "tiny_model": "tiny-bert",
        "models": (),
        "warm_models": ("text-model",),
        "default_weight_decay": 0.01,
        "default_warmup_ratio": 0.1,
        "tiny_lr_scale": TINY_TEXT_LR_SCALE,
    }
    return TaskSpec(name=name, title=title, **{**defaults, **fields})


def vision_task(name: str, title: str, **fields: Any) -> TaskSpec:
    """A CIFAR-like image classification task: ResNet-50, SGD with Nesterov momentum, cosine decay."""
    defaults: dict[str, Any] = {
        "family": "vision",
        "prepare": "trainer.vision_task:prepare_vision",
        "eval_split": "test",
        "quality_metrics": VISION_METRICS,
        "default_model": "resnet50",
        "tiny_model": "tiny-resnet",
        "models": ("resnet50", "resnet50-cifar"),
        "warm_models": ("resnet50-imagenet",),
        "default_weight_decay": 5e-4,
        "default_warmup_ratio": 0.0,
        "tiny_weight_decay_scale": TINY_VISION_WD_SCALE,
    }
    return TaskSpec(name=name, title=title, **{**defaults, **fields})


_REGISTRY: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to the registry (registering the same spec again is a no-op)."""
    known = _REGISTRY.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"task {spec.name!r} is already registered with other settings")
    _REGISTRY[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``; ValueError naming the allowed ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(task_names())}") from None


def task_names(family: str | None = None) -> tuple[str, ...]:
    """Registered task names in registration order, optionally only those of one family."""
    return tuple(name for name, spec in _REGISTRY.items() if family in (None, spec.family))


def all_tasks() -> tuple[TaskSpec, ...]:
    """Every registered task, in registration order."""
    return tuple(_REGISTRY.values())


def load_ref(ref: str) -> Any:
    """Import the object a ``"module:function"`` reference names."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass
class PreparedTask:
    """A model with its data, loss, evaluation and optimizer, ready for ``engine.train_loop``.

    ``train_batches(epoch, start_step)`` yields the epoch's batches from ``start_step`` on;
    ``batch_loss(model, batch, epoch, step)`` returns (mean loss, samples in batch);
    ``evaluate(model)`` returns the validation metrics (``accuracy`` and friends, ``eval_loss``).
    """

    model: nn.Module
    train_size: int
    steps_per_epoch: int
    train_batches: Callable[[int, int], Iterable[Any]]
    batch_loss: Callable[[nn.Module, Any, int, int], tuple[torch.Tensor, int]]
    evaluate: Callable[[nn.Module], dict[str, float]]
    optimizer: torch.optim.Optimizer
    schedule: str  # "linear" (warm-up then linear decay) or "cosine" (warm-up then cosine decay)
    info: dict[str, Any] = field(default_factory=dict)


# The built-in tasks. A new task: its module (tiny data; a prepare function if no family fits) and one line.
register_task(
    text_task(
        "sst2",
        "SST-2",
        hub_dataset=("nyu-mll/glue", "sst2"),
        columns=("sentence", "label"),
        tiny_data="trainer.tiny_data:sst2_splits",
    )
)
register_task(
    text_task(
        "mrpc",
        "MRPC",
        hub_dataset=("nyu-mll/glue", "mrpc"),
        columns=("sentence1", "sentence2", "label"),
        tiny_data="trainer.tiny_data:mrpc_splits",
    )
)
register_task(
    vision_task(
        "cifar10",
        "CIFAR-10",
        hub_dataset=("uoft-cs/cifar10", None),
        columns=("img", "label"),
        num_labels=10,
        tiny_data="trainer.tiny_data:cifar10_splits",
    )
)
