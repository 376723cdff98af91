"""Katib's parameter-type names are spelled in one module of the product: the Experiment model."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The product code (tests, docs and generated results are not product code).
PRODUCT = ["suggestion_service", "client", "bench", "trainer_image", *sorted(
    str(p.relative_to(REPO)) for p in (REPO / "manifests").glob("*.py")
)]  # fmt: skip
MODEL = "katib_model"


def _grep(pattern: str, paths: list[str]) -> list[str]:
    """``grep -rn`` over the Python files of ``paths`` (repository-relative ``path:line:text`` hits)."""
    result = subprocess.run(
        ["grep", "-rn", "--include=*.py", "-e", pattern, *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: no match
    return result.stdout.splitlines()


def test_katib_parameter_type_names_live_only_in_the_model() -> None:
    pattern = r'"categorical"\|"discrete"\|"logUniform"'
    assert _grep(pattern, PRODUCT) == [], "spell Katib's type names through katib_model.parameters"
    in_model = _grep(pattern, [MODEL])
    assert {hit.split(":", 1)[0] for hit in in_model} == {"katib_model/parameters.py"}
    assert len(in_model) == 3  # DISCRETE, CATEGORICAL, LOG_UNIFORM: one spelling each


def test_the_suggestion_service_never_imports_the_model() -> None:
    imports = r"^[[:space:]]*\(from\|import\)[[:space:]]\+katib_model"
    assert _grep(imports, ["suggestion_service"]) == []
    assert _grep(imports, ["client"]) != []  # the pattern does find imports
