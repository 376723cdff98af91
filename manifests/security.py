"""Security view of the manifests: every pod that the bundle makes Kubernetes (or Katib) run.

Katib creates some pods from data that scanners cannot see as workloads: each Experiment's
``trialTemplate.trialSpec`` (a Job or PyTorchJob inside a custom resource) and the suggestion
Deployment that Katib composes from a ``katib-config`` entry (a container spec inside a ConfigMap
string). :func:`materialise` writes each of them as a plain Kubernetes object, next to the built-in
objects we ship, so that an off-the-shelf scanner (checkov, see tests/manifests/test_security.py) and
:func:`pod_problems` check them all.

    python manifests/security.py OUT_DIR      # write the materialised objects to OUT_DIR
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import manifest_yaml  # noqa: E402
import validate  # noqa: E402

OUR_ALGORITHMS = ("surrogate-gp", "surrogate-rf")
_BUILTIN_WORKLOADS = {"Job", "Pod", "Deployment", "StatefulSet", "DaemonSet", "CronJob", "ReplicaSet"}
_SECRET_HINT = re.compile(
    r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)($|_)", re.IGNORECASE
)


def _pod(name: str, namespace: str, spec: Mapping[str, Any], source: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"katib-surrogate/source": source}},
        "spec": copy.deepcopy(dict(spec)),
    }


def suggestion_deployment(
    entry: Mapping[str, Any], namespace: str = "katib-surrogate", source: str = validate.REGISTRATION_FILE
) -> dict[str, Any]:
    """The Deployment Katib's composer builds for a katib-config suggestion entry (the fields it copies:
    image, pull policy, command, args, env, ports, resources, container securityContext; Katib sets no
    pod-level securityContext and adds port 6789 and the gRPC probes itself)."""
    container = {"name": "suggestion"}
    for key in (
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "ports",
        "resources",
        "securityContext",
    ):
        if key in entry:
            container[key] = copy.deepcopy(entry[key])
    container.setdefault("ports", []).insert(0, {"name": "suggestion-api", "containerPort": 6789})
    probe = {"grpc": {"port": 6789, "service": "manager.v1beta1.Suggestion"}, "periodSeconds": 10}
    container["readinessProbe"] = probe
    container["livenessProbe"] = probe
    # Katib labels the pod with the Experiment's labels (ours carry these two) plus its own.
    labels = {
        "app.kubernetes.io/part-of": "katib-surrogate",
        "katib-surrogate/algorithm": entry["algorithmName"],
        "katib.kubeflow.org/suggestion": f"experiment-{entry['algorithmName']}",
    }
    pod_spec: dict[str, Any] = {"containers": [container]}
    if "serviceAccountName" in entry:
        pod_spec["serviceAccountName"] = entry["serviceAccountName"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"suggestion-{entry['algorithmName']}",
            "namespace": namespace,
            "annotations": {"katib-surrogate/source": source},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def workloads(root: Path = validate.MANIFESTS_DIR) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source file, object) for every shipped object, with the embedded pods made explicit."""
    for path in validate.default_paths(root):
        rel = str(path.relative_to(root))
        for doc in manifest_yaml.load_all(path):
            kind = doc.get("kind")
            if kind == "Experiment":
                meta = doc.get("metadata") or {}
                name, ns = meta.get("name", "experiment"), meta.get("namespace", "default")
                assignment = next(validate.sample_assignments(doc))
                trial = validate.substitute(doc, assignment, f"{name}-trial")
                if trial.get("kind") in _BUILTIN_WORKLOADS:
                    trial["metadata"].setdefault("annotations", {})["katib-surrogate/source"] = rel
                    yield rel, trial
                else:
                    for i, (where, spec) in enumerate(validate.pod_specs(trial)):
                        yield rel, _pod(f"{name}-trial-{i}", ns, spec, f"{rel} {where}")
            elif kind == "ConfigMap" and (doc.get("metadata") or {}).get("name") == "katib-config":
                yield rel, doc
                for entry in validate.katib_config_of(doc)["runtime"]["suggestions"]:
                    if entry.get("algorithmName") in OUR_ALGORITHMS:
                        yield rel, suggestion_deployment(entry, source=rel)
            elif kind == "ConfigMap" and validate.is_registration(doc):
                yield rel, doc
                for entry in yaml.safe_load(doc["data"][validate.ENTRIES_KEY]):
                    yield rel, suggestion_deployment(entry, source=rel)
            else:
                yield rel, doc
                if kind not in _BUILTIN_WORKLOADS:  # e.g. a PyTorchJob: its pod templates as Pods
                    meta = doc.get("metadata") or {}
                    for i, (where, spec) in enumerate(validate.pod_specs(doc)):
                        name, ns = f"{meta.get('name', 'x')}-{i}", meta.get("namespace", "default")
                        yield rel, _pod(name, ns, spec, f"{rel} {where}")


def pod_spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a built-in workload object (None for other kinds)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind in _BUILTIN_WORKLOADS:
        return spec["template"]["spec"]
    return None


def pod_problems(obj: Mapping[str, Any], where: str) -> list[str]:
    """Our own baseline for every pod (scanner-independent): see docs/reliability.md, "Security"."""
    spec = pod_spec_of(obj)
    if spec is None:
        return []
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        out.append(f"{where}: host namespaces are shared")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            out.append(f"{where}: hostPath volume {volume.get('name')!r}")
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        c = f"{where} container {container.get('name')!r}"
        sc = container.get("securityContext") or {}

        def setting(key: str, c_sc: Mapping[str, Any] = sc) -> Any:
            return c_sc.get(key, pod_sc.get(key))

        if setting("runAsNonRoot") is not True:
            out.append(f"{c}: runAsNonRoot is not true")
        uid = setting("runAsUser")
        if uid is None or uid == 0:
            out.append(f"{c}: runAsUser is {uid!r}; set a non-zero UID")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{c}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            out.append(f"{c}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            out.append(f"{c}: capabilities.drop does not include ALL")
        if (sc.get("capabilities") or {}).get("add"):
            out.append(f"{c}: adds capabilities {sc['capabilities']['add']}")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{c}: readOnlyRootFilesystem is not true")
        if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(f"{c}: seccompProfile is not RuntimeDefault")
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(part) or {}):
                    out.append(f"{c}: resources.{part}.{resource} is not set")
        image = str(container.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if not tag or tag == "latest":
            out.append(f"{c}: image {image!r} is not pinned to a version tag or digest")
        for env in container.get("env") or []:
            if "value" in env and _SECRET_HINT.search(env.get("name", "")):
                out.append(f"{c}: env {env['name']} looks like a secret given in plain text")
    return out


#: Everything a Role of the bundle may grant: (API group, resource) -> verbs. This is exactly what warm
#: start requests (suggestion_service/kube_priors.py; manifests/optional/warm-start): GET each prior
#: Experiment, LIST its Trials by label (it never GETs a single Trial); and what the registration Job
#: does (suggestion_service/katib_registration.py; 10-katib-registration.yaml): GET and UPDATE (PUT)
#: Katib's ConfigMap.
ALLOWED_RULES: dict[tuple[str, str], frozenset[str]] = {
    ("kubeflow.org", "experiments"): frozenset({"get"}),
    ("kubeflow.org", "trials"): frozenset({"list"}),
    ("", "configmaps"): frozenset({"get", "update"}),
}
#: Resources a rule may only cover through these ``resourceNames`` (never every object of the kind).
NAMED_ONLY: dict[tuple[str, str], frozenset[str]] = {("", "configmaps"): frozenset({"katib-config"})}
#: The one RoleBinding whose subject lives in another namespace: (binding namespace, name) -> subject
#: (namespace, name). The registration Job runs in our namespace; the ConfigMap it edits is Katib's.
CROSS_NAMESPACE_SUBJECTS: dict[tuple[str, str], tuple[str, str]] = {
    ("kubeflow", "katib-surrogate-registrar"): ("katib-surrogate", "katib-surrogate-registrar"),
}


def rbac_problems(obj: Mapping[str, Any], where: str) -> list[str]:
    """Least privilege: no Secrets, nothing cluster-wide, Roles within ``ALLOWED_RULES`` (no wildcards,
    no non-resource URLs, namespaced; ConfigMaps only by the names in ``NAMED_ONLY``), RoleBindings that
    bind a Role to ServiceAccounts of their namespace (or the one pair in ``CROSS_NAMESPACE_SUBJECTS``)."""
    kind = obj.get("kind")
    namespace = (obj.get("metadata") or {}).get("namespace")
    if kind == "Secret":
        return [f"{where}: ships a Secret; credentials must not be in the manifests"]
    if kind in ("ClusterRole", "ClusterRoleBinding"):
        return [f"{where}: {kind}: the bundle needs no cluster-wide permissions"]
    out: list[str] = []
    if kind in ("Role", "RoleBinding") and not namespace:
        out.append(
            f"{where}: {kind} has no metadata.namespace; it would land in whatever namespace is current"
        )
    if kind == "Role":
        allowed = ", ".join(f"{r} ({'/'.join(sorted(v))})" for (_, r), v in ALLOWED_RULES.items())
        for i, rule in enumerate(obj.get("rules") or []):
            at = f"{where}: Role rules[{i}]"
            groups, resources, verbs = (list(rule.get(k) or []) for k in ("apiGroups", "resources", "verbs"))
            if rule.get("nonResourceURLs"):
                out.append(f"{at}: grants nonResourceURLs {rule['nonResourceURLs']}; none are needed")
            if "*" in groups + resources + verbs:
                out.append(
                    f"{at}: uses a wildcard '*' (apiGroups {groups}, resources {resources}, verbs {verbs})"
                )
                continue
            for group in groups:
                for resource in resources:
                    permitted = ALLOWED_RULES.get((group, resource))
                    if permitted is None:
                        out.append(f"{at}: covers {group or 'core'}/{resource}; only kubeflow.org {allowed}")
                    elif set(verbs) - permitted:
                        out.append(
                            f"{at}: grants {sorted(set(verbs) - permitted)} on {group}/{resource}; "
                            f"at most {sorted(permitted)}"
                        )
                    named = NAMED_ONLY.get((group, resource))
                    names = set(rule.get("resourceNames") or [])
                    if named is not None and (not names or names - named):
                        out.append(
                            f"{at}: covers {group or 'core'}/{resource} {sorted(names) or 'of every name'}; "
                            f"only resourceNames {sorted(named)}"
                        )
    if kind == "RoleBinding":
        ref = obj.get("roleRef") or {}
        if ref.get("kind") != "Role":
            out.append(f"{where}: roleRef is a {ref.get('kind')}; bind a namespaced Role")
        for subject in obj.get("subjects") or []:
            if subject.get("kind") != "ServiceAccount":
                out.append(
                    f"{where}: subject {subject.get('kind')} {subject.get('name')}; only ServiceAccounts"
                )
            elif subject.get("namespace") != namespace and CROSS_NAMESPACE_SUBJECTS.get(
                (str(namespace), str((obj.get("metadata") or {}).get("name")))
            ) != (subject.get("namespace"), subject.get("name")):
                out.append(
                    f"{where}: subject ServiceAccount {subject.get('namespace')}/{subject.get('name')} is not "
                    f"in the binding's namespace {namespace!r}"
                )
    return out


def materialise(out_dir: Path, root: Path = validate.MANIFESTS_DIR) -> list[Path]:
    """Write every object of :func:`workloads` as one YAML file under ``out_dir``; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (_source, obj) in enumerate(workloads(root)):
        meta = obj.get("metadata") or {}
        path = out_dir / f"{i:03d}-{obj.get('kind', 'x').lower()}-{meta.get('name', 'x')}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        files.append(path)
    return files


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python manifests/security.py OUT_DIR")
    for p in materialise(Path(sys.argv[1])):
        print(p)
