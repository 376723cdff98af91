"""Read Katib Experiment definitions from the manifests folder (the one source of truth for search spaces).

The Katib fields are read by :mod:`katib_model`; this module finds the files, filters them by task and
algorithm, and adds the client's own readings (task label, GPU count).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from client.errors import ClientError
from client.model import Experiment
from katib_model import KatibExperiment, ManifestError, TrialTemplate

TASK_LABEL = "katib-surrogate/task"
ALGORITHM_LABEL = "katib-surrogate/algorithm"
DEFAULT_NAMESPACE = "katib-surrogate"
GPU_RESOURCE = "nvidia.com/gpu"


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
    """One Katib Experiment object as written in the manifests (or stored by the local runner).

    Every Katib field is read by ``model`` (:class:`katib_model.KatibExperiment`, with this project's
    namespace for an unset ``metadata.namespace``); this class adds what only the client needs (task
    label, GPU count, spec hash, the result-model Experiment) and turns model errors into ClientError.
    """

    body: dict[str, Any]
    path: str = ""

    @classmethod
    def from_body(cls, body: dict[str, Any], path: str = "") -> ExperimentDef:
        """Validate the fields the client relies on and wrap the object."""
        try:
            KatibExperiment.from_body(body, DEFAULT_NAMESPACE, path)
        except ManifestError as err:
            raise ClientError(str(err)) from None
        return cls(body=body, path=path)

    @cached_property
    def model(self) -> KatibExperiment:
        """The project's one reading of this Experiment."""
        return KatibExperiment(self.body, DEFAULT_NAMESPACE)

    # --- identity -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """metadata.name."""
        return self.model.name

    @property
    def namespace(self) -> str:
        """metadata.namespace (the project's namespace when unset)."""
        return self.model.namespace

    @property
    def labels(self) -> dict[str, str]:
        """metadata.labels."""
        return self.model.labels

    @property
    def spec(self) -> dict[str, Any]:
        """The Experiment spec."""
        return self.body["spec"]

    @property
    def algorithm(self) -> str:
        """spec.algorithm.algorithmName."""
        return self.model.algorithm_name

    @property
    def algorithm_settings(self) -> list[tuple[str, str]]:
        """spec.algorithm.algorithmSettings as (name, value) strings."""
        return self.model.algorithm_settings

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
        return self.model.objective_metric

    @property
    def objective_type(self) -> str:
        """maximize or minimize."""
        return self.model.objective_type

    @property
    def additional_metrics(self) -> list[str]:
        """spec.objective.additionalMetricNames."""
        return self.model.additional_metrics

    @property
    def goal(self) -> float | None:
        """spec.objective.goal, if set."""
        return self.model.goal

    @property
    def metric_names(self) -> list[str]:
        """Objective first, then the additional metrics."""
        return self.model.metric_names

    @property
    def metric_strategies(self) -> dict[str, str]:
        """Strategy per metric with Katib's defaulting: max when maximizing, min when minimizing."""
        return self.model.metric_strategies

    # --- budget -------------------------------------------------------------------------------------
    @property
    def parallel_trial_count(self) -> int:
        """spec.parallelTrialCount (Katib default 3)."""
        return self.model.parallel_trial_count

    @property
    def max_trial_count(self) -> int | None:
        """spec.maxTrialCount (None: unbounded)."""
        return self.model.max_trial_count

    @property
    def max_failed_trial_count(self) -> int | None:
        """spec.maxFailedTrialCount (None: never fail the experiment for failed trials)."""
        return self.model.max_failed_trial_count

    # --- trial template -----------------------------------------------------------------------------
    @property
    def trial_template(self) -> dict[str, Any]:
        """spec.trialTemplate."""
        return dict(self._template().body)

    def _template(self) -> TrialTemplate:
        try:
            return self.model.trial_template
        except ManifestError as err:
            raise ClientError(str(err)) from None

    @property
    def trial_parameters(self) -> dict[str, str]:
        """trialParameters name -> referenced experiment parameter (or ${trialSpec...} metadata)."""
        return self._template().trial_parameters

    def primary_container(self, workload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The primary container (``primaryContainerName``) of ``workload`` (default: the template)."""
        template = self._template()
        if template.trial_spec is None:
            raise ClientError(
                f"{self.name}: only an inline trialTemplate.trialSpec is supported locally (not configMap)"
            )
        try:
            return template.primary_container(workload)
        except ManifestError as err:
            raise ClientError(f"{self.name}: {err}") from None

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
