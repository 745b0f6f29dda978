"""Turn what a feed or a researcher hands in (DataFrame or dicts) into validated, packed tick records.

A tick is identified by its time and its id: the ``trade_id`` (or ``seq``) column when there is
one, else its rank among the batch's ticks of the same millisecond in the order given. Rows that
fail validation are either refused as a whole batch (``errors="raise"``, nothing is written) or
dropped and counted by reason (``errors="skip"``, the rest is kept).

Nothing is guessed on the way in: a missing column is an error unless ``columns=`` says which
column holds it; numbers in a time column are epoch milliseconds unless ``unit=`` says otherwise,
and a number whose magnitude is that of a 1990-2200 time in seconds, microseconds or nanoseconds
is refused with a message naming that unit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from redtick.codec import TICK_DTYPE
from redtick.errors import InvalidData

__all__ = [
    "TICK_INPUT_FIELDS",
    "TIME_UNITS",
    "NormalisedTicks",
    "normalise_ticks",
    "rename_columns",
    "require_columns",
    "screen_rows",
    "screen_times",
    "times_ms",
    "to_epoch_ms",
]

TimeUnit = Literal["s", "ms", "us", "ns"]
TIME_UNITS: tuple[str, ...] = ("s", "ms", "us", "ns")
# Epoch ms stored must lie in [1970, 2200): anything else is almost certainly a unit mistake.
MIN_TS_MS = 0
MAX_TS_MS = 7_258_118_400_000  # 2200-01-01
# 1990-01-01 and 2200-01-01 in each unit. Each band spans a factor of 11.5 and the units differ by
# 1000, so the bands never overlap and a number inside one names its unit. Starting the bands at 1970
# would put 0..6.3e8 in the seconds band and refuse the small epoch-ms values synthetic data and the
# docs use (``ts=1_000``); so an s/us/ns time before 1990 is not recognised: it is taken as ms (a
# seconds one lands in 1970's first week; a us/ns one, after 1970-03-26, past 2200, and is refused).
_BAND_FIRST, _BAND_END = 631_152_000, 7_258_118_400
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_SIDES = {"buy": 1, "b": 1, "bid": 1, "1": 1, "sell": -1, "s": -1, "ask": -1, "-1": -1, "": 0, "none": 0,
          "0": 0, "unknown": 0}
TICK_INPUT_FIELDS = ("ts", "price", "volume", "trade_id", "side")
_ALIASES = {"ts": ("ts", "time", "timestamp", "open_time"), "trade_id": ("trade_id", "seq", "id")}
# Only used to suggest a ``columns=`` mapping in an error message, never applied on their own:
# taking ``size`` for ``volume`` unasked is exactly the guess this module refuses to make.
_LOOKALIKES = {
    "ts": ("datetime", "date", "t", "exchange_time", "trade_time", "time_ms", "epoch"),
    "price": ("px", "last", "last_price", "trade_price", "close"),
    "volume": ("size", "qty", "quantity", "amount", "vol", "shares", "last_size", "trade_size"),
    "trade_id": ("tid", "trade", "sequence", "seq_no", "tradeid"),
}
BAD_PRICE = "price is missing, NaN or infinite"
BAD_VOLUME = "volume is NaN, infinite or negative"


@dataclasses.dataclass
class NormalisedTicks:
    """Validated records sorted by (ts, id), with counts of what was dropped and why."""

    records: np.ndarray
    received: int
    rejected: dict[str, int]
    duplicates: int


def _check_unit(unit: Any) -> TimeUnit | None:
    if unit is not None and (not isinstance(unit, str) or unit not in TIME_UNITS):
        raise InvalidData(f"unit={unit!r}: expected one of {list(TIME_UNITS)} (or None for epoch ms)")
    return None if unit is None else cast(TimeUnit, unit)  # one of TIME_UNITS, checked above


def _band_units(raw: np.ndarray | int | float) -> dict[str, Any]:
    """Masks of the numbers lying in the 1990-2200 band of seconds, microseconds and nanoseconds.

    ``raw`` is int64 or float64 (an array or a Python number): integers are compared as integers, so
    a nanosecond count next to a band's edge is not rounded across it.
    """
    with np.errstate(invalid="ignore"):  # NaN compares False: not in any band
        return {unit: (raw >= _BAND_FIRST * _PER_SECOND[unit]) & (raw < _BAND_END * _PER_SECOND[unit])
                for unit in ("s", "us", "ns")}


def _wrong_unit_message(name: str, value: Any, unit: str) -> str:
    as_unit = pd.Timestamp(int(value) * 1_000 // _PER_SECOND[unit], unit="ms", tz="UTC")
    as_ms = (f"{pd.Timestamp(int(value), unit='ms', tz='UTC'):%Y-%m-%d %H:%M}" if int(value) < MAX_TS_MS
             else "a time past 2200")
    return (f"{name}={value} looks like epoch {_UNIT_NAMES[unit]} ({as_unit:%Y-%m-%d %H:%M:%S} UTC), while numbers "
            f"are taken as epoch milliseconds ({as_ms}); pass unit={unit!r}, or unit='ms' if milliseconds are meant")


def to_epoch_ms(value: Any, *, name: str = "time", unit: TimeUnit | None = None) -> int:
    """Epoch milliseconds of a str, datetime, ``pd.Timestamp`` or epoch number (naive = UTC).

    Parameters
    ----------
    value : str, datetime, pd.Timestamp, np.datetime64, int or float
        A time. Times with sub-millisecond digits are floored to the millisecond.
    name : str
        What the value is, for error messages (``start``, ``end``...).
    unit : {"s", "ms", "us", "ns"}, optional
        What a number counts since 1970-01-01 UTC. Without it a number is epoch ms, and one whose
        magnitude is a 1990-2200 time in seconds, microseconds or nanoseconds raises InvalidData
        naming that unit. Datetimes and date strings carry their own unit and ignore it.

    Examples
    --------
    >>> to_epoch_ms("2024-01-01T00:00:01Z")
    1704067201000
    >>> to_epoch_ms(1704067201000)
    1704067201000
    >>> to_epoch_ms(1704067201, unit="s")
    1704067201000
    >>> to_epoch_ms(1704067201)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: time=1704067201 looks like epoch seconds (2024-01-01 00:00:01 UTC)...; pass unit='s'...
    """
    unit = _check_unit(unit)
    if isinstance(value, bool | np.bool_):
        raise InvalidData(f"{name}={value!r}: expected a str, datetime, pd.Timestamp or epoch number")
    if isinstance(value, int | np.integer | float | np.floating):
        return _number_to_ms(value, name, unit)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidData(f"{name}={value!r}: expected a str, datetime, pd.Timestamp or epoch number") from None
    if stamp is pd.NaT:
        raise InvalidData(f"{name}={value!r} is not a time")
    # In the stamp's own unit (``.value``, nanoseconds, overflows past 2262); an aware stamp's
    # ``asm8`` is already UTC, and a naive one is taken as UTC.
    return int(stamp.asm8.astype("datetime64[ms]").astype(np.int64))


def _number_to_ms(value: int | float | np.number, name: str, unit: str | None) -> int:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        raise InvalidData(f"{name}={value!r}: expected a finite number")
    if unit is None:
        for guess, inside in _band_units(int(value) if isinstance(value, np.integer) else float(value)
                                         if isinstance(value, np.number) else value).items():
            if inside:
                raise InvalidData(_wrong_unit_message(name, value, guess))
        return math.floor(value)
    if isinstance(value, int | np.integer):
        # Python ints: exact at any size, as the int64 column path is within its range.
        return int(value) * 1_000 // _PER_SECOND[unit]
    ms = _numbers_to_ms(pd.Series([float(value)]), unit)[0]
    if not np.isfinite(ms):  # a finite float can still overflow once scaled (1e308 seconds)
        raise InvalidData(f"{name}={value} {_UNIT_NAMES[unit]} is beyond any time")
    return int(ms)


def _frame(ticks: Any) -> pd.DataFrame:
    if isinstance(ticks, pd.DataFrame):
        frame = ticks
    elif isinstance(ticks, Mapping):
        frame = pd.DataFrame([ticks])
    elif isinstance(ticks, Iterable) and not isinstance(ticks, str | bytes):
        rows = list(ticks)
        if rows and not all(isinstance(r, Mapping) for r in rows):
            raise InvalidData("ticks must be a DataFrame or an iterable of dicts with ts, price, volume")
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=["ts", "price", "volume"])
    else:
        raise InvalidData(f"ticks must be a DataFrame or an iterable of dicts, not {type(ticks).__name__}")
    return frame


def rename_columns(frame: pd.DataFrame, columns: Mapping[Any, str] | None, known: Sequence[str],
                   *, what: str = "ticks") -> pd.DataFrame:
    """``frame`` with its columns renamed to field names as ``columns`` maps them (``{"size": "volume"}``).

    Every key must be a column of ``frame`` and every value one of ``known``; two columns may not
    end up with one name. Nothing else is renamed or added.

    Examples
    --------
    >>> frame = pd.DataFrame({"t": [1_000], "px": [10.0], "size": [2.0]})
    >>> list(rename_columns(frame, {"t": "ts", "px": "price", "size": "volume"}, TICK_INPUT_FIELDS).columns)
    ['ts', 'price', 'volume']
    >>> rename_columns(frame, {"size": "qty"}, TICK_INPUT_FIELDS)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: columns maps 'size' to 'qty', which is not a field of ticks; fields are ['ts', 'price', ...]
    """
    if columns is None:
        return frame
    if not isinstance(columns, Mapping):
        raise InvalidData(f"columns={columns!r}: expected a dict from column names to fields, such as {{'size': 'volume'}}")
    present = list(frame.columns)
    for source, field in columns.items():
        if source not in present:
            raise InvalidData(f"columns maps {source!r}, but the {what} have no such column; columns are {present}")
        if not isinstance(field, str) or field not in known:
            raise InvalidData(f"columns maps {source!r} to {field!r}, which is not a field of {what}; "
                              f"fields are {list(known)}")
    renamed = [columns.get(c, c) for c in present]
    clashes = sorted({str(n) for n in renamed if renamed.count(n) > 1 and n in columns.values()})
    if clashes:
        raise InvalidData(f"columns={dict(columns)!r} leaves the {what} with two columns named {clashes}; "
                          f"drop or rename the other one first")
    return frame.rename(columns=dict(columns))


def _has_field(frame: pd.DataFrame, field: str) -> bool:
    if field == "ts" and isinstance(frame.index, pd.DatetimeIndex):
        return True
    return any(name in frame.columns for name in _ALIASES.get(field, (field,)))


def require_columns(frame: pd.DataFrame, fields: Sequence[str], *, what: str = "ticks") -> None:
    """Raise InvalidData naming every field of ``fields`` that ``frame`` has no column for.

    ``ts`` is also found as ``time``, ``timestamp``, ``open_time`` or a DatetimeIndex; ``trade_id``
    as ``seq`` or ``id``. The message lists the frame's columns and the ``columns=`` that would help.

    Examples
    --------
    >>> require_columns(pd.DataFrame({"ts": [0], "price": [1.0], "size": [2.0]}), ["ts", "price", "volume"])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: ticks have no 'volume' column (columns: ['ts', 'price', 'size']); ... columns={'size': 'volume'}
    """
    missing = [f for f in fields if not _has_field(frame, f)]
    if not missing:
        return
    present = list(frame.columns)
    lowered = {str(c).lower(): c for c in present}
    hint = {}
    for field in missing:
        match = next((lowered[n] for n in _LOOKALIKES.get(field, ()) if n in lowered), None)
        hint[match if match is not None else f"<column with {field}>"] = field
    lacks = [f"no {f!r} column" for f in missing if f != "ts"]
    if "ts" in missing:
        # 'timestamp' first: the name the platform's candles and quotes use, so the one users look for.
        lacks.insert(0, "no time: no 'timestamp' column (nor 'ts', 'time' or 'open_time') and no DatetimeIndex")
    raise InvalidData(f"{what} have {' and '.join(lacks)} (columns: {present}); "
                      f"say which column holds {'them' if len(missing) > 1 else 'it'} with columns={hint!r}")


def _time_values(frame: pd.DataFrame) -> pd.Series | pd.DatetimeIndex:
    column = next((c for c in _ALIASES["ts"] if c in frame.columns), None)
    if column is not None:
        return frame[column]
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index
    raise InvalidData(f"no time: expected a 'ts' (or 'time', 'timestamp', 'open_time') column or a DatetimeIndex "
                      f"(columns: {list(frame.columns)}); say which column holds it with columns={{'<column>': 'ts'}}")


def _stamps_to_ms(values: Any) -> np.ndarray:
    """Floored epoch ms (float64, NaN for NaT) of datetimes of any unit; naive ones are UTC."""
    stamps = pd.DatetimeIndex(values)
    # ``asi8`` counts the index's own unit since the epoch, in UTC for an aware index. Integer floor
    # division keeps it exact: nanoseconds since 1970 exceed 2**53, and a datetime64[s] past 2262
    # has no nanosecond form at all.
    per_ms = {"s": 1, "ms": 1, "us": 1_000, "ns": 1_000_000}[stamps.unit]
    raw = stamps.asi8 * 1_000 if stamps.unit == "s" else stamps.asi8 // per_ms
    ms: npt.NDArray[np.float64] = np.asarray(raw, dtype=np.float64)
    ms[np.asarray(stamps.isna())] = np.nan
    return ms


def _raw_numbers(numbers: pd.Series) -> np.ndarray:
    """Numbers as int64 when they are integers (missing: 0), else float64 (missing: NaN).

    Integers stay integers: an int64 of nanoseconds has no exact float64. Values past int64 are far
    outside 1970-2200 and only need to stay out of range, so unsigned ones are clipped.
    """
    if pd.api.types.is_unsigned_integer_dtype(numbers.dtype):
        return np.asarray(np.minimum(numbers.to_numpy(dtype=np.uint64, na_value=0), 2**63 - 1), dtype=np.int64)
    if pd.api.types.is_integer_dtype(numbers.dtype):
        return np.asarray(numbers.to_numpy(dtype=np.int64, na_value=0))
    return np.asarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan))


def _numbers_to_ms(numbers: pd.Series, unit: str | None) -> np.ndarray:
    """Floored epoch ms (float64, NaN where missing) of numbers counting ``unit`` (None: ms)."""
    missing = numbers.isna().to_numpy()
    per_second = _PER_SECOND[unit or "ms"]
    raw = _raw_numbers(numbers)
    if raw.dtype == np.int64:
        # Seconds: exact while the product stays below 2**53 ms, which covers every accepted time.
        ms = raw.astype(np.float64) * 1_000 if per_second == 1 else (raw // (per_second // 1_000)).astype(np.float64)
    else:
        values = raw
        with np.errstate(over="ignore", invalid="ignore"):
            ms = np.floor(values * (1_000 / per_second))
        if per_second != 1_000:
            # Fractions convert as pandas' ``to_datetime(unit=)`` does (it rounds to the nanosecond),
            # so a float epoch lands in the same millisecond as its datetime would; the product
            # above only decides which values are in range for that.
            inside = np.isfinite(ms) & (ms >= MIN_TS_MS) & (ms < MAX_TS_MS)
            if inside.any():
                ms[inside] = _stamps_to_ms(pd.to_datetime(values[inside], unit=unit))
    ms[missing] = np.nan
    return ms


def _read_times(frame: pd.DataFrame, unit: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Epoch ms of the frame's times, and the numbers as given (see ``_raw_numbers``; None when none)."""
    values = _time_values(frame)
    if isinstance(values, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(values):
        return _stamps_to_ms(values), None
    values = pd.Series(values, copy=False).reset_index(drop=True)
    if pd.api.types.is_bool_dtype(values.dtype):  # True is not 1 ms after the epoch
        return np.full(len(values), np.nan), None
    numbers = pd.to_numeric(values, errors="coerce")
    is_number = numbers.notna().to_numpy()
    if (is_number == values.notna().to_numpy()).all():  # every present value is a number
        return _numbers_to_ms(numbers, unit), _raw_numbers(numbers)
    # Numbers among date strings: each row by its own kind. Parsing the column as datetimes would
    # read its numbers as nanoseconds (1970), and coercing it as numbers would round big ints to float.
    ms = np.full(len(values), np.nan)
    raw = np.full(len(values), np.nan)
    if is_number.any():
        exact = pd.to_numeric(values[is_number])
        ms[is_number] = _numbers_to_ms(exact, unit)
        numbers_given = _raw_numbers(exact)
        if numbers_given.dtype == np.int64:
            raw = np.zeros(len(values), dtype=np.int64)  # 0: in no unit's band
        raw[is_number] = numbers_given
    text = ~is_number & values.notna().to_numpy()
    if text.any():
        ms[text] = _stamps_to_ms(pd.to_datetime(values[text], utc=True, errors="coerce", format="mixed"))
    return ms, raw


def times_ms(frame: pd.DataFrame, *, unit: TimeUnit | None = None) -> np.ndarray:
    """Epoch ms as float64 (floored; NaN where unparseable) from a time column or a DatetimeIndex.

    The time is the first of the columns ``ts``, ``time``, ``timestamp``, ``open_time``, else the
    DatetimeIndex. Datetimes of any unit and time zone convert exactly (naive ones are UTC); numbers
    count ``unit`` since the epoch (ms when None) and are converted without any range check: see
    :func:`screen_times` for the checks.

    Examples
    --------
    >>> frame = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 01:00:00.0019"]).tz_localize("Europe/Paris")})
    >>> times_ms(frame).tolist()
    [1704067200001.0]
    >>> times_ms(pd.DataFrame({"ts": [1704067200]}), unit="s").tolist()
    [1704067200000.0]
    """
    return _read_times(frame, _check_unit(unit))[0]


def screen_times(frame: pd.DataFrame, *, unit: TimeUnit | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Epoch ms of the frame's times (as :func:`times_ms`) and per-row reasons to refuse them.

    A time is refused when it cannot be parsed, when ``unit`` is None and it is a number in the
    1990-2200 band of seconds, microseconds or nanoseconds (the reason names the unit to pass), or
    when it falls outside 1970-2200. When every parseable time is such a number, the column as a
    whole is in another unit and InvalidData is raised whatever ``errors`` the caller chose: skipping
    every row would hide the one mistake.

    Examples
    --------
    >>> ms, reasons = screen_times(pd.DataFrame({"ts": [1_704_067_200_000, 1_704_067_200, -5]}))
    >>> for reason, mask in reasons.items():
    ...     print(f"{reason}: {mask.tolist()}")
    unparseable time: [False, False, False]
    time looks like epoch seconds, not ms (pass unit='s'): [False, True, False]
    time looks like epoch microseconds, not ms (pass unit='us'): [False, False, False]
    time looks like epoch nanoseconds, not ms (pass unit='ns'): [False, False, False]
    time outside 1970-2200: [False, False, True]
    """
    unit = _check_unit(unit)
    ms, raw = _read_times(frame, unit)
    reasons = {"unparseable time": np.isnan(ms)}
    if raw is not None and unit is None:
        bands = _band_units(raw)
        for guess, inside in bands.items():
            reasons[f"time looks like epoch {_UNIT_NAMES[guess]}, not ms (pass unit={guess!r})"] = inside
        parsed = ~np.isnan(ms)
        wrong = np.logical_or.reduce(list(bands.values()))
        if parsed.any() and wrong[parsed].all():
            guess = max(bands, key=lambda u: int(bands[u].sum()))
            first = raw[np.flatnonzero(bands[guess])[0]].item()
            value = int(first) if float(first).is_integer() else first
            raise InvalidData(_wrong_unit_message(str(_time_values(frame).name or "ts"), value, guess))
    with np.errstate(invalid="ignore"):
        reasons["time outside 1970-2200"] = ~np.isnan(ms) & ((ms < MIN_TS_MS) | (ms >= MAX_TS_MS))
    return ms, reasons


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    return np.asarray(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))


def _sides(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Side codes (1 buy, -1 sell, 0 unknown) and a mask of unrecognised values."""
    if "side" not in frame.columns:
        return np.zeros(len(frame), dtype=np.int8), np.zeros(len(frame), dtype=bool)
    text = frame["side"].astype("string").str.strip().str.lower().fillna("")
    codes = text.map(_SIDES)
    bad = codes.isna().to_numpy()
    return codes.fillna(0).to_numpy(dtype=np.int8), bad


def _ids(frame: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """Trade ids (None when the frame has none) and a mask of ids that are missing or not whole."""
    column = next((c for c in _ALIASES["trade_id"] if c in frame.columns), None)
    if column is None:
        return None, np.zeros(len(frame), dtype=bool)
    values = frame[column]
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return values.to_numpy(dtype=np.int64), np.zeros(len(frame), dtype=bool)  # exact beyond 2**53
    raw = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(raw) | (raw != np.floor(raw)) | (np.abs(raw) >= 2**63)
    return np.where(bad, 0, raw).astype(np.int64), bad


def _rank_within_ms(ts: np.ndarray) -> np.ndarray:
    """0, 1, 2... for the ticks of each millisecond, in the order given."""
    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    starts = np.r_[True, sorted_ts[1:] != sorted_ts[:-1]]
    position = np.arange(len(ts))
    group_start = np.maximum.accumulate(np.where(starts, position, 0))
    ranks = np.empty(len(ts), dtype=np.int64)
    ranks[order] = position - group_start
    return ranks


def screen_rows(reasons: dict[str, np.ndarray], rows: int, errors: str, what: str) -> tuple[np.ndarray, dict[str, int]]:
    """A mask of bad rows and their counts by reason (a row counts once, under its first reason).

    With ``errors="raise"`` any bad row raises InvalidData naming every reason and its count.
    """
    bad = np.zeros(rows, dtype=bool)
    rejected: dict[str, int] = {}
    for reason, mask in reasons.items():
        fresh = mask & ~bad
        if fresh.any():
            rejected[reason] = int(fresh.sum())
        bad |= mask
    if rejected and errors == "raise":
        detail = ", ".join(f"{n} {reason}" for reason, n in rejected.items())
        raise InvalidData(f"{int(bad.sum())} of {rows} {what} are invalid ({detail}); nothing was written")
    return bad, rejected


def normalise_ticks(
    ticks: Any,
    *,
    errors: Literal["raise", "skip"] = "raise",
    columns: Mapping[Any, str] | None = None,
    unit: TimeUnit | None = None,
) -> NormalisedTicks:
    """Validate ``ticks`` and pack them as records sorted by (ts, id), duplicates dropped.

    Parameters
    ----------
    ticks : DataFrame or iterable of dict
        Time as a ``ts`` (or ``time``/``timestamp``/``open_time``) column of datetimes, strings or
        epoch numbers, or a DatetimeIndex; ``price``; ``volume``; optional ``trade_id`` (or
        ``seq``/``id``) and ``side`` (buy/sell). A missing ``ts``, ``price`` or ``volume`` raises
        InvalidData naming it: no value is ever made up for it.
    errors : {"raise", "skip"}
        ``"raise"``: any bad row raises InvalidData naming the reasons, and nothing is kept.
        ``"skip"``: bad rows are dropped and counted in ``rejected`` by reason.
    columns : dict, optional
        Which of the frame's columns holds which field, such as ``{"size": "volume"}``; fields are
        ``ts``, ``price``, ``volume``, ``trade_id``, ``side``.
    unit : {"s", "ms", "us", "ns"}, optional
        What epoch numbers in the time column count. Without it they are epoch ms, and numbers
        whose magnitude is a 1990-2200 time in seconds, microseconds or nanoseconds are refused
        with a reason naming that unit (the whole call raises when every time is such a number).

    Notes
    -----
    Prices may be zero or negative (spreads, power, oil in April 2020); a price or volume that is
    NaN or infinite, and a negative volume, is refused per row.

    Examples
    --------
    >>> out = normalise_ticks([{"ts": 1_000, "price": 10.0, "volume": 1, "trade_id": 7},
    ...                        {"ts": 1_000, "price": 10.0, "volume": 1, "trade_id": 7}])
    >>> len(out.records), out.duplicates
    (1, 1)
    >>> frame = pd.DataFrame({"time": [1_704_067_200, 1_704_067_201], "px": [-3.5, 0.0], "size": [1.0, 2.0]})
    >>> out = normalise_ticks(frame, columns={"px": "price", "size": "volume"}, unit="s")
    >>> out.records["ts"].tolist(), out.records["price"].tolist()
    ([1704067200000, 1704067201000], [-3.5, 0.0])
    """
    if errors not in ("raise", "skip"):
        raise InvalidData(f"errors={errors!r}: expected 'raise' or 'skip'")
    frame = rename_columns(_frame(ticks), columns, TICK_INPUT_FIELDS)
    require_columns(frame, ("ts", "price", "volume"))
    ts, time_reasons = screen_times(frame, unit=unit)
    price = _numbers(frame, "price")
    volume = _numbers(frame, "volume")
    side, bad_side = _sides(frame)
    ids, bad_id = _ids(frame)

    reasons = {
        **time_reasons,
        BAD_PRICE: ~np.isfinite(price),
        BAD_VOLUME: ~(np.isfinite(volume) & (volume >= 0)),
        "trade id is missing or not a whole number": bad_id,
        "side is not buy or sell": bad_side,
    }
    bad, rejected = screen_rows(reasons, len(frame), errors, "ticks")
    keep = ~bad
    records = np.empty(int(keep.sum()), dtype=TICK_DTYPE)
    records["ts"] = ts[keep].astype(np.int64)
    records["id"] = _rank_within_ms(records["ts"]) if ids is None else ids[keep]
    records["price"], records["volume"], records["side"] = price[keep], volume[keep], side[keep]
    records = records[np.lexsort((records["id"], records["ts"]))]
    unique = np.ones(len(records), dtype=bool)  # empty when every row was rejected (or none given)
    unique[1:] = (records["ts"][1:] != records["ts"][:-1]) | (records["id"][1:] != records["id"][:-1])
    return NormalisedTicks(records[unique], len(frame), rejected, int(len(records) - unique.sum()))
