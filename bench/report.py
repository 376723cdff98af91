"""Write one benchmark's section of ``docs/benchmarks.md`` (see ``trainer.bench_report``).

The writer lives in the trainer package, so the trainer image's ``bench`` subcommand needs nothing
outside the image. The benchmarks run in environments where the trainer is not installed
(``.venv-bench`` holds the service's dependencies and the peer optimizers only), so the module, which
uses the standard library alone, is loaded here from its file rather than imported as ``trainer``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SOURCE = Path(__file__).resolve().parent.parent / "trainer_image" / "trainer" / "bench_report.py"
_spec = importlib.util.spec_from_file_location("_trainer_bench_report", _SOURCE)
assert _spec is not None and _spec.loader is not None, _SOURCE
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

HEADER: str = _module.HEADER
write_section = _module.write_section

__all__ = ["HEADER", "write_section"]
