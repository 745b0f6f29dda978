"""HTTP response caching in Redis: the ``cache_response`` decorator and ``ResponseCacheMiddleware``."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi.encoders import jsonable_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redtick import codec
from redtick.caches.base import check_ttl
from redtick.connection import Connection, connect
from redtick.errors import InvalidData, RedisError
from redtick.keys import validate_name

__all__ = ["DEFAULT_VARY", "CachedResponse", "ResponseCache", "ResponseCacheMiddleware", "cache_response"]

log = logging.getLogger("redtick.web")

DEFAULT_VARY = ("accept", "authorization")
"""Request headers that take part in the cache key by default.

``authorization`` is there so one caller's response is never served to another; its value only
ever enters the key through a SHA-256 digest.
"""

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
# Hop-by-hop and per-response headers that must not be replayed from a stored entry.
_NOT_REPLAYED = frozenset({"content-length", "date", "server", "transfer-encoding", "connection", "etag"})


@dataclasses.dataclass(frozen=True)
class CachedResponse:
    """One response as stored: status, replayable headers, body and its strong ETag."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str

    @classmethod
    def build(cls, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> CachedResponse:
        kept = tuple((k.lower(), v) for k, v in headers if k.lower() not in _NOT_REPLAYED)
        return cls(status, kept, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    @property
    def storable(self) -> bool:
        """Only plain successes are shared; a response that sets a cookie is personal."""
        return self.status == 200 and not any(k == "set-cookie" for k, _ in self.headers)

    def to_mapping(self) -> dict[str, bytes]:
        return {
            "status": str(self.status).encode(),
            "headers": codec.dumps(self.headers),
            "body": self.body,
            "etag": self.etag.encode(),
        }

    @classmethod
    def from_mapping(cls, raw: dict[bytes, bytes]) -> CachedResponse | None:
        try:
            headers = tuple((str(k), str(v)) for k, v in codec.loads(raw[b"headers"]))
            return cls(int(raw[b"status"]), headers, raw[b"body"], raw[b"etag"].decode())
        except (KeyError, ValueError, TypeError, InvalidData):
            return None  # a foreign or truncated entry is a miss, not an error


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison, which is what If-None-Match uses."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


# In-flight productions per event loop and key: concurrent misses await one task (single flight).
_inflight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task]] = (
    weakref.WeakKeyDictionary()
)


def _retrieve(task: asyncio.Task) -> None:
    # Mark the exception as seen even if every waiter was cancelled, so asyncio does not log it.
    if not task.cancelled():
        task.exception()


class ResponseCache:
    """Keys, storage, single flight and HTTP headers shared by the decorator and the middleware.

    Parameters
    ----------
    ttl : int
        Seconds a response stays cached; also sent as ``Cache-Control: max-age``.
    key_prefix : str
        Family of the keys, ``<namespace>:http:<key_prefix>:<digest>``.
    vary : iterable of str
        Request headers that make two requests different (default: Accept and Authorization).
    conn : Connection, optional
        Redis to use; by default the app's (``app.state.redtick_conn``) or ``redtick.connect()``.

    Examples
    --------
    >>> cache = ResponseCache(ttl=30, key_prefix="market_data")
    >>> cache.digest("GET", "/market/BTCUSDT", [("b", "2"), ("a", "1")], {}) == cache.digest(
    ...     "GET", "/market/BTCUSDT", [("a", "1"), ("b", "2")], {})
    True
    """

    def __init__(
        self,
        ttl: int = 60,
        key_prefix: str = "response",
        *,
        vary: Iterable[str] = DEFAULT_VARY,
        conn: Connection | None = None,
    ):
        self.ttl = check_ttl(ttl)
        self.key_prefix = validate_name(key_prefix, "response cache prefix")
        self.vary = tuple(sorted({h.lower() for h in vary}))
        self.conn = conn
        self._degraded = False

    def __repr__(self) -> str:
        return f"ResponseCache(ttl={self.ttl}, key_prefix={self.key_prefix!r}, vary={self.vary})"

    # -- keys ------------------------------------------------------------------------------------
    def digest(self, method: str, path: str, query: Iterable[tuple[str, str]], headers: Any) -> str:
        """SHA-256 of method, path, sorted query and the vary headers: the same in every process.

        Python's ``hash()`` is salted per process, so it is never used here.
        """
        material = [method.upper(), path, sorted(query), [(h, headers.get(h, "")) for h in self.vary]]
        return hashlib.sha256(codec.dumps(material)).hexdigest()

    def key_for(self, conn: Connection, request: Request) -> str:
        digest = self.digest(request.method, request.url.path, request.query_params.multi_items(), request.headers)
        return conn.keys.response(self.key_prefix, digest)

    def connection_for(self, request: Request) -> Connection:
        app = request.scope.get("app")
        return self.conn or getattr(getattr(app, "state", None), "redtick_conn", None) or connect()

    # -- storage ---------------------------------------------------------------------------------
    def _failed(self, action: str, exc: Exception) -> None:
        # One warning per outage, not one per request; the message names the error class only,
        # because a driver message may carry an address and the key carries a request digest.
        if not self._degraded:
            log.warning("response cache %r: %s failed (%s); serving uncached responses", self.key_prefix,
                        action, type(exc).__name__)
        self._degraded = True

    def _recovered(self) -> None:
        if self._degraded:
            log.info("response cache %r: Redis answers again; caching resumed", self.key_prefix)
        self._degraded = False

    async def load(self, conn: Connection, key: str) -> tuple[CachedResponse | None, bool]:
        """The stored response (or None) and whether Redis could be asked at all."""
        try:
            raw = await conn.async_client().hgetall(key)
        except RedisError as exc:
            self._failed("read", exc)
            return None, False
        self._recovered()
        return (CachedResponse.from_mapping(raw) if raw else None), True

    async def save(self, conn: Connection, key: str, entry: CachedResponse) -> None:
        try:
            async with conn.async_client().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=entry.to_mapping())
                pipe.expire(key, self.ttl)
                await pipe.execute()
        except RedisError as exc:
            self._failed("write", exc)
        else:
            conn.metrics.cache("http_response").write(self.key_prefix)

    async def fetch(
        self, conn: Connection, key: str, produce: Callable[[], Awaitable[CachedResponse]]
    ) -> tuple[CachedResponse, bool]:
        """The response for ``key`` and whether it was a hit; a miss runs ``produce`` once per key.

        Concurrent misses for one key in this process await the same production instead of each
        running the handler. The production runs in its own task, so a waiter that disconnects
        does not cancel it for the others.
        """
        entry, reachable = await self.load(conn, key)
        conn.metrics.cache("http_response").read(self.key_prefix, entry is not None)
        if entry is not None:
            return entry, True
        flights = _inflight.setdefault(asyncio.get_running_loop(), {})
        task = flights.get(key)
        if task is None:
            task = asyncio.ensure_future(self._produce(conn, key, produce, reachable))
            flights[key] = task
            task.add_done_callback(_retrieve)
            task.add_done_callback(lambda done: flights.pop(key, None) if flights.get(key) is done else None)
        return await asyncio.shield(task), False

    async def _produce(self, conn, key, produce, reachable: bool) -> CachedResponse:
        entry = await produce()
        if reachable and entry.storable:
            await self.save(conn, key, entry)
        return entry

    # -- HTTP ------------------------------------------------------------------------------------
    def respond(self, entry: CachedResponse, hit: bool, request: Request) -> Response:
        """The response to send: the entry with cache headers, or 304 if the client has it."""
        if not entry.storable:
            response = Response(entry.body, status_code=entry.status)
            for name, value in entry.headers:
                response.headers.append(name, value)
            response.headers["X-Cache"] = "MISS"
            return response
        private = "authorization" in self.vary and "authorization" in request.headers
        cache_headers = {
            "X-Cache": "HIT" if hit else "MISS",
            "ETag": entry.etag,
            # A shared cache must not hand one caller's authorised response to another.
            "Cache-Control": f"{'private, ' if private else ''}max-age={self.ttl}",
            "Vary": ", ".join(h.title() for h in self.vary),
        }
        if _etag_matches(request.headers.get("if-none-match"), entry.etag):
            return Response(status_code=304, headers=cache_headers)
        response = Response(entry.body, status_code=entry.status, headers=cache_headers)
        for name, value in entry.headers:
            if name not in ("vary", "cache-control"):
                response.headers.append(name, value)
        return response


def _entry_from_result(result: Any) -> CachedResponse:
    if isinstance(result, Response):
        if not hasattr(result, "body"):
            raise TypeError("cache_response cannot cache a streaming response; return the whole body")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in result.raw_headers]
        return CachedResponse.build(result.status_code, headers, bytes(result.body))
    rendered = JSONResponse(jsonable_encoder(result))
    return CachedResponse.build(200, [("content-type", "application/json")], bytes(rendered.body))


def _request_parameter(func: Callable) -> str:
    for name, param in inspect.signature(func, eval_str=True).parameters.items():
        if isinstance(param.annotation, type) and issubclass(param.annotation, Request):
            return name
    raise TypeError(f"{func.__qualname__} needs a `request: Request` parameter for cache_response to key on")


def cache_response(
    ttl: int = 60,
    key_prefix: str = "response",
    *,
    vary: Iterable[str] = DEFAULT_VARY,
    conn: Connection | None = None,
) -> Callable:
    """Cache a FastAPI GET endpoint's response in Redis for ``ttl`` seconds.

    The key is a SHA-256 of the method, path, sorted query and the ``vary`` request headers, so
    it is the same in every process; injected dependencies never take part. Responses carry
    ``X-Cache: HIT|MISS``, ``Cache-Control: max-age=<ttl>`` and a strong ETag of the body, and a
    matching ``If-None-Match`` gets 304. Concurrent misses for one key run the endpoint once. If
    Redis fails, the endpoint's own response is served uncached and one warning is logged.
    Only 200 responses are stored; the endpoint's return value is rendered as FastAPI renders
    JSON (``jsonable_encoder``), or used as-is if it is a ``Response`` with a body.

    Parameters
    ----------
    ttl : int
        Seconds to keep a response.
    key_prefix : str
        Names the key family, ``<namespace>:http:<key_prefix>:...``.
    vary : iterable of str
        Request headers that take part in the key (default: Accept, Authorization).
    conn : Connection, optional
        Redis to use; by default the app's (``app.state.redtick_conn``) or ``redtick.connect()``.

    Examples
    --------
    >>> from fastapi import APIRouter, Request
    >>> router = APIRouter()
    >>> @router.get("/market/{symbol}")
    ... @cache_response(ttl=30, key_prefix="market_data")
    ... async def get_market_data(symbol: str, request: Request):
    ...     return {"symbol": symbol, "price": 50000.0}
    """
    cache = ResponseCache(ttl, key_prefix, vary=vary, conn=conn)

    def decorate(func: Callable) -> Callable:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"cache_response needs an async endpoint; {func.__qualname__} is not")
        request_name = _request_parameter(func)
        signature = inspect.signature(func, eval_str=True)

        @functools.wraps(func)
        async def endpoint(*args: Any, **kwargs: Any) -> Any:
            request = signature.bind_partial(*args, **kwargs).arguments[request_name]
            if request.method not in _CACHEABLE_METHODS:
                return await func(*args, **kwargs)
            connection = cache.connection_for(request)

            async def produce() -> CachedResponse:
                return _entry_from_result(await func(*args, **kwargs))

            entry, hit = await cache.fetch(connection, cache.key_for(connection, request), produce)
            return cache.respond(entry, hit, request)

        # Annotations resolved in the endpoint's own module, so FastAPI sees real types.
        endpoint.__signature__ = signature  # type: ignore[attr-defined]
        endpoint.response_cache = cache  # type: ignore[attr-defined]
        return endpoint

    return decorate


class _Capture:
    """An ASGI ``send`` that keeps the response instead of sending it."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    def entry(self) -> CachedResponse:
        return CachedResponse.build(self.status, self.headers, b"".join(self.chunks))


class ResponseCacheMiddleware:
    """ASGI middleware form of :func:`cache_response` for every GET under some path prefixes.

    Parameters
    ----------
    app : ASGI app
    ttl, key_prefix, vary, conn
        As for :func:`cache_response`.
    paths : iterable of str
        Path prefixes whose GET responses are cached (default: every path).

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(ResponseCacheMiddleware, ttl=10, key_prefix="pages", paths=["/api/v1/public"])
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        ttl: int = 60,
        key_prefix: str = "middleware",
        paths: Iterable[str] = ("/",),
        vary: Iterable[str] = DEFAULT_VARY,
        conn: Connection | None = None,
    ):
        self.app = app
        self.cache = ResponseCache(ttl, key_prefix, vary=vary, conn=conn)
        self.paths = tuple(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _CACHEABLE_METHODS
            or not scope["path"].startswith(self.paths)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        conn = self.cache.connection_for(request)

        async def produce() -> CachedResponse:
            capture = _Capture()
            await self.app(scope, receive, capture)
            return capture.entry()

        entry, hit = await self.cache.fetch(conn, self.cache.key_for(conn, request), produce)
        await self.cache.respond(entry, hit, request)(scope, receive, send)
