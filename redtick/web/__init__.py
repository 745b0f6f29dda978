"""redtick's HTTP face: the FastAPI app and router, response caching (FastAPI lives only here)."""

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
]
