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
from typing import Any, cast

from fastapi.encoders import jsonable_encoder
from redis.typing import EncodableT
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redtick import codec
from redtick.caches.base import check_ttl
from redtick.connection import Connection, connect
from redtick.errors import InvalidData, RedisError
from redtick.keys import validate_name

__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_VARY",
    "CachedResponse",
    "RequestKey",
    "ResponseCache",
    "ResponseCacheMiddleware",
    "cache_response",
]

log = logging.getLogger("redtick.web")

DEFAULT_VARY = ("accept",)
"""Request headers other than credentials that take part in the cache key by default."""

CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
"""Request headers that always take part in the key: one caller's response is never another's.

Add the app's own credential headers with ``vary_on_headers=["X-Api-Key"]``. Their values only
ever enter a key through a SHA-256 digest.
"""

_CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
# Hop-by-hop and per-response headers that must not be replayed from a stored entry.
_NOT_REPLAYED = frozenset({"content-length", "date", "server", "transfer-encoding", "connection", "etag"})
# A handler's Cache-Control with any of these means "not for a shared store".
_PERSONAL_DIRECTIVES = frozenset({"no-store", "private", "no-cache"})


@dataclasses.dataclass(frozen=True)
class CachedResponse:
    """One response as produced or stored: status, replayable headers, body and its strong ETag."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    etag: str

    @classmethod
    def build(cls, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> CachedResponse:
        kept = tuple((k.lower(), v) for k, v in headers if k.lower() not in _NOT_REPLAYED)
        return cls(status, kept, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def header(self, name: str) -> str:
        """Every value of one header, comma-joined ("" if absent)."""
        return ", ".join(v for k, v in self.headers if k == name)

    def storable(self, keyed_headers: Iterable[str] = ()) -> bool:
        """True if this response may be stored and served to other requests with the same key.

        Only a 200 qualifies, and not one that sets a cookie, says ``no-store``, ``private`` or
        ``no-cache``, or varies on a request header that is not in the key (``keyed_headers``).
        """
        if self.status != 200 or any(k == "set-cookie" for k, _ in self.headers):
            return False
        directives = {d.strip().split("=", 1)[0].lower() for d in self.header("cache-control").split(",")}
        if directives & _PERSONAL_DIRECTIVES:
            return False
        varies = {v.strip().lower() for v in self.header("vary").split(",") if v.strip()}
        return "*" not in varies and varies <= set(keyed_headers)

    def to_mapping(self) -> dict[EncodableT, EncodableT]:
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


def _header_values(headers: Any, name: str) -> list[str]:
    if isinstance(headers, Headers):
        return headers.getlist(name)
    value = headers.get(name)
    return [] if value is None else [value]


# In-flight productions per event loop and key: concurrent misses await one task (single flight).
_inflight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[CachedResponse]]] = (
    weakref.WeakKeyDictionary()
)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Mark the exception as seen even if every waiter was cancelled, so asyncio does not log it.
    if not task.cancelled():
        task.exception()


@dataclasses.dataclass(frozen=True)
class RequestKey:
    """What the cache decided about one request: its Redis key (None: not cached) and whether it is credentialed."""

    key: str | None
    credentialed: bool


class ResponseCache:
    """Keys, storage, single flight and HTTP headers shared by the decorator and the middleware.

    A request's key is a SHA-256 of its method, scheme, host, path, sorted query, the ``vary``
    headers and every credential it carries (Authorization, Cookie, Proxy-Authorization and the
    ``vary_on_headers``). A request whose query holds a parameter outside ``query_params`` is
    not cached at all, so no query string the app does not read can create a Redis key.

    Parameters
    ----------
    ttl : int
        Seconds a response stays cached; also sent as ``Cache-Control: max-age``.
    key_prefix : str
        Family of the keys, ``<namespace>:http:<key_prefix>:<digest>``.
    vary : iterable of str
        Non-credential request headers that make two requests different (default: Accept).
    vary_on_headers : iterable of str
        The app's own credential headers (``X-Api-Key``...), keyed like Authorization and Cookie.
    conn : Connection, optional
        Redis to use; by default the app's (``app.state.redtick_conn``) or ``redtick.connect()``.
    query_params : iterable of str, optional
        Query parameters that take part in the key; a request with any other is served uncached.
        None (the decorator's default) means the parameters the FastAPI route declares.
    private : bool
        Cache responses to credentialed requests (keyed by their credentials, sent with
        ``Cache-Control: private``); False serves them uncached.

    Examples
    --------
    >>> cache = ResponseCache(ttl=30, key_prefix="market_data")
    >>> cache.digest("GET", "https", "api.example.com", "/market/BTCUSDT", [("b", "2"), ("a", "1")], {}) == \\
    ...     cache.digest("GET", "https", "api.example.com", "/market/BTCUSDT", [("a", "1"), ("b", "2")], {})
    True
    """

    def __init__(
        self,
        ttl: int = 60,
        key_prefix: str = "response",
        *,
        vary: Iterable[str] = DEFAULT_VARY,
        vary_on_headers: Iterable[str] = (),
        conn: Connection | None = None,
        query_params: Iterable[str] | None = None,
        private: bool = True,
    ):
        self.ttl = check_ttl(ttl)
        self.key_prefix = validate_name(key_prefix, "response cache prefix")
        self.credentials = tuple(sorted({*CREDENTIAL_HEADERS, *(h.lower() for h in vary_on_headers)}))
        self.vary = tuple(sorted({h.lower() for h in vary} - set(self.credentials)))
        self.conn = conn
        self.query_params = None if query_params is None else frozenset(query_params)
        self.private = private
        self._declared: dict[int, tuple[Any, frozenset[str]]] = {}
        self._degraded = False

    def __repr__(self) -> str:
        return (f"ResponseCache(ttl={self.ttl}, key_prefix={self.key_prefix!r}, vary={self.vary}, "
                f"credentials={self.credentials})")

    @property
    def keyed_headers(self) -> tuple[str, ...]:
        """Every request header in the key, as the response's ``Vary`` lists them."""
        return tuple(sorted({*self.vary, *self.credentials}))

    # -- keys ------------------------------------------------------------------------------------
    def digest(self, method: str, scheme: str, host: str, path: str, query: Iterable[tuple[str, str]],
               headers: Any) -> str:
        """SHA-256 of the request's method, scheme, host, path, sorted query and keyed headers.

        The same in every process: Python's ``hash()`` is salted per process, so it is never used.
        """
        material = [method.upper(), scheme.lower(), host.lower(), path, sorted(query),
                    [(h, _header_values(headers, h)) for h in self.keyed_headers]]
        return hashlib.sha256(codec.dumps(material)).hexdigest()

    def _allowed_query(self, request: Request) -> frozenset[str]:
        if self.query_params is not None:
            return self.query_params
        route = request.scope.get("route")
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            return frozenset()
        known = self._declared.get(id(route))
        if known is None or known[0] is not route:  # routes are unhashable: by id, holding the route
            names: set[str] = set()
            stack = [dependant]
            while stack:  # the route's own query parameters and those of its dependencies
                current = stack.pop()
                names.update(field.alias for field in current.query_params)
                stack.extend(current.dependencies)
            known = self._declared[id(route)] = (route, frozenset(names))
        return known[1]

    def request_key(self, conn: Connection, request: Request) -> RequestKey:
        """The Redis key of ``request``, or a None key when it must not be cached."""
        headers = request.headers
        credentialed = any(v for h in self.credentials for v in headers.getlist(h))
        query = request.query_params.multi_items()
        allowed = self._allowed_query(request)
        if (credentialed and not self.private) or any(name not in allowed for name, _ in query):
            return RequestKey(None, credentialed)
        digest = self.digest(request.method, request.url.scheme, request.url.netloc, request.url.path, query, headers)
        return RequestKey(conn.keys.response(self.key_prefix, digest), credentialed)

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
        return (CachedResponse.from_mapping(cast(dict[bytes, bytes], raw)) if raw else None), True  # a bytes client

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
        running the handler, and share its result only if it is storable: a response that sets a
        cookie, an error, or anything else personal goes to the request that produced it alone,
        and every other waiter runs its own. The production runs in its own task, so a waiter
        that disconnects does not cancel it for the others.
        """
        entry, reachable = await self.load(conn, key)
        conn.metrics.cache("http_response").read(self.key_prefix, entry is not None)
        if entry is not None:
            return entry, True
        flights = _inflight.setdefault(asyncio.get_running_loop(), {})
        task = flights.get(key)
        leader = task is None
        if task is None:
            task = asyncio.ensure_future(self._produce(conn, key, produce, reachable))
            flights[key] = task
            task.add_done_callback(_retrieve)
            task.add_done_callback(lambda done: flights.pop(key, None) if flights.get(key) is done else None)
        if leader:
            return await asyncio.shield(task), False
        try:
            shared = await asyncio.shield(task)
        except Exception:  # the leader's failure is its own: this request gets its own answer
            return await produce(), False
        if not shared.storable(self.keyed_headers):
            return await produce(), False
        return shared, False

    async def _produce(self, conn: Connection, key: str, produce: Callable[[], Awaitable[CachedResponse]],
                       reachable: bool) -> CachedResponse:
        entry = await produce()
        if reachable and entry.storable(self.keyed_headers):
            await self.save(conn, key, entry)
        return entry

    # -- HTTP ------------------------------------------------------------------------------------
    def _vary(self, entry: CachedResponse) -> str:
        names = {h.title() for h in self.keyed_headers}
        names |= {v.strip() for v in entry.header("vary").split(",") if v.strip()}
        return ", ".join(sorted(names))

    def respond(self, entry: CachedResponse, hit: bool | None, request: Request, credentialed: bool) -> Response:
        """The response to send: the entry with cache headers, or 304 if the client has it.

        ``hit`` is None for a request that was not cached at all (``X-Cache: BYPASS``).
        """
        label = "BYPASS" if hit is None else "HIT" if hit else "MISS"
        if hit is None or not entry.storable(self.keyed_headers):
            response = Response(entry.body, status_code=entry.status)
            for name, value in entry.headers:
                if name != "vary":
                    response.headers.append(name, value)
            response.headers["Vary"] = self._vary(entry)
            response.headers["X-Cache"] = label
            if "cache-control" not in response.headers:
                response.headers["Cache-Control"] = "no-store"  # what this cache would not keep, nobody should
            return response
        cache_headers = {
            "X-Cache": label,
            "ETag": entry.etag,
            # A shared cache must not hand one caller's credentialed response to another.
            "Cache-Control": f"{'private, ' if credentialed else ''}max-age={self.ttl}",
            "Vary": self._vary(entry),
        }
        if _etag_matches(request.headers.get("if-none-match"), entry.etag):
            return Response(status_code=304, headers=cache_headers)
        response = Response(entry.body, status_code=entry.status, headers=cache_headers)
        for name, value in entry.headers:
            if name not in ("vary", "cache-control"):
                response.headers.append(name, value)
        return response

    async def serve(self, request: Request, produce: Callable[[], Awaitable[CachedResponse]]) -> Response:
        """Answer ``request`` from the cache or by ``produce``: the whole decorator and middleware flow."""
        if request.method not in _CACHEABLE_METHODS:
            return self.respond(await produce(), None, request, False)
        conn = self.connection_for(request)
        decided = self.request_key(conn, request)
        if decided.key is None:
            return self.respond(await produce(), None, request, decided.credentialed)
        entry, hit = await self.fetch(conn, decided.key, produce)
        return self.respond(entry, hit, request, decided.credentialed)


def _entry_from_result(result: Any) -> CachedResponse:
    if isinstance(result, Response):
        if not hasattr(result, "body"):
            raise TypeError("cache_response cannot cache a streaming response; return the whole body")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in result.raw_headers]
        return CachedResponse.build(result.status_code, headers, bytes(result.body))
    rendered = JSONResponse(jsonable_encoder(result))
    return CachedResponse.build(200, [("content-type", "application/json")], bytes(rendered.body))


def _request_parameter(func: Callable[..., Any]) -> str:
    for name, param in inspect.signature(func, eval_str=True).parameters.items():
        if isinstance(param.annotation, type) and issubclass(param.annotation, Request):
            return name
    raise TypeError(f"{func.__qualname__} needs a `request: Request` parameter for cache_response to key on")


def cache_response(
    ttl: int = 60,
    key_prefix: str = "response",
    *,
    vary: Iterable[str] = DEFAULT_VARY,
    vary_on_headers: Iterable[str] = (),
    conn: Connection | None = None,
    private: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Cache a FastAPI GET endpoint's response in Redis for ``ttl`` seconds.

    The key is a SHA-256 of the method, scheme, host, path, sorted query, the ``vary`` headers
    and every credential the request carries (Authorization, Cookie, Proxy-Authorization and the
    ``vary_on_headers`` the app names, such as ``X-Api-Key``), so it is the same in every process
    and one caller's response is never another's; injected dependencies never take part. A
    request with a query parameter the route does not declare is not cached (``X-Cache:
    BYPASS``), so no query string can create a key. Responses carry ``X-Cache: HIT|MISS``,
    ``Vary`` naming the keyed headers, ``Cache-Control: max-age=<ttl>`` (``private, ...`` for a
    credentialed request) and a strong ETag of the body; a matching ``If-None-Match`` gets 304.

    Only a 200 without ``Set-Cookie``, ``Cache-Control: no-store/private/no-cache`` or a ``Vary``
    outside the key is stored or shared. Concurrent misses with one key run the endpoint once
    and share its result only if it is storable; otherwise each runs its own. If Redis fails,
    the endpoint's own response is served uncached and one warning is logged. The endpoint's
    return value is rendered as FastAPI renders JSON (``jsonable_encoder``), or used as-is if it
    is a ``Response`` with a body. Route dependencies (authentication) run on every request,
    hit or miss, before the cache is consulted: behind authentication, only credentials that
    passed it make keys. An endpoint without authentication should pass ``private=False``, so
    that made-up credentials cannot make keys either: credentialed requests are then served
    uncached.

    Parameters
    ----------
    ttl : int
        Seconds to keep a response.
    key_prefix : str
        Names the key family, ``<namespace>:http:<key_prefix>:...``.
    vary : iterable of str
        Non-credential request headers that take part in the key (default: Accept).
    vary_on_headers : iterable of str
        The app's own credential headers, keyed like Authorization and Cookie.
    conn : Connection, optional
        Redis to use; by default the app's (``app.state.redtick_conn``) or ``redtick.connect()``.
    private : bool
        Cache responses to credentialed requests, keyed by their credentials and sent with
        ``Cache-Control: private`` (default); False serves them uncached.

    Examples
    --------
    >>> from fastapi import APIRouter, Request
    >>> router = APIRouter()
    >>> @router.get("/market/{symbol}")
    ... @cache_response(ttl=30, key_prefix="market_data", vary_on_headers=["X-Api-Key"])
    ... async def get_market_data(symbol: str, request: Request):
    ...     return {"symbol": symbol, "price": 50000.0}
    """
    cache = ResponseCache(ttl, key_prefix, vary=vary, vary_on_headers=vary_on_headers, conn=conn, private=private)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"cache_response needs an async endpoint; {func.__qualname__} is not")
        request_name = _request_parameter(func)
        signature = inspect.signature(func, eval_str=True)

        @functools.wraps(func)
        async def endpoint(*args: Any, **kwargs: Any) -> Any:
            request = signature.bind_partial(*args, **kwargs).arguments[request_name]
            if request.method not in _CACHEABLE_METHODS:
                return await func(*args, **kwargs)

            async def produce() -> CachedResponse:
                return _entry_from_result(await func(*args, **kwargs))

            return await cache.serve(request, produce)

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

    It runs before the app's routing and authentication, so by default it caches only requests
    that carry no credential (no Authorization, Cookie, Proxy-Authorization or
    ``vary_on_headers``) and no query parameter outside ``query_params``; others pass through
    uncached (``X-Cache: BYPASS``). With ``private=True`` credentialed requests are cached too,
    keyed by their credentials: a revoked credential then still gets its cached responses until
    they expire, which is why that is not the default.

    Parameters
    ----------
    app : ASGI app
    ttl, key_prefix, vary, vary_on_headers, conn
        As for :func:`cache_response`.
    paths : iterable of str
        Path prefixes whose GET responses are cached (default: every path).
    query_params : iterable of str
        Query parameters that take part in the key (default: none, so any query string bypasses).
    private : bool
        Also cache credentialed requests, keyed by their credentials (default False).

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
        vary_on_headers: Iterable[str] = (),
        conn: Connection | None = None,
        query_params: Iterable[str] = (),
        private: bool = False,
    ):
        self.app = app
        self.cache = ResponseCache(ttl, key_prefix, vary=vary, vary_on_headers=vary_on_headers, conn=conn,
                                   query_params=query_params, private=private)
        self.paths = tuple(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _CACHEABLE_METHODS
            or not scope["path"].startswith(self.paths)
        ):
            await self.app(scope, receive, send)
            return

        async def produce() -> CachedResponse:
            capture = _Capture()
            await self.app(scope, receive, capture)
            return capture.entry()

        response = await self.cache.serve(Request(scope, receive), produce)
        await response(scope, receive, send)
