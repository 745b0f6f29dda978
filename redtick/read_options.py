"""The arguments every read takes, checked once: its symbols, its time bounds, its columns and its output."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from redtick.errors import InvalidData
from redtick.intervals import parse_time
from redtick.keys import validate_symbol
from redtick.ticks import TimeUnit, to_epoch_ms

__all__ = [
    "BOUND_LIMIT_MS",
    "CANDLE_COLUMNS",
    "CANDLE_OPTIONAL",
    "OUTPUTS",
    "TICK_COLUMNS",
    "TICK_FIELDS",
    "TICK_OPTIONAL",
    "check_output",
    "parse_symbols",
    "read_bounds",
    "read_columns",
    "time_bound",
]

TICK_COLUMNS = ("price", "volume")
TICK_OPTIONAL = ("trade_id", "side")
TICK_FIELDS = {"price": "price", "volume": "volume", "trade_id": "id", "side": "side"}
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
CANDLE_OPTIONAL = ("count", "vwap", "notional")
OUTPUTS = ("pandas", "arrow", "polars")
BOUND_LIMIT_MS = 2**62


# -- symbols and columns -----------------------------------------------------------------------------
def parse_symbols(symbol_or_symbols: str | Iterable[str]) -> tuple[list[str], bool]:
    if isinstance(symbol_or_symbols, str):
        return [validate_symbol(symbol_or_symbols)], False
    if not isinstance(symbol_or_symbols, Iterable) or isinstance(symbol_or_symbols, bytes | Mapping):
        validate_symbol(symbol_or_symbols)  # raises InvalidKey naming the type
    symbols = [validate_symbol(s) for s in symbol_or_symbols]
    if not symbols:
        raise InvalidData("no symbols given")
    repeated = sorted({s for s in symbols if symbols.count(s) > 1})
    if repeated:
        raise InvalidData(f"symbols {repeated} are named more than once; each symbol's rows would repeat")
    return symbols, True


def _columns(columns: Sequence[str] | None, default: tuple[str, ...], optional: tuple[str, ...]) -> list[str]:
    if columns is None:
        return list(default)
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, Iterable) or isinstance(columns, bytes | Mapping):
        raise InvalidData(f"columns={columns!r}: expected a list of names from {list(default + optional)}")
    columns = list(columns)
    unknown = [c for c in columns if not isinstance(c, str) or c not in default + optional]
    if unknown:
        raise InvalidData(f"unknown columns {unknown}; expected some of {list(default + optional)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise InvalidData(f"columns {repeated} are named more than once; name each column once")
    return columns


def read_columns(columns: Sequence[str] | None, kind: Literal["ticks", "candles"]) -> list[str]:
    """The columns a read returns: ``columns`` checked (known names, each once), or the default."""
    if kind == "ticks":
        return _columns(columns, TICK_COLUMNS, TICK_OPTIONAL)
    return _columns(columns, CANDLE_COLUMNS, CANDLE_OPTIONAL)


def check_output(output: Any) -> str:
    if output not in OUTPUTS:
        raise InvalidData(f"output={output!r}: expected one of {', '.join(map(repr, OUTPUTS))}")
    checked: str = output
    return checked


# -- time bounds -------------------------------------------------------------------------------------
def _string_bounds(text: str, name: str, tz: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last instant a time string names: ``"2013-09-03"`` is the whole day, ``"2013-09"`` the
    month, ``"2013-09-03 13:31"`` the minute (pandas' partial-string rule for ``.loc``). A naive
    string is a wall-clock time in ``tz`` (UTC when None)."""
    stamp = parse_time(text, name, " is not a time; expected such as '2013-09-03' or '2013-09-03 13:31:05'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Period drops a zone in the string, with a warning; only its length is used
            period = pd.Period(text)
        same = period.start_time == stamp.tz_localize(None)
        length = period.end_time - period.start_time if same else pd.Timedelta(0)
    except (ValueError, TypeError, OverflowError):
        length = pd.Timedelta(0)
    first, last = stamp, stamp + length  # in wall-clock time when naive: a month spanning a DST change stays whole
    if stamp.tzinfo is None:
        try:
            first, last = first.tz_localize(tz or "UTC"), last.tz_localize(tz or "UTC")
        except (ValueError, TypeError) as exc:  # pandas' AmbiguousTimeError and NonExistentTimeError are ValueErrors
            raise InvalidData(f"{name}={text!r} in {tz}: {exc}; give the UTC offset, such as '+01:00'") from None
    return first, last


def _sub_ms(value: Any, unit: TimeUnit | None) -> bool:
    """True if a number of ``unit`` (epoch ms when None) since the epoch has digits below a millisecond."""
    per_ms = {"s": 0, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit or "ms"]
    if isinstance(value, float | np.floating):
        scaled = float(value) * 1_000 if per_ms == 0 else float(value) / per_ms
        return bool(scaled != np.floor(scaled))
    return per_ms > 1 and int(value) % per_ms != 0


def time_bound(value: Any, name: str, *, tz: Any = None, unit: TimeUnit | None = None) -> int | None:
    """Epoch ms of a read bound: ``start`` rounded up to the millisecond, ``end`` down (a bound with
    sub-millisecond digits never lets in a tick outside it); a string ``end`` reaches the end of the
    period it names (``"2013-09-03"``: the whole day). Naive times are in ``tz`` (UTC when None).

    Examples
    --------
    >>> time_bound("2013-09-03", "end") == to_epoch_ms("2013-09-03T23:59:59.999Z")
    True
    >>> time_bound("2013-09-03 13:31:00.0005", "start") == to_epoch_ms("2013-09-03T13:31:00.001Z")
    True
    """
    if value is None:
        return None
    # Clamped to a range far beyond any storable tick (1970-2200), so a hostile bound (year 1 or
    # 2**80 ms) selects what it means and never overflows the int64 arithmetic of the reads.
    return min(max(_unclamped_bound(value, name, tz=tz, unit=unit), -BOUND_LIMIT_MS), BOUND_LIMIT_MS)


def _unclamped_bound(value: Any, name: str, *, tz: Any, unit: TimeUnit | None) -> int:
    start = name != "end"
    if isinstance(value, int | np.integer | float | np.floating) and not isinstance(value, bool | np.bool_):
        ms = to_epoch_ms(value, name=name, unit=unit)
        return ms + 1 if start and _sub_ms(value, unit) else ms
    if isinstance(value, str):
        first, last = _string_bounds(value, name, tz)
        stamp = first if start else last
    else:
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            return to_epoch_ms(value, name=name, unit=unit)  # raises, naming what was expected
        if stamp is pd.NaT:
            raise InvalidData(f"{name}={value!r} is not a time")
        stamp = stamp.tz_localize(tz or "UTC") if stamp.tzinfo is None else stamp
    stamp = stamp.tz_convert("UTC")
    stamp = stamp.ceil("ms") if start else stamp.floor("ms")
    # In the stamp's own unit: subtracting the epoch goes through nanoseconds and overflows past 2262.
    return int(stamp.asm8.astype("datetime64[ms]").astype(np.int64))


def read_bounds(start: Any, end: Any, date_range: Any) -> tuple[Any, Any]:
    """``start`` and ``end``, or those of ``date_range=(start, end)``: only one of the two ways."""
    if date_range is None:
        return start, end
    if start is not None or end is not None:
        raise InvalidData("only one of date_range or start/end can be provided")
    if isinstance(date_range, str | bytes | Mapping) or not isinstance(date_range, Sequence) or len(date_range) != 2:
        raise InvalidData(f"date_range={date_range!r}: expected (start, end), either of them None")
    return date_range[0], date_range[1]
