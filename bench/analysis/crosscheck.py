"""Cross-check tuned variants on the whole benchmark suite against the peers' full-run results.

    python bench/analysis/crosscheck.py --variants gp,gp-pi-n2 [--families grid,function,live]

Runs each sweep variant (``bench/analysis/sweep.py``: settings, or a PROTOTYPE's search parts given to
that variant's runs only) on the FULL suite's problems and seeds (``bench.optimizers.suites.FULL``: 10 grids
x 20 seeds, 3 COCO functions x 10 seeds, 2 live tasks x 10 seeds x seq/batch4 x budgets 16/32), through
the benchmark's own runner, into ``bench/results/crosscheck/`` (resumable). The outcomes are computed
together with the peers' runs in ``bench/results/full`` (same problems and seeds; live scores are
normalised with the same random-search runs), and each candidate is ranked against the peers that ran
on every problem -- one candidate at a time, so candidates do not push each other down.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

import numpy as np  # noqa: E402

from bench.analysis.sweep import SWEEP, register  # noqa: E402
from bench.optimizers import metrics  # noqa: E402
from bench.optimizers.peers import PEERS  # noqa: E402
from bench.optimizers.runner import build_tasks, load_results, outcomes, run_suite  # noqa: E402
from bench.optimizers.service import PROTOTYPE_PARTS  # noqa: E402
from bench.optimizers.suites import FULL, SEED_SHAPED  # noqa: E402
from bench.report import write_section  # noqa: E402

PREFIX = "cand:"
FULL_DIR = REPO / "bench" / "results" / "full"
OUT_DIR = REPO / "bench" / "results" / "crosscheck"


def run_candidates(names: Sequence[str], families: Sequence[str], out: Path, prefix: str = PREFIX) -> None:
    """Run every candidate on the FULL suite's problems of ``families`` (resuming what ``out`` holds).
    The optimizer (and so the experiment) name is ``prefix`` + the variant name: another prefix gives
    the same algorithm another random stream (how much do results move with it alone?)."""
    for name in names:
        variant = SWEEP[name]
        register([variant], prefix)
        if variant.parts is not None:  # a prototype's parts for no particular task
            PROTOTYPE_PARTS[prefix + name] = variant.parts(None)
        run_suite(FULL, out, [prefix + name], families, resume=True,
                  log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip


def standings(
    names: Sequence[str], families: Sequence[str], out: Path, prefixes: Sequence[str] = (PREFIX,)
) -> str:
    """Markdown: per candidate its means and average rank per family and over the whole suite, in a
    field of the peers that ran on every problem (plus the published ``surrogate-gp`` as a reference)."""
    tasks = build_tasks(FULL, families)
    runs = [r for r in load_results(FULL_DIR) if r.optimizer in PEERS or r.optimizer == "surrogate-gp"]
    wanted = {p + n for p in prefixes for n in names}
    runs += [r for r in load_results(out) if r.optimizer in wanted]
    rows = outcomes(tasks, runs, FULL)
    primary = [o for o in rows if o.metric == metrics.PRIMARY[o.family]]
    values: dict[str, dict[str, dict[int, float]]] = {}
    for o in primary:
        values.setdefault(o.problem, {}).setdefault(o.optimizer, {})[o.seed] = o.value
    peers = metrics.common_optimizers(values, [p for p in PEERS if p not in ("grid", "hebo")])
    fams = {o.problem: o.family for o in primary}
    lines = [
        "| candidate | seed-shaped trials to best | … within 0.5% | … cost % | functions log10 regret | "
        "live score | rank grid | rank function | rank live | rank whole suite | field |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    others = ["surrogate-gp", *[p + n for n in names for p in prefixes]]
    for cand in others:
        field = [*peers, cand]
        ranks = {}
        for fam in ("grid", "function", "live"):
            sub = {p: v for p, v in values.items() if fams[p] == fam}
            r = metrics.mean_ranks(sub, field)
            ranks[fam] = r.get(cand, float("nan"))
        whole = metrics.mean_ranks(values, field)
        position = 1 + sum(1 for o in field if whole.get(o, np.inf) < whole.get(cand, np.inf))

        def mean_of(metric: str, problems: Sequence[str], optimizer: str = cand) -> float:
            vals = [
                o.value
                for o in rows
                if o.metric == metric and o.optimizer == optimizer and o.problem in problems
            ]
            return float(np.mean(vals)) if vals else float("nan")

        seed_probs = [f"{t}/seq" for t in SEED_SHAPED]
        fun_probs = sorted({o.problem for o in rows if o.family == "function"})
        live = [o for o in rows if o.family == "live" and o.optimizer == cand]
        live_score = 100 * (1 - float(np.mean([o.value for o in live]))) if live else float("nan")
        lines.append(
            f"| `{cand}` | {mean_of('trials_to_best', seed_probs):.2f} | "
            f"{mean_of('trials_to_near', seed_probs):.2f} | {100 * mean_of('cost_to_best', seed_probs):.0f} | "
            f"{mean_of('log10_regret', fun_probs):.2f} | {live_score:.1f} | {ranks['grid']:.2f} | "
            f"{ranks['function']:.2f} | {ranks['live']:.2f} | {whole.get(cand, float('nan')):.2f} "
            f"(#{position} of {len(field)}) | {len(peers)} peers + it |"
        )
    best_peer = min((metrics.mean_ranks(values, [*peers, "surrogate-gp"]).get(p, np.inf), p) for p in peers)
    lines += ["", f"Best peer in the field with `surrogate-gp`: {best_peer[1]} ({best_peer[0]:.2f})."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", required=True, help=f"comma-separated, from: {', '.join(SWEEP)}")
    parser.add_argument("--families", default="grid,function,live")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--write",
        type=Path,
        default=None,
        help="Markdown file to write the standings into (section --section)",
    )
    parser.add_argument("--section", default="optimizers-streams", help="section name for --write")
    parser.add_argument(
        "--prefixes", default=PREFIX, help="comma-separated name prefixes (random streams) to run and report"
    )
    args = parser.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in SWEEP]
    if unknown or not names:
        parser.error(f"unknown variants {unknown or args.variants!r}; allowed: {', '.join(SWEEP)}")
    families = [f for f in args.families.split(",") if f]
    if not families or set(families) - {"grid", "function", "live"}:
        parser.error(f"--families: a subset of grid,function,live, got {args.families!r}")
    prefixes = [p for p in args.prefixes.split(",") if p]
    if not prefixes or any(not p.endswith(":") for p in prefixes):
        parser.error(f"--prefixes: names ending in ':' (e.g. cand:,cand-b:), got {args.prefixes!r}")
    if not args.report_only:
        for prefix in prefixes:
            run_candidates(names, families, args.out, prefix)
    table = standings(names, families, args.out, prefixes)
    print(table)
    if args.write:
        command = "python bench/analysis/crosscheck.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        write_section(args.write, args.section, stream_report(command, names, prefixes, table))
    return 0


def stream_report(command: str, names: Sequence[str], prefixes: Sequence[str], table: str) -> str:
    """The Markdown section: what was run (the same code under several experiment names, i.e. random
    streams) and the standings table."""
    streams = ", ".join(f"`{p}`" for p in prefixes)
    return "\n".join([
        "## Optimizer benchmark: the same algorithm under other random streams",
        "",
        f"Command: `{command.strip()}` (bench environment; the peers' runs are those of the full run in "
        "`bench/results/full`, same problems and seeds).",
        "",
        f"Each candidate ({', '.join(f'`{n}`' for n in names)}) runs the service's current code under the "
        f"experiment-name prefixes {streams}: the seeds are the same, but the name feeds the service's "
        "random choices, so each prefix is another random stream of the same algorithm. Each row is ranked "
        "on its own in a field of the peers that ran on every problem; `surrogate-gp` is the full run's. "
        "How far the rows move between streams is how much of a rank difference is noise.",
        "",
        table,
    ])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
