"""Ticks are never lost or doubled; candles equal pandas whatever the batches, order and re-sends."""

import dataclasses
import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redtick import frames
from redtick.errors import InvalidData, InvalidKey
from redtick.series import WriteResult
from redtick.steps import run
from tests.series_reference import assert_candles_equal, reference_candles, reference_ticks, run_with_write_at_first_fetch

MINUTE = 60_000
INTERVALS = {"1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "1h": 60 * MINUTE, "4h": 240 * MINUTE, "1d": 1440 * MINUTE}
ES_FILE = "data/es_ticks_20130901.parquet"


@pytest.fixture
def series_conn(conn):
    """The backend under test with small tick chunks (10 minutes), so data spans many chunks; no retention."""
    small = dataclasses.replace(conn.settings, tick_chunk_ms=10 * MINUTE, tick_retention_ms=None,
                                candle_retention_ms=None)
    connection = conn.with_settings(small)
    yield connection
    connection.close()


def _stored(conn, symbol):
    got = frames.load_ticks(symbol, conn=conn, columns=["price", "volume", "trade_id"])
    return pd.DataFrame({"ts": got.index.asi8, "trade_id": got["trade_id"].to_numpy(),
                         "price": got["price"].to_numpy(), "volume": got["volume"].to_numpy()})


def _assert_matches_reference(conn, symbol, sent: pd.DataFrame, intervals=INTERVALS):
    expected = reference_ticks(sent)
    stored = _stored(conn, symbol)
    assert len(stored) == len(expected)
    np.testing.assert_array_equal(stored["ts"].to_numpy(), expected["ts"].to_numpy())
    np.testing.assert_array_equal(stored["trade_id"].to_numpy(), expected["trade_id"].to_numpy())
    np.testing.assert_array_equal(stored["price"].to_numpy(), expected["price"].to_numpy())
    for name, iv in intervals.items():
        got = frames.load_ohlcv(symbol, name, conn=conn,
                                columns=["open", "high", "low", "close", "volume", "count", "notional", "vwap"])
        assert_candles_equal(got, reference_candles(sent, iv))


tick_rows = st.lists(
    st.tuples(
        st.integers(0, 3 * 60 * MINUTE),  # three hours: several 10-minute chunks and 1h buckets
        st.integers(0, 40),  # few ids, so (ts, id) collisions and equal-ms ticks are common
        st.sampled_from([99.5, 100.0, 100.25, 101.0, 250.0]),
        st.sampled_from([0.0, 1.0, 2.0, 0.5]),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=tick_rows, data=st.data())
def test_candles_equal_pandas_for_any_batches_order_and_resends(series_conn, rows, data):
    base = 1_700_000_000_000 - 1_700_000_000_000 % (1440 * MINUTE)
    sent = pd.DataFrame(rows, columns=["ts", "trade_id", "price", "volume"])
    sent["ts"] += base
    # The same (ts, trade_id) sent twice is the same tick: the reference keeps its first version,
    # and so must redtick, so every version of a duplicate carries the first one's values.
    sent = sent.merge(sent.drop_duplicates(["ts", "trade_id"]), on=["ts", "trade_id"], suffixes=("_x", ""))
    sent = sent[["ts", "trade_id", "price", "volume"]]
    order = data.draw(st.permutations(range(len(sent))))
    shuffled = sent.iloc[list(order)].reset_index(drop=True)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=5)))
    batches = [shuffled.iloc[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    resend = data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=3))
    symbol = f"P{abs(hash((tuple(rows), tuple(order)))) % 10**8}"
    for i in [*range(len(batches)), *resend]:
        if len(batches[i]):
            frames.write_ticks(batches[i], symbol, conn=series_conn)
    _assert_matches_reference(series_conn, symbol, sent)


def test_real_es_ticks_all_kept_resend_changes_nothing(series_conn):
    es = pd.read_parquet(ES_FILE)
    shares_ms = int(es["ts"].duplicated().sum())
    assert shares_ms == 415_432  # the sample's own property, stated in its README
    ticks = es.rename(columns={"seq": "trade_id"})
    first = frames.write_ticks(ticks, "ES", conn=series_conn, batch_size=77_777)
    assert (first.received, first.written, first.duplicates) == (500_000, 500_000, 0)
    again = frames.write_ticks(ticks.iloc[::-1], "ES", conn=series_conn)
    assert (again.written, again.duplicates) == (0, 500_000)
    sent = pd.DataFrame({"ts": es["ts"].astype("int64").to_numpy() // 1 if es["ts"].dtype == "int64"
                         else es["ts"].dt.as_unit("ms").astype("int64").to_numpy(),
                         "trade_id": es["seq"].to_numpy(), "price": es["price"].to_numpy(),
                         "volume": es["volume"].to_numpy(dtype=np.float64)})
    _assert_matches_reference(series_conn, "ES", sent)


def test_ticks_without_ids_are_told_apart_by_rank_within_their_millisecond(series_conn):
    ticks = pd.DataFrame({"ts": [1_000, 1_000, 1_000, 2_000], "price": [5.0, 5.0, 5.0, 6.0], "volume": [1.0] * 4})
    assert frames.write_ticks(ticks, "NOID", conn=series_conn).written == 4
    assert frames.write_ticks(ticks, "NOID", conn=series_conn).written == 0
    got = frames.load_ticks("NOID", conn=series_conn, columns=["price", "trade_id"])
    assert got["trade_id"].tolist() == [0, 1, 2, 0]


def test_concurrent_writers_of_one_symbol_lose_nothing_and_double_nothing(series_conn):
    rng = np.random.default_rng(7)
    n = 6_000
    ticks = pd.DataFrame({"ts": 1_600_000_000_000 + np.sort(rng.integers(0, 90 * MINUTE, n)),
                          "trade_id": np.arange(n), "price": rng.choice([10.0, 10.5, 11.0], n),
                          "volume": rng.integers(1, 5, n).astype(float)})
    # Four writers send overlapping slices in different orders, so their transactions collide.
    slices = [ticks.iloc[0:4000], ticks.iloc[2000:6000].iloc[::-1], ticks.iloc[::2], ticks.sample(frac=1, random_state=1)]
    results, failures = [], []

    def writer(part):
        try:
            for chunk in np.array_split(np.arange(len(part)), 8):
                results.append(frames.write_ticks(part.iloc[chunk], "RACE", conn=series_conn))
        except Exception as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert sum(r.written for r in results) == n  # each tick counted once across all writers
    _assert_matches_reference(series_conn, "RACE", ticks, {"1m": MINUTE, "1h": 60 * MINUTE})


def test_streaming_one_tick_at_a_time_matches_one_bulk_write(series_conn):
    rng = np.random.default_rng(3)
    n = 300
    ticks = pd.DataFrame({"ts": 1_650_000_000_000 + np.sort(rng.integers(0, 50 * MINUTE, n)),
                          "trade_id": np.arange(n), "price": rng.uniform(10, 11, n).round(2), "volume": 1.0})
    for i in range(n):
        frames.write_ticks(ticks.iloc[i : i + 1], "STREAM", conn=series_conn)
    frames.write_ticks(ticks, "BULK", conn=series_conn)
    _assert_matches_reference(series_conn, "STREAM", ticks, {"1m": MINUTE, "5m": 5 * MINUTE})
    pd.testing.assert_frame_equal(frames.load_ohlcv("STREAM", "5m", conn=series_conn),
                                  frames.load_ohlcv("BULK", "5m", conn=series_conn))


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"ts": 1_000, "price": float("nan"), "volume": 1}, "price"),
        ({"ts": 1_000, "price": float("inf"), "volume": 1}, "price"),
        ({"ts": 1_700_000_000, "price": 1.0, "volume": 1}, "unit='s'"),
        ({"ts": 1_000, "price": 1.0, "volume": -1}, "volume"),
        ({"ts": "not a time", "price": 1.0, "volume": 1}, "time"),
        ({"ts": 10**17, "price": 1.0, "volume": 1}, "1970-2200"),
        ({"ts": 1_000, "price": 1.0, "volume": 1, "trade_id": 1.5}, "trade id"),
        ({"ts": 1_000, "price": 1.0, "volume": 1, "side": "sideways"}, "side"),
    ],
)
def test_bad_rows_raise_and_write_nothing(series_conn, row, reason):
    good = {"ts": 2_000, "price": 1.0, "volume": 1, "trade_id": 9, "side": "buy"}
    with pytest.raises(InvalidData, match=reason):
        frames.write_ticks([good, {"trade_id": 10, "side": "sell", **row}], "BAD", conn=series_conn)
    assert list(series_conn.sync.scan_iter(match=series_conn.keys.everything())) == []


def test_skip_mode_counts_rejections_and_keeps_the_rest(series_conn):
    rows = [{"ts": 1_000, "price": 1.0, "volume": 1}, {"ts": 2_000, "price": float("nan"), "volume": 1},
            {"ts": "garbage", "price": 1.0, "volume": 1}, {"ts": 3_000, "price": 2.0, "volume": 1}]
    result = frames.write_ticks(rows, "SKIP", conn=series_conn, errors="skip")
    assert result.written == 2
    assert result.rejected == {"unparseable time": 1, "price is missing, NaN or infinite": 1}
    assert frames.load_ticks("SKIP", conn=series_conn)["price"].tolist() == [1.0, 2.0]


def test_bad_symbol_raises_before_anything_is_sent(series_conn):
    with pytest.raises(InvalidKey, match="symbol"):
        frames.write_ticks([{"ts": 1, "price": 1.0, "volume": 1.0}], "bad symbol", conn=series_conn)


def test_empty_reads_have_the_right_columns_and_dtypes(series_conn):
    frames.write_ticks([{"ts": "2024-01-01T00:00Z", "price": 1.0, "volume": 1.0}], "SOMETHING", conn=series_conn)
    ticks = frames.load_ticks("SOMETHING", start="2025-01-01", conn=series_conn)
    assert list(ticks.columns) == ["price", "volume"] and len(ticks) == 0
    assert str(ticks.index.dtype) == "datetime64[ms, UTC]"
    assert all(str(t) == "float64" for t in ticks.dtypes)
    candles = frames.load_ohlcv("SOMETHING", "1h", start="2025-01-01", conn=series_conn)
    assert list(candles.columns) == ["open", "high", "low", "close", "volume"] and len(candles) == 0
    assert all(str(t) == "float64" for t in candles.dtypes)
    skipped = frames.load_ticks("NOTHING", conn=series_conn, missing="skip")  # an unknown symbol, skipped
    assert list(skipped.columns) == ["price", "volume"] and len(skipped) == 0
    assert str(skipped.index.dtype) == "datetime64[ms, UTC]"


def test_time_bounds_accept_str_datetime_timestamp_and_epoch_ms(series_conn):
    base = 1_700_000_000_000 // MINUTE * MINUTE
    ticks = pd.DataFrame({"ts": base + np.arange(10) * MINUTE, "price": np.arange(1.0, 11.0), "volume": 1.0})
    frames.write_ticks(ticks, "BOUNDS", conn=series_conn)
    start, end = base + 2 * MINUTE, base + 5 * MINUTE
    as_ts = pd.Timestamp(start, unit="ms", tz="UTC")
    for low, high in [(start, end), (as_ts, pd.Timestamp(end, unit="ms", tz="UTC")),
                      (as_ts.isoformat(), pd.Timestamp(end, unit="ms", tz="UTC").isoformat()),
                      (as_ts.to_pydatetime(), pd.Timestamp(end, unit="ms", tz="UTC").to_pydatetime())]:
        got = frames.load_ticks("BOUNDS", low, high, conn=series_conn)
        assert got["price"].tolist() == [3.0, 4.0, 5.0, 6.0]  # inclusive at both ends
        candles = frames.load_ohlcv("BOUNDS", "1m", low, high, conn=series_conn)
        assert candles["close"].tolist() == [3.0, 4.0, 5.0, 6.0]


def test_unstored_multiples_are_rolled_up_like_pandas(series_conn):
    rng = np.random.default_rng(11)
    n = 2_000
    ticks = pd.DataFrame({"ts": 1_690_000_000_000 + np.sort(rng.integers(0, 2 * 1440 * MINUTE, n)),
                          "trade_id": np.arange(n), "price": rng.uniform(1, 2, n).round(3), "volume": 1.0})
    frames.write_ticks(ticks, "ROLL", conn=series_conn)
    # Multiples of stored intervals are merged from them; "7s" and "7m" divide none, so come from the ticks.
    for name, iv in {"2h": 120 * MINUTE, "10m": 10 * MINUTE, "3m": 3 * MINUTE, "2d": 2880 * MINUTE,
                     "7s": 7_000, "7m": 7 * MINUTE}.items():
        got = frames.load_ohlcv("ROLL", name, conn=series_conn, columns=["open", "high", "low", "close", "volume", "count"])
        assert_candles_equal(got, reference_candles(ticks, iv))


def test_several_symbols_give_one_frame_keyed_by_symbol(series_conn):
    for i, symbol in enumerate(["AAA", "BBB"]):
        frames.write_ticks(pd.DataFrame({"ts": [MINUTE * 10**6, MINUTE * 10**6 + 1], "price": [1.0 + i, 2.0 + i],
                                         "volume": 1.0}), symbol, conn=series_conn)
    both = frames.load_ticks(["AAA", "BBB"], conn=series_conn)
    assert both.index.names == ["symbol", "ts"]
    assert both.loc["BBB", "price"].tolist() == [2.0, 3.0]
    candles = frames.load_ohlcv(["AAA", "BBB"], "1m", conn=series_conn)
    assert candles.loc["AAA", "close"].tolist() == [2.0]


def test_retention_trims_old_chunks_and_keeps_recent_ones(conn):
    trimmed = dataclasses.replace(conn.settings, tick_chunk_ms=60 * MINUTE, tick_retention_ms=120 * MINUTE,
                                  candle_retention_ms=None)
    connection = conn.with_settings(trimmed)
    base = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MINUTE)
    ticks = pd.DataFrame({"ts": base + np.arange(10) * 60 * MINUTE + 1, "price": 1.0, "volume": 1.0})
    result = frames.write_ticks(ticks, "KEEP", conn=connection)
    # One batch: its first 7 hours fall out of the window behind its own newest tick, so they
    # go into the candles but are never stored as ticks (no stored chunk had to be deleted).
    assert (result.written, result.trimmed_ticks, result.trimmed_chunks, result.retention_refused) == (10, 7, 0, 0)
    left = frames.load_ticks("KEEP", conn=connection)
    assert left.index.asi8.tolist() == (base + np.arange(7, 10) * 60 * MINUTE + 1).tolist()
    # Candles are kept longer: their own retention is off here.
    assert len(frames.load_ohlcv("KEEP", "1h", conn=connection)) == 10
    # A feed that sends one tick at a time stays bounded too, each write deleting the chunk it put out.
    streamed = WriteResult("STREAMED")
    for i in range(len(ticks)):
        streamed += frames.write_ticks(ticks.iloc[i : i + 1], "STREAMED", conn=connection)
    assert (streamed.trimmed_chunks, streamed.trimmed_ticks) == (7, 7)
    assert len(frames.load_ticks("STREAMED", conn=connection)) == 3
    assert connection.sync.zcard(connection.keys.tick_index("STREAMED")) == 3


def test_imported_candles_are_read_by_the_same_readers(series_conn):
    aapl = pd.read_parquet("data/aapl_1m_20260729.parquet")
    assert frames.write_candles(aapl, "AAPL", "1m", conn=series_conn).written == len(aapl)
    got = frames.load_ohlcv("AAPL", "1m", conn=series_conn)
    expected = aapl.set_index("ts")[["open", "high", "low", "close", "volume"]].astype("float64")
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert list(got.index.asi8) == list(expected.index.as_unit("ms").asi8)
    hourly = frames.load_ohlcv("AAPL", "1h", conn=series_conn)
    first_hour = expected.loc[expected.index < expected.index[0].floor("1h") + pd.Timedelta("1h")]
    assert hourly["open"].iloc[0] == first_hour["open"].iloc[0]
    assert hourly["volume"].iloc[0] == first_hour["volume"].sum()


def test_imported_candles_are_validated(series_conn):
    with pytest.raises(InvalidData, match="bound"):
        frames.write_candles([{"ts": 0, "open": 2.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}], "X", "1m",
                             conn=series_conn)
    with pytest.raises(InvalidData, match="time"):
        frames.write_candles([{"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}], "X", "1m",
                             conn=series_conn)
    with pytest.raises(InvalidData, match="no 'volume' column"):
        frames.write_candles([{"ts": 0, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}], "X", "1m", conn=series_conn)
    with pytest.raises(InvalidData, match="grid"):
        frames.write_candles([{"ts": 1, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}], "X", "1m",
                             conn=series_conn)


def test_slightly_late_ticks_splice_into_the_head_without_fetching_it_whole(series_conn):
    base = 1_700_000_000_000 // (10 * MINUTE) * (10 * MINUTE)
    n = 2_000
    ticks = pd.DataFrame({"ts": base + np.arange(n) * 100, "trade_id": np.arange(n), "price": 10.0 + np.arange(n) % 7,
                          "volume": 1.0})
    on_time, late = ticks.drop(index=[1_990, 1_995]), ticks.loc[[1_990, 1_995]]
    frames.write_ticks(on_time, "LATE", conn=series_conn)
    gets_before = series_conn.metrics.value("redtick_redis_commands_total", command="GET")
    result = frames.write_ticks(late, "LATE", conn=series_conn)
    assert result.written == 2
    # The late ticks were merged into the head's tail (SETRANGE), not by reading the chunk whole.
    assert series_conn.metrics.value("redtick_redis_commands_total", command="GET") == gets_before
    _assert_matches_reference(series_conn, "LATE", ticks, {"1m": MINUTE})
    # Far behind the tail: the chunk is read and rewritten whole, with the same result.
    early = ticks.iloc[:1].assign(trade_id=-1)
    assert frames.write_ticks(early, "LATE", conn=series_conn).written == 1
    assert series_conn.metrics.value("redtick_redis_commands_total", command="GET") == gets_before + 1
    _assert_matches_reference(series_conn, "LATE", pd.concat([ticks, early]), {"1m": MINUTE})


def test_clipped_reads_of_large_chunks_equal_a_filter_of_all_ticks(conn):
    """Windows that clip the real ES sample's busy hour chunks (tens of thousands of ticks each) are
    found by probing, not fetched whole, and equal pandas filtering, boundaries on shared milliseconds included."""
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    connection = conn.with_settings(plain)
    es = pd.read_parquet(ES_FILE).rename(columns={"seq": "trade_id"})
    frames.write_ticks(es, "ES", conn=connection)
    ts = es["ts"].dt.as_unit("ms").astype("int64").to_numpy()
    order = np.lexsort((es["trade_id"].to_numpy(), ts))
    ts, ids = ts[order], es["trade_id"].to_numpy()[order]
    rng = np.random.default_rng(5)
    picks = rng.choice(ts, 24)  # bounds that land on real tick times, where many ticks share a millisecond
    windows = [(int(a), int(a) + int(w)) for a, w in zip(picks, rng.integers(0, 3_600_000, 24), strict=True)]
    windows += [(int(picks[0]), None), (None, int(picks[1])), (int(ts[0]), int(ts[0])), (int(ts[-1]), int(ts[-1]))]
    gets_before = connection.metrics.value("redtick_redis_commands_total", command="GETRANGE")
    for start, end in windows:
        got = frames.load_ticks("ES", start, end, conn=connection, columns=["trade_id"])
        keep = np.ones(len(ts), dtype=bool)
        if start is not None:
            keep &= ts >= start
        if end is not None:
            keep &= ts <= end
        assert got["trade_id"].tolist() == ids[keep].tolist(), (start, end)
    assert connection.metrics.value("redtick_redis_commands_total", command="GETRANGE") > gets_before
    # The price at any time is the last tick at or before it.
    for at in [*picks[:8].tolist(), int(ts[0]) - 1, int(ts[-1]) + 10**9]:
        record = run(connection.sync, lambda at=at: frames.layout_of(connection).price_at_plan("ES", int(at)))
        before = np.flatnonzero(ts <= at)
        if len(before) == 0:
            assert record is None
        else:
            assert int(record["id"]) == int(ids[before[-1]])
    connection.close()


def test_a_clipped_read_racing_an_insert_misses_no_stored_tick(conn):
    """Ticks inserted between a read's search and its fetch shift records later; the read notices
    (one record past its end) and fetches on, so no tick stored before the read began is missed."""
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    connection = conn.with_settings(plain)
    base = 1_700_000_000_000 // (60 * MINUTE) * (60 * MINUTE)
    n = 20_000
    ticks = pd.DataFrame({"ts": base + np.arange(n) * 100, "trade_id": np.arange(n), "price": 1.0, "volume": 1.0})
    frames.write_ticks(ticks, "RACER", conn=connection)
    start, end = base + 500_000, base + 1_000_000
    early = pd.DataFrame({"ts": base + 100 + np.arange(500) * 50, "trade_id": n + np.arange(500), "price": 2.0,
                          "volume": 1.0})  # all before the window: they only push the window's ticks later

    plan = frames.layout_of(connection).read_ticks_plan("RACER", start, end, ("ts", "id"))
    got, inserted = run_with_write_at_first_fetch(connection, plan, lambda: frames.write_ticks(early, "RACER", conn=connection))
    assert inserted
    inside = ticks[(ticks["ts"] >= start) & (ticks["ts"] <= end)]
    assert got["id"].tolist() == inside["trade_id"].tolist()
    connection.close()
