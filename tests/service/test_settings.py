"""Algorithm settings: defaults, parsing and every kind of bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from suggestion_service.errors import InvalidArgument
from suggestion_service.settings import (
    ALGORITHMS,
    SETTINGS_DOC,
    Settings,
    parse_settings,
    settings_for,
    settings_table_markdown,
)


def test_algorithms() -> None:
    assert ALGORITHMS == ("surrogate-gp", "surrogate-rf", "grid", "random")


def test_defaults() -> None:
    s = parse_settings("surrogate-gp", [])
    assert s == Settings(algorithm="surrogate-gp")
    assert s.acquisition == "auto" and s.n_initial_points is None and s.random_state == 0 and s.is_surrogate
    assert not parse_settings("grid", []).is_surrogate


def test_valid_values_parse() -> None:
    s = parse_settings(
        "surrogate-gp",
        [("random_state", "42"), ("n_initial_points", "4"), ("acquisition", "ei_per_cost"), ("xi", "0.05"),
         ("cost_metric", "gpu_seconds"), ("cost_exponent", "0.5"), ("n_candidates", "500"),
         ("batch_strategy", "constant_liar"), ("failed_trials", "ignore"), ("output_transform", "standardize"),
         ("gp_restarts", "0")],
    )  # fmt: skip
    assert (s.random_state, s.n_initial_points, s.acquisition, s.xi, s.cost_metric, s.cost_exponent) == (
        42, 4, "ei_per_cost", 0.05, "gpu_seconds", 0.5,
    )  # fmt: skip
    assert (s.n_candidates, s.batch_strategy, s.failed_trials, s.output_transform, s.gp_restarts) == (
        500, "constant_liar", "ignore", "standardize", 0,
    )  # fmt: skip
    rf = parse_settings("surrogate-rf", [("n_trees", "16"), ("forest_kind", "extra_trees"), ("acquisition", "ucb"),
                                         ("kappa", "3")])  # fmt: skip
    assert (rf.n_trees, rf.forest_kind, rf.kappa) == (16, "extra_trees", 3.0)
    assert parse_settings("grid", [("random_state", "7")]).random_state == 7
    assert parse_settings("random", [("random_state", "7")]).random_state == 7


@pytest.mark.parametrize(
    ("algorithm", "settings", "fragments"),
    [
        ("bayesianoptimization", [], ["bayesianoptimization", "surrogate-gp"]),
        ("surrogate-gp", [("foo", "1")], ["'foo'", "allowed"]),
        ("surrogate-gp", [("random_state", "-1")], ["random_state", "'-1'", "[0, 4294967295]"]),
        ("surrogate-gp", [("random_state", "1.5")], ["random_state", "'1.5'"]),
        ("surrogate-gp", [("n_initial_points", "0")], ["n_initial_points", "'0'", "[1, 1000]"]),
        ("surrogate-gp", [("n_initial_points", "")], ["n_initial_points"]),
        ("surrogate-gp", [("acquisition", "EI")], ["acquisition", "'EI'", "ei, ucb, pi, ei_per_cost"]),
        ("surrogate-gp", [("xi", "-0.1")], ["xi", "'-0.1'", "[0, 10]"]),
        ("surrogate-gp", [("xi", "nan")], ["xi", "'nan'"]),
        ("surrogate-gp", [("acquisition", "ucb"), ("kappa", "inf")], ["kappa", "'inf'"]),
        ("surrogate-gp", [("n_candidates", "10")], ["n_candidates", "'10'", "[64, 50000]"]),
        ("surrogate-gp", [("batch_strategy", "greedy")], ["batch_strategy", "kriging_believer"]),
        ("surrogate-gp", [("failed_trials", "best")], ["failed_trials", "worst, ignore"]),
        ("surrogate-gp", [("output_transform", "log")], ["output_transform", "rank, standardize"]),
        ("surrogate-gp", [("gp_restarts", "11")], ["gp_restarts", "[0, 10]"]),
        ("surrogate-gp", [("n_trees", "10")], ["n_trees", "does not apply", "surrogate-gp"]),
        ("surrogate-rf", [("gp_restarts", "1")], ["gp_restarts", "does not apply", "surrogate-rf"]),
        ("surrogate-rf", [("n_trees", "4")], ["n_trees", "[8, 1000]"]),
        ("surrogate-rf", [("forest_kind", "gbrt")], ["forest_kind", "extra_trees, random_forest"]),
        ("grid", [("acquisition", "ei")], ["acquisition", "does not apply", "grid", "random_state"]),
        ("random", [("n_initial_points", "3")], ["n_initial_points", "does not apply", "random"]),
        ("surrogate-gp", [("acquisition", "ei_per_cost")], ["ei_per_cost", "cost_metric"]),
        ("surrogate-gp", [("cost_metric", "gpu_seconds")], ["cost_metric", "ei_per_cost", "'auto'"]),
        ("surrogate-gp", [("kappa", "2")], ["kappa", "ucb"]),
        ("surrogate-gp", [("acquisition", "ucb"), ("xi", "0.1")], ["xi", "ucb"]),
        ("surrogate-gp", [("cost_exponent", "1")], ["cost_exponent", "ei_per_cost"]),
        ("surrogate-gp", [("acquisition", "ei_per_cost"), ("cost_metric", "gpu.seconds")], ["cost_metric"]),
        ("surrogate-gp", [("xi", "0.1"), ("xi", "0.2")], ["xi", "more than once"]),
    ],
)
def test_bad_settings_name_the_setting(algorithm: str, settings: list, fragments: list[str]) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_settings(algorithm, settings)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_settings_for_lists_what_the_parser_accepts() -> None:
    assert settings_for("grid") == ("random_state",) == settings_for("random")
    gp, rf = settings_for("surrogate-gp"), settings_for("surrogate-rf")
    assert gp[:2] == ("random_state", "n_initial_points") and "gp_restarts" in gp and "n_trees" not in gp
    assert {"n_trees", "forest_kind", "warm_start_experiments"} <= set(rf) and "gp_restarts" not in rf
    # exactly the settings parse_settings does not reject as "does not apply" for that algorithm
    for algorithm in ALGORITHMS:
        for name, *_ in SETTINGS_DOC:
            try:
                parse_settings(algorithm, [(name, "x")])
                message = ""
            except InvalidArgument as err:
                message = str(err)
            assert ("does not apply" in message) == (name not in settings_for(algorithm)), (algorithm, name)
    with pytest.raises(InvalidArgument, match="unknown algorithm name 'tpe'; allowed: surrogate-gp"):
        settings_for("tpe")


def test_settings_doc_covers_every_setting() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"algorithm"}
    assert {row[0] for row in SETTINGS_DOC} == fields
    for name, typ, default, allowed, applies, desc in SETTINGS_DOC:
        assert typ in {"int", "float", "str"} and default and allowed and applies and len(desc) > 20, name
        if default not in ("auto", "(none)"):
            value = getattr(Settings(algorithm="x"), name)
            assert str(value) == default, name


def test_docs_table_is_current() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "service-algorithms.md"
    assert settings_table_markdown() in doc.read_text(encoding="utf-8")
