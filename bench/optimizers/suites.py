"""What the quick and full benchmark runs contain: tasks, seeds, budgets, modes and optimizers."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.optimizers.peers import PEERS
from bench.optimizers.service import VARIANTS
from bench.optimizers.tasks import TABLES_DIR

OURS = ("surrogate-gp", "surrogate-rf", "surrogate-gp-cost", "surrogate-gp-pi")
ALL_OPTIMIZERS = (*OURS, *PEERS)
# Tables with the seed's shape (3 x 2 x 2 x 2 = 24: the BERT and ResNet spaces); the bar applies here.
SEED_SHAPED = (
    "tiny_sst2",
    "tiny_mrpc",
    "tiny_cifar10",
    "sklearn_mlp_digits",
    "sklearn_gb_breast",
    "sklearn_mlp_wine",
)


@dataclass(frozen=True)
class Suite:
    """One benchmark run's contents.

    grid_tables: table names (files in bench/tables) or "*" for every table there; grid_seeds runs each,
    sequentially, until the best is found or ``grid_budget_factor`` x the grid size trials ran.
    functions: (function, instance) pairs of bbob-mixint in dimension 5, ``function_budget`` trials.
    live: (model, dataset, metric) with ``live_budgets`` (read off one run of the largest budget) in
    every mode of ``live_parallel`` (1 = sequential, 4 = batches of 4 with pending trials).
    limited: optimizer -> (max seeds, families, tables or () for all) for peers too slow to run everywhere.
    """

    name: str
    grid_tables: tuple[str, ...]
    grid_seeds: int
    functions: tuple[tuple[int, int], ...]
    function_seeds: int
    function_budget: int
    live: tuple[tuple[str, str, str], ...]
    live_seeds: int
    live_budgets: tuple[int, ...] = (16, 32)
    live_parallel: tuple[int, ...] = (1, 4)
    grid_budget_factor: int = 3
    optimizers: tuple[str, ...] = ALL_OPTIMIZERS
    limited: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)


def available_tables(names: tuple[str, ...]) -> list[str]:
    """The requested table names that exist (``*`` = all tables in bench/tables)."""
    present = sorted(p.stem for p in TABLES_DIR.glob("*.csv"))
    if names == ("*",):
        return present
    return [n for n in names if n in present]


QUICK = Suite(
    name="quick",
    grid_tables=("tiny_sst2", "tiny_cifar10", "sklearn_mlp_digits", "sklearn_gb_breast"),
    grid_seeds=5,
    functions=((15, 1), (21, 1)),
    function_seeds=3,
    function_budget=16,
    live=(("svm", "breast", "acc"),),
    live_seeds=3,
    live_budgets=(8, 16),
    # HEBO needs ~2 s per suggestion: one seed-shaped grid with 3 seeds in the quick run.
    limited={"hebo": (3, ("grid",), ("tiny_sst2", "sklearn_mlp_digits"))},
)

FULL = Suite(
    name="full",
    grid_tables=("*",),
    grid_seeds=20,
    functions=((8, 1), (15, 2), (21, 1)),
    function_seeds=20,
    function_budget=20,
    live=(("svm", "breast", "acc"), ("knn", "diabetes", "mse")),
    live_seeds=20,
    # HEBO: 10 seeds on the three tiny seed grids only (about 2 s per suggestion; see docs/benchmarks.md).
    limited={"hebo": (10, ("grid",), ("tiny_sst2", "tiny_mrpc", "tiny_cifar10"))},
)

SUITES = {"quick": QUICK, "full": FULL}
assert set(OURS) <= set(VARIANTS)
