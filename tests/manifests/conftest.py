"""Fixtures for the manifest tests: the generator, validator and merge script loaded from their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """manifests/generate.py."""
    return _load("katib_manifests_generate", MANIFESTS / "generate.py")


@pytest.fixture(scope="session")
def val() -> ModuleType:
    """manifests/validate.py."""
    return _load("katib_manifests_validate", MANIFESTS / "validate.py")


@pytest.fixture(scope="session")
def merge() -> ModuleType:
    """scripts/merge-katib-config.py."""
    return _load("katib_merge_config", REPO / "scripts" / "merge-katib-config.py")


@pytest.fixture(scope="session")
def katib_config(val: ModuleType) -> dict:
    """The KatibConfig the bundle leaves on a default Katib (pinned default + registered entries)."""
    return val.shipped_katib_config()
