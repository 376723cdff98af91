"""Fixtures for the trainer tests."""

from __future__ import annotations

import pytest

from tests.trainer.helpers import Run


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]):
    """Run ``trainer.cli.main(ARGS)`` in this process (imports are paid once per session)."""
    from trainer.cli import main

    def run(args: list[str]) -> Run:
        capsys.readouterr()
        try:
            code = main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
