"""trainer_image/gpu_check.sh in its CPU plumbing mode: priority order, budget cuts, partial results kept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "trainer_image" / "gpu_check.sh"


@pytest.mark.slow
def test_plumbing_run_keeps_the_trial_rows_and_skips_what_the_budget_cannot_hold(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "TMPDIR": str(tmp_path),
        "PYTHON": sys.executable,
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_SHAPES": "tiny",
        "GPU_CHECK_BUDGET_S": "45",
        "TRIAL_TASKS": "mrpc",
        "TRIAL_SHARING_TINY": "1",
    }
    done = subprocess.run(["sh", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (out / "gpu_check.log").read_text()
    steps = re.findall(r"^== ([\w.-]+): (rc=\d+|skipped)", log, re.MULTILINE)
    names = [name for name, _ in steps]
    # priority order: the trial-shaped rows first, the full-shape bench last
    assert names.index("trial-eager-mrpc") < names.index("eager-bert")
    assert "trial-compiled-mrpc" not in names  # no compile in the CPU plumbing mode
    assert "reference-torchvision" not in names  # no image task asked for
    # a 45 s budget cannot hold the full-shape bench: its steps are skipped, not run past the budget
    assert dict(steps)["compile-default-resnet50"] == "skipped"
    if dict(steps)["trial-eager-mrpc"] == "rc=0":
        rows = json.loads((out / "trial.json").read_text())
        assert [(r["kind"], r["task"], r["batch_size"]) for r in rows][:1] == [("trial", "mrpc", 32)]
        assert "| MRPC (tiny) | 32 | eager |" in (out / "trial.md").read_text()
