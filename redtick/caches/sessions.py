"""``UserSessionCache``: sessions that expire everywhere at once, preferences, subscriptions, rate limits."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet

from redtick.caches.base import CacheFront, Group, check_ttl, commit_in_phases
from redtick.caches.ratelimit import RateLimiter, check_window
from redtick.clock import now_ms
from redtick.codec import ValueCodec
from redtick.connection import Connection
from redtick.errors import InvalidKey
from redtick.keys import validate_name, validate_user_id
from redtick.steps import Script

__all__ = ["UserSessionCache", "session_handle", "user_session_cache"]

_SESSION_ID_BYTES = 24  # 192 bits of randomness; 32 url-safe characters
_CLEANUP_BATCH = 1000
_HANDLE_HEX = 16  # 64 bits: unique among one user's sessions, and no way back to the token


def session_handle(session_id: str) -> str:
    """A short, non-secret name of a session: the first 16 hex digits of the SHA-256 of its id.

    A session id is a bearer token; its handle can be shown and used to revoke the session
    (:meth:`UserSessionCache.delete_session_by_handle`), never to act as it.

    Examples
    --------
    >>> session_handle("abc")
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(session_id.encode()).hexdigest()[:_HANDLE_HEX]


def _slid_expiry(now: int, created_at: int, ttl_ms: int, max_lifetime_ms: int) -> int:
    """When an activity at ``now`` makes a session expire: its full ttl from now, but never past
    ``created_at + max_lifetime_ms`` (all in ms, by the cache's clock)."""
    return min(now + ttl_ms, created_at + max_lifetime_ms)


class UserSessionCache(CacheFront):
    """User sessions, preferences, subscriptions and rate limits; the spec's ``user_session_cache``.

    A session is one hash ``session:{<id>}`` whose TTL is the session's, indexed in the user's
    sorted set and in one namespace-wide sorted set, both scored by expiry time. Readers trust
    only the hash, so a session is gone everywhere the moment its TTL ends; the user's index
    expires with its longest-lived session, and :meth:`cleanup_expired_sessions` drops index
    entries of sessions that expired. Activity (:meth:`update_session_activity`) slides a
    session's expiry to its full ttl again, up to ``max_lifetime`` after it started. It writes only
    its own keys, through the methods below: there is no generic get/set.

    Parameters
    ----------
    default_ttl : int
        Seconds a session lives unless ``set_user_session`` says otherwise.
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    encryption_key : str or bytes, optional
        A Fernet key; session data, activity, preferences and subscriptions are then encrypted at
        rest. Defaults to the ``REDTICK_ENCRYPTION_KEY`` setting; without either, values are JSON.
    clock : callable, optional
        Seconds since the epoch (default: the wall clock, :func:`redtick.clock.now_ms`); it scores
        the indexes, never the TTLs.
    max_lifetime : int, optional
        Seconds after a session's start past which activity no longer extends it. Defaults to
        the ``REDTICK_SESSION_MAX_LIFETIME`` setting (a day).

    Examples
    --------
    >>> import asyncio
    >>> cache = UserSessionCache()
    >>> async def demo():
    ...     session_id = await cache.set_user_session("user_123", {"device": "browser"}, ttl=3600)
    ...     session = await cache.get_user_session("user_123", session_id)
    ...     return session["data"], await cache.resolve_session(session_id)
    >>> asyncio.run(demo())
    ({'device': 'browser'}, 'user_123')
    """

    metrics_name = "user_session"

    def __init__(
        self,
        default_ttl: int = 3600,
        conn: Connection | None = None,
        encryption_key: str | bytes | None = None,
        clock: Callable[[], float] | None = None,
        max_lifetime: int | None = None,
    ):
        self.default_ttl = check_ttl(default_ttl, name="default_ttl")
        self._conn = conn
        self._encryption_key = encryption_key
        self._session_codec = ValueCodec(label="stored session value")
        # False until codec resolved the key; set it back to False to resolve again, as a test that
        # binds the process's singleton to another connection does.
        self._fernet_ready = False
        self.clock = clock
        self._max_lifetime = None if max_lifetime is None else check_ttl(max_lifetime, name="max_lifetime")

    def __repr__(self) -> str:
        return f"UserSessionCache(default_ttl={self.default_ttl})"

    @property
    def max_lifetime(self) -> int:
        """Seconds after its start past which activity no longer extends a session."""
        if self._max_lifetime is not None:
            return self._max_lifetime
        return self.conn.settings.session_max_lifetime

    @property
    def codec(self) -> ValueCodec:
        """JSON, Fernet-encrypted when a key is configured; resolved on first use, from the settings
        of the connection when no ``encryption_key`` was given."""
        if not self._fernet_ready:
            key = self._encryption_key or self.conn.settings.encryption_key
            self._session_codec = ValueCodec.for_key(key, label="stored session value")
            self._fernet_ready = True
        return self._session_codec

    @property
    def fernet(self) -> Fernet | None:
        """The Fernet that encrypts values at rest, or None; resolved on first use."""
        return self.codec.fernet

    def _ttl(self, ttl: int | None) -> int:
        return self.default_ttl if ttl is None else check_ttl(ttl)

    # -- sessions --------------------------------------------------------------------------------
    async def set_user_session(self, user_id: str, data: Any, ttl: int | None = None) -> str:
        """Start a session for ``user_id`` holding ``data``; returns its new id.

        The id is 192 random bits from :mod:`secrets`, url-safe, fit for a bearer token.

        Examples
        --------
        >>> import asyncio
        >>> session_id = asyncio.run(UserSessionCache().set_user_session("u1", {"ip": "10.0.0.1"}, ttl=60))
        >>> len(session_id) >= 22
        True
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        keys = self.keys
        seconds = self._ttl(ttl)
        encoded = self.codec.encode(data)
        session_id = secrets.token_urlsafe(_SESSION_ID_BYTES)
        now = now_ms(self.clock)
        expires_at = now + seconds * 1000
        session_key = keys.session(session_id)
        # The hash's own TTL is relative, so it holds whatever the clocks say; the index scores
        # are absolute and only decide which entries cleanup may drop. Indexes first, the hash
        # last: on one server all is one MULTI, on Redis Cluster (three slots: the user's, the
        # session's and the expiry index's) one MULTI each, and a failure before the hash leaves
        # only index entries of a session that does not exist, which readers skip and cleanup
        # drops. A live session is therefore always listed, and ended by delete_all_user_sessions.
        user_index = Script("session_index", [keys.user_sessions(user_id)], [session_id, expires_at, now])

        def expiry_index(pipe: Any) -> None:
            pipe.zadd(keys.session_expiry(), {f"{user_id}:{session_id}": expires_at})

        def session_hash(pipe: Any) -> None:
            pipe.hset(
                session_key,
                mapping={"user_id": user_id, "data": encoded, "created_at": now, "last_activity": now,
                         "expires_at": expires_at, "ttl_ms": seconds * 1000},
            )
            pipe.expire(session_key, seconds)

        await commit_in_phases(self.conn, [[user_index, expiry_index], [session_hash]])
        self.counters.write("session")
        return session_id

    def _decode_session(self, session_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
        activity = fields.get(b"activity")
        return {
            "session_id": session_id,
            "user_id": fields[b"user_id"].decode(),
            "data": self.codec.decode(fields[b"data"]),
            "activity": None if activity is None else self.codec.decode(activity),
            "created_at": int(fields[b"created_at"]),
            "last_activity": int(fields[b"last_activity"]),
            "expires_at": int(fields[b"expires_at"]),
        }

    async def get_session_by_id(self, session_id: str) -> dict[str, Any] | None:
        """The live session ``session_id`` (whoever owns it), or None.

        The dict holds ``session_id``, ``user_id``, ``data``, ``activity`` (the latest
        :meth:`update_session_activity`, or None) and ``created_at``, ``last_activity`` and
        ``expires_at`` in epoch ms.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     session_id = await cache.set_user_session("u2", {"device": "app"})
        ...     return (await cache.get_session_by_id(session_id))["user_id"]
        >>> asyncio.run(demo())
        'u2'
        """
        fields = await self.redis.hgetall(self.keys.session(session_id))
        self.counters.read("session", b"user_id" in fields)
        return self._decode_session(session_id, fields) if b"user_id" in fields else None

    async def get_user_session(self, user_id: str, session_id: str) -> dict[str, Any] | None:
        """The live session ``session_id`` if it belongs to ``user_id``, else None.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     session_id = await cache.set_user_session("u3", {"device": "app"})
        ...     mine = await cache.get_user_session("u3", session_id)
        ...     theirs = await cache.get_user_session("someone_else", session_id)
        ...     return mine["data"], theirs
        >>> asyncio.run(demo())
        ({'device': 'app'}, None)
        """
        user_id = validate_user_id(user_id)
        session = await self.get_session_by_id(session_id)
        return session if session is not None and session["user_id"] == user_id else None

    async def resolve_session(self, session_id: Any) -> str | None:
        """The user id behind a bearer session id, or None if it is not a live session.

        Meant for the HTTP layer: anything that is not a live session, malformed ids included,
        gives None rather than an error, so every failure looks alike to a caller probing tokens.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(UserSessionCache().resolve_session("no-such-session"))
        """
        try:
            key = self.keys.session(session_id)
        except InvalidKey:  # a malformed token is just not a session
            return None
        user_id = await self.redis.hget(key, "user_id")
        self.counters.read("session", user_id is not None)
        return None if user_id is None else user_id.decode()

    async def get_user_sessions(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live sessions, oldest expiry first.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     await cache.set_user_session("u4", {"device": "a"})
        ...     return [s["data"] for s in await cache.get_user_sessions("u4")]
        >>> asyncio.run(demo())
        [{'device': 'a'}]
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        keys = self.keys
        now = now_ms(self.clock)
        ids = [m.decode() for m in await self.redis.zrangebyscore(keys.user_sessions(user_id), now, "+inf")]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(keys.session(session_id))
            replies = await pipe.execute()
        live = [
            self._decode_session(session_id, fields)
            for session_id, fields in zip(ids, replies, strict=True)
            if fields.get(b"user_id") == user_id.encode()
        ]
        self.counters.reads("session", hits=len(live), misses=len(ids) - len(live))
        return live

    async def update_session_activity(self, user_id: str, session_id: str, activity: Any) -> bool:
        """Record ``activity`` as the session's latest and slide its expiry; False if the session is
        gone or not the user's.

        Each activity gives the session its full ttl (the one ``set_user_session`` gave it) again
        from now, but never past ``max_lifetime`` seconds after it started
        (``REDTICK_SESSION_MAX_LIFETIME``, a day by default): a session in use stays open, an idle
        one ends one ttl after its last activity, and none outlives its maximum lifetime. The
        expiry never moves earlier; a session started with a ttl longer than the maximum lifetime
        keeps it, and activity does not extend it. The user's session index and the expiry index
        move with the session, so listing and ending a user's sessions see it until it ends.

        Examples
        --------
        >>> import asyncio
        >>> clock = [1_900_000_000.0]
        >>> cache = UserSessionCache(clock=lambda: clock[0], max_lifetime=7200)
        >>> async def demo():
        ...     session_id = await cache.set_user_session("u5", {}, ttl=3600)
        ...     clock[0] += 3000  # 50 minutes later: the session has 10 minutes left
        ...     await cache.update_session_activity("u5", session_id, {"last_action": "view_portfolio"})
        ...     session = await cache.get_user_session("u5", session_id)
        ...     return session["activity"], (session["expires_at"] - session["created_at"]) // 1000
        >>> asyncio.run(demo())  # an hour from the activity again: 6600 s after the start
        ({'last_action': 'view_portfolio'}, 6600)
        """
        user_id = validate_user_id(user_id)
        keys = self.keys
        key = keys.session(session_id)
        encoded = self.codec.encode(activity)
        now = now_ms(self.clock)
        owner, created_at, expires_at, ttl_ms = await self.redis.hmget(key, "user_id", "created_at", "expires_at",
                                                                        "ttl_ms")
        if owner != user_id.encode():
            self.counters.read("session", False)
            return False
        # A session stored before ttl_ms was kept never slid, so its expiry less its start is its ttl.
        ttl = int(ttl_ms) if ttl_ms is not None else int(expires_at) - int(created_at)
        slid = _slid_expiry(now, int(created_at), ttl, self.max_lifetime * 1000)
        touch = Script("session_touch", [key], [user_id, encoded, now, 0, 0])
        phases: list[list[Group]] = [[touch]]
        if slid > int(expires_at):
            # The indexes move first, as in set_user_session: stopped half way, they list the
            # session until a later expiry than it has, and a session ended since the HMGET gets
            # back an entry pointing at nothing; readers skip both and cleanup drops them. The
            # other way round, a live session could drop out of its user's index, and "end all my
            # sessions" would miss it.
            user_index = Script("session_index", [keys.user_sessions(user_id)], [session_id, slid, now])

            def expiry_index(pipe: Any) -> None:
                pipe.zadd(keys.session_expiry(), {f"{user_id}:{session_id}": slid}, gt=True)

            touch = Script("session_touch", [key], [user_id, encoded, now, slid - now, slid])
            phases = [[user_index, expiry_index], [touch]]
        touched = bool((await commit_in_phases(self.conn, phases))[-1][0])
        self.counters.read("session", touched)
        if touched:
            self.counters.write("session")
        return touched

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """End one session of the user (log out); False if it was not a live session of theirs.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     session_id = await cache.set_user_session("u6", {})
        ...     return await cache.delete_session("u6", session_id), await cache.resolve_session(session_id)
        >>> asyncio.run(demo())
        (True, None)
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        if await self.get_user_session(user_id, session_id) is None:
            return False
        return await self._delete_sessions(user_id, [session_id]) == 1

    async def delete_all_user_sessions(self, user_id: str) -> int:
        """End every session of the user; returns how many were live. Nothing of them is left.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     for _ in range(3):
        ...         await cache.set_user_session("u7", {})
        ...     return await cache.delete_all_user_sessions("u7")
        >>> asyncio.run(demo())
        3
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        ids = [m.decode() for m in await self.redis.zrange(self.keys.user_sessions(user_id), 0, -1)]
        return await self._delete_sessions(user_id, ids) if ids else 0

    async def delete_session_by_handle(self, user_id: str, handle: str) -> bool:
        """End the user's session whose :func:`session_handle` is ``handle``; False if none is live.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     session_id = await cache.set_user_session("u12", {})
        ...     ended = await cache.delete_session_by_handle("u12", session_handle(session_id))
        ...     return ended, await cache.resolve_session(session_id)
        >>> asyncio.run(demo())
        (True, None)
        """
        user_id = validate_user_id(user_id)
        ids = [m.decode() for m in await self.redis.zrange(self.keys.user_sessions(user_id), 0, -1)]
        wanted = str(handle).encode()
        matches = [s for s in ids if secrets.compare_digest(session_handle(s).encode(), wanted)]
        return await self._delete_sessions(user_id, matches) > 0 if matches else False

    async def delete_other_sessions(self, user_id: str, keep_session_id: str) -> int:
        """End every session of the user except ``keep_session_id``; returns how many were live.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     kept = await cache.set_user_session("u13", {})
        ...     for _ in range(2):
        ...         await cache.set_user_session("u13", {})
        ...     return await cache.delete_other_sessions("u13", kept), await cache.resolve_session(kept)
        >>> asyncio.run(demo())
        (2, 'u13')
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        ids = [m.decode() for m in await self.redis.zrange(self.keys.user_sessions(user_id), 0, -1)]
        others = [s for s in ids if s != keep_session_id]
        return await self._delete_sessions(user_id, others) if others else 0

    async def _delete_sessions(self, user_id: str, session_ids: list[str]) -> int:
        keys = self.keys
        # The hashes go first: once one is gone its session is over. The index entries follow
        # (one MULTI with the rest on one server, their own on Redis Cluster); left behind by a
        # failure, they point at nothing, which readers skip and cleanup drops. Only these
        # members are removed, not the index: a session started meanwhile stays indexed.
        def session_hash(session_id: str) -> Group:
            return lambda pipe: pipe.delete(keys.session(session_id))

        def user_index(pipe: Any) -> None:
            pipe.zrem(keys.user_sessions(user_id), *session_ids)

        def expiry_index(pipe: Any) -> None:
            pipe.zrem(keys.session_expiry(), *(f"{user_id}:{s}" for s in session_ids))

        replies = await commit_in_phases(self.conn, [[session_hash(s) for s in session_ids],
                                                     [user_index, expiry_index]])
        return sum(reply[0] for reply in replies[: len(session_ids)])

    async def cleanup_expired_sessions(self) -> int:
        """Drop the index entries of sessions that expired; returns how many.

        An entry whose expiry time passed but whose session hash still lives (this process's
        clock ahead of the server's) is kept until the hash is gone.

        Examples
        --------
        >>> import asyncio
        >>> from redtick.config import Settings
        >>> from redtick.connection import Connection
        >>> clock = [1_900_000_000.0]
        >>> cache = UserSessionCache(conn=Connection(Settings(url="memory://")), clock=lambda: clock[0])
        >>> async def demo():
        ...     ended = await cache.set_user_session("u14", {}, ttl=60)
        ...     live = await cache.set_user_session("u14", {}, ttl=600)
        ...     await cache.redis.delete(cache.keys.session(ended))  # what its TTL does 60 s on
        ...     clock[0] += 61
        ...     return await cache.cleanup_expired_sessions(), len(await cache.get_user_sessions("u14"))
        >>> asyncio.run(demo())  # the ended session's entries go; the live one stays listed
        (1, 1)
        """
        keys = self.keys
        expiry = keys.session_expiry()
        removed = 0
        start = 0
        now = now_ms(self.clock)
        while True:
            members = await self.redis.zrangebyscore(expiry, "-inf", now, start=start, num=_CLEANUP_BATCH)
            if not members:
                return removed
            entries = [m.decode().rsplit(":", 1) for m in members]  # a user id may hold ":"; a session id never does
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, session_id in entries:
                    pipe.exists(keys.session(session_id))
                alive = await pipe.execute()
            gone = [(u, s) for (u, s), live in zip(entries, alive, strict=True) if not live]
            # Sessions end by TTL or by delete_session, which drops their index entries with the
            # hash; so an entry past its expiry whose hash is gone is a session the TTL ended.
            self.counters.expired("session", len(gone))
            start += len(entries) - len(gone)  # live ones stay in the index: page past them
            if gone:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for user_id, session_id in gone:
                        pipe.zrem(keys.user_sessions(user_id), session_id)
                    pipe.zrem(expiry, *(f"{u}:{s}" for u, s in gone))
                    replies = await pipe.execute()
                removed += replies[-1]

    # -- preferences and subscriptions -----------------------------------------------------------
    async def set_user_preferences(self, user_id: str, preferences: Any, ttl: int | None = None) -> bool:
        """Store the user's preferences, kept until replaced (or for ``ttl`` seconds).

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     await cache.set_user_preferences("u8", {"theme": "dark"})
        ...     return await cache.get_user_preferences("u8")
        >>> asyncio.run(demo())
        {'theme': 'dark'}
        """
        key = self.keys.user_preferences(user_id)
        seconds = None if ttl is None else check_ttl(ttl)
        stored = bool(await self.redis.set(key, self.codec.encode(preferences), ex=seconds))
        self.counters.write("preferences")
        return stored

    async def get_user_preferences(self, user_id: str) -> Any:
        """The user's preferences, or None if never set."""
        raw = await self.redis.get(self.keys.user_preferences(user_id))
        self.counters.read("preferences", raw is not None)
        return self.codec.decode(raw)

    async def set_user_subscription(self, user_id: str, kind: str, data: Any) -> None:
        """Store the user's subscription of one ``kind`` (``"websocket"``, ...), replacing the old one.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     await cache.set_user_subscription("u9", "websocket", {"channels": ["orders"]})
        ...     return await cache.get_user_subscriptions("u9")
        >>> asyncio.run(demo())
        {'websocket': {'channels': ['orders']}}
        """
        key = self.keys.user_subscriptions(user_id)
        field = validate_name(kind, "subscription kind")
        await self.redis.hset(key, field, self.codec.encode(data))
        self.counters.write("subscriptions")

    async def get_user_subscriptions(self, user_id: str) -> dict[str, Any]:
        """``{kind: data}`` of the user's subscriptions."""
        fields = await self.redis.hgetall(self.keys.user_subscriptions(user_id))
        self.counters.read("subscriptions", bool(fields))
        return {kind.decode(): self.codec.decode(raw) for kind, raw in fields.items()}

    async def delete_user_subscription(self, user_id: str, kind: str) -> bool:
        """Remove the user's subscription of one kind; False if there was none."""
        key = self.keys.user_subscriptions(user_id)
        return bool(await self.redis.hdel(key, validate_name(kind, "subscription kind")))

    # -- rate limits -----------------------------------------------------------------------------
    def _limiter(self, action: str, limit: int, window: float) -> RateLimiter:
        return RateLimiter(action, limit=limit, window=window, conn=self.conn)

    async def set_rate_limit(self, user_id: str, action: str, window: float = 60, limit: int | None = None) -> int:
        """Count one hit of ``action`` by the user; returns the hits in the last ``window`` seconds.

        The count is exact over a sliding window. With ``limit``, the hit is recorded only if it
        keeps the window within the limit (check and count are one atomic step); without one,
        the count saturates at 10,000 hits per window so one user cannot grow the log unbounded.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     await cache.set_rate_limit("u10", "api_call", window=60)
        ...     return await cache.set_rate_limit("u10", "api_call", window=60)
        >>> asyncio.run(demo())
        2
        """
        user_id = validate_user_id(user_id)
        state = await self._limiter(action, limit or RateLimiter.COUNT_CAP, window).hit(user_id)
        return state.count

    async def is_rate_limited(self, user_id: str, action: str, limit: int = 100, window: float = 60) -> bool:
        """True if the user already made ``limit`` hits of ``action`` in the last ``window`` seconds.

        Examples
        --------
        >>> import asyncio
        >>> cache = UserSessionCache()
        >>> async def demo():
        ...     await cache.set_rate_limit("u11", "login", window=60)
        ...     return await cache.is_rate_limited("u11", "login", limit=1)
        >>> asyncio.run(demo())
        True
        """
        user_id = validate_user_id(user_id)
        check_window(window)
        return not await self._limiter(action, limit, window).test(user_id)


user_session_cache = UserSessionCache()
"""The process's default session cache, on ``redtick.connect()``; the spec's ``user_session_cache``."""
