"""Small helpers shared by the manifest tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
TASKS = ("sst2", "mrpc", "cifar10")
ALGORITHMS = ("grid", "random", "surrogate-gp", "surrogate-rf")


def experiment_files() -> list[Path]:
    """Every generated file holding an Experiment: the 12 applied ones and the optional variants."""
    paths = sorted(MANIFESTS.glob("30-experiment-*.yaml")) + sorted((MANIFESTS / "optional").rglob("*.yaml"))
    return [
        p
        for p in paths
        if any(d and d.get("kind") == "Experiment" for d in yaml.safe_load_all(p.read_text()))
    ]


def load_one(path: Path) -> dict[str, Any]:
    """The single YAML document of ``path``."""
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return doc


def experiment(task: str = "sst2", algorithm: str = "grid") -> dict[str, Any]:
    """A deep copy of a committed Experiment (safe to mutate)."""
    return copy.deepcopy(load_one(MANIFESTS / f"30-experiment-{task}-{algorithm}.yaml"))


def training_container(exp: dict[str, Any]) -> dict[str, Any]:
    """The primary container of a Job-based Experiment."""
    primary = exp["spec"]["trialTemplate"]["primaryContainerName"]
    pod = exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == primary)
