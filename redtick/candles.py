"""Candle arithmetic on packed records: build from ticks, merge partial candles, roll up intervals.

A stored candle is a mergeable summary ``(first_ts, first_id, open, last_ts, last_id, close, high,
low, volume, count)``. Merging is associative and commutative, so any split of the ticks into
batches, in any arrival order, gives the candle of the whole: open is the price of the tick with
the smallest ``(time, id)``, close that of the largest. ``count == -1`` marks an imported candle
whose tick count is unknown; ``count == 0`` marks an empty slot.
"""

from __future__ import annotations

import numpy as np

from redtick.codec import CANDLE_DTYPE

__all__ = ["candles_from_ticks", "merge_candles", "rollup_candles"]

UNKNOWN_COUNT = -1


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values starts in sorted ``keys``."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def candles_from_ticks(ticks: np.ndarray, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket starts (ms) and one candle per non-empty bucket of ``ticks`` sorted by (ts, id).

    Examples
    --------
    >>> from redtick.codec import TICK_DTYPE
    >>> ticks = np.array([(0, 1, 10.0, 1.0, 0), (30_000, 2, 12.0, 2.0, 0), (60_000, 3, 11.0, 1.0, 0)],
    ...                  dtype=TICK_DTYPE)
    >>> starts, candles = candles_from_ticks(ticks, 60_000)
    >>> starts.tolist(), candles["close"].tolist(), candles["count"].tolist()
    ([0, 60000], [12.0, 11.0], [2, 1])
    """
    buckets = ticks["ts"] // interval_ms * interval_ms
    first = _group_starts(buckets)
    last = np.r_[first[1:], len(ticks)] - 1
    out = np.zeros(len(first), dtype=CANDLE_DTYPE)
    if len(first) == 0:
        return buckets[:0], out
    price = ticks["price"]
    out["first_ts"], out["first_id"], out["open"] = ticks["ts"][first], ticks["id"][first], price[first]
    out["last_ts"], out["last_id"], out["close"] = ticks["ts"][last], ticks["id"][last], price[last]
    out["high"] = np.maximum.reduceat(price, first)
    out["low"] = np.minimum.reduceat(price, first)
    out["volume"] = np.add.reduceat(ticks["volume"], first)
    out["count"] = last - first + 1
    return buckets[first], out


def _before(ts_a, id_a, ts_b, id_b) -> np.ndarray:
    return (ts_a < ts_b) | ((ts_a == ts_b) & (id_a < id_b))


def merge_candles(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Element-wise merge of two aligned candle arrays (same buckets); empty slots (count 0) yield.

    Examples
    --------
    >>> a = np.zeros(1, CANDLE_DTYPE); b = np.zeros(1, CANDLE_DTYPE)
    >>> a[0] = (5, 0, 9, 0, 1, 10.0, 10.0, 10.0, 10.0, 1.0)
    >>> b[0] = (1, 0, 2, 0, 1, 7.0, 7.0, 7.0, 7.0, 2.0)
    >>> m = merge_candles(a, b)
    >>> float(m["open"][0]), float(m["close"][0]), int(m["count"][0]), float(m["volume"][0])
    (7.0, 10.0, 2, 3.0)
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
    unknown = (old["count"] == UNKNOWN_COUNT) | (new["count"] == UNKNOWN_COUNT)
    out["count"] = np.where(unknown, UNKNOWN_COUNT, old["count"] + new["count"])
    return out


def rollup_candles(starts: np.ndarray, candles: np.ndarray, interval_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Candles of a coarser interval from finer ones sorted by start (first and last taken by time).

    ``interval_ms`` must be a multiple of the finer interval; buckets align to the epoch.
    """
    if len(starts) == 0:
        return starts, candles
    buckets = starts // interval_ms * interval_ms
    first = _group_starts(buckets)
    last = np.r_[first[1:], len(starts)] - 1
    out = np.zeros(len(first), dtype=CANDLE_DTYPE)
    for field in ("first_ts", "first_id", "open"):
        out[field] = candles[field][first]
    for field in ("last_ts", "last_id", "close"):
        out[field] = candles[field][last]
    out["high"] = np.maximum.reduceat(candles["high"], first)
    out["low"] = np.minimum.reduceat(candles["low"], first)
    out["volume"] = np.add.reduceat(candles["volume"], first)
    counts = np.add.reduceat(candles["count"], first)
    unknown = np.minimum.reduceat(candles["count"], first) == UNKNOWN_COUNT
    out["count"] = np.where(unknown, UNKNOWN_COUNT, counts)
    return buckets[first], out
