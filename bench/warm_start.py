"""Warm start benchmark: cold vs warm-started surrogate-gp / surrogate-rf on tabulated task pairs.

``python bench/warm_start.py [--seeds 20] [--write docs/benchmarks.md]`` (or ``make bench-warm-start``).

Every run goes through the real gRPC service (``start_server`` on loopback with a static in-memory
``PriorSource``) with Katib-shaped requests, through the same ask/tell harness and grid metrics as the
optimizer benchmark (bench/optimizers): one trial at a time until the target grid's best configuration
is evaluated. A pair is (source table -> target table); the prior of seed ``s`` is the source task's
random-search baseline: ``--prior-trials`` (12) distinct configurations drawn at random (seeded by pair
and seed), as an earlier random-search Experiment would have run them. Pairs:

* cross-task: tiny SST-2 -> tiny MRPC and back (bench/tables/tiny_*.csv, same BERT-shaped grid);
* re-tune: MRPC -> MRPC (the prior is half of a random baseline of the same grid);
* scikit-learn, same model and grid on two datasets: SVM digits -> breast, gradient boosting breast ->
  wine, MLP wine -> breast (the second tables are generated once into bench/results/warm_start/tables
  with bench/sklearn_grid_tables.py's models and cross-validation);
* adversarial: MRPC with its accuracies mirrored (best <-> worst) -> MRPC, the worst case of negative
  transfer, to show what guards against it.

Variants: ``gp`` / ``rf`` cold (no setting) and ``gp-warm`` / ``rf-warm`` (``warm_start_experiments``),
plus the design ablation ``gp-warm-init1`` / ``gp-warm-init3`` (warm start with ``n_initial_points``
1 or 3 = the cold design size instead of the automatic 0). Outcomes (lower is better): trials to the
best, trials to within 0.5% of the best, cost to the best (fraction of the grid's training seconds);
warm vs cold is a paired Wilcoxon signed-rank test over seeds.

Writes bench/results/warm_start/{runs.csv,outcomes.csv,summary.md} and, with ``--write``, the section
``warm-start`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.optimizers.harness import RunResult, run_one  # noqa: E402
from bench.optimizers.metrics import grid_outcomes, paired  # noqa: E402
from bench.optimizers.peers import Problem  # noqa: E402
from bench.optimizers.service import ServiceBackend, ServiceOptimizer  # noqa: E402
from bench.optimizers.tasks import TABLES_DIR, GridTask, load_table  # noqa: E402
from suggestion_service.priors import PriorExperiment, PriorTrial, StaticPriorSource  # noqa: E402
from suggestion_service.seeding import rng_from  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "warm_start"
GENERATED = RESULTS / "tables"
COMMAND = "python bench/warm_start.py"
NAMESPACE = "bench"
METRICS = ("trials_to_best", "trials_to_near", "cost_to_best")
ALPHA = 0.05

#: name -> (algorithm, extra settings, warm?)
VARIANTS: dict[str, tuple[str, tuple[tuple[str, str], ...], bool]] = {
    "gp": ("surrogate-gp", (), False),
    "gp-warm": ("surrogate-gp", (), True),
    "rf": ("surrogate-rf", (), False),
    "rf-warm": ("surrogate-rf", (), True),
    "gp-warm-init1": ("surrogate-gp", (("n_initial_points", "1"),), True),
    "gp-warm-init3": ("surrogate-gp", (("n_initial_points", "3"),), True),
}
#: The comparisons reported: (warm variant, its cold baseline).
COMPARISONS = (
    ("gp-warm", "gp"),
    ("rf-warm", "rf"),
    ("gp-warm-init1", "gp"),
    ("gp-warm-init3", "gp"),
)


@dataclass(frozen=True)
class Pair:
    """A transfer case: the prior comes from ``source``, the runs optimise ``target``."""

    name: str
    kind: str  # cross-task | re-tune | sklearn | adversarial
    source: str  # table name (see ``load_tables``)
    target: str


PAIRS: tuple[Pair, ...] = (
    Pair("sst2->mrpc", "cross-task", "tiny_sst2", "tiny_mrpc"),
    Pair("mrpc->sst2", "cross-task", "tiny_mrpc", "tiny_sst2"),
    Pair("mrpc->mrpc", "re-tune", "tiny_mrpc", "tiny_mrpc"),
    Pair("svm digits->breast", "sklearn", "sklearn_svm_digits", "sklearn_svm_breast"),
    Pair("gb breast->wine", "sklearn", "sklearn_gb_breast", "sklearn_gb_wine"),
    Pair("mlp wine->breast", "sklearn", "sklearn_mlp_wine", "sklearn_mlp_breast"),
    Pair("mirrored mrpc->mrpc", "adversarial", "tiny_mrpc_mirrored", "tiny_mrpc"),
)

#: Generated tables: name -> (grid of bench/sklearn_grid_tables.py reused, dataset).
GENERATED_TABLES = {
    "sklearn_svm_breast": ("svm_digits", "breast"),
    "sklearn_gb_wine": ("gb_breast", "wine"),
    "sklearn_mlp_breast": ("mlp_wine", "breast"),
}


# ---- tables -------------------------------------------------------------------------------------------


def generate_table(name: str, force: bool = False) -> Path:
    """Write (once) a generated table: a grid of bench/sklearn_grid_tables.py trained on another dataset,
    with the same model factory and cross-validation as the shipped tables."""
    path = GENERATED / f"{name}.csv"
    if path.exists() and not force:
        return path
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    from bench.optimizers.tasks import load_dataset
    from bench.sklearn_grid_tables import GRIDS, Grid, evaluate

    grid_name, dataset = GENERATED_TABLES[name]
    base = next(g for g in GRIDS if g.name == grid_name)
    grid = Grid(name.removeprefix("sklearn_"), dataset, base.grid, base.build)
    X, y, classification = load_dataset(dataset)  # noqa: N806
    splitter = (RepeatedStratifiedKFold if classification else RepeatedKFold)(
        n_splits=3, n_repeats=2, random_state=0
    )
    data = (X, y, classification, list(splitter.split(X, y)))
    names = list(grid.grid)
    rows = []
    for values in itertools.product(*grid.grid.values()):
        score, seconds = evaluate(grid, dict(zip(names, values, strict=True)), data)
        rows.append([*values, f"{score:.6f}", f"{seconds:.4f}"])
    GENERATED.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        handle.write(
            f"# {COMMAND} (grid {grid_name} of bench/sklearn_grid_tables.py on dataset {dataset}, "
            "3-fold x 2 repeats CV)\n"
        )
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*names, "accuracy" if classification else "r2", "train_seconds"])
        writer.writerows(rows)
    print(f"generated {path.relative_to(ROOT)}: {len(rows)} configurations", flush=True)
    return path


def mirrored(task: GridTask, name: str) -> GridTask:
    """``task`` with every objective value reflected (best <-> worst): a maximally misleading prior."""
    finite = [v for v in task.values.values() if v is not None]
    lo, hi = min(finite), max(finite)
    values = {k: (None if v is None else round(lo + hi - v, 6)) for k, v in task.values.items()}
    return GridTask(name, list(task.params), values, dict(task.costs), task.maximize, task.metric, "mirrored")


def load_tables(pairs: Sequence[Pair] = PAIRS, regenerate: bool = False) -> dict[str, GridTask]:
    """Every table the ``pairs`` need, by name."""
    tables: dict[str, GridTask] = {}
    for pair in pairs:
        for name in (pair.source, pair.target):
            if name in tables or name == "tiny_mrpc_mirrored":
                continue
            path = (
                generate_table(name, regenerate) if name in GENERATED_TABLES else TABLES_DIR / f"{name}.csv"
            )
            tables[name] = load_table(path, name)
    if any(p.source == "tiny_mrpc_mirrored" for p in pairs):
        tables.setdefault("tiny_mrpc", load_table(TABLES_DIR / "tiny_mrpc.csv", "tiny_mrpc"))
        tables["tiny_mrpc_mirrored"] = mirrored(tables["tiny_mrpc"], "tiny_mrpc_mirrored")
    return tables


def configurations(task: GridTask) -> list[dict[str, str]]:
    """Every configuration of a grid task, in the table's parameter order."""
    names = [p.name for p in task.params]
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(p.values for p in task.params))
    ]


# ---- priors ------------------------------------------------------------------------------------------


def prior_name(pair: Pair, seed: int) -> str:
    """The Kubernetes-style name of the prior experiment of (pair, seed)."""
    slug = "".join(c if c.isalnum() else "-" for c in pair.name.lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{slug}-s{seed}"[:63].strip("-")


def random_baseline(task: GridTask, n: int, seed_parts: Sequence[object]) -> list[PriorTrial]:
    """``n`` distinct configurations of ``task`` drawn at random, with their table values."""
    configs = configurations(task)
    order = rng_from("warm-bench-prior", *seed_parts).permutation(len(configs))[: min(n, len(configs))]
    out = []
    for i in order:
        value = task.evaluate(configs[i]).value
        metrics = {task.metric: repr(float(value))} if value is not None else {}
        out.append(PriorTrial(configs[i], metrics, succeeded=value is not None))
    return out


def build_priors(
    tables: dict[str, GridTask], pairs: Sequence[Pair], seeds: Sequence[int], n_prior: int
) -> list[PriorExperiment]:
    """The prior experiment of every (pair, seed)."""
    out = []
    for pair in pairs:
        source = tables[pair.source]
        for seed in seeds:
            trials = random_baseline(source, n_prior, [pair.name, seed])
            direction = "maximize" if source.maximize else "minimize"
            out.append(
                PriorExperiment(NAMESPACE, prior_name(pair, seed), source.metric, direction, tuple(trials))
            )
    return out


# ---- runs --------------------------------------------------------------------------------------------


class PriorBackend(ServiceBackend):
    """The loopback service of bench/optimizers, started with a static prior source."""

    def __init__(self, priors: list[PriorExperiment]) -> None:
        super().__init__(StaticPriorSource(priors))


class VariantOptimizer(ServiceOptimizer):
    """A ``VARIANTS`` entry as a Katib Experiment (``warm_start_experiments`` = ``prior`` when warm)."""

    def __init__(self, problem: Problem, backend: ServiceBackend, variant: str, prior: str | None) -> None:
        algorithm, extra, warm = VARIANTS[variant]
        super().__init__(problem, backend, algorithm)
        self.name = variant
        self.experiment.name = f"{problem.task_name.replace('_', '-')}-s{problem.seed}"
        settings = [("random_state", str(problem.seed)), *extra]
        if warm:
            if prior is None:
                raise ValueError(f"variant {variant} needs a prior experiment")
            settings.append(("warm_start_experiments", f"{NAMESPACE}/{prior}"))
        algo = self.experiment.spec.algorithm
        del algo.algorithm_settings[:]
        for k, v in settings:
            algo.algorithm_settings.add(name=k, value=v)


def run_variant(
    backend: ServiceBackend, task: GridTask, variant: str, seed: int, prior: str | None
) -> RunResult:
    """One run to the grid's best configuration (or the grid size)."""
    return run_one(
        task,
        lambda problem: VariantOptimizer(problem, backend, variant, prior),
        variant,
        seed,
        budget=task.size,
        stop_at_best=True,
    )


@dataclass(frozen=True)
class Row:
    """One run's outcomes."""

    pair: str
    kind: str
    variant: str
    seed: int
    values: dict[str, float]
    trials: int
    ask_ms_p95: float


def run_all(
    tables: dict[str, GridTask],
    pairs: Sequence[Pair],
    seeds: Sequence[int],
    n_prior: int,
    variants: Sequence[str],
    log: bool = True,
) -> tuple[list[Row], list[RunResult]]:
    """Every (pair, variant, seed); cold runs are shared by the pairs with the same target."""
    priors = build_priors(tables, pairs, seeds, n_prior)
    rows: list[Row] = []
    runs: list[RunResult] = []
    cold_cache: dict[tuple[str, str, int], RunResult] = {}
    started = time.perf_counter()
    with PriorBackend(priors) as backend:
        for pair in pairs:
            task = tables[pair.target]
            for variant in variants:
                warm = VARIANTS[variant][2]
                for seed in seeds:
                    key = (pair.target, variant, seed)
                    if not warm and key in cold_cache:
                        run = cold_cache[key]
                    else:
                        run = run_variant(
                            backend, task, variant, seed, prior_name(pair, seed) if warm else None
                        )
                        if run.error:
                            raise RuntimeError(f"{pair.name} {variant} seed {seed}: {run.error}")
                        runs.append(run)
                        if not warm:
                            cold_cache[key] = run
                    outcomes = {o.metric: o.value for o in grid_outcomes(task, run)}
                    asks = [r.ask_seconds * 1000 for r in run.records]
                    rows.append(
                        Row(pair.name, pair.kind, variant, seed, {m: outcomes[m] for m in METRICS},
                            len(run.records), float(np.percentile(asks, 95)))
                    )  # fmt: skip
            if log:
                print(f"{pair.name}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    return rows, runs


# ---- summary -----------------------------------------------------------------------------------------


def wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (1.0 when all differences are 0)."""
    from scipy.stats import wilcoxon

    d = x - y
    if len(d) < 2 or np.allclose(d, 0.0):
        return 1.0
    try:
        return float(wilcoxon(x, y, zero_method="zsplit").pvalue)
    except ValueError:
        return 1.0


def summarize(rows: list[Row], seeds: Sequence[int]) -> tuple[list[dict[str, object]], str]:
    """Per (pair, comparison, metric): means, warm/cold ratio, Wilcoxon p, verdict; and a Markdown table."""
    by: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    kinds: dict[str, str] = {}
    for r in rows:
        kinds[r.pair] = r.kind
        for m in METRICS:
            by[(r.pair, r.variant)][m][r.seed] = r.values[m]
    records: list[dict[str, object]] = []
    for pair in dict.fromkeys(r.pair for r in rows):
        for warm, cold in COMPARISONS:
            if (pair, warm) not in by or (pair, cold) not in by:
                continue
            for m in METRICS:
                x, y = paired(by[(pair, warm)][m], by[(pair, cold)][m])
                p = wilcoxon_p(x, y)
                mean_w, mean_c = float(np.mean(x)), float(np.mean(y))
                verdict = "tie" if not p < ALPHA else ("better" if mean_w < mean_c else "worse")
                records.append({
                    "pair": pair, "kind": kinds[pair], "warm": warm, "cold": cold, "metric": m,
                    "n_seeds": len(x), "mean_warm": mean_w, "mean_cold": mean_c,
                    "ratio": mean_w / mean_c if mean_c else math.nan, "p_value": p, "verdict": verdict,
                })  # fmt: skip
    lines = [
        "| pair | kind | comparison | trials to best (warm / cold) | trials to within 0.5% | cost to best "
        "(share of grid) | Wilcoxon p (trials to best) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    index = {(r["pair"], r["warm"], r["metric"]): r for r in records}
    for pair in dict.fromkeys(r.pair for r in rows):
        for warm, cold in COMPARISONS:
            if (pair, warm, "trials_to_best") not in index:
                continue
            t, n, c = (index[(pair, warm, m)] for m in METRICS)
            lines.append(
                f"| {pair} | {kinds[pair]} | {warm} vs {cold} | {t['mean_warm']:.2f} / {t['mean_cold']:.2f} "
                f"| {n['mean_warm']:.2f} / {n['mean_cold']:.2f} | {c['mean_warm']:.2f} / {c['mean_cold']:.2f} "
                f"| {t['p_value']:.3g} | {t['verdict']} |"
            )
    return records, "\n".join(lines)


def write_csvs(rows: list[Row], runs: list[RunResult], records: list[dict[str, object]]) -> None:
    """bench/results/warm_start/{outcomes,runs,comparisons}.csv."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "outcomes.csv").open("w", newline="") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(["pair", "kind", "variant", "seed", *METRICS, "trials", "ask_ms_p95"])
        for r in rows:
            w.writerow([r.pair, r.kind, r.variant, r.seed, *(f"{r.values[m]:.6g}" for m in METRICS), r.trials,
                        f"{r.ask_ms_p95:.1f}"])  # fmt: skip
    with (RESULTS / "runs.csv").open("w", newline="") as handle:
        w = csv.writer(handle, lineterminator="\n")
        w.writerow(["task", "variant", "experiment_seed", "index", "config", "value", "cost", "ask_ms"])
        for run in runs:
            for t in run.records:
                w.writerow([t.task, t.optimizer, t.seed, t.index, t.config, "" if t.value is None else t.value,
                            t.cost, f"{t.ask_seconds * 1000:.1f}"])  # fmt: skip
    with (RESULTS / "comparisons.csv").open("w", newline="") as handle:
        w = csv.DictWriter(handle, fieldnames=list(records[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(records)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per pair and variant (default 20)")
    parser.add_argument("--prior-trials", type=int, default=12, help="trials of each prior (default 12)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of "
                        + ", ".join(VARIANTS))  # fmt: skip
    parser.add_argument("--pairs", default="", help="comma-separated subset of the pairs (default: all): "
                        + ", ".join(p.name for p in PAIRS))  # fmt: skip
    parser.add_argument("--regenerate-tables", action="store_true", help="retrain the generated tables")
    parser.add_argument("--write", default=None, help="write the warm-start section of this Markdown file")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; allowed: {', '.join(VARIANTS)}")
    wanted = [w.strip() for w in args.pairs.split(",") if w.strip()]
    bad = sorted(set(wanted) - {p.name for p in PAIRS})
    if bad:
        parser.error(f"unknown pair(s) {bad}; allowed: {', '.join(p.name for p in PAIRS)}")
    pairs = [p for p in PAIRS if not wanted or p.name in wanted]
    if args.seeds < 2 or args.prior_trials < 1:
        parser.error("--seeds must be >= 2 and --prior-trials >= 1")
    started = time.perf_counter()
    tables = load_tables(pairs, args.regenerate_tables)
    seeds = list(range(args.seeds))
    rows, runs = run_all(tables, pairs, seeds, args.prior_trials, variants)
    records, table = summarize(rows, seeds)
    write_csvs(rows, runs, records)
    minutes = (time.perf_counter() - started) / 60
    p95 = float(np.percentile([r.ask_ms_p95 for r in rows], 95))
    command = f"{COMMAND} --seeds {args.seeds} --prior-trials {args.prior_trials}" + (
        f" --variants {args.variants}" if args.variants != ",".join(VARIANTS) else ""
    )
    if wanted:
        command += f" --pairs '{args.pairs}'"
    summary = render(table, command, tables, pairs, seeds, args.prior_trials, minutes, p95)
    (RESULTS / "summary.md").write_text(summary + "\n")
    print(table)
    if args.write:
        from bench.report import write_section

        write_section(args.write, "warm-start", summary)
        print(f"wrote section warm-start of {args.write}")
    return 0


def render(
    table: str, command: str, tables: dict[str, GridTask], pairs: Sequence[Pair], seeds: Sequence[int],
    n_prior: int, minutes: float, p95: float,
) -> str:  # fmt: skip
    """The docs/benchmarks.md section (the analysis text lives in docs/service-algorithms.md)."""
    sizes = ", ".join(f"{p.name}: {tables[p.target].size}" for p in pairs)
    return "\n".join([
        "## Warm start (issue 8)",
        "",
        "```",
        command + " --write docs/benchmarks.md   # make bench-warm-start",
        "```",
        "",
        f"Cold vs warm-started surrogates through the real gRPC service, {len(seeds)} seeds per pair and "
        f"variant, one trial at a time until the target grid's best configuration is evaluated. The prior "
        f"is the source task's random-search baseline: {n_prior} distinct configurations drawn at random "
        "per seed. Means over seeds, lower is better; cost = training seconds as a share of the whole "
        "grid's; verdict = paired Wilcoxon signed-rank test on trials to the best at p < 0.05. "
        f"Target grid sizes: {sizes}. `gp-warm-init1/3` keep 1 or 3 own design points under warm start "
        "(the automatic choice is 0). Per-run CSVs: bench/results/warm_start/. "
        f"Ran in {minutes:.1f} min on 2 shared CPU cores; p95 of the per-run p95 GetSuggestions time: "
        f"{p95:.0f} ms.",
        "",
        table,
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
