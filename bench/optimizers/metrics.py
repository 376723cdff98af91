"""Benchmark metrics: from per-trial records to per-run outcomes, ratios, paired tests and ranks.

Every outcome is "lower is better":

* grids: ``trials_to_best`` / ``trials_to_near`` (trials until the grid's best configuration / one
  within 0.5% of it was evaluated, repeats counted: Katib runs a repeated configuration again) and
  ``cost_to_best`` / ``cost_to_near`` (summed training seconds until then, as a fraction of the whole
  grid's cost). A run that never gets there is censored at its length (``found`` is 0).
* functions: ``log10_regret`` = log10(best f - f_opt) after the budget (floored at -8).
* live tasks: ``normalized_loss`` = 1 - score / 100, where the Bayesmark-style score is
  100 x (loss_random(b) - loss) / (loss_random(b) - loss_opt): 100 = the best loss any run found,
  0 = random search's mean best loss after the same budget b.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.optimizers.harness import RunResult
from bench.optimizers.tasks import FunctionTask, GridTask, Task

PRIMARY = {"grid": "trials_to_best", "function": "log10_regret", "live": "normalized_loss"}
ALPHA = 0.05  # paired Wilcoxon signed-rank test level for win/tie/loss


@dataclass(frozen=True)
class Outcome:
    """One run's value of one metric on one problem (a task at a mode and budget); lower is better."""

    problem: str
    family: str
    optimizer: str
    seed: int
    metric: str
    value: float


def grid_outcomes(task: GridTask, run: RunResult) -> list[Outcome]:
    """Trials and cost (fraction of the grid's cost) to the best and to within 0.5% of it."""
    total = task.total_cost()
    n = len(run.records)
    first_best = next((r.index for r in run.records if task.is_best(r.value)), None)
    first_near = next((r.index for r in run.records if task.is_near(r.value)), None)

    def cost_until(index: int) -> float:
        return sum(r.cost for r in run.records[:index]) / total

    problem = f"{task.name}/{run.mode}"
    out = {
        "trials_to_best": float(first_best or n),
        "trials_to_near": float(first_near or n),
        "cost_to_best": cost_until(first_best or n),
        "cost_to_near": cost_until(first_near or n),
        "missed": 0.0 if first_best else 1.0,  # 1 = the run never evaluated the best
        "repeats": float(sum(r.repeat for r in run.records)),
    }
    return [Outcome(problem, "grid", run.optimizer, run.seed, k, v) for k, v in out.items()]


def best_loss_curve(task: Task, run: RunResult) -> np.ndarray:
    """Best loss after each trial (inf until the first successful one)."""
    best = math.inf
    curve = []
    for r in run.records:
        if r.value is not None:
            best = min(best, task.loss(r.value))
        curve.append(best)
    return np.asarray(curve, dtype=float)


def function_outcomes(task: FunctionTask, run: RunResult) -> list[Outcome]:
    """log10 regret after the run's budget."""
    curve = best_loss_curve(task, run)
    regret = task.log_regret(float(curve[-1])) if len(curve) and np.isfinite(curve[-1]) else 8.0
    return [Outcome(f"{task.name}/{run.mode}", "function", run.optimizer, run.seed, "log10_regret", regret)]


def live_outcomes(tasks: dict[str, Task], runs: Sequence[RunResult], budgets: Sequence[int]) -> list[Outcome]:
    """Normalised losses for every live run at every budget (needs the random runs of the same task)."""
    groups: dict[tuple[str, str], list[RunResult]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.mode)].append(run)
    out: list[Outcome] = []
    for (task_name, mode), group in groups.items():
        task = tasks[task_name]
        curves = {(r.optimizer, r.seed): best_loss_curve(task, r) for r in group}
        finite = [c[np.isfinite(c)] for c in curves.values()]
        opt = min(float(c.min()) for c in finite if len(c))
        for b in budgets:
            rand = [c[b - 1] for (name, _), c in curves.items() if name == "random" and len(c) >= b]
            rand = [v for v in rand if np.isfinite(v)]
            if not rand:
                continue
            base = float(np.mean(rand))
            span = base - opt if base - opt > 1e-12 else 1e-12
            for (name, seed), c in curves.items():
                if len(c) < b:
                    continue
                value = (c[b - 1] - opt) / span if np.isfinite(c[b - 1]) else 10.0
                out.append(
                    Outcome(f"{task_name}/{mode}/b{b}", "live", name, seed, "normalized_loss", float(value))
                )
    return out


# ---- aggregation --------------------------------------------------------------------------------------


def table(outcomes: Iterable[Outcome], metric: str) -> dict[str, dict[str, dict[int, float]]]:
    """problem -> optimizer -> seed -> value, for one metric."""
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for o in outcomes:
        if o.metric == metric:
            out[o.problem][o.optimizer][o.seed] = o.value
    return out


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Values of the seeds both runs have, in seed order."""
    seeds = sorted(set(a) & set(b))
    return np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds])


def win_tie_loss(ours: dict[int, float], peer: dict[int, float], alpha: float = ALPHA) -> str:
    """ "win" / "loss" when a Wilcoxon signed-rank test over paired seeds rejects equality at ``alpha``
    (direction by the mean, lower is better), else "tie"."""
    from scipy.stats import wilcoxon

    x, y = paired(ours, peer)
    d = x - y
    if len(d) < 2 or np.allclose(d, 0.0):
        return "tie"
    try:
        p = float(wilcoxon(x, y, zero_method="zsplit").pvalue)
    except ValueError:
        return "tie"
    if not p < alpha:
        return "tie"
    return "win" if d.mean() < 0 else "loss"


def mean_ranks(values: dict[str, dict[str, dict[int, float]]], optimizers: Sequence[str]) -> dict[str, float]:
    """Average over problems of each optimizer's rank by mean value (1 = best, ties share ranks).

    Only problems where every optimizer in ``optimizers`` has results count.
    """
    from scipy.stats import rankdata

    ranks: dict[str, list[float]] = defaultdict(list)
    for per_opt in values.values():
        if not all(o in per_opt and per_opt[o] for o in optimizers):
            continue
        means = [float(np.mean(list(per_opt[o].values()))) for o in optimizers]
        for o, r in zip(optimizers, rankdata(means, method="average"), strict=True):
            ranks[o].append(float(r))
    return {o: float(np.mean(ranks[o])) for o in optimizers if ranks[o]}


def common_optimizers(values: dict[str, dict[str, dict[int, float]]], candidates: Sequence[str]) -> list[str]:
    """The ``candidates`` that have results on every problem in ``values``."""
    return [
        o for o in candidates if values and all(o in per_opt and per_opt[o] for per_opt in values.values())
    ]


def ratio_to_random(per_opt: dict[str, dict[int, float]], optimizer: str, log_scale: bool = False) -> float:
    """Mean value / random search's mean (geometric for log10 values: 10^(mean - mean_random))."""
    if "random" not in per_opt or optimizer not in per_opt:
        return math.nan
    mine = float(np.mean(list(per_opt[optimizer].values())))
    rand = float(np.mean(list(per_opt["random"].values())))
    if log_scale:
        return 10.0 ** (mine - rand)
    return mine / rand if rand else math.nan
