"""Read Katib Experiment definitions from the manifests folder (the one source of truth for search spaces)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from client.errors import ClientError
from client.model import MAXIMIZE, MINIMIZE, Experiment

TASK_LABEL = "katib-surrogate/task"
ALGORITHM_LABEL = "katib-surrogate/algorithm"
DEFAULT_NAMESPACE = "katib-surrogate"
KATIB_DEFAULT_PARALLEL = 3
STRATEGIES = ("min", "max", "latest")
GPU_RESOURCE = "nvidia.com/gpu"


def _is_number(value: Any) -> bool:
    """True for a finite number (or a string of one), not a bool."""
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _int_or_none(value: Any, field: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClientError(f"{where}: spec.{field} must be an integer, got {value!r}")
    return value


def count_gpus(obj: Any, multiplier: float = 1.0) -> float:
    """Total ``nvidia.com/gpu`` limit (or request) of every container in a Job-like object.

    Pod templates under a ``replicas``/``parallelism`` count are multiplied by it, so a PyTorchJob with
    a Master and 3 Workers of 1 GPU each gives 4.
    """
    if isinstance(obj, list):
        return sum(count_gpus(item, multiplier) for item in obj)
    if not isinstance(obj, dict):
        return 0.0
    total = 0.0
    if "template" in obj and isinstance(obj["template"], dict):
        reps = obj.get("replicas", obj.get("parallelism", 1))
        reps = reps if isinstance(reps, int) and reps > 0 else 1
        total += count_gpus(obj["template"], multiplier * reps)
        rest = {k: v for k, v in obj.items() if k != "template"}
    else:
        rest = obj
    containers = rest.get("containers")
    if isinstance(containers, list):
        for container in containers:
            resources = container.get("resources") or {} if isinstance(container, dict) else {}
            amount = (resources.get("limits") or {}).get(GPU_RESOURCE)
            if amount is None:
                amount = (resources.get("requests") or {}).get(GPU_RESOURCE)
            try:
                total += float(amount or 0) * multiplier
            except (TypeError, ValueError):
                continue
    for key, value in rest.items():
        if key != "containers" and isinstance(value, dict | list):
            total += count_gpus(value, multiplier)
    return total


def task_of(name: str, labels: dict[str, str] | None, algorithm: str) -> str:
    """The task an experiment belongs to: its ``katib-surrogate/task`` label, else ``<task>-<algorithm>``."""
    if labels and labels.get(TASK_LABEL):
        return str(labels[TASK_LABEL])
    suffix = f"-{algorithm}"
    if algorithm and name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class ExperimentDef:
    """One Katib Experiment object as written in the manifests (or stored by the local runner)."""

    body: dict[str, Any]
    path: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any], path: str = "") -> ExperimentDef:
        """Validate the fields the client relies on and wrap the object."""
        where = f"{path or 'experiment'}"
        if not isinstance(body, dict) or body.get("kind") != "Experiment":
            raise ClientError(f"{where}: not a Katib Experiment (kind must be Experiment)")
        meta = body.get("metadata") or {}
        if not meta.get("name"):
            raise ClientError(f"{where}: metadata.name is missing")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise ClientError(f"{where}: spec is missing")
        where = f"{path or 'experiment'} ({meta['name']})"
        objective = spec.get("objective") or {}
        if objective.get("type") not in (MAXIMIZE, MINIMIZE):
            raise ClientError(f"{where}: spec.objective.type must be maximize or minimize")
        if not objective.get("objectiveMetricName"):
            raise ClientError(f"{where}: spec.objective.objectiveMetricName is missing")
        for item in objective.get("metricStrategies") or []:
            if item.get("value") not in STRATEGIES:
                raise ClientError(
                    f"{where}: metricStrategies value {item.get('value')!r} for {item.get('name')!r}; "
                    f"allowed: {', '.join(STRATEGIES)}"
                )
        if not (spec.get("algorithm") or {}).get("algorithmName"):
            raise ClientError(f"{where}: spec.algorithm.algorithmName is missing")
        if not isinstance(spec.get("parameters"), list) or not spec["parameters"]:
            raise ClientError(f"{where}: spec.parameters must be a non-empty list")
        for field in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
            _int_or_none(spec.get(field), field, where)
        goal = objective.get("goal")
        if goal is not None and not _is_number(goal):
            raise ClientError(f"{where}: spec.objective.goal must be a number, got {goal!r}")
        if not isinstance(meta.get("labels") or {}, dict):
            raise ClientError(f"{where}: metadata.labels must be a mapping, got {meta['labels']!r}")
        return cls(body=body, path=path)

    # --- identity -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """metadata.name."""
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        """metadata.namespace (the project's namespace when unset)."""
        return str(self.body["metadata"].get("namespace") or DEFAULT_NAMESPACE)

    @property
    def labels(self) -> dict[str, str]:
        """metadata.labels."""
        return dict(self.body["metadata"].get("labels") or {})

    @property
    def spec(self) -> dict[str, Any]:
        """The Experiment spec."""
        return self.body["spec"]

    @property
    def algorithm(self) -> str:
        """spec.algorithm.algorithmName."""
        return str(self.spec["algorithm"]["algorithmName"])

    @property
    def algorithm_settings(self) -> list[tuple[str, str]]:
        """spec.algorithm.algorithmSettings as (name, value) strings."""
        settings = self.spec["algorithm"].get("algorithmSettings") or []
        return [(str(s["name"]), str(s.get("value", ""))) for s in settings]

    @property
    def task(self) -> str:
        """The task label (or the name without the algorithm suffix)."""
        return task_of(self.name, self.labels, self.algorithm)

    # --- objective --------------------------------------------------------------------------------
    @property
    def objective(self) -> dict[str, Any]:
        """spec.objective."""
        return self.spec["objective"]

    @property
    def objective_metric(self) -> str:
        """The objective metric name."""
        return str(self.objective["objectiveMetricName"])

    @property
    def objective_type(self) -> str:
        """maximize or minimize."""
        return str(self.objective["type"])

    @property
    def additional_metrics(self) -> list[str]:
        """spec.objective.additionalMetricNames."""
        return [str(m) for m in self.objective.get("additionalMetricNames") or []]

    @property
    def goal(self) -> float | None:
        """spec.objective.goal, if set."""
        goal = self.objective.get("goal")
        return None if goal is None else float(goal)

    @property
    def metric_names(self) -> list[str]:
        """Objective first, then the additional metrics."""
        return [self.objective_metric, *[m for m in self.additional_metrics if m != self.objective_metric]]

    @property
    def metric_strategies(self) -> dict[str, str]:
        """Strategy per metric with Katib's defaulting: max when maximizing, min when minimizing."""
        default = "max" if self.objective_type == MAXIMIZE else "min"
        strategies = {name: default for name in self.metric_names}
        for item in self.objective.get("metricStrategies") or []:
            strategies[str(item["name"])] = str(item["value"])
        return strategies

    # --- budget -------------------------------------------------------------------------------------
    @property
    def parallel_trial_count(self) -> int:
        """spec.parallelTrialCount (Katib default 3)."""
        return int(self.spec.get("parallelTrialCount") or KATIB_DEFAULT_PARALLEL)

    @property
    def max_trial_count(self) -> int | None:
        """spec.maxTrialCount (None: unbounded)."""
        value = self.spec.get("maxTrialCount")
        return None if value is None else int(value)

    @property
    def max_failed_trial_count(self) -> int | None:
        """spec.maxFailedTrialCount (None: never fail the experiment for failed trials)."""
        value = self.spec.get("maxFailedTrialCount")
        return None if value is None else int(value)

    # --- trial template -----------------------------------------------------------------------------
    @property
    def trial_template(self) -> dict[str, Any]:
        """spec.trialTemplate."""
        template = self.spec.get("trialTemplate")
        if not isinstance(template, dict):
            raise ClientError(f"{self.name}: spec.trialTemplate is missing")
        return template

    @property
    def trial_parameters(self) -> dict[str, str]:
        """trialParameters name -> referenced experiment parameter (or ${trialSpec...} metadata)."""
        return {str(p["name"]): str(p["reference"]) for p in self.trial_template.get("trialParameters") or []}

    def primary_container(self) -> dict[str, Any]:
        """The trial template's primary container (``primaryContainerName``)."""
        template = self.trial_template
        trial_spec = template.get("trialSpec")
        if not isinstance(trial_spec, dict):
            raise ClientError(
                f"{self.name}: only an inline trialTemplate.trialSpec is supported locally (not configMap)"
            )
        primary = template.get("primaryContainerName")
        for container in _containers(trial_spec):
            if container.get("name") == primary:
                return container
        raise ClientError(f"{self.name}: the trial template has no container named {primary!r}")

    @property
    def gpus_per_trial(self) -> float:
        """GPUs each trial requests (the template's ``nvidia.com/gpu`` limits)."""
        trial_spec = self.trial_template.get("trialSpec")
        return count_gpus(trial_spec) if isinstance(trial_spec, dict) else 0.0

    def spec_hash(self) -> str:
        """A hash of the spec without the fields Katib lets a user change (the trial budget)."""
        spec = copy.deepcopy(self.spec)
        for field in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
            spec.pop(field, None)
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def to_model(self, source: str) -> Experiment:
        """An empty result-model Experiment carrying this definition's objective and budget."""
        return Experiment(
            name=self.name,
            namespace=self.namespace,
            task=self.task,
            algorithm=self.algorithm,
            objective_metric=self.objective_metric,
            objective_type=self.objective_type,
            additional_metrics=self.additional_metrics,
            goal=self.goal,
            parallel_trial_count=self.parallel_trial_count,
            max_trial_count=self.max_trial_count,
            max_failed_trial_count=self.max_failed_trial_count,
            source=source,
        )


def _containers(obj: Any) -> Iterable[dict[str, Any]]:
    """Every container dict anywhere under a Job-like object."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "containers" and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from _containers(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _containers(item)


def split_filter(values: Sequence[str] | None) -> list[str]:
    """Flatten repeatable, comma-separated filter flags (``--task a,b --task c``)."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def load_experiments(
    manifests: str | Path,
    tasks: Sequence[str] | None = None,
    algorithms: Sequence[str] | None = None,
) -> list[ExperimentDef]:
    """All Experiments in the YAML files of ``manifests`` (a folder, not recursive, or one file), filtered.

    Raises ClientError when the folder is missing, a file is not valid YAML, names clash, or a filter
    matches nothing (the message lists what exists).
    """
    root = Path(manifests)
    if root.is_dir():
        # Like `kubectl apply -f DIR` (no -R): sub-folders such as manifests/optional/ are not read.
        files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    elif root.is_file():
        files = [root]
    else:
        raise ClientError(
            f"manifests folder {root} does not exist; pass --manifests DIR (default manifests/)"
        )
    defs: list[ExperimentDef] = []
    seen: dict[tuple[str, str], str] = {}
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise ClientError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "Experiment":
                continue
            if not str(doc.get("apiVersion", "")).startswith("kubeflow.org/"):
                continue
            d = ExperimentDef.from_body(doc, str(path))
            key = (d.namespace, d.name)
            if key in seen:
                raise ClientError(f"experiment {d.name} is defined twice: {seen[key]} and {path}")
            seen[key] = str(path)
            defs.append(d)
    if not defs:
        raise ClientError(f"no Katib Experiment objects found under {root}; pass --manifests DIR")
    return filter_experiments(defs, tasks, algorithms, where=str(root))


def filter_experiments(
    defs: list[ExperimentDef],
    tasks: Sequence[str] | None,
    algorithms: Sequence[str] | None,
    where: str = "the manifests",
) -> list[ExperimentDef]:
    """Keep the definitions whose task and algorithm are selected; unknown filter values are errors."""
    task_list, algo_list = split_filter(tasks), split_filter(algorithms)
    known_tasks = sorted({d.task for d in defs})
    known_algos = sorted({d.algorithm for d in defs})
    for t in task_list:
        if t not in known_tasks:
            raise ClientError(f"unknown task {t!r} in {where}; available: {', '.join(known_tasks)}")
    for a in algo_list:
        if a not in known_algos:
            raise ClientError(f"unknown algorithm {a!r} in {where}; available: {', '.join(known_algos)}")
    return [
        d
        for d in defs
        if (not task_list or d.task in task_list) and (not algo_list or d.algorithm in algo_list)
    ]
