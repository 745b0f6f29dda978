"""redtick's HTTP face: the FastAPI app and router, response caching (FastAPI lives only here)."""

from redtick.web.app import create_app, router
from redtick.web.response_cache import (
    DEFAULT_VARY,
    CachedResponse,
    ResponseCache,
    ResponseCacheMiddleware,
    cache_response,
)

__all__ = [
    "DEFAULT_VARY",
    "CachedResponse",
    "ResponseCache",
    "ResponseCacheMiddleware",
    "cache_response",
    "create_app",
    "router",
]
