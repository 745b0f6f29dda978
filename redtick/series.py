"""The time-series layout: tick chunks, candle slots, and the plans that write, read and trim them.

Ticks of one symbol live in **chunks**: one string per ``tick_chunk`` span (1 hour by default)
of packed 33-byte records sorted by (time, id), indexed by a sorted set whose score is the chunk
start. Only the newest chunk, the head, stays raw and grows in place; with ``tick_compression``
every other chunk is stored sealed (:func:`~redtick.codec.seal_ticks`: compressed, its last record
raw at its end), and every reader decodes both formats (:func:`~redtick.codec.unpack_ticks`).
Candles of one interval live in **slot chunks**: one string per 1,440 buckets, 88 bytes a slot
(:data:`~redtick.codec.CANDLE_DTYPE`, volume and notional beside the prices) at a fixed offset,
so one bucket is read and rewritten with GETRANGE/SETRANGE. The slot layout is part of the candle
keys (:data:`~redtick.keys.CANDLE_LAYOUT`): slots of an earlier, narrower layout sit under other
keys and are never read as these. A symbol that still has them is refused by candle reads and by
writes (:class:`~redtick.errors.UpgradeNeeded`) until :meth:`SeriesLayout.rebuild_candles_plan`
(``redtick upgrade``) has rebuilt its candles from its ticks.

A write is one optimistic transaction over the symbol's keys (all in one cluster slot): WATCH
the chunks and slots it touches, read each chunk's last record (and the whole chunk only when
the batch reaches back into it), drop ticks already stored, then in MULTI/EXEC append or
rewrite the chunks and merge the new ticks into every interval's candles. A concurrent writer of
the same keys makes EXEC fail and the plan runs again, so nothing is lost or counted twice.
This is a client-side plan rather than Lua because decoding doubles in Lua needs ``struct``,
which the in-memory fakeredis lacks, and a per-tick command inside a script is what makes
scripts slow (see DESIGN.md); here the per-tick work is numpy on the client.

Retention, when configured, is one rule (:func:`retained_from`) applied on both sides: a write
refuses ticks older than the window behind the series' stored newest tick and deletes, in its own
transaction, the chunks its new newest tick puts out of the window; a trim deletes the same chunks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from redtick.candles import merge_candles, rollup_candles, tick_candles
from redtick.codec import (
    CANDLE_DTYPE,
    TICK_COLUMNS,
    TICK_DTYPE,
    TickChunk,
    candle_columns,
    candles_sealed,
    is_sealed,
    sealed_candles_size,
    unpack_candles,
    unpack_range,
    unpack_ticks,
    whole_candles,
    widen_v1_candles,
)
from redtick.config import Settings
from redtick.errors import ConflictError, InvalidData, UpgradeNeeded
from redtick.keys import KeySchema, validate_interval, validate_symbol
from redtick.steps import Batch, Command, Commit, Plan, T, Watch, gather, riding
from redtick.tick_write import (
    CandleEnds,
    CandleEndsReply,
    ChunkFormats,
    ChunkGroups,
    ChunkWrite,
    Ints,
    Records,
    StoredEnds,
    StoredEndsReply,
    TickCounts,
    TouchedSlots,
    WholeChunks,
    WholeChunksReply,
    behind_heads,
    candle_merges,
    candle_seal_commands,
    classify_chunks,
    current_price_command,
    fresh_mask,
    group_ticks,
    seal_command,
    slot_runs,
    tick_commands,
    touched_slots,
    whole_chunk,
)
from redtick.ticks import NormalisedTicks

__all__ = [
    "SLOTS",
    "CandleRebuild",
    "Compaction",
    "PreparedWrite",
    "RetentionWindow",
    "SeriesLayout",
    "WriteResult",
    "rebuilt_candles",
    "retained_from",
]

Arrays: TypeAlias = dict[str, npt.NDArray[Any]]  # named columns of records, field by field

TICK_SIZE = TICK_DTYPE.itemsize
CANDLE_SIZE = CANDLE_DTYPE.itemsize
SLOTS = 1440  # candle slots per chunk: a day of 1m candles, 60 days of 1h candles
PROBES = 64  # record times read per round trip when searching a chunk
SEARCH_ABOVE = 4096  # records (135 kB): a clipped chunk larger than this is searched, not fetched whole
_LATEST = (2**63 - 1).to_bytes(8, "little", signed=True)
REBUILD_CHUNKS = 16  # tick chunks read per round trip by a rebuild: its memory is that many chunks' ticks
TICK_FIELDS = TICK_COLUMNS  # every field of a tick record
CANDLE_FIELDS: tuple[str, ...] = tuple(CANDLE_DTYPE.fields or ())  # every field of a candle slot
_TICK_FIELDS = ("ts", "id", "price", "volume")


def retained_from(newest_ms: int, retention_ms: int, span_ms: int) -> int:
    """Start of the oldest chunk of ``span_ms`` that a retention of ``retention_ms`` keeps behind ``newest_ms``.

    The one retention rule, for writes and trims alike: a chunk ``[start, start + span)`` is kept
    while it ends after ``newest - retention``, so the chunk holding that cutoff and every later
    one stay. A tick or candle is kept iff its time is at or after the start returned; whole
    chunks go, so up to one chunk more than the retention is kept.

    Examples
    --------
    >>> hour, day = 3_600_000, 86_400_000
    >>> retained_from(10 * day + 5 * hour + 1, 7 * day, hour) == 3 * day + 5 * hour
    True
    """
    return (newest_ms - retention_ms) // span_ms * span_ms


@dataclasses.dataclass(frozen=True)
class RetentionWindow:
    """What retention keeps of one series: ticks and candle chunks from these starts on.

    ``ticks_from`` is None when ticks are kept whatever their age; ``candles_from`` maps each
    interval to its first kept candle chunk's start and is empty when candles are kept.
    """

    ticks_from: int | None = None
    candles_from: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def keeps_ticks(self, ts: Ints) -> npt.NDArray[np.bool_]:
        """True for each tick time the window keeps."""
        return np.ones(np.shape(ts), dtype=bool) if self.ticks_from is None else ts >= self.ticks_from

    def keeps_tick_chunk(self, start: int) -> bool:
        """True if the window keeps the tick chunk starting at ``start``."""
        return self.ticks_from is None or start >= self.ticks_from

    def keeps_candles(self, interval: str, starts: Ints) -> npt.NDArray[np.bool_]:
        """True for each bucket start of ``interval`` the window keeps."""
        first = self.candles_from.get(interval)
        return np.ones(np.shape(starts), dtype=bool) if first is None else starts >= first


@dataclasses.dataclass
class WriteResult:
    """What one write did.

    ``received = written + duplicates + sum(rejected.values()) + retention_refused``: bad rows
    are counted in ``rejected`` by reason, ticks refused by retention only in
    ``retention_refused``. The series holds ``written - trimmed_ticks`` more ticks than before.

    Attributes
    ----------
    written : int
        New ticks merged into the candles (and stored, unless trimmed by the same write).
    retention_refused : int
        Ticks older than the tick retention window behind the series' newest stored tick (a
        backfill the series no longer keeps): neither stored nor merged into the candles, since
        whether they were counted before can no longer be told.
    trimmed_chunks, trimmed_ticks : int
        Tick and candle chunks, and the ticks in them, that retention deleted because the write
        moved the newest tick forward; ``trimmed_ticks`` includes the write's own ticks that its
        newest tick put out of the window (merged into the candles, not kept as ticks).
    """

    symbol: str
    received: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    retention_refused: int = 0
    candles_updated: int = 0
    trimmed_chunks: int = 0
    trimmed_ticks: int = 0
    newest_ms: int | None = None
    low: float = math.nan
    high: float = math.nan
    last: float = math.nan
    fired_alerts: list[Any] = dataclasses.field(default_factory=list)  # redtick.caches.alerts.FiredAlert

    def __iadd__(self, other: WriteResult) -> WriteResult:
        self.received += other.received
        self.written += other.written
        self.duplicates += other.duplicates
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n
        self.retention_refused += other.retention_refused
        self.candles_updated += other.candles_updated
        self.trimmed_chunks += other.trimmed_chunks
        self.trimmed_ticks += other.trimmed_ticks
        if other.newest_ms is not None:
            self.newest_ms = other.newest_ms if self.newest_ms is None else max(self.newest_ms, other.newest_ms)
        if other.written and not math.isnan(other.last):
            self.low = other.low if math.isnan(self.low) else min(self.low, other.low)
            self.high = other.high if math.isnan(self.high) else max(self.high, other.high)
            self.last = other.last
        self.fired_alerts.extend(other.fired_alerts)
        return self


@dataclasses.dataclass
class PreparedWrite:
    """A write read and checked for duplicates, ready to commit (:meth:`SeriesLayout.prepare_write_plan`).

    Attributes
    ----------
    result : WriteResult
        What the write does once committed.
    commands : list of tuple
        Its MULTI/EXEC: the ticks, the candles, the current price, retention's trims.
    new : ndarray
        Its new tick records (sorted): what an alert check composed into the same commit looks at.
    finish : list of tuple
        What follows the commit (the SADD listing a new series' symbol, on another slot).
    ready : bool
        False when there is nothing to commit (no new tick): then neither the commit nor the finish runs.
    """

    result: WriteResult
    commands: list[Command] = dataclasses.field(default_factory=list)
    new: Records = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=TICK_DTYPE))
    finish: list[Command] = dataclasses.field(default_factory=list)
    ready: bool = False

    def finish_plan(self) -> Plan[None]:
        """Plan: what follows the commit."""
        if self.finish:
            yield Batch(self.finish)


@dataclasses.dataclass(frozen=True)
class _WriteTarget:
    """Where one write lands: its records by tick chunk and candle slot, what retention trims, its first read."""

    symbol: str
    records: Records
    window: RetentionWindow
    groups: ChunkGroups
    touched: dict[str, TouchedSlots]
    expiries: list[_Expiry]
    ends: StoredEnds

    def watched(self) -> list[str]:
        """The keys WATCHed before the first read: the chunks and slots it touches, the newest tick, the
        index, and the candle indexes retention trims."""
        candle_keys = [key for keys in self.ends.slot_keys for key in dict.fromkeys(keys)]
        return [*self.ends.chunk_keys, *candle_keys, self.ends.current_key, self.ends.index_key,
                *(e.index for e in self.expiries if not e.ticks)]


@dataclasses.dataclass(frozen=True)
class CandleRebuild:
    """What rebuilding one symbol's candles in the current layout did.

    Attributes
    ----------
    from_ticks : int
        Candles (all intervals) recomputed from the stored ticks, notional exact.
    kept : int
        Candles carried over as stored, since the ticks do not account for them: imported bars, or
        buckets whose ticks retention trimmed. Those of the older layout have an unknown notional
        (VWAP NaN) unless their volume is 0.
    old_keys_removed : int
        Keys of the older layout deleted: its candle indexes and the chunks they listed.
    """

    symbol: str
    from_ticks: int = 0
    kept: int = 0
    old_keys_removed: int = 0


@dataclasses.dataclass(frozen=True)
class Compaction:
    """What sealing one symbol's raw tick chunks did (:meth:`SeriesLayout.compact_plan`).

    Attributes
    ----------
    chunks : int
        Tick chunks of the series.
    sealed : int
        Chunks this run sealed.
    already_sealed : int
        Chunks found sealed.
    kept_raw : int
        Chunks left raw: the head, which grows in place, and chunks of a few ticks, smaller raw.
    bytes_before, bytes_after : int
        Stored bytes (string lengths) of all the series' tick chunks before and after.
    candle_chunks, candles_sealed : int
        Candle chunks of every interval, and those this run sealed (all but each interval's newest).
    candle_bytes_before, candle_bytes_after : int
        Stored bytes of all the series' candle chunks before and after.
    """

    symbol: str
    chunks: int = 0
    sealed: int = 0
    already_sealed: int = 0
    kept_raw: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    candle_chunks: int = 0
    candles_sealed: int = 0
    candle_bytes_before: int = 0
    candle_bytes_after: int = 0


@dataclasses.dataclass(frozen=True)
class _Sealing:
    """What sealing the chunks of one index did (:meth:`SeriesLayout._seal_chunks_plan`)."""

    chunks: int
    sealed: int
    already_sealed: int
    bytes_before: int
    bytes_after: int


def _packed(starts: np.ndarray, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(len(starts), dtype=CANDLE_DTYPE)
    for name, column in columns.items():
        out[name] = column
    return starts, out


def rebuilt_candles(from_ticks: tuple[np.ndarray, np.ndarray], older: tuple[np.ndarray, np.ndarray],
                    current: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bucket starts, candles, True where built from ticks) of one interval, from (starts, candles) pairs
    built from the stored ticks, stored in the older layout and stored in the current one.

    A bucket is built from its ticks when they account for every tick its stored candles counted
    (the older layout's plus those the current one gathered since), or when no candle is stored
    for it: then its notional is exact. Otherwise (an imported bar, count -1; ticks trimmed by
    retention) the stored candles are merged as they were, and a notional the older layout did
    not keep stays unknown. Empty buckets are left out.

    Examples
    --------
    >>> from redtick.codec import CANDLE_DTYPE_V1
    >>> ticks = np.zeros(1, CANDLE_DTYPE); ticks[0] = (0, 1, 9, 1, 2, 10.0, 11.0, 10.0, 11.0, 2.0, 21.0)
    >>> old = np.zeros(2, CANDLE_DTYPE_V1)  # the first bucket's two ticks, and an imported bar
    >>> old["count"], old["close"], old["volume"] = [2, -1], [11.0, 9.5], [2.0, 5.0]
    >>> none = (np.zeros(0, np.int64), np.zeros(0, CANDLE_DTYPE))
    >>> starts, candles, exact = rebuilt_candles((np.array([0]), ticks),
    ...                                          (np.array([0, 60_000]), widen_v1_candles(old.tobytes())), none)
    >>> starts.tolist(), candles["notional"].tolist(), exact.tolist()
    ([0, 60000], [21.0, nan], [True, False])
    """
    starts = np.union1d(np.union1d(from_ticks[0], older[0]), current[0]).astype(np.int64)

    def aligned(pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        out = np.zeros(len(starts), dtype=CANDLE_DTYPE)
        out[np.searchsorted(starts, pair[0])] = pair[1]
        return out

    ticks, stored = aligned(from_ticks), merge_candles(aligned(older), aligned(current))
    exact = (ticks["count"] > 0) & ((stored["count"] == ticks["count"]) | (stored["count"] == 0))
    out = stored.copy()
    out[exact] = ticks[exact]
    filled = out["count"] != 0
    return starts[filled], out[filled], exact[filled]


@dataclasses.dataclass(frozen=True)
class _Expiry:
    """One index retention trims: chunks scored below ``first`` go."""

    index: str
    first: int
    chunk_key: Callable[[int], str]
    ticks: bool

    def read(self) -> Command:
        return ("ZRANGEBYSCORE", self.index, "-inf", self.first - 1)


@dataclasses.dataclass
class _Expired:
    """The chunks of one series that retention drops, found by the :class:`_Expiry` reads."""

    members: list[tuple[str, list[bytes]]]  # (index key, its members that go)
    chunk_keys: list[str]
    tick_chunk_keys: list[str]

    @classmethod
    def found(cls, expiries: list[_Expiry], replies: Sequence[list[bytes]]) -> _Expired:
        members: list[tuple[str, list[bytes]]] = []
        chunk_keys: list[str] = []
        tick_chunk_keys: list[str] = []
        for expiry, starts in zip(expiries, replies, strict=True):
            if not starts:
                continue
            members.append((expiry.index, list(starts)))
            found = [expiry.chunk_key(int(m)) for m in starts]
            chunk_keys += found
            if expiry.ticks:
                tick_chunk_keys += found
        return cls(members, chunk_keys, tick_chunk_keys)

    def commands(self) -> list[Command]:
        if not self.chunk_keys:
            return []
        return [("UNLINK", *self.chunk_keys), *(("ZREM", index, *starts) for index, starts in self.members)]


class SeriesLayout:
    """Where a symbol's ticks and candles live, and the plans that use them.

    Parameters
    ----------
    keys : KeySchema
    settings : Settings
        ``intervals``, ``tick_chunk_ms`` and the retentions come from here.
    """

    def __init__(self, keys: KeySchema, settings: Settings):
        self.keys = keys
        self.settings = settings
        self.chunk_ms = settings.tick_chunk_ms
        self.intervals = {name: validate_interval(name) for name in settings.intervals}
        self.tick_retention_ms = settings.tick_retention_ms
        self.candle_retention_ms = settings.candle_retention_ms
        self.compress = settings.tick_compression

    def span_ms(self, interval: str) -> int:
        return self.intervals[interval] * SLOTS

    # -- retention -------------------------------------------------------------------------------
    @property
    def retains(self) -> bool:
        """True when a tick or a candle retention is configured."""
        return self.tick_retention_ms is not None or self.candle_retention_ms is not None

    def window(self, newest_ms: int | None, tick_retention_ms: int | None,
               candle_retention_ms: int | None) -> RetentionWindow:
        """What retentions of these lengths keep behind ``newest_ms``; everything when it is None.

        ``newest_ms`` is a series' newest tick for the configured retention (a series without one
        keeps everything), the wall clock only for :meth:`PriceCache.cleanup_old_data`.
        """
        if newest_ms is None:
            return RetentionWindow()
        ticks_from = None if tick_retention_ms is None else retained_from(newest_ms, tick_retention_ms, self.chunk_ms)
        candles_from = {} if candle_retention_ms is None else {
            name: retained_from(newest_ms, candle_retention_ms, self.span_ms(name)) for name in self.intervals}
        return RetentionWindow(ticks_from, candles_from)

    def retention_window(self, newest_ms: int | None) -> RetentionWindow:
        """What the configured retention keeps behind a series' newest tick ``newest_ms``."""
        return self.window(newest_ms, self.tick_retention_ms, self.candle_retention_ms)

    def _expiries(self, symbol: str, window: RetentionWindow) -> list[_Expiry]:
        """The indexes of ``symbol`` that ``window`` trims, each with the first chunk start it keeps."""
        expiries = []
        if window.ticks_from is not None:
            expiries.append(_Expiry(self.keys.tick_index(symbol), window.ticks_from,
                                    functools.partial(self.keys.tick_chunk, symbol), True))
        for name, first in window.candles_from.items():
            expiries.append(_Expiry(self.keys.candle_index(symbol, name), first,
                                    functools.partial(self.keys.candle_chunk, symbol, name), False))
        return expiries

    def trim_plan(self, symbol: str, window: RetentionWindow) -> Plan[tuple[int, int]]:
        """Plan: delete the chunks of ``symbol`` that ``window`` does not keep; returns (chunks, ticks) deleted.

        Writes trim behind their own newest tick in their transaction; this is for maintenance
        (the configured retention after a change of it) and :meth:`PriceCache.cleanup_old_data`.
        The indexes are watched before they are read and the chunks found before they are
        measured, so the counts are exact even when a writer touches the series meanwhile.
        """
        expiries = self._expiries(symbol, window)
        if not expiries:
            return 0, 0
        yield Watch([e.index for e in expiries])
        expired = _Expired.found(expiries, (yield Batch([e.read() for e in expiries])))
        if not expired.chunk_keys:
            return 0, 0
        yield Watch(expired.chunk_keys)
        counts = TickCounts(expired.tick_chunk_keys)
        replies = yield Batch(counts.commands())
        yield Commit(expired.commands())
        return len(expired.chunk_keys), sum(counts.parse(replies))

    # -- sealing -----------------------------------------------------------------------------------
    def compact_plan(self, symbol: str) -> Plan[Compaction]:
        """Plan: seal every raw tick chunk of ``symbol`` but its head, and every raw candle chunk but each
        interval's newest; a :class:`Compaction`.

        For series written before sealed chunks, or with ``REDTICK_TICK_COMPRESSION=off``, and for candle
        chunks, which writes never seal: it seals whatever that setting says, as it is asked for. Idempotent:
        a second run seals nothing. Reads are the same before and after.
        """
        symbol = validate_symbol(symbol)
        keys = self.keys
        ticks = yield from self._seal_chunks_plan(keys.tick_index(symbol), functools.partial(keys.tick_chunk, symbol),
                                                  is_sealed, lambda blob: whole_chunk(unpack_ticks(blob), True))
        candles = []
        for name in self.intervals:
            candles.append((yield from self._seal_chunks_plan(
                keys.candle_index(symbol, name), functools.partial(keys.candle_chunk, symbol, name), candles_sealed,
                lambda blob: whole_candles(unpack_candles(blob), True))))
        return Compaction(symbol, ticks.chunks, ticks.sealed, ticks.already_sealed,
                          ticks.chunks - ticks.already_sealed - ticks.sealed, ticks.bytes_before, ticks.bytes_after,
                          sum(c.chunks for c in candles), sum(c.sealed for c in candles),
                          sum(c.bytes_before for c in candles), sum(c.bytes_after for c in candles))

    @staticmethod
    def _seal_chunks_plan(index: str, key_of: Callable[[int], str], sealed_format: Callable[[bytes], bool],
                          seal: Callable[[bytes], bytes]) -> Plan[_Sealing]:
        """Plan: seal every raw chunk listed in ``index`` but its newest (the head); a :class:`_Sealing`.

        :data:`REBUILD_CHUNKS` chunks at a time, each group in an optimistic transaction over its chunks
        (a write into one of them runs the plan again, and what was sealed stays sealed); the head, read
        in the same round trip as the group, is never sealed, nor is a chunk that ``seal`` does not make
        smaller.
        """
        (members,) = yield Batch([("ZRANGE", index, 0, -1)])
        keys = [key_of(int(m)) for m in members]
        replies = yield Batch([cmd for key in keys for cmd in (("GETRANGE", key, 0, 7), ("STRLEN", key))])
        found = [sealed_format(prefix or b"") for prefix in replies[0::2]]
        lengths = dict(zip(keys, map(int, replies[1::2]), strict=True))
        raw = [key for key, sealed in zip(keys[:-1], found, strict=False) if not sealed and lengths[key]]
        after, done = dict(lengths), 0
        for at in range(0, len(raw), REBUILD_CHUNKS):
            group = raw[at : at + REBUILD_CHUNKS]
            yield Watch(group)
            *blobs, head = yield Batch([*(("GET", key) for key in group), ("ZRANGE", index, -1, -1)])
            head_key = key_of(int(head[0])) if head else None
            commands: list[Command] = []
            for key, blob in zip(group, blobs, strict=True):
                if blob and not sealed_format(blob) and key != head_key:
                    encoded = seal(blob)
                    if len(encoded) < len(blob):
                        commands.append(("SET", key, encoded))
                        after[key] = len(encoded)
            if commands:  # else the group's WATCH carries on into the next group's transaction
                yield Commit(commands)
            done += len(commands)
        return _Sealing(len(keys), done, sum(found), sum(lengths.values()), sum(after.values()))

    def newest_plan(self, symbol: str) -> Plan[int | None]:
        """Plan: the newest tick's time (ms), or None."""
        (reply,) = yield Batch([("HGET", self.keys.current_price(symbol), "ts")])
        return None if reply is None else int(reply)

    # -- the candle layout ------------------------------------------------------------------------
    def _legacy_indexes(self, symbol: str) -> list[str]:
        return [self.keys.legacy_candle_index(symbol, name) for name in self.intervals]

    def current_layout(self, symbol: str, plan: Plan[T]) -> Plan[T]:
        """``plan`` on ``symbol``, stopped with :class:`~redtick.errors.UpgradeNeeded` before it writes or
        returns anything if the symbol's candles are in the older layout.

        The check is one EXISTS of the older layout's candle indexes riding in the plan's first
        round trip: without it, a read would miss the older candles and a write would build
        candles of its new ticks only, whole-looking buckets that are partial.
        """

        def refuse(found: int) -> None:
            if found:
                raise UpgradeNeeded(symbol)

        return riding(plan, ("EXISTS", *self._legacy_indexes(symbol)), refuse)

    def rebuild_candles_plan(self, symbol: str) -> Plan[CandleRebuild]:
        """Plan: rebuild the candles of every interval of ``symbol`` in the current layout; a :class:`CandleRebuild`.

        Does nothing (all counts 0) unless the symbol has candles of the older layout. The stored
        ticks are read :data:`REBUILD_CHUNKS` chunks per round trip, so memory holds that many
        chunks' ticks and the candles; each bucket's candle is recomputed from its ticks, or kept
        as stored where the ticks do not account for it (:func:`rebuilt_candles`): bars imported
        in the older layout have no ticks behind them and are carried over with notional unknown
        (VWAP NaN), as are buckets whose ticks retention trimmed. Then, in one transaction, the
        candles are written over their buckets' slots in the current layout and the older
        layout's candle indexes and the chunks they list are deleted. Ticks are never touched.
        A concurrent write to the symbol's indexes, chunks or newest tick runs the plan again.
        """
        symbol = validate_symbol(symbol)
        keys = self.keys
        legacy_indexes = self._legacy_indexes(symbol)
        tick_index, current_key = keys.tick_index(symbol), keys.current_price(symbol)
        yield Watch([tick_index, current_key, *legacy_indexes, *(keys.candle_index(symbol, n) for n in self.intervals)])
        replies = yield Batch([("ZRANGE", tick_index, 0, -1), ("HGET", current_key, "ts"),
                               *(("ZRANGE", index, 0, -1) for index in legacy_indexes)])
        tick_chunks = [int(m) for m in replies[0]]
        newest = None if replies[1] is None else int(replies[1])
        legacy_starts = {name: [int(m) for m in members] for name, members in zip(self.intervals, replies[2:], strict=True)}
        legacy_chunks = {name: [keys.legacy_candle_chunk(symbol, name, c) for c in starts]
                         for name, starts in legacy_starts.items()}
        present = [index for index, members in zip(legacy_indexes, replies[2:], strict=True) if members]
        if not present:
            return CandleRebuild(symbol)
        yield Watch([keys.tick_chunk(symbol, start) for start in tick_chunks] + [k for ks in legacy_chunks.values() for k in ks])
        from_ticks = yield from self._tick_candles_plan(symbol, tick_chunks)
        window = self.retention_window(newest)
        commands: list[Command] = []
        built = kept = 0
        for name in self.intervals:
            blobs = (yield Batch([("GET", k) for k in legacy_chunks[name]])) if legacy_chunks[name] else []
            older = self._legacy_candles(name, legacy_starts[name], blobs)
            current = _packed(*(yield from self.read_candles_plan(symbol, name, None, None)))
            starts, candles, exact = rebuilt_candles(from_ticks[name], older, current)
            keep = window.keeps_candles(name, starts)
            commands += yield from self._put_candles_commands_plan(symbol, name, starts[keep], candles[keep])
            built, kept = built + int((exact & keep).sum()), kept + int((~exact & keep).sum())
        commands.append(("UNLINK", *(k for ks in legacy_chunks.values() for k in ks), *present))
        removed = (yield Commit(commands))[-1]
        return CandleRebuild(symbol, built, kept, int(removed))

    def _tick_candles_plan(self, symbol: str, tick_chunks: list[int]) -> Plan[dict[str, tuple[Ints, Records]]]:
        """Plan: {interval: (bucket starts, candles)} of every stored tick, read a few chunks at a time."""
        pieces: dict[str, list[tuple[Ints, Arrays]]] = {name: [] for name in self.intervals}
        for at in range(0, len(tick_chunks), REBUILD_CHUNKS):
            group = tick_chunks[at : at + REBUILD_CHUNKS]
            got = yield from self.read_ticks_plan(symbol, group[0], group[-1] + self.chunk_ms - 1, _TICK_FIELDS)
            for name, iv in self.intervals.items():
                pieces[name].append(tick_candles(got["ts"] // iv * iv, got))
        out = {}
        for name, iv in self.intervals.items():
            starts = _concat([p[0] for p in pieces[name]], np.dtype(np.int64))
            columns = {field: _concat([p[1][field] for p in pieces[name]], CANDLE_DTYPE[field]) for field in CANDLE_FIELDS}
            # A bucket split over two reads comes back as two candles; the roll-up merges them in time order.
            out[name] = rollup_candles(starts, columns, iv)
        return out

    def _legacy_candles(self, interval: str, chunks: list[int], blobs: list[bytes | None]) -> tuple[Ints, Records]:
        """(bucket starts, candles) of the non-empty slots of older-layout chunks, widened to the current dtype."""
        iv = self.intervals[interval]
        starts_of: list[Ints] = []
        pieces: list[Records] = []
        for chunk, blob in zip(chunks, blobs, strict=True):
            records = widen_v1_candles(blob)
            filled = np.flatnonzero(records["count"] != 0)
            starts_of.append(chunk + filled.astype(np.int64) * iv)
            pieces.append(records[filled])
        return _concat(starts_of, np.dtype(np.int64)), _concat(pieces, CANDLE_DTYPE)

    # -- writing ticks ---------------------------------------------------------------------------
    def write_plan(self, symbol: str, batch: NormalisedTicks) -> Plan[WriteResult]:
        """Plan: store ``batch`` (sorted, unique) and merge its new ticks into every interval's candles.

        The write alone: :func:`redtick.writes.checked_write_plan` composes the same prepared write
        with the symbol's alert check in one MULTI/EXEC, which is what the public writers run.

        With a retention configured, the series' stored newest tick is read first (one round trip
        more): ticks older than the window behind it are refused, and the chunks that the write's
        newest tick puts out of the window are deleted in the same transaction (the write's own
        ticks in them are merged into the candles, not stored). So no commit ever leaves data
        behind the window of the newest tick, and whatever order and batches ticks arrive in,
        the ticks stored are exactly those sent inside the final window (:func:`retained_from`).
        """
        return self.current_layout(symbol, self._write_plan(symbol, batch))

    def _write_plan(self, symbol: str, batch: NormalisedTicks) -> Plan[WriteResult]:
        """:meth:`write_plan` without the check of the candle layout."""
        prepared = yield from self.prepare_write_plan(symbol, batch)
        if prepared.ready:
            yield Commit(prepared.commands)
            yield from prepared.finish_plan()
        return prepared.result

    def prepare_write_plan(self, symbol: str, batch: NormalisedTicks) -> Plan[PreparedWrite]:
        """Plan: everything of a write up to its commit: WATCH what it touches, read it, drop the ticks already
        stored, and return the commands of its MULTI/EXEC with its result and its new tick records.

        A composition of the pure pieces of :mod:`redtick.tick_write`: the batch grouped by tick chunk
        and candle slot, step 1 (:class:`~redtick.tick_write.StoredEnds`: chunk ends, slots, newest
        tick, head chunk, retention's reads), each chunk classified, step 2
        (:class:`~redtick.tick_write.WholeChunks`: the chunks rewritten whole, the old head sealed),
        the duplicates dropped, then the tick commands and the candle merges.

        The caller commits :attr:`PreparedWrite.commands` (with more of its own, on the symbol's slot,
        such as the alert check) when :attr:`PreparedWrite.ready`, then runs
        :meth:`PreparedWrite.finish_plan`.
        """
        symbol = validate_symbol(symbol)
        result = WriteResult(symbol, received=batch.received, rejected=dict(batch.rejected), duplicates=batch.duplicates)
        records, stored_newest, window = batch.records, None, RetentionWindow()
        if self.retains and len(records):
            # Read before WATCH, as the keys to watch depend on what is refused; step 1 reads it
            # again under WATCH and runs the plan again if it moved.
            stored_newest = yield from self.newest_plan(symbol)
            records, window = self._refuse_behind(records, stored_newest, result)
        if len(records) == 0:
            return PreparedWrite(result)
        target = self._write_target(symbol, records, window)
        # The candle indexes too when they are trimmed: a concurrent writer that adds a chunk out
        # of the window must make this transaction fail rather than survive it.
        yield Watch(target.watched())
        # The formats ride step 1: only a raw tick chunk may be appended to or spliced, and only a raw
        # candle chunk's slots merged in place; with compression on, each interval's newest candle chunk
        # tells whether the write moves its head on (the old head is then sealed).
        formats = ChunkFormats(target.ends.chunk_keys if target.ends.wide else target.ends.chunk_keys[-1:])
        candle_ends = CandleEnds(list(dict.fromkeys(k for ks in target.ends.slot_keys for k in ks)),
                                 [self.keys.candle_index(symbol, name) for name in self.intervals] if self.compress else [])
        replies = yield Batch(target.ends.commands() + formats.commands() + candle_ends.commands())
        at = len(replies) - len(formats.keys) - len(candle_ends.keys) - len(candle_ends.index_keys)
        ends = target.ends.parse(replies[:at])
        sealed = formats.parse(replies[at : at + len(formats.keys)])
        at += len(formats.keys) - 1
        if self.retains and (None if ends.current is None else ends.current[0]) != stored_newest:
            # What was refused was judged behind a newest tick that has moved since.
            raise ConflictError("the series' newest tick moved while the write was planned")
        candles = self._candle_chunks_whole(target, candle_ends.parse(replies[at + 1 :]))
        writes, whole, expired = yield from self._whole_chunks_plan(target, ends, sealed, candles)
        return self._prepared(target, ends, writes, whole, expired, result)

    def _candle_chunks_whole(self, target: _WriteTarget, found: CandleEndsReply) -> tuple[list[str], list[str]]:
        """(touched candle chunks written whole: the sealed ones and, with compression on, those the write
        leaves behind their interval's head; the untouched old heads it moves past, to seal): the candle
        chunks of step 2's GETs."""
        wholes, seals = list(found.sealed), []
        behind = behind_heads(found.heads, list(target.touched.values())) if found.heads else []
        for name, (chunks, passed) in zip(self.intervals, behind, strict=False):
            wholes += [key for key in (self.keys.candle_chunk(target.symbol, name, c) for c in chunks) if key not in wholes]
            if passed is not None and target.window.keeps_candles(name, np.array([passed], np.int64))[0]:
                seals.append(self.keys.candle_chunk(target.symbol, name, passed))
        return wholes, seals

    def _write_target(self, symbol: str, records: Records, window: RetentionWindow) -> _WriteTarget:
        """Where a write of ``records`` lands, and its first read (:class:`~redtick.tick_write.StoredEnds`)."""
        keys = self.keys
        groups = group_ticks(records["ts"], self.chunk_ms)
        touched = {name: touched_slots(records["ts"], iv, SLOTS, window.candles_from.get(name))
                   for name, iv in self.intervals.items()}
        slot_keys = [[keys.candle_chunk(symbol, name, run.chunk) for run in t.runs] for name, t in touched.items()]
        expiries = self._expiries(symbol, window)
        # Compression off: every chunk's tail and length too, so late ticks splice into a raw chunk behind
        # the head instead of rewriting it whole (with compression on, such a chunk is sealed).
        ends = StoredEnds([keys.tick_chunk(symbol, s) for s in groups.starts], slot_keys, [t.runs for t in touched.values()],
                          keys.current_price(symbol), keys.tick_index(symbol), [e.read() for e in expiries],
                          wide=not self.compress)
        return _WriteTarget(symbol, records, window, groups, touched, expiries, ends)

    def _whole_chunks_plan(self, target: _WriteTarget, ends: StoredEndsReply, sealed: list[bool],
                           candles: tuple[list[str], list[str]]) -> Plan[tuple[list[ChunkWrite], WholeChunksReply, _Expired]]:
        """Plan: each chunk's kind of write, with the stored records of those rewritten whole (step 2), the
        old head chunk to seal, the ticks of the chunks retention trims, and the candle chunks written whole
        and sealed (``candles``: those merged into, those only sealed)."""
        groups, chunk_keys = target.groups, target.ends.chunk_keys
        expired = _Expired.found(target.expiries, ends.expired)
        head = groups.starts[-1] if ends.old_head is None else max(groups.starts[-1], ends.old_head)
        # ``sealed`` is every chunk's format when step 1 read them all (wide), else the last chunk's.
        writes = classify_chunks(target.records, groups, ends.tails, ends.head_length, head, last_sealed=sealed[-1],
                                 seal=self.compress, sealed=sealed if ends.lengths else None, lengths=ends.lengths or None)
        # A head that stops being the head is rewritten once (sealed) to give back the slack of its growth.
        seal = None
        if (ends.old_head is not None and ends.old_head < head and ends.old_head not in groups.starts
                and target.window.keeps_tick_chunk(ends.old_head)):
            seal = self.keys.tick_chunk(target.symbol, ends.old_head)
        candle_wholes, candle_seals = candles
        if seal or expired.chunk_keys or candle_seals:
            yield Watch(([seal] if seal else []) + expired.chunk_keys + candle_seals)
        rewritten = [i for i, write in enumerate(writes) if write.kind == "rewrite"]
        # The trimmed chunks are counted from their headers too: a sealed chunk's length is not its count.
        whole, trimmed = WholeChunks([chunk_keys[i] for i in rewritten], seal, []), TickCounts(expired.tick_chunk_keys)
        replies = yield Batch(whole.commands() + trimmed.commands() + [("GET", key) for key in candle_wholes + candle_seals])
        candles_at = len(replies) - len(candle_wholes) - len(candle_seals)
        at, seals_at = candles_at - len(trimmed.keys) * 2, candles_at + len(candle_wholes)
        got = dataclasses.replace(whole.parse(replies[:at]), trimmed_ticks=sum(trimmed.parse(replies[at:candles_at])),
                                  candle_wholes=dict(zip(candle_wholes, replies[candles_at:seals_at], strict=True)),
                                  candle_seals=dict(zip(candle_seals, replies[seals_at:], strict=True)))
        for i, blob in zip(rewritten, got.rewrites, strict=True):
            writes[i] = dataclasses.replace(writes[i], stored=unpack_ticks(blob))
        return writes, got, expired

    def _prepared(self, target: _WriteTarget, ends: StoredEndsReply, writes: list[ChunkWrite], whole: WholeChunksReply,
                  expired: _Expired, result: WriteResult) -> PreparedWrite:
        """The transaction of a write (step 3): its ticks, the candles, the current price and the trims."""
        symbol, records, groups = target.symbol, target.records, target.groups
        fresh = fresh_mask(records, groups, {i: w.stored for i, w in enumerate(writes) if w.stored is not None})
        new = records[fresh]
        result.duplicates += int(len(records) - len(new))
        result.written = len(new)
        if len(new) == 0:
            # Nothing new: the newest tick has not moved, so the window drops nothing a write left.
            return PreparedWrite(result)
        newest = new[-1]
        result.low, result.high, result.last = float(new["price"].min()), float(new["price"].max()), float(newest["price"])
        ticks = tick_commands(records, fresh, groups, writes, target.ends.chunk_keys, target.window.ticks_from)
        commands = ticks.commands
        sealing = seal_command(whole.seal_key, whole.sealed, self.compress)
        if sealing is not None:
            commands.append(sealing)
        if ticks.chunk_starts:
            commands.append(("ZADD", target.ends.index_key, *(x for s in ticks.chunk_starts for x in (s, s))))
        for (name, touched), keys, stored in zip(target.touched.items(), target.ends.slot_keys, ends.slots, strict=True):
            merges, updated = candle_merges(touched, keys, stored, new, self.keys.candle_index(symbol, name), whole.candle_wholes)
            commands += merges
            result.candles_updated += updated
        commands += candle_seal_commands(whole.candle_seals)
        current = current_price_command(target.ends.current_key, newest, ends.current)
        if current is not None:
            commands.append(current)
        result.newest_ms = max(int(newest["ts"]), -1 if ends.current is None else ends.current[0])
        commands += expired.commands()
        result.trimmed_chunks = len(expired.chunk_keys)
        result.trimmed_ticks += ticks.trimmed + whole.trimmed_ticks
        # A new series lists its symbol after the commit: the set is on another slot.
        finish: list[Command] = [("SADD", self.keys.series_symbols(), symbol)] if ends.old_head is None else []
        return PreparedWrite(result, commands, new, finish, ready=True)

    def _refuse_behind(self, records: Records, stored_newest: int | None,
                       result: WriteResult) -> tuple[Records, RetentionWindow]:
        """(the records retention keeps, the window behind the newest tick once they are written).

        Ticks older than the window behind the stored newest tick are refused and counted in
        ``result``: they are a backfill the series no longer keeps.
        """
        kept = self.retention_window(stored_newest).keeps_ticks(records["ts"])
        result.retention_refused = int(len(records) - kept.sum())
        records = records[kept]
        if len(records) == 0:
            return records, RetentionWindow()
        newest = int(records["ts"][-1]) if stored_newest is None else max(stored_newest, int(records["ts"][-1]))
        return records, self.retention_window(newest)

    # -- candles from elsewhere ------------------------------------------------------------------
    def set_candles_plan(self, symbol: str, interval: str, starts: Ints, candles: Records) -> Plan[int]:
        """Plan: store whole candles (replacing those buckets) from an exchange or a file.

        Every stored interval that is a multiple of ``interval`` is then rebuilt over the same
        span as the roll-up of ``interval``'s candles, so coarser reads see the import too.
        With a candle retention, candles out of the window behind the series' newest tick are
        refused, as ticks are. Returns how many candles were stored. Without a candle retention
        the check of the candle layout (:meth:`current_layout`) is one round trip of its own.
        """
        return self.current_layout(symbol, self._set_candles_plan(symbol, interval, starts, candles))

    def _set_candles_plan(self, symbol: str, interval: str, starts: Ints, candles: Records) -> Plan[int]:
        symbol = validate_symbol(symbol)
        iv = self._stored_interval(interval)
        if len(starts) == 0:
            return 0
        if np.any(starts % iv):
            raise InvalidData(f"candle times must be multiples of {interval} from the epoch")
        if self.candle_retention_ms is not None:
            # Kept now, they would go with the next trim. Their roll-ups need no check: a coarser
            # window starts on a coarser chunk boundary at or before this one's start, so every
            # coarser bucket holding a kept candle is kept too.
            window = self.retention_window((yield from self.newest_plan(symbol)))
            kept = window.keeps_candles(interval, starts)
            starts, candles = starts[kept], candles[kept]
            if len(starts) == 0:
                return 0
        yield from self._put_candles_plan(symbol, interval, starts, candles)
        for coarse, civ in self.intervals.items():
            if civ > iv and civ % iv == 0:
                low, high = int(starts.min()) // civ * civ, int(starts.max()) // civ * civ + civ - 1
                fine_starts, fine = yield from self.read_candles_plan(symbol, interval, low, high)
                yield from self._put_candles_plan(symbol, coarse, *rollup_candles(fine_starts, fine, civ))
        yield Batch([("SADD", self.keys.series_symbols(), symbol)])
        return len(starts)

    def _put_candles_plan(self, symbol: str, interval: str, starts: Ints, candles: Records) -> Plan[None]:
        yield Commit((yield from self._put_candles_commands_plan(symbol, interval, starts, candles)))

    def _put_candles_commands_plan(self, symbol: str, interval: str, starts: Ints, candles: Records) -> Plan[list[Command]]:
        """Plan: the commands that store ``candles`` over their buckets' slots, and the index ZADD.

        Under WATCH of the chunks, their first bytes tell their format: a raw chunk's slots are written in
        place (SETRANGE, one per run of adjacent buckets); a sealed chunk is read whole, its slots
        replaced, and written whole (SET), sealed again. With compression on, so is every chunk behind
        the interval's newest, and the newest stored one is sealed when the import moves past it.
        """
        if len(starts) == 0:
            return []
        iv = self.intervals[interval]
        span = iv * SLOTS
        chunk_of = starts // span * span
        chunks = np.unique(chunk_of).tolist()
        keys = [self.keys.candle_chunk(symbol, interval, chunk) for chunk in chunks]
        yield Watch(keys)
        ends = CandleEnds(keys, [self.keys.candle_index(symbol, interval)] if self.compress else [])
        found = ends.parse((yield Batch(ends.commands())))
        entire, passed = set(found.sealed), None
        if found.heads:
            newest = max(chunks + [h for h in found.heads if h is not None])
            entire.update(key for chunk, key in zip(chunks, keys, strict=True) if chunk < newest)
            head = found.heads[0]
            passed = self.keys.candle_chunk(symbol, interval, head) if head is not None and head < newest \
                and head not in chunks else None
            if passed:
                yield Watch([passed])
        fetched = sorted(entire) + ([passed] if passed else [])
        blobs = dict(zip(fetched, (yield Batch([("GET", key) for key in fetched])), strict=True)) if fetched else {}
        wholes = {key: blobs[key] for key in entire}
        commands: list[Command] = candle_seal_commands({passed: blobs[passed]}) if passed else []
        for chunk, key in zip(chunks, keys, strict=True):
            positions = np.flatnonzero(chunk_of == chunk)
            slots = (starts[positions] - chunk) // iv
            if key in wholes:
                stored = unpack_candles(wholes[key])
                whole = np.zeros(max(len(stored), int(slots.max()) + 1), CANDLE_DTYPE)
                whole[: len(stored)] = stored
                whole[slots] = candles[positions]
                commands.append(("SET", key, whole_candles(whole, True)))
                continue
            for a, b in slot_runs(slots):
                block = candles[positions[a] : positions[b] + 1]
                commands.append(("SETRANGE", key, int(slots[a]) * CANDLE_SIZE, block.tobytes()))
        commands.append(("ZADD", self.keys.candle_index(symbol, interval), *(x for c in chunks for x in (c, c))))
        return commands

    # -- reading ---------------------------------------------------------------------------------
    def read_ticks_plan(self, symbol: str, start_ms: int | None, end_ms: int | None,
                        fields: Sequence[str] = TICK_FIELDS) -> Plan[Arrays]:
        """Plan: columns ``fields`` of the ticks with ``start <= ts <= end``, sorted by (ts, id).

        Chunks inside the range come whole (MGET) and are decoded raw or sealed
        (:func:`~redtick.codec.unpack_ticks`). A large raw chunk that the range only clips is searched
        first (:meth:`_bracket_plan`) and only its part in range is fetched (GETRANGE), so a few
        seconds of a busy hour cost kilobytes, not the hour; a sealed one, a fraction of its raw
        size, comes whole and is cut after decoding. The chunks' reads share their round trips.
        Each wanted field is gathered straight from the decoded records, never copying whole records.
        """
        index = self.keys.tick_index(symbol)
        low = "-inf" if start_ms is None else start_ms // self.chunk_ms * self.chunk_ms
        high = "+inf" if end_ms is None else end_ms
        (members,) = yield Batch([("ZRANGEBYSCORE", index, low, high)])
        starts = [int(m) for m in members]
        keys = [self.keys.tick_chunk(symbol, c) for c in starts]
        clipped = [i for i, c in enumerate(starts)
                   if (start_ms is not None and start_ms > c) or (end_ms is not None and end_ms < c + self.chunk_ms - 1)]
        inside = [i for i in range(len(keys)) if i not in clipped]
        got: list[Any] = yield from gather(self._whole_blobs_plan([keys[i] for i in inside]),
                                *(_listed(self._clipped_chunk_plan(keys[i], start_ms, end_ms)) for i in clipped))
        chunks: dict[int, TickChunk] = dict(zip(inside, got[0], strict=True))
        chunks.update(zip(clipped, (chunk for (chunk,) in got[1:]), strict=True))
        # Chunks in time order, each sorted: the ticks in range are one run of their concatenation,
        # decoded straight into one array per field (no per-chunk records to gather and concatenate).
        return unpack_range([chunks[i] for i in range(len(keys))], fields, start_ms, end_ms)

    def _whole_blobs_plan(self, keys: list[str]) -> Plan[list[bytes]]:
        """Plan: each of ``keys`` fetched whole in one MGET, raw or sealed, not yet decoded."""
        if not keys:
            return []
        (blobs,) = yield Batch([("MGET", *keys)])
        return [blob or b"" for blob in blobs]

    def _whole_chunks_read_plan(self, keys: list[str]) -> Plan[list[Records]]:
        """Plan: the records of each of ``keys``, fetched whole in one MGET and decoded (raw or sealed)."""
        return [unpack_ticks(blob) for blob in (yield from self._whole_blobs_plan(keys))]

    def _raw_count_plan(self, key: str) -> Plan[tuple[int, bytes | None]]:
        """Plan: ``(its record count, None)`` for a raw chunk ``key``, ``(0, its whole bytes)`` for a sealed one.

        A raw chunk can be searched by record offset; a sealed one cannot, and is a fraction of its
        raw size, so it is fetched whole.
        """
        length, prefix = yield Batch([("STRLEN", key), ("GETRANGE", key, 0, 7)])
        if not is_sealed(prefix or b""):
            return int(length) // TICK_SIZE, None
        (blob,) = yield Batch([("GET", key)])
        return 0, blob or b""

    def _clipped_chunk_plan(self, key: str, start_ms: int | None, end_ms: int | None) -> Plan[TickChunk]:
        """Plan: records of a chunk the range ``[start, end]`` clips: at least those in range, sorted.

        A raw chunk of more than :data:`SEARCH_ABOVE` records is searched and only its part in range
        fetched; a smaller or a sealed one comes whole.
        """
        count, sealed = yield from self._raw_count_plan(key)
        if sealed is not None or count <= SEARCH_ABOVE:
            return sealed if sealed is not None else (yield from self._whole_blobs_plan([key]))[0]
        found = yield from gather(
            self._bracket_plan(key, count, start_ms, "left") if start_ms is not None else _fixed((0, 0)),
            self._bracket_plan(key, count, end_ms, "right") if end_ms is not None else _fixed((count, count)))
        # One record past the end bracket: it proves no tick of the range was pushed past the fetch by
        # a write that landed between the search and the fetch.
        return (yield from self._part_plan(key, found[0][0], found[1][1] + 1, end_ms))

    def _part_plan(self, key: str, first: int, end: int, bound: int | None) -> Plan[Records]:
        """Plan: records ``first`` to ``end`` (exclusive) of a chunk found raw (GETRANGE), on to its end if
        they all lie at or before ``bound`` (a concurrent insert may have pushed later ones past the
        fetch); the whole chunk, decoded, if it is sealed by then.

        The chunk's first bytes are read after its part: a chunk only turns from raw to sealed while
        a read runs (a write sealed it when the head moved on, between the search and the fetch),
        so one found raw then was raw when its part was read.
        """
        stop = end * TICK_SIZE - 1
        while True:
            blob, prefix = yield Batch([("GETRANGE", key, first * TICK_SIZE, stop), ("GETRANGE", key, 0, 7)])
            if is_sealed(prefix or b""):
                (blob,) = yield Batch([("GET", key)])
                return unpack_ticks(blob or b"")
            if stop == -1 or bound is None or not _short_of(blob, end - first, bound):
                return np.frombuffer(blob or b"", dtype=TICK_DTYPE)
            stop = -1  # rare: fetch from the same start to the chunk's end instead

    def boundary_plan(self, key: str, ts: int, side: Literal["left", "right"]) -> Plan[Records]:
        """Plan: records of the chunk ``key`` around its first record with time ``>= ts`` (``side="left"``)
        or ``> ts`` (``"right"``): from the record before it through it (or on to the chunk's end), sorted.

        A raw chunk is searched (:meth:`_bracket_plan`) rather than fetched; a sealed one comes whole.
        What the caller wants, the last record at or before ``ts`` or the first at or after it, is
        then in the records returned if the chunk has it.
        """
        count, sealed = yield from self._raw_count_plan(key)
        if sealed is not None:
            return unpack_ticks(sealed)
        lo, hi = yield from self._bracket_plan(key, count, ts, side)
        # From the record before the boundary's bracket to one past it: that last one shows whether a
        # write meanwhile pushed the boundary past the fetch (then the fetch goes on to the end).
        return (yield from self._part_plan(key, max(lo - 1, 0), hi + 1, ts if side == "right" else ts - 1))

    def _bracket_plan(self, key: str, count: int, ts: int, side: Literal["left", "right"]) -> Plan[tuple[int, int]]:
        """Plan: (lo, hi) with lo <= i <= hi, where i is the first record of the raw chunk whose time is
        ``>= ts`` (``side="left"``) or ``> ts`` (``"right"``), found with pipelined 8-byte probes.

        Each round trip reads the times of ``PROBES`` evenly spaced records and narrows the span
        ``PROBES``-fold, so a 400,000-record chunk takes two. Records only ever move later (ticks
        are inserted, never removed), so a concurrent write can make the bracket fetch a little
        more than needed, which the caller's final filter on time drops, never less. A chunk sealed
        meanwhile gives a meaningless bracket, which :meth:`_part_plan` finds out.
        """
        lo, hi = 0, count
        while hi - lo > PROBES:
            positions = np.unique(np.linspace(lo, hi - 1, PROBES).astype(np.int64))
            replies = yield Batch([("GETRANGE", key, int(p) * TICK_SIZE, int(p) * TICK_SIZE + 7) for p in positions])
            # A probe past the end (the chunk was trimmed meanwhile) reads as "later than anything".
            times = np.frombuffer(b"".join(r if len(r) == 8 else _LATEST for r in replies), dtype="<i8")
            k = int(np.searchsorted(times, ts, side=side))
            lo, hi = (int(positions[k - 1]) + 1 if k else lo), (int(positions[k]) if k < len(positions) else hi)
        return lo, hi

    def recent_ticks_plan(self, symbol: str, limit: int, start_ms: int | None, end_ms: int | None) -> Plan[Records]:
        """Plan: the newest ``limit`` records with ``start <= ts <= end``, oldest first.

        Records in a raw chunk are sorted and fixed-width, so a chunk that ends by ``end`` gives its
        newest ``n`` records as its last ``n * 33`` bytes (GETRANGE): a busy hour's chunk is not
        fetched whole for a hundred ticks. A sealed chunk comes whole. Chunks are visited newest
        first, one per round trip.
        """
        index = self.keys.tick_index(symbol)
        low = "-inf" if start_ms is None else start_ms // self.chunk_ms * self.chunk_ms
        high = "+inf" if end_ms is None else end_ms
        (members,) = yield Batch([("ZREVRANGEBYSCORE", index, high, low)])
        found: list[np.ndarray] = []
        have = 0
        for member in members:
            need = limit - have
            key = self.keys.tick_chunk(symbol, int(member))
            straddles_end = end_ms is not None and int(member) + self.chunk_ms - 1 > end_ms
            # A chunk that runs past ``end`` has its newest records in range somewhere inside: it comes whole.
            (records,) = yield from (self._whole_chunks_read_plan([key]) if straddles_end
                                     else _listed(self._tail_plan(key, need)))
            kept = _between(records, records["ts"], start_ms, end_ms)[-need:]
            found.append(kept)
            have += len(kept)
            reached_start = start_ms is not None and len(records) and records["ts"][0] < start_ms
            if have >= limit or reached_start:
                break
        if not found:
            return np.zeros(0, dtype=TICK_DTYPE)
        return np.concatenate(found[::-1])

    def _tail_plan(self, key: str, count: int) -> Plan[Records]:
        """Plan: at least the last ``count`` records of a chunk: its last ``count * 33`` bytes if it is raw,
        else the whole chunk decoded (its first bytes are read after the tail, as in :meth:`_part_plan`)."""
        blob, prefix = yield Batch([("GETRANGE", key, -count * TICK_SIZE, -1), ("GETRANGE", key, 0, 7)])
        if is_sealed(prefix or b""):
            (blob,) = yield Batch([("GET", key)])
            return unpack_ticks(blob or b"")
        return np.frombuffer(blob or b"", dtype=TICK_DTYPE)

    def price_at_plan(self, symbol: str, at_ms: int) -> Plan[np.void | None]:
        """Plan: the last record at or before ``at_ms``, or None.

        The chunk holding ``at_ms`` is searched (:meth:`boundary_plan`) rather than fetched; when
        it has no tick before ``at_ms`` the answer is the last record of the chunk before it (its
        last 33 bytes, raw at the end of a sealed chunk too).
        """
        (members,) = yield Batch([("ZREVRANGEBYSCORE", self.keys.tick_index(symbol), at_ms, "-inf", "LIMIT", 0, 2)])
        keys = [self.keys.tick_chunk(symbol, int(m)) for m in members]
        for position, key in enumerate(keys):
            if position == 0:
                records = yield from self.boundary_plan(key, at_ms, "right")
            else:
                (blob,) = yield Batch([("GETRANGE", key, -TICK_SIZE, -1)])
                records = np.frombuffer(blob or b"", dtype=TICK_DTYPE)
            records = records[records["ts"] <= at_ms]
            if len(records):
                last: np.void = records[-1]
                return last
        return None

    def change_plan(self, symbol: str, minutes: int, at_ms: int | None) -> Plan[tuple[np.void | None, np.void | None]]:
        """Plan: (record at or before ``at``, record at or before ``at - minutes``), either may be None.

        ``at`` defaults to the newest tick; both searches share their round trips.
        """
        if at_ms is None:
            at_ms = yield from self.newest_plan(symbol)
            if at_ms is None:
                return None, None
        current, previous = yield from gather(self.price_at_plan(symbol, at_ms),
                                              self.price_at_plan(symbol, at_ms - minutes * 60_000))
        return current, previous

    def _stored_interval(self, interval: str) -> int:
        if interval not in self.intervals:
            raise InvalidData(f"interval {interval!r} is not stored; stored intervals are {', '.join(self.intervals)}")
        return self.intervals[interval]

    def read_candles_plan(self, symbol: str, interval: str, start_ms: int | None, end_ms: int | None,
                          fields: Sequence[str] = CANDLE_FIELDS) -> Plan[tuple[Ints, Arrays]]:
        """Plan: (bucket starts, candle columns) of the non-empty stored ``interval`` candles with
        ``start <= bucket start <= end``.

        Only the slots in range are fetched (GETRANGE per chunk), and the candles come back as a
        dict of field arrays: gathering the wanted rows field by field from the reply's buffer is
        several times faster than copying 88-byte records. Other intervals are built from these
        by :mod:`redtick.reads`.
        """
        iv = self._stored_interval(interval)
        span = iv * SLOTS
        low = "-inf" if start_ms is None else start_ms // span * span
        high = "+inf" if end_ms is None else end_ms
        (members,) = yield Batch([("ZRANGEBYSCORE", self.keys.candle_index(symbol, interval), low, high)])
        chunks = [int(m) for m in members]
        first = [0 if start_ms is None else max(0, -((chunk - start_ms) // iv)) for chunk in chunks]
        last = [SLOTS - 1 if end_ms is None else min(SLOTS - 1, (end_ms - chunk) // iv) for chunk in chunks]
        keys = [self.keys.candle_chunk(symbol, interval, c) for c in chunks]
        blobs = yield from self._candle_chunks_plan(keys, first, last)
        starts_of, pieces = [], []
        for chunk, a, b, (offset, blob) in zip(chunks, first, last, blobs, strict=True):
            slots, columns = candle_columns(blob, fields, a, b, offset)
            starts_of.append(chunk + slots * iv)
            pieces.append(columns)
        starts = _concat(starts_of, np.dtype(np.int64))
        candles = {name: _concat([p[name] for p in pieces], CANDLE_DTYPE[name]) for name in fields}
        return starts, candles

    @staticmethod
    def _candle_chunks_plan(keys: Sequence[str], first: Sequence[int], last: Sequence[int]) -> Plan[list[tuple[int, bytes]]]:
        """Plan: (offset, bytes) of each candle chunk for its slots ``first`` to ``last``: a raw chunk's
        slots from ``first`` on (offset ``first``), a sealed chunk whole (offset 0).

        One round trip fetches the slots in range (GETRANGE), as for a raw chunk, and the first bytes
        of the chunks whose range does not start at slot 0, whose format the slots cannot tell. A
        sealed chunk is a fraction of its raw size, so a range from slot 0 mostly brings it whole; the
        sealed chunks that did not come whole are fetched (GET) in a second round trip.
        """
        probed = [i for i, a in enumerate(first) if a > 0]
        replies = yield Batch([("GETRANGE", key, a * CANDLE_SIZE, (b + 1) * CANDLE_SIZE - 1)
                               for key, a, b in zip(keys, first, last, strict=True)]
                              + [("GETRANGE", keys[i], 0, 7) for i in probed])
        prefixes = dict(zip(probed, replies[len(keys) :], strict=True))
        out, again = [], []
        for i, (a, blob) in enumerate(zip(first, replies[: len(keys)], strict=True)):
            blob = blob or b""
            if not candles_sealed(prefixes.get(i, blob) or b""):
                out.append((a, blob))
            elif a == 0 and len(blob) == sealed_candles_size(blob):
                out.append((0, blob))
            else:
                out.append((0, b""))
                again.append(i)
        if again:
            for i, blob in zip(again, (yield Batch([("GET", keys[i]) for i in again])), strict=True):
                out[i] = (0, blob or b"")  # whole, whichever format it has now
        return out

    def span_plan(self, symbol: str) -> Plan[tuple[int, int] | None]:
        """Plan: (first, last) ms that the symbol's tick chunks and candle chunks may cover, or None.

        One round trip over the indexes' first and last members: the bounds of an open-ended read.
        """
        indexes = [(self.keys.tick_index(symbol), self.chunk_ms)]
        indexes += [(self.keys.candle_index(symbol, name), iv * SLOTS) for name, iv in self.intervals.items()]
        replies = yield Batch([cmd for index, _ in indexes
                               for cmd in (("ZRANGE", index, 0, 0, "WITHSCORES"), ("ZRANGE", index, -1, -1, "WITHSCORES"))])
        firsts = [int(r[0][1]) for r in replies[0::2] if r]
        lasts = [int(r[0][1]) + span - 1 for r, (_, span) in zip(replies[1::2], indexes, strict=True) if r]
        return (min(firsts), max(lasts)) if firsts else None

    def last_close_plan(self, symbol: str, interval: str, before_ms: int) -> Plan[float | None]:
        """Plan: the close of the last non-empty stored ``interval`` candle starting before ``before_ms``, or None.

        Walks the candle chunks back from ``before_ms``, one round trip per chunk with no candle.
        """
        iv = self._stored_interval(interval)
        index = self.keys.candle_index(symbol, interval)
        high = before_ms - 1
        while True:
            (members,) = yield Batch([("ZREVRANGEBYSCORE", index, high, "-inf", "LIMIT", 0, 1)])
            if not members:
                return None
            chunk = int(members[0])
            slots = min(SLOTS, -((chunk - before_ms) // iv))
            ((offset, blob),) = yield from self._candle_chunks_plan(
                [self.keys.candle_chunk(symbol, interval, chunk)], [0], [slots - 1])
            _, columns = candle_columns(blob, ["close"], 0, slots - 1, offset)
            if len(columns["close"]):
                return float(columns["close"][-1])
            high = chunk - 1


def _short_of(blob: bytes | None, wanted: int, ts: int) -> bool:
    """True if a fetch of ``wanted`` records came back full yet ends at or before ``ts``: ticks at or
    before ``ts`` may lie beyond it (a concurrent insert moved them later)."""
    records = np.frombuffer(blob or b"", dtype=TICK_DTYPE)
    return len(records) == wanted and len(records) > 0 and int(records["ts"][-1]) <= ts


def _listed(plan: Plan[T]) -> Plan[list[T]]:
    """``plan``, its result in a one-item list: so plans of one result and of many run in one :func:`gather`."""
    return [(yield from plan)]


def _fixed(value: T) -> Plan[T]:
    """A plan that returns ``value`` at once (a search that is not needed)."""
    return value
    yield  # a generator, so gather() can run it beside real searches


def _concat(arrays: Sequence[npt.NDArray[Any]], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _between(values: Records, times: Ints, start_ms: int | None, end_ms: int | None) -> Records:
    """``values`` where ``start <= times <= end`` (either bound may be None)."""
    if start_ms is None and end_ms is None:
        return values
    keep = np.ones(len(times), dtype=bool)
    if start_ms is not None:
        keep &= times >= start_ms
    if end_ms is not None:
        keep &= times <= end_ms
    return values[keep]
