"""The pure pieces of a tick write: where it lands, how each chunk is written, its duplicates, its commands.

A chunk is stored raw (packed records: the head, which grows in place) or sealed
(:func:`redtick.codec.seal_ticks`: every other chunk when compression is on). Only a raw chunk is
appended to or spliced; a sealed one is read whole, decoded, merged and written whole. Candle chunks
the same: a raw one's slots are merged in place (SETRANGE), a sealed one
(:func:`redtick.codec.seal_candles`, by ``redtick compact``) is decoded, merged and written whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from redtick import scripts
from redtick.candles import candles_from_ticks, merge_candles
from redtick.codec import (
    CANDLE_DTYPE,
    SEALED_HEADER_SIZE,
    TICK_DTYPE,
    candles_sealed,
    is_sealed,
    seal_ticks,
    tick_count,
    unpack_candles,
    unpack_ticks,
    whole_candles,
)
from redtick.steps import Command

__all__ = [
    "HEAD_TAIL",
    "Blob",
    "CandleEnds",
    "CandleEndsReply",
    "ChunkFormats",
    "ChunkGroups",
    "ChunkKind",
    "ChunkWrite",
    "Ints",
    "Records",
    "SlotRun",
    "StoredEnds",
    "StoredEndsReply",
    "TickCommands",
    "TickCounts",
    "TouchedSlots",
    "WholeChunks",
    "WholeChunksReply",
    "behind_heads",
    "candle_merges",
    "candle_seal_commands",
    "classify_chunk",
    "classify_chunks",
    "current_price_command",
    "existing_mask",
    "fresh_mask",
    "group_ticks",
    "seal_command",
    "slot_runs",
    "tick_commands",
    "touched_slots",
    "whole_chunk",
]

TICK_SIZE = TICK_DTYPE.itemsize
CANDLE_SIZE = CANDLE_DTYPE.itemsize
HEAD_TAIL = 256  # records of the head chunk read with each write, so slightly late ticks splice in
CHUNK_SPLICE_SCRIPT = "chunk_splice"

Records: TypeAlias = npt.NDArray[np.void]
"""Packed records of :data:`~redtick.codec.TICK_DTYPE` (or :data:`~redtick.codec.CANDLE_DTYPE`)."""
Ints: TypeAlias = npt.NDArray[np.int64]
Blob: TypeAlias = bytes | None
ChunkKind: TypeAlias = Literal["append", "splice", "rewrite", "new"]


# -- where a batch lands -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ChunkGroups:
    """A sorted batch split by tick chunk: group ``i`` is ``records[first[i]:end[i]]``, all in chunk ``starts[i]``."""

    starts: list[int]
    first: npt.NDArray[np.intp]
    end: npt.NDArray[np.intp]

    def __len__(self) -> int:
        return len(self.starts)

    def part(self, i: int) -> slice:
        """The slice of the batch's records in group ``i``."""
        return slice(int(self.first[i]), int(self.end[i]))


def group_ticks(ts: Ints, chunk_ms: int) -> ChunkGroups:
    """The tick chunks of a batch sorted by time, each with the run of records it holds.

    Examples
    --------
    >>> groups = group_ticks(np.array([5, 7, 12, 30]), 10)
    >>> groups.starts, [groups.part(i) for i in range(len(groups))]
    ([0, 10, 30], [slice(0, 2, None), slice(2, 3, None), slice(3, 4, None)])
    """
    if len(ts) == 0:
        return ChunkGroups([], np.zeros(0, np.intp), np.zeros(0, np.intp))
    starts = ts // chunk_ms * chunk_ms
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    end = np.r_[first[1:], len(ts)]
    return ChunkGroups([int(s) for s in starts[first]], first, end)


def slot_runs(values: npt.NDArray[np.integer[Any]]) -> list[tuple[int, int]]:
    """(first, last) index pairs of runs of consecutive integers in sorted ``values``.

    Examples
    --------
    >>> slot_runs(np.array([3, 4, 5, 9, 11, 12]))
    [(0, 2), (3, 3), (4, 5)]
    """
    if len(values) == 0:
        return []
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, len(values) - 1]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


@dataclasses.dataclass(frozen=True)
class SlotRun:
    """Adjacent candle slots of one slot chunk: buckets ``first..last`` of the write, slots ``slot..slot + len - 1``."""

    chunk: int
    first: int
    last: int
    slot: int

    def __len__(self) -> int:
        return self.last - self.first + 1


@dataclasses.dataclass(frozen=True)
class TouchedSlots:
    """The candle buckets of one interval that a write touches, in runs of adjacent slots."""

    iv: int
    buckets: Ints
    runs: list[SlotRun]

    def chunks(self) -> list[int]:
        """The slot chunks touched, oldest first."""
        return sorted({run.chunk for run in self.runs})


def touched_slots(ts: Ints, iv: int, slots: int, kept_from: int | None = None) -> TouchedSlots:
    """The buckets of ``iv`` ms that ticks at ``ts`` fall in (from ``kept_from`` on, when given), in runs of
    adjacent slots of chunks of ``slots`` buckets.

    Examples
    --------
    >>> touched = touched_slots(np.array([0, 59_999, 120_000, 180_000 * 4]), 60_000, slots=4)
    >>> touched.buckets.tolist(), touched.runs  # doctest: +NORMALIZE_WHITESPACE
    ([0, 120000, 720000], [SlotRun(chunk=0, first=0, last=0, slot=0), SlotRun(chunk=0, first=1, last=1, slot=2),
                           SlotRun(chunk=720000, first=2, last=2, slot=0)])
    """
    buckets = np.unique(ts // iv * iv)
    if kept_from is not None:  # slots of candle chunks out of the window go in the same transaction
        buckets = buckets[buckets >= kept_from]
    span = iv * slots
    chunk_of = buckets // span * span
    slot_of = (buckets - chunk_of) // iv
    runs = []
    for chunk in np.unique(chunk_of).tolist():
        positions = np.flatnonzero(chunk_of == chunk)
        for a, b in slot_runs(slot_of[positions]):
            runs.append(SlotRun(int(chunk), int(positions[a]), int(positions[b]), int(slot_of[positions[a]])))
    return TouchedSlots(iv, buckets, runs)


# -- the reads, each with its reply by name ------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StoredEndsReply:
    """What :class:`StoredEnds` found: each chunk's last record (the last chunk's last :data:`HEAD_TAIL`; every
    chunk's, read ``wide``), the last chunk's length (every chunk's, read ``wide``), each slot run's stored
    slots (per interval), the newest tick's (ts, id), the index's newest chunk, and the replies of the
    retention reads."""

    tails: list[bytes]
    head_length: int
    slots: list[list[Blob]]
    current: tuple[int, int] | None
    old_head: int | None
    expired: list[Any]
    lengths: list[int] = dataclasses.field(default_factory=list)  # every chunk's, when read ``wide``


@dataclasses.dataclass(frozen=True)
class StoredEnds:
    """Step 1 of a write, under WATCH: the ends of the chunks and the candle slots it touches, the newest tick,
    the index's head chunk and the chunks retention drops.

    ``wide``: every chunk's last :data:`HEAD_TAIL` records and length are read, not only the last chunk's,
    so ticks a little late into a raw chunk behind the head splice into its tail (compression off)."""

    chunk_keys: list[str]
    slot_keys: list[list[str]]  # per interval, the chunk key of each of its slot runs
    slot_runs: list[list[SlotRun]]
    current_key: str
    index_key: str
    expiry_reads: list[Command]
    wide: bool = False

    def commands(self) -> list[Command]:
        narrow = [] if self.wide else self.chunk_keys[:-1]
        measured = self.chunk_keys[len(narrow) :]
        reads: list[Command] = [("GETRANGE", key, -TICK_SIZE, -1) for key in narrow]
        reads += [("GETRANGE", key, -HEAD_TAIL * TICK_SIZE, -1) for key in measured]
        reads += [("STRLEN", key) for key in measured]
        for keys, runs in zip(self.slot_keys, self.slot_runs, strict=True):
            reads += [("GETRANGE", key, run.slot * CANDLE_SIZE, (run.slot + len(run)) * CANDLE_SIZE - 1)
                      for key, run in zip(keys, runs, strict=True)]
        reads += [("HMGET", self.current_key, "ts", "id"), ("ZRANGE", self.index_key, -1, -1)]
        return reads + self.expiry_reads

    def parse(self, replies: Sequence[Any]) -> StoredEndsReply:
        at = len(self.chunk_keys)
        tails = [reply or b"" for reply in replies[:at]]
        measured = len(self.chunk_keys) if self.wide else 1
        lengths = [int(n) for n in replies[at : at + measured]]
        at += measured
        slots = []
        for runs in self.slot_runs:
            slots.append(list(replies[at : at + len(runs)]))
            at += len(runs)
        current_ts, current_id = replies[at]
        head = replies[at + 1]
        return StoredEndsReply(
            tails, lengths[-1], slots, None if current_ts is None else (int(current_ts), int(current_id)),
            int(head[0]) if head else None, list(replies[at + 2 :]), lengths if self.wide else [],
        )


@dataclasses.dataclass(frozen=True)
class WholeChunksReply:
    """What :class:`WholeChunks` found: the chunks to rewrite, the old head to seal (its key and bytes), and the
    ticks trimmed."""

    rewrites: list[bytes]
    seal_key: str | None
    sealed: bytes | None
    trimmed_ticks: int
    candle_wholes: Mapping[str, Blob] = dataclasses.field(default_factory=dict)  # merged into whole, then sealed
    candle_seals: Mapping[str, Blob] = dataclasses.field(default_factory=dict)  # old candle heads the write passed


@dataclasses.dataclass(frozen=True)
class WholeChunks:
    """Step 2 of a write: the chunks rewritten whole, the old head chunk sealed, and the size of those trimmed.

    ``trimmed_keys`` are counted from their lengths, right for raw chunks only: the write path passes none
    and counts the trimmed chunks with :class:`TickCounts` in the same round trip, sealed ones included.
    """

    rewrite_keys: list[str]
    seal_key: str | None
    trimmed_keys: list[str]

    def commands(self) -> list[Command]:
        gets = [*self.rewrite_keys, *([self.seal_key] if self.seal_key else [])]
        return [("GET", key) for key in gets] + [("STRLEN", key) for key in self.trimmed_keys]

    def parse(self, replies: Sequence[Any]) -> WholeChunksReply:
        at = len(self.rewrite_keys)
        sealed = replies[at] if self.seal_key else None
        gets = at + (1 if self.seal_key else 0)
        trimmed_bytes = sum(replies[gets:])
        return WholeChunksReply([blob or b"" for blob in replies[:at]], self.seal_key, sealed, trimmed_bytes // TICK_SIZE)


@dataclasses.dataclass(frozen=True)
class ChunkFormats:
    """Whether each of these chunks is stored sealed, from its first 8 bytes (read under WATCH with step 1):
    tick chunks by default, candle chunks with ``sealed=candles_sealed``."""

    keys: list[str]
    sealed: Callable[[bytes], bool] = is_sealed

    def commands(self) -> list[Command]:
        return [("GETRANGE", key, 0, 7) for key in self.keys]

    def parse(self, replies: Sequence[Any]) -> list[bool]:
        return [self.sealed(reply or b"") for reply in replies]


@dataclasses.dataclass(frozen=True)
class CandleEndsReply:
    """What :class:`CandleEnds` found: the touched candle chunks stored sealed, and each interval's newest chunk."""

    sealed: list[str]
    heads: list[int | None]


@dataclasses.dataclass(frozen=True)
class CandleEnds:
    """Step 1's reads of the candle chunks a write touches: each one's format, from its first 8 bytes, and
    each interval's newest chunk (``index_keys``, one per interval; none when no chunk is sealed on the way).

    Examples
    --------
    >>> ends = CandleEnds(["c1", "c2"], ["i"])
    >>> ends.commands()
    [('GETRANGE', 'c1', 0, 7), ('GETRANGE', 'c2', 0, 7), ('ZRANGE', 'i', -1, -1)]
    >>> from redtick.codec import CANDLES_SEALED_MAGIC
    >>> ends.parse([CANDLES_SEALED_MAGIC, bytes(8), [b"86400000"]])
    CandleEndsReply(sealed=['c1'], heads=[86400000])
    """

    keys: list[str]
    index_keys: list[str]

    def commands(self) -> list[Command]:
        return [("GETRANGE", key, 0, 7) for key in self.keys] + [("ZRANGE", key, -1, -1) for key in self.index_keys]

    def parse(self, replies: Sequence[Any]) -> CandleEndsReply:
        at = len(self.keys)
        sealed = [key for key, prefix in zip(self.keys, replies[:at], strict=True) if candles_sealed(prefix or b"")]
        return CandleEndsReply(sealed, [int(reply[0]) if reply else None for reply in replies[at:]])


def behind_heads(heads: Sequence[int | None], touched: Sequence[TouchedSlots]) -> list[tuple[list[int], int | None]]:
    """Per interval, the candle chunks a write leaves behind its head, to be sealed: (the touched chunks
    older than the interval's newest chunk after the write, written whole; the stored newest chunk if
    the write moves past it without touching it, else None).

    ``heads`` are each interval's newest stored chunk (None for none); ``touched`` the write's slots.

    Examples
    --------
    >>> import numpy as np
    >>> day = 1440 * 60_000
    >>> touched = [touched_slots(np.array([5, day + 5]), 60_000, 1440), touched_slots(np.array([day + 5]), 3_600_000, 1440)]
    >>> behind_heads([None, None], touched), behind_heads([-day, 0], touched)
    ([([0], None), ([], None)], [([0], -86400000), ([], None)])
    """
    out: list[tuple[list[int], int | None]] = []
    for head, t in zip(heads, touched, strict=True):
        chunks = sorted({run.chunk for run in t.runs})
        newest = max(chunks + ([head] if head is not None else []), default=None)
        passed = head if head is not None and newest is not None and head < newest and head not in chunks else None
        out.append(([c for c in chunks if newest is not None and c < newest], passed))
    return out


def candle_seal_commands(blobs: Mapping[str, Blob]) -> list[Command]:
    """The SET sealing each of these raw candle chunks (``blobs``: key to its stored bytes) that sealing makes smaller."""
    commands: list[Command] = []
    for key, blob in blobs.items():
        if blob and not candles_sealed(blob):
            sealed = whole_candles(unpack_candles(blob), True)
            if len(sealed) < len(blob):
                commands.append(("SET", key, sealed))
    return commands


@dataclasses.dataclass(frozen=True)
class TickCounts:
    """How many ticks these chunks hold, raw or sealed (a sealed chunk's count is in its header), and their bytes.

    Examples
    --------
    >>> counts = TickCounts(["a"])
    >>> counts.commands()
    [('GETRANGE', 'a', 0, 19), ('STRLEN', 'a')]
    >>> counts.parse([bytes(20), 66]), counts.parse([None, 0])
    ([2], [0])
    """

    keys: list[str]

    def commands(self) -> list[Command]:
        return [cmd for key in self.keys for cmd in (("GETRANGE", key, 0, SEALED_HEADER_SIZE - 1), ("STRLEN", key))]

    def parse(self, replies: Sequence[Any]) -> list[int]:
        """The tick count of each chunk (0 for one that is gone)."""
        return [tick_count(prefix or b"", int(length)) for prefix, length in zip(replies[0::2], replies[1::2], strict=True)]

    @staticmethod
    def stored_bytes(replies: Sequence[Any]) -> list[int]:
        """The stored length of each chunk, from the same replies."""
        return [int(length) for length in replies[1::2]]


# -- how each chunk is written -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ChunkWrite:
    """How one tick chunk is written: ``append`` to the head, ``splice`` over a raw chunk's tail from byte
    ``offset``, ``rewrite`` the whole stored chunk, or write a ``new`` one.

    ``stored`` holds the stored records the chunk's ticks are checked and merged against: the fetched tail
    for a splice; for a rewrite, the whole chunk once it is read (step 2). ``seal``: a chunk written whole
    is written sealed (:func:`whole_chunk`); never the head. ``exact``: a splice of a chunk behind the head,
    left at its exact size (``scripts/chunk_splice.lua``), as it will not grow again.
    """

    kind: ChunkKind
    offset: int = 0
    stored: Records | None = None
    seal: bool = False
    exact: bool = False


def _key(records: Records, at: int) -> tuple[int, int]:
    return int(records["ts"][at]), int(records["id"][at])


def classify_chunk(first: tuple[int, int], tail: bytes, is_head: bool, length: int, *,
                   sealed: bool = False, seal: bool = False) -> ChunkWrite:
    """How a chunk whose new ticks start at (ts, id) ``first`` is written, given its stored ``tail`` and ``length``.

    Only the head chunk grows in place (APPEND, or SETRANGE over its tail for ticks that arrive a little
    late): Redis over-allocates a string that grows. A chunk behind the head is spliced when its fetched
    tail holds every stored tick the batch could repeat and compression is off (``not seal``), rebuilt at
    its exact size by a script so only the tail travels; otherwise it is written whole with SET (exact
    size), sealed when ``seal``. ``tail`` is a chunk's last :data:`HEAD_TAIL` records (or only its last
    record, with ``length`` -1: not spliced). A chunk stored ``sealed`` is never appended to or spliced
    (its bytes are not records): it is rewritten whole, and raw if it is the head.
    """
    if sealed:
        return ChunkWrite("rewrite", seal=seal and not is_head)
    recent = np.frombuffer(tail, dtype=TICK_DTYPE)
    if is_head and (not len(recent) or first > _key(recent, -1)):
        return ChunkWrite("append")
    spliced = is_head or (not seal and length >= 0)
    if spliced and len(recent) and (first >= _key(recent, 0) or len(tail) == length):
        # Every stored tick the batch could repeat is in the fetched tail (the chunk is sorted).
        return ChunkWrite("splice", length - len(tail), recent, exact=not is_head)
    return ChunkWrite("rewrite" if len(recent) else "new", seal=seal and not is_head)


def classify_chunks(records: Records, groups: ChunkGroups, tails: Sequence[bytes], head_length: int,
                    head: int, *, last_sealed: bool = False, seal: bool = False,
                    sealed: Sequence[bool] | None = None, lengths: Sequence[int] | None = None) -> list[ChunkWrite]:
    """:func:`classify_chunk` of every group of ``records``; ``head`` is the series' head chunk after the write.

    ``last_sealed``: the last group's chunk is stored sealed (:class:`ChunkFormats`); then its tail is
    only its last record, which a sealed chunk keeps raw at its end. ``sealed`` and ``lengths``, when
    given (a ``wide`` :class:`StoredEnds`), are every chunk's format and length, and every raw chunk's
    tail may be spliced into; else the other groups' tails are their last record, right whatever their
    format. ``seal``: chunks written whole are sealed.

    Examples
    --------
    >>> ticks = np.zeros(3, TICK_DTYPE); ticks["ts"] = [5, 15, 16]
    >>> stored = np.zeros(1, TICK_DTYPE); stored["ts"] = 6
    >>> [w.kind for w in classify_chunks(ticks, group_ticks(ticks["ts"], 10), [stored.tobytes(), b""], 0, 10)]
    ['rewrite', 'append']
    >>> [w.kind for w in classify_chunks(ticks, group_ticks(ticks["ts"], 10), [stored.tobytes(), b""], 0, 10,
    ...                                  sealed=[False, False], lengths=[33, 0])]
    ['splice', 'append']
    """
    last = len(groups) - 1
    formats = list(sealed) if sealed is not None else [last_sealed and i == last for i in range(len(groups))]
    sizes = list(lengths) if lengths is not None else [head_length if i == last else -1 for i in range(len(groups))]
    return [classify_chunk(_key(records, int(groups.first[i])), tails[i][-TICK_SIZE:] if formats[i] else tails[i],
                           groups.starts[i] == head, sizes[i], sealed=formats[i], seal=seal) for i in range(len(groups))]


# -- duplicates ----------------------------------------------------------------------------------------
def existing_mask(stored: Records, batch: Records) -> npt.NDArray[np.bool_]:
    """True for each record of ``batch`` whose (ts, id) is already in ``stored`` (both sorted).

    Examples
    --------
    >>> stored, batch = np.zeros(2, TICK_DTYPE), np.zeros(2, TICK_DTYPE)
    >>> stored["ts"], stored["id"], batch["ts"], batch["id"] = [1, 2], [7, 7], [2, 2], [7, 8]
    >>> existing_mask(stored, batch).tolist()
    [True, False]
    """
    both_ts = np.concatenate([stored["ts"], batch["ts"]])
    both_id = np.concatenate([stored["id"], batch["id"]])
    source = np.r_[np.zeros(len(stored), np.int8), np.ones(len(batch), np.int8)]
    order = np.lexsort((source, both_id, both_ts))
    ts, ids, src = both_ts[order], both_id[order], source[order]
    same_as_previous = np.r_[False, (ts[1:] == ts[:-1]) & (ids[1:] == ids[:-1])]
    mask = np.zeros(len(batch), dtype=bool)
    hit = same_as_previous & (src == 1)
    mask[order[hit] - len(stored)] = True
    return mask


def fresh_mask(records: Records, groups: ChunkGroups, stored: Mapping[int, Records]) -> npt.NDArray[np.bool_]:
    """True for each record not already stored: ``stored`` maps a group to the stored records it is checked against.

    Examples
    --------
    >>> batch, stored = np.zeros(3, TICK_DTYPE), np.zeros(1, TICK_DTYPE)
    >>> batch["ts"], stored["ts"] = [1, 2, 15], 2
    >>> fresh_mask(batch, group_ticks(batch["ts"], 10), {0: stored}).tolist()
    [True, False, True]
    """
    fresh = np.ones(len(records), dtype=bool)
    for i, old in stored.items():
        part = groups.part(i)
        fresh[part] = ~existing_mask(old, records[part])
    return fresh


# -- the commands --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TickCommands:
    """The commands storing a write's new ticks, the chunk starts they add to the index, and the new ticks
    not stored because the write's own newest tick put their chunk out of the window."""

    commands: list[Command]
    chunk_starts: list[int]
    trimmed: int


def tick_commands(records: Records, fresh: npt.NDArray[np.bool_], groups: ChunkGroups, writes: Sequence[ChunkWrite],
                  chunk_keys: Sequence[str], kept_from: int | None = None) -> TickCommands:
    """APPEND, SETRANGE or SET of each chunk's new records (``fresh``), merged with what it stores, in (ts, id) order.

    Chunks starting before ``kept_from`` are not written: their new ticks count as trimmed. A chunk
    written whole is sealed when its :attr:`ChunkWrite.seal` says so (:func:`whole_chunk`).
    """
    commands: list[Command] = []
    starts: list[int] = []
    trimmed = 0
    for i, write in enumerate(writes):
        part = groups.part(i)
        added = records[part][fresh[part]]
        if len(added) == 0:
            continue
        if kept_from is not None and groups.starts[i] < kept_from:
            trimmed += len(added)
            continue
        starts.append(groups.starts[i])
        if write.kind == "append":
            commands.append(("APPEND", chunk_keys[i], added.tobytes()))
            continue
        merged = added if write.stored is None else np.concatenate([write.stored, added])
        merged = merged[np.lexsort((merged["id"], merged["ts"]))]
        if write.kind == "splice":
            commands.append(_splice_command(chunk_keys[i], write, merged.tobytes()))
        else:
            commands.append(("SET", chunk_keys[i], whole_chunk(merged, write.seal)))
    return TickCommands(commands, starts, trimmed)


def _splice_command(key: str, write: ChunkWrite, tail: bytes) -> Command:
    """The command writing ``tail`` over a chunk from ``write.offset``: SETRANGE into the head, which grows in
    place; into a chunk behind it, SET of the tail alone or EVAL of ``scripts/chunk_splice.lua`` (exact size).
    EVAL, not EVALSHA: inside MULTI/EXEC a script missing from the server's cache would fail the transaction."""
    if not write.exact:
        return ("SETRANGE", key, write.offset, tail)
    if write.offset == 0:
        return ("SET", key, tail)
    return ("EVAL", scripts.load(CHUNK_SPLICE_SCRIPT), 1, key, write.offset, tail)


def whole_chunk(records: Records, seal: bool) -> bytes:
    """The bytes of a chunk written whole: sealed when ``seal`` and that is smaller, else raw.

    A chunk of a few ticks is smaller raw (a sealed one carries a 20-byte header, the codec's frame
    and its last record raw), so it stays raw: both formats are read everywhere.

    Examples
    --------
    >>> ticks = np.zeros(1000, TICK_DTYPE); ticks["ts"] = np.arange(1000) * 100
    >>> len(whole_chunk(ticks, False)), len(whole_chunk(ticks, True)) < 33_000 // 5, len(whole_chunk(ticks[:1], True))
    (33000, True, 33)
    """
    raw = records.tobytes()
    if not seal or len(records) == 0:
        return raw
    sealed = seal_ticks(records)
    return sealed if len(sealed) < len(raw) else raw


def seal_command(key: str | None, blob: Blob, seal: bool) -> Command | None:
    """The SET that rewrites a chunk that stopped being the head, whose stored bytes are ``blob``: sealed when
    ``seal`` (and that is smaller), else raw at its exact size, which gives back the slack Redis allocated
    while it grew. None when there is nothing to do (no such chunk, gone, or sealed already).
    """
    if key is None or not blob or is_sealed(blob):
        return None
    return ("SET", key, whole_chunk(unpack_ticks(blob), seal) if seal else blob)


def candle_merges(touched: TouchedSlots, keys: Sequence[str], stored: Sequence[Blob], new: Records,
                  index_key: str, wholes: Mapping[str, Blob] | None = None) -> tuple[list[Command], int]:
    """SETRANGE of each slot run merged with the candles of the ``new`` ticks, and the ZADD of its chunks; and how
    many candles changed. ``keys`` and ``stored`` are each run's chunk key and stored slots.

    ``wholes`` holds the sealed chunks among ``keys``, whole (their slots cannot be read or written in
    place): each is decoded, its runs merged into it, and it is written back whole with SET, sealed.
    """
    new_starts, new_candles = candles_from_ticks(new, touched.iv)
    wholes = wholes or {}
    commands: list[Command] = []
    decoded: dict[str, np.ndarray] = {}
    changed: set[int] = set()
    updated = 0
    for run, key, raw in zip(touched.runs, keys, stored, strict=True):
        run_buckets = touched.buckets[run.first : run.last + 1]
        where = np.searchsorted(new_starts, run_buckets)
        hit = (where < len(new_starts)) & (new_starts[np.minimum(where, len(new_starts) - 1)] == run_buckets)
        if not hit.any():
            continue
        incoming = np.zeros(len(run), dtype=CANDLE_DTYPE)
        incoming[hit] = new_candles[where[hit]]
        if key in wholes:
            decoded[key] = _merged_into(decoded.get(key, unpack_candles(wholes[key])), run.slot, incoming)
        else:
            old = np.zeros(len(run), dtype=CANDLE_DTYPE)
            if raw:
                old[: len(raw) // CANDLE_SIZE] = np.frombuffer(raw, dtype=CANDLE_DTYPE)
            commands.append(("SETRANGE", key, run.slot * CANDLE_SIZE, merge_candles(old, incoming).tobytes()))
        updated += int(hit.sum())
        changed.add(run.chunk)
    commands += [("SET", key, whole_candles(slots, True)) for key, slots in decoded.items()]
    if changed:
        commands.append(("ZADD", index_key, *(x for c in sorted(changed) for x in (c, c))))
    return commands, updated


def _merged_into(slots: np.ndarray, at: int, incoming: np.ndarray) -> np.ndarray:
    """A copy of a whole chunk's ``slots`` (grown if need be) with ``incoming`` merged into its slots from ``at``."""
    out = np.zeros(max(len(slots), at + len(incoming)), dtype=CANDLE_DTYPE)
    out[: len(slots)] = slots
    out[at : at + len(incoming)] = merge_candles(out[at : at + len(incoming)], incoming)
    return out


def current_price_command(key: str, newest: np.void, current: tuple[int, int] | None) -> Command | None:
    """HSET of the newest tick into the current-price hash, unless the stored one is as new or newer.

    Examples
    --------
    >>> newest = np.array([(5, 1, 10.5, 2.0, 0)], dtype=TICK_DTYPE)[0]
    >>> current_price_command("price", newest, (5, 0))
    ('HSET', 'price', 'ts', 5, 'id', 1, 'price', '10.5', 'volume', '2.0')
    >>> current_price_command("price", newest, (6, 0)) is None
    True
    """
    if current is not None and (int(newest["ts"]), int(newest["id"])) <= current:
        return None
    return ("HSET", key, "ts", int(newest["ts"]), "id", int(newest["id"]),
            "price", repr(float(newest["price"])), "volume", repr(float(newest["volume"])))
