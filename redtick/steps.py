"""Redis work written once as a plan, run by a sync or an async driver.

A plan is a generator that yields steps and receives their replies; it never does I/O itself,
so the sync research functions and the async caches share every line of logic:

- :class:`Batch`: commands sent together in one pipelined round trip; the reply is their list.
- :class:`Watch`: start an optimistic transaction on these keys (``WATCH``); more may follow.
- :class:`Commit`: ``MULTI`` ... ``EXEC`` of these commands. After a :class:`Watch`, a concurrent
  change of a watched key aborts it and the driver runs the whole plan again from a fresh start.
- :class:`Script`: one call of a package Lua script (EVALSHA, reloaded when the server lost it).

A plan's return value is the driver's result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Generator
from typing import Any, TypeAlias, TypeVar

import redis

from redtick.errors import ConflictError
from redtick.scripts import bound

__all__ = ["Batch", "Command", "Commit", "Plan", "Script", "Step", "Watch", "gather", "riding", "run", "run_async"]

MAX_ATTEMPTS = 64

Command: TypeAlias = tuple[Any, ...]
"""One Redis command as redis-py's ``execute_command`` takes it: its name, then its arguments."""


@dataclasses.dataclass(frozen=True)
class Batch:
    commands: list[Command]


@dataclasses.dataclass(frozen=True)
class Watch:
    keys: list[str]


@dataclasses.dataclass(frozen=True)
class Commit:
    commands: list[Command]


@dataclasses.dataclass(frozen=True)
class Script:
    name: str
    keys: list[str]
    args: list[Any]


Step: TypeAlias = Batch | Watch | Commit | Script
T = TypeVar("T")
Plan: TypeAlias = Generator[Step, Any, T]
"""A plan returning ``T``: it yields steps and receives each step's reply (a list, or None for a Watch)."""


def _backoff(attempt: int) -> float:
    # Jittered, so writers that collided once do not collide again in lock step.
    return float(min(0.05, 0.0005 * 2**attempt) * random.random())


def _release(watcher: Any) -> None:
    """UNWATCH and give the connection back; a connection that fails at it is dropped, not leaked.

    redis-py's sync ``Pipeline.reset`` swallows a ConnectionError but not a TimeoutError (a
    server stalled past the socket timeout), and then keeps the connection out of the pool.
    """
    try:
        watcher.reset()
    except redis.exceptions.RedisError:
        if watcher.connection is not None:
            watcher.connection.disconnect()  # a new connection never carries the old WATCH
        watcher.watching = False
        watcher.reset()


async def _release_async(watcher: Any) -> None:
    try:
        await watcher.reset()  # always returns the connection to the pool, even when it raises
    except redis.exceptions.RedisError:
        if watcher.connection is not None:
            await watcher.connection.disconnect()


def _queued(pipe: Any, commands: list[Command]) -> Any:
    """``pipe`` with ``commands`` queued on it."""
    for command in commands:
        pipe.execute_command(*command)
    return pipe


def run(client: Any, make_plan: Callable[[], Plan[T]]) -> T:
    """Run a plan with a sync redis-py client; retried from the start when a watched key changed."""
    for attempt in range(MAX_ATTEMPTS):
        plan = make_plan()
        watcher = None
        reply: Any = None
        try:
            while True:
                step = plan.send(reply)
                if isinstance(step, Batch):
                    reply = _queued(client.pipeline(transaction=False), step.commands).execute() if step.commands else []
                elif isinstance(step, Watch):
                    watcher = watcher if watcher is not None else client.pipeline(transaction=True)
                    watcher.watch(*step.keys)
                    reply = None
                elif isinstance(step, Commit):
                    pipe = watcher if watcher is not None else client.pipeline(transaction=True)
                    pipe.multi()
                    reply = _queued(pipe, step.commands).execute() if step.commands else []
                    watcher = None
                elif isinstance(step, Script):
                    reply = bound(client, step.name)(keys=step.keys, args=step.args)
                else:
                    raise TypeError(f"unknown plan step {step!r}")
        except StopIteration as stop:
            returned: T = stop.value
            return returned
        except ConflictError:
            time.sleep(_backoff(attempt))
        finally:
            if watcher is not None:
                _release(watcher)
    raise ConflictError(f"gave up after {MAX_ATTEMPTS} attempts: other writers kept changing the same keys")


async def run_async(client: Any, make_plan: Callable[[], Plan[T]]) -> T:
    """Run a plan with an async redis-py client; the same rules as :func:`run`."""
    for attempt in range(MAX_ATTEMPTS):
        plan = make_plan()
        watcher = None
        reply: Any = None
        try:
            while True:
                step = plan.send(reply)
                if isinstance(step, Batch):
                    reply = await _queued(client.pipeline(transaction=False), step.commands).execute() if step.commands else []
                elif isinstance(step, Watch):
                    # Awaiting the pipeline initialises an async cluster client first: redis-py's
                    # cluster WATCH or MULTI on a client that never sent a command fails.
                    watcher = watcher if watcher is not None else await client.pipeline(transaction=True)
                    await watcher.watch(*step.keys)
                    reply = None
                elif isinstance(step, Commit):
                    pipe = watcher if watcher is not None else await client.pipeline(transaction=True)
                    pipe.multi()
                    reply = await _queued(pipe, step.commands).execute() if step.commands else []
                    watcher = None
                elif isinstance(step, Script):
                    reply = await bound(client, step.name)(keys=step.keys, args=step.args)
                else:
                    raise TypeError(f"unknown plan step {step!r}")
        except StopIteration as stop:
            returned: T = stop.value
            return returned
        except ConflictError:
            await asyncio.sleep(_backoff(attempt))
        finally:
            if watcher is not None:
                await _release_async(watcher)
    raise ConflictError(f"gave up after {MAX_ATTEMPTS} attempts: other writers kept changing the same keys")


def gather(*plans: Plan[T]) -> Plan[list[T]]:
    """One plan running several read-only plans in lock step: their batches share each round trip.

    Every plan must yield only :class:`Batch` steps. Returns the list of their results.
    """
    results: list[Any] = [None] * len(plans)  # each filled with its plan's T before it is returned
    replies: list[Any] = [None] * len(plans)
    live = list(range(len(plans)))
    while live:
        pending: list[tuple[int, Batch]] = []
        for i in live:
            try:
                step = plans[i].send(replies[i])
            except StopIteration as stop:
                results[i] = stop.value
                continue
            if not isinstance(step, Batch):
                raise TypeError("gather() runs read-only plans, which yield only Batch steps")
            pending.append((i, step))
        if not pending:
            break
        merged = yield Batch([command for _, step in pending for command in step.commands])
        at = 0
        for i, step in pending:
            replies[i] = merged[at : at + len(step.commands)]
            at += len(step.commands)
        live = [i for i, _ in pending]
    return results


def riding(plan: Plan[T], command: Command, receive: Callable[[Any], None]) -> Plan[T]:
    """``plan`` with ``command`` sent in its first :class:`Batch`, whose reply goes to ``receive`` first.

    ``receive`` may raise to stop the plan before it writes anything: a plan that would
    :class:`Commit` or call a :class:`Script` before any Batch gets one of its own for ``command``
    first. A plan that ends without any of these never sends it.
    """
    reply: Any = None
    sent = False
    while True:
        try:
            step = plan.send(reply)
        except StopIteration as stop:
            returned: T = stop.value
            return returned
        if not sent and isinstance(step, Batch):
            sent = True
            replies = yield Batch([*step.commands, command])
            receive(replies[-1])
            reply = replies[:-1]
            continue
        if not sent and isinstance(step, Commit | Script):
            sent = True
            receive((yield Batch([command]))[0])
        reply = yield step
