"""``RedisClient``: the platform's async Redis wrapper, with JSON helpers; ``redis_client`` is the default."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redtick import codec
from redtick.connection import Connection, UsesConnection
from redtick.errors import RedisError
from redtick.server_info import merge_node_info

__all__ = ["RedisClient", "redis_client"]

_SLOWLOG_DEFAULT = 10  # what SLOWLOG GET returns without a count


def _decoded(entry: dict[str, Any]) -> dict[str, Any]:
    # redis-py leaves a slow log entry's text as bytes even on a decoding client; a logged command
    # may carry binary values, so undecodable bytes are escaped rather than raising.
    return {k: v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v for k, v in entry.items()}


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
    def redis(self) -> Any:
        """The underlying redis-py async client of the running event loop."""
        return self.conn.async_client(decode=True)

    def __getattr__(self, name: str) -> Any:
        if name == "_connection_pool":
            # The platform's doc reads the pool size here; redtick's pools stay private (one per
            # event loop, and one per node on a cluster), so say where the number is instead.
            raise AttributeError("RedisClient keeps its connection pools private (one per event loop, one per node "
                                 "on Redis Cluster); the pool size is redis_client.conn.settings.max_connections "
                                 "(REDIS_MAX_CONNECTIONS)")
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
        reply: str | None = await self.redis.get(key)
        return reply

    async def set(self, key: str, value: Any, ex: int | None = None, nx: bool = False) -> bool:
        """Set ``key``; ``ex`` is a TTL in seconds, ``nx`` sets only if absent."""
        return bool(await self.redis.set(key, value, ex=ex, nx=nx))

    async def delete(self, *keys: str) -> int:
        return int(await self.redis.delete(*keys) if keys else 0)

    async def exists(self, *keys: str) -> int:
        return int(await self.redis.exists(*keys) if keys else 0)

    async def expire(self, key: str, seconds: int) -> bool:
        return bool(await self.redis.expire(key, seconds))

    async def ttl(self, key: str) -> int:
        """Seconds to live; -1 without TTL, -2 if the key does not exist."""
        return int(await self.redis.ttl(key))

    # -- hashes ----------------------------------------------------------------------------------
    async def hset(self, key: str, field: str | None = None, value: Any = None, mapping: dict[str, Any] | None = None) -> int:
        return int(await self.redis.hset(key, field, value, mapping=mapping))

    async def hget(self, key: str, field: str) -> str | None:
        reply: str | None = await self.redis.hget(key, field)
        return reply

    async def hgetall(self, key: str) -> dict[str, str]:
        reply: dict[str, str] = await self.redis.hgetall(key)
        return reply

    async def hdel(self, key: str, *fields: str) -> int:
        return int(await self.redis.hdel(key, *fields))

    # -- lists -----------------------------------------------------------------------------------
    async def lpush(self, key: str, *values: Any) -> int:
        return int(await self.redis.lpush(key, *values))

    async def rpush(self, key: str, *values: Any) -> int:
        return int(await self.redis.rpush(key, *values))

    async def lrange(self, key: str, start: int = 0, end: int = -1) -> list[str]:
        reply: list[str] = await self.redis.lrange(key, start, end)
        return reply

    async def ltrim(self, key: str, start: int, end: int) -> bool:
        return bool(await self.redis.ltrim(key, start, end))

    async def llen(self, key: str) -> int:
        return int(await self.redis.llen(key))

    # -- sets ------------------------------------------------------------------------------------
    async def sadd(self, key: str, *members: Any) -> int:
        return int(await self.redis.sadd(key, *members))

    async def srem(self, key: str, *members: Any) -> int:
        return int(await self.redis.srem(key, *members))

    async def smembers(self, key: str) -> builtins.set[str]:
        reply: builtins.set[str] = await self.redis.smembers(key)
        return reply

    async def sismember(self, key: str, member: Any) -> bool:
        return bool(await self.redis.sismember(key, member))

    # -- sorted sets -----------------------------------------------------------------------------
    async def zadd(self, key: str, mapping: dict[str, float], **options: Any) -> int:
        return int(await self.redis.zadd(key, mapping, **options))

    async def zrange(self, key: str, start: int = 0, end: int = -1, withscores: bool = False) -> list[Any]:
        reply: list[Any] = await self.redis.zrange(key, start, end, withscores=withscores)
        return reply

    async def zrangebyscore(self, key: str, low: float | str, high: float | str, **options: Any) -> list[Any]:
        reply: list[Any] = await self.redis.zrangebyscore(key, low, high, **options)
        return reply

    async def zrem(self, key: str, *members: Any) -> int:
        return int(await self.redis.zrem(key, *members))

    async def zremrangebyscore(self, key: str, low: float | str, high: float | str) -> int:
        return int(await self.redis.zremrangebyscore(key, low, high))

    async def zcard(self, key: str) -> int:
        return int(await self.redis.zcard(key))

    # -- keyspace, server ------------------------------------------------------------------------
    def pipeline(self, transaction: bool = True) -> Any:
        """A redis-py async pipeline (use ``async with``); errors are translated."""
        return self.redis.pipeline(transaction=transaction)

    async def scan(self, match: str | None = None, count: int = 1000) -> AsyncIterator[str]:
        """Iterate keys matching ``match`` with SCAN (never KEYS)."""
        async for key in self.redis.scan_iter(match=match, count=count):
            yield key

    def _refuse_in_memory(self, command: str) -> None:
        # fakeredis answers "unknown command"; an estimate would be invented numbers, so say why instead.
        if self.conn.in_memory:
            raise RedisError(f"memory:// (the in-process fakeredis) has no {command}: it keeps no server statistics; "
                             f"connect to a Redis server (REDIS_URL=redis://host:6379/0) to read {command}")

    async def info(self, section: str | None = None) -> dict[str, Any]:
        """The server's INFO, as redis-py parses it (``used_memory``, ``maxmemory``, ...).

        On Redis Cluster it is the whole INFO of every master, merged: memory, clients and
        keyspace counters summed, ``maxmemory`` the sum when every master has one (else 0),
        and ``fullest_master_percent`` the highest share of its own ``maxmemory`` any master
        uses; ``section`` is then ignored, since one section cannot be merged without the rest.

        Parameters
        ----------
        section : str, optional
            One INFO section, such as ``"memory"``; all of them by default.

        Raises
        ------
        RedisError
            On ``memory://``: the in-process fakeredis has no INFO, and redtick does not make
            numbers up.

        Examples
        --------
        >>> import asyncio
        >>> info = asyncio.run(RedisClient().info())  # the local store: a real redis-server
        >>> info["used_memory"] > 0, "maxmemory" in info
        (True, True)
        """
        self._refuse_in_memory("INFO")
        if self.conn.settings.topology == "cluster":
            return merge_node_info(await self._per_master(lambda node: self.redis.info(target_nodes=node)))
        reply: dict[str, Any] = await self.redis.info(section) if section else await self.redis.info()
        return reply

    async def slowlog_get(self, num: int | None = None) -> list[dict[str, Any]]:
        """The server's slow log, newest first: dicts of ``id``, ``start_time``, ``duration`` (µs), ``command``...

        ``command``, ``client_address`` and ``client_name`` are ``str``, as every reply of this
        client; bytes that are not UTF-8 (a binary value in a logged command) appear as ``\\x..``
        escapes. On Redis Cluster the entries of every master are merged, newest first, each with
        the ``node`` (``host:port``) that logged it, and ``num`` applies to the merged list.

        Parameters
        ----------
        num : int, optional
            At most this many entries; the server's default (10) if omitted.

        Raises
        ------
        RedisError
            On ``memory://``: the in-process fakeredis has no SLOWLOG.

        Examples
        --------
        >>> import asyncio
        >>> isinstance(asyncio.run(RedisClient().slowlog_get(10)), list)
        True
        """
        self._refuse_in_memory("SLOWLOG")
        if self.conn.settings.topology != "cluster":
            return [_decoded(entry) for entry in await self.redis.slowlog_get(num)]
        count = _SLOWLOG_DEFAULT if num is None else num
        per_node = await self._per_master(lambda node: self.redis.slowlog_get(count, target_nodes=node))
        merged = [{**_decoded(entry), "node": node} for node, entries in per_node.items() for entry in entries]
        merged.sort(key=lambda entry: (entry["start_time"], entry["id"]), reverse=True)
        return merged if count < 0 else merged[:count]  # a negative count asks for every entry, as SLOWLOG GET -1

    async def _per_master(self, ask: Callable[[Any], Awaitable[Any]]) -> dict[str, Any]:
        """``{node name: reply}`` of ``ask(node)`` on every master of a cluster, one call per node.

        One call per node rather than ``target_nodes=PRIMARIES``: redis-py answers that with a bare
        reply, not a mapping, when the cluster has a single master.
        """
        await self.redis.initialize()  # the node list is empty until the client first connects
        masters = self.redis.get_primaries()
        replies = await asyncio.gather(*(ask(node) for node in masters))
        return {node.name: reply for node, reply in zip(masters, replies, strict=True)}

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
