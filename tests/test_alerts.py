"""PriceAlerts: each met alert fires exactly once under concurrent checkers, crosses semantics, expiry, logs."""

import asyncio
import random
import secrets
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redtick import scripts
from redtick.caches.alerts import (
    ALERT_CHECK_SCRIPT,
    PriceAlerts,
    PricePath,
    alert_check_args,
    decode_fired,
)
from redtick.errors import InvalidData, InvalidKey

T0 = 4_000_000_000.0  # far ahead of the real clock: absolute expiries set from it never cut in


def namespace_keys(conn) -> set[bytes]:
    return set(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


def symbol_keys(conn, symbol: str) -> set[bytes]:
    return {k for k in namespace_keys(conn) if f"{{{symbol}}}".encode() in k}


class ReferenceAlerts:
    """The firing rule in plain Python, one batch at a time."""

    def __init__(self):
        self.alerts: dict[str, tuple[str, float, float]] = {}  # id -> (condition, target, expires_at ms)
        self.prev: float | None = None

    def check(self, low: float, high: float, last: float, now_ms: int) -> set[str]:
        self.alerts = {i: a for i, a in self.alerts.items() if a[2] > now_ms}
        fired = set()
        for alert_id, (condition, target, _) in self.alerts.items():
            if condition == "above":
                hit = target <= high
            elif condition == "below":
                hit = target >= low
            else:
                hit = low <= target <= high or (
                    self.prev is not None
                    and (self.prev < target < low or high < target < self.prev)
                )
            if hit:
                fired.add(alert_id)
        for alert_id in fired:
            del self.alerts[alert_id]
        self.prev = last
        return fired


async def test_spec_flow_fires_once_and_logs(conn):
    alerts = PriceAlerts(conn=conn)
    alert_id = await alerts.set_price_alert("user", "TEST", 110, "above")
    assert await alerts.check_price_alerts("TEST", 105) == []
    assert alert_id in await alerts.check_price_alerts("TEST", 115)
    assert await alerts.check_price_alerts("TEST", 120) == []
    assert await alerts.get_user_alerts("user") == []
    [fired] = await alerts.get_fired_alerts("user")
    assert (fired.alert_id, fired.price, fired.target_price, fired.condition) == (alert_id, 115.0, 110.0, "above")


async def test_above_and_below_fire_at_the_target_exactly(conn):
    alerts = PriceAlerts(conn=conn)
    target = 0.1 + 0.2  # 0.30000000000000004: the text round trip must not round it
    above = await alerts.set_price_alert("u1", "EURUSD", target, "above")
    below = await alerts.set_price_alert("u1", "EURUSD", 0.3, "below")
    assert await alerts.check_price_alerts("EURUSD", 0.30000000000000001) == [below]  # == 0.3, < target
    assert await alerts.check_price_alerts("EURUSD", target) == [above]


async def test_crosses_fires_when_the_price_moves_through_the_target(conn):
    alerts = PriceAlerts(conn=conn)
    up = await alerts.set_price_alert("u1", "ES", 105.0, "crosses")
    down = await alerts.set_price_alert("u1", "ES", 95.0, "crosses")
    assert await alerts.check_price_alerts("ES", 110.0) == []  # no previous price: nothing was crossed
    assert await alerts.check_price_alerts("ES", 100.0) == [up]  # 110 -> 100 passes 105
    assert await alerts.check_price_alerts("ES", 99.0) == []
    assert await alerts.check_price_alerts("ES", 90.0) == [down]
    at = await alerts.set_price_alert("u1", "ES", 90.0, "crosses")
    assert await alerts.check_price_alerts("ES", 80.0) == []  # it started at the target: not crossed
    assert await alerts.check_price_alerts("ES", 90.0) == [at]  # touching it counts


async def test_a_batch_fires_what_its_range_met(conn):
    alerts = PriceAlerts(conn=conn)
    ids = {
        name: await alerts.set_price_alert("u1", "BTCUSDT", target, condition)
        for name, target, condition in [
            ("above_hit", 101.0, "above"), ("above_miss", 103.0, "above"),
            ("below_hit", 99.0, "below"), ("below_miss", 97.0, "below"),
            ("cross_in_range", 100.5, "crosses"), ("cross_miss", 120.0, "crosses"),
        ]
    }
    fired = await alerts.check_price_range("BTCUSDT", 98.0, 102.0, 100.0)
    assert {f.alert_id for f in fired} == {ids["above_hit"], ids["below_hit"], ids["cross_in_range"]}
    prices = {f.alert_id: f.price for f in fired}
    # A range has no order: each alert reports the extreme that met it (crosses: the high, as
    # with no previous check the range is taken to rise through the target).
    assert prices == {ids["above_hit"]: 102.0, ids["below_hit"]: 98.0, ids["cross_in_range"]: 102.0}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("set"), st.sampled_from(["above", "below", "crosses"]), st.integers(1, 20),
                      st.integers(1, 50)),
            st.tuples(st.just("check"), st.integers(1, 20), st.integers(0, 4), st.integers(0, 30)),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_firing_equals_the_reference_model(conn, data, steps):
    now = [T0]
    symbol = "S" + secrets.token_hex(6).upper()  # hypothesis seeds `random`: examples would share one
    alerts = PriceAlerts(conn=conn, clock=lambda: now[0])
    model = ReferenceAlerts()

    async def scenario():
        for step in steps:
            if step[0] == "set":
                _, condition, target, ttl = step
                alert_id = await alerts.set_price_alert("u1", symbol, float(target), condition, ttl=ttl)
                model.alerts[alert_id] = (condition, float(target), now[0] * 1000 + ttl * 1000)
            else:
                _, low, width, advance = step
                now[0] += advance
                last = data.draw(st.integers(low, low + width))
                fired = await alerts.check_price_range(symbol, float(low), float(low + width), float(last))
                assert {f.alert_id for f in fired} == model.check(low, low + width, last, int(now[0] * 1000))
                assert len(fired) == len({f.alert_id for f in fired})
        live = {a["alert_id"] for a in await alerts.get_user_alerts("u1") if a["symbol"] == symbol}
        assert live == set(model.alerts)
        await conn.aclose()

    asyncio.run(scenario())


async def test_many_concurrent_checkers_fire_each_met_alert_exactly_once(conn):
    symbol, checkers = "BTCUSDT", 20
    alerts = PriceAlerts(conn=conn)
    rng = random.Random(7)
    targets = {}
    for i in range(300):
        condition = ("above", "below", "crosses")[i % 3]
        target = float(rng.randrange(1, 1000))
        targets[await alerts.set_price_alert(f"u{i % 7}", symbol, target, condition)] = (condition, target)
    prices = [[float(rng.randrange(1, 1000)) for _ in range(15)] for _ in range(checkers)]
    connections = [conn.with_settings() for _ in range(checkers)]
    try:
        async def check_all(checker, series):
            return [i for price in series for i in await checker.check_price_alerts(symbol, price)]

        results = await asyncio.gather(
            *(check_all(PriceAlerts(conn=c), series) for c, series in zip(connections, prices, strict=True))
        )
    finally:
        for c in connections:
            await c.aclose()
    returned = [alert_id for result in results for alert_id in result]
    assert len(returned) == len(set(returned)), "an alert was returned by two checkers"
    seen = [p for series in prices for p in series]
    lo, hi = min(seen), max(seen)
    # Whatever order the checks ran in, every above/below alert the prices met fired; crosses
    # alerts inside the range of all prices fired too, since the path covered all of it.
    must_fire = {
        i for i, (cond, t) in targets.items()
        if (cond == "above" and t <= hi) or (cond == "below" and t >= lo) or (cond == "crosses" and lo < t < hi)
    }
    assert must_fire <= set(returned)
    still_live = {a["alert_id"] for uid in range(7) for a in await alerts.get_user_alerts(f"u{uid}")}
    assert still_live == set(targets) - set(returned)
    logged = [f.alert_id for uid in range(7) for f in await alerts.get_fired_alerts(f"u{uid}", limit=1000)]
    assert sorted(logged) == sorted(returned)


async def test_expired_alerts_never_fire_and_leave_the_indexes(conn):
    now = [T0]
    alerts = PriceAlerts(conn=conn, clock=lambda: now[0])
    short = await alerts.set_price_alert("u1", "ETHUSDT", 100.0, "above", ttl=60)
    long = await alerts.set_price_alert("u1", "ETHUSDT", 100.0, "above", ttl=600)
    assert conn.sync.pexpiretime(conn.keys.user_alerts("u1")) == T0 * 1000 + 600_000
    now[0] += 60  # the short alert's expiry instant
    assert [a["alert_id"] for a in await alerts.get_user_alerts("u1")] == [long]
    assert await alerts.check_price_alerts("ETHUSDT", 150.0) == [long]
    assert conn.sync.zcard(conn.keys.alert_expiry("ETHUSDT")) == 0
    assert conn.sync.hlen(conn.keys.alert_data("ETHUSDT")) == 0
    assert short not in [f.alert_id for f in await alerts.get_fired_alerts("u1")]


async def test_cleanup_drops_expired_alerts_of_a_quiet_symbol(conn):
    now = [T0]
    alerts = PriceAlerts(conn=conn, clock=lambda: now[0])
    for ttl in (10, 20, 300):
        await alerts.set_price_alert("u1", "AAPL", 100.0, "below", ttl=ttl)
    now[0] += 30
    assert await alerts.cleanup_expired_alerts("AAPL") == 2
    assert conn.sync.zcard(conn.keys.alert_index("AAPL", "below")) == 1
    assert await alerts.cleanup_expired_alerts("AAPL") == 0


async def test_fired_alerts_are_published_for_a_websocket_layer(conn):
    alerts = PriceAlerts(conn=conn)
    pubsub = conn.sync.pubsub()
    pubsub.subscribe(conn.keys.alert_channel())
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        alert_id = await alerts.set_price_alert("u1", "BTCUSDT", 50_000.0, "above")
        await alerts.check_price_alerts("BTCUSDT", 50_001.5)
        message = None
        deadline = time.monotonic() + 10
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
        assert message is not None and message["type"] == "message"
        [fired] = decode_fired([alert_id, message["data"]])
        assert (fired.alert_id, fired.user_id, fired.price) == (alert_id, "u1", 50_001.5)
    finally:
        pubsub.close()


async def test_only_the_owner_deletes_and_delete_leaves_no_index_entry(conn):
    alerts = PriceAlerts(conn=conn)
    alert_id = await alerts.set_price_alert("owner", "BTCUSDT", 10.0, "below")
    assert await alerts.delete_price_alert("intruder", alert_id) is False
    assert [a["alert_id"] for a in await alerts.get_user_alerts("owner")] == [alert_id]
    assert await alerts.delete_price_alert("owner", alert_id) is True
    assert await alerts.delete_price_alert("owner", alert_id) is False
    assert symbol_keys(conn, "BTCUSDT") == set()
    assert await alerts.check_price_alerts("BTCUSDT", 5.0) == []


@pytest.mark.single_node("queues a script in a MULTI with a key of another slot; redis-py refuses scripts in cluster pipelines")
async def test_the_tick_writer_call_runs_in_a_pipeline(conn):
    """The integration point: the series writer queues the check next to its own commands."""
    alerts = PriceAlerts(conn=conn, clock=lambda: T0)
    alert_id = await alerts.set_price_alert("u1", "BTCUSDT", 101.0, "above")
    path = PricePath.of_ticks(np.array([1, 2, 3]), np.array([99.0, 101.5, 100.0]))
    keys, args = alert_check_args(conn.keys, "BTCUSDT", path, int(T0 * 1000), settings=conn.settings)
    pipe = conn.sync.pipeline(transaction=True)
    pipe.set(conn.keys.key("marker"), b"1")
    scripts.bound(conn.sync, ALERT_CHECK_SCRIPT)(keys=keys, args=args, client=pipe)
    _, reply = pipe.execute()
    assert [(f.alert_id, f.price) for f in decode_fired(reply)] == [(alert_id, 101.5)]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("u1", "BTCUSDT", 100.0, "sideways"), InvalidData),
        (("u1", "BTCUSDT", 100.0, None), InvalidData),
        (("u1", "BTCUSDT", float("nan"), "above"), InvalidData),
        (("u1", "BTCUSDT", float("inf"), "above"), InvalidData),
        (("u1", "BTCUSDT", float("-inf"), "below"), InvalidData),
        (("u1", "BTCUSDT", True, "above"), InvalidData),
        (("u1", "BTCUSDT", "100", "above"), InvalidData),
        (("bad user", "BTCUSDT", 100.0, "above"), InvalidKey),
        (("u1", "btc usdt", 100.0, "above"), InvalidKey),
        (("u1", "BTC{USDT}", 100.0, "above"), InvalidKey),
        (("u1", "BTCUSDT", 100.0, "above", 0), InvalidData),
        (("u1", "BTCUSDT", 100.0, "above", -1), InvalidData),
        (("u1", "BTCUSDT", 100.0, "above", float("nan")), InvalidData),
    ],
)
async def test_bad_alert_raises_and_writes_nothing(conn, args, error):
    with pytest.raises(error):
        await PriceAlerts(conn=conn).set_price_alert(*args)
    assert namespace_keys(conn) == set()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda a: a.check_price_alerts("BTCUSDT", float("nan")), InvalidData),
        (lambda a: a.check_price_alerts("BTCUSDT", "0"), InvalidData),
        (lambda a: a.check_price_alerts("bad symbol", 1.0), InvalidKey),
        (lambda a: a.check_price_range("BTCUSDT", 2.0, 1.0, 1.5), InvalidData),
        (lambda a: a.check_price_range("BTCUSDT", 1.0, 2.0, 3.0), InvalidData),
        (lambda a: a.delete_price_alert("u1", "bad*id"), InvalidKey),
        (lambda a: a.get_user_alerts("bad user"), InvalidKey),
        (lambda a: a.get_fired_alerts("u1", limit=0), InvalidData),
    ],
)
async def test_bad_check_raises_and_writes_nothing(conn, call, error):
    with pytest.raises(error):
        await call(PriceAlerts(conn=conn))
    assert namespace_keys(conn) == set()


async def test_bulk_set_checks_everything_before_writing_and_fires_like_single_sets(conn):
    alerts = PriceAlerts(conn=conn)
    good = [{"user_id": f"u{i % 3}", "symbol": "BTCUSDT", "target_price": 100.0 + i, "condition": "above"}
            for i in range(10)]
    with pytest.raises(InvalidData):
        await alerts.set_price_alerts([*good, {**good[0], "target_price": float("nan")}])
    assert namespace_keys(conn) == set()
    ids = await alerts.set_price_alerts(good)
    assert len(set(ids)) == 10
    assert sorted([a["alert_id"] for u in range(3) for a in await alerts.get_user_alerts(f"u{u}")]) == sorted(ids)
    assert await alerts.check_price_alerts("BTCUSDT", 104.0) == ids[:5]


async def test_alerts_on_zero_and_negative_prices_fire_like_any_other(conn):
    # Spreads and some markets trade at zero or below (WTI in April 2020): targets there are real.
    alerts = PriceAlerts(conn)
    below = await alerts.set_price_alert("u1", "CL-SPREAD", -1.5, "below")
    above = await alerts.set_price_alert("u1", "CL-SPREAD", 0.0, "above")
    assert await alerts.check_price_alerts("CL-SPREAD", -2.0) == [below]
    assert await alerts.check_price_alerts("CL-SPREAD", 0.25) == [above]
    await conn.aclose()


async def test_integer_user_ids_are_their_decimal_string(conn):
    alerts = PriceAlerts(conn)
    alert_id = await alerts.set_price_alert(123, "BTCUSDT", 100.0, "above")
    assert [a["alert_id"] for a in await alerts.get_user_alerts(123)] == [alert_id]
    assert [a["alert_id"] for a in await alerts.get_user_alerts("123")] == [alert_id]
    assert await alerts.check_price_alerts("BTCUSDT", 101.0) == [alert_id]
    assert [f.alert_id for f in await alerts.get_fired_alerts(123)] == [alert_id]
    await conn.aclose()
