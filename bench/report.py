"""Write one benchmark's section of ``docs/benchmarks.md`` (see ``trainer.bench_report``).

The writer lives in the trainer package, so the trainer image's ``bench`` subcommand needs nothing
outside the image; the repository's benchmarks import it from here.
"""

from __future__ import annotations

from trainer.bench_report import HEADER, write_section

__all__ = ["HEADER", "write_section"]
