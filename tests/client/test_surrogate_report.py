"""surrogate-report: the numbers on experiments with a known structure, the CLI on the local store and on the
fake Kubernetes API (through the real kubernetes client), and every error path."""

from __future__ import annotations

import copy
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from client.cli import main
from client.errors import ClientError
from client.experiments import ExperimentDef
from client.local_store import LocalStore
from client.model import SUCCEEDED, Experiment, Trial
from client.surrogate_render import report_markdown, summary_lines
from client.surrogate_report import build_report
from tests.client.fake_k8s import FakeKubeAPI, at

NS = "katib-surrogate"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LRS = ["0.001", "0.003", "0.01", "0.03", "0.1", "0.3"]
UNITS = ["8", "16", "32", "64", "128", "256"]
GRID = [{"lr": a, "units": b} for a in LRS for b in UNITS]


def smooth(params: dict[str, str]) -> float:
    """A smooth bowl over the grid: best at lr 0.03, units 32 (log scales)."""
    return round(
        0.9
        - 0.05 * (math.log10(float(params["lr"])) + 1.5) ** 2
        - 0.02 * (math.log2(int(params["units"])) - 5) ** 2,
        6,
    )


def body(name: str, parameters: list[dict[str, Any]], objective_type: str = "maximize",
         algorithm: str = "grid", settings: list[dict[str, str]] | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "objective": {
            "type": objective_type,
            "objectiveMetricName": "accuracy",
            "additionalMetricNames": ["f1"],
        },
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings or []},
        "parallelTrialCount": 2,
        "maxTrialCount": 36,
        "parameters": parameters,
    }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": NS, "labels": {"katib-surrogate/task": "syn"}},
        "spec": spec,
    }


GRID_PARAMS = [
    {"name": "lr", "parameterType": "discrete", "feasibleSpace": {"list": LRS}},
    {"name": "units", "parameterType": "discrete", "feasibleSpace": {"list": UNITS}},
]


def experiment(
    doc: dict[str, Any], rows: list[tuple[dict[str, str], float | None, str]]
) -> tuple[ExperimentDef, Experiment]:
    """Definition + result model with ``rows`` (parameters, accuracy, condition) started in this order."""
    d = ExperimentDef.from_body(doc, "test.yaml")
    model = d.to_model("local")
    model.condition = SUCCEEDED
    for i, (params, value, condition) in enumerate(rows):
        model.trials.append(
            Trial(
                name=f"{d.name}-{i:03d}",
                parameters=params,
                condition=condition,
                metrics={} if value is None else {"accuracy": value},
                start_time=T0 + timedelta(seconds=10 * i),
                completion_time=T0 + timedelta(seconds=10 * i + 5),
            )
        )
    return d, model


def grid_rows(seed: int = 0, shuffle_metric: bool = False) -> list[tuple[dict[str, str], float | None, str]]:
    """The 36-point grid in a seeded random start order (as Katib's grid runs it); the accuracy is the
    smooth bowl, or (``shuffle_metric``) the same values dealt out to the configurations at random."""
    rng = np.random.default_rng(seed)
    values = [smooth(p) for p in GRID]
    if shuffle_metric:
        values = [float(v) for v in rng.permutation(values)]
    return [(GRID[i], values[i], SUCCEEDED) for i in rng.permutation(len(GRID))]


# --- the numbers -----------------------------------------------------------------------------------------
def test_a_monotone_objective_is_ranked_perfectly() -> None:
    # one parameter, accuracy rising linearly with it; the training half covers both ends
    values = [str(v) for v in range(1, 13)]
    doc = body("line", [{"name": "x", "parameterType": "discrete", "feasibleSpace": {"list": values}}])
    order = [1, 12, 4, 8, 6, 10, 2, 3, 5, 7, 9, 11]
    d, e = experiment(doc, [({"x": str(v)}, 0.5 + 0.02 * v, SUCCEEDED) for v in order])
    report = build_report(d, e, top_k=3)
    assert report.train_trials == [f"line-{i:03d}" for i in range(6)]
    assert [h.parameters["x"] for h in report.held_out] == ["2", "3", "5", "7", "9", "11"]
    assert report.spearman == pytest.approx(1.0)
    assert report.top_k_hits == 3 and report.top_k_hit_rate == 1.0
    assert report.chance_hits == pytest.approx(3 * 3 / 6)
    assert [h.observed_rank for h in report.held_out] == [6, 5, 4, 3, 2, 1]
    assert [h.predicted_rank for h in report.held_out] == [6, 5, 4, 3, 2, 1]
    assert report.best_observed == pytest.approx(0.5 + 0.02 * 11)
    assert report.best_of_predicted_top_k == report.best_observed
    # predictions are in the objective's units, between the training extremes, with ordered error bars
    for h in report.held_out:
        assert 0.52 <= h.predicted <= 0.74 and h.predicted_low <= h.predicted <= h.predicted_high
    # minimizing the same numbers reverses every rank and keeps the correlation
    d, e = experiment(body("line-min", doc["spec"]["parameters"], "minimize"),
                      [({"x": str(v)}, 0.5 + 0.02 * v, SUCCEEDED) for v in order])  # fmt: skip
    low = build_report(d, e, top_k=3, algorithm="surrogate-rf")
    assert low.spearman == pytest.approx(1.0, abs=0.1) and low.top_k_hits >= 2
    assert low.best_observed == pytest.approx(0.54)
    assert [h.observed_rank for h in low.held_out] == [1, 2, 3, 4, 5, 6]


def test_smooth_grid_is_predicted_and_shuffled_metrics_are_not() -> None:
    d, e = experiment(body("syn-grid", GRID_PARAMS), grid_rows(seed=0))
    good = build_report(d, e)
    assert len(good.train_trials) == 18 and len(good.held_out) == 18
    assert good.spearman is not None and good.spearman > 0.85
    assert good.top_k_hits >= 2 and good.best_of_predicted_top_k == good.best_observed
    rhos = []
    for seed in range(4):
        d, e = experiment(body("syn-shuffled", GRID_PARAMS), grid_rows(seed=seed, shuffle_metric=True))
        report = build_report(d, e)
        assert report.spearman is not None
        rhos.append(report.spearman)
    # a metric unrelated to the configuration cannot be predicted: correlations scatter around 0
    assert abs(float(np.mean(rhos))) < 0.3 and max(rhos) < 0.6
    assert float(np.mean(rhos)) < good.spearman - 0.5


def test_next_suggestions_come_from_the_engine_and_skip_what_was_tried() -> None:
    rows = grid_rows(seed=1)
    # a failed trial among the first ones: it is in the training window Katib would send
    rows.insert(2, ({"lr": "0.3", "units": "256"}, None, "Failed"))
    rows = [r for i, r in enumerate(rows) if not (i > 2 and r[0] == {"lr": "0.3", "units": "256"})]
    d, e = experiment(body("syn-next", GRID_PARAMS, algorithm="surrogate-gp"), rows)
    report = build_report(d, e, top_k=4)
    assert report.algorithm == "surrogate-gp" and report.train_failed == 1
    assert len(report.train_trials) == 17 and len(report.held_out) == 18
    train = {json.dumps(p, sort_keys=True) for p, _, _ in rows[:18]}
    assert len(report.suggestions) == 4
    for s in report.suggestions:
        assert json.dumps(s.parameters, sort_keys=True) not in train  # never re-proposes a tried one
        # the grid was run to the end, so every proposal was run later and has an observed value
        assert s.trial is not None and s.observed == pytest.approx(smooth(s.parameters))
        assert s.observed_rank is not None and 1 <= s.observed_rank <= 18
    assert [s.position for s in report.suggestions] == [1, 2, 3, 4]


def test_settings_that_do_not_apply_are_dropped_with_a_note() -> None:
    settings = [{"name": "random_state", "value": "3"}, {"name": "n_trees", "value": "16"},
                {"name": "warm_start_experiments", "value": "other"}]  # fmt: skip
    d, e = experiment(
        body("syn-rf", GRID_PARAMS, algorithm="surrogate-rf", settings=settings), grid_rows(seed=2)
    )
    report = build_report(d, e)
    assert report.algorithm == "surrogate-rf" and report.settings == {"random_state": "3", "n_trees": "16"}
    assert any("warm_start_experiments=other" in n for n in report.notes)
    gp = build_report(d, e, algorithm="surrogate-gp")
    assert gp.settings == {"random_state": "3"}
    assert any("n_trees=16" in n and "warm_start_experiments=other" in n for n in gp.notes)


def test_skipped_trials_flat_values_and_unrun_suggestions_are_noted() -> None:
    # the grid stopped after 15 trials, one of them with a value no longer in the search space
    rows = grid_rows(seed=4)[:14]
    rows.insert(10, ({"lr": "0.5", "units": "8"}, 0.7, SUCCEEDED))
    d, e = experiment(body("syn-edge", GRID_PARAMS), rows)
    report = build_report(d, e)
    assert len(report.train_trials) == 7 and len(report.held_out) == 7
    assert "syn-edge-010" not in [h.trial for h in report.held_out]
    assert report.notes[0].startswith("held-out trial syn-edge-010 skipped: parameter 'lr': '0.5' is not in")
    # the engine's next picks were never run (the grid stopped there): no outcome, a note, "not run"
    assert all(s.trial is None and s.observed is None and s.observed_rank is None for s in report.suggestions)
    assert report.notes[1] == (
        "3 of the 3 configurations it would run next were never run by syn-edge after the training trials, "
        "so their outcome is unknown"
    )
    assert report_markdown(report).count("| not run | - |") == 3
    # every held-out trial has the same value: no correlation; all share rank 1, so every pick is a hit
    first = [p for p, _, _ in grid_rows(seed=6)[:12]]
    flat_rows = [(p, 0.8 if i >= 6 else 0.5 + 0.01 * i, SUCCEEDED) for i, p in enumerate(first)]
    d, e = experiment(body("syn-flat", GRID_PARAMS), flat_rows)
    flat = build_report(d, e)
    assert flat.spearman is None and flat.spearman_p is None
    assert "Spearman correlation undefined: every held-out trial has the same observed value" in flat.notes
    assert "Spearman rank correlation, predicted vs observed accuracy: undefined" in summary_lines(flat)
    assert [h.observed_rank for h in flat.held_out] == [1] * 6 and flat.top_k_hits == 3


@pytest.mark.parametrize(
    ("n_rows", "kwargs", "message"),
    [
        (5, {}, "has 5 finished trial(s) with a value of accuracy (6 trials in all); surrogate-report needs "
                "at least 6 (3 to fit the model, 3 to evaluate it)"),
        (12, {"train_trials": 10}, "--train-trials 10 leaves 10 trial(s) to fit and 2 to evaluate"),
        (12, {"train_trials": 40}, "--train-trials 40 is more than the 12 finished trials with a value of "
                                   "accuracy in syn-small; use --train-trials between 3 and 9"),
        (12, {"train_fraction": 0.2}, "--train-fraction 0.2 leaves 2 trial(s) to fit and 10 to evaluate"),
        (12, {"train_fraction": 1.0}, "train fraction must be between 0 and 1 (exclusive), got 1.0"),
        (12, {"top_k": 7}, "--top-k 7 is more than the 6 held-out trials; use at most 6"),
        (12, {"algorithm": "tpe"}, "algorithm 'tpe' has no surrogate; allowed: surrogate-gp, surrogate-rf"),
    ],
)  # fmt: skip
def test_bad_inputs(n_rows: int, kwargs: dict[str, Any], message: str) -> None:
    rows = grid_rows(seed=3)[:n_rows]
    rows.append(({"lr": "0.1", "units": "8"}, None, "MetricsUnavailable"))
    d, e = experiment(body("syn-small", GRID_PARAMS), rows)
    with pytest.raises(ClientError) as err:
        build_report(d, e, **kwargs)
    assert message in str(err.value)


# --- CLI: local store ------------------------------------------------------------------------------------
def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), console=Console(file=out, width=250, color_system=None))
    return code, out.getvalue()


def fill_store(path: Path, doc: dict[str, Any], rows: list[tuple[dict[str, str], float | None, str]]) -> None:
    store = LocalStore(path)
    d = ExperimentDef.from_body(doc, "test.yaml")
    store.ensure_experiment(d, d.max_trial_count, 2)
    store.add_trials(d.name, [(f"{d.name}-{i:03d}", params) for i, (params, _, _) in enumerate(rows)])
    for i, (_, value, condition) in enumerate(rows):
        name = f"{d.name}-{i:03d}"
        store.mark_running(d.name, name, T0 + timedelta(seconds=10 * i), 0, "")
        observation = {} if value is None else {"accuracy": repr(value)}
        store.finish_trial(d.name, name, condition, observation, T0 + timedelta(seconds=10 * i + 5), 0)
    store.set_experiment_state(
        d.name, SUCCEEDED, "ExperimentMaxTrialsReached", start_time=T0, completion_time=T0
    )
    store.close()


def test_cli_on_the_local_store_writes_md_json_png(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    fill_store(store, body("syn-grid", GRID_PARAMS), grid_rows(seed=0))
    out_dir = tmp_path / "report"
    code, out = run_cli("surrogate-report", "--local", "--store", str(store), "--experiment", "syn-grid",
                        "--out", str(out_dir))  # fmt: skip
    assert code == 0, out
    assert "Surrogate report: syn-grid (local, grid); accuracy (maximize)" in out
    assert "surrogate-gp fitted on the first 18 of 36 finished trials" in out
    assert "Spearman rank correlation, predicted vs observed accuracy: +" in out
    assert "What surrogate-gp would run next vs the best held-out trials" in out
    data = json.loads((out_dir / "syn-grid-surrogate-report.json").read_text())
    d, e = experiment(body("syn-grid", GRID_PARAMS), grid_rows(seed=0))
    direct = build_report(d, e)
    assert data["spearman"] == pytest.approx(direct.spearman)
    assert data["top_k_hits"] == direct.top_k_hits and data["top_k"] == 3
    assert [s["parameters"] for s in data["suggestions"]] == [s.parameters for s in direct.suggestions]
    assert len(data["held_out"]) == 18 and data["source"] == "local"
    md = (out_dir / "syn-grid-surrogate-report.md").read_text()
    assert md.startswith("# Surrogate report: syn-grid") and "## Held-out trials (start order)" in md
    assert md.count("| syn-grid-") == 18 and "![predicted vs observed](syn-grid-surrogate-report.png)" in md
    png = (out_dir / "syn-grid-surrogate-report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from matplotlib.image import imread

    pixels = imread(out_dir / "syn-grid-surrogate-report.png")
    assert pixels.shape[0] >= 400 and float(pixels[..., :3].std()) > 0.05  # not blank
    # other split and model flags
    code, out = run_cli("surrogate-report", "--local", "--store", str(store), "--experiment", "syn-grid",
                        "--algorithm", "surrogate-rf", "--train-trials", "24", "--top-k", "5")  # fmt: skip
    assert code == 0 and "surrogate-rf fitted on the first 24 of 36" in out and "Top-5 hit rate" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--experiment", "nope"], 1, "experiment 'nope' not found in {store}; stored: syn-grid"),
        (["--experiment", "syn-grid", "--train-fraction", "1.5"], 2,
         "argument --train-fraction: expected a fraction between 0 and 1 (exclusive), got '1.5'"),
        (["--experiment", "syn-grid", "--train-fraction", "0.5", "--train-trials", "4"], 2,
         "argument --train-trials: not allowed with argument --train-fraction"),
        (["--experiment", "syn-grid", "--top-k", "0"], 2, "expected a whole number >= 1, got '0'"),
        (["--experiment", "syn-grid", "--algorithm", "grid"], 2, "argument --algorithm: invalid choice: 'grid'"),
        (["--experiment", "syn-grid", "-n", "team-b"], 2, "cannot be used with --local"),
        ([], 2, "the following arguments are required: --experiment"),
    ],
)  # fmt: skip
def test_cli_errors_local(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                          message: str) -> None:  # fmt: skip
    store = tmp_path / "store.sqlite"
    fill_store(store, body("syn-grid", GRID_PARAMS), grid_rows(seed=0))
    result, _ = run_cli("surrogate-report", "--local", "--store", str(store), *argv)
    err = capsys.readouterr().err
    assert result == code
    assert message.format(store=store) in err and err.startswith("error: ") and "Traceback" not in err


def test_cli_error_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(
        "surrogate-report", "--local", "--store", str(tmp_path / "x.sqlite"), "--experiment", "a"
    )
    assert code == 1 and "local store" in capsys.readouterr().err and not (tmp_path / "x.sqlite").exists()


# --- CLI: cluster (fake Kubernetes API) ------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    api = FakeKubeAPI().start()
    yield api
    api.stop()


def load_cluster_grid(fake: FakeKubeAPI, rows: list[tuple[dict[str, str], float | None, str]]) -> None:
    doc = body("syn-grid", GRID_PARAMS)
    fake.put("experiments", doc)
    for i, (params, value, condition) in enumerate(rows):
        metrics = None if value is None else {"accuracy": (repr(value), repr(value), repr(value))}
        fake.add_trial(NS, "syn-grid", f"syn-grid-{i:03d}", params, condition, metrics, at(T0, 10 * i),
                       at(T0, 10 * i + 5), objective=doc["spec"]["objective"])  # fmt: skip
    fake.set_experiment_status(NS, "syn-grid", SUCCEEDED, T0, at(T0, 400))


def test_cli_on_the_cluster_matches_the_local_store(fake: FakeKubeAPI, tmp_path: Path) -> None:
    rows = grid_rows(seed=0)
    load_cluster_grid(fake, rows)
    kubeconfig = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    code, out = run_cli("surrogate-report", "--kubeconfig", kubeconfig, "--experiment", "syn-grid",
                        "--out", str(tmp_path / "cluster"))  # fmt: skip
    assert code == 0, out
    assert "Surrogate report: syn-grid (cluster, grid)" in out
    fill_store(tmp_path / "store.sqlite", body("syn-grid", GRID_PARAMS), rows)
    code, _ = run_cli("surrogate-report", "--local", "--store", str(tmp_path / "store.sqlite"),
                      "--experiment", "syn-grid", "--out", str(tmp_path / "local"))  # fmt: skip
    assert code == 0
    cluster = json.loads((tmp_path / "cluster" / "syn-grid-surrogate-report.json").read_text())
    local = json.loads((tmp_path / "local" / "syn-grid-surrogate-report.json").read_text())
    for key in (
        "spearman",
        "spearman_p",
        "top_k_hits",
        "train_trials",
        "suggestions",
        "held_out",
        "best_observed",
    ):
        assert cluster[key] == local[key], key
    assert cluster["source"] == "cluster" and cluster["namespace"] == NS


def test_cli_cluster_errors(fake: FakeKubeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    load_cluster_grid(fake, grid_rows(seed=0)[:4])
    kubeconfig = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    code, _ = run_cli("surrogate-report", "--kubeconfig", kubeconfig, "--experiment", "missing")
    err = capsys.readouterr().err
    assert code == 1 and "experiment 'missing' not found in namespace 'katib-surrogate'" in err
    code, _ = run_cli("surrogate-report", "--kubeconfig", kubeconfig, "--experiment", "syn-grid")
    err = capsys.readouterr().err
    assert code == 1 and "syn-grid has 4 finished trial(s) with a value of accuracy" in err
    code, _ = run_cli(
        "surrogate-report", "--kubeconfig", kubeconfig, "-n", "secret", "--experiment", "syn-grid"
    )
    assert code == 1 and "forbidden" in capsys.readouterr().err
    # no cluster at all: no kubeconfig, not in a pod
    import kubernetes.config.kube_config as kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _ = run_cli("surrogate-report", "--experiment", "syn-grid")
    err = capsys.readouterr().err
    assert code == 1 and "no Kubernetes configuration found" in err and "use --local" in err


# --- review fixes: ties in the chance level, a flat training set, notes that were lost ---------------------
def test_chance_level_counts_the_ties_with_the_kth_best_value() -> None:
    # every held-out trial ties for best: any pick of k is a hit, so chance is k of k, not k * k / n
    first = [p for p, _, _ in grid_rows(seed=6)[:12]]
    flat_rows = [(p, 0.8 if i >= 6 else 0.5 + 0.01 * i, SUCCEEDED) for i, p in enumerate(first)]
    flat = build_report(*experiment(body("syn-flat", GRID_PARAMS), flat_rows))
    assert flat.top_k_hits == 3 and flat.chance_hits == pytest.approx(3.0)
    # k = 2 with the 2nd best value shared by three trials: 4 of the 6 held-out trials count as top 2
    held = [0.9, 0.8, 0.8, 0.8, 0.5, 0.4]
    rows = [(p, 0.5 + 0.01 * i, SUCCEEDED) for i, p in enumerate(first[:6])]
    rows += [(p, held[i], SUCCEEDED) for i, p in enumerate(first[6:])]
    tied = build_report(*experiment(body("syn-tied", GRID_PARAMS), rows), top_k=2)
    assert sum(h.in_observed_top_k for h in tied.held_out) == 4
    assert tied.chance_hits == pytest.approx(2 * 4 / 6)


def test_a_flat_training_set_gives_no_correlation_from_numerical_noise() -> None:
    # the model learnt nothing (all training values equal): its order is noise, not a prediction
    first = [p for p, _, _ in grid_rows(seed=2)[:12]]
    rows = [(p, 0.5 if i < 6 else 0.5 + 0.01 * i, SUCCEEDED) for i, p in enumerate(first)]
    for algorithm in ("surrogate-gp", "surrogate-rf"):
        report = build_report(*experiment(body("syn-flat-train", GRID_PARAMS), rows), algorithm=algorithm)
        assert report.spearman is None and report.spearman_p is None
        assert any("every training trial has the same observed accuracy" in n for n in report.notes)
        assert [h.predicted_rank for h in report.held_out] == [1, 2, 3, 4, 5, 6]  # start order


def test_training_trials_outside_the_space_are_noted() -> None:
    rows = grid_rows(seed=0)[:14]
    rows[1] = ({"lr": "0.01"}, 0.8, SUCCEEDED)
    report = build_report(*experiment(body("syn-part", GRID_PARAMS), rows))
    assert any(n.startswith("training trial syn-part-001 skipped: assignment names") for n in report.notes)


def test_next_picks_that_ran_later_but_failed_or_still_run_are_not_called_never_run() -> None:
    rows = grid_rows(seed=4)[:14]
    d, e = experiment(body("syn-later", GRID_PARAMS), rows)
    picks = [s.parameters for s in build_report(d, e, train_trials=7).suggestions]
    assert len(picks) == 3
    # the experiment went on: the 1st pick failed, the 2nd is running, the 3rd ran twice
    later = [(picks[0], None, "Failed"), (picks[1], None, "Running"), (picks[2], 0.11, SUCCEEDED),
             (picks[2], 0.22, SUCCEEDED)]  # fmt: skip
    d, e = experiment(body("syn-later", GRID_PARAMS), rows + later)
    report = build_report(d, e, train_trials=7)
    assert [s.parameters for s in report.suggestions] == picks  # the same window: the same picks
    first, second, third = report.suggestions
    assert (first.trial, first.condition, first.observed) == ("syn-later-014", "Failed", None)
    assert (second.trial, second.condition, second.observed) == ("syn-later-015", "Running", None)
    assert (third.trial, third.observed) == ("syn-later-016", pytest.approx(0.11))  # the first run of it
    md = report_markdown(report)
    assert "| Failed | - |" in md and "| Running | - |" in md
    assert not any("never run" in n for n in report.notes)


def test_cluster_trials_skipped_as_malformed_are_noted_in_the_report(
    fake: FakeKubeAPI, tmp_path: Path
) -> None:
    load_cluster_grid(fake, grid_rows(seed=0)[:14])
    labels = {"katib.kubeflow.org/experiment": "syn-grid"}
    fake.put("trials", {"metadata": {"name": "syn-grid-bad", "namespace": NS, "labels": labels},
                        "spec": {}, "status": {"conditions": {"type": "Succeeded"}}})  # fmt: skip
    kubeconfig = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    code, out = run_cli("surrogate-report", "--kubeconfig", kubeconfig, "--experiment", "syn-grid",
                        "--out", str(tmp_path / "r"))  # fmt: skip
    assert code == 0, out
    assert "Note: skipped trial syn-grid-bad: malformed object" in out
    assert "skipped trial syn-grid-bad" in (tmp_path / "r" / "syn-grid-surrogate-report.md").read_text()


def test_cli_report_files_that_cannot_be_written_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store.sqlite"
    fill_store(store, body("syn-grid", GRID_PARAMS), grid_rows(seed=0))
    out_dir = tmp_path / "r"
    (out_dir / "syn-grid-surrogate-report.json").mkdir(parents=True)  # a folder where the file goes
    code, _ = run_cli("surrogate-report", "--local", "--store", str(store), "--experiment", "syn-grid",
                      "--out", str(out_dir))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: cannot write ") and "syn-grid-surrogate-report.json" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda doc: doc.update(status="garbage"), ""),
        (lambda doc: doc["metadata"].update(labels="x"), "metadata.labels must be a mapping, got 'x'"),
        (lambda doc: doc["spec"]["objective"].update(goal="high"), "spec.objective.goal must be a number"),
    ],
)
def test_cluster_experiment_with_a_malformed_status_or_labels_is_no_traceback(
    fake: FakeKubeAPI, tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Any, message: str
) -> None:
    load_cluster_grid(fake, grid_rows(seed=0)[:12])
    doc = copy.deepcopy(fake.objects[("experiments", NS, "syn-grid")])
    mutate(doc)
    fake.put("experiments", doc)
    kubeconfig = str(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    code, out = run_cli("surrogate-report", "--kubeconfig", kubeconfig, "--experiment", "syn-grid")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message:
        assert (
            code == 1
            and err.startswith("error: cannot read experiment katib-surrogate/syn-grid")
            and message in err
        )
    else:
        assert code == 0 and "Surrogate report: syn-grid (cluster, grid)" in out, err
        assert "Note: ignored malformed field(s) of the Experiment object: status (str)" in out


def test_trials_still_running_from_the_training_window_are_sent_as_running() -> None:
    # Katib would have sent a trial that started among the training trials (and still runs) as running:
    # the engine must not propose its configuration again, and it is no failed training trial
    rows = grid_rows(seed=4)[:14]
    picks = [s.parameters for s in build_report(*experiment(body("syn-run", GRID_PARAMS), rows),
                                                train_trials=7).suggestions]  # fmt: skip
    running = [*rows[:3], (picks[0], None, "Running"), *rows[3:]]
    report = build_report(*experiment(body("syn-run", GRID_PARAMS), running), train_trials=7)
    assert report.train_failed == 0 and len(report.train_trials) == 7
    assert picks[0] not in [s.parameters for s in report.suggestions]
