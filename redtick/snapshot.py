"""Arrow snapshots: a frame, or a set of symbols, as Arrow IPC bytes in Redis or in a file; Parquet export.

A snapshot in Redis is a hash describing it (rows, bytes, parts, SHA-256, compression) and its
bytes split into parts no larger than ``part_bytes`` (Redis refuses values over 512 MB). All are
replaced in one transaction, and a load checks the SHA-256 before decoding, so a reader gets
the whole snapshot or an error, never half a frame.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Iterable
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from redtick.connection import Connection, connect
from redtick.errors import InvalidData, NotFound
from redtick.frames import load_ohlcv, load_ticks

__all__ = ["SnapshotInfo", "delete", "frame_to_ipc", "info", "ipc_to_frame", "list_snapshots", "load", "save", "to_parquet"]

DEFAULT_PART_BYTES = 64 * 1024 * 1024
COMPRESSIONS = (None, "zstd", "lz4")


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


def frame_to_ipc(frame: pd.DataFrame, compression: Literal["zstd", "lz4"] | None = None) -> bytes:
    """Arrow IPC stream bytes of ``frame``, index, dtypes and time zone included.

    Examples
    --------
    >>> frame = pd.DataFrame({"price": [1.0, 2.0]}, index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"))
    >>> ipc_to_frame(frame_to_ipc(frame, "zstd")).equals(frame)
    True
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidData(f"a snapshot holds a DataFrame, not {type(frame).__name__}")
    if compression not in COMPRESSIONS:
        raise InvalidData(f"compression={compression!r}: expected None, 'zstd' or 'lz4'")
    table = pa.Table.from_pandas(frame, preserve_index=True)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_to_frame(data: bytes) -> pd.DataFrame:
    """The DataFrame in Arrow IPC stream bytes."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except pa.ArrowInvalid as exc:
        raise InvalidData(f"not an Arrow IPC stream: {exc}") from None
    return table.to_pandas()


def _frame_of(source: pd.DataFrame | str | Iterable[str], kind: str, interval: str, start, end, conn) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    if kind == "ticks":
        return load_ticks(source, start, end, conn=conn, columns=["price", "volume", "trade_id", "side"])
    if kind == "ohlcv":
        return load_ohlcv(source, interval, start, end, conn=conn, columns=["open", "high", "low", "close", "volume", "count"])
    raise InvalidData(f"kind={kind!r}: expected 'ticks' or 'ohlcv'")


def save(
    source: pd.DataFrame | str | Iterable[str],
    name: str | None = None,
    *,
    path: str | os.PathLike | None = None,
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
    """
    if (name is None) == (path is None):
        raise InvalidData("give exactly one of name (a Redis snapshot) or path (a file)")
    if isinstance(part_bytes, bool) or not isinstance(part_bytes, int) or part_bytes < 1024:
        raise InvalidData(f"part_bytes={part_bytes!r}: expected a whole number of at least 1024")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
        raise InvalidData(f"ttl={ttl!r}: expected a positive whole number of seconds")
    conn = conn or connect()
    frame = _frame_of(source, kind, interval, start, end, conn)
    data = frame_to_ipc(frame, compression)
    info = SnapshotInfo(name or os.fspath(path), len(frame), len(data), 0, compression,
                        hashlib.sha256(data).hexdigest(), int(time.time() * 1000))
    if path is not None:
        with open(path, "wb") as out:
            out.write(data)
        return info
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
    raw = conn.sync.hgetall(conn.keys.snapshot(name))
    if not raw:
        raise NotFound(f"no snapshot named {name!r}")
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    return SnapshotInfo(fields["name"], int(fields["rows"]), int(fields["bytes"]), int(fields["parts"]),
                        fields["compression"] or None, fields["sha256"], int(fields["created_ms"]))


def load(name: str | None = None, *, path: str | os.PathLike | None = None, conn: Connection | None = None) -> pd.DataFrame:
    """The frame of a snapshot in Redis (``name``) or a file (``path``), identical to the one saved."""
    if (name is None) == (path is None):
        raise InvalidData("give exactly one of name (a Redis snapshot) or path (a file)")
    if path is not None:
        with open(path, "rb") as source:
            return ipc_to_frame(source.read())
    conn = conn or connect()
    described = info(name, conn=conn)
    parts = conn.sync.mget([conn.keys.snapshot(name, i) for i in range(described.parts)])
    if any(p is None for p in parts):
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
    names = set()
    for key in conn.sync.scan_iter(match=conn.keys.snapshot_pattern(), count=1000):
        text = key.decode()
        if ":part:" not in text:
            names.add(text[text.index("{") + 1 : text.rindex("}")])
    return sorted(names)


def to_parquet(
    source: pd.DataFrame | str | Iterable[str],
    path: str | os.PathLike,
    *,
    kind: Literal["ticks", "ohlcv"] = "ticks",
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    compression: str = "zstd",
    conn: Connection | None = None,
) -> int:
    """Write a frame, or symbols' ticks or candles, to a Parquet file; returns the rows written."""
    frame = _frame_of(source, kind, interval, start, end, conn or connect())
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), path, compression=compression)
    return len(frame)
