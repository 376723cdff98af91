"""engine.get_suggestions / validate_experiment on realistic Katib requests (no gRPC)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from suggestion_service.engine import get_suggestions, validate_experiment
from suggestion_service.errors import InvalidArgument
from suggestion_service.settings import ALGORITHMS
from suggestion_service.space import SearchSpace

from .builders import (
    TS,
    bert_space,
    categorical_space,
    continuous_space,
    make_experiment,
    make_request,
    make_trial,
    param,
    resnet_space,
)

SPACES = {
    "bert": bert_space,
    "resnet": resnet_space,
    "continuous": continuous_space,
    "categorical": categorical_space,
}
ROOT = Path(__file__).resolve().parents[2]


def key(space: SearchSpace, a: dict) -> tuple:
    return space.key(a)


def mixed_history(space: SearchSpace) -> list:
    """Completed, running, created, failed, killed and 'unavailable' trials on the first configurations."""
    rng = np.random.default_rng(5)
    if space.is_finite():
        configs = [space.enumerate()[i] for i in rng.permutation(space.size())[:9]]
    else:
        configs = [space.assignment(r) for r in space.sample_raw(rng.random((9, len(space.params))))]
    conditions = [TS.SUCCEEDED, TS.SUCCEEDED, TS.SUCCEEDED, TS.EARLYSTOPPED, TS.RUNNING, TS.CREATED, TS.FAILED,
                  TS.KILLED, TS.SUCCEEDED]  # fmt: skip
    metrics = [{"accuracy": "0.81"}, {"accuracy": "0.86"}, {"accuracy": "0.79"}, {"accuracy": "0.7"}, None, None,
               None, None, {"accuracy": "unavailable"}]  # fmt: skip
    return [
        make_trial(f"t{i}", c, cond, m)
        for i, (c, cond, m) in enumerate(zip(configs, conditions, metrics, strict=True))
    ]


@pytest.mark.parametrize(
    ("algorithm", "space_name"),
    # grid needs a step on every double: the continuous space is its error case (tested below)
    [(a, s) for a in ALGORITHMS for s in sorted(SPACES) if (a, s) != ("grid", "continuous")],
)
def test_fresh_and_mixed_requests_return_exactly_n_new_feasible_assignments(
    algorithm: str, space_name: str
) -> None:
    params = SPACES[space_name]()
    space = SearchSpace.from_proto(params)
    exp = make_experiment(f"{space_name}-{algorithm}", params, algorithm)
    fresh = get_suggestions(make_request(exp, [], 3))
    assert len(fresh.assignments) == 3 and not fresh.exhausted
    trials = mixed_history(space)
    result = get_suggestions(make_request(exp, trials, 4))
    assert len(result.assignments) == 4
    assert (result.n_observed, result.n_pending, result.n_failed) == (4, 2, 3)
    tried = {key(space, {a.name: a.value for a in t.spec.parameter_assignments.assignments}) for t in trials}
    for a in fresh.assignments + result.assignments:
        assert list(a) == list(space.names) and space.contains(a)
    keys = [key(space, a) for a in result.assignments]
    assert len(set(keys)) == 4
    if space.is_finite():
        assert not set(keys) & tried
    assert (result.fit_seconds > 0) == algorithm.startswith("surrogate")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_exhausted_space_repeats_the_best_and_says_so(
    algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    params = bert_space()
    space = SearchSpace.from_proto(params)
    configs = space.enumerate()
    trials = [
        make_trial(f"t{i}", c, metrics={"accuracy": str(0.5 + i / 100)}) for i, c in enumerate(configs[:20])
    ]
    trials += [make_trial("run", configs[20], TS.RUNNING), make_trial("fail", configs[21], TS.FAILED)]
    exp = make_experiment("exhaust", params, algorithm)
    with caplog.at_level(logging.WARNING):
        result = get_suggestions(make_request(exp, trials, 5))
    assert result.exhausted and "exhausted" in caplog.text
    keys = [space.key(a) for a in result.assignments]
    assert set(keys[:2]) == {space.key(configs[22]), space.key(configs[23])}
    assert keys[2] == space.key(configs[19])  # the best observed one first
    assert len(result.assignments) == 5 and all(space.contains(a) for a in result.assignments)
    # asking for more than the whole grid with no history still gives n valid assignments
    big = get_suggestions(make_request(exp, [], 30))
    assert big.exhausted and len(big.assignments) == 30 and len({space.key(a) for a in big.assignments}) == 24


def test_grid_visits_every_point_once_in_a_stable_shuffled_order() -> None:
    params = resnet_space()
    space = SearchSpace.from_proto(params)
    exp = make_experiment("resnet-grid", params, "grid", settings=[("random_state", "3")])
    trials: list = []
    while len(trials) < 24:
        for a in get_suggestions(make_request(exp, trials, 5 if len(trials) < 20 else 4)).assignments:
            trials.append(make_trial(f"t{len(trials)}", a, TS.RUNNING))
    keys = [space.key({x.name: x.value for x in t.spec.parameter_assignments.assignments}) for t in trials]
    assert len(set(keys)) == 24
    assert keys != [space.key(c) for c in space.enumerate()]  # shuffled, not lexicographic
    again = get_suggestions(make_request(exp, [], 24)).assignments
    assert [space.key(a) for a in again] == keys


def test_grid_validation_matches_katib() -> None:
    exp = make_experiment("g", continuous_space(), "grid")
    with pytest.raises(InvalidArgument, match=r"step.*\['lr'\]"):
        validate_experiment(exp)
    with pytest.raises(InvalidArgument, match="lr"):
        get_suggestions(make_request(exp, [], 1))
    ok = make_experiment("g", bert_space(), "grid", max_trial_count=24)
    validate_experiment(ok)
    too_many = make_experiment("g", bert_space(), "grid", max_trial_count=25)
    with pytest.raises(InvalidArgument, match="Max Trial Count: 25 > all possible search combinations: 24"):
        validate_experiment(too_many)
    # a raised maxTrialCount after validation must not wedge GetSuggestions: it re-proposes instead
    assert len(get_suggestions(make_request(too_many, [], 2)).assignments) == 2


@pytest.mark.parametrize(
    ("experiment", "fragment"),
    [
        (make_experiment("e", bert_space(), "tpe"), "unknown algorithm name 'tpe'"),
        (make_experiment("e", bert_space(), "surrogate-gp", settings=[("xi", "-1")]), "xi"),
        (make_experiment("e", bert_space(), "random", settings=[("acquisition", "ei")]), "does not apply"),
        (make_experiment("e", [param("lr", "double", min="0.1", max="1", distribution="normal")], "random"),
         "'lr'.*NORMAL"),
        (make_experiment("e", [], "random"), "at least one"),
        (make_experiment("e", bert_space(), "surrogate-gp", metric=""), "objective_metric_name"),
        (make_experiment("e", bert_space(), "surrogate-gp",
                         settings=[("acquisition", "ei_per_cost"), ("cost_metric", "gpu_hours")]),
         "gpu_hours.*additional_metric_names"),
    ],
)  # fmt: skip
def test_validate_experiment_rejects(experiment, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        validate_experiment(experiment)
    with pytest.raises(InvalidArgument, match=fragment):
        get_suggestions(make_request(experiment, [], 1))


def test_unknown_objective_type_is_rejected() -> None:
    exp = make_experiment("e", bert_space(), "random")
    exp.spec.objective.type = 0
    with pytest.raises(InvalidArgument, match="UNKNOWN"):
        validate_experiment(exp)


@pytest.mark.parametrize("n", [-1, 1001])
def test_request_number_out_of_range(n: int) -> None:
    with pytest.raises(InvalidArgument, match=f"current_request_number {n}"):
        get_suggestions(make_request(make_experiment("e", bert_space(), "random"), [], n))


def test_zero_requested_gives_an_empty_reply() -> None:
    space = SearchSpace.from_proto(bert_space())
    result = get_suggestions(
        make_request(make_experiment("e", bert_space(), "surrogate-gp"), mixed_history(space), 0)
    )
    assert result.assignments == [] and result.n_observed == 4


def test_same_request_same_reply_regardless_of_trial_order() -> None:
    params = continuous_space()
    space = SearchSpace.from_proto(params)
    exp = make_experiment("det", params, "surrogate-gp")
    trials = mixed_history(space)
    first = get_suggestions(make_request(exp, trials, 3)).assignments
    assert get_suggestions(make_request(exp, trials, 3)).assignments == first
    assert get_suggestions(make_request(exp, trials[::-1], 3)).assignments == first
    other = make_experiment("det", params, "surrogate-gp", settings=[("random_state", "9")])
    assert get_suggestions(make_request(other, trials, 3)).assignments != first


def test_a_restarted_process_gives_the_same_reply() -> None:
    code = (
        "import json; from tests.service.test_engine import restart_probe; print(json.dumps(restart_probe()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == restart_probe()


def restart_probe() -> list:
    """Replies of every algorithm to one fixed request (compared across processes)."""
    out = []
    for algorithm in ALGORITHMS:
        params = categorical_space()
        exp = make_experiment("restart", params, algorithm)
        out.append(
            get_suggestions(make_request(exp, mixed_history(SearchSpace.from_proto(params)), 3)).assignments
        )
    return out


def test_random_honours_log_scale_and_steps() -> None:
    params = continuous_space()
    exp = make_experiment("rnd", params, "random")
    got = get_suggestions(make_request(exp, [], 400)).assignments
    lrs = np.array([float(a["lr"]) for a in got])
    assert 3e-4 < np.median(lrs) < 3e-3  # log-uniform median is 1e-3
    steps = {repr(float(Decimal("0.05") * k)) for k in range(11)}  # "0.0", "0.05", ..., "0.5"
    assert {a["dropout"] for a in got} <= steps and len({a["dropout"] for a in got}) == 11


def test_failed_trials_mark_a_bad_region() -> None:
    params = [param("x", "int", min="0", max="100")]
    trials = [make_trial(n, {"x": v}, metrics={"accuracy": a}) for n, v, a in
              (("a", "10", "0.5"), ("b", "40", "0.6"), ("c", "60", "0.7"))]  # fmt: skip
    trials += [make_trial(f"f{v}", {"x": str(v)}, TS.FAILED) for v in (75, 80, 85, 90, 95, 100)]
    exp = make_experiment("fail", params, "surrogate-gp")
    picks = [int(a["x"]) for a in get_suggestions(make_request(exp, trials, 3)).assignments]
    assert all(40 <= x < 75 for x in picks)


def test_ei_per_cost_prefers_cheap_configurations() -> None:
    params = bert_space()
    space = SearchSpace.from_proto(params)
    configs = space.enumerate()
    rng = np.random.default_rng(0)
    trials = []
    for i, j in enumerate(rng.permutation(24)[:8]):
        c = configs[j]
        cost = "1000" if c["max_seq_length"] == "256" else "10"
        trials.append(
            make_trial(f"t{i}", c, metrics={"accuracy": str(0.8 + 0.001 * rng.random()), "gpu_seconds": cost})
        )
    settings = [("acquisition", "ei_per_cost"), ("cost_metric", "gpu_seconds")]
    picks = get_suggestions(
        make_request(make_experiment("cost", params, "surrogate-gp", settings), trials, 4)
    )
    assert all(a["max_seq_length"] == "128" for a in picks.assignments)


def test_minimize_moves_towards_low_loss() -> None:
    params = [param("x", "double", min="0", max="1")]
    rng = np.random.default_rng(1)
    xs = rng.random(12)
    trials = [
        make_trial(f"t{i}", {"x": repr(float(x))}, metrics={"loss": str((x - 0.3) ** 2)})
        for i, x in enumerate(xs)
    ]
    exp = make_experiment("min", params, "surrogate-gp", maximize=False, metric="loss")
    x = float(get_suggestions(make_request(exp, trials, 1)).assignments[0]["x"])
    assert abs(x - 0.3) < 0.1


def test_pending_trials_are_not_proposed_again_in_a_continuous_space() -> None:
    params = [param("x", "double", min="0", max="1")]
    trials = [make_trial(f"t{i}", {"x": v}, metrics={"accuracy": str(a)}) for i, (v, a) in
              enumerate((("0.1", 0.1), ("0.4", 0.5), ("0.6", 0.6), ("0.9", 0.2)))]  # fmt: skip
    exp = make_experiment("pend", params, "surrogate-gp")
    first = float(get_suggestions(make_request(exp, trials, 1)).assignments[0]["x"])
    trials.append(make_trial("running", {"x": repr(first)}, TS.RUNNING))
    batch = [float(a["x"]) for a in get_suggestions(make_request(exp, trials, 3)).assignments]
    assert min(abs(b - first) for b in batch) > 0.01
    assert len(set(batch)) == 3


def test_a_call_within_its_deadline_is_the_deterministic_reply() -> None:
    """A deadline that is not reached changes nothing (latency itself is measured by
    bench/service_latency.py, docs/benchmarks.md)."""
    from suggestion_service.deadline import Deadline

    params = continuous_space() + categorical_space()
    space = SearchSpace.from_proto(params)
    rng = np.random.default_rng(0)
    trials = [make_trial(f"t{i}", space.assignment(r), metrics={"accuracy": str(rng.random())})
              for i, r in enumerate(space.sample_raw(rng.random((32, len(space.params)))))]  # fmt: skip
    for algorithm in ("surrogate-gp", "surrogate-rf"):
        request = make_request(make_experiment("lat", params, algorithm), trials, 3)
        free = get_suggestions(request).assignments
        assert len(free) == 3 and all(space.contains(a) for a in free), algorithm
        assert get_suggestions(request, deadline=Deadline.after(600)).assignments == free, algorithm


def test_search_parts_are_an_argument_and_default_to_the_service_own() -> None:
    """A prototype surrogate or acquisition reaches the search as ``parts``; the defaults are the
    service's own, and nothing is left behind for the next call."""
    from suggestion_service.acquisition import predicted_mean
    from suggestion_service.bayesopt import DEFAULT_PARTS, SearchParts
    from suggestion_service.model_fit import make_surrogate

    params = continuous_space()
    space = SearchSpace.from_proto(params)
    rng = np.random.default_rng(3)
    trials = [make_trial(f"t{i}", space.assignment(r), metrics={"accuracy": str(rng.random())})
              for i, r in enumerate(space.sample_raw(rng.random((8, len(space.params)))))]  # fmt: skip
    request = make_request(make_experiment("parts", params, "surrogate-gp"), trials, 3)
    own = get_suggestions(request).assignments
    assert get_suggestions(request, parts=DEFAULT_PARTS).assignments == own
    built: list[int] = []

    def counting(settings, seed, *args):  # the service's model, counted
        built.append(seed)
        return make_surrogate(settings, seed, *args)

    assert get_suggestions(request, parts=SearchParts(surrogate=counting)).assignments == own
    assert len(built) == 1
    greedy = SearchParts(acquisition=lambda settings, history, space: predicted_mean)
    assert get_suggestions(request, parts=greedy).assignments != own
    assert get_suggestions(request).assignments == own
