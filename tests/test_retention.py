"""Series data has one lifecycle: kept unless a retention is set, then refused or trimmed by one rule, never by the clock."""

import contextlib
import itertools
import logging

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redtick import frames
from redtick.caches.prices import PriceCache
from redtick.series import WriteResult, retained_from
from redtick.service import CacheService
from redtick.steps import run
from redtick.ticks import normalise_ticks
from redtick.web import create_app
from tests.series_reference import assert_candles_equal, reference_candles, reference_ticks

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
START = 1_377_993_600_000  # 2013-09-01T00:00Z, the ES sample's day: years behind any wall clock
TOKEN = "admin-token-for-tests"
EXAMPLES = itertools.count()  # a fresh symbol for each hypothesis example: they share one namespace


@contextlib.contextmanager
def settings_of(conn, **overrides):
    """A connection to the same server and namespace as ``conn``, with other settings."""
    connection = conn.with_settings(**overrides)
    try:
        yield connection
    finally:
        connection.close()


def hourly(first_day: int, days: int, first_id: int = 0) -> pd.DataFrame:
    """One tick an hour, at half past, for ``days`` days from day ``first_day`` after START."""
    ts = START + first_day * DAY + np.arange(days * 24) * HOUR + 30 * MINUTE
    return pd.DataFrame({"ts": ts, "trade_id": first_id + np.arange(len(ts)), "price": 100.0 + np.arange(len(ts)) % 7,
                         "volume": 1.0})


def write_days_in_order(conn, symbol: str, days: int = 10) -> tuple[WriteResult, pd.DataFrame]:
    """``days`` days of hourly ticks, one write call a day in time order: (summed result, ticks sent)."""
    sent = [hourly(day, 1, first_id=24 * day) for day in range(days)]
    total = WriteResult(symbol)
    for ticks in sent:
        total += frames.write_ticks(ticks, symbol, conn=conn)
    return total, pd.concat(sent, ignore_index=True)


def stored_ts(conn, symbol: str) -> np.ndarray:
    return frames.load_ticks(symbol, conn=conn).index.asi8


def redtick_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "redtick" and r.levelno == logging.WARNING]


# -- default: retention off ----------------------------------------------------------------------------
def test_by_default_every_tick_is_kept_in_order_or_backfilled(conn, caplog):
    assert (conn.settings.tick_retention_ms, conn.settings.candle_retention_ms) == (None, None)
    in_order, sent = write_days_in_order(conn, "KEEPALL")
    old = hourly(-20, 1, first_id=10_000)
    backfill = frames.write_ticks(old, "KEEPALL", conn=conn)
    for result in (in_order, backfill):
        assert (result.retention_refused, result.trimmed_ticks, result.trimmed_chunks) == (0, 0, 0)
    assert (in_order.written, backfill.written) == (240, 24)
    assert stored_ts(conn, "KEEPALL").tolist() == [*old["ts"], *sent["ts"]]
    assert len(frames.load_ohlcv("KEEPALL", "1d", conn=conn)) == 11
    assert redtick_warnings(caplog) == []


# -- retention on: one rule for writes and trims ----------------------------------------------------------
def test_the_rule_keeps_the_chunk_holding_the_cutoff_and_every_later_one():
    newest = START + 9 * DAY + 23 * HOUR + 30 * MINUTE
    assert retained_from(newest, 7 * DAY, HOUR) == START + 2 * DAY + 23 * HOUR
    assert retained_from(newest, 7 * DAY, DAY) == START + 2 * DAY
    # A cutoff on a chunk boundary keeps that chunk: a chunk goes once it ends at or before the cutoff.
    assert retained_from(START + 8 * DAY, 7 * DAY, HOUR) == START + DAY
    assert retained_from(5, 10, HOUR) == -HOUR  # before the epoch: floor, not truncation


def test_ten_days_in_order_with_7d_retention_trim_the_first_three_and_say_so(conn, caplog):
    with settings_of(conn, tick_retention_ms=7 * DAY) as retained:
        total, sent = write_days_in_order(retained, "TRIM")
        floor = retained_from(int(sent["ts"].max()), 7 * DAY, retained.settings.tick_chunk_ms)
        kept = sent[sent["ts"] >= floor]
        # Days 0 and 1 and day 2 up to the hour holding the cutoff: whole chunks go.
        assert len(kept) == 7 * 24 + 1 and len(sent) - len(kept) == 71
        assert stored_ts(retained, "TRIM").tolist() == kept["ts"].tolist()
        assert (total.written, total.retention_refused, total.trimmed_ticks, total.trimmed_chunks) == (240, 0, 71, 71)
        # Each day's write that trimmed said so once, naming the symbol, the counts and the setting.
        warnings = redtick_warnings(caplog)
        assert len(warnings) == 3
        assert all("TRIM" in w and "REDTICK_TICK_RETENTION=7d" in w for w in warnings)
        assert "trimmed 24 ticks (24 chunks)" in warnings[-1]
        # Candle retention is off: the candles of every day, built while the ticks were in the window, stay.
        for name, iv in (("1h", HOUR), ("1d", DAY)):
            got = frames.load_ohlcv("TRIM", name, conn=retained, columns=["open", "high", "low", "close", "volume", "count"])
            assert_candles_equal(got, reference_candles(sent, iv))


def test_a_backfill_older_than_the_window_is_refused_and_one_inside_is_kept(conn, caplog):
    with settings_of(conn, tick_retention_ms=7 * DAY) as retained:
        _, sent = write_days_in_order(retained, "BACK")
        before = stored_ts(retained, "BACK")
        daily_before = frames.load_ohlcv("BACK", "1d", conn=retained)
        caplog.clear()

        old = frames.write_ticks(hourly(-20, 1, first_id=10_000), "BACK", conn=retained)
        assert (old.received, old.written, old.retention_refused, old.duplicates, old.rejected) == (24, 0, 24, 0, {})
        assert stored_ts(retained, "BACK").tolist() == before.tolist()
        pd.testing.assert_frame_equal(frames.load_ohlcv("BACK", "1d", conn=retained), daily_before)
        (warning,) = redtick_warnings(caplog)
        assert "BACK: retention refused 24 ticks" in warning and "REDTICK_TICK_RETENTION=7d" in warning

        # Day 2 straddles the window: its hours before the chunk of the cutoff are refused, the last one kept.
        inside = hourly(2, 1, first_id=20_000).assign(ts=lambda f: f["ts"] + 10 * MINUTE)
        straddling = frames.write_ticks(inside, "BACK", conn=retained)
        assert (straddling.written, straddling.retention_refused, straddling.trimmed_ticks) == (1, 23, 0)
        late = frames.write_ticks(hourly(5, 1, first_id=30_000).assign(ts=lambda f: f["ts"] + MINUTE), "BACK", conn=retained)
        assert (late.written, late.retention_refused) == (24, 0)
        assert len(stored_ts(retained, "BACK")) == len(before) + 1 + 24
        # A re-sent tick inside the window is a duplicate, as ever; the candles count it once.
        again = frames.write_ticks(hourly(5, 1, first_id=30_000).assign(ts=lambda f: f["ts"] + MINUTE), "BACK",
                                   conn=retained)
        assert (again.written, again.duplicates, again.retention_refused) == (0, 24, 0)
        everything = pd.concat([sent, inside.iloc[-1:], hourly(5, 1, first_id=30_000).assign(ts=lambda f: f["ts"] + MINUTE)])
        got = frames.load_ohlcv("BACK", "1h", conn=retained, columns=["open", "high", "low", "close", "volume", "count"])
        assert_candles_equal(got, reference_candles(everything, HOUR))


def test_one_warning_per_write_call_however_many_batches(conn, caplog):
    with settings_of(conn, tick_retention_ms=2 * DAY) as retained:
        result = frames.write_ticks(hourly(0, 5), "ONCE", conn=retained, batch_size=24)
        assert result.trimmed_ticks == 3 * 24 - 1 and result.trimmed_chunks == result.trimmed_ticks
        (warning,) = redtick_warnings(caplog)
        assert f"ONCE: retention refused 0 ticks older than the window behind the newest tick and trimmed " \
               f"{result.trimmed_ticks} ticks" in warning
        assert "REDTICK_TICK_RETENTION=2d, REDTICK_CANDLE_RETENTION=off" in warning


async def test_the_async_write_path_refuses_counts_and_warns_the_same(conn, caplog):
    with settings_of(conn, tick_retention_ms=DAY, candle_retention_ms=30 * DAY) as retained:
        cache = PriceCache(retained)
        try:
            first = await cache.write_ticks(hourly(0, 3), "ASYNCRET", batch_size=10)
            assert first.trimmed_ticks == 2 * 24 - 1
            refused = await cache.write_ticks(hourly(-40, 1, first_id=500), "ASYNCRET")
            assert (refused.written, refused.retention_refused) == (0, 24)
        finally:
            await retained.aclose()
    warnings = redtick_warnings(caplog)
    assert len(warnings) == 2
    assert "REDTICK_TICK_RETENTION=1d, REDTICK_CANDLE_RETENTION=30d" in warnings[1]


def test_imported_candles_out_of_the_candle_window_are_refused(conn, caplog):
    with settings_of(conn, candle_retention_ms=30 * DAY) as retained:
        frames.write_ticks(hourly(60, 1), "BARS", conn=retained)
        bars = [{"ts": START + day * DAY, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 7.0}
                for day in (0, 45)]
        result = frames.write_candles(bars, "BARS", "1m", conn=retained)
        assert (result.written, result.retention_refused) == (1, 1)
        got = frames.load_ohlcv("BARS", "1m", conn=retained)
        assert got.index.asi8[0] == START + 45 * DAY and len(got) == 1 + 24
        assert "BARS: retention refused 1 candles" in redtick_warnings(caplog)[-1]


def test_a_write_judged_behind_a_newest_tick_that_moved_runs_again(conn):
    with settings_of(conn, tick_retention_ms=7 * DAY) as retained:
        frames.write_ticks(hourly(9, 1), "MOVED", conn=retained)
        layout = frames.layout_of(retained)
        batch = normalise_ticks(hourly(5, 1, first_id=500).iloc[:1])  # inside the window behind day 9
        steps = 0

        def racing():
            """The write plan, with another writer moving the newest tick 20 days on right after it was read."""
            nonlocal steps
            plan, reply = layout.write_plan("MOVED", batch), None
            while True:
                try:
                    step = plan.send(reply)
                except StopIteration as stop:
                    return stop.value
                steps += 1
                if steps == 2:
                    frames.write_ticks(hourly(30, 1, first_id=900).iloc[:1], "MOVED", conn=retained)
                reply = yield step

        result = run(retained.sync, racing)
        assert (result.written, result.retention_refused) == (0, 1)
        assert START + 5 * DAY + 30 * MINUTE not in stored_ts(retained, "MOVED")


# -- the law: what is stored does not depend on the arrival order ----------------------------------------
tick_rows = st.lists(
    st.tuples(
        st.integers(0, 3 * DAY),  # three days: many 1-hour tick chunks, several 1-day 1m-candle chunks
        st.integers(0, 3),  # a few ids, so ticks of one millisecond are common
        st.sampled_from([99.5, 100.0, 101.0, 250.0]),
        st.sampled_from([0.5, 1.0, 2.0]),
    ),
    min_size=1,
    max_size=80,
    unique_by=lambda row: (row[0], row[1]),
)


@pytest.fixture(params=[(5 * HOUR, None), (95 * MINUTE, DAY), (30 * HOUR, 2 * DAY), (None, DAY)],
                ids=["ticks5h", "ticks95m-candles1d", "ticks30h-candles2d", "candles1d"])
def law_conn(conn, request):
    tick_ms, candle_ms = request.param
    with settings_of(conn, tick_retention_ms=tick_ms, candle_retention_ms=candle_ms, intervals=("1m", "1h")) as c:
        yield c


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=tick_rows, data=st.data())
def test_stored_ticks_are_those_inside_the_final_window_whatever_the_arrival_order(law_conn, rows, data):
    """The law, exactly: with N the newest tick ever sent, the ticks stored are the distinct ticks sent
    at or after ``retained_from(N, tick retention, chunk)``, for any batching, order and re-sends.

    Candles depend on the order only where they must: a tick older than the window when it
    arrives is refused outright (whether it was counted before can no longer be told), so a
    candle never counts a tick twice, and a bucket inside both windows equals pandas exactly.
    """
    layout = frames.layout_of(law_conn)
    sent = pd.DataFrame(rows, columns=["ts", "trade_id", "price", "volume"])
    sent["ts"] += START
    order = data.draw(st.permutations(range(len(sent))))
    shuffled = sent.iloc[list(order)].reset_index(drop=True)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=5)))
    batches = [shuffled.iloc[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    resend = data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=2))
    symbol = f"LAW{next(EXAMPLES)}"
    total = WriteResult(symbol)
    for i in [*range(len(batches)), *resend]:
        if len(batches[i]):
            total += frames.write_ticks(batches[i], symbol, conn=law_conn)

    newest = int(sent["ts"].max())
    no_floor = np.iinfo(np.int64).min
    window = layout.retention_window(newest)
    tick_floor = no_floor if window.ticks_from is None else window.ticks_from
    expected = reference_ticks(sent[sent["ts"] >= tick_floor])
    got = frames.load_ticks(symbol, conn=law_conn, columns=["trade_id"])
    assert got.index.asi8.tolist() == expected["ts"].tolist()
    assert got["trade_id"].tolist() == expected["trade_id"].tolist()
    # Every tick sent is written, a duplicate or refused; what is stored is what was written less what was trimmed.
    assert total.received == total.written + total.duplicates + total.retention_refused
    assert total.written - total.trimmed_ticks == len(got)

    for name, iv in (("1m", MINUTE), ("1h", HOUR)):
        candles = frames.load_ohlcv(symbol, name, conn=law_conn, columns=["open", "high", "low", "close", "volume", "count"])
        reference = reference_candles(sent, iv)
        starts, reference_starts = candles.index.asi8, reference.index.asi8
        candle_floor = window.candles_from.get(name, no_floor)
        assert np.isin(starts, reference_starts).all()
        assert (starts >= candle_floor).all()
        counted = reference["count"].to_numpy()[np.searchsorted(reference_starts, starts)]
        assert (candles["count"].to_numpy() <= counted).all()
        exact_from = max(tick_floor, candle_floor)
        assert_candles_equal(candles[starts >= exact_from], reference[reference_starts >= exact_from])


# -- maintenance applies the configured retention only -----------------------------------------------------
def write_2013(conn) -> dict[str, pd.DataFrame]:
    """Ten days of 2013 ticks and some 2013 imported candles; what a reader sees of them."""
    frames.write_ticks(hourly(0, 10), "ES13", conn=conn)
    bars = [{"ts": START + day * DAY, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 7.0}
            for day in range(5)]
    frames.write_candles(bars, "BARS13", "1m", conn=conn)
    return seen_2013(conn)


def seen_2013(conn) -> dict[str, pd.DataFrame]:
    return {"ticks": frames.load_ticks("ES13", conn=conn), "daily": frames.load_ohlcv("ES13", "1d", conn=conn),
            "minutes": frames.load_ohlcv("ES13", "1m", conn=conn), "bars": frames.load_ohlcv("BARS13", "1m", conn=conn)}


async def test_cleanup_with_retention_off_deletes_no_series_data(conn):
    before = write_2013(conn)
    service = CacheService(conn)
    result = await service.cleanup_expired_data()
    assert {k: v for k, v in result.items() if k.startswith("price_")} == \
        {"price_symbols": 0, "price_chunks_removed": 0, "price_ticks_removed": 0}
    assert (await service.run_maintenance())["ok"] is True
    app = create_app(conn, admin_token=TOKEN, maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.post("/api/v1/cache/cleanup", headers={"X-Admin-Token": TOKEN})
    assert response.status_code == 200 and response.json()["data"]["price_chunks_removed"] == 0
    after = seen_2013(conn)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame)
    assert len(after["ticks"]) == 240 and len(after["bars"]) == 5
    # Deleting by the wall clock stays possible, as an explicit call that says so.
    removed = await PriceCache(conn).cleanup_old_data(days=7)
    assert removed["ticks_removed"] == 240 and len(frames.load_ticks("ES13", conn=conn)) == 0


async def test_cleanup_with_retention_on_trims_behind_each_symbols_newest_tick(conn):
    frames.write_ticks(hourly(0, 10), "LONG", conn=conn)  # written with retention off: all kept
    frames.write_ticks(hourly(0, 3), "SHORT", conn=conn)  # three days: inside its own 7-day window
    with settings_of(conn, tick_retention_ms=7 * DAY) as retained:
        try:
            service = CacheService(retained)
            result = await service.cleanup_expired_data()
            floor = START + 2 * DAY + 23 * HOUR
            assert {k: v for k, v in result.items() if k.startswith("price_")} == \
                {"price_symbols": 2, "price_chunks_removed": 71, "price_ticks_removed": 71}
            assert stored_ts(retained, "LONG").tolist() == [t for t in hourly(0, 10)["ts"].tolist() if t >= floor]
            # By the wall clock all of it is ten years old; behind its own newest tick, none of it is.
            assert len(stored_ts(retained, "SHORT")) == 72
            assert len(frames.load_ohlcv("LONG", "1h", conn=retained)) == 240  # candle retention is off
            again = await service.cleanup_expired_data()
            assert (again["price_chunks_removed"], again["price_ticks_removed"]) == (0, 0)
        finally:
            await retained.aclose()


async def test_cleanup_applies_candle_retention_behind_the_newest_tick(conn):
    frames.write_ticks(hourly(0, 10), "CANDLES", conn=conn)
    with settings_of(conn, candle_retention_ms=3 * DAY) as retained:
        try:
            result = await CacheService(retained).cleanup_expired_data()
            # The cutoff is day 6, 23:30. 1m candles live in one chunk a day: days 0 to 5 go. 5m candles
            # live in chunks of 5 days from the epoch: the two that end by START + 6 days go.
            assert result["price_chunks_removed"] == 6 + 2 and result["price_ticks_removed"] == 0
            minutes = frames.load_ohlcv("CANDLES", "1m", conn=retained)
            assert minutes.index.asi8[0] == START + 6 * DAY + 30 * MINUTE
            assert len(stored_ts(retained, "CANDLES")) == 240  # tick retention is off
        finally:
            await retained.aclose()
