"""The scalar checks every public call makes on its arguments, each written once.

A number given as ``True`` is a mistake, not 1; NaN and infinities are never a count, a price or
a duration. Each check returns the value in the type the caller stores, or raises
:class:`~redtick.errors.InvalidData` naming the argument, the value and what was expected.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from redtick.errors import InvalidData

__all__ = ["number", "whole"]


def _expected(name: str, value: Any, expected: str) -> InvalidData:
    return InvalidData(f"{name}={value!r}: expected {expected}")


def _range_text(kind: str, low: float | None, high: float | None, above: float | None) -> str:
    if above is not None:
        return f"{kind} above {above:g}"
    if low is not None and high is not None:
        return f"{kind} from {low:,} to {high:,}"
    if low is not None:
        return f"{kind} from {low:,}" if kind == "a whole number" else f"{kind} at least {low:g}"
    if high is not None:
        return f"{kind} up to {high:,}"
    return "a finite number" if kind == "a number" else kind


def whole(value: Any, name: str, *, low: int | None = None, high: int | None = None, expected: str | None = None) -> int:
    """``value`` as an int if it is a whole number (not a bool, not a float) in ``[low, high]``.

    ``expected`` replaces the generated description of what was wanted in the error message.

    Examples
    --------
    >>> whole(5, "limit", low=1)
    5
    >>> whole(True, "limit", low=1)
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: limit=True: expected a whole number from 1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _expected(name, value, expected or _range_text("a whole number", low, high, None))
    whole_value = int(value)
    if (low is not None and whole_value < low) or (high is not None and whole_value > high):
        raise _expected(name, value, expected or _range_text("a whole number", low, high, None))
    return whole_value


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None, above: float | None = None,
           expected: str | None = None) -> float:
    """``value`` as a float if it is a finite real number (not a bool) in ``[low, high]`` and above ``above``.

    Examples
    --------
    >>> number(2, "price")
    2.0
    >>> number(float("nan"), "price")
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: price=nan: expected a finite number
    >>> number(0, "ttl", above=0, expected="a positive number of seconds")
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: ttl=0: expected a positive number of seconds
    """
    real = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if (not math.isfinite(real) or (low is not None and real < low) or (high is not None and real > high)
            or (above is not None and not real > above)):
        raise _expected(name, value, expected or _range_text("a number", low, high, above))
    return real
