"""Redis Cluster specifics: slots, every master visited, URLs. The whole suite also runs on the cluster backend."""

from __future__ import annotations

import asyncio
import secrets

import numpy as np
import pandas as pd
import pytest
from redis.crc import key_slot

import redtick
from redtick import frames, reports
from redtick.caches.base import BaseCache
from redtick.caches.sessions import UserSessionCache
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import ConfigurationError
from redtick.service import CacheService

SYMBOLS = [f"S{i}" for i in range(24)]


@pytest.fixture
def cluster_conn(cluster_redis_url):
    conn = Connection(Settings(url=cluster_redis_url, namespace="c" + secrets.token_hex(4),
                               tick_retention_ms=None, candle_retention_ms=None))
    yield conn
    keys = list(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))
    if keys:
        conn.sync.delete(*keys)
    conn.close()


def _ticks(seed: int, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ts": 1_700_000_000_000 + np.sort(rng.integers(0, 6 * 3_600_000, n)), "trade_id": np.arange(n),
                         "price": rng.uniform(100, 110, n).round(2), "volume": rng.integers(1, 9, n).astype(float)})


def _node_of(conn: Connection, key: bytes | str) -> str:
    return conn.sync.nodes_manager.get_node_from_slot(key_slot(key if isinstance(key, bytes) else key.encode())).name


def _keys_per_master(conn: Connection) -> dict[str, int]:
    client = conn.sync
    counts = {}
    for node in client.get_primaries():
        keys = client.scan_iter(match=conn.keys.everything(), count=1000, target_nodes=node)
        counts[node.name] = sum(1 for _ in keys)
    return counts


def test_a_symbol_sits_in_one_slot_and_symbols_spread_over_every_master(cluster_conn):
    conn = cluster_conn
    for i, symbol in enumerate(SYMBOLS):
        frames.write_ticks(_ticks(i), symbol, conn=conn)
    for symbol in SYMBOLS:
        keys = list(conn.sync.scan_iter(match=f"{conn.keys.prefix}*{{{symbol}}}*", count=1000))
        assert len(keys) > 1 and len({key_slot(k) for k in keys}) == 1, symbol
    per_master = _keys_per_master(conn)
    assert len(per_master) == 3 and all(per_master.values()), per_master


def test_multi_symbol_reads_span_nodes_and_equal_single_reads(cluster_conn):
    conn = cluster_conn
    for i, symbol in enumerate(SYMBOLS):
        frames.write_ticks(_ticks(i), symbol, conn=conn)
    nodes = {_node_of(conn, conn.keys.tick_index(s)) for s in SYMBOLS}
    assert len(nodes) == 3  # gather's merged batch is one cluster pipeline, one round trip per node
    together = frames.load_ohlcv(SYMBOLS, "15m", conn=conn)
    for symbol in SYMBOLS:
        pd.testing.assert_frame_equal(together.loc[symbol], frames.load_ohlcv(symbol, "15m", conn=conn),
                                      check_names=False)
    ticks = frames.load_ticks(SYMBOLS, conn=conn)
    assert len(ticks) == 200 * len(SYMBOLS)


async def test_service_counts_and_clears_every_master_and_reports_their_memory(cluster_conn):
    conn = cluster_conn
    for i, symbol in enumerate(SYMBOLS[:9]):
        await redtick.PriceCache(conn=conn).write_ticks(_ticks(i, 50), symbol)
    sessions = UserSessionCache(conn=conn)
    for user in ("u1", "u2", "u3"):
        await sessions.set_user_session(user, {"device": "app"}, ttl=60)
    service = CacheService(conn)
    per_master = _keys_per_master(conn)
    summary = await service.get_cache_summary()
    assert summary["total_keys"] == sum(per_master.values()) and summary["symbol_count"] == 9
    health = await service.health_check()
    assert health["status"] == "healthy"
    memory = await service.check_memory()
    assert memory["available"] and memory["used_bytes"] > 0
    cleared = await service.clear_all_cache()
    assert cleared["deleted_keys"] == sum(per_master.values())
    assert sum(_keys_per_master(conn).values()) == 0
    await conn.aclose()


async def test_memory_figures_cover_every_master(cluster_conn):
    conn, limit = cluster_conn, 512 * 2**20
    primaries = conn.sync.PRIMARIES
    old = conn.sync.config_get("maxmemory", target_nodes=primaries)
    conn.sync.config_set("maxmemory", limit, target_nodes=primaries)
    try:
        report = reports.memory_report(conn)
        memory = await CacheService(conn).check_memory()
        assert (await CacheService(conn, memory_warn_percent=1e-6).check_memory())["warning"]
    finally:
        conn.sync.config_set("maxmemory", next(iter(old.values()))["maxmemory"], target_nodes=primaries)
    per_node = conn.sync.info("memory", target_nodes=primaries)
    assert report.maxmemory == memory["maxmemory_bytes"] == 3 * limit
    assert report.used_memory >= max(info["used_memory"] for info in per_node.values())
    # The warning share is the fullest master's, never below the cluster's average share.
    assert 0 < memory["percent"] < 100
    assert memory["percent"] >= round(100 * memory["used_bytes"] / memory["maxmemory_bytes"], 2)
    await conn.aclose()


async def test_cache_batches_span_slots(cluster_conn):
    cache = BaseCache("spread", default_ttl=60, conn=cluster_conn)
    items = {f"k{i}": {"i": i} for i in range(60)}
    assert len({_node_of(cluster_conn, cache._key(k)) for k in items}) == 3
    await cache.set_many(items)
    assert await cache.get_many([*items, "missing"]) == items
    await cluster_conn.aclose()


async def test_concurrent_first_commands_on_a_fresh_async_client_all_succeed(cluster_conn):
    client = cluster_conn.async_client()  # more commands at once than the per-node pool allows
    replies = await asyncio.gather(*(client.get(cluster_conn.keys.key(f"k{i}")) for i in range(60)))
    assert replies == [None] * 60
    await cluster_conn.aclose()


@pytest.mark.parametrize("url", [
    "redis+cluster://",
    "redis+cluster://h:notaport",
    "redis+cluster://h:70000",
    "redis+cluster://h:7000/1",
    "redis+sentinel://h:26379",
    "redis+sentinel://h:26379/bad name",
    "redis+sentinel://h:26379/master/x",
])
def test_bad_node_urls_are_refused(url):
    with pytest.raises(ConfigurationError):
        Settings.from_env({"REDIS_URL": url})


def test_node_urls_select_the_topology_and_never_show_the_password():
    cluster = Settings.from_env({"REDIS_URL": "redis+cluster://u:s3cret@10.0.0.1:7000,10.0.0.2"})
    assert cluster.topology == "cluster"
    assert cluster.safe_url == "redis+cluster://10.0.0.1:7000,10.0.0.2:6379"
    sentinel = Settings.from_env({"REDIS_URL": "redis+sentinel://:s3cret@10.0.0.1,10.0.0.2:26380/mymaster/2"})
    assert sentinel.topology == "sentinel"
    assert sentinel.safe_url == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster/2"
    for settings in (cluster, sentinel):
        assert "s3cret" not in repr(settings) and "s3cret" not in repr(Connection(settings))
