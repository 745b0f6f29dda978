"""Load a CSV or Parquet file of ticks or candles into Redis, in chunks, with a progress bar."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Mapping
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from redtick.config import parse_duration
from redtick.connection import Connection, connect
from redtick.errors import ConfigurationError, InvalidData
from redtick.frames import layout_of, write_candles, write_ticks
from redtick.keys import validate_symbol
from redtick.series import WriteResult
from redtick.ticks import TICK_INPUT_FIELDS, TimeUnit, rename_columns, times_ms

__all__ = ["IngestReport", "ingest_file", "read_chunks"]

CANDLE_FIELDS = {"open", "high", "low", "close"}
INPUT_FIELDS = (*TICK_INPUT_FIELDS, "open", "high", "low", "close", "count", "vwap", "notional")


@dataclasses.dataclass
class IngestReport(WriteResult):
    """A :class:`WriteResult` plus what the file held and how long it took."""

    path: str = ""
    store: str = ""
    kind: str = ""
    interval: str | None = None
    seconds: float = 0.0


def read_chunks(path: str | os.PathLike, chunk_rows: int) -> tuple[int | None, Iterator[pd.DataFrame]]:
    """The row count (when the format knows it) and an iterator of frames of at most ``chunk_rows`` rows."""
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise InvalidData(f"{text}: no such file")
    lowered = text.lower()
    if lowered.endswith((".parquet", ".pq")):
        source = pq.ParquetFile(text)
        return source.metadata.num_rows, (b.to_pandas() for b in source.iter_batches(batch_size=chunk_rows))
    if lowered.endswith((".csv", ".csv.gz", ".txt")):
        return None, iter(pd.read_csv(text, chunksize=chunk_rows))
    raise InvalidData(f"{text}: expected a .csv or .parquet file")


def _guess_interval(frame: pd.DataFrame, intervals: dict[str, int], unit: TimeUnit | None = None) -> str:
    """The stored interval equal to the smallest step between bar times."""
    ms = np.unique(times_ms(frame, unit=unit))
    steps = np.diff(ms[~np.isnan(ms)])
    steps = steps[steps > 0]
    if len(steps):
        for name, iv in intervals.items():
            if iv == int(steps.min()):
                return name
    raise InvalidData("cannot tell the bars' interval from their times; pass --interval (such as 1m or 1h)")


def ingest_file(
    path: str | os.PathLike,
    symbol: str,
    *,
    kind: Literal["auto", "ticks", "candles"] = "auto",
    interval: str | None = None,
    conn: Connection | None = None,
    chunk_rows: int = 250_000,
    progress: bool = True,
    columns: Mapping[str, str] | None = None,
    unit: TimeUnit | None = None,
) -> IngestReport:
    """Ingest a file of ticks or candles for ``symbol``; bad rows are skipped and counted by reason.

    Parameters
    ----------
    path : str or path
        ``.csv`` or ``.parquet``. Ticks: ``ts`` (or ``time``/``timestamp``), ``price``, ``volume``,
        optional ``trade_id``/``seq`` and ``side``. Candles: a time and ``open high low close``
        (``volume`` and ``count`` optional).
    kind : {"auto", "ticks", "candles"}
        ``auto`` reads candles when the file has open/high/low/close columns.
    interval : str, optional
        The candles' interval; guessed from the bar times when not given.
    columns : dict, optional
        The file's column names for redtick's fields, such as ``{"size": "volume"}``; a field with
        no column is an error, never a default.
    unit : {"s", "ms", "us", "ns"}, optional
        The unit of numeric times (epoch milliseconds when not given; numbers that look like
        another unit are refused, naming it).

    Examples
    --------
    >>> report = ingest_file("data/eurusd_1h_ask_2017.parquet", "EURUSD", progress=False)
    >>> report.kind, report.interval, report.written
    ('candles', '1h', 6225)
    """
    conn = conn or connect()
    symbol = validate_symbol(symbol)
    if kind not in ("auto", "ticks", "candles"):
        raise InvalidData(f"kind={kind!r}: expected auto, ticks or candles")
    if interval is not None:
        try:
            parse_duration(interval, name="interval")
        except ConfigurationError as exc:
            raise InvalidData(str(exc)) from None
    rows, chunks = read_chunks(path, chunk_rows)
    report = IngestReport(symbol, path=os.fspath(path), store=conn.settings.safe_url)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=rows, unit="row", unit_scale=True, desc=f"ingest {symbol}")
    started = time.perf_counter()
    try:
        for chunk in chunks:
            chunk = rename_columns(chunk, columns, INPUT_FIELDS, what="file's rows")
            if not report.kind:
                report.kind = "candles" if kind == "candles" or (kind == "auto" and set(chunk.columns) >= CANDLE_FIELDS) \
                    else "ticks"
                if report.kind == "candles":
                    report.interval = interval or _guess_interval(chunk, layout_of(conn).intervals, unit)
            if report.kind == "candles":
                report += write_candles(chunk, symbol, report.interval, conn=conn, errors="skip", unit=unit)
            else:
                report += write_ticks(chunk, symbol, conn=conn, errors="skip", unit=unit)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: IngestReport) -> str:
    """The summary table the CLI prints."""
    rate = report.received / report.seconds if report.seconds else 0.0
    lines = [
        ("file", report.path),
        ("symbol", report.symbol),
        ("stored in", report.store),
        ("kind", report.kind + (f" ({report.interval})" if report.interval else "")),
        ("rows read", f"{report.received:,}"),
        ("written", f"{report.written:,}"),
        ("duplicates skipped", f"{report.duplicates:,}"),
        ("rejected", f"{sum(report.rejected.values()):,}"),
        *((f"  {reason}", f"{n:,}") for reason, n in report.rejected.items()),
        ("candles updated", f"{report.candles_updated:,}"),
        *((("refused by retention", f"{report.retention_refused:,}"),) if report.retention_refused else ()),
        *((("trimmed by retention", f"{report.trimmed_ticks:,} ticks"),) if report.trimmed_ticks else ()),
        ("alerts fired", f"{len(report.fired_alerts):,}"),
        ("elapsed", f"{report.seconds:.2f} s ({rate:,.0f} rows/s)"),
    ]
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in lines)
