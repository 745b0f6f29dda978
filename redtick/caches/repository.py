"""``cached_repository``: a class decorator that caches a repository's reads and invalidates on writes.

How a write can never be followed by a stale read: every cached read is stored under the
repository's current *generation*, a random token in Redis. A write replaces the token before
it touches the database and again after, so a read that started before the write (and may
carry the old row) is stored under a generation nobody asks for any more. Entries of old
generations are never read again and expire with their TTL.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import hashlib
import inspect
import logging
import secrets
import types
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redtick import codec
from redtick.caches.base import CacheFront, check_ttl, unlink_matching
from redtick.connection import Connection
from redtick.errors import InvalidData, RedisError
from redtick.keys import validate_name

__all__ = ["RepositoryCache", "cached_repository"]

log = logging.getLogger("redtick.repository")

DEFAULT_WRITES = ("create", "update", "delete")
_FIRST_GENERATION = "0"

Call = Callable[[], Awaitable[Any]]
"""The repository's own method, bound to its arguments: what a cache miss or a write runs."""


def _rebuild(value: Any, annotation: Any) -> Any:
    """Turn decoded JSON back into the type a method's return annotation names."""
    if value is None or annotation is None or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _rebuild(value, options[0]) if len(options) == 1 else value
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable):
        args = typing.get_args(annotation)
        rebuilt = [_rebuild(v, args[0] if args else None) for v in value]
        return origin(rebuilt) if origin in (tuple, set, frozenset) else rebuilt
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return annotation(**value)
    if hasattr(annotation, "model_validate"):  # pydantic models
        return annotation.model_validate(value)
    return value


class RepositoryCache(CacheFront):
    """Redis side of one cached repository: generation, reads, invalidation, hit counts.

    Cached reads are JSON through the cache's :attr:`codec`, under keys only this class builds.

    Parameters
    ----------
    cache_prefix : str
        Keys live under ``<namespace>:repo:<cache_prefix>:``.
    default_ttl : int
        Seconds a cached read lives.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    """

    metrics_name = "repository"

    def __init__(self, cache_prefix: str, default_ttl: int = 300, conn: Connection | None = None):
        self.prefix = validate_name(cache_prefix, "repository cache prefix")
        self.ttl = check_ttl(default_ttl, name="default_ttl")
        self._conn = conn
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"RepositoryCache(prefix={self.prefix!r}, ttl={self.ttl})"

    async def generation(self) -> str:
        """The repository's current generation token: the one cached reads are stored under."""
        raw: bytes | None = await self.redis.get(self.keys.repository_generation(self.prefix))
        return raw.decode() if raw else _FIRST_GENERATION

    async def new_generation(self) -> None:
        """Make every read cached so far unreachable (one SET, whatever the number of entries)."""
        await self.redis.set(self.keys.repository_generation(self.prefix), secrets.token_hex(8))

    async def read(
        self, name: str, annotation: Any, call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], *, use_cache: bool
    ) -> Any:
        """``call()``'s result, from the cache when it holds it (and ``use_cache``), else stored."""
        try:
            digest = hashlib.sha256(codec.dumps([name, list(args), sorted(kwargs.items())])).hexdigest()
        except InvalidData:
            return await call()  # arguments JSON cannot carry: no stable key, so no caching
        try:
            # Read before the database is asked: a write in between moves the generation on,
            # and what this read stores becomes unreachable instead of stale.
            key = self.keys.repository(self.prefix, name, await self.generation(), digest)
            raw = await self.redis.get(key) if use_cache else None
        except RedisError as exc:
            log.warning("repository cache %r unavailable (%s); reading from the database", self.prefix,
                        type(exc).__name__)
            return await call()
        if raw is not None:
            self.hits += 1
            self.counters.read(self.prefix, True)
            return _rebuild(self.codec.decode(raw), annotation)
        self.misses += 1
        if use_cache:
            self.counters.read(self.prefix, False)
        result = await call()
        await self._store(key, result, annotation)
        return result

    async def _store(self, key: str, result: Any, annotation: Any) -> None:
        try:
            data = self.codec.encode(result)
        except InvalidData:
            return
        # Only what comes back equal is cached, so a hit returns what the database would have.
        if _rebuild(self.codec.decode(data), annotation) != result:
            log.debug("repository cache %r: %s does not round-trip through JSON; not cached", self.prefix,
                      type(result).__name__)
            return
        try:
            await self.redis.set(key, data, ex=self.ttl)
        except RedisError as exc:
            log.warning("repository cache %r: storing a read failed (%s)", self.prefix, type(exc).__name__)
        else:
            self.counters.write(self.prefix)

    async def write(self, call: Call) -> Any:
        """Run a database write between two generation changes.

        If Redis cannot be reached the write is refused (Unavailable) before the database is
        touched: a write the cache could not invalidate would leave stale reads behind.
        """
        await self.new_generation()
        try:
            return await call()
        finally:
            try:
                await self.new_generation()
            except RedisError as exc:
                log.error("repository cache %r: invalidation after a write failed (%s); reads cached "
                          "while it ran may be stale for up to %ss", self.prefix, type(exc).__name__, self.ttl)

    async def invalidate(self, pattern: str = "*") -> int:
        """Delete cached reads whose ``<method>:...`` part matches ``pattern``; returns how many."""
        return await unlink_matching(self.redis, self.keys.pattern("repo", self.prefix, tail=pattern))


def _wrap_read(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    try:
        annotation = typing.get_type_hints(method).get("return")
    except (NameError, TypeError):  # an annotation that does not resolve: results stay JSON
        annotation = None

    @functools.wraps(method)
    async def read(self: Any, *args: Any, use_cache: bool = True, **kwargs: Any) -> Any:
        return await self.repository_cache.read(
            name, annotation, lambda: method(self, *args, **kwargs), args, kwargs, use_cache=use_cache
        )

    return read


def _wrap_write(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.repository_cache.write(lambda: method(self, *args, **kwargs))

    return write


async def _invalidate_cache(self: Any, pattern: str = "*") -> int:
    """Delete this repository's cached reads matching ``pattern`` (such as ``"get_by_id*"``)."""
    deleted: int = await self.repository_cache.invalidate(pattern)
    return deleted


def cached_repository(
    cache_prefix: str,
    default_ttl: int = 300,
    *,
    writes: Iterable[str] = DEFAULT_WRITES,
    conn: Connection | None = None,
) -> Callable[[type], type]:
    """Cache a repository class's ``get_*`` reads in Redis and invalidate them on writes.

    Every async ``get_*`` method gains a ``use_cache=True`` keyword: ``False`` reads the
    database and stores the fresh result. The ``writes`` methods (``create``, ``update``,
    ``delete``) invalidate every cached read of the repository, since any of them may change
    what any query returns. ``invalidate_cache(pattern)`` deletes cached reads by method-name
    pattern, only under this repository's prefix. Results are cached as JSON and rebuilt into
    the method's return annotation (dataclasses, pydantic models, lists and optionals of them);
    a result that would not come back equal is not cached.

    Parameters
    ----------
    cache_prefix : str
        Names the repository's keys, ``<namespace>:repo:<cache_prefix>:...``.
    default_ttl : int
        Seconds a cached read lives.
    writes : iterable of str
        Names of the methods that change data.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.

    Examples
    --------
    >>> class UserRepository:
    ...     async def get_by_id(self, user_id: int) -> dict | None:
    ...         return {"id": user_id}
    ...     async def update(self, user: dict) -> dict:
    ...         return user
    >>> @cached_repository(cache_prefix="user", default_ttl=600)
    ... class CachedUserRepository(UserRepository):
    ...     pass
    >>> import asyncio
    >>> asyncio.run(CachedUserRepository().get_by_id(7, use_cache=True))
    {'id': 7}
    """
    cache_prefix = validate_name(cache_prefix, "repository cache prefix")
    check_ttl(default_ttl, name="default_ttl")
    writes = tuple(writes)

    def decorate(cls: type) -> type:
        for name in dir(cls):
            if not (name.startswith("get_") or name in writes):
                continue
            method = getattr(cls, name)
            if not inspect.iscoroutinefunction(method):
                raise TypeError(f"cached_repository needs async methods; {cls.__name__}.{name} is not async")
            setattr(cls, name, _wrap_read(name, method) if name.startswith("get_") else _wrap_write(method))
        decorated: Any = cls  # the class gains attributes its own definition does not declare
        decorated.repository_cache = RepositoryCache(cache_prefix, default_ttl, conn)
        decorated.invalidate_cache = _invalidate_cache
        return cls

    return decorate
