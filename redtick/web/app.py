"""The FastAPI app and router: the platform's cache endpoints under ``/api/v1/cache``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from redtick import __version__, errors
from redtick.caches.alerts import FIRED_LOG_MAX
from redtick.caches.sessions import session_handle
from redtick.connection import Connection
from redtick.keys import validate_symbol, validate_user_id
from redtick.service import CacheService, cache_service
from redtick.web import models
from redtick.web.guard import RequestGuard
from redtick.web.health import HealthProbe, SharedResult
from redtick.web.json_body import StrictJSONRoute
from redtick.web.pagination import CURSOR_PATTERN, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, paginate
from redtick.web.quotas import AlertQuota
from redtick.web.rate_limits import ApiRateLimits
from redtick.web.response_cache import cache_response
from redtick.web.settings import WebSettings

# The routes and their dependencies are public: an app overrides a dependency by its name
# (app.dependency_overrides[get_service] = ...).
__all__ = [
    "ApiState",
    "Caller",
    "cleanup",
    "clear",
    "count_write",
    "create_app",
    "create_price_alert",
    "current_caller",
    "delete_price_alert",
    "fired_price_alerts",
    "get_api",
    "get_service",
    "health",
    "market_data",
    "metrics",
    "metrics_router",
    "price",
    "price_alerts",
    "require_admin",
    "require_metrics_access",
    "revoke_current_session",
    "revoke_other_sessions",
    "revoke_session",
    "router",
    "sessions",
    "stats",
    "symbols",
]

log = logging.getLogger("redtick.web")

API_PREFIX = "/api/v1/cache"
HEALTH_TTL = 2.0  # seconds one health probe (public) or report (admin) is shared by every caller
HEALTH_PROBE_TIMEOUT = 2.0  # a PING slower than this is "unhealthy", whatever the driver would wait
MARKET_TTL = 1  # market data moves: a second of staleness, but ETag/304 and one Redis read per burst
SYMBOLS_TTL = 5
# The public endpoints' JSON does not depend on Accept, and they check no credential: a request
# carrying one is served uncached, so made-up headers cannot make Redis keys.
_PUBLIC: dict[str, Any] = {"vary": (), "private": False}

_session_scheme = HTTPBearer(
    auto_error=False, scheme_name="SessionBearer", description="`Authorization: Bearer <session id>` of a live session"
)
_admin_scheme = APIKeyHeader(
    name="X-Admin-Token", auto_error=False, scheme_name="AdminToken",
    description="The token in REDTICK_ADMIN_TOKEN; without one configured, maintenance endpoints refuse every call",
)

# (error kind, HTTP status) each redtick error becomes, most specific first.
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

_DESCRIBED = {
    400: "A malformed Content-Length, a Host outside REDTICK_ALLOWED_HOSTS, or a body that cannot be read",
    401: "Missing or wrong credentials",
    403: "Authenticated, but not allowed",
    404: "Not found",
    408: "The request body did not arrive within REDTICK_REQUEST_TIMEOUT",
    413: "The request body is larger than REDTICK_MAX_BODY_BYTES",
    414: "The query string is longer than REDTICK_MAX_QUERY_BYTES",
    422: "Bad input",
    429: "Rate limited: see Retry-After, RateLimit and RateLimit-Policy",
    503: "Redis is unavailable, or the request took longer than REDTICK_REQUEST_TIMEOUT",
}
# Statuses the guard may answer on any route, before the route runs.
_ANY_ROUTE = (400, 413, 414, 503)


def _error_body(kind: str, message: str, detail: list[Any] | None = None) -> dict[str, Any]:
    return models.ErrorResponse(error=kind, message=message, detail=detail).model_dump(exclude_none=True)


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status with the ErrorResponse shape, as JSON."""
    return {status: {"model": models.ErrorResponse, "description": _DESCRIBED[status]}
            for status in sorted({*statuses, *_ANY_ROUTE})}


# -- per-app state -------------------------------------------------------------------------------
@dataclasses.dataclass
class ApiState:
    """What the routes of one app share: settings, rate limits, health probes, the alert quota."""

    settings: WebSettings
    limits: ApiRateLimits
    health: HealthProbe
    details: SharedResult[dict[str, Any]]
    alert_quota: AlertQuota

    @classmethod
    def build(cls, service: CacheService, settings: WebSettings) -> ApiState:
        probe_timeout = min(HEALTH_PROBE_TIMEOUT, settings.request_timeout / 2)
        return cls(
            settings=settings,
            limits=ApiRateLimits(service.conn, settings),
            health=HealthProbe(service.conn, ttl=HEALTH_TTL, timeout=probe_timeout),
            details=SharedResult(service.health_check, HEALTH_TTL),
            alert_quota=AlertQuota(settings.max_alerts_per_user),
        )


# -- dependencies --------------------------------------------------------------------------------
def get_service(request: Request) -> CacheService:
    """The app's CacheService (``app.state.cache_service``), else the module default."""
    return getattr(request.app.state, "cache_service", None) or cache_service


def get_api(request: Request) -> ApiState:
    """The app's :class:`ApiState`, built from the environment for an app that is not :func:`create_app`'s."""
    state = getattr(request.app.state, "redtick_api", None)
    if state is None:
        state = request.app.state.redtick_api = ApiState.build(get_service(request), WebSettings.from_env())
    return state


Service = Annotated[CacheService, Depends(get_service)]
Api = Annotated[ApiState, Depends(get_api)]


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who made a request: the user and the session (bearer token) they made it with."""

    user_id: str
    session_id: str = dataclasses.field(repr=False)


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_session_scheme)],
    service: Service,
    api: Api,
) -> Caller:
    """The user and session behind the bearer token; 401 for anything else, 429 once an address guessed too much."""
    if credentials is None:
        api.limits.announce(request, ApiRateLimits.AUTH_FAILURES)
        raise errors.AuthError("this endpoint needs `Authorization: Bearer <session id>`")
    await api.limits.check_authentication_allowed(request)
    user_id = await service.get_session_cache().resolve_session(credentials.credentials)
    if user_id is None:
        await api.limits.authentication_failed(request)
        raise errors.AuthError("the bearer token is not a live session")
    return Caller(user_id, credentials.credentials)


async def require_admin(request: Request, token: Annotated[str | None, Security(_admin_scheme)], api: Api) -> None:
    """Pass only with the configured admin token; refuse everyone when none is configured.

    Failed tokens count against the client's address like failed sessions. The check fails
    open when Redis cannot count them, so monitoring (``/metrics``, ``/health`` details) keeps
    working during the outages it is there to report; the token itself is still required.
    """
    expected = getattr(request.app.state, "admin_token", None)
    if not expected:
        raise errors.Forbidden("maintenance endpoints are disabled: REDTICK_ADMIN_TOKEN is not set")
    if token is None:
        api.limits.announce(request, ApiRateLimits.AUTH_FAILURES)
        raise errors.AuthError("this endpoint needs the admin token in the X-Admin-Token header")
    with contextlib.suppress(errors.RedisError):
        await api.limits.check_authentication_allowed(request)
    if not secrets.compare_digest(token.encode(), expected.encode()):
        with contextlib.suppress(errors.RedisError):
            await api.limits.authentication_failed(request)
        raise errors.AuthError("this endpoint needs the admin token in the X-Admin-Token header")


async def require_metrics_access(request: Request, token: Annotated[str | None, Security(_admin_scheme)],
                                 api: Api) -> None:
    """Pass everyone when ``/metrics`` is public (``REDTICK_METRICS_PUBLIC``), else as :func:`require_admin`."""
    if not getattr(request.app.state, "metrics_public", False):
        await require_admin(request, token, api)


async def count_write(request: Request, caller: Annotated[Caller, Depends(current_caller)], api: Api) -> Caller:
    """The caller, after counting one write against their ``REDTICK_WRITE_RATE_LIMIT`` (429 when used up)."""
    await api.limits.count_write(request, caller.user_id)
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
Writer = Annotated[Caller, Depends(count_write)]
Admin = [Depends(require_admin)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=(
    f"Items per page (default {DEFAULT_PAGE_SIZE}); a list that fits in one page comes back whole, without next_cursor"))]
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, max_length=81, description=(
    "Where the page starts: after the item at `<created_at ms>.<id>`, which is what `next_cursor` of the "
    "previous page says; omit it for the first page"))]

router = APIRouter(prefix=API_PREFIX, tags=["cache"], route_class=StrictJSONRoute)


# -- endpoints -----------------------------------------------------------------------------------
_HEALTH_SHAPES = models.PublicHealth | models.HealthResponse


@router.get(
    "/health",
    response_model=None,
    responses={
        200: {"model": _HEALTH_SHAPES, "description": "Redis answers (the full report with a valid X-Admin-Token)"},
        503: {"model": _HEALTH_SHAPES | models.ErrorResponse, "description": "Redis does not answer"},
        **{status: spec for status, spec in _errors(401, 403, 429).items() if status != 503},
    },
    openapi_extra={"security": [{}]},  # the admin token is optional: without it, the public status
    summary="Health: public status, or the full report with the admin token",
)
async def health(
    request: Request, api: Api, token: Annotated[str | None, Security(_admin_scheme)]
) -> Response:
    """``{"status": "healthy" | "unhealthy", "latency_ms": ...}``; 503 when Redis does not answer.

    Answered from one PING per 2 s per process whatever the query string, so probes cannot
    be turned into load. With a valid ``X-Admin-Token``: the full report (server version,
    memory, clients, per-cache key counts), also shared for 2 s, since counting keys SCANs.
    """
    if token is not None:
        await require_admin(request, token, api)
        report = await api.details.get()
        return JSONResponse(jsonable_encoder(report), status_code=503 if report["status"] == "unhealthy" else 200)
    status = await api.health.status()
    return JSONResponse(status, status_code=200 if status["status"] == "healthy" else 503)


@router.get(
    "/stats",
    response_model=models.StatsResponse,
    dependencies=Admin,
    responses=_errors(401, 403, 429),
    summary="Key counts (admin)",
)
async def stats(service: Service) -> Any:
    """Total keys, symbol count, per-cache and per-family counts, by SCAN in the namespace."""
    return {"status": "success", "data": await service.get_cache_summary()}


# `:path` so that a symbol with a slash, sent encoded (BTC%2FUSDT), reaches the route whole.
SymbolPath = Annotated[str, Path(description=models.SYMBOL_DESCRIPTION, pattern=models.SYMBOL_PATTERN, examples=["BTCUSDT"])]


@router.get(
    "/market-data/{symbol:path}",
    response_model=models.MarketDataResponse,
    responses=_errors(404, 422),
    summary="Cached price, order book and latest trade of a symbol",
)
@cache_response(ttl=MARKET_TTL, key_prefix="market_data", **_PUBLIC)
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
    "/price/{symbol:path}",
    response_model=models.PriceResponse,
    responses=_errors(404, 422),
    summary="Newest price of a symbol and its 1h and 24h change",
)
@cache_response(ttl=MARKET_TTL, key_prefix="price", **_PUBLIC)
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
    responses=_errors(),
    summary="Every symbol with cached market data or a price series",
)
@cache_response(ttl=SYMBOLS_TTL, key_prefix="symbols", **_PUBLIC)
async def symbols(request: Request, service: Service) -> Any:
    """Symbols priced in the market cache within the last day, or with a price series."""
    market, series = await asyncio.gather(
        service.get_market_cache().get_all_symbols(), service.get_price_cache().get_all_symbols()
    )
    merged = sorted(set(market) | set(series))
    return {"status": "success", "data": {"symbols": merged, "count": len(merged)}}


def _public_session(session: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """A session as its owner may see it: a handle instead of the bearer token."""
    shown = {k: v for k, v in session.items() if k != "session_id"}
    shown["handle"] = session_handle(session["session_id"])
    shown["current"] = secrets.compare_digest(session["session_id"].encode(), caller.session_id.encode())
    return shown


def _page(items: list[dict[str, Any]], after: str | None) -> dict[str, Any]:
    """A list response: the spec's ``{"status", "data"}``, plus ``next_cursor`` only when more follow."""
    body: dict[str, Any] = {"status": "success", "data": items}
    if after is not None:
        body["next_cursor"] = after
    return body


def _own(user_id: str, caller: Caller, what: str) -> None:
    validate_user_id(user_id)
    if not secrets.compare_digest(user_id.encode(), caller.user_id.encode()):
        raise errors.Forbidden(f"you may {what} only your own sessions")


UserIdPath = Annotated[str, Path(description="Must be the caller's own user id", pattern=models.USER_ID_PATTERN)]


@router.get(
    "/sessions/{user_id}",
    response_model=models.SessionsResponse,
    response_model_exclude_unset=True,
    responses=_errors(401, 403, 422, 429),
    summary="The caller's own sessions (handles, never tokens)",
)
async def sessions(user_id: UserIdPath, caller: CallerDep, service: Service,
                   limit: PageSize = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Any:
    """The live sessions of ``user_id``, which must be the caller; anyone else's is 403.

    Each session shows its metadata and a ``handle`` (a short digest) that names it for
    ``DELETE /sessions/{user_id}/{handle}``; no session's bearer token is ever shown, the
    caller's own included. Oldest first, ``limit`` per page, then ``next_cursor``.
    """
    _own(user_id, caller, "list")
    shown = [_public_session(s, caller) for s in await service.get_session_cache().get_user_sessions(user_id)]
    return _page(*paginate(shown, lambda s: (s["created_at"], s["handle"]), limit, cursor))


@router.delete(
    "/sessions/current",
    response_model=models.SessionsRevokedResponse,
    responses=_errors(401, 429),
    summary="Log out: end the session that makes this request",
)
async def revoke_current_session(caller: CallerDep, service: Service) -> Any:
    """End the caller's own session; its token stops working at once."""
    ended = await service.get_session_cache().delete_session(caller.user_id, caller.session_id)
    return {"status": "success", "data": {"revoked": int(ended)}}


@router.delete(
    "/sessions/others",
    response_model=models.SessionsRevokedResponse,
    responses=_errors(401, 429),
    summary="End every other session of the caller",
)
async def revoke_other_sessions(caller: CallerDep, service: Service) -> Any:
    """End all of the caller's sessions except the one making this request."""
    ended = await service.get_session_cache().delete_other_sessions(caller.user_id, caller.session_id)
    return {"status": "success", "data": {"revoked": ended}}


@router.delete(
    "/sessions/{user_id}/{handle}",
    response_model=models.SessionsRevokedResponse,
    responses=_errors(401, 403, 404, 422, 429),
    summary="End one of the caller's sessions by its handle",
)
async def revoke_session(
    user_id: UserIdPath,
    handle: Annotated[str, Path(pattern=models.SESSION_HANDLE_PATTERN, description="A handle from GET /sessions")],
    caller: CallerDep,
    service: Service,
) -> Any:
    """End the caller's session named by ``handle`` (from ``GET /sessions/{user_id}``); 404 if none is live."""
    _own(user_id, caller, "end")
    if not await service.get_session_cache().delete_session_by_handle(user_id, handle):
        raise errors.NotFound("you have no live session with that handle")
    return {"status": "success", "data": {"revoked": 1}}


@router.get(
    "/price-alerts",
    response_model=models.PriceAlertsResponse,
    response_model_exclude_unset=True,
    responses=_errors(401, 422, 429),
    summary="The caller's live price alerts",
)
async def price_alerts(caller: CallerDep, service: Service,
                       limit: PageSize = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Any:
    """The caller's live alerts, oldest first, ``limit`` per page.

    When more follow, the body has ``next_cursor``: pass it as ``cursor`` for the next page.
    A list that fits in one page comes back as ``{"status": "success", "data": [...]}``.
    """
    alerts = await service.get_alerts().get_user_alerts(caller.user_id)
    return _page(*paginate(alerts, lambda a: (a["created_at"], a["alert_id"]), limit, cursor))


@router.get(
    "/price-alerts/fired",
    response_model=models.FiredPriceAlertsResponse,
    response_model_exclude_unset=True,
    responses=_errors(401, 422, 429),
    summary="The caller's fired price alerts",
)
async def fired_price_alerts(caller: CallerDep, service: Service,
                             limit: PageSize = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Any:
    """The caller's most recent fired alerts (up to 1,000), in the order they were recorded, ``limit`` per page.

    ``fired_at`` is the time of the tick that met the condition, in the market's clock (a
    replay of 2013 ticks fires at 2013 times); ``recorded_at`` is when the write that fired it
    ran. Paged as ``GET /price-alerts``.
    """
    fired = await service.get_alerts().get_fired_alerts(caller.user_id, limit=FIRED_LOG_MAX)
    rows = [dataclasses.asdict(f) for f in fired]
    return _page(*paginate(rows, lambda f: (f["recorded_at"], f["alert_id"]), limit, cursor))


@router.post(
    "/price-alert",
    response_model=models.AlertCreatedResponse,
    status_code=201,
    responses=_errors(400, 401, 408, 422, 429),
    summary="Set a price alert for the caller",
)
async def create_price_alert(alert: models.PriceAlertRequest, caller: Writer, service: Service, api: Api) -> Any:
    """Set an alert that fires once when ``symbol`` reaches ``target_price`` (above, below, crosses).

    Each user may hold ``REDTICK_MAX_ALERTS_PER_USER`` live alerts (422 beyond) and make
    ``REDTICK_WRITE_RATE_LIMIT`` writes (429 beyond, with ``Retry-After``).
    """
    async with api.alert_quota.slot(service, caller.user_id):
        alert_id = await service.get_alerts().set_price_alert(
            caller.user_id, alert.symbol, alert.target_price, alert.condition, ttl=alert.ttl
        )
    return {"status": "success", "data": {"alert_id": alert_id}}


@router.delete(
    "/price-alert/{alert_id}",
    response_model=models.AlertDeletedResponse,
    responses=_errors(401, 404, 422, 429),
    summary="Delete one of the caller's price alerts",
)
async def delete_price_alert(
    alert_id: Annotated[str, Path(pattern=models.ALERT_ID_PATTERN)], caller: Writer, service: Service
) -> Any:
    """Delete the caller's alert; another user's alert is not found for them (404)."""
    if not await service.get_alerts().delete_price_alert(caller.user_id, alert_id):
        raise errors.NotFound(f"you have no live alert {alert_id!r}")
    return {"status": "success", "data": {"alert_id": alert_id, "deleted": True}}


@router.post(
    "/cleanup",
    response_model=models.CleanupResponse,
    dependencies=Admin,
    responses=_errors(401, 403, 429),
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
    responses=_errors(401, 403, 422, 429),
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


metrics_router = APIRouter(tags=["monitoring"], route_class=StrictJSONRoute)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_access)],
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
              "description": "The Prometheus text exposition format"},
        **_errors(401, 403, 429),
    },
    summary="Prometheus metrics (admin unless REDTICK_METRICS_PUBLIC=true)",
)
async def metrics(request: Request) -> Response:
    """Cache hits, misses, writes, errors and Redis round-trip times, in the Prometheus text format.

    The app's connection's metrics (:mod:`redtick.metrics`), then the process-wide default
    registry (process and Python runtime metrics, and anything the host registered there).
    Errors (401, 403) are JSON, as everywhere in the API.
    """
    body = request.app.state.redtick_conn.metrics.exposition() + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- the app -------------------------------------------------------------------------------------
def _status_of(exc: Exception) -> int:
    return next((status for kind, status in _STATUS_OF if isinstance(exc, kind)), 500)


async def _redtick_error(request: Request, exc: Exception) -> JSONResponse:
    status = _status_of(exc)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    if status == 503:
        headers["Retry-After"] = "1"
    # A Redis outage's own message may name the server's address; say only what kind it was.
    message = "Redis is unavailable; try again shortly" if status == 503 else str(exc)
    return JSONResponse(_error_body(type(exc).__name__, message), status_code=status, headers=headers)


def _problem(error: dict[str, Any]) -> dict[str, Any]:
    """One validation problem without the input: echoing it back can fail (NaN) or reflect a payload."""
    problem = {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", "")),
               "type": str(error.get("type", ""))}
    context = error.get("ctx") or {}
    if error.get("type") == "json_invalid":  # the position is always 0: loads_strict never echoes the body
        problem.update(loc=["body"], msg=f"JSON decode error: {context.get('error', 'not JSON')}")
    return problem


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    problems = [_problem(e) for e in exc.errors()]  # type: ignore[attr-defined]
    summary = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
    return JSONResponse(_error_body("InvalidInput", summary[:2000] or "bad input", problems[:50]), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code  # type: ignore[attr-defined]
    return JSONResponse(
        _error_body("HTTPError", str(exc.detail)), status_code=status, headers=getattr(exc, "headers", None)  # type: ignore[attr-defined]
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path[:120], exc_info=exc)
    return JSONResponse(_error_body("InternalError", "the server failed; this is a bug"), status_code=500)


def create_app(
    conn: Connection | None = None,
    *,
    service: CacheService | None = None,
    admin_token: str | None = None,
    maintenance: bool = True,
    metrics_public: bool | None = None,
    settings: WebSettings | None = None,
) -> FastAPI:
    """The FastAPI app with redtick's router, error mapping, request guard and a service bound to ``conn``.

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
    settings : WebSettings, optional
        Body, query and time limits, rate limits, trusted proxies and hosts; defaults to
        :meth:`WebSettings.from_env` (``REDTICK_MAX_BODY_BYTES``, ``REDTICK_REQUEST_TIMEOUT``, ...).

    Examples
    --------
    >>> app = create_app()
    >>> sorted(app.openapi()["paths"])[:3]
    ['/api/v1/cache/cleanup', '/api/v1/cache/clear', '/api/v1/cache/health']
    """
    service = service or CacheService(conn)
    conn = service.conn
    settings = settings or WebSettings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if maintenance:
            await service.start()
        try:
            yield
        finally:
            await service.stop()
            await conn.aclose()

    app = FastAPI(
        title="redtick cache API",
        version=__version__,  # the installed package's version, as redtick --version prints it
        description="Market data, prices, sessions and price alerts cached in Redis.",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would be built from the Host header: an API answers 404 instead
    )
    app.state.cache_service = service
    app.state.redtick_conn = conn
    app.state.redtick_api = ApiState.build(service, settings)
    app.state.admin_token = admin_token if admin_token is not None else conn.settings.admin_token
    app.state.metrics_public = conn.settings.metrics_public if metrics_public is None else metrics_public
    app.add_exception_handler(errors.RedtickError, _redtick_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(RequestGuard, settings=settings)
    app.include_router(router)
    app.include_router(metrics_router)
    return app
