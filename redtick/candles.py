"""Candle arithmetic on packed records: build from ticks, merge partial candles, roll up intervals.

A stored candle is a mergeable summary ``(first_ts, first_id, open, last_ts, last_id, close, high,
low, volume, notional, count)``. Merging is associative and commutative, so any split of the ticks into
batches, in any arrival order, gives the candle of the whole: open is the price of the tick with
the smallest ``(time, id)``, close that of the largest. ``count == -1`` marks an imported candle
whose tick count is unknown; ``count == 0`` marks an empty slot.

``notional`` is the sum of price x volume, added up exactly as ``volume`` is, so :func:`vwap`
(``notional / volume``) is exact for any bucket built from ticks or merged from whole candles. An
imported bar that did not give its VWAP has notional NaN, and NaN stays NaN through every merge and
roll-up: a bucket with any part of unknown notional has an unknown VWAP, never a partial one.

Bucketing is the caller's: :func:`tick_candles` and :func:`rollup_columns` summarise runs of equal
bucket keys, so the same arithmetic serves epoch-aligned stored intervals and any bucket grid a
read asks for (:mod:`redtick.intervals`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from redtick.codec import CANDLE_DTYPE

__all__ = ["candles_from_ticks", "merge_candles", "rollup_candles", "rollup_columns", "tick_candles", "vwap"]

UNKNOWN_COUNT = -1
_FIRST = ("first_ts", "first_id", "open")
_LAST = ("last_ts", "last_id", "close")


def _fields(candles: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(name, column) of a dict of columns or a packed record array."""
    names = candles.dtype.names if isinstance(candles, np.ndarray) else list(candles)
    return [(name, np.asarray(candles[name])) for name in names]


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values starts in sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def tick_candles(keys: np.ndarray, ticks: Mapping[str, np.ndarray] | np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bucket keys and candle columns of ``ticks`` sorted by (ts, id), one bucket per run of equal ``keys``.

    ``ticks`` maps ``ts``, ``id``, ``price`` and ``volume`` to arrays; ``keys`` gives each tick's bucket
    (nondecreasing). Open and close are the first and last tick of a run, so of the smallest and
    largest (time, id): pandas' ``first``/``last`` over the same ticks in that order.

    Examples
    --------
    >>> ticks = {"ts": np.array([0, 30_000, 60_000]), "id": np.array([1, 2, 3]),
    ...          "price": np.array([10.0, 12.0, 11.0]), "volume": np.array([1.0, 2.0, 1.0])}
    >>> keys, candles = tick_candles(ticks["ts"] // 60_000 * 60_000, ticks)
    >>> keys.tolist(), candles["close"].tolist(), candles["count"].tolist(), candles["notional"].tolist()
    ([0, 60000], [12.0, 11.0], [2, 1], [34.0, 11.0])
    """
    first = _group_starts(keys)
    last = np.r_[first[1:], len(keys)] - 1
    price = np.asarray(ticks["price"])
    if len(first) == 0:
        empty = {name: np.zeros(0, CANDLE_DTYPE[name]) for name in CANDLE_DTYPE.fields or ()}
        return np.asarray(keys, dtype=np.int64)[:0], empty
    out = {
        "first_ts": ticks["ts"][first], "first_id": ticks["id"][first], "open": price[first],
        "last_ts": ticks["ts"][last], "last_id": ticks["id"][last], "close": price[last],
        "high": np.maximum.reduceat(price, first), "low": np.minimum.reduceat(price, first),
        "volume": np.add.reduceat(ticks["volume"], first), "count": (last - first + 1).astype(np.int64),
        "notional": np.add.reduceat(price * ticks["volume"], first),
    }
    return keys[first], out


def _packed(columns: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
    out = np.zeros(rows, dtype=CANDLE_DTYPE)
    for name, column in columns.items():
        out[name] = column
    return out


def candles_from_ticks(ticks: np.ndarray, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket starts (ms) and one packed candle per non-empty epoch-aligned bucket of ``ticks`` sorted by (ts, id).

    Examples
    --------
    >>> from redtick.codec import TICK_DTYPE
    >>> ticks = np.array([(0, 1, 10.0, 1.0, 0), (30_000, 2, 12.0, 2.0, 0), (60_000, 3, 11.0, 1.0, 0)],
    ...                  dtype=TICK_DTYPE)
    >>> starts, candles = candles_from_ticks(ticks, 60_000)
    >>> starts.tolist(), candles["close"].tolist(), candles["count"].tolist()
    ([0, 60000], [12.0, 11.0], [2, 1])
    """
    starts, columns = tick_candles(ticks["ts"] // interval_ms * interval_ms, ticks)
    return starts, _packed(columns, len(starts))


def _before(ts_a: np.ndarray, id_a: np.ndarray, ts_b: np.ndarray, id_b: np.ndarray) -> npt.NDArray[np.bool_]:
    before: npt.NDArray[np.bool_] = (ts_a < ts_b) | ((ts_a == ts_b) & (id_a < id_b))
    return before


def merge_candles(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Element-wise merge of two aligned candle arrays (same buckets); empty slots (count 0) yield.

    Examples
    --------
    >>> a = np.zeros(1, CANDLE_DTYPE); b = np.zeros(1, CANDLE_DTYPE)
    >>> a[0] = (5, 0, 9, 0, 1, 10.0, 10.0, 10.0, 10.0, 1.0, 10.0)
    >>> b[0] = (1, 0, 2, 0, 1, 7.0, 7.0, 7.0, 7.0, 2.0, 14.0)
    >>> m = merge_candles(a, b)
    >>> float(m["open"][0]), float(m["close"][0]), int(m["count"][0]), float(m["volume"][0]), float(m["notional"][0])
    (7.0, 10.0, 2, 3.0, 24.0)
    """
    old_empty, new_empty = old["count"] == 0, new["count"] == 0
    out = old.copy()
    take_first = old_empty | (~new_empty & _before(new["first_ts"], new["first_id"], old["first_ts"], old["first_id"]))
    take_last = old_empty | (~new_empty & _before(old["last_ts"], old["last_id"], new["last_ts"], new["last_id"]))
    for field in ("first_ts", "first_id", "open"):
        out[field] = np.where(take_first, new[field], old[field])
    for field in ("last_ts", "last_id", "close"):
        out[field] = np.where(take_last, new[field], old[field])
    out["high"] = np.where(old_empty, new["high"], np.where(new_empty, old["high"], np.maximum(old["high"], new["high"])))
    out["low"] = np.where(old_empty, new["low"], np.where(new_empty, old["low"], np.minimum(old["low"], new["low"])))
    out["volume"] = old["volume"] + new["volume"]
    out["notional"] = old["notional"] + new["notional"]  # an empty slot's is 0; an unknown one (NaN) stays unknown
    unknown = (old["count"] == UNKNOWN_COUNT) | (new["count"] == UNKNOWN_COUNT)
    out["count"] = np.where(unknown, UNKNOWN_COUNT, old["count"] + new["count"])
    return out


def rollup_columns(keys: np.ndarray, candles: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bucket keys and the merge of each run of equal ``keys`` over candles sorted by start.

    Each field of ``candles`` present is merged as it must be: ``open`` (and ``first_*``) from the
    run's first candle, ``close`` (and ``last_*``) from its last, ``high`` the maximum, ``low`` the
    minimum, ``count`` the sum (unknown, -1, if any candle's is), every other field (``volume``,
    ``notional``) the sum, NaN if any part's is. Candles sorted by start and not overlapping are in
    time order, so this is exact.

    Examples
    --------
    >>> candles = {"open": np.array([1.0, 2.0, 3.0]), "close": np.array([1.5, 2.5, 3.5]),
    ...            "volume": np.array([1.0, 1.0, 4.0]), "count": np.array([1, 2, -1])}
    >>> keys, rolled = rollup_columns(np.array([0, 0, 120_000]), candles)
    >>> keys.tolist(), rolled["open"].tolist(), rolled["close"].tolist(), rolled["count"].tolist()
    ([0, 120000], [1.0, 3.0], [2.5, 3.5], [3, -1])
    """
    first = _group_starts(keys)
    if len(first) == 0:
        return np.asarray(keys, dtype=np.int64)[:0], {name: np.asarray(c)[:0] for name, c in _fields(candles)}
    if len(first) == len(keys):  # one candle a bucket (a stored interval read as itself): each merge is the candle
        return keys, dict(_fields(candles))
    last = np.r_[first[1:], len(keys)] - 1
    out = {}
    for name, column in _fields(candles):
        if name in _FIRST:
            out[name] = column[first]
        elif name in _LAST:
            out[name] = column[last]
        elif name == "high":
            out[name] = np.maximum.reduceat(column, first)
        elif name == "low":
            out[name] = np.minimum.reduceat(column, first)
        elif name == "count":
            unknown = np.minimum.reduceat(column, first) == UNKNOWN_COUNT
            out[name] = np.where(unknown, UNKNOWN_COUNT, np.add.reduceat(column, first))
        else:
            out[name] = np.add.reduceat(column, first)
    return keys[first], out


def rollup_candles(starts: np.ndarray, candles: Mapping[str, np.ndarray], interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed candles of a coarser interval from finer ones sorted by start (first and last taken by time).

    ``interval_ms`` must be a multiple of the finer interval; buckets align to the epoch.
    """
    keys, columns = rollup_columns(np.asarray(starts) // interval_ms * interval_ms, candles)
    return keys, _packed(columns, len(keys))


def vwap(notional: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Volume-weighted average price ``notional / volume``: NaN where the volume is 0 or the notional unknown.

    Over the same ticks this is pandas' ``(price * volume).resample(rule).sum() / volume.resample(rule).sum()``
    up to the order of the additions: a stored candle adds per write batch (numpy, pairwise in blocks),
    then merges batches and finer candles; pandas adds in time order with Kahan compensation. Floating
    addition is not associative, so the two may differ in the last bits: with prices of one sign by
    at most about ``n * 1.1e-16`` relative for a bucket of ``n`` ticks (tests use ``rtol=1e-12``), and
    not at all when every product and partial sum is exact in float64 (quarter-point prices, whole
    lots). Where prices change sign within a bucket the notional can cancel and only an absolute
    bound holds: about ``n * 1.1e-16 * sum(|price| * volume) / volume``.

    Examples
    --------
    >>> vwap(np.array([34.0, 0.0, np.nan]), np.array([3.0, 0.0, 2.0])).round(4).tolist()
    [11.3333, nan, nan]
    """
    notional = np.asarray(notional, dtype=np.float64)
    volume = np.asarray(volume, dtype=np.float64)
    traded = volume > 0
    unknown = np.full(np.broadcast(notional, volume).shape, np.nan)
    out: npt.NDArray[np.float64] = np.divide(notional, volume, out=unknown, where=traded)
    return out
