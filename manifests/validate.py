#!/usr/bin/env python3
"""Offline checks of the Katib manifests (``make manifests-check``; the tests call the same functions).

    python manifests/validate.py [PATH ...]      # default: every manifest under manifests/

For every YAML file: yamllint (``manifests/.yamllint``, warnings count). For every document:
- built-in Kubernetes kinds: ``kubernetes-validate`` in strict mode (unknown fields rejected) against the
  oldest and the newest Kubernetes version in ``K8S_VERSIONS``;
- Experiments: the pinned Katib v0.19.0 ``swagger.json`` made strict (unknown keys rejected), the checks
  Katib's admission webhook makes (``webhook_problems``), and the trial workload inside, with its
  placeholders substituted, validated as a built-in object (a Job; each replica's pod template of a
  PyTorchJob);
- ConfigMap ``kubeflow/katib-config`` (optional standalone config): every built-in entry of the pinned
  default present and unchanged, our entries valid containers with explicit resources, no duplicates;
- the registration bundle (10-katib-registration.yaml): its entries ConfigMap holds exactly our two
  entries, valid as above and mergeable into the pinned default; its Job runs the registration module
  with arguments it accepts, reads the entries from that ConfigMap, and its ServiceAccount is bound in
  Katib's namespace to a Role allowing get and update on configmaps/katib-config.

Across files (``bundle_problems``, and for each Experiment ``warm_start_problems``): every namespace that
runs a surrogate Experiment has the ServiceAccount katib-config names for it; every RoleBinding binds an
existing Role to an existing ServiceAccount; each ``warm_start_experiments`` entry names an Experiment of
the bundle in the same namespace with the same objective and shared parameter names, readable by the
suggestion pod's ServiceAccount through the bundle's Roles (get experiments, list trials).

Each check returns a list of problems (strings naming the file, the field and what is allowed); an
empty list means the object passed.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manifest_yaml

from katib_model import KatibExperiment, KatibType, ManifestError
from katib_model.collector import COLLECTOR_KINDS
from katib_model.experiment import DEFAULT_NAMESPACE, MAXIMIZE, MINIMIZE, STRATEGIES
from katib_model.parameters import DISTRIBUTIONS, LIST_TYPES, PARAMETER_TYPES, RANGE_TYPES, search_space
from katib_model.template import PLACEHOLDER, is_meta_reference, placeholder
from suggestion_service.errors import InvalidArgument
from suggestion_service.katib_config_merge import OUR_ALGORITHMS, KatibConfigError, merge_text, parse_entries
from suggestion_service.katib_registration import build_parser as registration_parser

MANIFESTS_DIR = Path(__file__).resolve().parent
PINNED_DIR = MANIFESTS_DIR / "katib-v0.19.0"
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())

EXPERIMENT_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_EXPERIMENT_NAME = 40  # Katib webhook; suggestion objects are named <experiment>-<algorithm>
OBJECTIVE_TYPES = (MINIMIZE, MAXIMIZE)
RESUME_POLICIES = ("", "Never", "LongRunning", "FromVolume")
# Katib defaults success/failure conditions only for these trial kinds.
DEFAULTED_TRIAL_KINDS = ("Job", "TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")
WARM_START_SETTINGS = ("warm_start_experiments", "warm_start_max_trials")
KATIB_ONLY_SUGGESTION_FIELDS = (
    "algorithmName",
    "serviceAccountName",
    "volumeMountPath",
    "persistentVolumeClaimSpec",
    "persistentVolumeSpec",
    "persistentVolumeLabels",
)


# --------------------------------------------------------------------------------------------------
# yamllint


def yamllint_problems(path: Path, config_path: Path = MANIFESTS_DIR / ".yamllint") -> list[str]:
    """yamllint errors and warnings for one file, with ``manifests/.yamllint``."""
    config = YamlLintConfig(file=str(config_path))
    text = path.read_text(encoding="utf-8")
    return [
        f"{path}:{p.line}:{p.column}: yamllint {p.level}: {p.desc} ({p.rule})"
        for p in linter.run(text, config, str(path))
    ]


# --------------------------------------------------------------------------------------------------
# Built-in kinds


def k8s_problems(obj: Mapping[str, Any], where: str, versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    """Strict ``kubernetes-validate`` of a built-in object against each Kubernetes version."""
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(dict(obj), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
            problems.append(f"{where}: Kubernetes {version} schema: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message}")
            break
    return problems


def is_builtin(obj: Mapping[str, Any]) -> bool:
    """True when ``kubernetes-validate`` has a schema for the object's kind and apiVersion."""
    try:
        kubernetes_validate.validate({"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind")}, "1.30")
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except (kubernetes_validate.ValidationError, Exception):
        return True
    return True


# --------------------------------------------------------------------------------------------------
# Katib's swagger schema, strict


# Definitions the swagger file references but does not contain.
_OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"]},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object"}},
    },
}
_EXTERNAL_DEFINITIONS = {
    "v1.ObjectMeta": _OBJECT_META,
    # The trial workload is validated as its own kind (kubernetes-validate), not here.
    "v1.unstructured.Unstructured": {"type": "object"},
    "v1.Container": {"type": "object"},
    "v1.HTTPGetAction": {"type": "object"},
}


def strict_definitions(definitions: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of swagger ``definitions`` where every object that lists its properties rejects others."""
    defs = copy.deepcopy(dict(definitions))
    for name, schema in _EXTERNAL_DEFINITIONS.items():
        defs.setdefault(name, copy.deepcopy(schema))

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(defs)
    return defs


@functools.cache
def experiment_validator(swagger_path: Path = PINNED_DIR / "swagger.json") -> jsonschema.Draft4Validator:
    """A JSON-schema validator for ``v1beta1.Experiment`` from the pinned swagger, unknown keys rejected."""
    swagger = json.loads(swagger_path.read_text(encoding="utf-8"))
    schema = {
        "$ref": "#/definitions/v1beta1.Experiment",
        "definitions": strict_definitions(swagger["definitions"]),
    }
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def katib_schema_problems(exp: Mapping[str, Any], where: str) -> list[str]:
    """Strict swagger validation of an Experiment."""
    problems = []
    for err in sorted(experiment_validator().iter_errors(exp), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"{where}: Katib v1beta1.Experiment schema: {path}: {err.message}")
    return problems


# --------------------------------------------------------------------------------------------------
# What Katib's admission webhook checks (pkg/webhook/v1beta1/experiment/validator), plus the rules that
# otherwise fail later, at trial creation


def katib_config_of(cm: Mapping[str, Any]) -> dict[str, Any]:
    """The parsed ``katib-config.yaml`` key of a katib-config ConfigMap."""
    return yaml.safe_load(cm["data"]["katib-config.yaml"])


def suggestion_algorithms(katib_config: Mapping[str, Any]) -> set[str]:
    """Algorithm names registered in a KatibConfig."""
    return {s.get("algorithmName") for s in (katib_config.get("runtime") or {}).get("suggestions") or []}


def trial_resources(katib_config: Mapping[str, Any]) -> set[str]:
    """``Kind.version.group`` strings the Katib controller watches for trials."""
    return set(((katib_config.get("init") or {}).get("controller") or {}).get("trialResources") or [])


def webhook_problems(exp: Mapping[str, Any], katib_config: Mapping[str, Any], where: str) -> list[str]:
    """Katib admission-webhook checks of an Experiment, against the given KatibConfig."""
    out: list[str] = []

    def bad(field: str, message: str) -> None:
        out.append(f"{where}: {field}: {message}")

    name = (exp.get("metadata") or {}).get("name") or ""
    if not EXPERIMENT_NAME.match(name):
        bad("metadata.name", f"{name!r} must be lowercase alphanumerics or '-', start with a letter")
    if len(name) > MAX_EXPERIMENT_NAME:
        bad(
            "metadata.name",
            f"{name!r} has {len(name)} characters; Katib allows at most {MAX_EXPERIMENT_NAME}",
        )
    spec = exp.get("spec") or {}

    max_trials, parallel, max_failed = (
        spec.get(k) for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
    )
    if max_trials is not None and max_trials <= 0:
        bad("spec.maxTrialCount", f"{max_trials} must be greater than 0")
    if parallel is not None and parallel <= 0:
        bad("spec.parallelTrialCount", f"{parallel} must be greater than 0")
    if max_failed is not None and max_failed < 0:
        bad("spec.maxFailedTrialCount", f"{max_failed} must not be less than 0")
    if max_trials is not None and max_failed is not None and max_failed > max_trials:
        bad("spec.maxFailedTrialCount", f"{max_failed} must be <= spec.maxTrialCount ({max_trials})")
    if max_trials is not None and parallel is not None and parallel > max_trials:
        bad("spec.parallelTrialCount", f"{parallel} must be <= spec.maxTrialCount ({max_trials})")

    out += _objective_problems(spec.get("objective"), where)

    algorithm = spec.get("algorithm") or {}
    algo_name = algorithm.get("algorithmName") or ""
    known = suggestion_algorithms(katib_config)
    if algo_name not in known:
        bad(
            "spec.algorithm.algorithmName",
            f"{algo_name!r} is not in katib-config; registered: {sorted(known)}",
        )
    setting_names = [s.get("name") for s in algorithm.get("algorithmSettings") or []]
    for dup in sorted({n for n in setting_names if setting_names.count(n) > 1}):
        bad("spec.algorithm.algorithmSettings", f"setting {dup!r} is given more than once")
    out += _surrogate_settings_problems(algorithm, where)

    if spec.get("resumePolicy", "") not in RESUME_POLICIES:
        bad("spec.resumePolicy", f"{spec.get('resumePolicy')!r}; allowed: {', '.join(RESUME_POLICIES[1:])}")

    parameters = spec.get("parameters") or []
    if not parameters and not spec.get("nasConfig"):
        bad("spec", "spec.parameters or spec.nasConfig must be specified")
    out += _parameter_problems(parameters, where)
    out += _trial_template_problems(exp, katib_config, where)

    kind = ((spec.get("metricsCollectorSpec") or {}).get("collector") or {}).get("kind", "StdOut")
    if kind not in COLLECTOR_KINDS:
        bad("spec.metricsCollectorSpec.collector.kind", f"{kind!r}; allowed: {', '.join(COLLECTOR_KINDS)}")

    if algo_name == "grid":
        out += _grid_problems(parameters, max_trials, where)
    return out


def _surrogate_settings_problems(algorithm: Mapping[str, Any], where: str) -> list[str]:
    """Our algorithms' settings as the suggestion service parses them (its ValidateAlgorithmSettings
    would otherwise fail the Experiment at its first suggestion); warm start only on our algorithms."""
    from suggestion_service.settings import SURROGATES, parse_settings

    name = algorithm.get("algorithmName") or ""
    settings = KatibExperiment({"spec": {"algorithm": algorithm}}).algorithm_settings
    field = "spec.algorithm.algorithmSettings"
    if name not in SURROGATES:
        return [
            f"{where}: {field}: {setting!r} applies only to {', '.join(SURROGATES)}, not {name!r}"
            for setting, _ in settings
            if setting in WARM_START_SETTINGS
        ]
    try:
        parse_settings(name, settings)
    except InvalidArgument as exc:
        return [f"{where}: {field}: the suggestion service rejects them: {exc}"]
    return []


def _objective_problems(objective: Mapping[str, Any] | None, where: str) -> list[str]:
    out: list[str] = []
    if not objective:
        return [f"{where}: spec.objective: must be specified"]
    if objective.get("type") not in OBJECTIVE_TYPES:
        out.append(f"{where}: spec.objective.type: {objective.get('type')!r} must be minimize or maximize")
    metric = objective.get("objectiveMetricName") or ""
    if not metric:
        out.append(f"{where}: spec.objective.objectiveMetricName: must be specified")
    additional = list(objective.get("additionalMetricNames") or [])
    if metric in additional:
        out.append(
            f"{where}: spec.objective.additionalMetricNames: must not contain the objective {metric!r}"
        )
    for dup in sorted({m for m in additional if additional.count(m) > 1}):
        out.append(f"{where}: spec.objective.additionalMetricNames: {dup!r} is listed twice")
    metrics = {metric, *additional}
    seen: set[str] = set()
    for s in objective.get("metricStrategies") or []:
        sname, value = s.get("name"), s.get("value")
        if sname not in metrics:
            out.append(
                f"{where}: spec.objective.metricStrategies: {sname!r} is not a collected metric {sorted(metrics)}"
            )
        if value not in STRATEGIES:
            out.append(
                f"{where}: spec.objective.metricStrategies[{sname}]: {value!r}; allowed: min, max, latest"
            )
        if sname in seen:
            out.append(f"{where}: spec.objective.metricStrategies: {sname!r} is listed twice")
        seen.add(sname)
    return out


def _parameter_problems(parameters: list[Mapping[str, Any]], where: str) -> list[str]:
    out: list[str] = []
    names = [p.get("name") for p in parameters]
    for dup in sorted({n for n in names if names.count(n) > 1}, key=str):
        out.append(f"{where}: spec.parameters: name {dup!r} is used more than once")
    for i, p in enumerate(parameters):
        field = f"spec.parameters[{i}] ({p.get('name')})"
        ptype = p.get("parameterType")
        if ptype not in PARAMETER_TYPES:
            out.append(f"{where}: {field}.parameterType: {ptype!r}; allowed: {', '.join(PARAMETER_TYPES)}")
        space = p.get("feasibleSpace") or {}
        if not space:
            out.append(f"{where}: {field}.feasibleSpace: must be specified")
            continue
        if space.get("distribution", "") not in ("", *DISTRIBUTIONS):
            out.append(
                f"{where}: {field}.feasibleSpace.distribution: {space.get('distribution')!r}; allowed: "
                + ", ".join(DISTRIBUTIONS)
            )
        if ptype in RANGE_TYPES:
            if space.get("list"):
                out.append(f"{where}: {field}.feasibleSpace.list: not supported for parameterType {ptype}")
            if not space.get("min") or not space.get("max"):
                out.append(
                    f"{where}: {field}.feasibleSpace: min and max are required for parameterType {ptype}"
                )
        elif ptype in LIST_TYPES:
            if any(space.get(k) for k in ("min", "max", "step")):
                out.append(f"{where}: {field}.feasibleSpace: min, max and step are not supported for {ptype}")
            values = list(space.get("list") or [])
            if not values:
                out.append(f"{where}: {field}.feasibleSpace.list: must list at least one value")
            for dup in sorted({v for v in values if values.count(v) > 1}):
                out.append(f"{where}: {field}.feasibleSpace.list: {dup!r} is listed twice")
            if ptype == KatibType.DISCRETE:
                for v in values:
                    try:
                        float(v)
                    except (TypeError, ValueError):
                        out.append(f"{where}: {field}.feasibleSpace.list: {v!r} is not a number (discrete)")
    return out


def _grid_problems(parameters: list[Mapping[str, Any]], max_trials: int | None, where: str) -> list[str]:
    """Katib's grid check: every double needs a step, and maxTrialCount <= the number of configurations.

    The grid size comes from the Experiment model's search space (the suggestion service's own);
    malformed parameters are reported by ``_parameter_problems``, not here.
    """
    try:
        space = search_space(parameters)
    except InvalidArgument:
        return []
    size = space.size()
    if size is None:
        names = ", ".join(space.continuous_names())
        return [f"{where}: spec.parameters ({names}): grid needs feasibleSpace.step for a double"]
    if max_trials is not None and max_trials > size:
        return [
            f"{where}: spec.maxTrialCount: {max_trials} > all possible search combinations: {size} (grid)"
        ]
    return []


def pod_specs(trial_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(location, pod spec) for every pod template in a trial workload (Job, *Job replica specs)."""
    found: list[tuple[str, Mapping[str, Any]]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("template"), dict) and isinstance(node["template"].get("spec"), dict):
                tspec = node["template"]["spec"]
                if "containers" in tspec:
                    found.append((f"{path}.template.spec", tspec))
                    return
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)

    walk(trial_spec.get("spec") or {}, "spec")
    return found


def _trial_template_problems(
    exp: Mapping[str, Any], katib_config: Mapping[str, Any], where: str
) -> list[str]:
    out: list[str] = []
    spec = exp.get("spec") or {}
    tt = spec.get("trialTemplate")
    if not tt:
        return [f"{where}: spec.trialTemplate: must be specified"]
    field = "spec.trialTemplate"
    primary = tt.get("primaryContainerName") or ""
    if not primary:
        out.append(f"{where}: {field}.primaryContainerName: must be specified")
    if tt.get("trialParameters") is None:
        return [*out, f"{where}: {field}.trialParameters: must be specified"]
    if bool(tt.get("trialSpec")) == bool(tt.get("configMap")):
        return [*out, f"{where}: {field}: exactly one of trialSpec and configMap must be given"]
    if tt.get("configMap"):
        return out  # the template lives in the cluster; nothing more can be checked offline
    trial_spec = tt["trialSpec"]
    template = json.dumps(trial_spec)
    param_names = {p.get("name") for p in spec.get("parameters") or []}
    names: set[str] = set()
    refs: set[str] = set()
    for i, tp in enumerate(tt["trialParameters"]):
        tp_name, ref = tp.get("name") or "", tp.get("reference") or ""
        at = f"{field}.trialParameters[{i}]"
        if not tp_name or not ref or "{" in tp_name or "}" in tp_name:
            out.append(f"{where}: {at}: name and reference are required and name must not contain braces")
            continue
        if tp_name in names:
            out.append(f"{where}: {at}.name: {tp_name!r} is declared twice")
            continue
        if ref in refs:
            out.append(f"{where}: {at}.reference: {ref!r} is referenced twice")
            continue
        names.add(tp_name)
        refs.add(ref)
        if not is_meta_reference(ref) and ref not in param_names:
            out.append(
                f"{where}: {at}.reference: {ref!r} is neither a parameter {sorted(param_names)} "
                "nor trial metadata (${trialSpec.Name} ...)"
            )
        used = placeholder(tp_name)
        if used not in template:
            out.append(f"{where}: {at}.name: {tp_name!r} is declared but {used} is not used in trialSpec")
    undeclared = sorted(set(PLACEHOLDER.findall(template)) - names)
    for u in undeclared:
        out.append(
            f"{where}: {field}.trialSpec: ${{trialParameters.{u}}} is used but not declared in trialParameters"
        )
    # Katib sends one assignment per parameter and requires exactly one trial parameter for each.
    for missing in sorted(param_names - refs, key=str):
        out.append(
            f"{where}: {field}.trialParameters: parameter {missing!r} is not referenced by any trial parameter"
        )

    meta = trial_spec.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        out.append(f"{where}: {field}.trialSpec.metadata: name and namespace must be omitted")
    api_version, kind = trial_spec.get("apiVersion") or "", trial_spec.get("kind") or ""
    if not api_version or not kind:
        out.append(f"{where}: {field}.trialSpec: apiVersion and kind must be specified")
    else:
        group, _, version = api_version.rpartition("/")
        resource = f"{kind}.{version}.{group or 'core'}"
        watched = trial_resources(katib_config)
        if resource not in watched:
            out.append(
                f"{where}: {field}.trialSpec: {resource} is not in katib-config "
                f"init.controller.trialResources {sorted(watched)}"
            )
    if kind not in DEFAULTED_TRIAL_KINDS and not (tt.get("successCondition") and tt.get("failureCondition")):
        out.append(f"{where}: {field}: successCondition and failureCondition are required for kind {kind!r}")

    pods = pod_specs(trial_spec)
    if not pods:
        out.append(f"{where}: {field}.trialSpec: no pod template with containers found")
    for location, pod in pods:
        containers = [c.get("name") for c in pod.get("containers") or []]
        if primary and primary not in containers:
            out.append(
                f"{where}: {field}.primaryContainerName: {primary!r} is not a container of "
                f"trialSpec.{location} (containers: {containers})"
            )
        for c in pod.get("containers") or []:
            if c.get("name") == primary and not c.get("command"):
                out.append(
                    f"{where}: {field}.trialSpec.{location}: container {primary!r} needs an explicit "
                    "command (otherwise Katib's webhook pulls the image to find its entrypoint)"
                )
    return out


# --------------------------------------------------------------------------------------------------
# Trial workloads as built-in objects


def sample_assignments(exp: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """A few assignments (parameter name -> value string): first values, last values."""
    params = (exp.get("spec") or {}).get("parameters") or []

    def values(p: Mapping[str, Any]) -> list[str]:
        space = p.get("feasibleSpace") or {}
        return list(space.get("list") or []) or [str(space.get("min", "")), str(space.get("max", ""))]

    seen = []
    for pick in (0, -1):
        assignment = {p["name"]: values(p)[pick] for p in params if values(p)}
        if assignment not in seen:
            seen.append(assignment)
            yield assignment


def substitute(exp: Mapping[str, Any], assignment: Mapping[str, str], trial_name: str) -> dict[str, Any]:
    """The trial workload Katib would create for ``assignment`` (the Experiment model's substitution,
    Katib's rules); ManifestError where Katib could not create the trial."""
    return KatibExperiment(exp, DEFAULT_NAMESPACE).trial_workload(assignment, trial_name)


def workload_problems(exp: Mapping[str, Any], where: str) -> list[str]:
    """Validate the substituted trial workload: a Job as a Job, other kinds pod template by pod template."""
    out: list[str] = []
    name = (exp.get("metadata") or {}).get("name", "experiment")
    for i, assignment in enumerate(sample_assignments(exp)):
        try:
            workload = substitute(exp, assignment, f"{name}-trial{i}")
        except ManifestError as err:
            out.append(f"{where}: trialTemplate: Katib could not create a trial for {assignment}: {err}")
            continue
        at = f"{where}: trialTemplate.trialSpec ({workload.get('kind')}, assignment {assignment})"
        if is_builtin(workload):
            out += k8s_problems(workload, at)
            continue
        for location, _pod in pod_specs(workload):
            node: Any = workload
            for key in location.split(".")[:-2]:
                node = node[key]
            wrapper = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": workload["metadata"]["name"]},
                "template": node["template"],
            }
            out += k8s_problems(wrapper, f"{at} {location}")
    return out


# --------------------------------------------------------------------------------------------------
# katib-config


def katib_config_problems(
    cm: Mapping[str, Any], where: str, pinned_path: Path = PINNED_DIR / "katib-config.yaml"
) -> list[str]:
    """Our katib-config ConfigMap keeps the pinned default intact and adds valid entries."""
    out: list[str] = []
    meta = cm.get("metadata") or {}
    if (meta.get("name"), meta.get("namespace")) != ("katib-config", "kubeflow"):
        out.append(
            f"{where}: metadata: expected katib-config in namespace kubeflow, got "
            f"{meta.get('name')!r} in {meta.get('namespace')!r}"
        )
    data = cm.get("data") or {}
    if set(data) != {"katib-config.yaml"}:
        return [*out, f"{where}: data: expected exactly the key 'katib-config.yaml', got {sorted(data)}"]
    try:
        config = yaml.safe_load(data["katib-config.yaml"])
    except yaml.YAMLError as exc:
        return [*out, f"{where}: data.katib-config.yaml is not valid YAML: {exc}"]
    pinned = yaml.safe_load(pinned_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        return [*out, f"{where}: data.katib-config.yaml must be a mapping"]
    for key in ("apiVersion", "kind", "init"):
        if config.get(key) != pinned.get(key):
            out.append(f"{where}: katib-config.yaml {key}: differs from the pinned v0.19.0 default")
    runtime = config.get("runtime") or {}
    for key, value in pinned["runtime"].items():
        if key != "suggestions" and runtime.get(key) != value:
            out.append(f"{where}: katib-config.yaml runtime.{key}: differs from the pinned v0.19.0 default")
    extra_keys = set(runtime) - set(pinned["runtime"])
    if extra_keys or set(config) - set(pinned):
        out.append(
            f"{where}: katib-config.yaml: unexpected keys {sorted(extra_keys | (set(config) - set(pinned)))}"
        )
    suggestions = list(runtime.get("suggestions") or [])
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in suggestions:
        by_name.setdefault(s.get("algorithmName"), []).append(s)
    for builtin in pinned["runtime"]["suggestions"]:
        got = by_name.get(builtin["algorithmName"])
        if not got:
            out.append(
                f"{where}: katib-config.yaml: built-in algorithm {builtin['algorithmName']!r} is missing"
            )
        elif got[-1] != builtin:
            out.append(
                f"{where}: katib-config.yaml: built-in algorithm {builtin['algorithmName']!r} was changed"
            )
    for algo, entries in by_name.items():
        if len(entries) > 1:
            out.append(f"{where}: katib-config.yaml: algorithm {algo!r} is registered {len(entries)} times")
    builtin_names = {b["algorithmName"] for b in pinned["runtime"]["suggestions"]}
    for entry in suggestions:
        if entry.get("algorithmName") not in builtin_names:
            out += suggestion_entry_problems(entry, where)
    return out


def suggestion_entry_problems(entry: Mapping[str, Any], where: str) -> list[str]:
    """A custom katib-config suggestion entry: a valid container Katib can deploy and will not OOM."""
    algo = entry.get("algorithmName")
    at = f"{where}: katib-config suggestion {algo!r}"
    out: list[str] = []
    if not algo or not re.match(r"^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$", algo):
        out.append(f"{at}: algorithmName must be a lowercase DNS label of at most 22 characters")
    image = str(entry.get("image") or "").strip()
    if not image:
        out.append(f"{at}: image is required")
    elif ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
        out.append(f"{at}: image {image!r} must carry a pinned tag (not latest)")
    for port in entry.get("ports") or []:
        if port.get("containerPort") == 6789 or port.get("name") == "suggestion-api":
            out.append(f"{at}: port 6789 / 'suggestion-api' is added by Katib and must not be declared")
    limits = (entry.get("resources") or {}).get("limits") or {}
    if "memory" not in limits or "cpu" not in limits:
        out.append(
            f"{at}: resources.limits.cpu and .memory must be explicit (Katib's default memory limit is 100Mi)"
        )
    container = {k: v for k, v in entry.items() if k not in KATIB_ONLY_SUGGESTION_FIELDS}
    container.setdefault("name", "suggestion")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "suggestion"},
        "spec": {"containers": [container]},
    }
    out += k8s_problems(pod, at)
    return out


# --------------------------------------------------------------------------------------------------
# Across files: warm-start references, ServiceAccounts and RBAC references

ExperimentIndex = Mapping[tuple[str, str], Mapping[str, Any]]


def experiment_key(exp: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an Experiment (namespace ``default`` when unset, as kubectl would apply it)."""
    model = KatibExperiment(exp, DEFAULT_NAMESPACE)
    return model.namespace, model.name


def experiment_index(docs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """Every Katib Experiment among ``docs`` by (namespace, name)."""
    return {
        experiment_key(d): d
        for d in docs
        if d.get("kind") == "Experiment" and d.get("apiVersion") == "kubeflow.org/v1beta1"
    }


def warm_start_refs(exp: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (namespace, name) pairs of ``warm_start_experiments``, bare names resolved to the Experiment's
    namespace (where Katib runs its suggestion pod). Empty when unset or unparsable (reported elsewhere)."""
    try:
        return KatibExperiment(exp, DEFAULT_NAMESPACE).warm_start_refs()
    except InvalidArgument:
        return []


def warm_start_problems(exp: Mapping[str, Any], experiments: ExperimentIndex, where: str) -> list[str]:
    """Each ``warm_start_experiments`` entry names another Experiment of ``experiments`` in the same
    namespace (the warm-start Role is namespaced), with the same objective metric and direction and at
    least one parameter name in common (prior trials are matched by parameter name)."""
    out: list[str] = []
    field = "spec.algorithm.algorithmSettings[warm_start_experiments]"
    own = experiment_key(exp)
    objective = (exp.get("spec") or {}).get("objective") or {}
    params = {p.get("name") for p in (exp.get("spec") or {}).get("parameters") or []}
    for ref in warm_start_refs(exp):
        label = "/".join(ref)
        if ref == own:
            out.append(f"{where}: {field}: {label} is this Experiment itself; name an earlier one")
            continue
        if ref[0] != own[0]:
            out.append(
                f"{where}: {field}: {label} is in namespace {ref[0]!r}, but the warm-start Role "
                f"(manifests/optional/warm-start) only grants reads in {own[0]!r}; use an Experiment of "
                f"{own[0]!r}, or create the Role in {ref[0]!r} bound to this namespace's ServiceAccount and "
                f"allow the namespace with --warm-start-namespaces={ref[0]} in the args of the algorithm's "
                "katib-config entry (the service reads only its own namespace by default)"
            )
            continue
        prior = experiments.get(ref)
        if prior is None:
            known = sorted(n for ns, n in experiments if ns == own[0] and (ns, n) != own)
            out.append(
                f"{where}: {field}: {label} is not an Experiment of the manifests; known in {own[0]!r}: {known}"
            )
            continue
        theirs = (prior.get("spec") or {}).get("objective") or {}
        for key in ("objectiveMetricName", "type"):
            if theirs.get(key) != objective.get(key):
                out.append(
                    f"{where}: {field}: {label} has objective {key} {theirs.get(key)!r}, this Experiment "
                    f"{objective.get(key)!r}; the service rejects a prior with another objective"
                )
        shared = params & {p.get("name") for p in (prior.get("spec") or {}).get("parameters") or []}
        if not shared:
            out.append(
                f"{where}: {field}: {label} shares no parameter name with this Experiment "
                f"{sorted(params, key=str)}; its trials could not be matched"
            )
    return out


def service_accounts_named(katib_config: Mapping[str, Any]) -> dict[str, str]:
    """Algorithm name -> the ``serviceAccountName`` its katib-config entry sets (entries without one omitted)."""
    return {
        s["algorithmName"]: s["serviceAccountName"]
        for s in (katib_config.get("runtime") or {}).get("suggestions") or []
        if s.get("algorithmName") and s.get("serviceAccountName")
    }


#: What warm start requests from the Kubernetes API for each prior (suggestion_service/kube_priors.py):
#: (API group, resource, RBAC verb), in the prior's namespace, as the suggestion pod's ServiceAccount.
WARM_START_ACCESS = (("kubeflow.org", "experiments", "get"), ("kubeflow.org", "trials", "list"))
WARM_START_RBAC_FILE = "manifests/optional/warm-start/10-rbac.yaml"


def _key(doc: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of a namespaced object (namespace ``default`` when unset)."""
    meta = doc.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


#: Verbs that act on one named object, so that a rule's ``resourceNames`` can allow them.
NAMED_VERBS = ("get", "update", "patch", "delete")


def role_allows(role: Mapping[str, Any], group: str, resource: str, verb: str, name: str = "") -> bool:
    """Whether a Role's rules let ``verb`` act on ``group``/``resource`` (object ``name`` for get), as the
    RBAC authorizer decides: ``*`` matches anything; ``resourceNames`` limit a rule to those objects, so
    such a rule never allows list."""
    for rule in role.get("rules") or []:
        groups, resources, verbs = (rule.get(k) or [] for k in ("apiGroups", "resources", "verbs"))
        if not (
            (group in groups or "*" in groups)
            and (resource in resources or "*" in resources)
            and (verb in verbs or "*" in verbs)
        ):
            continue
        names = rule.get("resourceNames") or []
        if not names or (verb in NAMED_VERBS and name in names):
            return True
    return False


def _warm_start_rbac_problems(
    where: str,
    exp: Mapping[str, Any],
    account: tuple[str, str],
    roles: Mapping[tuple[str, str], Mapping[str, Any]],
    bindings: list[Mapping[str, Any]],
) -> list[str]:
    """Each prior of ``exp`` is readable by ``account`` (namespace, name): some RoleBinding in the prior's
    namespace binds it to Roles of the bundle that together allow ``WARM_START_ACCESS``; otherwise the
    service's first suggestion fails with 403 (PriorForbidden) on the cluster."""
    out: list[str] = []
    algorithm = ((exp.get("spec") or {}).get("algorithm") or {}).get("algorithmName")
    for namespace, name in warm_start_refs(exp):
        granted = [
            roles[namespace, str((b.get("roleRef") or {}).get("name"))]
            for b in bindings
            if _key(b)[0] == namespace
            and (b.get("roleRef") or {}).get("kind") == "Role"
            and (namespace, str((b.get("roleRef") or {}).get("name"))) in roles
            and any(
                s.get("kind") == "ServiceAccount"
                and (str(s.get("namespace") or namespace), str(s.get("name"))) == account
                for s in b.get("subjects") or []
            )
        ]
        missing = [
            f"{verb} on {group}/{resource}"
            for group, resource, verb in WARM_START_ACCESS
            if not any(role_allows(r, group, resource, verb, name) for r in granted)
        ]
        if not missing:
            continue
        detail = (
            f"what its RoleBindings in {namespace!r} grant is missing {' and '.join(missing)}"
            if granted
            else f"the bundle's RoleBindings in {namespace!r} grant it nothing"
        )
        needs = " and ".join(f"{verb} on {group}/{resource}" for group, resource, verb in WARM_START_ACCESS)
        out.append(
            f"{where}: spec.algorithm.algorithmSettings[warm_start_experiments]: the {algorithm} suggestion "
            f"pod reads {namespace}/{name} as ServiceAccount {'/'.join(account)}, but {detail}; it needs "
            f"{needs} in {namespace!r} (a Role and a RoleBinding to that account there, as in "
            f"{WARM_START_RBAC_FILE}), or the service answers 403 on the cluster"
        )
    return out


def bundle_problems(
    documents: Iterable[tuple[str, Mapping[str, Any]]], katib_config: Mapping[str, Any]
) -> list[str]:
    """Cross-object checks over (where, document) pairs: every Experiment whose algorithm runs under a
    named ServiceAccount finds it in its namespace (otherwise Katib's suggestion pod is never created);
    every RoleBinding refers to a Role and ServiceAccounts of the bundle in its own namespace; and every
    ``warm_start_experiments`` prior is readable by that ServiceAccount through the bundle's RBAC."""
    docs = list(documents)
    accounts = {_key(d) for _, d in docs if d.get("kind") == "ServiceAccount"}
    roles = {_key(d): d for _, d in docs if d.get("kind") == "Role"}
    bindings = [d for _, d in docs if d.get("kind") == "RoleBinding"]
    named = service_accounts_named(katib_config)
    out: list[str] = []
    for where, doc in docs:
        kind = doc.get("kind")
        if kind == "Experiment":
            namespace, _ = experiment_key(doc)
            algorithm = ((doc.get("spec") or {}).get("algorithm") or {}).get("algorithmName")
            account = named.get(algorithm)
            if account and (namespace, account) not in accounts:
                out.append(
                    f"{where}: algorithm {algorithm!r} runs its suggestion pod as ServiceAccount {account!r} "
                    f"(katib-config), which no manifest creates in namespace {namespace!r}"
                )
            # Without serviceAccountName Katib runs the pod as the namespace's default account.
            out += _warm_start_rbac_problems(where, doc, (namespace, account or "default"), roles, bindings)
        elif kind == "Job" and is_registration(doc):
            out += registration_job_problems(doc, docs, where)
        elif kind == "RoleBinding":
            namespace = _key(doc)[0]
            ref = doc.get("roleRef") or {}
            if ref.get("kind") != "Role" or (namespace, str(ref.get("name"))) not in roles:
                there = sorted(n for ns, n in roles if ns == namespace)
                out.append(
                    f"{where}: roleRef {ref.get('kind')}/{ref.get('name')} is not a Role of the bundle in "
                    f"namespace {namespace!r}; Roles there: {there}"
                )
            for subject in doc.get("subjects") or []:
                key = (str(subject.get("namespace") or namespace), str(subject.get("name")))
                if subject.get("kind") != "ServiceAccount" or key not in accounts:
                    there = sorted(n for ns, n in accounts if ns == key[0])
                    out.append(
                        f"{where}: subject {subject.get('kind')} {'/'.join(key)} is not a ServiceAccount "
                        f"of the bundle; ServiceAccounts there: {there}"
                    )
    return out


# --------------------------------------------------------------------------------------------------
# The registration bundle (10-katib-registration.yaml)

REGISTRATION_FILE = "10-katib-registration.yaml"
REGISTRATION_COMPONENT = "katib-registration"
REGISTRATION_MODULE = "suggestion_service.katib_registration"
ENTRIES_KEY = "suggestions.yaml"
#: What the registration Job does with the API (suggestion_service/katib_registration.py).
REGISTRATION_ACCESS = (("", "configmaps", "get"), ("", "configmaps", "update"))


def is_registration(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` belongs to the registration bundle (by its component label)."""
    labels = (doc.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/component") == REGISTRATION_COMPONENT


def registration_entries_problems(
    cm: Mapping[str, Any], where: str, pinned_path: Path = PINNED_DIR / "katib-config.yaml"
) -> list[str]:
    """The entries ConfigMap: key ``suggestions.yaml`` with exactly our entries, each a valid suggestion
    container, and merging them into the pinned default gives a valid katib-config."""
    data = cm.get("data") or {}
    if set(data) != {ENTRIES_KEY}:
        return [f"{where}: data: expected exactly the key {ENTRIES_KEY!r}, got {sorted(data)}"]
    try:
        texts = parse_entries(data[ENTRIES_KEY], f"{where}: data.{ENTRIES_KEY}")
    except KatibConfigError as exc:
        return [str(exc)]
    names = [str(e.get("algorithmName")) for e in yaml.safe_load(data[ENTRIES_KEY])]
    out: list[str] = []
    if sorted(names) != sorted(OUR_ALGORITHMS):
        out.append(f"{where}: data.{ENTRIES_KEY}: entries {names}; expected exactly {list(OUR_ALGORITHMS)}")
    merged = merge_text(pinned_path.read_text(encoding="utf-8"), texts, str(pinned_path))
    katib_config = {"metadata": {"name": "katib-config", "namespace": "kubeflow"}}
    return out + katib_config_problems(
        {**katib_config, "data": {"katib-config.yaml": merged.text}}, f"{where} merged into the default"
    )


def registration_job_problems(
    job: Mapping[str, Any], docs: Iterable[tuple[str, Mapping[str, Any]]], where: str
) -> list[str]:
    """The registration Job runs the registration module with arguments it accepts, mounts its entries
    from a ConfigMap of the bundle, and its ServiceAccount can get and update katib-config there."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    (container, *_) = pod.get("containers") or [{}]
    command = list(container.get("command") or [])
    if command != ["python", "-m", REGISTRATION_MODULE]:
        return [f"{where}: command {command}; expected ['python', '-m', '{REGISTRATION_MODULE}']"]
    try:
        args = registration_parser().parse_args(list(container.get("args") or []))
    except SystemExit:
        return [f"{where}: args {container.get('args')} are not accepted by {REGISTRATION_MODULE}"]
    namespace = _key(job)[0]
    docs = list(docs)
    out: list[str] = []
    mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    volume = volumes.get(mounts.get(str(args.entries.parent)), {})
    source = str((volume.get("configMap") or {}).get("name") or "")
    entries_cm = next(
        (d for _, d in docs if d.get("kind") == "ConfigMap" and _key(d) == (namespace, source)), None
    )
    if entries_cm is None or args.entries.name not in (entries_cm.get("data") or {}):
        out.append(
            f"{where}: --entries {args.entries} is not a key of a ConfigMap of the bundle mounted at "
            f"{args.entries.parent} (volume configMap {source!r} in {namespace!r})"
        )
    account = (namespace, str(pod.get("serviceAccountName") or "default"))
    if pod.get("automountServiceAccountToken") is False:
        out.append(f"{where}: automountServiceAccountToken is false; the Job authenticates with that token")
    roles = {_key(d): d for _, d in docs if d.get("kind") == "Role"}
    granted = [
        roles[args.namespace, str((b.get("roleRef") or {}).get("name"))]
        for _, b in docs
        if b.get("kind") == "RoleBinding"
        and _key(b)[0] == args.namespace
        and (args.namespace, str((b.get("roleRef") or {}).get("name"))) in roles
        and any(
            s.get("kind") == "ServiceAccount"
            and (str(s.get("namespace") or args.namespace), s.get("name")) == account
            for s in b.get("subjects") or []
        )
    ]
    missing = [
        f"{verb} on {resource}/{args.configmap}"
        for group, resource, verb in REGISTRATION_ACCESS
        if not any(role_allows(r, group, resource, verb, args.configmap) for r in granted)
    ]
    if missing:
        out.append(
            f"{where}: ServiceAccount {'/'.join(account)} needs {' and '.join(missing)} in namespace "
            f"{args.namespace!r} (a Role and a RoleBinding there); the bundle grants it "
            f"{'too little' if granted else 'nothing'}"
        )
    return out


# --------------------------------------------------------------------------------------------------
# Files


def default_paths(root: Path = MANIFESTS_DIR) -> list[Path]:
    """Every manifest under ``root``: top level and optional/, not templates or pinned data."""
    return [
        p
        for p in sorted(root.rglob("*.yaml"))
        if p.relative_to(root).parts[0] not in ("templates", "katib-v0.19.0")
    ]


def shipped_katib_config(root: Path = MANIFESTS_DIR) -> dict[str, Any]:
    """The KatibConfig the bundle leaves on a default Katib: the pinned v0.19.0 default with the entries
    of the registration ConfigMap merged in (what the webhook checks are run against)."""
    (cm,) = [d for d in manifest_yaml.load_all(root / REGISTRATION_FILE) if d.get("kind") == "ConfigMap"]
    texts = parse_entries(cm["data"][ENTRIES_KEY], f"{root / REGISTRATION_FILE}: data.{ENTRIES_KEY}")
    pinned = PINNED_DIR / "katib-config.yaml"
    return merge_text(pinned.read_text(encoding="utf-8"), texts, str(pinned)).config


def document_problems(
    doc: Mapping[str, Any],
    katib_config: Mapping[str, Any],
    where: str,
    experiments: ExperimentIndex | None = None,
) -> list[str]:
    """All checks that apply to one parsed document; ``experiments`` (default: those of the shipped
    manifests) resolves warm-start references."""
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if kind == "Experiment" and api_version == "kubeflow.org/v1beta1":
        return (
            katib_schema_problems(doc, where)
            + webhook_problems(doc, katib_config, where)
            + warm_start_problems(doc, shipped_experiments() if experiments is None else experiments, where)
            + workload_problems(doc, where)
        )
    out: list[str] = []
    if kind == "ConfigMap" and (doc.get("metadata") or {}).get("name") == "katib-config":
        out += katib_config_problems(doc, where)
    if kind == "ConfigMap" and is_registration(doc):
        out += registration_entries_problems(doc, where)
    if kind == "PodMonitor" and api_version == "monitoring.coreos.com/v1":
        return podmonitor_problems(doc, where)
    if not is_builtin(doc):
        return [*out, f"{where}: no schema for {api_version} {kind}; add a check to manifests/validate.py"]
    return out + k8s_problems(doc, where)


def podmonitor_problems(doc: Mapping[str, Any], where: str) -> list[str]:
    """Structural check of a Prometheus Operator PodMonitor (no schema ships offline)."""
    out: list[str] = []
    allowed = {"apiVersion", "kind", "metadata", "spec"}
    if set(doc) - allowed:
        out.append(f"{where}: PodMonitor: unknown top-level keys {sorted(set(doc) - allowed)}")
    spec = doc.get("spec") or {}
    known = {
        "selector",
        "podMetricsEndpoints",
        "namespaceSelector",
        "jobLabel",
        "podTargetLabels",
        "sampleLimit",
    }
    if set(spec) - known:
        out.append(f"{where}: PodMonitor spec: unknown keys {sorted(set(spec) - known)}")
    if not (spec.get("selector") or {}).get("matchLabels") and not (spec.get("selector") or {}).get(
        "matchExpressions"
    ):
        out.append(f"{where}: PodMonitor spec.selector: must select pods")
    endpoints = spec.get("podMetricsEndpoints") or []
    if not endpoints or any(
        not e.get("port") or not str(e.get("path", "/")).startswith("/") for e in endpoints
    ):
        out.append(
            f"{where}: PodMonitor spec.podMetricsEndpoints: each needs a named port and an absolute path"
        )
    return out


def file_problems(
    path: Path, katib_config: Mapping[str, Any], experiments: ExperimentIndex | None = None
) -> list[str]:
    """yamllint plus every document check for one file."""
    out = yamllint_problems(path)
    try:
        docs = manifest_yaml.load_all(path)
    except ValueError as exc:
        return [*out, str(exc)]
    for i, doc in enumerate(docs):
        out += document_problems(doc, katib_config, _where(path, i, len(docs)), experiments)
    return out


def _where(path: Path, index: int, count: int) -> str:
    return f"{path}" + (f" (document {index + 1})" if count > 1 else "")


def documents(paths: Iterable[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(where, document) for every document of ``paths`` that parses (parse errors: ``file_problems``)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        try:
            docs = manifest_yaml.load_all(path)
        except ValueError:
            continue
        out += [(_where(path, i, len(docs)), doc) for i, doc in enumerate(docs)]
    return out


@functools.cache
def shipped_experiments(root: Path = MANIFESTS_DIR) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The Experiments of every manifest under ``root``, by (namespace, name)."""
    return experiment_index(doc for _, doc in documents(default_paths(root)))


def main(argv: list[str] | None = None) -> int:
    """Check the given files (default: all manifests); 0 when clean, 1 with problems listed.

    The given files are checked in the context of the shipped bundle: warm-start references resolve
    against its Experiments plus those of the files, and ``bundle_problems`` runs over both.
    """
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or default_paths()
    katib_config = shipped_katib_config()
    docs = documents(paths)
    experiments = {**shipped_experiments(), **experiment_index(doc for _, doc in docs)}
    problems = list(itertools.chain.from_iterable(file_problems(p, katib_config, experiments) for p in paths))
    context = sorted({*default_paths(), *(p.resolve() for p in paths)})
    problems += bundle_problems(documents(context), katib_config)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {len(paths)} file(s)", file=sys.stderr)
        return 1
    print(
        f"{len(paths)} manifest file(s) pass yamllint, Kubernetes {' and '.join(K8S_VERSIONS)} strict schemas, "
        "the Katib v0.19.0 schema, webhook and cross-file checks"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
