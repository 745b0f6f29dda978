"""What a store holds: its symbols, and for one symbol its ticks, candles, bytes and retention; its upgrade."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import weakref
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import redis

from redtick.codec import TICK_DTYPE, candles_sealed, is_sealed, unpack_candles, unpack_ticks
from redtick.connection import Connection, connect
from redtick.errors import InvalidData, RedtickError, RestoreIncomplete, SymbolNotFound
from redtick.keys import KeySchema, validate_symbol
from redtick.series import CandleRebuild, Compaction, SeriesLayout
from redtick.steps import Batch, Plan, T, riding, run
from redtick.tick_write import TickCounts

__all__ = [
    "IntervalInfo",
    "SeriesInfo",
    "check_missing",
    "compact",
    "describe",
    "layout_of",
    "list_symbols",
    "listing",
    "require_symbols",
    "store_summary",
    "symbol_not_found",
    "upgrade",
]

_TS = TICK_DTYPE["ts"].itemsize
_MEMORY_BATCH = 1000


@dataclasses.dataclass(frozen=True)
class IntervalInfo:
    """One stored interval of a symbol: how many candles, the first and the last bucket."""

    interval: str
    candles: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclasses.dataclass(frozen=True)
class SeriesInfo:
    """What :func:`describe` tells about one symbol."""

    symbol: str
    ticks: int
    first_tick: pd.Timestamp | None
    last_tick: pd.Timestamp | None
    intervals: tuple[IntervalInfo, ...]
    bytes: int
    bytes_measured: bool
    """True when ``bytes`` is the server's MEMORY USAGE; False when estimated from string lengths."""
    tick_retention: pd.Timedelta | None
    candle_retention: pd.Timedelta | None
    tick_chunks: int = 0
    sealed_chunks: int = 0
    """Tick chunks stored sealed (compressed); the others, the head among them, are raw."""
    tick_raw_bytes: int = 0
    """Bytes the ticks take decoded: 33 a tick, what a raw chunk stores."""
    tick_stored_bytes: int = 0
    """Bytes the tick chunks store (their string lengths, measured on every server)."""
    tick_memory: int | None = None
    """MEMORY USAGE of the tick chunks (measured, with Redis's per-key overhead), None without MEMORY."""
    candle_chunks: int = 0
    sealed_candle_chunks: int = 0
    """Candle chunks of every interval, and those stored sealed (``redtick compact``)."""
    candle_raw_bytes: int = 0
    """Bytes the candle chunks take decoded: 88 a slot, empty slots included, what a raw chunk stores."""
    candle_stored_bytes: int = 0
    """Bytes the candle chunks store (their string lengths, measured on every server)."""

    @property
    def tick_ratio(self) -> float:
        """Raw over stored bytes of the ticks (``nan`` without ticks): how many times smaller sealing made them."""
        return _ratio(self.tick_raw_bytes, self.tick_stored_bytes)

    @property
    def candle_ratio(self) -> float:
        """Raw over stored bytes of the candle chunks (``nan`` without candles)."""
        return _ratio(self.candle_raw_bytes, self.candle_stored_bytes)

    def frame(self) -> pd.DataFrame:
        """The stored intervals as a table: candles, first and last bucket."""
        rows = [dataclasses.astuple(i) for i in self.intervals]
        return pd.DataFrame(rows, columns=["interval", "candles", "first", "last"]).set_index("interval")

    def __str__(self) -> str:
        kept = {None: "everything (retention off)"}
        lines = [
            f"symbol          {self.symbol}",
            f"ticks           {self.ticks:,} from {self.first_tick} to {self.last_tick}",
            f"bytes in Redis  {self.bytes:,} ({'measured' if self.bytes_measured else 'estimated'})",
            f"tick bytes      {self.tick_stored_bytes:,} stored for {self.tick_raw_bytes:,} raw ({self.tick_ratio:.1f}x; "
            f"string lengths, measured), {self.sealed_chunks:,} of {self.tick_chunks:,} chunks sealed"
            + ("" if self.tick_memory is None else f", {self.tick_memory:,} in memory (MEMORY USAGE, measured)"),
            f"candle bytes    {self.candle_stored_bytes:,} stored for {self.candle_raw_bytes:,} raw "
            f"({_ratio(self.candle_raw_bytes, self.candle_stored_bytes):.1f}x; string lengths, measured), "
            f"{self.sealed_candle_chunks:,} of {self.candle_chunks:,} chunks sealed",
            f"tick retention  {kept.get(self.tick_retention, self.tick_retention)}",
            f"candle retention {kept.get(self.candle_retention, self.candle_retention)}",
        ]
        return "\n".join(lines) + "\n" + str(self.frame().to_string())


def _ratio(raw: int, stored: int) -> float:
    return raw / stored if stored else float("nan")


_LAYOUTS: weakref.WeakKeyDictionary[Connection, SeriesLayout] = weakref.WeakKeyDictionary()


def layout_of(conn: Connection) -> SeriesLayout:
    """The series layout of a connection (built once per connection)."""
    layout = _LAYOUTS.get(conn)
    if layout is None:
        layout = _LAYOUTS[conn] = SeriesLayout(conn.keys, conn.settings)
    return layout


def list_symbols(*, conn: Connection | None = None) -> list[str]:
    """The symbols with stored ticks or candles, sorted.

    ``await price_cache.get_all_symbols()`` is the async twin.

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 1.0, "volume": 1.0}], "DOCSLIST")
    >>> "DOCSLIST" in redtick.list_symbols()
    True
    """
    conn = conn or connect()
    return sorted(member.decode() if isinstance(member, bytes) else member
                  for member in conn.sync.smembers(conn.keys.series_symbols()))


def symbol_not_found(symbol: str, known: list[str]) -> SymbolNotFound:
    """The error for an unknown ``symbol``, naming the stored symbols closest to it."""
    close = difflib.get_close_matches(symbol, known, n=3, cutoff=0.5)
    close += [s for s in known if s.upper() == symbol.upper() and s not in close]
    hint = f"; did you mean {', '.join(repr(s) for s in close)}?" if close else ""
    listing = f" ({len(known)} stored: redtick.list_symbols() lists them)" if known else " (the store holds no series yet)"
    return SymbolNotFound(f"no data stored for symbol {symbol!r}{hint}{listing}", symbol=symbol, close_matches=close)


def check_missing(missing: str) -> str:
    """``missing`` if it is ``"raise"`` or ``"skip"``, else InvalidData."""
    if missing not in ("raise", "skip"):
        raise InvalidData(f"missing={missing!r}: expected 'raise' or 'skip'")
    return missing


def require_symbols(conn: Connection, symbols: list[str], missing: str = "raise",
                    listed: dict[str, bool] | None = None) -> list[str]:
    """``symbols`` that are stored; raise :class:`SymbolNotFound` for the first that is not, or drop it
    with ``missing="skip"``.

    ``listed`` holds what a read already learnt riding its first round trip (:func:`listing`); only
    the symbols it does not cover cost a round trip here.
    """
    check_missing(missing)
    listed = dict(listed or {})
    unknown = [s for s in symbols if s not in listed]
    if unknown:
        pipe = conn.sync.pipeline(transaction=False)
        for symbol in unknown:
            pipe.sismember(conn.keys.series_symbols(), symbol)
        listed.update(zip(unknown, map(bool, pipe.execute()), strict=True))
    absent = [s for s in symbols if not listed[s]]
    if absent and missing == "raise":
        raise symbol_not_found(absent[0], list_symbols(conn=conn))
    return [s for s in symbols if listed[s]]


def listing(keys: KeySchema, symbol: str, plan: Plan[T], listed: dict[str, bool]) -> Plan[T]:
    """``plan`` with a SISMEMBER of ``symbol`` in the symbols set riding its first round trip; the
    answer lands in ``listed`` (a plan that sends nothing leaves it out: :func:`require_symbols` asks).

    Whether a restore left ``symbol`` unverified rides along too: such a read raises
    :class:`~redtick.errors.RestoreIncomplete` rather than return what may be part of the symbol.
    """
    listed_plan = riding(plan, ("SISMEMBER", keys.series_symbols(), symbol),
                         lambda here: listed.__setitem__(symbol, bool(here)))
    part = keys.restore_part(symbol)
    # HGET, not HEXISTS: the least-privilege ACL user of the README already may run it.
    return riding(listed_plan, ("HGET", keys.restore_pending(), part), functools.partial(_refuse_partial, symbol, part))


def _refuse_partial(symbol: str, part: str, pending: Any) -> None:
    if pending is not None:
        raise RestoreIncomplete(f"symbol {symbol!r} is only partly restored: a restore stopped before it wrote and "
                                "verified it; run the same `redtick restore FILE --force` to complete it", parts=[part])


def _starts(members: Iterable[Any]) -> list[int]:
    """The chunk starts of an index's members (a ZRANGE reply)."""
    return [int(m) for m in members]


def _ms(value: int | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value, unit="ms", tz="UTC")


def _timedelta(ms: int | None) -> pd.Timedelta | None:
    return None if ms is None else pd.Timedelta(ms, unit="ms")


def describe(symbol: str, *, conn: Connection | None = None) -> SeriesInfo:
    """First and last tick, tick count, stored intervals, bytes in Redis and retention of ``symbol``.

    Raises
    ------
    SymbolNotFound
        Nothing is stored for ``symbol`` (the message names close matches).

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": "2013-09-03 13:30:00.250", "price": 1646.5, "volume": 3.0},
    ...                          {"ts": "2013-09-03 13:31:10", "price": 1647.0, "volume": 1.0}], "DOCSDESCRIBE")
    >>> info = redtick.describe("DOCSDESCRIBE")
    >>> info.ticks, str(info.first_tick), str(info.last_tick)
    (2, '2013-09-03 13:30:00.250000+00:00', '2013-09-03 13:31:10+00:00')
    >>> info.frame()["candles"].to_dict()
    {'1m': 2, '5m': 1, '15m': 1, '1h': 1, '4h': 1, '1d': 1}
    """
    conn = conn or connect()
    symbol = validate_symbol(symbol)
    require_symbols(conn, [symbol])
    layout, keys, client = layout_of(conn), conn.keys, conn.sync
    tick_chunks = _starts(client.zrange(keys.tick_index(symbol), 0, -1))
    tick_keys = [keys.tick_chunk(symbol, start) for start in tick_chunks]
    ticks = run(client, functools.partial(_tick_figures_plan, tick_keys))
    pipe = client.pipeline(transaction=False)
    candle_keys = {}
    for name in layout.intervals:
        starts = _starts(client.zrange(keys.candle_index(symbol, name), 0, -1))
        candle_keys[name] = [keys.candle_chunk(symbol, name, start) for start in starts]
        for key in candle_keys[name]:
            pipe.get(key)
    replies = pipe.execute()
    intervals = []
    candle_bytes = candle_raw = sealed_candles = at = 0
    for name, chunk_keys in candle_keys.items():
        starts, count = [], 0
        for blob in replies[at : at + len(chunk_keys)]:
            candle_bytes += len(blob or b"")
            sealed_candles += candles_sealed(blob or b"")
            slots = unpack_candles(blob)
            candle_raw += slots.nbytes
            filled = slots[slots["count"] != 0]  # an empty slot is all zeros; an imported bar counts -1
            count += len(filled)
            starts += [int(filled["first_ts"].min()), int(filled["last_ts"].max())] if len(filled) else []
        at += len(chunk_keys)
        iv = layout.intervals[name]
        first = _ms(min(starts) // iv * iv) if starts else None
        last = _ms(max(starts) // iv * iv) if starts else None
        intervals.append(IntervalInfo(name, count, first, last))
    tick_size, measured = _memory(conn, tick_keys, estimate=ticks.stored_bytes)
    candle_size, _ = _memory(conn, [k for ks in candle_keys.values() for k in ks], estimate=candle_bytes)
    return SeriesInfo(
        symbol=symbol,
        ticks=ticks.count,
        first_tick=_ms(ticks.first),
        last_tick=_ms(ticks.last),
        intervals=tuple(intervals),
        bytes=tick_size + candle_size,
        bytes_measured=measured,
        tick_retention=_timedelta(layout.tick_retention_ms),
        candle_retention=_timedelta(layout.candle_retention_ms),
        tick_chunks=len(tick_keys),
        sealed_chunks=ticks.sealed,
        tick_raw_bytes=ticks.count * TICK_DTYPE.itemsize,
        tick_stored_bytes=ticks.stored_bytes,
        tick_memory=tick_size if measured else None,
        candle_chunks=sum(len(ks) for ks in candle_keys.values()),
        sealed_candle_chunks=sealed_candles,
        candle_raw_bytes=candle_raw,
        candle_stored_bytes=candle_bytes,
    )


@dataclasses.dataclass(frozen=True)
class _TickFigures:
    count: int = 0
    sealed: int = 0
    stored_bytes: int = 0
    first: int | None = None
    last: int | None = None


def _tick_figures_plan(tick_keys: list[str]) -> Plan[_TickFigures]:
    """Ticks, sealed chunks, stored bytes, first and last tick time of the chunks ``tick_keys`` (oldest first).

    Each chunk's header and length tell its count (:class:`~redtick.tick_write.TickCounts`); the last
    tick is the newest chunk's last record, raw at the end of a sealed chunk too; the first is in the
    oldest chunk's first bytes if it is raw, else that chunk is decoded.
    """
    if not tick_keys:
        return _TickFigures()
    counts = TickCounts(tick_keys)
    *replies, last = yield Batch([*counts.commands(),
                                  ("GETRANGE", tick_keys[-1], -TICK_DTYPE.itemsize, -TICK_DTYPE.itemsize + _TS - 1)])
    prefixes = [prefix or b"" for prefix in replies[0::2]]
    first_bytes = prefixes[0][:_TS]
    if is_sealed(prefixes[0]):
        (blob,) = yield Batch([("GET", tick_keys[0])])
        first_bytes = unpack_ticks(blob or b"")["ts"][:1].tobytes()
    return _TickFigures(
        count=sum(counts.parse(replies)),
        sealed=sum(map(is_sealed, prefixes)),
        stored_bytes=sum(TickCounts.stored_bytes(replies)),
        first=int(np.frombuffer(first_bytes, "<i8")[0]) if len(first_bytes) == _TS else None,
        last=int(np.frombuffer(last, "<i8")[0]) if last else None,
    )


def _memory(conn: Connection, keys: list[str], *, estimate: int) -> tuple[int, bool]:
    """Bytes of ``keys`` by MEMORY USAGE, or ``estimate`` on ``memory://`` (no MEMORY command)."""
    if conn.in_memory:
        return estimate, False
    total = 0
    for at in range(0, len(keys), _MEMORY_BATCH):
        pipe = conn.sync.pipeline(transaction=False)
        for key in keys[at : at + _MEMORY_BATCH]:
            pipe.memory_usage(key, samples=0)
        total += sum(r or 0 for r in pipe.execute())
    return total, True


def store_summary(conn: Connection | None = None) -> list[tuple[str, str]]:
    """(figure, value) rows about the store: where it is, its server, keys, memory and symbols.

    What ``redtick info`` prints. ``memory://`` (fakeredis) has no INFO: its server facts read
    ``n/a``.
    """
    conn = conn or connect()
    rows = [("store", conn.settings.safe_url)]
    store = conn.store
    if store is not None:
        files = [p for p in store.home.iterdir() if p.is_file()]
        rows += [
            ("socket", str(store.socket_path)),
            ("server", f"{store.binary} (pid {store.server_pid() or 'not running'})"),
            ("files on disk", f"{_human(sum(p.stat().st_size for p in files))} in {store.home} (append-only file, "
                              "fsync every second)"),
        ]
    try:
        server, memory = conn.sync.info("server"), conn.sync.info("memory")
        version, used = server.get("redis_version", "?"), _human(int(memory.get("used_memory", 0)))
    except (RedtickError, redis.exceptions.ResponseError):
        version = used = "n/a (memory:// has no INFO)"
    symbols = list_symbols(conn=conn)
    rows += [
        ("server version", str(version)),
        ("keys", f"{conn.sync.dbsize():,} (all namespaces)"),
        ("memory used", used),
        ("symbols", f"{len(symbols):,}" + (f": {', '.join(symbols[:20])}" if symbols else "")
         + (f" ... (+{len(symbols) - 20:,})" if len(symbols) > 20 else "")),
    ]
    return rows


def _human(size: float) -> str:
    """A byte count as people read it: ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def upgrade(symbol: str | None = None, *, conn: Connection | None = None) -> list[CandleRebuild]:
    """Rebuild in the current layout the candles of every stored symbol (or of ``symbol``) that has
    candles of an older layout; what ``redtick upgrade`` runs.

    Each symbol's candles are recomputed from its stored ticks and its older candle keys deleted,
    in one transaction per symbol (:meth:`~redtick.series.SeriesLayout.rebuild_candles_plan`).
    Bars imported under the older layout have no ticks behind them: they are carried over with
    an unknown VWAP (NaN). Ticks are never touched. Symbols with nothing to upgrade are left
    alone and not listed, so a second run returns an empty list.

    Raises
    ------
    SymbolNotFound
        ``symbol`` is given and nothing is stored for it.

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 1.0, "volume": 1.0}], "DOCSUPGRADE")
    >>> redtick.upgrade("DOCSUPGRADE")  # already in the current layout
    []
    """
    conn = conn or connect()
    symbols = list_symbols(conn=conn) if symbol is None else require_symbols(conn, [validate_symbol(symbol)])
    layout = layout_of(conn)
    done = [run(conn.sync, functools.partial(layout.rebuild_candles_plan, s)) for s in symbols]
    return [r for r in done if r.old_keys_removed]


def compact(symbols: Iterable[str] | None = None, *, conn: Connection | None = None) -> list[Compaction]:
    """Seal every raw tick chunk but the head of each of ``symbols`` (default: every stored symbol); what
    ``redtick compact`` runs.

    For series written before sealed chunks or with ``REDTICK_TICK_COMPRESSION=off`` (writes with it on
    seal a chunk as soon as it stops being the head). One optimistic transaction per group of chunks
    (:meth:`~redtick.series.SeriesLayout.compact_plan`), so it may run beside writers. Reads return the
    same ticks before and after; a second run seals nothing.

    Raises
    ------
    SymbolNotFound
        A symbol given has nothing stored.

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 1.0, "volume": 1.0}], "DOCSCOMPACT")
    >>> [(c.chunks, c.sealed, c.kept_raw) for c in redtick.catalog.compact(["DOCSCOMPACT"])]  # one chunk: the head
    [(1, 0, 1)]
    """
    conn = conn or connect()
    wanted = list_symbols(conn=conn) if symbols is None else require_symbols(conn, [validate_symbol(s) for s in symbols])
    layout = layout_of(conn)
    return [run(conn.sync, functools.partial(layout.compact_plan, s)) for s in wanted]
