"""UserSessionCache: sessions expire everywhere they are indexed, deletes leave nothing, encryption at rest."""

import time

import pytest
from cryptography.fernet import Fernet

from redtick.caches.sessions import UserSessionCache
from redtick.config import Settings
from redtick.errors import ConfigurationError, InvalidData, InvalidKey


def namespace_keys(conn) -> set[bytes]:
    return set(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


def raw_values(conn) -> list[bytes]:
    """Every stored byte string in the namespace, whatever the key's type."""
    client, out = conn.sync, []
    for key in namespace_keys(conn):
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key))
        elif kind == b"hash":
            out.extend(v for pair in client.hgetall(key).items() for v in pair)
        elif kind == b"zset":
            out.extend(client.zrange(key, 0, -1))
    return out


def poll(condition, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.02)


async def test_session_round_trip_and_ownership(conn):
    cache = UserSessionCache(conn=conn)
    session_id = await cache.set_user_session("user_123", {"device": "browser"}, ttl=3600)
    session = await cache.get_user_session("user_123", session_id)
    assert session["data"] == {"device": "browser"}
    assert session["user_id"] == "user_123" and session["session_id"] == session_id
    assert await cache.get_session_by_id(session_id) == session
    assert await cache.resolve_session(session_id) == "user_123"
    assert await cache.get_user_session("user_456", session_id) is None
    assert await cache.get_session_by_id("x" * 43) is None


async def test_session_ids_are_long_random_and_url_safe(conn):
    cache = UserSessionCache(conn=conn)
    ids = [await cache.set_user_session("u", {}, ttl=60) for _ in range(100)]
    assert len(set(ids)) == len(ids)
    for session_id in ids:
        assert len(session_id) * 6 >= 128  # url-safe base64 carries 6 bits a character
        assert set(session_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_session_expiry_is_the_same_everywhere_it_is_indexed(conn):
    now = 4_000_000_000.0  # ahead of the real clock, so absolute expiries from it stay in the future
    cache = UserSessionCache(conn=conn, clock=lambda: now)
    started = time.monotonic()
    short = await cache.set_user_session("u1", {"n": 1}, ttl=30)
    long = await cache.set_user_session("u1", {"n": 2}, ttl=900)
    keys, client = conn.keys, conn.sync
    short_left, long_left = client.pttl(keys.session(short)), client.pttl(keys.session(long))
    # The hashes' TTLs are relative: what is left is the TTL less the time spent since the write.
    spent = int((time.monotonic() - started) * 1000) + 1
    assert 30_000 - spent <= short_left <= 30_000
    assert 900_000 - spent <= long_left <= 900_000
    scores = dict(client.zrange(keys.user_sessions("u1"), 0, -1, withscores=True))
    assert scores == {short.encode(): now * 1000 + 30_000, long.encode(): now * 1000 + 900_000}
    expiry = dict(client.zrange(keys.session_expiry(), 0, -1, withscores=True))
    assert expiry == {f"u1:{short}".encode(): now * 1000 + 30_000, f"u1:{long}".encode(): now * 1000 + 900_000}
    # The user's index lives exactly as long as its longest session.
    assert client.pexpiretime(keys.user_sessions("u1")) == now * 1000 + 900_000


async def test_expired_session_vanishes_and_cleanup_drops_its_index_entries(conn):
    cache = UserSessionCache(conn=conn)
    session_id = await cache.set_user_session("u1", {"n": 1}, ttl=1)
    kept = await cache.set_user_session("u2", {"n": 2}, ttl=600)
    poll(lambda: not conn.sync.exists(conn.keys.session(session_id)))
    assert await cache.get_user_session("u1", session_id) is None
    assert await cache.resolve_session(session_id) is None
    assert await cache.get_user_sessions("u1") == []
    removed = 0
    deadline = time.monotonic() + 10
    while removed == 0 and time.monotonic() < deadline:  # this process's clock may lag the server's
        removed += await cache.cleanup_expired_sessions()
    assert removed == 1
    assert not conn.sync.exists(conn.keys.user_sessions("u1"))
    assert conn.sync.zrange(conn.keys.session_expiry(), 0, -1) == [f"u2:{kept}".encode()]
    assert await cache.resolve_session(kept) == "u2"


async def test_cleanup_keeps_entries_of_live_sessions_even_when_the_clock_says_expired(conn):
    clock = [4_000_000_000.0]
    cache = UserSessionCache(conn=conn, clock=lambda: clock[0])
    session_id = await cache.set_user_session("u1", {}, ttl=60)
    clock[0] += 3600  # this process's clock jumps ahead; the server still holds the session
    assert await cache.cleanup_expired_sessions() == 0
    assert await cache.resolve_session(session_id) == "u1"
    conn.sync.delete(conn.keys.session(session_id))  # the server expires it
    assert await cache.cleanup_expired_sessions() == 1
    assert namespace_keys(conn) == set()


async def test_delete_all_user_sessions_leaves_nothing_behind(conn):
    cache = UserSessionCache(conn=conn)
    ids = [await cache.set_user_session("u1", {"n": i}, ttl=600) for i in range(5)]
    await cache.update_session_activity("u1", ids[0], {"last_action": "view"})
    other = await cache.set_user_session("u2", {}, ttl=600)
    others = {conn.keys.session(other).encode(), conn.keys.user_sessions("u2").encode()}
    assert await cache.delete_all_user_sessions("u1") == 5
    assert await cache.delete_all_user_sessions("u1") == 0
    for session_id in ids:
        assert await cache.resolve_session(session_id) is None
    left = namespace_keys(conn)
    assert left == others | {conn.keys.session_expiry().encode()}
    assert conn.sync.zrange(conn.keys.session_expiry(), 0, -1) == [f"u2:{other}".encode()]


async def test_delete_one_session_only_by_its_owner(conn):
    cache = UserSessionCache(conn=conn)
    session_id = await cache.set_user_session("u1", {}, ttl=600)
    assert await cache.delete_session("u2", session_id) is False
    assert await cache.resolve_session(session_id) == "u1"
    assert await cache.delete_session("u1", session_id) is True
    assert namespace_keys(conn) == set()


async def test_activity_update_never_revives_a_gone_session(conn):
    cache = UserSessionCache(conn=conn)
    session_id = await cache.set_user_session("u1", {}, ttl=600)
    assert await cache.update_session_activity("u1", session_id, {"last_action": "trade"})
    assert (await cache.get_user_session("u1", session_id))["activity"] == {"last_action": "trade"}
    assert not await cache.update_session_activity("u2", session_id, {"last_action": "steal"})
    assert (await cache.get_user_session("u1", session_id))["activity"] == {"last_action": "trade"}
    await cache.delete_all_user_sessions("u1")
    assert not await cache.update_session_activity("u1", session_id, {"last_action": "late"})
    assert namespace_keys(conn) == set()


def expiries(conn, user_id: str, session_id: str) -> dict[str, int]:
    """Where a session's expiry is kept: its hash's field, its two index scores, the user index's own expiry."""
    keys, client = conn.keys, conn.sync
    return {
        "hash": int(client.hget(keys.session(session_id), "expires_at")),
        "user_index": int(client.zscore(keys.user_sessions(user_id), session_id)),
        "expiry_index": int(client.zscore(keys.session_expiry(), f"{user_id}:{session_id}")),
        "user_index_key": client.pexpiretime(keys.user_sessions(user_id)),
    }


def as_if_time_passed(conn, session_id: str, left_ms: int) -> None:
    """Shorten the session hash's TTL to ``left_ms``, as the server's clock would have: no sleeping."""
    conn.sync.pexpire(conn.keys.session(session_id), left_ms)


def assert_ttl_near(conn, session_id: str, expected_ms: int) -> None:
    # The TTL is relative and runs on the server: what is left is the TTL set less the time since.
    left = conn.sync.pttl(conn.keys.session(session_id))
    assert expected_ms - 5_000 < left <= expected_ms, left


async def test_activity_slides_the_expiry_to_the_full_ttl_everywhere(conn):
    clock = [4_000_000_000.0]  # ahead of the real clock, so absolute expiries from it stay in the future
    cache = UserSessionCache(conn=conn, clock=lambda: clock[0], max_lifetime=86_400)
    session_id = await cache.set_user_session("u1", {}, ttl=600)
    started = clock[0] * 1000
    clock[0] += 500  # 100 s left by this clock, and on the server too
    as_if_time_passed(conn, session_id, 100_000)
    assert await cache.update_session_activity("u1", session_id, {"last_action": "view"})
    slid = started + 500_000 + 600_000
    assert expiries(conn, "u1", session_id) == dict.fromkeys(("hash", "user_index", "expiry_index", "user_index_key"), slid)
    assert_ttl_near(conn, session_id, 600_000)
    session = await cache.get_user_session("u1", session_id)
    assert (session["last_activity"], session["expires_at"]) == (started + 500_000, slid)
    clock[0] += 550  # past the first expiry: the session is still listed, and ended by "log out everywhere"
    assert [s["session_id"] for s in await cache.get_user_sessions("u1")] == [session_id]
    assert await cache.delete_all_user_sessions("u1") == 1
    assert await cache.resolve_session(session_id) is None


async def test_activity_never_slides_past_the_maximum_lifetime(conn):
    clock = [4_000_000_000.0]
    cache = UserSessionCache(conn=conn, clock=lambda: clock[0], max_lifetime=900)
    session_id = await cache.set_user_session("u1", {}, ttl=600)
    started = clock[0] * 1000
    clock[0] += 500
    as_if_time_passed(conn, session_id, 100_000)
    assert await cache.update_session_activity("u1", session_id, {"n": 1})
    assert expiries(conn, "u1", session_id)["hash"] == started + 900_000  # not 500 + 600 s
    assert_ttl_near(conn, session_id, 400_000)
    clock[0] += 300  # 100 s left of the maximum lifetime: activity keeps it, and extends nothing
    as_if_time_passed(conn, session_id, 100_000)
    assert await cache.update_session_activity("u1", session_id, {"n": 2})
    assert expiries(conn, "u1", session_id) == dict.fromkeys(("hash", "user_index", "expiry_index", "user_index_key"),
                                                              started + 900_000)
    assert_ttl_near(conn, session_id, 100_000)
    assert (await cache.get_user_session("u1", session_id))["activity"] == {"n": 2}


async def test_activity_never_moves_the_expiry_earlier(conn):
    clock = [4_000_000_000.0]
    cache = UserSessionCache(conn=conn, clock=lambda: clock[0], max_lifetime=1800)
    # Started with a ttl longer than the maximum lifetime: it keeps its ttl, activity does not cut it.
    long = await cache.set_user_session("u1", {}, ttl=3600)
    before = expiries(conn, "u1", long)
    clock[0] += 60
    assert await cache.update_session_activity("u1", long, {})
    assert expiries(conn, "u1", long) == before
    assert_ttl_near(conn, long, 3_600_000)
    # Activities that arrive out of order: the later one's expiry stands.
    session_id = await cache.set_user_session("u1", {}, ttl=600)
    clock[0] += 100
    as_if_time_passed(conn, session_id, 500_000)
    assert await cache.update_session_activity("u1", session_id, {"n": "later"})
    later = expiries(conn, "u1", session_id)
    clock[0] -= 50
    assert await cache.update_session_activity("u1", session_id, {"n": "earlier"})
    assert expiries(conn, "u1", session_id) == later


async def test_the_user_index_lives_as_long_as_its_longest_session_after_a_slide(conn):
    clock = [4_000_000_000.0]
    cache = UserSessionCache(conn=conn, clock=lambda: clock[0], max_lifetime=86_400)
    short = await cache.set_user_session("u1", {}, ttl=60)
    long = await cache.set_user_session("u1", {}, ttl=600)
    now = clock[0] * 1000
    assert conn.sync.pexpiretime(conn.keys.user_sessions("u1")) == now + 600_000
    clock[0] += 30
    as_if_time_passed(conn, long, 570_000)
    assert await cache.update_session_activity("u1", long, {})  # later still, but not the longest any more
    clock[0] += 20
    as_if_time_passed(conn, short, 10_000)
    assert await cache.update_session_activity("u1", short, {})
    assert conn.sync.pexpiretime(conn.keys.user_sessions("u1")) == now + 630_000
    clock[0] += 500  # short slid to 50 + 60 s and is over, long to 30 + 600 s and is still listed
    assert {s["session_id"] for s in await cache.get_user_sessions("u1")} == {long}


async def test_a_session_stored_before_ttl_ms_slides_by_its_first_lifetime(conn):
    clock = [4_000_000_000.0]
    cache = UserSessionCache(conn=conn, clock=lambda: clock[0], max_lifetime=86_400)
    session_id = await cache.set_user_session("u1", {}, ttl=600)
    conn.sync.hdel(conn.keys.session(session_id), "ttl_ms")  # the layout before sliding
    clock[0] += 100
    as_if_time_passed(conn, session_id, 500_000)
    assert await cache.update_session_activity("u1", session_id, {})
    assert expiries(conn, "u1", session_id)["hash"] == (clock[0] + 600) * 1000
    assert_ttl_near(conn, session_id, 600_000)


async def test_maximum_lifetime_comes_from_the_settings(conn, monkeypatch):
    assert Settings.from_env({}).session_max_lifetime == 86_400
    assert Settings.from_env({"REDTICK_SESSION_MAX_LIFETIME": "3600"}).session_max_lifetime == 3600
    for bad in ("0", "1h", "-5"):
        with pytest.raises(ConfigurationError, match="REDTICK_SESSION_MAX_LIFETIME"):
            Settings.from_env({"REDTICK_SESSION_MAX_LIFETIME": bad})
    assert UserSessionCache(conn=conn).max_lifetime == conn.settings.session_max_lifetime == 86_400
    capped = conn.with_settings(session_max_lifetime=700)
    try:
        clock = [4_000_000_000.0]
        cache = UserSessionCache(conn=capped, clock=lambda: clock[0])
        session_id = await cache.set_user_session("u1", {}, ttl=600)
        clock[0] += 500
        as_if_time_passed(conn, session_id, 100_000)
        assert await cache.update_session_activity("u1", session_id, {})
        assert expiries(conn, "u1", session_id)["hash"] == (clock[0] - 500 + 700) * 1000
    finally:
        capped.close()
    with pytest.raises(InvalidData, match="max_lifetime"):
        UserSessionCache(conn=conn, max_lifetime=0)


async def test_encryption_at_rest_hides_every_value(conn):
    key = Fernet.generate_key()
    cache = UserSessionCache(conn=conn, encryption_key=key)
    secret = "10.1.2.3-secret-agent"
    session_id = await cache.set_user_session("u1", {"ip": secret}, ttl=600)
    await cache.update_session_activity("u1", session_id, {"note": secret})
    await cache.set_user_preferences("u1", {"theme": secret})
    await cache.set_user_subscription("u1", "websocket", {"channel": secret})
    assert all(secret.encode() not in raw for raw in raw_values(conn))
    session = await cache.get_user_session("u1", session_id)
    assert session["data"] == {"ip": secret} and session["activity"] == {"note": secret}
    assert await cache.get_user_preferences("u1") == {"theme": secret}
    assert await cache.get_user_subscriptions("u1") == {"websocket": {"channel": secret}}
    with pytest.raises(InvalidData, match="decrypt"):
        await UserSessionCache(conn=conn, encryption_key=Fernet.generate_key()).get_user_preferences("u1")


async def test_encryption_key_from_settings(conn):
    key = Fernet.generate_key().decode()
    keyed = conn.with_settings(encryption_key=key)
    try:
        cache = UserSessionCache(conn=keyed)
        await cache.set_user_preferences("u1", {"language": "plaintext-marker"})
        assert all(b"plaintext-marker" not in raw for raw in raw_values(conn))
        assert await cache.get_user_preferences("u1") == {"language": "plaintext-marker"}
    finally:
        keyed.close()
    with pytest.raises(ConfigurationError):
        UserSessionCache(conn=conn, encryption_key="not-a-key").fernet  # noqa: B018


async def test_preferences_and_subscriptions(conn):
    cache = UserSessionCache(conn=conn)
    assert await cache.get_user_preferences("u1") is None
    assert await cache.get_user_subscriptions("u1") == {}
    await cache.set_user_preferences("u1", {"theme": "dark", "notifications": True})
    await cache.set_user_subscription("u1", "websocket", {"channels": ["orders", "risk_alerts"]})
    await cache.set_user_subscription("u1", "email", {"daily": True})
    await cache.set_user_subscription("u1", "websocket", {"channels": ["orders"]})
    assert await cache.get_user_preferences("u1") == {"theme": "dark", "notifications": True}
    assert await cache.get_user_subscriptions("u1") == {"websocket": {"channels": ["orders"]}, "email": {"daily": True}}
    assert await cache.delete_user_subscription("u1", "email")
    assert await cache.get_user_subscriptions("u1") == {"websocket": {"channels": ["orders"]}}
    assert conn.sync.ttl(conn.keys.user_preferences("u1")) == -1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.set_user_session("bad user", {}), InvalidKey),
        (lambda c: c.set_user_session("u1", {}, ttl=0), InvalidData),
        (lambda c: c.set_user_session("u1", {}, ttl=-1), InvalidData),
        (lambda c: c.set_user_session("u1", {}, ttl=float("nan")), InvalidData),
        (lambda c: c.set_user_session("u1", {"x": object()}), InvalidData),
        (lambda c: c.get_session_by_id("has space"), InvalidKey),
        (lambda c: c.update_session_activity("u1", "bad*id", {}), InvalidKey),
        (lambda c: c.update_session_activity("u1", "a" * 40, {"x": object()}), InvalidData),
        (lambda c: c.set_user_preferences("u/1", {}), InvalidKey),
        (lambda c: c.set_user_subscription("u1", "bad kind", {}), InvalidKey),
        (lambda c: c.set_rate_limit("u1", "api", window=0), InvalidData),
        (lambda c: c.is_rate_limited("u1", "api", limit=0), InvalidData),
    ],
)
async def test_bad_input_raises_and_writes_nothing(conn, call, error):
    cache = UserSessionCache(conn=conn)
    with pytest.raises(error):
        await call(cache)
    assert namespace_keys(conn) == set()


async def test_resolve_session_treats_any_malformed_token_as_no_session(conn):
    cache = UserSessionCache(conn=conn)
    for token in ["", "has space", "x" * 200, None, "{slot}", "a*"]:
        assert await cache.resolve_session(token) is None


async def test_integer_and_colon_user_ids_work_everywhere(conn):
    cache = UserSessionCache(conn=conn)
    numeric = await cache.set_user_session(123, {"device": "app"}, ttl=60)
    assert (await cache.get_user_session(123, numeric))["data"] == {"device": "app"}
    assert (await cache.get_user_session("123", numeric))["data"] == {"device": "app"}
    assert len(await cache.get_user_sessions(123)) == 1
    # A user id with ':' must not break the cleanup that splits index entries into (user, session).
    colon = await cache.set_user_session("user:9", {}, ttl=1)
    await conn.async_client().delete(conn.keys.session(colon))  # as if its TTL ended
    assert await cache.cleanup_expired_sessions() >= 0
    assert await cache.delete_all_user_sessions(123) == 1
    await conn.aclose()


@pytest.mark.parametrize("generic", ["get", "set", "delete", "get_many", "set_many", "clear", "scan_keys"])
def test_no_generic_key_value_api_that_writes_outside_its_layout(generic):
    """The session cache holds a codec and writes only its own keys; the spec never calls a generic get/set on it."""
    assert not hasattr(UserSessionCache, generic)


async def test_encrypted_values_and_a_wrong_key_go_through_one_codec(conn):
    key = Fernet.generate_key()
    cache = UserSessionCache(conn=conn, encryption_key=key)
    assert cache.codec.encrypted and cache.fernet is cache.codec.fernet
    await cache.set_user_preferences("u1", {"theme": "dark"})
    assert b"dark" not in conn.sync.get(conn.keys.user_preferences("u1"))
    with pytest.raises(InvalidData, match=r"^stored session value cannot be decrypted with this key$"):
        await UserSessionCache(conn=conn, encryption_key=Fernet.generate_key()).get_user_preferences("u1")
