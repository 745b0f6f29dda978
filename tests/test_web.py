"""The HTTP API in-process (ASGI) and as a live ``redtick serve``; schemathesis finds no server error.

Attacks of issue 13 are in tests/test_web_attacks.py; the load and fault drill in tests/test_web_faults.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

import httpx
import hypothesis
import pytest
import schemathesis

from redtick.caches.prices import PriceCache
from redtick.config import Settings
from redtick.connection import Connection
from redtick.service import CacheService
from redtick.web import create_app
from redtick.web.settings import WebSettings
from tests.conftest import free_port

TOKEN = "admin-token-for-tests"
API = "/api/v1/cache"
ADMIN = {"X-Admin-Token": TOKEN}


@pytest.fixture
def app(conn):
    return create_app(conn, admin_token=TOKEN, maintenance=False)


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def bearer(conn, user_id: str) -> dict[str, str]:
    session_id = await CacheService(conn).get_session_cache().set_user_session(user_id, {"device": "test"}, ttl=600)
    return {"Authorization": f"Bearer {session_id}"}


async def test_health_is_public_and_minimal(client):
    response = await client.get(f"{API}/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "latency_ms"} and body["status"] == "healthy" and body["latency_ms"] >= 0


async def test_health_report_needs_the_admin_token(client):
    report = await client.get(f"{API}/health", headers=ADMIN)
    assert report.status_code == 200
    body = report.json()
    assert body["status"] == "healthy" and body["redis_connected"] is True
    assert set(body["cache_stats"]) >= {"market_data", "user_session", "price"}
    wrong = await client.get(f"{API}/health", headers={"X-Admin-Token": "wrong"})
    assert wrong.status_code == 401 and "redis_info" not in wrong.text


@pytest.mark.parametrize("path,method", [("/stats", "GET"), ("/cleanup", "POST"), ("/clear?confirm=true", "DELETE")])
async def test_maintenance_needs_the_admin_token(client, conn, path, method):
    conn.sync.set(conn.keys.key("kept"), b"1")
    for headers in ({}, {"X-Admin-Token": "wrong"}, {"Authorization": f"Bearer {TOKEN}"}):
        response = await client.request(method, API + path, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["status"] == "error" and response.headers["www-authenticate"] == "Bearer"
    assert conn.sync.get(conn.keys.key("kept")) == b"1"
    assert (await client.request(method, API + path, headers=ADMIN)).status_code == 200


async def test_without_a_configured_token_maintenance_is_refused(conn):
    app = create_app(conn, admin_token="", maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        for headers in ({}, {"X-Admin-Token": ""}, {"X-Admin-Token": "anything"}):
            response = await http.delete(f"{API}/clear", params={"confirm": "true"}, headers=headers)
            assert response.status_code == 403
            assert "REDTICK_ADMIN_TOKEN" in response.json()["message"]


async def test_stats_shape(client, conn):
    conn.sync.set(conn.keys.market("price", "BTCUSDT"), b"{}")
    body = (await client.get(f"{API}/stats", headers=ADMIN)).json()
    assert body["status"] == "success"
    assert body["data"]["total_keys"] == 1 and body["data"]["symbol_count"] == 1
    assert body["data"]["caches"]["market_data"] == 1


async def test_clear_needs_confirm_and_stays_in_the_namespace(client, conn):
    conn.sync.set(conn.keys.key("a"), b"1")
    conn.sync.set("not-redtick", b"1")
    try:
        refused = await client.delete(f"{API}/clear", params={"confirm": "false"}, headers=ADMIN)
        assert refused.status_code == 422 and "confirm=true" in refused.json()["message"]
        missing = await client.delete(f"{API}/clear", headers=ADMIN)
        assert missing.status_code == 422 and "confirm" in missing.json()["message"]
        assert conn.sync.get(conn.keys.key("a")) == b"1"
        done = await client.delete(f"{API}/clear", params={"confirm": "true"}, headers=ADMIN)
        assert done.json() == {"status": "success", "data": {"namespace": conn.keys.namespace, "deleted_keys": 1}}
        assert conn.sync.get("not-redtick") == b"1"
    finally:
        conn.sync.delete("not-redtick")


async def test_cleanup(client):
    response = await client.post(f"{API}/cleanup", headers=ADMIN)
    assert response.status_code == 200
    # Retention is off by default: no series data is looked at, let alone deleted.
    assert response.json()["data"] == {"expired_sessions": 0, "expired_alerts": 0, "price_symbols": 0, "price_chunks_removed": 0,
                                       "price_ticks_removed": 0}


async def test_sessions_show_only_the_callers_own(client, conn):
    alice, bob = await bearer(conn, "alice"), await bearer(conn, "bob")
    mine = await client.get(f"{API}/sessions/alice", headers=alice)
    assert mine.status_code == 200
    assert [(s["user_id"], s["current"]) for s in mine.json()["data"]] == [("alice", True)]
    assert alice["Authorization"].split()[1] not in mine.text
    theirs = await client.get(f"{API}/sessions/alice", headers=bob)
    assert theirs.status_code == 403 and "alice" not in theirs.text.replace("/alice", "")
    assert bob["Authorization"].split()[1] not in theirs.text
    assert (await client.get(f"{API}/sessions/alice")).status_code == 401
    assert (await client.get(f"{API}/sessions/alice", headers={"Authorization": "Bearer nope"})).status_code == 401
    bad = await client.get(f"{API}/sessions/al ice", headers=alice)
    assert bad.status_code == 422 and "user_id" in bad.json()["message"]


async def test_price_alerts_belong_to_their_owner(client, conn):
    alice, bob = await bearer(conn, "alice"), await bearer(conn, "bob")
    created = await client.post(
        f"{API}/price-alert", json={"symbol": "BTCUSDT", "target_price": 55000.0, "condition": "above"}, headers=alice
    )
    assert created.status_code == 201
    alert_id = created.json()["data"]["alert_id"]
    listed = (await client.get(f"{API}/price-alerts", headers=alice)).json()["data"]
    assert [(a["alert_id"], a["symbol"], a["target_price"]) for a in listed] == [(alert_id, "BTCUSDT", 55000.0)]
    assert (await client.get(f"{API}/price-alerts", headers=bob)).json()["data"] == []
    assert (await client.delete(f"{API}/price-alert/{alert_id}", headers=bob)).status_code == 404
    assert len((await client.get(f"{API}/price-alerts", headers=alice)).json()["data"]) == 1
    deleted = await client.delete(f"{API}/price-alert/{alert_id}", headers=alice)
    assert deleted.json()["data"] == {"alert_id": alert_id, "deleted": True}
    assert (await client.get(f"{API}/price-alerts", headers=alice)).json()["data"] == []
    assert (await client.get(f"{API}/price-alerts")).status_code == 401


@pytest.mark.parametrize(
    "body,field",
    [
        ({"symbol": "btc usdt", "target_price": 1.0}, "symbol"),
        ({"symbol": "BTCUSDT", "target_price": "a lot"}, "target_price"),
        ({"symbol": "BTCUSDT", "target_price": 1.0, "condition": "sideways"}, "condition"),
        ({"symbol": "BTCUSDT"}, "target_price"),
    ],
)
async def test_bad_alert_input_is_422_with_a_clear_message(client, conn, body, field):
    response = await client.post(f"{API}/price-alert", json=body, headers=await bearer(conn, "alice"))
    assert response.status_code == 422
    assert response.json()["status"] == "error" and field in response.json()["message"]


async def test_redis_down_is_503_with_a_json_body():
    dead = Connection(Settings(url=f"redis://:s3cretpw@127.0.0.1:{free_port()}/0", retries=0, connect_timeout=0.5))
    app = create_app(dead, admin_token=TOKEN, maintenance=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        health = await http.get(f"{API}/health")
        assert health.status_code == 503 and health.json() == {"status": "unhealthy", "latency_ms": None}
        report = await http.get(f"{API}/health", headers=ADMIN)  # the admin check fails open for monitoring
        assert report.status_code == 503 and report.json()["redis_connected"] is False
        stats = await http.get(f"{API}/stats", headers=ADMIN)
        assert stats.status_code == 503
        assert stats.json() == {"status": "error", "error": "Unavailable",
                                "message": "Redis is unavailable; try again shortly"}
        alerts = await http.get(f"{API}/price-alerts", headers={"Authorization": "Bearer abc"})
        assert alerts.status_code == 503 and "s3cretpw" not in alerts.text


async def test_market_data_price_and_symbols(client, conn):
    service = CacheService(conn)
    market, prices = service.get_market_cache(), service.get_price_cache()
    assert (await client.get(f"{API}/market-data/BTCUSDT")).status_code == 404
    assert (await client.get(f"{API}/price/BTCUSDT")).status_code == 404
    await market.set_symbol_price("BTCUSDT", {"price": 50000.0, "volume": 1000.0})
    await market.set_order_book("BTCUSDT", {"bids": [[49950.0, 1.5]], "asks": [[50050.0, 1.2]]})
    await market.add_trade_history("BTCUSDT", {"price": 50000.0, "quantity": 0.1, "side": "buy"})
    await prices.set_current_price("ETHUSDT", 2500.0, volume=3.0)
    data = (await client.get(f"{API}/market-data/BTCUSDT", headers={"Accept": "text/json"})).json()["data"]
    assert data["symbol"] == "BTCUSDT" and data["price"]["price"] == 50000.0
    assert data["order_book"]["bids"] == [[49950.0, 1.5]] and data["trade"]["side"] == "buy"
    quote = (await client.get(f"{API}/price/ETHUSDT", headers={"Accept": "text/json"})).json()["data"]
    assert quote["symbol"] == "ETHUSDT" and quote["price"] == 2500.0
    listed = (await client.get(f"{API}/symbols")).json()["data"]
    assert listed == {"symbols": ["BTCUSDT", "ETHUSDT"], "count": 2}
    bad = await client.get(f"{API}/market-data/btc usdt")
    assert bad.status_code == 422 and "symbol" in bad.json()["message"]


async def test_fired_alerts_show_the_ticks_time_and_the_recording_time_to_their_owner_only(client, conn):
    alice, bob = await bearer(conn, "alice"), await bearer(conn, "bob")
    created = await client.post(
        f"{API}/price-alert", json={"symbol": "ES", "target_price": 1640.0, "condition": "above"}, headers=alice
    )
    alert_id = created.json()["data"]["alert_id"]
    before = int(time.time() * 1000)
    await PriceCache(conn).set_current_price("ES", 1640.25, 3.0, timestamp="2013-09-01T22:00:00.083Z")
    fired = (await client.get(f"{API}/price-alerts/fired", headers=alice)).json()["data"]
    assert [(f["alert_id"], f["price"], f["fired_at"]) for f in fired] == [(alert_id, 1640.25, 1_378_072_800_083)]
    assert before <= fired[0]["recorded_at"] <= int(time.time() * 1000)
    assert (await client.get(f"{API}/price-alerts/fired", headers=bob)).json()["data"] == []
    assert (await client.get(f"{API}/price-alerts/fired")).status_code == 401


def test_openapi_documents_every_endpoint_and_both_security_schemes(app):
    schema = app.openapi()
    assert set(schema["components"]["securitySchemes"]) == {"SessionBearer", "AdminToken"}
    operations = {(path.removeprefix(API), method) for path, item in schema["paths"].items() for method in item}
    assert operations >= {
        ("/market-data/{symbol}", "get"), ("/price/{symbol}", "get"), ("/symbols", "get"),
        ("/health", "get"), ("/stats", "get"), ("/sessions/{user_id}", "get"), ("/price-alerts", "get"),
        ("/price-alerts/fired", "get"),
        ("/price-alert", "post"), ("/price-alert/{alert_id}", "delete"), ("/cleanup", "post"), ("/clear", "delete"),
        ("/sessions/current", "delete"), ("/sessions/others", "delete"), ("/sessions/{user_id}/{handle}", "delete"),
    }
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert "200" in operation["responses"] or "201" in operation["responses"], (path, method)
            assert "content" in next(iter(operation["responses"].values())), (path, method)
    stats = schema["paths"][f"{API}/stats"]["get"]
    assert stats["security"] == [{"AdminToken": []}]


def run_schemathesis(app, headers: dict[str, str], max_examples: int = 15) -> tuple[list[str], list[tuple]]:
    """Every operation of ``app``'s schema, positive and negative cases; (paths called, failed checks).

    Strings are Latin-1, where the symbol pattern is the symbol rule itself; beyond it no portable
    regex can say "printable, NFC" (tests/test_web_attacks.py covers all of Unicode).
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(codec="latin-1")
    calls, failures = [], []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(max_examples=max_examples, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=operation.as_strategy())
        def run(case):
            response = case.call(headers=headers)
            calls.append(case.path)
            try:
                case.validate_response(response)  # every default check: no 5xx, documented status and schema
            except Exception as exc:  # schemathesis raises a FailureGroup naming every failed check
                failures.append((case.method, case.formatted_path, response.status_code, str(exc)[:300]))

        run()
    return calls, failures


def test_schemathesis_finds_no_server_error(conn):
    app = create_app(conn, admin_token=TOKEN, maintenance=False,
                     settings=WebSettings(write_rate_limit=None, auth_failure_rate_limit=None))
    session = asyncio.run(bearer(conn, "fuzzer"))
    calls, failures = run_schemathesis(app, {**ADMIN, **session})
    anonymous_calls, anonymous_failures = run_schemathesis(app, {}, max_examples=5)
    assert len(calls) > 50 and len(set(calls)) == 16  # the API's 15 paths and /metrics
    assert len(set(anonymous_calls)) == 16
    assert failures == [] and anonymous_failures == []


# -- a live `redtick serve` ----------------------------------------------------------------------
def serve(conn, **extra_env: str) -> tuple[subprocess.Popen, str]:
    """Start ``redtick serve`` on a free port on the test's Redis (its own fakeredis on the memory leg).

    Returns the process and its base URL once ``/health`` answers 200; the caller ends the process.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "REDTICK_"))}
    env.update(REDTICK_NAMESPACE=conn.keys.namespace, REDTICK_ADMIN_TOKEN=TOKEN, REDTICK_HOME=os.environ["REDTICK_HOME"])
    env["REDIS_URL"] = "memory://" if conn.in_memory else conn.settings.url
    env.update(extra_env)
    command = shutil.which("redtick", path=os.path.dirname(sys.executable)) or "redtick"
    # A file, not a pipe: a server that logs a lot must never block on it. The child keeps its own
    # descriptor, so the file lives as long as the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([command, "serve", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    if httpx.get(f"{base}{API}/health", timeout=1).status_code == 200:
                        return process, base
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"redtick serve exited: {log.read().decode(errors='replace')[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError("redtick serve did not answer within 30s")
                time.sleep(0.05)  # polling readiness against a deadline
        except BaseException:
            process.terminate()
            process.wait(timeout=10)
            raise


@pytest.fixture
def live(conn):
    """``redtick serve`` on a free port, on the test's Redis (its own in-process fakeredis on the memory leg)."""
    process, base = serve(conn)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_live_server(live):
    with httpx.Client(base_url=live, timeout=5) as http:
        health = http.get(f"{API}/health")
        assert health.json()["status"] == "healthy" and set(health.json()) == {"status", "latency_ms"}
        report = http.get(f"{API}/health", headers=ADMIN)
        assert report.json()["redis_connected"] is True and report.json()["is_running"] is True
        assert http.get(f"{API}/stats").status_code == 401
        stats = http.get(f"{API}/stats", headers=ADMIN)
        assert stats.status_code == 200 and stats.json()["status"] == "success"
        assert http.get(f"{API}/price-alerts", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.delete(f"{API}/clear", headers=ADMIN).status_code == 422
        assert http.get("/openapi.json").json()["info"]["title"] == "redtick cache API"
