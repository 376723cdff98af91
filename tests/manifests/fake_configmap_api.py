"""A loopback fake of the Kubernetes API's ConfigMap endpoints, for the registration Job's program.

``GET`` and ``PUT /api/v1/namespaces/<ns>/configmaps/<name>`` with the API server's rules that matter
here: a PUT must carry the current ``metadata.resourceVersion`` (else 409 Conflict), each write bumps
it; bearer tokens are checked when ``token`` is set (401); ``forbid`` answers 403 with the Status body a
ServiceAccount gets; ``conflict_next`` makes the next PUTs lose a race (someone else wrote first).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/?]+)$")


class FakeConfigMapAPI:
    """ConfigMaps by (namespace, name); every request is recorded as (method, path)."""

    def __init__(self, token: str | None = None) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.token = token
        self.forbidden: set[str] = set()
        self.conflicts = 0
        self._version = 100
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL (http://127.0.0.1:PORT)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeConfigMapAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def put(self, namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
        """Create or overwrite a ConfigMap server-side (a new resourceVersion)."""
        self._version += 1
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self._version),
                         "uid": "6c1e", "labels": {"katib.kubeflow.org/component": "controller"}},
            "data": dict(data),
        }  # fmt: skip
        self.objects[namespace, name] = obj
        return copy.deepcopy(obj)

    def forbid(self, verb: str) -> None:
        """Answer 403 to ``get`` or ``update``."""
        self.forbidden.add(verb)

    def conflict_next(self, count: int = 1) -> None:
        """The next ``count`` PUTs find the object changed since it was read (409)."""
        self.conflicts = count

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "status": "Failure", "reason": reason,
                                  "message": message, "code": code})  # fmt: skip

            def _serve(self, method: str) -> None:
                api.requests.append((method, self.path))
                match = _PATH.match(self.path)
                if match is None:
                    return self._status(404, "NotFound", f"no route {self.path}")
                if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._status(401, "Unauthorized", "Unauthorized")
                ns, name = match["ns"], match["name"]
                verb = {"GET": "get", "PUT": "update"}[method]
                if verb in api.forbidden:
                    return self._status(
                        403, "Forbidden", f'configmaps "{name}" is forbidden: User '
                        f'"system:serviceaccount:katib-surrogate:katib-surrogate-registrar" cannot {verb} '
                        f'resource "configmaps" in API group "" in the namespace "{ns}"',
                    )  # fmt: skip
                current = api.objects.get((ns, name))
                if current is None:
                    return self._status(404, "NotFound", f'configmaps "{name}" not found')
                if method == "GET":
                    return self._send(200, current)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                sent = (body.get("metadata") or {}).get("resourceVersion")
                if api.conflicts:
                    api.conflicts -= 1
                    api.put(ns, name, current["data"])  # someone else wrote in between
                    sent = "stale"
                if sent != current["metadata"]["resourceVersion"]:
                    return self._status(409, "Conflict", "the object has been modified; please apply your "
                                        "changes to the latest version and try again")  # fmt: skip
                return self._send(200, api.put(ns, name, body.get("data") or {}))

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PUT(self) -> None:
                self._serve("PUT")

        return Handler
