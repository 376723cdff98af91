"""The client through its CLI: a concurrent reader of the local store, malformed cluster data.

Already proven in tests/client (cited in docs/reliability.md): a local run killed with SIGKILL and
resumed keeps every finished trial exactly once (test_local.py::test_resume_after_sigkill_with_fake_trainer
and test_real_manifests_service_and_trainer_with_resume); 5xx answers are retried with backoff and a
persistent 5xx gives up with a one-line error (test_cluster.py::test_transient_errors_are_retried,
test_persistent_5xx_gives_up_with_backoff); 403/404 are explained in one line
(test_cluster.py::test_submit_errors_are_one_line).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from client.cli import main
from tests.client.fake_k8s import FakeKubeAPI

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "client" / "data"


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    text = (DATA / "experiments.yaml").read_text()
    text = text.replace("tests/client/data/fake_trainer.py", str(DATA / "fake_trainer.py"))
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "experiments.yaml").write_text(text)
    return folder


@pytest.mark.slow
def test_status_reads_the_store_while_compare_writes_it(tmp_path: Path, manifests: Path) -> None:
    store = tmp_path / "store.sqlite"
    env = {**os.environ, "FAKE_TRAINER_SLEEP": "0.4", "PYTHONPATH": str(REPO)}
    compare = subprocess.Popen(
        [sys.executable, "-m", "client", "compare", "--local", "--manifests", str(manifests), "--store",
         str(store), "--workdir", str(tmp_path / "w"), "--cache-dir", str(tmp_path / "c"), "--parallel", "2"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reads = []
    try:
        deadline = time.monotonic() + 120
        while compare.poll() is None and time.monotonic() < deadline:
            if store.exists():
                status = subprocess.run(
                    [sys.executable, "-m", "client", "status", "--local", "--store", str(store)],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                )  # fmt: skip
                assert "locked" not in status.stderr.lower() and "Traceback" not in status.stderr
                if status.returncode == 1 and "no experiments found" in status.stderr:
                    continue  # the store exists but compare has not written an experiment yet
                assert status.returncode == 0, status.stderr[-2000:]
                reads.append(status.stdout)
            time.sleep(0.2)
        assert compare.wait(timeout=120) == 0, compare.stderr.read()[-2000:] if compare.stderr else ""
    finally:
        if compare.poll() is None:
            compare.kill()
            compare.wait()
    assert len(reads) >= 2, "compare finished before status could read the store concurrently"
    assert any("toy-grid" in r for r in reads)


def test_a_trial_with_malformed_status_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    from tests.client.test_cluster import NS, OBJECTIVE, T0, experiment_cr

    fake = FakeKubeAPI().start()
    try:
        kubeconfig = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
        fake.put("experiments", experiment_cr("sst2-grid", "sst2", "grid"))
        fake.add_trial(NS, "sst2-grid", "sst2-grid-good", {"lr": "1"}, "Succeeded",
                       {"accuracy": ("0.6", "0.7", "0.7")}, T0, T0, objective=OBJECTIVE)  # fmt: skip
        bad = fake.add_trial(NS, "sst2-grid", "sst2-grid-bad", {"lr": "2"}, "Succeeded",
                             {"accuracy": ("0.6", "0.8", "0.8")}, T0, T0, objective=OBJECTIVE)  # fmt: skip
        bad["status"] = {"conditions": "not-a-list", "observation": {"metrics": [{"name": "accuracy"}]}}
        fake.put("trials", bad, event="MODIFIED")
        fake.set_experiment_status(NS, "sst2-grid", "Succeeded", T0, T0)
        for command in ("status", "compare"):
            out, err = io.StringIO(), io.StringIO()
            console = Console(file=out, width=250, color_system=None)
            code = main([command, "--kubeconfig", kubeconfig], console=console)
            text = out.getvalue()
            assert code == 0, text
            assert "sst2-grid" in text
            assert "Traceback" not in text + err.getvalue()
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("skipped trial sst2-grid-bad: malformed object" in w for w in warnings), warnings
    finally:
        fake.stop()
