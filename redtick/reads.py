"""Research reads as plans: the ticks of a window, and candles of any interval with every bucket whole.

**Which buckets a read returns.** A candle read returns the buckets whose *label* lies in
``[start, end]`` (both inclusive; an open side reaches the data's first or last bucket), each
computed from *all* of its ticks, also those before ``start`` or after ``end``: what pandas gives
for ``ticks.resample(...).agg(...).loc[start:end]``. This holds for stored and rolled-up intervals
alike. A bucket's label is its left edge, or its right edge for intervals pandas labels on the
right (``"W"``, ``"ME"``...; see :mod:`redtick.intervals`).

**Where a bucket comes from.** From the coarsest stored interval whose grid holds every bucket
edge of the read (in UTC, epoch-aligned), merging its whole candles; when none does (``"30s"``,
``"7m"``, a day in ``"Asia/Kolkata"``, ``closed="right"``) from the ticks. Either is exact. Data a
source cannot see is refused, not dropped: a coarser stored candle with data (bars imported at a
coarser interval) that the source has nothing for raises ``InvalidData``. Where the source's own
configured retention has dropped older data, a read returns what it keeps, as a stored one does.

**VWAP.** A bucket's ``notional`` (sum of price x volume) is merged like its ``volume``, from the
ticks or from whole stored candles, so ``vwap = notional / volume`` is exact for every interval: NaN
where the volume is 0 (an empty bucket of a filled read, too) or where any part of the bucket is an
imported bar that did not give its VWAP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from redtick.candles import UNKNOWN_COUNT, rollup_columns, tick_candles, vwap
from redtick.catalog import listing
from redtick.codec import CANDLE_DTYPE
from redtick.errors import InvalidData
from redtick.intervals import Bins, FixedBins, parse_interval
from redtick.read_options import TICK_FIELDS, read_columns, time_bound
from redtick.series import SeriesLayout
from redtick.steps import Plan, gather
from redtick.ticks import TimeUnit

__all__ = [
    "FILLS",
    "CandleQuery",
    "Coarser",
    "Columns",
    "candles_plan",
    "candles_read_plan",
    "check_coverage",
    "choose_source",
    "empty_candles",
    "filled",
    "ticks_plan",
    "ticks_read_plan",
]

FILLS = (None, "nan", "ffill")
CANDLE_VALUES = ("open", "high", "low", "close", "volume", "notional", "count")
_PRICES = ("open", "high", "low", "close")
_TICK_SOURCE = 0  # the step of the tick "grid": any millisecond
_COVERAGE_FIELDS = ("count", "first_ts", "last_ts")
_CANDLE_FIELDS: tuple[str, ...] = tuple(CANDLE_DTYPE.fields or ())

Coarser: TypeAlias = tuple[int, npt.NDArray[np.int64], dict[str, npt.NDArray[Any]]]
"""A coarser stored interval read for the coverage check: (its step in ms, bucket starts, columns)."""


@dataclasses.dataclass
class Columns:
    """One symbol's read before it becomes a frame or a table: times (epoch ms) and named columns.

    ``ts`` holds tick times or bucket labels; ``freq`` is the pandas offset of a regular (filled) index.
    """

    ts: np.ndarray
    data: dict[str, np.ndarray]
    freq: Any = None

    def __len__(self) -> int:
        return len(self.ts)


@dataclasses.dataclass(frozen=True)
class CandleQuery:
    """What a candle read asks for: buckets, label bounds (epoch ms, None = open), columns and fill."""

    bins: Bins
    start: int | None
    end: int | None
    fields: tuple[str, ...]
    fill: str | None = None


def ticks_plan(layout: SeriesLayout, symbol: str, start: int | None, end: int | None, fields: Sequence[str]) -> Plan[Columns]:
    """Plan: :class:`Columns` of the ticks with ``start <= ts <= end``, sorted by (time, id)."""
    got = yield from layout.read_ticks_plan(symbol, start, end, ["ts", *fields])
    return Columns(got["ts"], {name: got[name] for name in fields})


def empty_candles(fields: Sequence[str]) -> Columns:
    return Columns(np.zeros(0, np.int64), {name: np.zeros(0, np.float64) for name in fields})


def choose_source(intervals: Mapping[str, int], bins: Bins, lo: int, hi: int) -> str | None:
    """The coarsest stored interval whose grid holds every bucket edge in ``[lo, hi]``; None: the ticks."""
    aligned = [name for name, step in intervals.items() if bins.aligned(step, lo, hi)]
    return max(aligned, key=intervals.__getitem__) if aligned else None


def _label_bounds(layout: SeriesLayout, symbol: str, query: CandleQuery) -> Plan[tuple[int, int] | None]:
    """Plan: finite label bounds for the read: the query's, or those of the data's first and last buckets."""
    start, end = query.start, query.end
    if start is None or end is None:
        span = yield from layout.span_plan(symbol)
        if span is None:
            return None
        edge_labels = query.bins.labels(query.bins.keys(np.array(span, dtype=np.int64)))
        start = int(edge_labels[0]) if start is None else start
        end = int(edge_labels[1]) if end is None else end
    return start, end


def _coverage_reads(layout: SeriesLayout, symbol: str, source: str | None, lo: int, hi: int
                    ) -> Plan[tuple[list[Coarser], int | None]]:
    """Plan: (step, starts, columns) of every stored interval coarser than the source over ``[lo, hi]``,
    and where the source's configured retention keeps data from (None: everything)."""
    step = _TICK_SOURCE if source is None else layout.intervals[source]
    coarser = {name: iv for name, iv in layout.intervals.items() if iv > step}
    reads: list[Plan[Any]] = [layout.read_candles_plan(symbol, name, lo // iv * iv, hi, _COVERAGE_FIELDS)
                              for name, iv in coarser.items()]
    found = yield from gather(*reads, *([layout.newest_plan(symbol)] if layout.retains else []))
    kept_from = None
    if layout.retains:
        window = layout.retention_window(found.pop())
        kept_from = window.ticks_from if source is None else window.candles_from.get(source)
    return [(iv, starts, got) for iv, (starts, got) in zip(coarser.values(), found, strict=True)], kept_from


def check_coverage(coarse: list[Coarser], kept_from: int | None, source_starts: np.ndarray, source_step: int, lo: int,
                   hi: int, symbol: str, interval: str, source: str | None) -> None:
    """Raise InvalidData if a coarser stored candle holds data in ``[lo, hi]`` that the source lacks.

    A coarser candle is checked when it lies inside the read, or when it is imported (its ticks
    unknown) and the span of its data (``first_ts`` to ``last_ts``) reaches into the read: the
    source must then have a tick, or a candle, within that part. This catches bars imported at a
    coarser interval and ticks trimmed while their candles stay. What the source's own retention no
    longer keeps is not checked: there a read returns what the source keeps, as a stored one does.
    """
    if kept_from is not None:
        lo = max(lo, kept_from)
    for step, starts, got in coarse:
        low, high = np.maximum(got["first_ts"], lo), np.minimum(got["last_ts"], hi) + 1  # its data in the read
        floor = low if source_step == _TICK_SOURCE else low // source_step * source_step
        present = np.searchsorted(source_starts, high) > np.searchsorted(source_starts, floor)
        inside = (starts >= lo) & (starts + step - 1 <= hi)
        lacking = np.flatnonzero((inside | (got["count"] == UNKNOWN_COUNT)) & (low < high) & ~present)
        if len(lacking):
            at = pd.Timestamp(int(starts[lacking[0]]), unit="ms", tz="UTC")
            what = "its ticks" if source is None else f"its {source} candles"
            raise InvalidData(
                f"{symbol}: the stored candle of {at} ({step // 60_000} min) holds data that {what} lack "
                f"(bars imported at a coarser interval, or data trimmed), so {interval!r} "
                "cannot be built exactly there; read a stored interval or a multiple of the imported one"
            )


def _source_plan(layout: SeriesLayout, symbol: str, source: str | None, lo: int, hi: int,
                 fields: tuple[str, ...] = _CANDLE_FIELDS) -> Plan[tuple[npt.NDArray[np.int64], dict[str, npt.NDArray[Any]]]]:
    """Plan: (times, columns) of the source over ``[lo, hi]``: stored candles (their ``fields``), or ticks as
    candle columns."""
    if source is None:
        got = yield from layout.read_ticks_plan(symbol, lo, hi, ("ts", "id", "price", "volume"))
        return got["ts"], got
    starts, got = yield from layout.read_candles_plan(symbol, source, lo, hi, fields)
    return starts, got


def _buckets(bins: Bins, source: str | None, times: np.ndarray, got: Mapping[str, np.ndarray]
             ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(labels, candle columns) of the buckets the source rows fall in."""
    keys = bins.keys(times)
    keys, columns = tick_candles(keys, got) if source is None else rollup_columns(keys, got)
    return bins.labels(keys), columns


def _grid(bins: Bins, query: CandleQuery, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, effective starts) of the filled index: the query's bounds, or the data's where open."""
    first = query.start if query.start is not None else (int(labels[0]) if len(labels) else None)
    last = query.end if query.end is not None else (int(labels[-1]) if len(labels) else None)
    if first is None or last is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return bins.grid(first, last)


def filled(grid: np.ndarray, labels: np.ndarray, columns: Mapping[str, np.ndarray], fill: str,
           carried: float | None) -> dict[str, np.ndarray]:
    """Columns over every bucket of ``grid``: empty ones with NaN prices (``"nan"``) or the last close
    carried into open, high, low and close (``"ffill"``, starting from ``carried``), volume, notional
    and count 0.

    Examples
    --------
    >>> cols = {"open": np.array([1.0]), "high": np.array([2.0]), "low": np.array([1.0]),
    ...         "close": np.array([1.5]), "volume": np.array([3.0]), "count": np.array([2])}
    >>> out = filled(np.array([0, 60, 120]), np.array([60]), cols, "ffill", 0.5)
    >>> out["open"].tolist(), out["close"].tolist(), out["volume"].tolist()
    ([0.5, 1.0, 1.5], [0.5, 1.5, 1.5], [0.0, 3.0, 0.0])
    """
    at = np.searchsorted(grid, labels)
    has = np.zeros(len(grid), dtype=bool)
    has[at] = True
    out = {}
    for name, column in columns.items():
        full = np.full(len(grid), np.nan if name in _PRICES else 0.0)
        full[at] = column
        out[name] = full
    if fill == "ffill":
        last_close = np.full(len(grid) + 1, np.nan if carried is None else carried)
        last_close[1:][has] = out["close"][has]
        rows = np.maximum.accumulate(np.where(np.r_[True, has], np.arange(len(grid) + 1), 0))
        carry = last_close[rows[1:]]
        for name in _PRICES:
            out[name] = np.where(has, out[name], carry)
    return out


def _carried_plan(layout: SeriesLayout, symbol: str, source: str | None, before: int) -> Plan[float | None]:
    """Plan: the last price before ``before`` (ms): the last tick's, or the source's last close."""
    if source is None:
        record = yield from layout.price_at_plan(symbol, before - 1)
        return None if record is None else float(record["price"])
    return (yield from layout.last_close_plan(symbol, source, before))


def _whole_buckets_plan(layout: SeriesLayout, symbol: str, bins: Bins, lo: int, hi: int, interval: str
                        ) -> Plan[tuple[np.ndarray, dict[str, np.ndarray], str | None]]:
    """Plan: (labels, float columns, source) of every bucket in ``[lo, hi]``, from the best exact source."""
    source = choose_source(layout.intervals, bins, lo, hi)
    # Coarser candles first, then the source: a write landing between the two only adds to the
    # source, so it never looks as if the source lacked data.
    coarse, kept_from = yield from _coverage_reads(layout, symbol, source, lo, hi)
    # A stored interval read as itself is one candle a bucket: its first/last times and ids, there only to
    # merge candles, are not decoded.
    one_to_one = source is not None and isinstance(bins, FixedBins) and bins.width == layout.intervals[source] \
        and bins.aligned(bins.width, lo, hi)
    times, got = yield from _source_plan(layout, symbol, source, lo, hi, CANDLE_VALUES if one_to_one else _CANDLE_FIELDS)
    step = _TICK_SOURCE if source is None else layout.intervals[source]
    check_coverage(coarse, kept_from, times, step, lo, hi, symbol, interval, source)
    labels, columns = _buckets(bins, source, times, got)
    return labels, _as_float({name: columns[name] for name in CANDLE_VALUES}), source


def candles_plan(layout: SeriesLayout, symbol: str, query: CandleQuery, interval: str) -> Plan[Columns]:
    """Plan: :class:`Columns` of the candles of ``query`` for one symbol (see the module docstring)."""
    bounds = yield from _label_bounds(layout, symbol, query)
    window = None if bounds is None else query.bins.read_range(*bounds)
    if bounds is None or window is None:
        return empty_candles(query.fields)
    labels, columns, source = yield from _whole_buckets_plan(layout, symbol, query.bins, *window, interval)
    keep = (labels >= bounds[0]) & (labels <= bounds[1])
    labels, columns = labels[keep], {name: column[keep] for name, column in columns.items()}
    freq = None
    if query.fill is not None:
        grid, grid_starts = _grid(query.bins, query, labels)
        carried = None
        if query.fill == "ffill" and len(grid) and (len(labels) == 0 or labels[0] > grid[0]):
            carried = yield from _carried_plan(layout, symbol, source, int(grid_starts[0]))
        labels, columns, freq = grid, filled(grid, labels, columns, query.fill, carried), query.bins.freq
    if "vwap" in query.fields:
        columns = {**columns, "vwap": vwap(columns["notional"], columns["volume"])}
    return Columns(labels, {name: columns[name] for name in query.fields}, freq)


def _as_float(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float64 columns; an unknown tick count (imported candles) becomes NaN."""
    out = {}
    for name, column in columns.items():
        values = np.asarray(column, dtype=np.float64)
        if name == "count":
            values[np.asarray(column) < 0] = np.nan
        out[name] = values
    return out


# -- the reads of several symbols, shared by the sync readers and the async caches ------------------
def ticks_read_plan(layout: SeriesLayout, symbols: list[str], start: Any, end: Any, columns: Sequence[str] | None, *,
                    tz: Any = None, unit: TimeUnit | None = None, listed: dict[str, bool] | None = None
                    ) -> Plan[list[Columns]]:
    """Plan: one :class:`~redtick.reads.Columns` of ticks per symbol, ``start <= ts <= end``.

    With ``listed``, whether each symbol is stored rides the first round trip into it.
    """
    start_ms, end_ms = time_bound(start, "start", tz=tz, unit=unit), time_bound(end, "end", tz=tz, unit=unit)
    wanted = read_columns(columns, "ticks")
    fields = [TICK_FIELDS[c] for c in wanted]
    plans = [ticks_plan(layout, s, start_ms, end_ms, fields) for s in symbols]
    if listed is not None:
        plans = [listing(layout.keys, s, p, listed) for s, p in zip(symbols, plans, strict=True)]
    results = yield from gather(*plans)
    return [Columns(r.ts, {name: r.data[TICK_FIELDS[name]] for name in wanted}) for r in results]


def candles_read_plan(layout: SeriesLayout, symbols: list[str], interval: str, start: Any, end: Any,
                      columns: Sequence[str] | None, *, tz: Any = None, origin: Any = "epoch", offset: Any = None,
                      closed: str | None = None, label: str | None = None, fill: str | None = None,
                      unit: TimeUnit | None = None, listed: dict[str, bool] | None = None) -> Plan[list[Columns]]:
    """Plan: one :class:`~redtick.reads.Columns` of candles per symbol (the rules: :mod:`redtick.reads`).

    With ``listed``, whether each symbol is stored rides the first round trip into it.
    """
    if fill not in FILLS:
        raise InvalidData(f"fill={fill!r}: expected None, 'nan' or 'ffill'")
    bins = parse_interval(interval, tz=tz, origin=origin, offset=offset, closed=closed, label=label)
    start_ms, end_ms = time_bound(start, "start", tz=tz, unit=unit), time_bound(end, "end", tz=tz, unit=unit)
    query = CandleQuery(bins, start_ms, end_ms, tuple(read_columns(columns, "candles")), fill)
    plans = [layout.current_layout(s, candles_plan(layout, s, query, interval)) for s in symbols]
    if listed is not None:
        plans = [listing(layout.keys, s, p, listed) for s, p in zip(symbols, plans, strict=True)]
    return (yield from gather(*plans))
