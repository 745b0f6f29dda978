"""The pure pieces of a tick write (redtick.tick_write), each without Redis: the laws that keep a tick from
being lost or doubled."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redtick.candles import candles_from_ticks, merge_candles
from redtick.codec import CANDLE_DTYPE, TICK_DTYPE
from redtick.series import SLOTS
from redtick.steps import Commit
from redtick.tick_write import (
    HEAD_TAIL,
    ChunkWrite,
    StoredEnds,
    TouchedSlots,
    WholeChunks,
    candle_merges,
    classify_chunk,
    classify_chunks,
    current_price_command,
    existing_mask,
    fresh_mask,
    group_ticks,
    slot_runs,
    tick_commands,
    touched_slots,
)
from redtick.writes import AlertCheck, CheckedCommit

TICK = TICK_DTYPE.itemsize
CANDLE = CANDLE_DTYPE.itemsize
CHUNK = 1_000


def records(pairs: list[tuple[int, int]], price: float = 1.0) -> np.ndarray:
    """Tick records at (ts, id) ``pairs``, sorted and unique, as a batch is."""
    unique = sorted(set(pairs))
    out = np.zeros(len(unique), dtype=TICK_DTYPE)
    if unique:
        out["ts"], out["id"] = zip(*unique, strict=True)
    out["price"], out["volume"] = price, 1.0
    return out


def keys(recs: np.ndarray) -> list[tuple[int, int]]:
    return list(zip(recs["ts"].tolist(), recs["id"].tolist(), strict=True))


pairs = st.lists(st.tuples(st.integers(0, 20 * CHUNK), st.integers(0, 5)), max_size=60)


# -- grouping ------------------------------------------------------------------------------------------
@given(pairs)
def test_grouping_partitions_the_records_in_order(raw):
    recs = records(raw)
    groups = group_ticks(recs["ts"], CHUNK)
    pieces = [recs[groups.part(i)] for i in range(len(groups))]
    assert keys(np.concatenate(pieces) if pieces else recs) == keys(recs)  # every record once, in order
    assert groups.starts == sorted(set(groups.starts))  # one group per chunk, oldest first
    for start, piece in zip(groups.starts, pieces, strict=True):
        assert len(piece) and (piece["ts"] // CHUNK * CHUNK == start).all()


def test_an_empty_batch_has_no_groups():
    assert len(group_ticks(np.zeros(0, np.int64), CHUNK)) == 0


@given(st.lists(st.integers(0, 50), unique=True).map(sorted))
def test_slot_runs_cover_the_values_in_runs_of_consecutive_integers(values):
    runs = slot_runs(np.array(values, dtype=np.int64))
    assert [i for a, b in runs for i in range(a, b + 1)] == list(range(len(values)))
    for a, b in runs:
        assert values[b] - values[a] == b - a
    for (_, b), (a, _) in itertools.pairwise(runs):
        assert values[a] > values[b] + 1  # runs are maximal


@given(st.lists(st.integers(0, 10 * 60_000 * 8), max_size=40).map(sorted), st.none() | st.integers(0, 80 * 60_000))
def test_touched_slots_hold_each_bucket_once_at_its_slot(ts, kept_from):
    iv, slots = 60_000, 8
    touched = touched_slots(np.array(ts, dtype=np.int64), iv, slots, kept_from)
    expected = sorted({t // iv * iv for t in ts if kept_from is None or t // iv * iv >= kept_from})
    assert touched.buckets.tolist() == expected
    covered = []
    for run in touched.runs:
        buckets = touched.buckets[run.first : run.last + 1]
        assert (buckets // (iv * slots) * (iv * slots) == run.chunk).all()
        assert ((buckets - run.chunk) // iv).tolist() == list(range(run.slot, run.slot + len(run)))
        covered += range(run.first, run.last + 1)
    assert covered == list(range(len(expected)))
    assert touched.chunks() == sorted({b // (iv * slots) * (iv * slots) for b in expected})


# -- classification ------------------------------------------------------------------------------------
stored_tails = st.lists(st.tuples(st.integers(0, CHUNK - 1), st.integers(0, 5)), max_size=8).map(records)


@given(first=st.tuples(st.integers(0, CHUNK - 1), st.integers(0, 5)), tail=stored_tails, is_head=st.booleans(),
       more=st.integers(0, 3), seal=st.booleans())
def test_every_chunk_is_exactly_one_of_append_splice_rewrite_new(first, tail, is_head, more, seal):
    blob = tail.tobytes()
    head_length = len(blob) + more * TICK
    write = classify_chunk(first, blob, is_head, head_length, seal=seal)
    assert write.kind in ("append", "splice", "rewrite", "new")
    stored = keys(tail)
    if write.kind == "append":  # only the head grows, and only after its last stored tick
        assert is_head and (not stored or first > stored[-1])
    elif write.kind == "splice":  # the fetched tail holds every tick it could repeat; behind the head, only raw
        assert (is_head or not seal) and stored and (first >= stored[0] or more == 0)
        assert write.offset == head_length - len(blob) and keys(write.stored) == stored
        assert write.exact == (not is_head)  # a chunk behind the head is left at its exact size
    elif write.kind == "rewrite":
        assert stored and write.stored is None  # read whole in step 2
    else:
        assert not stored and not is_head


def test_classify_chunks_looks_at_each_group_first_tick_and_the_head():
    recs = records([(5, 0), (1_500, 0), (2_100, 0)])
    tails = [records([(7, 0)]).tobytes(), b"", records([(2_050, 0)]).tobytes()]
    kinds = [w.kind for w in classify_chunks(recs, group_ticks(recs["ts"], CHUNK), tails, len(tails[2]), 2_000)]
    assert kinds == ["rewrite", "new", "append"]


# -- duplicates ----------------------------------------------------------------------------------------
@given(stored=pairs, batch=pairs)
def test_dedup_never_drops_a_new_tick_and_always_drops_a_stored_one(stored, batch):
    old, new = records(stored), records(batch)
    mask = existing_mask(old, new)
    known = set(keys(old))
    assert [k in known for k in keys(new)] == mask.tolist()


@given(stored=pairs, batch=pairs)
def test_fresh_mask_checks_each_group_against_its_own_chunk(stored, batch):
    old, new = records(stored), records(batch)
    groups = group_ticks(new["ts"], CHUNK)
    by_chunk = {i: old[old["ts"] // CHUNK * CHUNK == start] for i, start in enumerate(groups.starts)}
    fresh = fresh_mask(new, groups, by_chunk)
    assert [k not in set(keys(old)) for k in keys(new)] == fresh.tolist()


# -- the commands --------------------------------------------------------------------------------------
def test_tick_commands_append_splice_rewrite_and_new_each_keep_the_chunk_sorted():
    recs = records([(5, 1), (6, 0), (1_200, 0), (2_300, 0), (3_500, 0)])
    groups = group_ticks(recs["ts"], CHUNK)
    stored_tail = records([(2_100, 0), (2_400, 0)])
    stored_whole = records([(3, 0), (7, 0)])
    writes = [ChunkWrite("rewrite", stored=stored_whole), ChunkWrite("new"),
              ChunkWrite("splice", 9 * TICK, stored_tail), ChunkWrite("append")]
    fresh = np.ones(len(recs), dtype=bool)
    fresh[1] = False  # (6, 0) is a duplicate
    got = tick_commands(recs, fresh, groups, writes, ["c0", "c1", "c2", "c3"])
    names = [(c[0], c[1]) for c in got.commands]
    assert names == [("SET", "c0"), ("SET", "c1"), ("SETRANGE", "c2"), ("APPEND", "c3")]
    assert keys(np.frombuffer(got.commands[0][2], TICK_DTYPE)) == [(3, 0), (5, 1), (7, 0)]
    assert got.commands[2][2] == 9 * TICK
    assert keys(np.frombuffer(got.commands[2][3], TICK_DTYPE)) == [(2_100, 0), (2_300, 0), (2_400, 0)]
    assert got.chunk_starts == [0, 1_000, 2_000, 3_000] and got.trimmed == 0


def test_tick_commands_skip_chunks_out_of_the_window_and_count_their_ticks_trimmed():
    recs = records([(5, 0), (6, 0), (1_500, 0)])
    groups = group_ticks(recs["ts"], CHUNK)
    got = tick_commands(recs, np.ones(3, bool), groups, [ChunkWrite("new"), ChunkWrite("append")], ["c0", "c1"],
                        kept_from=1_000)
    assert [c[1] for c in got.commands] == ["c1"] and got.chunk_starts == [1_000] and got.trimmed == 2


@given(st.lists(st.integers(0, 3 * 60_000 * SLOTS), min_size=1, max_size=30).map(sorted), st.booleans())
@settings(max_examples=50)
def test_candle_merges_write_each_touched_slot_as_the_merge_of_stored_and_new(ts, stored_before):
    iv = 60_000
    new = records([(t, i) for i, t in enumerate(ts)])
    touched = touched_slots(new["ts"], iv, SLOTS)
    stored = []
    for run in touched.runs:  # a stored candle in every other slot of each run, or none at all
        old = np.zeros(len(run), CANDLE_DTYPE)
        if stored_before:
            old["count"][::2], old["volume"][::2], old["notional"][::2] = 3, 2.0, 2.0
        stored.append(old.tobytes() if stored_before else None)
    commands, updated = candle_merges(touched, [f"k{run.chunk}" for run in touched.runs], stored, new, "index")
    starts, candles = candles_from_ticks(new, iv)
    assert updated == len(starts)
    setranges = commands[:-1]
    assert commands[-1] == ("ZADD", "index", *(x for c in touched.chunks() for x in (c, c)))
    for (name, key, offset, blob), run, raw in zip(setranges, touched.runs, stored, strict=True):
        assert (name, key, offset) == ("SETRANGE", f"k{run.chunk}", run.slot * CANDLE)
        merged = np.frombuffer(blob, CANDLE_DTYPE)
        buckets = touched.buckets[run.first : run.last + 1]
        old = np.frombuffer(raw, CANDLE_DTYPE) if raw else np.zeros(len(run), CANDLE_DTYPE)
        expected = merge_candles(old, candles[np.searchsorted(starts, buckets)])
        assert merged.tobytes() == expected.tobytes()


def test_candle_merges_of_nothing_new_send_nothing():
    touched = TouchedSlots(60_000, np.zeros(0, np.int64), [])
    assert candle_merges(touched, [], [], records([]), "index") == ([], 0)


def test_the_current_price_moves_only_forward():
    newest = records([(10, 5)], price=2.5)[0]
    assert current_price_command("cur", newest, None) == ("HSET", "cur", "ts", 10, "id", 5, "price", "2.5",
                                                           "volume", "1.0")
    assert current_price_command("cur", newest, (10, 4)) is not None
    assert current_price_command("cur", newest, (10, 5)) is None
    assert current_price_command("cur", newest, (11, 0)) is None


# -- the reads, by name --------------------------------------------------------------------------------
def test_stored_ends_read_their_reply_by_name():
    run = touched_slots(np.array([0, 60_000]), 60_000, SLOTS).runs[0]
    ends = StoredEnds(["t0", "t1"], [["c1m"], []], [[run], []], "cur", "idx", [("ZRANGEBYSCORE", "e", "-inf", 9)])
    commands = ends.commands()
    assert commands == [
        ("GETRANGE", "t0", -TICK, -1), ("GETRANGE", "t1", -HEAD_TAIL * TICK, -1), ("STRLEN", "t1"),
        ("GETRANGE", "c1m", 0, 2 * CANDLE - 1), ("HMGET", "cur", "ts", "id"), ("ZRANGE", "idx", -1, -1),
        ("ZRANGEBYSCORE", "e", "-inf", 9),
    ]
    got = ends.parse([b"a", None, 66, b"slots", [b"7", b"3"], [b"1000"], [b"0"]])
    assert got.tails == [b"a", b""] and got.head_length == 66 and got.slots == [[b"slots"], []]
    assert got.current == (7, 3) and got.old_head == 1000 and got.expired == [[b"0"]]
    fresh = ends.parse([None, None, 0, None, [None, None], [], []])
    assert fresh.current is None and fresh.old_head is None


@pytest.mark.parametrize("seal", [None, "old"])
def test_whole_chunks_read_their_reply_by_name(seal):
    whole = WholeChunks(["r1", "r2"], seal, ["x1", "x2"])
    assert whole.commands() == [("GET", "r1"), ("GET", "r2"), *([("GET", seal)] if seal else []),
                                ("STRLEN", "x1"), ("STRLEN", "x2")]
    got = whole.parse([b"one", None, *([b"sealed"] if seal else []), 3 * TICK, 2 * TICK])
    assert got.rewrites == [b"one", b""] and got.trimmed_ticks == 5
    assert (got.seal_key, got.sealed) == ((seal, b"sealed") if seal else (None, None))


def test_the_alert_check_rides_last_in_the_commit_and_is_read_by_name():
    check = AlertCheck(("EVAL", "script", 0))
    commit = CheckedCommit([("SET", "a", b"1"), ("ZADD", "i", 0, 0)], check)
    assert commit.step() == Commit([("SET", "a", b"1"), ("ZADD", "i", 0, 0), ("EVAL", "script", 0)])
    assert commit.fired([True, 1, []]) == []


def test_wide_stored_ends_read_every_chunks_tail_and_length():
    ends = StoredEnds(["t0", "t1"], [[], []], [[], []], "cur", "idx", [], wide=True)
    assert ends.commands() == [
        ("GETRANGE", "t0", -HEAD_TAIL * TICK, -1), ("GETRANGE", "t1", -HEAD_TAIL * TICK, -1), ("STRLEN", "t0"),
        ("STRLEN", "t1"), ("HMGET", "cur", "ts", "id"), ("ZRANGE", "idx", -1, -1),
    ]
    got = ends.parse([b"a", b"b", 99, 66, [None, None], []])
    assert got.tails == [b"a", b"b"] and got.lengths == [99, 66] and got.head_length == 66
