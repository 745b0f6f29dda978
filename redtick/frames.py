"""Research-facing reads and writes: ticks and candles to and from pandas DataFrames.

``write_ticks``, ``load_ticks`` and ``load_ohlcv`` are plain functions over a connection (the
process default unless ``conn=`` is given); the async ``PriceCache`` runs the same plans.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from redtick import scripts
from redtick.caches.alerts import ALERT_CHECK_SCRIPT, PricePath, alert_check_args, decode_fired
from redtick.candles import vwap
from redtick.catalog import check_missing, listing, require_symbols
from redtick.codec import CANDLE_DTYPE
from redtick.config import parse_duration
from redtick.connection import Connection, connect
from redtick.errors import InvalidData
from redtick.intervals import parse_interval
from redtick.keys import validate_interval, validate_symbol
from redtick.reads import FILLS, CandleQuery, Columns, candles_plan, ticks_plan
from redtick.series import SeriesLayout, WriteResult
from redtick.steps import gather, run
from redtick.ticks import (
    BAD_PRICE,
    BAD_VOLUME,
    TimeUnit,
    normalise_ticks,
    rename_columns,
    require_columns,
    screen_rows,
    screen_times,
    to_epoch_ms,
)

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
CANDLE_OPTIONAL = ("count", "vwap", "notional")
CANDLE_INPUT_FIELDS = ("ts", *CANDLE_COLUMNS, *CANDLE_OPTIONAL)  # what ``columns=`` may map to
BAD_NOTIONAL = "vwap or notional is not a number, infinite, or nonzero where the volume is 0"
UTC_MS = pd.DatetimeTZDtype("ms", "UTC")
OUTPUTS = ("pandas", "arrow", "polars")
_DTYPES = {"trade_id": np.int64, "side": np.int8}
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


def time_index(ms: np.ndarray, tz: Any = None, freq: Any = None) -> pd.DatetimeIndex:
    """:func:`utc_index` shown in ``tz`` (UTC when None), with ``freq`` when the index is regular."""
    index = utc_index(ms)
    if tz is not None:
        index = index.tz_convert(tz)
    return index if freq is None else pd.DatetimeIndex(index, freq=freq)


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


def ticks_frame(ticks: Mapping[str, np.ndarray], columns: Sequence[str] | None = None, tz: Any = None) -> pd.DataFrame:
    """A DataFrame of tick columns: ``ts`` index (UTC, or ``tz``), float64 ``price`` and ``volume``.

    Optional columns: ``trade_id`` (int64) and ``side`` (int8: 1 buy, -1 sell, 0 unknown).
    ``ticks`` maps field names (``ts``, ``id``, ``price``, ``volume``, ``side``) to arrays, as
    a packed record array does.
    """
    wanted = _columns(columns, TICK_COLUMNS, TICK_OPTIONAL)
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
    wanted = _columns(columns, CANDLE_COLUMNS, CANDLE_OPTIONAL)
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


# -- bounds ------------------------------------------------------------------------------------------
def _string_bounds(text: str, name: str, tz: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last instant a time string names: ``"2013-09-03"`` is the whole day, ``"2013-09"`` the
    month, ``"2013-09-03 13:31"`` the minute (pandas' partial-string rule for ``.loc``). A naive
    string is a wall-clock time in ``tz`` (UTC when None)."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise InvalidData(f"{name}={text!r} is not a time; expected such as '2013-09-03' or '2013-09-03 13:31:05'") from None
    if stamp is pd.NaT:
        raise InvalidData(f"{name}={text!r} is not a time")
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


def _sub_ms(value: Any, unit: str | None) -> bool:
    """True if a number of ``unit`` (epoch ms when None) since the epoch has digits below a millisecond."""
    per_ms = {"s": 0, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit or "ms"]
    if isinstance(value, float | np.floating):
        scaled = float(value) * 1_000 if per_ms == 0 else float(value) / per_ms
        return scaled != np.floor(scaled)
    return per_ms > 1 and int(value) % per_ms != 0


def _time_bound(value: Any, name: str, *, tz: Any = None, unit: str | None = None) -> int | None:
    """Epoch ms of a read bound: ``start`` rounded up to the millisecond, ``end`` down (a bound with
    sub-millisecond digits never lets in a tick outside it); a string ``end`` reaches the end of the
    period it names (``"2013-09-03"``: the whole day). Naive times are in ``tz`` (UTC when None).

    Examples
    --------
    >>> _time_bound("2013-09-03", "end") == to_epoch_ms("2013-09-03T23:59:59.999Z")
    True
    >>> _time_bound("2013-09-03 13:31:00.0005", "start") == to_epoch_ms("2013-09-03T13:31:00.001Z")
    True
    """
    if value is None:
        return None
    # Clamped to a range far beyond any storable tick (1970-2200), so a hostile bound (year 1 or
    # 2**80 ms) selects what it means and never overflows the int64 arithmetic of the reads.
    return min(max(_unclamped_bound(value, name, tz=tz, unit=unit), -BOUND_LIMIT_MS), BOUND_LIMIT_MS)


BOUND_LIMIT_MS = 2**62


def _unclamped_bound(value: Any, name: str, *, tz: Any, unit: str | None) -> int:
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


def keyed_frame(frames: list[pd.DataFrame], symbols: list[str], empty: pd.DataFrame | None = None) -> pd.DataFrame:
    """One frame keyed by (symbol, ts) from per-symbol frames; ``empty``'s columns when there are none."""
    if not frames and empty is not None:
        return pd.concat([empty], keys=[""], names=["symbol", "ts"]).iloc[:0]
    return pd.concat(frames, keys=symbols, names=["symbol", "ts"])


# -- outputs: pandas, Arrow, Polars ------------------------------------------------------------------
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


def _polars(table: pa.Table):
    try:
        import polars  # optional: only output="polars" needs it
    except ImportError:
        raise InvalidData("output='polars' needs Polars, which is not installed: pip install polars "
                          "(or use output='arrow')") from None
    return polars.from_arrow(table)


def check_output(output: Any) -> str:
    if output not in OUTPUTS:
        raise InvalidData(f"output={output!r}: expected one of {', '.join(map(repr, OUTPUTS))}")
    return output


def _stored_only(conn: Connection, symbols: list[str], results: list[Columns], missing: str,
                 listed: dict[str, bool]) -> tuple[list[Columns], list[str]]:
    """The results and symbols of the stored symbols: an unknown one raises SymbolNotFound, or is
    dropped with ``missing="skip"`` (its read found nothing)."""
    stored = set(require_symbols(conn, symbols, missing, listed))
    kept = [i for i, s in enumerate(symbols) if s in stored]
    return [results[i] for i in kept], [symbols[i] for i in kept]


def finish(results: list[Columns], symbols: list[str], many: bool, wanted: list[str], *,
           tz: Any = None, output: str = "pandas"):
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


# -- sync plans shared with the async caches ---------------------------------------------------------
def ticks_read_plan(layout: SeriesLayout, symbols: list[str], start, end, columns, *, tz: Any = None,
                    unit: str | None = None, listed: dict[str, bool] | None = None):
    """Plan: one :class:`~redtick.reads.Columns` of ticks per symbol, ``start <= ts <= end``.

    With ``listed``, whether each symbol is stored rides the first round trip into it.
    """
    start_ms, end_ms = _time_bound(start, "start", tz=tz, unit=unit), _time_bound(end, "end", tz=tz, unit=unit)
    wanted = _columns(columns, TICK_COLUMNS, TICK_OPTIONAL)
    fields = [TICK_FIELDS[c] for c in wanted]
    plans = [ticks_plan(layout, s, start_ms, end_ms, fields) for s in symbols]
    if listed is not None:
        plans = [listing(layout.keys, s, p, listed) for s, p in zip(symbols, plans, strict=True)]
    results = yield from gather(*plans)
    return [Columns(r.ts, {name: r.data[TICK_FIELDS[name]] for name in wanted}) for r in results]


def candles_read_plan(layout: SeriesLayout, symbols: list[str], interval: str, start, end, columns, *,
                      tz: Any = None, origin: Any = "epoch", offset: Any = None, closed: str | None = None,
                      label: str | None = None, fill: str | None = None, unit: str | None = None,
                      listed: dict[str, bool] | None = None):
    """Plan: one :class:`~redtick.reads.Columns` of candles per symbol (the rules: :mod:`redtick.reads`).

    With ``listed``, whether each symbol is stored rides the first round trip into it.
    """
    if fill not in FILLS:
        raise InvalidData(f"fill={fill!r}: expected None, 'nan' or 'ffill'")
    bins = parse_interval(interval, tz=tz, origin=origin, offset=offset, closed=closed, label=label)
    start_ms, end_ms = _time_bound(start, "start", tz=tz, unit=unit), _time_bound(end, "end", tz=tz, unit=unit)
    query = CandleQuery(bins, start_ms, end_ms, tuple(_columns(columns, CANDLE_COLUMNS, CANDLE_OPTIONAL)), fill)
    plans = [layout.current_layout(s, candles_plan(layout, s, query, interval)) for s in symbols]
    if listed is not None:
        plans = [listing(layout.keys, s, p, listed) for s, p in zip(symbols, plans, strict=True)]
    return (yield from gather(*plans))


def write_plans(layout: SeriesLayout, symbol: str, ticks: Any, errors: str, batch_size: int, *,
                columns: Mapping[Any, str] | None = None, unit: TimeUnit | None = None):
    """The write plans of one call, one per batch of at most ``batch_size`` ticks, and the totals."""
    symbol = validate_symbol(symbol)
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidData(f"batch_size={batch_size!r}: expected a positive whole number")
    normalised = normalise_ticks(ticks, errors=errors, columns=columns, unit=unit)
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

    def alert_check(result: WriteResult, new: np.ndarray):
        # Expiry is judged by the writer's wall clock, as alerts are created with it, not by
        # the ticks' event time: a replay of old ticks must not resurrect expired alerts. The
        # ticks' own times say when each alert fired.
        path = PricePath.of_ticks(new["ts"], new["price"])
        keys, args = alert_check_args(layout.keys, symbol, path, int(time.time() * 1000), settings=layout.settings)

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
    columns: Mapping[Any, str] | None = None,
    unit: TimeUnit | None = None,
) -> WriteResult:
    """Store ticks and merge them into every configured interval's candles.

    Every distinct tick is kept, even when time, price and volume repeat; a tick already stored
    (same time and trade id, or same time and rank within its millisecond when there are no
    ids) is skipped and counted in ``duplicates``.

    Parameters
    ----------
    ticks : DataFrame or iterable of dict
        Time as a DatetimeIndex or a ``ts`` column (datetimes, strings or epoch numbers); ``price``
        (any finite number: zero and negative prices are prices), ``volume``; optional ``trade_id``
        (or ``seq``) and ``side``. A missing ``ts``, ``price`` or ``volume`` raises InvalidData.
    symbol : str
        Up to 64 printable characters, case kept, except whitespace and ``{ } * ? [ ] \\``.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    errors : {"raise", "skip"}
        ``"raise"`` refuses the whole call on any bad row before writing anything; ``"skip"``
        drops bad rows and counts them in ``rejected`` by reason.
    batch_size : int
        Ticks per transaction.
    progress : bool
        Show a progress bar (terminal or notebook).
    columns : dict, optional
        Which column holds which field, such as ``{"size": "volume"}`` (fields: ``ts``, ``price``,
        ``volume``, ``trade_id``, ``side``).
    unit : {"s", "ms", "us", "ns"}, optional
        What epoch numbers in the time column count. Without it they are epoch ms, and numbers
        that look like seconds, microseconds or nanoseconds are refused naming the unit to pass.

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
    total, batches = write_plans(layout, symbol, ticks, errors, batch_size, columns=columns, unit=unit)
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
    date_range: tuple[Any, Any] | None = None,
    columns: Sequence[str] | None = None,
    tz: Any = None,
    unit: str | None = None,
    output: Literal["pandas", "arrow", "polars"] = "pandas",
    missing: Literal["raise", "skip"] = "raise",
    conn: Connection | None = None,
) -> Any:
    """Ticks as a DataFrame with a UTC ``DatetimeIndex`` named ``ts`` and float64 ``price``, ``volume``.

    Parameters
    ----------
    symbol_or_symbols : str or list of str
        One symbol gives a frame indexed by time; several give one frame indexed by (symbol, ts).
    start, end : str, datetime, pd.Timestamp or epoch ms, optional
        Inclusive bounds; ``None`` is open-ended. A naive time is in ``tz`` (UTC when None); a
        string ``end`` reaches the end of what it names, as pandas' ``.loc`` does (``"2013-09-03"``
        is the whole day, ``"2013-09-03 13:31"`` the whole minute); below a millisecond ``start``
        rounds up and ``end`` down.
    date_range : (start, end), optional
        The bounds as one pair, as ArcticDB takes them. Only one of date_range or start/end can be provided.
    columns : list of str, optional
        Some of ``price``, ``volume``, ``trade_id``, ``side`` (default ``price``, ``volume``), each once.
    tz : str or tzinfo, optional
        Time zone of the index and of naive bounds.
    unit : {"s", "ms", "us", "ns"}, optional
        What numeric bounds count since the epoch (default milliseconds).
    output : {"pandas", "arrow", "polars"}
        A DataFrame; a ``pyarrow.Table`` with a ``ts`` column of ``timestamp[ms, tz]`` (and a
        ``symbol`` column for several symbols) wrapping the read's buffers; or a Polars DataFrame
        (needs ``pip install polars``).
    missing : {"raise", "skip"}
        A symbol with no stored data raises :class:`~redtick.errors.SymbolNotFound` (naming close
        matches); ``"skip"`` leaves it out instead (one symbol: an empty frame).

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
    >>> redtick.load_ticks("DOCS", date_range=(None, "1970-01-01 00:00:01"), output="arrow").num_rows
    2
    """
    conn = conn or connect()
    symbols, many = parse_symbols(symbol_or_symbols)
    wanted = read_columns(columns, "ticks")
    check_output(output)
    start, end = read_bounds(start, end, date_range)
    check_missing(missing)
    listed: dict[str, bool] = {}
    results = run(conn.sync, lambda: ticks_read_plan(layout_of(conn), symbols, start, end, wanted, tz=tz, unit=unit,
                                                     listed=listed))
    return finish(*_stored_only(conn, symbols, results, missing, listed), many, wanted, tz=tz, output=output)


def load_ohlcv(
    symbol_or_symbols: str | Iterable[str],
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    *,
    date_range: tuple[Any, Any] | None = None,
    columns: Sequence[str] | None = None,
    tz: Any = None,
    origin: Any = "epoch",
    offset: Any = None,
    closed: Literal["left", "right"] | None = None,
    label: Literal["left", "right"] | None = None,
    fill: Literal["nan", "ffill"] | None = None,
    unit: str | None = None,
    output: Literal["pandas", "arrow", "polars"] = "pandas",
    missing: Literal["raise", "skip"] = "raise",
    conn: Connection | None = None,
) -> Any:
    """Candles as a DataFrame indexed by bucket label (``ts``, UTC or ``tz``) with float64 OHLCV columns.

    **Buckets.** A read returns the buckets whose label lies in ``[start, end]``, each computed
    from all of its ticks (the whole bucket, also ticks before ``start`` or after ``end``): what
    ``ticks.resample(interval, ...).agg(...).loc[start:end]`` gives in pandas, for stored and
    rolled-up intervals alike. The label is the bucket's left edge, except for intervals pandas
    labels on the right (``"W"``, ``"ME"``, ``"QE"``, ``"YE"``). Any interval is exact: it is merged
    from whole stored candles whose grid holds its edges, or built from the ticks (below a minute,
    in a time zone whose offset the stored grid does not hold, ``closed="right"``).

    Parameters
    ----------
    symbol_or_symbols : str or list of str
        One symbol gives a frame indexed by time; several give one frame indexed by (symbol, ts).
    interval : str
        A redtick interval (``"1m"``, ``"5m"``, ``"15m"``, ``"1h"``, ``"4h"``, ``"1d"`` stored by
        default; any ``<n>ms|s|m|h|d|w``: fixed widths from the epoch, ``m`` a minute, ``d`` 24 hours,
        ``w`` 168 hours so ``"1w"`` weeks start on Thursdays) or a pandas offset alias with pandas'
        meaning (``"30s"``, ``"1min"`` (= ``"1m"``), ``"1h"``, ``"D"``, ``"W"`` (weeks ending
        Sunday, labelled on the right), ``"W-MON"``, ``"ME"`` (month end; ``"M"`` is refused as
        ambiguous), ``"MS"``, ``"B"`` ...). The grammar in full: :mod:`redtick.intervals`.
    start, end : str, datetime, pd.Timestamp or epoch ms, optional
        Inclusive bounds on the bucket label; ``None`` is open-ended. Naive times are in ``tz``
        (UTC when None); a string ``end`` reaches the end of what it names (``"2013-09-03"`` is the
        whole day), as pandas' ``.loc`` does.
    date_range : (start, end), optional
        The bounds as one pair, as ArcticDB takes them. Only one of date_range or start/end can be provided.
    columns : list of str, optional
        Some of ``open high low close volume`` (the default) and the optional ``count`` (ticks in the
        bucket; NaN where an imported bar did not give it), ``vwap`` and ``notional``, each once.
        ``notional`` is the bucket's sum of price x volume and ``vwap`` is ``notional / volume``: exact
        for every interval, as the notional is merged like the volume, and what pandas gives for
        ``(price * volume).resample(...).sum() / volume.resample(...).sum()`` up to the order of the
        additions (a relative difference of about ``n * 1.1e-16`` for ``n`` ticks of one sign of
        price). ``vwap`` is NaN where the volume is 0 and where any bar merged into the bucket was
        imported with volume but without a VWAP (never a VWAP of part of the bucket); ``notional``
        is NaN there too, and lets a caller merge candles further exactly.
    tz : str or tzinfo, optional
        The time zone buckets are cut in and the index is shown in, as ``resample`` on an index in ``tz``.
    origin, offset, closed, label
        As in ``DataFrame.resample``, except that ``origin`` defaults to ``"epoch"`` (a fixed grid, the
        one stored candles use) and data-dependent origins are refused; ``offset`` and ``origin`` move
        day buckets in wall-clock time (a CME session day: ``"D", tz="America/Chicago", offset="17h"``),
        where pandas 3 ignores them on a tz-aware index.
    fill : {None, "nan", "ffill"}
        None: only buckets with trades. ``"nan"``: every bucket from ``start`` to ``end`` (or the
        data's first and last bucket on an open side), NaN prices and zero volume and count where
        there were no trades, as pandas' resample shows them; ``"ffill"``: the same with the last
        close (also one from before ``start``) carried into open, high, low and close. The index
        then has ``freq`` set.
    unit : {"s", "ms", "us", "ns"}, optional
        What numeric bounds count since the epoch (default milliseconds).
    output : {"pandas", "arrow", "polars"}
        A DataFrame; a ``pyarrow.Table`` with a ``ts`` column of ``timestamp[ms, tz]`` (and a
        ``symbol`` column for several symbols); or a Polars DataFrame (needs ``pip install polars``).
    missing : {"raise", "skip"}
        A symbol with no stored data raises :class:`~redtick.errors.SymbolNotFound` (naming close
        matches); ``"skip"`` leaves it out instead (one symbol: an empty frame).

    Examples
    --------
    >>> import pandas as pd, redtick
    >>> ticks = pd.DataFrame({"ts": pd.to_datetime(["2013-09-03 13:30:10", "2013-09-03 13:31:20",
    ...                                             "2013-09-03 13:34:00", "2013-09-03 13:38:50"], utc=True),
    ...                       "price": [10.0, 12.0, 11.0, 13.0], "volume": [1.0, 2.0, 3.0, 4.0]})
    >>> _ = redtick.write_ticks(ticks, symbol="DOCSWIN")
    >>> redtick.load_ohlcv("DOCSWIN", "1min")  # doctest: +NORMALIZE_WHITESPACE
                               open  high   low  close  volume
    ts
    2013-09-03 13:30:00+00:00  10.0  10.0  10.0   10.0     1.0
    2013-09-03 13:31:00+00:00  12.0  12.0  12.0   12.0     2.0
    2013-09-03 13:34:00+00:00  11.0  11.0  11.0   11.0     3.0
    2013-09-03 13:38:00+00:00  13.0  13.0  13.0   13.0     4.0

    A window selects buckets by label and keeps each whole: the 13:30 bucket starts before 13:31,
    so it is left out, and the 13:36 bucket keeps its tick of 13:38:50.

    >>> redtick.load_ohlcv("DOCSWIN", "3m", start="2013-09-03 13:31", end="2013-09-03 13:36")  # doctest: +NORMALIZE_WHITESPACE
                               open  high   low  close  volume
    ts
    2013-09-03 13:33:00+00:00  11.0  11.0  11.0   11.0     3.0
    2013-09-03 13:36:00+00:00  13.0  13.0  13.0   13.0     4.0
    >>> redtick.load_ohlcv("DOCSWIN", "2min", start="2013-09-03 13:32", end="2013-09-03 13:36",
    ...                    fill="ffill", columns=["close", "volume"])  # doctest: +NORMALIZE_WHITESPACE
                               close  volume
    ts
    2013-09-03 13:32:00+00:00   12.0     0.0
    2013-09-03 13:34:00+00:00   11.0     3.0
    2013-09-03 13:36:00+00:00   11.0     0.0
    >>> redtick.load_ohlcv("DOCSWIN", "D", tz="America/Chicago", offset="17h")  # doctest: +NORMALIZE_WHITESPACE
                               open  high   low  close  volume
    ts
    2013-09-02 17:00:00-05:00  10.0  13.0  10.0   13.0    10.0
    >>> redtick.load_ohlcv("DOCSWIN", "3m", columns=["close", "volume", "notional", "vwap"])
    ... # doctest: +NORMALIZE_WHITESPACE
                               close  volume  notional  vwap
    ts
    2013-09-03 13:30:00+00:00   12.0     3.0      34.0  11.333333
    2013-09-03 13:33:00+00:00   11.0     3.0      33.0  11.000000
    2013-09-03 13:36:00+00:00   13.0     4.0      52.0  13.000000
    >>> redtick.load_ohlcv("DOCSWIN", "1h", output="arrow").schema.field("ts").type
    TimestampType(timestamp[ms, tz=UTC])
    """
    conn = conn or connect()
    symbols, many = parse_symbols(symbol_or_symbols)
    wanted = read_columns(columns, "candles")
    check_output(output)
    start, end = read_bounds(start, end, date_range)
    plan_options = dict(tz=tz, origin=origin, offset=offset, closed=closed, label=label, fill=fill, unit=unit)
    parse_interval(interval, tz=tz, origin=origin, offset=offset, closed=closed, label=label)  # fails before any I/O
    check_missing(missing)
    listed: dict[str, bool] = {}
    results = run(conn.sync, lambda: candles_read_plan(layout_of(conn), symbols, interval, start, end, wanted,
                                                       listed=listed, **plan_options))
    return finish(*_stored_only(conn, symbols, results, missing, listed), many, wanted, tz=tz, output=output)


def candles_from_frame(
    frame: pd.DataFrame | Iterable[dict], interval: str, *, errors: Literal["raise", "skip"] = "raise",
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


def write_candles(candles: pd.DataFrame | Iterable[dict], symbol: str, interval: str, *,
                  conn: Connection | None = None, errors: Literal["raise", "skip"] = "raise",
                  columns: Mapping[Any, str] | None = None, unit: TimeUnit | None = None) -> WriteResult:
    """Store whole candles from elsewhere (an exchange, a file) in the same keys the tick writer fills.

    Each candle replaces its bucket, and the stored intervals that are multiples of ``interval``
    are rebuilt over the same span. Bad rows raise, or with ``errors="skip"`` are dropped and
    counted in ``rejected``. With a candle retention, candles out of the window behind the
    series' newest tick are refused and counted in ``retention_refused``. ``columns`` (such as
    ``{"v": "volume", "vw": "vwap"}``) and ``unit`` work as in :func:`write_ticks`; ``volume`` is
    required. A ``vwap`` (or ``notional``) column makes VWAP reads over these bars exact; without
    one their VWAP is unknown (NaN), as is that of every bucket they are part of.

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
    starts, packed, rejected = candles_from_frame(frame, interval, errors=errors, columns=columns, unit=unit)
    layout = layout_of(conn)
    written = run(conn.sync, lambda: layout.set_candles_plan(symbol, interval, starts, packed))
    result = WriteResult(symbol, received=len(frame), written=written, rejected=rejected,
                         retention_refused=len(starts) - written)
    warn_retention(layout, result, refused="candles")
    return result
