"""Security of the shipped manifests: our own baseline for every pod, and checkov (a maintained scanner).

Pods that Katib creates from custom resources (trial Jobs inside Experiments, the suggestion Deployment
composed from katib-config) are made explicit by ``manifests/security.py`` first, so both checks see
every pod the bundle runs. checkov is pinned in a separate tool venv (``make security-tools``,
mk/reliability.mk), kept out of .venv because of its size and dependency pins.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.manifests.conftest import MANIFESTS, REPO, _load

CHECKOV = REPO / ".tools" / "security" / "bin" / "checkov"
CHECKOV_VERSION = "3.3.30"

#: checkov checks we do not follow, and why (each is a deliberate choice, not an oversight).
ACCEPTED = {
    "CKV_K8S_43": "Image digests: images are pinned to release tags (REGISTRY/TAG of `make images`, checked "
    "below: never `latest`); the digest exists only after a push, so a digest pin would make the generated "
    "manifests depend on one registry.",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent, not Always: tags are immutable releases, and GPU nodes "
    "should not depend on the registry for every trial pod.",
    "CKV_K8S_40": "UID >= 10000: the trainer image's user is UID 1000 (trainer_image/Dockerfile), which owns "
    "the cache and checkpoint volumes (fsGroup 1000); the suggestion service already runs as 65532.",
    "CKV_K8S_8": "Liveness probes on batch pods (PyTorchJob replicas of the optional DDP experiment): a "
    "training process that hangs is stopped by the Job's activeDeadlineSeconds, not by a probe.",
    "CKV_K8S_9": "Readiness probes on batch pods: nothing connects to a trial pod.",
    "CKV_K8S_29": "Pod-level securityContext on the suggestion Deployment: Katib composes that pod and "
    "copies only the container securityContext from katib-config, which sets every field (non-root UID, "
    "no escalation, capabilities dropped, read-only root, seccomp RuntimeDefault).",
    "CKV_K8S_38": "Service account token on the suggestion Deployment: katib-config cannot set "
    "automountServiceAccountToken, and warm start (optional/warm-start) reads Trials with that token. The "
    "pods run as their own ServiceAccount, bound to no Role by default and to a read-only Role (get "
    "experiments, list trials, one namespace) with warm start; test_warm_start.py checks both.",
}


@pytest.fixture(scope="module")
def sec() -> ModuleType:
    return _load("katib_manifests_security", MANIFESTS / "security.py")


@pytest.fixture(scope="module")
def objects(sec: ModuleType) -> list[tuple[str, dict]]:
    return list(sec.workloads())


def test_every_pod_the_bundle_runs_meets_the_baseline(sec: ModuleType, objects) -> None:
    problems = []
    pods = 0
    for source, obj in objects:
        where = f"{source} {obj['kind']}/{obj['metadata'].get('name')}"
        problems += sec.pod_problems(obj, where) + sec.rbac_problems(obj, where)
        pods += sec.pod_spec_of(obj) is not None
    assert problems == []
    # 12 experiments + 4 smoke + 1 warm-start experiment + 2 DDP replicas + warm-cache Job
    # + 2 suggestion Deployments (registered entries) + 2 more (optional standalone katib-config)
    # + the katib-config registration Job
    assert pods == 25


def test_no_secrets_nothing_cluster_wide_and_rbac_only_for_warm_start(objects) -> None:
    by_kind: dict[str, set[str]] = {}
    for source, obj in objects:
        by_kind.setdefault(obj["kind"], set()).add(source)
    assert not by_kind.keys() & {"Secret", "ClusterRole", "ClusterRoleBinding"}
    # The default install (kubectl apply -f manifests/) grants only the registration Job its get/update
    # of katib-config; the suggestion pods get rights only from the optional warm start.
    assert (
        by_kind["Role"]
        == by_kind["RoleBinding"]
        == {
            "10-katib-registration.yaml",
            "optional/warm-start/10-rbac.yaml",
        }
    )
    assert by_kind["ServiceAccount"] == {
        "05-suggestion-serviceaccount.yaml",
        "10-katib-registration.yaml",
        "optional/smoke-cpu/05-suggestion-serviceaccount.yaml",
    }


def test_suggestion_deployment_is_what_katib_composes(sec: ModuleType, objects) -> None:
    deployments = [obj for _s, obj in objects if obj["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "suggestion-surrogate-gp",
        "suggestion-surrogate-rf",
    }
    container = deployments[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["runAsUser"] == 65532
    assert container["resources"]["limits"]["memory"] == "1Gi"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c, p: c["securityContext"].pop("runAsNonRoot"), "runAsNonRoot"),
        (lambda c, p: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
        (lambda c, p: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "capabilities.drop"),
        (lambda c, p: c["securityContext"].pop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
        (lambda c, p: c["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (lambda c, p: c["resources"]["limits"].pop("memory"), "limits.memory"),
        (lambda c, p: c.update(image="ghcr.io/katib-surrogate/suggestion:latest"), "not pinned"),
        (lambda c, p: c.update(image="ghcr.io/katib-surrogate/suggestion"), "not pinned"),
        (lambda c, p: c["env"].append({"name": "HF_TOKEN", "value": "hf_abc"}), "secret"),
        (lambda c, p: p.update(hostNetwork=True), "host namespaces"),
    ],
)
def test_the_baseline_catches_a_weakened_pod(sec: ModuleType, objects, mutate, needle: str) -> None:
    deployment = copy.deepcopy(next(obj for _s, obj in objects if obj["kind"] == "Deployment"))
    pod = deployment["spec"]["template"]["spec"]
    mutate(pod["containers"][0], pod)
    assert any(needle in p for p in sec.pod_problems(deployment, "test")), sec.pod_problems(
        deployment, "test"
    )


def test_rbac_baseline_allows_only_reading_experiments_and_trials(sec: ModuleType) -> None:
    meta = {"name": "r", "namespace": "ns"}
    read = {
        "kind": "Role",
        "metadata": meta,
        "rules": [
            {"apiGroups": ["kubeflow.org"], "resources": ["trials"], "verbs": ["list"]},
            {"apiGroups": ["kubeflow.org"], "resources": ["experiments"], "verbs": ["get"]},
        ],
    }
    assert sec.rbac_problems(read, "r") == []
    write = {
        "kind": "Role",
        "metadata": meta,
        "rules": [
            {"apiGroups": ["kubeflow.org"], "resources": ["trials", "pods"], "verbs": ["get", "create"]}
        ],
    }
    assert len(sec.rbac_problems(write, "r")) == 2
    assert sec.rbac_problems({"kind": "ClusterRole"}, "r") and sec.rbac_problems({"kind": "Secret"}, "r")


@pytest.mark.slow
def test_checkov_finds_nothing_beyond_the_accepted_exceptions(sec: ModuleType, tmp_path: Path) -> None:
    if not CHECKOV.exists():
        message = f"checkov is not installed at {CHECKOV}: run `make security-tools`"
        if os.environ.get("REQUIRE_SECURITY_SCAN") == "1":
            pytest.fail(message)
        pytest.skip(message)
    version = subprocess.run([str(CHECKOV), "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == CHECKOV_VERSION
    sec.materialise(tmp_path / "objects")
    # A canary the scan must flag: a Role with wildcards, like one a user might widen ours into.
    canary = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "canary-wildcard", "namespace": "katib-surrogate"},
        "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["*"], "verbs": ["*"]}],
    }
    (tmp_path / "objects" / "999-role-canary.yaml").write_text(json.dumps(canary))
    proc = subprocess.run(
        [str(CHECKOV), "--directory", str(tmp_path / "objects"), "--framework", "kubernetes", "--skip-download",
         "--output", "json", "--skip-check", ",".join(sorted(ACCEPTED))],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )  # fmt: skip
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in report["results"]["failed_checks"]
    ]
    assert failed == [
        "CKV_K8S_49 Minimize wildcard use in Roles and ClusterRoles: Role.katib-surrogate.canary-wildcard"
    ]
    assert report["summary"]["passed"] > 1000  # it really scanned every object
    scanned = {c["resource"].split(".")[0] for c in report["results"]["passed_checks"]}
    assert {"Deployment", "Job", "Pod", "ConfigMap", "Role", "RoleBinding", "ServiceAccount"} <= scanned


def _registration_rbac() -> dict[str, dict]:
    docs = yaml.safe_load_all((MANIFESTS / "10-katib-registration.yaml").read_text())
    return {d["kind"]: d for d in docs if d and d["kind"] in ("Role", "RoleBinding")}


def test_the_registration_may_only_get_and_update_katib_config(sec: ModuleType) -> None:
    rbac = _registration_rbac()
    assert sec.rbac_problems(rbac["Role"], "r") == sec.rbac_problems(rbac["RoleBinding"], "b") == []
    (rule,) = rbac["Role"]["rules"]
    assert (rule["resources"], rule["resourceNames"], rule["verbs"]) == (
        ["configmaps"], ["katib-config"], ["get", "update"])  # fmt: skip
    every = copy.deepcopy(rbac["Role"])
    del every["rules"][0]["resourceNames"]
    assert any(
        "of every name; only resourceNames ['katib-config']" in p for p in sec.rbac_problems(every, "r")
    )
    other = copy.deepcopy(rbac["Role"])
    other["rules"][0]["resourceNames"] = ["katib-config", "kube-root-ca.crt"]
    assert any("only resourceNames ['katib-config']" in p for p in sec.rbac_problems(other, "r"))
    delete = copy.deepcopy(rbac["Role"])
    delete["rules"][0]["verbs"].append("delete")
    assert any("grants ['delete'] on /configmaps" in p for p in sec.rbac_problems(delete, "r"))
    # the cross-namespace binding is allowed for that one account only
    stranger = copy.deepcopy(rbac["RoleBinding"])
    stranger["subjects"][0]["name"] = "katib-surrogate-suggestion"
    assert any("is not in the binding's namespace 'kubeflow'" in p for p in sec.rbac_problems(stranger, "b"))
