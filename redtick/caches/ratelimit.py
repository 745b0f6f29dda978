"""``RateLimiter``: an exact sliding-window limit, checked and counted in one Lua script."""

from __future__ import annotations

import dataclasses
import math
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from redtick import checks, scripts
from redtick.caches.base import CacheFront
from redtick.connection import Connection
from redtick.errors import InvalidData, RateLimited
from redtick.keys import validate_name

__all__ = ["RateLimitState", "RateLimiter", "check_window", "rate_limit_headers"]

_MAX_LIMIT = 1_000_000
_MAX_WINDOW = 10 * 365 * 86_400
# A Structured Fields String (RFC 9651): printable ASCII, with " and \ escaped.
_SF_STRING = re.compile(r"[\x20-\x7e]{1,100}")


def check_window(window: Any) -> int:
    """``window`` seconds as whole microseconds if it is a number from 0.001 to 10 years, else InvalidData.

    The bound keeps every time the script computes (now + window, in µs) exact in a Lua double.

    Examples
    --------
    >>> check_window(60), check_window(0.25)
    (60000000, 250000)
    """
    seconds = checks.number(window, "window", low=0.001, high=_MAX_WINDOW,
                            expected=f"a number of seconds from 0.001 to {_MAX_WINDOW:,} (10 years)")
    return round(seconds * 1_000_000)


def _check_count(value: Any, name: str, low: int) -> int:
    return checks.whole(value, name, low=low, high=_MAX_LIMIT, expected=f"a whole number from {low} to {_MAX_LIMIT}")


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
        Hits in the window now (hits counted by a limit with a higher ``limit`` on the same log
        may make it larger than ``limit``).
    reset_after : float
        Seconds until the oldest hit in the window leaves it (0 when the window is empty).
    retry_after : float
        Seconds until the hit (or one hit) would be allowed: 0 now, ``inf`` never.
    window : float or None
        The window's length in seconds, when known (for the ``RateLimit-Policy`` header).
    """

    allowed: bool
    limit: int
    count: int
    reset_after: float
    retry_after: float
    window: float | None = None

    @property
    def remaining(self) -> int:
        """Hits still allowed in the window now."""
        return max(0, self.limit - self.count)

    def headers(self, policy: str = "default") -> dict[str, str]:
        """``RateLimit-Policy``, ``RateLimit`` and, when refused, ``Retry-After`` for this state.

        The same as ``rate_limit_headers({policy: self})``; see :func:`rate_limit_headers`.

        Examples
        --------
        >>> RateLimitState(False, 10, 10, 4.2, 4.2, window=60).headers()
        {'RateLimit-Policy': '"default";q=10;w=60', 'RateLimit': '"default";r=0;t=5', 'Retry-After': '5'}
        """
        return rate_limit_headers({policy: self})


def _sf_string(name: str) -> str:
    if not isinstance(name, str) or not _SF_STRING.fullmatch(name):
        raise InvalidData(f"rate limit policy name {name!r}: expected 1-100 printable ASCII characters")
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _effective_window(state: RateLimitState) -> int:
    """The draft's ``t``: whole seconds within which the client can use no more than ``remaining``."""
    if not state.allowed and math.isfinite(state.retry_after):
        wait = state.retry_after  # refused: nothing more fits until then
    elif state.count:
        wait = state.reset_after  # the oldest hit in the window frees the next unit
    else:
        wait = state.window or 0.0  # an empty window: the whole quota, once per window
    return math.ceil(wait)


def rate_limit_headers(decisions: Mapping[str, RateLimitState] | RateLimitState) -> dict[str, str]:
    """The HTTP headers for one or more rate-limit decisions, as ``{name: value}``; no web framework needed.

    Follows draft-ietf-httpapi-ratelimit-headers-11: ``RateLimit-Policy`` lists each policy as
    ``"name";q=<limit>;w=<window s>`` and ``RateLimit`` each one's state as
    ``"name";r=<remaining>;t=<s>``, where ``t`` is the effective window: the seconds within which
    no more than ``r`` hits fit (until the oldest hit in the window frees a unit, or the whole
    window when it is empty). ``Retry-After`` (whole seconds, at least 1) is set when a decision
    was refused: the longest wait among the refused ones, so one retry after it can pass every
    policy. A refusal that can never pass (a cost above the limit) sets no ``Retry-After``:
    answer it with an error other than 429. Delays are rounded up to whole seconds.

    Parameters
    ----------
    decisions : Mapping[str, RateLimitState] or RateLimitState
        Each policy's name (printable ASCII, sent as a quoted string) and its decision; a lone
        state is the policy ``"default"``. Policies are listed in the mapping's order.

    Examples
    --------
    >>> burst = RateLimitState(True, 100, 58, 17.2, 0.0, window=60)
    >>> daily = RateLimitState(False, 1000, 1000, 5000.0, 5000.0, window=86400)
    >>> rate_limit_headers({"burst": burst, "daily": daily})  # doctest: +NORMALIZE_WHITESPACE
    {'RateLimit-Policy': '"burst";q=100;w=60, "daily";q=1000;w=86400',
     'RateLimit': '"burst";r=42;t=18, "daily";r=0;t=5000', 'Retry-After': '5000'}
    >>> rate_limit_headers(RateLimitState(True, 5, 0, 0.0, 0.0, window=1))
    {'RateLimit-Policy': '"default";q=5;w=1', 'RateLimit': '"default";r=5;t=1'}
    """
    if isinstance(decisions, RateLimitState):
        decisions = {"default": decisions}
    if not decisions:
        raise InvalidData("rate_limit_headers needs at least one decision")
    policies, states, waits = [], [], []
    for name, state in decisions.items():
        quoted = _sf_string(name)
        window = "" if state.window is None else f";w={max(1, math.ceil(state.window))}"
        policies.append(f"{quoted};q={state.limit}{window}")
        states.append(f"{quoted};r={state.remaining};t={_effective_window(state)}")
        if not state.allowed and math.isfinite(state.retry_after):
            waits.append(max(1, math.ceil(state.retry_after)))
    headers = {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(states)}
    if waits:
        headers["Retry-After"] = str(max(waits))
    return headers


class RateLimiter(CacheFront):
    """At most ``limit`` hits per identity in any ``window`` seconds, exactly.

    Each identity's hits are a sorted set of hit times, one per ``(name, identity)`` whatever the
    window; one Lua script trims it, checks the limit and records the hit, so no two clients can
    both take the last slot. Limiters of one name with different windows or limits (say 10 per
    second and 500 per hour, or the session cache's calls with and without ``window``) share
    that log: each counts the hits in its own window, and the log is trimmed only to the longest
    window used on it, so none trims hits another still counts. A window longer than any used
    while the log held hits sees only what was kept until then: use the longest window first.
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

    Two windows on one name count the same hits; the short one trims nothing the long one needs:

    >>> hourly = RateLimiter("example-mixed", limit=100, window=3600)
    >>> per_minute = RateLimiter("example-mixed", limit=2, window=60)
    >>> async def mixed():
    ...     for _ in range(3):
    ...         await hourly.hit("client-1")
    ...     minute = await per_minute.state("client-1")
    ...     return minute.count, minute.allowed, (await hourly.hit("client-1")).count
    >>> asyncio.run(mixed())
    (3, False, 4)
    """

    metrics_name = "rate_limit"

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

    def script_args(self, identity: str | int, cost: int) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of ``rate_limit.lua`` for ``cost`` hits by ``identity`` (0 only looks).

        Pure, so a sync front end or a pipeline can run the same call.

        Examples
        --------
        >>> keys, args = RateLimiter("api", limit=5, window=1, clock=lambda: 2.5).script_args("u1", 1)
        >>> keys, args[:3], args[4]
        (['redtick:ratelimit:api:{u1}', 'redtick:ratelimit:api:{u1}:span'], [5, 1000000, 1], 2500000)
        """
        keys = self.keys
        _check_count(cost, "cost", 0)
        now = "" if self.clock is None else round(self.clock() * 1_000_000)
        return ([keys.rate_limit(self.name, identity), keys.rate_limit_span(self.name, identity)],
                [self.limit, self._window_us, cost, secrets.token_hex(8), now])

    def decode(self, reply: list[int]) -> RateLimitState:
        """The :class:`RateLimitState` in a ``rate_limit.lua`` reply to :meth:`script_args`."""
        allowed, count, reset_us, retry_us = (int(x) for x in reply)
        return RateLimitState(
            allowed=bool(allowed) or (retry_us == 0),
            limit=self.limit,
            count=count,
            reset_after=reset_us / 1_000_000,
            retry_after=math.inf if retry_us < 0 else retry_us / 1_000_000,
            window=self.window,
        )

    async def _run(self, identity: str | int, cost: int) -> RateLimitState:
        keys, args = self.script_args(identity, cost)
        state = self.decode(await scripts.bound(self.redis, "rate_limit")(keys=keys, args=args))
        if cost and state.allowed:
            self.counters.write(self.name)
        return state

    async def hit(self, identity: str | int, cost: int = 1) -> RateLimitState:
        """Count ``cost`` hits by ``identity`` if they fit in the window; the state says whether they did.

        Examples
        --------
        >>> import asyncio
        >>> state = asyncio.run(RateLimiter("hit-example", limit=3, window=60).hit("u1"))
        >>> state.allowed, state.remaining
        (True, 2)
        """
        return await self._run(identity, _check_count(cost, "cost", 1))

    async def acquire(self, identity: str | int, cost: int = 1) -> RateLimitState:
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

    async def state(self, identity: str | int) -> RateLimitState:
        """The identity's window now, without counting a hit."""
        return await self._run(identity, 0)

    async def test(self, identity: str | int) -> bool:
        """True if one more hit by ``identity`` would be allowed now (nothing is counted).

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(RateLimiter("test-example", limit=1, window=60).test("u1"))
        True
        """
        return (await self.state(identity)).allowed

    async def remaining(self, identity: str | int) -> int:
        """Hits ``identity`` may still make in the window now."""
        return (await self.state(identity)).remaining

    async def reset_after(self, identity: str | int) -> float:
        """Seconds until the identity's oldest hit leaves the window and frees a slot (0 if none)."""
        return (await self.state(identity)).reset_after

    async def clear(self, identity: str | int) -> bool:
        """Forget every hit of ``identity``, for every window of this name; True if there were any."""
        keys, client = self.keys, self.redis
        # Two single-key DELs, not one: a cluster client splits a multi-key DEL by slot anyway,
        # and the log's own reply is the one that says whether there were hits.
        removed = await client.delete(keys.rate_limit(self.name, identity))
        await client.delete(keys.rate_limit_span(self.name, identity))
        return bool(removed)
