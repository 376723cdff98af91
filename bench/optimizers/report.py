"""Markdown tables and matplotlib plots of a benchmark run (written to docs/benchmarks.md by the runner)."""

from __future__ import annotations

import math
import platform
from collections import defaultdict
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from bench.optimizers import metrics
from bench.optimizers.harness import RunResult
from bench.optimizers.metrics import Outcome
from bench.optimizers.suites import OURS, SEED_SHAPED, Suite
from bench.optimizers.tasks import GridTask, Task

PACKAGES = ("optuna", "hyperopt", "scikit-optimize", "smac", "ConfigSpace", "HEBO", "coco-experiment",
            "torch", "scikit-learn", "numpy", "scipy")  # fmt: skip


def versions() -> dict[str, str]:
    """Installed versions of the peer libraries (missing ones are left out)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _fmt(v: float, digits: int = 1) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _order(optimizers: Sequence[str]) -> list[str]:
    ours = [o for o in OURS if o in optimizers]
    return ours + [o for o in optimizers if o not in ours]


def _mean(per_seed: dict[int, float] | None) -> float:
    return float(np.mean(list(per_seed.values()))) if per_seed else math.nan


def grid_section(tasks: dict[str, Task], outcomes: Sequence[Outcome], optimizers: Sequence[str]) -> str:
    """Per-table trials/cost to the best and to within 0.5%, the shuffled-grid reference, seed-shaped means."""
    parts = []
    grids = [t for t in tasks.values() if isinstance(t, GridTask)]
    if not grids:
        return ""
    facts = [
        [t.name, str(t.size), str(t.n_best()), str(t.n_near()), _fmt(t.expected_random_order(t.n_best()), 2),
         _fmt(t.expected_random_order(t.n_near()), 2), _fmt(t.total_cost(), 1), "yes" if t.name in SEED_SHAPED else ""]
        for t in grids
    ]  # fmt: skip
    parts.append("Grids (N configurations, k sharing the best value, configurations within 0.5% of it; a shuffled "
                 "grid needs (N+1)/(k+1) trials on average):\n\n"
                 + _md_table(["table", "N", "k best", "near", "(N+1)/(k+1) best", "… near", "grid cost s",
                              "seed-shaped"], facts))  # fmt: skip
    for metric, title, scale, digits in (
        ("trials_to_best", "Mean trials to the best configuration", 1.0, 1),
        ("trials_to_near", "Mean trials to within 0.5% of the best", 1.0, 1),
        ("cost_to_best", "Mean cost (training seconds) to the best, % of the whole grid's cost", 100.0, 0),
    ):
        values = metrics.table(outcomes, metric)
        names = [t.name for t in grids]
        shaped = [n for n in names if n in SEED_SHAPED]
        rows = []
        for o in _order(optimizers):
            cells = [_fmt(_mean(values.get(f"{n}/seq", {}).get(o)) * scale, digits) for n in names]
            seed_means = [_mean(values.get(f"{n}/seq", {}).get(o)) for n in shaped]
            all_means = [_mean(values.get(f"{n}/seq", {}).get(o)) for n in names]
            rows.append([o, *cells, _fmt(float(np.mean(seed_means)) * scale if seed_means else math.nan, digits),
                         _fmt(float(np.mean(all_means)) * scale, digits)])  # fmt: skip
        short = [n.replace("sklearn_", "") for n in names]
        parts.append(f"{title}:\n\n" + _md_table(["optimizer", *short, "seed-shaped", "all"], rows))
    missed = metrics.table(outcomes, "missed")
    repeats = metrics.table(outcomes, "repeats")
    rows = []
    for o in _order(optimizers):
        runs = [v for n in (t.name for t in grids) for v in missed.get(f"{n}/seq", {}).get(o, {}).values()]
        reps = [v for n in (t.name for t in grids) for v in repeats.get(f"{n}/seq", {}).get(o, {}).values()]
        if runs:
            rows.append([o, str(len(runs)), str(int(sum(runs))), _fmt(float(np.mean(reps)), 1)])
    parts.append("Runs that never evaluated the best (censored at their length: 3N trials, or fewer when the peer "
                 "stopped with an error) and repeated configurations per run:\n\n"
                 + _md_table(["optimizer", "runs", "missed the best", "repeats per run"], rows))  # fmt: skip
    return "\n\n".join(parts)


def family_section(outcomes: Sequence[Outcome], family: str, optimizers: Sequence[str], title: str,
                   transform=lambda v: v, digits: int = 2) -> str:  # fmt: skip
    """Mean primary metric per problem of one family (rows: optimizers)."""
    values = metrics.table([o for o in outcomes if o.family == family], metrics.PRIMARY[family])
    problems = sorted(values)
    if not problems:
        return ""
    rows = []
    for o in _order(optimizers):
        if not any(o in values[p] for p in problems):
            continue
        cells = [_fmt(transform(_mean(values[p].get(o))), digits) for p in problems]
        rows.append([o, *cells])
    return f"{title}:\n\n" + _md_table(["optimizer", *problems], rows)


def ratio_section(outcomes: Sequence[Outcome], optimizers: Sequence[str]) -> str:
    """Geometric mean over each family's problems of (mean metric / random search's mean metric)."""
    rows = []
    fams = [f for f in ("grid", "function", "live") if any(o.family == f for o in outcomes)]
    tables = {f: metrics.table([o for o in outcomes if o.family == f], metrics.PRIMARY[f]) for f in fams}
    for o in _order(optimizers):
        cells = []
        for f in fams:
            ratios = [
                metrics.ratio_to_random(per, o, log_scale=f == "function") for per in tables[f].values()
            ]
            ratios = [r for r in ratios if math.isfinite(r) and r > 0]
            cells.append(_fmt(float(np.exp(np.mean(np.log(ratios)))), 2) if ratios else "–")
        rows.append([o, *cells])
    labels = {"grid": "grids: trials to best", "function": "functions: regret", "live": "live: loss gap"}
    return ("Ratio to random search (geometric mean over problems; < 1 is better than random):\n\n"
            + _md_table(["optimizer", *[labels[f] for f in fams]], rows))  # fmt: skip


def wtl_section(outcomes: Sequence[Outcome], optimizers: Sequence[str]) -> str:
    """Win/tie/loss of each of ours against each peer (paired Wilcoxon over seeds, p < 0.05), per family."""
    fams = [f for f in ("grid", "function", "live") if any(o.family == f for o in outcomes)]
    tables = {f: metrics.table([o for o in outcomes if o.family == f], metrics.PRIMARY[f]) for f in fams}
    ours = [o for o in OURS if o in optimizers]
    peers = [o for o in optimizers if o not in OURS]
    parts = []
    for mine in ours:
        rows = []
        for peer in peers:
            cells = []
            total = defaultdict(int)
            for f in fams:
                counts = defaultdict(int)
                for per in tables[f].values():
                    if mine in per and peer in per:
                        counts[metrics.win_tie_loss(per[mine], per[peer])] += 1
                for k, v in counts.items():
                    total[k] += v
                cells.append(f"{counts['win']}/{counts['tie']}/{counts['loss']}" if counts else "–")
            rows.append([peer, *cells, f"{total['win']}/{total['tie']}/{total['loss']}"])
        parts.append(f"`{mine}` against each peer, win/tie/loss over problems (Wilcoxon signed-rank over paired "
                     f"seeds, p < {metrics.ALPHA}):\n\n" + _md_table(["peer", *fams, "all"], rows))  # fmt: skip
    return "\n\n".join(parts)


def rank_section(outcomes: Sequence[Outcome], optimizers: Sequence[str]) -> str:
    """Average rank per family and over the whole suite (each among the optimizers that ran on every
    problem it covers), and on the seed-shaped grids with every optimizer that ran there."""
    fams = [f for f in ("grid", "function", "live") if any(o.family == f for o in outcomes)]
    combined: dict[str, dict[str, dict[int, float]]] = {}
    per_family = {}
    for f in fams:
        t = metrics.table([o for o in outcomes if o.family == f], metrics.PRIMARY[f])
        per_family[f] = metrics.mean_ranks(t, metrics.common_optimizers(t, _order(optimizers)))
        combined.update(t)
    everywhere = metrics.common_optimizers(combined, _order(optimizers))
    overall = metrics.mean_ranks(combined, everywhere)
    names = sorted(
        _order(optimizers), key=lambda o: (overall.get(o, math.inf), per_family.get("grid", {}).get(o, 0))
    )
    rows = [[o, *[_fmt(per_family[f].get(o, math.nan), 2) for f in fams], _fmt(overall.get(o, math.nan), 2)]
            for o in names]  # fmt: skip
    text = (f"Average rank (1 = best; rank of the mean over seeds on each problem, averaged over the problems; a "
            f"family's column ranks the optimizers that ran on all its problems, the last column those that ran "
            f"on all {len(combined)} problems):\n\n" + _md_table(["optimizer", *fams, "whole suite"], rows))  # fmt: skip
    grid_t = metrics.table([o for o in outcomes if o.family == "grid"], "trials_to_best")
    shaped = {p: v for p, v in grid_t.items() if p.split("/")[0] in SEED_SHAPED}
    limited_tables = {
        p: v
        for p, v in shaped.items()
        if all(o in v for o in _order(optimizers) if any(o in w for w in shaped.values()))
    }
    with_all = metrics.common_optimizers(limited_tables, _order(optimizers))
    if limited_tables and with_all:
        r = metrics.mean_ranks(limited_tables, with_all)
        rows = [[o, _fmt(r.get(o, math.nan), 2)] for o in sorted(with_all, key=lambda o: r.get(o, math.inf))]
        text += (f"\n\nAverage rank by trials to the best on the seed-shaped grids where every optimizer ran "
                 f"({', '.join(sorted(p.split('/')[0] for p in limited_tables))}):\n\n"
                 + _md_table(["optimizer", "rank"], rows))  # fmt: skip
    return text


def standing_rows(outcomes: Sequence[Outcome], optimizers: Sequence[str]) -> list[list[str]]:
    """Head-to-head numbers per optimizer: seed-shaped grids (trials to best / near, cost %), mean log10
    regret on the functions, mean live score."""

    def family_mean(metric: str, family: str, only: Sequence[str] = ()) -> dict[str, float]:
        t = metrics.table([o for o in outcomes if o.family == family], metric)
        keys = [p for p in t if not only or p.split("/")[0] in only]
        out = {}
        for o in optimizers:
            vals = [_mean(t[p][o]) for p in keys if o in t[p]]
            if vals and len(vals) == len(keys):
                out[o] = float(np.mean(vals))
        return out

    tb = family_mean("trials_to_best", "grid", SEED_SHAPED)
    tn = family_mean("trials_to_near", "grid", SEED_SHAPED)
    cb = family_mean("cost_to_best", "grid", SEED_SHAPED)
    allb = family_mean("trials_to_best", "grid")
    fr = family_mean("log10_regret", "function")
    lv = family_mean("normalized_loss", "live")
    rows = []
    for o in _order(optimizers):
        rows.append([o, _fmt(tb.get(o, math.nan), 2), _fmt(tn.get(o, math.nan), 2),
                     _fmt(100 * cb.get(o, math.nan), 0), _fmt(allb.get(o, math.nan), 2), _fmt(fr.get(o, math.nan), 2),
                     _fmt(100 * (1 - lv.get(o, math.nan)), 1)])  # fmt: skip
    return rows


def standing_section(outcomes: Sequence[Outcome], optimizers: Sequence[str]) -> str:
    """The headline table (see ``standing_rows``)."""
    rows = standing_rows(outcomes, optimizers)
    return ("Headline (means over problems; – = not run on every problem of that column): seed-shaped grids = "
            "the 24-configuration tables with the seed's shape; bar for `surrogate-gp`: <= 6 trials to the best, "
            "<= 3 to within 0.5%, <= 25% of the grid's cost:\n\n"
            + _md_table(["optimizer", "seed-shaped: trials to best", "… to within 0.5%", "… cost to best %",
                         "all grids: trials to best", "functions: log10 regret", "live: score"], rows))  # fmt: skip


def timing_section(runs: Sequence[RunResult], optimizers: Sequence[str]) -> str:
    """Per-suggestion optimizer time (ask + tell wall seconds per trial): mean, p95, and at trials 25-32."""
    per: dict[str, list[float]] = defaultdict(list)
    late: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for r in run.records:
            per[run.optimizer].append(r.ask_seconds + r.tell_seconds)
            if 25 <= r.index <= 32:
                late[run.optimizer].append(r.ask_seconds + r.tell_seconds)
    rows = []
    for o in _order(optimizers):
        if not per[o]:
            continue
        v = np.array(per[o])
        late_mean = float(np.mean(late[o])) if late[o] else math.nan
        rows.append([o, str(len(v)), _fmt(float(v.mean()) * 1000, 0), _fmt(float(np.percentile(v, 95)) * 1000, 0),
                     _fmt(late_mean * 1000, 0)])  # fmt: skip
    return ("Optimizer time per suggestion (wall ms of ask + tell; ours includes the gRPC round trip with the "
            "whole trial history):\n\n"
            + _md_table(["optimizer", "trials", "mean ms", "p95 ms", "mean ms at trials 25-32"], rows))  # fmt: skip


def plots(outcomes: Sequence[Outcome], optimizers: Sequence[str], out: Path, suite: str) -> list[Path]:
    """Bar charts: mean trials to the best on the seed-shaped grids (with the (N+1)/2 line), and the
    mean normalised live score per budget. Returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    grid_t = metrics.table([o for o in outcomes if o.family == "grid"], "trials_to_best")
    shaped = {p: v for p, v in grid_t.items() if p.split("/")[0] in SEED_SHAPED}
    names = [o for o in _order(optimizers) if any(o in v for v in shaped.values())]
    shaped = {p: v for p, v in shaped.items() if all(o in v for o in names)}  # tables where all of them ran
    if names and shaped:
        means = [float(np.mean([_mean(v[o]) for v in shaped.values() if o in v])) for o in names]
        fig, ax = plt.subplots(figsize=(9, 4))
        colors = ["tab:green" if n in OURS else "tab:gray" for n in names]
        ax.bar(names, means, color=colors)
        ax.axhline(12.5, color="tab:red", linestyle="--", label="shuffled grid, unique best: (N+1)/2 = 12.5")
        ax.axhline(6, color="tab:green", linestyle=":", label="target 6")
        ax.set_ylabel("mean trials to the best")
        tables = ", ".join(sorted(p.split("/")[0] for p in shaped))
        ax.set_title(f"Seed-shaped 24-configuration grids where every optimizer ran: {tables}", fontsize=9)
        ax.legend()
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
        fig.tight_layout()
        path = out / f"{suite}-grid-trials-to-best.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    live = metrics.table([o for o in outcomes if o.family == "live"], "normalized_loss")
    if live:
        names = [o for o in _order(optimizers) if any(o in v for v in live.values())]
        scores = [100 * (1 - float(np.mean([_mean(v[o]) for v in live.values() if o in v]))) for o in names]
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.bar(names, scores, color=["tab:green" if n in OURS else "tab:gray" for n in names])
        ax.set_ylabel("mean normalised score (100 = best found, 0 = random)")
        ax.set_title(f"Live scikit-learn tuning ({len(live)} task x mode x budget problems)")
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
        fig.tight_layout()
        path = out / f"{suite}-live-score.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


METHOD = """\
How it works (`bench/optimizers/`, entry `bench/run_optimizers.py`):

- **One loop for everyone.** Each optimizer proposes configurations (`ask`) and is told the results (`tell`)
  with the same seeds in the same process. Ours is driven through the real gRPC service (`start_server` on
  loopback) with Katib-shaped `GetSuggestionsRequest`s: the whole trial history on every call, running
  trials as `RUNNING`, finished ones `SUCCEEDED` with the objective and `train_seconds`, failures `FAILED`;
  `random_state` = seed and the experiment name carry the seed. Batches (`batch4`) keep 4 trials running as
  Katib's `parallelTrialCount` does: 4 asked with no history, then the oldest running trial finishes (FIFO,
  so the order does not depend on the machine) and one more is asked with 3 pending.
- **Our variants.** `surrogate-gp` and `surrogate-rf` with their defaults; `surrogate-gp-cost` =
  `acquisition: ei_per_cost, cost_metric: train_seconds`; `surrogate-gp-pi` = `acquisition: pi,
  n_initial_points: 2` (a variant once thought better on small grids; it did not replicate on fresh
  seeds, `optimizers-tuning`).
- **Peers** with their libraries' defaults, given each space the way Katib's own service for that
  algorithm does (discrete lists as categorical choices for hyperopt, scikit-optimize and Optuna; ordinal
  for SMAC3; an integer index for HEBO): `random` (with replacement), `random-noreplace` (Katib `random` in a
  finite space), `grid` (Optuna `GridSampler`, shuffled by the seed = Katib `grid`), `hyperopt-tpe`
  (= Katib `tpe`, 20 random start-up trials), `skopt-gp` (GP, `gp_hedge`, 10 random initial points = Katib
  `bayesianoptimization`), `optuna-tpe` (multivariate, constant liar = Katib `multivariate-tpe`), `optuna-gp`
  (`GPSampler`), `smac-rf` (SMAC3 HPO facade), `smac-gp` (SMAC3 BlackBox facade), `hebo` (HEBO 0.3.6).
- **Tasks.** Grids: `bench/tables/*.csv`, one row per configuration with its metric and training seconds,
  from real training runs: `tiny_*` = the seed's BERT (SST-2, MRPC) and ResNet (CIFAR-10) spaces trained
  with the trainer's tiny preset (`python bench/tiny_grid_tables.py`), `sklearn_*` = MLP, SVM, gradient
  boosting, random forest and AdaBoost on digits / breast cancer / wine / diabetes, 16-96 configurations
  (`python bench/sklearn_grid_tables.py`). Functions: COCO `bbob-mixint`, dimension 5 (4 integer variables
  with 2, 4, 8, 16 values, one continuous), f_opt from COCO's own optimal parameter of the mixint problem.
  Live: scikit-learn model x dataset x metric, 3-fold cross-validation with a fixed split, log-scaled
  Bayesmark-like spaces, evaluated once per configuration and cached.
- **Metrics.** Grids: trials (repeats counted: Katib runs a repeated configuration again) and cost
  (summed `train_seconds`, as a share of the whole grid's cost) until the best configuration, and until
  one within 0.5% of it (relative); a shuffled grid needs (N+1)/(k+1) trials for one of k equally good
  configurations. Functions: log10(best f - f_opt) after the budget. Live: Bayesmark-style normalised score,
  100 x (random's mean best loss at budget b - best loss) / (random's mean - the best loss any run found).
  Win/tie/loss: Wilcoxon signed-rank test over paired seeds, p < 0.05. Average rank: rank of the mean over
  seeds per problem, averaged. Time per suggestion: wall time of `ask` (per configuration) plus `tell`.
- **Install notes.** The peers live in `.venv-bench` (`make bench-venv`, pins in
  `requirements/bench-constraints.txt`). HEBO 0.3.6 declares `numpy<1.25` and `pymoo==0.6.0`; it is
  installed with `--no-deps` beside numpy 2.4 / pymoo 0.6.2 (plus `disjoint-set`, torch 2.13 CPU, gpytorch)
  and runs. `coco-experiment` 2.8.3+ needs Python 3.12, so 2.8.2 is used. SMAC3 2.4 needs no `pyrfr` build.
"""


def render(suite: Suite, command: str, tasks: Sequence[Task], runs: Sequence[RunResult],
           outcomes: Sequence[Outcome], skipped: dict[str, str], image_paths: Sequence[str],
           wall_seconds: float) -> str:  # fmt: skip
    """The Markdown section for one suite run."""
    optimizers = list(dict.fromkeys(r.optimizer for r in runs))
    by_name = {t.name: t for t in tasks}
    errors = [r for r in runs if r.error]
    v = versions()
    head = [
        f"## Optimizer benchmark ({suite.name})",
        "",
        f"Command: `{command}` (bench environment `.venv-bench`, `make bench-venv`). "
        f"Machine: {platform.machine()} {platform.processor() or ''} Python {platform.python_version()}, "
        f"one process, numerical libraries on one thread; the runs took {wall_seconds / 60:.0f} min in all "
        "(2 cores shared with other work, so timings are noisy). "
        "Raw results: `bench/results/" + suite.name + "/` (trials.csv.gz, runs.csv, outcomes.csv).",
        "",
        "Peer versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"Seeds: {suite.grid_seeds} per grid (sequential, until the best is found or {suite.grid_budget_factor}N "
        f"trials), {suite.function_seeds} per COCO bbob-mixint function (dimension 5, budget {suite.function_budget}),"
        f" {suite.live_seeds} per live task (budgets {', '.join(map(str, suite.live_budgets))}; "
        f"{' and '.join('sequential' if p == 1 else f'batches of {p}' for p in suite.live_parallel)}).",
    ]
    if suite.limited:
        head.append("")
        head.append("Limited peers: " + "; ".join(
            f"`{k}` on {', '.join(fams)}{' (' + ', '.join(tbl) + ')' if tbl else ''} with {n} seeds"
            for k, (n, fams, tbl) in suite.limited.items()) + " (time per suggestion; see the timing table).")  # fmt: skip
    if skipped:
        head.append("")
        head.append(
            "Not run (did not import here): " + "; ".join(f"`{k}`: {why}" for k, why in skipped.items())
        )
    if errors:
        head.append("")
        head.append(f"{len(errors)} runs stopped with an error (kept with the trials they had): "
                    + "; ".join(sorted({f'`{r.optimizer}`: {r.error}' for r in errors})[:6]))  # fmt: skip
    body = [
        standing_section(outcomes, optimizers),
        grid_section(by_name, outcomes, optimizers),
        family_section(
            outcomes, "function", optimizers, "COCO bbob-mixint, mean log10 regret after the budget"
        ),
        family_section(
            outcomes,
            "live",
            optimizers,
            "Live scikit-learn tasks, mean normalised score "
            "(100 = best loss any run found, 0 = random search's mean at the same budget)",
            transform=lambda v: 100 * (1 - v),
            digits=1,
        ),
        ratio_section(outcomes, optimizers),
        rank_section(outcomes, optimizers),
        wtl_section(outcomes, optimizers),
        timing_section(runs, optimizers),
        "\n".join(f"![{Path(p).stem}]({p})" for p in image_paths),
    ]
    return "\n".join(head) + "\n\n" + METHOD + "\n" + "\n\n".join(b for b in body if b)
