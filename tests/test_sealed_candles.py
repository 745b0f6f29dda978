"""Sealed (compressed) candle chunks: ``redtick compact`` seals every candle chunk but each interval's newest,
and nothing a reader or a writer sees changes, late ticks and imported bars included."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redtick import catalog, frames
from redtick.codec import (
    CANDLE_COLUMNS,
    CANDLE_DTYPE,
    candle_columns,
    candles_sealed,
    seal_candles,
    unpack_candles,
    whole_candles,
)
from redtick.errors import InvalidData
from redtick.reports import memory_report
from redtick.steps import Commit, run
from redtick.tick_write import TICK_DTYPE, candle_merges, touched_slots
from redtick.ticks import normalise_ticks
from tests.series_reference import assert_candles_equal, reference_candles

MINUTE = 60_000
DAY = 1440 * MINUTE
BASE = 1_378_000_000_000 // DAY * DAY  # 2013, as the real ticks
COLUMNS = ["open", "high", "low", "close", "volume", "count", "notional", "vwap"]
INTERVALS = (("1m", MINUTE), ("5m", 5 * MINUTE), ("1h", 60 * MINUTE), ("1d", DAY))


# -- the format -------------------------------------------------------------------------------------------
int64s = st.integers(-(2**63), 2**63 - 1)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**9).map(lambda c: c / 100),
                   st.sampled_from([0.0, -0.0, 1e-300, -1e300]))


@st.composite
def chunks(draw):
    """Candle slots as a chunk stores them: empty slots all zeros, filled ones anything (count never 0)."""
    n = draw(st.integers(1, 300))
    slots = np.zeros(n, CANDLE_DTYPE)
    filled = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    for at in filled:
        values = [draw(int64s) for _ in range(5)] + [draw(floats) for _ in range(6)]
        values[4] = values[4] or draw(st.sampled_from([-1, 1]))  # count 0 means empty
        slots[at] = tuple(values)
    return slots


@settings(max_examples=150, deadline=None)
@given(chunks(), st.data())
def test_sealed_candle_chunks_round_trip_to_the_bit(slots, data):
    sealed = seal_candles(slots)
    assert candles_sealed(sealed) and unpack_candles(sealed).tobytes() == slots.tobytes()
    first = data.draw(st.integers(0, len(slots)))
    last = data.draw(st.one_of(st.none(), st.integers(first, len(slots) + 5)))
    fields = data.draw(st.lists(st.sampled_from(CANDLE_COLUMNS), min_size=1, unique=True))
    at_sealed, got_sealed = candle_columns(sealed, fields, first, last)
    at_raw, got_raw = candle_columns(slots[first:].tobytes(), fields, first, last, offset=first)
    assert at_sealed.tolist() == at_raw.tolist()
    for name in fields:
        assert got_sealed[name].tobytes() == got_raw[name].tobytes(), name


def test_a_grid_day_of_candles_takes_a_fraction_of_its_raw_bytes():
    slots = np.zeros(1440, CANDLE_DTYPE)
    rng = np.random.default_rng(0)
    close = np.round(1650 + np.cumsum(rng.integers(-2, 3, 1440)) * 0.25, 2)
    slots["first_ts"] = BASE + np.arange(1440) * MINUTE + rng.integers(0, 1000, 1440)
    slots["last_ts"] = slots["first_ts"] + rng.integers(0, 58_000, 1440)
    slots["first_id"], slots["last_id"] = np.arange(1440) * 50, np.arange(1440) * 50 + 49
    slots["count"], slots["open"], slots["close"] = 50, close, close
    slots["high"], slots["low"], slots["volume"] = close + 0.5, close - 0.25, rng.integers(1, 900, 1440)
    slots["notional"] = slots["volume"] * close
    sealed = whole_candles(slots, True)
    assert candles_sealed(sealed) and len(sealed) < slots.nbytes / 3
    assert whole_candles(np.zeros(10, CANDLE_DTYPE), True) == bytes(880)  # nothing filled: nothing to seal


def test_damaged_sealed_candle_chunks_are_refused():
    slots = np.zeros(8, CANDLE_DTYPE)
    slots["count"][[1, 5]], slots["close"][[1, 5]] = 1, [2.5, 3.5]
    sealed = seal_candles(slots)
    for bad in (sealed[:-1], sealed + b"x", sealed[:20]):
        with pytest.raises(InvalidData, match="sealed candle chunk"):
            unpack_candles(bad)
    with pytest.raises(InvalidData, match="no candle"):
        seal_candles(np.zeros(3, CANDLE_DTYPE))


def test_merging_into_a_sealed_chunk_gives_the_slots_of_merging_in_place():
    rng = np.random.default_rng(3)
    old = np.zeros(40, TICK_DTYPE)
    old["ts"] = np.sort(rng.integers(0, 30 * MINUTE, 40))
    old["id"], old["price"], old["volume"] = np.arange(40), rng.integers(100, 200, 40) / 4, 1.0
    new = np.zeros(15, TICK_DTYPE)
    new["ts"] = np.sort(rng.integers(0, 45 * MINUTE, 15))
    new["id"], new["price"], new["volume"] = 100 + np.arange(15), rng.integers(100, 200, 15) / 4, 2.0
    touched = touched_slots(old["ts"], MINUTE, 1440)
    stored = [b""] * len(touched.runs)
    commands, _ = candle_merges(touched, ["k"] * len(touched.runs), stored, old, "i")
    chunk = bytearray()
    for command in commands[:-1]:
        _, _, at, block = command
        chunk[len(chunk):] = bytes(max(0, at + len(block) - len(chunk)))
        chunk[at : at + len(block)] = block
    raw = np.frombuffer(bytes(chunk), CANDLE_DTYPE)
    touched = touched_slots(new["ts"], MINUTE, 1440)
    keys = ["k"] * len(touched.runs)
    in_place, _ = candle_merges(touched, keys, [raw[r.slot : r.slot + len(r)].tobytes() for r in touched.runs], new, "i")
    whole, _ = candle_merges(touched, keys, [b"garbage"] * len(touched.runs), new, "i", {"k": seal_candles(raw)})
    expected = bytearray(raw.tobytes())
    for _, _, at, block in in_place[:-1]:
        expected[len(expected):] = bytes(max(0, at + len(block) - len(expected)))
        expected[at : at + len(block)] = block
    (name, key, blob), zadd = whole
    assert (name, key, zadd) == ("SET", "k", in_place[-1]) and candles_sealed(blob)
    assert unpack_candles(blob).tobytes() == bytes(expected)


# -- on every backend --------------------------------------------------------------------------------------
@pytest.fixture
def store(conn):
    """Compression on: writes seal a candle chunk once a newer one of its interval is written."""
    connection = conn.with_settings(dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None,
                                                        tick_compression=True))
    yield connection
    connection.close()


@pytest.fixture
def raw_store(store):
    """The same store, compression off: writes leave candle chunks raw (``redtick compact`` seals them)."""
    connection = store.with_settings(dataclasses.replace(store.settings, tick_compression=False))
    yield connection
    connection.close()


def _ticks(n, seed=0, start=BASE, step=20_000):
    """``n`` ticks ``step`` ms apart (20 s: a week in 30,000), prices on a 0.25 grid."""
    rng = np.random.default_rng(seed)
    ts = start + np.arange(n, dtype=np.int64) * step + rng.integers(0, step // 2, n)
    price = np.round(1650 + np.cumsum(rng.integers(-2, 3, n)) * 0.25, 2)
    return pd.DataFrame({"ts": ts, "trade_id": np.arange(n, dtype=np.int64), "price": price,
                         "volume": rng.integers(1, 20, n).astype(np.float64)})


def _candle_formats(conn, symbol, interval):
    index = conn.keys.candle_index(symbol, interval)
    return [candles_sealed(conn.sync.getrange(conn.keys.candle_chunk(symbol, interval, int(s)), 0, 7))
            for s in conn.sync.zrange(index, 0, -1)]


def _reads(conn, symbol, windows):
    """Every stored interval whole, a roll-up, and ``windows`` of 1m and 1h, with ``fill`` across gaps."""
    out = {name: frames.load_ohlcv(symbol, name, conn=conn, columns=COLUMNS) for name, _ in INTERVALS}
    out["2h"] = frames.load_ohlcv(symbol, "2h", conn=conn)
    for i, (start, end) in enumerate(windows):
        out[f"1m {i}"] = frames.load_ohlcv(symbol, "1m", start, end, conn=conn, columns=COLUMNS)
        out[f"1h {i}"] = frames.load_ohlcv(symbol, "1h", start, end, conn=conn)
        out[f"fill {i}"] = frames.load_ohlcv(symbol, "1m", start, end, conn=conn, fill="ffill")
    return out


def _windows(sent, n=8, seed=5):
    rng = np.random.default_rng(seed)
    low, high = int(sent["ts"].min()), int(sent["ts"].max())
    starts = rng.integers(low - DAY, high, n)
    return [(pd.Timestamp(int(s), unit="ms", tz="UTC"), pd.Timestamp(int(s + rng.integers(MINUTE, 3 * DAY)), unit="ms",
                                                                        tz="UTC")) for s in starts]


def _assert_sealed_but_heads(conn, symbol):
    for name in catalog.layout_of(conn).intervals:
        formats = _candle_formats(conn, symbol, name)
        assert formats == [True] * (len(formats) - 1) + [False], name


def test_writes_seal_a_candle_chunk_once_a_newer_one_is_written(store):
    sent = _ticks(30_000, seed=4)
    for part in np.array_split(np.arange(len(sent)), 11):
        frames.write_ticks(sent.iloc[part], "AUTO", conn=store)
    _assert_sealed_but_heads(store, "AUTO")
    assert len(_candle_formats(store, "AUTO", "1m")) >= 7
    for name, iv in INTERVALS:
        assert_candles_equal(frames.load_ohlcv("AUTO", name, conn=store, columns=COLUMNS), reference_candles(sent, iv))
    (done,) = catalog.compact(["AUTO"], conn=store)
    assert done.candles_sealed == 0  # nothing left to seal
    info, report = catalog.describe("AUTO", conn=store), memory_report(store)
    assert (report.candle_raw_bytes, report.candle_stored_bytes) == (info.candle_raw_bytes, info.candle_stored_bytes)
    assert report.candle_ratio == info.candle_ratio > 1 and "candle chunks, raw / stored" in report.summary()["figure"].tolist()


def test_compact_seals_candle_chunks_and_every_read_stays_the_same(raw_store):
    store = raw_store
    sent = _ticks(30_000)
    frames.write_ticks(sent, "CND", conn=store)
    windows = _windows(sent)
    before = _reads(store, "CND", windows)
    assert not any(_candle_formats(store, "CND", "1m"))  # compression off: writes leave them raw
    info_before = catalog.describe("CND", conn=store)
    (done,) = catalog.compact(["CND"], conn=store)
    _assert_sealed_but_heads(store, "CND")
    formats = {name: _candle_formats(store, "CND", name) for name in catalog.layout_of(store).intervals}
    assert done.candles_sealed == sum(sum(f) for f in formats.values()) > 0
    assert done.candle_chunks == sum(len(f) for f in formats.values())
    assert done.candle_bytes_after < done.candle_bytes_before
    index = store.keys.candle_index("CND", "1m")
    sealed_keys = [store.keys.candle_chunk("CND", "1m", int(s)) for s in store.sync.zrange(index, 0, -2)]
    assert sum(store.sync.strlen(k) for k in sealed_keys) * 3 < len(sealed_keys) * 1440 * CANDLE_DTYPE.itemsize
    info = catalog.describe("CND", conn=store)
    assert info.sealed_candle_chunks == done.candles_sealed and info.candle_stored_bytes == done.candle_bytes_after
    assert info.candle_raw_bytes == info_before.candle_raw_bytes and info.candle_ratio > 1
    assert info.frame().equals(info_before.frame()) and "candle bytes" in str(info)
    after = _reads(store, "CND", windows)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)
    for name, iv in INTERVALS:
        assert_candles_equal(after[name], reference_candles(sent, iv))
    (again,) = catalog.compact(["CND"], conn=store)
    assert again.candles_sealed == 0 and again.candle_bytes_after == done.candle_bytes_after


def test_late_ticks_and_imported_bars_into_sealed_candle_chunks_stay_exact(store, raw_store):
    sent = _ticks(30_000, seed=1)
    rng = np.random.default_rng(2)
    late = np.zeros(len(sent), bool)
    late[rng.choice(len(sent) - 1, 6_000, replace=False)] = True
    frames.write_ticks(sent[~late], "LATE", conn=store)
    _assert_sealed_but_heads(store, "LATE")
    for part in np.array_split(rng.permutation(np.flatnonzero(late)), 5):  # into sealed chunks, in any order
        frames.write_ticks(sent.iloc[np.sort(part)], "LATE", conn=store)
    formats = _candle_formats(store, "LATE", "1m")
    assert formats[:-1] == [True] * (len(formats) - 1)  # merged into and sealed again
    for name, iv in INTERVALS:
        assert_candles_equal(frames.load_ohlcv("LATE", name, conn=store, columns=COLUMNS), reference_candles(sent, iv))
    # Imported bars over buckets of a sealed chunk replace them, as they would in a raw one.
    frames.write_ticks(sent, "RAW", conn=raw_store)
    day = int(sent["ts"].iloc[0]) // DAY * DAY
    bars = pd.DataFrame({"ts": day + np.arange(0, 600, 7) * MINUTE, "open": 1.5, "high": 2.5, "low": 1.25, "close": 2.0,
                         "volume": 3.0})
    frames.write_candles(bars, "LATE", "1m", conn=store)
    frames.write_candles(bars, "RAW", "1m", conn=raw_store)
    assert _candle_formats(store, "LATE", "1m")[0] and not _candle_formats(store, "RAW", "1m")[0]
    for name, _ in INTERVALS:
        pd.testing.assert_frame_equal(frames.load_ohlcv("LATE", name, conn=store, columns=COLUMNS),
                                      frames.load_ohlcv("RAW", name, conn=store, columns=COLUMNS), obj=name)


def test_a_write_racing_the_seal_of_its_candle_chunk_runs_again(raw_store):
    store = raw_store
    sent = _ticks(12_000, seed=3)
    frames.write_ticks(sent.iloc[::2], "RACE", conn=store)
    layout = catalog.layout_of(store)
    attempts = []

    def sealing_before_first_commit(plan):
        """``plan``, with the symbol compacted just before its first commit: its candle chunks sealed under it."""
        reply = None
        try:
            while True:
                step = plan.send(reply)
                if isinstance(step, Commit) and len(attempts) == 1:
                    assert catalog.compact(["RACE"], conn=store)[0].candles_sealed > 0
                reply = yield step
        except StopIteration as stop:
            return stop.value

    def make_plan():
        attempts.append(1)
        return sealing_before_first_commit(layout.write_plan("RACE", normalise_ticks(sent.iloc[1::2])))

    result = run(store.sync, make_plan)
    assert len(attempts) == 2 and result.written == len(sent) // 2  # the commit failed on WATCH, the rerun wrote
    for name, iv in INTERVALS:
        assert_candles_equal(frames.load_ohlcv("RACE", name, conn=store, columns=COLUMNS), reference_candles(sent, iv))


def test_imported_bars_are_sealed_behind_each_intervals_newest_chunk(store, raw_store):
    rng = np.random.default_rng(8)
    close = np.round(100 + np.cumsum(rng.integers(-3, 4, 14_400)) * 0.01, 2)
    bars = pd.DataFrame({"ts": BASE + np.arange(14_400) * MINUTE, "open": close, "high": close + 0.05,
                         "low": close - 0.05, "close": close, "volume": rng.integers(1, 500, 14_400).astype(float)})
    frames.write_candles(bars.iloc[:5_000], "BARS", "1m", conn=store)
    frames.write_candles(bars.iloc[5_000:], "BARS", "1m", conn=store)  # moves past the stored newest chunk
    frames.write_candles(bars, "RAWBARS", "1m", conn=raw_store)
    _assert_sealed_but_heads(store, "BARS")
    assert not any(_candle_formats(raw_store, "RAWBARS", "1m"))
    for name in catalog.layout_of(store).intervals:
        pd.testing.assert_frame_equal(frames.load_ohlcv("BARS", name, conn=store, columns=COLUMNS),
                                      frames.load_ohlcv("RAWBARS", name, conn=store, columns=COLUMNS), obj=name)
    got = frames.load_ohlcv("BARS", "1m", conn=store)
    np.testing.assert_array_equal(got["close"].to_numpy(), bars["close"].to_numpy())
