"""PriceCache: the spec's calls over the series, async writes equal to sync, alerts fired by tick writes."""

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

from redtick import frames
from redtick.caches.prices import PriceCache
from redtick.errors import InvalidData

MINUTE = 60_000
BASE = 1_700_006_400_000  # a midnight UTC


@pytest.fixture
def cache(conn):
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    return PriceCache(conn.with_settings(plain))


def _ticks(n=500, seed=5, span=6 * 60 * MINUTE):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ts": BASE + np.sort(rng.integers(0, span, n)), "trade_id": np.arange(n),
                         "price": rng.uniform(100, 110, n).round(2), "volume": rng.integers(1, 9, n).astype(float)})


async def test_async_writes_equal_sync_writes(cache):
    ticks = _ticks()
    await cache.write_ticks(ticks.iloc[:250], "ASYNC")
    frames.write_ticks(ticks.iloc[250:], "ASYNC", conn=cache.conn)
    frames.write_ticks(ticks, "SYNC", conn=cache.conn)
    a = await cache.load_ohlcv("ASYNC", "15m", columns=["open", "high", "low", "close", "volume", "count"])
    b = frames.load_ohlcv("SYNC", "15m", conn=cache.conn, columns=["open", "high", "low", "close", "volume", "count"])
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(await cache.load_ticks("ASYNC"), frames.load_ticks("SYNC", conn=cache.conn))


async def test_set_current_price_keeps_every_update_even_within_one_millisecond(cache):
    stamp = BASE + 123
    for price in (100.0, 101.0, 99.0):
        await cache.set_current_price("BTCUSDT", price, volume=1.0, timestamp=stamp)
    assert await cache.get_current_price("BTCUSDT") == 99.0
    ticks = await cache.load_ticks("BTCUSDT")
    assert ticks["price"].tolist() == [100.0, 101.0, 99.0]
    candle = (await cache.load_ohlcv("BTCUSDT", "1m", columns=["open", "high", "low", "close", "count"])).iloc[0]
    assert (candle["open"], candle["high"], candle["low"], candle["close"], candle["count"]) == (100.0, 101.0, 99.0, 99.0, 3)
    quote = await cache.get_current_quote("BTCUSDT")
    assert quote["timestamp"] == pd.Timestamp(stamp, unit="ms", tz="UTC").isoformat().replace("+00:00", "Z")


async def test_a_late_tick_does_not_replace_the_current_price(cache):
    await cache.set_current_price("LATE", 10.0, timestamp=BASE + 5_000)
    await cache.set_current_price("LATE", 20.0, timestamp=BASE + 1_000)
    assert await cache.get_current_price("LATE") == 10.0
    assert (await cache.load_ticks("LATE"))["price"].tolist() == [20.0, 10.0]


async def test_price_change_against_the_series(cache):
    ticks = _ticks()
    await cache.write_ticks(ticks, "CHG")
    change = await cache.get_price_change("CHG", period_minutes=60)
    ordered = ticks.sort_values(["ts", "trade_id"])
    newest = ordered.iloc[-1]
    before = ordered[ordered["ts"] <= newest["ts"] - 60 * MINUTE].iloc[-1]
    assert change["current_price"] == newest["price"] and change["previous_price"] == before["price"]
    assert change["change"] == pytest.approx(newest["price"] - before["price"])
    assert change["change_percent"] == pytest.approx((newest["price"] - before["price"]) / before["price"] * 100)
    assert await cache.get_price_change("CHG", period_minutes=24 * 60) is None  # the series is 6 h long
    assert await cache.get_price_change("NOSERIES", 60) is None
    with pytest.raises(InvalidData):
        await cache.get_price_change("CHG", period_minutes=0)


async def test_price_history_is_the_newest_ticks_in_range_oldest_first(cache):
    ticks = _ticks(n=3_000)
    await cache.write_ticks(ticks, "HIST")
    ordered = ticks.sort_values(["ts", "trade_id"])
    history = await cache.get_price_history("HIST", limit=100)
    assert [h["trade_id"] for h in history] == ordered["trade_id"].iloc[-100:].tolist()
    start = BASE + 60 * MINUTE
    end = BASE + 90 * MINUTE
    ranged = await cache.get_price_history("HIST", limit=10_000, start_time=start, end_time=end)
    inside = ordered[(ordered["ts"] >= start) & (ordered["ts"] <= end)]
    assert [h["trade_id"] for h in ranged] == inside["trade_id"].tolist()
    assert await cache.get_price_history("NONE") == []


async def test_ohlcv_data_from_an_exchange_round_trips(cache):
    candles = [{"timestamp": pd.Timestamp(BASE + i * 60 * MINUTE, unit="ms", tz="UTC").isoformat(),
                "open": 49000.0 + i, "high": 51000.0 + i, "low": 48000.0 + i, "close": 50000.0 + i, "volume": 1000.0}
               for i in range(5)]
    assert await cache.set_ohlcv_data("BTCUSDT", "1h", candles) == 5
    got = await cache.get_ohlcv_data("BTCUSDT", "1h")
    assert [c["close"] for c in got] == [50000.0 + i for i in range(5)]
    assert got[0]["count"] is None  # an exchange candle's tick count is unknown, not invented
    assert [c["close"] for c in await cache.get_ohlcv_data("BTCUSDT", "1h", limit=2)] == [50003.0, 50004.0]
    daily = await cache.get_ohlcv_data("BTCUSDT", "1d")
    assert (daily[0]["open"], daily[0]["close"], daily[0]["volume"]) == (49000.0, 50004.0, 5000.0)
    with pytest.raises(InvalidData, match="time"):
        await cache.set_ohlcv_data("BTCUSDT", "1h", [{"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}])


async def test_cleanup_old_data_removes_only_chunks_old_by_the_wall_clock(cache):
    now = int(time.time() * 1000)
    await cache.write_ticks(pd.DataFrame({"ts": [now - 10 * 86_400_000, now - 60_000], "price": [1.0, 2.0],
                                          "volume": 1.0}), "OLD")
    # Retention is off: maintenance keeps both; only the explicit wall-clock call deletes.
    assert (await cache.apply_retention())["chunks_removed"] == 0
    result = await cache.cleanup_old_data(days=7)
    assert result["symbols"] == 1 and result["chunks_removed"] >= 1 and result["ticks_removed"] == 1
    assert (await cache.load_ticks("OLD"))["price"].tolist() == [2.0]
    with pytest.raises(InvalidData):
        await cache.cleanup_old_data(days=0)


async def test_writing_ticks_fires_alerts_once(cache):
    above = await cache.set_price_alert("user_1", "ALRT", 105.0, "above")
    below = await cache.set_price_alert("user_2", "ALRT", 95.0, "below")
    ticks = pd.DataFrame({"ts": BASE + np.arange(4), "trade_id": np.arange(4), "price": [100.0, 106.0, 101.0, 100.0],
                          "volume": 1.0})
    result = await cache.write_ticks(ticks, "ALRT")
    assert [f.alert_id for f in result.fired_alerts] == [above]
    again = frames.write_ticks(ticks.assign(trade_id=ticks["trade_id"] + 10), "ALRT", conn=cache.conn)
    assert again.fired_alerts == []
    assert [a["alert_id"] for a in await cache.get_user_alerts("user_2")] == [below]
    assert await cache.check_price_alerts("ALRT", 90.0) == [below]


@pytest.mark.parametrize("limit", [1, 7, 499, 501, 1_200, 5_000])
@pytest.mark.parametrize(("start_min", "end_min"), [(None, None), (90, None), (None, 200), (61, 239), (0, 0)])
async def test_price_history_equals_the_reference_for_any_limit_and_range(cache, limit, start_min, end_min):
    ticks = _ticks(n=3_000)  # about 500 an hour over 6 hours: limits below, at and across chunk sizes
    symbol = "HREF"
    await cache.write_ticks(ticks, symbol)
    start = None if start_min is None else BASE + start_min * MINUTE
    end = None if end_min is None else BASE + end_min * MINUTE
    ordered = ticks.sort_values(["ts", "trade_id"])
    mask = np.ones(len(ordered), dtype=bool)
    if start is not None:
        mask &= ordered["ts"].to_numpy() >= start
    if end is not None:
        mask &= ordered["ts"].to_numpy() <= end
    inside = ordered[mask]
    got = await cache.get_price_history(symbol, limit=limit, start_time=start, end_time=end)
    assert [h["trade_id"] for h in got] == inside["trade_id"].iloc[-limit:].tolist()
