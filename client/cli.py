"""``python -m client``: submit, status, compare and surrogate-report on Katib experiments (cluster or
``--local``)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console, RenderableType
from rich.table import Table

from client.errors import ClientError, UsageError
from client.experiments import DEFAULT_NAMESPACE, load_experiments, split_filter
from client.model import Experiment

DEFAULT_MANIFESTS = "manifests"
DEFAULT_STORE = "runs/local.sqlite"
DEFAULT_WORKDIR = "runs/local"
DEFAULT_CACHE = "runs/cache"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        command = " ".join(self.prog.split()[1:])
        raise UsageError(f"{message} (see `python -m client {command + ' ' if command else ''}--help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction between 0 and 1 (exclusive), got {text!r}"
        ) from None
    if not math.isfinite(value) or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (exclusive), got {text!r}")
    return value


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--task", action="append", metavar="TASK", help="only this task (repeat or comma-separate)"
    )
    p.add_argument(
        "--algorithm", action="append", metavar="ALGO", help="only this algorithm (repeat or comma-separate)"
    )


def _add_cluster(p: argparse.ArgumentParser, namespace_help: str) -> None:
    p.add_argument("--namespace", "-n", help=namespace_help)
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config; in-cluster)"
    )


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", action="store_true", help="use the local SQLite store instead of the cluster")
    p.add_argument("--store", default=DEFAULT_STORE, help=f"local store (default {DEFAULT_STORE})")
    p.add_argument("--experiment", action="append", metavar="NAME", help="only this experiment (repeatable)")
    p.add_argument("--watch", action="store_true", help="refresh until the experiments finish")
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=10.0,
        help="seconds between --watch refreshes (default 10)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render docs/client.md's flag list)."""
    parser = _Parser(
        prog="client",
        description="Submit, watch and compare Katib experiments (grid vs random vs surrogate search).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    submit = sub.add_parser("submit", help="create the Experiments from manifests/ on the cluster")
    submit.add_argument("--manifests", default=DEFAULT_MANIFESTS, help="folder (or file) of Experiment YAML")
    _add_filters(submit)
    _add_cluster(submit, "namespace to create them in (default: each manifest's own namespace)")
    submit.add_argument("--dry-run", action="store_true", help="print what would be created; touch nothing")

    status = sub.add_parser("status", help="table of experiments: trials by condition, best, elapsed, cost")
    _add_filters(status)
    _add_cluster(status, f"namespace to read (default {DEFAULT_NAMESPACE})")
    _add_source(status)

    compare = sub.add_parser(
        "compare", help="compare algorithms per task: best, cost, cost-to-target, speed-up"
    )
    compare.add_argument("--manifests", default=DEFAULT_MANIFESTS, help="Experiment YAML (used with --local)")
    _add_filters(compare)
    _add_cluster(compare, f"namespace to read (default {DEFAULT_NAMESPACE})")
    _add_source(compare)
    compare.add_argument("--output", "-o", metavar="DIR", help="write comparison.md/.csv/.json/.png here")
    target = compare.add_mutually_exclusive_group()
    target.add_argument(
        "--target", type=_finite_float, help="objective value to reach (default: the grid's best per task)"
    )
    target.add_argument(
        "--tolerance", type=_non_negative_float, help="target = the best any algorithm found, minus this"
    )
    compare.add_argument(
        "--prometheus", metavar="URL", help="cross-check GPU-time with DCGM metrics (cluster)"
    )
    local = compare.add_argument_group("local runs (--local)")
    local.add_argument("--no-run", action="store_true", help="report what the store holds; run nothing")
    local.add_argument(
        "--parallel", type=_positive_int, help="cap on parallel trials (default min(spec, CPUs))"
    )
    local.add_argument("--max-trials", type=_positive_int, help="override maxTrialCount of every experiment")
    local.add_argument(
        "--preset", default="tiny", help="trainer preset appended to trial commands (default tiny)"
    )
    local.add_argument("--cache-dir", default=DEFAULT_CACHE, help=f"trainer cache (default {DEFAULT_CACHE})")
    local.add_argument(
        "--workdir", default=DEFAULT_WORKDIR, help=f"trial output folders (default {DEFAULT_WORKDIR})"
    )
    local.add_argument(
        "--fresh", action="store_true", help="forget stored results of the selected experiments"
    )
    local.add_argument(
        "--trial-timeout", type=_positive_float, metavar="S", help="fail trials running longer"
    )
    local.add_argument(
        "--launcher",
        choices=("warm", "subprocess"),
        default="warm",
        help="warm (default): fork `python -m MODULE` trials from a process that already imported the "
        "heavy modules; subprocess: a fresh interpreter per trial",
    )
    local.add_argument(
        "--preload",
        action="append",
        metavar="MODULES",
        help="modules the warm launcher imports (comma-separated, repeatable; default: the trial "
        "package's PRELOAD_MODULES, else the modules its source imports)",
    )

    report = sub.add_parser(
        "surrogate-report",
        help="fit the surrogate on an experiment's first trials, predict the rest: Spearman, top-k, next picks",
    )
    report.add_argument("--experiment", required=True, metavar="NAME", help="the experiment to evaluate")
    _add_cluster(report, f"namespace of the experiment (default {DEFAULT_NAMESPACE})")
    report.add_argument(
        "--local", action="store_true", help="read the local SQLite store instead of the cluster"
    )
    report.add_argument("--store", default=DEFAULT_STORE, help=f"local store (default {DEFAULT_STORE})")
    report.add_argument(
        "--algorithm",
        choices=("surrogate-gp", "surrogate-rf"),
        help="the model (default: the experiment's own algorithm if it is a surrogate, else surrogate-gp)",
    )
    split = report.add_mutually_exclusive_group()
    split.add_argument(
        "--train-fraction",
        type=_fraction,
        metavar="F",
        help="fraction of the finished trials (in start order) to fit on (default 0.5)",
    )
    split.add_argument(
        "--train-trials", type=_positive_int, metavar="N", help="fit on the first N finished trials"
    )
    report.add_argument(
        "--top-k",
        type=_positive_int,
        default=3,
        metavar="K",
        help="k of the top-k hit rate and next picks (default 3)",
    )
    report.add_argument("--out", metavar="DIR", help="write <experiment>-surrogate-report.md/.json/.png here")
    from client.rehearsal.command import add_parser as add_rehearse

    add_rehearse(sub)
    return parser


def _preload_list(values: Sequence[str] | None) -> tuple[str, ...]:
    """--preload values split on commas, each checked to be a module name (``a.b`` or ``a.b:Name``)."""
    from client.module_preload import check_entries

    entries = [e.strip() for v in values or () for e in v.split(",") if e.strip()]
    try:
        return tuple(check_entries(entries, "--preload"))
    except ValueError as err:
        raise UsageError(str(err)) from None


# --- helpers --------------------------------------------------------------------------------------------
def _check_flags(args: argparse.Namespace) -> None:
    if getattr(args, "local", False) and (args.context or args.kubeconfig or args.namespace):
        raise UsageError(
            "--context/--kubeconfig/--namespace select a cluster; they cannot be used with --local"
        )
    if args.command == "compare":
        local_only = [
            flag
            for flag, on in (
                ("--no-run", args.no_run),
                ("--parallel", args.parallel is not None),
                ("--max-trials", args.max_trials is not None),
                ("--fresh", args.fresh),
                ("--trial-timeout", args.trial_timeout is not None),
                ("--launcher", args.launcher != "warm"),
                ("--preload", bool(args.preload)),
            )
            if on
        ]
        if local_only and not args.local:
            raise UsageError(f"{', '.join(local_only)} only apply to local runs; add --local")
        if args.prometheus and args.local:
            raise UsageError("--prometheus cross-checks cluster GPU metrics; it cannot be used with --local")
        if args.watch and args.local and not args.no_run:
            raise UsageError("--watch with --local needs --no-run (a local run shows its own progress)")
        if args.no_run and args.fresh:
            raise UsageError("--fresh deletes stored results; it makes no sense with --no-run")
        if args.preload and args.launcher != "warm":
            raise UsageError(
                "--preload configures the warm launcher; it cannot be used with --launcher subprocess"
            )
        _preload_list(args.preload)
        if args.output:
            from client.report import check_output_dir

            check_output_dir(args.output)  # before any run or API call, not after the table


def _local_experiments(args: argparse.Namespace) -> Callable[[], list[Experiment]]:
    from client.local_store import LocalStore
    from client.trial_logs import attach_local_logs

    path = Path(args.store)
    if not path.exists():
        raise ClientError(f"local store {path} does not exist; run `python -m client compare --local` first")
    store = LocalStore(path)

    def load() -> list[Experiment]:
        experiments = store.load()
        if args.experiment:
            missing = sorted(set(args.experiment) - {e.name for e in experiments})
            if missing:
                raise ClientError(f"experiment(s) {', '.join(missing)} not found in {path}")
            experiments = [e for e in experiments if e.name in args.experiment]
        tasks, algos = split_filter(args.task), split_filter(args.algorithm)
        if tasks or algos:
            known_t = {e.task for e in experiments}
            known_a = {e.algorithm for e in experiments}
            for t in tasks:
                if t not in known_t:
                    raise ClientError(
                        f"no experiment of task {t!r} in {path}; stored: {', '.join(sorted(known_t))}"
                    )
            for a in algos:
                if a not in known_a:
                    raise ClientError(
                        f"no experiment of algorithm {a!r} in {path}; stored: {', '.join(sorted(known_a))}"
                    )
            experiments = [
                e
                for e in experiments
                if (not tasks or e.task in tasks) and (not algos or e.algorithm in algos)
            ]
        attach_local_logs(
            experiments,
            {(e.name, s.trial.name): s.trial_dir for e in experiments for s in store.trials(e.name)},
        )
        return experiments

    return load


def _cluster(args: argparse.Namespace) -> Any:
    from client.katib_source import KatibSource

    return KatibSource.connect(context=args.context, kubeconfig=args.kubeconfig)


def _cluster_experiments(args: argparse.Namespace, source: Any) -> Callable[[], list[Experiment]]:
    namespace = args.namespace or DEFAULT_NAMESPACE

    def load() -> list[Experiment]:
        return source.load(
            namespace, split_filter(args.task), split_filter(args.algorithm), names=args.experiment or ()
        )

    return load


def _watch(
    console: Console,
    load: Callable[[], list[Experiment]],
    render: Callable[[list[Experiment]], RenderableType],
    wait: Callable[[float], None],
    interval: float,
    first: list[Experiment] | None = None,
) -> list[Experiment]:
    """Re-read and re-render until every experiment has finished."""
    from rich.live import Live

    experiments = first if first is not None else load()
    if console.is_terminal:
        with Live(render(experiments), console=console, auto_refresh=False) as live:
            while experiments and not all(e.is_finished for e in experiments):
                wait(interval)
                experiments = load()
                live.update(render(experiments), refresh=True)
        return experiments
    console.print(render(experiments))
    while experiments and not all(e.is_finished for e in experiments):
        wait(interval)
        experiments = load()
        console.print(render(experiments))
    return experiments


# --- commands --------------------------------------------------------------------------------------------
def cmd_submit(args: argparse.Namespace, console: Console) -> int:
    """Create the selected Experiments through the Kubernetes API."""
    definitions = load_experiments(args.manifests, args.task, args.algorithm)
    if args.dry_run:
        for d in definitions:
            console.print(f"would create experiment {args.namespace or d.namespace}/{d.name} ({d.algorithm})")
        return 0
    source = _cluster(args)
    source.check_katib()
    table = Table(title="Submitted experiments", header_style="bold")
    for column in ("Namespace", "Experiment", "Task", "Algorithm", "Result"):
        table.add_column(column)
    for d in definitions:
        result = source.create_experiment(d, args.namespace)
        table.add_row(args.namespace or d.namespace, d.name, d.task, d.algorithm, result)
    console.print(table)
    existing = sum(1 for row in table.columns[-1].cells if row == "exists")
    if existing:
        console.print(
            f"{existing} experiment(s) already existed and were left unchanged (delete them to start over)."
        )
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    """Print (or --watch) the experiments table, then where the failed trials' logs are."""
    from client.report import status_table

    if args.local:
        load = _local_experiments(args)
        wait: Callable[[float], None] = time.sleep
    else:
        source = _cluster(args)
        load = _cluster_experiments(args, source)
        namespace = args.namespace or DEFAULT_NAMESPACE

        def wait(seconds: float) -> None:
            source.wait_for_change(namespace, seconds, getattr(source, "last_resource_version", ""))

    experiments = load()
    if not experiments:
        raise ClientError(
            "no experiments found"
            + ("" if args.local else f" in namespace {args.namespace or DEFAULT_NAMESPACE}")
            + "; submit them (`python -m client submit`) or check the filters"
        )
    if args.watch:
        experiments = _watch(console, load, status_table, wait, args.interval, first=experiments)
    else:
        console.print(status_table(experiments))
    print_failed_trial_logs(console, experiments)
    return 0


def print_failed_trial_logs(console: Console, experiments: list[Experiment]) -> None:
    """Where each failed trial's output can be read, one whole line each (never wrapped or cropped,
    so that a command can be copied)."""
    from client.report import failed_trial_logs

    for line in failed_trial_logs(experiments):
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def _run_local(args: argparse.Namespace, console: Console) -> list[str]:
    """Run the selected manifests locally with a progress bar; returns the experiment names."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from client.local_runner import LocalRunner, RunOptions
    from client.local_store import LocalStore

    definitions = load_experiments(args.manifests, args.task, args.algorithm)
    if args.experiment:
        missing = sorted(set(args.experiment) - {d.name for d in definitions})
        if missing:
            raise ClientError(f"experiment(s) {', '.join(missing)} not found in {args.manifests}")
        definitions = [d for d in definitions if d.name in args.experiment]
    options = RunOptions(
        workdir=Path(args.workdir),
        cache_dir=Path(args.cache_dir),
        preset=args.preset,
        parallel=args.parallel,
        max_trials=args.max_trials,
        fresh=args.fresh,
        trial_timeout=args.trial_timeout,
        launcher=args.launcher,
        preload=_preload_list(args.preload),
    )
    store = LocalStore(args.store)
    if not console.is_terminal:  # CI logs, pipes: plain lines instead of a live bar that never prints
        try:
            LocalRunner(store, options, on_progress=PlainProgress(console), log=console.print).run(
                definitions
            )
        finally:
            store.close()
        return [d.name for d in definitions]
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            ids: dict[str, Any] = {}

            def on_progress(name: str, done: int, total: int) -> None:
                if name not in ids:
                    ids[name] = progress.add_task(name, total=total)
                progress.update(ids[name], completed=done, total=total)

            runner = LocalRunner(
                store, options, on_progress=on_progress, log=lambda m: progress.console.print(m)
            )
            runner.run(definitions)
    finally:
        store.close()
    if args.max_trials is not None:
        console.print(
            f"Note: --max-trials {args.max_trials} capped every experiment's maxTrialCount in this run."
        )
    return [d.name for d in definitions]


class PlainProgress:
    """Progress as plain lines, for output that is not a terminal: one line each time an experiment's
    count of finished trials changes (so one per finished trial), with the time since the run began."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self.started = clock()
        self.last: dict[str, int] = {}

    def __call__(self, name: str, done: int, total: int) -> None:
        """The runner's ``on_progress`` callback."""
        if self.last.get(name) == done:
            return
        self.last[name] = done
        elapsed = int(self.clock() - self.started)
        self.console.print(
            f"[{elapsed // 60:d}:{elapsed % 60:02d}] {name}: {done}/{total} trials finished",
            markup=False,
            highlight=False,
        )


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Run (--local) or read the experiments, print the comparison, write the files."""
    from client.aggregate import compare
    from client.report import comparison_table, write_reports

    names: list[str] | None = None
    source: Any = None
    if args.local:
        if not args.no_run:
            names = _run_local(args, console)
        base = _local_experiments(args)

        def load() -> list[Experiment]:
            experiments = base()
            return experiments if names is None else [e for e in experiments if e.name in names]

        wait: Callable[[float], None] = time.sleep
    else:
        source = _cluster(args)
        load = _cluster_experiments(args, source)
        namespace = args.namespace or DEFAULT_NAMESPACE

        def wait(seconds: float) -> None:
            source.wait_for_change(namespace, seconds, getattr(source, "last_resource_version", ""))

    def render(experiments: list[Experiment]) -> RenderableType:
        return comparison_table(compare(experiments, target=args.target, tolerance=args.tolerance))

    if args.watch:
        experiments = _watch(console, load, render, wait, args.interval)
        comparison = compare(experiments, target=args.target, tolerance=args.tolerance)
    else:
        experiments = load()
        comparison = compare(experiments, target=args.target, tolerance=args.tolerance)
        if args.prometheus:
            _cross_check(args.prometheus, experiments, comparison, console)
        console.print(comparison_table(comparison))
    if args.watch and args.prometheus:
        _cross_check(args.prometheus, experiments, comparison, console)
    print_failed_trial_logs(console, experiments)
    if args.output:
        paths = write_reports(comparison, args.output)
        console.print("Wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_surrogate_report(args: argparse.Namespace, console: Console) -> int:
    """Evaluate the surrogate on one experiment's trials; print the report, write the files."""
    from client.surrogate_render import report_renderable, write_report
    from client.surrogate_report import build_report, load_cluster, load_local

    if args.local:
        definition, experiment = load_local(args.store, args.experiment)
    else:
        definition, experiment = load_cluster(
            _cluster(args), args.namespace or DEFAULT_NAMESPACE, args.experiment
        )
    report = build_report(
        definition,
        experiment,
        algorithm=args.algorithm,
        train_fraction=args.train_fraction,
        train_trials=args.train_trials,
        top_k=args.top_k,
    )
    console.print(report_renderable(report))
    if args.out:
        paths = write_report(report, args.out)
        console.print("Wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cross_check(url: str, experiments: list[Experiment], comparison: Any, console: Console) -> None:
    """Add DCGM GPU-hours per experiment to the comparison notes; warn (do not fail) if unreachable."""
    from client.prometheus import dcgm_usage

    rows = {r.name: r for r in comparison.rows}
    for experiment in experiments:
        try:
            result = dcgm_usage(url, experiment)
        except ClientError as err:
            console.print(f"warning: {err}; GPU-time cross-check skipped", style="yellow")
            comparison.notes.append(f"DCGM cross-check skipped: {err}")
            return
        row = rows.get(experiment.name)
        ours = row.cost_hours if row else 0.0
        if not result.samples:
            comparison.notes.append(
                f"DCGM: no {experiment.name} samples of DCGM_FI_DEV_GPU_UTIL (is dcgm-exporter installed "
                "with pod labels?)"
            )
            continue
        ratio = f", {result.gpu_hours / ours:.2f}x the trials' figure" if ours > 0 else ""
        util = (
            ""
            if result.mean_utilization is None
            else f", mean GPU utilisation {result.mean_utilization:.0f}%"
        )
        comparison.notes.append(f"DCGM: {experiment.name} used {result.gpu_hours:.4f} GPU-hours{ratio}{util}")


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error, 2 bad flags, 130 interrupted)."""
    if console is None:
        wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
        console = Console(width=200) if wide else Console()
    err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        args = build_parser().parse_args(argv)
        _check_flags(args)
        handler = {
            "submit": cmd_submit,
            "status": cmd_status,
            "compare": cmd_compare,
            "surrogate-report": cmd_surrogate_report,
            "rehearse": cmd_rehearse,
        }[args.command]
        return handler(args, console)
    except ClientError as err:
        err_console.print(f"error: {err}", markup=False)
        return err.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume (finished trials are kept)")
        return 130


def cmd_rehearse(args: argparse.Namespace, console: Console) -> int:
    """``rehearse``: see :mod:`client.rehearsal.runner`."""
    from client.rehearsal.command import cmd_rehearse as rehearse

    return rehearse(args, console)


def run() -> None:
    """Console-script wrapper."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
