"""Health for the HTTP face: one Redis probe per few seconds per process, shared by every caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redtick.connection import Connection
from redtick.errors import RedtickError

__all__ = ["HealthProbe", "SharedResult"]

T = TypeVar("T")


class SharedResult(Generic[T]):
    """The result of ``compute`` kept ``ttl`` seconds in this process; concurrent callers share one run.

    Nothing about the caller (query string, headers) takes part, and nothing is stored in
    Redis, so no request can make it compute more than once per ``ttl`` or grow anything.

    Parameters
    ----------
    compute : callable
        The coroutine function whose result is shared.
    ttl : float
        Seconds a result is served before the next caller computes a new one.
    clock : callable
        Monotonic seconds (default ``time.monotonic``).

    Examples
    --------
    >>> import asyncio
    >>> runs = []
    >>> async def compute():
    ...     runs.append(1)
    ...     return len(runs)
    >>> shared = SharedResult(compute, ttl=60)
    >>> async def demo():
    ...     return await asyncio.gather(*(shared.get() for _ in range(5)))
    >>> asyncio.run(demo()), len(runs)
    ([1, 1, 1, 1, 1], 1)
    """

    def __init__(self, compute: Callable[[], Awaitable[T]], ttl: float, clock: Callable[[], float] = time.monotonic):
        self.compute = compute
        self.ttl = ttl
        self.clock = clock
        self._value: T | None = None
        self._expires = -float("inf")
        self._flight: asyncio.Task[T] | None = None

    async def get(self) -> T:
        """The shared result: the kept one while fresh, else the one being computed, else a new one."""
        if self.clock() < self._expires:
            return self._value  # type: ignore[return-value]
        flight = self._flight
        if flight is None or flight.done() or flight.get_loop() is not asyncio.get_running_loop():
            flight = self._flight = asyncio.ensure_future(self._run())
        # Shielded: a caller that gives up (its deadline, a disconnect) leaves the run to the others.
        return await asyncio.shield(flight)

    async def _run(self) -> T:
        value = await self.compute()
        self._value, self._expires = value, self.clock() + self.ttl
        return value


class HealthProbe:
    """Public health: is Redis answering, and how fast; one PING per ``ttl`` seconds per process.

    A PING that fails or takes longer than ``timeout`` seconds (a stalled or paused Redis)
    makes the status "unhealthy" without waiting for the driver's own timeouts and retries.

    Parameters
    ----------
    conn : Connection
    ttl : float
        Seconds a probe's result is shared.
    timeout : float
        Seconds a probe may take.

    Examples
    --------
    >>> import asyncio, redtick
    >>> probe = HealthProbe(redtick.connect("memory://"), ttl=2, timeout=1)
    >>> asyncio.run(probe.status())["status"]
    'healthy'
    """

    def __init__(self, conn: Connection, *, ttl: float = 2.0, timeout: float = 2.0):
        self.conn = conn
        self.timeout = timeout
        self.shared: SharedResult[dict[str, Any]] = SharedResult(self._probe, ttl)

    async def status(self) -> dict[str, Any]:
        """``{"status": "healthy" | "unhealthy", "latency_ms": float | None}``."""
        return await self.shared.get()

    async def _probe(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self.conn.async_client().ping()
        except (RedtickError, TimeoutError, OSError):
            return {"status": "unhealthy", "latency_ms": None}
        return {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 3)}
