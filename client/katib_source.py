"""The cluster source: Katib Experiments and Trials through the Kubernetes API -> the result model.

Uses the plain ``kubernetes`` client (CustomObjectsApi, group kubeflow.org/v1beta1), never the Katib SDK
(its protobuf stubs clash with ours). Transient failures (5xx, 429, timeouts, dropped connections) are
retried with exponential backoff; everything else becomes a one-line :class:`ClientError`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from client.errors import ClientError
from client.experiments import ALGORITHM_LABEL, TASK_LABEL, ExperimentDef, count_gpus, task_of
from client.metrics import parse_value
from client.model import (
    CREATED,
    MAXIMIZE,
    MINIMIZE,
    TRIAL_CONDITIONS,
    Experiment,
    Trial,
)
from client.trial_logs import cluster_log_locations

GROUP = "kubeflow.org"
VERSION = "v1beta1"
EXPERIMENTS = "experiments"
TRIALS = "trials"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def parse_time(value: Any) -> datetime | None:
    """Parse a Kubernetes RFC3339 timestamp (``2024-01-02T03:04:05Z``); None for empty/invalid."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def current_condition(conditions: Sequence[dict[str, Any]] | None, default: str = CREATED) -> str:
    """Katib's current condition: the last condition whose status is "True"."""
    current = default
    if conditions is not None and not isinstance(conditions, list | tuple):
        raise TypeError(f"status.conditions must be a list, got {type(conditions).__name__}")
    for cond in conditions or []:
        if str(cond.get("status", "")).lower() == "true" and cond.get("type"):
            current = str(cond["type"])
    return current


def _condition_message(conditions: Sequence[dict[str, Any]] | None, condition: str) -> str:
    for cond in reversed(list(conditions or [])):
        if cond.get("type") == condition:
            return str(cond.get("message") or cond.get("reason") or "")
    return ""


def strategies_of(objective: dict[str, Any]) -> dict[str, str]:
    """Metric -> min|max|latest, defaulted as Katib does (max when maximizing, min when minimizing)."""
    default = "max" if objective.get("type", MAXIMIZE) == MAXIMIZE else "min"
    names = [objective.get("objectiveMetricName"), *(objective.get("additionalMetricNames") or [])]
    out = {str(n): default for n in names if n}
    for item in objective.get("metricStrategies") or []:
        if item.get("name"):
            out[str(item["name"])] = str(item.get("value") or default)
    return out


def pick_observation(metric: dict[str, Any], strategy: str) -> str | None:
    """The value Katib sends for a metric: min/max per strategy, falling back to latest if unavailable."""
    latest = metric.get("latest")
    if strategy in ("min", "max"):
        value = metric.get(strategy)
        if value is None or str(value) == "unavailable" or str(value) == "":
            return None if latest is None else str(latest)
        return str(value)
    return None if latest is None else str(latest)


def trial_from_cr(obj: dict[str, Any], strategies: dict[str, str] | None = None) -> Trial:
    """A Katib Trial custom object -> model Trial (metrics picked with the trial's metricStrategies)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    trial_strategies = strategies_of(spec.get("objective") or {}) if spec.get("objective") else {}
    picked = {**(strategies or {}), **trial_strategies}
    metrics: dict[str, float] = {}
    for metric in (status.get("observation") or {}).get("metrics") or []:
        name = str(metric.get("name", ""))
        value = parse_value(pick_observation(metric, picked.get(name, "latest")))
        if name and value is not None:
            metrics[name] = value
    conditions = status.get("conditions") or []
    condition = current_condition(conditions)
    if condition not in TRIAL_CONDITIONS:
        condition = CREATED
    return Trial(
        name=str(meta.get("name", "")),
        parameters={str(p.get("name")): str(p.get("value")) for p in spec.get("parameterAssignments") or []},
        condition=condition,
        metrics=metrics,
        start_time=parse_time(status.get("startTime")),
        completion_time=parse_time(status.get("completionTime")),
        gpus=count_gpus(spec.get("runSpec")),
        message=_condition_message(conditions, condition),
        logs=cluster_log_locations(obj),
    )


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else {} (a field of an object written by something else)."""
    return value if isinstance(value, dict) else {}


def _goal(value: Any) -> float | None:
    """The objective goal as a finite number; None when absent or not a number."""
    try:
        goal = float(value)
    except (TypeError, ValueError):
        return None
    return goal if math.isfinite(goal) else None


def experiment_from_cr(obj: dict[str, Any], trials: Sequence[dict[str, Any]]) -> Experiment:
    """A Katib Experiment custom object and its Trial objects -> model Experiment.

    Fields of the wrong shape (a status or labels that are not a mapping, a goal that is not a number)
    are read as absent, with a note, so one malformed object never stops a listing."""
    meta = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    objective = _mapping(spec.get("objective"))
    algorithm = str(_mapping(spec.get("algorithm")).get("algorithmName", ""))
    name = str(meta.get("name", ""))
    strategies = strategies_of(objective)
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list):
        conditions = []
    condition = current_condition(conditions)
    reason = ""
    for cond in reversed(conditions):
        if cond.get("type") == condition:
            reason = str(cond.get("reason") or "")
            break
    goal = _goal(objective.get("goal"))
    labels = _mapping(meta.get("labels"))
    model = Experiment(
        name=name,
        namespace=str(meta.get("namespace", "")),
        task=task_of(name, labels, algorithm),
        algorithm=algorithm,
        objective_metric=str(objective.get("objectiveMetricName", "")),
        objective_type=str(objective.get("type", MAXIMIZE)) if objective.get("type") else MAXIMIZE,
        additional_metrics=[str(m) for m in objective.get("additionalMetricNames") or []],
        goal=goal,
        parallel_trial_count=spec.get("parallelTrialCount"),
        max_trial_count=spec.get("maxTrialCount"),
        max_failed_trial_count=spec.get("maxFailedTrialCount"),
        condition=condition,
        reason=reason,
        start_time=parse_time(status.get("startTime")) or parse_time(meta.get("creationTimestamp")),
        completion_time=parse_time(status.get("completionTime")),
        source="cluster",
    )
    if model.objective_type not in (MAXIMIZE, MINIMIZE):
        model.objective_type = MAXIMIZE
    malformed = [
        f"{field} ({type(value).__name__})"
        for field, value in (
            ("status", obj.get("status")),
            ("metadata.labels", meta.get("labels")),
            ("spec.objective.goal", objective.get("goal")),
        )
        if value is not None
        and (_goal(value) is None if field.endswith("goal") else not isinstance(value, dict))
    ]
    if malformed:
        note = f"ignored malformed field(s) of the Experiment object: {', '.join(malformed)}"
        log.warning("%s: %s", name, note)
        model.notes.append(note)
    parsed = []
    for raw in trials:
        try:
            parsed.append(trial_from_cr(raw, strategies))
        except (AttributeError, TypeError, ValueError) as exc:  # a Trial written by something else
            trial_name = (
                str(((raw or {}).get("metadata") or {}).get("name", "?")) if isinstance(raw, dict) else "?"
            )
            note = f"skipped trial {trial_name}: malformed object ({type(exc).__name__}: {exc})"
            log.warning("%s: %s", name, note)
            model.notes.append(note)
    model.trials = sorted(
        parsed,
        key=lambda t: (t.start_time is None, t.start_time or datetime.max.astimezone(), t.name),
    )
    return model


def _label_selector(tasks: Sequence[str], algorithms: Sequence[str]) -> str | None:
    parts = []
    if tasks:
        parts.append(f"{TASK_LABEL} in ({','.join(tasks)})")
    if algorithms:
        parts.append(f"{ALGORITHM_LABEL} in ({','.join(algorithms)})")
    return ",".join(parts) or None


class KatibSource:
    """Reads and creates Katib objects through one Kubernetes API client, with retries."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        attempts: int = 5,
        backoff: float = 0.5,
        request_timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_client = api_client
        self.api = k8s.CustomObjectsApi(api_client)
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.request_timeout = request_timeout
        self.sleep = sleep
        self.host = api_client.configuration.host
        self._katib_checked = False
        self.last_resource_version = ""

    @classmethod
    def connect(cls, context: str | None = None, kubeconfig: str | None = None, **kwargs: Any) -> KatibSource:
        """Load a kubeconfig (``--kubeconfig``/``$KUBECONFIG``/~/.kube/config, ``--context``) or in-cluster."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        except (ConfigException, FileNotFoundError, OSError) as err:
            if context or kubeconfig:
                raise ClientError(
                    f"cannot load kubeconfig{f' {kubeconfig}' if kubeconfig else ''}"
                    f"{f' context {context!r}' if context else ''}: {str(err).splitlines()[0]}; "
                    "check --kubeconfig/--context (kubectl config get-contexts)"
                ) from None
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)
            except ConfigException:
                raise ClientError(
                    "no Kubernetes configuration found (no kubeconfig and not running in a cluster); "
                    "set KUBECONFIG or pass --kubeconfig, or use --local to run without a cluster"
                ) from None
        configuration.retries = 0  # our own retry loop handles transient errors, with backoff
        return cls(k8s.ApiClient(configuration), **kwargs)

    # --- plumbing ------------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run one API call, retrying 5xx/429/timeouts/dropped connections with exponential backoff."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        last = ""
        for attempt in range(self.attempts):
            try:
                return fn(*args, **kwargs)
            except ApiException as err:
                if err.status not in RETRY_STATUSES:
                    raise
                last = f"HTTP {err.status} {err.reason or ''}".strip()
            except urllib3.exceptions.MaxRetryError as err:
                if isinstance(err.reason, urllib3.exceptions.NewConnectionError):
                    raise ClientError(
                        f"cannot reach the Kubernetes API at {self.host} ({_short(err.reason)}); check that "
                        "the cluster is up and --context/--kubeconfig point to it, or use --local"
                    ) from None
                last = _short(err.reason or err)
            except (urllib3.exceptions.TimeoutError, urllib3.exceptions.ProtocolError) as err:
                last = _short(err)
            if attempt + 1 < self.attempts:
                self.sleep(self.backoff * (2**attempt))
        raise ClientError(
            f"the Kubernetes API at {self.host} kept failing while trying to {what} ({last}) after "
            f"{self.attempts} attempts; retry later or check the API server's health"
        )

    def _api_error(self, err: ApiException, what: str, namespace: str | None = None) -> ClientError:
        """Turn a non-transient API error into an actionable one-line error."""
        message = _status_message(err)
        if err.status == 401:
            return ClientError(
                f"the Kubernetes API rejected our credentials while trying to {what} ({message}); "
                "refresh your kubeconfig (e.g. re-login) and retry"
            )
        if err.status == 403:
            where = f" in namespace {namespace!r}" if namespace else ""
            return ClientError(
                f"forbidden: not allowed to {what}{where} ({message}); ask for a Role granting "
                f"kubeflow.org experiments/trials access there, or pass another --namespace"
            )
        if err.status == 404:
            self._katib_checked = False
            self.check_katib()
            return ClientError(f"not found while trying to {what}: {message}")
        return ClientError(f"the Kubernetes API refused to {what}: HTTP {err.status} {message}")

    def check_katib(self) -> None:
        """Fail clearly when the kubeflow.org/v1beta1 group (the Katib CRDs) is not installed."""
        if self._katib_checked:
            return
        try:
            resources = self._call("discover the Katib API", self.api.get_api_resources, GROUP, VERSION)
        except ApiException as err:
            if err.status == 404:
                raise ClientError(
                    f"the Katib CRDs (kubeflow.org/{VERSION} experiments, trials) are not installed on the "
                    f"cluster at {self.host}; install Katib v0.17+ first (see docs/client.md)"
                ) from None
            raise self._api_error(err, "discover the Katib API") from None
        names = {r.name for r in (resources.resources or [])} if resources is not None else set()
        missing = {EXPERIMENTS, TRIALS} - names
        if missing:
            raise ClientError(
                f"the cluster at {self.host} serves kubeflow.org/{VERSION} but not {', '.join(sorted(missing))}; "
                "install the Katib CRDs (v0.17+)"
            )
        self._katib_checked = True

    # --- operations -----------------------------------------------------------------------------------
    def create_experiment(self, definition: ExperimentDef, namespace: str | None = None) -> str:
        """Create one Experiment; returns "created" or "exists" (HTTP 409)."""
        ns = namespace or definition.namespace
        body = _with_namespace(definition.body, ns)
        try:
            self._call(
                f"create experiment {definition.name}",
                self.api.create_namespaced_custom_object,
                GROUP,
                VERSION,
                ns,
                EXPERIMENTS,
                body,
            )
        except ApiException as err:
            if err.status == 409:
                return "exists"
            if err.status == 404:
                self.check_katib()
                raise ClientError(
                    f"cannot create experiment {definition.name}: {_status_message(err)}; create the "
                    f"namespace first (kubectl apply -f manifests/ does) or pass --namespace"
                ) from None
            raise self._api_error(err, f"create experiments ({definition.name})", ns) from None
        return "created"

    def list_experiments(
        self, namespace: str, tasks: Sequence[str] = (), algorithms: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Experiment objects in ``namespace`` (label-selected by our task/algorithm labels if given)."""
        self.check_katib()
        kwargs: dict[str, Any] = {}
        selector = _label_selector(tasks, algorithms)
        if selector:
            kwargs["label_selector"] = selector
        try:
            result = self._call(
                "list experiments",
                self.api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                EXPERIMENTS,
                **kwargs,
            )
        except ApiException as err:
            raise self._api_error(err, "list experiments", namespace) from None
        items = list((result or {}).get("items") or [])
        return sorted(items, key=lambda o: str((o.get("metadata") or {}).get("name", "")))

    def get_experiment(self, namespace: str, name: str) -> dict[str, Any]:
        """One Experiment object; a clear error if it does not exist."""
        self.check_katib()
        try:
            return self._call(
                f"get experiment {name}",
                self.api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                EXPERIMENTS,
                name,
            )
        except ApiException as err:
            if err.status == 404:
                raise ClientError(
                    f"experiment {name!r} not found in namespace {namespace!r}; create it with "
                    "`python -m client submit` or check --namespace"
                ) from None
            raise self._api_error(err, f"get experiment {name}", namespace) from None

    def list_trials(self, namespace: str, experiment: str) -> tuple[list[dict[str, Any]], str]:
        """The Trial objects of one experiment (label ``katib.kubeflow.org/experiment``) and the list RV."""
        try:
            result = self._call(
                f"list trials of {experiment}",
                self.api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                TRIALS,
                label_selector=f"{EXPERIMENT_LABEL}={experiment}",
            )
        except ApiException as err:
            raise self._api_error(err, "list trials", namespace) from None
        result = result or {}
        return list(result.get("items") or []), str((result.get("metadata") or {}).get("resourceVersion", ""))

    def load(
        self,
        namespace: str,
        tasks: Sequence[str] = (),
        algorithms: Sequence[str] = (),
        names: Sequence[str] = (),
    ) -> list[Experiment]:
        """Experiments (with their trials) as model objects; ``names`` selects experiments by name."""
        if names:
            objects = [self.get_experiment(namespace, n) for n in names]
        else:
            objects = self.list_experiments(namespace, tasks, algorithms)
        out = []
        self.last_resource_version = ""
        for obj in objects:
            name = str((obj.get("metadata") or {}).get("name", ""))
            trials, rv = self.list_trials(namespace, name)
            self.last_resource_version = max(self.last_resource_version, rv, key=_rv_key)
            out.append(experiment_from_cr(obj, trials))
        return out

    def wait_for_change(self, namespace: str, timeout: float, resource_version: str = "") -> bool:
        """Block until a Trial in ``namespace`` changes after ``resource_version`` or ``timeout`` passes.

        Uses a Kubernetes watch; returns True when an event arrived. Watch failures are not fatal (the
        caller re-reads everything anyway): they just wait out the timeout.
        """
        watcher = k8s_watch.Watch()
        deadline = time.monotonic() + timeout
        kwargs: dict[str, Any] = {"timeout_seconds": max(1, int(timeout))}
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            for _event in watcher.stream(
                self.api.list_namespaced_custom_object, GROUP, VERSION, namespace, TRIALS, **kwargs
            ):
                watcher.stop()
                return True
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError):
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self.sleep(remaining)
        return False


def _rv_key(rv: str) -> tuple[int, str]:
    return (int(rv), rv) if rv.isdigit() else (-1, rv)


def _with_namespace(body: dict[str, Any], namespace: str) -> dict[str, Any]:
    out = dict(body)
    out["metadata"] = {**(body.get("metadata") or {}), "namespace": namespace}
    return out


def _short(err: object) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:200]


def _status_message(err: ApiException) -> str:
    """The ``message`` of a Kubernetes Status body, else the HTTP reason."""
    import json

    try:
        body = json.loads(err.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except (TypeError, ValueError):
        pass
    return str(err.reason or f"HTTP {err.status}")
