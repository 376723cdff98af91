"""Which modules a warm trial launcher imports before forking trials of ``python -m MODULE``.

Resolution, first match wins:

1. an explicit list (``--preload``);
2. ``PRELOAD_MODULES`` declared by MODULE's top-level package (a list/tuple of module names);
3. every module the package's source files import, found statically (``ast``), including imports
   inside functions; ``from X import Y`` also warms ``X.Y`` (attribute or submodule), which is what
   loads lazily-imported classes such as ``transformers.BertForSequenceClassification``. Imports of
   the package itself are left out: its modules are re-imported fresh in every trial.

Entries are ``"a.b"`` (import the module) or ``"a.b:Name"`` (import ``a.b``, then get ``Name``).
This module only uses the standard library: it runs in the launcher process before anything else.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ENTRY = re.compile(rf"{_DOTTED.pattern}(:[A-Za-z_][A-Za-z0-9_]*)?")


def is_module_name(text: str) -> bool:
    """True for a dotted Python module name such as ``trainer`` or ``pkg.sub``."""
    return bool(_DOTTED.fullmatch(text))


def check_entries(entries: Iterable[str], where: str) -> list[str]:
    """Validate preload entries (``a.b`` or ``a.b:Name``); ValueError names the bad one."""
    out = []
    for entry in entries:
        if not isinstance(entry, str) or not _ENTRY.fullmatch(entry):
            raise ValueError(
                f"{where}: {entry!r} is not a module name (allowed: dotted names like torch.nn, "
                "optionally :Attribute)"
            )
        out.append(entry)
    return out


def top_package(module: str) -> str:
    """``a`` for ``a.b.c``."""
    return module.partition(".")[0]


def scan_imports(package: str) -> list[str]:
    """Modules (and ``module:Name`` attributes) imported anywhere in ``package``'s source files.

    Relative imports and imports of ``package`` itself are skipped; files that do not parse are skipped.
    Returns [] when the package cannot be found.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        files = sorted(f for d in spec.submodule_search_locations for f in Path(d).rglob("*.py"))
    elif spec.origin and spec.origin.endswith(".py"):
        files = [Path(spec.origin)]
    else:
        return []
    found: dict[str, None] = {}
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if top_package(alias.name) != package:
                        found[alias.name] = None
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if top_package(node.module) == package or node.module == "__future__":
                    continue
                found[node.module] = None
                for alias in node.names:
                    if alias.name != "*":
                        found[f"{node.module}:{alias.name}"] = None
    return list(found)


def resolve(module: str, explicit: Sequence[str] | None) -> tuple[list[str], str]:
    """(entries, where they came from) for trials of ``python -m module``; see the module docstring."""
    if explicit:
        return check_entries(explicit, "--preload"), "--preload"
    package = top_package(module)
    try:
        imported = importlib.import_module(package)
    except Exception as err:
        return [], f"package {package} not importable ({type(err).__name__}: {err})"
    declared = getattr(imported, "PRELOAD_MODULES", None)
    if declared is not None:
        if isinstance(declared, str) or not isinstance(declared, list | tuple):
            raise ValueError(f"{package}.PRELOAD_MODULES must be a list or tuple of module names")
        return check_entries(declared, f"{package}.PRELOAD_MODULES"), f"{package}.PRELOAD_MODULES"
    return scan_imports(package), f"imports found in {package}'s source"


def preload(entries: Iterable[str]) -> tuple[list[str], list[str]]:
    """Import every entry; returns (loaded, failures as 'entry: error'). Never raises for an entry."""
    loaded: list[str] = []
    failed: list[str] = []
    for entry in entries:
        name, _, attribute = entry.partition(":")
        try:
            mod = importlib.import_module(name)
            if attribute:
                try:
                    getattr(mod, attribute)
                except AttributeError:
                    importlib.import_module(f"{name}.{attribute}")
        except BaseException as err:  # a broken optional import must not stop the launcher
            if isinstance(err, KeyboardInterrupt):
                raise
            failed.append(f"{entry}: {type(err).__name__}: {err}")
            continue
        loaded.append(entry)
    return loaded, failed
