"""Optional cross-check of the trials' GPU-time against DCGM exporter metrics in Prometheus.

For each experiment we ask Prometheus (HTTP query API, ``/api/v1/query_range``) how many GPUs were
attached to the experiment's trial pods at each step (``count(DCGM_FI_DEV_GPU_UTIL{...})``, one series
per GPU and pod) and their mean utilisation. GPU-seconds ~= sum(count) x step.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from client.errors import ClientError
from client.model import Experiment, utcnow

METRIC = "DCGM_FI_DEV_GPU_UTIL"


@dataclass
class DcgmResult:
    """DCGM view of one experiment."""

    experiment: str
    gpu_hours: float
    mean_utilization: float | None
    samples: int


def _promql_regex_literal(name: str) -> str:
    """A Kubernetes name as a literal inside a PromQL double-quoted regex (RE2 and string escaping)."""
    return re.sub(r"([.+*?()\[\]{}|^$])", r"\\\\\1", name)


def _selector(experiment: Experiment, pod_label: str, namespace_label: str) -> str:
    names = sorted(t.name for t in experiment.trials) or [experiment.name]
    pods = "|".join(_promql_regex_literal(n) for n in names)
    return f'{METRIC}{{{namespace_label}="{experiment.namespace}",{pod_label}=~"({pods})-.*"}}'


def _query_range(base: str, query: str, start: datetime, end: datetime, step: float, timeout: float) -> list:
    data = urllib.parse.urlencode(
        {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step:g}",
        }
    ).encode()
    url = base.rstrip("/") + "/api/v1/query_range"
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode())
    except urllib.error.HTTPError as err:
        detail = ""
        with contextlib.suppress(ValueError, OSError):
            detail = json.loads(err.read().decode()).get("error", "")
        raise ClientError(f"Prometheus at {base} answered HTTP {err.code} {detail}".strip()) from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ClientError(
            f"Prometheus at {base} is unreachable ({reason}); check --prometheus URL "
            "(e.g. kubectl port-forward svc/prometheus 9090)"
        ) from None
    except ValueError:
        raise ClientError(
            f"Prometheus at {base} did not answer with JSON; is this the Prometheus URL?"
        ) from None
    if body.get("status") != "success":
        raise ClientError(f"Prometheus query failed: {body.get('error', 'unknown error')}")
    return list((body.get("data") or {}).get("result") or [])


def dcgm_usage(
    base: str,
    experiment: Experiment,
    *,
    step: float = 15.0,
    timeout: float = 10.0,
    now: datetime | None = None,
) -> DcgmResult:
    """GPU-hours and mean utilisation DCGM saw on the experiment's trial pods."""
    starts = [t.start_time for t in experiment.trials if t.start_time is not None]
    start = experiment.start_time or (min(starts) if starts else None)
    if start is None:
        return DcgmResult(experiment.name, 0.0, None, 0)
    ends = [t.completion_time for t in experiment.trials if t.completion_time is not None]
    end = experiment.completion_time or (now or utcnow())
    if ends:
        end = max(end, max(ends))
    end = end + timedelta(seconds=step)
    count_queries = [
        f"count({_selector(experiment, 'pod', 'namespace')})",
        f"count({_selector(experiment, 'exported_pod', 'exported_namespace')})",
    ]
    util_queries = [
        f"avg({_selector(experiment, 'pod', 'namespace')})",
        f"avg({_selector(experiment, 'exported_pod', 'exported_namespace')})",
    ]
    gpu_seconds = 0.0
    samples = 0
    for query in count_queries:
        for series in _query_range(base, query, start, end, step, timeout):
            for _ts, value in series.get("values") or []:
                gpu_seconds += float(value) * step
                samples += 1
        if samples:
            break
    util_sum, util_n = 0.0, 0
    for query in util_queries:
        for series in _query_range(base, query, start, end, step, timeout):
            for _ts, value in series.get("values") or []:
                util_sum += float(value)
                util_n += 1
        if util_n:
            break
    return DcgmResult(experiment.name, gpu_seconds / 3600.0, util_sum / util_n if util_n else None, samples)
