"""RateLimiter: an exact sliding window, never exceeded under 50 concurrent clients, equal to a reference model
when windows and limits of one name mix."""

import asyncio
import math
import secrets

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redtick import scripts
from redtick.caches.ratelimit import RateLimiter, RateLimitState, rate_limit_headers
from redtick.caches.sessions import UserSessionCache
from redtick.errors import InvalidData, InvalidKey, RateLimited


def namespace_keys(conn) -> set[bytes]:
    return set(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


def state_of(hits: list[int], now: int, limit: int, window_ms: int, cost: int, allowed: bool) -> RateLimitState:
    """The state a call sees, given the hits its window holds (oldest first) after it."""
    window_us = window_ms * 1000
    need, count = max(cost, 1), len(hits)
    if allowed or count + need <= limit:
        retry = 0.0
    elif need > limit:
        retry = math.inf
    else:
        retry = (hits[count + need - limit - 1] + window_us - now) / 1e6
    reset = (hits[0] + window_us - now) / 1e6 if hits else 0.0
    return RateLimitState(allowed or (cost == 0 and retry == 0), limit, count, reset, retry, window_ms / 1000)


class ReferenceLog:
    """The law, in plain Python: one log of hits per identity, whatever the window or limit.

    A call with ``(limit, window)`` counts the hits at t in (now - window, now]; its cost is
    recorded only if they then fit in ``limit``. The log forgets a hit only once it is older
    than the longest window used on it while it held hits (its span).
    """

    def __init__(self):
        self.hits: list[int] = []
        self.span = 0

    def call(self, now: int, limit: int, window_ms: int, cost: int) -> RateLimitState:
        span = max(self.span, window_ms * 1000)
        self.hits = [t for t in self.hits if t > now - span]
        inside = [t for t in self.hits if t > now - window_ms * 1000]
        allowed = cost > 0 and len(inside) + cost <= limit
        if allowed:
            self.hits += [now] * cost
            inside += [now] * cost
        if self.hits:
            self.span = span
        return state_of(inside, now, limit, window_ms, cost, allowed)


class EveryHitKept:
    """A sliding window over every hit ever counted: what any window sees when nothing is trimmed."""

    def __init__(self):
        self.hits: list[int] = []

    def call(self, now: int, limit: int, window_ms: int, cost: int) -> RateLimitState:
        inside = [t for t in self.hits if t > now - window_ms * 1000]
        allowed = cost > 0 and len(inside) + cost <= limit
        if allowed:
            self.hits += [now] * cost
            inside += [now] * cost
        return state_of(inside, now, limit, window_ms, cost, allowed)


def run_steps(conn, steps, model) -> None:
    """Drive one identity through ``steps`` (advance µs, limit, window ms, cost) and compare each state with ``model``."""
    now = [4_000_000_000_000_000]  # microseconds, advanced by the test instead of waiting; far ahead of
    # the server's clock so the keys' absolute expiry never cuts in while the test runs
    script = scripts.bound(conn.sync, "rate_limit")
    identity = secrets.token_hex(4)
    for advance_us, limit, window_ms, cost in steps:
        now[0] += advance_us
        limiter = RateLimiter("model", limit=limit, window=window_ms / 1000, conn=conn, clock=lambda: now[0] / 1e6)
        keys, args = limiter.script_args(identity, cost)
        args[4] = now[0]  # exact microseconds, no float round trip through the clock
        got = limiter.decode(script(keys=keys, args=args))
        want = model.call(now[0], limit, window_ms, cost)
        assert got == want, (advance_us, limit, window_ms, cost)


MODEL = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
step = st.tuples(st.integers(0, 30_000), st.integers(1, 6), st.sampled_from([1, 5, 20, 50]), st.integers(0, 3))


@MODEL
@given(
    limit=st.integers(1, 6),
    window_ms=st.integers(1, 50),
    steps=st.lists(st.tuples(st.integers(0, 30_000), st.integers(0, 3)), min_size=1, max_size=40),
)
@example(limit=1, window_ms=1, steps=[(0, 1), (0, 0)])  # a 1 ms window must not expire on the real clock
def test_one_limit_equals_a_sliding_window(conn, limit, window_ms, steps):
    run_steps(conn, [(advance, limit, window_ms, cost) for advance, cost in steps], EveryHitKept())


@MODEL
@given(steps=st.lists(step, min_size=1, max_size=40))
# The case: three hits in 300 ms, a look with a 60 ms window, then a fourth hit counts 4.
@example(steps=[(0, 6, 50, 1), (1_000, 6, 50, 1), (1_000, 6, 50, 1), (30_000, 6, 5, 0), (1_000, 6, 50, 1)])
def test_mixed_windows_and_limits_equal_the_reference_log(conn, steps):
    run_steps(conn, steps, ReferenceLog())


@MODEL
@given(first=step, steps=st.lists(step, max_size=40))
def test_no_window_trims_hits_another_counts(conn, first, steps):
    # Once the longest window has counted a hit, every call, whatever its window and limit, sees
    # exactly the sliding window over every hit ever counted: nothing it counts was trimmed.
    longest = max(window for _, _, window, _ in [first, *steps])
    run_steps(conn, [(first[0], first[1], longest, 1), *steps], EveryHitKept())


async def test_fifty_concurrent_clients_never_exceed_the_limit(conn):
    limit, clients, attempts = 20, 50, 8
    connections = [conn.with_settings() for _ in range(clients)]
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
    connections = [conn.with_settings() for _ in range(clients)]
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
        "RateLimit-Policy": '"default";q=2;w=10', "RateLimit": '"default";r=0;t=8', "Retry-After": "8",
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
    assert 29_000 < conn.sync.pttl(conn.keys.rate_limit_span("ttl", "u1")) <= 30_000
    # A longer window used on the log keeps it (and its span) alive that much longer.
    await RateLimiter("ttl", limit=3, window=90, conn=conn).state("u1")
    assert 89_000 < conn.sync.pttl(conn.keys.rate_limit("ttl", "u1")) <= 90_000
    assert 89_000 < conn.sync.pttl(conn.keys.rate_limit_span("ttl", "u1")) <= 90_000


async def test_a_look_at_an_empty_log_writes_nothing(conn):
    limiter = RateLimiter("look", limit=3, window=30, conn=conn)
    assert (await limiter.state("nobody")).remaining == 3
    assert not await limiter.clear("nobody")
    assert namespace_keys(conn) == set()


async def test_clear_forgets_every_window(conn):
    await RateLimiter("both", limit=3, window=300, conn=conn).hit(7)
    assert await RateLimiter("both", limit=3, window=60, conn=conn).clear(7)
    assert namespace_keys(conn) == set()


async def test_spec_calls_count_and_limit(conn):
    cache = UserSessionCache(conn=conn)
    counts = [await cache.set_rate_limit("user_123", "api_call", window=60) for _ in range(4)]
    assert counts == [1, 2, 3, 4]
    assert not await cache.is_rate_limited("user_123", "api_call", limit=5)
    assert await cache.is_rate_limited("user_123", "api_call", limit=4)
    assert not await cache.is_rate_limited("user_123", "other_action", limit=1)
    # With a limit, counting and checking are one step: the count never passes it.
    assert [await cache.set_rate_limit("u2", "login", window=60, limit=2) for _ in range(4)] == [1, 2, 2, 2]


async def test_a_check_with_the_default_window_keeps_a_longer_windows_hits(conn):
    # Issue 14: three hits in a 300 s window, one check with the default 60 s window, and the
    # next 300 s hit counted 1 instead of 4 because the check had trimmed the shared log.
    cache = UserSessionCache(conn=conn)
    assert [await cache.set_rate_limit("user_123", "api_call", window=300) for _ in range(3)] == [1, 2, 3]
    assert not await cache.is_rate_limited("user_123", "api_call")
    assert await cache.is_rate_limited("user_123", "api_call", limit=3)  # the same hits, in 60 s
    assert await cache.set_rate_limit("user_123", "api_call", window=300) == 4


@pytest.mark.parametrize("user_id", [123, "user:123", "alice@example.com"])
async def test_real_user_ids_are_counted(conn, user_id):
    cache = UserSessionCache(conn=conn)
    assert [await cache.set_rate_limit(user_id, "api_call", window=60) for _ in range(2)] == [1, 2]
    assert await cache.is_rate_limited(user_id, "api_call", limit=2)
    if user_id == 123:  # an int id is its decimal string: one user, one log
        assert await cache.set_rate_limit("123", "api_call", window=60) == 3


def test_headers_for_several_policies_wait_for_the_slowest():
    burst = RateLimitState(False, 10, 10, 2.5, 2.5, window=1)
    daily = RateLimitState(False, 1000, 1000, 3600.0, 7200.0, window=86400)
    fine = RateLimitState(True, 5, 0, 0.0, 0.0, window=60)
    headers = rate_limit_headers({"burst": burst, "daily": daily, 'say "hi" \\': fine})
    assert headers == {
        "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=1000;w=86400, "say \\"hi\\" \\\\";q=5;w=60',
        "RateLimit": '"burst";r=0;t=3, "daily";r=0;t=7200, "say \\"hi\\" \\\\";r=5;t=60',
        "Retry-After": "7200",
    }
    # A cost above the limit never fits: no Retry-After promises a time it will.
    never = RateLimitState(False, 2, 0, 0.0, math.inf, window=10)
    assert rate_limit_headers(never) == {"RateLimit-Policy": '"default";q=2;w=10', "RateLimit": '"default";r=2;t=10'}
    for bad in ({}, {"caf\u00e9": fine}, {"": fine}):
        with pytest.raises(InvalidData):
            rate_limit_headers(bad)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda conn: RateLimiter("x", limit=0, window=1, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=True, window=1, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=5, window=0, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=5, window=float("inf"), conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=5, window=1e302, conn=conn), InvalidData),
        (lambda conn: RateLimiter("x", limit=5, window=10 * 365 * 86_400 + 1, conn=conn), InvalidData),
        (lambda conn: RateLimiter("bad name", limit=5, window=1, conn=conn), InvalidKey),
    ],
)
def test_bad_limiter_settings_raise(conn, make, error):
    with pytest.raises(error):
        make(conn)


@pytest.mark.parametrize(("identity", "cost", "error"), [("a b", 1, InvalidKey), ("{x}", 1, InvalidKey),
                                                         (True, 1, InvalidKey), ("a*", 1, InvalidKey),
                                                         ("u1", 0, InvalidData), ("u1", -1, InvalidData)])
async def test_bad_hit_raises_and_writes_nothing(conn, identity, cost, error):
    with pytest.raises(error):
        await RateLimiter("x", limit=5, window=1, conn=conn).hit(identity, cost=cost)
    assert namespace_keys(conn) == set()
