"""Arrow snapshots: a frame, or a set of symbols, as Arrow IPC bytes in Redis or in a file; Parquet export.

A snapshot in Redis is a hash describing it (rows, bytes, parts, SHA-256, compression) and its
bytes split into parts no larger than ``part_bytes`` (Redis refuses values over 512 MB). All are
replaced in one transaction, and a load checks the SHA-256 before decoding, so a reader gets
the whole snapshot or an error, never half a frame.

A snapshot file is an Arrow IPC *file* (Feather v2: ``.arrow``/``.feather``), which
``pd.read_feather``, ``pyarrow.ipc.open_file``, Polars and DuckDB read as they are; a Redis
snapshot stays an IPC stream. :func:`load` reads both, and the stream files older versions
wrote. A Parquet export carries what its columns mean in its key-value metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import secrets
from collections.abc import Iterable
from typing import Any, Literal, cast

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from redtick import checks
from redtick.clock import now_ms
from redtick.connection import Connection, connect
from redtick.errors import InvalidData, NotFound
from redtick.frames import load_ohlcv, load_ticks
from redtick.intervals import parse_interval
from redtick.read_options import CANDLE_COLUMNS, CANDLE_OPTIONAL, TICK_COLUMNS, TICK_OPTIONAL

__all__ = [
    "PARQUET_MEANINGS",
    "SnapshotInfo",
    "delete",
    "frame_to_ipc",
    "info",
    "ipc_to_frame",
    "list_snapshots",
    "load",
    "parquet_metadata",
    "save",
    "to_parquet",
]

DEFAULT_PART_BYTES = 64 * 1024 * 1024
COMPRESSIONS = (None, "zstd", "lz4")
FILE_MAGIC = b"ARROW1"  # an IPC file (Feather v2) starts with it; a stream starts with a message
PARQUET_MEANINGS = {
    "count": "number of ticks merged into the candle; null for imported bars that did not give it",
    "vwap": "volume-weighted average price, sum(price * volume) / sum(volume) over the bucket's ticks; "
            "NaN where the volume is 0 or unknown (the bucket holds an imported bar that did not give it)",
    "notional": "sum(price * volume) over the bucket's ticks, merged like volume (vwap = notional / volume); "
                "NaN where unknown (the bucket holds an imported bar that did not give its vwap)",
}
"""What a Parquet export's metadata says about a column, for the columns present."""


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """What a saved snapshot holds."""

    name: str
    rows: int
    bytes: int
    parts: int
    compression: str | None
    sha256: str
    created_ms: int


def frame_to_ipc(frame: pd.DataFrame, compression: Literal["zstd", "lz4"] | None = None, *, file: bool = False) -> bytes:
    """Arrow IPC bytes of ``frame``, index, dtypes and time zone included: a stream, or with
    ``file=True`` an IPC file (Feather v2), which readers can open at any record batch.

    Examples
    --------
    >>> frame = pd.DataFrame({"price": [1.0, 2.0]}, index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"))
    >>> ipc_to_frame(frame_to_ipc(frame, "zstd")).equals(frame)
    True
    >>> data = frame_to_ipc(frame, file=True)
    >>> data[:6], ipc_to_frame(data).equals(frame)
    (b'ARROW1', True)
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidData(f"a snapshot holds a DataFrame, not {type(frame).__name__}")
    if compression not in COMPRESSIONS:
        raise InvalidData(f"compression={compression!r}: expected None, 'zstd' or 'lz4'")
    table = pa.Table.from_pandas(frame, preserve_index=True)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with (pa.ipc.new_file if file else pa.ipc.new_stream)(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def ipc_to_frame(data: bytes) -> pd.DataFrame:
    """The DataFrame in Arrow IPC bytes, a stream or a file (told apart by the file's leading ``ARROW1``)."""
    buffer = pa.py_buffer(data)
    is_file = bytes(data[: len(FILE_MAGIC)]) == FILE_MAGIC
    try:
        table = (pa.ipc.open_file(buffer) if is_file else pa.ipc.open_stream(buffer)).read_all()
    except pa.ArrowInvalid as exc:
        raise InvalidData(f"not an Arrow IPC {'file' if is_file else 'stream'}: {exc}") from None
    return table.to_pandas()


def _frame_of(source: pd.DataFrame | str | Iterable[str], kind: str, interval: str, start: Any, end: Any,
              conn: Connection | None) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if kind == "ticks":
        return load_ticks(source, start, end, conn=conn, columns=[*TICK_COLUMNS, *TICK_OPTIONAL])
    if kind == "ohlcv":
        return load_ohlcv(source, interval, start, end, conn=conn, columns=[*CANDLE_COLUMNS, *CANDLE_OPTIONAL])
    raise InvalidData(f"kind={kind!r}: expected 'ticks' or 'ohlcv'")


def _write_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, so a reader never sees half a file."""
    target = os.fspath(path)
    # Not tempfile.mkstemp: its files are private (0600), and a snapshot file is meant to be shared.
    temporary = f"{target}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        with open(temporary, "xb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def save(
    source: pd.DataFrame | str | Iterable[str],
    name: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    kind: Literal["ticks", "ohlcv"] = "ticks",
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    compression: Literal["zstd", "lz4"] | None = "zstd",
    part_bytes: int = DEFAULT_PART_BYTES,
    ttl: int | None = None,
    conn: Connection | None = None,
) -> SnapshotInfo:
    """Save a frame, or symbols' ticks or candles, as an Arrow IPC snapshot in Redis (``name``) or a file (``path``).

    A file is an Arrow IPC file (Feather v2, conventionally ``.arrow`` or ``.feather``) that
    ``pd.read_feather``, ``pyarrow.ipc.open_file``, Polars and DuckDB read; it is written
    beside its path and renamed into place, so a reader never sees half of it.

    Parameters
    ----------
    source : DataFrame, symbol or list of symbols
        A frame, or symbols read with :func:`load_ticks` (``kind="ticks"``) or :func:`load_ohlcv`.
    name, path
        Exactly one: the snapshot's name in Redis, or a file path.
    compression : {"zstd", "lz4", None}
    part_bytes : int
        Largest value written to one Redis key; bigger snapshots are split.
    ttl : int, optional
        Seconds the snapshot lives in Redis.

    Examples
    --------
    >>> import redtick
    >>> frame = pd.DataFrame({"close": [1.5]}, index=pd.DatetimeIndex(["2024-01-01"], tz="UTC", name="ts"))
    >>> save(frame, "docs-example").rows
    1
    >>> load("docs-example").equals(frame)
    True

    A file, read back by pandas itself:

    >>> import os, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "example.arrow")
    >>> save(frame, path=path).rows
    1
    >>> pd.read_feather(path).equals(frame) and load(path=path).equals(frame)
    True
    >>> folder.cleanup()
    """
    if (name is None) == (path is None):
        raise InvalidData("give exactly one of name (a Redis snapshot) or path (a file)")
    checks.whole(part_bytes, "part_bytes", low=1024, expected="a whole number of at least 1024")
    if ttl is not None:
        checks.whole(ttl, "ttl", low=1, expected="a positive whole number of seconds")
    if name is not None or not isinstance(source, pd.DataFrame):  # a frame saved to a file needs no Redis
        conn = conn or connect()
    frame = _frame_of(source, kind, interval, start, end, conn)
    data = frame_to_ipc(frame, compression, file=path is not None)
    info = SnapshotInfo(name or os.fspath(path or ""), len(frame), len(data), 0, compression,
                        hashlib.sha256(data).hexdigest(), now_ms())
    if path is not None:
        _write_file(path, data)
        return info
    assert name is not None  # exactly one of name and path, checked above
    return _store(conn or connect(), name, data, info, part_bytes, ttl)


def _store(conn: Connection, name: str, data: bytes, info: SnapshotInfo, part_bytes: int, ttl: int | None) -> SnapshotInfo:
    """Replace snapshot ``name`` in Redis by ``data``, split into parts, in one transaction; its description."""
    parts = [data[at : at + part_bytes] for at in range(0, len(data), part_bytes)] or [b""]
    info = dataclasses.replace(info, parts=len(parts))
    keys = conn.keys
    head = keys.snapshot(name)
    client = conn.sync
    old_parts = int(client.hget(head, "parts") or 0)
    pipe = client.pipeline(transaction=True)
    pipe.delete(head, *(keys.snapshot(name, i) for i in range(len(parts), old_parts)))
    for i, part in enumerate(parts):
        pipe.set(keys.snapshot(name, i), part, ex=ttl)
    pipe.hset(head, mapping={k: "" if v is None else str(v) for k, v in dataclasses.asdict(info).items()})
    if ttl is not None:
        pipe.expire(head, ttl)
    pipe.execute()
    return info


def info(name: str, *, conn: Connection | None = None) -> SnapshotInfo:
    """The description of snapshot ``name``; NotFound if there is none."""
    conn = conn or connect()
    raw = cast("dict[bytes, bytes]", conn.sync.hgetall(conn.keys.snapshot(name)))  # the sync client's reply
    if not raw:
        raise NotFound(f"no snapshot named {name!r}")
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return SnapshotInfo(fields["name"], int(fields["rows"]), int(fields["bytes"]), int(fields["parts"]),
                        fields["compression"] or None, fields["sha256"], int(fields["created_ms"]))


def load(name: str | None = None, *, path: str | os.PathLike[str] | None = None, conn: Connection | None = None) -> pd.DataFrame:
    """The frame of a snapshot in Redis (``name``) or a file (``path``), identical to the one saved.

    A file may be an Arrow IPC file (what :func:`save` writes, or any Feather v2 file) or an IPC
    stream (what :func:`save` wrote before snapshot files became IPC files).
    """
    if (name is None) == (path is None):
        raise InvalidData("give exactly one of name (a Redis snapshot) or path (a file)")
    if path is not None:
        with open(path, "rb") as source:
            return ipc_to_frame(source.read())
    assert name is not None  # exactly one of name and path, checked above
    conn = conn or connect()
    described = info(name, conn=conn)
    names = [conn.keys.snapshot(name, i) for i in range(described.parts)]
    replies = cast("list[bytes | None]", conn.sync.mget(names))  # the sync client's reply
    parts = [part for part in replies if part is not None]
    if len(parts) < len(replies):
        raise NotFound(f"snapshot {name!r} lost a part (expired or deleted while being read)")
    data = b"".join(parts)
    if hashlib.sha256(data).hexdigest() != described.sha256:
        raise InvalidData(f"snapshot {name!r} changed while being read (checksum differs); read it again")
    return ipc_to_frame(data)


def delete(name: str, *, conn: Connection | None = None) -> bool:
    """Delete snapshot ``name``; returns whether it existed."""
    conn = conn or connect()
    try:
        parts = info(name, conn=conn).parts
    except NotFound:
        return False
    conn.sync.delete(conn.keys.snapshot(name), *(conn.keys.snapshot(name, i) for i in range(parts)))
    return True


def list_snapshots(*, conn: Connection | None = None) -> list[str]:
    """Names of the snapshots in Redis, sorted."""
    conn = conn or connect()
    keys = conn.keys
    names = set()
    for key in conn.sync.scan_iter(match=keys.snapshot_pattern(), count=1000):
        tag = keys.describe(key).tag
        if tag is not None and key == keys.snapshot(tag).encode():  # a description, not one of its parts
            names.add(tag)
    return sorted(names)


def _kind_of(frame: pd.DataFrame) -> Literal["ticks", "ohlcv"] | None:
    """``ohlcv`` or ``ticks`` when a frame's columns say which, else None."""
    if {"open", "high", "low", "close"} <= set(frame.columns):
        return "ohlcv"
    if "price" in frame.columns:
        return "ticks"
    return None


def _symbols_of(source: pd.DataFrame | str | Iterable[str], frame: pd.DataFrame) -> list[str] | None:
    if isinstance(source, str):
        return [source]
    if not isinstance(source, pd.DataFrame):
        return list(source)
    if "symbol" in (frame.index.names or []):
        return [str(s) for s in frame.index.unique("symbol")]
    return None


def parquet_metadata(frame: pd.DataFrame, *, kind: str | None, symbols: list[str] | None,
                     interval: str | None) -> dict[str, str]:
    """The key-value metadata :func:`to_parquet` writes for ``frame``: what the file holds and what
    its columns mean (those of :data:`PARQUET_MEANINGS` that are present).

    Examples
    --------
    >>> frame = pd.DataFrame({"close": [1.5], "count": [3]}, index=pd.DatetimeIndex(["2024-01-01"], tz="UTC", name="ts"))
    >>> meta = parquet_metadata(frame, kind="ohlcv", symbols=["ES"], interval="5m")
    >>> meta["symbols"], meta["interval"], meta["count"]
    ('["ES"]', '5m', 'number of ticks merged into the candle; null for imported bars that did not give it')
    """
    try:
        version = importlib.metadata.version("redtick")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        version = "unknown (not installed)"
    times = frame.index.get_level_values("ts") if "ts" in (frame.index.names or []) else frame.index
    zone = str(times.tz) if isinstance(times, pd.DatetimeIndex) and times.tz is not None else "none (naive)"
    meta = {"redtick_version": version, "timezone": zone}
    if kind is not None:
        meta["kind"] = kind
    if symbols is not None:
        meta["symbols"] = json.dumps(symbols)
    if kind == "ohlcv" and interval is not None:
        meta["interval"] = interval
    index = None
    if kind == "ohlcv":
        # The label side follows the interval as pandas defines it (right for W, ME, QE, YE), so it is
        # worked out here rather than written as fixed text.
        bins = parse_interval(interval) if interval is not None else None
        side = bins.label if bins is not None else "left"
        index = (f"ts: the candle's bucket labelled by its {side} edge, in {zone} "
                 f"(pandas resample label='{side}', closed='{bins.closed if bins is not None else 'left'}')")
    elif kind == "ticks":
        index = f"ts: time of the tick, in {zone}; ticks of one time are in trade id order"
    if isinstance(frame.index, pd.MultiIndex):
        levels = f"({', '.join(map(str, frame.index.names))})"
        index = f"{levels}; {index}" if index else levels
    if index:
        meta["index"] = index
    meta.update({column: meaning for column, meaning in PARQUET_MEANINGS.items() if column in frame.columns})
    return meta


def _nullable_count(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``count`` as nullable ``Int64`` (missing counts stay missing, never 0 or NaN floats)."""
    if "count" not in frame.columns or str(frame["count"].dtype) == "Int64":
        return frame
    try:
        return frame.assign(count=frame["count"].astype("Int64"))
    except (TypeError, ValueError):
        raise InvalidData("column 'count' holds values that are not whole numbers; a candle's count is a number "
                          "of ticks (rename the column if it means something else)") from None


def to_parquet(
    source: pd.DataFrame | str | Iterable[str],
    path: str | os.PathLike[str],
    *,
    kind: Literal["ticks", "ohlcv"] | None = None,
    interval: str | None = None,
    start: Any = None,
    end: Any = None,
    compression: str = "zstd",
    conn: Connection | None = None,
) -> int:
    """Write a frame, or symbols' ticks or candles, to a Parquet file; returns the rows written.

    The file's key-value metadata (``pyarrow.parquet.read_schema(path).metadata``) says what it
    holds: ``redtick_version``, ``kind``, ``symbols`` (a JSON list), ``interval``, ``timezone``
    and ``index`` (how times are labelled), and the meaning of ``count``, ``vwap`` and ``notional``
    when those columns are present (:data:`PARQUET_MEANINGS`). A candle's ``count`` is written as nullable
    ``Int64``: null where an imported bar did not give it.

    Parameters
    ----------
    source : DataFrame, symbol or list of symbols
        A frame, or symbols read with :func:`load_ticks` (``kind="ticks"``, the default) or
        :func:`load_ohlcv` (``kind="ohlcv"``) between ``start`` and ``end``.
    path : str or path
    kind : {"ticks", "ohlcv"}, optional
        For symbols, what to read; for a frame, what the metadata says it is (default: told
        from its columns).
    interval : str, optional
        The candles' interval: what is read for symbols (default ``"1m"``) and recorded.

    Examples
    --------
    >>> import os, tempfile, pyarrow.parquet as pq
    >>> frame = pd.DataFrame({"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [10.0],
    ...                       "count": [float("nan")]}, index=pd.DatetimeIndex(["2024-01-01"], tz="UTC", name="ts"))
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "bars.parquet")
    >>> to_parquet(frame, path, interval="1h")
    1
    >>> pq.read_schema(path).metadata[b"interval"]
    b'1h'
    >>> pd.read_parquet(path)["count"].dtype
    Int64Dtype()
    >>> folder.cleanup()
    """
    if kind not in (None, "ticks", "ohlcv"):
        raise InvalidData(f"kind={kind!r}: expected 'ticks' or 'ohlcv'")
    if isinstance(source, pd.DataFrame):
        frame, kind = source, kind or _kind_of(source)
    else:
        source = source if isinstance(source, str) else list(source)  # iterated twice: to read, to name
        kind, interval = kind or "ticks", interval or "1m"
        frame = _frame_of(source, kind, interval, start, end, conn or connect())
    if kind == "ohlcv":
        frame = _nullable_count(frame)
    meta = parquet_metadata(frame, kind=kind, symbols=_symbols_of(source, frame), interval=interval)
    table = pa.Table.from_pandas(frame, preserve_index=True)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in meta.items()}})
    pq.write_table(table, path, compression=compression)
    return len(frame)
