"""Search spaces in neutral form: one ``Param`` per Katib parameter, shared by tasks and optimizers.

A task declares its space as a list of ``Param``; ``to_katib`` writes it as an Experiment's
``spec.parameters``, which the Experiment model (:mod:`katib_model.parameters`) turns into the Katib
``ParameterSpec`` list the suggestion service receives (``to_proto``), and ``catalog`` gives the
canonical configuration key (the service's own ``SearchSpace``), so ``"32"`` and ``"32.0"`` are one
configuration wherever they come from. Kinds are Katib's parameter types (:class:`KatibType`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from katib_model.parameters import LIST_TYPES, RANGE_TYPES, Distribution, KatibType, parameter_specs
from suggestion_service.proto import api_pb2
from suggestion_service.space import SearchSpace, format_double

KINDS = tuple(KatibType)


@dataclass(frozen=True)
class Param:
    """One Katib parameter.

    kind: a :class:`KatibType` (double | int | discrete | categorical). ``low``/``high`` (and optional ``step``) for double
    and int; ``values`` (Katib value strings) for discrete and categorical; ``log`` = logUniform.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: tuple[str, ...] = ()
    log: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind in RANGE_TYPES:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"parameter {self.name!r}: needs low < high, got {self.low}, {self.high}")
            if self.values:
                raise ValueError(f"parameter {self.name!r}: a {self.kind} takes low/high, not values")
            if self.log and self.low <= 0:
                raise ValueError(f"parameter {self.name!r}: log scale needs low > 0, got {self.low}")
        elif not self.values:
            raise ValueError(f"parameter {self.name!r}: a {self.kind} parameter needs values")

    @property
    def is_finite(self) -> bool:
        """True unless this is a DOUBLE without a step."""
        return not (self.kind == KatibType.DOUBLE and self.step is None)

    def grid(self) -> list[str]:
        """All value strings of a finite parameter, in order."""
        if self.kind in LIST_TYPES:
            return list(self.values)
        if self.kind == KatibType.INT:
            step = int(self.step or 1)
            return [str(v) for v in range(int(self.low), int(self.high) + 1, step)]  # type: ignore[arg-type]
        if self.step is None:
            raise ValueError(f"parameter {self.name!r} is a continuous double and has no grid")
        n = math.floor((self.high - self.low) / self.step + 1e-9)  # type: ignore[operator]
        return [format_double(self.low + k * self.step) for k in range(n + 1)]  # type: ignore[operator]

    def numbers(self) -> list[float]:
        """The numeric values of a discrete parameter."""
        if self.kind != KatibType.DISCRETE:
            raise ValueError(f"parameter {self.name!r} is {self.kind}, not discrete")
        return [float(v) for v in self.values]

    def from_unit(self, u: float) -> str:
        """A uniform number in [0, 1) -> a Katib value string drawn from this parameter's prior."""
        u = min(max(float(u), 0.0), np.nextafter(1.0, 0.0))
        if self.kind in LIST_TYPES or (self.kind == KatibType.DOUBLE and self.step is not None):
            values = self.grid()
            return values[min(int(u * len(values)), len(values) - 1)]
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.kind == KatibType.INT:
            if self.log:  # log-uniform over [low, high + 1), floored
                v = math.exp(math.log(lo) + u * (math.log(hi + 1.0) - math.log(lo)))
                return str(int(min(max(math.floor(v), lo), hi)))
            values = self.grid()
            return values[min(int(u * len(values)), len(values) - 1)]
        if self.log:
            return format_double(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return format_double(lo + u * (hi - lo))


def to_katib(params: Sequence[Param]) -> list[dict[str, object]]:
    """``params`` as an Experiment's ``spec.parameters`` (value strings as Katib's CRD holds them)."""
    out: list[dict[str, object]] = []
    for p in params:
        fs: dict[str, object] = {"distribution": Distribution.LOG_UNIFORM if p.log else Distribution.UNIFORM}
        if p.kind in LIST_TYPES:
            fs["list"] = list(p.values)
        elif p.kind == KatibType.INT:
            fs["min"], fs["max"] = str(int(p.low)), str(int(p.high))  # type: ignore[arg-type]
            if p.step is not None:
                fs["step"] = str(int(p.step))
        else:
            fs["min"], fs["max"] = format_double(p.low), format_double(p.high)  # type: ignore[arg-type]
            if p.step is not None:
                fs["step"] = format_double(p.step)
        out.append({"name": p.name, "parameterType": str(p.kind), "feasibleSpace": fs})
    return out


def to_proto(params: Sequence[Param]) -> list[api_pb2.ParameterSpec]:
    """Katib ParameterSpecs for ``params`` (what the controller sends for ``to_katib(params)``)."""
    return parameter_specs(to_katib(params))


def catalog(params: Sequence[Param]) -> SearchSpace:
    """The service's ``SearchSpace`` for ``params`` (canonical keys, sizes, enumeration)."""
    return SearchSpace.from_proto(to_proto(params))


def canonical_key(space: SearchSpace, assignment: Mapping[str, str]) -> tuple:
    """Canonical identity of an assignment; ValueError naming the parameter if it is infeasible."""
    return space.key(dict(assignment))


def space_size(params: Sequence[Param]) -> int | None:
    """Number of configurations, or None when a parameter is continuous."""
    size = 1
    for p in params:
        if not p.is_finite:
            return None
        size *= len(p.grid())
    return size
