"""The FastAPI app and router: the platform's cache endpoints under ``/api/v1/cache``."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from redtick import errors
from redtick.connection import Connection
from redtick.keys import validate_symbol, validate_user_id
from redtick.service import CacheService, cache_service
from redtick.web import models
from redtick.web.response_cache import cache_response

__all__ = ["create_app", "router"]

API_PREFIX = "/api/v1/cache"
HEALTH_TTL = 2  # seconds; health counts keys by SCAN, so a burst of probes shares one scan
MARKET_TTL = 1  # market data moves: a second of staleness, but ETag/304 and one Redis read per burst
SYMBOLS_TTL = 5

_session_scheme = HTTPBearer(
    auto_error=False, scheme_name="SessionBearer", description="`Authorization: Bearer <session id>` of a live session"
)
_admin_scheme = APIKeyHeader(
    name="X-Admin-Token", auto_error=False, scheme_name="AdminToken",
    description="The token in REDTICK_ADMIN_TOKEN; without one configured, maintenance endpoints refuse every call",
)

# (status, error kinds) -> the HTTP status each redtick error becomes.
_STATUS_OF = (
    (errors.Forbidden, 403),
    (errors.AuthError, 401),
    (errors.NotFound, 404),
    (errors.InvalidKey, 422),
    (errors.InvalidData, 422),
    (errors.RateLimited, 429),
    (errors.ConflictError, 409),
    (errors.RedisError, 503),  # unreachable, timed out, or the server refused: all "try later"
)


def _error_body(kind: str, message: str, detail: list | None = None) -> dict[str, Any]:
    return models.ErrorResponse(error=kind, message=message, detail=detail).model_dump(exclude_none=True)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        401: "Missing or wrong credentials",
        403: "Authenticated, but not allowed",
        404: "Not found",
        422: "Bad input",
        503: "Redis is unavailable",
    }
    return {status: {"model": models.ErrorResponse, "description": described[status]} for status in statuses}


# -- dependencies --------------------------------------------------------------------------------
def get_service(request: Request) -> CacheService:
    """The app's CacheService (``app.state.cache_service``), else the module default."""
    return getattr(request.app.state, "cache_service", None) or cache_service


async def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_session_scheme)],
    service: Annotated[CacheService, Depends(get_service)],
) -> str:
    """The user id behind the bearer session; AuthError (401) for anything else."""
    if credentials is None:
        raise errors.AuthError("this endpoint needs `Authorization: Bearer <session id>`")
    user_id = await service.get_session_cache().resolve_session(credentials.credentials)
    if user_id is None:
        raise errors.AuthError("the bearer token is not a live session")
    return user_id


def require_admin(request: Request, token: Annotated[str | None, Security(_admin_scheme)]) -> None:
    """Pass only with the configured admin token; refuse everyone when none is configured."""
    expected = getattr(request.app.state, "admin_token", None)
    if not expected:
        raise errors.Forbidden("maintenance endpoints are disabled: REDTICK_ADMIN_TOKEN is not set")
    if token is None or not secrets.compare_digest(token.encode(), expected.encode()):
        raise errors.AuthError("this endpoint needs the admin token in the X-Admin-Token header")


def require_metrics_access(request: Request, token: Annotated[str | None, Security(_admin_scheme)]) -> None:
    """Pass everyone when ``/metrics`` is public (``REDTICK_METRICS_PUBLIC``), else as :func:`require_admin`."""
    if not getattr(request.app.state, "metrics_public", False):
        require_admin(request, token)


Service = Annotated[CacheService, Depends(get_service)]
User = Annotated[str, Depends(current_user)]
Admin = [Depends(require_admin)]

router = APIRouter(prefix=API_PREFIX, tags=["cache"])


# -- endpoints -----------------------------------------------------------------------------------
@router.get(
    "/health",
    response_model=models.HealthResponse,
    responses={503: {"model": models.HealthResponse, "description": "Redis is unreachable"}},
    summary="Health of Redis and the caches",
)
@cache_response(ttl=HEALTH_TTL, key_prefix="health")
async def health(request: Request, service: Service) -> Any:
    """Status, Redis facts, per-cache key counts; 503 (same shape) when Redis is unreachable."""
    report = await service.health_check()
    if report["status"] == "unhealthy":
        return JSONResponse(jsonable_encoder(report), status_code=503)
    return report


@router.get(
    "/stats",
    response_model=models.StatsResponse,
    dependencies=Admin,
    responses=_errors(401, 403, 503),
    summary="Key counts (admin)",
)
async def stats(service: Service) -> Any:
    """Total keys, symbol count, per-cache and per-family counts, by SCAN in the namespace."""
    return {"status": "success", "data": await service.get_cache_summary()}


SymbolPath = Annotated[
    str, Path(description="1-32 of A-Z 0-9 . _ - /", pattern=r"^[A-Z0-9._/-]{1,32}$", examples=["BTCUSDT"])
]


@router.get(
    "/market-data/{symbol}",
    response_model=models.MarketDataResponse,
    responses=_errors(404, 422, 503),
    summary="Cached price, order book and latest trade of a symbol",
)
@cache_response(ttl=MARKET_TTL, key_prefix="market_data")
async def market_data(symbol: SymbolPath, request: Request, service: Service) -> Any:
    """The symbol's cached price, order book, latest trade and 24h stats; 404 if none is cached."""
    market = service.get_market_cache()
    symbol = validate_symbol(symbol)
    price, book, trades, stats_24h = await asyncio.gather(
        market.get_symbol_price(symbol), market.get_order_book(symbol),
        market.get_trade_history(symbol, limit=1), market.get_24h_stats(symbol),
    )
    if price is None and book is None and not trades and stats_24h is None:
        raise errors.NotFound(f"no market data cached for {symbol}")
    data = {"symbol": symbol, "price": price, "order_book": book, "trade": trades[0] if trades else None,
            "stats_24h": stats_24h}
    return {"status": "success", "data": data}


@router.get(
    "/price/{symbol}",
    response_model=models.PriceResponse,
    responses=_errors(404, 422, 503),
    summary="Newest price of a symbol and its 1h and 24h change",
)
@cache_response(ttl=MARKET_TTL, key_prefix="price")
async def price(symbol: SymbolPath, request: Request, service: Service) -> Any:
    """The newest tick of the symbol's price series with its 1h and 24h change; 404 if none."""
    prices = service.get_price_cache()
    symbol = validate_symbol(symbol)
    quote = await prices.get_current_quote(symbol)
    if quote is None:
        raise errors.NotFound(f"no price cached for {symbol}")
    change_1h, change_24h = await asyncio.gather(
        prices.get_price_change(symbol, period_minutes=60), prices.get_price_change(symbol, period_minutes=1440)
    )
    return {"status": "success", "data": {**quote, "change_1h": change_1h, "change_24h": change_24h}}


@router.get(
    "/symbols",
    response_model=models.SymbolsResponse,
    responses=_errors(503),
    summary="Every symbol with cached market data or a price series",
)
@cache_response(ttl=SYMBOLS_TTL, key_prefix="symbols")
async def symbols(request: Request, service: Service) -> Any:
    """Symbols priced in the market cache within the last day, or with a price series."""
    market, series = await asyncio.gather(
        service.get_market_cache().get_all_symbols(), service.get_price_cache().get_all_symbols()
    )
    merged = sorted(set(market) | set(series))
    return {"status": "success", "data": {"symbols": merged, "count": len(merged)}}


@router.get(
    "/sessions/{user_id}",
    response_model=models.SessionsResponse,
    responses=_errors(401, 403, 422, 503),
    summary="The caller's own sessions",
)
async def sessions(
    user_id: Annotated[str, Path(description="Must be the caller's own user id", pattern=r"^[A-Za-z0-9._@-]{1,64}$")],
    caller: User,
    service: Service,
) -> Any:
    """The live sessions of ``user_id``, which must be the caller; anyone else's is 403."""
    validate_user_id(user_id)
    if not secrets.compare_digest(user_id.encode(), caller.encode()):
        raise errors.Forbidden("you may list only your own sessions")
    return {"status": "success", "data": await service.get_session_cache().get_user_sessions(user_id)}


@router.get(
    "/price-alerts",
    response_model=models.PriceAlertsResponse,
    responses=_errors(401, 503),
    summary="The caller's live price alerts",
)
async def price_alerts(caller: User, service: Service) -> Any:
    """The caller's live alerts, oldest first."""
    return {"status": "success", "data": await service.get_alerts().get_user_alerts(caller)}


@router.post(
    "/price-alert",
    response_model=models.AlertCreatedResponse,
    status_code=201,
    responses=_errors(401, 422, 503),
    summary="Set a price alert for the caller",
)
async def create_price_alert(alert: models.PriceAlertRequest, caller: User, service: Service) -> Any:
    """Set an alert that fires once when ``symbol`` reaches ``target_price`` (above, below, crosses)."""
    alert_id = await service.get_alerts().set_price_alert(
        caller, alert.symbol, alert.target_price, alert.condition, ttl=alert.ttl
    )
    return {"status": "success", "data": {"alert_id": alert_id}}


@router.delete(
    "/price-alert/{alert_id}",
    response_model=models.AlertDeletedResponse,
    responses=_errors(401, 404, 422, 503),
    summary="Delete one of the caller's price alerts",
)
async def delete_price_alert(
    alert_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")], caller: User, service: Service
) -> Any:
    """Delete the caller's alert; another user's alert is not found for them (404)."""
    if not await service.get_alerts().delete_price_alert(caller, alert_id):
        raise errors.NotFound(f"you have no live alert {alert_id!r}")
    return {"status": "success", "data": {"alert_id": alert_id, "deleted": True}}


@router.post(
    "/cleanup",
    response_model=models.CleanupResponse,
    dependencies=Admin,
    responses=_errors(401, 403, 503),
    summary="Clean up expired data (admin)",
)
async def cleanup(service: Service) -> Any:
    """Run :meth:`CacheService.cleanup_expired_data` now; returns what each step removed.

    Series data goes only as the configured retention says, behind each symbol's newest tick;
    with retention off (the default) no tick or candle is deleted.
    """
    return {"status": "success", "data": await service.cleanup_expired_data()}


@router.delete(
    "/clear",
    response_model=models.ClearResponse,
    dependencies=Admin,
    responses=_errors(401, 403, 422, 503),
    summary="Delete every redtick key (admin, confirm=true)",
)
async def clear(
    service: Service,
    confirm: Annotated[
        bool,
        Query(description="Must be true: this deletes every key in the namespace", json_schema_extra={"enum": [True]}),
    ],
) -> Any:
    """Delete every key in redtick's namespace, never anything else in the database."""
    if not confirm:
        raise errors.InvalidData("clearing deletes every redtick key; repeat with confirm=true")
    return {"status": "success", "data": await service.clear_all_cache()}


metrics_router = APIRouter(tags=["monitoring"])


@metrics_router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(require_metrics_access)],
    responses=_errors(401, 403),
    summary="Prometheus metrics (admin unless REDTICK_METRICS_PUBLIC=true)",
)
async def metrics(request: Request) -> Response:
    """Cache hits, misses, writes, errors and Redis round-trip times, in the Prometheus text format.

    The app's connection's metrics (:mod:`redtick.metrics`), then the process-wide default
    registry (process and Python runtime metrics, and anything the host registered there).
    """
    body = request.app.state.redtick_conn.metrics.exposition() + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- the app -------------------------------------------------------------------------------------
def _status_of(exc: errors.RedtickError) -> int:
    return next((status for kind, status in _STATUS_OF if isinstance(exc, kind)), 500)


async def _redtick_error(request: Request, exc: Exception) -> JSONResponse:
    status = _status_of(exc)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    # A Redis outage's own message may name the server's address; say only what kind it was.
    message = "Redis is unavailable; try again shortly" if status == 503 else str(exc)
    return JSONResponse(_error_body(type(exc).__name__, message), status_code=status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    problems = jsonable_encoder(exc.errors(), custom_encoder={Exception: str})  # type: ignore[attr-defined]
    summary = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in problems)
    return JSONResponse(_error_body("InvalidInput", summary or "bad input", problems), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code  # type: ignore[attr-defined]
    return JSONResponse(
        _error_body("HTTPError", str(exc.detail)), status_code=status, headers=getattr(exc, "headers", None)  # type: ignore[attr-defined]
    )


def create_app(
    conn: Connection | None = None,
    *,
    service: CacheService | None = None,
    admin_token: str | None = None,
    maintenance: bool = True,
    metrics_public: bool | None = None,
) -> FastAPI:
    """The FastAPI app with redtick's router, error mapping and a service bound to ``conn``.

    Parameters
    ----------
    conn : Connection, optional
        Redis to serve from; defaults to the service's, else ``redtick.connect()``.
    service : CacheService, optional
        Defaults to a new service on ``conn``.
    admin_token : str, optional
        Token of the maintenance endpoints; defaults to ``REDTICK_ADMIN_TOKEN``. None refuses them.
    maintenance : bool
        Run the service's maintenance loop for the app's lifetime.
    metrics_public : bool, optional
        Serve ``/metrics`` without the admin token; defaults to ``REDTICK_METRICS_PUBLIC``.

    Examples
    --------
    >>> app = create_app()
    >>> sorted(app.openapi()["paths"])[:3]
    ['/api/v1/cache/cleanup', '/api/v1/cache/clear', '/api/v1/cache/health']
    """
    service = service or CacheService(conn)
    conn = service.conn

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if maintenance:
            await service.start()
        try:
            yield
        finally:
            await service.stop()
            await conn.aclose()

    app = FastAPI(
        title="redtick cache API",
        version="0.1.0",
        description="Market data, prices, sessions and price alerts cached in Redis.",
        lifespan=lifespan,
    )
    app.state.cache_service = service
    app.state.redtick_conn = conn
    app.state.admin_token = admin_token if admin_token is not None else conn.settings.admin_token
    app.state.metrics_public = conn.settings.metrics_public if metrics_public is None else metrics_public
    app.add_exception_handler(errors.RedtickError, _redtick_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(router)
    app.include_router(metrics_router)
    return app
