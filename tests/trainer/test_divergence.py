"""A diverging configuration is a result (exit 0, chance-level objective, ``diverged=1``), not a failure.

Katib counts a failed trial against ``maxFailedTrialCount`` and the suggestion service never learns
from it; a Succeeded trial at chance level teaches the optimizer that the region is bad.
"""

from __future__ import annotations

import json
import math
import re

import yaml
from trainer.katib_metrics import observation, parse_metric_lines
from trainer.tasks import get_task

from tests.trainer.helpers import REPO, trial_args

MANIFEST = REPO / "manifests" / "30-experiment-sst2-surrogate-gp.yaml"


def _final(out: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", out.strip().splitlines()[-1]))


def test_absurd_learning_rate_is_an_ordinary_result_at_chance_level(in_process, tmp_path) -> None:
    from client.experiments import ExperimentDef
    from client.local_runner import trial_outcome

    run = in_process(trial_args("sst2", tmp_path, lr="90", epochs=2))
    assert run.code == 0, run.err
    assert "training diverged" in run.err and "diverged=1" in run.err and "--fail-on-divergence" in run.err
    final = _final(run.out)
    chance = 1 / get_task("sst2").num_labels
    assert float(final["accuracy"]) <= chance  # no better than guessing
    assert float(final["eval_loss"]) == float(f"{math.log(2):.8g}")  # uniform probabilities
    assert final["diverged"] == "1"
    assert float(final["train_seconds"]) > 0  # the steps it took are still billed

    # as Katib's collector and trial controller read it, with the Experiment's own metrics
    body = yaml.safe_load(MANIFEST.read_text())
    objective = body["spec"]["objective"]
    names = [objective["objectiveMetricName"], *objective["additionalMetricNames"], "diverged"]
    strategies = {s["name"]: s["value"] for s in objective["metricStrategies"]} | {"diverged": "max"}
    seen = observation(parse_metric_lines(run.out, names), strategies)
    assert float(seen["accuracy"]) <= chance and seen["diverged"] == "1"
    condition, observed, _ = trial_outcome(run.code, run.out, ExperimentDef.from_body(body, str(MANIFEST)))
    assert condition == "Succeeded" and float(observed["accuracy"]) <= chance

    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["status"] == "diverged" and "training diverged" in report["message"]
    assert report["final"]["diverged"] == 1


def test_epochs_before_the_divergence_stay_in_the_log(in_process, tmp_path) -> None:
    run = in_process(trial_args("cifar10", tmp_path, lr="90", epochs=3))
    assert run.code == 0, run.err
    epochs = [dict(re.findall(r"(\w+)=(\S+)", line)) for line in run.out.splitlines() if " epoch=" in line]
    assert 1 <= len(epochs) < 3  # finite epochs first, then the divergence
    final = _final(run.out)
    assert final["diverged"] == "1" and float(final["accuracy"]) == 0.1
    assert float(final["top5_accuracy"]) == 0.5
    points = parse_metric_lines(run.out, ["accuracy"])
    best = max(float(e["accuracy"]) for e in [*epochs, final])
    assert float(observation(points, {"accuracy": "max"})["accuracy"]) == best
    assert observation(points, {"accuracy": "latest"})["accuracy"] == final["accuracy"]


def test_fail_on_divergence_keeps_the_fail_fast_exit(in_process, tmp_path) -> None:
    run = in_process(trial_args("sst2", tmp_path, "--fail-on-divergence", lr="90", epochs=2))
    assert run.code == 3, run.err
    assert "diverged=1" not in run.out
