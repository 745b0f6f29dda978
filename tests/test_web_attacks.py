"""The HTTP API attacked as an outsider would (issue 13): bounded requests, bad input, health, tokens, rate limits.

Response-cache leaks (cookies, API keys, single flight, forged Host) are in tests/test_response_cache.py;
the load and fault drill in tests/test_web_faults.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import secrets
from urllib.parse import quote

import httpx
import hypothesis
import pytest
import redis
import schemathesis
from hypothesis import strategies as st

from redtick.caches.sessions import session_handle
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import ConfigurationError, InvalidKey
from redtick.keys import validate_id, validate_symbol, validate_user_id
from redtick.service import CacheService
from redtick.web import create_app, models
from redtick.web.json_body import loads_strict
from redtick.web.rate_limits import client_address
from redtick.web.settings import RateLimitPolicy, WebSettings
from tests.test_web import ADMIN, API, TOKEN, bearer, serve

ALERT = {"symbol": "BTCUSDT", "target_price": 55000.0, "condition": "above"}


def client_for(conn: Connection, *, client: tuple[str, int] = ("127.0.0.1", 50000), **limits) -> httpx.AsyncClient:
    app = create_app(conn, admin_token=TOKEN, maintenance=False, settings=WebSettings(**limits))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client), base_url="http://test")


def namespace_keys(conn: Connection) -> set[bytes]:
    return set(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


def assert_error_shape(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    models.ErrorResponse.model_validate(body)
    return body


# -- 2. bounded requests -------------------------------------------------------------------------
async def test_an_oversized_body_is_413_before_parsing_or_authentication(conn):
    over = 1_048_576 + 1
    async with client_for(conn) as http:
        declared = await http.post(f"{API}/price-alert", content=b"x" * over,
                                   headers={"Content-Type": "application/json", "Authorization": "Bearer guess"})
        body = assert_error_shape(declared, 413)
        assert body["error"] == "ContentTooLarge" and "1048576" in body["message"]

        async def chunks():
            for _ in range(48):  # 3 MiB, no Content-Length: counted while it streams in
                yield b" " * 65_536

        streamed = await http.post(f"{API}/price-alert", content=chunks(),
                                   headers={"Content-Type": "application/json", "Authorization": "Bearer guess"})
        assert_error_shape(streamed, 413)
        padded = json.dumps(ALERT).encode() + b" " * over  # valid JSON, authenticated: still too large
        authed = await http.post(f"{API}/price-alert", content=padded, headers={
            "Content-Type": "application/json", **await bearer(conn, "alice")})
        assert_error_shape(authed, 413)
        under = await http.post(f"{API}/price-alert", content=b"[" + b" " * 1000 + b"}",
                                headers={"Content-Type": "application/json", **await bearer(conn, "alice")})
        assert_error_shape(under, 422)  # under the limit, the body is parsed and refused as JSON
    # The bad bearer tokens above were never looked at: no failed authentication was counted.
    assert not [k for k in namespace_keys(conn) if b"ratelimit:api_auth_failures" in k]
    assert (await CacheService(conn).get_alerts().get_user_alerts("alice")) == []


async def test_the_body_limit_is_a_setting(conn):
    async with client_for(conn, max_body_bytes=64) as http:
        response = await http.post(f"{API}/price-alert", json={**ALERT, "condition": "crosses"},
                                   headers=await bearer(conn, "alice"))
    assert_error_shape(response, 413)
    assert WebSettings.from_env({"REDTICK_MAX_BODY_BYTES": "2048"}).max_body_bytes == 2048
    with pytest.raises(ConfigurationError, match="REDTICK_MAX_BODY_BYTES"):
        WebSettings.from_env({"REDTICK_MAX_BODY_BYTES": "1 MiB"})


async def test_a_body_that_does_not_arrive_in_time_is_408(conn):
    async def trickle():
        yield b'{"symbol": "BTC'
        await asyncio.sleep(30)  # cancelled by the deadline long before
        yield b'USDT"}'

    async with client_for(conn, request_timeout=0.3) as http:
        response = await asyncio.wait_for(
            http.post(f"{API}/price-alert", content=trickle(), headers={"Content-Type": "application/json"}), 10)
    assert assert_error_shape(response, 408)["error"] == "RequestTimeout"


@pytest.mark.parametrize("path", ["/health", "/symbols", "/price/BTCUSDT", "/price-alerts"])
async def test_a_huge_query_string_is_414(conn, path):
    async with client_for(conn) as http:
        huge = await http.get(f"{API}{path}", params={"b": "x" * 65_000})  # httpx's own ceiling is 65,536
        assert assert_error_shape(huge, 414)["error"] == "URITooLong"
        at_limit = await http.get(f"{API}{path}", params={"b": "x" * (2048 - 2)})
        assert at_limit.status_code != 414
        long_path = await http.get(f"{API}/price/{'A' * 2000}")
        assert_error_shape(long_path, 414)
    assert not [k for k in namespace_keys(conn) if b":http:" in k and path != "/symbols"]


async def test_a_host_outside_the_allowed_hosts_is_400(conn):
    async with client_for(conn, allowed_hosts=("api.example.com", "*.example.org")) as http:
        assert_error_shape(await http.get(f"{API}/health", headers={"Host": "evil.example"}), 400)
        assert (await http.get(f"{API}/health", headers={"Host": "api.example.com:8443"})).status_code == 200
        assert (await http.get(f"{API}/health", headers={"Host": "eu.example.org"})).status_code == 200
    assert WebSettings.from_env({"REDTICK_ALLOWED_HOSTS": "*"}).allowed_hosts is None
    with pytest.raises(ConfigurationError, match="REDTICK_ALLOWED_HOSTS"):
        WebSettings.from_env({"REDTICK_ALLOWED_HOSTS": "https://api.example.com"})


async def test_every_response_carries_the_security_headers(conn):
    async with client_for(conn) as http:
        for response in (await http.get(f"{API}/health"), await http.get(f"{API}/price-alerts"),
                         await http.get(f"{API}/nowhere"), await http.get(f"{API}/health", params={"q": "x" * 5000})):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"]  # no-store unless the response cache set its own


# -- 2 and 8. a deadline whatever Redis does ------------------------------------------------------
@pytest.fixture
def paused(real_redis_url):
    """A callable pausing the throwaway real server for ``ms`` milliseconds; waits for it to answer again after."""
    admin = redis.Redis.from_url(real_redis_url)

    def pause(ms: int) -> None:
        admin.execute_command("CLIENT", "PAUSE", ms, "ALL")

    yield pause
    probe = redis.Redis.from_url(real_redis_url, socket_timeout=60)
    probe.ping()  # blocks until the pause ends, so no later test meets a paused server
    probe.close()
    admin.close()


async def test_requests_get_503_by_the_deadline_while_redis_is_paused(real_redis_url, paused):
    conn = Connection(Settings(url=real_redis_url, namespace="t" + secrets.token_hex(4), socket_timeout=5.0))
    service = CacheService(conn)
    await service.get_price_cache().set_current_price("BTCUSDT", 50_000.0, volume=1.0)
    await service.get_market_cache().set_symbol_price("BTCUSDT", {"price": 50_000.0})
    session = await bearer(conn, "alice")
    timeout = 1.0
    try:
        async with client_for(conn, request_timeout=timeout) as http:
            await http.get(f"{API}/health")  # a fresh probe, shared for 2 s...
            await asyncio.sleep(2.1)  # ...so the one below must probe the paused server itself
            paused(int((timeout + 2.5) * 1000))  # longer than the deadline, shorter than the socket timeout

            async def bounded(method: str, path: str, **kwargs) -> httpx.Response:
                # The client waits the deadline plus a margin: a request still running after it is a failure.
                return await asyncio.wait_for(http.request(method, f"{API}{path}", **kwargs), timeout + 1.5)

            answers = await asyncio.gather(
                bounded("GET", "/price/BTCUSDT"), bounded("GET", "/market-data/BTCUSDT"),
                bounded("GET", "/price-alerts", headers=session), bounded("POST", "/price-alert", json=ALERT,
                                                                            headers=session),
                bounded("GET", "/health"),
            )
            for response in answers[:4]:
                body = assert_error_shape(response, 503)
                assert body["error"] == "Timeout" and response.headers["retry-after"] == "1"
            assert answers[4].status_code == 503 and answers[4].json() == {"status": "unhealthy", "latency_ms": None}
            recovered = redis.Redis.from_url(real_redis_url, socket_timeout=30)
            recovered.ping()  # the pause is over
            recovered.close()
            assert (await bounded("GET", "/price/BTCUSDT")).status_code == 200
            assert (await bounded("GET", "/price-alerts", headers=session)).status_code == 200
    finally:
        conn.sync.delete(*namespace_keys(conn) or [b"none"])
        await conn.aclose()
        conn.close()


# -- 3. every bad input is a 4xx ------------------------------------------------------------------
BAD_BODIES = [
    (b'{"symbol": "BTCUSDT", "target_price": NaN}', "NaN"),
    (b'{"symbol": "BTCUSDT", "target_price": Infinity}', "Infinity"),
    (b'{"symbol": "BTCUSDT", "target_price": -Infinity}', "Infinity"),
    (b'{"symbol": "BTCUSDT", "target_price": 1e309}', "range"),
    (b'{"symbol": "BTCUSDT", "target_price": -1e309}', "range"),
    (b'{"symbol": "BTCUSDT", "target_price": 1' + b"0" * 400 + b"}", "range"),
    (b'{"symbol": "BTCUSDT", "target_price": 1.0, "note": NaN}', "NaN"),
    (b'{"symbol": "BTCUSDT", "target_price": 1e16}', "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": true}', "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": "55000"}', "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": [1]}', "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": 1.0, "ttl": 1.5}', "ttl"),
    (b'{"symbol": "BTCUSDT", "target_price": 1.0, "ttl": true}', "ttl"),
    (b'{"symbol": "BTCUSDT", "target_price": 1.0, "ttl": "60"}', "ttl"),
    (b'{"symbol": "BTCUSDT", "target_price": 1.0, "user_id": "bob"}', "user_id"),
    (b'{"symbol": "btc usdt", "target_price": 1.0}', "symbol"),
    (b'{"symbol": "' + b"A" * 65 + b'", "target_price": 1.0}', "symbol"),
    (b'{"symbol": "e\\u0301", "target_price": 1.0}', "symbol"),
    (b'{"symbol": "BTC{USDT}", "target_price": 1.0}', "symbol"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    (b'{"symbol": "\xff\xfe", "target_price": 1.0}', "JSON"),
    (b'{"symbol": ', "JSON"),
    (b"null", "body"),
]


@pytest.mark.parametrize("raw,mentioned", BAD_BODIES, ids=range(len(BAD_BODIES)))
async def test_every_bad_body_is_422_with_a_message(conn, raw, mentioned):
    async with client_for(conn) as http:
        response = await http.post(f"{API}/price-alert", content=raw, headers={
            "Content-Type": "application/json", **await bearer(conn, "alice")})
    body = assert_error_shape(response, 422)
    assert mentioned in body["message"], body["message"]
    assert "NaN" not in json.dumps(body["detail"]).replace("NaN is not", "")  # the input is never echoed back
    assert await CacheService(conn).get_alerts().get_user_alerts("alice") == []


def test_strict_json_refuses_what_rfc_8259_does_not_allow():
    assert loads_strict(b'{"a": [1, 2.5, -0.0, 1e308, "NaN"]}') == {"a": [1, 2.5, -0.0, 1e308, "NaN"]}
    for raw in (b"NaN", b"[Infinity]", b"-Infinity", b"1e400", b"9" * 400, b"[" * 50_000, b"\xff"):
        with pytest.raises(json.JSONDecodeError) as caught:
            loads_strict(raw)
        assert caught.value.doc == ""  # nothing of the body travels with the error


def accepts(validate, value) -> bool:
    try:
        validate(value)
        return True
    except InvalidKey:
        return False


@hypothesis.settings(max_examples=300, deadline=None, database=None)
@hypothesis.given(text=st.text(max_size=70) | st.text(st.characters(max_codepoint=255), max_size=70)
                  | st.from_regex(r"[A-Za-z0-9._/:@{}*?\-]{0,66}", fullmatch=True)
                  | st.sampled_from([".", "..", "e\u0301", "\u00e9", "A" * 64, "A" * 65, "a\x00b", "\u200b"]))
def test_the_http_schema_accepts_exactly_the_key_rules(text):
    valid = accepts(validate_symbol, text)
    try:
        models.PriceAlertRequest(symbol=text, target_price=1.0)
        body_accepts = True
    except ValueError:
        body_accepts = False
    assert body_accepts == valid  # the body: exactly validate_symbol
    in_pattern = re.fullmatch(models.SYMBOL_PATTERN, text) is not None
    if all(ord(ch) < 256 for ch in text):
        assert in_pattern == valid  # over Latin-1 the schema's pattern is the rule itself
    else:
        assert in_pattern or not valid  # beyond, as far as a portable regex can say it: never narrower
    assert (re.fullmatch(models.USER_ID_PATTERN, text) is not None) == accepts(validate_user_id, text)
    assert (re.fullmatch(models.ALERT_ID_PATTERN, text) is not None) == accepts(lambda t: validate_id(t, "a"), text)


@pytest.mark.parametrize("symbol", ["EUR/USD", "BRK.B", "ES=F", "^GSPC", "BINANCE:BTCUSDT", "ES1!", "btcusdt",
                                    "A#B&C", "100%", "Ünïcode", "A/..", "-"])
async def test_a_symbol_a_body_accepts_is_readable_through_the_path(conn, symbol):
    service = CacheService(conn)
    encoded = quote(symbol, safe="")
    async with client_for(conn) as http:
        created = await http.post(f"{API}/price-alert", json={**ALERT, "symbol": symbol},
                                  headers=await bearer(conn, "alice"))
        assert created.status_code == 201
        missing = await http.get(f"{API}/price/{encoded}")
        assert assert_error_shape(missing, 404)["message"] == f"no price cached for {symbol}"  # the route, not routing
        await service.get_price_cache().set_current_price(symbol, 42.0, volume=1.0)
        await service.get_market_cache().set_symbol_price(symbol, {"price": 42.0})
        price = await http.get(f"{API}/price/{encoded}")  # the 404 above was not cached
        market = await http.get(f"{API}/market-data/{encoded}")
    assert price.status_code == 200 and price.json()["data"]["symbol"] == symbol
    assert market.status_code == 200 and market.json()["data"]["symbol"] == symbol


@pytest.mark.parametrize("symbol", [".", "..", "BTC USDT", "BTC*", "{BTC}", "A" * 65, "e\u0301"])
async def test_a_symbol_no_path_can_carry_is_refused_at_the_door(conn, symbol):
    async with client_for(conn) as http:
        refused = await http.post(f"{API}/price-alert", json={**ALERT, "symbol": symbol},
                                  headers=await bearer(conn, "alice"))
        assert "symbol" in assert_error_shape(refused, 422)["message"]
        read = await http.get(f"{API}/price/{quote(symbol, safe='')}")
        assert read.status_code in (404, 422)  # 404 only where the client itself dropped a dot segment


def test_any_symbol_in_a_path_is_404_or_422_never_5xx(conn):
    loop = asyncio.new_event_loop()  # one loop, app and client for every example
    http = client_for(conn)
    try:
        @hypothesis.settings(max_examples=150, deadline=None, database=None)
        @hypothesis.given(text=st.text(min_size=1, max_size=70))
        def read(text):
            response = loop.run_until_complete(http.get(f"{API}/price/{quote(text, safe='')}"))
            assert response.status_code in (404, 422), (text, response.status_code)
            if accepts(validate_symbol, text):
                assert response.json()["message"] == f"no price cached for {text}"

        read()
    finally:
        loop.run_until_complete(http.aclose())
        loop.run_until_complete(conn.aclose())
        loop.close()


def test_openapi_states_patterns_and_limits(conn):
    schema = create_app(conn, admin_token=TOKEN, maintenance=False).openapi()
    request = schema["components"]["schemas"]["PriceAlertRequest"]
    assert request["additionalProperties"] is False
    symbol = request["properties"]["symbol"]
    assert symbol["pattern"] == models.SYMBOL_PATTERN and symbol["maxLength"] == 64
    price = request["properties"]["target_price"]
    assert (price["minimum"], price["maximum"]) == (-1e15, 1e15)
    paths = schema["paths"]
    path_symbol = next(p for p in paths[f"{API}/price/{{symbol}}"]["get"]["parameters"] if p["name"] == "symbol")
    assert path_symbol["schema"]["pattern"] == models.SYMBOL_PATTERN
    limit = next(p for p in paths[f"{API}/price-alerts"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    for path, item in paths.items():
        for method, operation in item.items():
            assert {"413", "414", "503"} <= set(operation["responses"]), (path, method)
    post = paths[f"{API}/price-alert"]["post"]["responses"]
    assert {"400", "401", "408", "422", "429"} <= set(post)
    assert post["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    metrics = paths["/metrics"]["get"]["responses"]
    assert all(media.startswith("text/plain") for media in metrics["200"]["content"])
    assert list(metrics["401"]["content"]) == ["application/json"]


HOSTILE_VALUES = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(min_value=-(10**400), max_value=10**400)
                  | st.booleans() | st.none() | st.text(max_size=50) | st.just("x" * 2_000_000))
HOSTILE_BODIES = st.dictionaries(st.sampled_from(["symbol", "target_price", "condition", "ttl", "extra"]),
                                 HOSTILE_VALUES, max_size=5)


def test_schemathesis_with_nan_and_huge_payloads_finds_no_5xx_and_no_schema_violation(conn):
    app = create_app(conn, admin_token=TOKEN, maintenance=False, settings=WebSettings(write_rate_limit=None))
    session = asyncio.run(bearer(conn, "fuzzer"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operation = schema[f"{API}/price-alert"]["POST"]
    failures, statuses = [], set()

    @hypothesis.settings(max_examples=120, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(body=HOSTILE_BODIES, authenticated=st.booleans())
    def run(body, authenticated):
        raw = json.dumps(body).encode()  # Python writes NaN, Infinity and huge integers as they are
        case = operation.Case(body=body, media_type="application/json")
        headers = {"Content-Type": "application/json", **(session if authenticated else {})}
        response = case.call(headers=headers, data=raw, json=None)
        statuses.add(response.status_code)
        try:
            case.validate_response(response)
        except Exception as exc:
            failures.append((response.status_code, raw[:120], str(exc)[:300]))

    run()
    assert failures == []
    assert statuses <= {201, 401, 413, 422} and {413, 422} <= statuses


# -- 4. health that cannot be turned into a weapon -----------------------------------------------
async def test_health_is_one_probe_whatever_the_query_string(conn):
    before = namespace_keys(conn)
    scans = conn.metrics.value("redtick_redis_commands_total", command="SCAN")
    async with client_for(conn) as http:
        answers = await asyncio.gather(*(http.get(f"{API}/health", params={"b": secrets.token_hex(8)})
                                         for _ in range(60)))
        answers += [await http.get(f"{API}/health", params={"b": secrets.token_hex(8)}) for _ in range(20)]
    assert {r.status_code for r in answers} == {200}
    assert all(set(r.json()) == {"status", "latency_ms"} for r in answers)
    assert len({r.json()["latency_ms"] for r in answers}) == 1  # one probe served every caller
    assert conn.metrics.value("redtick_redis_commands_total", command="PING") == 1
    assert conn.metrics.value("redtick_redis_commands_total", command="SCAN") == scans  # no SCAN per request
    assert namespace_keys(conn) == before


async def test_no_query_string_creates_a_redis_key_anywhere(conn):
    service = CacheService(conn)
    await service.get_price_cache().set_current_price("BTCUSDT", 1.0, volume=1.0)
    await service.get_market_cache().set_symbol_price("BTCUSDT", {"price": 1.0})
    session = await bearer(conn, "alice")
    paths = ["/health", "/symbols", "/price/BTCUSDT", "/market-data/BTCUSDT", "/price-alerts", "/sessions/alice"]
    async with client_for(conn) as http:
        before = namespace_keys(conn)
        for path in paths:
            for _ in range(5):
                response = await http.get(f"{API}{path}", params={"b": secrets.token_hex(8)}, headers=session)
                assert response.status_code == 200, (path, response.text)
                assert response.headers.get("x-cache", "BYPASS") == "BYPASS"
        assert namespace_keys(conn) == before
        # Nor do made-up credentials or Accept values on the public cached endpoints.
        for path in ("/symbols", "/price/BTCUSDT", "/market-data/BTCUSDT"):
            for headers in ({"Authorization": f"Bearer {secrets.token_hex(8)}"}, {"Cookie": f"s={secrets.token_hex(8)}"},
                            {"X-Api-Key": secrets.token_hex(8)}):
                response = await http.get(f"{API}{path}", headers=headers)
                assert response.status_code == 200
            await http.get(f"{API}{path}", headers={"Accept": f"application/{secrets.token_hex(4)}"})
        created = namespace_keys(conn) - before
        assert len(created) <= 3  # one entry per endpoint, for the uncredentialed requests only


async def test_the_health_report_needs_the_admin_token_and_shares_one_scan(conn):
    async with client_for(conn) as http:
        public = (await http.get(f"{API}/health")).json()
        reports = await asyncio.gather(*(http.get(f"{API}/health", headers=ADMIN) for _ in range(10)))
        refused = await http.get(f"{API}/health", headers={"X-Admin-Token": "guess"})
    for hidden in ("redis_info", "version", "cache_stats", "connected_clients", "used_memory"):
        assert hidden not in json.dumps(public)
    assert {r.status_code for r in reports} == {200} and "redis_info" in reports[0].json()
    assert conn.metrics.value("redtick_redis_commands_total", command="PING") <= 2  # public probe + one report
    assert_error_shape(refused, 401)


# -- 5. tokens stay secret ------------------------------------------------------------------------
async def test_a_short_lived_session_never_sees_another_sessions_token(conn):
    sessions = CacheService(conn).get_session_cache()
    main = await sessions.set_user_session("alice", {"device": "laptop"}, ttl=86_400)
    kiosk = await sessions.set_user_session("alice", {"device": "kiosk"}, ttl=30)
    async with client_for(conn) as http:
        listed = await http.get(f"{API}/sessions/alice", headers={"Authorization": f"Bearer {kiosk}"})
        assert listed.status_code == 200
        assert main not in listed.text and kiosk not in listed.text and "session_id" not in listed.text
        shown = {s["data"]["device"]: s for s in listed.json()["data"]}
        assert shown["laptop"]["handle"] == session_handle(main) and shown["laptop"]["current"] is False
        assert shown["kiosk"]["current"] is True
        assert all(re.fullmatch(models.SESSION_HANDLE_PATTERN, s["handle"]) for s in shown.values())
        # A handle is no token.
        handle = shown["laptop"]["handle"]
        assert (await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer {handle}"})).status_code == 401
        # The user revokes the laptop session from the kiosk, by handle.
        revoked = await http.delete(f"{API}/sessions/alice/{handle}", headers={"Authorization": f"Bearer {kiosk}"})
        assert revoked.json() == {"status": "success", "data": {"revoked": 1}}
        assert (await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer {main}"})).status_code == 401
        again = await http.delete(f"{API}/sessions/alice/{handle}", headers={"Authorization": f"Bearer {kiosk}"})
        assert_error_shape(again, 404)


async def test_a_session_revokes_itself_and_the_users_others(conn):
    sessions = CacheService(conn).get_session_cache()
    current, *others = [await sessions.set_user_session("alice", {"n": n}, ttl=600) for n in range(3)]
    bob = await sessions.set_user_session("bob", {}, ttl=600)
    as_current = {"Authorization": f"Bearer {current}"}
    async with client_for(conn) as http:
        ended = await http.delete(f"{API}/sessions/others", headers=as_current)
        assert ended.json()["data"] == {"revoked": 2}
        for token in others:
            assert (await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer {token}"})).status_code == 401
        assert (await http.get(f"{API}/price-alerts", headers=as_current)).status_code == 200
        assert (await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer {bob}"})).status_code == 200
        logged_out = await http.delete(f"{API}/sessions/current", headers=as_current)
        assert logged_out.json()["data"] == {"revoked": 1}
        assert (await http.get(f"{API}/price-alerts", headers=as_current)).status_code == 401


async def test_nobody_revokes_another_users_session(conn):
    sessions = CacheService(conn).get_session_cache()
    alice = await sessions.set_user_session("alice", {}, ttl=600)
    bob = {"Authorization": f"Bearer {await sessions.set_user_session('bob', {}, ttl=600)}"}
    handle = session_handle(alice)
    async with client_for(conn) as http:
        assert_error_shape(await http.delete(f"{API}/sessions/alice/{handle}", headers=bob), 403)
        assert_error_shape(await http.delete(f"{API}/sessions/bob/{handle}", headers=bob), 404)
        assert_error_shape(await http.delete(f"{API}/sessions/bob/{'x' * 16}", headers=bob), 422)
    assert await sessions.resolve_session(alice) == "alice"


# -- 6. rate limits and caps ----------------------------------------------------------------------
def assert_rate_limit_headers(response: httpx.Response, policy: str) -> tuple[int, int]:
    """(remaining, seconds) of ``policy`` in the response's IETF RateLimit headers."""
    assert f'"{policy}";q=' in response.headers["ratelimit-policy"]
    match = re.search(rf'"{policy}";r=(\d+);t=(\d+)', response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return int(match.group(1)), int(match.group(2))


async def test_token_guessing_is_rate_limited_per_client_address(conn):
    session = await bearer(conn, "alice")
    proxy = ("10.0.0.2", 40000)
    limits = dict(auth_failure_rate_limit=RateLimitPolicy(5, 60.0), trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    async with client_for(conn, **limits) as http:
        guesses = [await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer {secrets.token_urlsafe(24)}"})
                   for _ in range(5)]
        assert [r.status_code for r in guesses] == [401] * 5
        assert [assert_rate_limit_headers(r, "auth_failures")[0] for r in guesses] == [4, 3, 2, 1, 0]
        blocked = await http.get(f"{API}/price-alerts", headers={"Authorization": "Bearer another-guess"})
        body = assert_error_shape(blocked, 429)
        assert "failed authentications" in body["message"]
        assert int(blocked.headers["retry-after"]) >= 1 and assert_rate_limit_headers(blocked, "auth_failures")[0] == 0
        # Locked out, the address learns nothing: a right token is refused like a wrong one.
        assert (await http.get(f"{API}/price-alerts", headers=session)).status_code == 429
        assert (await http.get(f"{API}/stats", headers={"X-Admin-Token": "guess"})).status_code == 429
        # X-Forwarded-For from an untrusted peer changes nothing.
        spoofed = await http.get(f"{API}/price-alerts", headers={**session, "X-Forwarded-For": "198.51.100.77"})
        assert spoofed.status_code == 429
    async with client_for(conn, client=proxy, **limits) as http:
        # Through a trusted proxy, the client it names is another address, with its own window.
        forwarded = await http.get(f"{API}/price-alerts", headers={**session, "X-Forwarded-For": "203.0.113.5"})
        assert forwarded.status_code == 200 and assert_rate_limit_headers(forwarded, "auth_failures")[0] == 5


async def test_a_burst_of_guesses_is_mostly_429(conn):
    async with client_for(conn) as http:  # the default: 20 failures a minute per address
        statuses = [(await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer guess{i}"})).status_code
                    for i in range(200)]
    assert statuses.count(401) == 20 and statuses.count(429) == 180


async def test_alert_writes_are_rate_limited_per_user(conn):
    alice, bob = await bearer(conn, "alice"), await bearer(conn, "bob")
    async with client_for(conn, write_rate_limit=RateLimitPolicy(3, 60.0)) as http:
        created = [await http.post(f"{API}/price-alert", json=ALERT, headers=alice) for _ in range(3)]
        assert [r.status_code for r in created] == [201] * 3
        assert [assert_rate_limit_headers(r, "writes")[0] for r in created] == [2, 1, 0]
        refused = await http.post(f"{API}/price-alert", json=ALERT, headers=alice)
        assert "too many writes" in assert_error_shape(refused, 429)["message"]
        remaining, seconds = assert_rate_limit_headers(refused, "writes")
        assert remaining == 0 and 1 <= seconds <= 60 and 1 <= int(refused.headers["retry-after"]) <= 60
        alert_id = created[0].json()["data"]["alert_id"]
        assert (await http.delete(f"{API}/price-alert/{alert_id}", headers=alice)).status_code == 429
        assert (await http.post(f"{API}/price-alert", json=ALERT, headers=bob)).status_code == 201
    assert len(await CacheService(conn).get_alerts().get_user_alerts("alice")) == 3


async def test_live_alerts_per_user_are_capped(conn):
    alice = await bearer(conn, "alice")
    async with client_for(conn, max_alerts_per_user=3) as http:
        # Concurrent creations cannot overshoot the cap (one process: a lock per user).
        created = await asyncio.gather(*(http.post(f"{API}/price-alert", json=ALERT, headers=alice) for _ in range(10)))
        assert sorted(r.status_code for r in created) == [201] * 3 + [422] * 7
        refused = next(r for r in created if r.status_code == 422)
        assert "REDTICK_MAX_ALERTS_PER_USER=3" in assert_error_shape(refused, 422)["message"]
        first = next(r for r in created if r.status_code == 201).json()["data"]["alert_id"]
        assert (await http.delete(f"{API}/price-alert/{first}", headers=alice)).status_code == 200
        assert (await http.post(f"{API}/price-alert", json=ALERT, headers=alice)).status_code == 201


async def test_price_alerts_are_paginated_by_cursor(conn):
    alice = await bearer(conn, "alice")
    alerts = CacheService(conn).get_alerts()
    ids = [await alerts.set_price_alert("alice", "BTCUSDT", float(p), "above") for p in range(7)]
    async with client_for(conn) as http:
        whole = (await http.get(f"{API}/price-alerts", headers=alice)).json()
        assert set(whole) == {"status", "data"} and len(whole["data"]) == 7  # the spec's shape
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = (await http.get(f"{API}/price-alerts", params=params, headers=alice)).json()
            seen += [a["alert_id"] for a in page["data"]]
            pages += 1
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        assert pages == 3 and sorted(seen) == sorted(ids) and len(seen) == 7
        assert seen == [a["alert_id"] for a in whole["data"]]
        for params in ({"cursor": "bm90LWEtY3Vyc29y"}, {"limit": 0}, {"limit": 1001}, {"cursor": "1.a b"}):
            assert_error_shape(await http.get(f"{API}/price-alerts", params=params, headers=alice), 422)
        # Any position is a page start, an item there or not: a cursor never has to be "known".
        beyond = await http.get(f"{API}/price-alerts", params={"cursor": "9999999999999.zz"}, headers=alice)
        assert beyond.status_code == 200 and beyond.json() == {"status": "success", "data": []}


def test_rate_limit_settings_name_the_variable():
    settings = WebSettings.from_env({"REDTICK_WRITE_RATE_LIMIT": "5/10s", "REDTICK_AUTH_FAILURE_RATE_LIMIT": "off",
                                     "REDTICK_TRUSTED_PROXIES": "10.0.0.0/8, fd00::1", "REDTICK_REQUEST_TIMEOUT": "2.5"})
    assert settings.write_rate_limit == RateLimitPolicy(5, 10.0) and settings.auth_failure_rate_limit is None
    assert settings.request_timeout == 2.5 and len(settings.trusted_proxies) == 2
    for name, value in (("REDTICK_WRITE_RATE_LIMIT", "lots"), ("REDTICK_TRUSTED_PROXIES", "proxy.local"),
                        ("REDTICK_MAX_ALERTS_PER_USER", "0"), ("REDTICK_REQUEST_TIMEOUT", "0"),
                        ("REDTICK_MAX_QUERY_BYTES", "-1")):
        with pytest.raises(ConfigurationError, match=name):
            WebSettings.from_env({name: value})


def test_client_address_trusts_only_the_configured_proxies():
    proxies = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    assert client_address("203.0.113.1", ["1.2.3.4"], proxies) == "203.0.113.1"
    assert client_address("10.0.0.1", ["1.2.3.4, 203.0.113.9, 10.0.0.7"], proxies) == "203.0.113.9"
    assert client_address("10.0.0.1", ["1.2.3.4", "203.0.113.9"], proxies) == "203.0.113.9"  # two header lines
    assert client_address("10.0.0.1", [], proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", ["garbage"], proxies) == "unknown"
    assert client_address("fd00::2", ["[2001:db8:1:2::99]:443"], proxies) == "2001:db8:1:2::/64"
    assert client_address("::ffff:203.0.113.4", [], proxies) == "203.0.113.4"
    assert client_address(None, ["1.2.3.4"], proxies) == "unknown"
    assert client_address("2001:db8:1:2::1", [], []) == client_address("2001:db8:1:2:ffff::1", [], [])


# -- a live server: the 200 MiB upload that used to cost 600 MB ---------------------------------
def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_live_uploads_of_200_mib_are_refused_without_growing_the_server():
    conn = Connection(Settings(url="memory://", namespace="t" + secrets.token_hex(4)))
    process, base = serve(conn)
    try:
        before = rss_kib(process.pid)

        async def upload(declared: bool) -> int:
            async def chunks():
                for _ in range(3200):  # 200 MiB
                    yield b"x" * 65_536

            headers = {"Content-Type": "application/json"}
            if declared:
                headers["Content-Length"] = str(3200 * 65_536)
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                try:
                    return (await http.post(f"{API}/price-alert", content=chunks(), headers=headers)).status_code
                except httpx.TransportError:
                    return -1  # the server closed the connection after its 413, mid-upload

        async def four_at_once() -> list[int]:
            return list(await asyncio.gather(*(upload(declared=i % 2 == 0) for i in range(4))))

        statuses = asyncio.run(four_at_once())
        after = rss_kib(process.pid)
        assert set(statuses) <= {413, -1} and 413 in statuses, statuses
        assert after - before < 64 * 1024, (before, after)  # it used to take 600 MB per upload
        with httpx.Client(base_url=base, timeout=5) as http:
            assert http.get(f"{API}/health").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
