"""Optimizer benchmark (issue 6): our surrogate algorithms over gRPC against the peers, side by side.

    python bench/run_optimizers.py --suite quick                    # make bench-quick (< 15 min)
    python bench/run_optimizers.py --suite full --write docs/benchmarks.md   # make bench

Runs in the bench environment (``make bench-venv``: the service's dependencies plus the peers). Every
optimizer runs through the same ask/tell loop with the same seeds; ours is asked through the real
gRPC service on loopback with Katib-shaped requests. Results go to ``bench/results/<suite>/`` (CSV and
PNG) and, with ``--write``, to the ``optimizers-<suite>`` section of docs/benchmarks.md. An
interrupted run resumes where it stopped (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.optimizers import report  # noqa: E402
from bench.optimizers.runner import eprint, outcomes, run_seconds, run_suite, write_outcomes  # noqa: E402
from bench.optimizers.suites import SUITES  # noqa: E402
from bench.report import write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--optimizers", default="", help="comma-separated subset (default: the suite's)")
    parser.add_argument("--families", default="grid,function,live", help="subset of grid,function,live")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default bench/results/<suite>)"
    )
    parser.add_argument("--write", type=Path, default=None, help="Markdown file to write the section into")
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in the folder")
    parser.add_argument(
        "--rerun", default="", help="comma-separated optimizers whose earlier runs are redone"
    )
    parser.add_argument("--report-only", action="store_true", help="run nothing: report what --out holds")
    args = parser.parse_args(argv)
    suite = SUITES[args.suite]
    families = [f for f in args.families.split(",") if f]
    bad = sorted(set(families) - {"grid", "function", "live"})
    if bad:
        parser.error(f"unknown families {bad}; allowed: grid, function, live")
    optimizers = [o for o in args.optimizers.split(",") if o] or list(suite.optimizers)
    out = args.out or ROOT / "bench" / "results" / suite.name
    started = time.perf_counter()
    try:
        tasks, runs, skipped = run_suite(suite, out, optimizers, families, resume=not args.fresh,
                                         rerun=[o for o in args.rerun.split(",") if o], log=eprint,
                                         dry=args.report_only)  # fmt: skip
    except ValueError as exc:
        parser.error(str(exc))
    runs = [r for r in runs if r.optimizer in optimizers]
    rows = outcomes(tasks, runs, suite)
    write_outcomes(out / "outcomes.csv", rows)
    images = report.plots(rows, list(dict.fromkeys(r.optimizer for r in runs)), out, suite.name)
    command = "python bench/run_optimizers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rel = [os.path.relpath(p, (args.write or ROOT / "docs" / "x").parent) for p in images]
    markdown = report.render(suite, command.strip(), tasks, runs, rows, skipped, rel, run_seconds(out))
    (out / "summary.md").write_text(markdown + "\n")
    if args.write:
        write_section(args.write, f"optimizers-{suite.name}", markdown)
    eprint(f"done in {(time.perf_counter() - started) / 60:.1f} min: {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
