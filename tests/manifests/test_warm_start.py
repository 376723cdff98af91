"""Warm start on a cluster: the suggestion pods' own ServiceAccount (no RBAC by default), the optional
read-only Role and RoleBinding, and the MRPC surrogate-gp Experiment seeded from the SST-2 random baseline
(manifests/optional/warm-start/)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.manifests.conftest import _load

from .helpers import MANIFESTS, REPO, load_one

WARM_DIR = MANIFESTS / "optional" / "warm-start"
WARM_EXPERIMENT = WARM_DIR / "30-experiment-mrpc-surrogate-gp-warm-sst2.yaml"
RBAC = WARM_DIR / "10-rbac.yaml"
SERVICE_ACCOUNT = MANIFESTS / "05-suggestion-serviceaccount.yaml"
SMOKE_SERVICE_ACCOUNT = MANIFESTS / "optional" / "smoke-cpu" / "05-suggestion-serviceaccount.yaml"
OURS = ("surrogate-gp", "surrogate-rf")


@pytest.fixture(scope="module")
def sec() -> ModuleType:
    """manifests/security.py."""
    return _load("katib_manifests_security", MANIFESTS / "security.py")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _registration(doc: dict[str, Any]) -> bool:
    """One of the katib-config registration objects (10-katib-registration.yaml: its own account and
    Role, in Katib's namespace), which are not warm start's."""
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "katib-registration"


def _rbac() -> tuple[dict[str, Any], dict[str, Any]]:
    role, binding = _docs(RBAC)
    return role, binding


def _warm() -> dict[str, Any]:
    return copy.deepcopy(load_one(WARM_EXPERIMENT))


def _settings(exp: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["value"] for s in exp["spec"]["algorithm"]["algorithmSettings"]}


def _our_entries(katib_config: dict) -> list[dict[str, Any]]:
    return [s for s in katib_config["runtime"]["suggestions"] if s["algorithmName"] in OURS]


# --- generated, and outside what `kubectl apply -f manifests/` applies ---------------------------


def test_warm_start_files_are_generated_and_current(gen) -> None:
    files = gen.generate(gen.committed_options(MANIFESTS))
    for path in (WARM_EXPERIMENT, RBAC, SERVICE_ACCOUNT, SMOKE_SERVICE_ACCOUNT):
        rel = path.relative_to(MANIFESTS).as_posix()
        assert rel in files, f"{rel} is not produced by manifests/generate.py"
        assert path.read_text() == files[rel], f"{rel} differs from the generator output: run make manifests"
    assert sorted(p.name for p in WARM_DIR.iterdir()) == [RBAC.name, WARM_EXPERIMENT.name]


def test_kubectl_apply_of_the_folder_does_not_reach_warm_start() -> None:
    applied = [p for p in MANIFESTS.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml", ".json")]
    kinds = {d["kind"] for p in applied for d in _docs(p) if not _registration(d)}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    names = {d["metadata"]["name"] for p in applied for d in _docs(p)}
    assert "mrpc-surrogate-gp-warm-sst2" not in names


# --- ServiceAccount: named in katib-config, present wherever surrogate Experiments run -------------


def test_katib_config_names_the_shipped_service_account(katib_config) -> None:
    (account,) = _docs(SERVICE_ACCOUNT)
    assert account["kind"] == "ServiceAccount"
    assert account["metadata"]["namespace"] == "katib-surrogate"
    assert [e.get("serviceAccountName") for e in _our_entries(katib_config)] == [
        account["metadata"]["name"]
    ] * 2
    # built-in algorithms keep Katib's behaviour (namespace default account)
    builtins = [s for s in katib_config["runtime"]["suggestions"] if s["algorithmName"] not in OURS]
    assert builtins and not any("serviceAccountName" in s for s in builtins)


def test_every_namespace_with_surrogate_experiments_has_the_account(val, katib_config) -> None:
    docs = val.documents(val.default_paths())
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for _, d in docs
        if d["kind"] == "ServiceAccount" and not _registration(d)
    }
    namespaces = {
        d["metadata"]["namespace"]
        for _, d in docs
        if d["kind"] == "Experiment" and d["spec"]["algorithm"]["algorithmName"] in OURS
    }
    assert namespaces == {"katib-surrogate", "katib-surrogate-smoke"}
    name = val.service_accounts_named(katib_config)["surrogate-gp"]
    assert accounts == {(ns, name) for ns in namespaces}
    assert val.bundle_problems(docs, katib_config) == []
    # scripts/e2e.sh applies only optional/smoke-cpu/: its account must be in that folder
    (smoke,) = _docs(SMOKE_SERVICE_ACCOUNT)
    assert (smoke["metadata"]["namespace"], smoke["metadata"]["name"]) == ("katib-surrogate-smoke", name)


def test_the_account_has_no_rbac_in_the_default_install(val) -> None:
    docs = val.documents(p for p in val.default_paths() if p.parent == MANIFESTS)
    assert {d["kind"] for _, d in docs if not _registration(d)} == {
        "Namespace", "ServiceAccount", "PersistentVolumeClaim", "Job", "Experiment"}  # fmt: skip
    # the only RBAC of the default install is the registration's, bound to its own account only
    bound = {
        (s["namespace"], s["name"]) for _, d in docs if d["kind"] == "RoleBinding" for s in d["subjects"]
    }
    assert bound == {("katib-surrogate", "katib-surrogate-registrar")}
    (account,) = [d for _, d in docs if d["kind"] == "ServiceAccount" and not _registration(d)]
    assert set(account) == {"apiVersion", "kind", "metadata"}, "no secrets or pull secrets attached"


def test_bundle_check_reports_a_missing_account_and_dangling_bindings(val, katib_config) -> None:
    docs = [(w, d) for w, d in val.documents(val.default_paths()) if d["kind"] != "ServiceAccount"]
    problems = val.bundle_problems(docs, katib_config)
    assert any(
        "'surrogate-gp' runs its suggestion pod as ServiceAccount 'katib-surrogate-suggestion'" in p
        and "namespace 'katib-surrogate-smoke'" in p
        for p in problems
    ), problems
    assert any(
        "subject ServiceAccount katib-surrogate/katib-surrogate-suggestion is not" in p for p in problems
    )
    role, binding = _rbac()
    binding = copy.deepcopy(binding)
    binding["roleRef"]["name"] = "katib-surrogate-warm-starts"
    problems = val.bundle_problems([("rbac", role), ("rbac", binding)], katib_config)
    assert (
        "rbac: roleRef Role/katib-surrogate-warm-starts is not a Role of the bundle in namespace"
        in problems[0]
    )
    # without serviceAccountName in katib-config the namespace default account is used: nothing to check
    assert (
        val.service_accounts_named({"runtime": {"suggestions": [{"algorithmName": "x", "image": "i:1"}]}})
        == {}
    )


# --- Role and RoleBinding: valid, least privilege ----------------------------------------------------


def test_role_and_binding_pass_the_strict_kubernetes_schema(val) -> None:
    role, binding = _rbac()
    assert val.k8s_problems(role, "role") == []
    assert val.k8s_problems(binding, "binding") == []
    bad = copy.deepcopy(role)
    bad["rules"][0]["verb"] = ["get"]
    assert any("'verb' was unexpected" in p for p in val.k8s_problems(bad, "role"))


def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    grants = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, "no resourceNames/nonResourceURLs"
        grants |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return grants


def _requests_of_the_service() -> set[tuple[str, str, str]]:
    """(API group, resource, RBAC verb) of every request suggestion_service/kube_priors.py makes to warm
    start from one prior (a local API server answering an Experiment and two pages of Trials)."""
    import http.server
    import json
    import threading

    from suggestion_service.kube_priors import KubernetesPriorSource

    seen: list[tuple[str, str]] = []
    experiment = {"spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"}}}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.command, self.path))
            path = self.path.split("?", 1)[0]
            if path.endswith("/trials"):
                cont = "continue=" in self.path
                body: dict[str, Any] = {"items": [], "metadata": {} if cont else {"continue": "page2"}}
            else:
                body = experiment
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = KubernetesPriorSource(f"http://127.0.0.1:{server.server_address[1]}", token="t")
        source.fetch("katib-surrogate", "sst2-random")
    finally:
        server.shutdown()
        server.server_close()
    out = set()
    for method, url in seen:
        assert method == "GET", url
        parts = url.split("?", 1)[0].strip("/").split("/")
        # apis/<group>/<version>/namespaces/<ns>/<resource>[/<name>]
        assert parts[0] == "apis" and parts[3] == "namespaces" and parts[4] == "katib-surrogate", url
        out.add((parts[1], parts[5], "get" if len(parts) > 6 else "list"))
    return out


def test_role_grants_exactly_what_the_service_requests_in_its_namespace(sec) -> None:
    role, _ = _rbac()
    requested = _requests_of_the_service()
    assert requested == {("kubeflow.org", "experiments", "get"), ("kubeflow.org", "trials", "list")}
    assert _grants(role) == requested, "the Role must grant what warm start requests, and nothing more"
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "katib-surrogate"
    assert sec.rbac_problems(role, "role") == []


def test_binding_ties_that_role_to_the_suggestion_account_only(sec, katib_config) -> None:
    role, binding = _rbac()
    (account,) = _docs(SERVICE_ACCOUNT)
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "katib-surrogate"}
    ]
    assert {e["serviceAccountName"] for e in _our_entries(katib_config)} == {binding["subjects"][0]["name"]}
    assert sec.rbac_problems(binding, "binding") == []


def _rule(role: dict, **change: Any) -> dict:
    role = copy.deepcopy(role)
    role["rules"][1].update(change)
    return role


ROLE_CASES = {
    "watch": (lambda r: _rule(r, verbs=["list", "watch"]), "grants ['watch'] on kubeflow.org/trials"),
    "get trials": (lambda r: _rule(r, verbs=["get", "list"]), "grants ['get'] on kubeflow.org/trials"),
    "write": (lambda r: _rule(r, verbs=["list", "patch"]), "grants ['patch'] on kubeflow.org/trials"),
    "status": (lambda r: _rule(r, resources=["trials/status"]), "covers kubeflow.org/trials/status"),
    "pods": (lambda r: _rule(r, apiGroups=[""], resources=["pods"]), "covers core/pods"),
    "secrets": (lambda r: _rule(r, apiGroups=[""], resources=["secrets"]), "covers core/secrets"),
    "wildcard verb": (lambda r: _rule(r, verbs=["*"]), "uses a wildcard '*'"),
    "wildcard group": (lambda r: _rule(r, apiGroups=["*"]), "uses a wildcard '*'"),
    "wildcard resource": (lambda r: _rule(r, resources=["*"]), "uses a wildcard '*'"),
    "list experiments": (
        lambda r: {**r, "rules": [{**r["rules"][0], "verbs": ["get", "list"]}]},
        "grants ['list'] on kubeflow.org/experiments",
    ),
    "non-resource": (lambda r: _rule(r, nonResourceURLs=["/metrics"]), "nonResourceURLs"),
    "cluster-wide": (lambda r: {**r, "kind": "ClusterRole"}, "no cluster-wide permissions"),
    "no namespace": (
        lambda r: {**r, "metadata": {"name": r["metadata"]["name"]}},
        "has no metadata.namespace",
    ),
}


@pytest.mark.parametrize("case", ROLE_CASES, ids=list(ROLE_CASES))
def test_least_privilege_check_rejects_a_wider_role(sec, case: str) -> None:
    mutate, expected = ROLE_CASES[case]
    problems = sec.rbac_problems(mutate(_rbac()[0]), "role")
    assert any(expected in p for p in problems), f"{case}: {problems}"


BINDING_CASES = {
    "cluster role": (lambda b: b["roleRef"].update(kind="ClusterRole"), "bind a namespaced Role"),
    "user": (lambda b: b["subjects"].append({"kind": "User", "name": "alice"}), "only ServiceAccounts"),
    "group": (
        lambda b: b["subjects"].__setitem__(0, {"kind": "Group", "name": "system:serviceaccounts"}),
        "only ServiceAccounts",
    ),
    "other namespace": (
        lambda b: b["subjects"][0].update(namespace="default"),
        "is not in the binding's namespace 'katib-surrogate'",
    ),
}


@pytest.mark.parametrize("case", BINDING_CASES, ids=list(BINDING_CASES))
def test_least_privilege_check_rejects_a_wider_binding(sec, case: str) -> None:
    mutate, expected = BINDING_CASES[case]
    binding = copy.deepcopy(_rbac()[1])
    mutate(binding)
    problems = sec.rbac_problems(binding, "binding")
    assert any(expected in p for p in problems), f"{case}: {problems}"


def _bundle_without(val, drop: tuple[str, ...] = (), **mutate: Any) -> list[tuple[str, dict[str, Any]]]:
    """The shipped bundle with the kinds in ``drop`` removed and ``mutate[kind](doc)`` applied (the
    katib-config registration objects are left as they are: they are not warm start's)."""
    out = []
    for where, doc in val.documents(val.default_paths()):
        if val.is_registration(doc):
            out.append((where, doc))
            continue
        if doc["kind"] in drop:
            continue
        doc = copy.deepcopy(doc)
        if doc["kind"] in mutate:
            mutate[doc["kind"]](doc)
        out.append((where, doc))
    return out


NEEDS = "needs get on kubeflow.org/experiments and list on kubeflow.org/trials in 'katib-surrogate'"
RBAC_BREAKS = {
    "no RoleBinding": ({"drop": ("RoleBinding",)}, "RoleBindings in 'katib-surrogate' grant it nothing"),
    "no Role": ({"drop": ("Role",)}, "RoleBindings in 'katib-surrogate' grant it nothing"),
    "trials verb get": (
        {"Role": lambda r: r["rules"][1].update(verbs=["get"])},
        "is missing list on kubeflow.org/trials",
    ),
    "no trials rule": ({"Role": lambda r: r["rules"].pop(1)}, "is missing list on kubeflow.org/trials"),
    "experiments verb list": (
        {"Role": lambda r: r["rules"][0].update(verbs=["list"])},
        "is missing get on kubeflow.org/experiments",
    ),
    "other subject": (
        {"RoleBinding": lambda b: b["subjects"][0].update(name="default")},
        "RoleBindings in 'katib-surrogate' grant it nothing",
    ),
    "roleRef typo": (
        {"RoleBinding": lambda b: b["roleRef"].update(name="katib-surrogate-warmstart")},
        "RoleBindings in 'katib-surrogate' grant it nothing",
    ),
}


@pytest.mark.parametrize("case", RBAC_BREAKS, ids=list(RBAC_BREAKS))
def test_bundle_check_fails_when_warm_start_could_not_read_its_prior(val, katib_config, case: str) -> None:
    change, expected = RBAC_BREAKS[case]
    drop = change.get("drop", ())
    docs = _bundle_without(val, drop, **{k: v for k, v in change.items() if k != "drop"})
    problems = [p for p in val.bundle_problems(docs, katib_config) if "warm_start_experiments" in p]
    assert len(problems) == 1, f"{case}: {problems}"
    (problem,) = problems
    assert problem.startswith(str(WARM_EXPERIMENT)), problem
    assert (
        "reads katib-surrogate/sst2-random as ServiceAccount katib-surrogate/katib-surrogate-suggestion"
        in problem
    )
    assert expected in problem and NEEDS in problem, problem
    assert "manifests/optional/warm-start/10-rbac.yaml" in problem


def test_bundle_check_accepts_the_shipped_warm_start_rbac(val, katib_config) -> None:
    assert val.bundle_problems(val.documents(val.default_paths()), katib_config) == []
    # a Role split differently, or a wider one, still lets warm start read (least privilege is security.py's)
    merged = {"apiGroups": ["kubeflow.org"], "resources": ["experiments", "trials"], "verbs": ["get", "list"]}
    docs = _bundle_without(val, Role=lambda r: r.update(rules=[merged]))
    assert val.bundle_problems(docs, katib_config) == []


def test_bundle_messages_name_what_exists(val, katib_config) -> None:
    docs = _bundle_without(
        val,
        RoleBinding=lambda b: (b["roleRef"].update(name="x"), b["subjects"][0].update(name="y")),
    )
    problems = val.bundle_problems(docs, katib_config)
    assert any("roleRef Role/x" in p and "Roles there: ['katib-surrogate-warm-start']" in p for p in problems)
    assert any(
        "subject ServiceAccount katib-surrogate/y" in p
        and "ServiceAccounts there: ['katib-surrogate-registrar', 'katib-surrogate-suggestion']" in p
        for p in problems
    ), problems


# --- the warm-start Experiment --------------------------------------------------------------------


def test_warm_experiment_is_the_mrpc_surrogate_gp_one_plus_the_setting() -> None:
    warm, cold = _warm(), load_one(MANIFESTS / "30-experiment-mrpc-surrogate-gp.yaml")
    assert warm["metadata"]["name"] == "mrpc-surrogate-gp-warm-sst2"
    assert len(warm["metadata"]["name"]) <= 40
    assert warm["metadata"]["labels"] == {
        **cold["metadata"]["labels"],
        "katib-surrogate/variant": "warm-start",
    }
    assert _settings(warm) == {**_settings(cold), "warm_start_experiments": "katib-surrogate/sst2-random"}
    for doc in (warm, cold):
        doc["metadata"].pop("name")
        doc["metadata"]["labels"].pop("katib-surrogate/variant", None)
        doc["spec"]["algorithm"]["algorithmSettings"] = [
            s for s in doc["spec"]["algorithm"]["algorithmSettings"] if s["name"] != "warm_start_experiments"
        ]
    assert warm == cold, "same search space, objective, budget and trial template as mrpc-surrogate-gp"


def test_warm_experiment_passes_schema_webhook_and_workload_checks(val, katib_config) -> None:
    assert val.file_problems(WARM_EXPERIMENT, katib_config) == []
    exp = _warm()
    assert exp["spec"]["algorithm"]["algorithmName"] in OURS
    assert "warm_start_experiments" in _settings(exp)


def test_warm_experiment_names_a_main_experiment_with_the_same_objective(val) -> None:
    warm = _warm()
    (ref,) = val.warm_start_refs(warm)
    assert ref == ("katib-surrogate", "sst2-random")
    prior = load_one(MANIFESTS / f"30-experiment-{ref[1]}.yaml")  # applied by kubectl apply -f manifests/
    assert (prior["metadata"]["namespace"], prior["metadata"]["name"]) == ref
    assert prior["metadata"]["namespace"] == warm["metadata"]["namespace"]
    assert (
        prior["spec"]["objective"]["objectiveMetricName"] == warm["spec"]["objective"]["objectiveMetricName"]
    )
    assert prior["spec"]["objective"]["type"] == warm["spec"]["objective"]["type"]
    names = [p["name"] for p in warm["spec"]["parameters"]]
    assert [p["name"] for p in prior["spec"]["parameters"]] == names
    assert val.warm_start_problems(warm, val.shipped_experiments(), "warm") == []


def _with_prior(value: str) -> dict[str, Any]:
    exp = _warm()
    for s in exp["spec"]["algorithm"]["algorithmSettings"]:
        if s["name"] == "warm_start_experiments":
            s["value"] = value
    return exp


def test_prior_reference_check_rejects_what_would_fail_on_the_cluster(val) -> None:
    known = dict(val.shipped_experiments())

    def problems(exp: dict[str, Any], index: dict = known) -> list[str]:
        return val.warm_start_problems(exp, index, "warm")

    assert problems(_with_prior("sst2-random")) == []  # a bare name: the Experiment's own namespace
    assert "not an Experiment of the manifests" in problems(_with_prior("katib-surrogate/sst2-randm"))[0]
    assert "this Experiment itself" in problems(_with_prior("mrpc-surrogate-gp-warm-sst2"))[0]
    other_ns = problems(_with_prior("katib-surrogate-smoke/sst2-random"))
    assert "only grants reads in 'katib-surrogate'" in other_ns[0]

    # another objective (a minimised loss) or another search space
    index = copy.deepcopy(known)
    prior = index["katib-surrogate", "sst2-random"]
    prior["spec"]["objective"]["type"] = "minimize"
    assert any("objective type 'minimize'" in p for p in problems(_warm(), index))
    prior["spec"]["objective"]["objectiveMetricName"] = "eval_loss"
    assert any("objective objectiveMetricName 'eval_loss'" in p for p in problems(_warm(), index))
    index["katib-surrogate", "sst2-random"] = copy.deepcopy(known["katib-surrogate", "cifar10-grid"])
    index["katib-surrogate", "sst2-random"]["spec"]["parameters"] = [
        {**p, "name": p["name"] + "_x"}
        for p in known["katib-surrogate", "cifar10-grid"]["spec"]["parameters"]
    ]
    assert any("shares no parameter name" in p for p in problems(_warm(), index))


def test_webhook_check_rejects_warm_start_settings_the_service_would_reject(val, katib_config) -> None:
    assert val.webhook_problems(_warm(), katib_config, "w") == []
    grid = load_one(MANIFESTS / "30-experiment-mrpc-grid.yaml")
    grid["spec"]["algorithm"]["algorithmSettings"].append(
        {"name": "warm_start_experiments", "value": "katib-surrogate/sst2-random"}
    )
    assert any(
        "'warm_start_experiments' applies only to surrogate-gp, surrogate-rf, not 'grid'" in p
        for p in val.webhook_problems(grid, katib_config, "w")
    )
    for value in ("Katib-Surrogate/SST2", "a/b/c", ""):
        problems = val.webhook_problems(_with_prior(value), katib_config, "w")
        assert any(
            "the suggestion service rejects them: setting warm_start_experiments" in p for p in problems
        ), (
            value,
            problems,
        )


def test_validator_resolves_warm_start_references_of_given_files(val, tmp_path: Path, capsys) -> None:
    dump = _load("manifest_yaml", MANIFESTS / "manifest_yaml.py").dump  # yamllint-clean, as generated
    path = tmp_path / "warm.yaml"
    path.write_text(dump(_with_prior("katib-surrogate/sst2-rnd")))
    assert val.main([str(path)]) == 1
    assert "katib-surrogate/sst2-rnd is not an Experiment of the manifests" in capsys.readouterr().err
    prior = load_one(MANIFESTS / "30-experiment-sst2-random.yaml")
    prior["metadata"]["name"] = "sst2-rnd"
    (tmp_path / "prior.yaml").write_text(dump(prior))
    assert val.main([str(path), str(tmp_path / "prior.yaml")]) == 0


# --- the merge script carries the account into a live config ---------------------------------------


def test_merge_script_sets_the_account_and_says_where_it_must_exist() -> None:
    pinned = (MANIFESTS / "katib-v0.19.0" / "katib-config.yaml").read_text()
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "katib-config", "namespace": "kubeflow"},
            "data": {"katib-config.yaml": pinned}}  # fmt: skip
    config = yaml.safe_load(pinned)
    config["runtime"]["suggestions"].append(
        {"algorithmName": "surrogate-gp", "image": "old/suggestion:0.0.1", "serviceAccountName": "custom"}
    )
    for data in (pinned, yaml.safe_dump(config)):
        live["data"]["katib-config.yaml"] = data
        result = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "merge-katib-config.py")],
            input=yaml.safe_dump(live),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        merged = yaml.safe_load(yaml.safe_load(result.stdout)["data"]["katib-config.yaml"])
        ours = [s for s in merged["runtime"]["suggestions"] if s["algorithmName"] in OURS]
        assert [s["serviceAccountName"] for s in ours] == ["katib-surrogate-suggestion"] * 2
        assert (
            "surrogate-gp, surrogate-rf run as ServiceAccount 'katib-surrogate-suggestion': create it in every "
            "namespace" in result.stderr
        )
