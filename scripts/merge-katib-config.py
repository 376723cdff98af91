#!/usr/bin/env python3
"""Merge the surrogate suggestion entries into a live (possibly customised) Katib configuration, by hand.

    kubectl get cm katib-config -n kubeflow -o yaml \\
      | python scripts/merge-katib-config.py [--entries manifests/10-katib-registration.yaml] \\
      | kubectl apply -f -

``kubectl apply -f manifests/`` does the same inside the cluster (the registration Job of
manifests/10-katib-registration.yaml); this script is for reviewing the result first, or for clusters
that cannot run that Job. Both merge with suggestion_service/katib_config_merge.py.

Reads a ConfigMap (``kubectl get ... -o yaml`` or ``-o json``) or a bare KatibConfig from a file or
stdin. Every ``runtime.suggestions`` entry whose ``algorithmName`` is one of ours (default:
surrogate-gp, surrogate-rf) is replaced by our entry; missing ones are appended; everything else
(your images, resources, other algorithms, init settings) is kept as it is, and so is the text of the
live katib-config.yaml outside our entries (comments included) wherever its suggestions are a block
list. Server-managed metadata (resourceVersion, uid, managedFields, ...) is dropped so the output can
be applied. What changed is reported on stderr, with the ServiceAccount our entries run as (it must
exist in each namespace that runs their Experiments).

Exit codes: 0 merged, 2 bad input (the message says what is wrong).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "manifests"))
sys.path.insert(1, str(REPO_ROOT))
import manifest_yaml  # noqa: E402
import yaml  # noqa: E402

from suggestion_service.katib_config_merge import (  # noqa: E402
    CONFIG_KEY,
    OUR_ALGORITHMS,
    KatibConfigError,
    merge,
    merge_text,
    parse_entries,
    suggestion_texts,
)

__all__ = ["main", "merge"]  # ``merge`` (the parsed reference merge) is re-exported for the tests

DEFAULT_ENTRIES = REPO_ROOT / "manifests" / "10-katib-registration.yaml"
ENTRIES_KEY = "suggestions.yaml"
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MergeError = KatibConfigError


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Every YAML/JSON mapping of ``text``."""
    try:
        return manifest_yaml.load_all_text(text, source)
    except ValueError as exc:
        raise MergeError(str(exc)) from None


def parse_document(text: str, source: str) -> dict[str, Any]:
    """Exactly one YAML/JSON mapping from ``text``."""
    docs = parse_documents(text, source)
    if len(docs) != 1:
        raise MergeError(f"{source}: expected one document (a ConfigMap or a KatibConfig), found {len(docs)}")
    return docs[0]


def config_text_from(doc: dict[str, Any], text: str, source: str) -> str:
    """The ``katib-config.yaml`` text of a ConfigMap document, or ``text`` itself for a KatibConfig."""
    if doc.get("kind") == "KatibConfig":
        return text
    if doc.get("kind") != "ConfigMap":
        raise MergeError(f"{source}: expected kind ConfigMap or KatibConfig, got {doc.get('kind')!r}")
    data = doc.get("data") or {}
    if CONFIG_KEY not in data:
        raise MergeError(f"{source}: ConfigMap has no data key {CONFIG_KEY!r} (keys: {sorted(data)})")
    return str(data[CONFIG_KEY])


def our_entries(entries_path: Path, algorithms: list[str]) -> list[str]:
    """The text of our entries, in ``algorithms`` order, from a generated file: the registration bundle
    (its ConfigMap's ``suggestions.yaml``), a katib-config ConfigMap or a bare KatibConfig."""
    if not entries_path.is_file():
        raise MergeError(f"entries file {entries_path} does not exist")
    source, text = str(entries_path), entries_path.read_text(encoding="utf-8")
    docs = parse_documents(text, source)
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and ENTRIES_KEY in (doc.get("data") or {}):
            return parse_entries(doc["data"][ENTRIES_KEY], source, tuple(algorithms))
    if len(docs) != 1:
        raise MergeError(f"{source}: no ConfigMap with a {ENTRIES_KEY!r} key and not a single katib-config")
    return suggestion_texts(config_text_from(docs[0], text, source), source, tuple(algorithms))


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


def merged_output(doc: dict[str, Any], config_text: str) -> str:
    """The output YAML: a ConfigMap carrying ``config_text``, or the bare KatibConfig text."""
    if doc.get("kind") == "KatibConfig":
        return config_text
    out = {k: v for k, v in doc.items() if k != "status"}
    out["metadata"] = clean_metadata(doc.get("metadata") or {})
    out["data"] = {**(doc.get("data") or {}), CONFIG_KEY: config_text}
    return manifest_yaml.dump(out)


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
        help="file with our entries: a generated 10-katib-registration.yaml or katib-config ConfigMap "
        "(default: manifests/10-katib-registration.yaml)",
    )
    p.add_argument(
        "--algorithms",
        default=",".join(OUR_ALGORITHMS),
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
        config_text = config_text_from(doc, text, source)
        texts = our_entries(args.entries, algorithms)
        result = merge_text(config_text, texts, source)
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_text = merged_output(doc, result.text)
    if args.output == "-":
        sys.stdout.write(out_text)
    else:
        Path(args.output).write_text(out_text, encoding="utf-8")
    entries = [yaml.safe_load(t)[0] for t in texts]
    for line in [*result.log, *service_account_notes(entries)]:
        print(f"merge-katib-config: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
