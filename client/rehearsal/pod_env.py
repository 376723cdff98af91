"""The command and environment a container would get: the image's ``ENV`` lines, then the pod spec's env.

Kubernetes starts a container with the image's environment and lays the container's ``env`` over it
(container values win). These functions read both from the committed files, so a rehearsal runs a
command with exactly that environment, and a change to either file shows up in the rehearsal.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml


def dockerfile_env(dockerfile: str | Path) -> dict[str, str]:
    """The ``ENV`` variables a Dockerfile sets (``ENV K=V K2="v 2"`` and the legacy ``ENV K V``).

    Line continuations are joined and comments skipped; later values replace earlier ones, as in a
    build. ``$VAR`` references are not expanded (the project's Dockerfiles use none).
    """
    env: dict[str, str] = {}
    for instruction in _instructions(Path(dockerfile).read_text()):
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() != "ENV":
            continue
        words = shlex.split(rest, comments=False, posix=True)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


def _instructions(text: str) -> list[str]:
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append((current + line).strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def job_container(manifest: str | Path, job_name: str, container: str | None = None) -> dict[str, Any]:
    """The container spec (``command``, ``args``, ``env``...) of Job ``job_name`` in a manifest file.

    ``container`` picks one by name; by default the Job must have exactly one container.
    """
    docs = [d for d in yaml.safe_load_all(Path(manifest).read_text()) if d]
    jobs = [d for d in docs if d.get("kind") == "Job" and d.get("metadata", {}).get("name") == job_name]
    if len(jobs) != 1:
        raise ValueError(f"{manifest}: expected one Job named {job_name!r}, found {len(jobs)}")
    containers = jobs[0]["spec"]["template"]["spec"]["containers"]
    if container is not None:
        containers = [c for c in containers if c.get("name") == container]
    if len(containers) != 1:
        raise ValueError(
            f"{manifest}: Job {job_name!r} has {len(containers)} matching containers, expected one"
        )
    return containers[0]


def container_env(
    image_env: dict[str, str], spec: dict[str, Any], field_refs: dict[str, str] | None = None
) -> dict[str, str]:
    """The image environment with the container's ``env`` values laid over it.

    ``field_refs`` maps a downward-API ``fieldPath`` (``metadata.namespace``,
    ``metadata.labels['k']``...) to its value; any other ``valueFrom`` (secrets, config maps, resource
    fields, an unknown field) cannot be resolved off-cluster and raises ``ValueError``.
    """
    env = dict(image_env)
    for item in spec.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        path = ((item.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if path is None or path not in (field_refs or {}):
            raise ValueError(f"env {item.get('name')!r} uses valueFrom, which a rehearsal cannot resolve")
        env[item["name"]] = str((field_refs or {})[path])
    return env
