"""Run ``python -m suggestion_service`` as a child process on loopback (tests, benchmarks, tools).

The in-process :func:`suggestion_service.server.start_server` is lighter; a child process is what a
pod runs, can be killed with SIGKILL or SIGTERM, and has an RSS of its own to measure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


class ServiceProcess:
    """``python -m suggestion_service --port 0`` with the bound ports read from its first stdout line."""

    def __init__(self, *extra_args: str, metrics: bool = False, log_level: str = "INFO") -> None:
        argv = [sys.executable, "-m", "suggestion_service", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--log-level", log_level]
        if metrics:
            argv += ["--metrics-port", "0"]
        argv += list(extra_args)
        self.proc = subprocess.Popen(
            argv,
            cwd=_ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening port="):
            self.proc.kill()
            _out, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"suggestion service did not start: {line!r}\n{err}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.port = int(fields["port"])
        self.metrics_port = None if fields["metrics_port"] == "None" else int(fields["metrics_port"])

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def stop(self) -> None:
        """SIGKILL the child if it still runs and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
