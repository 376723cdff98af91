"""Property tests (hypothesis): encoding round-trips and the reply invariants on generated spaces."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suggestion_service.engine import get_suggestions
from suggestion_service.proto import api_pb2
from suggestion_service.space import SearchSpace

from .builders import TS, make_experiment, make_request, make_trial, param

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENGINE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def parameter_specs(draw: st.DrawFn, name: str, finite_only: bool = False) -> api_pb2.ParameterSpec:
    kinds = ["int", "discrete", "categorical", "double_step"] + ([] if finite_only else ["double"])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        lo = draw(st.integers(-50, 50))
        hi = lo + draw(st.integers(1, 40))
        log = lo > 0 and draw(st.booleans())
        step = draw(st.sampled_from(["", "1", "2", "3"]))
        step = step if not step or int(step) <= hi - lo else ""
        return param(
            name, "int", min=str(lo), max=str(hi), step=step, distribution="logUniform" if log else None
        )
    if kind == "discrete":
        numbers = draw(st.lists(st.sampled_from(["1e-5", "2e-5", "3e-5", "5e-5", "0.001", "0.01", "0.1", "16",
                                                  "32", "-4", "0", "128", "2.5"]),
                                min_size=1, max_size=5, unique=True))  # fmt: skip
        return param(name, "discrete", values=numbers)
    if kind == "categorical":
        return param(name, "categorical", values=draw(st.lists(st.text("abcxyz", min_size=1, max_size=4),
                                                               min_size=1, max_size=4, unique=True)))  # fmt: skip
    lo = draw(st.sampled_from(["0", "0.01", "1e-5", "-1", "0.5"]))
    width = draw(st.sampled_from(["0.04", "1", "3.5", "100"]))
    hi = repr(float(lo) + float(width))
    log = float(lo) > 0 and draw(st.booleans())
    if kind == "double_step":
        step = draw(st.sampled_from(["0.005", "0.01", "0.02", "0.25"]))
        if float(step) > float(width):
            step = "0.005"
        return param(name, "double", min=lo, max=hi, step=step, distribution="logUniform" if log else None)
    return param(name, "double", min=lo, max=hi, distribution="logUniform" if log else None)


@st.composite
def spaces(draw: st.DrawFn, finite_only: bool = False) -> list[api_pb2.ParameterSpec]:
    n = draw(st.integers(1, 4))
    specs = [draw(parameter_specs(f"p{i}", finite_only)) for i in range(n)]
    if finite_only:
        size = SearchSpace.from_proto(specs).size()
        if size > 5000:
            specs = specs[:1]
    return specs


@FAST
@given(spaces(), st.integers(0, 2**32 - 1))
def test_encode_decode_round_trip(specs: list, seed: int) -> None:
    space = SearchSpace.from_proto(specs)
    rng = np.random.default_rng(seed)
    for raw in space.sample_raw(rng.random((20, len(space.params)))):
        a = space.assignment(raw)
        assert space.contains(a)
        x = space.encode(a)
        assert x.shape == (space.width,) and np.all((x >= 0) & (x <= 1))
        assert space.decode(x) == a
        assert space.key(space.decode(x)) == space.key(a)


@FAST
@given(spaces(), st.integers(0, 2**32 - 1))
def test_decode_of_any_point_is_feasible(specs: list, seed: int) -> None:
    space = SearchSpace.from_proto(specs)
    for x in np.random.default_rng(seed).normal(0.5, 1.0, size=(20, space.width)):
        a = space.decode(x)
        assert list(a) == list(space.names) and space.contains(a)
        for p, value in zip(space.params, a.values(), strict=True):
            if p.kind in ("DISCRETE", "CATEGORICAL"):
                assert value in p.values  # the list's own strings
            else:
                assert "999999" not in value and "000000000" not in value  # no float artefacts


@st.composite
def requests(draw: st.DrawFn) -> tuple:
    algorithm = draw(st.sampled_from(["surrogate-gp", "surrogate-rf", "grid", "random"]))
    specs = draw(spaces(finite_only=algorithm == "grid"))
    space = SearchSpace.from_proto(specs)
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    n_trials = draw(st.integers(0, 12))
    conditions = [TS.SUCCEEDED, TS.SUCCEEDED, TS.RUNNING, TS.FAILED, TS.CREATED, TS.KILLED, TS.EARLYSTOPPED]
    trials = []
    for i, raw in enumerate(space.sample_raw(rng.random((n_trials, len(space.params))))):
        cond = conditions[int(rng.integers(len(conditions)))]
        value = draw(st.sampled_from(["0.5", "0.9", "unavailable", "", "nan", "0.1", "0.7"]))
        trials.append(make_trial(f"t{i}", space.assignment(raw), cond, {"accuracy": value}))
    n = draw(st.integers(1, 6))
    exp = make_experiment(f"prop-{seed % 97}", specs, algorithm, maximize=draw(st.booleans()))
    return space, make_request(exp, trials, n)


@ENGINE
@given(requests())
def test_reply_invariants(case: tuple) -> None:
    space, request = case
    result = get_suggestions(request)
    n = request.current_request_number
    assert len(result.assignments) == n
    for a in result.assignments:
        assert list(a) == list(space.names) and space.contains(a)
    if space.is_finite():
        tried = {
            space.key({x.name: x.value for x in t.spec.parameter_assignments.assignments})
            for t in request.trials
        }
        keys = [space.key(a) for a in result.assignments]
        unseen = space.size() - len(tried)
        m = min(n, unseen)
        new = keys[:m]  # unseen configurations come first, each once
        assert len(set(new)) == m and not set(new) & tried
        assert set(keys[m:]) <= tried | set(new)  # then (only when exhausted) re-proposals
        assert result.exhausted == (unseen < n)
    assert get_suggestions(request).assignments == result.assignments
