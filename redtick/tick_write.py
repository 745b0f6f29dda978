"""The pure pieces of a tick write: where it lands, how each chunk is written, its duplicates, its commands.

A chunk is stored raw (packed records: the head, which grows in place) or sealed
(:func:`redtick.codec.seal_ticks`: every other chunk when compression is on). Only a raw chunk is
appended to or spliced; a sealed one is read whole, decoded, merged and written whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from redtick.candles import candles_from_ticks, merge_candles
from redtick.codec import CANDLE_DTYPE, SEALED_HEADER_SIZE, TICK_DTYPE, is_sealed, seal_ticks, tick_count, unpack_ticks
from redtick.steps import Command

__all__ = [
    "HEAD_TAIL",
    "Blob",
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
    "candle_merges",
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
    """What :class:`StoredEnds` found: each chunk's last record (the head's last :data:`HEAD_TAIL`), the head's
    length, each slot run's stored slots (per interval), the newest tick's (ts, id), the index's newest chunk,
    and the replies of the retention reads."""

    tails: list[bytes]
    head_length: int
    slots: list[list[Blob]]
    current: tuple[int, int] | None
    old_head: int | None
    expired: list[Any]


@dataclasses.dataclass(frozen=True)
class StoredEnds:
    """Step 1 of a write, under WATCH: the ends of the chunks and the candle slots it touches, the newest tick,
    the index's head chunk and the chunks retention drops."""

    chunk_keys: list[str]
    slot_keys: list[list[str]]  # per interval, the chunk key of each of its slot runs
    slot_runs: list[list[SlotRun]]
    current_key: str
    index_key: str
    expiry_reads: list[Command]

    def commands(self) -> list[Command]:
        reads: list[Command] = [("GETRANGE", key, -TICK_SIZE, -1) for key in self.chunk_keys[:-1]]
        reads += [("GETRANGE", self.chunk_keys[-1], -HEAD_TAIL * TICK_SIZE, -1), ("STRLEN", self.chunk_keys[-1])]
        for keys, runs in zip(self.slot_keys, self.slot_runs, strict=True):
            reads += [("GETRANGE", key, run.slot * CANDLE_SIZE, (run.slot + len(run)) * CANDLE_SIZE - 1)
                      for key, run in zip(keys, runs, strict=True)]
        reads += [("HMGET", self.current_key, "ts", "id"), ("ZRANGE", self.index_key, -1, -1)]
        return reads + self.expiry_reads

    def parse(self, replies: Sequence[Any]) -> StoredEndsReply:
        at = len(self.chunk_keys)
        tails = [reply or b"" for reply in replies[:at]]
        head_length = int(replies[at])
        at += 1
        slots = []
        for runs in self.slot_runs:
            slots.append(list(replies[at : at + len(runs)]))
            at += len(runs)
        current_ts, current_id = replies[at]
        head = replies[at + 1]
        return StoredEndsReply(
            tails, head_length, slots, None if current_ts is None else (int(current_ts), int(current_id)),
            int(head[0]) if head else None, list(replies[at + 2 :]),
        )


@dataclasses.dataclass(frozen=True)
class WholeChunksReply:
    """What :class:`WholeChunks` found: the chunks to rewrite, the old head to seal (its key and bytes), and the
    ticks trimmed."""

    rewrites: list[bytes]
    seal_key: str | None
    sealed: bytes | None
    trimmed_ticks: int


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
    """Whether each of these chunks is stored sealed, from its first 8 bytes (read under WATCH with step 1)."""

    keys: list[str]

    def commands(self) -> list[Command]:
        return [("GETRANGE", key, 0, 7) for key in self.keys]

    def parse(self, replies: Sequence[Any]) -> list[bool]:
        return [is_sealed(reply or b"") for reply in replies]


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
    """How one tick chunk is written: ``append`` to the head, ``splice`` over the head's tail from byte
    ``offset``, ``rewrite`` the whole stored chunk, or write a ``new`` one.

    ``stored`` holds the stored records the chunk's ticks are checked and merged against: the head's tail
    for a splice; for a rewrite, the whole chunk once it is read (step 2). ``seal``: a chunk written whole
    is written sealed (:func:`whole_chunk`); never the head.
    """

    kind: ChunkKind
    offset: int = 0
    stored: Records | None = None
    seal: bool = False


def _key(records: Records, at: int) -> tuple[int, int]:
    return int(records["ts"][at]), int(records["id"][at])


def classify_chunk(first: tuple[int, int], tail: bytes, is_head: bool, head_length: int, *,
                   sealed: bool = False, seal: bool = False) -> ChunkWrite:
    """How a chunk whose new ticks start at (ts, id) ``first`` is written, given its stored ``tail``.

    Only the head chunk grows in place (APPEND, or SETRANGE over its tail for ticks that arrive a little
    late): Redis over-allocates a string that grows, so every other chunk is written whole with SET
    (exact size), sealed when ``seal`` (compression on). ``tail`` is the head's last :data:`HEAD_TAIL`
    records, or another chunk's last record. A chunk stored ``sealed`` is never appended to or spliced
    (its bytes are not records): it is rewritten whole, and raw if it is the head.
    """
    if sealed:
        return ChunkWrite("rewrite", seal=seal and not is_head)
    recent = np.frombuffer(tail, dtype=TICK_DTYPE)
    if is_head and (not len(recent) or first > _key(recent, -1)):
        return ChunkWrite("append")
    if is_head and (first >= _key(recent, 0) or len(tail) == head_length):
        # Every stored tick the batch could repeat is in the fetched tail (the chunk is sorted).
        return ChunkWrite("splice", head_length - len(tail), recent)
    return ChunkWrite("rewrite" if len(recent) else "new", seal=seal and not is_head)


def classify_chunks(records: Records, groups: ChunkGroups, tails: Sequence[bytes], head_length: int,
                    head: int, *, last_sealed: bool = False, seal: bool = False) -> list[ChunkWrite]:
    """:func:`classify_chunk` of every group of ``records``; ``head`` is the series' head chunk after the write.

    ``last_sealed``: the last group's chunk is stored sealed (:class:`ChunkFormats`); then its tail is
    only its last record, which a sealed chunk keeps raw at its end. The other groups' tails are their
    last record, right whatever their format. ``seal``: chunks written whole are sealed.

    Examples
    --------
    >>> ticks = np.zeros(3, TICK_DTYPE); ticks["ts"] = [5, 15, 16]
    >>> stored = np.zeros(1, TICK_DTYPE); stored["ts"] = 6
    >>> [w.kind for w in classify_chunks(ticks, group_ticks(ticks["ts"], 10), [stored.tobytes(), b""], 0, 10)]
    ['rewrite', 'append']
    """
    last = len(groups) - 1
    return [classify_chunk(_key(records, int(groups.first[i])), tails[i][-TICK_SIZE:] if i == last and last_sealed
                           else tails[i], groups.starts[i] == head, head_length, sealed=last_sealed and i == last,
                           seal=seal) for i in range(len(groups))]


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
            commands.append(("SETRANGE", chunk_keys[i], write.offset, merged.tobytes()))
        else:
            commands.append(("SET", chunk_keys[i], whole_chunk(merged, write.seal)))
    return TickCommands(commands, starts, trimmed)


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
                  index_key: str) -> tuple[list[Command], int]:
    """SETRANGE of each slot run merged with the candles of the ``new`` ticks, and the ZADD of its chunks; and how
    many candles changed. ``keys`` and ``stored`` are each run's chunk key and stored slots."""
    new_starts, new_candles = candles_from_ticks(new, touched.iv)
    commands: list[Command] = []
    changed: set[int] = set()
    updated = 0
    for run, key, raw in zip(touched.runs, keys, stored, strict=True):
        run_buckets = touched.buckets[run.first : run.last + 1]
        where = np.searchsorted(new_starts, run_buckets)
        hit = (where < len(new_starts)) & (new_starts[np.minimum(where, len(new_starts) - 1)] == run_buckets)
        if not hit.any():
            continue
        old = np.zeros(len(run), dtype=CANDLE_DTYPE)
        if raw:
            old[: len(raw) // CANDLE_SIZE] = np.frombuffer(raw, dtype=CANDLE_DTYPE)
        incoming = np.zeros(len(run), dtype=CANDLE_DTYPE)
        incoming[hit] = new_candles[where[hit]]
        commands.append(("SETRANGE", key, run.slot * CANDLE_SIZE, merge_candles(old, incoming).tobytes()))
        updated += int(hit.sum())
        changed.add(run.chunk)
    if changed:
        commands.append(("ZADD", index_key, *(x for c in sorted(changed) for x in (c, c))))
    return commands, updated


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
