"""bench/tiny_grid_tables.py: grids from the manifests, one real trial, tables and their summary."""

from __future__ import annotations

import pytest

from bench import tiny_grid_tables as grids
from tests.trainer.helpers import REPO


@pytest.mark.parametrize("task", grids.TASKS)
def test_grids_come_from_the_manifests(task: str) -> None:
    grid = grids.load_grid(task)
    configs = grid.configs()
    assert len(configs) == 24 and len({tuple(c.values()) for c in configs}) == 24
    assert grid.strategies["accuracy"] == "max"
    args = grids.trial_args(task, configs[0], 42, REPO / "unused")
    for name, value in configs[0].items():
        flag = args.index(f"--{name.replace('_', '-')}")
        assert args[flag + 1] == value
    assert args[args.index("--preset") + 1] == "tiny"


def test_summary_counts_near_best_and_ties(tmp_path) -> None:
    grid = grids.Grid("sst2", ("learning_rate", "num_epochs"), (("1", "2"), ("3", "4")), {})
    accuracies = {("1", "3"): 0.70, ("1", "4"): 0.80, ("2", "3"): 0.798, ("2", "4"): 0.80}
    rows = [
        {"learning_rate": lr, "num_epochs": ep, "accuracy": acc, "f1": acc - 0.1, "train_seconds": 1.0}
        for (lr, ep), acc in accuracies.items()
    ]
    path = tmp_path / "t.csv"
    grids.write_table(rows, grid, path)
    comment, header = path.read_text().splitlines()[:2]
    assert comment.startswith("# python bench/tiny_grid_tables.py --tasks sst2")
    assert header == "learning_rate,num_epochs,accuracy,f1,train_seconds"
    back = grids.read_table(path, grid)
    summary = grids.summarise(back, grid)
    assert (summary["min"], summary["max"], summary["median"]) == (0.70, 0.80, pytest.approx(0.799))
    assert summary["near_best"] == 3 and summary["ties_at_max"] == 2 and summary["distinct"] == 3
    assert summary["best"] == {"learning_rate": "1", "num_epochs": "4"}
    effects = grids.main_effects(back, grid)
    assert effects["learning_rate"] == {"1": pytest.approx(0.75), "2": pytest.approx(0.799)}
    markdown = grids.render([summary], {"sst2": effects}, "python bench/tiny_grid_tables.py")
    assert "| sst2 | 4 | 0.7000 | 0.7990 | 0.8000 | learning_rate=1, num_epochs=4 | 3 | 2 | 3 |" in markdown


def test_bad_flags_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        grids.parse_args(["--tasks", "sst2,qnli"])
    assert "allowed: sst2, mrpc, cifar10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grids.parse_args(["--workers", "4"])
    assert "--workers must be 1 or 2" in capsys.readouterr().err


def test_one_grid_trial_reports_katib_observations() -> None:
    grid = grids.load_grid("sst2")
    config = {"learning_rate": "5e-5", "batch_size": "32", "max_seq_length": "128", "num_epochs": "3"}
    row = grids.run_trial("sst2", config, 42, grid.strategies)
    assert 0.4 < row["accuracy"] < 0.95 and 0.0 <= row["f1"] <= 1.0 and row["train_seconds"] > 0
    assert {k: row[k] for k in config} == config


def test_committed_tables_match_the_grids() -> None:
    for task in grids.TASKS:
        grid = grids.load_grid(task)
        rows = grids.read_table(REPO / "bench" / "tables" / f"tiny_{task}.csv", grid)
        assert [{n: r[n] for n in grid.names} for r in rows] == grid.configs()
        summary = grids.summarise(rows, grid)
        assert summary["max"] - summary["min"] > 0.2  # a spread worth optimising over
        assert summary["ties_at_max"] <= 3 and summary["max"] < 0.95
