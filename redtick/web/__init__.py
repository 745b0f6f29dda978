"""redtick's HTTP face: the FastAPI app and router, response caching, request limits (FastAPI lives only here)."""

from redtick.web.app import create_app, router
from redtick.web.guard import RequestGuard
from redtick.web.response_cache import (
    CREDENTIAL_HEADERS,
    DEFAULT_VARY,
    CachedResponse,
    ResponseCache,
    ResponseCacheMiddleware,
    cache_response,
)
from redtick.web.settings import WebSettings

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
