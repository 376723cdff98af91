"""Trainer throughput benchmark: ``python bench/trainer_throughput.py [bench flags]``.

With ``--trial`` first: the trial-shaped benchmark instead (``python -m trainer.bench_trial_cli --write
docs/benchmarks.md [flags]``, section ``trainer-trial``): the seed's trials through the real training
path, against Hugging Face Trainer and torchvision's reference recipe, and with several trials per GPU.

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
    trial = flags[:1] == ["--trial"]
    if trial:
        flags = flags[1:]
    if "--write" not in flags:
        flags += ["--write", str(REPO / "docs" / "benchmarks.md")]
    if trial:
        from trainer.bench_trial_cli import main as trial_main

        sys.exit(trial_main(flags))
    sys.exit(main(["bench", *flags]))
