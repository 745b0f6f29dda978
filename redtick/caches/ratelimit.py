"""``RateLimiter``: an exact sliding-window limit, checked and counted in one Lua script."""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Callable
from typing import Any

from redtick import scripts
from redtick.connection import Connection, UsesConnection
from redtick.errors import InvalidData, RateLimited
from redtick.keys import validate_name

__all__ = ["RateLimitState", "RateLimiter", "check_window"]

_MAX_LIMIT = 1_000_000


def check_window(window: Any) -> int:
    """``window`` seconds as whole microseconds if it is a positive number of at least 1 ms, else InvalidData."""
    if isinstance(window, bool) or not isinstance(window, int | float) or not math.isfinite(window) or window < 0.001:
        raise InvalidData(f"window={window!r}: expected a number of seconds, at least 0.001")
    return round(window * 1_000_000)


def _check_count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_LIMIT:
        raise InvalidData(f"{name}={value!r}: expected a whole number from {low} to {_MAX_LIMIT}")
    return value


@dataclasses.dataclass(frozen=True)
class RateLimitState:
    """One identity's window after a hit or a look.

    Attributes
    ----------
    allowed : bool
        For a hit, whether it was counted; for a look, whether one hit would be.
    limit : int
        The most hits allowed in any window.
    count : int
        Hits in the window now.
    reset_after : float
        Seconds until the oldest hit leaves the window (0 when the window is empty).
    retry_after : float
        Seconds until the hit (or one hit) would be allowed: 0 now, ``inf`` never.
    """

    allowed: bool
    limit: int
    count: int
    reset_after: float
    retry_after: float

    @property
    def remaining(self) -> int:
        """Hits still allowed in the window now."""
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        """HTTP headers for this state: ``RateLimit-Limit``, ``-Remaining``, ``-Reset``, and
        ``Retry-After`` when the hit was refused; delays are rounded up to whole seconds.

        Examples
        --------
        >>> RateLimitState(False, 10, 10, 4.2, 1.5).headers()
        {'RateLimit-Limit': '10', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '5', 'Retry-After': '2'}
        """
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if not self.allowed and math.isfinite(self.retry_after):
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class RateLimiter(UsesConnection):
    """At most ``limit`` hits per identity in any ``window`` seconds, exactly.

    Each identity's hits are a sorted set of hit times; one Lua script trims it to the window,
    checks the limit and records the hit, so no two clients can both take the last slot.
    Time is the Redis server's clock, shared by every client (see ``rate_limit.lua``).

    Parameters
    ----------
    name : str
        What is limited (``"api_call"``, ``"login"``); part of the key.
    limit : int
        Hits allowed in any window.
    window : float
        Window length in seconds (at least 0.001).
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    clock : callable, optional
        Seconds since the epoch to use instead of the server's clock: for tests and replays only.

    Examples
    --------
    >>> import asyncio
    >>> limiter = RateLimiter("example", limit=2, window=60)
    >>> async def demo():
    ...     return [(await limiter.hit("client-1")).allowed for _ in range(3)]
    >>> asyncio.run(demo())
    [True, True, False]
    """

    COUNT_CAP = 10_000
    """The limit used when only counting hits (``UserSessionCache.set_rate_limit`` without a limit)."""

    def __init__(
        self,
        name: str,
        limit: int,
        window: float,
        conn: Connection | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.name = validate_name(name, "rate limit name")
        self.limit = _check_count(limit, "limit", 1)
        self.window = window
        self._window_us = check_window(window)
        self._conn = conn
        self.clock = clock

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, limit={self.limit}, window={self.window})"

    def script_args(self, identity: str, cost: int) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of ``rate_limit.lua`` for ``cost`` hits by ``identity`` (0 only looks).

        Pure, so a sync front end or a pipeline can run the same call.

        Examples
        --------
        >>> keys, args = RateLimiter("api", limit=5, window=1, clock=lambda: 2.5).script_args("u1", 1)
        >>> keys, args[:3], args[4]
        (['redtick:ratelimit:api:{u1}'], [5, 1000000, 1], 2500000)
        """
        key = self.conn.keys.rate_limit(self.name, identity)
        _check_count(cost, "cost", 0)
        now = "" if self.clock is None else round(self.clock() * 1_000_000)
        return [key], [self.limit, self._window_us, cost, secrets.token_hex(8), now]

    def decode(self, reply: list[int]) -> RateLimitState:
        """The :class:`RateLimitState` in a ``rate_limit.lua`` reply."""
        allowed, count, reset_us, retry_us = (int(x) for x in reply)
        return RateLimitState(
            allowed=bool(allowed) or (retry_us == 0),
            limit=self.limit,
            count=count,
            reset_after=reset_us / 1_000_000,
            retry_after=math.inf if retry_us < 0 else retry_us / 1_000_000,
        )

    async def _run(self, identity: str, cost: int) -> RateLimitState:
        keys, args = self.script_args(identity, cost)
        client = self.conn.async_client()
        state = self.decode(await scripts.bound(client, "rate_limit")(keys=keys, args=args))
        if cost and state.allowed:
            self.conn.metrics.cache("rate_limit").write(self.name)
        return state

    async def hit(self, identity: str, cost: int = 1) -> RateLimitState:
        """Count ``cost`` hits by ``identity`` if they fit in the window; the state says whether they did.

        Examples
        --------
        >>> import asyncio
        >>> state = asyncio.run(RateLimiter("hit-example", limit=3, window=60).hit("u1"))
        >>> state.allowed, state.remaining
        (True, 2)
        """
        return await self._run(identity, _check_count(cost, "cost", 1))

    async def acquire(self, identity: str, cost: int = 1) -> RateLimitState:
        """Like :meth:`hit`, but raise :class:`~redtick.errors.RateLimited` (with ``retry_after``) when refused.

        Examples
        --------
        >>> import asyncio
        >>> limiter = RateLimiter("acquire-example", limit=1, window=60)
        >>> async def demo():
        ...     await limiter.acquire("u1")
        ...     await limiter.acquire("u1")
        >>> asyncio.run(demo())
        Traceback (most recent call last):
        ...
        redtick.errors.RateLimited: rate limit 'acquire-example' for 'u1': 1 hits per 60 s; retry in 60 s
        """
        state = await self.hit(identity, cost)
        if not state.allowed:
            raise RateLimited(
                f"rate limit {self.name!r} for {identity!r}: {self.limit} hits per {self.window} s; "
                f"retry in {math.ceil(state.retry_after)} s",
                retry_after=state.retry_after,
            )
        return state

    async def state(self, identity: str) -> RateLimitState:
        """The identity's window now, without counting a hit."""
        return await self._run(identity, 0)

    async def test(self, identity: str) -> bool:
        """True if one more hit by ``identity`` would be allowed now (nothing is counted).

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(RateLimiter("test-example", limit=1, window=60).test("u1"))
        True
        """
        return (await self.state(identity)).allowed

    async def remaining(self, identity: str) -> int:
        """Hits ``identity`` may still make in the window now."""
        return (await self.state(identity)).remaining

    async def reset_after(self, identity: str) -> float:
        """Seconds until the identity's oldest hit leaves the window and frees a slot (0 if none)."""
        return (await self.state(identity)).reset_after

    async def clear(self, identity: str) -> bool:
        """Forget every hit of ``identity``; True if there were any."""
        key = self.conn.keys.rate_limit(self.name, identity)
        return bool(await self.conn.async_client().delete(key))
