"""Candles from elsewhere: bars of an exchange or a file checked and packed into the stored candle layout."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from redtick.codec import CANDLE_DTYPE
from redtick.errors import InvalidData
from redtick.keys import validate_interval
from redtick.read_options import CANDLE_COLUMNS, CANDLE_OPTIONAL
from redtick.ticks import BAD_PRICE, BAD_VOLUME, TimeUnit, rename_columns, require_columns, screen_rows, screen_times

__all__ = ["BAD_NOTIONAL", "CANDLE_INPUT_FIELDS", "candles_from_frame"]

CANDLE_INPUT_FIELDS = ("ts", *CANDLE_COLUMNS, *CANDLE_OPTIONAL)  # what ``columns=`` may map to
BAD_NOTIONAL = "vwap or notional is not a number, infinite, or nonzero where the volume is 0"


def candles_from_frame(
    frame: pd.DataFrame | Iterable[dict[str, Any]], interval: str, *, errors: Literal["raise", "skip"] = "raise",
    columns: Mapping[Any, str] | None = None, unit: TimeUnit | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Bucket starts, packed candles and rejections from bars with a time, open/high/low/close/volume
    and optionally count and one of vwap or notional.

    The time is the bucket start: a DatetimeIndex or a ``ts``/``timestamp``/``time`` column.
    A row is bad when its time is missing or off the interval's grid, a price is not finite, high
    or low do not bound open and close, the volume is negative, the vwap or notional is infinite or
    not a number, or an earlier row has the same time; ``errors`` says whether that raises or drops
    the row. Every one of ``open high low close volume`` is required (``columns=`` maps other
    names); ``unit`` works as in :func:`write_ticks`.

    The notional stored is the ``notional`` column, or ``vwap x volume``; NaN (unknown) where the
    bars give neither, so every VWAP read over such a bar is NaN. A bar of zero volume has notional
    0 whatever it gives (a nonzero notional there is a bad row). The vendor's VWAP is not checked
    against high and low: feeds compute it over trades their OHLC leave out.

    Examples
    --------
    >>> bars = pd.DataFrame({"ts": [0, 60_000], "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5,
    ...                      "volume": [4.0, 2.0], "vwap": [10.25, float("nan")]})
    >>> starts, packed, rejected = candles_from_frame(bars, "1m")
    >>> packed["notional"].tolist(), rejected
    ([41.0, nan], {})
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame.from_records(list(frame))
    iv = validate_interval(interval)
    frame = rename_columns(frame, columns, CANDLE_INPUT_FIELDS, what="candles")
    require_columns(frame, ("ts", *CANDLE_COLUMNS), what="candles")  # no default is invented for a missing one
    ms, time_reasons = screen_times(frame, unit=unit)
    out = np.zeros(len(frame), dtype=CANDLE_DTYPE)
    for name in CANDLE_COLUMNS:
        out[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    prices = np.stack([out[n] for n in ("open", "high", "low", "close")])
    known = np.isfinite(ms)  # the string "inf" parses as a number
    starts = np.where(known, ms, 0).astype(np.int64)
    reasons = {
        **time_reasons,
        BAD_PRICE: ~np.all(np.isfinite(prices), axis=0),
        "high or low does not bound open and close": (out["high"] < np.maximum(out["open"], out["close"]))
        | (out["low"] > np.minimum(out["open"], out["close"])),
        BAD_VOLUME: ~(np.isfinite(out["volume"]) & (out["volume"] >= 0)),
        f"time is not on the {interval} grid from the epoch": starts % iv != 0,
        "an earlier candle has the same time": pd.Series(starts).duplicated().to_numpy() & known,
    }
    notional, reasons[BAD_NOTIONAL] = _imported_notional(frame, out["volume"])
    bad, rejected = screen_rows(reasons, len(frame), errors, "candles")
    out["notional"] = notional
    out["count"] = pd.to_numeric(frame["count"], errors="coerce").fillna(-1).to_numpy(np.int64) \
        if "count" in frame.columns else -1
    # An imported candle spans its whole bucket: its open and close stand unless ticks come earlier or later.
    out["first_ts"], out["first_id"] = starts, np.iinfo(np.int64).min
    out["last_ts"], out["last_id"] = starts + iv - 1, np.iinfo(np.int64).max
    starts, out = starts[~bad], out[~bad]
    order = np.argsort(starts, kind="stable")
    return starts[order], out[order], rejected


def _imported_notional(frame: pd.DataFrame, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(notional of each bar, rows whose vwap or notional is bad): the ``notional`` column, or ``vwap``
    times the volume, NaN where neither is given; 0 where the volume is 0."""
    given = [name for name in ("notional", "vwap") if name in frame.columns]
    if len(given) > 1:
        raise InvalidData("the bars have both a 'vwap' and a 'notional' column; give one (notional = vwap x volume) "
                          "or map the other away with columns=")
    if not given:
        return np.where(volume == 0, 0.0, np.nan), np.zeros(len(frame), dtype=bool)
    raw = frame[given[0]]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    unreadable = np.isnan(values) & raw.notna().to_numpy()  # text that is not a number, not an unknown value
    notional = values if given[0] == "notional" else values * volume
    bad = unreadable | np.isinf(values) | np.isinf(notional) | ((volume == 0) & (notional != 0) & ~np.isnan(notional))
    return np.where(volume == 0, 0.0, notional), bad
