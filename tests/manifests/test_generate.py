"""The committed manifests are exactly the generator's output, and the generator refuses bad input."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import ALGORITHMS, MANIFESTS, REPO, TASKS, load_one


def test_committed_files_equal_the_generator_output(gen) -> None:
    options = gen.committed_options(MANIFESTS)
    problems = gen.diff(MANIFESTS, gen.generate(options))
    assert not problems, "manifests are out of date, run `make manifests`:\n" + "\n".join(problems)


def test_check_mode_detects_a_hand_edit_and_a_stale_file(gen, tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    cmd = [sys.executable, str(MANIFESTS / "generate.py"), "--check", "--output-dir", str(copy)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0

    target = copy / "30-experiment-mrpc-random.yaml"
    target.write_text(target.read_text().replace("maxTrialCount: 12", "maxTrialCount: 13"))
    stale = copy / "30-experiment-mrpc-tpe.yaml"
    stale.write_text((copy / "30-experiment-mrpc-grid.yaml").read_text())
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 1
    assert "differs: 30-experiment-mrpc-random.yaml" in result.stderr
    assert "maxTrialCount: 13" in result.stderr
    assert "stale generated file (no longer produced): 30-experiment-mrpc-tpe.yaml" in result.stderr

    # regenerating repairs both
    subprocess.run([*cmd[:2], "--output-dir", str(copy)], check=True, capture_output=True)
    assert not stale.exists()
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0


def test_one_file_per_task_and_algorithm_in_apply_order() -> None:
    top = sorted(p.name for p in MANIFESTS.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    experiments = [f"30-experiment-{t}-{a}.yaml" for t in TASKS for a in ALGORITHMS]
    # kubectl apply -f manifests/ takes every .yaml/.yml/.json at the top level, in name order
    assert top == [
        "00-namespace.yaml",
        "05-suggestion-serviceaccount.yaml",
        "10-katib-registration.yaml",
        "20-cache.yaml",
        *sorted(experiments),
    ]
    kinds = [load_one(MANIFESTS / name)["kind"] for name in top[:2]]
    assert kinds == ["Namespace", "ServiceAccount"]
    registration = [d["kind"] for d in yaml.safe_load_all((MANIFESTS / top[2]).read_text()) if d]
    assert registration == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Job"]
    cache_kinds = [d["kind"] for d in yaml.safe_load_all((MANIFESTS / "20-cache.yaml").read_text()) if d]
    assert cache_kinds == ["PersistentVolumeClaim", "PersistentVolumeClaim", "Job"]


@pytest.mark.parametrize("task", TASKS)
def test_variants_of_a_task_differ_only_in_algorithm_and_budget(task: str) -> None:
    docs = {a: load_one(MANIFESTS / f"30-experiment-{task}-{a}.yaml") for a in ALGORITHMS}
    for algorithm, doc in docs.items():
        assert doc["metadata"]["name"] == f"{task}-{algorithm}"
        assert doc["metadata"]["namespace"] == "katib-surrogate"
        assert doc["metadata"]["labels"] == {
            "app.kubernetes.io/part-of": "katib-surrogate",
            "katib-surrogate/task": task,
            "katib-surrogate/algorithm": algorithm,
        }
        assert doc["spec"]["algorithm"]["algorithmName"] == algorithm

    def normalised(doc: dict) -> dict:
        doc = yaml.safe_load(yaml.safe_dump(doc))
        doc["metadata"]["name"] = "x"
        doc["metadata"]["labels"]["katib-surrogate/algorithm"] = "x"
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"]["labels"][
            "katib-surrogate/algorithm"
        ] = "x"
        for key in ("algorithm", "maxTrialCount"):
            doc["spec"].pop(key)
        return doc

    first = normalised(docs["grid"])
    for algorithm in ALGORITHMS[1:]:
        assert normalised(docs[algorithm]) == first, f"{task}-{algorithm} drifted from {task}-grid"


@pytest.mark.parametrize("task", TASKS)
def test_budgets_full_grid_and_half_for_the_others(task: str) -> None:
    budgets = {a: load_one(MANIFESTS / f"30-experiment-{task}-{a}.yaml")["spec"] for a in ALGORITHMS}
    assert budgets["grid"]["maxTrialCount"] == 24
    for algorithm in ("random", "surrogate-gp", "surrogate-rf"):
        assert budgets[algorithm]["maxTrialCount"] == 12
    for spec in budgets.values():
        assert spec["parallelTrialCount"] == 3
        assert spec["maxFailedTrialCount"] == 3
        assert spec["resumePolicy"] == "Never"


def test_other_registry_and_tag_reach_every_image(gen, tmp_path: Path) -> None:
    options = gen.Options(registry="registry.example.com:5000/team/ml", tag="1.2.3-rc1")
    files = gen.generate(options)
    gen.write(tmp_path, files)
    images: set[str] = set()
    for text in files.values():
        images.update(
            line.split("image:", 1)[1].strip()
            for line in text.splitlines()
            if line.strip().startswith("image:")
        )
    ours = {i for i in images if not i.startswith("ghcr.io/kubeflow/katib/")}
    assert ours == {
        "registry.example.com:5000/team/ml/suggestion:1.2.3-rc1",
        "registry.example.com:5000/team/ml/trainer:1.2.3-rc1",
    }
    assert not any("ghcr.io/katib-surrogate" in text for text in files.values())
    assert gen.committed_options(tmp_path) == options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tag": "latest"}, "never 'latest'"),
        ({"tag": ""}, "pinned tag"),
        ({"tag": "1.0 beta"}, "pinned tag"),
        ({"registry": "Registry.Example.com/x"}, "--registry"),
        ({"registry": "ghcr.io/x/"}, "--registry"),
        ({"access_mode": "ReadMany"}, "ReadWriteMany, ReadWriteOnce"),
        ({"storage_class": "Fast_SSD"}, "StorageClass"),
    ],
)
def test_bad_options_are_rejected_with_what_is_allowed(gen, kwargs: dict, message: str) -> None:
    with pytest.raises(gen.GenerateError) as info:
        gen.Options(**kwargs)
    assert message in str(info.value)


def test_command_line_rejects_latest_with_exit_code_2(tmp_path: Path) -> None:
    cmd = [sys.executable, str(MANIFESTS / "generate.py"), "--tag", "latest", "--output-dir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 2
    assert "never 'latest'" in result.stderr
    assert not list(tmp_path.iterdir())


def test_storage_class_and_access_mode_reach_both_claims(gen) -> None:
    files = gen.generate(gen.Options(storage_class="fast-rwx", access_mode="ReadWriteOnce"))
    claims = [d for d in yaml.safe_load_all(files["20-cache.yaml"]) if d["kind"] == "PersistentVolumeClaim"]
    assert [c["spec"]["storageClassName"] for c in claims] == ["fast-rwx", "fast-rwx"]
    assert [c["spec"]["accessModes"] for c in claims] == [["ReadWriteOnce"], ["ReadWriteOnce"]]
    default = [
        d for d in yaml.safe_load_all(gen.generate(gen.Options())["20-cache.yaml"]) if d["kind"] != "Job"
    ]
    assert all("storageClassName" not in c["spec"] for c in default)


def test_render_placeholders(gen) -> None:
    text = "a:\n  {{ block }}\nb: {{ x }}\n  {{ empty }}\nc: 1\n"
    assert gen.render(text, {"block": "k: 1\nl:\n  - 2", "x": "v", "empty": ""}, "t") == (
        "a:\n  k: 1\n  l:\n    - 2\nb: v\nc: 1\n"
    )
    with pytest.raises(gen.GenerateError, match=r"t:1: unknown placeholder \{\{ nope \}\}; known: x"):
        gen.render("a: {{ nope }}", {"x": "1"}, "t")
    with pytest.raises(gen.GenerateError, match="must stand alone on its line"):
        gen.render("a: {{ x }}", {"x": "1\n2"}, "t")


def test_katib_config_keeps_the_pinned_text_byte_for_byte(gen) -> None:
    pinned = (MANIFESTS / "katib-v0.19.0" / "katib-config.yaml").read_text()
    shipped = load_one(MANIFESTS / "optional" / "katib-config-standalone.yaml")["data"]["katib-config.yaml"]
    head, _, tail = pinned.partition("  earlyStoppings:\n")
    assert shipped.startswith(head), "the text before our entries must be the pinned file's"
    assert shipped.endswith("  earlyStoppings:\n" + tail)
    with pytest.raises(gen.GenerateError, match="no 'runtime:' / '  suggestions:' block"):
        gen.insert_suggestions("apiVersion: v1\n", "- algorithmName: x\n")


def test_pinned_files_match_their_recorded_sha256() -> None:
    pinned = MANIFESTS / "katib-v0.19.0"
    lines = (pinned / "SHA256SUMS").read_text().split("\n")
    sums = dict(reversed(line.split()) for line in lines if line.strip())
    assert set(sums) == {"katib-config.yaml", "swagger.json"}
    for name, digest in sums.items():
        assert hashlib.sha256((pinned / name).read_bytes()).hexdigest() == digest, f"{name} was modified"
    readme = (pinned / "README.md").read_text()
    assert all(digest in readme for digest in sums.values())


def test_make_manifests_passes_registry_and_tag() -> None:
    result = subprocess.run(
        ["make", "-n", "manifests", "REGISTRY=reg.example/x", "TAG=9.9.9", "STORAGE_CLASS=nfs"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "manifests/generate.py --registry 'reg.example/x' --tag '9.9.9' --access-mode 'ReadWriteMany'"
        in result.stdout
    )
    assert "--storage-class 'nfs'" in result.stdout


def test_ddp_variant_tunes_the_per_gpu_batch_and_leaves_time_to_checkpoint() -> None:
    """Under torchrun --batch-size is each process's batch: the DDP variant searches the single-GPU
    Experiment's batch sizes unchanged (each GPU sees what it sees there), says so, and torchrun's wait
    for its workers after SIGTERM fits inside the pods' grace period."""
    single = load_one(MANIFESTS / "30-experiment-cifar10-surrogate-gp.yaml")
    ddp = load_one(MANIFESTS / "optional" / "pytorchjob-cifar10-ddp.yaml")
    job = ddp["spec"]["trialTemplate"]["trialSpec"]["spec"]
    replicas = job["pytorchReplicaSpecs"]
    processes = int(job["nprocPerNode"]) * sum(r["replicas"] for r in replicas.values())

    def batch_sizes(exp: dict) -> list[int]:
        (param,) = [p for p in exp["spec"]["parameters"] if p["name"] == "batch_size"]
        return [int(v) for v in param["feasibleSpace"]["list"]]

    assert batch_sizes(ddp) == batch_sizes(single)
    (described,) = [
        p for p in ddp["spec"]["trialTemplate"]["trialParameters"] if p["reference"] == "batch_size"
    ]
    assert "per GPU process" in described["description"]
    assert f"global batch is {processes} times this" in described["description"]
    for name, replica in replicas.items():
        pod = replica["template"]["spec"]
        (container,) = [c for c in pod["containers"] if c["name"] == "pytorch"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert int(env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"]) + 20 <= pod["terminationGracePeriodSeconds"], name
        assert replica["restartPolicy"] == "OnFailure", name
