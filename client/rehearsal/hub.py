"""A Hugging Face hub on 127.0.0.1 that serves a local folder, for rehearsals and tests.

Point ``HF_ENDPOINT`` at :attr:`LoopbackHub.url` and the unmodified clients (``huggingface_hub``,
``transformers``, ``datasets``) download from it exactly as from huggingface.co. The folder is laid
out as::

    <root>/models/<repo id>/...     model repos (bert-base-uncased, org/name)
    <root>/datasets/<repo id>/...   dataset repos (nyu-mll/glue, uoft-cs/cifar10)
    <root>/files/<path>             plain files at ``<url>/<path>`` (e.g. models/resnet50-<hash>.pth,
                                    the path torchvision's weights have on download.pytorch.org)

Endpoints (the ones the pinned clients call; anything else is a 404 with the hub's error headers):

- ``GET /api/{models,datasets}/<repo>[/revision/<rev>]``: repo info (``sha``, ``siblings``);
- ``GET /api/{models,datasets}/<repo>/tree/<rev>[/<path>]?recursive=&cursor=``: the tree listing,
  paginated with a ``Link: <...>; rel="next"`` header like the hub;
- ``POST /api/{models,datasets}/<repo>/paths-info/<rev>`` (form ``paths=...``);
- ``HEAD``/``GET /[datasets/]<repo>/resolve/<rev>/<file>``: ``X-Repo-Commit``, ``ETag``,
  ``Content-Length``; LFS files (weights, parquet) answer with a 302 to a CDN-like URL and carry
  ``X-Linked-Etag``/``X-Linked-Size``, as the hub does (the CDN is a second port: the clients follow
  redirects only within one origin); ``Range`` requests resume downloads;
- ``GET /<path>``: ``<root>/files/<path>``.

Used as ``HTTP(S)_PROXY`` (with ``NO_PROXY=127.0.0.1``), the hub refuses every request that would leave
the machine (``CONNECT`` and absolute URLs to other hosts get a 403) and records it in ``requests``, so
a rehearsal is hermetic and shows what a command tried to reach outside the hub.

The only revision is ``main`` (or the commit id it resolves to). The folder must not change while it
is served: each repo is scanned once, on its first request.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from client.rehearsal.hub_repos import DEFAULT_BRANCH, REPO_TYPES, Repo, RepoFile, load_repo

API_ACTIONS = ("revision", "tree", "paths-info")
TREE_PAGE_SIZE = 1000  # the hub's page size for tree listings without expand
#: datasets' download-count ping (a HEAD on its S3 bucket through the proxy; errors ignored)
DOWNLOAD_COUNT_PING = ("CONNECT", "s3.amazonaws.com:443", 403)


class HubError(Exception):
    """An answer the hub gives as an error: status plus its ``X-Error-Code``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class LoopbackHub:
    """Serve ``root`` as a Hugging Face hub (plus plain files) on loopback until :meth:`stop`.

    ``requests`` records ``(method, path, status)`` of every request, in order, so a test can tell
    what the clients asked for.
    """

    def __init__(
        self, root: str | Path, host: str = "127.0.0.1", port: int = 0, tree_page_size: int = TREE_PAGE_SIZE
    ) -> None:
        self.root = Path(root)
        self.host = host
        self.port = port
        self.tree_page_size = tree_page_size
        self.requests: list[tuple[str, str, int]] = []
        self._repos: dict[tuple[str, str], Repo | None] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` once started (the value for ``HF_ENDPOINT``)."""
        return self._address(0)

    @property
    def cdn_url(self) -> str:
        """Where LFS downloads are redirected: a second port, so clients see another origin, as on the hub."""
        return self._address(1)

    def _address(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the hub is not started")
        return f"http://{self.host}:{self._servers[index].server_address[1]}"

    def start(self) -> LoopbackHub:
        """Bind the hub (``port``, 0 for any) and its CDN (any port); serve in daemon threads."""
        if self._servers:
            return self
        for port, role in ((self.port, "hub"), (0, "cdn")):
            server = ThreadingHTTPServer((self.host, port), _Handler)
            server.daemon_threads = True
            server.hub = self  # type: ignore[attr-defined]
            server.role = role  # type: ignore[attr-defined]
            thread = threading.Thread(target=server.serve_forever, name=f"loopback-{role}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets (idempotent)."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._servers, self._threads = [], []

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def egress(self) -> list[tuple[str, str, int]]:
        """Recorded requests that tried to leave loopback, apart from the two optional look-ups
        ``datasets`` makes and ignores when refused: its download-count ping to S3 and the dataset
        viewer's ``datasets-server.<hub host>/info``."""
        viewer = f"http://datasets-server.{urlsplit(self.url).netloc}/info?"
        return [
            r
            for r in self.requests
            if r[2] == 403 and r != DOWNLOAD_COUNT_PING and not r[1].startswith(viewer)
        ]

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        """The scanned repository, or a ``RepoNotFound`` :class:`HubError`."""
        key = (repo_type, repo_id)
        with self._lock:
            if key not in self._repos:
                self._repos[key] = load_repo(self.root, repo_type, repo_id)
            found = self._repos[key]
        if found is None:
            raise HubError(404, "RepoNotFound", f"Repository {repo_type}/{repo_id} not found")
        return found

    def revision(self, repo_type: str, repo_id: str, revision: str) -> Repo:
        """The repository at ``revision`` (``main`` or its commit id), else ``RevisionNotFound``."""
        repo = self.repo(repo_type, repo_id)
        if revision not in (DEFAULT_BRANCH, repo.sha):
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo

    def plain_file(self, path: str) -> Path:
        """``<root>/files/<path>`` if it is a file inside that folder, else a 404 :class:`HubError`."""
        base = (self.root / "files").resolve()
        target = (base / path).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            raise HubError(404, "EntryNotFound", f"{path} not found")
        return target


def _split(path: str) -> list[str]:
    return [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []


def _repo_and_rest(parts: list[str], keywords: tuple[str, ...]) -> tuple[str, str | None, list[str]]:
    """Split ``[a, (b,) keyword, rest...]`` into (repo id, keyword, rest); keyword None if absent."""
    for n in (1, 2):
        if len(parts) > n and parts[n] in keywords:
            return "/".join(parts[:n]), parts[n], parts[n + 1 :]
    return "/".join(parts), None, []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1"

    @property
    def hub(self) -> LoopbackHub:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are recorded in ``hub.requests``; nothing goes to stderr."""

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_POST(self) -> None:
        self._dispatch(send_body=True)

    def do_CONNECT(self) -> None:
        """A client using the hub as its HTTPS proxy tried to leave loopback: refuse, and record it."""
        self._send_bytes(b"egress blocked by the loopback hub\n", HTTPStatus.FORBIDDEN, True, {})
        self.close_connection = True

    def _dispatch(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            if url.netloc and url.netloc != urlsplit(self.hub.url).netloc:
                raise HubError(403, "EgressBlocked", f"egress to {url.netloc} blocked by the loopback hub")
            self._route(_split(url.path), query, send_body)
        except HubError as err:
            self._send_json({"error": str(err)}, err.status, send_body, {"X-Error-Code": err.code})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, parts: list[str], query: dict[str, list[str]], send_body: bool) -> None:
        if self.command == "POST":
            if len(parts) > 2 and parts[0] == "api" and parts[1] in REPO_TYPES:
                repo_id, action, rest = _repo_and_rest(parts[2:], API_ACTIONS)
                if action == "paths-info" and len(rest) == 1:
                    return self._paths_info(parts[1], repo_id, rest[0])
            raise HubError(404, "EntryNotFound", f"no route for POST {self.path}")
        if len(parts) > 2 and parts[0] == "api" and parts[1] in REPO_TYPES:
            return self._api(parts[1], parts[2:], query, send_body)
        if self.server.role == "cdn":  # type: ignore[attr-defined]
            if parts[:1] == ["_lfs"]:
                return self._lfs(query, send_body)
            raise HubError(404, "EntryNotFound", f"no route for {self.path}")
        repo_type, repo_parts = ("datasets", parts[1:]) if parts[:1] == ["datasets"] else ("models", parts)
        repo_id, action, rest = _repo_and_rest(repo_parts, ("resolve",))
        if action == "resolve" and len(rest) >= 2:
            return self._resolve(repo_type, repo_id, rest[0], "/".join(rest[1:]), send_body)
        return self._send_file(self.hub.plain_file("/".join(parts)), None, send_body)

    def _api(self, repo_type: str, parts: list[str], query: dict[str, list[str]], send_body: bool) -> None:
        repo_id, action, rest = _repo_and_rest(parts, API_ACTIONS)
        if action is None:
            return self._send_json(
                self.hub.revision(repo_type, repo_id, DEFAULT_BRANCH).info(), 200, send_body
            )
        if action == "revision" and rest:
            return self._send_json(
                self.hub.revision(repo_type, repo_id, "/".join(rest)).info(), 200, send_body
            )
        if action == "tree" and rest:
            return self._tree(repo_type, repo_id, rest[0], "/".join(rest[1:]), query, send_body)
        raise HubError(404, "EntryNotFound", f"no route for {self.path}")

    def _tree(
        self,
        repo_type: str,
        repo_id: str,
        revision: str,
        folder: str,
        query: dict[str, list[str]],
        send_body: bool,
    ) -> None:
        repo = self.hub.revision(repo_type, repo_id, revision)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries = repo.listing(folder, recursive)
        if entries is None:
            raise HubError(404, "EntryNotFound", f"{folder} does not exist on {revision}")
        start = int(query.get("cursor", ["0"])[0] or 0)
        end = start + self.hub.tree_page_size
        headers = {}
        if end < len(entries):
            next_query = {k: v[0] for k, v in query.items()} | {"cursor": str(end)}
            next_url = f"{self.hub.url}{urlsplit(self.path).path}?{urlencode(next_query)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._send_json(entries[start:end], 200, send_body, headers)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self.hub.revision(repo_type, repo_id, revision)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        if "json" in (self.headers.get("Content-Type") or ""):
            paths = json.loads(body or "{}").get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        entries = [e for e in (repo.entry(p.strip("/")) for p in paths) if e is not None]
        self._send_json(entries, 200, True)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str, send_body: bool) -> None:
        repo = self.hub.revision(repo_type, repo_id, revision)
        entry = repo.files.get(path)
        if entry is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {revision}")
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{entry.blob_id}"'}
        if entry.sha256 is None:
            return self._send_file(entry.disk, entry, send_body, headers)
        # LFS: the hub redirects to its CDN; the linked etag/size describe the file itself
        cdn = {"repo_type": repo_type, "repo_id": repo.repo_id, "path": path, "sha256": entry.sha256}
        headers |= {
            "X-Linked-Etag": f'"{entry.sha256}"',
            "X-Linked-Size": str(entry.size),
            "Location": f"{self.hub.cdn_url}/_lfs/{entry.sha256}?{urlencode(cdn, quote_via=quote)}",
        }
        self._send_bytes(b"", HTTPStatus.FOUND, send_body, headers)

    def _lfs(self, query: dict[str, list[str]], send_body: bool) -> None:
        def arg(name: str) -> str:
            return query.get(name, [""])[0]

        repo = self.hub.repo(arg("repo_type"), arg("repo_id"))
        entry = repo.files.get(arg("path"))
        if entry is None or entry.sha256 != arg("sha256"):
            raise HubError(404, "EntryNotFound", "no such LFS object")
        self._send_file(entry.disk, entry, send_body)

    def _send_file(
        self, disk: Path, entry: RepoFile | None, send_body: bool, headers: dict[str, str] | None = None
    ) -> None:
        size = disk.stat().st_size
        start, end, status = _byte_range(self.headers.get("Range"), size)
        out = dict(headers or {})
        out.setdefault("ETag", f'"{entry.etag() if entry else _weak_id(disk, size)}"')
        out["Accept-Ranges"] = "bytes"
        out["Content-Type"] = mimetypes.guess_type(disk.name)[0] or "application/octet-stream"
        if status == HTTPStatus.PARTIAL_CONTENT:
            out["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        self._start(status, end - start, out)
        if send_body and end > start:
            with disk.open("rb") as fh:
                fh.seek(start)
                _copy(fh.read, self.wfile.write, end - start)

    def _send_json(
        self, payload: Any, status: int, send_body: bool, headers: dict[str, str] | None = None
    ) -> None:
        out = {"Content-Type": "application/json"} | (headers or {})
        self._send_bytes(json.dumps(payload).encode(), status, send_body, out)

    def _send_bytes(self, body: bytes, status: int, send_body: bool, headers: dict[str, str]) -> None:
        self._start(status, len(body), headers)
        if send_body:
            self.wfile.write(body)

    def _start(self, status: int, length: int, headers: dict[str, str]) -> None:
        self.hub.requests.append((self.command, self.path, int(status)))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()


def _byte_range(header: str | None, size: int) -> tuple[int, int, int]:
    """(start, end exclusive, status) for a ``Range: bytes=a-[b]`` header (200 and all bytes if absent)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return 0, size, HTTPStatus.OK
    first, _, last = header[len("bytes=") :].partition("-")
    if not first:
        return max(size - int(last or 0), 0), size, HTTPStatus.PARTIAL_CONTENT
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size:
        raise HubError(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "RangeNotSatisfiable", header)
    return start, end, HTTPStatus.PARTIAL_CONTENT


def _weak_id(disk: Path, size: int) -> str:
    return f"{size:x}-{disk.stat().st_mtime_ns:x}"


def _copy(read: Callable[[int], bytes], write: Callable[[bytes], Any], length: int) -> None:
    remaining = length
    while remaining > 0:
        chunk = read(min(remaining, 1 << 20))
        if not chunk:
            break
        write(chunk)
        remaining -= len(chunk)


__all__ = ["HubError", "LoopbackHub"]
