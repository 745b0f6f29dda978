"""CacheService: health, counts by SCAN, namespace-only clearing, maintenance that survives outages."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import RedisError
from redtick.keys import KeySchema
from redtick.service import CacheService
from tests.conftest import free_port

INFO_FIELDS = ("version", "used_memory", "connected_clients", "uptime")


async def until(condition, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (a deadline, not a wait)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


def dead_connection() -> Connection:
    return Connection(Settings(url=f"redis://127.0.0.1:{free_port()}/0", retries=0, connect_timeout=0.5))


def server_info(conn):
    try:
        return conn.sync.info()
    except RedisError:
        return None  # the in-memory fakeredis has no INFO


async def test_health_reports_what_the_server_can_give(conn):
    service = CacheService(conn)
    health = await service.health_check()
    assert health["status"] == "healthy" and health["redis_connected"] is True
    assert health["is_running"] is False
    assert set(health["cache_stats"]) >= {"market_data", "user_session", "price"}
    info, expected = health["redis_info"], server_info(conn)
    if expected is None:
        assert info["unavailable"] == list(INFO_FIELDS)
        assert all(info[f] is None for f in INFO_FIELDS)
        assert info["memory"]["available"] is False
    else:
        assert info["unavailable"] == []
        assert info["version"] == expected["redis_version"]
        assert isinstance(info["connected_clients"], int) and isinstance(info["uptime"], int)
        assert info["used_memory"].endswith(("B", "K", "M", "G"))


async def test_health_when_redis_is_down_is_unhealthy_and_never_raises():
    health = await CacheService(dead_connection()).health_check()
    assert health["status"] == "unhealthy" and health["redis_connected"] is False
    assert health["error"] == "Unavailable"
    assert all(v["total_keys"] is None for v in health["cache_stats"].values())


async def test_summary_counts_by_scan_inside_the_namespace(conn):
    keys = conn.keys
    r = conn.sync
    r.set(keys.market("price", "BTCUSDT"), b"{}")
    r.set(keys.market("orderbook", "BTCUSDT"), b"{}")
    r.set(keys.market("price", "ETHUSDT"), b"{}")
    r.zadd(keys.market_symbols(), {"BTCUSDT": 1, "ETHUSDT": 1})
    r.zadd(keys.tick_index("SOLUSDT"), {"0": 0})
    r.hset(keys.session("s1"), "user_id", "u1")
    r.set(keys.response("health", "abc"), b"x")
    r.set(KeySchema("someoneelse").market("price", "XRPUSDT"), b"{}")  # another namespace: not counted
    r.set("market:price:{DOGEUSDT}", b"{}")  # outside any namespace: not counted
    try:
        summary = await CacheService(conn).get_cache_summary()
    finally:
        r.delete("market:price:{DOGEUSDT}", KeySchema("someoneelse").market("price", "XRPUSDT"))
    assert summary["total_keys"] == 7
    assert summary["symbol_count"] == 3
    assert summary["caches"] == {"market_data": 4, "price": 1, "user_session": 1, "http_response": 1}
    assert summary["families"] == {"http": 1, "market": 4, "session": 1, "ticks": 1}


async def test_clear_all_cache_touches_only_the_namespace(conn):
    r = conn.sync
    for i in range(1200):  # more than one UNLINK batch
        r.set(conn.keys.key("bulk", str(i)), b"1")
    neighbour = KeySchema(conn.keys.namespace + "x").key("kept")  # shares the namespace's first letters
    r.set("unrelated", b"1")
    r.set(neighbour, b"1")
    try:
        result = await CacheService(conn).clear_all_cache()
        assert result == {"namespace": conn.keys.namespace, "deleted_keys": 1200}
        assert r.get("unrelated") == b"1" and r.get(neighbour) == b"1"
        assert not list(r.scan_iter(match=conn.keys.everything()))
    finally:
        r.delete("unrelated", neighbour)


async def test_start_stop_and_periodic_maintenance(conn):
    service = CacheService(conn, maintenance_interval=0.01)
    assert not service.is_running
    await service.start()
    await service.start()  # idempotent
    try:
        assert service.is_running
        await until(lambda: service.maintenance_runs >= 3)
        assert service.last_maintenance["ok"] is True
        assert "expired_sessions" in service.last_maintenance["cleanup"]
        assert any(step.startswith("price_") for step in service.last_maintenance["cleanup"])
    finally:
        await service.stop()
    assert not service.is_running
    runs = service.maintenance_runs
    await asyncio.sleep(0.05)  # stopped: no further runs may happen
    assert service.maintenance_runs == runs


async def test_interval_comes_from_settings(conn):
    settings = Settings(namespace="x", maintenance_interval_ms=1500, memory_warn_percent=50.0)
    service = CacheService(Connection(settings))
    assert service.maintenance_interval == 1.5 and service.memory_warn_percent == 50.0


async def test_maintenance_survives_redis_going_away_and_coming_back(redis_server, real_redis_url):
    if redis_server is None or real_redis_url != redis_server.url:
        pytest.skip("needs the throwaway redis-server this suite may stop")
    conn = Connection(Settings(url=redis_server.url, namespace="maint", retries=0, connect_timeout=0.5))
    service = CacheService(conn, maintenance_interval=0.02)
    await service.start()
    try:
        await until(lambda: service.maintenance_runs >= 1 and service.last_maintenance["ok"])
        redis_server.stop()
        try:
            await until(lambda: service.maintenance_failures >= 1)
            assert service.is_running
            assert (await service.health_check())["status"] == "unhealthy"
        finally:
            redis_server.start()
        failures = service.maintenance_failures
        await until(lambda: service.last_maintenance["ok"] and service.maintenance_failures == failures)
        assert service.is_running
        assert (await service.health_check())["status"] == "healthy"
    finally:
        await service.stop()


@pytest.mark.single_node("CONFIG SET reaches one node; tests/test_cluster.py sets every master's maxmemory")
async def test_memory_check_warns_above_the_threshold(conn, caplog):
    if server_info(conn) is None:
        memory = await CacheService(conn).check_memory()  # no INFO: nothing to compare
        assert memory["available"] is False and memory["warning"] is False
        return
    conn.sync.config_set("maxmemory", str(1 << 30))
    try:
        caplog.set_level(logging.WARNING, logger="redtick")
        relaxed = await CacheService(conn, memory_warn_percent=100.0).check_memory()
        assert relaxed["available"] and relaxed["maxmemory_bytes"] == 1 << 30 and not relaxed["warning"]
        strict = CacheService(conn, memory_warn_percent=1e-6)
        memory = await strict.check_memory()
        assert memory["warning"] and 0 < memory["percent"] < 100
        assert "maxmemory" in caplog.text
        assert (await strict.health_check())["status"] == "degraded"
    finally:
        conn.sync.config_set("maxmemory", "0")


async def test_session_cache_is_bound_to_the_service_connection(conn):
    service = CacheService(conn)
    cache = service.get_session_cache()
    assert cache is service.get_session_cache()
    session_id = await cache.set_user_session("u1", {"device": "test"}, ttl=60)
    assert conn.sync.exists(conn.keys.session(session_id))
