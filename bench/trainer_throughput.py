"""Trainer throughput benchmark: ``python bench/trainer_throughput.py [bench flags]``.

Same as ``python -m trainer bench --write docs/benchmarks.md [flags]``: samples/s and model FLOP
utilisation for BERT-base (seq 128) and ResNet-50 (224 px) training steps on synthetic batches, plus
the tiny preset's models, on whatever device is present. Results replace the ``trainer-throughput``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "trainer_image")]

from trainer.cli import main  # noqa: E402

if __name__ == "__main__":
    flags = sys.argv[1:]
    if "--write" not in flags:
        flags += ["--write", str(REPO / "docs" / "benchmarks.md")]
    sys.exit(main(["bench", *flags]))
