"""Helpers for the trainer tests: run trials in a subprocess or in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """Outcome of one ``python -m trainer`` invocation."""

    code: int
    out: str
    err: str


def trial_args(
    task: str, tmp: Path, *extra: str, lr: str | None = None, epochs: int = 2, batch: int = 32
) -> list[str]:
    """Arguments for a tiny trial writing into ``tmp``."""
    # text rates are the seed's BERT rates; the tiny preset scales them by TINY_TEXT_LR_SCALE
    default_lr = {"sst2": "3e-5", "mrpc": "3e-5", "cifar10": "0.05"}[task]
    return [
        "train",
        "--task",
        task,
        "--learning-rate",
        lr or default_lr,
        "--batch-size",
        str(batch),
        "--num-epochs",
        str(epochs),
        "--preset",
        "tiny",
        "--output-dir",
        str(tmp / "out"),
        "--checkpoint-dir",
        str(tmp / "ckpt"),
        "--cache-dir",
        str(tmp / "cache"),
        *extra,
    ]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a trainer subprocess (offline, one thread, repo importable)."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    env.update(extra)
    return env


def run_cli(args: list[str], timeout: float = 120, **env: str) -> Run:
    """Run ``python -m trainer ARGS`` in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
        cwd=REPO,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
