"""``RequestGuard``: the ASGI middleware that bounds every request (URL, body, time) before the app sees it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from redtick.web.settings import WebSettings

__all__ = ["RATE_LIMIT_HEADERS", "RequestGuard", "error_message"]

log = logging.getLogger("redtick.web")

RATE_LIMIT_HEADERS = "redtick.rate_limit_headers"
"""Key in the request's ``scope["state"]`` under which handlers leave rate-limit headers to send."""

_DEADLINE_LOG_EVERY = 10.0  # seconds between two log lines about requests cut off by the deadline
_MAX_PATH_BYTES = 1024  # the longest real path is ~110 bytes; anything near this is an attack
# Added to every response that does not set them: a JSON API is never framed, sniffed or stored
# by a shared cache unless a handler says otherwise (the response cache sets its own Cache-Control).
_DEFAULT_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


def error_message(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> list[Message]:
    """The ASGI messages of a JSON error response shaped as ``models.ErrorResponse``."""
    body = orjson.dumps({"status": "error", "error": kind, "message": message})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return [
        {"type": "http.response.start", "status": status, "headers": raw},
        {"type": "http.response.body", "body": body},
    ]


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes the limit; whatever the app makes of it, 413 goes out."""


class _Exchange:
    """What the guard knows about one request in flight."""

    __slots__ = ("body_bytes", "response_started", "too_large", "waiting_for_body")

    def __init__(self) -> None:
        self.body_bytes = 0
        self.too_large = False
        self.waiting_for_body = False
        self.response_started = False


def _host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower()
    return any(name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])) for pattern in allowed)


class RequestGuard:
    """Bound every HTTP request before the app (routing, body parsing, authentication) sees it.

    - a query string longer than ``max_query_bytes`` (or a path over 1 KiB) gets 414;
    - a ``Host`` outside ``allowed_hosts`` (when set) gets 400;
    - a ``Content-Length`` above ``max_body_bytes`` gets 413 without reading the body; a body
      without one is counted while it streams in and cut off with 413 at the limit;
    - a request still running after ``request_timeout`` seconds gets 503 with ``Retry-After``
      (408 if the client was still sending its body), whatever Redis or the handler is doing;
    - every response gets ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy``
      and, unless it set its own, ``Cache-Control: no-store``, plus the rate-limit headers that
      handlers left in ``scope["state"][RATE_LIMIT_HEADERS]``.

    Every refusal is a JSON body shaped as ``models.ErrorResponse``.

    Parameters
    ----------
    app : ASGI app
    settings : WebSettings
        The limits; defaults to :meth:`WebSettings.from_env`.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.add_middleware(RequestGuard, settings=WebSettings(max_body_bytes=4096, request_timeout=2.0))
    """

    def __init__(self, app: ASGIApp, *, settings: WebSettings | None = None):
        self.app = app
        self.settings = settings or WebSettings.from_env()
        self._deadlines_passed = 0
        self._deadline_logged_at = -float("inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await self._respond(scope, send, error_message(*refusal))
            return
        scope.setdefault("state", {})  # one dict shared by every copy of the scope further in
        exchange = _Exchange()
        limit = self.settings.max_body_bytes
        try:
            async with asyncio.timeout(self.settings.request_timeout) as deadline:
                await self.app(scope, self._guarded_receive(receive, exchange),
                               self._guarded_send(scope, send, exchange))
        except _BodyTooLarge:
            pass  # answered below
        except TimeoutError:
            if not deadline.expired():
                raise  # the app's own timeout error, not the deadline
            await self._deadline_passed(scope, exchange, send)
            return
        if exchange.too_large and not exchange.response_started:
            await self._respond(scope, send, error_message(
                413, "ContentTooLarge", f"the request body is larger than {limit} bytes", {"Connection": "close"}))

    def _guarded_receive(self, receive: Receive, exchange: _Exchange) -> Receive:
        """``receive`` counting the body into ``exchange``; past ``max_body_bytes`` it raises _BodyTooLarge."""
        limit = self.settings.max_body_bytes

        async def guarded_receive() -> Message:
            exchange.waiting_for_body = True  # still set if the deadline cancels the wait: then it is a 408
            message = await receive()
            exchange.waiting_for_body = False
            if message["type"] == "http.request":
                exchange.body_bytes += len(message.get("body", b""))
                if exchange.body_bytes > limit:
                    exchange.too_large = True
                    raise _BodyTooLarge
            return message

        return guarded_receive

    def _guarded_send(self, scope: Scope, send: Send, exchange: _Exchange) -> Send:
        """``send`` adding the default headers to the response's start, and silent once the body was cut off."""

        async def guarded_send(message: Message) -> None:
            if exchange.too_large and not exchange.response_started:
                return  # the app's answer to the cut-off body (often a 400) is replaced by the 413
            if message["type"] == "http.response.start":
                exchange.response_started = True
                message = {**message, "headers": self._with_default_headers(scope, message.get("headers", []))}
            await send(message)

        return guarded_send

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """(status, kind, message) for a request refused on its head alone, else None."""
        settings = self.settings
        if len(scope.get("query_string", b"")) > settings.max_query_bytes:
            return 414, "URITooLong", f"the query string is longer than {settings.max_query_bytes} bytes"
        if len(scope.get("raw_path") or scope["path"].encode()) > _MAX_PATH_BYTES:
            return 414, "URITooLong", f"the path is longer than {_MAX_PATH_BYTES} bytes"
        headers = Headers(scope=scope)
        if settings.allowed_hosts is not None and not _host_allowed(headers.get("host", ""), settings.allowed_hosts):
            return 400, "InvalidHost", "this server does not answer for that Host"
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, "InvalidContentLength", "Content-Length is not a whole number"
            if int(length) > settings.max_body_bytes:
                return 413, "ContentTooLarge", f"the request body is larger than {settings.max_body_bytes} bytes"
        return None

    def _with_default_headers(self, scope: Scope, raw: Any) -> list[tuple[bytes, bytes]]:
        headers = list(raw)
        present = {name.lower() for name, _ in headers}
        headers += [(name, value) for name, value in _DEFAULT_HEADERS if name not in present]
        limits = scope.get("state", {}).get(RATE_LIMIT_HEADERS) or {}
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in limits.items()
                    if k.lower().encode("latin-1") not in present]
        return headers

    def _log_deadline(self, scope: Scope) -> None:
        # An outage makes every request pass the deadline: one line per 10 s, with a count, not one each.
        self._deadlines_passed += 1
        now = time.monotonic()
        if now - self._deadline_logged_at >= _DEADLINE_LOG_EVERY:
            log.warning("%d request(s) passed the %.3gs deadline since the last report (latest: %s %s)",
                        self._deadlines_passed, self.settings.request_timeout, scope["method"], scope["path"][:120])
            self._deadlines_passed, self._deadline_logged_at = 0, now

    async def _deadline_passed(self, scope: Scope, exchange: _Exchange, send: Send) -> None:
        timeout = self.settings.request_timeout
        self._log_deadline(scope)
        if exchange.response_started:
            return  # too late to change the status; the server closes the unfinished response
        if exchange.waiting_for_body:
            messages = error_message(408, "RequestTimeout", f"the request body did not arrive within {timeout:g} s",
                                     {"Connection": "close"})
        else:
            messages = error_message(503, "Timeout", f"the request took longer than {timeout:g} s; try again shortly",
                                     {"Retry-After": "1"})
        await self._respond(scope, send, messages)

    async def _respond(self, scope: Scope, send: Send, messages: list[Message]) -> None:
        messages[0]["headers"] = self._with_default_headers(scope, messages[0]["headers"])
        for message in messages:
            await send(message)
