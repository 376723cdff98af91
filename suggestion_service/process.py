"""Run ``python -m suggestion_service`` as a child process on loopback (tests, benchmarks, tools).

The in-process :func:`suggestion_service.server.start_server` is lighter; a child process is what a
pod runs, can be killed with SIGKILL or SIGTERM, and has an RSS of its own to measure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


class ServiceProcess:
    """``python -m suggestion_service --port 0`` with the bound ports read from its first stdout line."""

    def __init__(
        self,
        *extra_args: str,
        metrics: bool = False,
        log_level: str = "INFO",
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: variables laid over this process's environment (e.g. a katib-config entry's env)."""
        argv = [sys.executable, "-m", "suggestion_service", "--host", "127.0.0.1", "--port", "0"]
        argv += ["--log-level", log_level]
        if metrics:
            argv += ["--metrics-port", "0"]
        argv += list(extra_args)
        # The log goes to a file, not a pipe: nobody has to drain it, so a chatty service never blocks.
        self._log = tempfile.TemporaryFile(mode="w+", prefix="suggestion-service-", suffix=".log")  # noqa: SIM115 (lives as long as the child)
        self.proc = subprocess.Popen(
            argv,
            cwd=_ROOT,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening port="):
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise RuntimeError(f"suggestion service did not start: {line!r}\n{self.log()}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.port = int(fields["port"])
        self.metrics_port = None if fields["metrics_port"] == "None" else int(fields["metrics_port"])

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def log(self) -> str:
        """Everything the service has logged (stderr) so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> None:
        """SIGKILL the child if it still runs, reap it and drop its log."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()
