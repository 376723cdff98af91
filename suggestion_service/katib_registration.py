"""Register surrogate-gp and surrogate-rf in a live Katib: the registration Job's program.

    python -m suggestion_service.katib_registration --entries /etc/katib-surrogate/suggestions.yaml \\
        [--namespace kubeflow] [--configmap katib-config] [--api-url URL] [--dry-run]

Reads ConfigMap ``NAMESPACE/CONFIGMAP`` through the Kubernetes API with the pod's ServiceAccount,
merges our two ``runtime.suggestions`` entries into its ``katib-config.yaml`` with
:func:`suggestion_service.katib_config_merge.merge_text` (``init`` and every other entry untouched, the
rest of the text kept byte for byte), and writes it back with ``PUT`` carrying the ``resourceVersion``
it read, so a concurrent edit is never overwritten (409 Conflict: read again and retry). Nothing is
written when the entries are already there as shipped, so the Job is idempotent. Katib reads
``runtime.suggestions`` on every use: no controller restart is needed.

RBAC it needs: ``get`` and ``update`` on ``configmaps`` named ``katib-config`` in the Katib namespace
(manifests/10-katib-registration.yaml). One log line on stdout says what changed.

Exit codes: 0 registered (or already registered), 1 the API refused or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suggestion_service.katib_config_merge import (
    CONFIG_KEY,
    OUR_ALGORITHMS,
    KatibConfigError,
    merge_text,
    parse_entries,
)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_ATTEMPTS = 5
PREFIX = "katib-registration"


class RegistrationError(RuntimeError):
    """The Kubernetes API refused or failed; ``status`` is the HTTP code (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ConfigMapAPI:
    """GET and PUT of one namespace's ConfigMaps over the Kubernetes REST API (stdlib only).

    api_url: ``https://host:port`` (or ``http://`` for a test server); token_file: re-read on every
    request (bound tokens rotate); ca_file: CA bundle for https (None = system CAs).
    """

    def __init__(
        self,
        api_url: str,
        *,
        token_file: Path | None = None,
        ca_file: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        parsed = urllib.parse.urlparse(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"invalid Kubernetes API URL {api_url!r}: expected https://HOST[:PORT]")
        self.api_url = api_url.rstrip("/")
        self.token_file = token_file
        self.timeout_s = timeout_s
        self._ssl = (
            ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if parsed.scheme == "https"
            else None
        )

    @classmethod
    def in_cluster(cls, env: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ConfigMapAPI:
        """The pod's API server and ServiceAccount token; ValueError when not running in a pod."""
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise ValueError(
                "not in a Kubernetes pod: KUBERNETES_SERVICE_HOST/PORT are not set (give --api-url)"
            )
        token = sa_dir / "token"
        if not token.is_file():
            raise ValueError(
                f"no ServiceAccount token at {token}: the Job needs automountServiceAccountToken"
            )
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        ca = sa_dir / "ca.crt"
        return cls(f"https://{netloc}", token_file=token, ca_file=ca if ca.is_file() else None)

    def _request(self, method: str, namespace: str, name: str, body: dict[str, Any] | None) -> dict[str, Any]:
        path = f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}/configmaps/{urllib.parse.quote(name, safe='')}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token_file is not None:
            request.add_header(
                "Authorization", f"Bearer {self.token_file.read_text(encoding='utf-8').strip()}"
            )
        what = f"{method} configmap {namespace}/{name}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s, context=self._ssl) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("message", "")
            except (ValueError, AttributeError):
                message = ""
            raise RegistrationError(
                f"{what}: HTTP {err.code} {err.reason}: {message}".rstrip(": "), err.code
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistrationError(f"{what}: {getattr(exc, 'reason', exc)}") from None
        if not isinstance(answer, dict):
            raise RegistrationError(f"{what}: the API answered with a non-object")
        return answer

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """The ConfigMap object."""
        return self._request("GET", namespace, name, None)

    def replace(self, namespace: str, name: str, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT ``obj`` (its ``metadata.resourceVersion`` makes the write conditional)."""
        return self._request("PUT", namespace, name, obj)


def register(
    api: ConfigMapAPI,
    namespace: str,
    name: str,
    entry_texts: list[str],
    *,
    dry_run: bool = False,
    attempts: int = DEFAULT_ATTEMPTS,
) -> str:
    """Merge our entries into the live ConfigMap; returns the log line saying what changed."""
    where = f"{namespace}/{name}"
    for _ in range(attempts):
        cm = api.get(namespace, name)
        data = cm.get("data") or {}
        if CONFIG_KEY not in data:
            raise KatibConfigError(f"ConfigMap {where} has no data key {CONFIG_KEY!r} (keys: {sorted(data)})")
        result = merge_text(data[CONFIG_KEY], entry_texts, f"ConfigMap {where}")
        others = len((result.config.get("runtime") or {}).get("suggestions") or []) - len(entry_texts)
        summary = (
            f"{where}: {', '.join(result.log)}; init and the other {others} suggestion entries untouched"
        )
        if not result.changed:
            return f"{summary}; nothing to write"
        if dry_run:
            return f"{summary}; dry run, nothing written"
        before = json.loads(json.dumps(cm))  # a copy to write back with only our key changed
        before["data"] = {**data, CONFIG_KEY: result.text}
        try:
            api.replace(namespace, name, before)
        except RegistrationError as err:
            if err.status == 409:  # changed since we read it: read it again
                continue
            raise
        return summary
    raise RegistrationError(
        f"{where}: still conflicting after {attempts} attempts (edited concurrently)", 409
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m suggestion_service.katib_registration",
        description="Add or update surrogate-gp and surrogate-rf in Katib's live katib-config ConfigMap.",
    )
    p.add_argument(
        "--entries", type=Path, required=True, help="YAML list of our katib-config suggestion entries"
    )
    p.add_argument("--namespace", default="kubeflow", help="Katib's namespace (default: kubeflow)")
    p.add_argument("--configmap", default="katib-config", help="Katib's ConfigMap (default: katib-config)")
    p.add_argument("--api-url", help="Kubernetes API URL (default: the pod's in-cluster API, with its token)")
    p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    return p


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Entry point; see the module docstring."""
    args = build_parser().parse_args(argv)
    try:
        if not args.entries.is_file():
            raise KatibConfigError(f"entries file {args.entries} does not exist")
        entries = parse_entries(args.entries.read_text(encoding="utf-8"), str(args.entries), OUR_ALGORITHMS)
        api = (
            ConfigMapAPI(args.api_url)
            if args.api_url
            else ConfigMapAPI.in_cluster(os.environ if env is None else env)
        )
    except (KatibConfigError, ValueError) as exc:
        print(f"{PREFIX}: error: {exc}", file=sys.stderr)
        return 2
    try:
        line = register(api, args.namespace, args.configmap, entries, dry_run=args.dry_run)
    except KatibConfigError as exc:
        print(f"{PREFIX}: error: {exc}", file=sys.stderr)
        return 2
    except RegistrationError as exc:
        hint = (
            f"; the Job's ServiceAccount needs get and update on configmaps/{args.configmap} in {args.namespace}"
            if exc.status in (401, 403)
            else ""
        )
        print(f"{PREFIX}: error: {exc}{hint}", file=sys.stderr)
        return 1
    print(f"{PREFIX}: {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
