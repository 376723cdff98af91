"""History building from Katib trials."""

from __future__ import annotations

import logging

import pytest

from suggestion_service.errors import InvalidArgument
from suggestion_service.history import build_history, parse_metric_value
from suggestion_service.proto import api_pb2
from suggestion_service.space import SearchSpace

from .builders import TS, bert_space, make_trial


@pytest.mark.parametrize(
    ("text", "value"),
    [("0.93", 0.93), ("1e-3", 0.001), (" 7 ", 7.0), ("-2.5E+2", -250.0), ("", None), ("unavailable", None),
     ("nan", None), ("NaN", None), ("inf", None), ("-inf", None), ("0.9.1", None)],
)  # fmt: skip
def test_parse_metric_value(text: str, value: float | None) -> None:
    assert parse_metric_value(text) == value


A = {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"}
B = {**A, "learning_rate": "3e-5"}
C = {**A, "learning_rate": "5e-5"}
D = {**A, "batch_size": "32"}
E = {**A, "num_epochs": "4"}
F = {**A, "max_seq_length": "256"}


def objective(maximize: bool = True) -> api_pb2.ObjectiveSpec:
    return api_pb2.ObjectiveSpec(
        type=api_pb2.MAXIMIZE if maximize else api_pb2.MINIMIZE, objective_metric_name="accuracy"
    )


def test_trials_are_sorted_into_observed_pending_failed() -> None:
    space = SearchSpace.from_proto(bert_space())
    trials = [
        make_trial("ok", A, TS.SUCCEEDED, {"accuracy": "0.91", "gpu_seconds": "120"}),
        make_trial("early", B, TS.EARLYSTOPPED, {"accuracy": "0.7"}),
        make_trial("unavail", C, TS.SUCCEEDED, {"accuracy": "unavailable"}),
        make_trial("running", D, TS.RUNNING),
        make_trial("created", E, TS.CREATED),
        make_trial("failed", F, TS.FAILED),
        make_trial("killed", {**F, "num_epochs": "4"}, TS.KILLED),
        make_trial("nometric", {**D, "num_epochs": "4"}, TS.METRICSUNAVAILABLE, {"accuracy": "unavailable"}),
        make_trial("nan", {**B, "num_epochs": "4"}, TS.SUCCEEDED, {"accuracy": "nan"}),
        make_trial("empty", {**C, "num_epochs": "4"}, TS.SUCCEEDED, {"accuracy": ""}),
    ]
    h = build_history(space, trials, objective(), "gpu_seconds")
    assert [o.trial_name for o in h.observed] == ["ok", "early"]
    assert h.observed[0].y == 0.91 and h.observed[0].cost == 120.0 and h.observed[1].cost is None
    assert h.pending == [D, E]
    assert len(h.failed) == 6
    assert h.maximize and list(h.losses()) == [-0.91, -0.7]
    assert len(h.seen_keys()) == 10
    assert h.best_first()[0].trial_name == "ok"


def test_minimize_keeps_losses_as_reported() -> None:
    space = SearchSpace.from_proto(bert_space())
    trials = [make_trial("a", A, metrics={"loss": "0.3"}), make_trial("b", B, metrics={"loss": "0.1"})]
    obj = api_pb2.ObjectiveSpec(type=api_pb2.MINIMIZE, objective_metric_name="loss")
    h = build_history(space, trials, obj, None)
    assert list(h.losses()) == [0.3, 0.1] and h.best_first()[0].trial_name == "b"


def test_mismatched_trials_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    space = SearchSpace.from_proto(bert_space())
    trials = [
        make_trial("unknown-name", {**A, "momentum": "0.9"}, metrics={"accuracy": "0.5"}),
        make_trial("missing", {"learning_rate": "2e-5"}, metrics={"accuracy": "0.5"}),
        make_trial("infeasible", {**A, "batch_size": "24"}, metrics={"accuracy": "0.5"}),
        make_trial("good", {**A, "batch_size": "16.0"}, metrics={"accuracy": "0.5"}),
    ]
    with caplog.at_level(logging.WARNING, logger="suggestion_service.history"):
        h = build_history(space, trials, objective(), None)
    assert [o.trial_name for o in h.observed] == ["good"]
    assert h.observed[0].assignment["batch_size"] == "16"  # normalised to the list's own string
    text = caplog.text
    assert "unknown-name" in text and "missing" in text and "infeasible" in text and "'24'" in text


def test_unknown_objective_type_is_invalid() -> None:
    space = SearchSpace.from_proto(bert_space())
    with pytest.raises(InvalidArgument, match="UNKNOWN"):
        build_history(space, [], api_pb2.ObjectiveSpec(objective_metric_name="accuracy"), None)
    with pytest.raises(InvalidArgument, match="objective_metric_name"):
        build_history(space, [], api_pb2.ObjectiveSpec(type=api_pb2.MAXIMIZE), None)


def test_negative_or_missing_cost_is_ignored() -> None:
    space = SearchSpace.from_proto(bert_space())
    trials = [
        make_trial("neg", A, metrics={"accuracy": "0.5", "gpu_seconds": "-3"}),
        make_trial("bad", B, metrics={"accuracy": "0.5", "gpu_seconds": "unavailable"}),
        make_trial("none", C, metrics={"accuracy": "0.5"}),
    ]
    h = build_history(space, trials, objective(), "gpu_seconds")
    assert [o.cost for o in h.observed] == [None, None, None]
