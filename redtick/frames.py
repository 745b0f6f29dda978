"""Research-facing reads and writes: ticks and candles to and from pandas DataFrames.

``write_ticks``, ``load_ticks`` and ``load_ohlcv`` are plain functions over a connection (the
process default unless ``conn=`` is given); the async ``PriceCache`` runs the same plans.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from redtick import scripts
from redtick.caches.alerts import ALERT_CHECK_SCRIPT, alert_check_args, decode_fired
from redtick.codec import CANDLE_DTYPE
from redtick.config import parse_duration
from redtick.connection import Connection, connect
from redtick.errors import InvalidData
from redtick.keys import validate_interval, validate_symbol
from redtick.series import SeriesLayout, WriteResult
from redtick.steps import gather, run
from redtick.ticks import normalise_ticks, screen_rows, times_ms, to_epoch_ms

__all__ = [
    "CANDLE_COLUMNS",
    "TICK_COLUMNS",
    "candles_frame",
    "load_ohlcv",
    "load_ticks",
    "ticks_frame",
    "write_candles",
    "write_ticks",
]

log = logging.getLogger("redtick")

TICK_COLUMNS = ("price", "volume")
TICK_OPTIONAL = ("trade_id", "side")
TICK_FIELDS = {"price": "price", "volume": "volume", "trade_id": "id", "side": "side"}
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
CANDLE_OPTIONAL = ("count",)
UTC_MS = pd.DatetimeTZDtype("ms", "UTC")
DEFAULT_BATCH = 100_000


def layout_of(conn: Connection) -> SeriesLayout:
    """The series layout of a connection (built once per connection)."""
    layout = getattr(conn, "_series_layout", None)
    if layout is None:
        layout = conn._series_layout = SeriesLayout(conn.keys, conn.settings)
    return layout


def utc_index(ms: np.ndarray, name: str = "ts") -> pd.DatetimeIndex:
    """A tz-aware UTC DatetimeIndex over epoch ms, without converting element by element."""
    return pd.DatetimeIndex(np.ascontiguousarray(ms, dtype=np.int64).view("datetime64[ms]"), dtype=UTC_MS, name=name)


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
    return list(columns)


def ticks_frame(ticks: Mapping[str, np.ndarray], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame of tick columns: UTC ``ts`` index, float64 ``price`` and ``volume``.

    Optional columns: ``trade_id`` (int64) and ``side`` (int8: 1 buy, -1 sell, 0 unknown).
    ``ticks`` maps field names (``ts``, ``id``, ``price``, ``volume``, ``side``) to arrays, as
    a packed record array does.
    """
    wanted = _columns(columns, TICK_COLUMNS, TICK_OPTIONAL)
    data = {name: np.ascontiguousarray(ticks[TICK_FIELDS[name]]) for name in wanted}
    return pd.DataFrame(data, index=utc_index(ticks["ts"]), columns=wanted, copy=False)


def candles_frame(starts: np.ndarray, candles: Mapping[str, np.ndarray], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame of packed candles: UTC ``ts`` index (bucket start), float64 OHLCV (and ``count``)."""
    wanted = _columns(columns, CANDLE_COLUMNS, CANDLE_OPTIONAL)
    data = {}
    for name in wanted:
        column = np.ascontiguousarray(candles[name], dtype=np.float64)
        if name == "count":
            column[candles["count"] < 0] = np.nan  # imported candles whose tick count is unknown
        data[name] = column
    return pd.DataFrame(data, index=utc_index(starts), columns=wanted)


def _time_bound(value: Any, name: str) -> int | None:
    return None if value is None else to_epoch_ms(value, name=name)


def parse_symbols(symbol_or_symbols: str | Iterable[str]) -> tuple[list[str], bool]:
    if isinstance(symbol_or_symbols, str):
        return [validate_symbol(symbol_or_symbols)], False
    if not isinstance(symbol_or_symbols, Iterable) or isinstance(symbol_or_symbols, bytes | Mapping):
        validate_symbol(symbol_or_symbols)  # raises InvalidKey naming the type
    symbols = [validate_symbol(s) for s in symbol_or_symbols]
    if not symbols:
        raise InvalidData("no symbols given")
    return symbols, True


def keyed_frame(frames: list[pd.DataFrame], symbols: list[str]) -> pd.DataFrame:
    """One frame keyed by (symbol, ts) from per-symbol frames."""
    return pd.concat(frames, keys=symbols, names=["symbol", "ts"])


# -- sync plans shared with the async caches ---------------------------------------------------------
def ticks_read_plan(layout: SeriesLayout, symbols: list[str], start, end, columns):
    start_ms, end_ms = _time_bound(start, "start"), _time_bound(end, "end")
    fields = ["ts", *(TICK_FIELDS[c] for c in _columns(columns, TICK_COLUMNS, TICK_OPTIONAL))]
    results = yield from gather(*(layout.read_ticks_plan(s, start_ms, end_ms, fields) for s in symbols))
    return [ticks_frame(r, columns) for r in results]


def candles_read_plan(layout: SeriesLayout, symbols: list[str], interval: str, start, end, columns):
    start_ms, end_ms = _time_bound(start, "start"), _time_bound(end, "end")
    fields = list(dict.fromkeys([*_columns(columns, CANDLE_COLUMNS, CANDLE_OPTIONAL), "count"]))
    results = yield from gather(*(layout.read_candles_plan(s, interval, start_ms, end_ms, fields) for s in symbols))
    return [candles_frame(starts, candles, columns) for starts, candles in results]


def write_plans(layout: SeriesLayout, symbol: str, ticks: Any, errors: str, batch_size: int):
    """The write plans of one call, one per batch of at most ``batch_size`` ticks, and the totals."""
    symbol = validate_symbol(symbol)
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidData(f"batch_size={batch_size!r}: expected a positive whole number")
    normalised = normalise_ticks(ticks, errors=errors)
    total = WriteResult(symbol, received=normalised.received, rejected=dict(normalised.rejected),
                        duplicates=normalised.duplicates)
    records = normalised.records
    batches = []
    for lo in range(0, len(records), batch_size):
        part = type(normalised)(records[lo : lo + batch_size], 0, {}, 0)
        batches.append((len(part.records), lambda part=part: _write_and_check_alerts(layout, symbol, part)))
    return total, batches


def _write_and_check_alerts(layout: SeriesLayout, symbol: str, part):
    """Plan: write one batch and, in the same transaction, fire the symbol's alerts its new ticks met.

    The check runs as EVAL inside the write's MULTI/EXEC (EVAL, not EVALSHA, as a script missing
    from the server's cache would fail inside EXEC while the rest applied): either the ticks and
    the alerts they fire both commit, or neither does and a resend does both.
    """

    def alert_check(result: WriteResult):
        # Expiry is judged by the writer's wall clock, as alerts are created with it, not by
        # the ticks' event time: a replay of old ticks must not resurrect expired alerts.
        keys, args = alert_check_args(layout.keys, symbol, result.low, result.high, result.last, int(time.time() * 1000))

        def receive(reply) -> None:
            result.fired_alerts = decode_fired(reply)

        return ("EVAL", scripts.load(ALERT_CHECK_SCRIPT), len(keys), *keys, *args), receive

    return (yield from layout.write_plan(symbol, part, also=alert_check))


def _duration_setting(ms: int | None) -> str:
    """``ms`` as a retention setting is written: ``off``, or a whole number of the largest unit up to days."""
    if ms is None:
        return "off"
    for unit in ("d", "h", "m", "s"):
        size = parse_duration(f"1{unit}")
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def warn_retention(layout: SeriesLayout, result: WriteResult, refused: str = "ticks") -> None:
    """Log one WARNING for a write call in which retention refused or trimmed anything, naming the settings.

    A research dataset must not shrink silently: this line, with ``retention_refused``,
    ``trimmed_ticks`` and ``trimmed_chunks`` of the result, is how a user learns that it did.
    ``refused`` names what ``retention_refused`` counts (``ticks`` or ``candles``).
    """
    if not (result.retention_refused or result.trimmed_ticks or result.trimmed_chunks):
        return
    log.warning(
        "%s: retention refused %d %s older than the window behind the newest tick and trimmed %d ticks "
        "(%d chunks) that fell out of it (REDTICK_TICK_RETENTION=%s, REDTICK_CANDLE_RETENTION=%s)",
        result.symbol, result.retention_refused, refused, result.trimmed_ticks, result.trimmed_chunks,
        _duration_setting(layout.tick_retention_ms), _duration_setting(layout.candle_retention_ms),
    )


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="tick", unit_scale=True, desc=desc)


# -- public sync API ---------------------------------------------------------------------------------
def write_ticks(
    ticks: Any,
    symbol: str,
    *,
    conn: Connection | None = None,
    errors: Literal["raise", "skip"] = "raise",
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
) -> WriteResult:
    """Store ticks and merge them into every configured interval's candles.

    Every distinct tick is kept, even when time, price and volume repeat; a tick already stored
    (same time and trade id, or same time and rank within its millisecond when there are no
    ids) is skipped and counted in ``duplicates``.

    Parameters
    ----------
    ticks : DataFrame or iterable of dict
        Time as a DatetimeIndex or a ``ts`` column (datetimes, strings or epoch ms); ``price``,
        ``volume``; optional ``trade_id`` (or ``seq``) and ``side``.
    symbol : str
        1-32 of ``A-Z 0-9 . _ - /``.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    errors : {"raise", "skip"}
        ``"raise"`` refuses the whole call on any bad row before writing anything; ``"skip"``
        drops bad rows and counts them in ``rejected`` by reason.
    batch_size : int
        Ticks per transaction.
    progress : bool
        Show a progress bar (terminal or notebook).

    Returns
    -------
    WriteResult
        ``received``, ``written``, ``duplicates``, ``rejected`` and ``candles_updated``; with a
        retention configured (``REDTICK_TICK_RETENTION``, ``REDTICK_CANDLE_RETENTION``; off by
        default), ``retention_refused`` counts ticks older than the window behind the series'
        newest tick (not stored, not in the candles) and ``trimmed_chunks``/``trimmed_ticks``
        what the write's newest tick put out of the window. Either logs one WARNING.

    Examples
    --------
    >>> import pandas as pd, redtick
    >>> ticks = pd.DataFrame({"ts": [1_000, 1_000, 61_000], "price": [10.0, 10.0, 11.0],
    ...                       "volume": [1.0, 1.0, 2.0], "trade_id": [1, 2, 3]})
    >>> result = redtick.write_ticks(ticks, symbol="DOCSWRITE")
    >>> result.written, result.duplicates
    (3, 0)
    >>> redtick.write_ticks(ticks, symbol="DOCSWRITE").duplicates
    3
    """
    conn = conn or connect()
    layout = layout_of(conn)
    total, batches = write_plans(layout, symbol, ticks, errors, batch_size)
    bar = _progress(total.received, progress, f"write {symbol}")
    try:
        for size, make_plan in batches:
            total += run(conn.sync, make_plan)
            if bar is not None:
                bar.update(size)
    finally:
        if bar is not None:
            bar.close()
    warn_retention(layout, total)
    return total


def load_ticks(
    symbol_or_symbols: str | Iterable[str],
    start: Any = None,
    end: Any = None,
    *,
    columns: Sequence[str] | None = None,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """Ticks as a DataFrame with a UTC ``DatetimeIndex`` named ``ts`` and float64 ``price``, ``volume``.

    Parameters
    ----------
    symbol_or_symbols : str or list of str
        One symbol gives a frame indexed by time; several give one frame indexed by (symbol, ts).
    start, end : str, datetime, pd.Timestamp or epoch ms, optional
        Inclusive bounds; ``None`` is open-ended.
    columns : list of str, optional
        Some of ``price``, ``volume``, ``trade_id``, ``side`` (default ``price``, ``volume``).

    Examples
    --------
    >>> import pandas as pd, redtick
    >>> ticks = pd.DataFrame({"ts": [1_000, 1_000, 61_000], "price": [10.0, 10.0, 11.0],
    ...                       "volume": [1.0, 1.0, 2.0], "trade_id": [1, 2, 3]})
    >>> _ = redtick.write_ticks(ticks, symbol="DOCS")
    >>> redtick.load_ticks("DOCS", start="1970-01-01T00:00:01Z")  # doctest: +NORMALIZE_WHITESPACE
                               price  volume
    ts
    1970-01-01 00:00:01+00:00   10.0     1.0
    1970-01-01 00:00:01+00:00   10.0     1.0
    1970-01-01 00:01:01+00:00   11.0     2.0
    """
    conn = conn or connect()
    symbols, many = parse_symbols(symbol_or_symbols)
    _columns(columns, TICK_COLUMNS, TICK_OPTIONAL)
    frames = run(conn.sync, lambda: ticks_read_plan(layout_of(conn), symbols, start, end, columns))
    return keyed_frame(frames, symbols) if many else frames[0]


def load_ohlcv(
    symbol_or_symbols: str | Iterable[str],
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    *,
    columns: Sequence[str] | None = None,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """Candles as a DataFrame with a UTC ``DatetimeIndex`` (bucket start) and float64 OHLCV columns.

    An interval that is not stored but is a multiple of a stored one (``2h`` from ``1h``) is rolled
    up on read, open and close taken by time. Buckets align to the epoch (pandas ``origin="epoch"``).

    Parameters
    ----------
    symbol_or_symbols : str or list of str
        One symbol gives a frame indexed by time; several give one frame indexed by (symbol, ts).
    interval : str
        ``1m``, ``5m``, ``15m``, ``1h``, ``4h``, ``1d`` (stored by default) or a multiple of one.
    start, end : str, datetime, pd.Timestamp or epoch ms, optional
        Inclusive bounds on the bucket start.
    columns : list of str, optional
        Some of ``open high low close volume count``.

    Examples
    --------
    >>> import pandas as pd, redtick
    >>> ticks = pd.DataFrame({"ts": [1_000, 1_000, 61_000], "price": [10.0, 10.0, 11.0],
    ...                       "volume": [1.0, 1.0, 2.0], "trade_id": [1, 2, 3]})
    >>> _ = redtick.write_ticks(ticks, symbol="DOCS")
    >>> redtick.load_ohlcv("DOCS", "1m")  # doctest: +NORMALIZE_WHITESPACE
                               open  high   low  close  volume
    ts
    1970-01-01 00:00:00+00:00  10.0  10.0  10.0   10.0     2.0
    1970-01-01 00:01:00+00:00  11.0  11.0  11.0   11.0     2.0
    """
    conn = conn or connect()
    symbols, many = parse_symbols(symbol_or_symbols)
    validate_interval(interval)
    _columns(columns, CANDLE_COLUMNS, CANDLE_OPTIONAL)
    frames = run(conn.sync, lambda: candles_read_plan(layout_of(conn), symbols, interval, start, end, columns))
    return keyed_frame(frames, symbols) if many else frames[0]


def candles_from_frame(
    frame: pd.DataFrame | Iterable[dict], interval: str, *, errors: Literal["raise", "skip"] = "raise"
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Bucket starts, packed candles and rejections from bars with a time and open/high/low/close[/volume/count].

    The time is the bucket start: a DatetimeIndex or a ``ts``/``timestamp``/``time`` column.
    A row is bad when its time is missing or off the interval's grid, a price is not finite and
    positive, high or low do not bound open and close, the volume is negative, or an earlier
    row has the same time; ``errors`` says whether that raises or drops the row.
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame.from_records(list(frame))
    iv = validate_interval(interval)
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise InvalidData(f"candles need columns {missing}")
    ms = times_ms(frame)
    out = np.zeros(len(frame), dtype=CANDLE_DTYPE)
    for name in ("open", "high", "low", "close", "volume"):
        out[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64, na_value=np.nan) \
            if name in frame.columns else 0.0
    prices = np.stack([out[n] for n in ("open", "high", "low", "close")])
    starts = np.where(np.isnan(ms), 0, ms).astype(np.int64)
    reasons = {
        "unparseable time": np.isnan(ms),
        "price is missing, NaN, infinite or not positive": ~np.all(np.isfinite(prices) & (prices > 0), axis=0),
        "high or low does not bound open and close": (out["high"] < np.maximum(out["open"], out["close"]))
        | (out["low"] > np.minimum(out["open"], out["close"])),
        "volume is NaN, infinite or negative": ~(np.isfinite(out["volume"]) & (out["volume"] >= 0)),
        f"time is not on the {interval} grid from the epoch": starts % iv != 0,
        "an earlier candle has the same time": pd.Series(starts).duplicated().to_numpy() & ~np.isnan(ms),
    }
    bad, rejected = screen_rows(reasons, len(frame), errors, "candles")
    out["count"] = pd.to_numeric(frame["count"], errors="coerce").fillna(-1).to_numpy(np.int64) \
        if "count" in frame.columns else -1
    # An imported candle spans its whole bucket: its open and close stand unless ticks come earlier or later.
    out["first_ts"], out["first_id"] = starts, np.iinfo(np.int64).min
    out["last_ts"], out["last_id"] = starts + iv - 1, np.iinfo(np.int64).max
    starts, out = starts[~bad], out[~bad]
    order = np.argsort(starts, kind="stable")
    return starts[order], out[order], rejected


def write_candles(candles: pd.DataFrame | Iterable[dict], symbol: str, interval: str, *,
                  conn: Connection | None = None, errors: Literal["raise", "skip"] = "raise") -> WriteResult:
    """Store whole candles from elsewhere (an exchange, a file) in the same keys the tick writer fills.

    Each candle replaces its bucket, and the stored intervals that are multiples of ``interval``
    are rebuilt over the same span. Bad rows raise, or with ``errors="skip"`` are dropped and
    counted in ``rejected``. With a candle retention, candles out of the window behind the
    series' newest tick are refused and counted in ``retention_refused``.

    Examples
    --------
    >>> import redtick
    >>> bars = [{"ts": "2024-01-01T00:00Z", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 7.0}]
    >>> redtick.write_candles(bars, "DOCSBAR", "1m").written
    1
    """
    conn = conn or connect()
    symbol = validate_symbol(symbol)
    frame = candles if isinstance(candles, pd.DataFrame) else pd.DataFrame.from_records(list(candles))
    starts, packed, rejected = candles_from_frame(frame, interval, errors=errors)
    layout = layout_of(conn)
    written = run(conn.sync, lambda: layout.set_candles_plan(symbol, interval, starts, packed))
    result = WriteResult(symbol, received=len(frame), written=written, rejected=rejected,
                         retention_refused=len(starts) - written)
    warn_retention(layout, result, refused="candles")
    return result
