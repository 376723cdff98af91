"""The layer rules in `.importlinter` hold on this tree, and each one fails on a forbidden import.

`make lint` runs `lint-imports`; these tests prove the contracts are not vacuous: a copy of the root
packages with one injected import must break the contract that forbids it, naming the import.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def _contract_names() -> dict[str, str]:
    """Contract id -> the name lint-imports prints for it."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    prefix = "importlinter:contract:"
    return {s.removeprefix(prefix): parser[s]["name"] for s in parser.sections() if s.startswith(prefix)}


def _root_packages() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser["importlinter"]["root_packages"].split()


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the project's contracts, the packages found from `cwd` first."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(cwd / ".importlinter")],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "250"},  # no wrapped report lines
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_root_packages(dest: Path) -> None:
    """Copy every root package (wherever it is installed from) and the contracts into `dest`."""
    for name in _root_packages():
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations, f"{name} is not an importable package"
        source = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(
            source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "results", "tables")
        )
    shutil.copy(CONFIG, dest / ".importlinter")


def test_the_tree_keeps_every_contract() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in _contract_names().values():
        assert f"{name} KEPT" in result.stdout


def test_an_unchanged_copy_keeps_every_contract(tmp_path: Path) -> None:
    _copy_root_packages(tmp_path)
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _module_of(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _broken_report(output: str, name: str) -> str:
    """The part of lint-imports' output that explains why the contract called `name` is broken."""
    broken = output.split("Broken contracts", 1)[1]
    heading = f"{name}\n{'-' * len(name)}\n"
    assert heading in broken, output
    return broken.split(heading, 1)[1].split("\n\n\n", 1)[0]


# (file in the copy, line appended to it, contract that must break, module the report names as imported)
VIOLATIONS = [
    ("suggestion_service/space.py", "import client.model", "service-standalone", "client.model"),
    ("suggestion_service/history.py", "from trainer import errors", "service-standalone", "trainer.errors"),
    ("suggestion_service/settings.py", "import bench.report", "service-standalone", "bench.report"),
    (
        "suggestion_service/seeding.py",
        "from katib_model import errors",
        "service-standalone",
        "katib_model.errors",
    ),
    (
        "trainer/tasks.py",
        "from suggestion_service import space",
        "trainer-standalone",
        "suggestion_service.space",
    ),
    ("trainer/config.py", "import client.aggregate", "trainer-standalone", "client.aggregate"),
    ("trainer/data.py", "import bench", "trainer-standalone", "bench"),
    ("trainer/errors.py", "from manifests import generate", "trainer-standalone", "manifests"),
    ("trainer/cli.py", "import katib_model", "trainer-standalone", "katib_model"),
    ("suggestion_service/space.py", "import grpc", "service-grpc-on-top", "grpc"),
    (
        "suggestion_service/engine.py",
        "from suggestion_service import server",
        "service-grpc-on-top",
        "suggestion_service.server",
    ),
    (
        "suggestion_service/seeding.py",
        "import suggestion_service.process",
        "service-grpc-on-top",
        "suggestion_service.process",
    ),
    (
        "suggestion_service/surrogates.py",
        "from suggestion_service.proto import api_pb2_grpc",
        "service-grpc-on-top",
        "suggestion_service.proto.api_pb2_grpc",
    ),
    (
        "suggestion_service/history.py",
        "from grpc_health.v1 import health",
        "service-grpc-on-top",
        "grpc_health",
    ),
    # A module that does not exist today is covered without being listed in the contract.
    (
        "suggestion_service/prior_math_new.py",
        "from suggestion_service.metrics import ServiceMetrics",
        "service-grpc-on-top",
        "suggestion_service.metrics",
    ),
]


@pytest.mark.parametrize(("path", "line", "contract", "imported"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, path: str, line: str, contract: str, imported: str
) -> None:
    _copy_root_packages(tmp_path)
    target = tmp_path / path
    existing = target.read_text() if target.exists() else '"""Injected by the test."""\n'
    target.write_text(f"{existing}\n{line}\n")

    result = _lint_imports(tmp_path)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    name = _contract_names()[contract]
    assert f"{name} BROKEN" in output
    report = _broken_report(output, name)
    assert f"{_module_of(path)} -> {imported} (l." in report, output
