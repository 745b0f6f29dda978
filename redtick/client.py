"""``RedisClient``: the platform's async Redis wrapper, with JSON helpers; ``redis_client`` is the default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redtick import codec
from redtick.connection import Connection, UsesConnection

__all__ = ["RedisClient", "redis_client"]


class RedisClient(UsesConnection):
    """Async Redis client over redtick's pooled, retrying connection; replies are ``str``.

    Keys are used as given: this is the plain client. Errors are :mod:`redtick.errors`.
    Any redis-py command not spelled out here is reached by attribute (``await client.incr(k)``).

    Examples
    --------
    >>> import asyncio
    >>> async def demo():
    ...     client = RedisClient()
    ...     await client.connect()
    ...     await client.set("redtick:doc:key", "value", ex=300)
    ...     return await client.get("redtick:doc:key")
    >>> asyncio.run(demo())
    'value'
    """

    def __init__(self, conn: Connection | None = None):
        self._conn = conn

    @property
    def redis(self):
        """The underlying redis-py async client of the running event loop."""
        return self.conn.async_client(decode=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.redis, name)

    # -- lifecycle -------------------------------------------------------------------------------
    async def connect(self) -> bool:
        """Open the pool and check the server answers; raises Unavailable if it does not."""
        return await self.ping()

    async def disconnect(self) -> None:
        """Close this event loop's connections."""
        await self.conn.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # -- strings ---------------------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        return await self.redis.get(key)

    async def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> bool:
        """Set ``key``; ``ex`` is a TTL in seconds, ``nx`` sets only if absent."""
        return bool(await self.redis.set(key, value, ex=ex, nx=nx))

    async def delete(self, *keys: str) -> int:
        return await self.redis.delete(*keys) if keys else 0

    async def exists(self, *keys: str) -> int:
        return await self.redis.exists(*keys) if keys else 0

    async def expire(self, key: str, seconds: int) -> bool:
        return bool(await self.redis.expire(key, seconds))

    async def ttl(self, key: str) -> int:
        """Seconds to live; -1 without TTL, -2 if the key does not exist."""
        return await self.redis.ttl(key)

    # -- hashes ----------------------------------------------------------------------------------
    async def hset(self, key: str, field: str | None = None, value: Any = None, mapping: dict | None = None) -> int:
        return await self.redis.hset(key, field, value, mapping=mapping)

    async def hget(self, key: str, field: str) -> str | None:
        return await self.redis.hget(key, field)

    async def hgetall(self, key: str) -> dict[str, str]:
        return await self.redis.hgetall(key)

    async def hdel(self, key: str, *fields: str) -> int:
        return await self.redis.hdel(key, *fields)

    # -- lists -----------------------------------------------------------------------------------
    async def lpush(self, key: str, *values: Any) -> int:
        return await self.redis.lpush(key, *values)

    async def rpush(self, key: str, *values: Any) -> int:
        return await self.redis.rpush(key, *values)

    async def lrange(self, key: str, start: int = 0, end: int = -1) -> list[str]:
        return await self.redis.lrange(key, start, end)

    async def ltrim(self, key: str, start: int, end: int) -> bool:
        return await self.redis.ltrim(key, start, end)

    async def llen(self, key: str) -> int:
        return await self.redis.llen(key)

    # -- sets ------------------------------------------------------------------------------------
    async def sadd(self, key: str, *members: Any) -> int:
        return await self.redis.sadd(key, *members)

    async def srem(self, key: str, *members: Any) -> int:
        return await self.redis.srem(key, *members)

    async def smembers(self, key: str) -> set[str]:
        return await self.redis.smembers(key)

    async def sismember(self, key: str, member: Any) -> bool:
        return bool(await self.redis.sismember(key, member))

    # -- sorted sets -----------------------------------------------------------------------------
    async def zadd(self, key: str, mapping: dict[str, float], **options: Any) -> int:
        return await self.redis.zadd(key, mapping, **options)

    async def zrange(self, key: str, start: int = 0, end: int = -1, withscores: bool = False) -> list:
        return await self.redis.zrange(key, start, end, withscores=withscores)

    async def zrangebyscore(self, key: str, low: float | str, high: float | str, **options: Any) -> list:
        return await self.redis.zrangebyscore(key, low, high, **options)

    async def zrem(self, key: str, *members: Any) -> int:
        return await self.redis.zrem(key, *members)

    async def zremrangebyscore(self, key: str, low: float | str, high: float | str) -> int:
        return await self.redis.zremrangebyscore(key, low, high)

    async def zcard(self, key: str) -> int:
        return await self.redis.zcard(key)

    # -- keyspace, server ------------------------------------------------------------------------
    def pipeline(self, transaction: bool = True):
        """A redis-py async pipeline (use ``async with``); errors are translated."""
        return self.redis.pipeline(transaction=transaction)

    async def scan(self, match: str | None = None, count: int = 1000) -> AsyncIterator[str]:
        """Iterate keys matching ``match`` with SCAN (never KEYS)."""
        async for key in self.redis.scan_iter(match=match, count=count):
            yield key

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """Server INFO; raises RedisError on the embedded default, which has no INFO."""
        return await self.redis.info(section) if section else await self.redis.info()

    async def slowlog_get(self, num: int | None = None) -> list:
        return await self.redis.slowlog_get(num)

    # -- JSON ------------------------------------------------------------------------------------
    @staticmethod
    def get_json(value: Any) -> str:
        """JSON text of ``value``, ready to store (the spec's name for serialising)."""
        return codec.dumps(value).decode()

    @staticmethod
    def parse_json(text: str | bytes | None) -> Any:
        """The value stored as JSON ``text``; ``None`` stays ``None``."""
        return codec.loads(text)

    async def set_json(self, key: str, value: Any, ex: int | None = None) -> bool:
        return await self.set(key, self.get_json(value), ex=ex)

    async def get_json_value(self, key: str) -> Any:
        return self.parse_json(await self.get(key))


redis_client = RedisClient()
