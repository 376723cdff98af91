"""Training-seed noise of the tiny grids' top configurations (input to the limits analysis).

    python bench/analysis/noise.py [--tasks sst2,mrpc,cifar10] [--top 4] [--seeds 1,2]

The tables in ``bench/tables/tiny_*.csv`` were trained once with ``--seed 42``. This retrains the
``top`` best configurations of each table with other training seeds (the tiny data sets are fixed;
the seed moves the initialisation and the batch order) using the same code as
``bench/tiny_grid_tables.py`` (``run_trial``), one trial at a time, and writes
``bench/results/limits/noise.csv``: task, rank in the table, configuration, seed, accuracy,
train_seconds. Rows already in the file are kept and not retrained (an interrupted run resumes).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "trainer_image")]
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.tiny_grid_tables import TASKS, load_grid, read_table, run_trial  # noqa: E402

NOISE_CSV = REPO / "bench" / "results" / "limits" / "noise.csv"
FIELDS = ("task", "rank", "config", "seed", "accuracy", "train_seconds")


def config_text(config: dict[str, str]) -> str:
    """``name=value;...`` in the grid's parameter order."""
    return ";".join(f"{k}={v}" for k, v in config.items())


def top_configs(task: str, top: int) -> list[tuple[int, dict[str, str], float]]:
    """(rank, configuration, seed-42 accuracy) of the ``top`` best rows of ``tiny_<task>.csv``."""
    grid = load_grid(task)
    rows = read_table(REPO / "bench" / "tables" / f"tiny_{task}.csv", grid)
    ranked = sorted(rows, key=lambda r: -r["accuracy"])[:top]
    return [(i + 1, {n: r[n] for n in grid.names}, r["accuracy"]) for i, r in enumerate(ranked)]


def read_noise(path: Path = NOISE_CSV) -> list[dict[str, str]]:
    """The rows measured so far (empty when the file does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv: Sequence[str] | None = None) -> int:
    """Retrain the top configurations with the extra seeds (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--top", type=int, default=4, help="configurations per task, best first")
    parser.add_argument("--seeds", default="1,2", help="training seeds besides the tables' 42")
    parser.add_argument("--out", type=Path, default=NOISE_CSV)
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    if not tasks or set(tasks) - set(TASKS):
        parser.error(f"--tasks: allowed {', '.join(TASKS)}, got {args.tasks!r}")
    if args.top < 1:
        parser.error(f"--top must be >= 1, got {args.top}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds: comma-separated integers, got {args.seeds!r}")
    done = {(r["task"], r["config"], r["seed"]) for r in read_noise(args.out)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.is_file()
    with args.out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        for task in tasks:
            strategies = load_grid(task).strategies
            for rank, config, acc42 in top_configs(task, args.top):
                text = config_text(config)
                if (task, text, "42") not in done:
                    writer.writerow({"task": task, "rank": rank, "config": text, "seed": 42,
                                     "accuracy": f"{acc42:.4f}", "train_seconds": ""})  # fmt: skip
                for seed in seeds:
                    if (task, text, str(seed)) in done:
                        continue
                    row = run_trial(task, config, seed, strategies)
                    writer.writerow({"task": task, "rank": rank, "config": text, "seed": seed,
                                     "accuracy": f"{row['accuracy']:.4f}",
                                     "train_seconds": f"{row['train_seconds']:.3f}"})  # fmt: skip
                    handle.flush()
                    print(
                        f"{task} #{rank} {text} seed {seed}: {row['accuracy']:.4f} (42: {acc42:.4f})",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
