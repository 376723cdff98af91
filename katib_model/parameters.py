"""``spec.parameters`` of an Experiment: Katib's type and distribution names, the proto, the search space.

This module is the project's only spelling of Katib's parameter-type names (``double``, ``int``,
``discrete``, ``categorical``) and distribution names (``uniform``, ``logUniform``, ``normal``,
``logNormal``), and the only map between them and the ``api.v1.beta1`` enums. The mapping follows
Katib v0.19's controller (``convertParameterType`` / ``convertDistribution`` in
``pkg/controller.v1beta1/suggestion/suggestionclient/suggestionclient.go``): an unset distribution is
defaulted to ``uniform`` by the Experiment defaulter before conversion, so the proto carries UNIFORM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from katib_model.errors import ManifestError
from suggestion_service.proto import api_pb2

if TYPE_CHECKING:
    from suggestion_service.space import SearchSpace


class KatibType(StrEnum):
    """``parameterType`` values of the Experiment CRD (compare equal to the plain strings)."""

    DOUBLE = "double"
    INT = "int"
    DISCRETE = "discrete"
    CATEGORICAL = "categorical"


class Distribution(StrEnum):
    """``feasibleSpace.distribution`` values of the Experiment CRD."""

    UNIFORM = "uniform"
    LOG_UNIFORM = "logUniform"
    NORMAL = "normal"
    LOG_NORMAL = "logNormal"


#: parameterType -> ``api_pb2.ParameterType``.
PARAMETER_TYPES: dict[str, int] = {
    KatibType.DOUBLE: api_pb2.DOUBLE,
    KatibType.INT: api_pb2.INT,
    KatibType.DISCRETE: api_pb2.DISCRETE,
    KatibType.CATEGORICAL: api_pb2.CATEGORICAL,
}
#: distribution -> ``api_pb2.Distribution``.
DISTRIBUTIONS: dict[str, int] = {
    Distribution.UNIFORM: api_pb2.UNIFORM,
    Distribution.LOG_UNIFORM: api_pb2.LOG_UNIFORM,
    Distribution.NORMAL: api_pb2.NORMAL,
    Distribution.LOG_NORMAL: api_pb2.LOG_NORMAL,
}
#: What Katib's defaulter writes for an empty or missing distribution.
DEFAULT_DISTRIBUTION = Distribution.UNIFORM
#: Types whose feasible space is ``list`` (the others take min/max/step).
LIST_TYPES = (KatibType.DISCRETE, KatibType.CATEGORICAL)
#: Types whose feasible space is min/max (and step).
RANGE_TYPES = (KatibType.INT, KatibType.DOUBLE)

_PARAMETER_KEYS = ("name", "parameterType", "feasibleSpace")
_SPACE_KEYS = ("min", "max", "step", "list", "distribution")


def parameter_spec(index: int, p: object) -> api_pb2.ParameterSpec:
    """One ``spec.parameters[index]`` entry -> ``ParameterSpec``, checking the CRD shape (keys, strings,
    type and distribution names). The values themselves are checked by ``search_space``."""
    if not isinstance(p, Mapping):
        raise ManifestError(f"parameters[{index}] must be a mapping, got {type(p).__name__}")
    name = p.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"parameters[{index}].name must be a non-empty string, got {name!r}")
    where = f"parameter {name!r}"
    unknown = sorted(set(p) - set(_PARAMETER_KEYS))
    if unknown:
        raise ManifestError(f"{where}: unknown keys {unknown}; allowed: {', '.join(_PARAMETER_KEYS)}")
    ptype = p.get("parameterType")
    if ptype not in PARAMETER_TYPES:
        raise ManifestError(
            f"{where}: parameterType {ptype!r} is not supported; allowed: {sorted(PARAMETER_TYPES)}"
        )
    fs = p.get("feasibleSpace", {})
    if not isinstance(fs, Mapping):
        raise ManifestError(f"{where}: feasibleSpace must be a mapping")
    unknown = sorted(set(fs) - set(_SPACE_KEYS))
    if unknown:
        raise ManifestError(
            f"{where}: unknown feasibleSpace keys {unknown}; allowed: {', '.join(_SPACE_KEYS)}"
        )
    texts = {}
    for key in ("min", "max", "step"):
        value = fs.get(key, "")
        if not isinstance(value, str):
            raise ManifestError(
                f"{where}: feasibleSpace.{key} must be a string (Katib's field is a string), "
                f"got {type(value).__name__} {value!r}; quote it"
            )
        texts[key] = value
    values = fs.get("list", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ManifestError(f"{where}: feasibleSpace.list must be a list of strings, got {values!r}")
    distribution = fs.get("distribution") or DEFAULT_DISTRIBUTION
    if distribution not in DISTRIBUTIONS:
        raise ManifestError(
            f"{where}: distribution {distribution!r} is not known; allowed: {sorted(DISTRIBUTIONS)}"
        )
    return api_pb2.ParameterSpec(
        name=name,
        parameter_type=PARAMETER_TYPES[ptype],
        feasible_space=api_pb2.FeasibleSpace(
            min=texts["min"], max=texts["max"], step=texts["step"], list=values,
            distribution=DISTRIBUTIONS[distribution],
        ),
    )  # fmt: skip


def parameter_specs(parameters: object) -> list[api_pb2.ParameterSpec]:
    """``spec.parameters`` -> the ``ParameterSpec`` list Katib's controller sends (ManifestError on a
    malformed entry)."""
    if not isinstance(parameters, Sequence) or isinstance(parameters, str | bytes):
        raise ManifestError(f"parameters must be a list of mappings, got {type(parameters).__name__}")
    return [parameter_spec(i, p) for i, p in enumerate(parameters)]


def search_space(parameters: object) -> SearchSpace:
    """``spec.parameters`` -> the suggestion service's ``SearchSpace`` of exactly the specs Katib would
    send, with the service's own checks (ManifestError or the service's InvalidArgument, naming the
    parameter, when the space is invalid)."""
    from suggestion_service.space import SearchSpace  # numpy: loaded only when a space is needed

    return SearchSpace.from_proto(parameter_specs(parameters))
