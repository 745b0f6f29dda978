"""redtick's HTTP face: the FastAPI app and router, response caching, request limits (FastAPI lives only here)."""

from redtick.extras import require

# Every module of this package imports FastAPI (or Starlette, which it brings): without the api extra,
# one line saying what to install instead of a ModuleNotFoundError from whichever module came first.
require("fastapi", "redtick.web (the HTTP API)")

from redtick.web.app import create_app, router  # noqa: E402
from redtick.web.guard import RequestGuard  # noqa: E402
from redtick.web.response_cache import (  # noqa: E402
    CREDENTIAL_HEADERS,
    DEFAULT_VARY,
    CachedResponse,
    ResponseCache,
    ResponseCacheMiddleware,
    cache_response,
)
from redtick.web.settings import WebSettings  # noqa: E402

__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_VARY",
    "CachedResponse",
    "RequestGuard",
    "ResponseCache",
    "ResponseCacheMiddleware",
    "WebSettings",
    "cache_response",
    "create_app",
    "router",
]
