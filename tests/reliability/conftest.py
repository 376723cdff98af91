"""Tests marked ``reliability`` (long load and fault runs) only run when asked for.

``make test-reliability`` runs them (``-m reliability``); so does ``RELIABILITY=1``. Everywhere else
(``make test``, a plain ``pytest``) they are skipped with a pointer to the target, so the default suite
stays fast; the unmarked tests in this folder always run.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = os.environ.get("RELIABILITY") == "1" or "reliability" in (config.getoption("markexpr") or "")
    if wanted:
        return
    skip = pytest.mark.skip(reason="long reliability test: run `make test-reliability` (or RELIABILITY=1)")
    for item in items:
        if item.get_closest_marker("reliability"):
            item.add_marker(skip)
