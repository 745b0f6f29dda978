"""Pydantic shapes of the HTTP API's requests and responses, as the platform doc's examples show them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from redtick.keys import SYMBOL_MAX_LENGTH, SYMBOL_RESERVED, SYMBOL_RULE, validate_symbol

# The key rules of redtick.keys as the HTTP schema states them. A JSON-schema pattern has no
# portable way to say "printable" or "NFC" for all of Unicode (no \p{...} in Python's re, no
# lookahead in Pydantic's Rust regex), so the symbol pattern is exact over Latin-1 (controls,
# spaces, the soft hyphen, the reserved characters, "." and ".." alone are out) and wider beyond;
# validate_symbol itself checks every symbol wherever it enters. tests/test_web_attacks.py holds
# the pattern to the validator.
_NOT_IN_SYMBOL = r"\x00-\x20\x7f-\xa0\xad" + re.escape(SYMBOL_RESERVED)
_ANY, _NOT_DOT = f"[^{_NOT_IN_SYMBOL}]", f"[^{_NOT_IN_SYMBOL}.]"
_MORE = SYMBOL_MAX_LENGTH - 1
SYMBOL_PATTERN = (rf"^(?:{_NOT_DOT}{_ANY}{{0,{_MORE}}}|\.{_NOT_DOT}{_ANY}{{0,{_MORE - 1}}}"
                  rf"|\.\.{_ANY}{{1,{_MORE - 1}}})$")
SYMBOL_DESCRIPTION = (f"{SYMBOL_RULE[0].upper()}{SYMBOL_RULE[1:]}, in Unicode NFC, and not . or .. alone. "
                      "In a path, percent-encode it: EUR/USD is EUR%2FUSD")
USER_ID_PATTERN = r"^[A-Za-z0-9._@:-]{1,64}$"
ALERT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
SESSION_HANDLE_PATTERN = r"^[0-9a-f]{16}$"
MAX_ABS_PRICE = 1e15


class ErrorResponse(BaseModel):
    """Every error: what kind and what was wrong."""

    status: Literal["error"] = "error"
    error: str = Field(description="Error kind, such as InvalidKey, Unavailable, AuthError")
    message: str
    detail: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems for bad input")


class PublicHealth(BaseModel):
    """What anyone may know: whether Redis answers, and how fast it did at the last probe."""

    status: Literal["healthy", "unhealthy"]
    latency_ms: float | None = Field(description="Round trip of the last PING, shared by every caller for 2 s")


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
    handle: str = Field(pattern=SESSION_HANDLE_PATTERN,
                        description="A short digest of the session; names it for revocation, never usable as a token")
    user_id: str
    current: bool = Field(description="True for the session that made this request")
    data: Any = None
    activity: Any = None
    created_at: int = Field(description="Epoch ms")
    last_activity: int = Field(description="Epoch ms")
    expires_at: int = Field(description="Epoch ms")


class SessionsResponse(BaseModel):
    status: Literal["success"] = "success"
    data: list[Session]
    next_cursor: str | None = Field(
        default=None, description="Present only when more sessions follow: pass it as `cursor` for the next page"
    )


class SessionsRevoked(BaseModel):
    revoked: int = Field(description="Live sessions ended")


class SessionsRevokedResponse(BaseModel):
    status: Literal["success"] = "success"
    data: SessionsRevoked


class PriceAlertRequest(BaseModel):
    """A new alert; unknown fields, booleans or strings for numbers, NaN and infinities are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    symbol: Annotated[str, AfterValidator(validate_symbol)] = Field(
        pattern=SYMBOL_PATTERN, min_length=1, max_length=SYMBOL_MAX_LENGTH, description=SYMBOL_DESCRIPTION,
        examples=["BTCUSDT"],
    )
    target_price: float = Field(
        strict=True, allow_inf_nan=False, ge=-MAX_ABS_PRICE, le=MAX_ABS_PRICE, examples=[55000.0],
        description="A finite JSON number (not a string or boolean); zero and negative prices are real (spreads)",
    )
    condition: Literal["above", "below", "crosses"] = "above"
    ttl: int | None = Field(default=None, strict=True, gt=0, le=365 * 86_400, description="Seconds the alert lives")


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
    next_cursor: str | None = Field(
        default=None, description="Present only when more alerts follow: pass it as `cursor` for the next page"
    )


class FiredPriceAlert(BaseModel):
    alert_id: str
    symbol: str
    condition: str
    target_price: float
    price: float = Field(description="The price of the tick that met the condition")
    fired_at: int = Field(description="Epoch ms of the tick that met the condition (the market's clock)")
    recorded_at: int = Field(description="Epoch ms of the write that fired it (the server's wall clock)")
    created_at: int = Field(description="Epoch ms")


class FiredPriceAlertsResponse(BaseModel):
    status: Literal["success"] = "success"
    data: list[FiredPriceAlert]
    next_cursor: str | None = Field(
        default=None, description="Present only when more alerts follow: pass it as `cursor` for the next page"
    )


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
