"""Command line: ``python -m trainer {train,warm-cache,bench,bench-trial}`` (the flags: ``trainer.cli_parser``)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

import trainer.process_clock  # noqa: F401  (first: starts the gpu_seconds clock as the CLI loads)
from trainer.cli_parser import DEFAULT_CACHE_DIR, DEFAULT_DB_MANAGER, build_parser
from trainer.distributed import rank_from_env

__all__ = ["DEFAULT_CACHE_DIR", "DEFAULT_DB_MANAGER", "build_parser", "main", "trial_shapes_alias"]


def trial_shapes_alias(argv: list[str]) -> list[str]:
    """``bench --shapes trial ...`` is ``bench-trial ...``: the trial-shaped benchmark has flags of its own
    (tasks, preset, references, sharing), so ``trial`` cannot be combined with the other shapes."""
    if argv[:1] != ["bench"]:
        return argv
    for i, arg in enumerate(argv):
        if arg == "--shapes" and argv[i + 1 : i + 2] == ["trial"]:
            return ["bench-trial", *argv[1:i], *argv[i + 2 :]]
        if arg == "--shapes=trial":
            return ["bench-trial", *argv[1:i], *argv[i + 1 :]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the process exit code.

    A ``train`` run also appends its output, exit code and any traceback to ``trainer.log`` in its
    checkpoint folder (trainer/trial_log.py), from before the arguments are parsed.
    """
    from trainer.trial_log import TrialLog

    argv = list(sys.argv[1:] if argv is None else argv)
    trial_log = TrialLog.for_command(argv, rank_from_env())
    if trial_log is None:
        return _run(argv)
    with trial_log:
        code = _run(argv)
        trial_log.finish(code)
        return code


def _run(argv: list[str]) -> int:
    argv = trial_shapes_alias(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "python -m trainer " + shlex.join(argv)
    from trainer.errors import TrainerError
    from trainer.quiet import quiet_libraries

    quiet_libraries()
    try:
        if args.command == "train":
            from trainer.engine import run_training

            return run_training(args)
        if args.command == "warm-cache":
            from trainer.warm_cache import warm_cache

            warm_cache(args.tasks, args.cache_dir, text_model=args.text_model)
            return 0
        if args.command == "bench-trial":
            from trainer.bench_trial_cli import run_trial_bench

            return run_trial_bench(args)
        from trainer.bench import run_bench

        return run_bench(args)
    except TrainerError as exc:
        rank = rank_from_env()
        if rank == 0:
            print(f"trainer: error: {exc}", file=sys.stderr, flush=True)
        elif not (exc.collective or exc.peer_report):  # rank 0 reports shared errors; others their own
            print(f"trainer[rank {rank}]: error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
