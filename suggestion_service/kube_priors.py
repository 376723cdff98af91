"""Prior experiments read from the Kubernetes API (warm start on a cluster), with plain ``urllib``.

``KubernetesPriorSource.fetch(namespace, name)`` makes two kinds of request with the suggestion pod's
service account token:

* ``GET /apis/kubeflow.org/v1beta1/namespaces/<ns>/experiments/<name>`` for the objective (metric,
  direction, ``metricStrategies``);
* ``GET .../namespaces/<ns>/trials?labelSelector=katib.kubeflow.org/experiment=<name>&limit=N``,
  following ``metadata.continue`` until the list is complete.

So the service account needs ``get`` on ``experiments`` and ``list`` on ``trials`` (group
``kubeflow.org``) in that namespace: manifests/optional/warm-start grants exactly that. The service
image has no ``kubernetes`` package: the in-cluster configuration is read here (``KUBERNETES_SERVICE_HOST``
/ ``_PORT``, the CA file, and the token file, re-read on every request because bound tokens rotate).

Each trial's metric values are picked like Katib's controller does before it sends trials to a
suggestion service: ``min``/``max`` per the experiment's ``metricStrategies`` (defaulted to max when
maximizing, min when minimizing), falling back to ``latest`` when that is unavailable.

Time: each request times out after ``timeout_s`` (10 s) and a whole fetch after ``deadline_s`` (25 s);
``fetch_within(namespace, name, seconds)`` (``priors.BoundedPriorSource``, what the service calls with
the time left to the call's deadline) lowers that to ``seconds``, and every request's timeout is the
smaller of ``timeout_s`` and the time left, so no fetch outlives the call.

HTTP errors: 404 -> ``PriorNotFound``; 403 (and 401 after re-reading the token once) ->
``PriorForbidden`` naming the missing verb and resource and pointing at the optional RBAC; 429, 5xx,
timeouts, connection errors and unreadable answers -> ``PriorUnavailable``.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from suggestion_service.priors import (
    SERVICE_ACCOUNT_DIR,
    NoPriorSource,
    PriorError,
    PriorExperiment,
    PriorForbidden,
    PriorNotFound,
    PriorSource,
    PriorTrial,
    PriorUnavailable,
)

API_PREFIX = "/apis/kubeflow.org/v1beta1"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
RBAC_HINT = (
    "grant the suggestion pod's service account a Role with get on experiments and get/list on trials "
    "(apiGroup kubeflow.org) in namespace {ns} and bind it (see manifests/optional/warm-start)"
)
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_DEADLINE_S = 25.0  # well inside Katib's 60 s GetSuggestions timeout
DEFAULT_PAGE_SIZE = 500
MAX_PAGES = 200
SOURCE_CHOICES = ("auto", "kubernetes", "none")


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a malformed field is read as absent)."""
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The JSON objects of a JSON list (anything else, or a malformed field: none)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _explicit_strategies(objective: Mapping[str, Any], default: str) -> dict[str, str]:
    """Metric -> strategy for the entries of ``objective.metricStrategies`` (an empty value: ``default``)."""
    return {
        str(item["name"]): str(item.get("value") or default)
        for item in _items(objective.get("metricStrategies"))
        if item.get("name")
    }


def _strategies(objective: Mapping[str, Any]) -> dict[str, str]:
    """Metric -> min|max|latest, defaulted as Katib does (max when maximizing, min when minimizing)."""
    default = "max" if str(objective.get("type", "")).lower() == "maximize" else "min"
    additional = objective.get("additionalMetricNames")
    names = [objective.get("objectiveMetricName"), *(additional if isinstance(additional, list) else [])]
    out = {str(n): default for n in names if n and isinstance(n, str)}
    out.update(_explicit_strategies(objective, default))
    return out


def pick_metric(metric: Mapping[str, Any], strategy: str) -> str:
    """The value Katib sends for a metric: min/max per ``strategy``, else (or if unavailable) latest."""
    latest = metric.get("latest")
    latest_text = "" if latest is None else str(latest)
    if strategy in ("min", "max"):
        value = metric.get(strategy)
        if value is not None and str(value) not in ("", "unavailable"):
            return str(value)
    return latest_text


def _condition(status: Mapping[str, Any]) -> str:
    """The trial's current condition: the last condition whose status is "True" ("" if none)."""
    current = ""
    for cond in _items(status.get("conditions")):
        if str(cond.get("status", "")).lower() == "true" and cond.get("type"):
            current = str(cond["type"])
    return current


def trial_from_object(obj: Mapping[str, Any], strategies: Mapping[str, str]) -> PriorTrial:
    """A Katib Trial object -> PriorTrial (metric values picked with ``strategies``; the trial's own
    ``spec.objective.metricStrategies`` win where present, as they are the ones Katib applied).
    Malformed fields (a list that is not one, a name that is not a string) are read as absent."""
    spec, status = _mapping(obj.get("spec")), _mapping(obj.get("status"))
    # Only the trial's explicit, non-empty strategies: a default derived from a trial objective without
    # ``type`` would be "min" even when the experiment maximizes.
    explicit = _explicit_strategies(_mapping(spec.get("objective")), "")
    picked = {**strategies, **{name: value for name, value in explicit.items() if value}}
    assignment = {
        p["name"]: str(p.get("value"))
        for p in _items(spec.get("parameterAssignments"))
        if isinstance(p.get("name"), str)
    }
    metrics = {
        m["name"]: pick_metric(m, picked.get(m["name"], "latest"))
        for m in _items(_mapping(status.get("observation")).get("metrics"))
        if isinstance(m.get("name"), str) and m["name"]
    }
    return PriorTrial(assignment=assignment, metrics=metrics, succeeded=_condition(status) == "Succeeded")


#: What reading or decoding an answer can raise besides ``urllib.error.URLError``: socket errors and
#: timeouts (OSError), a broken answer (``http.client.HTTPException``: bad status line, truncated
#: body), undecodable JSON (ValueError) and JSON nested too deep for the decoder (RecursionError).
_UNREADABLE = (OSError, http.client.HTTPException, ValueError, RecursionError)


def _status_body(err: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = json.loads(err.read() or b"{}")
    except _UNREADABLE:
        return {}
    return body if isinstance(body, dict) else {}


def _usable_token(text: str) -> bool:
    """A bearer token is printable ASCII without spaces (anything else cannot go in an HTTP header)."""
    return text.isascii() and text.isprintable() and " " not in text


class KubernetesPriorSource:
    """A ``PriorSource`` over the Kubernetes API (see the module docstring).

    api_url: ``https://host:port`` (or ``http://`` for a test server). token / token_file: a bearer
    token, or a file re-read on every request (in-cluster: the projected service account token).
    ca_file: CA bundle for https (in-cluster: the service account's ``ca.crt``); None = system CAs.
    """

    def __init__(
        self,
        api_url: str,
        *,
        token: str | None = None,
        token_file: str | Path | None = None,
        ca_file: str | Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        deadline_s: float = DEFAULT_DEADLINE_S,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = urllib.parse.urlparse(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"invalid Kubernetes API URL {api_url!r}: expected https://HOST[:PORT]")
        if token is not None and token_file is not None:
            raise ValueError("give a token or a token file, not both")
        if timeout_s <= 0 or deadline_s <= 0 or page_size < 1:
            raise ValueError("timeout_s and deadline_s must be > 0 and page_size >= 1")
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.token_file = Path(token_file) if token_file is not None else None
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.page_size = page_size
        self._clock = clock
        self._ssl: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)

    @classmethod
    def in_cluster(
        cls, env: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR, **kwargs: Any
    ) -> KubernetesPriorSource:
        """The pod's own API server and service account; ValueError if not running in a pod."""
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise ValueError("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST/PORT are not set")
        token_file = sa_dir / "token"
        if not token_file.is_file():
            raise ValueError(f"not in a Kubernetes pod with a service account: {token_file} does not exist")
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        ca = sa_dir / "ca.crt"
        return cls(f"https://{netloc}", token_file=token_file, ca_file=ca if ca.is_file() else None, **kwargs)

    # ---- HTTP -------------------------------------------------------------------------------------
    def _bearer(self) -> str | None:
        if self.token_file is not None:
            try:
                token = self.token_file.read_text(encoding="utf-8").strip()
            except (OSError, ValueError) as exc:
                raise PriorUnavailable(
                    f"cannot read the service account token {self.token_file}: {exc}"
                ) from None
            if not _usable_token(token):
                raise PriorUnavailable(
                    f"the service account token {self.token_file} is not a bearer token "
                    "(expected one line of printable ASCII)"
                )
            return token
        return self.token

    def _get(
        self, path: str, query: Mapping[str, str], what: str, deadline: float, budget_s: float
    ) -> dict[str, Any]:
        """GET a JSON object by ``deadline`` (this source's clock; ``budget_s``: the fetch's whole time,
        for the message); errors mapped to PriorError subclasses (one retry on 401 with a re-read token)."""
        url = self.api_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        for attempt in (1, 2):
            left = deadline - self._clock()
            if left <= 0:
                raise PriorUnavailable(
                    f"reading {what} did not finish within {budget_s:g} s (the time one fetch may take: "
                    f"at most {self.deadline_s:g} s, and no longer than the call has left)"
                )
            request = urllib.request.Request(url, headers={"Accept": "application/json"})
            bearer = self._bearer()
            if bearer:
                request.add_header("Authorization", f"Bearer {bearer}")
            try:
                with urllib.request.urlopen(
                    request, timeout=min(self.timeout_s, left), context=self._ssl
                ) as resp:
                    data = resp.read()
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 1 and self.token_file is not None:
                    continue  # the token may just have rotated: read it again once
                raise self._http_error(err, what) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise PriorUnavailable(
                    f"cannot reach the Kubernetes API at {self.api_url} ({what}): {reason}"
                ) from None
            except http.client.HTTPException as exc:  # not HTTP, or cut short: a broken answer
                raise PriorUnavailable(
                    f"the Kubernetes API at {self.api_url} sent a broken answer ({what}): "
                    f"{type(exc).__name__}: {exc!r}"
                ) from None
            try:
                body = json.loads(data)
            except (ValueError, RecursionError):
                raise PriorUnavailable(f"the Kubernetes API answered {what} with invalid JSON") from None
            if not isinstance(body, dict):
                raise PriorUnavailable(f"the Kubernetes API answered {what} with a non-object")
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def _http_error(self, err: urllib.error.HTTPError, what: str) -> PriorError:
        body = _status_body(err)
        message = str(body.get("message") or err.reason or "").strip()
        ns = self._namespace_of(what)
        if err.code == 404:
            return PriorNotFound(f"{what}: not found (HTTP 404: {message})")
        if err.code == 403:
            return PriorForbidden(f"{what}: forbidden (HTTP 403: {message}); {RBAC_HINT.format(ns=ns)}")
        if err.code == 401:
            return PriorForbidden(
                f"{what}: the API server rejected the service account token (HTTP 401: {message}); "
                "check the pod's service account token"
            )
        return PriorUnavailable(f"{what}: HTTP {err.code} from the Kubernetes API: {message}")

    @staticmethod
    def _namespace_of(what: str) -> str:
        # ``what`` is "experiment NS/NAME" or "trials of experiment NS/NAME"
        return what.rsplit(" ", 1)[-1].split("/", 1)[0]

    # ---- PriorSource --------------------------------------------------------------------------------
    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        """The experiment ``namespace/name`` with all its trials (see the module docstring), within
        ``deadline_s``."""
        return self.fetch_within(namespace, name, self.deadline_s)

    def fetch_within(self, namespace: str, name: str, seconds: float) -> PriorExperiment:
        """As ``fetch``, but within ``min(seconds, deadline_s)``: every request's timeout is bounded by
        the time left, and ``PriorUnavailable`` once it is spent."""
        budget_s = min(seconds, self.deadline_s)
        deadline = self._clock() + budget_s
        quoted_ns, quoted_name = urllib.parse.quote(namespace, safe=""), urllib.parse.quote(name, safe="")
        ref = f"{namespace}/{name}"
        experiment = self._get(
            f"{API_PREFIX}/namespaces/{quoted_ns}/experiments/{quoted_name}",
            {},
            f"experiment {ref}",
            deadline,
            budget_s,
        )
        objective = _mapping(_mapping(experiment.get("spec")).get("objective"))
        metric = str(objective.get("objectiveMetricName") or "")
        direction = str(objective.get("type") or "").lower()
        if not metric or direction not in ("maximize", "minimize"):
            raise PriorError(
                f"experiment {ref} has no usable objective (spec.objective.objectiveMetricName={metric!r}, "
                f"type={direction!r})"
            )
        strategies = _strategies(objective)
        trials: list[PriorTrial] = []
        query = {"labelSelector": f"{EXPERIMENT_LABEL}={name}", "limit": str(self.page_size)}
        for _ in range(MAX_PAGES):
            page = self._get(
                f"{API_PREFIX}/namespaces/{quoted_ns}/trials",
                query,
                f"trials of experiment {ref}",
                deadline,
                budget_s,
            )
            items = page.get("items")
            if not isinstance(items, list):
                raise PriorUnavailable(
                    f"the Kubernetes API answered the trials of {ref} without an item list"
                )
            trials.extend(trial_from_object(item, strategies) for item in items if isinstance(item, Mapping))
            token = str(_mapping(page.get("metadata")).get("continue") or "")
            if not token:
                break
            query = {**query, "continue": token}
        else:
            raise PriorUnavailable(
                f"the trials of {ref} did not fit in {MAX_PAGES} pages of {self.page_size}"
            )
        return PriorExperiment(
            namespace=namespace, name=name, objective_metric_name=metric, objective_type=direction,
            trials=tuple(trials),
        )  # fmt: skip


def make_prior_source(
    kind: str = "auto",
    *,
    api_url: str | None = None,
    token_file: str | None = None,
    ca_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> PriorSource:
    """The prior source for ``--warm-start-source``: ``kubernetes`` (``api_url`` if given, else the
    in-cluster configuration; ValueError if neither works), ``none``, or ``auto`` (Kubernetes when an
    API URL is given or the service runs in a pod with a service account, else none)."""
    if kind not in SOURCE_CHOICES:
        raise ValueError(f"unknown warm-start source {kind!r}; allowed: {', '.join(SOURCE_CHOICES)}")
    if kind == "none":
        return NoPriorSource()
    if api_url:
        return KubernetesPriorSource(api_url, token_file=token_file, ca_file=ca_file)
    try:
        return KubernetesPriorSource.in_cluster(env)
    except ValueError:
        if kind == "kubernetes":
            raise
        return NoPriorSource()
