"""The README's promises that code can check: the settings table and the two first commands."""

from __future__ import annotations

import re
from pathlib import Path

from suggestion_service.settings import settings_table_markdown

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(name: str) -> str:
    match = re.search(rf"<!-- BEGIN {name}[^>]*-->\n(.*?)<!-- END {name} -->", README, re.DOTALL)
    assert match, f"README.md has no {name} section"
    return match.group(1).strip()


def test_settings_table_matches_the_service() -> None:
    assert _section("settings-table") == settings_table_markdown().strip(), (
        "README settings table is stale: rerun `python -m tests.test_readme` to refresh it"
    )


def test_readme_starts_with_demo_and_test() -> None:
    head = "\n".join(README.splitlines()[:8])
    assert "make demo" in head and "make test" in head


def test_every_make_target_the_readme_names_exists() -> None:
    makefiles = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
    targets = set()
    for f in makefiles:
        targets |= set(re.findall(r"^([a-zA-Z][\w-]*):", f.read_text(), re.MULTILINE))
    named = set(re.findall(r"`make ([a-z][\w-]*)", README)) | set(
        re.findall(r"^make ([a-z][\w-]*)", README, re.M)
    )
    missing = named - targets
    assert not missing, f"README names make targets that do not exist: {sorted(missing)}"


def refresh() -> None:
    """Rewrite the README's settings table from suggestion_service.settings."""
    path = ROOT / "README.md"
    text = path.read_text()
    text = re.sub(
        r"(<!-- BEGIN settings-table[^>]*-->\n).*?(<!-- END settings-table -->)",
        lambda m: m.group(1) + settings_table_markdown().strip() + "\n" + m.group(2),
        text,
        flags=re.DOTALL,
    )
    path.write_text(text)


if __name__ == "__main__":
    refresh()
