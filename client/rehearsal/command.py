"""The ``rehearse`` subcommand of ``python -m client``: flags, and printing the account."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from client.experiments import split_filter
from client.rehearsal.runner import Rehearsal, RehearsalOptions


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``rehearse`` on the CLI's subparsers."""
    p = sub.add_parser(
        "rehearse",
        help="run Experiments on this CPU machine as a Katib cluster would (cache Job, suggestion "
        "service, trial pods with Katib's collector, retries, preemption) and print a per-trial account",
    )
    p.add_argument(
        "manifest", nargs="*", default=["manifests"], metavar="MANIFEST",
        help="Experiment YAML files or folders (default manifests/)",
    )  # fmt: skip
    p.add_argument(
        "--setup",
        default="manifests",
        metavar="DIR",
        help="folder with the Jobs and katib-config (default manifests/)",
    )
    p.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="NAME",
        help="only these Experiments (comma-separated, repeatable)",
    )
    p.add_argument("--max-trials", type=_count, metavar="N", help="cap each Experiment's maxTrialCount")
    p.add_argument(
        "--parallel", type=_count, default=1, metavar="N", help="trials at once (default 1: a 2-core machine)"
    )
    p.add_argument(
        "--preempt", action="store_true", help="preempt each Experiment's first trial once, mid-epoch 2"
    )
    p.add_argument(
        "--workdir",
        default="runs/rehearsal",
        metavar="DIR",
        help="pods, volumes and stand-ins (default runs/rehearsal)",
    )
    p.add_argument(
        "--text-rows",
        type=_count,
        default=96,
        metavar="N",
        help="rows per split of the GLUE stand-ins (default 96)",
    )
    p.add_argument(
        "--image-rows",
        type=_count,
        default=16,
        metavar="N",
        help="rows per split of the CIFAR-10 stand-in (default 16)",
    )
    p.add_argument(
        "--init-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds an init container may take (default 60)",
    )


def cmd_rehearse(args: argparse.Namespace, console: Console) -> int:
    """Run the rehearsal; exit 0 without findings, 1 with."""
    options = RehearsalOptions(
        manifests=[Path(m) for m in args.manifest], setup=Path(args.setup), experiments=split_filter(args.experiment),
        max_trials=args.max_trials, parallel=args.parallel, preempt=args.preempt, workdir=Path(args.workdir).absolute(),
        text_rows=args.text_rows, image_rows=args.image_rows, init_timeout=args.init_timeout,
    )  # fmt: skip
    from client.rehearsal.account import render

    account = Rehearsal(options).run()
    console.print(render(account), markup=False, highlight=False, soft_wrap=True)
    return 1 if account.findings() else 0
