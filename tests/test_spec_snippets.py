"""Every code block of the platform's cache-layer doc that uses the public calls, run on every backend."""

# The doc is /work/shared/spec/cache-layer.md. Each test is named after the doc's section and the
# line its block starts on, and runs the block as written on the suite's three backends: only the
# import path is adapted (``trading.infrastructure.cache`` is ``redtick``), the doc's module-level
# singletons are bound to the test's connection by the ``spec`` fixture, and names the doc leaves
# undefined (``logger``, ``user_entity``, ``get_current_price``...) get stand-ins. Where redtick is
# deliberately stricter than the doc, a comment at that line says why. Each block's own import line
# stays in its test, adapted; that is why those tests import inside.
#
# Blocks not run as code, and why:
#
# - line 76 (bash, environment variables), line 90 (settings.py), line 684 (Dockerfile ENV) and
#   line 703 (docker-compose environment) are configuration: their variables are checked to
#   configure redtick through redtick.config.Settings instead (test_configuration_*).
# - line 353 (bash, the endpoint list) and lines 385 and 405 (json, example responses) describe the
#   HTTP API: they are checked through the FastAPI app, in-process (test_api_endpoints_*).
# - line 475 (bash, pytest tests/integration/test_cache.py ...): the platform's own test paths,
#   which do not exist here; this module is redtick's counterpart.
# - line 596 (bash, redis-cli info memory, dbsize, --bigkeys): operator commands against a server,
#   not redtick's API; the INFO figures they read are redis_client.info() (line 566).
# - line 530, the scheduler lines at its end (apscheduler's AsyncIOScheduler): a third-party
#   scheduler redtick neither ships nor needs (CacheService.start() runs maintenance itself); the
#   maintenance function it would call is run once.

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

import redtick
from redtick import BaseCache, InvalidData, RedisClient, RedisError, cached_repository
from redtick.config import Settings
from redtick.web import create_app

logger = logging.getLogger("tests.spec")
API = "/api/v1/cache"
TOKEN = "admin-token-for-spec-tests"
ADMIN = {"X-Admin-Token": TOKEN}
# Keys the "Basic Redis Operations" block writes as given, outside any namespace.
RAW_KEYS = ("key", "btc_data", "user:123")


@pytest.fixture
async def spec(conn, monkeypatch):
    """The doc's module-level singletons and ``redtick.connect()`` bound to this test's connection."""
    monkeypatch.setattr("redtick.connection._default", conn)
    for singleton in (redtick.redis_client, redtick.market_data_cache, redtick.user_session_cache,
                      redtick.price_cache, redtick.cache_service):
        monkeypatch.setattr(singleton, "_conn", conn)
    # What the singletons derived from a connection they may have used before this test.
    monkeypatch.setattr(redtick.price_cache, "_alerts", None)
    monkeypatch.setattr(redtick.user_session_cache, "_fernet_ready", False)
    monkeypatch.setattr(redtick.cache_service, "_caches", {})
    yield conn
    await redtick.cache_service.stop()
    await conn.aclose()


def backend_of(conn) -> str:
    return "memory" if conn.in_memory else conn.settings.topology


# -- Configuration --------------------------------------------------------------------------------
def test_configuration_environment_variables_line_76():
    env = {"REDIS_HOST": "localhost", "REDIS_PORT": "6379", "REDIS_DB": "0", "REDIS_PASSWORD": "",
           "REDIS_MAX_CONNECTIONS": "20"}
    settings = Settings.from_env(env)
    assert (settings.host, settings.port, settings.db, settings.max_connections) == ("localhost", 6379, 0, 20)
    assert settings.password is None  # an empty REDIS_PASSWORD is no password, as the doc's "" default
    assert settings.safe_url == "redis://localhost:6379/0"
    # Alternative: Redis URL
    by_url = Settings.from_env({"REDIS_URL": "redis://localhost:6379/0"})
    assert by_url.url == "redis://localhost:6379/0" and by_url.topology == "single"


def test_configuration_settings_integration_line_90():
    # The doc's defaults: REDIS_HOST "localhost", REDIS_PORT 6379, REDIS_DB 0, REDIS_PASSWORD "",
    # REDIS_MAX_CONNECTIONS 20. redtick differs in one on purpose: with no REDIS_* variable at all it
    # uses its own local store (a persistent redis-server it starts) rather than assuming localhost.
    assert Settings.from_env({}).topology == "local"
    settings = Settings.from_env({"REDIS_PORT": "6379"})  # any REDIS_* variable: a server on localhost
    assert (settings.host, settings.port, settings.db, settings.password, settings.max_connections) == (
        "localhost", 6379, 0, None, 20)
    assert Settings.from_env({"REDIS_MAX_CONNECTIONS": "50", "REDIS_HOST": "cache"}).max_connections == 50


def test_configuration_dockerfile_and_compose_environment_lines_684_and_703():
    settings = Settings.from_env({"REDIS_HOST": "redis", "REDIS_PORT": "6379", "REDIS_DB": "0"})
    assert settings.safe_url == "redis://redis:6379/0"
    assert Settings.from_env({"REDIS_HOST": "redis"}).safe_url == "redis://redis:6379/0"


# -- Usage Examples -------------------------------------------------------------------------------
async def test_basic_redis_operations_line_104(spec):
    from redtick import redis_client

    try:
        # Connect to Redis
        await redis_client.connect()

        # Basic operations
        await redis_client.set("key", "value", ex=300)  # 5 minutes TTL
        value = await redis_client.get("key")
        await redis_client.delete("key")

        # JSON data
        data = {"price": 50000, "volume": 1000}
        await redis_client.set("btc_data", redis_client.get_json(data))
        retrieved = redis_client.parse_json(await redis_client.get("btc_data"))

        # Hash operations
        await redis_client.hset("user:123", "name", "John")
        name = await redis_client.hget("user:123", "name")
        user_data = await redis_client.hgetall("user:123")

        assert value == "value" and await redis_client.get("key") is None
        assert retrieved == data
        assert name == "John" and user_data == {"name": "John"}
    finally:
        await redis_client.delete(*RAW_KEYS)  # the block's keys are raw, outside the test's namespace


async def test_market_data_caching_line_128(spec):
    from redtick import market_data_cache

    # Cache symbol price
    price_data = {
        "symbol": "BTCUSDT",
        "price": 50000.00,
        "volume": 1000.0,
        "change_24h": 2.5
    }

    await market_data_cache.set_symbol_price("BTCUSDT", price_data, ttl=30)
    price = await market_data_cache.get_symbol_price("BTCUSDT")

    # Cache order book
    order_book = {
        "symbol": "BTCUSDT",
        "bids": [[49950.0, 1.5], [49940.0, 2.0]],
        "asks": [[50050.0, 1.2], [50060.0, 0.8]]
    }

    await market_data_cache.set_order_book("BTCUSDT", order_book, ttl=10)
    book = await market_data_cache.get_order_book("BTCUSDT")

    # Add trade to history
    trade_data = {
        "symbol": "BTCUSDT",
        "price": 50000.0,
        "quantity": 0.1,
        "side": "buy"
    }

    await market_data_cache.add_trade_history("BTCUSDT", trade_data)
    trades = await market_data_cache.get_trade_history("BTCUSDT", limit=10)

    # Get all cached symbols
    symbols = await market_data_cache.get_all_symbols()

    # Check if price is fresh
    is_fresh = await market_data_cache.is_price_fresh("BTCUSDT", max_age_seconds=60)

    assert {k: price[k] for k in price_data} == price_data and "timestamp" in price
    assert book["bids"] == order_book["bids"] and book["asks"] == order_book["asks"]
    assert [(t["price"], t["quantity"], t["side"]) for t in trades] == [(50000.0, 0.1, "buy")]
    assert symbols == ["BTCUSDT"]
    assert is_fresh is True


async def test_user_session_management_line_172(spec):
    from redtick import user_session_cache

    # Create user session
    user_id = "user_123"
    session_data = {
        "device": "browser",
        "ip_address": "192.168.1.100",
        "user_agent": "Mozilla/5.0..."
    }

    session_id = await user_session_cache.set_user_session(user_id, session_data, ttl=3600)

    # Get session
    session = await user_session_cache.get_user_session(user_id, session_id)
    session_by_id = await user_session_cache.get_session_by_id(session_id)

    # Update activity
    await user_session_cache.update_session_activity(
        user_id, session_id, {"last_action": "view_portfolio"}
    )
    assert session["data"] == session_data and session_by_id == session
    touched = await user_session_cache.get_user_session(user_id, session_id)
    assert touched["activity"] == {"last_action": "view_portfolio"}
    assert touched["expires_at"] >= session["expires_at"]  # activity slides the expiry, never back

    # Manage user preferences
    preferences = {
        "theme": "dark",
        "language": "en",
        "notifications": True
    }

    await user_session_cache.set_user_preferences(user_id, preferences)
    user_prefs = await user_session_cache.get_user_preferences(user_id)

    # Rate limiting
    count = await user_session_cache.set_rate_limit(user_id, "api_call", window=60)
    is_limited = await user_session_cache.is_rate_limited(user_id, "api_call", limit=100)

    # WebSocket subscriptions
    subscription_data = {"channels": ["orders", "risk_alerts"]}
    await user_session_cache.set_user_subscription(user_id, "websocket", subscription_data)
    subscriptions = await user_session_cache.get_user_subscriptions(user_id)

    # Session cleanup
    deleted_count = await user_session_cache.delete_all_user_sessions(user_id)
    cleanup_count = await user_session_cache.cleanup_expired_sessions()

    assert user_prefs == preferences
    assert count == 1 and is_limited is False
    assert subscriptions == {"websocket": subscription_data}
    assert deleted_count == 1 and cleanup_count == 0
    assert await user_session_cache.get_session_by_id(session_id) is None


async def test_price_monitoring_and_alerts_line_220(spec):
    from redtick import price_cache

    # Set current price
    await price_cache.set_current_price("BTCUSDT", 50000.0, volume=1000.0)
    current_price = await price_cache.get_current_price("BTCUSDT")

    # Get price changes
    change_24h = await price_cache.get_price_change("BTCUSDT", period_minutes=1440)
    change_1h = await price_cache.get_price_change("BTCUSDT", period_minutes=60)

    # Create price alert
    alert_id = await price_cache.set_price_alert(
        user_id="user_123",
        symbol="BTCUSDT",
        target_price=55000.0,
        condition="above",
        ttl=86400  # 24 hours
    )

    # Get user alerts
    user_alerts = await price_cache.get_user_alerts("user_123")

    # Check alerts (called when price updates)
    triggered_alerts = await price_cache.check_price_alerts("BTCUSDT", 55500.0)

    # Get price history
    history = await price_cache.get_price_history("BTCUSDT", limit=100)
    start_time = datetime.utcnow() - timedelta(hours=24)
    history_24h = await price_cache.get_price_history(
        "BTCUSDT", start_time=start_time, limit=1000
    )

    # OHLCV data
    ohlcv_1h = await price_cache.get_ohlcv_data("BTCUSDT", "1h")
    ohlcv_1d = await price_cache.get_ohlcv_data("BTCUSDT", "1d")

    # Set OHLCV data
    candles = [
        {"open": 49000, "high": 51000, "low": 48000, "close": 50000, "volume": 1000},
        # ... more candles
    ]
    # Stricter than the doc: its candles carry no time, and redtick invents none (a 1970 bucket, or
    # "now", would be a made-up candle); the error names the missing column and the accepted names.
    with pytest.raises(InvalidData, match=r"candles have no time: no 'timestamp' column \(nor 'ts', 'time' or "
                                          r"'open_time'\) and no DatetimeIndex"):
        await price_cache.set_ohlcv_data("BTCUSDT", "1h", candles)
    # With the bucket start each candle needs, the same call stores it.
    candles = [{"timestamp": "2024-01-01T00:00:00Z", **candles[0]}]
    assert await price_cache.set_ohlcv_data("BTCUSDT", "1h", candles) == 1

    assert current_price == 50000.0
    # One price and nothing before it: there is no change to report, and none is made up.
    assert change_24h is None and change_1h is None
    assert [a["alert_id"] for a in user_alerts] == [alert_id]
    assert alert_id in triggered_alerts
    assert [h["price"] for h in history] == [h["price"] for h in history_24h] == [50000.0]
    assert [c["close"] for c in ohlcv_1h] == [c["close"] for c in ohlcv_1d] == [50000.0]
    stored = await price_cache.get_ohlcv_data("BTCUSDT", "1h", start_time="2024-01-01", end_time="2024-01-02")
    assert [(c["timestamp"], c["open"], c["close"]) for c in stored] == [("2024-01-01T00:00:00Z", 49000.0, 50000.0)]


async def test_cache_service_management_line_268(spec, capsys):
    from redtick import cache_service

    # Service lifecycle
    await cache_service.start()
    print(f"Cache running: {cache_service.is_running}")

    # Health monitoring
    health = await cache_service.health_check()
    print(f"Status: {health['status']}")
    print(f"Redis version: {health['redis_info']['version']}")

    # Cache statistics
    summary = await cache_service.get_cache_summary()
    print(f"Total keys: {summary['total_keys']}")
    print(f"Cached symbols: {summary['symbol_count']}")

    # Maintenance operations
    cleanup_results = await cache_service.cleanup_expired_data()
    print(f"Cleaned up: {cleanup_results}")

    # Emergency cache clearing (use with caution)
    clear_results = await cache_service.clear_all_cache()

    # Get specific cache instances
    market_cache = cache_service.get_market_cache()
    session_cache = cache_service.get_session_cache()
    price_cache_instance = cache_service.get_price_cache()

    # Service shutdown
    await cache_service.stop()

    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["Cache running: True", "Status: healthy"]
    # memory:// (fakeredis) has no INFO: the version is None there, not a made-up one.
    version = health["redis_info"]["version"]
    assert (version is None) == (backend_of(spec) == "memory")
    assert printed[2] == f"Redis version: {version}"
    assert printed[3:5] == ["Total keys: 0", "Cached symbols: 0"]
    assert clear_results == {"namespace": spec.keys.namespace, "deleted_keys": 0}
    assert not cache_service.is_running
    assert (market_cache.conn, session_cache.conn, price_cache_instance.conn) == (spec, spec, spec)


async def test_repository_caching_integration_line_303(spec):
    # The platform's UserRepository (trading.infrastructure.repositories.user_repository) is not
    # redtick's: a stand-in with the same calls counts how often the "database" is asked.
    class UserRepository:
        queries = 0
        rows: dict[int, dict[str, Any]] = {}  # noqa: RUF012 - one shared "table", as a database is

        async def get_by_id(self, user_id: int) -> dict[str, Any] | None:
            UserRepository.queries += 1
            return self.rows.get(user_id)

        async def create(self, user: dict[str, Any]) -> dict[str, Any]:
            self.rows[user["id"]] = user
            return user

        async def update(self, user: dict[str, Any]) -> dict[str, Any]:
            self.rows[user["id"]] = user
            return user

    UserRepository.rows = {7: {"id": 7, "name": "John"}}
    user_id, user_entity = 7, {"id": 7, "name": "Jane"}

    @cached_repository(cache_prefix="user", default_ttl=600)
    class CachedUserRepository(UserRepository):
        pass

    # Usage
    user_repo = CachedUserRepository()

    # These calls will be cached automatically
    user = await user_repo.get_by_id(user_id, use_cache=True)  # Cache miss -> DB query -> Cache set
    user_again = await user_repo.get_by_id(user_id, use_cache=True)  # Cache hit -> No DB query
    assert user == user_again == {"id": 7, "name": "John"} and UserRepository.queries == 1

    # Force refresh from database
    user_fresh = await user_repo.get_by_id(user_id, use_cache=False)
    assert user_fresh == user and UserRepository.queries == 2

    # Cache invalidation on write operations
    new_user = await user_repo.create(user_entity)  # Automatically invalidates related cache
    updated_user = await user_repo.update(user_entity)  # Automatically invalidates related cache
    assert new_user == updated_user == user_entity
    assert await user_repo.get_by_id(user_id, use_cache=True) == user_entity  # not the stale "John"

    # Manual cache invalidation
    await user_repo.invalidate_cache("get_by_id*")
    assert await user_repo.get_by_id(user_id, use_cache=True) == user_entity
    assert UserRepository.queries == 4


async def test_http_response_caching_line_331(spec):
    from fastapi import APIRouter, FastAPI, Request

    from redtick import cache_response

    # The doc's handler calls a get_current_price of the platform's; here it reads redtick's price cache.
    async def get_current_price(symbol: str) -> float | None:
        return await redtick.price_cache.get_current_price(symbol)

    router = APIRouter()

    @router.get("/market/{symbol}")
    @cache_response(ttl=30, key_prefix="market_data")
    async def get_market_data(symbol: str, request: Request):
        """Get market data with 30-second caching."""
        # This response will be cached automatically
        return {
            "symbol": symbol,
            "price": await get_current_price(symbol),
            "timestamp": datetime.utcnow().isoformat()
        }

    app = FastAPI()
    app.include_router(router)
    app.state.redtick_conn = spec  # the app's Redis, which cache_response uses
    await redtick.price_cache.set_current_price("BTCUSDT", 50000.0, volume=1.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        first = await http.get("/market/BTCUSDT")
        second = await http.get("/market/BTCUSDT")
    assert first.status_code == second.status_code == 200
    assert first.json()["price"] == 50000.0
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json() == first.json()  # the same timestamp: served from Redis, not recomputed
    assert second.headers["cache-control"] == "max-age=30"


# -- API Endpoints --------------------------------------------------------------------------------
@pytest.fixture
async def api(spec):
    """The doc's HTTP API, served in-process by redtick's app on the module's ``cache_service``."""
    app = create_app(spec, service=redtick.cache_service, admin_token=TOKEN, maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def test_api_endpoints_cache_management_line_353(api):
    session_id = await redtick.user_session_cache.set_user_session("user_123", {"device": "test"}, ttl=600)
    user = {"Authorization": f"Bearer {session_id}"}
    await redtick.market_data_cache.set_symbol_price("BTCUSDT", {"price": 50000.0, "volume": 1000.0})
    await redtick.price_cache.set_current_price("BTCUSDT", 50000.0, volume=1000.0)

    # Health check; Cache statistics
    assert (await api.get(f"{API}/health")).status_code == 200
    # Stricter than the doc's list: statistics, cleanup and clear need the admin token, and a
    # user's sessions and alerts need that user's bearer session; the doc never says who may call.
    assert (await api.get(f"{API}/stats")).status_code == 401
    assert (await api.get(f"{API}/stats", headers=ADMIN)).status_code == 200
    # Market data for symbol; Price data for symbol; All cached symbols
    assert (await api.get(f"{API}/market-data/BTCUSDT")).status_code == 200
    assert (await api.get(f"{API}/price/BTCUSDT")).status_code == 200
    assert (await api.get(f"{API}/symbols")).json()["data"]["symbols"] == ["BTCUSDT"]
    # User sessions (authenticated)
    assert (await api.get(f"{API}/sessions/user_123")).status_code == 401
    assert (await api.get(f"{API}/sessions/user_123", headers=user)).status_code == 200
    # Price alerts (authenticated)
    created = await api.post(f"{API}/price-alert", headers=user,
                             json={"symbol": "BTCUSDT", "target_price": 55000.0, "condition": "above"})
    assert created.status_code == 201
    alert_id = created.json()["data"]["alert_id"]
    listed = (await api.get(f"{API}/price-alerts", headers=user)).json()["data"]
    assert [a["alert_id"] for a in listed] == [alert_id]
    assert (await api.delete(f"{API}/price-alert/{alert_id}", headers=user)).status_code == 200
    # Maintenance operations
    assert (await api.post(f"{API}/cleanup", headers=ADMIN)).status_code == 200
    cleared = await api.delete(f"{API}/clear", params={"confirm": "true"}, headers=ADMIN)
    assert cleared.status_code == 200 and cleared.json()["data"]["deleted_keys"] > 0


async def test_api_endpoints_health_check_response_line_385(api, spec):
    body = (await api.get(f"{API}/health", headers=ADMIN)).json()
    assert body["status"] == "healthy" and body["redis_connected"] is True and body["is_running"] is False
    info = body["redis_info"]
    assert set(info) >= {"version", "used_memory", "connected_clients", "uptime"}
    if backend_of(spec) == "memory":
        # fakeredis has no INFO: its facts are None and listed as unavailable, not made up.
        assert info["version"] is None and info["unavailable"] == ["version", "used_memory", "connected_clients",
                                                                   "uptime"]
    else:
        assert isinstance(info["version"], str) and info["used_memory"].endswith(("K", "M", "G"))
        assert info["connected_clients"] >= 1 and info["uptime"] >= 0
    assert {name: set(stats) >= {"total_keys"} for name, stats in body["cache_stats"].items()} == {
        "market_data": True, "user_session": True, "price": True}


async def test_api_endpoints_market_data_response_line_405(api):
    await redtick.market_data_cache.set_symbol_price("BTCUSDT", {"price": 50000.0, "volume": 1000.0,
                                                                 "timestamp": "2023-12-01T12:00:00Z"})
    await redtick.market_data_cache.set_order_book("BTCUSDT", {"bids": [[49950.0, 1.5]], "asks": [[50050.0, 1.2]]})
    await redtick.market_data_cache.add_trade_history("BTCUSDT", {"price": 50000.0, "quantity": 0.1, "side": "buy"})
    body = (await api.get(f"{API}/market-data/BTCUSDT")).json()
    assert body["status"] == "success"
    data = body["data"]
    assert data["symbol"] == "BTCUSDT"
    assert data["price"] == {"symbol": "BTCUSDT", "price": 50000.0, "volume": 1000.0,
                             "timestamp": "2023-12-01T12:00:00Z"}
    assert {k: data["order_book"][k] for k in ("bids", "asks")} == {"bids": [[49950.0, 1.5]], "asks": [[50050.0, 1.2]]}
    assert {k: data["trade"][k] for k in ("price", "quantity", "side")} == {"price": 50000.0, "quantity": 0.1,
                                                                           "side": "buy"}


# -- Performance, Testing -------------------------------------------------------------------------
async def test_performance_metrics_line_459(spec, capsys):
    cache_service = redtick.cache_service

    # Monitor cache performance
    health = await cache_service.health_check()
    print(f"Memory usage: {health['redis_info']['used_memory']}")
    print(f"Connected clients: {health['redis_info']['connected_clients']}")

    # Cache hit rates (implement custom metrics)
    stats = await cache_service.get_cache_summary()
    print(f"Total cached keys: {stats['total_keys']}")
    print(f"Cached symbols: {stats['symbol_count']}")

    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"Memory usage: {health['redis_info']['used_memory']}"
    assert printed[2:] == ["Total cached keys: 0", "Cached symbols: 0"]
    assert stats["hit_rates"].keys() >= {"market_data", "user_session", "price"}  # redtick counts them


async def test_integration_testing_line_489(spec):
    from redtick import cache_service, market_data_cache, price_cache

    # Test complete cache flow
    async def test_cache_integration():
        await cache_service.start()

        # Test market data flow
        await market_data_cache.set_symbol_price("TEST", {"price": 100})
        price = await market_data_cache.get_symbol_price("TEST")
        assert price["price"] == 100

        # Test price alert flow
        alert_id = await price_cache.set_price_alert("user", "TEST", 110, "above")
        triggered = await price_cache.check_price_alerts("TEST", 115)
        assert alert_id in triggered

        await cache_service.stop()

    await test_cache_integration()


# -- Monitoring and Maintenance -------------------------------------------------------------------
class _StopMonitoring(BaseException):
    """Ends the doc's endless monitoring loop; a BaseException so its ``except Exception`` lets it through."""


class _OneRound:
    """Stands in for ``asyncio`` in the monitoring loop: its first ``sleep(60)`` ends the loop, at once."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        raise _StopMonitoring


async def test_health_monitoring_line_512(spec, caplog):
    from redtick import cache_service

    asyncio = _OneRound()  # the loop checks every minute forever; here one round, with no waiting

    # Automated health checks
    async def monitor_cache_health():
        while True:
            try:
                health = await cache_service.health_check()
                if health["status"] != "healthy":
                    logger.error(f"Cache unhealthy: {health}")
                    # Send alert

                await asyncio.sleep(60)  # Check every minute
            except Exception as e:
                logger.error(f"Health check failed: {e}")
                await asyncio.sleep(60)

    with caplog.at_level(logging.ERROR, logger="tests.spec"), pytest.raises(_StopMonitoring):
        await monitor_cache_health()
    assert asyncio.slept == [60]
    assert [r for r in caplog.records if r.name == "tests.spec"] == []  # healthy: nothing logged


async def test_maintenance_tasks_line_530(spec, caplog):
    from redtick import cache_service, price_cache, user_session_cache

    # Scheduled maintenance
    async def daily_cache_maintenance():
        """Run daily cache maintenance."""
        try:
            # Clean up expired data
            cleanup_results = await cache_service.cleanup_expired_data()
            logger.info(f"Daily cleanup: {cleanup_results}")

            # Clean up old price data (older than 7 days)
            price_cleanup = await price_cache.cleanup_old_data(days=7)
            logger.info(f"Price cleanup: {price_cleanup}")

            # Clean up expired sessions
            session_cleanup = await user_session_cache.cleanup_expired_sessions()
            logger.info(f"Session cleanup: {session_cleanup} sessions")

        except Exception as e:
            logger.error(f"Maintenance failed: {e}")

    # The apscheduler lines that follow are not run: see the module docstring.
    await price_cache.set_current_price("BTCUSDT", 50000.0, volume=1.0, timestamp="2020-01-01T00:00:00Z")
    with caplog.at_level(logging.INFO, logger="tests.spec"):
        await daily_cache_maintenance()
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.spec"]
    assert [m.split(":")[0] for m in messages] == ["Daily cleanup", "Price cleanup", "Session cleanup"]
    assert "'ticks_removed': 1" in messages[1]  # the 2020 tick is older than 7 days
    assert await price_cache.get_price_history("BTCUSDT") == []


async def test_memory_management_line_566(spec, caplog):
    from redtick import cache_service, redis_client

    # Monitor memory usage
    async def check_memory_usage():
        info = await redis_client.info()
        used_memory = info.get('used_memory', 0)
        max_memory = info.get('maxmemory', 0)

        if max_memory > 0:
            usage_percent = (used_memory / max_memory) * 100
            if usage_percent > 80:
                logger.warning(f"High memory usage: {usage_percent:.1f}%")
                # Trigger cleanup
                await cache_service.cleanup_expired_data()

    if backend_of(spec) == "memory":
        # Stricter than a zero: fakeredis keeps no server statistics, and a used_memory of 0 would
        # be a made-up figure, so redis_client.info() says so with a typed error.
        with pytest.raises(RedisError, match=r"memory:// \(the in-process fakeredis\) has no INFO"):
            await check_memory_usage()
        return
    with caplog.at_level(logging.WARNING, logger="tests.spec"):
        await check_memory_usage()
    info = await redis_client.info()
    assert info["used_memory"] > 0 and info["maxmemory"] == 0  # the test servers set no maxmemory
    assert [r for r in caplog.records if r.name == "tests.spec"] == []
    if backend_of(spec) == "cluster":
        assert info["cluster_masters"] == 3  # every master's memory, not one node's


# -- Troubleshooting ------------------------------------------------------------------------------
async def test_troubleshooting_connection_errors_line_586(spec, capsys):
    from redtick import redis_client

    # Check Redis connectivity
    try:
        await redis_client.ping()
        print("Redis connected")
    except Exception as e:
        print(f"Redis connection failed: {e}")

    assert capsys.readouterr().out == "Redis connected\n"


@contextlib.contextmanager
def every_command_logged_as_slow(conn):
    """``slowlog-log-slower-than 0`` on every master for the block, then each master's own value again."""
    client = conn.sync
    nodes = client.get_primaries() if conn.settings.topology == "cluster" else [None]
    targets = [{"target_nodes": node} if node is not None else {} for node in nodes]
    before = [client.config_get("slowlog-log-slower-than", **target)["slowlog-log-slower-than"] for target in targets]
    for target in targets:
        client.config_set("slowlog-log-slower-than", 0, **target)
    try:
        yield
    finally:
        for target, value in zip(targets, before, strict=True):
            client.config_set("slowlog-log-slower-than", value, **target)


async def test_troubleshooting_performance_issues_line_608(spec, capsys):
    from redtick import redis_client

    if backend_of(spec) == "memory":
        # fakeredis keeps no slow log; an empty list would claim there were no slow commands.
        with pytest.raises(RedisError, match=r"has no SLOWLOG"):
            await redis_client.slowlog_get(10)
    else:
        # Monitor slow queries
        await redis_client.slowlog_get(10)
        marker = spec.keys.key("slowlog-marker")
        with every_command_logged_as_slow(spec):
            await redis_client.set(marker, "1")
        entries = await redis_client.slowlog_get(10)
        assert len(entries) <= 10
        logged = [e for e in await redis_client.slowlog_get(128) if e["command"] == f"SET {marker} 1"]
        assert len(logged) == 1 and logged[0]["duration"] >= 0
        if backend_of(spec) == "cluster":  # every master's log, merged, each entry naming its node
            assert logged[0]["node"] in {node.name for node in spec.sync.get_primaries()}

    # Check connection pool status
    # Stricter than the doc: redtick keeps its pools private (one per event loop, one per node on
    # a cluster), so the doc's private attribute is refused, naming where the pool size is.
    with pytest.raises(AttributeError, match=r"redis_client\.conn\.settings\.max_connections"):
        pool_info = redis_client._connection_pool  # noqa: F841
    pool_size = redis_client.conn.settings.max_connections
    print(f"Pool size: {pool_size}")
    assert capsys.readouterr().out == f"Pool size: {spec.settings.max_connections}\n"


async def test_troubleshooting_data_consistency_line_618(spec, caplog):
    from redtick import market_data_cache

    await market_data_cache.set_symbol_price("BTCUSDT", {"price": 50000.0,
                                                         "timestamp": datetime.now(UTC) - timedelta(minutes=6)})
    # Verify cache data
    cached_price = await market_data_cache.get_symbol_price("BTCUSDT")
    # Stricter than the doc: redtick's timestamps are UTC with their zone ("...Z", as in the doc's own
    # example response), so the doc's naive datetime.utcnow() cannot be subtracted from them.
    with pytest.raises(TypeError, match="offset-naive and offset-aware"):
        datetime.utcnow() - datetime.fromisoformat(cached_price["timestamp"])
    with caplog.at_level(logging.WARNING, logger="tests.spec"):
        if cached_price:
            age = datetime.now(UTC) - datetime.fromisoformat(cached_price["timestamp"])
            if age.total_seconds() > 300:  # 5 minutes
                logger.warning(f"Stale cache data: {age.total_seconds()}s old")
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "tests.spec"] == ["Stale cache data"]


async def test_debugging_tools_line_629(spec, caplog):
    level = logging.getLogger("redtick").level
    # Enable debug logging
    logging.getLogger('redtick').setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="tests.spec")

    # Monitor Redis commands
    # Add to redis_client.py
    class DebugRedisClient(RedisClient):
        async def get(self, key: str):
            logger.debug(f"REDIS GET {key}")
            result = await super().get(key)
            logger.debug(f"REDIS GET {key} -> {result is not None}")
            return result

    try:
        client = DebugRedisClient(spec)
        key = spec.keys.key("debug")
        await client.set(key, "1")
        assert await client.get(key) == "1"
        assert await client.get(key + ":missing") is None
        messages = [r.getMessage() for r in caplog.records if r.name == "tests.spec"]
        assert messages == [f"REDIS GET {key}", f"REDIS GET {key} -> True", f"REDIS GET {key}:missing",
                            f"REDIS GET {key}:missing -> False"]
    finally:
        logging.getLogger("redtick").setLevel(level)


# -- Security Considerations ----------------------------------------------------------------------
async def test_security_encrypted_cache_line_661(spec):
    # Example: Encrypt sensitive data
    class EncryptedCache(BaseCache):
        def __init__(self, encryption_key: bytes):
            # Stricter than the doc's bare super().__init__(): a redtick cache names its key family,
            # so every key it writes is <namespace>:<prefix>:..., never a bare key of no family.
            super().__init__("encrypted")
            self.fernet = Fernet(encryption_key)

        def _serialize(self, value: Any) -> str:
            json_str = super()._serialize(value)
            encrypted = self.fernet.encrypt(json_str.encode())
            return encrypted.decode()

        def _deserialize(self, value: str) -> Any:
            decrypted = self.fernet.decrypt(value.encode())
            return super()._deserialize(decrypted.decode())

    key = Fernet.generate_key()
    cache = EncryptedCache(key)
    await cache.set("account", {"iban": "DE89370400440532013000"})
    assert await cache.get("account") == {"iban": "DE89370400440532013000"}
    stored = spec.sync.get(spec.keys.key("encrypted", "account"))
    assert b"DE89" not in stored and Fernet(key).decrypt(stored) == b'{"iban":"DE89370400440532013000"}'
    # redtick ships the same class, taking its key from REDTICK_ENCRYPTION_KEY by default.
    shipped = redtick.EncryptedCache(encryption_key=key)
    assert await shipped.get("account") == {"iban": "DE89370400440532013000"}
