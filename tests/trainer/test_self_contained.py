"""The trainer image holds only ``trainer_image/trainer``: its modules import nothing from the rest of
the repository, only the standard library and the packages the image installs, and none of them
import each other in a cycle. Imports inside functions count (they run when a trial needs them)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator, Mapping

from tests.trainer.helpers import REPO

IMAGE = REPO / "trainer_image"
PACKAGE = IMAGE / "trainer"
# What the image has besides requirements.txt: torch and torchvision come with its PyTorch base image
# (requirements.txt says so), the Katib SDK with the KATIB_SDK build argument (--push-metrics only).
BASE_IMAGE = ("torch", "torchvision")
OPTIONAL = ("kubeflow-katib",)


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared_distributions() -> set[str]:
    """Distributions the image installs: requirements.txt, the base image's, the optional SDK."""
    names = set()
    for line in (IMAGE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(_normalise(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]))
    return names | {_normalise(n) for n in (*BASE_IMAGE, *OPTIONAL)}


def imports_of(source: str, package: str) -> Iterator[str]:
    """Every module ``source`` (a module of ``package``) imports, anywhere in it, relative ones resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            # `from trainer import cli` imports the module trainer.cli
            yield from (f"{base}.{alias.name}" for alias in node.names if base == "trainer")


def package_of(module: str, modules: Mapping[str, str]) -> str:
    """The package a relative import in ``module`` starts from (itself for a package's __init__)."""
    if module == "trainer" or any(other.startswith(module + ".") for other in modules):
        return module
    return module.rsplit(".", 1)[0]


def trainer_modules() -> dict[str, str]:
    """Module name -> source of every module of the trainer package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(IMAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path.read_text()
    return out


def foreign_imports(modules: Mapping[str, str], allowed_top: set[str]) -> list[str]:
    """``module imports name`` for each import whose top-level package is not allowed."""
    return [
        f"{module} imports {name}"
        for module, source in modules.items()
        for name in imports_of(source, package_of(module, modules))
        if name.split(".")[0] not in allowed_top
    ]


def import_graph(modules: Mapping[str, str]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (the package itself left out: every module has it)."""
    return {
        module: {n for n in imports_of(source, package_of(module, modules)) if n in modules}
        - {"trainer", module}
        for module, source in modules.items()
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def allowed_top_levels() -> set[str]:
    """The trainer itself, the standard library, and the import names of the declared distributions."""
    declared = declared_distributions()
    third_party = {
        top
        for top, distributions in importlib.metadata.packages_distributions().items()
        if any(_normalise(d) in declared for d in distributions)
    }
    return {"trainer", "__future__", *sys.stdlib_module_names, *third_party}


def test_the_trainer_imports_only_itself_the_stdlib_and_the_image_packages() -> None:
    modules = trainer_modules()
    assert {"trainer", "trainer.cli", "trainer.bench", "trainer.tasks"} <= set(modules)
    assert foreign_imports(modules, allowed_top_levels()) == []


def test_the_packages_outside_requirements_are_in_the_image() -> None:
    dockerfile = (IMAGE / "Dockerfile").read_text()
    assert re.search(r"^FROM pytorch/pytorch:", dockerfile, re.MULTILINE)
    assert "torch and torchvision come from\n# the base image" in (IMAGE / "requirements.txt").read_text()
    assert all(f'"{name}==' in dockerfile for name in OPTIONAL)


def test_the_check_catches_repository_and_undeclared_imports() -> None:
    allowed = allowed_top_levels()
    assert {"torch", "transformers", "PIL", "pynvml", "numpy", "prometheus_client", "kubeflow"} <= allowed
    source = (
        "import os\nimport torch.nn\nfrom . import cli\nfrom .tasks import get_task\n"
        "def f():\n    from bench.report import write_section\n    import client.metrics\n"
        "    import sklearn\n    from suggestion_service import space\n"
    )
    assert foreign_imports({"trainer.bench": source}, allowed) == [
        "trainer.bench imports bench.report",
        "trainer.bench imports client.metrics",
        "trainer.bench imports sklearn",
        "trainer.bench imports suggestion_service",
    ]


def test_no_import_cycle_among_trainer_modules() -> None:
    graph = import_graph(trainer_modules())
    assert "trainer.process_clock" in graph["trainer.engine"]
    assert "trainer.engine" in graph["trainer.cli"]  # imported inside main(): still an edge
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import() -> None:
    modules = {
        "trainer": "",
        "trainer.cli": "from trainer.config import X\ndef main():\n    from trainer.engine import run\n",
        "trainer.engine": "from trainer import cli\n",
        "trainer.config": "import os\n",
        "trainer.tasks": "from . import config\n",
    }
    graph = import_graph(modules)
    assert graph["trainer.engine"] == {"trainer.cli"} and graph["trainer.tasks"] == {"trainer.config"}
    assert cycles(graph) == [["trainer.cli", "trainer.engine"]]
