"""``spec.metricsCollectorSpec``: how Katib collects a trial's metrics, with Katib v0.19's defaults.

From ``pkg/apis/controller/experiments/v1beta1/experiment_defaults.go`` (``setDefaultMetricsCollector``),
``pkg/apis/controller/common/v1beta1/common_types.go`` and ``pkg/webhook/v1beta1/pod`` (``getMountPath``,
``wrapWorkerContainer``, ``NeedWrapWorkerMetricsCollectorList``) at v0.19.0: no collector means
``StdOut``; StdOut reads ``/var/log/katib/metrics.log``, to which the webhook redirects the primary
container's stdout and stderr; ``File`` defaults to that path with format ``TEXT``; ``TensorFlowEvent``
reads the directory ``/var/log/katib/tfevent/``; ``PrometheusMetric`` scrapes ``/metrics`` on port 8080.
StdOut, File and TensorFlowEvent wrap the primary container's command in ``sh -c``. TEXT lines are
parsed with ``filter.metricsFormat`` regexes (two groups: name, value), by default ``DEFAULT_FILTER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from katib_model.errors import ManifestError

STDOUT, FILE, TF_EVENT, PROMETHEUS, CUSTOM, PUSH, NONE = (
    "StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push", "None",
)  # fmt: skip
#: Every collector kind the CRD accepts.
COLLECTOR_KINDS = (STDOUT, FILE, TF_EVENT, PROMETHEUS, CUSTOM, NONE, PUSH)
#: Kinds whose primary container command Katib's pod webhook wraps in ``sh -c``.
WRAPPED_KINDS = (STDOUT, TF_EVENT, FILE)
METRICS_FILE = "/var/log/katib/metrics.log"
TF_EVENT_DIR = "/var/log/katib/tfevent/"
#: Katib's default TEXT filter (pkg/metricscollector/v1beta1/common/const.go DefaultFilter).
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
TEXT, JSON = "TEXT", "JSON"


@dataclass(frozen=True)
class CollectorSpec:
    """The metrics collector of an Experiment, defaults applied."""

    kind: str = STDOUT
    path: str = METRICS_FILE  # the file (StdOut, File) or directory (TensorFlowEvent) read; "" if none
    format: str = TEXT  # TEXT or JSON (File); TEXT otherwise
    metrics_formats: tuple[str, ...] = (DEFAULT_FILTER,)

    @property
    def wraps_command(self) -> bool:
        """True when Katib wraps the primary container's command in ``sh -c`` (StdOut, File, TFEvent)."""
        return self.kind in WRAPPED_KINDS


def collector_spec(spec: Mapping[str, Any]) -> CollectorSpec:
    """``spec.metricsCollectorSpec`` of an Experiment spec with Katib's defaults (ManifestError for an
    unknown kind or format)."""
    mc = spec.get("metricsCollectorSpec") or {}
    kind = str((mc.get("collector") or {}).get("kind") or STDOUT)
    if kind not in COLLECTOR_KINDS:
        raise ManifestError(
            f"spec.metricsCollectorSpec.collector.kind {kind!r}; allowed: {', '.join(COLLECTOR_KINDS)}"
        )
    source = mc.get("source") or {}
    fs = source.get("fileSystemPath") or {}
    formats = tuple(str(f) for f in (source.get("filter") or {}).get("metricsFormat") or ()) or (
        DEFAULT_FILTER,
    )
    file_format = str(fs.get("format") or TEXT)
    if file_format not in (TEXT, JSON):
        raise ManifestError(
            f"spec.metricsCollectorSpec.source.fileSystemPath.format {file_format!r}; allowed: TEXT, JSON"
        )
    if kind == STDOUT:
        return CollectorSpec(STDOUT, METRICS_FILE, TEXT, formats)
    if kind == FILE:
        return CollectorSpec(FILE, str(fs.get("path") or METRICS_FILE), file_format, formats)
    if kind == TF_EVENT:
        return CollectorSpec(TF_EVENT, str(fs.get("path") or TF_EVENT_DIR), TEXT, ())
    return CollectorSpec(kind, str(fs.get("path") or ""), file_format, formats)
