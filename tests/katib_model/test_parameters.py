"""spec.parameters -> ParameterSpec messages and the service's SearchSpace (katib_model.parameters)."""

from __future__ import annotations

import re

import pytest

from katib_model.errors import ManifestError
from katib_model.parameters import (
    DISTRIBUTIONS,
    LIST_TYPES,
    PARAMETER_TYPES,
    RANGE_TYPES,
    Distribution,
    KatibType,
    parameter_specs,
    search_space,
)
from suggestion_service.errors import InvalidArgument
from suggestion_service.proto import api_pb2


def _enum_name(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).upper()  # logUniform -> LOG_UNIFORM


def test_names_map_to_the_proto_enum_of_the_same_name() -> None:
    assert (
        set(PARAMETER_TYPES) == {t.value for t in KatibType} == {"double", "int", "discrete", "categorical"}
    )
    for name, number in PARAMETER_TYPES.items():
        assert api_pb2.ParameterType.Name(number) == name.upper()
    assert set(DISTRIBUTIONS) == {d.value for d in Distribution}
    for name, number in DISTRIBUTIONS.items():
        assert api_pb2.Distribution.Name(number) == _enum_name(name)
    assert set(LIST_TYPES) | set(RANGE_TYPES) == set(KatibType) and not set(LIST_TYPES) & set(RANGE_TYPES)


def test_specs_carry_the_crd_strings_and_katibs_default_distribution() -> None:
    specs = parameter_specs(
        [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-5", "max": "0.1",
                                                                        "distribution": "logUniform"}},
            {"name": "bs", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}},
            {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam"], "distribution": ""}},
            {"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9", "step": "2"}},
        ]
    )  # fmt: skip
    lr, bs, opt, n = specs
    assert (lr.parameter_type, lr.feasible_space.min, lr.feasible_space.max) == (
        api_pb2.DOUBLE,
        "1e-5",
        "0.1",
    )
    assert lr.feasible_space.distribution == api_pb2.LOG_UNIFORM
    assert list(bs.feasible_space.list) == ["16", "32"] and bs.parameter_type == api_pb2.DISCRETE
    # Katib's defaulter writes uniform for a missing or empty distribution before converting.
    assert bs.feasible_space.distribution == opt.feasible_space.distribution == api_pb2.UNIFORM
    assert (n.feasible_space.step, n.parameter_type) == ("2", api_pb2.INT)


def test_search_space_is_the_services_space_of_those_specs() -> None:
    params = [{"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9", "step": "2"}}]
    space = search_space(params)
    assert space.size() == 5 and space.enumerate()[-1] == {"n": "9"}
    with pytest.raises(InvalidArgument, match="smaller than max"):
        search_space([{"name": "a", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "1"}}])


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ("lr", "must be a list"),
        ([["lr"]], r"parameters\[0\] must be a mapping"),
        ([{"name": "a", "parameterType": "float", "feasibleSpace": {}}], "parameterType 'float'"),
        ([{"name": "a", "parameterType": "int", "feasibleSpace": {"min": 1, "max": "2"}}], "quote it"),
        ([{"name": "a", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "2",
                                                                    "distribution": "log"}}], "'log' is not known"),
    ],
)  # fmt: skip
def test_malformed_entries_are_manifest_errors(parameters: object, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        parameter_specs(parameters)
