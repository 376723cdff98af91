"""Write one benchmark's section of a Markdown file (``docs/benchmarks.md``) without touching the others.

Each benchmark owns the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``;
a missing section is appended, so benchmarks can run in any order.
"""

from __future__ import annotations

import re
from pathlib import Path

HEADER = (
    "# Benchmarks\n\nEvery table below was produced by the command shown above it; rerun it to refresh.\n"
)


def write_section(path: str | Path, name: str, markdown: str) -> None:
    """Replace (or append) the section called ``name`` in the Markdown file at ``path``."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"section name must match [a-z0-9-]+, got {name!r}")
    path = Path(path)
    text = path.read_text() if path.exists() else HEADER
    block = f"<!-- BEGIN {name} -->\n{markdown.strip()}\n<!-- END {name} -->"
    pattern = re.compile(rf"<!-- BEGIN {name} -->.*?<!-- END {name} -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
