"""Trial-template substitution against Katib v0.19's rules (generator.go applyParameters, isMetaKey).

The expected values are read off Katib's Go source (see katib_model/template.py's docstring), not off
this implementation.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from katib_model.errors import ManifestError
from katib_model.template import TrialTemplate, is_meta_reference

TRIAL_SPEC: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"labels": {"team": "ml"}, "annotations": {"owner": "ana"}},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "training",
                        "image": "t:1",
                        "command": ["train", "--lr", "${trialParameters.lr}"],
                    }
                ]
            }
        }
    },
}


def template(extra: dict[str, str], *, command: list[str] | None = None) -> TrialTemplate:
    spec = copy.deepcopy(TRIAL_SPEC)
    names = ["lr", *extra]
    spec["spec"]["template"]["spec"]["containers"][0]["command"] = command or [
        "train",
        *[f"--{n}=${{trialParameters.{n}}}" for n in names],
    ]
    params = [{"name": "lr", "reference": "learning_rate"}] + [
        {"name": n, "reference": r} for n, r in extra.items()
    ]
    return TrialTemplate({"primaryContainerName": "training", "trialParameters": params, "trialSpec": spec})


def command(workload: dict[str, Any]) -> list[str]:
    return workload["spec"]["template"]["spec"]["containers"][0]["command"]


@pytest.mark.parametrize(
    ("reference", "value"),
    [
        ("${trialSpec.Name}", "exp-abc12345"),
        ("${trialSpec.Namespace}", "team-a"),
        ("${trialSpec.Kind}", "Job"),
        ("${trialSpec.APIVersion}", "batch/v1"),
        ("${trialSpec.Labels[team]}", "ml"),
        ("${trialSpec.Annotations[owner]}", "ana"),
        ("${trialSpec.Name[ignored]}", "exp-abc12345"),  # an index on Name is parsed and ignored
        ("ckpt/${trialSpec.Name}/x", "exp-abc12345"),  # the reference regex is not anchored
    ],
)
def test_every_trialspec_form_katib_substitutes(reference: str, value: str) -> None:
    assert is_meta_reference(reference)
    workload = template({"meta": reference}).substitute({"learning_rate": "0.01"}, "exp-abc12345", "team-a")
    assert command(workload) == ["train", "--lr=0.01", f"--meta={value}"]
    assert workload["metadata"]["name"] == "exp-abc12345" and workload["metadata"]["namespace"] == "team-a"
    assert workload["metadata"]["labels"] == {"team": "ml"}  # the template's own metadata is kept


def test_a_placeholder_is_replaced_everywhere_as_plain_text() -> None:
    t = template(
        {}, command=["sh", "-c", "train --lr ${trialParameters.lr} > /out/${trialParameters.lr}.log"]
    )
    assert command(t.substitute({"learning_rate": "3e-5"}, "t", "ns"))[2] == "train --lr 3e-5 > /out/3e-5.log"


@pytest.mark.parametrize(
    ("reference", "webhook_meta"),
    [
        ("${trialSpec.Labels}", True),  # accepted by the webhook, fails at trial creation
        ("${trialSpec.Uid}", False),
        ("${trialSpec.Uid[x]}", False),
        ("learning_rate", False),
        ("${trialSpec.Kind}", True),
    ],
)
def test_webhook_meta_keys(reference: str, webhook_meta: bool) -> None:
    assert is_meta_reference(reference) is webhook_meta


@pytest.mark.parametrize(
    ("extra", "assignment", "fragment"),
    [
        ({"meta": "${trialSpec.Labels[nope]}"}, {"learning_rate": "1"}, "has no key 'nope'"),
        ({"meta": "${trialSpec.Labels}"}, {"learning_rate": "1"}, "has no key ''"),
        ({"meta": "${trialSpec.Uid}"}, {"learning_rate": "1"}, "not a supported"),
        ({"units": "units"}, {"learning_rate": "1"}, "references 'units'"),
        ({}, {"learning_rate": "1", "units": "16"}, r"\['units'\] are referenced by no trial parameter"),
        ({}, {"learning_rate": 'a"b'}, "unescaped"),
    ],
)
def test_what_katib_cannot_create_is_an_error(extra: dict, assignment: dict, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        template(extra).substitute(assignment, "t", "ns")


def test_an_undeclared_placeholder_is_an_error() -> None:
    t = template({}, command=["train", "${trialParameters.lr}", "${trialParameters.seed}"])
    with pytest.raises(ManifestError, match=r"\$\{trialParameters.seed\} is used but not declared"):
        t.substitute({"learning_rate": "1"}, "t", "ns")


def test_primary_container_and_config_map_templates() -> None:
    t = template({})
    assert t.primary_container()["image"] == "t:1" and t.kind == "Job"
    assert TrialTemplate({"primaryContainerName": "x", "trialSpec": TRIAL_SPEC}).trial_parameters == {}
    with pytest.raises(ManifestError, match="no container named 'x'"):
        TrialTemplate({"primaryContainerName": "x", "trialSpec": TRIAL_SPEC}).primary_container()
    cm = TrialTemplate({"configMap": {"configMapName": "c"}, "trialParameters": []})
    with pytest.raises(ManifestError, match="inline"):
        cm.substitute({}, "t", "ns")
