"""The ``optimizers-tuning`` section of docs/benchmarks.md: settings sweep, holdout check, whole-suite check.

    python bench/analysis/tuning.py [--write docs/benchmarks.md]

Reads what these runs wrote (rerun them to refresh; each resumes):

    python bench/analysis/sweep.py run --variants <all of sweep.SWEEP> --seeds 0-39 --tables seed \\
        --out bench/results/sweep/dev.csv
    python bench/analysis/sweep.py run --variants gp,gp-pi,gp-pi-n2,gp-port-eipi,rf,rf-pi \\
        --seeds 1000-1029 --tables all --out bench/results/sweep/holdout.csv
    python bench/analysis/crosscheck.py --variants gp,gp-port-eipi
    python bench/analysis/crosscheck.py --variants gp --prefixes cand:,cand-b:,cand-c:

and renders the tables with the numbers the recommendation rests on.
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

from bench.analysis import crosscheck, sweep  # noqa: E402
from bench.optimizers.runner import read_csv  # noqa: E402

RESULTS = REPO / "bench" / "results"
DEV = RESULTS / "sweep" / "dev.csv"
HOLDOUT = RESULTS / "sweep" / "holdout.csv"
HOLDOUT_VARIANTS = ("gp", "gp-pi", "gp-pi-n2", "gp-port-eipi", "rf", "rf-pi")
STREAMS = ("cand:", "cand-b:", "cand-c:")


def late_ask_ms(trials_csv: Path, optimizer: str) -> float:
    """Mean ms per suggestion (ask) at trials 25-32 of ``optimizer``'s runs in a runner trials.csv
    (or its trials.csv.gz); NaN when there are none."""
    vals = [1000 * float(r["ask_seconds"]) for r in read_csv(trials_csv)
            if r["optimizer"] == optimizer and 25 <= int(r["index"]) <= 32]  # fmt: skip
    return float(np.mean(vals)) if vals else float("nan")


def render(dev: Sequence[dict[str, str]], hold: Sequence[dict[str, str]], cross_port: str, cross_streams: str,
           ms: dict[str, float]) -> str:  # fmt: skip
    """The Markdown section."""
    seed_tables = sweep.table_names("seed")
    all_tables = sweep.table_names("all")
    c = {(v, t): sweep.compare(hold, v, "gp", "trials_to_best", tabs)
         for v in HOLDOUT_VARIANTS for t, tabs in (("seed", seed_tables), ("all", all_tables))}  # fmt: skip
    d = {v: sweep.compare(dev, v, "gp", "trials_to_best", seed_tables) for v in sweep.SWEEP}
    port_h, port_a = c[("gp-port-eipi", "seed")], c[("gp-port-eipi", "all")]
    pin2_d, pin2_h = d["gp-pi-n2"], c[("gp-pi-n2", "seed")]
    oracle, pi_oracle = d["gp-oracle"], d["gp-pi-oracle"]
    assert port_h and port_a and pin2_d and pin2_h and oracle and pi_oracle, "sweep CSVs are incomplete"
    settings_rows = [
        v for k, v in d.items() if v is not None and k not in ("gp", "gp-n3") and not sweep.SWEEP[k].prototype
    ]
    best_setting = min(settings_rows, key=lambda x: x.diff)
    lines = [
        "## Optimizer tuning: settings sweep, prototypes and what to change",
        "",
        "Commands (each resumes; `PYTHONPATH` may point at a copy of `suggestion_service` to pin the code "
        "under test):",
        "",
        "```",
        "python bench/analysis/sweep.py run --variants <every variant below> --seeds 0-39 --tables seed "
        "--out bench/results/sweep/dev.csv",
        "python bench/analysis/sweep.py run --variants "
        + ",".join(HOLDOUT_VARIANTS)
        + " --seeds 1000-1029 --tables all --out bench/results/sweep/holdout.csv",
        "python bench/analysis/crosscheck.py --variants gp,gp-port-eipi",
        "python bench/analysis/crosscheck.py --variants gp --prefixes cand:,cand-b:,cand-c:",
        "python bench/analysis/tuning.py --write docs/benchmarks.md",
        "```",
        "",
        "How: every variant is `surrogate-gp` / `surrogate-rf` with `algorithmSettings` a Katib user can set, "
        "driven through the real gRPC service like the benchmark; PROTOTYPE variants temporarily patch one "
        "function of the service in the benchmark process (`bench/optimizers/experimental.py`), they are not "
        "the published algorithms. Runs are sequential until the grid's best is found. Within one (table, "
        "seed) every variant uses the same experiment name, so variants that differ only by a patch share "
        "their random stream (common random numbers). Variants were selected on *dev* seeds 0-39 of the six "
        "seed-shaped grids and re-measured on fresh *holdout* seeds 1000-1029 on all ten grids; the "
        "survivor was run on the whole suite (grids, COCO functions, live tasks) against the peers' full-run "
        "results.",
        "",
        "### Summary",
        "",
        f"- **No setting clears the bar.** The baseline needs {d['gp'] and d['gp'].base_mean:.2f} trials to "
        f"the best on the dev seeds and {port_h.base_mean:.2f} on the holdout seeds (the same code: the mean "
        f"of 180-240 runs itself moves by ~0.8 with the seeds). The best setting on dev, `{best_setting.variant}`"
        f" ({sweep.SWEEP[best_setting.variant].note}), is {best_setting.diff:+.2f} trials; every setting is "
        "within about ±0.9 trials of the default, while the bar needs about -2. For scale, `gp-n3` is the "
        "default algorithm itself (3 initial points is the automatic value on 24 points) under another random "
        f"stream, and it reads {d['gp-n3'].diff:+.2f} [{d['gp-n3'].lo:+.2f}, {d['gp-n3'].hi:+.2f}]: "  # type: ignore[union-attr]
        "differences of half a trial on 240 runs are noise.",
        f"- **`acquisition: pi, n_initial_points: 2` did not replicate.** Dev {pin2_d.diff:+.2f} "
        f"[{pin2_d.lo:+.2f}, {pin2_d.hi:+.2f}]; holdout {pin2_h.diff:+.2f} [{pin2_h.lo:+.2f}, {pin2_h.hi:+.2f}] "
        "trials on the seed-shaped grids: its earlier advantage was selection on the same seeds. It should not "
        "be documented as a setting that helps on small grids.",
        f"- **A near-perfect GP does not clear it either.** With kernel hyperparameters fitted on the whole "
        f"table (an oracle no optimizer has) the same loop needs {oracle.mean:.2f} (EI) and {pi_oracle.mean:.2f} "
        f"(PI) trials on the dev seeds ({oracle.diff:+.2f} / {pi_oracle.diff:+.2f} vs the default; see "
        "`optimizers-limits`).",
        f"- **One prototype helps a little, consistently:** alternating EI and PI by the number of completed "
        f"trials (`gp-port-eipi`): dev {d['gp-port-eipi'].diff:+.2f} (p {d['gp-port-eipi'].p:.3f}), holdout "  # type: ignore[union-attr]
        f"{port_h.diff:+.2f} [{port_h.lo:+.2f}, {port_h.hi:+.2f}] (p {port_h.p:.3f}) on the seed-shaped grids "
        f"and {port_a.diff:+.2f} [{port_a.lo:+.2f}, {port_a.hi:+.2f}] (p {port_a.p:.3f}, {port_a.better} "
        f"better / {port_a.worse} worse of {port_a.n} pairs) on all ten grids. It is a small gain (about "
        f"{-100 * port_a.diff / port_a.base_mean:.0f}%), and it does not carry over to the continuous problems "
        "(whole-suite table below).",
        f"- **Per-suggestion time** stays far under a second: {ms.get('cand:gp', float('nan')):.0f} ms "
        f"(default) and {ms.get('cand:gp-port-eipi', float('nan')):.0f} ms (EI/PI alternation) per suggestion at "
        "trials 25-32 of the live tasks, gRPC included.",
        '- **"First in average rank over the whole suite" depends on the random stream.** The same code '
        "under four experiment names (so four random streams, nothing else changed; the warm-start edits "
        "leave these runs bit-identical to the committed code) ranks first twice and third twice among the "
        "peers (table at the end): with 10 seeds per COCO function and live task, our lead over SMAC3 GP is "
        "inside the seed-to-seed noise.",
        "",
        "### Recommendation",
        "",
        "1. **Keep the defaults** (`acquisition: ei`, automatic `n_initial_points` = 3 on a 24-point grid, "
        "`output_transform: rank`, `kriging_believer`, `random_forest` with 64 trees): no setting beat them "
        "on fresh seeds. Settings that tended to hurt on the dev seeds (not re-tested on holdout): "
        f"`output_transform: standardize` ({d['gp-std'].diff:+.2f}), `kappa: 3` ({d['gp-ucb3'].diff:+.2f}), "  # type: ignore[union-attr]
        f"`n_initial_points: 5` ({d['gp-n5'].diff:+.2f}), `forest_kind: extra_trees` "  # type: ignore[union-attr]
        f"({d['rf-et'].diff:+.2f}) and the prototype prior-mean offset 2.0 ({d['gp-off2'].diff:+.2f}); "  # type: ignore[union-attr]
        "the current prior-mean offset 0.5 is as good as 0 or 1.",
        "2. **Stop recommending `acquisition: pi` + `n_initial_points: 2` for small grids** (README, "
        "docs/service-algorithms.md, the `surrogate-gp-pi` benchmark variant's description): it is not better "
        "on fresh seeds, and in the full run it was worse on the live tasks (score -11 vs 19, `optimizers-full`).",
        "3. **Optional code change, grids only: alternate EI and PI.** In `bayesopt.surrogate_search`, choose "
        "the acquisition of the call once, before `acquire` is defined, and pass `kind` instead of "
        "`settings.acquisition` to `acquisition.score`:",
        "",
        "   ```python",
        "   kind = settings.acquisition",
        '   if kind == "ei" and candidates.is_enumerable(space) and len(history.observed) % 2 == 1:',
        '       kind = "pi"  # finite grids: EI after an even number of results, PI after an odd one',
        "   ```",
        "",
        "   Measured effect (prototype `gp-port-eipi`, which alternates on every space): "
        f"{port_a.diff:+.2f} trials to the best on all ten grids, holdout seeds (p {port_a.p:.3f}); the "
        "restriction to enumerable spaces keeps continuous and mixed spaces (COCO, live tasks) exactly as "
        "they are: there the unrestricted alternation was worse than the default on the same random stream "
        "(table at the end; on the functions by more than the default moves between streams, on the live "
        "tasks by less). Per-suggestion time is unchanged. It is a ~5% gain, not a way to the bar; port it only with "
        "a full `make bench` rerun, and document it in the settings table if it becomes user-visible.",
        "4. **Report the whole-suite rank with its uncertainty** (or run 30 seeds on functions and live "
        "tasks) instead of claiming first place.",
        "",
        "**Out of reach, and why** (numbers in `optimizers-limits`): <= 6 trials to the best needs a model "
        "that ranks 24 configurations from 3-5 results better than a GP whose hyperparameters were fitted on "
        f"the whole table ({oracle.mean:.1f} / {pi_oracle.mean:.1f} trials); on three of the six grids the "
        "best and runner-up differ by less than the evaluation noise, and on `tiny_sst2` the table's best "
        "configuration is a lucky training seed (it collapses to chance accuracy with two other seeds). "
        "<= 3 trials to within 0.5% is below the perfect-ranking bound on `tiny_cifar10` and `tiny_sst2`, "
        "where only the best itself is within 0.5% (3.75 trials even for a perfect ranking after a 3-point "
        "design). <= 25% of the grid's cost follows the trials: the best configurations are the expensive "
        "ones (more epochs, longer sequences), and cost-aware EI did not lower it (`optimizers-full`).",
        "",
        "### Dev sweep (seeds 0-39, the six seed-shaped grids)",
        "",
        sweep.report(dev, "gp", seed_tables),
        "",
        "### Holdout (seeds 1000-1029): the six seed-shaped grids, then all ten",
        "",
        sweep.report(hold, "gp", seed_tables, list(HOLDOUT_VARIANTS)),
        "",
        sweep.report(hold, "gp", all_tables, list(HOLDOUT_VARIANTS)),
        "",
        "### Whole suite (FULL suite's problems and seeds, ranked against the peers' full-run results)",
        "",
        "Each row is ranked on its own in a field of the eight peers that ran on every problem. "
        "`surrogate-gp` is the published full run; `cand:gp` the same code under another experiment name "
        "(so another random stream), `cand-b:gp` and `cand-c:gp` two more streams; `cand:gp-port-eipi` "
        "the EI/PI alternation prototype on the `cand:` stream. Live scores are normalised by the best loss "
        "that any run in the table found, so they differ slightly between the two tables.",
        "",
        cross_port,
        "",
        cross_streams,
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write", type=Path, default=None, help="Markdown file for the optimizers-tuning section"
    )
    args = parser.parse_args(argv)
    dev, hold = sweep.read_rows(DEV), sweep.read_rows(HOLDOUT)
    if not dev or not hold:
        parser.error(f"run the sweeps first: {DEV} and {HOLDOUT} must hold rows")
    fams = ["grid", "function", "live"]
    cross_port = crosscheck.standings(["gp", "gp-port-eipi"], fams, crosscheck.OUT_DIR)
    cross_streams = crosscheck.standings(["gp"], fams, crosscheck.OUT_DIR, STREAMS)
    trials = crosscheck.OUT_DIR / "trials.csv"
    ms = {o: late_ask_ms(trials, o) for o in ("cand:gp", "cand:gp-port-eipi")}
    markdown = render(dev, hold, cross_port, cross_streams, ms)
    print(markdown)
    if args.write:
        from bench.report import write_section

        write_section(args.write, "optimizers-tuning", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
