"""cache_response and ResponseCacheMiddleware: keys, headers, 304, single flight, Redis failure."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse

from redtick.config import Settings
from redtick.connection import Connection
from redtick.web import ResponseCache, ResponseCacheMiddleware, cache_response
from tests.conftest import free_port


class Counter:
    def __init__(self) -> None:
        self.calls = 0


def make_app(conn: Connection, counter: Counter, ttl: int = 30) -> FastAPI:
    app = FastAPI()
    app.state.redtick_conn = conn

    def fresh_dependency() -> object:
        return object()  # a new object per request: must not change the key

    @app.get("/market/{symbol}")
    @cache_response(ttl=ttl, key_prefix="market_data")
    async def get_market_data(symbol: str, request: Request, dep: object = Depends(fresh_dependency)):
        counter.calls += 1
        if symbol == "MISSING":
            raise HTTPException(404, "no such symbol")
        return {"symbol": symbol, "call": counter.calls}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_miss_then_hit_with_cache_headers(conn):
    counter = Counter()
    async with client_for(make_app(conn, counter, ttl=30)) as client:
        first = await client.get("/market/BTCUSDT", params={"b": "2", "a": "1"})
        second = await client.get("/market/BTCUSDT", params={"a": "1", "b": "2"})  # same query, other order
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert first.json() == second.json() == {"symbol": "BTCUSDT", "call": 1}
    assert counter.calls == 1
    assert second.headers["cache-control"] == "max-age=30"
    etag = second.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert first.headers["etag"] == etag
    assert second.headers["content-type"] == "application/json"
    keys = list(conn.sync.scan_iter(match=conn.keys.everything()))
    assert len(keys) == 1 and keys[0].startswith(f"{conn.keys.namespace}:http:market_data:".encode())
    assert 0 < conn.sync.ttl(keys[0]) <= 30


async def test_different_paths_and_queries_are_different_entries(conn):
    counter = Counter()
    async with client_for(make_app(conn, counter)) as client:
        await client.get("/market/BTCUSDT")
        await client.get("/market/ETHUSDT")
        other = await client.get("/market/BTCUSDT", params={"depth": "5"})
    assert counter.calls == 3
    assert other.headers["x-cache"] == "MISS"


async def test_if_none_match_gets_304_without_body(conn):
    counter = Counter()
    async with client_for(make_app(conn, counter)) as client:
        etag = (await client.get("/market/BTCUSDT")).headers["etag"]
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            not_modified = await client.get("/market/BTCUSDT", headers={"If-None-Match": header})
            assert not_modified.status_code == 304, header
            assert not_modified.content == b""
            assert not_modified.headers["etag"] == etag
        changed = await client.get("/market/BTCUSDT", headers={"If-None-Match": '"stale"'})
    assert changed.status_code == 200 and changed.json()["call"] == 1


async def test_authorization_separates_callers_and_marks_private(conn):
    counter = Counter()
    async with client_for(make_app(conn, counter)) as client:
        alice = await client.get("/market/BTCUSDT", headers={"Authorization": "Bearer alice"})
        bob = await client.get("/market/BTCUSDT", headers={"Authorization": "Bearer bob"})
        alice_again = await client.get("/market/BTCUSDT", headers={"Authorization": "Bearer alice"})
    assert alice.json()["call"] == 1 and bob.json()["call"] == 2
    assert alice_again.headers["x-cache"] == "HIT" and alice_again.json()["call"] == 1
    assert alice.headers["cache-control"] == "private, max-age=30"
    raw = b"".join(conn.sync.scan_iter(match=conn.keys.everything()))
    assert b"alice" not in raw and b"bob" not in raw  # only a digest of the header reaches a key


async def test_errors_are_not_cached(conn):
    counter = Counter()
    async with client_for(make_app(conn, counter)) as client:
        for _ in range(2):
            response = await client.get("/market/MISSING")
            assert response.status_code == 404
            assert response.json() == {"detail": "no such symbol"}
    assert counter.calls == 2


async def test_concurrent_misses_run_the_handler_once(conn):
    counter = Counter()
    gate = asyncio.Event()
    app = FastAPI()
    app.state.redtick_conn = conn

    @app.get("/slow")
    @cache_response(ttl=30, key_prefix="slow")
    async def slow(request: Request):
        counter.calls += 1
        await gate.wait()
        return {"call": counter.calls}

    cache: ResponseCache = slow.response_cache
    looked_up = 0
    original = cache.load

    async def counting_load(*args):
        nonlocal looked_up
        result = await original(*args)
        looked_up += 1  # the caller joins or starts the flight before it next yields
        return result

    cache.load = counting_load
    async with client_for(app) as client:
        requests = [asyncio.ensure_future(client.get("/slow")) for _ in range(20)]
        while looked_up < 20:
            await asyncio.sleep(0.001)  # polling a condition, bounded by pytest's own timeout
        gate.set()
        responses = await asyncio.gather(*requests)
        after = await client.get("/slow")
    assert counter.calls == 1
    assert {r.json()["call"] for r in responses} == {1}
    assert {r.headers["x-cache"] for r in responses} == {"MISS"}
    assert after.headers["x-cache"] == "HIT"


def test_key_is_stable_across_processes():
    code = (
        "from redtick.web import ResponseCache;"
        "print(ResponseCache(5, 'p').digest('GET', '/x', [('b', '1'), ('a', '2')], {'accept': 'text/html'}))"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = ResponseCache(5, "p").digest("GET", "/x", [("a", "2"), ("b", "1")], {"accept": "text/html"})
    assert digests == {here}


def test_decorator_rejects_what_it_cannot_key_on():
    with pytest.raises(TypeError, match="request: Request"):

        @cache_response(ttl=5)
        async def no_request(symbol: str):
            return {}

    with pytest.raises(TypeError, match="async"):

        @cache_response(ttl=5)
        def sync_endpoint(request: Request):
            return {}


async def test_redis_down_serves_uncached_and_logs_without_secrets(caplog):
    dead = Connection(Settings(url=f"redis://:hunter2secret@127.0.0.1:{free_port()}/0", retries=0,
                               connect_timeout=0.5, namespace="deadtest"))
    counter = Counter()
    caplog.set_level(logging.INFO, logger="redtick")
    async with client_for(make_app(dead, counter)) as client:
        first = await client.get("/market/BTCUSDT")
        second = await client.get("/market/BTCUSDT")
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache"] == second.headers["x-cache"] == "MISS"
    assert counter.calls == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "uncached" in warnings[0].getMessage()
    assert "hunter2secret" not in caplog.text


async def test_caching_resumes_after_redis_comes_back(redis_server, real_redis_url):
    if redis_server is None or real_redis_url != redis_server.url:
        pytest.skip("needs the throwaway redis-server this suite may stop")
    conn = Connection(Settings(url=redis_server.url, namespace="resume", retries=0, connect_timeout=0.5))
    counter = Counter()
    async with client_for(make_app(conn, counter)) as client:
        redis_server.stop()
        try:
            down = await client.get("/market/BTCUSDT")
        finally:
            redis_server.start()
        assert down.status_code == 200 and down.headers["x-cache"] == "MISS"
        await client.get("/market/BTCUSDT")
        up = await client.get("/market/BTCUSDT")
    assert up.headers["x-cache"] == "HIT"
    assert counter.calls == 2
    conn.sync.delete(*conn.sync.keys("resume:*"))


async def test_middleware_caches_only_get_under_its_paths(conn):
    counter = Counter()
    app = FastAPI()
    app.state.redtick_conn = conn
    app.add_middleware(ResponseCacheMiddleware, ttl=15, key_prefix="pages", paths=["/public"])

    @app.get("/public/page")
    async def page():
        counter.calls += 1
        return PlainTextResponse(f"page {counter.calls}")

    @app.post("/public/page")
    async def post_page():
        counter.calls += 1
        return {"posted": counter.calls}

    @app.get("/public/secret")
    async def secret():
        raise HTTPException(401, "who are you", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/private")
    async def private():
        counter.calls += 1
        return {"call": counter.calls}

    async with client_for(app) as client:
        first, second = await client.get("/public/page"), await client.get("/public/page")
        assert (first.text, second.text) == ("page 1", "page 1")
        assert second.headers["x-cache"] == "HIT" and second.headers["cache-control"] == "max-age=15"
        assert second.headers["content-type"].startswith("text/plain")
        assert (await client.get("/public/page", headers={"If-None-Match": second.headers["etag"]})).status_code == 304
        assert (await client.post("/public/page")).json() == {"posted": 2}
        assert (await client.get("/private")).json() == {"call": 3}
        assert (await client.get("/private")).json() == {"call": 4}
        for _ in range(2):
            denied = await client.get("/public/secret")
            assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert len(list(conn.sync.scan_iter(match=conn.keys.pattern("http", "pages")))) == 1  # the page only
