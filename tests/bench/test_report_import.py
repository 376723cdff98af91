"""The benchmarks' section writer works where the trainer package is not installed (.venv-bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_report_imports_without_the_trainer_package(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "sys.modules['trainer'] = None  # as in .venv-bench: no trainer package to import\n"
        "from bench.report import HEADER, write_section\n"
        f"write_section({str(doc)!r}, 'probe', '## Probe\\n\\nok')\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = doc.read_text()
    assert "<!-- BEGIN probe -->" in text and "## Probe" in text
