"""Sealed (compressed) tick chunks: every chunk but the head is sealed, and nothing a reader or a writer sees changes."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from redtick import catalog, frames, lookups
from redtick.cli import main
from redtick.codec import TICK_DTYPE, is_sealed, seal_ticks, unpack_ticks
from redtick.reports import memory_report
from redtick.steps import run
from redtick.tick_write import TickCounts, classify_chunk, seal_command, whole_chunk
from redtick.ticks import normalise_ticks
from tests.series_reference import assert_candles_equal, reference_candles, reference_ticks, run_with_write_at_first_fetch
from tests.test_asof import assert_equals_merge_asof

MINUTE = 60_000
CHUNK = 10 * MINUTE
BASE = 1_700_000_000_000 // CHUNK * CHUNK
ES_FILE = "data/es_ticks_20130901.parquet"


def _connection(conn, compression, chunk_ms=CHUNK, **more):
    return conn.with_settings(dataclasses.replace(conn.settings, tick_chunk_ms=chunk_ms, tick_retention_ms=None,
                                                  candle_retention_ms=None, tick_compression=compression, **more))


@pytest.fixture
def sealed_conn(conn):
    """10-minute chunks, compression on whatever the environment says."""
    connection = _connection(conn, True)
    yield connection
    connection.close()


@pytest.fixture
def raw_conn(conn):
    """The same store as ``sealed_conn`` would be, compression off."""
    connection = _connection(conn, False)
    yield connection
    connection.close()


def _synthetic(n, seed=0, start=BASE, step=100):
    """``n`` ticks ``step`` ms apart, 5% of them sharing the previous tick's millisecond, prices on a 0.01 grid."""
    rng = np.random.default_rng(seed)
    ts = start + np.arange(n, dtype=np.int64) * step
    same = rng.random(n) < 0.05
    same[0] = False
    ts[same] = ts[np.flatnonzero(same) - 1]
    ts = np.maximum.accumulate(ts)
    price = np.round(4000 + np.cumsum(rng.integers(-2, 3, n)) * 0.25 + rng.integers(0, 3, n) * 0.01, 2)
    return pd.DataFrame({"ts": ts, "trade_id": np.arange(n, dtype=np.int64), "price": price,
                         "volume": rng.integers(1, 20, n).astype(np.float64)})


def _chunk_keys(conn, symbol):
    return [conn.keys.tick_chunk(symbol, int(s)) for s in conn.sync.zrange(conn.keys.tick_index(symbol), 0, -1)]


def _formats(conn, symbol):
    """True for each chunk (oldest first) stored sealed."""
    return [is_sealed(conn.sync.getrange(key, 0, 7)) for key in _chunk_keys(conn, symbol)]


def _stored_bytes(conn, symbol):
    return sum(conn.sync.strlen(key) for key in _chunk_keys(conn, symbol))


def _stored(conn, symbol, start=None, end=None):
    got = frames.load_ticks(symbol, start, end, conn=conn, columns=["price", "volume", "trade_id", "side"])
    return pd.DataFrame({"ts": got.index.asi8, "trade_id": got["trade_id"].to_numpy(), "price": got["price"].to_numpy(),
                         "volume": got["volume"].to_numpy()})


def _assert_matches(conn, symbol, sent, intervals=(("1m", MINUTE), ("1h", 60 * MINUTE))):
    expected = reference_ticks(sent)
    stored = _stored(conn, symbol)
    for column in ("ts", "trade_id", "price", "volume"):
        np.testing.assert_array_equal(stored[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    for name, iv in intervals:
        got = frames.load_ohlcv(symbol, name, conn=conn,
                                columns=["open", "high", "low", "close", "volume", "count", "notional", "vwap"])
        assert_candles_equal(got, reference_candles(sent, iv))


# -- the pure pieces ---------------------------------------------------------------------------------------
def test_a_chunk_written_whole_is_sealed_only_when_that_is_smaller():
    ticks = np.zeros(500, TICK_DTYPE)
    ticks["ts"], ticks["id"], ticks["price"], ticks["volume"] = np.arange(500) * 100, np.arange(500), 10.25, 1.0
    sealed = whole_chunk(ticks, True)
    assert is_sealed(sealed) and len(sealed) < ticks.nbytes and unpack_ticks(sealed).tobytes() == ticks.tobytes()
    assert sealed[-33:] == ticks[-1:].tobytes()  # the last record raw: GETRANGE -33 -1 reads it in both formats
    assert whole_chunk(ticks, False) == ticks.tobytes()
    assert whole_chunk(ticks[:1], True) == ticks[:1].tobytes()  # one tick is smaller raw


def test_a_sealed_chunk_is_never_appended_to_or_spliced():
    tail = seal_ticks(np.zeros(50, TICK_DTYPE))[-33:]
    head = classify_chunk((10**9, 0), tail, True, 4_000, sealed=True, seal=True)
    assert (head.kind, head.seal) == ("rewrite", False)  # the head is rewritten raw, so it grows in place again
    other = classify_chunk((0, 0), tail, False, 4_000, sealed=True, seal=True)
    assert (other.kind, other.seal) == ("rewrite", True)
    assert classify_chunk((0, 0), b"", False, 0, seal=True).seal  # a new chunk behind the head
    assert not classify_chunk((0, 0), b"", True, 0, seal=True).seal  # ... but never the head


def test_the_old_head_is_sealed_once_and_only_if_raw():
    ticks = np.zeros(200, TICK_DTYPE)
    ticks["ts"] = np.arange(200)
    name, key, blob = seal_command("k", ticks.tobytes(), True)
    assert (name, key) == ("SET", "k") and unpack_ticks(blob).tobytes() == ticks.tobytes() and is_sealed(blob)
    assert seal_command("k", ticks.tobytes(), False) == ("SET", "k", ticks.tobytes())  # off: exact size, raw
    assert seal_command("k", blob, True) is None and seal_command("k", None, True) is None


def test_tick_counts_read_a_sealed_chunks_header():
    ticks = np.zeros(300, TICK_DTYPE)
    sealed = seal_ticks(ticks)
    counts = TickCounts(["a", "b", "c"])
    replies = [sealed[:20], len(sealed), ticks.tobytes()[:20], ticks.nbytes, None, 0]
    assert counts.parse(replies) == [300, 300, 0]
    assert TickCounts.stored_bytes(replies) == [len(sealed), ticks.nbytes, 0]


# -- on every backend --------------------------------------------------------------------------------------
def test_chunks_are_sealed_once_the_head_moves(sealed_conn):
    sent = _synthetic(20_000)  # 2,000 s: four 10-minute chunks
    for part in np.array_split(np.arange(len(sent)), 7):  # the head moves on several times
        frames.write_ticks(sent.iloc[part], "SEAL", conn=sealed_conn)
    formats = _formats(sealed_conn, "SEAL")
    assert formats == [True] * (len(formats) - 1) + [False]  # every chunk but the head
    _assert_matches(sealed_conn, "SEAL", sent)
    info = catalog.describe("SEAL", conn=sealed_conn)
    assert info.ticks == 20_000 and info.tick_chunks == len(formats) and info.sealed_chunks == len(formats) - 1
    assert info.tick_raw_bytes == 20_000 * 33 and info.tick_stored_bytes == _stored_bytes(sealed_conn, "SEAL")
    assert info.tick_stored_bytes < info.tick_raw_bytes and info.tick_ratio > 1
    assert info.first_tick.value // 10**6 == sent["ts"].iloc[0] and info.last_tick.value // 10**6 == sent["ts"].iloc[-1]
    assert "sealed" in str(info) and (info.tick_memory is None) == sealed_conn.in_memory


def test_late_and_repeated_ticks_into_sealed_chunks_stay_exact(sealed_conn):
    sent = _synthetic(12_000, seed=1)
    rng = np.random.default_rng(2)
    order = rng.permutation(len(sent))
    written = duplicates = 0
    for part in np.array_split(order, 9):  # random batches in random order: most land in sealed chunks
        result = frames.write_ticks(sent.iloc[part], "LATE", conn=sealed_conn)
        written, duplicates = written + result.written, duplicates + result.duplicates
    assert (written, duplicates) == (len(sent), 0)
    assert _formats(sealed_conn, "LATE")[:-1] == [True] * (len(_formats(sealed_conn, "LATE")) - 1)
    _assert_matches(sealed_conn, "LATE", sent)
    # Re-sent ticks of sealed chunks are skipped, however they are batched.
    again = sent.iloc[rng.choice(len(sent) - 3_000, 2_000, replace=False)]
    result = frames.write_ticks(again, "LATE", conn=sealed_conn)
    assert (result.written, result.duplicates) == (0, 2_000)
    # New ticks mixed with re-sent ones into a sealed chunk: only the new are written.
    extra = pd.DataFrame({"ts": sent["ts"].iloc[100:110].to_numpy(), "trade_id": 10**6 + np.arange(10), "price": 1.5,
                          "volume": 2.0})
    result = frames.write_ticks(pd.concat([extra, sent.iloc[100:300]]), "LATE", conn=sealed_conn)
    assert (result.written, result.duplicates) == (10, 200)
    _assert_matches(sealed_conn, "LATE", pd.concat([sent, extra]))
    assert catalog.describe("LATE", conn=sealed_conn).ticks == len(sent) + 10


def test_trims_count_the_ticks_of_sealed_chunks(conn):
    hour = 60 * MINUTE
    kept = conn.with_settings(dataclasses.replace(conn.settings, tick_chunk_ms=CHUNK, tick_retention_ms=hour,
                                                  candle_retention_ms=None, tick_compression=True))
    sent = _synthetic(30_000, seed=3)  # 50 minutes: five chunks
    for part in np.array_split(np.arange(len(sent)), 5):
        frames.write_ticks(sent.iloc[part], "TRIM", conn=kept)
    assert _formats(kept, "TRIM") == [True] * 4 + [False]
    # A tick an hour and 20 minutes on puts the first two chunks (sealed) out of the window.
    late = sent.iloc[:1].assign(ts=BASE + 80 * MINUTE, trade_id=-2)
    result = frames.write_ticks(late, "TRIM", conn=kept)
    assert result.trimmed_ticks == int((sent["ts"] < BASE + 2 * CHUNK).sum())
    # And the maintenance trim counts the same way.
    layout = frames.layout_of(kept)
    window = layout.window(BASE + 80 * MINUTE, 40 * MINUTE, None)
    chunks, ticks = run(kept.sync, lambda: layout.trim_plan("TRIM", window))
    assert (chunks, ticks) == (2, int(((sent["ts"] >= BASE + 2 * CHUNK) & (sent["ts"] < BASE + 4 * CHUNK)).sum()))
    kept.close()


def test_compact_seals_a_store_written_raw_and_reads_the_same(raw_conn, sealed_conn):
    sent = _synthetic(24_000, seed=4)
    frames.write_ticks(sent, "OLD", conn=raw_conn, batch_size=5_000)
    assert not any(_formats(raw_conn, "OLD"))
    before, raw_bytes = _stored(raw_conn, "OLD"), _stored_bytes(raw_conn, "OLD")
    candles = frames.load_ohlcv("OLD", "1m", conn=raw_conn)
    (done,) = catalog.compact(["OLD"], conn=raw_conn)  # compact seals whatever the setting says: it is asked to
    formats = _formats(raw_conn, "OLD")
    assert formats == [True] * (len(formats) - 1) + [False]
    assert (done.chunks, done.sealed, done.already_sealed, done.kept_raw) == (len(formats), len(formats) - 1, 0, 1)
    assert done.bytes_before == raw_bytes and done.bytes_after == _stored_bytes(raw_conn, "OLD") < raw_bytes
    for reader in (raw_conn, sealed_conn):  # byte-identical reads, with compression on or off
        pd.testing.assert_frame_equal(_stored(reader, "OLD"), before)
        pd.testing.assert_frame_equal(frames.load_ohlcv("OLD", "1m", conn=reader), candles)
    (again,) = catalog.compact(["OLD"], conn=raw_conn)
    assert (again.sealed, again.already_sealed, again.bytes_after) == (0, len(formats) - 1, done.bytes_after)


def test_a_sealed_store_is_read_and_written_with_compression_off(sealed_conn, raw_conn):
    sent = _synthetic(18_000, seed=5)
    frames.write_ticks(sent, "MIX", conn=sealed_conn)
    assert sum(_formats(sealed_conn, "MIX")) == len(_formats(sealed_conn, "MIX")) - 1
    _assert_matches(raw_conn, "MIX", sent)
    # With compression off, a late tick into a sealed chunk writes that chunk raw; the rest stay sealed.
    late = pd.DataFrame({"ts": [BASE + 5, BASE + CHUNK + 5], "trade_id": [-1, -2], "price": [3.25, 3.5], "volume": 1.0})
    assert frames.write_ticks(late, "MIX", conn=raw_conn).written == 2
    formats = _formats(raw_conn, "MIX")
    assert formats[:2] == [False, False] and all(formats[2:-1]) and not formats[-1]
    newer = _synthetic(3_000, seed=6, start=int(sent["ts"].iloc[-1]) + 1).assign(trade_id=lambda f: f["trade_id"] + 10**6)
    frames.write_ticks(newer, "MIX", conn=raw_conn)
    _assert_matches(sealed_conn, "MIX", pd.concat([sent, late, newer]))
    _assert_matches(raw_conn, "MIX", pd.concat([sent, late, newer]))


def test_asof_windows_and_recent_ticks_read_sealed_chunks(sealed_conn):
    sent = _synthetic(30_000, seed=7, step=97)
    frames.write_ticks(sent, "LOOK", conn=sealed_conn)
    assert sum(_formats(sealed_conn, "LOOK")) >= 3
    ordered = reference_ticks(sent)
    ts, ids = ordered["ts"].to_numpy(), ordered["trade_id"].to_numpy()
    rng = np.random.default_rng(8)
    picks = rng.choice(ts, 12)
    # Windows that clip sealed chunks (cut after decoding) and the raw head.
    windows = [(int(a), int(a) + int(w)) for a, w in zip(picks, rng.integers(0, 25 * MINUTE, 12), strict=True)]
    windows += [(int(ts[0]), int(ts[0])), (int(ts[-1]), None), (None, int(picks[0])), (int(BASE + CHUNK), None)]
    for start, end in windows:
        got = _stored(sealed_conn, "LOOK", start, end)
        keep = (ts >= (start if start is not None else ts[0])) & (ts <= (end if end is not None else ts[-1]))
        assert got["trade_id"].tolist() == ids[keep].tolist(), (start, end)
    # As-of lookups search the chunks next to the span: sealed ones come whole. Single times make every
    # lookup's span one instant, so its edges are searched in the chunks around it.
    times = np.r_[rng.integers(ts[0] - MINUTE, ts[-1] + MINUTE, 40), picks, picks + 1, picks - 1]
    for direction in ("backward", "forward", "nearest"):
        assert_equals_merge_asof(sealed_conn, "LOOK", pd.DatetimeIndex(np.sort(times).astype("datetime64[ms]"),
                                                                        tz="UTC"), direction)
        for at in times[::7]:
            got = lookups.asof("LOOK", pd.Timestamp(int(at), unit="ms", tz="UTC"), direction, columns=["trade_id"],
                               conn=sealed_conn)
            before, after = ids[ts <= at], ids[ts >= at]
            if direction == "backward":
                assert got["trade_id"].tolist() == ([before[-1]] if len(before) else [None]), at
            elif direction == "forward":
                assert got["trade_id"].tolist() == ([after[0]] if len(after) else [None]), at
    layout = frames.layout_of(sealed_conn)
    for limit, end in [(5, None), (700, int(picks[1])), (8_000, int(ts[-1]) - 20 * MINUTE)]:
        records = run(sealed_conn.sync, lambda limit=limit, end=end: layout.recent_ticks_plan("LOOK", limit, None, end))
        upto = ids[ts <= (end if end is not None else ts[-1])]
        assert records["id"].tolist() == upto[-limit:].tolist()


def test_a_read_racing_the_seal_of_the_chunk_it_searches_is_right(conn):
    """A read searches the raw head; a write then moves the head on and seals it before the read fetches:
    the read notices the chunk is sealed and fetches it whole."""
    connection = _connection(conn, True, chunk_ms=60 * MINUTE)
    hour = BASE // (60 * MINUTE) * (60 * MINUTE)
    sent = _synthetic(20_000, start=hour + 1)  # 2,000 s: one raw head of 20,000 ticks, searched when clipped
    frames.write_ticks(sent, "RACE", conn=connection)
    start, end = hour + 500_000, hour + 1_000_000
    later = _synthetic(10, start=hour + 60 * MINUTE + 5).assign(trade_id=lambda f: f["trade_id"] + 10**6)
    plan = frames.layout_of(connection).read_ticks_plan("RACE", start, end, ("ts", "id"))
    # The head moves on between the search and the fetch: the chunk being read is sealed.
    got, sealed = run_with_write_at_first_fetch(connection, plan, lambda: frames.write_ticks(later, "RACE", conn=connection))
    assert sealed and _formats(connection, "RACE") == [True, False]
    ordered = reference_ticks(sent)
    keep = (ordered["ts"] >= start) & (ordered["ts"] <= end)
    assert got["id"].tolist() == ordered["trade_id"][keep].tolist()
    connection.close()


def test_memory_report_shows_raw_and_stored_tick_bytes(sealed_conn):
    frames.write_ticks(_synthetic(15_000, seed=9), "MEM", conn=sealed_conn)
    report = memory_report(sealed_conn)
    assert report.ticks == 15_000 and report.tick_raw_bytes == 15_000 * 33
    assert report.tick_stored_bytes == _stored_bytes(sealed_conn, "MEM") < report.tick_raw_bytes
    assert report.symbols.loc["MEM", "tick_ratio"] == report.tick_ratio > 1
    assert "tick chunks, raw / stored" in report.summary()["figure"].tolist()


def test_real_es_ticks_in_random_batches_and_orders_read_back_equal(sealed_conn, raw_conn, capsys):
    es = pd.read_parquet(ES_FILE)
    sent = pd.DataFrame({"ts": es["ts"].dt.as_unit("ms").astype("int64").to_numpy(), "trade_id": es["seq"].to_numpy(),
                         "price": es["price"].to_numpy(), "volume": es["volume"].to_numpy(dtype=np.float64)})
    rng = np.random.default_rng(10)
    figures = {}
    for name, connection in (("sealed", sealed_conn), ("raw", raw_conn)):
        symbol = f"ES{name}"
        # Mostly in order (as a feed), with a few batches of random old ticks: late ticks into sealed chunks.
        order = np.r_[np.arange(400_000), 400_000 + rng.permutation(100_000)]
        cuts = np.sort(rng.choice(np.arange(1, len(order)), 11, replace=False))
        parts = np.split(order, cuts)
        for k in rng.permutation(len(parts)):  # the batches in random order too: the head moves back and forth
            frames.write_ticks(sent.iloc[parts[k]], symbol, conn=connection)
        expected = reference_ticks(sent)
        stored = _stored(connection, symbol)
        for column in ("ts", "trade_id", "price", "volume"):
            np.testing.assert_array_equal(stored[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
        keys = [*_chunk_keys(connection, symbol), connection.keys.tick_index(symbol), connection.keys.current_price(symbol)]
        stored_bytes = _stored_bytes(connection, symbol)
        memory = None if connection.in_memory else sum(connection.sync.memory_usage(k, samples=0) for k in keys)
        figures[name] = (stored_bytes / len(sent), None if memory is None else memory / len(sent))
    candles = frames.load_ohlcv("ESsealed", "1m", conn=sealed_conn,
                                columns=["open", "high", "low", "close", "volume", "count"])
    assert_candles_equal(candles, reference_candles(sent, MINUTE))
    with capsys.disabled():
        for name, (per_tick, memory) in figures.items():
            print(f"\nES ticks {name}: {per_tick:.2f} B/tick stored (STRLEN)"
                  + ("" if memory is None else f", {memory:.2f} B/tick MEMORY USAGE over all the series' tick keys"))
    assert figures["sealed"][0] < figures["raw"][0] == pytest.approx(33, abs=0.5)
    if figures["sealed"][1] is not None:
        assert figures["sealed"][1] < figures["raw"][1]


def test_the_compact_command_reports_chunks_and_bytes(capsys):
    """``redtick compact`` on the local store: what it sealed, and the bytes before and after; idempotent."""
    hour = 60 * MINUTE
    frames.write_ticks(_synthetic(4_000, seed=11, start=BASE // hour * hour, step=1_000), "CLICOMPACT")  # 2 hours
    assert main(["compact", "CLICOMPACT"]) == 0
    first = capsys.readouterr().out
    assert "CLICOMPACT: " in first and "of 2 tick chunks sealed now" in first and "bytes stored" in first
    assert main(["compact", "CLICOMPACT"]) == 0
    assert "CLICOMPACT: 0 of 2 tick chunks sealed now, 1 already sealed" in capsys.readouterr().out
    assert main(["compact", "NOSUCHSYMBOL"]) == 2


def _recorded(plan, sent):
    """``plan``, every command of its steps appended to ``sent``."""
    reply = None
    try:
        while True:
            step = plan.send(reply)
            sent.extend(getattr(step, "commands", []))
            reply = yield step
    except StopIteration as stop:
        return stop.value


def test_late_ticks_splice_into_a_raw_chunk_behind_the_head_at_its_exact_size(raw_conn):
    sent = _synthetic(20_000, seed=6)  # 2,000 s: four 10-minute chunks, all raw
    late = np.zeros(len(sent), bool)
    late[5_950:5_990] = True  # the end of the first chunk (it spans ticks 0-5,999)
    frames.write_ticks(sent[~late], "SPLICE", conn=raw_conn)
    first_key = _chunk_keys(raw_conn, "SPLICE")[0]
    commands = []
    layout = catalog.layout_of(raw_conn)
    result = run(raw_conn.sync, lambda: _recorded(layout.write_plan("SPLICE", normalise_ticks(sent[late])), commands))
    assert result.written == late.sum()
    names = {(c[0], c[1]) for c in commands if c[0] in ("GET", "SET")}
    assert ("GET", first_key) not in names and ("SET", first_key) not in names  # never fetched nor written whole
    (splice,) = [c for c in commands if c[0] == "EVAL" and first_key in c]
    assert splice[4] > 0 and len(splice[5]) < 300 * 33  # only the tail travels
    assert raw_conn.sync.strlen(first_key) == 6_000 * 33  # exact: 33 bytes a tick, no slack from a SETRANGE
    assert not any(_formats(raw_conn, "SPLICE"))
    _assert_matches(raw_conn, "SPLICE", sent)
    # A re-send of the same late ticks finds them in the fetched tail: nothing written twice.
    assert frames.write_ticks(sent[late], "SPLICE", conn=raw_conn).duplicates == late.sum()
