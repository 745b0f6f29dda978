"""The redis-py internals redtick relies on, in one place; tests/test_redis_internals.py checks each one exists.

redis-py has no public hook for what redtick needs below, so each need reaches one private or
undocumented part of it. An upgrade of redis-py that moves one of them fails that test, naming
the internal and the version, instead of silently losing a measurement or a retry:

- **Re-classing pipelines** (:func:`adopt`): pipelines are plain Python objects whose
  ``__class__`` may be set to a subclass of their own class. redis-py builds pipelines itself
  (``client.pipeline()``, and a cluster client's multi-key ``DELETE`` calls ``self.pipeline()``),
  so the only way to translate their errors and time them is to re-class each one it returns.
- **Queued commands** (:func:`queued_commands`): ``command_stack`` on the single-server
  pipelines (sync and asyncio); ``_execution_strategy._command_queue`` on the cluster pipelines
  (sync and asyncio), whose ``command_stack`` stays empty. Metrics count a pipeline's commands.
- **Transaction flags** (:func:`pipeline_kind`): ``transaction`` on the sync pipeline,
  ``is_transaction`` on the asyncio pipeline (its ``transaction`` is a helper method),
  ``_transaction`` on the asyncio cluster pipeline, and ``explicit_transaction`` (set by
  ``MULTI``) on both single-server pipelines. Metrics label a round trip ``MULTI`` or ``PIPELINE``.
- **Node discovery** (:func:`needs_discovery`): the asyncio ``RedisCluster``'s ``_initialize``
  flag, true until it has discovered the nodes, so one command discovers them while the others wait.
- **Connecting a socket** (:func:`starting_unix_connection`): ``_connect`` of the sync and asyncio
  ``UnixDomainSocketConnection``, the one step every new or re-made connection takes, where the
  local store's server is started when nothing answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import redis
import redis.asyncio
import redis.asyncio.connection

T = TypeVar("T")

__all__ = ["adopt", "needs_discovery", "pipeline_kind", "queued_commands", "starting_unix_connection", "with_mixin"]


_MIXED: dict[tuple[type, type], type] = {}


def with_mixin(base: type[T], mixin: type) -> type[T]:
    """``base`` with ``mixin`` in front of it in the MRO: one class per pair, made once.

    Examples
    --------
    >>> class Loud:
    ...     def ping(self):
    ...         return "PONG!"
    >>> with_mixin(redis.Redis, Loud)().ping(), with_mixin(redis.Redis, Loud) is with_mixin(redis.Redis, Loud)
    ('PONG!', True)
    """
    mixed = _MIXED.get((base, mixin))
    if mixed is None:  # two threads may race here; setdefault keeps the first class made
        mixed = _MIXED.setdefault((base, mixin), type(f"Redtick{base.__name__}", (mixin, base), {}))
    return mixed


def adopt(pipe: T, mixin: type) -> T:
    """Re-class the pipeline ``pipe``, which redis-py built, so that ``mixin`` wraps its methods.

    Examples
    --------
    >>> class Named:
    ...     pass
    >>> type(adopt(redis.Redis().pipeline(), Named)).__name__
    'RedtickPipeline'
    """
    pipe.__class__ = with_mixin(type(pipe), mixin)
    return pipe


def queued_commands(pipe: Any) -> list[Any]:
    """The commands a pipeline (sync or asyncio, single server or cluster) holds, in order.

    Examples
    --------
    >>> pipe = redis.Redis().pipeline()
    >>> len(queued_commands(pipe.set("a", 1).get("a")))
    2
    """
    strategy = getattr(pipe, "_execution_strategy", None)
    stack = getattr(strategy, "_command_queue", None) if strategy is not None else None
    if stack is None:
        stack = getattr(pipe, "command_stack", None)
    return list(stack) if stack else []


def pipeline_kind(pipe: Any) -> Literal["MULTI", "PIPELINE"]:
    """``"MULTI"`` for a pipeline that runs as a transaction, else ``"PIPELINE"``.

    Examples
    --------
    >>> pipeline_kind(redis.Redis().pipeline()), pipeline_kind(redis.Redis().pipeline(transaction=False))
    ('MULTI', 'PIPELINE')
    """
    transaction = getattr(pipe, "is_transaction", None)
    if transaction is None:
        transaction = getattr(pipe, "_transaction", None)
    if transaction is None:
        transaction = getattr(pipe, "transaction", False)
    return "MULTI" if transaction is True or getattr(pipe, "explicit_transaction", False) else "PIPELINE"


def needs_discovery(client: redis.asyncio.RedisCluster) -> bool:
    """True until the asyncio cluster client has discovered the cluster's nodes.

    Examples
    --------
    >>> needs_discovery(redis.asyncio.RedisCluster(host="127.0.0.1", port=7000))
    True
    """
    return bool(client._initialize)


class _StartingConnection(redis.connection.UnixDomainSocketConnection):
    start_server: Callable[[], object]

    def _connect(self) -> Any:
        try:
            return super()._connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        except (FileNotFoundError, ConnectionRefusedError):
            self.start_server()
            return super()._connect()  # type: ignore[no-untyped-call]  # as above


class _AsyncStartingConnection(redis.asyncio.connection.UnixDomainSocketConnection):
    start_server: Callable[[], object]

    async def _connect(self) -> None:
        try:
            await super()._connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        except (FileNotFoundError, ConnectionRefusedError):
            await asyncio.to_thread(self.start_server)
            await super()._connect()  # type: ignore[no-untyped-call]  # as above


def starting_unix_connection(start_server: Callable[[], object], *, asynchronous: bool) -> type:
    """A unix-socket connection class that calls ``start_server()`` when nothing answers the socket.

    Every new connection (the first, or a reconnect after the server stopped or was killed)
    makes sure the server runs, so a long-lived notebook kernel survives the server's restart.

    Examples
    --------
    >>> cls = starting_unix_connection(lambda: None, asynchronous=False)
    >>> issubclass(cls, redis.connection.UnixDomainSocketConnection)
    True
    """
    base = _AsyncStartingConnection if asynchronous else _StartingConnection
    return type(base.__name__, (base,), {"start_server": staticmethod(start_server)})
