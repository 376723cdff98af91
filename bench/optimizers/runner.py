"""Run a suite: every (task, optimizer, seed, mode), appended to CSVs as it goes, then the outcomes.

Files in the output folder (``bench/results/<suite>`` by default):

* ``trials.csv``: one row per evaluated trial (task, optimizer, seed, mode, index, config, value, cost,
  ask_seconds, tell_seconds, repeat), kept gzip-compressed at rest as ``trials.csv.gz`` (the committed
  results are large): a run works on the plain file and compresses it when it finishes; readers take
  either (see ``read_csv``);
* ``runs.csv``: one row per run (its length, wall seconds and error, if a peer crashed);
* ``outcomes.csv``: per-run metrics (see ``metrics``), written at the end.

``resume=True`` keeps the runs already in ``runs.csv`` and only runs the missing ones, so an
interrupted run continues; ``rerun`` names optimizers whose old rows are dropped first.
"""

from __future__ import annotations

import csv
import gzip
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path

from bench.optimizers import metrics
from bench.optimizers.harness import RunResult, TrialRecord, run_one
from bench.optimizers.peers import PEERS, Optimizer, Problem, available
from bench.optimizers.service import VARIANTS, ServiceBackend, ServiceOptimizer
from bench.optimizers.suites import Suite, available_tables
from bench.optimizers.tasks import TABLES_DIR, FunctionTask, GridTask, LiveTask, Task, load_table

RUN_FIELDS = ("task", "optimizer", "seed", "mode", "trials", "seconds", "error")
TRIALS = "trials.csv"


def build_tasks(suite: Suite, families: Sequence[str]) -> list[Task]:
    """The suite's tasks of the given families (grid tables that do not exist are skipped)."""
    tasks: list[Task] = []
    if "grid" in families:
        tasks += [load_table(TABLES_DIR / f"{n}.csv") for n in available_tables(suite.grid_tables)]
    if "function" in families:
        tasks += [FunctionTask(f"mixint_f{f:02d}_i{i:02d}", f, i) for f, i in suite.functions]
    if "live" in families:
        tasks += [LiveTask(m, d, metric) for m, d, metric in suite.live]
    return tasks


def plan(suite: Suite, tasks: Sequence[Task], optimizers: Sequence[str]) -> list[tuple[Task, str, int, int]]:
    """(task, optimizer, seed, parallel) for every run of the suite."""
    out = []
    for task in tasks:
        if task.family == "grid":
            seeds, modes = suite.grid_seeds, (1,)
        elif task.family == "function":
            seeds, modes = suite.function_seeds, (1,)
        else:
            seeds, modes = suite.live_seeds, suite.live_parallel
        for name in optimizers:
            spec = PEERS.get(name)
            if spec is not None and spec.finite_only and task.family != "grid":
                continue
            n = seeds
            if name in suite.limited:
                max_seeds, families, tables = suite.limited[name]
                if task.family not in families or (
                    task.family == "grid" and tables and task.name not in tables
                ):
                    continue
                n = min(n, max_seeds)
            for parallel in modes:
                for seed in range(n):
                    out.append((task, name, seed, parallel))
    return out


def budget_of(suite: Suite, task: Task) -> int:
    """Trials allowed per run."""
    if isinstance(task, GridTask):
        return suite.grid_budget_factor * task.size
    if isinstance(task, FunctionTask):
        return suite.function_budget
    return max(suite.live_budgets)


def _factory(name: str, backend: ServiceBackend) -> Callable[[Problem], Optimizer]:
    if name in VARIANTS:
        return lambda problem: ServiceOptimizer(problem, backend, name)
    return PEERS[name].build


def _packed(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of ``path``, or of its gzip-compressed twin ``path.gz`` when only that exists (the plain
    file is the one a run is writing, so it wins); no rows when neither exists."""
    if path.exists():
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    if _packed(path).exists():
        with gzip.open(_packed(path), "rt", newline="") as handle:
            return list(csv.DictReader(handle))
    return []


def _unpack(path: Path) -> None:
    """Expand ``path.gz`` into ``path`` (and drop the .gz) so that a run can append to it."""
    if path.exists() or not _packed(path).exists():
        return
    with gzip.open(_packed(path), "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    _packed(path).unlink()


def _pack(path: Path) -> None:
    """Compress ``path`` into ``path.gz`` (byte-identical for identical rows: no name or time stamp in
    the header) and drop the plain file."""
    if not path.exists():
        return
    with (
        path.open("rb") as src,
        _packed(path).open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as dst,
    ):
        shutil.copyfileobj(src, dst)
    path.unlink()


def _write_rows(path: Path, header: Sequence[str], rows: Sequence[dict], mode: str = "a") -> None:
    new = mode == "w" or not path.exists()
    with path.open(mode if not new else "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header), lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _float_or_none(text: str) -> float | None:
    return None if text in ("", "None") else float(text)


def load_results(out: Path) -> list[RunResult]:
    """The runs recorded in ``out`` (trials.csv or trials.csv.gz, and runs.csv)."""
    records: dict[tuple, list[TrialRecord]] = {}
    for r in read_csv(out / TRIALS):
        key = (r["task"], r["optimizer"], int(r["seed"]), r["mode"])
        records.setdefault(key, []).append(
            TrialRecord(r["task"], r["optimizer"], int(r["seed"]), r["mode"], int(r["index"]), r["config"],
                        _float_or_none(r["value"]), float(r["cost"]), float(r["ask_seconds"]),
                        float(r["tell_seconds"]), r["repeat"] == "True")
        )  # fmt: skip
    runs = []
    for r in read_csv(out / "runs.csv"):
        key = (r["task"], r["optimizer"], int(r["seed"]), r["mode"])
        runs.append(RunResult(*key, sorted(records.get(key, []), key=lambda t: t.index), r["error"]))
    return runs


def run_seconds(out: Path) -> float:
    """Wall seconds of all runs recorded in ``out`` (summed over resumed invocations)."""
    return sum(float(r["seconds"]) for r in read_csv(out / "runs.csv"))


def run_suite(
    suite: Suite,
    out: Path,
    optimizers: Sequence[str],
    families: Sequence[str] = ("grid", "function", "live"),
    resume: bool = True,
    rerun: Sequence[str] = (),
    log: Callable[[str], None] = print,
    dry: bool = False,
) -> tuple[list[Task], list[RunResult], dict[str, str]]:
    """Run (or resume) the suite; returns (tasks, all runs, skipped optimizers with the reason).
    ``dry``: run nothing, only load what ``out`` holds."""
    out.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    usable = []
    for name in optimizers:
        if name not in VARIANTS and name not in PEERS:
            raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join([*VARIANTS, *PEERS])}")
        ok, why = (True, "") if name in VARIANTS else available(name)
        if ok:
            usable.append(name)
        else:
            skipped[name] = why
            log(f"skipping {name}: {why}")
    tasks = build_tasks(suite, families)
    if dry:
        return tasks, load_results(out), skipped
    trial_header = [f.name for f in fields(TrialRecord)]
    if not resume:
        for f in (TRIALS, TRIALS + ".gz", "runs.csv"):
            (out / f).unlink(missing_ok=True)
    _unpack(out / TRIALS)
    if rerun:
        kept_runs = [r for r in read_csv(out / "runs.csv") if r["optimizer"] not in rerun]
        kept_trials = [r for r in read_csv(out / TRIALS) if r["optimizer"] not in rerun]
        _write_rows(out / "runs.csv", RUN_FIELDS, kept_runs, mode="w")
        _write_rows(out / TRIALS, trial_header, kept_trials, mode="w")
    done = {(r["task"], r["optimizer"], int(r["seed"]), r["mode"]) for r in read_csv(out / "runs.csv")}
    todo = plan(suite, tasks, usable)
    started = time.perf_counter()
    with ServiceBackend() as backend:
        for i, (task, name, seed, parallel) in enumerate(todo):
            mode = "seq" if parallel == 1 else f"batch{parallel}"
            if (task.name, name, seed, mode) in done:
                continue
            t0 = time.perf_counter()
            result = run_one(task, _factory(name, backend), name, seed, budget_of(suite, task), parallel,
                             stop_at_best=task.family == "grid")  # fmt: skip
            seconds = time.perf_counter() - t0
            _write_rows(out / TRIALS, trial_header, [asdict(r) for r in result.records])
            _write_rows(out / "runs.csv", RUN_FIELDS, [
                {"task": task.name, "optimizer": name, "seed": seed, "mode": mode,
                 "trials": len(result.records), "seconds": f"{seconds:.2f}", "error": result.error}
            ])  # fmt: skip
            if result.error or i % 20 == 0 or seconds > 10:
                log(f"[{time.perf_counter() - started:7.0f}s {i + 1}/{len(todo)}] {task.name} {name} seed {seed} {mode}: "
                    f"{len(result.records)} trials, {seconds:.1f}s {result.error}")  # fmt: skip
    _pack(out / TRIALS)
    return tasks, load_results(out), skipped


def outcomes(tasks: Sequence[Task], runs: Sequence[RunResult], suite: Suite) -> list[metrics.Outcome]:
    """Every run's metrics (see ``metrics``)."""
    by_name = {t.name: t for t in tasks}
    out: list[metrics.Outcome] = []
    live_runs = []
    for run in runs:
        task = by_name.get(run.task)
        if task is None or not run.records:
            continue
        if isinstance(task, GridTask):
            out += metrics.grid_outcomes(task, run)
        elif isinstance(task, FunctionTask):
            out += metrics.function_outcomes(task, run)
        else:
            live_runs.append(run)
    out += metrics.live_outcomes(by_name, live_runs, suite.live_budgets)
    return out


def write_outcomes(path: Path, rows: Sequence[metrics.Outcome]) -> None:
    """outcomes.csv."""
    _write_rows(path, [f.name for f in fields(metrics.Outcome)],
                [{**asdict(o), "value": repr(o.value) if math.isfinite(o.value) else ""} for o in rows], mode="w")  # fmt: skip


def eprint(message: str) -> None:
    """Progress lines go to stderr, flushed."""
    print(message, file=sys.stderr, flush=True)
