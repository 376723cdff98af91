"""Representative GetSuggestions requests whose replies are pinned bit for bit (``reply_pins.json``).

The cases cover both surrogates, the initial design, batches with running and failed trials, warm start
(before and after the first own observation), finite and continuous spaces, every acquisition, the
output transforms and an exhausted space, plus grid and random. ``python -m tests.service.reply_cases``
rewrites the pins; do that only for an intended change of the replies, and say so in the commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from suggestion_service import engine
from suggestion_service.prior_fetch import WarmStart
from suggestion_service.priors import PriorExperiment, PriorTrial, StaticPriorSource
from suggestion_service.proto import api_pb2
from suggestion_service.space import SearchSpace

from .builders import (
    TS,
    bert_space,
    categorical_space,
    continuous_space,
    make_experiment,
    make_request,
    make_trial,
)

PINS = Path(__file__).with_name("reply_pins.json")
BERT = SearchSpace.from_proto(bert_space())


def _surface(a: dict[str, str]) -> float:
    """A deterministic objective over every parameter name the cases use."""
    h = sum(
        (i + 1) * (sum(map(ord, k)) % 7) * (sum(map(ord, v)) % 11)
        for i, (k, v) in enumerate(sorted(a.items()))
    )
    return round(0.5 + (h % 97) / 250.0, 6)


def _trials(
    params: list[api_pb2.ParameterSpec], n_done: int, n_running: int = 0, n_failed: int = 0, seed: int = 0
) -> list[api_pb2.Trial]:
    """``n_done`` succeeded trials (accuracy and gpu_seconds), then running and failed ones, at distinct
    configurations drawn from the space with ``seed``."""
    space = SearchSpace.from_proto(params)
    rng = np.random.default_rng(seed)
    total = n_done + n_running + n_failed
    rows, keys = [], set()
    while len(rows) < total:
        raw = space.canonical(space.sample_raw(rng.random((1, len(space.params))))[0])
        if space.raw_key(raw) not in keys:
            keys.add(space.raw_key(raw))
            rows.append(space.assignment(raw))
    out = []
    for i, a in enumerate(rows):
        if i < n_done:
            metrics = {"accuracy": _surface(a), "gpu_seconds": 10.0 + 3 * (i % 5)}
            out.append(make_trial(f"t{i}", a, TS.SUCCEEDED, metrics))
        else:
            out.append(make_trial(f"t{i}", a, TS.RUNNING if i < n_done + n_running else TS.FAILED))
    return out


def _prior() -> WarmStart:
    grid = BERT.enumerate()
    trials = tuple(PriorTrial(a, {"accuracy": str(_surface(a))}) for a in grid[1::2])
    prior = PriorExperiment("default", "sst2", "accuracy", "maximize", trials)
    return WarmStart(StaticPriorSource([prior]), namespace="default")


def _case(name: str, params, algorithm: str, settings=(), trials=(), n: int = 1, warm: bool = False):
    experiment = make_experiment(name, params(), algorithm, settings)
    return name, make_request(experiment, list(trials), n), warm


GP, RF = "surrogate-gp", "surrogate-rf"
WARM = (("warm_start_experiments", "sst2"),)


def cases() -> list[tuple[str, api_pb2.GetSuggestionsRequest, bool]]:
    """(name, request, needs the warm-start source)."""
    mixed = lambda: continuous_space() + categorical_space()  # noqa: E731
    return [
        _case("gp-design", bert_space, GP, n=3),
        _case("gp-bert-1", bert_space, GP, trials=_trials(bert_space(), 5), n=1),
        _case("gp-bert-batch", bert_space, GP, trials=_trials(bert_space(), 5, 2), n=4),
        _case("rf-bert-batch", bert_space, RF, trials=_trials(bert_space(), 5, 2, 1), n=4),
        _case("gp-cont-batch", continuous_space, GP, trials=_trials(continuous_space(), 8, 1), n=3),
        _case("rf-cont-batch", continuous_space, RF, trials=_trials(continuous_space(), 8, 1, 1), n=3),
        _case("rf-et-cont", continuous_space, RF, [("forest_kind", "extra_trees")], _trials(continuous_space(), 7), 2),
        _case("gp-mixed-ucb", mixed, GP, [("acquisition", "ucb")], _trials(mixed(), 9, 0, 1), 2),
        _case("gp-pi-liar", bert_space, GP,
              [("acquisition", "pi"), ("n_initial_points", "2"), ("batch_strategy", "constant_liar")],
              _trials(bert_space(), 3, 1), 5),
        _case("gp-cost", continuous_space, GP, [("acquisition", "ei_per_cost"), ("cost_metric", "gpu_seconds")],
              _trials(continuous_space(), 6), 2),
        _case("gp-std-ignore", categorical_space, GP,
              [("output_transform", "standardize"), ("failed_trials", "ignore")],
              _trials(categorical_space(), 6, 0, 2), 3),
        _case("gp-exhausted", categorical_space, GP, trials=_trials(categorical_space(), 27, 1), n=4),
        _case("gp-warm-cold", bert_space, GP, WARM, n=3, warm=True),
        _case("gp-warm-own", bert_space, GP, WARM, _trials(bert_space(), 4, 1), 3, warm=True),
        _case("rf-warm-own", bert_space, RF, WARM, _trials(bert_space(), 5), 2, warm=True),
        _case("grid", bert_space, "grid", trials=_trials(bert_space(), 3), n=3),
        _case("random", continuous_space, "random", trials=_trials(continuous_space(), 3), n=3),
    ]  # fmt: skip


def replies(run: Callable[[api_pb2.GetSuggestionsRequest, WarmStart | None], list[dict[str, str]]]) -> dict:
    """case name -> its assignments, each call answered by ``run(request, warm_start)``."""
    return {name: run(request, _prior() if warm else None) for name, request, warm in cases()}


def engine_replies() -> dict:
    """The engine's assignments for every case."""
    return replies(lambda request, warm: engine.get_suggestions(request, warm).assignments)


if __name__ == "__main__":
    PINS.write_text(json.dumps(engine_replies(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINS}")
