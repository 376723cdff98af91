"""Katib-shaped grids from real scikit-learn training runs, for the optimizer benchmark.

``python bench/sklearn_grid_tables.py [--tables NAME,...]`` (or ``make sklearn-tables``) trains every
configuration of each grid below on a dataset that scikit-learn ships, scores it by repeated
stratified k-fold cross-validation (3 folds x 2 repeats, fixed split; KFold for regression) and writes
``bench/tables/sklearn_<name>.csv``: the parameter columns (Katib discrete / categorical value strings),
the objective (``accuracy``, or ``r2`` for regression; both maximised) and ``train_seconds`` (the wall
seconds of the fits, one CPU thread: the configuration's cost). Timings vary a little between runs
and machines; the metric values are deterministic.

Three grids have the seed's shape (3 x 2 x 2 x 2 = 24: a learning rate x batch/subsample x capacity x
epochs), the others 16 to 96 configurations with categorical parameters.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "bench" / "tables"
COMMAND = "python bench/sklearn_grid_tables.py"


@dataclass(frozen=True)
class Grid:
    """One table: dataset, parameter grid (name -> Katib value strings) and a model factory."""

    name: str
    dataset: str
    grid: dict[str, tuple[str, ...]]
    build: Callable[[dict[str, str]], object]


def _mlp(cfg: dict[str, str]):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=(int(cfg["hidden_units"]),),
        learning_rate_init=float(cfg["learning_rate"]),
        batch_size=int(cfg["batch_size"]),
        max_iter=int(cfg["num_epochs"]),
        random_state=0,
    )


def _gb(cfg: dict[str, str]):
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(
        learning_rate=float(cfg["learning_rate"]),
        subsample=float(cfg["subsample"]),
        n_estimators=int(cfg["n_estimators"]),
        max_depth=int(cfg["max_depth"]),
        random_state=0,
    )


def _svm(cfg: dict[str, str]):
    from sklearn.svm import SVC

    return SVC(C=float(cfg["C"]), gamma=float(cfg["gamma"]), kernel=cfg["kernel"])


def _rf_regressor(cfg: dict[str, str]):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=int(cfg["n_estimators"]),
        max_depth=int(cfg["max_depth"]),
        max_features=float(cfg["max_features"]),
        min_samples_leaf=int(cfg["min_samples_leaf"]),
        random_state=0,
    )


def _rf(cfg: dict[str, str]):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=int(cfg["n_estimators"]),
        max_depth=int(cfg["max_depth"]),
        max_features=float(cfg["max_features"]),
        criterion=cfg["criterion"],
        random_state=0,
    )


def _ada(cfg: dict[str, str]):
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.tree import DecisionTreeClassifier

    return AdaBoostClassifier(
        DecisionTreeClassifier(max_depth=int(cfg["max_depth"]), random_state=0),
        n_estimators=int(cfg["n_estimators"]),
        learning_rate=float(cfg["learning_rate"]),
        random_state=0,
    )


GRIDS: tuple[Grid, ...] = (
    Grid("mlp_digits", "digits", {"learning_rate": ("1e-4", "1e-3", "1e-2"), "batch_size": ("32", "128"),
                                  "hidden_units": ("16", "64"), "num_epochs": ("10", "30")}, _mlp),
    Grid("gb_breast", "breast", {"learning_rate": ("0.01", "0.1", "1.0"), "subsample": ("0.5", "1.0"),
                                 "n_estimators": ("30", "100"), "max_depth": ("2", "4")}, _gb),
    Grid("mlp_wine", "wine", {"learning_rate": ("1e-3", "1e-2", "1e-1"), "batch_size": ("16", "64"),
                              "hidden_units": ("4", "32"), "num_epochs": ("20", "100")}, _mlp),
    Grid("svm_digits", "digits", {"C": ("0.1", "1", "10", "100"), "gamma": ("0.001", "0.01", "0.1", "1"),
                                  "kernel": ("rbf", "sigmoid", "poly")}, _svm),
    Grid("rf_diabetes", "diabetes", {"n_estimators": ("25", "100"), "max_depth": ("2", "4", "8"),
                                     "max_features": ("0.33", "0.66", "1.0"), "min_samples_leaf": ("1", "5")},
         _rf_regressor),
    Grid("rf_breast", "breast", {"n_estimators": ("10", "50", "200"), "max_depth": ("2", "4", "8", "16"),
                                 "max_features": ("0.1", "0.3", "0.6", "1.0"), "criterion": ("gini", "entropy")},
         _rf),
    Grid("ada_wine", "wine", {"n_estimators": ("25", "100"), "learning_rate": ("0.01", "0.1", "1.0", "2.0"),
                              "max_depth": ("1", "2")}, _ada),
)  # fmt: skip


def evaluate(grid: Grid, cfg: dict[str, str], data: tuple) -> tuple[float, float]:
    """(cross-validated objective, seconds spent fitting) of one configuration."""
    from sklearn.metrics import accuracy_score, r2_score

    X, y, classification, splits = data  # noqa: N806
    scores, seconds = [], 0.0
    for train, test in splits:
        model = grid.build(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            model.fit(X[train], y[train])
            seconds += time.perf_counter() - t0
        pred = model.predict(X[test])
        scores.append(accuracy_score(y[test], pred) if classification else r2_score(y[test], pred))
    return float(np.mean(scores)), seconds


def make_table(grid: Grid) -> Path:
    """Train every configuration of ``grid`` and write its CSV; returns the path."""
    sys.path.insert(0, str(ROOT))
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    from bench.optimizers.tasks import load_dataset

    X, y, classification = load_dataset(grid.dataset)  # noqa: N806
    splitter = (RepeatedStratifiedKFold if classification else RepeatedKFold)(
        n_splits=3, n_repeats=2, random_state=0
    )
    data = (X, y, classification, list(splitter.split(X, y)))
    objective = "accuracy" if classification else "r2"
    names = list(grid.grid)
    path = TABLES / f"sklearn_{grid.name}.csv"
    TABLES.mkdir(parents=True, exist_ok=True)
    rows = []
    for values in itertools.product(*grid.grid.values()):
        cfg = dict(zip(names, values, strict=True))
        score, seconds = evaluate(grid, cfg, data)
        rows.append([*values, f"{score:.6f}", f"{seconds:.4f}"])
    with path.open("w", newline="") as handle:
        handle.write(f"# {COMMAND} --tables {grid.name}  (dataset {grid.dataset}, 3-fold x 2 repeats CV)\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*names, objective, "train_seconds"])
        writer.writerows(rows)
    best = max(float(r[-2]) for r in rows)
    total = sum(float(r[-1]) for r in rows)
    print(
        f"{path.relative_to(ROOT)}: {len(rows)} configurations, best {objective} {best:.4f}, {total:.1f} s in all"
    )
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: write the selected tables (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default="", help="comma-separated grid names (default: all): "
                        + ", ".join(g.name for g in GRIDS))  # fmt: skip
    args = parser.parse_args(argv)
    wanted = [t for t in args.tables.split(",") if t]
    unknown = sorted(set(wanted) - {g.name for g in GRIDS})
    if unknown:
        parser.error(f"unknown table(s) {unknown}; allowed: {', '.join(g.name for g in GRIDS)}")
    for grid in GRIDS:
        if not wanted or grid.name in wanted:
            make_table(grid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
