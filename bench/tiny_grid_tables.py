"""Katib-shaped grids from real training runs: every config of each seed grid, trained in the tiny preset.

``python bench/tiny_grid_tables.py [--tasks sst2,mrpc,cifar10] [--workers 2]`` (or ``make tiny-tables``)
reads each task's search space from ``manifests/30-experiment-<task>-grid.yaml``, trains every config
of the full grid with ``python -m trainer train --preset tiny`` (in worker processes, one CPU thread
each), and writes ``bench/tables/tiny_<task>.csv``: one row per config with the parameters (the
Experiment's names and values), the Katib observation of ``accuracy`` and of ``f1`` / ``top5_accuracy``
(the Experiment's metricStrategies: the best epoch) and ``train_seconds``. It reruns the best config
once to check that the same arguments give the same metrics, prints a summary per task and writes it
to the ``tiny-grid`` section of docs/trainer.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import product
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "trainer_image")]

from trainer.tasks import all_tasks  # noqa: E402

from bench.report import write_section  # noqa: E402

# The trainer's registered tasks, and the quality metric each table records beside accuracy.
TASKS = tuple(spec.name for spec in all_tasks())
QUALITY = {spec.name: spec.quality_metrics[0] for spec in all_tasks()}
SECTION = "tiny-grid"
NEAR_BEST = 0.005  # "near the best": accuracy within 0.5 percentage points of the grid's best
MAX_WORKERS = 2


@dataclass(frozen=True)
class Grid:
    """A task's seed search space (parameter names and values, in the Experiment's order)."""

    task: str
    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]
    strategies: dict[str, str]

    def configs(self) -> list[dict[str, str]]:
        """Every assignment of the grid (Cartesian product, first parameter slowest)."""
        return [dict(zip(self.names, combo, strict=True)) for combo in product(*self.values)]


def load_grid(task: str, manifests: Path = REPO / "manifests") -> Grid:
    """The search space and metric strategies of ``<manifests>/30-experiment-<task>-grid.yaml``."""
    import yaml

    path = manifests / f"30-experiment-{task}-grid.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the grid Experiment of {task} defines its search space")
    spec = yaml.safe_load(path.read_text())["spec"]
    names, values = [], []
    for parameter in spec["parameters"]:
        feasible = parameter["feasibleSpace"]
        if "list" not in feasible:
            raise ValueError(f"{path}: parameter {parameter['name']} has no value list; a grid needs one")
        names.append(parameter["name"])
        values.append(tuple(str(v) for v in feasible["list"]))
    strategies = {s["name"]: s["value"] for s in spec["objective"].get("metricStrategies", [])}
    return Grid(task, tuple(names), tuple(values), strategies)


def trial_args(task: str, config: dict[str, str], seed: int, folder: Path) -> list[str]:
    """``python -m trainer`` arguments for one tiny trial (parameter ``a_b`` -> flag ``--a-b``)."""
    args = ["train", "--task", task, "--preset", "tiny", "--seed", str(seed), "--device", "cpu"]
    for name, value in config.items():
        args += [f"--{name.replace('_', '-')}", value]
    return [
        *args,
        "--output-dir",
        str(folder / "out"),
        "--checkpoint-dir",
        str(folder / "ckpt"),
        "--cache-dir",
        str(folder / "cache"),
    ]


def run_trial(task: str, config: dict[str, str], seed: int, strategies: dict[str, str]) -> dict[str, Any]:
    """Train one config in this process; its Katib observation plus ``train_seconds`` and wall time."""
    from trainer.cli import main
    from trainer.katib_metrics import OBJECTIVE_METRIC, observation, parse_metric_lines

    names = [OBJECTIVE_METRIC, QUALITY[task], "train_seconds"]
    wanted = {name: strategies.get(name, "max") for name in names}
    wanted["train_seconds"] = "latest"
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="tiny-grid-") as folder,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(trial_args(task, config, seed, Path(folder)))
        except SystemExit as exc:
            code = int(exc.code or 0)
    wall = time.monotonic() - began
    if code != 0:
        tail = err.getvalue().strip().splitlines()[-3:]
        raise RuntimeError(f"{task} {config}: the trial exited {code}: {' | '.join(tail)}")
    observed = observation(parse_metric_lines(out.getvalue(), names), wanted)
    return {**config, **{name: float(observed[name]) for name in names}, "wall_seconds": wall}


def _worker_init() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_grid(grid: Grid, seed: int, workers: int) -> list[dict[str, Any]]:
    """All of ``grid``'s configs, trained ``workers`` at a time (rows in grid order)."""
    configs = grid.configs()
    if workers == 1:
        return [run_trial(grid.task, c, seed, grid.strategies) for c in configs]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
        futures = [pool.submit(run_trial, grid.task, c, seed, grid.strategies) for c in configs]
        return [f.result() for f in futures]


def write_table(rows: Sequence[dict[str, Any]], grid: Grid, path: Path, seed: int = 42) -> None:
    """``path`` as CSV: a ``#`` comment with the command, then parameters, accuracy, f1 / top5, train_seconds."""
    columns = [*grid.names, "accuracy", QUALITY[grid.task], "train_seconds"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        handle.write(
            f"# python bench/tiny_grid_tables.py --tasks {grid.task}  (python -m trainer train --preset tiny "
            f"--seed {seed}; accuracy/{QUALITY[grid.task]}: Katib observation, best epoch)\n"
        )
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [row[c] if c in grid.names else f"{row[c]:.4f}" if c != "train_seconds" else f"{row[c]:.3f}"
                 for c in columns]
            )  # fmt: skip


def read_table(path: Path, grid: Grid) -> list[dict[str, Any]]:
    """Rows of a table written by ``write_table`` (metrics as floats)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run python bench/tiny_grid_tables.py first")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    expected = [*grid.names, "accuracy", QUALITY[grid.task], "train_seconds"]
    if not rows or list(rows[0]) != expected:
        raise ValueError(f"{path}: expected columns {expected}, found {list(rows[0]) if rows else 'no rows'}")
    return [{k: v if k in grid.names else float(v) for k, v in row.items()} for row in rows]


def summarise(rows: Sequence[dict[str, Any]], grid: Grid) -> dict[str, Any]:
    """min/median/max accuracy, the best config, how many configs are near it or tie it, times."""
    accuracies = [r["accuracy"] for r in rows]
    best = max(rows, key=lambda r: r["accuracy"])
    return {
        "task": grid.task,
        "configs": len(rows),
        "min": min(accuracies),
        "median": statistics.median(accuracies),
        "max": best["accuracy"],
        "best": {n: best[n] for n in grid.names},
        "near_best": sum(a >= best["accuracy"] - NEAR_BEST for a in accuracies),
        "ties_at_max": sum(a == best["accuracy"] for a in accuracies),
        "distinct": len(set(accuracies)),
        "train_seconds_median": statistics.median(r["train_seconds"] for r in rows),
        "train_seconds_max": max(r["train_seconds"] for r in rows),
        "wall_seconds_max": max((r.get("wall_seconds", 0.0) for r in rows), default=0.0),
    }


def main_effects(rows: Sequence[dict[str, Any]], grid: Grid) -> dict[str, dict[str, float]]:
    """Mean accuracy per value of each parameter (how much each one matters)."""
    return {
        name: {
            value: statistics.fmean(r["accuracy"] for r in rows if r[name] == value)
            for value in grid.values[i]
        }
        for i, name in enumerate(grid.names)
    }


def render(summaries: Sequence[dict[str, Any]], effects: dict[str, dict], command: str) -> str:
    """The docs section: one summary row per task plus the mean accuracy per parameter value."""
    lines = [
        f"Produced by `{command}` (tables in `bench/tables/tiny_<task>.csv`). Accuracy is the Katib "
        "observation (best epoch) on the tiny validation/test split; *near best*: configs within 0.5 "
        "points of the best; *ties*: configs with exactly the best accuracy; *train s*: the trials' "
        "`train_seconds` (wall clock, one thread each, two trials at a time: on a busy machine this "
        "includes waiting for a core).",
        "",
        "| task | configs | min | median | max | best config | near best | ties | distinct | "
        "train s (median / max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        best = ", ".join(f"{k}={v}" for k, v in s["best"].items())
        lines.append(
            f"| {s['task']} | {s['configs']} | {s['min']:.4f} | {s['median']:.4f} | {s['max']:.4f} | {best} | "
            f"{s['near_best']} | {s['ties_at_max']} | {s['distinct']} | "
            f"{s['train_seconds_median']:.2f} / {s['train_seconds_max']:.2f} |"
        )
    lines += ["", "Mean accuracy per parameter value:", ""]
    for task, per_name in effects.items():
        parts = [
            f"{name} " + " / ".join(f"{v}: {a:.3f}" for v, a in by_value.items())
            for name, by_value in per_name.items()
        ]
        lines.append(f"- {task}: " + "; ".join(parts))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tasks", default=",".join(TASKS), help=f"comma-separated subset of {','.join(TASKS)}"
    )
    parser.add_argument("--workers", type=int, default=MAX_WORKERS, help="parallel trials, 1 or 2")
    parser.add_argument("--seed", type=int, default=42, help="the trainer's --seed for every trial")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "tables", help="where the CSVs go")
    parser.add_argument(
        "--docs",
        type=Path,
        default=REPO / "docs" / "trainer.md",
        help="file whose tiny-grid section is written",
    )
    parser.add_argument("--no-docs", action="store_true", help="print the summary only")
    parser.add_argument(
        "--summarise-only", action="store_true", help="summarise the existing tables, train nothing"
    )
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        parser.error(f"--tasks: unknown or empty {unknown or args.tasks!r}; allowed: {', '.join(TASKS)}")
    if not 1 <= args.workers <= MAX_WORKERS:
        parser.error(f"--workers must be 1 or 2 (this machine is shared), got {args.workers}")
    args.tasks = tasks
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grids, write the tables and the summary; 1 if a rerun gave different metrics."""
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per trial, inherited by the workers
    command = "python bench/tiny_grid_tables.py" + (
        f" --tasks {','.join(args.tasks)}" if args.tasks != list(TASKS) else ""
    )
    summaries, effects, status = [], {}, 0
    for task in args.tasks:
        grid = load_grid(task)
        began = time.monotonic()
        path = args.out_dir / f"tiny_{task}.csv"
        if args.summarise_only:
            rows = read_table(path, grid)
        else:
            rows = run_grid(grid, args.seed, args.workers)
            write_table(rows, grid, path, args.seed)
        summary = summarise(rows, grid)
        if args.summarise_only:
            same = None
        else:
            again = run_trial(task, summary["best"], args.seed, grid.strategies)
            best_row = next(r for r in rows if all(r[n] == summary["best"][n] for n in grid.names))
            same = all(again[m] == best_row[m] for m in ("accuracy", QUALITY[task]))
            status |= 0 if same else 1
        summaries.append(summary)
        effects[task] = main_effects(rows, grid)
        print(
            f"{task}: {len(rows)} configs in {time.monotonic() - began:.0f} s -> {path}\n"
            f"  accuracy min {summary['min']:.4f} median {summary['median']:.4f} max {summary['max']:.4f}; "
            f"best {summary['best']}\n"
            f"  {summary['near_best']} configs within {NEAR_BEST} of the best, {summary['ties_at_max']} at "
            f"exactly the best, {summary['distinct']} distinct accuracies\n"
            f"  train_seconds median {summary['train_seconds_median']:.2f} max "
            f"{summary['train_seconds_max']:.2f}; wall per trial max {summary['wall_seconds_max']:.2f} s\n"
            f"  rerun of the best config: {'not run' if same is None else 'same metrics' if same else 'DIFFERENT'}\n"
            "  mean accuracy per value: "
            + "; ".join(
                f"{n} " + " ".join(f"{v}:{a:.3f}" for v, a in by.items()) for n, by in effects[task].items()
            ),
            flush=True,
        )
    markdown = render(summaries, effects, command)
    if not args.no_docs and args.tasks == list(TASKS):
        write_section(args.docs, SECTION, markdown)
        print(f"wrote the {SECTION} section of {args.docs}")
    return status


if __name__ == "__main__":
    sys.exit(main())
