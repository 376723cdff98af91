#!/usr/bin/env python3
"""Merge the surrogate suggestion entries into a live (possibly customised) Katib configuration.

    kubectl get cm katib-config -n kubeflow -o yaml \\
      | python scripts/merge-katib-config.py [--entries manifests/10-katib-config.yaml] \\
      | kubectl apply -f -

Reads a ConfigMap (``kubectl get ... -o yaml`` or ``-o json``) or a bare KatibConfig from a file or
stdin. Every ``runtime.suggestions`` entry whose ``algorithmName`` is one of ours (default:
surrogate-gp, surrogate-rf) is replaced by our entry; missing ones are appended; everything else
(your images, resources, other algorithms, init settings) is kept as it is. Server-managed metadata
(resourceVersion, uid, managedFields, ...) is dropped so the output can be applied. What changed is
reported on stderr, with the ServiceAccount our entries run as (it must exist in each namespace that
runs their Experiments). Comments inside the live katib-config.yaml are not preserved (it is re-serialised).

Exit codes: 0 merged, 2 bad input (the message says what is wrong).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "manifests"))
import manifest_yaml  # noqa: E402
import yaml  # noqa: E402

DEFAULT_ENTRIES = REPO_ROOT / "manifests" / "10-katib-config.yaml"
DEFAULT_ALGORITHMS = ("surrogate-gp", "surrogate-rf")
CONFIG_KEY = "katib-config.yaml"
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class MergeError(ValueError):
    """The input is not something this script can merge into."""


def parse_document(text: str, source: str) -> dict[str, Any]:
    """Exactly one YAML/JSON mapping from ``text``."""
    try:
        docs = manifest_yaml.load_all_text(text, source)
    except ValueError as exc:
        raise MergeError(str(exc)) from None
    if len(docs) != 1:
        raise MergeError(f"{source}: expected one document (a ConfigMap or a KatibConfig), found {len(docs)}")
    return docs[0]


def katib_config_from(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """The KatibConfig inside a ConfigMap document, or the document itself if it is one."""
    if doc.get("kind") == "KatibConfig":
        config = doc
    elif doc.get("kind") == "ConfigMap":
        data = doc.get("data") or {}
        if CONFIG_KEY not in data:
            raise MergeError(f"{source}: ConfigMap has no data key {CONFIG_KEY!r} (keys: {sorted(data)})")
        try:
            config = yaml.safe_load(data[CONFIG_KEY])
        except yaml.YAMLError as exc:
            raise MergeError(f"{source}: data.{CONFIG_KEY} is not valid YAML: {exc}") from None
    else:
        raise MergeError(f"{source}: expected kind ConfigMap or KatibConfig, got {doc.get('kind')!r}")
    if not isinstance(config, dict) or config.get("kind") != "KatibConfig":
        raise MergeError(f"{source}: {CONFIG_KEY} is not a KatibConfig (kind: KatibConfig)")
    runtime = config.get("runtime")
    if runtime is not None and not isinstance(runtime, dict):
        raise MergeError(f"{source}: runtime must be a mapping")
    suggestions = (runtime or {}).get("suggestions")
    if suggestions is not None and not isinstance(suggestions, list):
        raise MergeError(f"{source}: runtime.suggestions must be a list")
    return config


def our_entries(entries_path: Path, algorithms: list[str]) -> list[dict[str, Any]]:
    """Our suggestion entries, in order, taken from the shipped katib-config ConfigMap (or a KatibConfig)."""
    if not entries_path.is_file():
        raise MergeError(f"entries file {entries_path} does not exist")
    source = str(entries_path)
    config = katib_config_from(parse_document(entries_path.read_text(encoding="utf-8"), source), source)
    found = {e.get("algorithmName"): e for e in (config.get("runtime") or {}).get("suggestions") or []}
    missing = [a for a in algorithms if a not in found]
    if missing:
        raise MergeError(f"{source}: no suggestion entry for {missing}; it has {sorted(found, key=str)}")
    return [copy.deepcopy(found[a]) for a in algorithms]


def merge(config: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """``config`` with ``entries`` replacing same-named suggestions (all copies) or appended; plus a log."""
    merged = copy.deepcopy(config)
    runtime = merged.setdefault("runtime", {}) or {}
    merged["runtime"] = runtime
    suggestions = list(runtime.get("suggestions") or [])
    log: list[str] = []
    for entry in entries:
        name = entry["algorithmName"]
        positions = [
            i for i, s in enumerate(suggestions) if isinstance(s, dict) and s.get("algorithmName") == name
        ]
        if not positions:
            suggestions.append(entry)
            log.append(f"appended {name}")
            continue
        old = suggestions[positions[0]]
        suggestions[positions[0]] = entry
        for i in reversed(positions[1:]):
            del suggestions[i]
        extra = f" (and removed {len(positions) - 1} duplicate(s))" if len(positions) > 1 else ""
        log.append(f"{'kept' if old == entry else 'replaced'} {name}{extra}")
    runtime["suggestions"] = suggestions
    return merged, log


def service_account_notes(entries: list[dict[str, Any]]) -> list[str]:
    """One reminder per ServiceAccount our entries run as: it must exist where the Experiments run."""
    by_account: dict[str, list[str]] = {}
    for entry in entries:
        if entry.get("serviceAccountName"):
            by_account.setdefault(str(entry["serviceAccountName"]), []).append(str(entry["algorithmName"]))
    return [
        f"{', '.join(algorithms)} run as ServiceAccount {account!r}: create it in every namespace that runs "
        "their Experiments (manifests/05-suggestion-serviceaccount.yaml), or no suggestion pod starts"
        for account, algorithms in by_account.items()
    ]


def clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata without the fields the API server owns."""
    meta = {k: v for k, v in (metadata or {}).items() if k not in SERVER_FIELDS}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return meta


def merged_document(doc: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The output document: a ConfigMap carrying ``config`` (or the bare KatibConfig)."""
    if doc.get("kind") == "KatibConfig":
        return config
    out = {k: v for k, v in doc.items() if k != "status"}
    out["metadata"] = clean_metadata(doc.get("metadata") or {})
    out["data"] = {**(doc.get("data") or {}), CONFIG_KEY: manifest_yaml.dump(config)}
    return out


def build_parser() -> argparse.ArgumentParser:
    """The script's command line."""
    p = argparse.ArgumentParser(
        prog="scripts/merge-katib-config.py",
        description="Add or replace the surrogate suggestion entries in a live katib-config.",
    )
    p.add_argument(
        "input", nargs="?", default="-", help="ConfigMap or KatibConfig YAML/JSON file (default: stdin)"
    )
    p.add_argument("-o", "--output", default="-", help="where to write the merged YAML (default: stdout)")
    p.add_argument(
        "--entries",
        type=Path,
        default=DEFAULT_ENTRIES,
        help="file with our entries: the generated katib-config ConfigMap (default: manifests/10-katib-config.yaml)",
    )
    p.add_argument(
        "--algorithms",
        default=",".join(DEFAULT_ALGORITHMS),
        help="comma-separated algorithm names to merge (default: surrogate-gp,surrogate-rf)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    args = build_parser().parse_args(argv)
    try:
        algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
        if not algorithms:
            raise MergeError("--algorithms is empty: name at least one algorithm, e.g. surrogate-gp")
        if args.input == "-":
            source, text = "<stdin>", sys.stdin.read()
        else:
            path = Path(args.input)
            if not path.is_file():
                raise MergeError(f"input file {path} does not exist")
            source, text = str(path), path.read_text(encoding="utf-8")
        if not text.strip():
            raise MergeError(
                f"{source}: empty input; pipe in `kubectl get cm katib-config -n kubeflow -o yaml`"
            )
        doc = parse_document(text, source)
        config = katib_config_from(doc, source)
        entries = our_entries(args.entries, algorithms)
        merged, log = merge(config, entries)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_text = manifest_yaml.dump(merged_document(doc, merged))
    if args.output == "-":
        sys.stdout.write(out_text)
    else:
        Path(args.output).write_text(out_text, encoding="utf-8")
    for line in [*log, *service_account_notes(entries)]:
        print(f"merge-katib-config: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
