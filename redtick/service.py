"""``CacheService``: owns the caches, reports health and key counts, runs periodic maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from redtick.caches.alerts import PriceAlerts
from redtick.caches.base import unlink_matching
from redtick.caches.market import MarketDataCache
from redtick.caches.prices import PriceCache
from redtick.caches.sessions import UserSessionCache
from redtick.clock import now_ms
from redtick.connection import Connection, UsesConnection
from redtick.errors import RedisError, RedtickError
from redtick.server_info import KEYSPACE_FIELDS, merge_node_info

__all__ = ["CacheService", "cache_service"]

log = logging.getLogger("redtick.service")

_SPEC_CACHES = ("market_data", "user_session", "price")
_INFO_FIELDS = ("version", "used_memory", "connected_clients", "uptime")
T = TypeVar("T")


class CacheService(UsesConnection):
    """The caches of one Redis, their health, counts, cleanup and a maintenance loop.

    Parameters
    ----------
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    maintenance_interval : float, optional
        Seconds between maintenance runs while started; defaults to ``REDTICK_MAINTENANCE_INTERVAL``.
    memory_warn_percent : float, optional
        Used memory, in percent of ``maxmemory``, above which maintenance warns and health says
        "degraded"; defaults to ``REDTICK_MEMORY_WARN_PERCENT``.

    Examples
    --------
    >>> import asyncio
    >>> async def demo():
    ...     service = CacheService()
    ...     await service.start()
    ...     health = await service.health_check()
    ...     await service.stop()
    ...     return health["status"], health["is_running"]
    >>> asyncio.run(demo())
    ('healthy', True)
    """

    def __init__(
        self,
        conn: Connection | None = None,
        *,
        maintenance_interval: float | None = None,
        memory_warn_percent: float | None = None,
    ):
        self._conn = conn
        self._maintenance_interval = maintenance_interval
        self._memory_warn_percent = memory_warn_percent
        self._task: asyncio.Task[None] | None = None
        self._caches: dict[str, Any] = {}
        self.maintenance_runs = 0
        self.maintenance_failures = 0
        self.last_maintenance: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"CacheService({self._conn!r}, running={self.is_running})"

    @property
    def maintenance_interval(self) -> float:
        """Seconds between maintenance runs."""
        if self._maintenance_interval is not None:
            return self._maintenance_interval
        return self.conn.settings.maintenance_interval_ms / 1000

    @property
    def memory_warn_percent(self) -> float:
        if self._memory_warn_percent is not None:
            return self._memory_warn_percent
        return self.conn.settings.memory_warn_percent

    @property
    def redis(self) -> Any:
        """The async client of the running event loop (``Redis`` or ``RedisCluster``; see ``CacheFront.redis``)."""
        return self.conn.async_client()

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the maintenance loop; Redis being down is logged, not raised, and retried each run."""
        if self.is_running:
            return
        try:
            await self.redis.ping()
        except RedisError as exc:
            log.warning("cache service starting while Redis is unavailable (%s); maintenance will retry",
                        type(exc).__name__)
        self._task = asyncio.create_task(self._maintenance_loop(), name="redtick-maintenance")
        log.info("cache service started on %s; maintenance every %.1fs", self.conn.settings.safe_url,
                 self.maintenance_interval)

    async def stop(self) -> None:
        """Stop the maintenance loop (waits for it to end)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("cache service stopped")

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.maintenance_interval)
            await self.run_maintenance()

    async def run_maintenance(self) -> dict[str, Any]:
        """One maintenance pass: memory check, then cleanup. Never raises; the outcome is returned.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(CacheService().run_maintenance())["ok"]
        True
        """
        started = now_ms() / 1000
        outcome: dict[str, Any] = {"started_at": started}
        try:
            outcome["memory"] = await self.check_memory()
            outcome["cleanup"] = await self.cleanup_expired_data()
            outcome["ok"] = True
        except RedtickError as exc:
            # Redis went away: say so once per run and try again next time.
            self.maintenance_failures += 1
            outcome.update(ok=False, error=f"{type(exc).__name__}")
            log.warning("cache maintenance failed (%s); retrying in %.1fs", type(exc).__name__,
                        self.maintenance_interval)
        self.maintenance_runs += 1
        self.last_maintenance = outcome
        return outcome

    # -- server facts ----------------------------------------------------------------------------
    async def _server_info(self) -> dict[str, Any] | None:
        """INFO, or None when the server has no INFO (the in-memory fakeredis)."""
        try:
            if self.conn.settings.topology == "cluster":
                return merge_node_info(await self.redis.info(target_nodes=self.redis.PRIMARIES))
            info: dict[str, Any] = await self.redis.info()
            return info
        except RedisError as exc:
            if isinstance(exc, ConnectionError):  # Unavailable: a real outage, not a missing command
                raise
            return None

    def _memory(self, info: dict[str, Any] | None) -> dict[str, Any]:
        if info is None:
            return {"available": False, "used_bytes": None, "maxmemory_bytes": None, "percent": None,
                    "warning": False}
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        percent = round(100.0 * used / limit, 2) if limit > 0 else None
        if info.get("fullest_master_percent") is not None:  # a cluster: warn on its fullest master
            percent = info["fullest_master_percent"]
        return {
            "available": True,
            "used_bytes": used,
            "maxmemory_bytes": limit,
            "percent": percent,
            "warning": percent is not None and percent > self.memory_warn_percent,
        }

    async def check_memory(self) -> dict[str, Any]:
        """Used memory against ``maxmemory``; logs a warning above ``memory_warn_percent``.

        Without ``maxmemory`` (0, Redis's default) there is no percentage to warn on; on the
        in-memory fakeredis, which has no INFO, ``available`` is False.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(CacheService().check_memory())["available"]  # False on memory://, which has no INFO
        True
        """
        memory = self._memory(await self._server_info())
        if memory["warning"]:
            log.warning("Redis memory at %.1f%% of maxmemory (warning above %.1f%%)", memory["percent"],
                        self.memory_warn_percent)
        return memory

    # -- the spec's calls ------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """Status, Redis facts, per-cache key counts and whether the service runs; never raises.

        ``status`` is "healthy", "degraded" (memory above the warning threshold) or "unhealthy"
        (Redis unreachable). Facts the server cannot give (the in-memory fakeredis has no INFO) are
        None and listed in ``redis_info["unavailable"]``. ``hit_rate`` and each cache's
        ``hit_rate``, ``hits`` and ``misses`` are this process's counts (:mod:`redtick.metrics`),
        there even when Redis is not; ``redis_info["keyspace"]`` holds the server's own
        hits, misses, expired and evicted keys when it has INFO.

        Examples
        --------
        >>> import asyncio
        >>> health = asyncio.run(CacheService().health_check())
        >>> health["status"], health["redis_info"]["unavailable"]  # memory:// lists the INFO fields it lacks
        ('healthy', [])
        """
        redis_info: dict[str, Any] = dict.fromkeys(_INFO_FIELDS)
        redis_info.update(backend="memory" if self.conn.in_memory else "redis", unavailable=list(_INFO_FIELDS))
        health: dict[str, Any] = {
            "status": "unhealthy",
            "redis_connected": False,
            "redis_info": redis_info,
            "cache_stats": {name: {"total_keys": None} for name in _SPEC_CACHES},
            "hit_rate": self.conn.metrics.overall_hit_rate(),
            "is_running": self.is_running,
            "maintenance": self._maintenance_facts(),
        }
        try:
            await self.redis.ping()
            health["redis_connected"] = True
            info = await self._server_info()
            if info is not None:
                redis_info.update(
                    version=info.get("redis_version"),
                    used_memory=info.get("used_memory_human"),
                    connected_clients=info.get("connected_clients"),
                    uptime=info.get("uptime_in_seconds"),
                )
                redis_info["unavailable"] = [f for f in _INFO_FIELDS if redis_info[f] is None]
                redis_info["keyspace"] = {name: int(info.get(field, 0)) for name, field in KEYSPACE_FIELDS.items()}
            redis_info["memory"] = self._memory(info)
            summary = await self.get_cache_summary()
            health["cache_stats"] = {name: {"total_keys": count} for name, count in summary["caches"].items()}
            health["status"] = "degraded" if redis_info["memory"]["warning"] else "healthy"
        except RedtickError as exc:
            health["error"] = type(exc).__name__
        counted = self.conn.metrics.cache_stats()
        for name, stats in health["cache_stats"].items():
            mine = counted.get(name, {})
            stats.update(hit_rate=mine.get("hit_rate"), hits=mine.get("hits", 0), misses=mine.get("misses", 0))
        return health

    def _maintenance_facts(self) -> dict[str, Any]:
        last = self.last_maintenance or {}
        return {
            "interval_seconds": self.maintenance_interval,
            "runs": self.maintenance_runs,
            "failures": self.maintenance_failures,
            "last_run_at": last.get("started_at"),
            "last_ok": last.get("ok"),
        }

    async def _scan(self) -> AsyncIterator[bytes]:
        async for key in self.redis.scan_iter(match=self.conn.keys.everything(), count=1000):
            yield key

    async def get_cache_summary(self) -> dict[str, Any]:
        """Key counts by SCAN inside the namespace: total, symbols, per cache and per key family.

        Each key is counted under the cache that owns it and its family (its first part after the
        namespace), as :meth:`KeySchema.describe <redtick.keys.KeySchema.describe>` tells them.
        ``symbol_count`` is the number of distinct symbols that have any market, price, series or
        alert key (read from the keys' hash tags). ``hit_rates`` maps each cache to hits / (hits +
        misses) in this process (None before its first read), and ``metrics`` holds the counts
        behind them: ``{"hit_rate": overall, "caches": Metrics.cache_stats()}``.

        Examples
        --------
        >>> import asyncio
        >>> from redtick.config import Settings
        >>> service = CacheService(Connection(Settings(url="memory://", namespace="docsummary")))  # its own keys only
        >>> async def demo():
        ...     await service.get_market_cache().set_symbol_price("BTCUSDT", {"price": 50000.0})
        ...     await service.get_session_cache().set_user_session("u1", {})
        ...     await service.get_session_cache().set_rate_limit("u1", "api_call")  # its log and its window
        ...     return await service.get_cache_summary()
        >>> summary = asyncio.run(demo())
        >>> summary["total_keys"], summary["symbol_count"], summary["caches"]
        (7, 1, {'market_data': 2, 'user_session': 3, 'price': 0, 'rate_limit': 2})
        >>> summary["families"]
        {'market': 2, 'ratelimit': 2, 'session': 1, 'sessions': 1, 'user': 1}
        """
        describe = self.conn.keys.describe
        families: Counter[str] = Counter()
        caches: Counter[str] = Counter(dict.fromkeys(_SPEC_CACHES, 0))
        symbols: set[str] = set()
        async for key in self._scan():
            info = describe(key)
            families[info.head] += 1
            caches[info.cache] += 1
            if info.symbol:
                symbols.add(info.symbol)
        return {
            "namespace": self.conn.keys.namespace,
            "total_keys": sum(families.values()),
            "symbol_count": len(symbols),
            "caches": dict(caches),
            "families": dict(sorted(families.items())),
            "hit_rates": {**dict.fromkeys(_SPEC_CACHES), **self.conn.metrics.hit_rates()},
            "metrics": {"hit_rate": self.conn.metrics.overall_hit_rate(), "caches": self.conn.metrics.cache_stats()},
        }

    async def cleanup_expired_data(self) -> dict[str, int]:
        """Drop what has outlived its use; Redis expires TTL'd keys itself, this does the rest.

        Session index entries of expired sessions go, and expired alerts of every symbol (each
        symbol's stream of fired alerts is trimmed to its retention). Series data goes only as the configured
        retention says (:meth:`PriceCache.apply_retention`, measured behind each symbol's newest
        tick, never by the wall clock); with retention off, the default, no tick or candle is
        deleted. The maintenance loop and ``POST /cleanup`` run this.

        Examples
        --------
        >>> import asyncio
        >>> sorted(asyncio.run(CacheService().cleanup_expired_data()))
        ['expired_alerts', 'expired_sessions', 'price_chunks_removed', 'price_symbols', 'price_ticks_removed']
        """
        results = {"expired_sessions": await self.get_session_cache().cleanup_expired_sessions(),
                   "expired_alerts": await self.get_alerts().cleanup_all_expired_alerts()}
        for step, removed in (await self.get_price_cache().apply_retention()).items():
            results[f"price_{step}"] = removed
        return results

    async def clear_all_cache(self) -> dict[str, Any]:
        """Delete every key in redtick's namespace (and nothing outside it); returns counts.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(CacheService().clear_all_cache())["namespace"]
        'redtick'
        """
        deleted = await unlink_matching(self.redis, self.conn.keys.everything())
        log.warning("cleared %d keys in namespace %r", deleted, self.conn.keys.namespace)
        return {"namespace": self.conn.keys.namespace, "deleted_keys": deleted}

    # -- the caches ------------------------------------------------------------------------------
    def _cache(self, name: str, factory: Callable[[], T]) -> T:
        if name not in self._caches:
            self._caches[name] = factory()
        cache: T = self._caches[name]
        return cache

    def get_market_cache(self) -> MarketDataCache:
        """The service's :class:`~redtick.caches.market.MarketDataCache`, on its connection."""
        return self._cache("market", lambda: MarketDataCache(conn=self.conn))

    def get_price_cache(self) -> PriceCache:
        """The service's :class:`~redtick.caches.prices.PriceCache`, on its connection (alerts shared)."""
        return self._cache("price", lambda: PriceCache(conn=self.conn, alerts=self.get_alerts()))

    def get_session_cache(self) -> UserSessionCache:
        """The service's :class:`~redtick.caches.sessions.UserSessionCache`, on its connection."""
        return self._cache("session", lambda: UserSessionCache(conn=self.conn))

    def get_alerts(self) -> PriceAlerts:
        """The service's :class:`~redtick.caches.alerts.PriceAlerts`, on its connection."""
        return self._cache("alerts", lambda: PriceAlerts(conn=self.conn))


cache_service = CacheService()
