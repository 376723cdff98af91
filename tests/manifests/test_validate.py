"""Every manifest passes every offline check, and each check rejects a manifest broken its way."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import MANIFESTS, experiment, load_one, training_container

ALL_FILES = [
    p
    for p in sorted(MANIFESTS.rglob("*.yaml"))
    if p.relative_to(MANIFESTS).parts[0] not in ("templates", "katib-v0.19.0")
]


def test_every_manifest_is_checked(val) -> None:
    assert val.default_paths() == ALL_FILES
    # 4 applied + 12 Experiments; optional: 6 smoke-cpu, 2 warm-start, DDP, NetworkPolicy, PodMonitors,
    # the standalone katib-config
    assert len(ALL_FILES) == 28


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_manifest_passes_all_checks(val, katib_config, path: Path) -> None:
    assert val.file_problems(path, katib_config) == []


def test_validator_command_line_reports_problems(val, tmp_path: Path, capsys) -> None:
    broken = experiment()
    broken["spec"]["maxTrialCount"] = 25
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False))
    assert val.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "spec.maxTrialCount: 25 > all possible search combinations: 24 (grid)" in err
    assert val.main([str(MANIFESTS / "00-namespace.yaml")]) == 0


# --- yamllint ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("a: 1\na: 2\n", "key-duplicates"),
        ("a: 1   \n", "trailing-spaces"),
        ("a:\n- 1\n", "indentation"),
        ("a: yes\n", "truthy"),
        ("a: " + "x" * 120 + "\n", "line-length"),
    ],
)
def test_yamllint_rejects(val, tmp_path: Path, text: str, rule: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    problems = val.yamllint_problems(path)
    assert any(f"({rule})" in p for p in problems), problems


# --- kubernetes-validate (built-in kinds, strict) ------------------------------------------------


def test_builtin_schema_rejects_unknown_field_and_wrong_type(val) -> None:
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "20-cache.yaml").read_text()) if d]
    job = copy.deepcopy(docs[2])
    job["spec"]["template"]["spec"]["containers"][0]["cpuLimit"] = "2"
    assert any("Additional properties are not allowed ('cpuLimit'" in p for p in val.k8s_problems(job, "job"))
    claim = copy.deepcopy(docs[0])
    claim["spec"]["accessModes"] = "ReadWriteMany"
    assert any(
        "spec.accessModes" in p and "is not of type 'array'" in p for p in val.k8s_problems(claim, "pvc")
    )


def test_trial_job_inside_an_experiment_is_validated_after_substitution(val) -> None:
    exp = experiment("cifar10", "random")
    training_container(exp)["resoures"] = {}
    problems = val.workload_problems(exp, "exp")
    assert any("Additional properties are not allowed ('resoures'" in p for p in problems), problems

    exp = experiment("sst2", "grid")
    exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = "${trialParameters.batchSize}"
    problems = val.workload_problems(exp, "exp")
    assert any("spec.backoffLimit: '16' is not of type 'integer'" in p for p in problems), problems


def test_substitution_uses_parameter_values_and_trial_name(val) -> None:
    exp = experiment("mrpc", "surrogate-rf")
    job = val.substitute(
        exp, {"learning_rate": "3e-5", "batch_size": "32", "max_seq_length": "256", "num_epochs": "4"}, "t1"
    )
    cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--learning-rate") + 1] == "3e-5"
    assert cmd[cmd.index("--checkpoint-dir") + 1] == "/checkpoints/t1"
    assert "${" not in json.dumps(job)


def test_pytorchjob_replicas_are_validated_as_pod_templates(val) -> None:
    exp = load_one(MANIFESTS / "optional" / "pytorchjob-cifar10-ddp.yaml")
    assert val.workload_problems(exp, "ddp") == []
    exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"
    ][0]["gpus"] = 4
    problems = val.workload_problems(exp, "ddp")
    assert any("pytorchReplicaSpecs.Worker" in p and "'gpus'" in p for p in problems), problems


# --- Katib swagger schema, strict ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda e: e["spec"].__setitem__("maxTrialCounts", 3),
            "Additional properties are not allowed ('maxTrialCounts'",
        ),
        (lambda e: e["spec"]["objective"].__setitem__("goalValue", 0.9), "('goalValue' was unexpected)"),
        (
            lambda e: e["spec"].__setitem__("maxTrialCount", "12"),
            "spec.maxTrialCount: '12' is not of type 'integer'",
        ),
        (
            lambda e: e["spec"]["parameters"][0]["feasibleSpace"].__setitem__("list", [2e-5]),
            "is not of type 'string'",
        ),
        (
            lambda e: e["spec"]["trialTemplate"].__setitem__("primaryContainer", "x"),
            "'primaryContainer' was unexpected",
        ),
        (lambda e: e["metadata"].__setitem__("label", {}), "('label' was unexpected)"),
    ],
)
def test_katib_schema_rejects(val, mutate: Any, expected: str) -> None:
    exp = experiment("sst2", "surrogate-gp")
    assert val.katib_schema_problems(exp, "exp") == []
    mutate(exp)
    problems = val.katib_schema_problems(exp, "exp")
    assert any(expected in p for p in problems), problems


def test_strict_definitions_close_every_listed_object(val) -> None:
    swagger = json.loads((MANIFESTS / "katib-v0.19.0" / "swagger.json").read_text())
    defs = val.strict_definitions(swagger["definitions"])
    assert defs["v1beta1.ExperimentSpec"]["additionalProperties"] is False
    assert defs["v1beta1.FeasibleSpace"]["additionalProperties"] is False
    # maps stay maps
    assert defs["v1beta1.TrialTemplate"]["properties"]["primaryPodLabels"]["additionalProperties"] == {
        "type": "string",
        "default": "",
    }
    assert "additionalProperties" not in swagger["definitions"]["v1beta1.ExperimentSpec"], (
        "input not modified"
    )


# --- Katib admission-webhook rules ---------------------------------------------------------------


def _set_param_names(e: dict, names: list[str]) -> None:
    for p, n in zip(e["spec"]["parameters"], names, strict=False):
        p["name"] = n


def _tp(e: dict) -> list[dict]:
    return e["spec"]["trialTemplate"]["trialParameters"]


def _cmd(e: dict) -> list[str]:
    return training_container(e)["command"]


WEBHOOK_CASES = {
    "duplicate parameter": (
        lambda e: _set_param_names(e, ["learning_rate", "learning_rate"]),
        "name 'learning_rate' is used more than once",
    ),
    "reference to no parameter": (
        lambda e: _tp(e)[1].__setitem__("reference", "batchsize"),
        "'batchsize' is neither a parameter",
    ),
    "bad metadata reference": (
        lambda e: _tp(e)[-1].__setitem__("reference", "${trialSpec.Uid}"),
        "'${trialSpec.Uid}' is neither a parameter",
    ),
    "placeholder not declared": (
        lambda e: _cmd(e).extend(["--seed", "${trialParameters.seed}"]),
        "${trialParameters.seed} is used but not declared",
    ),
    "declared but unused": (
        lambda e: _tp(e).append({"name": "seed", "reference": "${trialSpec.Namespace}"}),
        "'seed' is declared but ${trialParameters.seed} is not used",
    ),
    "parameter not referenced": (
        lambda e: (_tp(e).pop(1), _cmd(e).__setitem__(_cmd(e).index("--batch-size") + 1, "32")),
        "parameter 'batch_size' is not referenced by any trial parameter",
    ),
    "duplicate trial parameter": (
        lambda e: _tp(e).append(dict(_tp(e)[0])),
        "'learningRate' is declared twice",
    ),
    "primary container missing": (
        lambda e: e["spec"]["trialTemplate"].__setitem__("primaryContainerName", "trainer"),
        "'trainer' is not a container of trialSpec.spec.template.spec",
    ),
    "no command": (lambda e: training_container(e).pop("command"), "needs an explicit command"),
    "unknown algorithm": (
        lambda e: e["spec"]["algorithm"].__setitem__("algorithmName", "surrogate-xgb"),
        "'surrogate-xgb' is not in katib-config",
    ),
    "grid too large": (
        lambda e: e["spec"].__setitem__("maxTrialCount", 30),
        "30 > all possible search combinations: 24",
    ),
    "name too long": (
        lambda e: e["metadata"].__setitem__("name", "sst2-" + "x" * 40),
        "has 45 characters; Katib allows at most 40",
    ),
    "name not DNS": (
        lambda e: e["metadata"].__setitem__("name", "SST2_grid"),
        "must be lowercase alphanumerics",
    ),
    "parallel above max": (
        lambda e: e["spec"].__setitem__("parallelTrialCount", 30),
        "must be <= spec.maxTrialCount",
    ),
    "objective in additional": (
        lambda e: e["spec"]["objective"]["additionalMetricNames"].append("accuracy"),
        "must not contain the objective 'accuracy'",
    ),
    "bad strategy": (
        lambda e: e["spec"]["objective"]["metricStrategies"][0].__setitem__("value", "best"),
        "'best'; allowed: min, max, latest",
    ),
    "strategy for an uncollected metric": (
        lambda e: e["spec"]["objective"]["metricStrategies"].append({"name": "loss", "value": "min"}),
        "'loss' is not a collected metric",
    ),
    "objective type": (
        lambda e: e["spec"]["objective"].__setitem__("type", "max"),
        "must be minimize or maximize",
    ),
    "resume policy": (lambda e: e["spec"].__setitem__("resumePolicy", "Always"), "'Always'; allowed"),
    "parameter type": (
        lambda e: e["spec"]["parameters"][0].__setitem__("parameterType", "float"),
        "'float'; allowed",
    ),
    "discrete with min": (
        lambda e: e["spec"]["parameters"][0]["feasibleSpace"].__setitem__("min", "1"),
        "min, max and step are not supported for discrete",
    ),
    "double without bounds": (
        lambda e: e["spec"]["parameters"][0].__setitem__("parameterType", "double"),
        "min and max are required for parameterType double",
    ),
    "collector kind": (
        lambda e: e["spec"]["metricsCollectorSpec"]["collector"].__setitem__("kind", "Stdout"),
        "'Stdout'; allowed",
    ),
    "unwatched trial kind": (
        lambda e: e["spec"]["trialTemplate"]["trialSpec"].__setitem__("apiVersion", "batch/v2"),
        "Job.v2.batch is not in katib-config init.controller.trialResources",
    ),
    "template named": (
        lambda e: e["spec"]["trialTemplate"]["trialSpec"].__setitem__("metadata", {"name": "fixed"}),
        "name and namespace must be omitted",
    ),
    "duplicate setting": (
        lambda e: e["spec"]["algorithm"]["algorithmSettings"].append({"name": "random_state", "value": "1"}),
        "setting 'random_state' is given more than once",
    ),
}


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=list(WEBHOOK_CASES))
def test_webhook_rule_rejects(val, katib_config, case: str) -> None:
    mutate, expected = WEBHOOK_CASES[case]
    exp = experiment("sst2", "grid")
    assert val.webhook_problems(exp, katib_config, "exp") == []
    mutate(exp)
    problems = val.webhook_problems(exp, katib_config, "exp")
    assert any(expected in p for p in problems), f"{case}: {problems}"


def test_webhook_uses_the_given_katib_config(val, katib_config) -> None:
    exp = experiment("cifar10", "surrogate-rf")
    without = copy.deepcopy(katib_config)
    without["runtime"]["suggestions"] = [
        s for s in without["runtime"]["suggestions"] if s["algorithmName"] != "surrogate-rf"
    ]
    assert any(
        "'surrogate-rf' is not in katib-config" in p for p in val.webhook_problems(exp, without, "exp")
    )


# --- katib-config ---------------------------------------------------------------------------------


def _configmap() -> dict:
    return load_one(MANIFESTS / "optional" / "katib-config-standalone.yaml")


def _with_config(mutate: Any) -> dict:
    cm = _configmap()
    config = yaml.safe_load(cm["data"]["katib-config.yaml"])
    mutate(config)
    cm["data"]["katib-config.yaml"] = yaml.safe_dump(config, sort_keys=False)
    return cm


def _suggestion(config: dict, name: str) -> dict:
    return next(s for s in config["runtime"]["suggestions"] if s["algorithmName"] == name)


KATIB_CONFIG_CASES = {
    "built-in removed": (
        lambda c: c["runtime"]["suggestions"].pop(0),
        "built-in algorithm 'random' is missing",
    ),
    "built-in changed": (
        lambda c: c["runtime"]["suggestions"][2].__setitem__(
            "image", "ghcr.io/kubeflow/katib/suggestion-optuna:latest"
        ),
        "built-in algorithm 'grid' was changed",
    ),
    "metrics collector changed": (
        lambda c: c["runtime"]["metricsCollectors"].pop(),
        "runtime.metricsCollectors: differs from the pinned",
    ),
    "init changed": (lambda c: c["init"]["controller"].__setitem__("webhookPort", 9443), "init: differs"),
    "duplicate entry": (
        lambda c: c["runtime"]["suggestions"].append(copy.deepcopy(_suggestion(c, "surrogate-gp"))),
        "'surrogate-gp' is registered 2 times",
    ),
    "latest tag": (
        lambda c: _suggestion(c, "surrogate-rf").__setitem__(
            "image", "ghcr.io/katib-surrogate/suggestion:latest"
        ),
        "must carry a pinned tag",
    ),
    "no memory limit": (
        lambda c: _suggestion(c, "surrogate-gp")["resources"]["limits"].pop("memory"),
        "Katib's default memory limit is 100Mi",
    ),
    "port 6789 declared": (
        lambda c: _suggestion(c, "surrogate-gp")["ports"].append({"name": "api", "containerPort": 6789}),
        "port 6789 / 'suggestion-api' is added by Katib",
    ),
    "invalid container field": (
        lambda c: _suggestion(c, "surrogate-gp").__setitem__("memoryLimit", "1Gi"),
        "('memoryLimit' was unexpected)",
    ),
    "algorithm name too long": (
        lambda c: _suggestion(c, "surrogate-gp").__setitem__(
            "algorithmName", "surrogate-gaussian-process-matern"
        ),
        "at most 22 characters",
    ),
}


@pytest.mark.parametrize("case", KATIB_CONFIG_CASES, ids=list(KATIB_CONFIG_CASES))
def test_katib_config_check_rejects(val, case: str) -> None:
    assert val.katib_config_problems(_configmap(), "cm") == []
    mutate, expected = KATIB_CONFIG_CASES[case]
    problems = val.katib_config_problems(_with_config(mutate), "cm")
    assert any(expected in p for p in problems), f"{case}: {problems}"


def test_katib_config_check_rejects_a_partial_configmap(val) -> None:
    cm = _configmap()
    cm["data"]["katib-config.yaml"] = (
        "apiVersion: config.kubeflow.org/v1beta1\nkind: KatibConfig\nruntime:\n  suggestions: []\n"
    )
    problems = val.katib_config_problems(cm, "cm")
    assert any("built-in algorithm 'grid' is missing" in p for p in problems)
    assert any("runtime.earlyStoppings: differs" in p for p in problems)
    cm["data"] = {"config.yaml": ""}
    assert any(
        "expected exactly the key 'katib-config.yaml'" in p for p in val.katib_config_problems(cm, "cm")
    )


def test_podmonitor_check_rejects(val) -> None:
    docs = [
        d
        for d in yaml.safe_load_all((MANIFESTS / "optional" / "prometheus-podmonitors.yaml").read_text())
        if d
    ]
    assert val.podmonitor_problems(docs[0], "pm") == []
    bad = copy.deepcopy(docs[0])
    bad["spec"]["podMetricEndpoints"] = bad["spec"].pop("podMetricsEndpoints")
    problems = val.podmonitor_problems(bad, "pm")
    assert any("unknown keys ['podMetricEndpoints']" in p for p in problems)
    assert any("each needs a named port" in p for p in problems)


def test_unknown_kind_is_reported_not_skipped(val, katib_config) -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert val.document_problems(doc, katib_config, "w") == [
        "w: no schema for example.com/v1 Widget; add a check to manifests/validate.py"
    ]


# --- the katib-config registration (10-katib-registration.yaml) --------------------------------------


def _registration() -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / "10-katib-registration.yaml").read_text()) if d]


def _registration_problems(val, mutate: Any) -> list[str]:
    docs = [(d["kind"], d) for d in _registration()]
    for _kind, doc in docs:
        mutate(doc)
    others = [(w, d) for w, d in val.documents(val.default_paths()) if not val.is_registration(d)]
    return [p for p in val.bundle_problems([*others, *docs], {}) if p.startswith("Job")]


REGISTRATION_BREAKS = {
    "Role without update": (
        lambda d: d["kind"] == "Role" and d["rules"][0].update(verbs=["get"]),
        "needs update on configmaps/katib-config in namespace 'kubeflow'",
    ),
    "Role for another ConfigMap": (
        lambda d: d["kind"] == "Role" and d["rules"][0].update(resourceNames=["katib-config-old"]),
        "needs get on configmaps/katib-config and update on configmaps/katib-config",
    ),
    "binding in another namespace": (
        lambda d: d["kind"] == "RoleBinding" and d["metadata"].update(namespace="katib"),
        "the bundle grants it nothing",
    ),
    "entries from a missing ConfigMap": (
        lambda d: (
            d["kind"] == "Job"
            and d["spec"]["template"]["spec"]["volumes"][0]["configMap"].update(name="nope")
        ),
        "--entries /etc/katib-surrogate/suggestions.yaml is not a key of a ConfigMap of the bundle",
    ),
    "argument the program rejects": (
        lambda d: (
            d["kind"] == "Job" and d["spec"]["template"]["spec"]["containers"][0]["args"].append("--force")
        ),
        "are not accepted by suggestion_service.katib_registration",
    ),
    "no token": (
        lambda d: (
            d["kind"] == "Job" and d["spec"]["template"]["spec"].update(automountServiceAccountToken=False)
        ),
        "automountServiceAccountToken is false",
    ),
}


@pytest.mark.parametrize("case", REGISTRATION_BREAKS, ids=list(REGISTRATION_BREAKS))
def test_registration_job_check_rejects(val, case: str) -> None:
    assert _registration_problems(val, lambda d: None) == []
    mutate, expected = REGISTRATION_BREAKS[case]
    problems = _registration_problems(val, mutate)
    assert any(expected in p for p in problems), problems


def test_registration_entries_check_rejects(val) -> None:
    (cm,) = [d for d in _registration() if d["kind"] == "ConfigMap"]
    assert val.registration_entries_problems(cm, "cm") == []
    entries = yaml.safe_load(cm["data"]["suggestions.yaml"])
    del entries[1]["resources"]["limits"]["memory"]
    entries.append({"algorithmName": "random", "image": "x/suggestion:1"})
    broken = {**cm, "data": {"suggestions.yaml": yaml.safe_dump(entries, sort_keys=False)}}
    problems = val.registration_entries_problems(broken, "cm")
    assert any("expected exactly ['surrogate-gp', 'surrogate-rf']" in p for p in problems), problems
    assert any("resources.limits.cpu and .memory must be explicit" in p for p in problems), problems
