"""The loopback hub against plain HTTP (fast) and against the real pinned clients (slow, subprocesses).

The clients run in subprocesses: ``huggingface_hub`` reads ``HF_ENDPOINT``/``HF_HUB_OFFLINE`` once, at
import, and this suite's conftest has already imported it offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from client.rehearsal.hub import LoopbackHub
from client.rehearsal.pod_env import container_env, dockerfile_env, job_container

REPO = Path(__file__).resolve().parents[3]


def _get(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> Any:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        return opener.open(request, timeout=30)
    except urllib.error.HTTPError as err:
        if err.code == 302:
            return err  # the redirect itself: status and headers are what the test looks at
        raise


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


@pytest.fixture
def small_root(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    repo = root / "models" / "org" / "tiny"
    (repo / "sub" / "deep").mkdir(parents=True)
    (repo / "config.json").write_text('{"a": 1}\n')
    (repo / "sub" / "notes.txt").write_text("hello\n")
    (repo / "sub" / "deep" / "w.safetensors").write_bytes(bytes(range(256)) * 40)
    (repo / ".cache").mkdir()
    (repo / ".cache" / "junk").write_text("not part of the repo")
    (root / "files" / "models").mkdir(parents=True)
    (root / "files" / "models" / "weights.pth").write_bytes(b"0123456789")
    return root


@pytest.fixture
def small_hub(small_root: Path) -> Any:
    with LoopbackHub(small_root, tree_page_size=2) as hub:
        yield hub


def _git_blob_id(path: Path) -> str:
    return subprocess.run(
        ["git", "hash-object", "--no-filters", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_tree_listing_is_paginated_and_uses_git_ids(small_hub: LoopbackHub, small_root: Path) -> None:
    url = f"{small_hub.url}/api/models/org/tiny/tree/main?recursive=true"
    entries = []
    while url:
        response = _get(url)
        entries += json.load(response)
        link = response.headers.get("Link")
        url = link.split(";")[0].strip("<>") if link else ""
    assert [e["path"] for e in entries] == [
        "config.json",
        "sub",
        "sub/deep",
        "sub/deep/w.safetensors",
        "sub/notes.txt",
    ]
    by_path = {e["path"]: e for e in entries}
    repo = small_root / "models" / "org" / "tiny"
    assert by_path["config.json"]["oid"] == _git_blob_id(repo / "config.json")
    lfs = by_path["sub/deep/w.safetensors"]["lfs"]
    import hashlib

    assert lfs["oid"] == hashlib.sha256((repo / "sub/deep/w.safetensors").read_bytes()).hexdigest()
    assert lfs["size"] == 10240
    top = json.load(_get(f"{small_hub.url}/api/models/org/tiny/tree/main/sub"))
    assert [(e["type"], e["path"]) for e in top] == [("directory", "sub/deep"), ("file", "sub/notes.txt")]


def test_missing_repo_revision_and_entry_carry_hub_error_codes(small_hub: LoopbackHub) -> None:
    cases = {
        f"{small_hub.url}/api/models/org/absent/revision/main": "RepoNotFound",
        f"{small_hub.url}/api/models/org/tiny/revision/v2": "RevisionNotFound",
        f"{small_hub.url}/api/models/org/tiny/tree/main/nowhere": "EntryNotFound",
        f"{small_hub.url}/org/tiny/resolve/main/absent.json": "EntryNotFound",
        f"{small_hub.url}/api/models/../../etc/revision/main": "RepoNotFound",
    }
    for url, code in cases.items():
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(url)
        assert (err.value.code, err.value.headers["X-Error-Code"]) == (404, code), url


def test_resolve_headers_redirects_lfs_to_another_origin(small_hub: LoopbackHub, small_root: Path) -> None:
    info = json.load(_get(f"{small_hub.url}/api/models/org/tiny/revision/main"))
    assert sorted(s["rfilename"] for s in info["siblings"]) == [
        "config.json",
        "sub/deep/w.safetensors",
        "sub/notes.txt",
    ]
    plain = _get(f"{small_hub.url}/org/tiny/resolve/main/config.json", method="HEAD")
    assert plain.headers["X-Repo-Commit"] == info["sha"]
    assert plain.headers["Content-Length"] == "9"
    assert plain.headers["ETag"].strip('"') == _git_blob_id(small_root / "models/org/tiny/config.json")
    lfs = _get(f"{small_hub.url}/org/tiny/resolve/{info['sha']}/sub/deep/w.safetensors", method="HEAD")
    assert lfs.code == 302
    assert lfs.headers["X-Linked-Size"] == "10240"
    location = lfs.headers["Location"]
    assert location.startswith(small_hub.cdn_url) and small_hub.cdn_url != small_hub.url
    partial = _get(location, headers={"Range": "bytes=10-19"})
    assert (partial.status, partial.read()) == (206, bytes(range(10, 20)))


def test_paths_info_plain_files_and_blocked_egress(small_hub: LoopbackHub) -> None:
    body = b"paths=config.json&paths=sub&paths=absent&expand=false"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    found = json.load(_get(f"{small_hub.url}/api/models/org/tiny/paths-info/main", "POST", body, form))
    assert [(e["type"], e["path"]) for e in found] == [("file", "config.json"), ("directory", "sub")]
    assert _get(f"{small_hub.url}/models/weights.pth").read() == b"0123456789"
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"{small_hub.url}/models/../../hub/models/org/tiny/config.json")
    assert err.value.code == 404
    proxied = urllib.request.build_opener(urllib.request.ProxyHandler({"http": small_hub.url}))
    with pytest.raises(urllib.error.HTTPError) as err:
        proxied.open("http://example.com/x", timeout=30)
    assert err.value.code == 403
    assert ("GET", "http://example.com/x", 403) in small_hub.requests


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from client.rehearsal.standins import build_standins

    return build_standins(tmp_path_factory.mktemp("standins"))


@pytest.fixture
def hub(standins: Path) -> Any:
    with LoopbackHub(standins, tree_page_size=3) as served:
        yield served


def _client_env(hub: LoopbackHub, base: dict[str, str], home: Path) -> dict[str, str]:
    """``base`` pointed at the hub, every other host refused by it (a hermetic run)."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
    return (
        keep
        | base
        | {
            "HF_ENDPOINT": hub.url,
            "HTTP_PROXY": hub.url,
            "HTTPS_PROXY": hub.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(REPO),
            "HOME": str(home),
        }
    )


def _run_json(code: str, env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _egress(hub: LoopbackHub) -> list[tuple[str, str, int]]:
    """Requests that tried to leave loopback, apart from datasets' two optional look-ups (errors ignored):
    the download-count ping and the dataset viewer's ``datasets-server.<endpoint host>/info``."""
    return hub.egress()


ONLINE = {"HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}

BERT_CLIENT = """
import json, sys, torch
from pathlib import Path
from huggingface_hub import snapshot_download
from transformers import AutoModelForSequenceClassification, AutoTokenizer
local = sys.argv[1]
snap = Path(snapshot_download("bert-base-uncased"))
files = sorted(p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file())
same = all((snap / f).read_bytes() == (Path(local) / f).read_bytes() for f in files)
tok, ref_tok = AutoTokenizer.from_pretrained("bert-base-uncased"), AutoTokenizer.from_pretrained(local)
text = sys.argv[2]
model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
ref = AutoModelForSequenceClassification.from_pretrained(local, num_labels=2)
weights = all(torch.equal(v, ref.state_dict()[k]) for k, v in model.state_dict().items())
print(json.dumps({"files": files, "same_bytes": same, "ids": tok(text)["input_ids"],
                  "ref_ids": ref_tok(text)["input_ids"], "unk": tok.unk_token_id, "weights": weights}))
"""


@pytest.mark.slow
def test_snapshot_download_and_transformers_get_the_stand_in_bert(hub: LoopbackHub, tmp_path: Path) -> None:
    env = _client_env(hub, ONLINE | {"HF_HOME": str(tmp_path / "hf")}, tmp_path)
    local = hub.root / "models" / "bert-base-uncased"
    from trainer.tiny_data import NEGATIVE, NEUTRAL, POSITIVE

    text = f"{POSITIVE[0]} {NEUTRAL[3]} {NEGATIVE[1]} ."
    got = _run_json(BERT_CLIENT, env, str(local), text)
    assert got["files"] == sorted(
        [
            ".gitattributes",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
        ]
    )
    assert got["same_bytes"] and got["weights"]
    assert got["ids"] == got["ref_ids"] and len(got["ids"]) == 6 and got["unk"] not in got["ids"]
    assert _egress(hub) == []


DATASETS_CLIENT = """
import json, datasets
out = {}
for repo, config in (("nyu-mll/glue", "sst2"), ("nyu-mll/glue", "mrpc"), ("uoft-cs/cifar10", None)):
    loaded = datasets.load_dataset(repo, config)
    out[config or "cifar10"] = {
        split: {"columns": ds.column_names, "labels": list(ds["label"]),
                "first": {k: v for k, v in ds[0].items() if k != "img"},
                "features": {k: repr(f) for k, f in ds.features.items()}}
        for split, ds in loaded.items()
    }
print(json.dumps(out))
"""


@pytest.mark.slow
def test_load_dataset_gets_glue_and_cifar10_stand_ins(hub: LoopbackHub, tmp_path: Path) -> None:
    from trainer.tiny_data import tiny_dataset

    env = _client_env(hub, ONLINE | {"HF_HOME": str(tmp_path / "hf")}, tmp_path)
    got = _run_json(DATASETS_CLIENT, env)
    for task in ("sst2", "mrpc", "cifar10"):
        expected = tiny_dataset(task)
        assert sorted(got[task]) == sorted(expected), task
        for split, columns in expected.items():
            assert got[task][split]["columns"] == list(columns)
            assert got[task][split]["labels"] == columns["label"]
    assert got["sst2"]["test"]["labels"][0] == -1  # GLUE's unlabelled test split
    assert "ClassLabel(names=['negative', 'positive'])" in got["sst2"]["train"]["features"]["label"]
    assert "automobile" in got["cifar10"]["train"]["features"]["label"]
    assert (
        got["mrpc"]["validation"]["first"]["sentence1"] == tiny_dataset("mrpc")["validation"]["sentence1"][0]
    )
    assert _egress(hub) == []


def _warm_cache_run(
    hub: LoopbackHub, tmp_path: Path, tasks: str | None = None, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the warm-cache Job's own ``command`` with the image ENV + the Job env, paths moved into tmp_path.

    ``tasks`` replaces the command's task list (the Job's own list when None).
    """
    spec = job_container(REPO / "manifests" / "20-cache.yaml", "katib-surrogate-warm-cache")
    env = container_env(dockerfile_env(REPO / "trainer_image" / "Dockerfile"), spec)
    cache, home = tmp_path / "cache", tmp_path / "home"
    cache.mkdir()
    home.mkdir()
    moves = {"/cache": str(cache), "/tmp": str(home), "/opt/katib-surrogate": str(REPO / "trainer_image")}

    def move(value: str) -> str:
        for old, new in moves.items():
            if value == old or value.startswith(old + "/"):
                return new + value[len(old) :]
        return value

    env = {k: move(v) for k, v in env.items()} | (extra_env or {})
    command = [part.replace(" /cache", f" {cache}") for part in spec["command"]]
    if tasks is not None:
        assert "--tasks sst2,mrpc,cifar10 " in command[-1]
        command[-1] = command[-1].replace("--tasks sst2,mrpc,cifar10 ", f"--tasks {tasks} ")
    run_env = _client_env(hub, env, home) | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run_env["PYTHONPATH"] = env["PYTHONPATH"]
    done = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=480)
    return done, cache


def _assert_warm(done: subprocess.CompletedProcess[str], cache: Path, tasks: tuple[str, ...]) -> None:
    assert done.returncode == 0, done.stderr[-4000:]
    assert (cache / ".katib-surrogate-cache-ready").read_text().strip().endswith("Z")
    import datasets
    from trainer.cache import dataset_dir, model_dir
    from trainer.tiny_data import tiny_dataset

    assert (model_dir(cache, "bert-base-uncased") / "config.json").is_file()
    for task in tasks:
        loaded = datasets.load_from_disk(str(dataset_dir(cache, task)))
        assert list(loaded["train"]["label"]) == tiny_dataset(task)["train"]["label"]


@pytest.mark.slow
def test_warm_cache_job_text_tasks_with_todays_env(hub: LoopbackHub, tmp_path: Path) -> None:
    done, cache = _warm_cache_run(hub, tmp_path, tasks="sst2,mrpc")
    _assert_warm(done, cache, ("sst2", "mrpc"))


@pytest.mark.slow
def test_warm_cache_job_text_tasks_with_downloads_switched_on(hub: LoopbackHub, tmp_path: Path) -> None:
    online = {"HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    done, cache = _warm_cache_run(hub, tmp_path, tasks="sst2,mrpc", extra_env=online)
    _assert_warm(done, cache, ("sst2", "mrpc"))
    assert _egress(hub) == []


@pytest.mark.slow
def test_warm_cache_job_full_command(hub: LoopbackHub, tmp_path: Path) -> None:
    from client.rehearsal.standins import RESNET50_PATH

    online = {
        "HF_DATASETS_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "TRAINER_RESNET50_WEIGHTS_URL": f"{hub.url}/{RESNET50_PATH}",
    }
    done, cache = _warm_cache_run(hub, tmp_path, extra_env=online)
    _assert_warm(done, cache, ("sst2", "mrpc", "cifar10"))
    from trainer.cache import resnet50_weights_path

    served = hub.root / "files" / RESNET50_PATH
    assert resnet50_weights_path(cache).read_bytes() == served.read_bytes()
    assert _egress(hub) == []
