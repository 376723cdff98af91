"""KatibExperiment: requests, objective, retry rules, collector and warm-start references of real manifests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib_model import KatibExperiment, ManifestError, TrialRecord
from katib_model.collector import DEFAULT_FILTER, METRICS_FILE, TF_EVENT_DIR, collector_spec
from katib_model.retry import COUNT, FAIL_JOB, IGNORE
from suggestion_service.errors import InvalidArgument
from suggestion_service.proto import api_pb2

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
EXPERIMENT_FILES = sorted(MANIFESTS.glob("30-experiment-*.yaml")) + sorted(
    MANIFESTS.glob("optional/**/30-*.yaml")
)
# Katib's api.proto numbers, written out as the local runner had them before the model existed.
REFERENCE_TYPES = {"double": 1, "int": 2, "discrete": 3, "categorical": 4}
REFERENCE_DISTRIBUTIONS = {"uniform": 1, "logUniform": 2, "normal": 3, "logNormal": 4}


def load(path: Path) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Experiment")


def reference_proto(body: dict[str, Any], max_trials: int, parallel: int) -> api_pb2.Experiment:
    """The request the local runner built field by field before the model (the behaviour to keep)."""
    spec = body["spec"]
    exp = api_pb2.Experiment(name=body["metadata"]["name"])
    for p in spec["parameters"]:
        fs = p.get("feasibleSpace") or {}
        param = exp.spec.parameter_specs.parameters.add(
            name=p["name"], parameter_type=REFERENCE_TYPES[p["parameterType"]]
        )
        param.feasible_space.min = str(fs.get("min", ""))
        param.feasible_space.max = str(fs.get("max", ""))
        param.feasible_space.step = str(fs.get("step", ""))
        param.feasible_space.list.extend(str(v) for v in fs.get("list") or [])
        param.feasible_space.distribution = REFERENCE_DISTRIBUTIONS[fs.get("distribution", "uniform")]
    objective = spec["objective"]
    exp.spec.objective.type = api_pb2.MAXIMIZE if objective["type"] == "maximize" else api_pb2.MINIMIZE
    exp.spec.objective.objective_metric_name = objective["objectiveMetricName"]
    exp.spec.objective.additional_metric_names.extend(objective.get("additionalMetricNames") or [])
    if objective.get("goal") is not None:
        exp.spec.objective.goal = float(objective["goal"])
    exp.spec.algorithm.algorithm_name = spec["algorithm"]["algorithmName"]
    for s in spec["algorithm"].get("algorithmSettings") or []:
        exp.spec.algorithm.algorithm_settings.add(name=s["name"], value=str(s.get("value", "")))
    exp.spec.parallel_trial_count, exp.spec.max_trial_count = parallel, max_trials
    return exp


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.name)
def test_experiment_proto_of_every_manifest_matches_the_previous_builder(path: Path) -> None:
    body = load(path)
    model = KatibExperiment.from_body(body)
    got = model.experiment_proto(7, 2)
    assert got.SerializeToString(deterministic=True) == reference_proto(body, 7, 2).SerializeToString(
        deterministic=True
    )
    own = model.experiment_proto()  # the manifest's own budget, as Katib sends it
    assert (own.spec.max_trial_count, own.spec.parallel_trial_count) == (
        body["spec"].get("maxTrialCount", 0),
        body["spec"].get("parallelTrialCount", 3),
    )
    assert model.validation_request().experiment == own
    assert model.search_space.names == tuple(p["name"] for p in body["spec"]["parameters"])


def test_suggestions_request_sends_what_katib_sends() -> None:
    model = KatibExperiment.from_body(load(MANIFESTS / "30-experiment-sst2-grid.yaml"))
    proto = model.experiment_proto()
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    a = {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"}
    trials = [
        TrialRecord("ok", "Succeeded", a, {"accuracy": "0.9", "f1": "0.8", "junk": "1"}, t0, t0),
        TrialRecord("mu", "MetricsUnavailable", a, {"accuracy": "unavailable"}, t0, t0),
        TrialRecord("es-empty", "EarlyStopped", a, {}, t0, t0),
        TrialRecord("es", "EarlyStopped", a, {"accuracy": "0.5"}, t0, t0),
        TrialRecord("run", "Running", a, {}, t0),
    ]
    request = model.suggestions_request(proto, trials, 2)
    assert (request.current_request_number, request.total_request_number) == (2, 7)
    assert [t.name for t in request.trials] == ["ok", "es", "run"]
    ok, es, run = request.trials
    assert {m.name: m.value for m in ok.status.observation.metrics} == {"accuracy": "0.9", "f1": "0.8"}
    assert ok.status.start_time == "2026-01-02T03:04:05Z" and run.status.completion_time == ""
    assert (ok.status.condition, es.status.condition, run.status.condition) == (
        api_pb2.TrialStatus.SUCCEEDED, api_pb2.TrialStatus.EARLYSTOPPED, api_pb2.TrialStatus.RUNNING,
    )  # fmt: skip
    assert ok.spec.objective == proto.spec.objective
    assert {p.name: p.value for p in run.spec.parameter_assignments.assignments} == a


def test_objective_and_metric_strategies_with_katib_defaults() -> None:
    body = load(MANIFESTS / "30-experiment-sst2-grid.yaml")
    body["spec"]["objective"].pop("metricStrategies")
    model = KatibExperiment.from_body(body)
    assert model.metric_names[0] == "accuracy" and set(model.metric_strategies.values()) == {"max"}
    body["spec"]["objective"].update(type="minimize", objectiveMetricName="eval_loss", goal=0.1)
    body["spec"]["objective"]["additionalMetricNames"].remove("eval_loss")
    model = KatibExperiment.from_body(body)
    assert set(model.metric_strategies.values()) == {"min"} and model.goal == 0.1
    assert model.experiment_proto().spec.objective.type == api_pb2.MINIMIZE


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda b: b.update(kind="Trial"), "not a Katib Experiment"),
        (lambda b: b["spec"]["objective"].update(type="max"), "must be maximize or minimize"),
        (lambda b: b["spec"].update(maxTrialCount="12"), "spec.maxTrialCount must be an integer"),
        (
            lambda b: b["spec"]["objective"]["metricStrategies"][0].update(value="best"),
            "allowed: min, max, latest",
        ),
        (lambda b: b["spec"].update(parameters=[]), "non-empty list"),
    ],
)
def test_from_body_rejects_what_no_reading_can_use(edit, fragment: str) -> None:  # type: ignore[no-untyped-def]
    body = load(MANIFESTS / "30-experiment-sst2-grid.yaml")
    edit(body)
    with pytest.raises(ManifestError, match=fragment):
        KatibExperiment.from_body(body, path="x.yaml")


def test_trial_workload_of_a_shipped_manifest() -> None:
    model = KatibExperiment.from_body(load(MANIFESTS / "30-experiment-mrpc-surrogate-rf.yaml"))
    a = {"learning_rate": "3e-5", "batch_size": "32", "max_seq_length": "256", "num_epochs": "4"}
    job = model.trial_workload(a, "mrpc-surrogate-rf-x1")
    cmd = model.trial_template.primary_container(job)["command"]
    assert cmd[cmd.index("--checkpoint-dir") + 1] == "/checkpoints/mrpc-surrogate-rf-x1"
    assert job["metadata"] == {"name": "mrpc-surrogate-rf-x1", "namespace": "katib-surrogate"}


def test_retry_rules_of_the_shipped_job() -> None:
    rules = KatibExperiment.from_body(load(MANIFESTS / "30-experiment-cifar10-grid.yaml")).retry_rules
    assert (rules.backoff_limit, rules.attempts(), rules.active_deadline_seconds) == (2, 3, 21600)
    assert rules.action({"training": 2}) == FAIL_JOB  # a rejected flag fails the trial at once
    assert rules.action({"wait-for-cache": 2}) == COUNT  # the rule names the training container
    assert rules.action({"training": 1}) == COUNT
    assert rules.action({"training": 137}, {"DisruptionTarget": "True"}) == IGNORE  # preemption
    assert rules.action({"training": 137}, {"DisruptionTarget": "False"}) == COUNT


def test_retry_rules_defaults_operators_and_training_operator_kinds() -> None:
    body = load(MANIFESTS / "30-experiment-cifar10-grid.yaml")
    job = body["spec"]["trialTemplate"]["trialSpec"]["spec"]
    job.pop("backoffLimit"), job.pop("activeDeadlineSeconds")
    job["podFailurePolicy"]["rules"] = [
        {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
    ]
    rules = KatibExperiment.from_body(body).retry_rules
    assert (rules.backoff_limit, rules.active_deadline_seconds) == (6, None)  # Kubernetes' defaults
    assert rules.action({"training": 3}) == FAIL_JOB and rules.action({"training": 1}) == COUNT
    assert rules.action({"training": 0, "sidecar": 1}) == COUNT  # exit code 0 never matches NotIn
    job["backoffLimit"] = -1
    with pytest.raises(ManifestError, match="backoffLimit must be a non-negative integer"):
        KatibExperiment.from_body(copy.deepcopy(body)).retry_rules  # noqa: B018
    ddp = KatibExperiment.from_body(load(MANIFESTS / "optional" / "pytorchjob-cifar10-ddp.yaml")).retry_rules
    assert (ddp.backoff_limit, ddp.active_deadline_seconds, ddp.pod_failure_rules) == (2, 21600, ())


def test_collector_spec_with_katib_defaults() -> None:
    assert (
        KatibExperiment.from_body(load(MANIFESTS / "30-experiment-sst2-grid.yaml")).collector.path
        == METRICS_FILE
    )
    std = collector_spec({})
    assert (std.kind, std.path, std.format, std.metrics_formats, std.wraps_command) == (
        "StdOut", METRICS_FILE, "TEXT", (DEFAULT_FILTER,), True,
    )  # fmt: skip
    f = collector_spec({"metricsCollectorSpec": {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/out/m.json", "kind": "File", "format": "JSON"}},
    }})  # fmt: skip
    assert (f.path, f.format) == ("/out/m.json", "JSON")
    custom = collector_spec(
        {
            "metricsCollectorSpec": {
                "collector": {"kind": "StdOut"},
                "source": {"filter": {"metricsFormat": [r"(\w+):(\S+)"]}},
            }
        }
    )
    assert custom.metrics_formats == (r"(\w+):(\S+)",)
    tf = collector_spec({"metricsCollectorSpec": {"collector": {"kind": "TensorFlowEvent"}}})
    assert tf.path == TF_EVENT_DIR and tf.wraps_command
    assert not collector_spec({"metricsCollectorSpec": {"collector": {"kind": "Push"}}}).wraps_command
    with pytest.raises(ManifestError, match="'Stdout'; allowed"):
        collector_spec({"metricsCollectorSpec": {"collector": {"kind": "Stdout"}}})


def test_warm_start_refs() -> None:
    warm = load(MANIFESTS / "optional" / "warm-start" / "30-experiment-mrpc-surrogate-gp-warm-sst2.yaml")
    assert KatibExperiment.from_body(warm).warm_start_refs() == [("katib-surrogate", "sst2-random")]
    warm["metadata"].pop("namespace")
    settings = warm["spec"]["algorithm"]["algorithmSettings"]
    next(s for s in settings if s["name"] == "warm_start_experiments")["value"] = "a,other/b"
    assert KatibExperiment.from_body(warm).warm_start_refs() == [("default", "a"), ("other", "b")]
    assert KatibExperiment(warm, "team").warm_start_refs() == [("team", "a"), ("other", "b")]
    grid = KatibExperiment.from_body(load(MANIFESTS / "30-experiment-sst2-grid.yaml"))
    assert grid.warm_start_refs() == []
    warm["spec"]["algorithm"]["algorithmName"] = "grid"
    with pytest.raises(InvalidArgument, match="does not apply"):
        KatibExperiment(warm).warm_start_refs()
