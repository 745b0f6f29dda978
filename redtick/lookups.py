"""The tick in force at each of many times: ``pandas.merge_asof`` (backward, forward, nearest) on stored ticks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import take

from redtick.catalog import layout_of, require_symbols
from redtick.codec import TICK_DTYPE, is_sealed, unpack_ticks
from redtick.connection import Connection, connect
from redtick.errors import InvalidData, NotFound
from redtick.keys import validate_symbol
from redtick.outputs import ticks_frame
from redtick.read_options import TICK_COLUMNS
from redtick.series import TICK_FIELDS, SeriesLayout
from redtick.steps import Batch, Plan, gather, run
from redtick.tick_write import Records

__all__ = ["DIRECTIONS", "asof", "candidate_ticks_plan", "match_positions", "requested_times"]

DIRECTIONS = ("backward", "forward", "nearest")
TICK_SIZE = TICK_DTYPE.itemsize
_UNITS_PER_MS = {"ms": 1, "us": 1_000, "ns": 1_000_000}
_NUMBERS = {"integer", "floating", "mixed-integer-float", "decimal", "complex", "boolean"}


def requested_times(times: Any) -> pd.DatetimeIndex:
    """``times`` as a UTC DatetimeIndex in order, duplicates kept (naive = UTC), at millisecond
    resolution or finer.

    Numbers are refused rather than guessed: pandas reads them as nanoseconds, a feed may mean
    seconds or milliseconds.

    Examples
    --------
    >>> requested_times(["2024-01-01 00:00:01", "2024-01-01T02:00:00+02:00"])  # doctest: +NORMALIZE_WHITESPACE
    DatetimeIndex(['2024-01-01 00:00:01+00:00', '2024-01-01 00:00:00+00:00'], dtype='datetime64[us, UTC]',
                  name='time', freq=None)
    """
    if isinstance(times, str) or np.ndim(times) == 0:
        times = [times]
    values = pd.Index(times) if not isinstance(times, pd.Index | pd.Series) else times
    if not pd.api.types.is_datetime64_any_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=True) in _NUMBERS:
        raise InvalidData("times are numbers, whose unit cannot be told; give datetimes or strings, "
                          "e.g. pd.to_datetime(times, unit='ms')")
    try:
        try:
            stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
        except ValueError:  # strings of several formats: parse each on its own, as a bound is
            stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="mixed"))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidData(f"times: expected datetimes, strings or Timestamps ({exc})") from None
    if stamps.hasnans:
        raise InvalidData(f"times: {int(stamps.isna().sum())} of {len(stamps)} are missing (NaT or unparseable)")
    if stamps.unit == "s":  # a tick time is whole milliseconds: compare in a unit that holds it exactly
        stamps = stamps.as_unit("ms")
    return stamps.rename("time")


def _tolerance(tolerance: Any, unit: str) -> int | None:
    """``tolerance`` as a whole number of ``unit`` (rounded down: times in ``unit`` differ by whole units)."""
    if tolerance is None:
        return None
    if isinstance(tolerance, bool | int | float | np.integer | np.floating):
        raise InvalidData(f"tolerance={tolerance!r}: a number has no unit; give a duration such as '5s' or pd.Timedelta")
    try:
        delta = pd.Timedelta(tolerance)
    except (ValueError, TypeError, OverflowError):
        raise InvalidData(f"tolerance={tolerance!r}: expected a duration such as '5s', '100ms' or pd.Timedelta") from None
    if delta is pd.NaT or delta < pd.Timedelta(0):
        raise InvalidData(f"tolerance={tolerance!r}: expected a duration of zero or more")
    return int(delta.value) // (1_000_000 // _UNITS_PER_MS[unit])


def _first_at_or_after_plan(layout: SeriesLayout, symbol: str, at_ms: int) -> Plan[Records]:
    """Plan: the first record at or after ``at_ms`` as a one-record array, or an empty one.

    The mirror of :meth:`SeriesLayout.price_at_plan`: the chunk holding ``at_ms`` is searched
    rather than fetched (:meth:`SeriesLayout.boundary_plan`); when it has nothing from ``at_ms``
    on, the answer is the first record of the next chunk: its first 33 bytes if it is raw, else
    the chunk decoded (a sealed chunk starts with its header).
    """
    chunk = at_ms // layout.chunk_ms * layout.chunk_ms
    (members,) = yield Batch([("ZRANGEBYSCORE", layout.keys.tick_index(symbol), chunk, "+inf", "LIMIT", 0, 2)])
    for member in members:
        key = layout.keys.tick_chunk(symbol, int(member))
        if int(member) > at_ms:  # a later chunk: its first record is the answer
            (blob,) = yield Batch([("GETRANGE", key, 0, TICK_SIZE - 1)])
            if is_sealed(blob or b""):
                (blob,) = yield Batch([("GET", key)])
            records = unpack_ticks(blob or b"")
        else:
            records = yield from layout.boundary_plan(key, at_ms, "left")
        records = records[records["ts"] >= at_ms]
        if len(records):
            return records[:1]
    return np.zeros(0, dtype=TICK_DTYPE)


def _last_at_or_before_plan(layout: SeriesLayout, symbol: str, at_ms: int) -> Plan[Records]:
    """Plan: the last record at or before ``at_ms`` as a one-record array, or an empty one."""
    record = yield from layout.price_at_plan(symbol, at_ms)
    return np.zeros(0, dtype=TICK_DTYPE) if record is None else np.array([record], dtype=TICK_DTYPE)


def _exists_plan(layout: SeriesLayout, symbol: str) -> Plan[bool]:
    """Plan: whether ``symbol`` has a tick index at all."""
    (found,) = yield Batch([("EXISTS", layout.keys.tick_index(symbol))])
    return bool(found)


def candidate_ticks_plan(layout: SeriesLayout, symbol: str, first_ms: int, last_ms: int, direction: str
                         ) -> Plan[tuple[bool, dict[str, npt.NDArray[Any]]]]:
    """Plan: (whether the symbol has ticks, the records any time in ``[first_ms, last_ms]`` can match).

    Those are the ticks inside the span, plus the last one before it (``backward``,
    ``nearest``), however far back, and the first one after it (``forward``, ``nearest``),
    however far ahead, found by searching the chunks next to the span rather than reading
    towards them. The searches and the span's read share their round trips.
    """
    plans: list[Plan[Any]] = [_exists_plan(layout, symbol), layout.read_ticks_plan(symbol, first_ms, last_ms, TICK_FIELDS)]
    if direction != "forward":
        plans.append(_last_at_or_before_plan(layout, symbol, first_ms))
    if direction != "backward":
        plans.append(_first_at_or_after_plan(layout, symbol, last_ms))
    exists, inside, *edges = yield from gather(*plans)
    before = edges.pop(0) if direction != "forward" else np.zeros(0, dtype=TICK_DTYPE)
    after = edges.pop(0) if direction != "backward" else np.zeros(0, dtype=TICK_DTYPE)
    # An edge tick at the span's own bound is already inside it; its equals there come with it.
    before = before[before["ts"] < first_ms]
    after = after[after["ts"] > last_ms]
    records = {name: np.concatenate([before[name], inside[name], after[name]]) for name in TICK_FIELDS}
    return exists, records


def match_positions(tick_times: np.ndarray, times: np.ndarray, direction: str, tolerance: int | None) -> np.ndarray:
    """For each of ``times``, the position of its tick in sorted ``tick_times`` (same unit), -1 for none.

    As ``pandas.merge_asof``: ``backward`` takes the last of equal tick times, ``forward`` the
    first, ``nearest`` the backward match on a tie; a match further than ``tolerance`` is none.

    Examples
    --------
    >>> ticks = np.array([10, 20, 20, 30])
    >>> match_positions(ticks, np.array([5, 20, 26, 40]), "backward", None).tolist()
    [-1, 2, 2, 3]
    >>> match_positions(ticks, np.array([5, 20, 26, 40]), "nearest", 4).tolist()
    [-1, 2, 3, -1]
    """
    count = len(tick_times)
    behind = np.searchsorted(tick_times, times, side="right") - 1
    ahead = np.searchsorted(tick_times, times, side="left")
    ahead = np.where(ahead < count, ahead, -1)
    if direction == "backward":
        found = behind
    elif direction == "forward":
        found = ahead
    else:
        behind_gap = times - tick_times[np.maximum(behind, 0)] if count else times
        ahead_gap = tick_times[np.maximum(ahead, 0)] - times if count else times
        take_behind = (behind >= 0) & ((ahead < 0) | (behind_gap <= ahead_gap))
        found = np.where(take_behind, behind, ahead)
    if tolerance is not None and count:
        gap = np.abs(times - tick_times[np.maximum(found, 0)])
        found = np.where(gap <= tolerance, found, -1)
    return found


def asof(
    symbol: str,
    times: Any,
    direction: Literal["backward", "forward", "nearest"] = "backward",
    *,
    columns: Sequence[str] | None = None,
    tolerance: Any = None,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """The tick in force at each of ``times``: ``pandas.merge_asof`` of the times on ``symbol``'s ticks.

    ``backward`` takes the last tick at or before each time (of equal tick times, the last by
    trade id), ``forward`` the first at or after it, ``nearest`` the closer of the two (the
    backward one on a tie). The ticks are read once for the whole span of ``times``; the tick
    before the earliest time and the one after the latest are searched for, however far away.
    All times are compared exactly, to the nanosecond, with ticks' millisecond times.

    Parameters
    ----------
    symbol : str
    times : str, datetime, Timestamp or a list, array, Series or DatetimeIndex of them
        Naive times are UTC; a single time gives a one-row frame. Numbers are refused: their
        unit cannot be told.
    direction : {"backward", "forward", "nearest"}
    columns : list of str, optional
        Some of ``price``, ``volume``, ``trade_id``, ``side`` (default ``price``, ``volume``).
    tolerance : str or Timedelta, optional
        Farthest a tick may be from its time (inclusive); beyond it the time has no match.

    Returns
    -------
    DataFrame
        Indexed by ``times`` (a UTC ``DatetimeIndex`` named ``time``, in the order given,
        duplicates kept), with the tick's ``columns`` and ``tick_ts``, the matched tick's time.
        A time without a match has NaN and NaT; as in ``merge_asof``, an integer column
        (``trade_id``, ``side``) is then float64.

    Raises
    ------
    SymbolNotFound
        Nothing is stored for ``symbol`` (the message names close matches).
    NotFound
        ``symbol`` has candles but no ticks.
    InvalidData
        A time cannot be read as a datetime, or ``direction``, ``columns`` or ``tolerance`` is not
        one of the accepted values.

    Notes
    -----
    Every tick between the earliest and the latest of ``times`` is read (in one go, chunks
    whole): for a few times months apart, one call per period reads less.

    Examples
    --------
    >>> import pandas as pd, redtick
    >>> ticks = pd.DataFrame({"ts": ["2024-01-02 09:30:00", "2024-01-02 09:30:05", "2024-01-02 09:31:00"],
    ...                       "price": [100.0, 100.5, 101.0], "volume": [1.0, 2.0, 3.0]})
    >>> _ = redtick.write_ticks(ticks, "DOCSASOF")
    >>> redtick.asof("DOCSASOF", ["2024-01-02 09:30:07", "2024-01-02 09:29", "2024-01-03"])  # doctest: +NORMALIZE_WHITESPACE
                               price  volume                   tick_ts
    time
    2024-01-02 09:30:07+00:00  100.5     2.0 2024-01-02 09:30:05+00:00
    2024-01-02 09:29:00+00:00    NaN     NaN                       NaT
    2024-01-03 00:00:00+00:00  101.0     3.0 2024-01-02 09:31:00+00:00
    >>> redtick.asof("DOCSASOF", ["2024-01-02 09:30:07"], "nearest", tolerance="10s")["price"].tolist()
    [100.5]
    """
    symbol = validate_symbol(symbol)
    if direction not in DIRECTIONS:
        raise InvalidData(f"direction={direction!r}: expected one of {', '.join(DIRECTIONS)}")
    wanted = list(TICK_COLUMNS) if columns is None else columns
    # An empty frame checks ``columns`` with load_ticks' own rule and message, before anything is read.
    ticks_frame({name: np.zeros(0, dtype=TICK_DTYPE[name]) for name in TICK_FIELDS}, wanted)
    stamps = requested_times(times)
    per_ms = _UNITS_PER_MS[stamps.unit]
    gap = _tolerance(tolerance, stamps.unit)
    conn = conn or connect()
    layout = layout_of(conn)
    at = stamps.asi8  # in the times' own unit, so no time is rounded
    if len(at):
        first_ms, last_ms = int(at.min()) // per_ms, -(-int(at.max()) // per_ms)
    else:  # nothing to match; the symbol is still checked, as a read of it would be
        first_ms = last_ms = 0
    exists, records = run(conn.sync, lambda: candidate_ticks_plan(layout, symbol, first_ms, last_ms, direction))
    if not exists:
        require_symbols(conn, [symbol])  # SymbolNotFound, naming close matches, if nothing is stored
        raise NotFound(f"symbol {symbol!r} has candles but no ticks; asof matches ticks (load_ohlcv reads candles)")
    ticks = ticks_frame(records, wanted)
    found = match_positions(records["ts"] * per_ms, at, direction, gap)
    data = {name: take(ticks[name].to_numpy(), found, allow_fill=True) for name in ticks.columns}
    data["tick_ts"] = ticks.index.array.take(found, allow_fill=True)
    return pd.DataFrame(data, index=stamps)
