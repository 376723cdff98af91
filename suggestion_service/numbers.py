"""The one checked conversion of the service's number strings (Katib sends every number as text).

Every number the service reads from a request -- feasible-space bounds, steps and lists, trial
assignments (the own experiment's and warm-start priors'), metric values and algorithm settings --
is parsed here, and anything that is not a finite number within the double range raises
:class:`NumberError`, a ``ValueError`` whose message says why. Nothing else escapes: no
``decimal.Overflow`` / ``InvalidOperation`` (``ArithmeticError``), no ``OverflowError``, no
``TypeError``. Callers map the error to what it means for them: INVALID_ARGUMENT for the request's own
space and settings, "skip this trial" for an assignment, "no value" for a metric.

``to_decimal`` also bounds the magnitude to the double range, so that exact ``Decimal`` arithmetic on
the result (grid indices ``(v - min) / step``) cannot overflow the default context.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

#: Larger magnitudes do not fit a double (``float`` gives inf).
DOUBLE_MAX = 1.7976931348623157e308
_DOUBLE_MAX_DECIMAL = Decimal(DOUBLE_MAX)


class NumberError(ValueError):
    """A number string that cannot be used: not a number, not finite, or beyond the double range."""


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise NumberError(f"{value!r} is not a number")
    return value.strip()


def to_float(value: object) -> float:
    """A finite float from Katib text (``" 1e-3 "`` -> 0.001); NumberError for ``""``, ``"abc"``,
    ``"nan"``, ``"inf"``, ``"1e400"`` (beyond the double range), or a non-string."""
    text = _text(value)
    try:
        v = float(text)
    except (ValueError, OverflowError):
        raise NumberError(f"{value!r} is not a number") from None
    if not math.isfinite(v):
        raise NumberError(f"{value!r} is not a finite number within the double range (±1.8e308)")
    return v


def to_decimal(value: object) -> Decimal:
    """The exact decimal value of Katib text (``"0.005"`` stays 0.005); NumberError unless it is a
    finite number within the double range. Tiny magnitudes (``"1e-999999999"``) keep their exact
    value: arithmetic on them can only underflow, which the default context does not trap."""
    text = _text(value)
    try:
        d = Decimal(text)
    except (InvalidOperation, ValueError):
        raise NumberError(f"{value!r} is not a number") from None
    if not d.is_finite():
        raise NumberError(f"{value!r} is not a finite number")
    if not d.is_zero() and (d.adjusted() > 308 or abs(d) > _DOUBLE_MAX_DECIMAL):
        raise NumberError(f"{value!r} is not a finite number within the double range (±1.8e308)")
    return d


def to_int(value: object) -> int:
    """An integer from Katib text (``"32"``, ``" -7 "``); NumberError for anything else, including
    ``"3.0"``, ``"1e3"`` and numbers of more digits than Python parses (4300)."""
    text = _text(value)
    try:
        return int(text)
    except ValueError:
        raise NumberError(f"{value!r} is not an integer") from None


def is_number_syntax(value: object) -> bool:
    """True when ``value`` is written as a number, finite or not (``"1e400"``, ``"nan"``), so that a
    message can tell "not a number" from "out of range"."""
    try:
        Decimal(_text(value))
    except (InvalidOperation, ValueError):
        return False
    return True
