"""What a rehearsal reads of the cluster set-up: the Jobs applied before the Experiments (the cache
Job) and the katib-config entry that deploys each algorithm's suggestion service.

Katib looks an algorithm up in ``runtime.suggestions`` of the ``katib-config`` ConfigMap's single key
``katib-config.yaml``; when a name appears twice the last entry wins (``katibconfig/config.go``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from client.errors import ClientError

SERVICE_COMMAND = ["python", "-m", "suggestion_service"]
_PORT_FLAGS = ("--port", "--metrics-port")


@dataclass
class ClusterSetup:
    """The Jobs a rehearsal runs (in file order), the Jobs it cannot run (name -> why) and the
    katib-config suggestion entries (by algorithm) of a folder."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    suggestions: dict[str, dict[str, Any]] = field(default_factory=dict)


def suggestion_entries(configmap: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``runtime.suggestions`` entries a ConfigMap holds: the katib-config file itself
    (``katib-config.yaml``), or a key that is a list of entries (what a registration merges into it)."""
    out: list[dict[str, Any]] = []
    for text in (configmap.get("data") or {}).values():
        try:
            value = yaml.safe_load(str(text))
        except yaml.YAMLError:
            continue
        if isinstance(value, dict) and value.get("kind") == "KatibConfig":
            value = (value.get("runtime") or {}).get("suggestions") or []
        if isinstance(value, list):
            out += [e for e in value if isinstance(e, dict) and e.get("algorithmName") and e.get("image")]
    return out


def why_not_rehearsed(job: dict[str, Any]) -> str | None:
    """Why a Job cannot run off-cluster (it talks to the Kubernetes API, or mounts a ConfigMap or
    Secret), or None when a rehearsal can run it."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    if pod.get("automountServiceAccountToken") is not False:
        return "its pod holds a Kubernetes API token (the rehearsal has no API server)"
    for volume in pod.get("volumes") or []:
        if not ({"persistentVolumeClaim", "emptyDir"} & set(volume)):
            return f"volume {volume.get('name')!r} is neither a PVC nor an emptyDir"
    return None


def read_setup(folder: Path) -> ClusterSetup:
    """Jobs and suggestion entries from the YAML files of ``folder`` (not recursive, like
    ``kubectl apply -f DIR``); the last entry for an algorithm wins, as in Katib."""
    if not folder.is_dir():
        raise ClientError(f"set-up folder {folder} does not exist (pass --setup DIR)")
    setup = ClusterSetup()
    for path in sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Job":
                name = str((doc.get("metadata") or {}).get("name"))
                why = why_not_rehearsed(doc)
                if why is None:
                    setup.jobs.append(doc)
                else:
                    setup.skipped[name] = why
            elif doc.get("kind") == "ConfigMap":
                for entry in suggestion_entries(doc):
                    setup.suggestions[str(entry["algorithmName"])] = entry
    return setup


def service_args(entry: dict[str, Any]) -> list[str]:
    """The entry's args with every port set to 0 (any free port on loopback), for ``ServiceProcess``;
    ClientError when the entry does not run this project's ``python -m suggestion_service``."""
    command = [str(c) for c in entry.get("command") or []]
    if command != SERVICE_COMMAND:
        raise ClientError(
            f"katib-config entry {entry.get('algorithmName')!r} runs {command or entry.get('image')!r}; "
            f"a rehearsal runs only {' '.join(SERVICE_COMMAND)}"
        )
    out: list[str] = []
    args = [str(a) for a in entry.get("args") or []]
    skip = False
    for arg in args:
        if skip:
            out.append("0")
            skip = False
        elif arg in _PORT_FLAGS:
            out.append(arg)
            skip = True
        elif arg.split("=", 1)[0] in _PORT_FLAGS:
            out.append(f"{arg.split('=', 1)[0]}=0")
        else:
            out.append(arg)
    return out


def service_env(entry: dict[str, Any], namespace: str) -> dict[str, str]:
    """The entry's env; ``fieldRef: metadata.namespace`` is the Experiment's namespace (the pod's)."""
    from client.rehearsal.pod_env import container_env

    try:
        return container_env({}, entry, {"metadata.namespace": namespace})
    except ValueError as err:
        raise ClientError(f"katib-config entry {entry.get('algorithmName')!r}: {err}") from None
