"""Where a trial's metrics go: Katib lines on stdout, ``metrics.json``, optionally the Katib DB."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from trainer.errors import MetricsPushError
from trainer.katib_metrics import format_metric_line, format_timestamp, format_value, parse_rfc3339

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

    ``epoch_times`` holds the timestamp printed on each epoch's line (RFC3339, second resolution);
    the trainer keeps them in its checkpoint so that a resumed run prints those lines again, unchanged
    (see ``replay``).
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
        self.epoch_times: list[str] = []
        self._not_before: datetime | None = None

    def _now(self) -> datetime:
        """The time for a new line: now, but at least 1 s after the last replayed line (another node's
        clock may lag), so Katib's ``latest`` and the UI's per-second curve keep the lines in order."""
        now = datetime.now(UTC)
        if self._not_before is not None and now < self._not_before:
            return self._not_before
        return now

    def _emit(self, metrics: Mapping[str, float | int], when: datetime, *, push: bool = True) -> None:
        if self._silent:
            return
        line = format_metric_line(metrics, when)
        stream = self._stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        if push and self._push_address is not None:
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

    def replay(self, epochs: list[dict[str, float | int]], times: list[str]) -> None:
        """Adopt the epochs of an earlier (preempted) run and print their lines again, unchanged.

        Katib's StdOut collector reports only the log of the pod that completes: the sidecar of a
        preempted pod finds no ``completed`` marker and exits without reporting
        (``pkg/metricscollector/v1beta1/common/pns.go``, ``WaitPIDs``). The new pod must therefore print
        the earlier epochs too, or the learning curve is cut and a ``max`` strategy can miss the best
        epoch. Each line keeps its original timestamp (``times``, one per epoch; an epoch without one,
        from a checkpoint written before they were kept, is printed 1 s before the next known one), so
        the points are the ones the first pod printed. They are not pushed again: ``--push-metrics``
        already sent them.
        """
        self.epochs = [dict(e) for e in epochs]
        stamps = _replay_times(len(epochs), times)
        self.epoch_times = [format_timestamp(t) for t in stamps]
        for metrics, when in zip(self.epochs, stamps, strict=True):
            self._emit(metrics, when, push=False)
        if stamps:
            self._not_before = stamps[-1] + timedelta(seconds=1)

    def epoch(self, metrics: Mapping[str, float | int]) -> None:
        """Report one finished epoch (``epoch`` first, then the quality metrics)."""
        when = self._now()
        self.epochs.append(dict(metrics))
        self.epoch_times.append(format_timestamp(when))
        self._emit(metrics, when)
        self.save()

    def finish(
        self, metrics: Mapping[str, float | int], status: str = "completed", message: str | None = None
    ) -> None:
        """Report the final line (quality of the last epoch plus cost metrics) and mark the run ``status``."""
        self.final = dict(metrics)
        self.status = status
        self.message = message
        self._emit(metrics, self._now())
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
            "epoch_times": self.epoch_times,
            "final": self.final,
        }
        write_json_atomic(self.path, payload)


def _replay_times(count: int, times: list[str]) -> list[datetime]:
    """``count`` datetimes for replayed epochs: the recorded ones, then 1 s steps for any missing."""
    known = [t for t in (parse_rfc3339(s) for s in times[:count]) if t is not None]
    if len(known) == count:
        return known
    last = known[-1] if known else datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=count)
    return known + [last + timedelta(seconds=i + 1) for i in range(count - len(known))]
