"""Backups: a whole namespace in one portable file, and its restore into any store, checked.

``redtick backup FILE`` (:func:`backup`) writes every symbol's ticks and candles (every stored
interval, imported bars included), the alerts (live ones, the fired-alert streams and the owners'
fired logs) and, with ``--include-sessions``, the sessions and preferences. ``redtick restore FILE``
(:func:`restore`) writes them into any store (``memory://``, the local store, a server, a cluster)
through the same connection as everything else, reads them back and compares them with the file.

**The file** is a zip archive of Parquet files and a ``manifest.json``; pandas or pyarrow read it
without Redis or redtick::

    import json, zipfile
    import pandas as pd

    with zipfile.ZipFile("store.redtick-backup") as archive:
        manifest = json.loads(archive.read("manifest.json"))
        ticks = pd.read_parquet(archive.open("series/ES/ticks.parquet"))
        bars = pd.read_parquet(archive.open("series/ES/candles-1m.parquet"))

Members (symbols percent-encoded in names: ``EUR/USD`` is ``EUR%2FUSD``):

- ``series/<symbol>/ticks.parquet``: ``ts`` (UTC, ms), ``trade_id``, ``price``, ``volume``, ``side``
  (1 buy, -1 sell, 0 unknown), in stored order (time, then trade id);
- ``series/<symbol>/candles-<interval>.parquet``: ``ts`` (bucket start), ``open high low close volume``,
  ``notional`` (sum of price x volume; NaN where an imported bar gave no VWAP), ``count`` (ticks in the
  bucket; -1 for an imported bar), and ``first_ts first_id last_ts last_id``, the ticks that set the open
  and the close, which decide how later ticks merge into the bucket;
- ``alerts/live.parquet`` (one row per alert, ``record`` the stored JSON), ``alerts/fired.parquet``
  (the fired-alert streams, with entry ids), ``alerts/logs.parquet`` (each owner's fired log, newest first);
- with sessions: ``sessions/sessions.parquet`` (the session hashes as JSON; data stays encrypted when
  ``REDTICK_ENCRYPTION_KEY`` encrypted it, so the target needs the same key) and ``sessions/preferences.parquet``.

**The manifest** holds ``format``, ``format_version``, ``redtick_version``, ``layout`` (tick record
and candle slot layout), ``namespace``, ``source`` (the URL without password), ``created``,
``intervals`` (name: width in ms), ``symbols`` and one entry per member in ``parts``: its ``path``,
``kind``, ``symbol`` and ``interval`` where they apply, ``rows``, ``sha256`` (the checksum of its
rows, :func:`table_checksum`) and ``file_sha256`` (of the member's bytes). The row checksum is over
a canonical form of the data, so the same data has the same checksum whichever backend held it.

**A restore** checks the whole file first (every member's bytes and rows against the manifest) and
refuses symbols the store already holds unless ``force`` (then those symbols, and nothing else, are
replaced), all before writing anything. It lists what it is about to write under a pending key
(:meth:`~redtick.keys.KeySchema.restore_pending`), writes one symbol at a time (ticks through the
tick writer without alert checks, so history never fires alerts; then each interval's candles
exactly as stored, finest first), reads each back, compares it with the manifest and only then
takes it off the pending list. A restore that stops halfway leaves the rest listed: ``redtick
info`` shows it, a restore refuses to call it done, and the same restore run again with ``--force``
completes it. Market data (seconds-lived), rate-limit windows, cached HTTP responses and snapshots
are not backed up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.metadata
import os
import secrets
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, cast
from urllib.parse import quote

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from redtick.catalog import layout_of, list_symbols
from redtick.clock import now_ms
from redtick.codec import CANDLE_DTYPE, TICK_DTYPE
from redtick.connection import Connection, connect
from redtick.errors import BackupCorrupt, ConfigurationError, InvalidData, RestoreConflict, RestoreIncomplete
from redtick.keys import ALERT_CONDITIONS, CANDLE_LAYOUT, KeySchema
from redtick.series import SeriesLayout
from redtick.steps import Batch, Command, Commit, Plan, Script, run
from redtick.ticks import NormalisedTicks
from redtick.writes import DEFAULT_BATCH

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BackupInfo",
    "Checksum",
    "RestoreReport",
    "backup",
    "backup_manifest",
    "pending_restore",
    "restore",
    "table_checksum",
]

FORMAT = "redtick-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LAYOUT = {"tick_record": "ts id price volume side, 33 bytes", "candles": CANDLE_LAYOUT}
_TICK_COLUMNS = {"ts": "ts", "trade_id": "id", "price": "price", "volume": "volume", "side": "side"}
_CANDLE_COLUMNS = ("open", "high", "low", "close", "volume", "notional", "count",
                   "first_ts", "first_id", "last_ts", "last_id")
_ALERT_KINDS = ("alerts", "fired", "logs")
_SESSION_KINDS = ("sessions", "preferences")
_SORT = {"ticks": ["ts", "trade_id"], "candles": ["ts"], "alerts": ["symbol", "alert_id"],
         "fired": ["symbol", "entry_id"], "logs": ["symbol", "user_id", "position"],
         "sessions": ["session_id"], "preferences": ["user_id"]}
_SCAN = 1000
_GROUP = 64  # tick or candle chunks read per round trip by a backup and by a restore's check
_BLOCK = 1 << 20
_UTC_MS = pa.timestamp("ms", tz="UTC")
_TICK_SCHEMA = pa.schema([("ts", _UTC_MS), ("trade_id", pa.int64()), ("price", pa.float64()), ("volume", pa.float64()),
                          ("side", pa.int8())])
_CANDLE_SCHEMA = pa.schema([("ts", _UTC_MS), *((name, pa.from_numpy_dtype(CANDLE_DTYPE[name])) for name in
                                               ("open", "high", "low", "close", "volume", "notional", "count",
                                                "first_ts", "first_id", "last_ts", "last_id"))])


# -- the canonical checksum ------------------------------------------------------------------------
def _is_bytes(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind))


class Checksum:
    """The canonical checksum of rows that arrive in batches (:func:`table_checksum` of them all at once).

    Each column feeds three SHA-256 streams: its validity (one byte a row, 1 valid and 0 null), its
    values (fixed-width ones as little-endian bytes, times as int64 epoch ms; for text and binary,
    their int64 byte lengths) and, for text and binary, their bytes (nulls as empty). The checksum is
    the SHA-256 of each column's name, a NUL byte and its three digests, in ``names`` order. A stream
    is the concatenation of its batches, so how rows are cut into batches, chunks or Parquet row
    groups, and which backend held them, does not change it.
    """

    def __init__(self, names: Iterable[str]):
        self.names = list(names)
        self.rows = 0
        self._streams = {name: (hashlib.sha256(), hashlib.sha256(), hashlib.sha256()) for name in self.names}

    def update(self, table: pa.Table | pa.RecordBatch) -> Checksum:
        """Add the next rows (their columns named as ``names``); returns this checksum."""
        for name in self.names:
            valid, values, data = self._streams[name]
            column = table.column(name)
            column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            valid.update(pc.is_valid(column).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
            if _is_bytes(column.type):
                raw = pc.fill_null(column.cast(pa.large_binary()), b"")
                values.update(np.asarray(pc.binary_length(raw), dtype="<i8").tobytes())
                offsets = np.frombuffer(raw.buffers()[1], dtype="<i8")[raw.offset : raw.offset + len(raw) + 1]
                buffer = raw.buffers()[2]
                if buffer is not None and len(raw):
                    data.update(memoryview(buffer)[int(offsets[0]) : int(offsets[-1])])
            else:
                if pa.types.is_timestamp(column.type):
                    column = column.cast(pa.int64())
                numbers = pc.fill_null(column, 0).to_numpy(zero_copy_only=False) if column.null_count \
                    else column.to_numpy(zero_copy_only=False)
                values.update(np.ascontiguousarray(numbers, dtype=numbers.dtype.newbyteorder("<")).tobytes())
        self.rows += table.num_rows
        return self

    def hexdigest(self) -> str:
        out = hashlib.sha256()
        for name in self.names:
            out.update(name.encode() + b"\0" + b"".join(stream.digest() for stream in self._streams[name]))
        return out.hexdigest()


def table_checksum(table: pa.Table) -> str:
    """SHA-256 (hex) of a canonical form of ``table``'s rows, in their order: what the manifest records per part.

    The form is :class:`Checksum`'s; a user can check a part of a backup with pyarrow alone
    (``table_checksum(pq.read_table(member))`` equals the part's ``sha256``).

    Examples
    --------
    >>> import pyarrow as pa
    >>> one = pa.table({"ts": pa.array([0, 1000], pa.timestamp("ms", tz="UTC")), "price": [1.5, 2.0]})
    >>> two = pa.concat_tables([one.slice(0, 1), one.slice(1)])  # same rows, two chunks
    >>> table_checksum(one) == table_checksum(two), table_checksum(one) == table_checksum(one.slice(1))
    (True, False)
    """
    return Checksum(table.column_names).update(table).hexdigest()


# -- what a backup holds ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BackupInfo:
    """What :func:`backup` wrote: the file, its size, what it holds and the seconds it took."""

    path: str
    bytes: int
    symbols: tuple[str, ...]
    ticks: int
    candles: int
    alerts: int
    fired: int
    sessions: int
    seconds: float
    manifest: Mapping[str, Any]

    def __str__(self) -> str:
        return (f"backed up {len(self.symbols)} symbol(s), {self.ticks:,} ticks, {self.candles:,} candles, "
                f"{self.alerts:,} alerts, {self.fired:,} fired alerts, {self.sessions:,} sessions to {self.path} "
                f"({self.bytes:,} bytes) in {self.seconds:.1f}s")


@dataclasses.dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore` wrote and verified: every count read back from the store matched the manifest."""

    path: str
    symbols: tuple[str, ...]
    replaced: tuple[str, ...]
    ticks: int
    candles: int
    alerts: int
    fired: int
    sessions: int
    sessions_expired: int
    seconds: float

    def __str__(self) -> str:
        replaced = f" ({len(self.replaced)} replaced: {', '.join(self.replaced)})" if self.replaced else ""
        expired = f", {self.sessions_expired:,} expired sessions left out" if self.sessions_expired else ""
        return (f"restored {len(self.symbols)} symbol(s){replaced}, {self.ticks:,} ticks, {self.candles:,} candles, "
                f"{self.alerts:,} alerts, {self.fired:,} fired alerts, {self.sessions:,} sessions{expired} from "
                f"{self.path} in {self.seconds:.1f}s; counts and checksums verified")


def _version() -> str:
    try:
        return importlib.metadata.version("redtick")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _series_path(symbol: str, leaf: str) -> str:
    return f"series/{quote(symbol, safe='')}/{leaf}.parquet"


def _rows(parts: Iterable[Mapping[str, Any]], kind: str) -> int:
    return sum(int(p["rows"]) for p in parts if p["kind"] == kind)


# -- reading the store -----------------------------------------------------------------------------
def _ranges(starts: list[int]) -> Iterator[tuple[int | None, int | None]]:
    """Time ranges covering every ``_GROUP`` chunks of an index and, together, the whole timeline.

    Each range runs to the next group's first chunk, not to its own last chunk's end, so no tick or
    candle is missed whatever chunk span it was stored with.
    """
    heads = starts[::_GROUP]
    for i in range(len(heads)):
        yield (None if i == 0 else heads[i]), (heads[i + 1] - 1 if i + 1 < len(heads) else None)


def _index(conn: Connection, key: str) -> list[int]:
    members = cast("list[bytes]", conn.sync.zrange(key, 0, -1))  # the sync client's reply
    return [int(m) for m in members]


def _tick_tables(conn: Connection, layout: SeriesLayout, symbol: str) -> Iterator[pa.Table]:
    """Every stored tick of ``symbol`` exactly as stored (the series' own reader), ``_GROUP`` chunks at a time."""
    for low, high in _ranges(_index(conn, conn.keys.tick_index(symbol))):
        got = run(conn.sync, lambda low=low, high=high: layout.current_layout(  # type: ignore[misc]
            symbol, layout.read_ticks_plan(symbol, low, high)))
        yield pa.table([pa.array(got[field]) for field in _TICK_COLUMNS.values()], schema=_TICK_SCHEMA)


def _candle_tables(conn: Connection, layout: SeriesLayout, symbol: str, interval: str) -> Iterator[pa.Table]:
    """Every stored ``interval`` candle of ``symbol``, each slot's fields exactly as stored, ``_GROUP`` chunks at a time."""
    for low, high in _ranges(_index(conn, conn.keys.candle_index(symbol, interval))):
        starts, columns = run(conn.sync, lambda low=low, high=high: layout.current_layout(  # type: ignore[misc]
            symbol, layout.read_candles_plan(symbol, interval, low, high)))
        yield pa.table([pa.array(starts), *(pa.array(columns[name]) for name in _CANDLE_COLUMNS)],
                       schema=_CANDLE_SCHEMA)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _alert_symbols(conn: Connection) -> list[str]:
    return sorted(_text(s) for s in conn.sync.smembers(conn.keys.alert_stream_symbols()))


def _log_users(conn: Connection, symbols: list[str]) -> dict[str, list[str]]:
    """{symbol: users with a fired-alert log on it}, from one SCAN of the namespace's alert keys."""
    keys = conn.keys
    found: dict[str, list[str]] = {s: [] for s in symbols}
    if not symbols:
        return found
    for raw in conn.sync.scan_iter(match=keys.pattern("alerts", tail="*"), count=_SCAN):
        key = _text(raw)
        symbol = keys.describe(key).symbol or ""
        prefix = keys.alert_log_prefix(symbol) if symbol in found else None
        if prefix is not None and key.startswith(prefix):  # user ids may hold ':', so cut at the prefix
            found[symbol].append(key[len(prefix):])
    return {s: sorted(users) for s, users in found.items()}


def _read_alerts(conn: Connection, symbols: list[str]) -> dict[str, pa.Table]:
    """The alert parts of ``symbols``: live records, fired streams, fired logs."""
    keys, client = conn.keys, conn.sync
    users = _log_users(conn, symbols)
    pipe = client.pipeline(transaction=False)
    for symbol in symbols:
        pipe.hgetall(keys.alert_data(symbol))
        pipe.xrange(keys.alert_stream(symbol))
        for user in users[symbol]:
            pipe.lrange(keys.alert_log(symbol, user), 0, -1)
    replies = iter(pipe.execute() if symbols else [])
    live: dict[str, list[Any]] = {n: [] for n in ("symbol", "alert_id", "user_id", "condition", "target_price",
                                                  "expires_at", "record")}
    fired: dict[str, list[Any]] = {n: [] for n in ("symbol", "entry_id", "alert_id", "record")}
    logs: dict[str, list[Any]] = {n: [] for n in ("symbol", "user_id", "position", "record")}
    for symbol in symbols:
        for alert_id, record in sorted(next(replies).items()):
            alert = orjson.loads(record)
            for name, value in (("symbol", symbol), ("alert_id", _text(alert_id)), ("user_id", alert["user_id"]),
                                ("condition", alert["condition"]), ("target_price", float(alert["target_price"])),
                                ("expires_at", int(alert["expires_at"])), ("record", bytes(record))):
                live[name].append(value)
        for entry_id, fields in next(replies):
            for name, value in (("symbol", symbol), ("entry_id", _text(entry_id)),
                                ("alert_id", _text(fields.get(b"alert_id", b""))), ("record", fields.get(b"record", b""))):
                fired[name].append(value)
        for user in users[symbol]:
            records = next(replies)
            logs["symbol"] += [symbol] * len(records)
            logs["user_id"] += [user] * len(records)
            logs["position"] += list(range(len(records)))
            logs["record"] += records
    return {
        "alerts": pa.table({n: pa.array(v, type=_alert_type(n)) for n, v in live.items()}),
        "fired": pa.table({n: pa.array(v, type=_alert_type(n)) for n, v in fired.items()}),
        "logs": pa.table({n: pa.array(v, type=_alert_type(n)) for n, v in logs.items()}),
    }


def _alert_type(name: str) -> pa.DataType:
    return {"target_price": pa.float64(), "expires_at": pa.int64(), "position": pa.int64(),
            "record": pa.binary()}.get(name, pa.string())


def _read_sessions(conn: Connection) -> dict[str, pa.Table]:
    """The sessions (each hash as JSON, with its expiry) and the users' preferences (with their expiry)."""
    keys, client = conn.keys, conn.sync
    members: list[tuple[bytes, float]] = client.zrange(keys.session_expiry(), 0, -1, withscores=True)  # type: ignore[assignment]
    pairs = [(_text(m).rpartition(":"), int(score)) for m, score in members]
    pipe = client.pipeline(transaction=False)
    for (_, _, session_id), _ in pairs:
        pipe.hgetall(keys.session(session_id))
    hashes = pipe.execute() if pairs else []
    sessions: dict[str, list[Any]] = {"session_id": [], "user_id": [], "expires_at": [], "fields": []}
    for ((user, _, session_id), expires_at), fields in zip(pairs, hashes, strict=True):
        if fields:  # an index entry whose session already expired
            sessions["session_id"].append(session_id)
            sessions["user_id"].append(user)
            sessions["expires_at"].append(expires_at)
            sessions["fields"].append(orjson.dumps({_text(k): _text(v) for k, v in fields.items()},
                                                   option=orjson.OPT_SORT_KEYS))
    preference_keys = [_text(k) for k in client.scan_iter(match=keys.pattern("user", tail="*"), count=_SCAN)
                       if keys.describe(k).metric_labels == ("user_session", "preferences")]
    pipe = client.pipeline(transaction=False)
    for key in preference_keys:
        pipe.get(key)
        pipe.pttl(key)  # not PEXPIRETIME: the local store may run Redis 6.2
    replies = pipe.execute() if preference_keys else []
    now = now_ms()
    preferences: dict[str, list[Any]] = {"user_id": [], "value": [], "expires_at": []}
    for key, value, left in zip(preference_keys, replies[0::2], replies[1::2], strict=True):
        if value is not None:
            preferences["user_id"].append(keys.describe(key).tag)
            preferences["value"].append(value)
            preferences["expires_at"].append(None if left < 0 else now + int(left))
    return {
        "sessions": pa.table({"session_id": pa.array(sessions["session_id"], pa.string()),
                              "user_id": pa.array(sessions["user_id"], pa.string()),
                              "expires_at": pa.array(sessions["expires_at"], pa.int64()),
                              "fields": pa.array(sessions["fields"], pa.binary())}),
        "preferences": pa.table({"user_id": pa.array(preferences["user_id"], pa.string()),
                                 "value": pa.array(preferences["value"], pa.binary()),
                                 "expires_at": pa.array(preferences["expires_at"], pa.int64())}),
    }


# -- writing the file ------------------------------------------------------------------------------
class _Archive:
    """A backup being written: a zip beside ``path``, renamed into place once whole."""

    def __init__(self, path: str, created: dt.datetime):
        self.path = path
        self.temporary = f"{path}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        self.stamp = created.timetuple()[:6]
        self.zip = zipfile.ZipFile(self.temporary, "x", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.parts: list[dict[str, Any]] = []

    def add(self, path: str, kind: str, table: pa.Table, **where: str) -> None:
        """A part of a few rows (alerts, sessions), sorted into its canonical order."""
        self.add_batches(path, kind, table.schema, [table.sort_by([(name, "ascending") for name in _SORT[kind]])],
                         **where)

    def add_batches(self, path: str, kind: str, schema: pa.Schema, tables: Iterable[pa.Table], **where: str) -> None:
        """A part from tables already in order, one Parquet row group each: memory holds one of them."""
        staged = f"{self.temporary}.part"
        checksum = Checksum(schema.names)
        try:
            with pq.ParquetWriter(staged, schema, compression="zstd") as writer:
                for table in tables:
                    writer.write_table(table)
                    checksum.update(table)
            digest = hashlib.sha256()
            with open(staged, "rb") as source, self.zip.open(zipfile.ZipInfo(path, self.stamp), "w",
                                                             force_zip64=True) as member:
                while block := source.read(_BLOCK):
                    digest.update(block)
                    member.write(block)
        finally:
            if os.path.exists(staged):
                os.unlink(staged)
        self.parts.append({"path": path, "kind": kind, **where, "rows": checksum.rows, "sha256": checksum.hexdigest(),
                           "file_sha256": digest.hexdigest()})

    def finish(self, manifest: dict[str, Any]) -> None:
        self.zip.writestr(zipfile.ZipInfo(MANIFEST, self.stamp), orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        self.zip.close()
        os.replace(self.temporary, self.path)

    def abandon(self) -> None:
        self.zip.close()
        if os.path.exists(self.temporary):
            os.unlink(self.temporary)


def backup(path: str | os.PathLike[str], *, include_sessions: bool = False,
           conn: Connection | None = None) -> BackupInfo:
    """Write the whole namespace of ``conn`` to one file: ticks, candles, alerts; sessions if asked.

    The file and how to read it without redtick are described in :mod:`redtick.backup`. It is
    written beside ``path`` and renamed into place, so a reader never sees half of it. Each symbol
    is read as it stands when its turn comes: back up a store whose writers are stopped for one
    consistent moment.

    Parameters
    ----------
    path : str or path
        The file to write (replaced if it exists).
    include_sessions : bool
        Also the sessions (their ids are bearer tokens: keep such a file as secret as the store)
        and the users' preferences.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.

    Raises
    ------
    UpgradeNeeded
        A symbol's candles are in an older layout: run ``redtick upgrade`` first.

    Examples
    --------
    >>> import json, os, tempfile, zipfile
    >>> import pandas as pd, redtick
    >>> conn = redtick.Connection(redtick.Settings(url="memory://", namespace="docsbackup"))
    >>> _ = redtick.write_ticks([{"ts": 1_000, "price": 10.0, "volume": 2.0}], "DOCSBACKUP", conn=conn)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "store.redtick-backup")
    >>> info = redtick.backup(path, conn=conn)
    >>> info.symbols, info.ticks
    (('DOCSBACKUP',), 1)
    >>> with zipfile.ZipFile(path) as archive:  # no Redis needed to read it
    ...     manifest = json.loads(archive.read("manifest.json"))
    ...     ticks = pd.read_parquet(archive.open("series/DOCSBACKUP/ticks.parquet"))
    >>> manifest["symbols"], ticks["price"].tolist()
    (['DOCSBACKUP'], [10.0])
    >>> folder.cleanup()
    """
    started = time.monotonic()
    conn = conn or connect()
    layout = layout_of(conn)
    target = os.fspath(path)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    symbols = list_symbols(conn=conn)
    alert_symbols = _alert_symbols(conn)
    archive = _Archive(target, created)
    try:
        for symbol in symbols:
            archive.add_batches(_series_path(symbol, "ticks"), "ticks", _TICK_SCHEMA, _tick_tables(conn, layout, symbol),
                                symbol=symbol)
            for name in layout.intervals:
                archive.add_batches(_series_path(symbol, f"candles-{name}"), "candles", _CANDLE_SCHEMA,
                                    _candle_tables(conn, layout, symbol, name), symbol=symbol, interval=name)
        for kind, table in _read_alerts(conn, alert_symbols).items():
            archive.add(f"alerts/{'live' if kind == 'alerts' else kind}.parquet", kind, table)
        if include_sessions:
            for kind, table in _read_sessions(conn).items():
                archive.add(f"sessions/{kind}.parquet", kind, table)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "redtick_version": _version(), "layout": LAYOUT,
            "namespace": conn.keys.namespace, "source": conn.settings.safe_url, "created": created.isoformat(),
            "id": secrets.token_hex(8), "intervals": dict(layout.intervals), "symbols": symbols,
            "alert_symbols": alert_symbols, "include_sessions": include_sessions, "parts": archive.parts,
        }
        archive.finish(manifest)
    except BaseException:
        archive.abandon()
        raise
    parts = archive.parts
    return BackupInfo(target, os.path.getsize(target), tuple(symbols), _rows(parts, "ticks"), _rows(parts, "candles"),
                      _rows(parts, "alerts"), _rows(parts, "fired"), _rows(parts, "sessions"),
                      time.monotonic() - started, manifest)


# -- reading the file ------------------------------------------------------------------------------
def _corrupt(path: str, why: str) -> BackupCorrupt:
    return BackupCorrupt(f"{path}: {why}; nothing was written. Use an intact copy of the backup "
                         "(a file made by `redtick backup`, unedited)")


def _open(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InvalidData(f"{path}: no such file; expected a file written by `redtick backup`") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise _corrupt(path, f"not a readable redtick backup ({exc})") from None


def _member(archive: zipfile.ZipFile, path: str, name: str) -> bytes:
    """A small member (the manifest) whole."""
    with _opened_member(archive, path, name) as member:
        return _read_checked(member, path, name, -1)


def _opened_member(archive: zipfile.ZipFile, path: str, name: str) -> IO[bytes]:
    try:
        return archive.open(name)
    except KeyError:
        raise _corrupt(path, f"member {name!r} named by the manifest is missing") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise _corrupt(path, f"member {name!r} is damaged ({exc})") from None


def _read_checked(member: IO[bytes], path: str, name: str, size: int) -> bytes:
    try:
        return member.read(size)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # a flipped byte fails the zip's CRC at the end
        raise _corrupt(path, f"member {name!r} is damaged ({exc})") from None


_PART_FIELDS = {"path": str, "kind": str, "rows": int, "sha256": str, "file_sha256": str}


def _checked_manifest(path: str, archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = orjson.loads(_member(archive, path, MANIFEST))
    except orjson.JSONDecodeError as exc:
        raise _corrupt(path, f"its manifest is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _corrupt(path, f"its manifest does not say format {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupCorrupt(f"{path}: backup format version {manifest.get('format_version')!r}; this redtick reads "
                            f"version {FORMAT_VERSION} (install the redtick that wrote it: "
                            f"{manifest.get('redtick_version')!r}); nothing was written")
    parts = manifest.get("parts")
    kinds = {"ticks", "candles", *_ALERT_KINDS, *_SESSION_KINDS}
    if not isinstance(parts, list) or not all(
            isinstance(p, dict) and all(isinstance(p.get(k), t) for k, t in _PART_FIELDS.items())
            and p["kind"] in kinds for p in parts):
        raise _corrupt(path, "its manifest's parts are malformed")
    series = {p.get("symbol") for p in parts if p["kind"] in ("ticks", "candles")}
    if not isinstance(manifest.get("symbols"), list) or series != set(manifest["symbols"]) \
            or not isinstance(manifest.get("intervals"), dict):
        raise _corrupt(path, "its manifest's symbols or intervals do not match its parts")
    return manifest


def _part_tables(path: str, archive: zipfile.ZipFile, part: Mapping[str, Any]) -> Iterator[pa.Table]:
    """The rows of one part in batches of at most ``DEFAULT_BATCH`` (as read; :func:`_check_part` checks them)."""
    with _opened_member(archive, path, part["path"]) as member:
        try:
            for batch in pq.ParquetFile(member).iter_batches(batch_size=DEFAULT_BATCH):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise _corrupt(path, f"member {part['path']!r} is not readable Parquet ({exc})") from None


def _part_table(path: str, archive: zipfile.ZipFile, part: Mapping[str, Any]) -> pa.Table:
    """A small part (alerts, sessions) whole."""
    with _opened_member(archive, path, part["path"]) as member:
        try:
            return pq.ParquetFile(member).read()
        except (pa.ArrowException, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise _corrupt(path, f"member {part['path']!r} is not readable Parquet ({exc})") from None


def _check_part(path: str, archive: zipfile.ZipFile, part: Mapping[str, Any]) -> None:
    """One part against the manifest: its bytes, then its rows' count and checksum, streamed."""
    digest = hashlib.sha256()
    with _opened_member(archive, path, part["path"]) as member:
        while block := _read_checked(member, path, part["path"], _BLOCK):
            digest.update(block)
    if digest.hexdigest() != part["file_sha256"]:
        raise _corrupt(path, f"member {part['path']!r} differs from the checksum its manifest records")
    checksum: Checksum | None = None
    for table in _part_tables(path, archive, part):
        checksum = (checksum or Checksum(table.column_names)).update(table)
    if checksum is None:  # no row group at all: the names come from the schema
        with _opened_member(archive, path, part["path"]) as member:
            checksum = Checksum(pq.ParquetFile(member).schema_arrow.names)
    if checksum.rows != part["rows"] or checksum.hexdigest() != part["sha256"]:
        raise _corrupt(path, f"member {part['path']!r} holds {checksum.rows:,} rows whose checksum differs from the "
                             f"manifest's ({part['rows']:,} rows)")


def backup_manifest(path: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
    """The manifest of a backup file, every part checked against it first unless ``verify=False``.

    Raises
    ------
    BackupCorrupt
        The file is damaged, edited, or not a redtick backup.

    Examples
    --------
    >>> import os, tempfile, redtick
    >>> conn = redtick.Connection(redtick.Settings(url="memory://", namespace="docsmanifest"))
    >>> _ = redtick.write_ticks([{"ts": 1_000, "price": 10.0, "volume": 2.0}], "DOCSMANIFEST", conn=conn)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "store.redtick-backup")
    >>> _ = redtick.backup(path, conn=conn)
    >>> manifest = redtick.backup_manifest(path)
    >>> manifest["symbols"], [(p["path"], p["rows"]) for p in manifest["parts"]][:2]
    (['DOCSMANIFEST'], [('series/DOCSMANIFEST/ticks.parquet', 1), ('series/DOCSMANIFEST/candles-1m.parquet', 1)])
    >>> folder.cleanup()
    """
    target = os.fspath(path)
    with _open(target) as archive:
        manifest = _checked_manifest(target, archive)
        if verify:
            for part in manifest["parts"]:
                _check_part(target, archive, part)
    return manifest


# -- restoring -------------------------------------------------------------------------------------
def pending_restore(*, conn: Connection | None = None) -> dict[str, str]:
    """What a restore began in this namespace and did not finish: ``{part: backup id}``, empty when none.

    Parts are ``symbol:<S>``, ``alerts`` and ``sessions``; what ``redtick info`` reports as incomplete.

    Examples
    --------
    >>> import redtick
    >>> pending_restore(conn=redtick.Connection(redtick.Settings(url="memory://", namespace="docspending")))
    {}
    """
    conn = conn or connect()
    return {_text(k): _text(v) for k, v in conn.sync.hgetall(conn.keys.restore_pending()).items()}


def _pending_field(kind: str, symbol: str | None = None) -> str:
    return KeySchema.restore_part(symbol) if symbol is not None else kind


def _conflicts(conn: Connection, manifest: Mapping[str, Any], force: bool, path: str) -> list[str]:
    """The backup's symbols the store holds (series or alerts); RestoreConflict for them unless ``force``."""
    held = set(list_symbols(conn=conn)) | set(_alert_symbols(conn))
    wanted = sorted(set(manifest["symbols"]) | set(manifest.get("alert_symbols", [])))
    clash = [s for s in wanted if s in held]
    if clash and not force:
        pending = [s for s in clash if _pending_field("symbol", s) in pending_restore(conn=conn)]
        note = (f"; a restore of {', '.join(pending)} was interrupted before it finished: rerun it with --force to "
                "complete it") if pending else ""
        shown = ", ".join(clash[:20]) + (f" ... (+{len(clash) - 20})" if len(clash) > 20 else "")
        raise RestoreConflict(f"the store (namespace {conn.keys.namespace!r}) already holds {len(clash)} symbol(s) "
                              f"of {path}: {shown}{note}. Nothing was written; `redtick restore {path} --force` "
                              "(restore(..., force=True)) replaces those symbols, and nothing else", symbols=clash)
    return clash


def _check_intervals(conn: Connection, manifest: Mapping[str, Any]) -> None:
    layout = layout_of(conn)
    missing = {name: ms for name, ms in manifest["intervals"].items() if layout.intervals.get(name) != ms}
    if missing:
        raise ConfigurationError(
            f"the backup holds candles of {', '.join(missing)}, which this store does not keep (REDTICK_INTERVALS "
            f"is {','.join(layout.intervals)}); add them to REDTICK_INTERVALS and restore again. Nothing was written")


def _series_keys(conn: Connection, layout: SeriesLayout, symbol: str) -> list[str]:
    """Every key of ``symbol``'s series: tick and candle indexes and chunks (both candle layouts), newest tick."""
    keys = conn.keys
    indexes: list[tuple[str, Callable[[int], str]]] = [(keys.tick_index(symbol), functools.partial(keys.tick_chunk, symbol))]
    for name in layout.intervals:
        indexes.append((keys.candle_index(symbol, name), functools.partial(keys.candle_chunk, symbol, name)))
        indexes.append((keys.legacy_candle_index(symbol, name), functools.partial(keys.legacy_candle_chunk, symbol, name)))
    pipe = conn.sync.pipeline(transaction=False)
    for index, _ in indexes:
        pipe.zrange(index, 0, -1)
    found = [index for index, _ in indexes]
    for (_, chunk), members in zip(indexes, pipe.execute(), strict=True):
        found += [chunk(int(m)) for m in members]
    return [*found, keys.current_price(symbol)]


def _unlink_plan(keys: list[str]) -> Plan[None]:
    for at in range(0, len(keys), _SCAN):
        yield Commit([("UNLINK", *keys[at : at + _SCAN])])


def _tick_records(table: pa.Table) -> np.ndarray:
    records = np.empty(table.num_rows, dtype=TICK_DTYPE)
    for name, field in _TICK_COLUMNS.items():
        column = table.column(name)
        records[field] = (column.cast(pa.int64()) if name == "ts" else column).to_numpy()
    return records


def _candle_records(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    records = np.zeros(table.num_rows, dtype=CANDLE_DTYPE)
    for name in _CANDLE_COLUMNS:
        records[name] = table.column(name).to_numpy()
    return table.column("ts").cast(pa.int64()).to_numpy(), records


def _restore_symbol(conn: Connection, layout: SeriesLayout, symbol: str, parts: list[dict[str, Any]],
                    batches: Callable[[Mapping[str, Any]], Iterator[pa.Table]], replace: bool) -> None:
    """Write one symbol's ticks, then its candles finest interval first, each exactly as the backup holds it."""
    if replace:
        run(conn.sync, lambda: _unlink_plan(_series_keys(conn, layout, symbol)))
    for part in parts:
        if part["kind"] == "ticks":
            for table in batches(part):
                batch = NormalisedTicks(_tick_records(table), 0, {}, 0)
                # The write without the alert check: restored history must not fire the store's alerts.
                run(conn.sync, functools.partial(layout.write_plan, symbol, batch))
    # Each interval's candles replace what the ticks built, and what a finer interval's import rolled up,
    # so every bucket ends exactly as stored, imported bars and their notional included.
    candles = sorted((p for p in parts if p["kind"] == "candles"), key=lambda p: layout.intervals[p["interval"]])
    for part in candles:
        for table in batches(part):
            starts, records = _candle_records(table)
            run(conn.sync, functools.partial(layout.set_candles_plan, symbol, part["interval"], starts, records))
    run(conn.sync, lambda: _step(Batch([("SADD", conn.keys.series_symbols(), symbol)])))


def _alert_commands(keys: KeySchema, symbol: str, live: pa.Table, fired: pa.Table, logs: pa.Table,
                    old_logs: list[str]) -> list[Command]:
    """The commands that make ``symbol``'s alert keys hold exactly the backup's alerts, streams and logs."""
    commands: list[Command] = [("UNLINK", keys.alert_data(symbol), keys.alert_expiry(symbol), keys.alert_stream(symbol),
                                *(keys.alert_index(symbol, c) for c in ALERT_CONDITIONS), *old_logs)]
    ids = live.column("alert_id").to_pylist()
    if ids:
        commands.append(("HSET", keys.alert_data(symbol),
                         *_flat(ids, live.column("record").to_pylist())))
        commands.append(("ZADD", keys.alert_expiry(symbol), *_flat(live.column("expires_at").to_pylist(), ids)))
        for condition in ALERT_CONDITIONS:
            mine = live.filter(pc.equal(live.column("condition"), condition))
            if mine.num_rows:
                commands.append(("ZADD", keys.alert_index(symbol, condition),
                                 *_flat(map(repr, mine.column("target_price").to_pylist()),
                                        mine.column("alert_id").to_pylist())))
    entries = sorted(zip(fired.column("entry_id").to_pylist(), fired.column("alert_id").to_pylist(),
                         fired.column("record").to_pylist(), strict=True),
                     key=lambda e: tuple(map(int, e[0].split("-"))))
    commands += [("XADD", keys.alert_stream(symbol), entry, "alert_id", alert_id, "record", record)
                 for entry, alert_id, record in entries]
    for user in sorted(set(logs.column("user_id").to_pylist())):
        mine = logs.filter(pc.equal(logs.column("user_id"), user)).sort_by("position")
        commands.append(("RPUSH", keys.alert_log(symbol, user), *mine.column("record").to_pylist()))
    return commands


def _flat(first: Iterable[Any], second: Iterable[Any]) -> list[Any]:
    return [x for pair in zip(first, second, strict=True) for x in pair]


def _user_steps(keys: KeySchema, live: pa.Table, logs: pa.Table) -> Iterator[Commit | Script]:
    """Per user: the alert records (id to symbol) and the symbols of their alerts and logs."""
    users = sorted(set(live.column("user_id").to_pylist()) | set(logs.column("user_id").to_pylist()))
    for user in users:
        mine = live.filter(pc.equal(live.column("user_id"), user))
        symbols = set(mine.column("symbol").to_pylist())
        symbols |= set(logs.filter(pc.equal(logs.column("user_id"), user)).column("symbol").to_pylist())
        yield Commit([("SADD", keys.user_alert_symbols(user), *sorted(symbols))])
        if mine.num_rows:
            yield Commit([("HSET", keys.user_alerts(user), *_flat(mine.column("alert_id").to_pylist(),
                                                                   mine.column("symbol").to_pylist()))])
            # The record outlives none of its alerts, as the cache keeps it (never shortened).
            latest = int(pc.max(mine.column("expires_at")).as_py())
            yield Script("extend_expiry", [keys.user_alerts(user)], [latest])


def _step(step: Batch | Commit | Script) -> Plan[Any]:
    """A plan of one step (a transaction on one slot, or one script)."""
    return (yield step)


def _commit(conn: Connection, commands: list[Command]) -> None:
    run(conn.sync, lambda: _step(Commit(commands)))


def _restore_alerts(conn: Connection, tables: dict[str, pa.Table], symbols: list[str]) -> None:
    """Make each backed-up alert symbol's alert keys hold the backup's, then its owners' records of them."""
    keys = conn.keys
    if symbols:
        _commit(conn, [("SADD", keys.alert_stream_symbols(), *symbols)])
    old_logs = _log_users(conn, symbols)
    live, fired, logs = tables["alerts"], tables["fired"], tables["logs"]
    for symbol in symbols:
        def mine(table: pa.Table, symbol: str = symbol) -> pa.Table:
            return table.filter(pc.equal(table.column("symbol"), symbol))
        commands = _alert_commands(keys, symbol, mine(live), mine(fired), mine(logs),
                                   [keys.alert_log(symbol, u) for u in old_logs[symbol]])
        _commit(conn, commands)
    for step in _user_steps(keys, live, logs):
        run(conn.sync, functools.partial(_step, step))


def _restore_sessions(conn: Connection, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Write the sessions and preferences that have not expired (session ids kept); the rows written."""
    keys, now = conn.keys, now_ms()
    sessions = tables["sessions"]
    live = sessions.filter(pc.greater(sessions.column("expires_at"), now))
    for session_id, user, expires_at, fields in zip(*(live.column(n).to_pylist() for n in live.column_names),
                                                    strict=True):
        mapping = orjson.loads(fields)
        # Indexes first, the hash last, as the session cache writes them (three slots on a cluster).
        _commit(conn, [("ZADD", keys.user_sessions(user), expires_at, session_id)])
        _commit(conn, [("ZADD", keys.session_expiry(), expires_at, f"{user}:{session_id}")])
        _commit(conn, [("HSET", keys.session(session_id), *_flat(mapping.keys(), mapping.values())),
                       ("PEXPIREAT", keys.session(session_id), expires_at)])
    preferences = tables["preferences"]
    lasting = pc.fill_null(pc.greater(preferences.column("expires_at"), now), True)
    preferences = preferences.filter(lasting)
    for user, value, expires_at in zip(*(preferences.column(n).to_pylist() for n in preferences.column_names),
                                       strict=True):
        expiry = () if expires_at is None else ("PXAT", expires_at)
        _commit(conn, [("SET", keys.user_preferences(user), value, *expiry)])
    return {"sessions": live, "preferences": preferences}


def _differs(path: str, stored: Checksum, rows: int, checksum: str) -> list[str]:
    if stored.rows == rows and stored.hexdigest() == checksum:
        return []
    return [f"{path} ({stored.rows:,} rows read back, {rows:,} in the backup)"]


def _verify_symbol(conn: Connection, layout: SeriesLayout, manifest: Mapping[str, Any], symbol: str) -> list[str]:
    """The parts of ``symbol`` whose rows, read back from the store, differ from the manifest's."""
    wrong = []
    for part in manifest["parts"]:
        if part.get("symbol") == symbol:
            ticks = part["kind"] == "ticks"
            stored = Checksum((_TICK_SCHEMA if ticks else _CANDLE_SCHEMA).names)
            for table in (_tick_tables(conn, layout, symbol) if ticks
                          else _candle_tables(conn, layout, symbol, part["interval"])):
                stored.update(table)
            wrong += _differs(part["path"], stored, part["rows"], part["sha256"])
    return wrong


def _verify_alerts(conn: Connection, manifest: Mapping[str, Any]) -> list[str]:
    """The alert parts whose rows, read back for the backup's alert symbols, differ from the manifest's."""
    stored = _read_alerts(conn, list(manifest.get("alert_symbols", [])))
    wrong = []
    for part in manifest["parts"]:
        if part["kind"] in _ALERT_KINDS:
            table = stored[part["kind"]].sort_by([(n, "ascending") for n in _SORT[part["kind"]]])
            wrong += _differs(part["path"], Checksum(table.column_names).update(table), part["rows"], part["sha256"])
    return wrong


def _verify_sessions(conn: Connection, written: dict[str, pa.Table]) -> list[str]:
    """The session parts whose written rows do not read back alike (the store may hold other users' too).

    A preference's expiry is read back as the time left from now, so only its user and value are compared.
    """
    stored = _read_sessions(conn)
    wrong = []
    for kind, key, columns in (("sessions", "session_id", None), ("preferences", "user_id", ["user_id", "value"])):
        expected = written[kind]
        mine = stored[kind].filter(pc.is_in(stored[kind].column(key), value_set=expected.column(key)))
        expected, mine = (t.sort_by(key).select(columns or t.column_names) for t in (expected, mine))
        wrong += _differs(f"sessions/{kind}.parquet", Checksum(mine.column_names).update(mine), expected.num_rows,
                          table_checksum(expected))
    return wrong


def _finish(conn: Connection, field: str, wrong: list[str], path: str) -> None:
    """Take ``field`` off the pending list if its parts read back right; RestoreIncomplete otherwise."""
    if wrong:
        raise RestoreIncomplete(
            f"{path}: {', '.join(wrong)} did not read back as the backup holds it (the store's retention or "
            "intervals may refuse part of it); it stays listed as an incomplete restore (redtick info)", parts=wrong)
    conn.sync.hdel(conn.keys.restore_pending(), field)


def restore(path: str | os.PathLike[str], *, force: bool = False, include_sessions: bool = True,
            conn: Connection | None = None) -> RestoreReport:
    """Load a file written by :func:`backup` into the store of ``conn``, and verify it there.

    Before anything is written, every part of the file is checked against its manifest
    (:class:`~redtick.errors.BackupCorrupt` if any differs), the store must keep the backup's candle
    intervals, and symbols the store already holds are refused (:class:`~redtick.errors.RestoreConflict`,
    naming them) unless ``force``, which replaces those symbols' series and alerts and touches
    nothing else. Each symbol is then written, read back and compared with the manifest (counts and
    checksums); what a restore began and did not finish stays listed (:func:`pending_restore`,
    ``redtick info``) and is completed by running it again with ``force``. The restored data keeps
    the backup's ids: trade ids, alert ids, fired-alert entry ids, session ids.

    Parameters
    ----------
    path : str or path
        A file written by :func:`backup`.
    force : bool
        Replace the symbols (and their alerts) that the store already holds.
    include_sessions : bool
        Restore the sessions and preferences the file holds (it holds them only if backed up with them).
    conn : Connection, optional
        Defaults to ``redtick.connect()``.

    Raises
    ------
    BackupCorrupt
        The file is damaged, edited, or not a redtick backup.
    RestoreConflict
        The store holds symbols of the backup and ``force`` is False.
    RestoreIncomplete
        What was written does not read back as the backup holds it.

    Examples
    --------
    >>> import os, tempfile, redtick
    >>> source = redtick.Connection(redtick.Settings(url="memory://", namespace="docsource"))
    >>> target = redtick.Connection(redtick.Settings(url="memory://", namespace="docstarget"))
    >>> _ = redtick.write_ticks([{"ts": 1_000, "price": 10.0, "volume": 2.0}], "DOCSRESTORE", conn=source)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "store.redtick-backup")
    >>> _ = redtick.backup(path, conn=source)
    >>> redtick.restore(path, conn=target).ticks
    1
    >>> redtick.load_ticks("DOCSRESTORE", conn=target)["price"].tolist()
    [10.0]
    >>> redtick.restore(path, conn=target)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.RestoreConflict: the store (namespace 'docstarget') already holds 1 symbol(s) of ...: DOCSRESTORE. ...
    >>> redtick.restore(path, conn=target, force=True).replaced
    ('DOCSRESTORE',)
    >>> folder.cleanup()
    """
    started = time.monotonic()
    target = os.fspath(path)
    conn = conn or connect()
    layout = layout_of(conn)
    with _open(target) as archive:
        manifest = _checked_manifest(target, archive)
        for part in manifest["parts"]:  # the whole file, before anything is written
            _check_part(target, archive, part)
        _check_intervals(conn, manifest)
        replaced = _conflicts(conn, manifest, force, target)
        return _write_all(conn, layout, archive, manifest, target, replaced, include_sessions, started)


def _write_all(conn: Connection, layout: SeriesLayout, archive: zipfile.ZipFile, manifest: dict[str, Any], path: str,
               replaced: list[str], include_sessions: bool, started: float) -> RestoreReport:
    def tables(part: Mapping[str, Any]) -> pa.Table:
        return _part_table(path, archive, part)

    def batches(part: Mapping[str, Any]) -> Iterator[pa.Table]:
        return _part_tables(path, archive, part)

    symbols = list(manifest["symbols"])
    by_kind = {p["kind"]: p for p in manifest["parts"] if p["kind"] in (*_ALERT_KINDS, *_SESSION_KINDS)}
    sessions = include_sessions and all(k in by_kind for k in _SESSION_KINDS)
    earlier = pending_restore(conn=conn)
    backup_id = str(manifest["id"])
    pending: dict[str | bytes, str | bytes] = {_pending_field("symbol", s): backup_id for s in symbols}
    pending.update({k: backup_id for k in ("alerts", "sessions") if k in by_kind and (k != "sessions" or sessions)})
    if pending:
        conn.sync.hset(conn.keys.restore_pending(), mapping=pending)  # type: ignore[arg-type]
    # A symbol an interrupted restore left half written is cleared too, even if it never got listed.
    held = set(replaced) | {s for s in symbols if _pending_field("symbol", s) in earlier}
    for symbol in symbols:
        parts = [p for p in manifest["parts"] if p.get("symbol") == symbol]
        _restore_symbol(conn, layout, symbol, parts, batches, replace=symbol in held)
        _finish(conn, _pending_field("symbol", symbol), _verify_symbol(conn, layout, manifest, symbol), path)
    if "alerts" in by_kind:
        alert_tables = {k: tables(by_kind[k]) for k in _ALERT_KINDS}
        _restore_alerts(conn, alert_tables, list(manifest.get("alert_symbols", [])))
        _finish(conn, "alerts", _verify_alerts(conn, manifest), path)
    expired = restored_sessions = 0
    if sessions:
        written = _restore_sessions(conn, {k: tables(by_kind[k]) for k in _SESSION_KINDS})
        restored_sessions = written["sessions"].num_rows
        expired = by_kind["sessions"]["rows"] - restored_sessions
        _finish(conn, "sessions", _verify_sessions(conn, written), path)
    parts = manifest["parts"]
    return RestoreReport(path, tuple(symbols), tuple(replaced), _rows(parts, "ticks"), _rows(parts, "candles"),
                         _rows(parts, "alerts"), _rows(parts, "fired"), restored_sessions, expired,
                         time.monotonic() - started)
