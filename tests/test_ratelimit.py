"""RateLimiter: an exact sliding window, never exceeded under 50 concurrent clients, equal to a reference model."""

import asyncio
import math
import secrets

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redtick import scripts
from redtick.caches.ratelimit import RateLimiter, RateLimitState
from redtick.caches.sessions import UserSessionCache
from redtick.connection import Connection
from redtick.errors import InvalidData, InvalidKey, RateLimited


def namespace_keys(conn) -> set[bytes]:
    return set(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


class ReferenceWindow:
    """The law, in plain Python: a hit at t counts in (t - window, t]; at most ``limit`` count."""

    def __init__(self, limit: int, window_us: int):
        self.limit, self.window_us, self.hits = limit, window_us, []

    def hit(self, now: int, cost: int) -> RateLimitState:
        self.hits = [t for t in self.hits if t > now - self.window_us]
        allowed = cost > 0 and len(self.hits) + cost <= self.limit
        if allowed:
            self.hits += [now] * cost
        need = max(cost, 1)
        count = len(self.hits)
        if allowed or count + need <= self.limit:
            retry = 0.0
        elif need > self.limit:
            retry = math.inf
        else:
            retry = (self.hits[count + need - self.limit - 1] + self.window_us - now) / 1e6
        reset = (self.hits[0] + self.window_us - now) / 1e6 if self.hits else 0.0
        return RateLimitState(allowed or (cost == 0 and retry == 0), self.limit, count, reset, retry)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(1, 6),
    window_ms=st.integers(1, 50),
    steps=st.lists(st.tuples(st.integers(0, 30_000), st.integers(0, 3)), min_size=1, max_size=40),
)
@example(limit=1, window_ms=1, steps=[(0, 1), (0, 0)])  # a 1 ms window must not expire on the real clock
def test_limiter_equals_the_reference_model(conn, limit, window_ms, steps):
    now = [4_000_000_000_000_000]  # microseconds, advanced by the test instead of waiting; far ahead of
    # the server's clock so the keys' absolute expiry never cuts in while the test runs
    limiter = RateLimiter("model", limit=limit, window=window_ms / 1000, conn=conn, clock=lambda: now[0] / 1e6)
    model = ReferenceWindow(limit, window_ms * 1000)
    script = scripts.bound(conn.sync, "rate_limit")
    identity = secrets.token_hex(4)
    for advance_us, cost in steps:
        now[0] += advance_us
        keys, args = limiter.script_args(identity, cost)
        args[4] = now[0]  # exact microseconds, no float round trip through the clock
        got = limiter.decode(script(keys=keys, args=args))
        want = model.hit(now[0], cost)
        assert got == want


async def test_fifty_concurrent_clients_never_exceed_the_limit(conn):
    limit, clients, attempts = 20, 50, 8
    connections = [Connection(conn.settings, memory_server=conn.server) for _ in range(clients)]
    try:
        limiters = [RateLimiter("burst", limit=limit, window=3600, conn=c) for c in connections]

        async def hammer(limiter):
            return [await limiter.hit("shared-key") for _ in range(attempts)]

        results = await asyncio.gather(*(hammer(limiter) for limiter in limiters))
    finally:
        for c in connections:
            await c.aclose()
    states = [s for per_client in results for s in per_client]
    # Every hit falls in one window: exactly `limit` of the 400 are let through, never more.
    assert sum(s.allowed for s in states) == limit
    assert all(s.count <= limit for s in states)
    assert conn.sync.zcard(conn.keys.rate_limit("burst", "shared-key")) == limit


async def test_concurrent_clients_in_a_short_sliding_window(conn):
    limit, clients = 5, 50
    connections = [Connection(conn.settings, memory_server=conn.server) for _ in range(clients)]
    key = conn.keys.rate_limit("sliding", "shared-key")
    try:
        limiters = [RateLimiter("sliding", limit=limit, window=0.05, conn=c) for c in connections]

        async def hammer(limiter):
            out = []
            for _ in range(20):
                out.append(await limiter.hit("shared-key"))
            return out

        results = await asyncio.gather(*(hammer(limiter) for limiter in limiters))
    finally:
        for c in connections:
            await c.aclose()
    # The window holds at most `limit` hits at every moment the script saw it.
    assert all(s.count <= limit for per_client in results for s in per_client)
    assert conn.sync.zcard(key) <= limit


async def test_retry_after_and_headers_follow_the_oldest_hit(conn):
    now = [4_000_000_000.0]
    limiter = RateLimiter("api", limit=2, window=10, conn=conn, clock=lambda: now[0])
    assert (await limiter.hit("u1")).remaining == 1
    now[0] += 1
    assert (await limiter.hit("u1")).remaining == 0
    now[0] += 1
    refused = await limiter.hit("u1")
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(8) and refused.reset_after == pytest.approx(8)
    assert refused.headers() == {
        "RateLimit-Limit": "2", "RateLimit-Remaining": "0", "RateLimit-Reset": "8", "Retry-After": "8",
    }
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("u1")
    assert caught.value.retry_after == pytest.approx(8)
    assert not await limiter.test("u1") and await limiter.remaining("u1") == 0
    now[0] += 8  # the first hit leaves the window
    assert await limiter.test("u1") and await limiter.remaining("u1") == 1
    assert await limiter.reset_after("u1") == pytest.approx(1)
    assert (await limiter.hit("u1", cost=3)).retry_after == math.inf
    assert await limiter.clear("u1")
    assert namespace_keys(conn) == set()


async def test_limiter_survives_a_script_flush(conn):
    limiter = RateLimiter("flush", limit=3, window=60, conn=conn)
    assert (await limiter.hit("u1")).count == 1
    await conn.async_client().script_flush()
    assert (await limiter.hit("u1")).count == 2


async def test_window_key_expires_with_its_newest_hit(conn):
    limiter = RateLimiter("ttl", limit=3, window=30, conn=conn)
    await limiter.hit("u1")
    assert 29_000 < conn.sync.pttl(conn.keys.rate_limit("ttl", "u1")) <= 30_000


async def test_spec_calls_count_and_limit(conn):
    cache = UserSessionCache(conn=conn)
    counts = [await cache.set_rate_limit("user_123", "api_call", window=60) for _ in range(4)]
    assert counts == [1, 2, 3, 4]
    assert not await cache.is_rate_limited("user_123", "api_call", limit=5)
    assert await cache.is_rate_limited("user_123", "api_call", limit=4)
    assert not await cache.is_rate_limited("user_123", "other_action", limit=1)
    # With a limit, counting and checking are one step: the count never passes it.
    assert [await cache.set_rate_limit("u2", "login", window=60, limit=2) for _ in range(4)] == [1, 2, 2, 2]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda conn: RateLimiter("x", limit=0, window=1, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=True, window=1, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=5, window=0, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=5, window=float("inf"), conn=conn), InvalidData),
        (lambda conn: RateLimiter("bad name", limit=5, window=1, conn=conn), InvalidKey),
    ],
)
def test_bad_limiter_settings_raise(conn, make, error):
    with pytest.raises(error):
        make(conn)


@pytest.mark.parametrize(("identity", "cost", "error"), [("a b", 1, InvalidKey), ("{x}", 1, InvalidKey),
                                                         ("u1", 0, InvalidData), ("u1", -1, InvalidData)])
async def test_bad_hit_raises_and_writes_nothing(conn, identity, cost, error):
    with pytest.raises(error):
        await RateLimiter("x", limit=5, window=1, conn=conn).hit(identity, cost=cost)
    assert namespace_keys(conn) == set()
