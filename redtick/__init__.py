"""redtick: a Redis-backed market data cache for a trading backend, and a research toolkit over it."""

import importlib.metadata
from typing import Any

from redtick import datasets, snapshot
from redtick.backup import backup, backup_manifest, restore
from redtick.caches.alert_feed import FiredAlertFeed, FiredAlertFeedSync, fired_alerts
from redtick.caches.alerts import FiredAlert, PriceAlerts
from redtick.caches.base import BaseCache, EncryptedCache
from redtick.caches.market import MarketDataCache, market_data_cache
from redtick.caches.prices import PriceCache, price_cache
from redtick.caches.ratelimit import RateLimiter, RateLimitState
from redtick.caches.repository import cached_repository
from redtick.caches.sessions import UserSessionCache, user_session_cache
from redtick.catalog import SeriesInfo, compact, describe, list_symbols, upgrade
from redtick.client import RedisClient, redis_client
from redtick.config import Settings, get_settings
from redtick.connection import Connection, connect
from redtick.errors import (
    AuthError,
    BackupCorrupt,
    ConfigurationError,
    ConflictError,
    CredentialsRefused,
    Forbidden,
    InvalidData,
    InvalidKey,
    MissingExtra,
    NotFound,
    RateLimited,
    RedisError,
    RedisTimeout,
    RedtickError,
    RestoreConflict,
    RestoreIncomplete,
    SymbolNotFound,
    Unavailable,
    UpgradeNeeded,
)
from redtick.feed import AsyncTickWatch, TickWatch, watch, watch_async
from redtick.frames import load_ohlcv, load_ticks, write_candles, write_ticks
from redtick.keys import KeySchema
from redtick.lookups import asof
from redtick.metrics import Metrics
from redtick.series import WriteResult
from redtick.service import CacheService, cache_service

try:
    # Written once, in pyproject.toml; the installed metadata carries it to the CLI and the HTTP API.
    __version__ = importlib.metadata.version("redtick")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AsyncTickWatch",
    "AuthError",
    "BackupCorrupt",
    "BaseCache",
    "CacheService",
    "ConfigurationError",
    "ConflictError",
    "Connection",
    "CredentialsRefused",
    "EncryptedCache",
    "FiredAlert",
    "FiredAlertFeed",
    "FiredAlertFeedSync",
    "Forbidden",
    "InvalidData",
    "InvalidKey",
    "KeySchema",
    "MarketDataCache",
    "Metrics",
    "MissingExtra",
    "NotFound",
    "PriceAlerts",
    "PriceCache",
    "RateLimitState",
    "RateLimited",
    "RateLimiter",
    "RedisClient",
    "RedisError",
    "RedisTimeout",
    "RedtickError",
    "RestoreConflict",
    "RestoreIncomplete",
    "SeriesInfo",
    "Settings",
    "SymbolNotFound",
    "TickWatch",
    "Unavailable",
    "UpgradeNeeded",
    "UserSessionCache",
    "WriteResult",
    "asof",
    "backup",
    "backup_manifest",
    "cache_service",
    "cached_repository",
    "compact",
    "connect",
    "datasets",
    "describe",
    "fired_alerts",
    "get_settings",
    "list_symbols",
    "load_ohlcv",
    "load_ticks",
    "market_data_cache",
    "price_cache",
    "redis_client",
    "restore",
    "snapshot",
    "upgrade",
    "user_session_cache",
    "watch",
    "watch_async",
    "write_candles",
    "write_ticks",
]


def __getattr__(name: str) -> Any:
    # The platform's doc imports cache_response from the package root; FastAPI stays optional, so
    # it is imported only when asked for.
    if name == "cache_response":
        from redtick.web.response_cache import cache_response

        return cache_response
    raise AttributeError(f"module 'redtick' has no attribute {name!r}")
