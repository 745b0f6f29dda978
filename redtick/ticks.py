"""Turn what a feed or a researcher hands in (DataFrame or dicts) into validated, packed tick records.

A tick is identified by its time and its id: the ``trade_id`` (or ``seq``) column when there is
one, else its rank among the batch's ticks of the same millisecond in the order given. Rows that
fail validation are either refused as a whole batch (``errors="raise"``, nothing is written) or
dropped and counted by reason (``errors="skip"``, the rest is kept).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from redtick.codec import TICK_DTYPE
from redtick.errors import InvalidData

__all__ = ["NormalisedTicks", "normalise_ticks", "screen_rows", "times_ms", "to_epoch_ms"]

# Times outside [1970, 2200) are almost certainly a unit mistake (seconds for ms, ns for ms).
MIN_TS_MS = 0
MAX_TS_MS = 7_258_118_400_000
_SIDES = {"buy": 1, "b": 1, "bid": 1, "1": 1, "sell": -1, "s": -1, "ask": -1, "-1": -1, "": 0, "none": 0,
          "0": 0, "unknown": 0}
_TIME_COLUMNS = ("ts", "time", "timestamp", "open_time")
_ID_COLUMNS = ("trade_id", "seq", "id")


@dataclasses.dataclass
class NormalisedTicks:
    """Validated records sorted by (ts, id), with counts of what was dropped and why."""

    records: np.ndarray
    received: int
    rejected: dict[str, int]
    duplicates: int


def to_epoch_ms(value: Any, *, name: str = "time") -> int:
    """Epoch milliseconds of a str, datetime, ``pd.Timestamp`` or number of epoch ms (naive = UTC).

    Examples
    --------
    >>> to_epoch_ms("2024-01-01T00:00:01Z")
    1704067201000
    >>> to_epoch_ms(1704067201000)
    1704067201000
    """
    if isinstance(value, bool):
        raise InvalidData(f"{name}={value!r}: expected a str, datetime, pd.Timestamp or epoch ms")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            raise InvalidData(f"{name}={value!r}: expected a finite number of epoch ms")
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InvalidData(f"{name}={value!r}: expected a str, datetime, pd.Timestamp or epoch ms") from None
    if stamp is pd.NaT:
        raise InvalidData(f"{name}={value!r} is not a time")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    # In the stamp's own unit: ``.value`` (nanoseconds) overflows past 2262.
    return int(stamp.asm8.astype("datetime64[ms]").astype(np.int64))


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


def times_ms(frame: pd.DataFrame) -> np.ndarray:
    """Epoch ms as float64 (NaN where unparseable), from a time column or a DatetimeIndex."""
    column = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
    if column is None:
        if isinstance(frame.index, pd.DatetimeIndex):
            values = frame.index
        else:
            raise InvalidData("ticks need a time: a 'ts' column (datetimes or epoch ms) or a DatetimeIndex")
    else:
        values = frame[column]
    if not (isinstance(values, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(values)):
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == values.notna().sum():  # every present value is a number: epoch ms
            return np.floor(np.asarray(numeric, dtype=np.float64))
        values = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    stamps = pd.DatetimeIndex(values)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    # Integer division: nanoseconds since 1970 exceed 2**53, so dividing as floats would round. The
    # index keeps its own unit: a time past 2262 has no nanosecond form, but its range check says why.
    ticks_per_ms = {"s": 1, "ms": 1, "us": 1_000, "ns": 1_000_000}[stamps.unit]
    raw = stamps.asi8 * 1_000 if stamps.unit == "s" else stamps.asi8 // ticks_per_ms
    ms = raw.astype(np.float64)
    ms[stamps.isna()] = np.nan
    return ms


def _numbers(frame: pd.DataFrame, column: str, default: float | None) -> np.ndarray:
    if column not in frame.columns:
        if default is None:
            raise InvalidData(f"ticks need a '{column}' column")
        return np.full(len(frame), default, dtype=np.float64)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


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
    column = next((c for c in _ID_COLUMNS if c in frame.columns), None)
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


def normalise_ticks(ticks: Any, *, errors: Literal["raise", "skip"] = "raise") -> NormalisedTicks:
    """Validate ``ticks`` and pack them as records sorted by (ts, id), duplicates dropped.

    Parameters
    ----------
    ticks : DataFrame or iterable of dict
        Time as a ``ts`` (or ``time``/``timestamp``) column of datetimes, strings or epoch ms, or a
        DatetimeIndex; ``price``; ``volume`` (0 if absent); optional ``trade_id`` (or ``seq``) and
        ``side`` (buy/sell).
    errors : {"raise", "skip"}
        ``"raise"``: any bad row raises InvalidData naming the reasons, and nothing is kept.
        ``"skip"``: bad rows are dropped and counted in ``rejected`` by reason.

    Examples
    --------
    >>> out = normalise_ticks([{"ts": 1_000, "price": 10.0, "volume": 1, "trade_id": 7},
    ...                        {"ts": 1_000, "price": 10.0, "volume": 1, "trade_id": 7}])
    >>> len(out.records), out.duplicates
    (1, 1)
    """
    if errors not in ("raise", "skip"):
        raise InvalidData(f"errors={errors!r}: expected 'raise' or 'skip'")
    frame = _frame(ticks)
    ts = times_ms(frame)
    price = _numbers(frame, "price", None)
    volume = _numbers(frame, "volume", 0.0)
    side, bad_side = _sides(frame)
    ids, bad_id = _ids(frame)

    reasons = {
        "unparseable time": np.isnan(ts),
        "time outside 1970-2200 (epoch ms expected)": ~np.isnan(ts) & ((ts < MIN_TS_MS) | (ts >= MAX_TS_MS)),
        "price is missing, NaN, infinite or not positive": ~(np.isfinite(price) & (price > 0)),
        "volume is NaN, infinite or negative": ~(np.isfinite(volume) & (volume >= 0)),
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
