"""Benchmark results at rest: per-trial logs are gzip-compressed, read transparently, resumed from, and the
committed ones are complete (every run in runs.csv has exactly its trials in trials.csv.gz)."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import pytest

from bench.optimizers.runner import load_results, read_csv, run_suite
from bench.optimizers.suites import Suite

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"

TABLE = """# a test table
learning_rate,optimizer,accuracy,train_seconds
1e-3,adam,0.70,2.0
1e-3,sgd,0.65,1.0
1e-2,adam,0.91,3.0
1e-2,sgd,0.80,1.0
"""


def test_read_csv_takes_the_plain_file_or_else_its_gzip_twin(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    assert read_csv(path) == []
    (tmp_path / "rows.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    assert read_csv(path) == [{"a": "1", "b": "2"}]
    path.write_text("a,b\n3,4\n5,6\n")  # a run in progress writes the plain file: it is the newer one
    assert read_csv(path) == [{"a": "3", "b": "4"}, {"a": "5", "b": "6"}]


def _mini_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Suite:
    import bench.optimizers.runner as runner
    import bench.optimizers.suites as suites

    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "toy.csv").write_text(TABLE)
    monkeypatch.setattr(runner, "TABLES_DIR", tables)
    monkeypatch.setattr(suites, "TABLES_DIR", tables)
    return Suite("mini", grid_tables=("toy",), grid_seeds=2, functions=(), function_seeds=0, function_budget=1,
                 live=(), live_seeds=0)  # fmt: skip


def test_a_run_leaves_its_trials_compressed_and_resumes_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite = _mini_suite(tmp_path, monkeypatch)
    out = tmp_path / "results"
    run_suite(suite, out, ["random"], ["grid"], log=lambda m: None)
    assert not (out / "trials.csv").exists() and (out / "trials.csv.gz").exists()
    first = gzip.decompress((out / "trials.csv.gz").read_bytes()).decode()
    assert first.startswith("task,optimizer,seed,mode,index,")
    first_runs = load_results(out)
    assert [(r.optimizer, r.seed) for r in first_runs] == [("random", 0), ("random", 1)]
    assert all(r.records for r in first_runs)

    _, runs, _ = run_suite(suite, out, ["random", "random-noreplace"], ["grid"], log=lambda m: None)
    assert not (out / "trials.csv").exists()
    both = gzip.decompress((out / "trials.csv.gz").read_bytes()).decode()
    assert both.startswith(first)  # the earlier trials are kept as they were, the new runs appended
    assert {(r.optimizer, r.seed) for r in runs} == {
        (o, s) for o in ("random", "random-noreplace") for s in (0, 1)
    }
    assert [r for r in runs if r.optimizer == "random"] == first_runs  # resumed: not run again

    run_suite(suite, out, ["random"], ["grid"], resume=False, log=lambda m: None)
    assert {r.optimizer for r in load_results(out)} == {"random"}  # --fresh drops the compressed trials too


@pytest.mark.parametrize("suite", ["full", "crosscheck"])
def test_the_committed_trials_hold_every_run_of_runs_csv(suite: str) -> None:
    folder = RESULTS / suite
    assert (folder / "trials.csv.gz").is_file()
    with (folder / "runs.csv").open(newline="") as handle:
        expected = {
            (r["task"], r["optimizer"], int(r["seed"]), r["mode"]): int(r["trials"])
            for r in csv.DictReader(handle)
        }
    with gzip.open(folder / "trials.csv.gz", "rt", newline="") as handle:
        counted = Counter(
            (r["task"], r["optimizer"], int(r["seed"]), r["mode"]) for r in csv.DictReader(handle)
        )
    assert counted == Counter({k: n for k, n in expected.items() if n})
    loaded = {(r.task, r.optimizer, r.seed, r.mode): len(r.records) for r in load_results(folder)}
    assert loaded == expected
