"""SearchSpace: validation, encoding, exact decoding and identities."""

from __future__ import annotations

import numpy as np
import pytest

from katib_model import search_space
from suggestion_service.errors import InvalidArgument
from suggestion_service.space import SearchSpace

from .builders import bert_space, categorical_space, continuous_space, param, resnet_space


def test_bert_space_shape_and_enumeration() -> None:
    space = SearchSpace.from_proto(bert_space())
    assert space.names == ("learning_rate", "batch_size", "max_seq_length", "num_epochs")
    assert space.is_finite() and space.size() == 24
    configs = space.enumerate()
    assert len(configs) == 24
    assert len({tuple(sorted(c.items())) for c in configs}) == 24
    # discrete values come back exactly as listed
    assert {c["learning_rate"] for c in configs} == {"2e-5", "3e-5", "5e-5"}
    assert all(space.contains(c) for c in configs)


def test_learning_rate_lists_are_encoded_on_a_log_axis() -> None:
    space = SearchSpace.from_proto(resnet_space())
    xs = [space.encode({**space.enumerate()[0], "learning_rate": lr})[0] for lr in ("0.001", "0.01", "0.1")]
    assert xs == pytest.approx([0.0, 0.5, 1.0])
    linear = SearchSpace.from_proto([param("n", "discrete", values=["10", "20", "30", "40"])])
    assert [linear.encode({"n": v})[0] for v in ("10", "20", "30", "40")] == pytest.approx(
        [0, 1 / 3, 2 / 3, 1]
    )


def test_stepped_doubles_have_no_float_artefacts() -> None:
    space = SearchSpace.from_proto([param("wd", "double", min="0.01", max="0.05", step="0.005")])
    values = [c["wd"] for c in space.enumerate()]
    assert values == ["0.01", "0.015", "0.02", "0.025", "0.03", "0.035", "0.04", "0.045", "0.05"]
    # Katib's own grid sends 0.019999999999999997; it is the same configuration as "0.02"
    assert space.key({"wd": "0.019999999999999997"}) == space.key({"wd": "0.02"})
    assert space.decode(space.encode({"wd": "0.02"})) == {"wd": "0.02"}


def test_continuous_values_are_clean_strings_within_bounds() -> None:
    space = SearchSpace.from_proto(continuous_space())
    for x in np.random.default_rng(0).random((200, space.width)) * 1.4 - 0.2:
        a = space.decode(x)
        assert space.contains(a)
        assert (len(a["lr"]) <= 20 and "e" in a["lr"]) or "." in a["lr"]
        assert 1e-5 <= float(a["lr"]) <= 1e-1
        assert a["layers"] in {str(i) for i in range(1, 9)}
    assert space.decode(np.array([1.0, 1.0, 1.0])) == {"lr": "0.1", "layers": "8", "dropout": "0.5"}
    assert space.decode(np.array([0.0, 0.0, 0.0])) == {"lr": "1e-05", "layers": "1", "dropout": "0.0"}


def test_int_keys_accept_float_spellings() -> None:
    space = SearchSpace.from_proto(continuous_space())
    base = {"lr": "0.001", "dropout": "0.1"}
    assert space.key({**base, "layers": "4"}) == space.key({**base, "layers": "4.0"})
    assert not space.contains({**base, "layers": "4.5"})
    assert not space.contains({**base, "layers": "9"})
    assert not space.contains({**base, "layers": "4", "extra": "1"})
    assert not space.contains({"lr": "0.001", "layers": "4"})
    assert not space.contains({**base, "layers": "4", "lr": "0.5"})
    assert not space.contains({**base, "layers": "4", "dropout": "0.12"})


def test_int_log_uniform_sampling_favours_small_values() -> None:
    space = SearchSpace.from_proto([param("units", "int", min="1", max="1024", distribution="logUniform")])
    raws = space.sample_raw(np.random.default_rng(0).random((4000, 1)))
    values = np.array([int(space.assignment(r)["units"]) for r in raws])
    assert np.mean(values <= 32) == pytest.approx(0.5, abs=0.05)


def test_categorical_is_one_hot() -> None:
    space = SearchSpace.from_proto(categorical_space())
    assert space.width == 3 + 2 + 1
    x = space.encode({"optimizer": "sgd", "scheduler": "linear", "warmup": "200"})
    assert x.tolist() == pytest.approx([0, 1, 0, 0, 1, 0.5])
    assert space.decode(np.array([0.1, 0.2, 0.9, 0.6, 0.1, 0.74])) == {
        "optimizer": "adamw",
        "scheduler": "cosine",
        "warmup": "300",
    }
    assert space.size() == 30


def test_katib_model_space_matches_proto() -> None:
    crd = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "1e-1",
                                                                   "distribution": "logUniform"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
        {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "0.5", "step": "0.05"}},
    ]  # fmt: skip
    a, b = search_space(crd), SearchSpace.from_proto(continuous_space())
    x = np.random.default_rng(1).random((20, a.width))
    assert [a.decode(r) for r in x] == [b.decode(r) for r in x]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([], "at least one"),
        ([param("a", "double", min="1", max="1")], "smaller than max"),
        ([param("a", "double", min="2", max="1")], "smaller than max"),
        ([param("a", "double", min="x", max="1")], "'x' is not a number"),
        ([param("a", "double", min="nan", max="1")], "finite"),
        ([param("a", "double", max="1")], "min is required"),
        ([param("a", "double", min="0", max="1", distribution="logUniform")], "min > 0"),
        ([param("a", "double", min="1e-999999999", max="1", distribution="logUniform")], "0 as a double"),
        ([param("a", "double", min="0", max="1", step="-0.1")], "step must be > 0"),
        ([param("a", "double", min="0", max="1", step="2")], "larger than max - min"),
        ([param("a", "int", min="0.5", max="3")], "integer"),
        ([param("a", "int", min="0", max="3", step="0.5")], "integer"),
        ([param("a", "double", min="0", max="1", distribution="normal")], "NORMAL"),
        ([param("a", "double", min="1", max="2", distribution="logNormal")], "LOG_NORMAL"),
        ([param("a", "discrete", values=[])], "empty"),
        ([param("a", "discrete", values=["1", "1"])], "duplicate"),
        ([param("a", "discrete", values=["1", "1.0"])], "numerically equal"),
        ([param("a", "discrete", values=["1", "big"])], "must be numbers"),
        ([param("a", "categorical", values=["x", "x"])], "duplicate"),
        ([param("a", "categorical", values=["x"], distribution="logUniform")], "logUniform"),
        ([param("a", "discrete", values=["0", "1"], distribution="logUniform")], "> 0"),
        ([param("a", "categorical", values=["x"], min="1")], "not min"),
        ([param("a", "double", min="0", max="1", values=["1"])], "not a list"),
        ([param("a", "int", min="0", max="1"), param("a", "int", min="0", max="1")], "unique"),
        ([param("", "int", min="0", max="1")], "empty name"),
    ],
)
def test_invalid_spaces_are_rejected_with_a_clear_message(params: list, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment.replace("(", r"\(")) as err:
        SearchSpace.from_proto(params)
    if params and params[0].name:
        assert "'a'" in str(err.value)


def test_unknown_type_is_rejected() -> None:
    spec = param("a", "int", min="0", max="1")
    spec.parameter_type = 0
    with pytest.raises(InvalidArgument, match="UNKNOWN_TYPE"):
        SearchSpace.from_proto([spec])


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"name": "a", "parameterType": "float", "feasibleSpace": {"min": "0", "max": "1"}}, "parameterType"),
        ({"name": "a", "parameterType": "double", "feasibleSpace": {"min": 0, "max": "1"}}, "must be a string"),
        ({"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "distribution": "log"}},
         "distribution"),
        ({"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1", "mn": "1"}}, "unknown"),
        ({"name": "a", "parameterType": "discrete", "feasibleSpace": {"list": [1, 2]}}, "list of strings"),
        ({"parameterType": "double"}, "name"),
    ],
)  # fmt: skip
def test_invalid_crd_dicts(entry: dict, fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        search_space([entry])


def test_enumerate_refuses_continuous_spaces() -> None:
    space = SearchSpace.from_proto(continuous_space())
    assert not space.is_finite() and space.size() is None
    with pytest.raises(InvalidArgument, match="lr"):
        space.enumerate()
