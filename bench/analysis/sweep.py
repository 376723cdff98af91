"""Settings sweep of our surrogate algorithms on the grid tables, with paired comparisons.

    python bench/analysis/sweep.py run --variants gp,gp-pi --seeds 0-39 --tables seed --out bench/results/sweep/dev.csv
    python bench/analysis/sweep.py report --csv bench/results/sweep/dev.csv --baseline gp --tables seed

Every variant is ``surrogate-gp`` / ``surrogate-rf`` with some ``algorithmSettings`` (what a Katib user
can set), driven through the real gRPC service exactly as the benchmark does
(``bench.optimizers.service.ServiceOptimizer``), or a PROTOTYPE from ``bench.optimizers.experimental``
(another model or acquisition, passed to a loopback server of the service as its ``SearchParts``; see
that module). Runs are sequential, until the grid's best configuration is evaluated or 3 x N trials.
The experiment name is the same for every variant of one (table, seed), so variants that differ only
by a prototype share their random stream (common random numbers: a sharper paired comparison).

``run`` appends one row per run to the CSV (an interrupted sweep resumes); ``report`` prints, per
variant, the mean trials to the best / to within 0.5% / cost to the best over the chosen tables, and
the paired difference to the baseline over (table, seed) pairs with a Wilcoxon signed-rank p-value
and a bootstrap 95% interval of the mean difference.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # appended: a PYTHONPATH copy of suggestion_service (a snapshot) wins
    sys.path.append(str(REPO))

import numpy as np  # noqa: E402

from bench.optimizers import experimental  # noqa: E402
from bench.optimizers.harness import run_one  # noqa: E402
from bench.optimizers.peers import Problem  # noqa: E402
from bench.optimizers.service import VARIANTS, ServiceBackend, ServiceOptimizer  # noqa: E402
from bench.optimizers.suites import SEED_SHAPED  # noqa: E402
from bench.optimizers.tasks import TABLES_DIR, GridTask, load_table  # noqa: E402
from suggestion_service.bayesopt import DEFAULT_PARTS, SearchParts  # noqa: E402

FIELDS = ("table", "variant", "seed", "trials_to_best", "trials_to_near", "cost_to_best", "cost_to_near",
          "trials", "ask_ms_mean", "ask_ms_late", "error")  # fmt: skip
METRICS = ("trials_to_best", "trials_to_near", "cost_to_best")


@dataclass(frozen=True)
class Variant:
    """One configuration of ours: Katib algorithm, algorithmSettings, optional prototype (its search
    parts per task)."""

    name: str
    algorithm: str
    settings: tuple[tuple[str, str], ...] = ()
    parts: experimental.Prototype | None = None
    note: str = ""

    @property
    def prototype(self) -> bool:
        """True when the variant changes the service's code (not reachable by settings alone)."""
        return self.parts is not None


def _v(
    name: str, algorithm: str, note: str, parts: experimental.Prototype | None = None, **settings: str
) -> Variant:
    return Variant(name, algorithm, tuple(settings.items()), parts, note)


GP, RF = "surrogate-gp", "surrogate-rf"
SWEEP: dict[str, Variant] = {v.name: v for v in (
    _v("gp", GP, "surrogate-gp defaults (ei, auto initial points, rank, kriging believer)"),
    _v("gp-pi", GP, "acquisition pi", acquisition="pi"),
    _v("gp-pi-n2", GP, "acquisition pi, n_initial_points 2", acquisition="pi", n_initial_points="2"),
    _v("gp-pi-n1", GP, "acquisition pi, n_initial_points 1", acquisition="pi", n_initial_points="1"),
    _v("gp-n1", GP, "n_initial_points 1", n_initial_points="1"),
    _v("gp-n2", GP, "n_initial_points 2", n_initial_points="2"),
    _v("gp-n3", GP, "n_initial_points 3 (= auto on 24 points: same algorithm, another random stream)", n_initial_points="3"),
    _v("gp-n5", GP, "n_initial_points 5", n_initial_points="5"),
    _v("gp-ucb1", GP, "acquisition ucb, kappa 1", acquisition="ucb", kappa="1"),
    _v("gp-ucb196", GP, "acquisition ucb, kappa 1.96", acquisition="ucb"),
    _v("gp-ucb3", GP, "acquisition ucb, kappa 3", acquisition="ucb", kappa="3"),
    _v("gp-xi01", GP, "ei, xi 0.1", xi="0.1"),
    _v("gp-xi05", GP, "ei, xi 0.5", xi="0.5"),
    _v("gp-pi-xi01", GP, "pi, xi 0.1", acquisition="pi", xi="0.1"),
    _v("gp-pi-xi05", GP, "pi, xi 0.5", acquisition="pi", xi="0.5"),
    _v("gp-std", GP, "output_transform standardize", output_transform="standardize"),
    _v("gp-pi-std", GP, "pi, output_transform standardize", acquisition="pi", output_transform="standardize"),
    _v("gp-r0", GP, "gp_restarts 0", gp_restarts="0"),
    _v("gp-r3", GP, "gp_restarts 3", gp_restarts="3"),
    _v("rf", RF, "surrogate-rf defaults (random_forest, 64 trees, ei)"),
    _v("rf-et", RF, "forest_kind extra_trees", forest_kind="extra_trees"),
    _v("rf-t256", RF, "n_trees 256", n_trees="256"),
    _v("rf-pi", RF, "acquisition pi", acquisition="pi"),
    _v("rf-n2", RF, "n_initial_points 2", n_initial_points="2"),
    _v("rf-pi-n2", RF, "pi, n_initial_points 2", acquisition="pi", n_initial_points="2"),
    _v("rf-et-pi", RF, "extra_trees, pi", forest_kind="extra_trees", acquisition="pi"),
    _v("rf-ucb1", RF, "ucb, kappa 1", acquisition="ucb", kappa="1"),
    # PROTOTYPES (code changes, see bench/optimizers/experimental.py)
    _v("gp-off0", GP, "PROTOTYPE prior mean offset 0", experimental.prior_offset(0.0)),
    _v("gp-off1", GP, "PROTOTYPE prior mean offset 1.0", experimental.prior_offset(1.0)),
    _v("gp-off2", GP, "PROTOTYPE prior mean offset 2.0", experimental.prior_offset(2.0)),
    _v("gp-pi-off1", GP, "PROTOTYPE pi + prior mean offset 1.0", experimental.prior_offset(1.0), acquisition="pi"),
    _v("gp-ls01", GP, "PROTOTYPE length scales >= 0.1", experimental.length_scale_bounds(0.1, 20.0)),
    _v("gp-ls03", GP, "PROTOTYPE length scales >= 0.3", experimental.length_scale_bounds(0.3, 20.0)),
    _v("gp-port3", GP, "PROTOTYPE round robin ei/pi/ucb", experimental.portfolio(("ei", "pi", "ucb"))),
    _v("gp-port-eipi", GP, "PROTOTYPE round robin ei/pi", experimental.portfolio(("ei", "pi"))),
    _v("gp-port-piucb", GP, "PROTOTYPE round robin pi/ucb", experimental.portfolio(("pi", "ucb"))),
    _v("gp-stall3", GP, "PROTOTYPE ucb kappa 3 after 3 trials without improvement", experimental.stall_explore(3)),
    _v("gp-stall5", GP, "PROTOTYPE ucb kappa 3 after 5 trials without improvement", experimental.stall_explore(5)),
    _v("gp-stall3-xi", GP, "PROTOTYPE ei xi 0.5 after 3 trials without improvement",
       experimental.stall_explore(3, "ei", xi=0.5)),
    _v("gp-stall2-xi", GP, "PROTOTYPE ei xi 0.5 after 2 trials without improvement",
       experimental.stall_explore(2, "ei", xi=0.5)),
    _v("gp-stall5-xi", GP, "PROTOTYPE ei xi 0.5 after 5 trials without improvement",
       experimental.stall_explore(5, "ei", xi=0.5)),
    _v("gp-stall3-xi1", GP, "PROTOTYPE ei xi 1.0 after 3 trials without improvement",
       experimental.stall_explore(3, "ei", xi=1.0)),
    _v("gp-tie-xi", GP, "PROTOTYPE ei xi 0.5 while 2+ trials share the best value (non-enumerable spaces)",
       experimental.tie_explore("ei", xi=0.5)),
    _v("gp-tie-xi1", GP, "PROTOTYPE ei xi 1.0 while 2+ trials share the best value (non-enumerable spaces)",
       experimental.tie_explore("ei", xi=1.0)),
    _v("gp-tie-ucb", GP, "PROTOTYPE ucb kappa 3 while 2+ trials share the best value (non-enumerable spaces)",
       experimental.tie_explore("ucb")),
    _v("gp-oracle", GP, "LIMITS: kernel fitted on the whole table", experimental.oracle_kernel()),
    _v("gp-pi-oracle", GP, "LIMITS: pi, kernel fitted on the whole table", experimental.oracle_kernel(),
       acquisition="pi"),
)}  # fmt: skip


def register(variants: Iterable[Variant], prefix: str = "sweep:") -> None:
    """Make the variants known to ``bench.optimizers.service`` as ``prefix`` + name (its VARIANTS
    table, this process only)."""
    for v in variants:
        VARIANTS[prefix + v.name] = (v.algorithm, v.settings)


class SweepOptimizer(ServiceOptimizer):
    """ServiceOptimizer whose experiment name depends on (task, seed) only (common random numbers)."""

    def __init__(
        self, problem: Problem, backend: ServiceBackend, variant: Variant, parts: SearchParts
    ) -> None:
        super().__init__(problem, backend, f"sweep:{variant.name}", parts)
        self.experiment.name = f"{problem.task_name}-sweep-s{problem.seed}"


def table_names(which: str) -> list[str]:
    """``seed`` (the six seed-shaped 24-configuration grids), ``all`` or a comma-separated list."""
    present = sorted(p.stem for p in TABLES_DIR.glob("*.csv"))
    if which == "seed":
        return [t for t in present if t in SEED_SHAPED]
    if which == "all":
        return present
    names = [t for t in which.split(",") if t]
    unknown = sorted(set(names) - set(present))
    if unknown or not names:
        raise ValueError(f"unknown tables {unknown or which!r}; allowed: seed, all or names from {present}")
    return names


def parse_seeds(text: str) -> list[int]:
    """``0-39`` (inclusive range) or ``1,5,9``."""
    try:
        if "-" in text:
            lo, hi = (int(t) for t in text.split("-", 1))
            if hi < lo:
                raise ValueError
            return list(range(lo, hi + 1))
        return [int(t) for t in text.split(",") if t]
    except ValueError:
        raise ValueError(f"seeds must look like 0-39 or 1,5,9, got {text!r}") from None


def one_run(task: GridTask, variant: Variant, backend: ServiceBackend, seed: int, parallel: int = 1) -> dict:
    """One run of ``variant`` on ``task``: the CSV row (metrics as in bench.optimizers.metrics)."""
    register([variant])
    parts = variant.parts(task) if variant.parts else DEFAULT_PARTS
    result = run_one(task, lambda p: SweepOptimizer(p, backend, variant, parts), variant.name, seed,
                     3 * task.size, parallel=parallel, stop_at_best=True)  # fmt: skip
    if result.error:
        raise RuntimeError(f"{variant.name} on {task.name}, seed {seed}: {result.error}")
    recs = result.records
    total = task.total_cost()
    first_best = next((r.index for r in recs if task.is_best(r.value)), len(recs))
    first_near = next((r.index for r in recs if task.is_near(r.value)), len(recs))
    asks = [r.ask_seconds * 1000 for r in recs]
    late = [r.ask_seconds * 1000 for r in recs if 25 <= r.index <= 32]
    return {
        "table": task.name, "variant": variant.name, "seed": seed,
        "trials_to_best": first_best, "trials_to_near": first_near,
        "cost_to_best": f"{sum(r.cost for r in recs[:first_best]) / total:.5f}",
        "cost_to_near": f"{sum(r.cost for r in recs[:first_near]) / total:.5f}",
        "trials": len(recs), "ask_ms_mean": f"{np.mean(asks):.2f}" if asks else "",
        "ask_ms_late": f"{np.mean(late):.2f}" if late else "", "error": result.error,
    }  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a sweep CSV (empty if it does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def run(variants: Sequence[Variant], tables: Sequence[str], seeds: Sequence[int], out: Path,
        log: Callable[[str], None] = print) -> None:  # fmt: skip
    """Run every (table, variant, seed) not yet in ``out``, appending rows as they finish."""
    done = {(r["table"], r["variant"], r["seed"]) for r in read_rows(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.is_file()
    tasks = [load_table(TABLES_DIR / f"{t}.csv") for t in tables]
    import suggestion_service

    log(f"service code: {Path(suggestion_service.__file__).parent}")
    started = time.perf_counter()
    with ServiceBackend() as backend, out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        for variant in variants:
            t0 = time.perf_counter()
            for task in tasks:
                for seed in seeds:
                    if (task.name, variant.name, str(seed)) in done:
                        continue
                    writer.writerow(one_run(task, variant, backend, seed))
                handle.flush()
            log(f"[{time.perf_counter() - started:6.0f}s] {variant.name}: {time.perf_counter() - t0:.0f}s")


@dataclass(frozen=True)
class Comparison:
    """Paired difference variant - baseline over (table, seed) pairs (negative = variant better)."""

    variant: str
    metric: str
    n: int
    mean: float
    base_mean: float
    diff: float
    lo: float
    hi: float
    p: float
    better: int
    worse: int


def values(
    rows: Sequence[dict[str, str]], variant: str, metric: str, tables: Sequence[str]
) -> dict[tuple, float]:
    """(table, seed) -> value of ``metric`` for ``variant`` on ``tables``."""
    return {(r["table"], int(r["seed"])): float(r[metric]) for r in rows
            if r["variant"] == variant and r["table"] in tables}  # fmt: skip


def compare(rows: Sequence[dict[str, str]], variant: str, baseline: str, metric: str,
            tables: Sequence[str], boot: int = 2000) -> Comparison | None:  # fmt: skip
    """Paired comparison on the (table, seed) pairs both ran (None if there are none)."""
    from scipy.stats import wilcoxon

    a, b = values(rows, variant, metric, tables), values(rows, baseline, metric, tables)
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    x = np.array([a[k] for k in keys])
    y = np.array([b[k] for k in keys])
    d = x - y
    p = 1.0 if np.all(d == 0) else float(wilcoxon(x, y, zero_method="zsplit").pvalue)
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, len(d), (boot, len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return Comparison(variant, metric, len(keys), float(x.mean()), float(y.mean()), float(d.mean()),
                      float(lo), float(hi), p, int((d < 0).sum()), int((d > 0).sum()))  # fmt: skip


def per_table_means(rows: Sequence[dict[str, str]], variant: str, metric: str, tables: Sequence[str]) -> dict:
    """table -> mean of ``metric`` for ``variant``."""
    out: dict[str, list[float]] = {}
    for (table, _), v in values(rows, variant, metric, tables).items():
        out.setdefault(table, []).append(v)
    return {t: float(np.mean(v)) for t, v in out.items()}


def report(rows: Sequence[dict[str, str]], baseline: str, tables: Sequence[str],
           variants: Sequence[str] | None = None) -> str:  # fmt: skip
    """Markdown: per variant the means, paired differences to ``baseline`` and per-table means."""
    names = list(dict.fromkeys(variants or [r["variant"] for r in rows]))
    seeds = sorted({int(r["seed"]) for r in rows if r["table"] in tables})
    lines = [f"Tables: {', '.join(tables)}; seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}). "
             f"diff = variant - `{baseline}` over paired (table, seed) runs, 95% bootstrap interval, "
             "Wilcoxon signed-rank p; better/worse = pairs where the variant needed fewer/more trials.", "",
             "| variant | setting | runs | trials to best | diff [95% CI] | p | better/worse | to within 0.5% | diff | "
             "cost to best % | diff | ms/suggestion |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name in names:
        cmp = {m: compare(rows, name, baseline, m, tables) for m in METRICS}
        if cmp["trials_to_best"] is None:
            continue
        tb, tn, cb = cmp["trials_to_best"], cmp["trials_to_near"], cmp["cost_to_best"]
        ms = [
            float(r["ask_ms_mean"])
            for r in rows
            if r["variant"] == name and r["table"] in tables and r["ask_ms_mean"]
        ]
        note = SWEEP[name].note if name in SWEEP else ""
        lines.append(
            f"| `{name}` | {note} | {tb.n} | {tb.mean:.2f} | {tb.diff:+.2f} [{tb.lo:+.2f}, {tb.hi:+.2f}] | "
            f"{tb.p:.3f} | {tb.better}/{tb.worse} | {tn.mean:.2f} | {tn.diff:+.2f} | {100 * cb.mean:.0f} | "
            f"{100 * cb.diff:+.1f} | {np.mean(ms):.0f} |"
        )
    lines += ["", "Mean trials to the best per table:", "",
              "| variant | " + " | ".join(t.replace("sklearn_", "") for t in tables) + " |",
              "|---|" + "---:|" * len(tables)]  # fmt: skip
    for name in names:
        means = per_table_means(rows, name, "trials_to_best", tables)
        if means:
            lines.append(f"| `{name}` | " + " | ".join(
                f"{means[t]:.1f}" if t in means else "–" for t in tables) + " |")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run variants, appending to --out")
    p_run.add_argument("--variants", required=True, help=f"all, or comma-separated from: {', '.join(SWEEP)}")
    p_run.add_argument("--seeds", default="0-39")
    p_run.add_argument("--tables", default="seed", help="seed | all | comma-separated table names")
    p_run.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sweep" / "dev.csv")
    p_rep = sub.add_parser("report", help="paired comparison of what --csv holds")
    p_rep.add_argument("--csv", type=Path, default=REPO / "bench" / "results" / "sweep" / "dev.csv")
    p_rep.add_argument("--baseline", default="gp")
    p_rep.add_argument("--tables", default="seed")
    p_rep.add_argument("--variants", default="", help="subset and order (default: all in the CSV)")
    args = parser.parse_args(argv)
    try:
        tables = table_names(args.tables)
        if args.command == "run":
            names = list(SWEEP) if args.variants == "all" else [v for v in args.variants.split(",") if v]
            unknown = [v for v in names if v not in SWEEP]
            if unknown or not names:
                raise ValueError(
                    f"unknown variants {unknown or args.variants!r}; allowed: {', '.join(SWEEP)}"
                )
            run([SWEEP[v] for v in names], tables, parse_seeds(args.seeds), args.out,
                log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
        else:
            rows = read_rows(args.csv)
            if not rows:
                raise ValueError(f"{args.csv} holds no sweep rows")
            subset = [v for v in args.variants.split(",") if v] or None
            print(report(rows, args.baseline, tables, subset))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
