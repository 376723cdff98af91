"""Limits of trials-to-best on the grid tables: ties, noise, random references and model-based bounds.

    python bench/analysis/limits.py [--sweep bench/results/sweep/dev.csv] [--write docs/benchmarks.md]

Reads the grid tables (``bench/tables``), the training-seed reruns of the tiny grids' top
configurations (``bench/results/limits/noise.csv``, made by ``bench/analysis/noise.py``) and, if
given, a settings-sweep CSV (``bench/analysis/sweep.py``) holding the ``gp`` and ``gp-oracle`` /
``gp-pi-oracle`` runs. Prints (and with ``--write`` puts into the ``optimizers-limits`` section):

* per grid: N, the best and runner-up values and their gap, how many configurations are within 0.1%
  / 0.5% of the best, the shuffled-grid (random without repeats) references (N+1)/(k+1), the
  evaluation set's sampling error (binomial standard error of the best accuracy) and how many
  configurations lie within it;
* a leave-one-out test: a GP with hyperparameters fitted on the whole table, trained on every
  configuration except the best, and its probability that the held-out best beats the runner-up
  (low = even a model that has seen the other N-1 configurations would not pick the best next);
* the tiny grids' seed noise: accuracy of the top configurations under training seeds 42 / 1 / 2;
* the oracle-kernel runs (a GP whose hyperparameters come from the whole table) against ``gp``, and
  the "perfect ranking after the initial design" bound.
"""

# ruff: noqa: N806  (matrix notation)

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from bench.optimizers.experimental import full_table_kernel  # noqa: E402
from bench.optimizers.suites import SEED_SHAPED  # noqa: E402
from bench.optimizers.tasks import TABLES_DIR, GridTask, load_table  # noqa: E402
from suggestion_service.surrogates import GPSurrogate, transform_outputs  # noqa: E402

NOISE_CSV = REPO / "bench" / "results" / "limits" / "noise.csv"
# Evaluation-set sizes behind each table's accuracy (sklearn tables: the whole data set, every sample is
# tested once per cross-validation repeat; tiny tables: the tiny preset's validation / test split).
EVAL_SIZES = {"wine": 178, "breast": 569, "digits": 1797, "tiny_sst2": 800, "tiny_mrpc": 800,
              "tiny_cifar10": 1000}  # fmt: skip
CV_REPEATS = 2  # bench/sklearn_grid_tables.py: 3-fold x 2 repeats


def eval_size(table: str) -> int | None:
    """Samples behind one accuracy of ``table`` (None for r2 tables)."""
    if table in EVAL_SIZES:
        return EVAL_SIZES[table]
    dataset = table.rsplit("_", 1)[-1]
    return EVAL_SIZES[dataset] * CV_REPEATS if dataset in EVAL_SIZES else None


@dataclass(frozen=True)
class GridLimits:
    """What bounds trials-to-best on one table (see the module docstring)."""

    table: str
    n: int
    best: float
    runner_up: float
    gap_pct: float
    within_01: int
    within_05: int
    random_best: float
    random_near: float
    se: float | None
    within_se: int | None
    loo_pi: float
    loo_rank: int
    n_best: int


def within(task: GridTask, fraction: float) -> int:
    """Configurations within ``fraction`` (relative) of the best, the best included."""
    margin = fraction * abs(task.best)
    return sum(1 for v in task.values.values() if v is not None and v >= task.best - margin)


def leave_best_out(task: GridTask) -> tuple[float, int]:
    """GP (hyperparameters from the whole table) trained on all but the best configuration(s):
    (probability the held-out best beats the runner-up, its predicted rank among all N configurations
    by posterior mean, 1 = predicted best)."""
    kernel = full_table_kernel(task)
    keys = list(task.values)
    space = task._space
    X = space.encode_raw(np.array(keys, dtype=float))  # type: ignore[attr-defined]
    finite = [v for v in task.values.values() if v is not None]
    worst = min(finite)
    loss = np.array([task.loss(worst if task.values[k] is None else task.values[k]) for k in keys])
    best_rows = np.flatnonzero(loss == loss.min())
    rest = np.setdiff1d(np.arange(len(keys)), best_rows)
    y = transform_outputs(loss[rest], "rank")
    model = GPSurrogate(random_state=0, kernel=kernel).fit(X[rest], y)
    mu, sd = model.predict(X)
    b = int(best_rows[0])
    pi = float(norm.cdf((float(y.min()) - mu[b]) / max(float(sd[b]), 1e-12)))
    rank = int(1 + np.sum(mu < mu[b]))
    return pi, rank


def grid_limits(task: GridTask) -> GridLimits:
    """The per-table numbers (see ``GridLimits``)."""
    finite = sorted((v for v in task.values.values() if v is not None), reverse=True)
    runner = next((v for v in finite if v < task.best), task.best)
    n_best = task.n_best()
    n_near = task.n_near()
    size = eval_size(task.name)
    se = math.sqrt(task.best * (1 - task.best) / size) if size and 0 < task.best < 1 else None
    within_se = sum(1 for v in finite if v >= task.best - se) if se else None
    pi, rank = leave_best_out(task)
    return GridLimits(
        task.name, task.size, task.best, runner, 100 * (task.best - runner) / abs(task.best),
        within(task, 0.001), within(task, 0.005), (task.size + 1) / (n_best + 1),
        (task.size + 1) / (n_near + 1), se, within_se, pi, rank, n_best,
    )  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (empty when missing)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _per_config(rows: Sequence[dict[str, str]]) -> dict[tuple[str, int, str], dict[str, float]]:
    """(task, seed-42 rank, configuration) -> seed -> accuracy."""
    by: dict[tuple[str, int, str], dict[str, float]] = {}
    for r in rows:
        by.setdefault((r["task"], int(r["rank"]), r["config"]), {})[r["seed"]] = float(r["accuracy"])
    return by


def noise_table(rows: Sequence[dict[str, str]], show: int = 4) -> list[str]:
    """Markdown rows: per tiny task, the ``show`` best configurations by seed-42 accuracy and the ``show``
    best by mean accuracy over the seeds, with the accuracy under each training seed."""
    by = _per_config(rows)
    seeds = sorted({r["seed"] for r in rows}, key=lambda s: (s != "42", int(s)))
    out = []
    for task in sorted({k[0] for k in by}):
        items = [(k, v) for k, v in by.items() if k[0] == task]
        by_mean = sorted(items, key=lambda kv: -statistics.fmean(kv[1].values()))
        mean_rank = {k: i + 1 for i, (k, _) in enumerate(by_mean)}
        shown = sorted(
            {k for k, _ in items if k[1] <= show} | {k for k, _ in by_mean[:show]}, key=lambda k: k[1]
        )
        for key in shown:
            acc = by[key]
            vals = list(acc.values())
            sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
            cells = " | ".join(f"{acc[s]:.4f}" if s in acc else "–" for s in seeds)
            out.append(f"| {task} | {key[1]} | {mean_rank[key]} | `{key[2]}` | {cells} | "
                       f"{statistics.fmean(vals):.4f} | {sd:.4f} |")  # fmt: skip
    header = ["| task | rank at seed 42 | rank by mean | configuration | " + " | ".join(f"seed {s}" for s in seeds)
              + " | mean | sd |", "|---|---:|---:|---|" + "---:|" * (len(seeds) + 2)]  # fmt: skip
    return header + out


def noise_summary(rows: Sequence[dict[str, str]]) -> dict[str, dict[str, float]]:
    """Per task: pooled within-configuration seed sd, seed-42 gap between ranks 1 and 2, the rank of the
    seed-42 best by mean accuracy over seeds, and the seed-42 rank of the best configuration by mean."""
    out: dict[str, dict[str, float]] = {}
    by = _per_config(rows)
    for task in sorted({k[0] for k in by}):
        items = {k[1]: v for k, v in by.items() if k[0] == task}
        var = [statistics.variance(v.values()) for v in items.values() if len(v) > 1]
        means = {k: statistics.fmean(v.values()) for k, v in items.items()}
        order = sorted(means, key=lambda k: -means[k])
        at42 = {k: v["42"] for k, v in items.items() if "42" in v}
        out[task] = {
            "sd": math.sqrt(statistics.fmean(var)) if var else float("nan"),
            "gap42": at42.get(1, float("nan")) - at42.get(2, float("nan")),
            "rank_of_best": float(order.index(1) + 1) if 1 in order else float("nan"),
            "best_mean": means.get(1, float("nan")),
            "top_mean": means[order[0]] if order else float("nan"),
            "top_rank42": float(order[0]) if order else float("nan"),
            "configs": float(len(items)),
        }
    return out


def sweep_means(
    rows: Sequence[dict[str, str]], variant: str, metric: str = "trials_to_best"
) -> dict[str, float]:
    """table -> mean ``metric`` of ``variant`` in a sweep CSV."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        if r["variant"] == variant:
            acc.setdefault(r["table"], []).append(float(r[metric]))
    return {t: float(np.mean(v)) for t, v in acc.items()}


def design_bound(n: int, n_init: int, k: int = 1) -> float:
    """Expected trials to one of the ``k`` best configurations for a method that, after a random design
    of ``n_init`` configurations, evaluates the rest in the true order: i if the first best is the i-th
    design point, else n_init + 1."""
    expected, p_none = 0.0, 1.0
    for i in range(1, n_init + 1):
        p_here = p_none * k / (n - i + 1)
        expected += p_here * i
        p_none *= (n - i + 1 - k) / (n - i + 1)
    return expected + p_none * (n_init + 1)


def noise_bound(g: GridLimits, n_init: int = 3) -> float:
    """Expected trials to the best for a method that ranks perfectly up to the evaluation noise: after
    ``n_init`` design points it goes straight to the configurations within one standard error of the
    best (m of them, k sharing the best value) but cannot order those, so it needs (m+1)/(k+1) of them
    on average. Without a standard error (r2 tables) m = k."""
    m = g.within_se if g.within_se is not None else g.n_best
    return n_init + (m + 1) / (g.n_best + 1)


def bounds_table(
    limits: Sequence[GridLimits], sweep: Sequence[dict[str, str]]
) -> tuple[list[str], np.ndarray]:
    """Markdown lines: surrogate-gp, the oracle-hyperparameter GP and the two perfect-ranking bounds,
    for trials to the best and to within 0.5%, on the tables the sweep ran."""
    by_name = {g.table: g for g in limits}
    cols = {
        (v, m): sweep_means(sweep, v, m)
        for v in ("gp", "gp-oracle", "gp-pi-oracle")
        for m in ("trials_to_best", "trials_to_near")
    }
    tables = [
        t
        for t in cols[("gp", "trials_to_best")]
        if t in cols[("gp-oracle", "trials_to_best")] and t in by_name
    ]
    if not tables:
        return [], np.full(8, np.nan)
    rows: dict[str, list[float]] = {}
    for t in tables:
        g = by_name[t]
        rows[t] = [
            cols[("gp", "trials_to_best")][t],
            cols[("gp-oracle", "trials_to_best")][t],
            cols[("gp-pi-oracle", "trials_to_best")].get(t, float("nan")),
            design_bound(g.n, 3, g.n_best),
            noise_bound(g),
            cols[("gp", "trials_to_near")][t],
            cols[("gp-pi-oracle", "trials_to_near")].get(t, float("nan")),
            design_bound(g.n, 3, g.within_05),
        ]
    seeds = len({r["seed"] for r in sweep if r["variant"] == "gp-oracle"})
    lines = [
        "",
        f"Model-based bounds ({seeds} seeds): `surrogate-gp` defaults; the same loop with the GP "
        "hyperparameters fitted on the whole table (an oracle, EI or PI); *perfect ranking*: a method that after "
        "a random 3-point design evaluates the rest in the true order; *perfect up to noise*: the same, but "
        "unable to order the configurations within one standard error of the best (see `noise_bound`):",
        "",
        "| table | to best: surrogate-gp | oracle GP, ei | oracle GP, pi | perfect ranking | perfect up to noise | "
        "to within 0.5%: surrogate-gp | oracle GP, pi | perfect ranking |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t, vals in rows.items():
        lines.append(f"| {t} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    means = np.nanmean(np.array(list(rows.values())), axis=0)
    lines.append("| **mean** | " + " | ".join(f"**{v:.2f}**" for v in means) + " |")
    return lines, means


def render(limits: Sequence[GridLimits], noise_rows: Sequence[dict[str, str]], sweep: Sequence[dict[str, str]],
           command: str, holdout_mean: float = float("nan")) -> str:  # fmt: skip
    """The ``optimizers-limits`` Markdown section."""
    lines = [
        "## Optimizer benchmark: what limits trials-to-best on the grids",
        "",
        f"Command: `{command}` (training-seed reruns: `python bench/analysis/noise.py --top 24 --seeds 1,2`, `make bench-noise`; oracle runs: "
        "`python bench/analysis/sweep.py run --variants gp,gp-oracle,gp-pi-oracle --seeds 0-39 --tables seed`). "
        "Tables: `bench/tables`; raw rows: `bench/results/limits/noise.csv`, `bench/results/sweep/dev.csv`.",
        "",
        "Per grid: the best and the runner-up value; configurations within 0.1% / 0.5% (relative) of the best; "
        "the shuffled-grid reference (N+1)/(k+1) for the best and for within 0.5%; the binomial standard error "
        "of the best accuracy on its evaluation set (sklearn: every sample tested once per CV repeat, 2 repeats; "
        "tiny: 800 / 800 / 1000 validation examples) and how many configurations are within one such error of "
        "the best; leave-best-out: a GP with the hyperparameters of the whole table, trained on every other "
        "configuration, gives the held-out best this probability of beating the runner-up, and ranks it this "
        "high by its mean (1 = it would be proposed next).",
        "",
        "| table | N | best | runner-up | gap % | within 0.1% | within 0.5% | (N+1)/(k+1) best | … 0.5% | "
        "SE of best | within 1 SE | leave-best-out P(best > runner-up) | … rank | seed-shaped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for g in limits:
        se = f"{g.se:.4f}" if g.se is not None else "–"
        wse = str(g.within_se) if g.within_se is not None else "–"
        lines.append(
            f"| {g.table} | {g.n} | {g.best:.4f} | {g.runner_up:.4f} | {g.gap_pct:.2f} | {g.within_01} | "
            f"{g.within_05} | {g.random_best:.2f} | {g.random_near:.2f} | {se} | {wse} | {g.loo_pi:.2f} | "
            f"{g.loo_rank} | {'yes' if g.table in SEED_SHAPED else ''} |"
        )
    if noise_rows:
        summary = noise_summary(noise_rows)
        lines += ["", "Training-seed noise of the tiny grids (the tables hold seed 42; the same configurations "
                  "retrained with seeds 1 and 2, same data, same code):", "", *noise_table(noise_rows), ""]  # fmt: skip
        for task, s in summary.items():
            lines.append(
                f"- {task}: seed-to-seed sd within a configuration {s['sd']:.4f} (pooled over "
                f"{s['configs']:.0f} configurations) vs the seed-42 gap between ranks 1 and 2 {s['gap42']:.4f}; "
                f"the table's best (seed 42) ranks {s['rank_of_best']:.0f} of {s['configs']:.0f} by mean over the "
                f"seeds ({s['best_mean']:.4f}); the best by mean ({s['top_mean']:.4f}) is number "
                f"{s['top_rank42']:.0f} in the table."
            )
    bounds, means = bounds_table(limits, sweep) if sweep else ([], np.full(8, np.nan))
    lines += bounds
    if bounds:
        lines += [
            "",
            "**Where the bar (<= 6 trials to the best, <= 3 to within 0.5%) is reachable:**",
            "",
            f"- *To within 0.5% in <= 3 trials*: not with a 3-point design even for a perfect ranking "
            f"({means[7]:.2f} on average); it would need a 1-2 point design followed by near-perfect picks.",
            f"- *To the best in <= 6 trials*: a perfect ranking after the design needs {means[3]:.2f}, one that is "
            f"perfect up to the evaluation noise {means[4]:.2f}; a GP with the hyperparameters of the whole "
            f"table (which no optimizer has) needs {means[1]:.2f} (EI) / {means[2]:.2f} (PI), `surrogate-gp` "
            f"{means[0]:.2f} on these dev seeds"
            + (f" and {holdout_mean:.2f} on holdout seeds 1000-1029" if holdout_mean == holdout_mean else "")
            + ". So the bar is reachable in principle, but only by a model that ranks better than a GP "
            "whose hyperparameters were fitted on the full table.",
            "- *Where the best is within noise*: "
            + ", ".join(f"`{g.table}` ({g.within_se})" for g in limits if g.within_se and g.within_se > 1)
            + " have more than one configuration within one standard error of the best (count in brackets); "
            "`tiny_mrpc` has three exact ties, and over three training seeds its table best ranks 4th; "
            "`tiny_sst2`'s table best collapses to chance accuracy with two other training seeds (by mean over "
            'seeds it ranks 20th of 24). On these grids "trials to the best" largely measures luck among '
            "statistically tied configurations. Only "
            + ", ".join(f"`{g.table}`" for g in limits if g.within_se == 1)
            + " has a single configuration within one standard error of its best (`tiny_cifar10`'s best is also "
            "the best by mean over training seeds).",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default="", help="comma-separated table names (default: all)")
    parser.add_argument("--noise", type=Path, default=NOISE_CSV)
    parser.add_argument("--sweep", type=Path, default=REPO / "bench" / "results" / "sweep" / "dev.csv")
    parser.add_argument("--holdout", type=Path, default=REPO / "bench" / "results" / "sweep" / "holdout.csv")
    parser.add_argument(
        "--write", type=Path, default=None, help="Markdown file for the optimizers-limits section"
    )
    args = parser.parse_args(argv)
    present = sorted(p.stem for p in TABLES_DIR.glob("*.csv"))
    names = [t for t in args.tables.split(",") if t] or present
    unknown = sorted(set(names) - set(present))
    if unknown:
        parser.error(f"unknown tables {unknown}; allowed: {', '.join(present)}")
    limits = [grid_limits(load_table(TABLES_DIR / f"{t}.csv")) for t in names]
    command = "python bench/analysis/limits.py" + (" --write docs/benchmarks.md" if args.write else "")
    seed_tables = {g.table for g in limits if g.table in SEED_SHAPED}
    held = [float(r["trials_to_best"]) for r in read_csv(args.holdout)
            if r["variant"] == "gp" and r["table"] in seed_tables]  # fmt: skip
    markdown = render(limits, read_csv(args.noise), read_csv(args.sweep), command,
                      float(np.mean(held)) if held else float("nan"))  # fmt: skip
    print(markdown)
    if args.write:
        from bench.report import write_section

        write_section(args.write, "optimizers-limits", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
