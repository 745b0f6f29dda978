"""Pydantic shapes of the HTTP API's responses, as the platform doc's examples show them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Every error: what kind and what was wrong."""

    status: Literal["error"] = "error"
    error: str = Field(description="Error kind, such as InvalidKey, Unavailable, AuthError")
    message: str
    detail: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems for bad input")


class MemoryFacts(BaseModel):
    available: bool
    used_bytes: int | None
    maxmemory_bytes: int | None
    percent: float | None
    warning: bool


class RedisInfo(BaseModel):
    version: str | None
    used_memory: str | None = Field(description="Human-readable, such as 2.5M")
    connected_clients: int | None
    uptime: int | None = Field(description="Seconds since the server started")
    backend: Literal["redis", "memory"]
    unavailable: list[str] = Field(description="Facts this server cannot give (the in-memory fakeredis has no INFO)")
    memory: MemoryFacts | None = None
    keyspace: dict[str, int] | None = Field(
        default=None, description="The server's keyspace hits, misses, expired and evicted keys (INFO stats)"
    )


class KeyCount(BaseModel):
    total_keys: int | None
    hit_rate: float | None = Field(default=None, description="Hits / (hits + misses) in this process; None before a read")
    hits: int = 0
    misses: int = 0


class MaintenanceFacts(BaseModel):
    interval_seconds: float
    runs: int
    failures: int
    last_run_at: float | None
    last_ok: bool | None


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    redis_connected: bool
    redis_info: RedisInfo
    cache_stats: dict[str, KeyCount]
    hit_rate: float | None = Field(default=None, description="Over every cache, in this process")
    is_running: bool
    maintenance: MaintenanceFacts
    error: str | None = None


class CacheSummary(BaseModel):
    namespace: str
    total_keys: int
    symbol_count: int
    caches: dict[str, int]
    families: dict[str, int]
    hit_rates: dict[str, float | None] = Field(default_factory=dict, description="Per cache, in this process")
    metrics: dict[str, Any] | None = Field(default=None, description="Hits, misses, writes, expired, errors per cache")


class StatsResponse(BaseModel):
    status: Literal["success"] = "success"
    data: CacheSummary


class CleanupResponse(BaseModel):
    status: Literal["success"] = "success"
    data: dict[str, int]


class ClearResult(BaseModel):
    namespace: str
    deleted_keys: int


class ClearResponse(BaseModel):
    status: Literal["success"] = "success"
    data: ClearResult


class Session(BaseModel):
    session_id: str
    user_id: str
    data: Any = None
    activity: Any = None
    created_at: int = Field(description="Epoch ms")
    last_activity: int = Field(description="Epoch ms")
    expires_at: int = Field(description="Epoch ms")


class SessionsResponse(BaseModel):
    status: Literal["success"] = "success"
    data: list[Session]


class PriceAlertRequest(BaseModel):
    symbol: str = Field(description="1-32 of A-Z 0-9 . _ - /", examples=["BTCUSDT"])
    target_price: float = Field(allow_inf_nan=False, examples=[55000.0],
                                description="Any finite price: spreads and some markets go to zero or below")
    condition: Literal["above", "below", "crosses"] = "above"
    ttl: int | None = Field(default=None, gt=0, le=365 * 86_400, description="Seconds the alert lives")


class PriceAlert(BaseModel):
    alert_id: str
    user_id: str
    symbol: str
    condition: str
    target_price: float
    created_at: int = Field(description="Epoch ms")
    expires_at: int = Field(description="Epoch ms")


class PriceAlertsResponse(BaseModel):
    status: Literal["success"] = "success"
    data: list[PriceAlert]


class AlertCreated(BaseModel):
    alert_id: str


class AlertCreatedResponse(BaseModel):
    status: Literal["success"] = "success"
    data: AlertCreated


class AlertDeleted(BaseModel):
    alert_id: str
    deleted: bool


class AlertDeletedResponse(BaseModel):
    status: Literal["success"] = "success"
    data: AlertDeleted


class MarketData(BaseModel):
    symbol: str
    price: dict[str, Any] | None
    order_book: dict[str, Any] | None
    trade: dict[str, Any] | None = Field(description="The latest trade")
    stats_24h: dict[str, Any] | None


class MarketDataResponse(BaseModel):
    status: Literal["success"] = "success"
    data: MarketData


class PriceData(BaseModel):
    model_config = {"extra": "allow"}

    symbol: str
    price: float
    change_1h: dict[str, Any] | None
    change_24h: dict[str, Any] | None


class PriceResponse(BaseModel):
    status: Literal["success"] = "success"
    data: PriceData


class Symbols(BaseModel):
    symbols: list[str]
    count: int


class SymbolsResponse(BaseModel):
    status: Literal["success"] = "success"
    data: Symbols
