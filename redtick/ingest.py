"""Load a CSV or Parquet file of ticks or candles into Redis, in chunks, with a progress bar; replay ticks as a live feed."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from redtick import checks
from redtick.caches.alerts import FiredAlert
from redtick.catalog import layout_of
from redtick.config import parse_duration
from redtick.connection import Connection, connect
from redtick.errors import ConfigurationError, InvalidData
from redtick.frames import write_candles, write_ticks
from redtick.keys import validate_symbol
from redtick.outputs import utc_index
from redtick.series import WriteResult
from redtick.ticks import TICK_INPUT_FIELDS, TimeUnit, rename_columns, times_ms

__all__ = ["FIRED_ALERT_COLUMNS", "IngestReport", "Replay", "fired_alerts_frame", "format_report", "ingest_file",
           "ingest_frame", "read_chunks", "replay_ticks"]

CANDLE_FIELDS = {"open", "high", "low", "close"}
INPUT_FIELDS = (*TICK_INPUT_FIELDS, "open", "high", "low", "close", "count", "vwap", "notional")
FIRED_ALERT_COLUMNS = ("alert_id", "user_id", "symbol", "condition", "target_price", "price", "fired_at", "recorded_at",
                       "created_at", "expires_at")
REPLAY_COLUMNS = ("batch", "first_ts", "last_ts", "ticks", "written", "duplicates", "low", "high", "last", "fired")


@dataclasses.dataclass
class IngestReport(WriteResult):
    """A :class:`WriteResult` plus what the file held and how long it took."""

    path: str = ""
    store: str = ""
    kind: str = ""
    interval: str | None = None
    seconds: float = 0.0


def read_chunks(path: str | os.PathLike[str], chunk_rows: int) -> tuple[int | None, Iterator[pd.DataFrame]]:
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


def _kind_of(chunk: pd.DataFrame, kind: str) -> Literal["ticks", "candles"]:
    """What the file holds, judged by its first chunk: ``kind``, or for ``auto`` candles when it has OHLC columns."""
    return "candles" if kind == "candles" or (kind == "auto" and set(chunk.columns) >= CANDLE_FIELDS) else "ticks"


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
    path: str | os.PathLike[str],
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
    rows, chunks = read_chunks(path, checks.whole(chunk_rows, "chunk_rows", low=1))
    return _ingest(chunks, rows, symbol, source=os.fspath(path), kind=kind, interval=interval, conn=conn,
                   progress=progress, columns=columns, unit=unit)


def ingest_frame(
    frame: pd.DataFrame,
    symbol: str,
    *,
    source: str = "a DataFrame",
    kind: Literal["auto", "ticks", "candles"] = "auto",
    interval: str | None = None,
    conn: Connection | None = None,
    chunk_rows: int = 250_000,
    progress: bool = True,
    columns: Mapping[str, str] | None = None,
    unit: TimeUnit | None = None,
) -> IngestReport:
    """:func:`ingest_file` for rows already read: ``frame`` written ``chunk_rows`` at a time, with the same report.

    ``source`` names where the rows came from in the report (``redtick ingest --sample`` passes
    the sample's name).

    Examples
    --------
    >>> from redtick import datasets
    >>> report = ingest_frame(datasets.aapl_1m(), "AAPLFRAME", source="sample aapl_1m", progress=False)
    >>> report.kind, report.interval, report.written, report.path
    ('candles', '1m', 2382, 'sample aapl_1m')
    """
    size = checks.whole(chunk_rows, "chunk_rows", low=1)
    chunks = (frame.iloc[at : at + size] for at in range(0, len(frame), size))
    return _ingest(chunks, len(frame), symbol, source=source, kind=kind, interval=interval, conn=conn,
                   progress=progress, columns=columns, unit=unit)


def _ingest(chunks: Iterable[pd.DataFrame], rows: int | None, symbol: str, *, source: str, kind: str,
            interval: str | None, conn: Connection | None, progress: bool, columns: Mapping[str, str] | None,
            unit: TimeUnit | None) -> IngestReport:
    conn = conn or connect()
    symbol = validate_symbol(symbol)
    if kind not in ("auto", "ticks", "candles"):
        raise InvalidData(f"kind={kind!r}: expected auto, ticks or candles")
    if interval is not None:
        try:
            parse_duration(interval, name="interval")
        except ConfigurationError as exc:
            raise InvalidData(str(exc)) from None
    report = IngestReport(symbol, path=source, store=conn.settings.safe_url)
    started = time.perf_counter()
    with tqdm(total=rows, unit="row", unit_scale=True, desc=f"ingest {symbol}", disable=not progress) as bar:
        for raw in chunks:
            chunk = rename_columns(raw, columns, INPUT_FIELDS, what="file's rows")
            if not report.kind:
                report.kind = _kind_of(chunk, kind)
                if report.kind == "candles":
                    report.interval = interval or _guess_interval(chunk, layout_of(conn).intervals, unit)
            if report.interval is not None:  # candles: their interval is set with the kind
                written = write_candles(chunk, symbol, report.interval, conn=conn, errors="skip", unit=unit)
            else:
                written = write_ticks(chunk, symbol, conn=conn, errors="skip", unit=unit)
            report += written  # type: ignore[misc]  # WriteResult.__iadd__ returns self, typed as the base class
            bar.update(len(chunk))
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


# -- replay: ticks fed as a live feed would --------------------------------------------------------------
def fired_alerts_frame(fired: Sequence[FiredAlert]) -> pd.DataFrame:
    """Fired alerts as a frame, one row each in the order given, times as UTC (columns :data:`FIRED_ALERT_COLUMNS`).

    Examples
    --------
    >>> alert = FiredAlert("a1", "u1", "ES", "above", 1650.0, 1650.25, 1378000000000, 1378000000500, 0, 10**13)
    >>> fired_alerts_frame([alert])[["symbol", "price", "fired_at"]]
      symbol    price                  fired_at
    0     ES  1650.25 2013-09-01 01:46:40+00:00
    """
    table = pd.DataFrame([dataclasses.asdict(f) for f in fired], columns=list(FIRED_ALERT_COLUMNS))
    for column in ("fired_at", "recorded_at", "created_at", "expires_at"):
        table[column] = utc_index(table[column].to_numpy(np.int64), name=column)
    return table.astype({"target_price": np.float64, "price": np.float64})


@dataclasses.dataclass
class Replay:
    """What :func:`replay_ticks` did: one row per batch, and the alerts that fired, in order."""

    batches: pd.DataFrame
    fired: list[FiredAlert]

    @property
    def written(self) -> int:
        return int(self.batches["written"].sum())

    @property
    def duplicates(self) -> int:
        return int(self.batches["duplicates"].sum())

    def fired_frame(self) -> pd.DataFrame:
        """The fired alerts as a frame (:func:`fired_alerts_frame`, as :func:`redtick.reports.fired_alert_history`)."""
        return fired_alerts_frame(self.fired)


def replay_ticks(
    ticks: pd.DataFrame,
    symbol: str,
    *,
    batch_size: int = 500,
    conn: Connection | None = None,
    progress: bool = False,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> Replay:
    """Feed ``ticks`` to :func:`redtick.write_ticks` in small batches, as a live feed would, and record what fired.

    Each batch is one write, so each checks the symbol's alerts once, over that batch's ticks: an
    alert reports the first tick that reached its target (price and time). ``on_batch`` is called
    with each batch's row as it lands (a widget updates itself from it).

    Returns
    -------
    Replay
        ``batches`` has ``batch first_ts last_ts ticks written duplicates low high last fired``.

    Examples
    --------
    >>> from redtick.caches.alerts import set_alerts
    >>> ticks = pd.DataFrame({"ts": [0, 1, 2, 3], "price": [1.0, 2.0, 3.0, 4.0], "volume": 1.0})
    >>> _ = set_alerts([{"user_id": "docrep", "symbol": "DOCREP", "target_price": 3.0, "condition": "above"}])
    >>> replay = replay_ticks(ticks, "DOCREP", batch_size=2)
    >>> replay.batches["fired"].tolist(), replay.fired[0].price, replay.fired[0].fired_at
    ([0, 1], 3.0, 2)
    """
    conn = conn or connect()
    batch_size = checks.whole(batch_size, "batch_size", low=1)
    times = pd.Series(ticks.index if "ts" not in ticks.columns else ticks["ts"].to_numpy())
    rows: list[dict[str, Any]] = []
    fired: list[FiredAlert] = []
    with tqdm(total=len(ticks), unit="tick", unit_scale=True, desc=f"replay {symbol}", disable=not progress) as bar:
        for number, lo in enumerate(range(0, len(ticks), batch_size)):
            part = ticks.iloc[lo : lo + batch_size]
            result = write_ticks(part, symbol, conn=conn, batch_size=batch_size)
            fired.extend(result.fired_alerts)
            row = {"batch": number, "first_ts": times.iloc[lo], "last_ts": times.iloc[lo + len(part) - 1],
                   "ticks": len(part), "written": result.written, "duplicates": result.duplicates,
                   "low": result.low, "high": result.high, "last": result.last, "fired": len(result.fired_alerts)}
            rows.append(row)
            bar.update(len(part))
            if on_batch is not None:
                on_batch(row)
    return Replay(pd.DataFrame(rows, columns=list(REPLAY_COLUMNS)), fired)
