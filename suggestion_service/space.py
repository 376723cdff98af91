"""Katib search spaces: validation, a numeric encoding in [0, 1]^D, and exact decoding to value strings.

Every parameter has three representations:

* the *value string* Katib sends and receives (``"32"``, ``"2e-5"``, ``"adam"``);
* a *raw* number used internally: the float value of a continuous DOUBLE, or the index into the
  finite list of values of an INT / stepped DOUBLE / DISCRETE / CATEGORICAL parameter.  A row of raws
  identifies a configuration, so ``key()`` is the tuple of raws ("32" and "32.0" share a key);
* the *encoding* the surrogate models see: one column in [0, 1] per numeric parameter (on a log
  scale for LOG_UNIFORM, and for DISCRETE lists whose values are log-spaced, e.g. learning rates),
  one one-hot column per category of a CATEGORICAL parameter.

Decoding snaps to the feasible space: stepped values are rebuilt exactly with ``Decimal`` as
``min + k * step`` (so ``0.01 + 2 * 0.005`` is ``"0.02"``, never ``0.019999999999999997``), DISCRETE
values come back as the list's own strings, and continuous doubles are clipped to [min, max] and
printed as short clean strings.

Spaces are built from ``ParameterSpec`` messages only (``SearchSpace.from_proto``); reading an
Experiment manifest's ``spec.parameters`` is the job of ``katib_model.parameters``, which turns them
into the same messages Katib's controller sends. Parameter kinds here are the proto enum names.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, Overflow, localcontext

import numpy as np

from suggestion_service.errors import InvalidArgument
from suggestion_service.numbers import NumberError, is_number_syntax, to_decimal, to_float
from suggestion_service.proto import api_pb2

# Largest finite space ``enumerate()`` materialises (grid search uses it too).
ENUMERATE_MAX = 1_000_000
# Most values one INT / stepped DOUBLE parameter may have: raws are float indices, exact up to 2**53.
GRID_VALUES_MAX = 2**53


def _kind(parameter_type: int) -> str:
    """The proto enum name of a parameter type (``DOUBLE``, ``INT``, ``DISCRETE``, ``CATEGORICAL``)."""
    return api_pb2.ParameterType.Name(parameter_type)


def format_double(value: float) -> str:
    """Format a float as a short, clean Katib value string (12 significant digits, float syntax)."""
    return repr(float(format(float(value), ".12g")))


def _format_decimal(value: Decimal, is_int: bool) -> str:
    if is_int:
        return str(int(value))
    return repr(float(value))


class _Scale:
    """Maps numbers in [lo, hi] to [0, 1], linearly or on a log scale."""

    def __init__(self, lo: float, hi: float, log: bool) -> None:
        self.lo, self.hi, self.log = lo, hi, log
        self._a = math.log(lo) if log else lo
        self._b = math.log(hi) if log else hi
        self._span = self._b - self._a

    def to_unit(self, v: np.ndarray) -> np.ndarray:
        t = np.log(v) if self.log else v
        if self._span == 0:
            return np.zeros_like(t, dtype=float)
        return np.clip((t - self._a) / self._span, 0.0, 1.0)

    def from_unit(self, p: np.ndarray) -> np.ndarray:
        t = self._a + np.clip(p, 0.0, 1.0) * self._span
        v = np.exp(t) if self.log else t
        return np.clip(v, self.lo, self.hi)


class Parameter(ABC):
    """One search-space dimension (see the module docstring for the three representations)."""

    def __init__(self, name: str, parameter_type: int) -> None:
        self.name = name
        self.type = parameter_type
        #: The proto enum name of the type: ``DOUBLE``, ``INT``, ``DISCRETE`` or ``CATEGORICAL``.
        self.kind = _kind(parameter_type)

    width: int = 1

    @property
    @abstractmethod
    def count(self) -> int | None:
        """Number of distinct values, or None for a continuous parameter."""

    @abstractmethod
    def parse(self, value: str) -> float:
        """Value string -> raw; raises ValueError saying why the value is not feasible."""

    @abstractmethod
    def format(self, raw: float) -> str:
        """Raw -> the value string sent to Katib (always feasible)."""

    @abstractmethod
    def encode(self, raws: np.ndarray) -> np.ndarray:
        """Raws (n,) -> encoded columns (n, width)."""

    @abstractmethod
    def decode(self, cols: np.ndarray) -> np.ndarray:
        """Encoded columns (n, width), possibly off-grid -> nearest feasible raws (n,)."""

    @abstractmethod
    def sample(self, u: np.ndarray) -> np.ndarray:
        """Uniform numbers in [0, 1) -> raws drawn from the parameter's distribution."""

    def canonical(self, raw: float) -> float:
        """The raw of ``format(raw)`` parsed back (identity except for continuous doubles)."""
        return raw

    def perturb(self, raws: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
        """Random nearby raws (Gaussian step of ``scale`` on the encoded axis), for local search."""
        p = self.encode(raws)[:, 0] + rng.normal(0.0, scale, size=len(raws))
        out = self.decode(p[:, None])
        if self.count is not None and self.count > 1:
            same = out == raws
            step = rng.choice(np.array([-1.0, 1.0]), size=len(raws))
            moved = np.clip(raws + step, 0, self.count - 1)
            moved = np.where(moved == raws, raws - step, moved)
            out = np.where(same, moved, out)
        return out


class ContinuousParameter(Parameter):
    """DOUBLE without step: any float in [min, max] (uniform or log-uniform)."""

    def __init__(self, name: str, lo: float, hi: float, log: bool) -> None:
        super().__init__(name, api_pb2.DOUBLE)
        self.lo, self.hi, self.log = lo, hi, log
        self.scale = _Scale(lo, hi, log)

    @property
    def count(self) -> int | None:
        return None

    def parse(self, value: str) -> float:
        v = to_float(value)
        tol = 1e-12 * max(1.0, abs(self.lo), abs(self.hi))
        if not (self.lo - tol <= v <= self.hi + tol):
            raise ValueError(f"{value!r} is outside [{self.lo!r}, {self.hi!r}]")
        return float(min(max(v, self.lo), self.hi))

    def format(self, raw: float) -> str:
        s = format_double(min(max(float(raw), self.lo), self.hi))
        v = float(s)
        if v < self.lo:
            return repr(self.lo)
        if v > self.hi:
            return repr(self.hi)
        return s

    def canonical(self, raw: float) -> float:
        return float(self.format(raw))

    def encode(self, raws: np.ndarray) -> np.ndarray:
        return self.scale.to_unit(np.asarray(raws, dtype=float))[:, None]

    def decode(self, cols: np.ndarray) -> np.ndarray:
        return self.scale.from_unit(cols[:, 0])

    def sample(self, u: np.ndarray) -> np.ndarray:
        return self.scale.from_unit(u)


class GridParameter(Parameter):
    """INT (step defaults to 1) or DOUBLE with step: the values min + k*step that are <= max."""

    def __init__(
        self, name: str, parameter_type: int, lo: Decimal, hi: Decimal, step: Decimal, log: bool
    ) -> None:
        super().__init__(name, parameter_type)
        self.lo_dec, self.step_dec = lo, step
        self.is_int = parameter_type == api_pb2.INT
        self.n = int((hi - lo) / step) + 1
        self.lo, self.step = float(lo), float(step)
        self.hi = float(lo + (self.n - 1) * step)
        self.log = log
        self.scale = _Scale(self.lo, self.hi, log)

    @property
    def count(self) -> int | None:
        return self.n

    def _values(self, raws: np.ndarray) -> np.ndarray:
        return self.lo + np.asarray(raws, dtype=float) * self.step

    def parse(self, value: str) -> float:
        d = to_decimal(value)
        if self.is_int and d != d.to_integral_value():
            raise ValueError(f"{value!r} is not an integer")
        k = (d - self.lo_dec) / self.step_dec
        kr = int(k.to_integral_value())
        if abs(k - kr) > Decimal("1e-6") or not 0 <= kr < self.n:
            raise ValueError(
                f"{value!r} is not one of {self.lo_dec} + k*{self.step_dec} for k = 0..{self.n - 1}"
            )
        return float(kr)

    def format(self, raw: float) -> str:
        return _format_decimal(self.lo_dec + round(float(raw)) * self.step_dec, self.is_int)

    def encode(self, raws: np.ndarray) -> np.ndarray:
        return self.scale.to_unit(self._values(raws))[:, None]

    def decode(self, cols: np.ndarray) -> np.ndarray:
        p = np.clip(cols[:, 0], 0.0, 1.0)
        kf = (self.scale.from_unit(p) - self.lo) / self.step
        lo_k = np.clip(np.floor(kf), 0, self.n - 1)
        hi_k = np.clip(lo_k + 1, 0, self.n - 1)
        d_lo = np.abs(self.scale.to_unit(self._values(lo_k)) - p)
        d_hi = np.abs(self.scale.to_unit(self._values(hi_k)) - p)
        return np.where(d_hi < d_lo, hi_k, lo_k)

    def sample(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            return self.decode(np.asarray(u, dtype=float)[:, None])
        return np.minimum(np.floor(np.asarray(u) * self.n), self.n - 1)


class DiscreteParameter(Parameter):
    """DISCRETE: numbers given as a list of strings; encoded ordinally by value (log when log-spaced)."""

    def __init__(self, name: str, values: Sequence[str], numbers: Sequence[float], log: bool) -> None:
        super().__init__(name, api_pb2.DISCRETE)
        self.values = tuple(values)
        self._index = {v: i for i, v in enumerate(self.values)}
        self.numbers = np.asarray(numbers, dtype=float)
        self.log = log
        lo, hi = float(self.numbers.min()), float(self.numbers.max())
        self.positions = _Scale(lo, hi, log).to_unit(self.numbers) if hi > lo else np.zeros(len(values))

    @property
    def count(self) -> int | None:
        return len(self.values)

    def parse(self, value: str) -> float:
        exact = self._index.get(value)
        if exact is not None:
            return float(exact)
        v = to_float(value)
        for i, number in enumerate(self.numbers):
            if math.isclose(v, float(number), rel_tol=1e-9, abs_tol=1e-15):
                return float(i)
        raise ValueError(f"{value!r} is not in the list {list(self.values)}")

    def format(self, raw: float) -> str:
        return self.values[round(float(raw))]

    def encode(self, raws: np.ndarray) -> np.ndarray:
        return self.positions[np.asarray(raws, dtype=int)][:, None]

    def decode(self, cols: np.ndarray) -> np.ndarray:
        return np.argmin(np.abs(cols[:, :1] - self.positions[None, :]), axis=1).astype(float)

    def sample(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(np.asarray(u) * len(self.values)), len(self.values) - 1)


class CategoricalParameter(Parameter):
    """CATEGORICAL: unordered strings, one-hot encoded."""

    def __init__(self, name: str, values: Sequence[str]) -> None:
        super().__init__(name, api_pb2.CATEGORICAL)
        self.values = tuple(values)
        self._index = {v: i for i, v in enumerate(self.values)}
        self.width = len(self.values)

    @property
    def count(self) -> int | None:
        return len(self.values)

    def parse(self, value: str) -> float:
        if value not in self._index:
            raise ValueError(f"{value!r} is not in the list {list(self.values)}")
        return float(self._index[value])

    def format(self, raw: float) -> str:
        return self.values[round(float(raw))]

    def encode(self, raws: np.ndarray) -> np.ndarray:
        out = np.zeros((len(raws), self.width))
        out[np.arange(len(raws)), np.asarray(raws, dtype=int)] = 1.0
        return out

    def decode(self, cols: np.ndarray) -> np.ndarray:
        return np.argmax(cols, axis=1).astype(float)

    def sample(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.floor(np.asarray(u) * len(self.values)), len(self.values) - 1)

    def perturb(self, raws: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
        n = len(self.values)
        if n == 1:
            return raws.copy()
        shift = rng.integers(1, n, size=len(raws))
        return (raws + shift) % n


def _looks_log_spaced(numbers: Sequence[float]) -> bool:
    """True when positive values are spread more evenly on a log axis than on a linear one."""
    xs = np.sort(np.asarray(numbers, dtype=float))
    if len(xs) < 3 or xs[0] <= 0:
        return False

    def unevenness(v: np.ndarray) -> float:
        gaps = np.diff(v) / (v[-1] - v[0])
        return float(np.std(gaps))

    return unevenness(np.log(xs)) < unevenness(xs)


@dataclass(frozen=True)
class _Spec:
    """A parameter spec in neutral form (read from a ``ParameterSpec`` message)."""

    name: str
    type: int
    min: str
    max: str
    step: str
    values: tuple[str, ...]
    distribution: int


def _build_parameter(spec: _Spec) -> Parameter:
    name = spec.name
    where = f"parameter {name!r}"
    if spec.distribution in (api_pb2.NORMAL, api_pb2.LOG_NORMAL):
        dist = api_pb2.Distribution.Name(spec.distribution)
        raise InvalidArgument(
            f"{where}: distribution {dist} is not supported; use UNIFORM (uniform) or LOG_UNIFORM (logUniform)"
        )
    if spec.distribution not in (api_pb2.DISTRIBUTION_UNSPECIFIED, api_pb2.UNIFORM, api_pb2.LOG_UNIFORM):
        raise InvalidArgument(f"{where}: unknown distribution value {spec.distribution}")
    log = spec.distribution == api_pb2.LOG_UNIFORM
    if spec.type in (api_pb2.DOUBLE, api_pb2.INT):
        kind = _kind(spec.type).lower()  # Katib's parameterType name, for messages
        if spec.values:
            raise InvalidArgument(f"{where}: a {kind} parameter takes min/max (and step), not a list")
        lo = _parse_bound(where, "min", spec.min, is_int=spec.type == api_pb2.INT)
        hi = _parse_bound(where, "max", spec.max, is_int=spec.type == api_pb2.INT)
        if not lo < hi:
            raise InvalidArgument(f"{where}: min ({spec.min}) must be smaller than max ({spec.max})")
        if not math.isfinite(float(hi) - float(lo)):
            raise InvalidArgument(
                f"{where}: max - min ({spec.max} - {spec.min}) overflows a double; narrow the range"
            )
        if log and lo <= 0:
            raise InvalidArgument(f"{where}: logUniform needs min > 0, got min {spec.min}")
        if log and float(lo) <= 0.0:
            raise InvalidArgument(
                f"{where}: logUniform min {spec.min} is 0 as a double (below 5e-324); "
                "allowed: a min the double type can hold, e.g. 1e-300"
            )
        step: Decimal | None = None
        if spec.step.strip():
            step = _parse_bound(where, "step", spec.step, is_int=spec.type == api_pb2.INT)
            if step <= 0:
                raise InvalidArgument(f"{where}: step must be > 0, got {spec.step!r}")
            if step > hi - lo:
                raise InvalidArgument(
                    f"{where}: step {spec.step} is larger than max - min ({hi - lo}); allowed: 0 < step <= max - min"
                )
        _check_grid_values(where, lo, hi, step or Decimal(1))
        if spec.type == api_pb2.INT:
            return GridParameter(name, api_pb2.INT, lo, hi, step or Decimal(1), log)
        if step is not None:
            return GridParameter(name, api_pb2.DOUBLE, lo, hi, step, log)
        return ContinuousParameter(name, float(lo), float(hi), log)
    if spec.type in (api_pb2.DISCRETE, api_pb2.CATEGORICAL):
        kind = _kind(spec.type).lower()  # Katib's parameterType name, for messages
        for field, text in (("min", spec.min), ("max", spec.max), ("step", spec.step)):
            if text.strip():
                raise InvalidArgument(f"{where}: a {kind} parameter takes a list, not {field} ({text!r})")
        if not spec.values:
            raise InvalidArgument(f"{where}: feasibleSpace.list is empty; a {kind} parameter needs values")
        if len(set(spec.values)) != len(spec.values):
            dupes = sorted({v for v in spec.values if spec.values.count(v) > 1})
            raise InvalidArgument(f"{where}: feasibleSpace.list has duplicate values {dupes}")
        if spec.type == api_pb2.CATEGORICAL:
            if log:
                raise InvalidArgument(f"{where}: logUniform does not apply to a categorical parameter")
            return CategoricalParameter(name, spec.values)
        numbers = []
        for v in spec.values:
            try:
                numbers.append(to_float(v))
            except ValueError as exc:
                raise InvalidArgument(
                    f"{where}: discrete values must be numbers ({exc}); use categorical for strings"
                ) from None
        if len(set(numbers)) != len(numbers):
            raise InvalidArgument(
                f"{where}: feasibleSpace.list has numerically equal values {list(spec.values)}"
            )
        if not math.isfinite(max(numbers) - min(numbers)):
            raise InvalidArgument(
                f"{where}: the largest minus the smallest discrete value overflows a double; narrow the range"
            )
        if log and min(numbers) <= 0:
            raise InvalidArgument(
                f"{where}: logUniform needs all discrete values > 0, got {list(spec.values)}"
            )
        return DiscreteParameter(name, spec.values, numbers, log or _looks_log_spaced(numbers))
    raise InvalidArgument(
        f"{where}: parameter type {spec.type} ({_type_label(spec.type)}) is not supported; "
        "allowed: DOUBLE, INT, DISCRETE, CATEGORICAL"
    )


def _check_grid_values(where: str, lo: Decimal, hi: Decimal, step: Decimal) -> None:
    """Reject an INT / stepped DOUBLE with more than ``GRID_VALUES_MAX`` values (before counting them:
    ``(max - min) / step`` can have a million digits)."""
    with localcontext() as ctx:
        ctx.traps[Overflow] = False  # an astronomically small step gives Infinity instead of raising
        ratio = (hi - lo) / step
    if not ratio.is_finite() or ratio >= GRID_VALUES_MAX:
        raise InvalidArgument(
            f"{where}: min {lo}, max {hi} and step {step} give more than {GRID_VALUES_MAX} values; "
            "use a larger step (or a double without step)"
        )


def _type_label(t: int) -> str:
    try:
        return api_pb2.ParameterType.Name(t)
    except ValueError:
        return "unknown"


def _parse_bound(where: str, field: str, text: str, is_int: bool) -> Decimal:
    if not text.strip():
        raise InvalidArgument(f"{where}: feasibleSpace.{field} is required")
    try:
        d = to_decimal(text)
    except NumberError:
        if is_number_syntax(text):
            raise InvalidArgument(
                f"{where}: feasibleSpace.{field} {text!r} must be a finite number within the double range (±1.8e308)"
            ) from None
        raise InvalidArgument(f"{where}: feasibleSpace.{field} {text!r} is not a number") from None
    if is_int and d != d.to_integral_value():
        raise InvalidArgument(
            f"{where}: feasibleSpace.{field} {text!r} must be an integer for an int parameter"
        )
    return d


class SearchSpace:
    """A validated Katib search space with exact encoding/decoding (see the module docstring)."""

    def __init__(self, params: Sequence[Parameter]) -> None:
        if not params:
            raise InvalidArgument("the experiment has no parameters; at least one is required")
        names = [p.name for p in params]
        for name in names:
            if not name:
                raise InvalidArgument("a parameter has an empty name")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidArgument(f"parameter names must be unique; duplicated: {dupes}")
        self.params: tuple[Parameter, ...] = tuple(params)
        self.names: tuple[str, ...] = tuple(names)
        self._index = {n: i for i, n in enumerate(names)}
        widths = [p.width for p in params]
        self.width = int(sum(widths))
        offsets = np.concatenate([[0], np.cumsum(widths)])
        self.slices = tuple(slice(int(offsets[i]), int(offsets[i + 1])) for i in range(len(params)))
        counts = [p.count for p in params]
        self._size: int | None = None if any(c is None for c in counts) else math.prod(counts)  # type: ignore[arg-type]

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_proto(cls, specs: Sequence[api_pb2.ParameterSpec]) -> SearchSpace:
        """Build from Katib's ``ParameterSpec`` messages; raises InvalidArgument on an invalid space."""
        neutral = [
            _Spec(
                name=s.name,
                type=s.parameter_type,
                min=s.feasible_space.min,
                max=s.feasible_space.max,
                step=s.feasible_space.step,
                values=tuple(s.feasible_space.list),
                distribution=s.feasible_space.distribution,
            )
            for s in specs
        ]
        return cls([_build_parameter(s) for s in neutral])

    # ---- sizes --------------------------------------------------------------------------------
    def is_finite(self) -> bool:
        """True when every parameter has finitely many values (no continuous DOUBLE)."""
        return self._size is not None

    def size(self) -> int | None:
        """Number of distinct configurations, or None when the space is continuous."""
        return self._size

    def counts(self) -> list[int]:
        """Values per parameter (finite spaces only)."""
        if self._size is None:
            raise InvalidArgument(
                f"the space is continuous (parameters {self.continuous_names()} have no step)"
            )
        return [int(p.count) for p in self.params]  # type: ignore[arg-type]

    def continuous_names(self) -> list[str]:
        """Names of the DOUBLE parameters without a step."""
        return [p.name for p in self.params if p.count is None]

    # ---- raws ---------------------------------------------------------------------------------
    def raw(self, assignment: Mapping[str, str]) -> np.ndarray:
        """Assignment -> raw row; raises ValueError saying which name or value does not fit."""
        missing = [n for n in self.names if n not in assignment]
        extra = sorted(n for n in assignment if n not in self._index)
        if missing or extra:
            raise ValueError(f"assignment names do not match the space (missing {missing}, unknown {extra})")
        row = np.empty(len(self.params))
        for i, p in enumerate(self.params):
            try:
                row[i] = p.parse(assignment[p.name])
            except ValueError as exc:
                raise ValueError(f"parameter {p.name!r}: {exc}") from None
        return row

    def assignment(self, raw_row: np.ndarray) -> dict[str, str]:
        """Raw row -> {name: Katib value string}."""
        return {p.name: p.format(float(r)) for p, r in zip(self.params, raw_row, strict=True)}

    def canonical(self, raw_row: np.ndarray) -> np.ndarray:
        """The raw row that ``raw(assignment(raw_row))`` gives (rounds continuous doubles)."""
        return np.array([p.canonical(float(r)) for p, r in zip(self.params, raw_row, strict=True)])

    @staticmethod
    def raw_key(raw_row: np.ndarray) -> tuple:
        """Identity of a canonical raw row."""
        return tuple(float(v) for v in raw_row)

    def key(self, assignment: Mapping[str, str]) -> tuple:
        """Canonical identity of an assignment ("32" == "32.0" for an int; raises ValueError if infeasible)."""
        return self.raw_key(self.raw(assignment))

    def contains(self, assignment: Mapping[str, str]) -> bool:
        """True when the assignment has exactly the space's names and every value is feasible."""
        try:
            self.raw(assignment)
        except (ValueError, TypeError, AttributeError):
            return False
        return True

    # ---- encoding -----------------------------------------------------------------------------
    def encode_raw(self, raws: np.ndarray) -> np.ndarray:
        """Raw rows (n, p) -> encoded rows (n, width) in [0, 1]."""
        raws = np.atleast_2d(raws)
        out = np.empty((len(raws), self.width))
        for i, (p, sl) in enumerate(zip(self.params, self.slices, strict=True)):
            out[:, sl] = p.encode(raws[:, i])
        return out

    def decode_raw(self, x: np.ndarray) -> np.ndarray:
        """Encoded rows (n, width), any real numbers -> nearest feasible raw rows (n, p)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if x.shape[1] != self.width:
            raise ValueError(f"encoded width {x.shape[1]} != space width {self.width}")
        return np.column_stack([p.decode(x[:, sl]) for p, sl in zip(self.params, self.slices, strict=True)])

    def encode(self, assignment: Mapping[str, str]) -> np.ndarray:
        """Katib value strings -> a point of [0, 1]^width (raises ValueError if infeasible)."""
        return self.encode_raw(self.raw(assignment)[None, :])[0]

    def decode(self, x: np.ndarray) -> dict[str, str]:
        """A point of R^width -> Katib value strings of the nearest feasible configuration."""
        return self.assignment(self.decode_raw(np.asarray(x, dtype=float)[None, :])[0])

    # ---- sampling and enumeration ---------------------------------------------------------------
    def sample_raw(self, u: np.ndarray) -> np.ndarray:
        """Uniform numbers (n, p) in [0, 1) -> raw rows drawn per parameter (log scales honoured)."""
        return np.column_stack([p.sample(u[:, i]) for i, p in enumerate(self.params)])

    def perturb_raw(self, raws: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
        """Neighbours of raw rows: each row changes about one parameter (at least one), by ``scale``."""
        raws = np.atleast_2d(raws)
        n, k = raws.shape
        change = rng.random((n, k)) < 1.0 / k
        change[np.arange(n), rng.integers(0, k, size=n)] = True
        out = raws.copy()
        for i, p in enumerate(self.params):
            rows = np.flatnonzero(change[:, i])
            if len(rows):
                out[rows, i] = p.perturb(raws[rows, i], rng, scale)
        return out

    def _strides(self) -> np.ndarray:
        counts = self.counts()
        strides = np.ones(len(counts), dtype=np.int64)
        for i in range(len(counts) - 2, -1, -1):
            strides[i] = strides[i + 1] * counts[i + 1]
        return strides

    def _check_enumerable(self) -> None:
        size = self.size()
        if size is None:
            raise InvalidArgument(
                f"the space cannot be enumerated: DOUBLE parameters {self.continuous_names()} have no step"
            )
        if size > ENUMERATE_MAX:
            raise InvalidArgument(
                f"the space has {size} configurations; at most {ENUMERATE_MAX} can be enumerated"
            )

    def raws_of_indices(self, flat: np.ndarray) -> np.ndarray:
        """Flat grid indices (mixed radix, first parameter slowest) -> raw rows."""
        self._check_enumerable()
        flat = np.asarray(flat, dtype=np.int64)
        counts = np.asarray(self.counts(), dtype=np.int64)
        return ((flat[:, None] // self._strides()[None, :]) % counts[None, :]).astype(float)

    def flat_indices(self, raws: np.ndarray) -> np.ndarray:
        """Raw rows -> flat grid indices (inverse of ``raws_of_indices``)."""
        self._check_enumerable()
        return (np.atleast_2d(raws).astype(np.int64) * self._strides()[None, :]).sum(axis=1)

    def enumerate_raw(self) -> np.ndarray:
        """All raw rows of a finite space, in grid order."""
        self._check_enumerable()
        return self.raws_of_indices(np.arange(self.size()))

    def enumerate(self) -> list[dict[str, str]]:
        """All configurations of a finite space (raises InvalidArgument if continuous or too large)."""
        return [self.assignment(r) for r in self.enumerate_raw()]

    def describe(self) -> str:
        """A one-line summary for logs."""
        parts = [f"{p.name}:{p.kind}[{p.count if p.count is not None else 'cont'}]" for p in self.params]
        return f"{len(self.params)} parameters ({', '.join(parts)}), size {_size_text(self._size)}"


def _size_text(size: int | None) -> str:
    """A space size for messages: exact up to 10**15, else 'about 10^k' (str() of a huge int raises)."""
    if size is None:
        return "continuous"
    if size <= 10**15:
        return str(size)
    return f"about 10^{math.floor(math.log10(size))}"
