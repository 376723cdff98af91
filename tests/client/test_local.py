"""Local mode: the runner against our real suggestion service, trials as processes, SQLite resume."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from client.aggregate import SRC_CPU_TIME, SRC_TRAIN_SECONDS, compare, summarize
from client.cli import main
from client.errors import ClientError
from client.experiments import ExperimentDef, load_experiments
from client.local_runner import experiment_proto, suggestions_request, trial_command, trial_outcome
from client.local_store import LocalStore
from suggestion_service.proto import api_pb2

DATA = Path(__file__).parent / "data"
FAKE_TRAINER = DATA / "fake_trainer.py"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """The test Experiments with the fake trainer's absolute path."""
    text = (
        (DATA / "experiments.yaml")
        .read_text()
        .replace("tests/client/data/fake_trainer.py", str(FAKE_TRAINER))
    )
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "experiments.yaml").write_text(text)
    return folder


def run_local(tmp_path: Path, manifests: Path, *extra: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = [
        "compare",
        "--local",
        "--manifests",
        str(manifests),
        "--store",
        str(tmp_path / "store.sqlite"),
        "--workdir",
        str(tmp_path / "work"),
        "--cache-dir",
        str(tmp_path / "cache"),
        *extra,
    ]
    code = main(argv, console=Console(file=out, width=250, color_system=None))
    return code, out.getvalue()


def stored(tmp_path: Path, experiment: str) -> list[dict[str, object]]:
    db = sqlite3.connect(tmp_path / "store.sqlite")
    db.row_factory = sqlite3.Row
    rows = [
        dict(r) for r in db.execute("SELECT * FROM trials WHERE experiment=? ORDER BY seq", (experiment,))
    ]
    db.close()
    return rows


def test_local_run_end_to_end_with_fake_trainer(tmp_path: Path, manifests: Path) -> None:
    code, out = run_local(tmp_path, manifests, "--output", str(tmp_path / "out"))
    assert code == 0, out
    grid = stored(tmp_path, "toy-grid")
    assert [t["condition"] for t in grid] == ["Succeeded"] * 4
    # the grid of 2 x 2 configurations, each exactly once
    configs = {
        (json.loads(t["parameters"])["learning_rate"], json.loads(t["parameters"])["units"]) for t in grid
    }
    assert configs == {("0.01", "16"), ("0.01", "32"), ("0.1", "16"), ("0.1", "32")}
    for t in grid:
        trial_dir = Path(str(t["trial_dir"]))
        argv = json.loads((trial_dir / "argv.json").read_text())
        params = json.loads(str(t["parameters"]))
        assert argv[:6] == [
            "--learning-rate",
            params["learning_rate"],
            "--units",
            params["units"],
            "--name",
            t["name"],
        ]
        # the template's --preset full is overridden by the appended local flags
        assert argv[-8:] == ["--preset", "tiny", "--cache-dir", str((tmp_path / "cache").resolve()),
                             "--output-dir", str(trial_dir), "--checkpoint-dir", str(trial_dir / "ckpt")]  # fmt: skip
        obs = json.loads(str(t["observation"]))
        acc = 0.5 + 2 * float(params["learning_rate"]) + int(params["units"]) / 200
        assert float(obs["accuracy"]) == pytest.approx(acc)  # max over the two epochs
        assert float(obs["eval_loss"]) == pytest.approx(1 - acc)  # min
        assert obs["train_seconds"] == "2.5" and t["attempts"] == 1 and t["exit_code"] == 0
    assert len(stored(tmp_path, "toy-random")) == 3
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    rows = {r["algorithm"]: r for r in data["tasks"][0]["rows"]}
    assert rows["grid"]["best_value"] == pytest.approx(0.86)
    assert rows["grid"]["best_parameters"] == {"learning_rate": "0.1", "units": "32"}
    # the local cost is each trial process's CPU time (user + sys, read when it was reaped), not the
    # trainer's wall-clock train_seconds (2.5 here), and the report names it
    cpu = [float(str(t["cpu_seconds"])) for t in grid]
    assert all(0 < c < 30 for c in cpu)
    assert rows["grid"]["cost_hours"] == pytest.approx(sum(cpu) / 3600)
    assert rows["grid"]["cost_sources"] == {SRC_CPU_TIME: 4} and f"from: {SRC_CPU_TIME} (7 trials)" in out
    assert data["cost_label"] == "device-hours (CPU, local)"
    assert "No GPU was used" in out and "toy-random" in out
    # a second run finds everything finished and runs nothing
    before = {t["name"]: t["completion_time"] for t in grid}
    code, _ = run_local(tmp_path, manifests)
    assert code == 0 and {t["name"]: t["completion_time"] for t in stored(tmp_path, "toy-grid")} == before
    # status --local reads the same store
    out_buf = io.StringIO()
    code = main(["status", "--local", "--store", str(tmp_path / "store.sqlite")],
                console=Console(file=out_buf, width=250, color_system=None))  # fmt: skip
    assert code == 0 and "4/4 done: 4 Succeeded" in out_buf.getvalue()


def test_failed_and_metrics_unavailable_trials(
    tmp_path: Path, manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRAINER_FAIL_UNITS", "16")
    code, out = run_local(tmp_path, manifests, "--algorithm", "grid", "--output", str(tmp_path / "o"))
    assert code == 0, out
    conditions = {
        json.loads(str(t["parameters"]))["units"]: t["condition"] for t in stored(tmp_path, "toy-grid")
    }
    assert conditions == {"16": "Failed", "32": "Succeeded"}
    failed = [t for t in stored(tmp_path, "toy-grid") if t["condition"] == "Failed"]
    assert all(
        "exit code 1: RuntimeError: CUDA out of memory (simulated)" in str(t["message"]) for t in failed
    )
    rows = json.loads((tmp_path / "o" / "comparison.json").read_text())["tasks"][0]["rows"]
    assert rows[0]["failed"] == 2 and rows[0]["trials_completed"] == 4

    monkeypatch.delenv("FAKE_TRAINER_FAIL_UNITS")
    monkeypatch.setenv("FAKE_TRAINER_NO_METRICS_UNITS", "32")
    code, _ = run_local(tmp_path, manifests, "--algorithm", "random", "--max-trials", "4")
    assert code == 0
    random_conditions = {
        json.loads(str(t["parameters"]))["units"]: t["condition"] for t in stored(tmp_path, "toy-random")
    }
    assert random_conditions == {"16": "Succeeded", "32": "MetricsUnavailable"}


def test_max_failed_trial_count_fails_the_experiment(
    tmp_path: Path, manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        (manifests / "experiments.yaml")
        .read_text()
        .replace("maxFailedTrialCount: 3", "maxFailedTrialCount: 1")
    )
    (manifests / "experiments.yaml").write_text(text)
    monkeypatch.setenv("FAKE_TRAINER_FAIL_UNITS", "16")
    code, out = run_local(tmp_path, manifests, "--algorithm", "grid", "--parallel", "1")
    assert code == 0, out
    store = LocalStore(tmp_path / "store.sqlite")
    (experiment,) = store.load()
    assert (experiment.condition, experiment.reason) == ("Failed", "ExperimentFailed")
    assert sum(t.condition == "Failed" for t in experiment.trials) == 1
    assert len(experiment.trials) < 4


def test_spec_change_needs_fresh(tmp_path: Path, manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_local(tmp_path, manifests, "--algorithm", "grid")[0] == 0
    text = (manifests / "experiments.yaml").read_text().replace('list: ["16", "32"]', 'list: ["16", "64"]', 1)
    (manifests / "experiments.yaml").write_text(text)
    code, _ = run_local(tmp_path, manifests, "--algorithm", "grid")
    assert code == 1 and "was run with a different spec; pass --fresh" in capsys.readouterr().err
    code, _ = run_local(tmp_path, manifests, "--algorithm", "grid", "--fresh")
    assert code == 0
    units = {json.loads(str(t["parameters"]))["units"] for t in stored(tmp_path, "toy-grid")}
    assert units == {"16", "64"}


@pytest.mark.parametrize(
    ("edit", "flags", "expected"),
    [
        (("algorithmName: random", "algorithmName: tpe"), [], "algorithm 'tpe' is not served locally"),
        (('list: ["16", "32"]', "list: [16, 32]"), [], "feasibleSpace.list must be a list of strings"),
        (("${trialParameters.units}", "${trialParameters.width}"), [], "${trialParameters.width} is used"),
        (None, ["--parallel", "0"], "argument --parallel: expected a whole number >= 1"),
        (None, ["--watch"], "--watch with --local needs --no-run"),
        (None, ["--context", "x"], "cannot be used with --local"),
    ],
)
def test_local_errors(
    tmp_path: Path,
    manifests: Path,
    capsys: pytest.CaptureFixture[str],
    edit: tuple[str, str] | None,
    flags: list[str],
    expected: str,
) -> None:
    if edit is not None:
        path = manifests / "experiments.yaml"
        path.write_text(path.read_text().replace(*edit))
    code, _ = run_local(tmp_path, manifests, *flags)
    err = capsys.readouterr().err
    assert code in (1, 2) and expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_run_on_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", "--local", "--no-run", "--store", str(tmp_path / "none.sqlite")])
    assert code == 1 and "does not exist" in capsys.readouterr().err


def test_request_carries_all_trials_katib_would_send(tmp_path: Path) -> None:
    (definition,) = load_experiments(DATA, algorithms=["grid"])
    experiment = experiment_proto(definition, max_trial_count=4, parallel_trial_count=2)
    assert [p.name for p in experiment.spec.parameter_specs.parameters] == ["learning_rate", "units"]
    assert experiment.spec.parameter_specs.parameters[1].parameter_type == api_pb2.DISCRETE
    assert list(experiment.spec.parameter_specs.parameters[1].feasible_space.list) == ["16", "32"]
    assert experiment.spec.objective.type == api_pb2.MAXIMIZE
    assert experiment.spec.max_trial_count == 4 and experiment.spec.parallel_trial_count == 2
    store = LocalStore(tmp_path / "s.sqlite")
    store.ensure_experiment(definition, 4, 2)
    store.add_trials("toy-grid", [("a", {"learning_rate": "0.1", "units": "16"}),
                                  ("b", {"learning_rate": "0.01", "units": "16"}),
                                  ("c", {"learning_rate": "0.1", "units": "32"})])  # fmt: skip
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    store.mark_running("toy-grid", "a", now, 1, "/x")
    store.finish_trial(
        "toy-grid", "a", "Succeeded", {"accuracy": "0.7", "gpu_seconds": "0", "extra": "1"}, now, 0
    )
    store.mark_running("toy-grid", "b", now, 2, "/y")
    store.finish_trial("toy-grid", "b", "MetricsUnavailable", {"accuracy": "unavailable"}, now, 0)
    store.mark_running("toy-grid", "c", now, 3, "/z")
    request = suggestions_request(experiment, store.trials("toy-grid"), definition.metric_names, 1)
    assert (request.current_request_number, request.total_request_number) == (1, 4)
    assert [t.name for t in request.trials] == ["a", "c"]  # MetricsUnavailable is left out, as Katib does
    a, c = request.trials
    assert (
        a.status.condition == api_pb2.TrialStatus.SUCCEEDED
        and c.status.condition == api_pb2.TrialStatus.RUNNING
    )
    assert {m.name: m.value for m in a.status.observation.metrics} == {"accuracy": "0.7", "gpu_seconds": "0"}
    assert a.status.start_time == "2026-01-01T00:00:00Z" and c.status.completion_time == ""
    assert {p.name: p.value for p in c.spec.parameter_assignments.assignments} == {
        "learning_rate": "0.1",
        "units": "32",
    }


def test_trial_command_and_outcome() -> None:
    (definition,) = load_experiments(DATA, algorithms=["grid"])
    argv = trial_command(definition, {"learning_rate": "0.1", "units": "32"}, "toy-grid-001", Path("/t/x"),
                         preset="tiny", cache_dir=Path("/c"), python="/py")  # fmt: skip
    assert argv[:2] == ["/py", "tests/client/data/fake_trainer.py"]
    assert argv[2:8] == ["--learning-rate", "0.1", "--units", "32", "--name", "toy-grid-001"]
    text = "2026-01-01T00:00:00Z accuracy=0.5 f1=0.4\n2026-01-01T00:00:01Z accuracy=0.45 train_seconds=3\n"
    condition, observation, message = trial_outcome(0, text, definition)
    assert (
        condition == "Succeeded" and observation["accuracy"] == "0.5" and observation["train_seconds"] == "3"
    )
    assert trial_outcome(0, "no metrics here", definition)[0] == "MetricsUnavailable"
    condition, _, message = trial_outcome(2, "usage: error: bad flag\n", definition)
    assert condition == "Failed" and message == "exit code 2: usage: error: bad flag"
    body = next(d for d in yaml.safe_load_all((DATA / "experiments.yaml").read_text()) if d)
    body["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "nope"
    with pytest.raises(ClientError, match="references 'nope'"):
        trial_command(ExperimentDef.from_body(body), {"learning_rate": "1"}, "t", Path("/t"), preset="tiny",
                      cache_dir=Path("/c"))  # fmt: skip


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _conditions(store: Path, experiment: str) -> list[str]:
    if not store.exists():
        return []
    try:
        db = sqlite3.connect(store, timeout=5)
        rows = [r[0] for r in db.execute("SELECT condition FROM trials WHERE experiment=?", (experiment,))]
        db.close()
        return rows
    except sqlite3.OperationalError:
        return []


def _kill_and_resume(
    tmp_path: Path, argv: list[str], experiment: str, env: dict[str, str], timeout: float
) -> None:
    """Start the CLI, SIGKILL it once a trial finished while others run, rerun; check nothing is lost or repeated."""
    store = tmp_path / "store.sqlite"
    process = subprocess.Popen([sys.executable, "-m", "client", *argv], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for(
            lambda: (
                "Succeeded" in _conditions(store, experiment) and "Running" in _conditions(store, experiment)
            ),
            timeout,
            "a finished and a running trial",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {t["name"]: t for t in stored(tmp_path, experiment)}
    finished = {n: t for n, t in before.items() if t["condition"] == "Succeeded"}
    interrupted = {n: t for n, t in before.items() if t["condition"] == "Running"}
    assert finished and interrupted
    result = subprocess.run([sys.executable, "-m", "client", *argv], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout * 3)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "re-running" in result.stderr or "re-running" in result.stdout
    after = {t["name"]: t for t in stored(tmp_path, experiment)}
    assert len(after) == len(stored(tmp_path, experiment))  # names are unique (primary key) ...
    for name, row in finished.items():  # ... finished trials are kept exactly as they were
        assert after[name]["completion_time"] == row["completion_time"] and after[name]["attempts"] == 1
    for name in interrupted:  # interrupted ones ran again, with the same assignment
        assert after[name]["attempts"] == 2 and after[name]["parameters"] == before[name]["parameters"]
        assert after[name]["condition"] == "Succeeded"
    for row in before.values():  # no orphan of the killed run is left
        if row["pid"]:
            assert (
                not Path(f"/proc/{row['pid']}").exists()
                or "Z" in Path(f"/proc/{row['pid']}/stat").read_text()
            )


@pytest.mark.slow
def test_resume_after_sigkill_with_fake_trainer(tmp_path: Path, manifests: Path) -> None:
    env = {**os.environ, "FAKE_TRAINER_SLEEP": "0.6"}
    argv = ["compare", "--local", "--manifests", str(manifests), "--algorithm", "grid", "--parallel", "2",
            "--store", str(tmp_path / "store.sqlite"), "--workdir", str(tmp_path / "w"),
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    _kill_and_resume(tmp_path, argv, "toy-grid", env, timeout=60)
    assert len(stored(tmp_path, "toy-grid")) == 4


@pytest.mark.slow
def test_real_manifests_service_and_trainer_with_resume(tmp_path: Path) -> None:
    """One task, two algorithms, 3 trials each, with the project's manifests, service and tiny trainer."""
    if not (REPO / "manifests").is_dir():
        pytest.skip("manifests/ not generated yet")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    common = ["compare", "--local", "--manifests", str(REPO / "manifests"), "--task", "mrpc",
              "--store", str(tmp_path / "store.sqlite"), "--workdir", str(tmp_path / "w"),
              "--cache-dir", str(tmp_path / "cache"), "--max-trials", "3", "--parallel", "2"]  # fmt: skip
    _kill_and_resume(tmp_path, [*common, "--algorithm", "grid"], "mrpc-grid", env, timeout=240)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "client", *common, "--algorithm", "grid,surrogate-gp",
                             "--output", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=400)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "comparison.json").read_text())
    rows = {r["algorithm"]: r for r in data["tasks"][0]["rows"]}
    assert set(rows) == {"grid", "surrogate-gp"}
    for row in rows.values():
        assert row["trials_completed"] == 3 and row["failed"] == 0
        assert 0.0 <= row["best_value"] <= 1.0 and "f1" in row["best_metrics"]
        assert row["cost_sources"] == {SRC_CPU_TIME: 3}
    assert "--max-trials 3 overrides maxTrialCount" in result.stdout
    assert len(stored(tmp_path, "mrpc-grid")) == 3 and len(stored(tmp_path, "mrpc-surrogate-gp")) == 3


def test_missing_trial_binary_fails_trials_like_a_pod(tmp_path: Path, manifests: Path) -> None:
    path = manifests / "experiments.yaml"
    path.write_text(path.read_text().replace("- python\n", "- no-such-trainer-binary\n"))
    code, out = run_local(tmp_path, manifests, "--algorithm", "grid", "--parallel", "1")
    assert code == 0, out
    (experiment,) = LocalStore(tmp_path / "store.sqlite").load()
    assert (experiment.condition, experiment.reason) == ("Failed", "ExperimentFailed")
    assert [t.condition for t in experiment.trials] == ["Failed"] * 3  # maxFailedTrialCount: 3
    assert "cannot start the trial command 'no-such-trainer-binary'" in experiment.trials[0].message
    assert "cannot start the trial command" in out


def test_raising_the_budget_continues_a_finished_experiment(tmp_path: Path, manifests: Path) -> None:
    assert run_local(tmp_path, manifests, "--algorithm", "grid", "--max-trials", "2")[0] == 0
    first = {t["name"]: t["completion_time"] for t in stored(tmp_path, "toy-grid")}
    assert len(first) == 2
    code, out = run_local(tmp_path, manifests, "--algorithm", "grid", "--max-trials", "3")
    assert code == 0 and "--max-trials 3 overrides maxTrialCount 4" in out
    after = stored(tmp_path, "toy-grid")
    assert len(after) == 3 and {t["name"]: t["completion_time"] for t in after[:2]} == first
    assert len({t["parameters"] for t in after}) == 3  # grid: a new configuration, not a repeat


def test_unwritable_output_fails_before_any_work(
    tmp_path: Path, manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out = run_local(tmp_path, manifests, "--output", str(blocker / "out"))
    err = capsys.readouterr().err
    assert code == 2 and out == ""  # no table, no progress: nothing ran
    assert err.count("\n") == 1 and err.startswith(f"error: --output {blocker / 'out'}: cannot write there (")
    assert "Traceback" not in err and not (tmp_path / "store.sqlite").exists()


def test_a_run_without_a_terminal_prints_a_line_as_trials_finish(tmp_path: Path, manifests: Path) -> None:
    code, out = run_local(tmp_path, manifests, "--experiment", "toy-grid")
    assert code == 0, out
    lines = [line for line in out.splitlines() if "trials finished" in line]
    counts = [int(re.search(r"toy-grid: (\d)/4 trials finished$", line)[1]) for line in lines]
    # a line whenever the count of finished trials changes (trials running in parallel may end together)
    assert counts[0] == 0 and counts[-1] == 4 and counts == sorted(set(counts)), lines
    assert all(re.match(r"^\[\d+:\d\d\] ", line) for line in lines)


def _store_run(path: Path, wall: dict[str, float], train_seconds: dict[str, str]) -> LocalStore:
    """toy-grid (4 trials, the 4th finds the best) and toy-random (2 trials, the 2nd finds it), each
    trial 10 CPU-seconds; ``wall`` and ``train_seconds`` (wall clocks) per trial name vary by run."""
    from datetime import UTC, datetime, timedelta

    store = LocalStore(path)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    end = 0.0
    for definition in load_experiments(DATA):
        store.ensure_experiment(definition, 4, 1)
        names = ["g1", "g2", "g3", "g4"] if definition.algorithm == "grid" else ["r1", "r2"]
        store.add_trials(definition.name, [(n, {"learning_rate": "0.1", "units": n}) for n in names])
        for index, name in enumerate(names):
            accuracy = "0.9" if index == len(names) - 1 else f"0.{5 + index}"
            start, end = end, end + wall[name]
            store.mark_running(definition.name, name, t0 + timedelta(seconds=start), 1, "/t")
            store.finish_trial(definition.name, name, "Succeeded",
                               {"accuracy": accuracy, "train_seconds": train_seconds[name]},
                               t0 + timedelta(seconds=end), 0, cpu_seconds=10.0)  # fmt: skip
    return store


def test_speedup_vs_grid_does_not_depend_on_wall_time(tmp_path: Path) -> None:
    """Identical trials, one run on an idle machine and one on a busy one: the same speed-up."""
    names = ["g1", "g2", "g3", "g4", "r1", "r2"]
    idle = _store_run(tmp_path / "idle.sqlite", dict.fromkeys(names, 10.0), dict.fromkeys(names, "9"))
    # busy: the random run's trials waited for the CPU (3x the wall time), the grid's did not
    busy_wall = {n: 30.0 if n.startswith("r") else 10.0 for n in names}
    busy_train = {n: "27" if n.startswith("r") else "9" for n in names}
    busy = _store_run(tmp_path / "busy.sqlite", busy_wall, busy_train)
    speedups = []
    for store in (idle, busy):
        rows = {r.algorithm: r for r in compare(store.load()).rows}
        assert rows["grid"].hours_to_target == pytest.approx(40 / 3600)  # 4 trials x 10 CPU-s
        assert rows["random"].hours_to_target == pytest.approx(20 / 3600)  # 2 trials x 10 CPU-s
        assert rows["random"].cost_sources == {SRC_CPU_TIME: 2}
        speedups.append(rows["random"].speedup_vs_grid)
    assert speedups == [pytest.approx(2.0), pytest.approx(2.0)]
    # the wall clocks the cost used to come from would give 2.0 idle but 0.67 busy
    assert [float(t.metrics["train_seconds"]) for t in busy.load()[1].trials] == [27.0, 27.0]


def test_a_store_from_before_cpu_time_opens_and_falls_back_to_train_seconds(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _store_run(path, dict.fromkeys(["g1", "g2", "g3", "g4", "r1", "r2"], 10.0),
               dict.fromkeys(["g1", "g2", "g3", "g4", "r1", "r2"], "9")).close()  # fmt: skip
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE trials DROP COLUMN cpu_seconds")  # the store as an older client wrote it
    db.commit()
    db.close()
    store = LocalStore(path)
    grid = next(e for e in store.load() if e.algorithm == "grid")
    assert [t.cpu_seconds for t in grid.trials] == [None] * 4
    assert summarize(grid).cost_sources == {SRC_TRAIN_SECONDS: 4}  # old trials: the old cost, named
    store.mark_running("toy-grid", "g1", grid.trials[0].start_time, 1, "/t")  # type: ignore[arg-type]
    store.finish_trial("toy-grid", "g1", "Succeeded", {"accuracy": "0.5"}, grid.trials[0].completion_time,  # type: ignore[arg-type]
                       0, cpu_seconds=3.5)  # fmt: skip
    assert store.trials("toy-grid")[0].trial.cpu_seconds == 3.5
