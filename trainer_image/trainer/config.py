"""A trial's settings with task defaults filled in, and the fingerprint checkpoints are tied to."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.katib_metrics import TEXT_TASKS

DEFAULT_MODEL = {"sst2": "bert-base-uncased", "mrpc": "bert-base-uncased", "cifar10": "resnet50"}
VISION_MODELS = ("resnet50", "resnet50-cifar")
TINY_MODEL = {"sst2": "tiny-bert", "mrpc": "tiny-bert", "cifar10": "tiny-resnet"}
# Fields that do not change what is computed; everything else must match to resume a checkpoint.
NOT_IN_FINGERPRINT = (
    "cache_dir",
    "output_dir",
    "checkpoint_dir",
    "device",
    "compile",
    "num_workers",
    "metrics_port",
    "push_metrics",
    "katib_db_manager_address",
    "stop_after_epoch",
)


@dataclass(frozen=True)
class RunConfig:
    """Everything ``train`` needs, defaults resolved per task and preset."""

    task: str
    learning_rate: float
    batch_size: int
    num_epochs: int
    max_seq_length: int
    weight_decay: float
    warmup_ratio: float
    momentum: float
    seed: int
    model: str
    preset: str
    image_size: int | None
    cache_dir: str
    output_dir: str
    checkpoint_dir: str
    device: str
    compile: bool
    num_workers: int | None
    metrics_port: int | None
    push_metrics: bool
    katib_db_manager_address: str
    stop_after_epoch: int | None

    @property
    def is_text(self) -> bool:
        """Whether the task is a GLUE text task (else CIFAR-10)."""
        return self.task in TEXT_TASKS

    def fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint must have been written with to be resumed."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_IN_FINGERPRINT}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        """Fill task defaults into parsed ``train`` arguments and check cross-field rules."""
        text = args.task in TEXT_TASKS
        model = args.model or DEFAULT_MODEL[args.task]
        if args.preset == "tiny":
            model = TINY_MODEL[args.task]
        elif not text and model not in VISION_MODELS:
            raise argparse.ArgumentTypeError(
                f"--model for cifar10 must be one of {', '.join(VISION_MODELS)}, got {model!r}"
            )
        image_size = args.image_size
        if not text and image_size is None:
            image_size = {"tiny-resnet": 16, "resnet50-cifar": 32, "resnet50": 160}[model]
        weight_decay = args.weight_decay if args.weight_decay is not None else (0.01 if text else 5e-4)
        warmup = args.warmup_ratio if args.warmup_ratio is not None else (0.1 if text else 0.0)
        output_dir = str(Path(args.output_dir))
        checkpoint_dir = args.checkpoint_dir or str(Path(output_dir) / "checkpoint")
        return cls(
            task=args.task,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            num_epochs=args.num_epochs,
            max_seq_length=args.max_seq_length,
            weight_decay=weight_decay,
            warmup_ratio=warmup,
            momentum=args.momentum,
            seed=args.seed,
            model=model,
            preset=args.preset,
            image_size=image_size if not text else None,
            cache_dir=args.cache_dir,
            output_dir=output_dir,
            checkpoint_dir=checkpoint_dir,
            device=args.device,
            compile=args.compile,
            num_workers=args.num_workers,
            metrics_port=args.metrics_port,
            push_metrics=args.push_metrics,
            katib_db_manager_address=args.katib_db_manager_address,
            stop_after_epoch=args.stop_after_epoch,
        )
