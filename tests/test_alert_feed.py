"""Fired alerts that reach someone: streams read through consumer groups, the spec's check-after-write flow,
and fired_at taken from the tick that crossed the target."""

import asyncio
import dataclasses
import itertools
import secrets
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import redtick
from redtick.caches.alerts import PriceAlerts, set_alerts
from redtick.caches.prices import PriceCache
from redtick.errors import InvalidData

ES = Path(__file__).resolve().parent.parent / "data" / "es_ticks_20130901.parquet"
BASE = 1_378_072_800_000  # 2013-09-01 22:00 UTC, the ES sample's first minute
_moments = itertools.count(1)


def ticks(prices, start=BASE, step=1_000) -> pd.DataFrame:
    n = len(prices)
    return pd.DataFrame({"ts": start + step * np.arange(n), "trade_id": np.arange(n), "price": prices, "volume": 1.0})


async def fire_above(cache: PriceCache, symbol: str, n: int, user: str = "u1") -> list[str]:
    """Set ``n`` above alerts on ``symbol`` and write one tick that fires them all; their ids."""
    ids = [await cache.set_price_alert(user, symbol, 100.0 + i, "above") for i in range(n)]
    result = await cache.write_ticks(ticks([100.0 + n], start=BASE + 1_000 * next(_moments)), symbol)
    assert {f.alert_id for f in result.fired_alerts} == set(ids)
    return ids


async def drain(feed) -> list:
    return [alert async for alert in feed]


# -- delivery through consumer groups -------------------------------------------------------------


async def test_a_killed_consumer_loses_nothing_and_a_group_that_acknowledges_handles_nothing_twice(conn):
    cache = PriceCache(conn)
    ids = await fire_above(cache, "FEEDA", 6) + await fire_above(cache, "FEEDB", 4, user="u2")
    first = cache.fired_alerts("notifier", "worker-1", start="0", count=10, idle_timeout=0.5)
    handled = []
    for _ in range(4):  # three handled and acknowledged; the fourth is in hand when the worker dies
        alert = await anext(first)
        handled.append(alert.alert_id)
    dying = handled.pop()
    del first  # killed: the alerts it read and did not acknowledge stay pending in the group

    second = cache.fired_alerts("notifier", "worker-2", claim_idle=0, idle_timeout=0.5)
    rest = [a.alert_id for a in await drain(second)]
    assert dying in rest
    assert sorted(handled + rest) == sorted(ids)  # nothing lost, nothing handled twice
    assert await drain(cache.fired_alerts("notifier", "worker-3", claim_idle=0, idle_timeout=0.3)) == []


async def test_every_group_sees_every_alert_and_new_ones_as_they_fire(conn):
    cache = PriceCache(conn)
    ids = await fire_above(cache, "FEEDC", 3)
    billing = cache.fired_alerts("billing", "b1", start="0", idle_timeout=0.3)
    pager = cache.fired_alerts("pager", "p1", start="0", idle_timeout=0.3)
    assert sorted(a.alert_id for a in await drain(billing)) == sorted(ids)
    assert sorted(a.alert_id for a in await drain(pager)) == sorted(ids)
    later = await fire_above(cache, "FEEDC", 2)
    assert sorted(a.alert_id for a in await drain(billing)) == sorted(later)


async def test_a_new_group_starts_now_from_zero_or_from_a_chosen_time(conn):
    cache = PriceCache(conn)
    before = await fire_above(cache, "FEEDD", 2)
    newest = cache.fired_alerts("live", "l1", idle_timeout=0.3)
    assert await drain(newest) == []  # "$": only alerts fired after the group was made
    assert sorted(a.alert_id for a in await drain(cache.fired_alerts("all", "a1", start="0", idle_timeout=0.3))) == sorted(before)
    # Stream ids are the server's clock: wait until it has moved on from the first alerts.
    server_ms = lambda: int(conn.sync.time()[0]) * 1000 + int(conn.sync.time()[1]) // 1000  # noqa: E731
    mark = server_ms() + 1
    while server_ms() <= mark:
        await asyncio.sleep(0.001)
    after = await fire_above(cache, "FEEDD", 3)
    since = cache.fired_alerts("since", "s1", start=pd.Timestamp(mark, unit="ms", tz="UTC"), idle_timeout=0.3)
    assert sorted(a.alert_id for a in await drain(since)) == sorted(after)
    assert sorted(a.alert_id for a in await drain(newest)) == sorted(after)


async def test_a_restarted_consumer_takes_back_what_it_held(conn):
    cache = PriceCache(conn)
    ids = await fire_above(cache, "FEEDE", 3)
    feed = cache.fired_alerts("g", "same-name", start="0", idle_timeout=0.3)
    held = (await anext(feed)).alert_id
    del feed  # the process restarts before acknowledging
    again = cache.fired_alerts("g", "same-name", idle_timeout=0.3)  # long claim_idle: its own pending only
    assert sorted(a.alert_id for a in await drain(again)) == sorted(ids)
    assert held in ids


async def test_without_auto_ack_only_acknowledged_alerts_are_done(conn):
    cache = PriceCache(conn)
    ids = await fire_above(cache, "FEEDF", 2)
    feed = cache.fired_alerts("manual", "m1", start="0", auto_ack=False, idle_timeout=0.3)
    seen = await drain(feed)
    await feed.ack(seen[0])
    pending = conn.sync.xpending(conn.keys.alert_stream("FEEDF"), "manual")
    assert pending["pending"] == 1 and sorted(a.alert_id for a in seen) == sorted(ids)
    with pytest.raises(InvalidData, match="not delivered by a feed"):
        await feed.ack(dataclasses.replace(seen[1], entry_id=""))


def test_the_sync_feed_delivers_what_the_writer_fired(conn):
    set_alerts([{"user_id": "u9", "symbol": "FEEDG", "target_price": 50.0, "condition": "below"}], conn=conn)
    redtick.write_ticks(ticks([55.0, 49.5, 48.0]), "FEEDG", conn=conn)
    fired = list(redtick.fired_alerts("sync", "s1", start="0", idle_timeout=0.3, conn=conn))
    assert [(a.user_id, a.price, a.fired_at) for a in fired] == [("u9", 49.5, BASE + 1_000)]
    assert list(redtick.fired_alerts("sync", "s1", idle_timeout=0.2, conn=conn)) == []


@pytest.mark.parametrize(("options", "match"), [
    ({"start": None}, "start=None"),
    ({"count": 0}, "count=0"),
    ({"block": -1}, "block=-1"),
    ({"claim_idle": "1m"}, "claim_idle='1m'"),
    ({"symbols": ["BAD SYMBOL"]}, "space"),
])
def test_bad_feed_options_are_refused_before_reading(conn, options, match):
    with pytest.raises(redtick.RedtickError, match=match):
        redtick.fired_alerts("g", "c", conn=conn, **options)


async def test_the_stream_is_trimmed_by_age(conn):
    cache = PriceCache(conn)
    await fire_above(cache, "FEEDH", 2)
    stream = conn.keys.alert_stream("FEEDH")
    assert conn.sync.xlen(stream) == 2
    week_later = PriceAlerts(conn, clock=lambda: time.time() + 8 * 86_400)  # past the 7-day retention
    assert await week_later.cleanup_expired_alerts("FEEDH") == 0
    assert conn.sync.xlen(stream) == 0

    short = conn.with_settings(alert_stream_retention_ms=1)
    cache = PriceCache(short)
    await fire_above(cache, "FEEDI", 1)
    first = conn.sync.xrange(conn.keys.alert_stream("FEEDI"))[0][0]
    while conn.sync.time()[0] * 1000 + conn.sync.time()[1] // 1000 <= int(first.split(b"-")[0]) + 2:
        await asyncio.sleep(0.001)  # the server's clock moves past the first entry's age limit
    await fire_above(cache, "FEEDI", 1)
    assert [entry_id for entry_id, _ in conn.sync.xrange(conn.keys.alert_stream("FEEDI"))] != [first]
    assert conn.sync.xlen(conn.keys.alert_stream("FEEDI")) == 1


# -- the spec's flow: check after the write ---------------------------------------------------------


async def test_check_after_set_current_price_returns_what_the_write_fired_once(conn):
    cache = PriceCache(conn)
    alert_id = await cache.set_price_alert("user", "TEST", 110, "above")
    await cache.set_current_price("TEST", 115)
    assert await cache.check_price_alerts("TEST", 115) == [alert_id]
    assert await cache.check_price_alerts("TEST", 115) == []  # handed over once
    assert conn.sync.xlen(conn.keys.alert_stream("TEST")) == 1  # fired once
    other = await cache.set_price_alert("user", "TEST", 120, "above")
    assert await cache.check_price_alerts("TEST", 121) == [other]  # called alone, it checks and fires
    assert await cache.get_user_alerts("user") == []


async def test_a_check_at_another_price_does_not_take_what_a_write_fired(conn):
    cache = PriceCache(conn)
    alert_id = await cache.set_price_alert("user", "TAKE", 10.0, "below")
    await cache.set_current_price("TAKE", 9.0)
    assert await cache.check_price_alerts("TAKE", 9.5) == []
    assert await cache.check_price_alerts("TAKE", 9.0) == [alert_id]


# -- fired_at is the tick's time ------------------------------------------------------------------


def first_reaching(frame: pd.DataFrame, condition: str, target: float, prev: float | None) -> pd.Series:
    """The tick that fires an alert: the reference, in pandas."""
    rising = frame["price"] >= target
    falling = frame["price"] <= target
    if condition == "above" or (condition == "crosses" and prev is not None and prev < target):
        return frame[rising].iloc[0]
    if condition == "below" or (condition == "crosses" and prev is not None and prev > target):
        return frame[falling].iloc[0]
    both = max(rising.cumsum().gt(0).idxmax(), falling.cumsum().gt(0).idxmax())
    return frame.loc[both]


def test_replayed_2013_ticks_fire_alerts_at_the_ticks_time_on_the_real_es_data(conn):
    es = pd.read_parquet(ES).iloc[:60_000].reset_index(drop=True)
    es["ms"] = (es["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms")
    rng = np.random.default_rng(14)
    opening = float(es["price"].iloc[0])
    lo, hi = float(es["price"].min()), float(es["price"].max())
    specs = [{"user_id": f"u{i}", "symbol": "ES", "condition": c, "target_price": float(t)}
             for i, (c, t) in enumerate(zip(rng.choice(["above", "below", "crosses"], 40),
                                            rng.choice(np.arange(lo, hi + 0.25, 0.25), 40), strict=True))
             if not (c == "above" and t <= opening) and not (c == "below" and t >= opening) and t != opening]
    redtick.write_ticks(es.iloc[:1], "ES", conn=conn)  # the price alerts are set at
    ids = set_alerts(specs, conn=conn)
    before = int(time.time() * 1000)
    result = redtick.write_ticks(es.iloc[1:], "ES", conn=conn, batch_size=7_000)
    after = int(time.time() * 1000)
    fired = {f.alert_id: f for f in result.fired_alerts}
    rest = es.iloc[1:]
    for alert_id, spec in zip(ids, specs, strict=True):
        target = spec["target_price"]
        rising = spec["condition"] == "above" or (spec["condition"] == "crosses" and opening < target)
        reached = rest["price"] >= target if rising else rest["price"] <= target
        if not reached.any():
            assert alert_id not in fired
            continue
        tick = rest[reached].iloc[0]
        assert (fired[alert_id].fired_at, fired[alert_id].price) == (int(tick["ms"]), float(tick["price"])), spec
        assert before <= fired[alert_id].recorded_at <= after
        assert pd.Timestamp(fired[alert_id].fired_at, unit="ms").year == 2013
    assert len(fired) >= 10


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=25), min_size=1, max_size=4),
    alerts=st.lists(st.tuples(st.sampled_from(["above", "below", "crosses"]), st.integers(1, 40)), min_size=1, max_size=12),
)
def test_each_alert_fires_at_the_first_tick_that_reaches_its_target(conn, batches, alerts):
    symbol = "P" + secrets.token_hex(6).upper()  # hypothesis seeds `random`: examples would share one
    cache = PriceCache(conn)
    ids = asyncio.run(_set(cache, symbol, alerts))
    fired, prev, start = {}, None, BASE
    expected = {}
    live = dict(zip(ids, alerts, strict=True))
    for prices in batches:
        frame = ticks([float(p) for p in prices], start=start)
        start += 1_000 * len(prices)
        for alert_id, (condition, target) in list(live.items()):
            meets = {"above": frame["price"].max() >= target, "below": frame["price"].min() <= target,
                     "crosses": frame["price"].min() <= target <= frame["price"].max()
                     or (prev is not None and min(prev, frame["price"].min()) < target < max(prev, frame["price"].max()))}
            if meets[condition]:
                tick = first_reaching(frame, condition, target, prev)
                expected[alert_id] = (int(tick["ts"]), float(tick["price"]))
                del live[alert_id]
        prev = float(frame["price"].iloc[-1])
        result = redtick.write_ticks(frame, symbol, conn=conn)
        fired.update({f.alert_id: (f.fired_at, f.price) for f in result.fired_alerts})
    assert fired == expected


async def _set(cache, symbol, alerts):
    ids = [await cache.set_price_alert("u", symbol, float(t), c) for c, t in alerts]
    await cache.conn.aclose()
    return ids
