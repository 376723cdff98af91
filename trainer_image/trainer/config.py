"""A trial's settings with task defaults filled in, and the fingerprint checkpoints are tied to."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.distributed import DEFAULT_TIMEOUT_S
from trainer.tasks import TaskSpec, get_task

DEFAULT_OUTPUT_DIR = "outputs"  # train --output-dir
# train --checkpoint-interval-s: a preempted trial loses at most this much training; each save costs a
# snapshot of the training state (device to pinned memory) and a background write, see checkpoint.py
DEFAULT_CHECKPOINT_INTERVAL_S = 300.0
TINY_IMAGE_SIZE = 12  # the tiny ResNet's default training resolution (images are 32 px, resized)
# --image-size default per vision model: the tiny ResNet's, CIFAR's own, and a pretrained model's
DEFAULT_IMAGE_SIZE = {"tiny-resnet": TINY_IMAGE_SIZE, "resnet50-cifar": 32, "resnet50": 160}
# The tiny text preset's sentences are 5-30 words, so it truncates at max_seq_length / 8 tokens (16 for the
# seed's 128, 32 for 256): some decisive words come after token 16, and a longer max_seq_length costs
# more time, as in the full task (where the seed's sentences would rarely reach 128 tokens).
TINY_SEQ_LENGTH_DIVISOR = 8
# Fields that do not change what is computed; everything else must match to resume a checkpoint.
NOT_IN_FINGERPRINT = (
    "cache_dir",
    "output_dir",
    "checkpoint_dir",
    "device",
    "compile",
    "checkpoint_interval_s",
    "num_workers",
    "metrics_port",
    "push_metrics",
    "katib_db_manager_address",
    "stop_after_epoch",
    "dist_timeout",
    "fail_on_divergence",
)


def _compile_choice(value: object) -> str:
    """``--compile`` as auto/on/off (a library caller's True/False/None read as on/off/auto)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def resolve_checkpoint_dir(output_dir: str, checkpoint_dir: str | None) -> str:
    """The checkpoint folder ``train`` uses: ``--checkpoint-dir``, else ``OUTPUT_DIR/checkpoint``."""
    return checkpoint_dir or str(Path(output_dir) / "checkpoint")


@dataclass(frozen=True)
class RunConfig:
    """Everything ``train`` needs, defaults resolved per task and preset."""

    task: str
    learning_rate: float
    lr_scale: float
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
    compile: str  # auto | on | off (trainer.compile_policy)
    num_workers: int | None
    metrics_port: int | None
    push_metrics: bool
    katib_db_manager_address: str
    stop_after_epoch: int | None
    dist_timeout: int = DEFAULT_TIMEOUT_S
    fail_on_divergence: bool = False
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S

    @property
    def spec(self) -> TaskSpec:
        """The registered task this trial trains."""
        return get_task(self.task)

    @property
    def effective_learning_rate(self) -> float:
        """The rate the optimizer uses: ``--learning-rate`` x ``lr_scale``."""
        return self.learning_rate * self.lr_scale

    @property
    def effective_weight_decay(self) -> float:
        """The decay the optimizer uses: ``--weight-decay``, scaled by the task's tiny-preset factor."""
        scale = self.spec.tiny_weight_decay_scale if self.preset == "tiny" else 1.0
        return self.weight_decay * scale

    @property
    def effective_max_seq_length(self) -> int:
        """The truncation length: ``--max-seq-length``, divided in the tiny text preset (at least 8)."""
        if self.preset == "tiny" and self.is_text:
            return max(8, self.max_seq_length // TINY_SEQ_LENGTH_DIVISOR)
        return self.max_seq_length

    def tiny_scaling_notes(self) -> list[str]:
        """How the tiny preset maps the given hyperparameters to the ones used (empty when unchanged)."""
        notes = []
        if self.lr_scale != 1.0:
            notes.append(
                f"learning rate {self.learning_rate:g} x lr-scale {self.lr_scale:g} = {self.effective_learning_rate:g}"
            )
        if self.effective_max_seq_length != self.max_seq_length:
            notes.append(
                f"max sequence length {self.max_seq_length} / {TINY_SEQ_LENGTH_DIVISOR} = "
                f"{self.effective_max_seq_length} tokens"
            )
        if self.effective_weight_decay != self.weight_decay:
            scale = self.spec.tiny_weight_decay_scale
            notes.append(f"weight decay {self.weight_decay:g} x {scale:g} = {self.effective_weight_decay:g}")
        return notes

    @property
    def is_text(self) -> bool:
        """Whether the task is of the text family (BERT; else vision, ResNet)."""
        return self.spec.family == "text"

    def fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint must have been written with to be resumed."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_IN_FINGERPRINT}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        """Fill task defaults into parsed ``train`` arguments and check cross-field rules."""
        spec = get_task(args.task)
        text = spec.family == "text"
        model = args.model or spec.default_model
        if args.preset == "tiny":
            model = spec.tiny_model
        elif spec.models and model not in spec.models:
            raise argparse.ArgumentTypeError(
                f"--model for {spec.name} must be one of {', '.join(spec.models)}, got {model!r}"
            )
        image_size = args.image_size
        if not text and image_size is None:
            image_size = DEFAULT_IMAGE_SIZE[model]
        lr_scale = args.lr_scale
        if lr_scale is None:
            lr_scale = spec.tiny_lr_scale if args.preset == "tiny" else 1.0
        weight_decay = args.weight_decay if args.weight_decay is not None else spec.default_weight_decay
        warmup = args.warmup_ratio if args.warmup_ratio is not None else spec.default_warmup_ratio
        output_dir = str(Path(args.output_dir))
        checkpoint_dir = resolve_checkpoint_dir(output_dir, args.checkpoint_dir)
        return cls(
            task=args.task,
            learning_rate=args.learning_rate,
            lr_scale=lr_scale,
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
            compile=_compile_choice(args.compile),
            num_workers=args.num_workers,
            metrics_port=args.metrics_port,
            push_metrics=args.push_metrics,
            katib_db_manager_address=args.katib_db_manager_address,
            stop_after_epoch=args.stop_after_epoch,
            dist_timeout=getattr(args, "dist_timeout", DEFAULT_TIMEOUT_S),
            fail_on_divergence=getattr(args, "fail_on_divergence", False),
            checkpoint_interval_s=getattr(args, "checkpoint_interval_s", DEFAULT_CHECKPOINT_INTERVAL_S),
        )
