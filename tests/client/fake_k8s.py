"""A small stateful fake of the Kubernetes API for kubeflow.org/v1beta1 experiments and trials.

Served on loopback by the tests (http.server in a thread) and used with the REAL kubernetes client
through a kubeconfig that points at it. It implements what the client relies on: API discovery
(``/apis/kubeflow.org/v1beta1``), create (201, 409 on duplicates, 404 for a missing namespace), get,
list with label selectors (equality and set-based), watch (resourceVersion + timeoutSeconds), merge
patch and delete; 403 for forbidden namespaces; injectable 5xx answers; "Katib not installed" (404 on
the group).

For the suggestion service's warm-start reader (plain HTTP, no kubernetes client) it also has:
RBAC-shaped 403 answers for single (namespace, resource, verb) rules (``deny``), with the Status body
the API server writes for a service account; bearer-token checking (``tokens``; 401 otherwise);
list pagination with ``limit`` / ``continue`` (410 Expired for an unknown token); and a record of the
Authorization headers received.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GROUP_PATH = "/apis/kubeflow.org/v1beta1"
PLURALS = {"experiments": "Experiment", "trials": "Trial", "suggestions": "Suggestion"}
_PATH = re.compile(
    r"^/apis/kubeflow\.org/v1beta1/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)


def k8s_time(when: datetime) -> str:
    """RFC3339 seconds, as the API server writes it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current.strip())
    return terms


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics: =, ==, !=, in, notin, exists, !exists."""
    if not selector:
        return True
    for term in _split_terms(selector):
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
            continue
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*(\S*)", term)
        if m:
            key, op, value = m.groups()
            if op in ("=", "==") and labels.get(key) != value:
                return False
            if op == "!=" and labels.get(key) == value:
                return False
            continue
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubeAPI:
    """The fake API server state plus its HTTP server thread."""

    def __init__(
        self,
        namespaces: tuple[str, ...] = ("katib-surrogate", "default"),
        forbidden: tuple[str, ...] = ("secret",),
        katib_installed: bool = True,
        user: str = "system:serviceaccount:katib-surrogate:katib-surrogate-suggestion",
    ) -> None:
        self.namespaces = set(namespaces)
        self.forbidden = set(forbidden)
        self.katib_installed = katib_installed
        self.user = user
        self.denied: set[tuple[str, str, str]] = set()
        self.tokens: set[str] | None = None
        self.auth_headers: list[str] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.resource_version = 100
        self.fail_queue: list[int] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakeKubeAPI:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        """A kubeconfig whose ``context`` points at this server (token auth)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "fake-cluster", "user": "fake-user"}}],
            "current-context": context,
        }
        path.write_text(json.dumps(config))
        return path

    def deny(self, namespace: str, plural: str, verb: str) -> None:
        """RBAC: ``self.user`` may not ``verb`` (get, list, ...) ``plural`` in ``namespace`` (403 as the
        API server answers it, with ``details``)."""
        with self.lock:
            self.denied.add((namespace, plural, verb))

    def require_tokens(self, *tokens: str) -> None:
        """Only these bearer tokens are accepted (401 Unauthorized otherwise); none given = any."""
        with self.lock:
            self.tokens = set(tokens) if tokens else None

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these HTTP error statuses (e.g. 503, 500)."""
        with self.lock:
            self.fail_queue.extend(statuses)

    # --- state helpers ----------------------------------------------------------------------------------
    def _bump(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def put(self, plural: str, obj: dict[str, Any], event: str = "ADDED") -> dict[str, Any]:
        """Store an object directly (tests use it to play the Katib controller)."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", k8s_time(datetime.now(UTC)))
            meta["resourceVersion"] = self._bump()
            key = (plural, meta["namespace"], meta["name"])
            if key in self.objects and event == "ADDED":
                event = "MODIFIED"
            self.objects[key] = obj
            self.events.append((int(meta["resourceVersion"]), event, plural, meta["namespace"], obj))
            self.lock.notify_all()
            return obj

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A stored object or None."""
        return self.objects.get((plural, namespace, name))

    def add_trial(
        self,
        namespace: str,
        experiment: str,
        name: str,
        parameters: dict[str, str],
        condition: str,
        metrics: dict[str, tuple[str, str, str]] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        gpus: int = 1,
        objective: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A Trial object as Katib's trial controller writes it (conditions, observation min/max/latest)."""
        start = start or datetime.now(UTC)
        conditions = [
            {
                "type": "Created",
                "status": "True",
                "reason": "TrialCreated",
                "message": "Trial is created",
                "lastUpdateTime": k8s_time(start),
                "lastTransitionTime": k8s_time(start),
            }
        ]
        running = {
            "type": "Running",
            "status": "True" if condition == "Running" else "False",
            "reason": "TrialRunning",
            "message": "Trial is running",
            "lastUpdateTime": k8s_time(end or start),
            "lastTransitionTime": k8s_time(end or start),
        }
        conditions.append(running)
        if condition not in ("Created", "Running"):
            messages = {
                "Succeeded": ("TrialSucceeded", "Trial has succeeded"),
                "Failed": ("TrialFailed", "Trial has failed"),
                "MetricsUnavailable": ("MetricsUnavailable", "Metrics are not available"),
                "Killed": ("TrialKilled", "Trial is killed"),
                "EarlyStopped": ("TrialEarlyStopped", "Trial is early stopped"),
            }
            reason, message = messages[condition]
            conditions.append(
                {
                    "type": condition,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastUpdateTime": k8s_time(end or start),
                    "lastTransitionTime": k8s_time(end or start),
                }
            )
        status: dict[str, Any] = {"startTime": k8s_time(start), "conditions": conditions}
        if end is not None:
            status["completionTime"] = k8s_time(end)
        if metrics is not None:
            status["observation"] = {
                "metrics": [{"name": n, "min": v[0], "max": v[1], "latest": v[2]} for n, v in metrics.items()]
            }
        container: dict[str, Any] = {
            "name": "training",
            "image": "trainer:test",
            "command": ["python", "-m", "trainer"],
        }
        if gpus:
            container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
        obj = {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Trial",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"katib.kubeflow.org/experiment": experiment},
                "ownerReferences": [
                    {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": experiment}
                ],
            },
            "spec": {
                "objective": objective
                or {"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["f1"]},
                "parameterAssignments": [{"name": k, "value": v} for k, v in parameters.items()],
                "primaryContainerName": "training",
                "runSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}},
                },
            },
            "status": status,
        }
        return self.put("trials", obj)

    def set_experiment_status(
        self, namespace: str, name: str, condition: str, start: datetime, end: datetime | None = None
    ) -> None:
        """Write an Experiment status as Katib's experiment controller does."""
        obj = copy.deepcopy(self.objects[("experiments", namespace, name)])
        conditions = [{"type": "Created", "status": "True", "reason": "ExperimentCreated"}]
        conditions.append({"type": "Running", "status": "True" if condition == "Running" else "False"})
        if condition in ("Succeeded", "Failed"):
            reason = "ExperimentMaxTrialsReached" if condition == "Succeeded" else "ExperimentFailed"
            conditions.append({"type": condition, "status": "True", "reason": reason})
        obj["status"] = {"startTime": k8s_time(start), "conditions": conditions}
        if end is not None:
            obj["status"]["completionTime"] = k8s_time(end)
        self.put("experiments", obj, "MODIFIED")

    # --- HTTP -------------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # chunked watch streams, like a real API server

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": message,
                        "reason": reason,
                        "code": code,
                    },
                )

            def _rbac_forbidden(self, ns: str, plural: str, name: str | None, verb: str) -> None:
                """403 exactly as the API server's RBAC authorizer answers it."""
                subject = f'{plural}.kubeflow.org "{name}"' if name else f"{plural}.kubeflow.org"
                details: dict[str, Any] = {"group": "kubeflow.org", "kind": plural}
                if name:
                    details = {"name": name, **details}
                self._send(
                    403,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": f'{subject} is forbidden: User "{api.user}" cannot {verb} resource '
                        f'"{plural}" in API group "kubeflow.org" in the namespace "{ns}"',
                        "reason": "Forbidden",
                        "details": details,
                        "code": 403,
                    },
                )

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def _route(self, method: str) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                auth = self.headers.get("Authorization", "")
                with api.lock:
                    api.requests.append((method, parsed.path))
                    api.auth_headers.append(auth)
                    failure = api.fail_queue.pop(0) if api.fail_queue else None
                    tokens = api.tokens
                if failure is not None:
                    self._status(failure, "InternalError", f"injected failure {failure}")
                    return
                if tokens is not None and auth.removeprefix("Bearer ") not in tokens:
                    self._status(401, "Unauthorized", "Unauthorized")
                    return
                path = parsed.path.rstrip("/")
                if path.startswith(GROUP_PATH) and not api.katib_installed:
                    self._status(404, "NotFound", "the server could not find the requested resource")
                    return
                if path == GROUP_PATH and method == "GET":
                    self._send(200, _discovery())
                    return
                match = _PATH.match(path)
                if not match or match.group("plural") not in PLURALS:
                    self._status(404, "NotFound", "the server could not find the requested resource")
                    return
                ns, plural, name = match.group("ns"), match.group("plural"), match.group("name")
                verb = {"GET": "list" if name is None else "get", "POST": "create"}.get(
                    method, method.lower()
                )
                if method == "GET" and name is None and query.get("watch") in ("true", "True", "1"):
                    verb = "watch"
                if (ns, plural, verb) in api.denied:
                    self._rbac_forbidden(ns, plural, name, verb)
                    return
                if ns in api.forbidden:
                    verb = {"GET": "list" if name is None else "get", "POST": "create"}.get(
                        method, method.lower()
                    )
                    self._status(
                        403,
                        "Forbidden",
                        f'{plural}.kubeflow.org is forbidden: User "fake-user" cannot {verb} resource '
                        f'"{plural}" in API group "kubeflow.org" in the namespace "{ns}"',
                    )
                    return
                if method == "GET" and name is None:
                    if query.get("watch") in ("true", "True", "1"):
                        self._watch(ns, plural, query)
                    else:
                        self._list(ns, plural, query)
                elif method == "GET":
                    obj = api.get(plural, ns, name)
                    if obj is None:
                        self._status(404, "NotFound", f'{plural}.kubeflow.org "{name}" not found')
                    else:
                        self._send(200, obj)
                elif method == "POST" and name is None:
                    self._create(ns, plural, self._body())
                elif method == "PATCH" and name is not None:
                    self._patch(ns, plural, name)
                elif method == "DELETE" and name is not None:
                    with api.lock:
                        obj = api.objects.pop((plural, ns, name), None)
                        if obj is not None:
                            obj = copy.deepcopy(obj)
                            obj["metadata"]["resourceVersion"] = api._bump()
                            api.events.append(
                                (int(obj["metadata"]["resourceVersion"]), "DELETED", plural, ns, obj)
                            )
                            api.lock.notify_all()
                    if obj is None:
                        self._status(404, "NotFound", f'{plural}.kubeflow.org "{name}" not found')
                    else:
                        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
                else:
                    self._status(405, "MethodNotAllowed", f"{method} is not supported on {path}")

            def _list(self, ns: str, plural: str, query: dict[str, str]) -> None:
                selector = query.get("labelSelector")
                with api.lock:
                    items = [
                        copy.deepcopy(o)
                        for (p, n, _), o in sorted(api.objects.items())
                        if p == plural
                        and n == ns
                        and selector_matches(selector, o["metadata"].get("labels") or {})
                    ]
                    rv = str(api.resource_version)
                metadata: dict[str, Any] = {"resourceVersion": rv}
                if query.get("limit"):
                    start = 0
                    if query.get("continue"):
                        try:
                            token = json.loads(base64.urlsafe_b64decode(query["continue"].encode()))
                            start, rv = int(token["start"]), str(token["rv"])
                        except (ValueError, KeyError, TypeError):
                            self._status(
                                410, "Expired", "The provided continue parameter is too old to display a "
                                "consistent list result. You can start a new list without the continue parameter.",
                            )  # fmt: skip
                            return
                    limit = int(query["limit"])
                    end = start + limit
                    if end < len(items):
                        token = {"rv": rv, "start": end}
                        metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
                        metadata["remainingItemCount"] = len(items) - end
                    items = items[start:end]
                self._send(
                    200,
                    {
                        "apiVersion": "kubeflow.org/v1beta1",
                        "kind": PLURALS[plural] + "List",
                        "metadata": metadata,
                        "items": items,
                    },
                )

            def _watch(self, ns: str, plural: str, query: dict[str, str]) -> None:
                selector = query.get("labelSelector")
                since = int(query.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(query.get("timeoutSeconds") or 5)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True

                def send(event: dict[str, Any]) -> None:
                    data = json.dumps(event).encode() + b"\n"
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                try:
                    self._stream(ns, plural, selector, since, deadline, send)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    return

            def _stream(self, ns: str, plural: str, selector: str | None, since: int, deadline: float,
                        send: Any) -> None:  # fmt: skip
                if not since:
                    with api.lock:
                        initial = [
                            o
                            for (p, n, _), o in sorted(api.objects.items())
                            if p == plural
                            and n == ns
                            and selector_matches(selector, o["metadata"].get("labels") or {})
                        ]
                        since = api.resource_version
                    for obj in initial:
                        send({"type": "ADDED", "object": obj})
                while True:
                    with api.lock:
                        fresh = [
                            e
                            for e in api.events
                            if e[0] > since
                            and e[2] == plural
                            and e[3] == ns
                            and selector_matches(selector, e[4]["metadata"].get("labels") or {})
                        ]
                        if not fresh:
                            remaining = deadline - time.monotonic()
                            if remaining <= 0:
                                return
                            api.lock.wait(min(remaining, 0.2))
                            continue
                    for rv, kind, _p, _n, obj in fresh:
                        send({"type": kind, "object": obj})
                        since = rv

            def _create(self, ns: str, plural: str, body: dict[str, Any]) -> None:
                if ns not in api.namespaces:
                    self._status(404, "NotFound", f'namespaces "{ns}" not found')
                    return
                if not isinstance(body, dict) or body.get("kind") != PLURALS[plural]:
                    self._status(400, "BadRequest", f"the body must be a {PLURALS[plural]}")
                    return
                meta = body.setdefault("metadata", {})
                if meta.get("namespace", ns) != ns:
                    self._status(400, "BadRequest", "the namespace of the object does not match the URL")
                    return
                meta["namespace"] = ns
                if not meta.get("name"):
                    self._status(422, "Invalid", "metadata.name: Required value")
                    return
                with api.lock:
                    if (plural, ns, meta["name"]) in api.objects:
                        self._status(
                            409, "AlreadyExists", f'{plural}.kubeflow.org "{meta["name"]}" already exists'
                        )
                        return
                    obj = api.put(plural, body)
                self._send(201, obj)

            def _patch(self, ns: str, plural: str, name: str) -> None:
                content_type = self.headers.get("Content-Type", "")
                if "merge-patch" not in content_type and "strategic-merge-patch" not in content_type:
                    self._status(415, "UnsupportedMediaType", f"unsupported patch type {content_type}")
                    return
                patch = self._body()
                with api.lock:
                    obj = api.get(plural, ns, name)
                    if obj is None:
                        self._status(404, "NotFound", f'{plural}.kubeflow.org "{name}" not found')
                        return
                    updated = api.put(plural, merge_patch(obj, patch), "MODIFIED")
                self._send(200, updated)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler


def _discovery() -> dict[str, Any]:
    resources = []
    for plural, kind in PLURALS.items():
        verbs = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
        resources.append(
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": verbs}
        )
        resources.append({"name": f"{plural}/status", "singularName": "", "namespaced": True, "kind": kind,
                          "verbs": ["get", "patch", "update"]})  # fmt: skip
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "kubeflow.org/v1beta1",
        "resources": resources,
    }


def at(base: datetime, seconds: float) -> datetime:
    """base + seconds."""
    return base + timedelta(seconds=seconds)
