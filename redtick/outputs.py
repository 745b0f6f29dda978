"""A read's columns in the form its caller asked for: a pandas DataFrame, a pyarrow Table or a Polars DataFrame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from redtick.candles import vwap
from redtick.extras import require
from redtick.read_options import TICK_FIELDS, read_columns
from redtick.reads import Columns

__all__ = ["UTC_MS", "arrow_table", "candles_frame", "columns_frame", "finish", "keyed_frame", "ticks_frame",
           "time_index", "utc_index"]

UTC_MS = pd.DatetimeTZDtype("ms", "UTC")
_DTYPES = {"trade_id": np.int64, "side": np.int8}


def utc_index(ms: np.ndarray, name: str = "ts") -> pd.DatetimeIndex:
    """A tz-aware UTC DatetimeIndex over epoch ms, without converting element by element."""
    return pd.DatetimeIndex(np.ascontiguousarray(ms, dtype=np.int64).view("datetime64[ms]"), dtype=UTC_MS, name=name)


def time_index(ms: np.ndarray, tz: Any = None, freq: Any = None) -> pd.DatetimeIndex:
    """:func:`utc_index` shown in ``tz`` (UTC when None), with ``freq`` when the index is regular."""
    index = utc_index(ms)
    if tz is not None:
        index = index.tz_convert(tz)
    return index if freq is None else pd.DatetimeIndex(index, freq=freq)


def ticks_frame(ticks: Mapping[str, np.ndarray], columns: Sequence[str] | None = None, tz: Any = None) -> pd.DataFrame:
    """A DataFrame of tick columns: ``ts`` index (UTC, or ``tz``), float64 ``price`` and ``volume``.

    Optional columns: ``trade_id`` (int64) and ``side`` (int8: 1 buy, -1 sell, 0 unknown).
    ``ticks`` maps field names (``ts``, ``id``, ``price``, ``volume``, ``side``) to arrays, as
    a packed record array does.
    """
    wanted = read_columns(columns, "ticks")
    data = {name: np.ascontiguousarray(ticks[TICK_FIELDS[name]]) for name in wanted}
    return pd.DataFrame(data, index=time_index(ticks["ts"], tz), columns=wanted, copy=False)


def candles_frame(starts: np.ndarray, candles: Mapping[str, np.ndarray], columns: Sequence[str] | None = None,
                  tz: Any = None, freq: Any = None) -> pd.DataFrame:
    """A DataFrame of candles: ``ts`` index (bucket label, UTC or ``tz``), float64 OHLCV (and ``count``,
    ``vwap``, ``notional``).

    ``candles`` maps candle fields to arrays, as a packed record array does; ``vwap`` is computed
    from ``notional`` and ``volume`` (NaN where the volume is 0 or the notional unknown).

    Examples
    --------
    >>> from redtick.candles import candles_from_ticks
    >>> from redtick.codec import TICK_DTYPE
    >>> ticks = np.array([(0, 1, 10.0, 1.0, 0), (30_000, 2, 12.0, 3.0, 0)], dtype=TICK_DTYPE)
    >>> candles_frame(*candles_from_ticks(ticks, 60_000), columns=["close", "volume", "vwap", "count"])
    ... # doctest: +NORMALIZE_WHITESPACE
                               close  volume  vwap  count
    ts
    1970-01-01 00:00:00+00:00   12.0     4.0  11.5    2.0
    """
    wanted = read_columns(columns, "candles")
    data = {}
    for name in wanted:
        if name == "vwap":
            data[name] = vwap(candles["notional"], candles["volume"])
            continue
        column = np.ascontiguousarray(candles[name], dtype=np.float64)
        if name == "count":
            column[np.asarray(candles["count"]) < 0] = np.nan  # imported candles whose tick count is unknown
        data[name] = column
    return pd.DataFrame(data, index=time_index(starts, tz, freq), columns=wanted, copy=False)


def keyed_frame(frames: list[pd.DataFrame], symbols: list[str], empty: pd.DataFrame | None = None) -> pd.DataFrame:
    """One frame keyed by (symbol, ts) from per-symbol frames; ``empty``'s columns when there are none."""
    if not frames and empty is not None:
        return pd.concat([empty], keys=[""], names=["symbol", "ts"]).iloc[:0]
    return pd.concat(frames, keys=symbols, names=["symbol", "ts"])


def _no_rows(wanted: Sequence[str]) -> Columns:
    return Columns(np.zeros(0, np.int64), {name: np.zeros(0, _DTYPES.get(name, np.float64)) for name in wanted})


def columns_frame(columns: Columns, wanted: Sequence[str], tz: Any = None) -> pd.DataFrame:
    """A DataFrame of one symbol's read: ``ts`` index (UTC, or ``tz``; ``freq`` set when regular)."""
    data = {name: np.ascontiguousarray(columns.data[name]) for name in wanted}
    return pd.DataFrame(data, index=time_index(columns.ts, tz, columns.freq), columns=list(wanted), copy=False)


def _arrow_tz(tz: Any) -> str:
    return "UTC" if tz is None else (tz if isinstance(tz, str) else str(pd.DatetimeTZDtype("ms", tz).tz))


def arrow_table(results: list[Columns], symbols: list[str] | None, wanted: Sequence[str], tz: Any = None) -> pa.Table:
    """A ``pyarrow.Table``: ``symbol`` (dictionary-encoded, when ``symbols`` is given), ``ts`` as
    ``timestamp[ms, tz]`` (UTC unless ``tz``), then ``wanted``. One symbol's numpy buffers are
    wrapped, not copied."""
    one = len(results) == 1
    ts = results[0].ts if one else np.concatenate([r.ts for r in results])
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    arrays = [pa.Array.from_buffers(pa.timestamp("ms", tz=_arrow_tz(tz)), len(ts), [None, pa.py_buffer(ts)])]
    names = ["ts"]
    if symbols is not None:
        codes = np.repeat(np.arange(len(results), dtype=np.int32), [len(r) for r in results])
        arrays.insert(0, pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(symbols, pa.string())))
        names.insert(0, "symbol")
    for name in wanted:
        column = results[0].data[name] if one else np.concatenate([r.data[name] for r in results])
        arrays.append(pa.array(np.ascontiguousarray(column)))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _polars(table: pa.Table) -> Any:
    return require("polars", "output='polars'").from_arrow(table)  # optional: only output="polars" needs it


def finish(results: list[Columns], symbols: list[str], many: bool, wanted: list[str], *,
           tz: Any = None, output: str = "pandas") -> Any:
    """The read as asked: a DataFrame (keyed by (symbol, ts) for several symbols), a ``pyarrow.Table``
    (with a ``symbol`` column for several) or a Polars DataFrame."""
    if output == "pandas":
        frames = [columns_frame(r, wanted, tz) for r in results]
        empty = columns_frame(_no_rows(wanted), wanted, tz)
        return keyed_frame(frames, symbols, empty) if many else (frames[0] if frames else empty)
    if not results:
        results, symbols = [_no_rows(wanted)], [""]
    table = arrow_table(results, symbols if many else None, wanted, tz)
    return table if output == "arrow" else _polars(table)
