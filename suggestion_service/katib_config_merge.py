"""Merge our suggestion entries into a Katib configuration, touching nothing else.

Katib keeps its whole configuration in one string key (``katib-config.yaml`` of ConfigMap
``kubeflow/katib-config``). Its ``init`` section is read from the mounted file once at controller
start-up, while ``runtime.suggestions`` is read from the ConfigMap on every use (Katib v0.19
``pkg/util/v1beta1/katibconfig/config.go``). So registering an algorithm only needs its
``runtime.suggestions`` entry, and a registration must leave ``init`` and every other entry alone.

:func:`merge` is the reference (parsed) merge: each of our entries replaces every same-named entry
(the first in place, duplicates removed; Katib uses the last one of a name) or is appended.
:func:`merge_text` applies the same change to the text itself: our items are spliced into the
``runtime.suggestions`` block and every other byte (comments, quoting, order) is kept. The result is
checked against :func:`merge`; a layout the splice cannot handle (a flow-style list, an item that does
not start on its dash line) is written out whole as JSON, which is valid YAML and unambiguous to
Katib's parser.

This module is part of the suggestion image so that the registration Job
(``python -m suggestion_service.katib_registration``) can run it; it imports only the standard
library and PyYAML.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import yaml

CONFIG_KEY = "katib-config.yaml"
OUR_ALGORITHMS = ("surrogate-gp", "surrogate-rf")


class KatibConfigError(ValueError):
    """The input is not something our entries can be merged into (the message says why)."""


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_text` did: the new text, its parsed config, one log line per entry."""

    text: str
    config: dict[str, Any]
    log: list[str]
    changed: bool


def check_katib_config(config: Any, source: str) -> dict[str, Any]:
    """``config`` if it is a KatibConfig mapping whose ``runtime.suggestions`` is a list (or absent)."""
    if not isinstance(config, dict) or config.get("kind") != "KatibConfig":
        raise KatibConfigError(f"{source}: {CONFIG_KEY} is not a KatibConfig (kind: KatibConfig)")
    runtime = config.get("runtime")
    if runtime is not None and not isinstance(runtime, dict):
        raise KatibConfigError(f"{source}: runtime must be a mapping")
    suggestions = (runtime or {}).get("suggestions")
    if suggestions is not None and not isinstance(suggestions, list):
        raise KatibConfigError(f"{source}: runtime.suggestions must be a list")
    return config


def parse_katib_config(text: str, source: str) -> dict[str, Any]:
    """The KatibConfig in ``text`` (the value of the ``katib-config.yaml`` key)."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KatibConfigError(f"{source}: data.{CONFIG_KEY} is not valid YAML: {exc}") from None
    return check_katib_config(config, source)


def parse_entries(text: str, source: str, algorithms: tuple[str, ...] = OUR_ALGORITHMS) -> list[str]:
    """The text of each of our entries, in ``algorithms`` order, from a YAML list of suggestion entries."""
    try:
        node = yaml.compose(text)
        entries = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KatibConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(node, yaml.SequenceNode) or not isinstance(entries, list):
        raise KatibConfigError(f"{source}: expected a YAML list of katib-config suggestion entries")
    spans = _item_spans(text, node)
    found: dict[str, str] = {}
    for entry, span in zip(entries, spans, strict=True):
        if not isinstance(entry, dict) or not str(entry.get("image") or "").strip():
            raise KatibConfigError(f"{source}: every entry needs an algorithmName and an image: {entry!r}")
        if span is None:
            raise KatibConfigError(f"{source}: write each entry as a block item ('- algorithmName: ...')")
        found[str(entry.get("algorithmName"))] = _dedent_item(text, span)
    missing = [a for a in algorithms if a not in found]
    if missing:
        raise KatibConfigError(f"{source}: no suggestion entry for {missing}; it has {sorted(found)}")
    return [found[a] for a in algorithms]


def suggestion_texts(
    config_text: str, source: str, algorithms: tuple[str, ...] = OUR_ALGORITHMS
) -> list[str]:
    """The text of the named ``runtime.suggestions`` entries of a KatibConfig (the last of each name, the
    one Katib uses), as block items at column 0, in ``algorithms`` order."""
    config = parse_katib_config(config_text, source)
    suggestions = (config.get("runtime") or {}).get("suggestions") or []
    seq = _suggestions_node(config_text)
    spans = _item_spans(config_text, seq) if seq is not None else [None] * len(suggestions)
    found: dict[str, str] = {}
    for entry, span in zip(suggestions, spans, strict=True):
        name = str(entry.get("algorithmName")) if isinstance(entry, dict) else ""
        if name in algorithms:
            found[name] = (
                _dedent_item(config_text, span) if span else yaml.safe_dump([entry], sort_keys=False)
            )
    missing = [a for a in algorithms if a not in found]
    if missing:
        raise KatibConfigError(f"{source}: no suggestion entry for {missing}; it has {sorted(found)}")
    return [found[a] for a in algorithms]


def merge(config: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """``config`` with ``entries`` replacing same-named suggestions (all copies) or appended; plus a log.

    ``config`` is not modified.
    """
    merged = copy.deepcopy(config)
    runtime = merged.get("runtime") or {}
    merged["runtime"] = runtime
    suggestions = list(runtime.get("suggestions") or [])
    log: list[str] = []
    for entry in entries:
        name = entry["algorithmName"]
        positions = _positions(suggestions, name)
        if not positions:
            suggestions.append(copy.deepcopy(entry))
            log.append(f"appended {name}")
            continue
        old = suggestions[positions[0]]
        suggestions[positions[0]] = copy.deepcopy(entry)
        for i in reversed(positions[1:]):
            del suggestions[i]
        extra = f" (and removed {len(positions) - 1} duplicate(s))" if len(positions) > 1 else ""
        log.append(f"{'kept' if old == entry else 'replaced'} {name}{extra}")
    runtime["suggestions"] = suggestions
    return merged, log


def merge_text(config_text: str, entry_texts: list[str], source: str) -> MergeResult:
    """:func:`merge` applied to the text of a KatibConfig; every byte outside our entries is kept."""
    config = parse_katib_config(config_text, source)
    entries = [yaml.safe_load(t)[0] for t in entry_texts]
    expected, log = merge(config, entries)
    if expected == config:
        return MergeResult(config_text, config, log, changed=False)
    spliced = _splice(config_text, entry_texts)
    if spliced is not None and yaml.safe_load(spliced) == expected:
        return MergeResult(spliced, expected, log, changed=True)
    return MergeResult(json.dumps(expected, indent=2) + "\n", expected, log, changed=True)


def differing_suggestions(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """Names of the suggestion entries that differ between two KatibConfigs (added, removed or changed)."""

    def by_name(config: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for s in (config.get("runtime") or {}).get("suggestions") or []:
            out.setdefault(str(s.get("algorithmName")), []).append(s)
        return out

    a, b = by_name(before), by_name(after)
    return {name for name in a.keys() | b.keys() if a.get(name) != b.get(name)}


def without_suggestions(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without ``runtime.suggestions`` (to compare everything else)."""
    rest = copy.deepcopy(config)
    (rest.get("runtime") or {}).pop("suggestions", None)
    return rest


# ---- text splicing ---------------------------------------------------------------------------------


def _positions(suggestions: list[Any], name: str) -> list[int]:
    return [i for i, s in enumerate(suggestions) if isinstance(s, dict) and s.get("algorithmName") == name]


def _item_spans(text: str, seq: yaml.SequenceNode) -> list[tuple[int, int, int] | None]:
    """(first line, last line + 1, dash column) of each block item of ``seq``; None if not splice-able.

    An item runs from its dash line to the last line before the next item (or the end of the list) that
    holds more than a comment; comments and blank lines after it stay with what follows.
    """
    lines = text.splitlines()
    if seq.flow_style:
        return [None] * len(seq.value)
    ends = [item.start_mark.line for item in seq.value[1:]]
    end = seq.end_mark
    last = end.line + (1 if end.line < len(lines) and lines[end.line][: end.column].strip() else 0)
    spans: list[tuple[int, int, int] | None] = []
    for item, stop in zip(seq.value, [*ends, last], strict=True):
        line, column = item.start_mark.line, item.start_mark.column
        head = lines[line][:column]
        dash = len(head) - len(head.lstrip())
        if head.strip() != "-" or isinstance(item, yaml.ScalarNode):
            spans.append(None)
            continue
        while stop > line + 1 and (not lines[stop - 1].strip() or lines[stop - 1].lstrip().startswith("#")):
            stop -= 1
        spans.append((line, stop, dash))
    return spans


def _dedent_item(text: str, span: tuple[int, int, int]) -> str:
    first, stop, dash = span
    return "".join(line[dash:] + "\n" for line in text.splitlines()[first:stop])


def _indent(item: str, dash: int) -> list[str]:
    return [(" " * dash + line) if line.strip() else "" for line in item.splitlines()]


def _suggestions_node(config_text: str) -> yaml.SequenceNode | None:
    root = yaml.compose(config_text)
    for node in (root, _value(root, "runtime")):
        if not isinstance(node, yaml.MappingNode):
            return None
        root = node
    found = _value(root, "suggestions")
    return found if isinstance(found, yaml.SequenceNode) and found.value else None


def _value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _splice(config_text: str, entry_texts: list[str]) -> str | None:
    """The text with our items replacing same-named ones (duplicates dropped) or appended after the last
    item; None when the ``runtime.suggestions`` block is not a non-empty block list."""
    seq = _suggestions_node(config_text)
    if seq is None:
        return None
    spans = _item_spans(config_text, seq)
    if any(s is None for s in spans):
        return None
    names = [str(item.get("algorithmName")) for item in yaml.safe_load(config_text)["runtime"]["suggestions"]]
    lines = config_text.splitlines()
    dash = spans[-1][2]  # type: ignore[index]
    replace: dict[int, list[str]] = {}
    drop: set[int] = set()
    append: list[str] = []
    for item in entry_texts:
        name = str(yaml.safe_load(item)[0]["algorithmName"])
        at = [i for i, n in enumerate(names) if n == name]
        if not at:
            append += _indent(item, dash)
            continue
        first = spans[at[0]]
        replace[at[0]] = _indent(item, first[2])  # type: ignore[index]
        drop.update(at[1:])
    out: list[str] = []
    cursor = 0
    for i, span in enumerate(spans):
        start, stop, _ = span  # type: ignore[misc]
        out += lines[cursor:start]
        if i in replace:
            out += replace[i]
        elif i not in drop:
            out += lines[start:stop]
        cursor = stop
        if i == len(spans) - 1:
            out += append
    out += lines[cursor:]
    return "\n".join(out) + ("\n" if config_text.endswith("\n") else "")
