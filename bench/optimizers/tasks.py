"""Benchmark tasks: tabulated Katib-shaped grids, COCO bbob-mixint functions, live scikit-learn tuning.

Every task has a search space (``params``), a direction (``maximize``) and ``evaluate(assignment)``
returning the objective value (None for a failed trial) and its cost in seconds:

* ``GridTask``: a CSV table with one row per configuration of a finite grid; the cost is the row's
  measured ``train_seconds``. Evaluating a configuration twice costs its training time twice.
* ``FunctionTask``: a ``bbob-mixint`` problem from COCO (PyPI ``coco-experiment``); integer
  variables become Katib ``int`` parameters, continuous ones ``double``. The optimum comes from COCO
  itself (``_best_parameter`` of the mixint problem), never from plain ``bbob``. Cost 1 per call.
* ``LiveTask``: a scikit-learn model x dataset x metric, scored by k-fold cross-validation with a
  fixed split (Bayesmark style); a configuration is evaluated once and then cached, so a repeat
  costs the same seconds again but not the CPU.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.optimizers.spaces import Param, canonical_key, catalog, space_size
from katib_model.parameters import KatibType

TABLES_DIR = Path(__file__).resolve().parents[1] / "tables"
# Columns of a table that are metrics, not parameters. The objective is the first of OBJECTIVES present.
OBJECTIVES = ("accuracy", "r2")
METRIC_COLUMNS = frozenset(
    {"accuracy", "f1", "top5_accuracy", "r2", "eval_loss", "train_seconds", "gpu_seconds", "gpu_energy_j"}
)
COST_COLUMN = "train_seconds"
NEAR_FRACTION = 0.005  # "within 0.5% of the best": |best - value| <= 0.005 * |best|


@dataclass(frozen=True)
class Evaluation:
    """One trial's outcome: objective value as reported (None = failed) and cost in seconds."""

    value: float | None
    cost: float


class Task:
    """Base class: a named optimisation problem over ``params`` (see the module docstring)."""

    name: str
    family: str  # "grid" | "function" | "live"
    params: list[Param]
    maximize: bool
    metric: str

    def evaluate(self, assignment: Mapping[str, str]) -> Evaluation:
        """Objective value and cost of one configuration."""
        raise NotImplementedError

    def loss(self, value: float) -> float:
        """Value -> loss (lower is better)."""
        return -value if self.maximize else value


@dataclass
class GridTask(Task):
    """A tabulated finite grid (see the module docstring)."""

    name: str
    params: list[Param]
    values: dict[tuple, float | None]
    costs: dict[tuple, float]
    maximize: bool = True
    metric: str = "accuracy"
    source: str = ""
    family: str = "grid"
    _space: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._space = catalog(self.params)
        size = space_size(self.params)
        if size != len(self.values):
            raise ValueError(
                f"table {self.name}: {len(self.values)} rows but the grid has {size} configurations"
            )
        finite = [v for v in self.values.values() if v is not None]
        if not finite:
            raise ValueError(f"table {self.name}: no configuration has a finite {self.metric}")
        self.best = max(finite) if self.maximize else min(finite)

    def key(self, assignment: Mapping[str, str]) -> tuple:
        """Canonical key of a configuration of this grid."""
        return canonical_key(self._space, assignment)  # type: ignore[arg-type]

    def evaluate(self, assignment: Mapping[str, str]) -> Evaluation:
        """The table's value and training seconds for ``assignment``."""
        k = self.key(assignment)
        return Evaluation(self.values[k], self.costs[k])

    @property
    def size(self) -> int:
        """Number of configurations."""
        return len(self.values)

    def is_best(self, value: float | None) -> bool:
        """True when ``value`` equals the grid's best value."""
        return value is not None and value == self.best

    def is_near(self, value: float | None) -> bool:
        """True when ``value`` is within NEAR_FRACTION (relative) of the best."""
        if value is None:
            return False
        margin = NEAR_FRACTION * abs(self.best) + 1e-12
        return value >= self.best - margin if self.maximize else value <= self.best + margin

    def n_best(self) -> int:
        """How many configurations share the best value."""
        return sum(1 for v in self.values.values() if self.is_best(v))

    def n_near(self) -> int:
        """How many configurations are within 0.5% of the best."""
        return sum(1 for v in self.values.values() if self.is_near(v))

    def total_cost(self) -> float:
        """Training seconds of the whole grid (what a full grid search costs)."""
        return float(sum(self.costs.values()))

    def expected_random_order(self, n_good: int) -> float:
        """Trials a shuffled grid needs on average to hit one of ``n_good`` configurations: (N+1)/(k+1)."""
        return (self.size + 1) / (n_good + 1)


def _sorted_values(texts: Sequence[str]) -> tuple[list[str], bool]:
    """Distinct values in first-seen order; numeric lists sorted by value. Returns (values, numeric)."""
    distinct = list(dict.fromkeys(texts))
    try:
        numbers = [float(t) for t in distinct]
    except ValueError:
        return distinct, False
    return [t for _, t in sorted(zip(numbers, distinct, strict=True))], True


def load_table(path: str | Path, name: str | None = None) -> GridTask:
    """Read a grid table: parameter columns (discrete if numeric, else categorical), an objective
    column (``accuracy`` or ``r2``, maximised) and ``train_seconds``. An empty or non-finite objective
    is a failed configuration."""
    path = Path(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(row for row in handle if not row.startswith("#")))
    if not rows:
        raise ValueError(f"{path}: the table has no rows")
    columns = list(rows[0].keys())
    objective = next((c for c in OBJECTIVES if c in columns), None)
    if objective is None:
        raise ValueError(f"{path}: no objective column; expected one of {OBJECTIVES}, got {columns}")
    if COST_COLUMN not in columns:
        raise ValueError(f"{path}: no {COST_COLUMN} column (the cost of each configuration)")
    param_names = [c for c in columns if c not in METRIC_COLUMNS]
    if not param_names:
        raise ValueError(f"{path}: no parameter columns (every column is a metric: {columns})")
    params = []
    for p in param_names:
        values, numeric = _sorted_values([r[p] for r in rows])
        if len(values) < 2:
            raise ValueError(f"{path}: parameter {p!r} has a single value {values}; a grid needs two or more")
        params.append(
            Param(p, KatibType.DISCRETE if numeric else KatibType.CATEGORICAL, values=tuple(values))
        )
    space = catalog(params)
    values: dict[tuple, float | None] = {}
    costs: dict[tuple, float] = {}
    for r in rows:
        k = canonical_key(space, {p: r[p] for p in param_names})
        if k in values:
            raise ValueError(f"{path}: configuration {[r[p] for p in param_names]} appears twice")
        text = (r[objective] or "").strip()
        try:
            v: float | None = float(text)
        except ValueError:
            v = None
        values[k] = v if v is not None and math.isfinite(v) else None
        costs[k] = float(r[COST_COLUMN])
    return GridTask(
        name or path.stem, params, values, costs, maximize=True, metric=objective, source=str(path)
    )


# ---- COCO bbob-mixint ---------------------------------------------------------------------------


@dataclass
class FunctionTask(Task):
    """A COCO ``bbob-mixint`` problem (see the module docstring); minimised, cost 1 per evaluation."""

    name: str
    function: int
    instance: int
    dimension: int = 5
    maximize: bool = False
    metric: str = "f"
    family: str = "function"
    params: list[Param] = field(default_factory=list)
    fopt: float = 0.0
    _problem: object = field(default=None, repr=False)
    _suite: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import cocoex  # bench environment only

        self._suite = cocoex.Suite("bbob-mixint", "", f"dimensions:{self.dimension}")
        pid = f"bbob-mixint_f{self.function:03d}_i{self.instance:02d}_d{self.dimension:02d}"
        self._problem = self._suite.get_problem(pid)
        p = self._problem
        lo, hi = np.asarray(p.lower_bounds), np.asarray(p.upper_bounds)  # type: ignore[attr-defined]
        n_int = int(p.number_of_integer_variables)  # type: ignore[attr-defined]
        self.params = [
            Param(f"x{i}", "int", low=float(lo[i]), high=float(hi[i]))
            if i < n_int
            else Param(f"x{i}", "double", low=float(lo[i]), high=float(hi[i]))
            for i in range(len(lo))
        ]
        self.fopt = self._optimum()

    def _optimum(self) -> float:
        """f at COCO's optimal parameter of this mixint problem (written to a file by COCO)."""
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                self._problem._best_parameter("print")  # type: ignore[attr-defined]
                xopt = np.loadtxt("._bbob_problem_best_parameter.txt")
            finally:
                os.chdir(cwd)
        return float(self._problem(xopt))  # type: ignore[operator]

    def evaluate(self, assignment: Mapping[str, str]) -> Evaluation:
        """f(x) of the configuration."""
        x = np.array([float(assignment[p.name]) for p in self.params])
        return Evaluation(float(self._problem(x)), 1.0)  # type: ignore[operator]

    def log_regret(self, value: float) -> float:
        """log10 of f - f_opt (floored at 1e-8, COCO's final target precision)."""
        return math.log10(max(value - self.fopt, 1e-8))


# ---- live scikit-learn tuning (Bayesmark style) ----------------------------------------------------

_DATASETS = ("digits", "breast", "wine", "diabetes", "iris")


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(X standardised, y, is_classification) for a dataset that scikit-learn ships."""
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    loaders: dict[str, Callable] = {
        "digits": datasets.load_digits,
        "breast": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "diabetes": datasets.load_diabetes,
        "iris": datasets.load_iris,
    }
    if name not in loaders:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(_DATASETS)}")
    X, y = loaders[name](return_X_y=True)  # noqa: N806
    return StandardScaler().fit_transform(X), y, name != "diabetes"


def _model(model: str, cfg: Mapping[str, str], classification: bool, seed: int):
    """A scikit-learn estimator for ``model`` with the configuration's hyperparameters."""
    from sklearn import ensemble, linear_model, neighbors, neural_network, svm, tree

    f = {
        k: float(v) if k not in ("kernel", "weights", "criterion", "activation", "loss") else v
        for k, v in cfg.items()
    }
    if model == "svm":
        cls = svm.SVC if classification else svm.SVR
        return cls(C=f["C"], gamma=f["gamma"], tol=f["tol"], kernel="rbf")
    if model == "knn":
        cls = neighbors.KNeighborsClassifier if classification else neighbors.KNeighborsRegressor
        return cls(n_neighbors=int(f["n_neighbors"]), weights=cfg["weights"], p=int(f["p"]))
    if model == "dt":
        cls = tree.DecisionTreeClassifier if classification else tree.DecisionTreeRegressor
        return cls(max_depth=int(f["max_depth"]), min_samples_split=f["min_samples_split"],
                   min_samples_leaf=f["min_samples_leaf"], min_weight_fraction_leaf=f["min_weight_fraction_leaf"],
                   max_features=f["max_features"], random_state=seed)  # fmt: skip
    if model == "rf":
        cls = ensemble.RandomForestClassifier if classification else ensemble.RandomForestRegressor
        return cls(n_estimators=int(f["n_estimators"]), max_depth=int(f["max_depth"]), max_features=f["max_features"],
                   min_samples_split=f["min_samples_split"], min_samples_leaf=f["min_samples_leaf"], random_state=seed)  # fmt: skip
    if model == "ada":
        cls = ensemble.AdaBoostClassifier if classification else ensemble.AdaBoostRegressor
        return cls(n_estimators=int(f["n_estimators"]), learning_rate=f["learning_rate"], random_state=seed)
    if model == "mlp":
        cls = neural_network.MLPClassifier if classification else neural_network.MLPRegressor
        return cls(hidden_layer_sizes=(int(f["hidden"]),), alpha=f["alpha"], learning_rate_init=f["learning_rate_init"],
                   batch_size=int(f["batch_size"]), max_iter=int(f["max_iter"]), tol=f["tol"], random_state=seed)  # fmt: skip
    if model == "lasso":
        return linear_model.Lasso(alpha=f["alpha"], fit_intercept=True, random_state=seed)
    raise ValueError(f"unknown model {model!r}")


# Bayesmark-like spaces (log for scale parameters, ints, one categorical where the model has one).
LIVE_SPACES: dict[str, list[Param]] = {
    "svm": [
        Param("C", "double", low=1.0, high=1e3, log=True),
        Param("gamma", "double", low=1e-4, high=1e-1, log=True),
        Param("tol", "double", low=1e-5, high=1e-1, log=True),
    ],
    "knn": [
        Param("n_neighbors", "int", low=1, high=25),
        Param("p", "int", low=1, high=4),
        Param("weights", KatibType.CATEGORICAL, values=("uniform", "distance")),
    ],
    "dt": [
        Param("max_depth", "int", low=1, high=15),
        Param("min_samples_split", "double", low=0.01, high=0.99, log=True),
        Param("min_samples_leaf", "double", low=0.01, high=0.49, log=True),
        Param("min_weight_fraction_leaf", "double", low=0.01, high=0.49, log=True),
        Param("max_features", "double", low=0.01, high=0.99, log=True),
    ],
    "rf": [
        Param("n_estimators", "int", low=10, high=60),
        Param("max_depth", "int", low=1, high=15),
        Param("max_features", "double", low=0.01, high=0.99, log=True),
        Param("min_samples_split", "double", low=0.01, high=0.99, log=True),
        Param("min_samples_leaf", "double", low=0.01, high=0.49, log=True),
    ],
    "ada": [
        Param("n_estimators", "int", low=10, high=100),
        Param("learning_rate", "double", low=1e-4, high=1e1, log=True),
    ],
    "mlp": [
        Param("hidden", "int", low=16, high=128),
        Param("alpha", "double", low=1e-5, high=1e1, log=True),
        Param("learning_rate_init", "double", low=1e-5, high=1e-1, log=True),
        Param("batch_size", "int", low=16, high=128),
        Param("max_iter", "int", low=5, high=40),
        Param("tol", "double", low=1e-5, high=1e-1, log=True),
    ],
    "lasso": [Param("alpha", "double", low=1e-4, high=1e1, log=True)],
}
LIVE_METRICS = ("acc", "nll", "mse", "mae")


@dataclass
class LiveTask(Task):
    """Tune ``model`` on ``dataset`` by ``folds``-fold cross-validation (see the module docstring).

    metric: acc (accuracy, maximised) or nll (log loss, minimised) for classifiers; mse / mae
    (minimised) for regression. Failed fits (exceptions, non-finite scores) are failed trials.
    """

    model: str
    dataset: str
    metric: str = "acc"
    folds: int = 3
    name: str = ""
    family: str = "live"
    params: list[Param] = field(default_factory=list)
    maximize: bool = False
    _cache: dict = field(default_factory=dict, repr=False)
    _data: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.model not in LIVE_SPACES:
            raise ValueError(f"unknown model {self.model!r}; allowed: {', '.join(LIVE_SPACES)}")
        if self.metric not in LIVE_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; allowed: {', '.join(LIVE_METRICS)}")
        self.params = list(LIVE_SPACES[self.model])
        self.maximize = self.metric == "acc"
        self.name = self.name or f"{self.model}-{self.dataset}-{self.metric}"
        self._space = catalog(self.params)

    def _load(self) -> tuple:
        if self._data is None:
            X, y, classification = load_dataset(self.dataset)  # noqa: N806
            if classification != (self.metric in ("acc", "nll")):
                raise ValueError(f"metric {self.metric!r} does not fit dataset {self.dataset!r}")
            from sklearn.model_selection import KFold, StratifiedKFold

            splitter = (StratifiedKFold if classification else KFold)(
                self.folds, shuffle=True, random_state=0
            )
            self._data = (X, y, classification, list(splitter.split(X, y)))
        return self._data

    def _score(self, assignment: Mapping[str, str]) -> float | None:
        from sklearn import metrics

        X, y, classification, splits = self._load()  # noqa: N806
        scores = []
        for train, test in splits:
            model = _model(self.model, assignment, classification, seed=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X[train], y[train])
                if self.metric == "acc":
                    scores.append(metrics.accuracy_score(y[test], model.predict(X[test])))
                elif self.metric == "nll":
                    proba = model.predict_proba(X[test]) if hasattr(model, "predict_proba") else None
                    if proba is None:
                        return None
                    scores.append(metrics.log_loss(y[test], proba, labels=np.unique(y)))
                elif self.metric == "mse":
                    scores.append(metrics.mean_squared_error(y[test], model.predict(X[test])))
                else:
                    scores.append(metrics.mean_absolute_error(y[test], model.predict(X[test])))
        value = float(np.mean(scores))
        return value if math.isfinite(value) else None

    def evaluate(self, assignment: Mapping[str, str]) -> Evaluation:
        """Cross-validated score (cached per configuration) and the seconds the fits took."""
        key = canonical_key(self._space, assignment)
        if key not in self._cache:
            self._load()  # the data set and folds, outside the timed fit
            t0 = time.perf_counter()
            try:
                value = self._score(assignment)
            except (ValueError, ArithmeticError):
                value = None
            self._cache[key] = Evaluation(value, time.perf_counter() - t0)
        return self._cache[key]
