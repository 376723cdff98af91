"""Warm start in local runs: the store as a PriorSource, the run order, and a run where B warm-starts from A."""

from __future__ import annotations

import copy
import io
import json
import logging
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from client.cli import main
from client.errors import ClientError
from client.experiments import ExperimentDef, load_experiments
from client.local_priors import LocalStorePriorSource, order_for_warm_start, warm_start_refs
from client.local_store import LocalStore
from client.model import SUCCEEDED
from suggestion_service.priors import PriorExperiment, PriorNotFound, PriorUnavailable

DATA = Path(__file__).parent / "data"
FAKE_TRAINER = DATA / "fake_trainer.py"
NS = "katib-surrogate"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def toy_docs() -> dict[str, dict[str, Any]]:
    """The test Experiments (tests/client/data/experiments.yaml) by name, fake trainer path absolute."""
    text = (
        (DATA / "experiments.yaml")
        .read_text()
        .replace("tests/client/data/fake_trainer.py", str(FAKE_TRAINER))
    )
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(text) if d}


def warm_doc(
    name: str, prior: str, *, algorithm: str = "surrogate-gp", max_trials: int = 2
) -> dict[str, Any]:
    """A copy of toy-grid that runs ``algorithm`` warm-started from ``prior``, one trial at a time."""
    doc = copy.deepcopy(toy_docs()["toy-grid"])
    doc["metadata"]["name"] = name
    doc["metadata"]["labels"]["katib-surrogate/algorithm"] = algorithm
    doc["spec"]["algorithm"] = {
        "algorithmName": algorithm,
        "algorithmSettings": [{"name": "warm_start_experiments", "value": prior}],
    }
    doc["spec"]["maxTrialCount"] = max_trials
    doc["spec"]["parallelTrialCount"] = 1
    return doc


def definition(doc: dict[str, Any]) -> ExperimentDef:
    return ExperimentDef.from_body(doc, "test.yaml")


def fill_store(path: Path, doc: dict[str, Any], trials: list[tuple[dict[str, str], str, dict[str, str]]],
               condition: str = SUCCEEDED) -> None:  # fmt: skip
    """Write an experiment and its finished trials straight into a store (what a run would leave)."""
    store = LocalStore(path)
    d = definition(doc)
    store.ensure_experiment(d, d.max_trial_count, 1)
    store.add_trials(d.name, [(f"{d.name}-{i:03d}", params) for i, (params, _, _) in enumerate(trials)])
    for i, (_, cond, observation) in enumerate(trials):
        name = f"{d.name}-{i:03d}"
        store.mark_running(d.name, name, T0 + timedelta(seconds=10 * i), 0, "")
        store.finish_trial(d.name, name, cond, observation, T0 + timedelta(seconds=10 * i + 5), 0)
    store.set_experiment_state(d.name, condition, "done", start_time=T0, completion_time=T0)
    store.close()


GRID_TRIALS = [
    ({"learning_rate": "0.1", "units": "32"}, "Succeeded", {"accuracy": "0.86", "eval_loss": "0.14"}),
    ({"learning_rate": "0.01", "units": "16"}, "Failed", {"accuracy": "0.5"}),
    ({"learning_rate": "0.01", "units": "32"}, "MetricsUnavailable", {"accuracy": "unavailable"}),
    ({"learning_rate": "0.1", "units": "16"}, "Succeeded", {"accuracy": "0.78", "eval_loss": "0.22"}),
]


# --- the source ------------------------------------------------------------------------------------------
def test_fetch_returns_objective_and_trials(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    fill_store(path, toy_docs()["toy-grid"], GRID_TRIALS)
    prior = LocalStorePriorSource(path, bare_namespace="default").fetch(NS, "toy-grid")
    assert isinstance(prior, PriorExperiment)
    assert (prior.namespace, prior.name, prior.ref) == (NS, "toy-grid", f"{NS}/toy-grid")
    assert (prior.objective_metric_name, prior.objective_type) == ("accuracy", "maximize")
    assert [t.assignment for t in prior.trials] == [t[0] for t in GRID_TRIALS]
    assert [t.succeeded for t in prior.trials] == [True, False, False, True]
    # succeeded trials carry the stored (strategy-picked) observation strings; the others none
    assert prior.trials[0].metrics == {"accuracy": "0.86", "eval_loss": "0.14"}
    assert prior.trials[1].metrics == {} and prior.trials[2].metrics == {}
    assert prior.trials[3].metrics["accuracy"] == "0.78"


def test_fetch_accepts_a_store_object_and_works_from_another_thread(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store.sqlite")
    store.close()
    fill_store(tmp_path / "store.sqlite", toy_docs()["toy-grid"], GRID_TRIALS)
    source = LocalStorePriorSource(LocalStore(tmp_path / "store.sqlite"), bare_namespace="default")
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(source.fetch(NS, "toy-grid")))
    worker.start()
    worker.join(10)
    assert len(result) == 1 and len(result[0].trials) == 4


def test_bare_name_and_namespace_matching(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    fill_store(path, toy_docs()["toy-grid"], GRID_TRIALS)
    source = LocalStorePriorSource(path, bare_namespace="default")
    # the service turns a bare name into its own namespace ("default" outside a pod), or passes ""
    assert source.fetch("default", "toy-grid").namespace == NS
    assert source.fetch("", "toy-grid").name == "toy-grid"
    with pytest.raises(PriorNotFound) as err:
        source.fetch("team-b", "toy-grid")
    assert "stored in namespace 'katib-surrogate': write katib-surrogate/toy-grid" in str(err.value)
    # default bare namespace = the service's own (POD_NAMESPACE here)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POD_NAMESPACE", "team-b")
        assert LocalStorePriorSource(path).fetch("team-b", "toy-grid").namespace == NS


def test_unknown_experiment_names_the_store_and_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    fill_store(path, toy_docs()["toy-grid"], GRID_TRIALS)
    with pytest.raises(PriorNotFound) as err:
        LocalStorePriorSource(path, bare_namespace="default").fetch(NS, "sst2-random")
    message = str(err.value)
    assert f"katib-surrogate/sst2-random is not in the local store {path}" in message
    assert "stored: katib-surrogate/toy-grid (Succeeded)" in message
    with pytest.raises(PriorNotFound, match="does not exist"):
        LocalStorePriorSource(tmp_path / "missing.sqlite").fetch(NS, "toy-grid")
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_store_error_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.sqlite"
    fill_store(path, toy_docs()["toy-grid"], GRID_TRIALS)

    def locked(self: LocalStore, experiment: str) -> list[Any]:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(LocalStore, "trials", locked)
    with pytest.raises(PriorUnavailable, match=r"cannot read the local store .*: database is locked"):
        LocalStorePriorSource(path, bare_namespace="default").fetch(NS, "toy-grid")


# --- run order -------------------------------------------------------------------------------------------
def _no_store(_name: str) -> None:
    return None


def test_order_puts_priors_of_the_run_first_and_keeps_the_rest() -> None:
    docs = toy_docs()
    grid, rnd = definition(docs["toy-grid"]), definition(docs["toy-random"])
    warm = definition(warm_doc("toy-warm", "toy-grid"))
    warm2 = definition(warm_doc("toy-warm2", f"{NS}/toy-warm,{NS}/toy-random"))
    assert warm_start_refs(warm2) == [(NS, "toy-warm"), (NS, "toy-random")]
    assert warm_start_refs(grid) == []
    ordered = order_for_warm_start([warm2, warm, rnd, grid], _no_store, "s.sqlite")
    names = [d.name for d in ordered]
    assert names.index("toy-grid") < names.index("toy-warm") < names.index("toy-warm2")
    assert names.index("toy-random") < names.index("toy-warm2")
    assert sorted(names) == sorted(["toy-grid", "toy-random", "toy-warm", "toy-warm2"])
    # without warm start the order is unchanged
    assert [d.name for d in order_for_warm_start([rnd, grid], _no_store, "s")] == ["toy-random", "toy-grid"]


def test_order_errors(tmp_path: Path) -> None:
    warm = definition(warm_doc("toy-warm", "toy-grid"))
    with pytest.raises(ClientError) as err:
        order_for_warm_start([warm], _no_store, "runs/x.sqlite")
    assert "toy-warm warm-starts from katib-surrogate/toy-grid, which is neither in this run nor in " in str(
        err.value
    )
    assert "python -m client compare --local --experiment toy-grid" in str(err.value)

    running = definition(toy_docs()["toy-grid"]).to_model("local")
    running.condition, running.max_trial_count = "Running", 4
    with pytest.raises(ClientError) as err:
        order_for_warm_start([warm], lambda name: running, "runs/x.sqlite")
    assert "has not finished in runs/x.sqlite (Running, 0/4 trials done)" in str(err.value)
    assert "a prior outside this run must be finished (Succeeded or Failed)" in str(err.value)
    elsewhere = definition(toy_docs()["toy-grid"]).to_model("local")
    elsewhere.condition, elsewhere.namespace = SUCCEEDED, "team-b"
    with pytest.raises(ClientError) as err:
        order_for_warm_start([warm], lambda name: elsewhere, "s")
    assert "a stored experiment toy-grid is in namespace team-b; write team-b/toy-grid in " in str(err.value)
    finished = definition(toy_docs()["toy-grid"]).to_model("local")
    finished.condition = SUCCEEDED
    assert order_for_warm_start([warm], lambda name: finished, "s") == [warm]

    with pytest.raises(ClientError) as err:
        order_for_warm_start([definition(warm_doc("toy-a", "toy-a"))], _no_store, "s")
    message = str(err.value)
    assert "toy-a: warm_start_experiments names the experiment itself (katib-surrogate/toy-a)" in message
    assert "can only warm-start from other experiments" in message
    a, b = definition(warm_doc("toy-a", "toy-b")), definition(warm_doc("toy-b", f"{NS}/toy-a"))
    with pytest.raises(ClientError) as err:
        order_for_warm_start([a, b], _no_store, "s")
    assert "cycle: toy-a -> toy-b -> toy-a" in str(err.value)
    assert "remove one of these warm_start_experiments references" in str(err.value)
    # the prior is part of this run, but in another namespace than the reference says
    other = copy.deepcopy(toy_docs()["toy-grid"])
    other["metadata"]["namespace"] = "team-b"
    with pytest.raises(ClientError) as err:
        order_for_warm_start([warm, definition(other)], lambda name: finished, "s")
    assert str(err.value).startswith(
        "toy-warm warm-starts from katib-surrogate/toy-grid, but the experiment toy-grid of this run is in "
        "namespace team-b: write team-b/toy-grid in warm_start_experiments"
    )
    bad = definition(warm_doc("toy-bad", "Not_A_Name"))
    with pytest.raises(
        ClientError, match=r"test.yaml: setting warm_start_experiments='Not_A_Name' is invalid"
    ):
        order_for_warm_start([bad], _no_store, "s")


# --- a local run: B warm-starts from A -------------------------------------------------------------------
def write_manifests(folder: Path, docs: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiments.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return folder


def run_cli(tmp_path: Path, manifests: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["compare", "--local", "--manifests", str(manifests), "--store", str(tmp_path / "store.sqlite"),
            "--workdir", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache"), "--launcher", "subprocess",
            *extra]  # fmt: skip
    code = main(argv, console=Console(file=out, width=250, color_system=None))
    return code, out.getvalue()


def stored_trials(tmp_path: Path, experiment: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.row_factory = sqlite3.Row
    rows = [
        dict(r) for r in db.execute("SELECT * FROM trials WHERE experiment=? ORDER BY seq", (experiment,))
    ]
    db.close()
    return rows


def _first_call(records: list[logging.LogRecord], experiment: str) -> str:
    """The service's log line for the experiment's first GetSuggestions call (no own trials yet)."""
    lines = [r.getMessage() for r in records if r.getMessage().startswith("GetSuggestions ")]
    return next(line for line in lines if f"experiment={experiment} " in line and " trials=0 " in line)


def test_local_run_warm_starts_b_from_a(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fetched: list[tuple[str, str, int]] = []
    real_fetch = LocalStorePriorSource.fetch

    def spy(self: LocalStorePriorSource, namespace: str, name: str) -> PriorExperiment:
        prior = real_fetch(self, namespace, name)
        fetched.append((namespace, name, sum(t.succeeded for t in prior.trials)))
        return prior

    monkeypatch.setattr(LocalStorePriorSource, "fetch", spy)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    caplog.set_level(logging.DEBUG, logger="suggestion_service")
    # the same experiment without warm start, for comparison
    cold = warm_doc("toy-cold", "toy-grid", max_trials=1)
    cold["spec"]["algorithm"]["algorithmSettings"] = []
    # B (toy-warm) comes first in the file: the runner must run A (toy-grid) before it
    docs = [warm_doc("toy-warm", "toy-grid"), toy_docs()["toy-grid"], cold]
    manifests = write_manifests(tmp_path / "m", docs)
    assert [d.name for d in load_experiments(manifests)] == ["toy-warm", "toy-grid", "toy-cold"]
    code, out = run_cli(tmp_path, manifests)
    assert code == 0, out
    grid = stored_trials(tmp_path, "toy-grid")
    warm = stored_trials(tmp_path, "toy-warm")
    assert [t["condition"] for t in grid] == ["Succeeded"] * 4
    assert [t["condition"] for t in warm] == ["Succeeded"] * 2
    # A had finished before B's first trial started
    assert max(t["completion_time"] for t in grid) < min(t["start_time"] for t in warm)
    # the service read A's 4 succeeded trials through the store (a bare name: the service's namespace)
    assert fetched and set(fetched) == {("default", "toy-grid", 4)}
    used = [
        r.getMessage() for r in caplog.records if "warm start from katib-surrogate/toy-grid" in r.getMessage()
    ]
    assert used and "using 4 of 4 trials" in used[0]
    # behaviour: with the 4 prior points B's very first call (no own trial yet) fits a model on them
    # (fit_ms > 0, prior=4 in the service's log line); cold, the first call is a design without a model
    first_warm, first_cold = _first_call(caplog.records, "toy-warm"), _first_call(caplog.records, "toy-cold")
    assert " prior=4 " in first_warm and " fit_ms=0.0 " not in first_warm, first_warm
    assert " prior=" not in first_cold and " fit_ms=0.0 " in first_cold, first_cold
    # and its first pick is A's best configuration (lr 0.1, units 32)
    assert json.loads(warm[0]["parameters"]) == {"learning_rate": "0.1", "units": "32"}


def test_local_run_fails_clearly_when_the_prior_is_missing_or_unfinished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = write_manifests(tmp_path / "m", [warm_doc("toy-warm", "toy-grid"), toy_docs()["toy-grid"]])
    code, _ = run_cli(tmp_path, manifests, "--experiment", "toy-warm")
    err = capsys.readouterr().err
    assert code == 1 and not stored_trials(tmp_path, "toy-warm")
    assert "toy-warm warm-starts from katib-surrogate/toy-grid, which is neither in this run nor in" in err
    assert "run it first (python -m client compare --local --experiment toy-grid)" in err
    # the prior is in the store but was interrupted: refused too, and nothing of B runs
    fill_store(tmp_path / "store.sqlite", toy_docs()["toy-grid"], GRID_TRIALS[:1], condition="Running")
    code, _ = run_cli(tmp_path, manifests, "--experiment", "toy-warm")
    err = capsys.readouterr().err
    assert code == 1 and not stored_trials(tmp_path, "toy-warm")
    assert "which has not finished in" in err and "(Running, 1/4 trials done)" in err
