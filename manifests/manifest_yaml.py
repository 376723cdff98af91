"""YAML reading and writing shared by the manifest generator, the validator and the merge script.

Kubernetes parses YAML with YAML 1.2-ish rules (``2e-5`` is a number there, a string for PyYAML), and
Katib's Go types reject a number where they expect a string. So the writer double-quotes every string
that any YAML reader could take for a number, boolean or null, writes multi-line strings as literal
blocks, and indents sequences under their key (what yamllint's default ``indent-sequences`` wants).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

# Strings a YAML 1.1 or 1.2 reader may resolve to something other than a string.
_AMBIGUOUS = re.compile(
    r"""^(?:
        [-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?     # 1, 1.5, .5, 2e-5, 1_000
      | [-+]?\d+\.(?:[eE][-+]?\d+)?                         # 1.  1.e3
      | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
      | 0[xX][0-9a-fA-F_]+ | 0o?[0-7_]+ | 0b[01_]+
      | [-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.\d*)?               # sexagesimal (YAML 1.1)
      | (?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)
      | (?:null|Null|NULL|~)
      | \d{4}-\d\d?-\d\d?(?:[Tt ].*)?                       # timestamps
    )$""",
    re.VERBOSE,
)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents block sequences under their parent key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if value == "" or _AMBIGUOUS.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


def dump(obj: Any) -> str:
    """One YAML document (block style, key order kept, ambiguous strings double-quoted)."""
    return yaml.dump(
        obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True
    )


def load_all_text(text: str, source: str = "<text>") -> list[dict[str, Any]]:
    """Parse every non-empty document of ``text``; each must be a mapping."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ValueError(f"{source}: document {i + 1} is a {type(doc).__name__}, expected a mapping")
    return docs


def load_all(path: Path) -> list[dict[str, Any]]:
    """Parse every document of the YAML file at ``path``."""
    return load_all_text(path.read_text(encoding="utf-8"), str(path))
