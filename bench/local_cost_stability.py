"""Is the local trial cost stable when the machine is busy? ``python -m bench.local_cost_stability``.

Runs the same few tiny trials of one Experiment (default: the first, middle and last configuration of
``manifests/30-experiment-sst2-grid.yaml``'s grid) the way ``compare --local`` runs them (the warm
launcher, the trial template's own command, ``--preset tiny``, ``OMP_NUM_THREADS`` as the runner sets it
for 2 parallel trials on 2 cores), alternately on the machine as it is ("idle") and with one busy loop
(``python -c "while True: pass"``) per CPU core beside it ("loaded"). For each trial it records the wall
time, the trainer's ``train_seconds`` metric (the local cost before CPU time, a wall clock) and the
trial process's CPU time (user + sys, the local cost now), and prints per measure the mean ratio
loaded / idle and the coefficient of variation over all runs of a configuration (idle and loaded).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from client.experiments import ExperimentDef, load_experiments
from client.local_runner import trial_command, trial_outcome
from client.warm_launcher import WarmLauncher

REPO = Path(__file__).resolve().parents[1]
MEASURES = ("wall_seconds", "train_seconds", "cpu_seconds")
BUSY_LOOP = "while True: pass"


def configurations(parameters: list[dict[str, object]], count: int) -> list[dict[str, str]]:
    """``count`` configurations spread evenly over the grid of the discrete/categorical parameters."""
    names = [str(p["name"]) for p in parameters]
    values = [[str(v) for v in p["feasibleSpace"]["list"]] for p in parameters]  # type: ignore[index]
    grid = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
    step = (len(grid) - 1) / max(1, count - 1)
    return [grid[round(i * step)] for i in range(min(count, len(grid)))]


def start_load(processes: int) -> list[subprocess.Popen[bytes]]:
    """``processes`` busy loops (each keeps one core busy) until :func:`stop_load`."""
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(processes)]


def stop_load(load: list[subprocess.Popen[bytes]]) -> None:
    """Kill the busy loops started by :func:`start_load`."""
    for process in load:
        process.kill()
        process.wait()


def run_trial(
    launcher: WarmLauncher, definition: ExperimentDef, argv: list[str], env: dict[str, str], log: Path
) -> dict[str, float]:
    """Run one trial warm; its wall time, ``train_seconds`` metric and CPU time."""
    started = time.monotonic()
    process = launcher.start(argv, sys.executable, env, log)
    if process is None:
        raise SystemExit(f"the warm launcher could not start {' '.join(argv[:3])}; see {log.parent}")
    code = process.wait()
    wall = time.monotonic() - started
    if code != 0 or process.cpu_seconds is None:
        raise SystemExit(f"trial failed (exit {code}): {log.read_text(errors='replace')[-2000:]}")
    observation = trial_outcome(code, log.read_text(errors="replace"), definition)[1]
    train_seconds = float(observation["train_seconds"])
    return {"wall_seconds": wall, "train_seconds": train_seconds, "cpu_seconds": process.cpu_seconds}


def measure(manifest: Path, trials: int, repeats: int, load_processes: int, threads: int) -> list[dict]:
    """Rows of (config, condition, repeat, wall/train/cpu seconds); idle and loaded runs alternate."""
    (definition,) = load_experiments(manifest)
    configs = configurations(definition.spec["parameters"], trials)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cost-stability-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
        launcher = WarmLauncher(work, log=lambda message: print(message, file=sys.stderr))
        try:
            # a warm-up trial, not measured: starts the launcher (its preload) and fills the file cache
            warm_up = trial_command(definition, configs[0], "warm-up", work / "warm-up", preset="tiny",
                                    cache_dir=work / "cache", python=sys.executable)  # fmt: skip
            run_trial(launcher, definition, warm_up, env, work / "warm-up" / "out.log")
            for repeat, condition in itertools.product(range(repeats), ("idle", "loaded")):
                load = start_load(load_processes) if condition == "loaded" else []
                try:
                    time.sleep(0.5 if load else 0.0)
                    for index, params in enumerate(configs):
                        name = f"c{index}-{condition}-{repeat}"
                        trial_dir = work / name
                        argv = trial_command(definition, params, name, trial_dir, preset="tiny",
                                             cache_dir=work / "cache", python=sys.executable)  # fmt: skip
                        trial_env = {**env, "KATIB_TRIAL_NAME": name}
                        row = run_trial(launcher, definition, argv, trial_env, trial_dir / "out.log")
                        rows.append({"config": index, "condition": condition, "repeat": repeat, **row})
                        print(f"{name}: " + ", ".join(f"{k} {row[k]:.2f}" for k in MEASURES), file=sys.stderr)
                finally:
                    stop_load(load)
        finally:
            launcher.close()
    return rows


def summary(rows: list[dict]) -> str:
    """A Markdown table: per measure, the mean idle and loaded seconds, loaded/idle and the CV."""
    lines = ["| measure | idle mean (s) | loaded mean (s) | loaded / idle | CV over all runs of a config |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    configs = sorted({r["config"] for r in rows})
    for measure in MEASURES:
        idle = [statistics.mean(r[measure] for r in rows if r["config"] == c and r["condition"] == "idle")
                for c in configs]  # fmt: skip
        loaded = [statistics.mean(r[measure] for r in rows if r["config"] == c and r["condition"] == "loaded")
                  for c in configs]  # fmt: skip
        ratio = statistics.mean(b / a for a, b in zip(idle, loaded, strict=True))
        cvs = []
        for c in configs:
            values = [r[measure] for r in rows if r["config"] == c]
            cvs.append(statistics.stdev(values) / statistics.mean(values))
        lines.append(f"| {measure} | {statistics.mean(idle):.2f} | {statistics.mean(loaded):.2f} | "
                     f"{ratio:.2f} | {statistics.mean(cvs):.1%} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, measure, print the table (and the command and load average it ran with)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=REPO / "manifests" / "30-experiment-sst2-grid.yaml")
    parser.add_argument("--trials", type=int, default=3, help="configurations (default 3)")
    parser.add_argument("--repeats", type=int, default=2, help="idle + loaded rounds (default 2)")
    parser.add_argument(
        "--load", type=int, default=os.cpu_count() or 1, help="busy loops (default: one per core)"
    )
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of a trial (default 1)")
    args = parser.parse_args(argv)
    before = os.getloadavg()[0]
    started = time.monotonic()
    rows = measure(args.manifest, args.trials, args.repeats, args.load, args.threads)
    print(summary(rows))
    print(f"\n{len(rows)} trials, {args.trials} configurations x {args.repeats} rounds x idle/loaded "
          f"({args.load} busy loops, OMP_NUM_THREADS={args.threads}) on {os.cpu_count()} CPUs in "
          f"{time.monotonic() - started:.0f} s; 1-min load average {before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
