"""Research-facing reads and writes: ticks and candles to and from pandas DataFrames.

``write_ticks``, ``load_ticks`` and ``load_ohlcv`` are plain functions over a connection (the
process default unless ``conn=`` is given); the async ``PriceCache`` runs the same plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import pandas as pd
from tqdm.auto import tqdm

from redtick.bars import candles_from_frame
from redtick.catalog import check_missing, layout_of, require_symbols
from redtick.connection import Connection, connect
from redtick.intervals import parse_interval
from redtick.keys import validate_symbol
from redtick.outputs import finish
from redtick.read_options import check_output, parse_symbols, read_bounds, read_columns
from redtick.reads import Columns, candles_read_plan, ticks_read_plan
from redtick.series import WriteResult
from redtick.steps import run
from redtick.ticks import TimeUnit
from redtick.writes import DEFAULT_BATCH, warn_retention, write_plans

__all__ = ["load_ohlcv", "load_ticks", "write_candles", "write_ticks"]


def _stored_only(conn: Connection, symbols: list[str], results: list[Columns], missing: str,
                 listed: dict[str, bool]) -> tuple[list[Columns], list[str]]:
    """The results and symbols of the stored symbols: an unknown one raises SymbolNotFound, or is
    dropped with ``missing="skip"`` (its read found nothing)."""
    stored = set(require_symbols(conn, symbols, missing, listed))
    kept = [i for i, s in enumerate(symbols) if s in stored]
    return [results[i] for i in kept], [symbols[i] for i in kept]


def _progress(total: int, enabled: bool, desc: str) -> tqdm[Any] | None:
    return tqdm(total=total, unit="tick", unit_scale=True, desc=desc) if enabled else None


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
    unit: TimeUnit | None = None,
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
    unit: TimeUnit | None = None,
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


def write_candles(candles: pd.DataFrame | Iterable[dict[str, Any]], symbol: str, interval: str, *,
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
