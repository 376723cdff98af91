"""Warm start: the setting, resolution and caching of prior experiments, and the model's use of them."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from suggestion_service import engine
from suggestion_service.bayesopt import WARM_INITIAL_POINTS, default_initial_points
from suggestion_service.deadline import Deadline
from suggestion_service.errors import InvalidArgument, Unavailable
from suggestion_service.prior_fetch import PriorCache, WarmStart
from suggestion_service.prior_math import prior_data
from suggestion_service.priors import (
    NoPriorSource,
    PriorExperiment,
    PriorForbidden,
    PriorNotFound,
    PriorTrial,
    PriorUnavailable,
    StaticPriorSource,
    service_namespace,
)
from suggestion_service.settings import PriorRef, parse_settings
from suggestion_service.space import SearchSpace

from .builders import TS, bert_space, continuous_space, make_experiment, make_request, make_trial

BERT = SearchSpace.from_proto(bert_space())
GRID = BERT.enumerate()


def bert_value(a: dict[str, str]) -> float:
    """A smooth accuracy surface on the BERT grid: best at lr 3e-5, batch 16, seq 256, 3 epochs."""
    lr = {"2e-5": 0.0, "3e-5": 1.0, "5e-5": 0.2}[a["learning_rate"]]
    return round(
        0.70
        + 0.1 * lr
        + 0.02 * (a["batch_size"] == "16")
        + 0.01 * (a["max_seq_length"] == "256")
        + 0.005 * (a["num_epochs"] == "3"),
        6,
    )


BEST = max(GRID, key=bert_value)


def prior_experiment(
    name: str = "sst2",
    namespace: str = "default",
    trials: tuple[PriorTrial, ...] | None = None,
    metric: str = "accuracy",
    direction: str = "maximize",
) -> PriorExperiment:
    """A prior over half of the BERT grid (every other configuration) unless ``trials`` are given."""
    if trials is None:
        trials = tuple(PriorTrial(a, {metric: str(bert_value(a))}) for a in GRID[1::2])
    return PriorExperiment(namespace, name, metric, direction, trials)


def warm(*experiments: PriorExperiment, namespace: str = "default") -> WarmStart:
    """A WarmStart over a static source (own namespace ``namespace``)."""
    return WarmStart(StaticPriorSource(experiments), namespace=namespace)


def warm_experiment(algorithm: str = "surrogate-gp", refs: str = "sst2", extra=(), **kw):
    """The MRPC-like experiment that warm-starts from ``refs``."""
    return make_experiment(
        "mrpc", bert_space(), algorithm, settings=[("warm_start_experiments", refs), *extra], **kw
    )


# ---- the setting ------------------------------------------------------------------------------------


def test_setting_parses_references() -> None:
    s = parse_settings("surrogate-gp", [("warm_start_experiments", " team-a/sst2-random ,  sst2 ")])
    assert s.warm_start_experiments == (PriorRef("team-a", "sst2-random"), PriorRef(None, "sst2"))
    assert str(s.warm_start_experiments[0]) == "team-a/sst2-random"
    assert s.warm_start_max_trials == 200


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "an entry is empty"),
        ("a,,b", "an entry is empty"),
        ("Team/a", "'Team/a' is not one"),
        ("a/b/c", "'a/b/c' is not one"),
        ("-a", "'-a' is not one"),
        ("a_b", "'a_b' is not one"),
        ("x" * 64, "is not one"),
        ("a, a", "'a' is listed twice"),
        (",".join(f"e{i}" for i in range(11)), "(11 given)"),
    ],
)
def test_setting_errors_say_what_is_allowed(value: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_settings("surrogate-rf", [("warm_start_experiments", value)])
    assert why in str(err.value)
    assert "comma-separated experiment references `namespace/name` or `name`" in str(err.value)


def test_setting_applies_to_surrogates_only_and_cap_needs_experiments() -> None:
    with pytest.raises(InvalidArgument, match="does not apply to algorithm 'random'"):
        parse_settings("random", [("warm_start_experiments", "a")])
    with pytest.raises(InvalidArgument, match="only applies together with warm_start_experiments"):
        parse_settings("surrogate-gp", [("warm_start_max_trials", "50")])
    with pytest.raises(InvalidArgument, match=r"warm_start_max_trials='0' is invalid; allowed: an integer"):
        parse_settings("surrogate-gp", [("warm_start_experiments", "a"), ("warm_start_max_trials", "0")])


def test_service_namespace_order(tmp_path) -> None:
    (tmp_path / "namespace").write_text("team-b\n")
    assert service_namespace({"POD_NAMESPACE": "team-a"}, tmp_path) == "team-a"
    assert service_namespace({}, tmp_path) == "team-b"
    assert service_namespace({}, tmp_path / "missing") == "default"


# ---- resolution, errors, cache ----------------------------------------------------------------------


def test_bare_names_resolve_to_the_own_namespace_and_duplicates_or_self_are_rejected() -> None:
    ws = WarmStart(StaticPriorSource([prior_experiment()]), namespace="default", allowed_namespaces=["other"])
    assert ws.references("mrpc", [PriorRef(None, "sst2"), PriorRef("other", "sst2")]) == [
        ("default", "sst2"),
        ("other", "sst2"),
    ]
    with pytest.raises(InvalidArgument, match="names default/sst2 twice"):
        ws.references("mrpc", [PriorRef(None, "sst2"), PriorRef("default", "sst2")])
    with pytest.raises(InvalidArgument, match="names this experiment itself"):
        ws.references("mrpc", [PriorRef("default", "mrpc")])


@pytest.mark.parametrize(
    ("prior", "message"),
    [
        (
            prior_experiment(metric="f1"),
            "has objective maximize 'f1', but this experiment has maximize 'accuracy'",
        ),
        (prior_experiment(direction="minimize"), "minimize 'accuracy', but this experiment has maximize"),
    ],
)
def test_objective_mismatch_is_invalid(prior: PriorExperiment, message: str) -> None:
    exp = warm_experiment()
    with pytest.raises(InvalidArgument, match=message):
        engine.validate_experiment(exp, warm(prior))
    with pytest.raises(InvalidArgument, match=message):
        engine.get_suggestions(make_request(exp, [], 1), warm(prior))


class ScriptedSource:
    """A source that raises the given error (or returns the prior) and counts its calls."""

    def __init__(self, outcome: Exception | PriorExperiment) -> None:
        self.outcome = outcome
        self.calls = 0

    def fetch(self, namespace: str, name: str) -> PriorExperiment:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PriorNotFound("experiment default/sst2: not found"), InvalidArgument),
        (PriorForbidden("experiment default/sst2: forbidden"), InvalidArgument),
        (PriorUnavailable("HTTP 503"), Unavailable),
    ],
)
def test_source_errors_map_to_service_errors(error: Exception, expected: type) -> None:
    source = ScriptedSource(error)
    exp = warm_experiment()
    with pytest.raises(expected) as err:
        engine.get_suggestions(make_request(exp, [], 2), WarmStart(source, namespace="default"))
    assert str(error) in str(err.value)
    with pytest.raises(expected):
        engine.validate_experiment(exp, WarmStart(source, namespace="default"))


def test_without_a_source_warm_start_is_invalid_and_says_how_to_enable_one() -> None:
    exp = warm_experiment()
    with pytest.raises(InvalidArgument, match="has no prior-trial source"):
        engine.validate_experiment(exp, WarmStart(NoPriorSource(), namespace="default"))


def test_cache_serves_repeated_calls_and_expires() -> None:
    now = [0.0]
    source = ScriptedSource(prior_experiment())
    ws = WarmStart(source, namespace="default", cache=PriorCache(ttl_s=60, clock=lambda: now[0]))
    exp = warm_experiment()
    for _ in range(3):
        engine.get_suggestions(make_request(exp, [], 1), ws)
    assert source.calls == 1
    now[0] = 61.0
    engine.get_suggestions(make_request(exp, [], 1), ws)
    assert source.calls == 2


def test_reading_priors_stops_at_the_call_deadline_and_the_retry_goes_on_from_the_cache() -> None:
    """A slow API server with several priors: once the call's deadline has passed no further prior is
    fetched (UNAVAILABLE, which Katib retries); the retry finds the ones already read in the cache."""

    class SlowSource:
        def __init__(self) -> None:
            self.fetched: list[str] = []

        def fetch(self, namespace: str, name: str) -> PriorExperiment:
            self.fetched.append(name)
            time.sleep(0.2)  # longer than the deadline below
            return prior_experiment(name)

    source = SlowSource()
    ws = WarmStart(source, namespace="default")
    request = make_request(warm_experiment(refs="sst2,cola"), [], 1)
    late = pytest.raises(Unavailable, match="ran out of time reading warm-start experiments")
    with late:
        engine.get_suggestions(request, ws, deadline=Deadline.after(0.1))
    assert source.fetched == ["sst2"]
    assert len(engine.get_suggestions(request, ws, deadline=Deadline.after(30)).assignments) == 1
    assert source.fetched == ["sst2", "cola"]


def test_errors_are_not_cached() -> None:
    source = ScriptedSource(PriorUnavailable("timeout"))
    ws = WarmStart(source, namespace="default")
    exp = warm_experiment()
    with pytest.raises(Unavailable):
        engine.get_suggestions(make_request(exp, [], 1), ws)
    source.outcome = prior_experiment()
    assert len(engine.get_suggestions(make_request(exp, [], 1), ws).assignments) == 1
    assert source.calls == 2


def test_cache_is_bounded_lru_and_thread_safe() -> None:
    cache = PriorCache(ttl_s=60, max_entries=3)
    exps = [prior_experiment(name=f"e{i}") for i in range(5)]

    def worker(offset: int) -> None:
        for i in range(200):
            e = exps[(i + offset) % 5]
            cache.put((e.namespace, e.name), e)
            got = cache.get((e.namespace, e.name))
            assert got is None or got.name == e.name

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 3
    cache.put(("default", "e0"), exps[0])
    cache.put(("default", "e1"), exps[1])
    cache.get(("default", "e0"))  # e0 used most recently: e1 goes first
    cache.put(("default", "e2"), exps[2])
    cache.put(("default", "e3"), exps[3])
    assert cache.get(("default", "e0")) is not None
    assert cache.get(("default", "e1")) is None


# ---- which prior trials are used --------------------------------------------------------------------


def test_prior_trials_are_matched_by_name_and_out_of_space_ones_dropped_with_one_log_line(caplog) -> None:
    good = GRID[0]
    trials = (
        PriorTrial(good, {"accuracy": "0.71"}),
        PriorTrial({**good, "extra_param": "7"}, {"accuracy": "0.72"}),  # extra names are ignored
        PriorTrial({**good, "learning_rate": "1e-3"}, {"accuracy": "0.99"}),  # not a listed value
        PriorTrial({k: v for k, v in good.items() if k != "num_epochs"}, {"accuracy": "0.9"}),
        PriorTrial(good, {"accuracy": "unavailable"}),
        PriorTrial(good, {}, succeeded=False),
    )
    exp = warm_experiment()
    with caplog.at_level(logging.INFO, logger="suggestion_service.warm_start"):
        data = prior_data(BERT, [prior_experiment(trials=trials)], exp.spec.objective, 200)
    assert len(data) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "warm start from default/sst2: using 2 of 6 trials" in lines[0]
    assert "1 not succeeded" in lines[0]
    assert "1 without a finite objective value" in lines[0]
    assert "1 missing a parameter of this experiment: 'num_epochs' (1)" in lines[0]
    assert "1 with a value outside this search space" in lines[0] and "'1e-3'" in lines[0]


def test_continuous_space_drops_values_outside_the_bounds() -> None:
    space = SearchSpace.from_proto(continuous_space())
    inside = {"lr": "0.001", "layers": "3", "dropout": "0.1"}
    trials = (
        PriorTrial(inside, {"accuracy": "0.8"}),
        PriorTrial({**inside, "lr": "0.5"}, {"accuracy": "0.9"}),
        PriorTrial({**inside, "layers": "12"}, {"accuracy": "0.9"}),
    )
    exp = make_experiment("c", continuous_space(), "surrogate-gp")
    data = prior_data(space, [prior_experiment(trials=trials)], exp.spec.objective, 200)
    assert len(data) == 1 and data.stats[0].n_outside == 2


def test_validation_rejects_a_prior_whose_trials_never_fit_the_space() -> None:
    renamed = tuple(
        PriorTrial({("lr" if k == "learning_rate" else k): v for k, v in a.items()}, {"accuracy": "0.8"})
        for a in GRID[:6]
    )
    with pytest.raises(
        InvalidArgument, match="none of the 6 succeeded trials of experiment default/sst2 fits"
    ):
        engine.validate_experiment(warm_experiment(), warm(prior_experiment(trials=renamed)))
    # A prior that has not finished any trial yet is accepted (it may still be running).
    engine.validate_experiment(warm_experiment(), warm(prior_experiment(trials=())))


def test_cap_keeps_the_best_half_and_a_seeded_rest() -> None:
    exp = warm_experiment()
    prior = prior_experiment(trials=tuple(PriorTrial(a, {"accuracy": str(bert_value(a))}) for a in GRID))
    data = prior_data(BERT, [prior], exp.spec.objective, 8)
    again = prior_data(BERT, [prior], exp.spec.objective, 8)
    assert len(data) == 8 and data.stats[0].capped == 16
    assert data.fingerprint() == again.fingerprint()
    best4 = sorted(-bert_value(a) for a in GRID)[:4]
    assert sorted(data.losses)[:4] == best4


# ---- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["surrogate-gp", "surrogate-rf"])
def test_first_proposal_comes_from_the_priors_best_region(algorithm: str) -> None:
    exp = warm_experiment(algorithm)
    first = engine.get_suggestions(make_request(exp, [], 1), warm(prior_experiment())).assignments[0]
    assert first["learning_rate"] == "3e-5" and first["batch_size"] == "16"
    assert bert_value(first) >= sorted(map(bert_value, GRID))[-4]


@pytest.mark.parametrize("algorithm", ["surrogate-gp", "surrogate-rf"])
def test_warm_start_skips_the_initial_design_but_an_explicit_setting_keeps_it(algorithm: str) -> None:
    assert default_initial_points(BERT) > WARM_INITIAL_POINTS
    ws = warm(prior_experiment())
    auto = engine.get_suggestions(make_request(warm_experiment(algorithm), [], 3), ws).assignments
    explicit = warm_experiment(algorithm, extra=[("n_initial_points", "3")])
    design = engine.get_suggestions(make_request(explicit, [], 3), ws).assignments
    assert len({a["learning_rate"] for a in design}) == 3  # a space-filling design covers every learning rate
    assert auto[0]["learning_rate"] == "3e-5"  # the model's first pick: the prior's best region
    assert sum(map(bert_value, auto)) > sum(map(bert_value, design))


def test_priors_never_block_a_configuration_and_never_count_as_own_trials() -> None:
    # The prior holds every configuration, the best one included; the service still proposes it.
    everything = tuple(PriorTrial(a, {"accuracy": str(bert_value(a))}) for a in GRID)
    ws = warm(prior_experiment(trials=everything))
    picks = engine.get_suggestions(make_request(warm_experiment(), [], 1), ws).assignments
    assert picks == [BEST]
    # With 23 own trials done, the only unseen configuration comes next and the space is not exhausted.
    own = [make_trial(f"t{i}", a, TS.SUCCEEDED, {"accuracy": bert_value(a)}) for i, a in enumerate(GRID[:-1])]
    result = engine.get_suggestions(make_request(warm_experiment(), own, 1), ws)
    assert result.assignments == [GRID[-1]] and not result.exhausted
    assert result.n_observed == 23 and result.n_prior == 24
    # A whole batch on an untouched grid: distinct configurations, none repeated because of the prior.
    batch = engine.get_suggestions(make_request(warm_experiment(), [], 24), ws)
    assert len({tuple(sorted(a.items())) for a in batch.assignments}) == 24 and not batch.exhausted


def test_failed_own_trials_before_any_success_are_handled() -> None:
    ws = warm(prior_experiment())
    failed = [make_trial("f0", BEST, TS.FAILED)]
    result = engine.get_suggestions(make_request(warm_experiment(), failed, 2), ws)
    assert BEST not in result.assignments and result.n_failed == 1


def test_determinism_and_the_seed_includes_the_prior_data() -> None:
    own = [make_trial(f"t{i}", a, TS.SUCCEEDED, {"accuracy": bert_value(a)}) for i, a in enumerate(GRID[:3])]
    exp = warm_experiment("surrogate-rf")
    a = engine.get_suggestions(make_request(exp, own, 4), warm(prior_experiment())).assignments
    b = engine.get_suggestions(make_request(exp, own, 4), warm(prior_experiment())).assignments
    assert a == b
    reversed_prior = prior_experiment(trials=tuple(reversed(prior_experiment().trials)))
    assert engine.get_suggestions(make_request(exp, own, 4), warm(reversed_prior)).assignments == a
    shifted = prior_experiment(
        trials=tuple(PriorTrial(t.assignment, {"accuracy": str(float(t.metrics["accuracy"]) + 1e-6)})
                     for t in prior_experiment().trials)
    )  # fmt: skip
    fingerprints = [
        prior_data(BERT, [p], exp.spec.objective, 200).fingerprint() for p in (prior_experiment(), shifted)
    ]
    assert fingerprints[0] != fingerprints[1]  # different prior data -> a different seed


def test_transfer_check_drops_a_contradicting_prior_and_keeps_a_related_one(caplog) -> None:
    mirrored = prior_experiment(
        "mirror",
        trials=tuple(PriorTrial(a, {"accuracy": str(round(1.6 - bert_value(a), 6))}) for a in GRID[1::2]),
    )
    related = prior_experiment("related")
    own_configs = GRID[0:24:5]  # 5 configurations spread over the grid
    own = [
        make_trial(f"t{i}", a, TS.SUCCEEDED, {"accuracy": bert_value(a)}) for i, a in enumerate(own_configs)
    ]
    exp = warm_experiment(refs="mirror,related")
    with caplog.at_level(logging.INFO, logger="suggestion_service.warm_start"):
        result = engine.get_suggestions(make_request(exp, own, 1), warm(mirrored, related))
    assert result.n_prior == 12  # only the related prior's 12 trials are left
    assert any("leaving out default/mirror" in r.getMessage() for r in caplog.records)
    assert not any("leaving out default/related" in r.getMessage() for r in caplog.records)
    # With fewer own observations than the check needs, the prior is trusted.
    few = engine.get_suggestions(make_request(exp, own[:3], 1), warm(mirrored, related))
    assert few.n_prior == 24


@pytest.mark.parametrize("algorithm", ["surrogate-gp", "surrogate-rf"])
def test_negative_transfer_is_caught_by_own_trials(algorithm: str) -> None:
    """A prior whose surface is the mirror image: after a few own trials it is left out of the model
    (both algorithms), while a related prior with the same trials' configurations is kept."""
    mirrored = tuple(PriorTrial(a, {"accuracy": str(round(1.6 - bert_value(a), 6))}) for a in GRID[1::2])
    ws = warm(prior_experiment(trials=mirrored))
    own_configs = [a for a in GRID if a["learning_rate"] != "3e-5"][:6] + [
        a for a in GRID if a["learning_rate"] == "3e-5"
    ][:2]
    own = [
        make_trial(f"t{i}", a, TS.SUCCEEDED, {"accuracy": bert_value(a)}) for i, a in enumerate(own_configs)
    ]
    result = engine.get_suggestions(make_request(warm_experiment(algorithm), own, 2), ws)
    assert result.n_prior == 0 and len(result.assignments) == 2
    related = engine.get_suggestions(
        make_request(warm_experiment(algorithm), own, 2), warm(prior_experiment())
    )
    assert related.n_prior == 12


def test_latency_with_200_own_and_200_prior_trials_8_params() -> None:
    from .builders import param

    params = [param(f"x{i}", "double", min="0", max="1") for i in range(8)]
    rng = np.random.default_rng(0)

    def f(x: np.ndarray) -> float:
        return float(-np.sum((x - 0.3) ** 2))

    def trial_of(x: np.ndarray) -> dict[str, str]:
        return {f"x{i}": f"{v:.6f}" for i, v in enumerate(x)}

    own_x, prior_x = rng.random((200, 8)), rng.random((200, 8))
    own = [make_trial(f"t{i}", trial_of(x), TS.SUCCEEDED, {"accuracy": f(x)}) for i, x in enumerate(own_x)]
    prior = prior_experiment(
        trials=tuple(PriorTrial(trial_of(x), {"accuracy": str(f(x) + 0.1)}) for x in prior_x)
    )
    import time

    for algorithm in ("surrogate-gp", "surrogate-rf"):
        exp = make_experiment("big", params, algorithm, settings=[("warm_start_experiments", "sst2")])
        ws = warm(prior)
        times = []
        for k in range(3):
            t0 = time.perf_counter()
            result = engine.get_suggestions(make_request(exp, own[: 198 + k], 1), ws)
            times.append(time.perf_counter() - t0)
        assert result.n_prior == 200
        assert max(times) < 1.5, (algorithm, times)
