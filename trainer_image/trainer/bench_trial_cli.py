"""``python -m trainer.bench_trial_cli``: the trial-shaped benchmark, its references and the sharing sweep.

Order: every (task, batch size, mode) trial row, then the references (Hugging Face Trainer for the
text tasks, torchvision's recipe for CIFAR-10) at the same batch sizes, then the sharing sweep. The
JSON file is rewritten after every row, so a run cut short by a time limit keeps what it finished; a
configuration that fails (e.g. out of memory) becomes an error row and the run goes on. Flags:
:func:`trainer.bench_args.add_trial_flags`; tables: :mod:`trainer.bench_trial_report`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainer.bench_args import add_trial_flags

DEFAULT_STEPS = {"cuda": 40, "cpu": 4}


def build_parser() -> argparse.ArgumentParser:
    """The parser of this command (the same flags ``bench --shapes trial`` would take)."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer.bench_trial_cli",
        description="Time the seed's trials (SST-2, MRPC, CIFAR-10) through the real training path, against "
        "Hugging Face Trainer and torchvision's reference recipe, and with several trials per GPU.",
    )
    add_trial_flags(parser)
    return parser


def _error_row(kind: str, task: str, batch: int, exc: BaseException, **extra: Any) -> dict[str, Any]:
    from trainer.bench import is_oom

    first = str(exc).splitlines()[0] if str(exc) else ""
    label = "OOM" if is_oom(exc) else type(exc).__name__
    return {"kind": kind, "task": task, "batch_size": batch, "error": f"{label}: {first}"[:300], **extra}


def _attempt(
    label: str, work: Callable[[], dict[str, Any]], fallback: Callable[[BaseException], dict[str, Any]]
) -> dict[str, Any]:
    print(f"bench-trial: {label} ...", file=sys.stderr, flush=True)
    try:
        row = work()
    except Exception as exc:  # one failed configuration must not lose the others
        traceback.print_exc(file=sys.stderr)
        row = fallback(exc)
    finally:
        from trainer.bench import _free_memory
        from trainer.parallel import pick_device

        _free_memory(pick_device("auto"))
    status = row.get("error") or f"{row.get('step_ms', 0):.1f} ms/step"
    print(f"bench-trial: {label}: {status}", file=sys.stderr, flush=True)
    return row


def measure_all(args: argparse.Namespace, work_dir: Path, on_row: Callable[[dict[str, Any]], None]) -> None:
    """Measure the trial rows, then the references, then the sharing sweep (see the module doc)."""
    import torch

    from trainer.parallel import pick_device

    device_type = pick_device(args.device).type
    threads = torch.get_num_threads()
    if device_type == "cpu" and args.preset == "tiny" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # as train does for tiny CPU trials: threads only add overhead there
    try:
        _measure(args, work_dir, on_row, device_type)
    finally:
        torch.set_num_threads(threads)


def _measure(
    args: argparse.Namespace, work_dir: Path, on_row: Callable[[dict[str, Any]], None], device_type: str
) -> None:
    from trainer.bench_reference_hf import measure_hf
    from trainer.bench_reference_tv import measure_torchvision
    from trainer.bench_sharing import sweep
    from trainer.bench_trial import SEED_TRIALS, measure_trial
    from trainer.tasks import get_task

    steps = args.steps or DEFAULT_STEPS[device_type]
    common = {"preset": args.preset, "device_choice": args.device, "steps": steps, "work_dir": work_dir}
    plan = [(t, b) for t in args.tasks for b in (args.batch_sizes or SEED_TRIALS[t].batch_sizes)]
    for task, batch in plan:
        for mode in [m for m in args.modes if m != "none"]:
            compiled = mode == "compiled"
            on_row(
                _attempt(
                    f"{task} batch {batch} {mode}",
                    lambda t=task, b=batch, c=compiled: measure_trial(
                        t, b, compiled=c, count_flops=not args.no_flops, **common
                    ),
                    lambda exc, t=task, b=batch, m=mode: _error_row(
                        "trial", t, b, exc, mode=m, preset=args.preset
                    ),
                )
            )
    for task, batch in plan:
        family = get_task(task).family
        wanted = "hf" if family == "text" else "torchvision"
        if wanted not in args.references:
            continue
        measure = measure_hf if family == "text" else measure_torchvision
        name = "hf-trainer" if family == "text" else "torchvision-recipe"
        on_row(
            _attempt(
                f"{task} batch {batch} reference {name}",
                lambda t=task, b=batch, f=measure: f(t, b, **common),
                lambda exc, t=task, b=batch, n=name: _error_row("reference", t, b, exc, reference=n),
            )
        )
    if args.sharing:
        shared = {
            "task": args.sharing_task,
            "batch": args.sharing_batch,
            "preset": args.preset,
            "device": args.device,
            "steps": steps,
            "work_dir": str(work_dir),
        }
        sweep(args.sharing, shared, device_type, args.sharing_timeout, on_row=on_row)


def run_trial_bench(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed flags: measure, print the tables, write JSON and Markdown."""
    from trainer.bench_report import write_section
    from trainer.bench_trial_report import SECTION, render

    rows: list[dict[str, Any]] = []
    for include in args.include or []:
        rows.extend(json.loads(Path(include).read_text()))

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")

    if not args.report_only:
        if args.work_dir:
            Path(args.work_dir).mkdir(parents=True, exist_ok=True)
            measure_all(args, Path(args.work_dir), keep)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-trial-") as folder:
                measure_all(args, Path(folder), keep)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    command = args.command_label or getattr(args, "command_line", "python -m trainer.bench_trial_cli")
    markdown = render(rows, command)
    if not args.quiet:
        print(markdown)
    if args.write:
        write_section(args.write, SECTION, markdown)
    return 0 if all(not r.get("error") for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run; exit code 1 when some configuration failed (its row says why)."""
    from trainer.quiet import quiet_libraries

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command_line = "python -m trainer.bench_trial_cli " + shlex.join(argv)
    quiet_libraries()
    return run_trial_bench(args)


if __name__ == "__main__":
    sys.exit(main())
