"""Where a trial's metrics go: Katib lines on stdout, ``metrics.json``, optionally the Katib DB."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from trainer.errors import MetricsPushError
from trainer.katib_metrics import format_metric_line, format_value

METRICS_FILE = "metrics.json"


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=False, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MetricReporter:
    """Prints one flushed metric line per epoch plus a final line, and keeps ``metrics.json`` current.

    ``silent``: print, push and write nothing (the ranks other than 0 of a torchrun job, so that the
    pod's log holds one set of metric lines).
    """

    def __init__(
        self,
        output_dir: str | Path,
        run_info: Mapping[str, Any],
        *,
        push_address: str | None = None,
        stream: TextIO | None = None,
        silent: bool = False,
    ) -> None:
        self.path = Path(output_dir) / METRICS_FILE
        self.run_info = dict(run_info)
        self.epochs: list[dict[str, float | int]] = []
        self.final: dict[str, float | int] | None = None
        self.status = "running"
        self.message: str | None = None
        self._push_address = push_address
        self._stream = stream
        self._silent = silent

    def _emit(self, metrics: Mapping[str, float | int]) -> None:
        if self._silent:
            return
        line = format_metric_line(metrics, datetime.now(UTC))
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        if self._push_address is not None:
            self._push(metrics)

    def _push(self, metrics: Mapping[str, float | int]) -> None:
        try:
            from kubeflow.katib import report_metrics
        except Exception as exc:  # ImportError, or a protobuf version/descriptor clash inside the SDK
            raise MetricsPushError(
                f"--push-metrics needs the Katib SDK (pip install kubeflow-katib==0.19.0, which needs "
                f"protobuf<5); loading it failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            report_metrics(
                {k: format_value(v) for k, v in metrics.items()}, db_manager_address=self._push_address
            )
        except Exception as exc:
            raise MetricsPushError(f"pushing metrics to {self._push_address} failed: {exc}") from exc

    def replay(self, epochs: list[dict[str, float | int]]) -> None:
        """Adopt epochs finished by an earlier (preempted) run without printing them again."""
        self.epochs = [dict(e) for e in epochs]

    def epoch(self, metrics: Mapping[str, float | int]) -> None:
        """Report one finished epoch (``epoch`` first, then the quality metrics)."""
        self.epochs.append(dict(metrics))
        self._emit(metrics)
        self.save()

    def finish(self, metrics: Mapping[str, float | int]) -> None:
        """Report the final line (quality of the last epoch plus cost metrics) and mark completed."""
        self.final = dict(metrics)
        self.status = "completed"
        self._emit(metrics)
        self.save()

    def fail(self, status: str, message: str) -> None:
        """Record why the run stopped (``failed`` or ``preempted``) in ``metrics.json``."""
        self.status = status
        self.message = message
        self.save()

    def save(self) -> None:
        """Write ``metrics.json`` atomically."""
        if self._silent:
            return
        payload = {
            **self.run_info,
            "status": self.status,
            "message": self.message,
            "epochs": self.epochs,
            "final": self.final,
        }
        write_json_atomic(self.path, payload)
