"""A torch-free stand-in for ``python -m trainer train`` used by the local-runner tests.

It accepts the flags the runner appends (--preset --cache-dir --output-dir --checkpoint-dir), prints
Katib StdOut metric lines (RFC3339 timestamp + name=value) per "epoch", and derives the metrics from
the hyperparameters so the tests can check exact values. Environment knobs (tests only):
FAKE_TRAINER_SLEEP (seconds per epoch), FAKE_TRAINER_FAIL_UNITS (exit 1 for this --units value),
FAKE_TRAINER_NO_METRICS_UNITS (exit 0 without printing accuracy for this --units value),
FAKE_TRAINER_RAISE_UNITS (an uncaught exception, i.e. a traceback and exit 1, for this --units value).
The warm-launcher tests also run this file as a package's ``__main__`` (``python -m toytrainer``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def accuracy_of(learning_rate: float, units: int) -> float:
    """The deterministic 'validation accuracy' of a configuration (best: lr 0.1, units 32)."""
    return round(0.5 + 2.0 * learning_rate + units / 200.0, 6)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--units", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    args = parser.parse_args()
    if args.preset != "tiny":
        print(f"expected the runner to append --preset tiny, got {args.preset}", file=sys.stderr)
        return 3
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.output_dir) / "argv.json").write_text(json.dumps(sys.argv[1:]))
    sleep = float(os.environ.get("FAKE_TRAINER_SLEEP", "0"))
    if str(args.units) == os.environ.get("FAKE_TRAINER_FAIL_UNITS"):
        print("RuntimeError: CUDA out of memory (simulated)", file=sys.stderr)
        return 1
    if str(args.units) == os.environ.get("FAKE_TRAINER_RAISE_UNITS"):
        raise ValueError(f"simulated crash for units={args.units}")
    final = accuracy_of(args.learning_rate, args.units)
    no_metrics = str(args.units) == os.environ.get("FAKE_TRAINER_NO_METRICS_UNITS")
    for epoch in (1, 2):
        time.sleep(sleep)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        acc = final if epoch == 2 else final - 0.1
        if not no_metrics:
            print(
                f"{stamp} epoch={epoch} accuracy={acc} f1={acc - 0.05:.6f} eval_loss={1 - acc:.6f}",
                flush=True,
            )
    print(f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} gpu_seconds=0 train_seconds=2.5", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
