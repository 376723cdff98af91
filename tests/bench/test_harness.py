"""The benchmark loop: tables, Katib-shaped requests to the real gRPC service, batches with pending
trials, a 2-seed mini run, and the report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.optimizers import metrics, report
from bench.optimizers.harness import run_one
from bench.optimizers.peers import PEERS, Optimizer, Problem, RandomNoReplacement, Suggestion
from bench.optimizers.runner import load_results, outcomes, run_suite
from bench.optimizers.service import ServiceBackend, ServiceOptimizer
from bench.optimizers.spaces import Param, catalog, to_proto
from bench.optimizers.suites import Suite
from bench.optimizers.tasks import TABLES_DIR, GridTask, load_table
from suggestion_service.proto import api_pb2

TS = api_pb2.TrialStatus

TABLE = """# a test table
learning_rate,batch_size,optimizer,accuracy,train_seconds
1e-3,16,adam,0.70,2.0
1e-3,16,sgd,0.65,1.0
1e-3,32,adam,0.72,2.5
1e-3,32,sgd,,1.5
1e-2,16,adam,0.91,3.0
1e-2,16,sgd,0.80,1.0
1e-2,32,adam,0.85,2.0
1e-2,32,sgd,0.78,1.2
"""


@pytest.fixture
def table(tmp_path: Path) -> GridTask:
    path = tmp_path / "toy.csv"
    path.write_text(TABLE)
    return load_table(path)


@pytest.fixture(scope="module")
def backend() -> Iterator[ServiceBackend]:
    with ServiceBackend() as be:
        yield be


def test_load_table_infers_katib_parameters(table: GridTask) -> None:
    kinds = {p.name: (p.kind, p.values) for p in table.params}
    assert kinds == {
        "learning_rate": ("discrete", ("1e-3", "1e-2")),
        "batch_size": ("discrete", ("16", "32")),
        "optimizer": ("categorical", ("adam", "sgd")),
    }
    assert table.size == 8 and table.best == 0.91 and table.metric == "accuracy"
    assert table.evaluate({"learning_rate": "0.001", "batch_size": "32", "optimizer": "sgd"}).value is None
    assert table.evaluate({"learning_rate": "1e-2", "batch_size": "16.0", "optimizer": "adam"}).cost == 3.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a,train_seconds\n1,1\n2,1\n", "no objective column"),
        ("a,accuracy\n1,0.5\n2,0.6\n", "no train_seconds"),
        ("a,accuracy,train_seconds\n1,0.5,1\n1,0.6,1\n", "single value"),
        ("a,b,accuracy,train_seconds\n1,x,0.5,1\n1,x,0.6,1\n2,y,0.6,1\n2,x,0.6,1\n", "appears twice"),
        ("a,b,accuracy,train_seconds\n1,x,0.5,1\n2,y,0.6,1\n2,x,0.6,1\n", "3 rows but the grid has 4"),
    ],
)
def test_bad_tables_are_rejected_with_the_reason(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        load_table(path)


def test_shipped_tables_are_katib_shaped_grids() -> None:
    paths = sorted(TABLES_DIR.glob("sklearn_*.csv"))
    assert len(paths) >= 4
    for path in paths:
        task = load_table(path)
        assert 16 <= task.size <= 96, path
        assert all(c > 0 for c in task.costs.values()), path
        assert task.n_best() >= 1 and task.n_near() >= task.n_best()


def test_param_priors_give_feasible_katib_values() -> None:
    params = [
        Param("lr", "double", low=1e-5, high=1e-1, log=True),
        Param("layers", "int", low=1, high=8),
        Param("width", "int", low=8, high=512, log=True),
        Param("dropout", "double", low=0.0, high=0.5, step=0.1),
        Param("opt", "categorical", values=("adam", "sgd")),
        Param("bs", "discrete", values=("16", "32", "64")),
    ]
    space = catalog(params)
    for u in (0.0, 0.3, 0.999999, 1.0):
        assignment = {p.name: p.from_unit(u) for p in params}
        assert space.contains(assignment), assignment
    assert [s.name for s in to_proto(params)] == [p.name for p in params]
    with pytest.raises(ValueError, match="needs low < high"):
        Param("x", "double", low=1.0, high=1.0)
    with pytest.raises(ValueError, match="kind"):
        Param("x", "float", low=0.0, high=1.0)


def test_requests_are_katib_shaped_with_pending_and_finished_trials(
    table: GridTask, backend: ServiceBackend
) -> None:
    problem = Problem("toy", table.params, True, seed=3, budget=8, metric="accuracy")
    opt = ServiceOptimizer(problem, backend, "surrogate-gp")
    first = opt.ask(2)
    assert len(first) == 2 and all(catalog(table.params).contains(s.assignment) for s in first)
    ev = table.evaluate(first[0].assignment)
    opt.tell(first[0], ev.value, ev.cost)
    request = opt.request(1)
    spec = request.experiment.spec
    assert spec.algorithm.algorithm_name == "surrogate-gp"
    assert [(s.name, s.value) for s in spec.algorithm.algorithm_settings] == [("random_state", "3")]
    assert spec.objective.type == api_pb2.MAXIMIZE and spec.objective.objective_metric_name == "accuracy"
    assert list(spec.objective.additional_metric_names) == ["train_seconds"]
    assert request.current_request_number == 1 and request.total_request_number == 3
    done, running = request.trials
    assert done.status.condition == TS.SUCCEEDED and running.status.condition == TS.RUNNING
    metrics_sent = {m.name: m.value for m in done.status.observation.metrics}
    assert float(metrics_sent["accuracy"]) == ev.value and float(metrics_sent["train_seconds"]) == ev.cost
    failed = opt.ask(1)[0]
    opt.tell(failed, None, 1.0)
    assert opt.trials[-1].status.condition == TS.FAILED


class Recorder(Optimizer):
    """Records how many configurations each ask wanted and how many were still running."""

    name = "recorder"

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.inner = RandomNoReplacement(problem)
        self.asks: list[tuple[int, int]] = []
        self.running = 0

    def ask(self, n: int) -> list[Suggestion]:
        self.asks.append((n, self.running))
        self.running += n
        return self.inner.ask(n)

    def _tell(self, suggestion: Suggestion, loss: float | None, cost: float) -> None:
        self.running -= 1


def test_batches_keep_parallel_trials_running_like_katib(table: GridTask) -> None:
    seen: list[Recorder] = []

    def make(problem: Problem) -> Recorder:
        seen.append(Recorder(problem))
        return seen[-1]

    result = run_one(table, make, "recorder", seed=0, budget=8, parallel=4)
    assert len(result.records) == 8 and not result.error
    assert seen[0].asks == [(4, 0), (1, 3), (1, 3), (1, 3), (1, 3)]
    assert not any(r.repeat for r in result.records)  # no replacement: 8 distinct configurations


def test_stop_at_best_and_errors_are_recorded(table: GridTask) -> None:
    result = run_one(table, RandomNoReplacement, "random-noreplace", seed=1, budget=24, stop_at_best=True)
    assert table.is_best(result.records[-1].value) and len(result.records) <= table.size

    class Broken(RandomNoReplacement):
        def ask(self, n: int) -> list[Suggestion]:
            raise RuntimeError("peer crashed")

    broken = run_one(table, Broken, "broken", seed=0, budget=3)
    assert broken.records == [] and broken.error == "RuntimeError: peer crashed"


def test_two_seed_mini_run_through_the_service_and_report(
    tmp_path: Path, table: GridTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.optimizers.runner as runner
    import bench.optimizers.suites as suites

    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "toy.csv").write_text(TABLE)
    monkeypatch.setattr(runner, "TABLES_DIR", tables)
    monkeypatch.setattr(suites, "TABLES_DIR", tables)
    suite = Suite("mini", grid_tables=("toy",), grid_seeds=2, functions=(), function_seeds=0, function_budget=1,
                  live=(), live_seeds=0)  # fmt: skip
    out = tmp_path / "results"
    names = ["surrogate-gp", "random", "random-noreplace"]
    tasks, runs, skipped = run_suite(suite, out, names, ["grid"], log=lambda m: None)
    assert skipped == {} and len(runs) == 6 and not any(r.error for r in runs)
    assert {(r.optimizer, r.seed) for r in load_results(out)} == {(o, s) for o in names for s in (0, 1)}
    ours = [r for r in runs if r.optimizer == "surrogate-gp"]
    assert all(not any(t.repeat for t in r.records) for r in ours)  # never re-runs a finished configuration
    assert all(len(r.records) <= table.size and table.is_best(r.records[-1].value) for r in ours)
    rows = outcomes(tasks, runs, suite)
    assert {o.optimizer for o in rows if o.metric == "trials_to_best"} == set(names)
    md = report.render(suite, "python bench/run_optimizers.py --suite mini", tasks, runs, rows, {}, [], 1.0)
    assert "Mean trials to the best configuration" in md and "| surrogate-gp |" in md
    assert "Average rank" in md and "win/tie/loss" in md
    assert metrics.PRIMARY["grid"] == "trials_to_best"


def test_every_peer_declares_what_it_stands_for() -> None:
    assert {"random", "random-noreplace", "grid", "hyperopt-tpe", "skopt-gp", "optuna-tpe", "optuna-gp", "smac-rf",
            "smac-gp", "hebo"} <= set(PEERS)  # fmt: skip
    assert all(spec.stands_for for spec in PEERS.values())


@pytest.mark.parametrize("name", sorted(PEERS))
def test_each_peer_proposes_feasible_configurations_in_sequence_and_in_batches(
    name: str, table: GridTask
) -> None:
    """Runs where the peer's library is installed (the bench environment); skipped in .venv."""
    if PEERS[name].package:
        pytest.importorskip(PEERS[name].package)
    space = catalog(table.params)
    for parallel in (1, 2):
        result = run_one(table, PEERS[name].build, name, seed=0, budget=4, parallel=parallel)
        assert not result.error, result.error
        assert len(result.records) == 4
        for r in result.records:
            assignment = dict(kv.split("=") for kv in r.config.split(";"))
            assert space.contains(assignment)


def test_coco_mixint_task_uses_the_mixint_optimum() -> None:
    pytest.importorskip("cocoex")
    from bench.optimizers.tasks import FunctionTask

    task = FunctionTask("f01", 1, 1)
    assert [p.kind for p in task.params] == ["int", "int", "int", "int", "double"]
    assert task.fopt == pytest.approx(79.48)  # bbob f1 instance 1, from COCO's own optimal parameter
    value = task.evaluate({"x0": "0", "x1": "0", "x2": "0", "x3": "0", "x4": "0.0"}).value
    assert value is not None and value > task.fopt and task.log_regret(value) > -8
