"""What caches share: ``CacheFront`` (client, counters, value codec), ``BaseCache``'s key-value API, ``EncryptedCache``."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeAlias

import redis.asyncio
from cryptography.fernet import Fernet

from redtick import checks, scripts
from redtick.codec import ValueCodec, make_fernet
from redtick.connection import Connection, UsesConnection
from redtick.keys import KeySchema, validate_name
from redtick.metrics import CacheCounters
from redtick.steps import Script

__all__ = ["BaseCache", "CacheFront", "EncryptedCache", "check_ttl", "commit_in_phases", "unlink_matching"]

_CLUSTER_CONCURRENT_COMMITS = 8  # per phase; well inside the per-node pool
_UNLINK_BATCH = 500  # keys per UNLINK: big enough to be few round trips, small enough not to stall Redis
_PLAIN_JSON = ValueCodec()

Group: TypeAlias = Callable[[Any], Any] | Script
"""One transactional group of :func:`commit_in_phases`: a function queueing commands on a pipeline, or a script."""


def check_ttl(ttl: Any, *, name: str = "ttl") -> int:
    """``ttl`` as whole seconds (rounded up) if it is a positive number, else InvalidData.

    Examples
    --------
    >>> check_ttl(30), check_ttl(0.2)
    (30, 1)
    >>> check_ttl(True)
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: ttl=True: expected a positive number of seconds
    """
    return max(1, math.ceil(checks.number(ttl, name, above=0, expected="a positive number of seconds")))


async def unlink_matching(client: redis.asyncio.Redis | redis.asyncio.RedisCluster, pattern: str) -> int:
    """UNLINK every key SCAN finds for ``pattern``, in batches; returns how many were deleted.

    The one SCAN-and-delete loop: a cache's ``clear``, a repository's invalidation and the
    service's ``clear_all_cache`` all go through it. ``pattern`` comes from
    :meth:`~redtick.keys.KeySchema.pattern` or ``everything()``, so it never reaches outside them.

    Examples
    --------
    >>> import asyncio
    >>> from redtick.connection import connect
    >>> async def demo():
    ...     client = connect().async_client()
    ...     await client.set("redtick:unlink-example:a", 1)
    ...     await client.set("redtick:unlink-example:b", 1)
    ...     return await unlink_matching(client, "redtick:unlink-example:*")
    >>> asyncio.run(demo())
    2
    """
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= _UNLINK_BATCH:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


async def commit_in_phases(conn: Connection, phases: Sequence[Sequence[Group]]) -> list[list[Any]]:
    """Run groups of commands transactionally; the replies of each group, in order.

    Each group is a function that queues commands on a pipeline and must touch keys of one
    cluster slot, or a :class:`~redtick.steps.Script` (its reply is a one-item list). On one
    server every group of every phase goes into a single MULTI/EXEC. On Redis Cluster, where
    one MULTI cannot span slots, each function group is its own MULTI/EXEC and each script
    its own EVALSHA (redis-py refuses scripts in cluster pipelines; a script is atomic
    anyway): the groups of a phase run concurrently, and a phase starts only once the one
    before it succeeded. A caller orders its phases so that stopping after any of them leaves
    nothing a reader could misread.
    """
    client = conn.async_client()
    if conn.settings.topology == "cluster":
        return await _commit_on_cluster(client, phases)
    groups = [group for phase in phases for group in phase]
    sizes = []
    async with client.pipeline(transaction=True) as pipe:
        for group in groups:
            before = len(pipe)
            if isinstance(group, Script):
                await scripts.bound(client, group.name)(keys=group.keys, args=group.args, client=pipe)
            else:
                group(pipe)
            sizes.append(len(pipe) - before)
        replies = await pipe.execute()
    out, at = [], 0
    for size in sizes:
        out.append(replies[at : at + size])
        at += size
    return out


async def _commit_on_cluster(client: Any, phases: Sequence[Sequence[Group]]) -> list[list[Any]]:
    """:func:`commit_in_phases` on Redis Cluster: one MULTI or EVALSHA per group, a phase's groups at once."""
    limit = asyncio.Semaphore(_CLUSTER_CONCURRENT_COMMITS)

    async def commit(group: Group) -> list[Any]:
        async with limit:
            if isinstance(group, Script):
                return [await scripts.bound(client, group.name)(keys=group.keys, args=group.args)]
            async with client.pipeline(transaction=True) as pipe:
                group(pipe)
                return list(await pipe.execute())

    out: list[list[Any]] = []
    for phase in phases:
        out += await asyncio.gather(*(commit(group) for group in phase))
    return out


class CacheFront(UsesConnection):
    """What every redtick cache holds: its connection's async client and key schema, the counters
    its :attr:`metrics_name` labels, and the :class:`~redtick.codec.ValueCodec` its values go through.

    It has no key-value API of its own: a cache built on it writes only the keys of its own
    layout, through its own methods.
    """

    metrics_name: ClassVar[str | None] = None
    """The ``cache`` label of this cache's counters (:mod:`redtick.metrics`), the name
    :meth:`KeySchema.describe <redtick.keys.KeySchema.describe>` gives the keys it owns."""

    _codec: ValueCodec = _PLAIN_JSON

    @property
    def redis(self) -> Any:
        """The async redis-py client (bytes replies) of the running event loop.

        Typed ``Any``: it is a ``Redis`` or a ``RedisCluster``, and redis-py types every reply as
        the union of all reply shapes, so each caller states the shape it reads.
        """
        return self.conn.async_client()

    @property
    def keys(self) -> KeySchema:
        return self.conn.keys

    @property
    def codec(self) -> ValueCodec:
        """How values become stored bytes and back (JSON, encrypted when the cache has a key)."""
        return self._codec

    @property
    def counters(self) -> CacheCounters:
        """This cache's hit, miss and write counters on its connection's metrics."""
        return self.conn.metrics.cache(self.metrics_name or "other")


class BaseCache(CacheFront):
    """A family of JSON values under ``<namespace>:<prefix>:`` with a default TTL.

    Values go through the cache's :attr:`codec` (JSON). Subclasses may override
    :meth:`_serialize` / :meth:`_deserialize` (text in, text out) to change how values are stored,
    as the platform doc's encryption recipe does, or hold an encrypting codec, as
    :class:`EncryptedCache` does.

    Parameters
    ----------
    prefix : str
        The family name, such as ``"market_data"``.
    default_ttl : int, optional
        Seconds a value lives unless a call says otherwise; ``None`` keeps values until deleted.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.

    Examples
    --------
    >>> import asyncio
    >>> cache = BaseCache("example", default_ttl=60)
    >>> async def demo():
    ...     await cache.set("greeting", {"text": "hi"})
    ...     return await cache.get("greeting")
    >>> asyncio.run(demo())
    {'text': 'hi'}
    """

    def __init__(self, prefix: str, default_ttl: int | None = 300, conn: Connection | None = None):
        self.prefix = validate_name(prefix, "cache prefix")
        self.default_ttl = None if default_ttl is None else check_ttl(default_ttl, name="default_ttl")
        self._conn = conn

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self.prefix!r}, default_ttl={self.default_ttl})"

    @property
    def counters(self) -> CacheCounters:
        """This cache's counters, labelled :attr:`metrics_name`, or the prefix when that is None."""
        return self.conn.metrics.cache(self.metrics_name or self.prefix)

    def _key(self, key: str) -> str:
        return self.keys.key(self.prefix, key)

    def _ttl(self, ttl: int | None) -> int | None:
        return self.default_ttl if ttl is None else check_ttl(ttl)

    # -- serialise hooks -------------------------------------------------------------------------
    def _serialize(self, value: Any) -> str:
        """Text stored for ``value``: what the cache's :attr:`codec` makes of it (JSON, or its ciphertext)."""
        return self.codec.encode(value).decode()

    def _deserialize(self, value: str) -> Any:
        """The value stored as ``value`` text."""
        return self.codec.decode(value.encode())

    def _encode(self, value: Any) -> bytes:
        return self._serialize(value).encode()

    def _decode(self, raw: bytes | str | None) -> Any:
        if raw is None:
            return None
        return self._deserialize(raw.decode() if isinstance(raw, bytes) else raw)

    # -- single values ---------------------------------------------------------------------------
    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` if absent or expired."""
        raw = await self.redis.get(self._key(key))
        self.counters.read(self.prefix, raw is not None)
        return default if raw is None else self._decode(raw)

    async def set(self, key: str, value: Any, ttl: int | None = None) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's)."""
        data = self._encode(value)
        stored = bool(await self.redis.set(self._key(key), data, ex=self._ttl(ttl)))
        self.counters.write(self.prefix)
        return stored

    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""
        if not keys:
            return 0
        return int(await self.redis.delete(*(self._key(k) for k in keys)))

    async def exists(self, key: str) -> bool:
        return bool(await self.redis.exists(self._key(key)))

    async def ttl(self, key: str) -> int:
        """Seconds left; -1 without TTL, -2 if absent."""
        return int(await self.redis.ttl(self._key(key)))

    # -- batches (one round trip each) -----------------------------------------------------------
    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """``{key: value}`` for the keys present, read with one MGET."""
        keys = list(keys)
        if not keys:
            return {}
        names = [self._key(k) for k in keys]
        # Keys of a cache hash to many slots; on a cluster redis-py splits the MGET per slot.
        cluster = self.conn.settings.topology == "cluster"
        raws = await (self.redis.mget_nonatomic(names) if cluster else self.redis.mget(names))
        found = {k: self._decode(raw) for k, raw in zip(keys, raws, strict=True) if raw is not None}
        self.counters.reads(self.prefix, hits=len(found), misses=len(keys) - len(found))
        return found

    async def set_many(self, items: Mapping[str, Any], ttl: int | None = None) -> int:
        """Store every item with one pipelined round trip; all are encoded before any is sent."""
        seconds = self._ttl(ttl)
        encoded = [(self._key(k), self._encode(v)) for k, v in items.items()]
        if not encoded:
            return 0
        # One server: one MULTI, all or none. A cluster cannot run a MULTI over many slots, so
        # there each SET is atomic on its own and the pipeline is sent to every node at once.
        cluster = self.conn.settings.topology == "cluster"
        async with self.redis.pipeline(transaction=not cluster) as pipe:
            for key, data in encoded:
                pipe.set(key, data, ex=seconds)
            await pipe.execute()
        self.counters.write(self.prefix, len(encoded))
        return len(encoded)

    # -- housekeeping ----------------------------------------------------------------------------
    async def scan_keys(self, match: str = "*") -> AsyncIterator[bytes]:
        """Iterate this cache's keys (full names) with SCAN."""
        pattern = self.keys.pattern(self.prefix, tail=match)
        async for key in self.redis.scan_iter(match=pattern, count=1000):
            yield key

    async def count_keys(self) -> int:
        """How many keys this cache holds, counted with SCAN."""
        return sum([1 async for _ in self.scan_keys()])

    async def clear(self) -> int:
        """Delete every key of this cache; returns how many."""
        return await unlink_matching(self.redis, self.keys.pattern(self.prefix))


class EncryptedCache(BaseCache):
    """A :class:`BaseCache` whose values are Fernet-encrypted at rest.

    The key comes from ``encryption_key`` or the ``REDTICK_ENCRYPTION_KEY`` setting.
    """

    def __init__(
        self,
        prefix: str = "encrypted",
        default_ttl: int | None = 300,
        conn: Connection | None = None,
        encryption_key: str | bytes | None = None,
    ):
        super().__init__(prefix, default_ttl, conn)
        self._fernet = make_fernet(encryption_key or self.conn.settings.encryption_key)
        self._codec = ValueCodec(self._fernet)

    @property
    def fernet(self) -> Fernet:
        """The ``cryptography`` Fernet that encrypts this cache's values."""
        return self._fernet
