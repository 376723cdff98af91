"""The ``python -m trainer`` argument parser: every subcommand's flags (``trainer.cli`` runs them).

Building the parser imports no heavy library, so the manifests tests, the client and the trial-shaped
benchmark can parse trial commands cheaply. A repeated flag keeps its last value (the local runner
appends overrides).
"""

from __future__ import annotations

import argparse
import os

from trainer.arg_types import csv_choices, float_range, int_range
from trainer.compile_policy import COMPILE_CHOICES
from trainer.config import DEFAULT_CHECKPOINT_INTERVAL_S, DEFAULT_OUTPUT_DIR
from trainer.distributed import DEFAULT_TIMEOUT_S
from trainer.tasks import TINY_TEXT_LR_SCALE, all_tasks, task_names

DEFAULT_CACHE_DIR = os.environ.get("TRAINER_CACHE_DIR", "/cache")
DEFAULT_DB_MANAGER = "katib-db-manager.kubeflow:6789"


def _titles() -> str:
    return ", ".join(spec.title for spec in all_tasks())


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train one trial and print Katib metric lines",
        description=f"Train one Katib trial of a registered task ({_titles()}): BERT fine-tuning for "
        "text tasks, ResNet-50 for image tasks.",
    )
    need = train.add_argument_group("hyperparameters")
    need.add_argument("--task", required=True, choices=task_names(), help="which dataset and model family")
    need.add_argument(
        "--learning-rate",
        required=True,
        type=float_range(0.0, 100.0, low_open=True),
        help="peak learning rate",
    )
    need.add_argument(
        "--batch-size",
        required=True,
        type=int_range(1, 65536),
        help="training batch size per process: under torchrun each of the WORLD_SIZE processes trains on "
        "this many examples per step (global batch = batch size x WORLD_SIZE; the learning rate is not scaled)",
    )
    need.add_argument(
        "--num-epochs", required=True, type=int_range(1, 1000), help="passes over the train split"
    )
    need.add_argument(
        "--max-seq-length", type=int_range(8, 512), default=128, help="text: truncate to this many tokens"
    )
    need.add_argument(
        "--weight-decay",
        type=float_range(0.0, 1.0),
        default=None,
        help="decoupled (AdamW) / L2 (SGD) weight decay; default 0.01 text, 5e-4 vision",
    )
    need.add_argument(
        "--lr-scale",
        type=float_range(0.0, 1e6, low_open=True),
        default=None,
        help="multiply --learning-rate by this (default 1; the tiny text preset uses "
        f"{TINY_TEXT_LR_SCALE:g}, see docs/trainer.md)",
    )
    need.add_argument(
        "--warmup-ratio",
        type=float_range(0.0, 1.0, high_open=True),
        default=None,
        help="fraction of steps with linear warm-up; default 0.1 text, 0.0 vision",
    )
    need.add_argument(
        "--momentum", type=float_range(0.0, 1.0, high_open=True), default=0.9, help="vision: SGD momentum"
    )
    need.add_argument("--seed", type=int_range(0, 2**32 - 1), default=42, help="random seed")

    model = train.add_argument_group("model and data")
    model.add_argument(
        "--model",
        default=None,
        help="text: HF name or save_pretrained folder (default bert-base-uncased); vision: resnet50 "
        "(ImageNet-pretrained, from the cache) or resnet50-cifar (from scratch, CIFAR stem)",
    )
    model.add_argument(
        "--preset", choices=("full", "tiny"), default="full", help="real models/data or tiny ones"
    )
    model.add_argument(
        "--image-size",
        type=int_range(8, 512),
        default=None,
        help="vision: training resolution; default 160 (pretrained), 32 (resnet50-cifar), 16 (tiny)",
    )
    model.add_argument(
        "--cache-dir", default=DEFAULT_CACHE_DIR, help="warm-cache folder (models/, datasets/)"
    )

    run = train.add_argument_group("run")
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where metrics.json is written")
    run.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint folder, also holds the trial's own log trainer.log (default OUTPUT_DIR/checkpoint)",
    )
    run.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda if present"
    )
    run.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        nargs="?",
        const="on",
        default="auto",
        help="torch.compile the model: auto (default) compiles GPU trials long enough to pay the compile "
        "time back (trainer/compile_policy.py), on (also a bare --compile), off",
    )
    run.add_argument(
        "--checkpoint-interval-s",
        type=float_range(0, 86400),
        default=DEFAULT_CHECKPOINT_INTERVAL_S,
        help=f"save a checkpoint (in the background) when this many seconds passed since the last one, "
        f"checked every few steps; 0: after every epoch (default {DEFAULT_CHECKPOINT_INTERVAL_S:g}). "
        "SIGTERM always saves before the exit; a finished trial keeps only a small marker",
    )
    run.add_argument(
        "--num-workers",
        type=int_range(0, 64),
        default=None,
        help="text tasks: DataLoader workers, kept for the whole trial (default up to 4 on GPU, 0 on CPU); "
        "image tasks gather batches from a device-resident dataset and start none",
    )
    run.add_argument(
        "--metrics-port", type=int_range(1, 65535), default=None, help="serve Prometheus /metrics"
    )
    run.add_argument("--push-metrics", action="store_true", help="also push metrics with the Katib SDK")
    run.add_argument(
        "--katib-db-manager-address", default=DEFAULT_DB_MANAGER, help="host:port used by --push-metrics"
    )
    run.add_argument(
        "--stop-after-epoch",
        type=int_range(1, 1000),
        default=None,
        help="testing aid: after this epoch save the checkpoint and exit 143 as if preempted",
    )
    run.add_argument(
        "--fail-on-divergence",
        action="store_true",
        help="exit 3 when the loss becomes NaN/inf (default: report chance-level metrics with "
        "diverged=1 and exit 0, so the trial is a result the optimizer learns from)",
    )
    run.add_argument(
        "--dist-timeout",
        type=int_range(10, 86400),
        default=DEFAULT_TIMEOUT_S,
        help=f"under torchrun: seconds a collective waits for the other processes (default {DEFAULT_TIMEOUT_S})",
    )


def _add_warm_cache(sub: argparse._SubParsersAction) -> None:
    warm = sub.add_parser(
        "warm-cache",
        help="download models and datasets into the cache once",
        description=f"Download the tasks' datasets ({_titles()}) and the models they need (BERT with "
        "its tokenizer, ResNet-50 ImageNet weights).",
    )
    tasks = task_names()
    warm.add_argument("--tasks", type=csv_choices(tasks), default=list(tasks), help="comma-separated tasks")
    warm.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="cache folder to fill")
    warm.add_argument("--text-model", default="bert-base-uncased", help="HF model name for the text tasks")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from trainer.bench_args import COMPILE_MODES, int_list

    bench = sub.add_parser(
        "bench",
        help="training throughput (samples/s, model FLOP utilisation) on synthetic batches",
        description="Measure BERT-base (seq 128) and ResNet-50 training throughput on this device: "
        "optionally over several batch sizes, compiled, and profiled.",
    )
    bench.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    bench.add_argument("--shapes", type=csv_choices(("tiny", "full")), default=["tiny", "full"])
    bench.add_argument("--models", type=csv_choices(("bert", "resnet50")), default=["bert", "resnet50"])
    bench.add_argument(
        "--steps", type=int_range(1, 10000), default=None, help="timed steps (default 3 CPU, 30 GPU)"
    )
    bench.add_argument(
        "--warmup", type=int_range(0, 1000), default=None, help="untimed steps (default 1 CPU, 10 GPU)"
    )
    batch = bench.add_mutually_exclusive_group()
    batch.add_argument(
        "--batch-size",
        type=int_range(1, 4096),
        default=None,
        help="one batch size for every model (default: CPU 8 full, 32 tiny; GPU 128 BERT, 256 ResNet)",
    )
    batch.add_argument(
        "--batch-sizes",
        type=int_list(1, 4096),
        default=None,
        help="comma-separated sweep, e.g. 64,128,256: each model at each size; "
        "a size that runs out of memory is an OOM row, the sweep goes on",
    )
    bench.add_argument("--compile", action="store_true", help="torch.compile the models (mode default)")
    bench.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        default=None,
        help="torch.compile mode (implies --compile); recorded in the results",
    )
    bench.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="profile a few more steps per configuration with torch.profiler: a gzipped Chrome trace each, "
        "and the top kernels/ops in DIR/profile.md and DIR/profile.json (merged across runs)",
    )
    bench.add_argument(
        "--profile-batch-sizes",
        type=int_list(1, 4096),
        default=None,
        help="profile only these batch sizes of the sweep (default: all)",
    )
    bench.add_argument(
        "--profile-steps", type=int_range(1, 100), default=3, help="profiled steps per configuration"
    )
    bench.add_argument("--profile-top", type=int_range(1, 500), default=15, help="rows in each top-N table")
    bench.add_argument(
        "--write", default=None, help="Markdown file whose trainer-throughput section is replaced"
    )
    bench.add_argument(
        "--json", default=None, help="also write the raw results here (rewritten after each measurement)"
    )
    bench.add_argument(
        "--include", action="append", default=None, help="JSON results of an earlier run to add to the table"
    )
    bench.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: merge the --include results into one table (and --json/--write)",
    )
    bench.add_argument(
        "--command-label", default=None, help="command shown above the table (default: this command line)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with the ``train``, ``warm-cache`` and ``bench`` subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Katib trial trainer: BERT for text tasks, ResNet-50 for image tasks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,warm-cache,bench,bench-trial}")
    _add_train(sub)
    _add_warm_cache(sub)
    _add_bench(sub)
    from trainer.bench_args import add_trial_flags

    add_trial_flags(
        sub.add_parser(
            "bench-trial",
            help="the seed's trials timed end to end (= bench --shapes trial): GPU-s per trial against "
            "Hugging Face Trainer and torchvision's recipe, and several trials per GPU",
        )
    )
    return parser
