"""Exact hit, miss, write, expiry and error counts for known call sequences; round-trip timings; /metrics."""

from __future__ import annotations

import httpx
import pytest

from redtick.caches.base import BaseCache
from redtick.caches.market import MarketDataCache
from redtick.caches.prices import PriceCache
from redtick.caches.sessions import UserSessionCache
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import Unavailable
from redtick.metrics import Metrics, command_keys
from redtick.service import CacheService
from redtick.web import create_app
from tests.conftest import free_port

TOKEN = "admin-token-for-metrics-tests"


def counts(conn: Connection, cache: str, family: str) -> dict[str, float]:
    value = conn.metrics.value
    return {event: value(f"redtick_cache_{event}_total", cache=cache, family=family)
            for event in ("hits", "misses", "writes", "expired")}


def round_trips(conn: Connection, command: str) -> float:
    return conn.metrics.value("redtick_redis_round_trip_seconds_count", command=command)


def test_each_connection_counts_on_its_own(conn):
    other = Connection(conn.settings)
    conn.sync.get(conn.keys.key("x"))
    assert round_trips(conn, "GET") == 1
    assert round_trips(other, "GET") == 0


def test_round_trips_are_timed_per_command_and_pipelines_once(conn, backend):
    sync = conn.sync
    key = conn.keys.key("timed")
    sync.set(key, b"1")
    sync.get(key)
    sync.get(key)
    with sync.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.incr(key)
        pipe.get(key)
        pipe.execute()
    assert round_trips(conn, "SET") == 1
    assert round_trips(conn, "GET") == 2
    assert round_trips(conn, "PIPELINE") == 1
    # Every command is counted, pipelined ones included; the pipeline's are not round trips.
    assert conn.metrics.value("redtick_redis_commands_total", command="GET") == 4
    assert conn.metrics.value("redtick_redis_commands_total", command="INCRBY") == 1
    assert round_trips(conn, "INCRBY") == 0
    assert conn.metrics.value("redtick_redis_round_trip_seconds_sum", command="GET") > 0


async def test_async_commands_and_transactions_are_timed(conn):
    client = conn.async_client()
    key = conn.keys.key("timed-async")
    await client.set(key, b"1")
    async with client.pipeline(transaction=True) as pipe:
        pipe.get(key)
        pipe.expire(key, 30)
        await pipe.execute()
    assert round_trips(conn, "SET") == 1
    assert round_trips(conn, "MULTI") == 1
    assert conn.metrics.value("redtick_redis_commands_total", command="EXPIRE") == 1


async def test_market_cache_counts_hits_misses_and_writes_by_kind(conn):
    market = MarketDataCache(conn=conn)
    await market.set_symbol_price("BTCUSDT", {"price": 50_000.0})
    await market.set_order_book("BTCUSDT", {"bids": [[49_999.0, 1.0]], "asks": [[50_001.0, 2.0]]})
    assert await market.get_symbol_price("BTCUSDT") is not None
    assert await market.get_symbol_price("BTCUSDT") is not None
    assert await market.get_symbol_price("ETHUSDT") is None
    assert await market.get_24h_stats("BTCUSDT") is None
    assert await market.get_trade_history("BTCUSDT") == []
    await market.add_trade_history("BTCUSDT", {"price": 50_000.0, "quantity": 1.0})
    assert len(await market.get_trade_history("BTCUSDT")) == 1

    assert counts(conn, "market_data", "price") == {"hits": 2, "misses": 1, "writes": 1, "expired": 0}
    assert counts(conn, "market_data", "orderbook") == {"hits": 0, "misses": 0, "writes": 1, "expired": 0}
    assert counts(conn, "market_data", "stats24h") == {"hits": 0, "misses": 1, "writes": 0, "expired": 0}
    assert counts(conn, "market_data", "trades") == {"hits": 1, "misses": 1, "writes": 1, "expired": 0}
    stats = conn.metrics.cache_stats()["market_data"]
    assert (stats["hits"], stats["misses"], stats["writes"], stats["errors"]) == (3, 3, 3, 0)
    assert stats["hit_rate"] == 0.5
    assert stats["families"]["price"]["hit_rate"] == pytest.approx(2 / 3, abs=1e-6)


async def test_base_cache_batches_count_each_key(conn):
    cache = BaseCache("batch", default_ttl=60, conn=conn)
    assert await cache.set_many({"a": 1, "b": 2, "c": 3}) == 3
    assert await cache.get_many(["a", "b", "x", "y"]) == {"a": 1, "b": 2}
    assert await cache.get("c") == 3
    assert await cache.get("z") is None
    assert counts(conn, "batch", "batch") == {"hits": 3, "misses": 3, "writes": 3, "expired": 0}
    assert conn.metrics.hit_rates()["batch"] == 0.5


async def test_sessions_count_reads_writes_and_expiry_seen_by_cleanup(conn):
    now = 4_000_000_000.0  # far ahead of the real clock, which expires the user's index
    sessions = UserSessionCache(conn=conn, clock=lambda: now)
    first = await sessions.set_user_session("u1", {"device": "a"}, ttl=600)
    second = await sessions.set_user_session("u1", {"device": "b"}, ttl=600)
    assert await sessions.get_session_by_id(first) is not None
    assert await sessions.resolve_session(second) == "u1"
    assert await sessions.resolve_session("no-such-session") is None
    await sessions.set_user_preferences("u1", {"theme": "dark"})
    assert await sessions.get_user_preferences("u1") == {"theme": "dark"}
    assert await sessions.get_user_preferences("u2") is None

    # The hash of one session disappears as its TTL would end it; the index still lists it.
    conn.sync.delete(conn.keys.session(first))
    assert [s["session_id"] for s in await sessions.get_user_sessions("u1")] == [second]
    sessions.clock = lambda: now + 3600  # both index entries are now past their expiry
    conn.sync.delete(conn.keys.session(second))
    assert await sessions.cleanup_expired_sessions() == 2

    assert counts(conn, "user_session", "session") == {"hits": 3, "misses": 2, "writes": 2, "expired": 2}
    assert counts(conn, "user_session", "preferences") == {"hits": 1, "misses": 1, "writes": 1, "expired": 0}


async def test_price_cache_counts_quotes_ticks_and_candles(conn):
    prices = PriceCache(conn=conn)
    await prices.write_ticks([{"ts": 1_700_000_000_000 + i, "price": 100.0 + i, "volume": 1.0, "trade_id": i}
                              for i in range(5)], "METRIC")
    assert await prices.get_current_quote("METRIC") is not None
    assert await prices.get_current_quote("NOPE") is None
    assert len(await prices.load_ohlcv(["METRIC", "NOPE"], "1m")) == 1
    assert counts(conn, "price", "ticks") == {"hits": 0, "misses": 0, "writes": 5, "expired": 0}
    assert counts(conn, "price", "quote") == {"hits": 1, "misses": 1, "writes": 0, "expired": 0}
    assert counts(conn, "price", "candles") == {"hits": 1, "misses": 1, "writes": 0, "expired": 0}


async def test_counting_sends_nothing_to_redis(conn):
    market = MarketDataCache(conn=conn)
    await market.set_symbol_price("BTCUSDT", {"price": 1.0})
    await market.get_symbol_price("BTCUSDT")
    conn.metrics.cache_stats()
    conn.metrics.exposition()
    sent = {s.labels["command"]: s.value for m in conn.metrics.round_trips.collect() for s in m.samples
            if s.name.endswith("_count") and s.value}
    assert sent == {"PIPELINE": 1, "GET": 1}


async def test_redis_failures_count_as_errors_of_the_cache_and_family():
    settings = Settings(url=f"redis://127.0.0.1:{free_port()}/0", retries=0, connect_timeout=0.2, socket_timeout=0.2)
    conn = Connection(settings)
    market = MarketDataCache(conn=conn)
    with pytest.raises(Unavailable):
        await market.get_symbol_price("BTCUSDT")
    value = conn.metrics.value
    assert value("redtick_redis_errors_total", command="GET", error="Unavailable") == 1
    assert value("redtick_cache_errors_total", cache="market_data", family="price", error="Unavailable") == 1
    assert conn.metrics.cache_stats()["market_data"]["errors"] == 1
    # health_check reports the process's counts even while Redis is down.
    health = await CacheService(conn).health_check()
    assert health["status"] == "unhealthy"
    assert health["cache_stats"]["market_data"]["hit_rate"] is None
    await conn.aclose()


async def test_a_script_loaded_on_first_use_is_no_error(conn):
    from redtick.caches.ratelimit import RateLimiter

    limiter = RateLimiter("api", limit=5, window=60, conn=conn)
    assert (await limiter.hit("u1")).allowed
    assert (await limiter.hit("u1")).allowed
    assert conn.metrics.cache_stats()["rate_limit"]["errors"] == 0
    assert counts(conn, "rate_limit", "api")["writes"] == 2
    assert conn.metrics.value("redtick_redis_round_trip_seconds_count", command="EVALSHA") >= 2


async def test_response_cache_counts_hits_and_misses_by_prefix(conn):
    app = create_app(conn, admin_token=TOKEN, maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        assert (await http.get("/api/v1/cache/symbols")).headers["x-cache"] == "MISS"
        assert (await http.get("/api/v1/cache/symbols")).headers["x-cache"] == "HIT"
        assert (await http.get("/api/v1/cache/symbols")).headers["x-cache"] == "HIT"
    assert counts(conn, "http_response", "symbols") == {"hits": 2, "misses": 1, "writes": 1, "expired": 0}


async def test_summary_and_health_include_hit_rates(conn):
    service = CacheService(conn)
    market = service.get_market_cache()
    await market.set_symbol_price("BTCUSDT", {"price": 1.0})
    await market.get_symbol_price("BTCUSDT")
    await market.get_symbol_price("ETHUSDT")
    await market.get_symbol_price("XRPUSDT")
    summary = await service.get_cache_summary()
    assert summary["hit_rates"]["market_data"] == pytest.approx(1 / 3, abs=1e-6)
    assert summary["hit_rates"]["user_session"] is None
    assert summary["metrics"]["caches"]["market_data"]["writes"] == 1
    health = await service.health_check()
    assert health["hit_rate"] == pytest.approx(1 / 3, abs=1e-6)
    market_stats = health["cache_stats"]["market_data"]
    assert (market_stats["hits"], market_stats["misses"]) == (1, 2)
    if not conn.in_memory:
        assert set(health["redis_info"]["keyspace"]) == {"hits", "misses", "expired_keys", "evicted_keys"}


async def test_metrics_endpoint_needs_the_admin_token_unless_public(conn):
    await MarketDataCache(conn=conn).get_symbol_price("BTCUSDT")
    app = create_app(conn, admin_token=TOKEN, maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        for headers in ({}, {"X-Admin-Token": "wrong"}):
            assert (await http.get("/metrics", headers=headers)).status_code == 401
        response = await http.get("/metrics", headers={"X-Admin-Token": TOKEN})
        stats = (await http.get("/api/v1/cache/stats", headers={"X-Admin-Token": TOKEN})).json()["data"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'redtick_cache_misses_total{cache="market_data",family="price"} 1.0' in text
    assert "# TYPE redtick_redis_round_trip_seconds histogram" in text
    assert 'redtick_redis_round_trip_seconds_bucket{command="GET",le="+Inf"}' in text
    assert stats["hit_rates"]["market_data"] == 0.0

    public = create_app(conn, admin_token="", maintenance=False, metrics_public=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=public), base_url="http://test") as http:
        assert (await http.get("/metrics")).status_code == 200
    closed = create_app(conn, admin_token="", maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=closed), base_url="http://test") as http:
        assert (await http.get("/metrics")).status_code == 403


def test_metrics_public_setting_from_the_environment():
    assert Settings.from_env({}).metrics_public is False
    assert Settings.from_env({"REDTICK_METRICS_PUBLIC": "true"}).metrics_public is True


def test_command_keys_and_labels():
    assert command_keys(("MGET", "a", "b")) == ("a", "b")
    assert command_keys(("MSET", "a", "1", "b", "2")) == ("a", "b")
    assert command_keys(("HELLO", 3, "AUTH", "user", "password")) == ()
    metrics = Metrics()
    keys = metrics.keys
    assert keys.metric_labels(keys.session("abc")) == ("user_session", "session")
    assert keys.metric_labels(keys.user_sessions("u1")) == ("user_session", "session")
    assert keys.metric_labels(keys.response("symbols", "d1")) == ("http_response", "symbols")
    assert keys.metric_labels(keys.tick_chunk("BTCUSDT", 0)) == ("price", "ticks")
    assert keys.metric_labels(keys.current_price("BTCUSDT")) == ("price", "quote")
    assert keys.metric_labels("elsewhere:key") == ("other", "other")


def test_caches_count_under_the_name_their_keys_are_described_by():
    """A cache's counters and the key classifier name it alike, so health joins a cache's key count and hit rate."""
    from redtick.caches.alerts import PriceAlerts
    from redtick.caches.ratelimit import RateLimiter
    from redtick.caches.repository import RepositoryCache

    keys = Metrics().keys
    owners = {
        MarketDataCache.metrics_name: [keys.market("price", "ES"), keys.market_symbols()],
        UserSessionCache.metrics_name: [keys.session("s1"), keys.user_sessions("u1"), keys.user_preferences("u1")],
        RateLimiter.metrics_name: [keys.rate_limit("api", "u1"), keys.rate_limit_span("api", "u1")],
        RepositoryCache.metrics_name: [keys.repository("users", "get", "0", "d1"), keys.repository_generation("users")],
        BaseCache("things").prefix: [keys.key("things", "a")],  # a BaseCache counts under its prefix
        PriceAlerts.metrics_name or PriceAlerts().prefix: [keys.alert_data("ES"), keys.user_alerts("u1")],
    }
    for cache, owned in owners.items():
        assert {keys.describe(key).cache for key in owned} == {cache}


async def test_summary_and_health_count_rate_limits_and_alerts_under_their_own_caches(conn):
    service = CacheService(conn)
    await service.get_session_cache().set_rate_limit("u1", "api_call")
    await service.get_alerts().set_price_alert("u1", "ES", 100.0, "above")
    summary = await service.get_cache_summary()
    assert summary["caches"]["rate_limit"] == 2  # the log and its span
    assert summary["caches"]["alerts"] > 0 and summary["caches"]["user_session"] == 0
    health = await service.health_check()
    assert health["cache_stats"]["rate_limit"]["total_keys"] == 2
    assert counts(conn, "rate_limit", "api_call")["writes"] == 1
