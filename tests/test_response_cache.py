"""cache_response and ResponseCacheMiddleware: keys, headers, 304, single flight, Redis failure."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

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
    async def get_market_data(symbol: str, request: Request, dep: object = Depends(fresh_dependency),
                              a: str | None = None, b: str | None = None, depth: int | None = None):
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
        "print(ResponseCache(5, 'p').digest('GET', 'https', 'h', '/x', [('b', '1'), ('a', '2')], {'accept': 'text/html'}))"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = ResponseCache(5, "p").digest("GET", "https", "h", "/x", [("a", "2"), ("b", "1")], {"accept": "text/html"})
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


# -- no leaks: credentials, single flight, Host, query strings (issue 13, point 1) -----------------
def user_app(conn: Connection, counter: Counter, *, gate: asyncio.Event | None = None) -> FastAPI:
    """Endpoints that authenticate by cookie, by X-Api-Key, or set a cookie: every body is personal."""
    app = FastAPI()
    app.state.redtick_conn = conn

    async def wait() -> None:
        if gate is not None:
            await gate.wait()

    @app.get("/me/cookie")
    @cache_response(ttl=30, key_prefix="me_cookie")
    async def by_cookie(request: Request):
        counter.calls += 1
        await wait()
        return {"user": request.cookies.get("session", "anonymous")}

    @app.get("/me/key")
    @cache_response(ttl=30, key_prefix="me_key", vary_on_headers=["X-Api-Key"])
    async def by_api_key(request: Request):
        counter.calls += 1
        await wait()
        return {"user": request.headers.get("x-api-key", "anonymous")}

    @app.get("/login")
    @cache_response(ttl=30, key_prefix="login")
    async def login(request: Request):
        counter.calls += 1
        await wait()
        response = JSONResponse({"issued": counter.calls})
        response.set_cookie("session", f"token-{counter.calls}")
        return response

    @app.get("/links/{symbol}", name="links")
    @cache_response(ttl=30, key_prefix="links")
    async def links(symbol: str, request: Request):
        counter.calls += 1
        return {"self": str(request.url_for("links", symbol=symbol))}

    app.state.caches = {"cookie": by_cookie.response_cache, "login": login.response_cache}
    return app


def redis_keys(conn: Connection) -> list[bytes]:
    return list(conn.sync.scan_iter(match=conn.keys.everything()))


async def test_cookie_users_never_see_each_others_response(conn):
    counter = Counter()
    async with client_for(user_app(conn, counter)) as client:
        alice = await client.get("/me/cookie", headers={"Cookie": "session=alice"})
        bob = await client.get("/me/cookie", headers={"Cookie": "session=bob"})
        alice_again = await client.get("/me/cookie", headers={"Cookie": "session=alice"})
        nobody = await client.get("/me/cookie")
    assert (alice.json(), bob.json(), nobody.json()) == ({"user": "alice"}, {"user": "bob"}, {"user": "anonymous"})
    assert alice_again.json() == {"user": "alice"} and alice_again.headers["x-cache"] == "HIT"
    assert alice.headers["cache-control"] == bob.headers["cache-control"] == "private, max-age=30"
    assert nobody.headers["cache-control"] == "max-age=30"
    assert "Cookie" in alice.headers["vary"] and "Authorization" in alice.headers["vary"]
    assert counter.calls == 3
    raw = b"".join(redis_keys(conn))
    assert b"alice" not in raw and b"bob" not in raw


async def test_api_key_users_never_see_each_others_response(conn):
    counter = Counter()
    async with client_for(user_app(conn, counter)) as client:
        first = await client.get("/me/key", headers={"X-Api-Key": "key-of-alice"})
        second = await client.get("/me/key", headers={"X-Api-Key": "key-of-bob"})
        again = await client.get("/me/key", headers={"X-Api-Key": "key-of-alice"})
    assert (first.json(), second.json()) == ({"user": "key-of-alice"}, {"user": "key-of-bob"})
    assert again.headers["x-cache"] == "HIT" and again.json() == {"user": "key-of-alice"}
    assert first.headers["cache-control"].startswith("private")
    assert "X-Api-Key" in first.headers["vary"]


async def _concurrently(client: httpx.AsyncClient, path: str, headers: list[dict[str, str]],
                        cache: ResponseCache, gate: asyncio.Event) -> list[httpx.Response]:
    """Send every request at once; release the handlers only after each request looked in the cache.

    A request joins or starts its key's flight right after its lookup, before it next yields, so
    once every lookup is done, requests with equal keys are all waiting on one production.
    """
    looked_up = 0
    original = cache.load

    async def counting_load(*args):
        nonlocal looked_up
        result = await original(*args)
        looked_up += 1
        return result

    cache.load = counting_load
    try:
        requests = [asyncio.ensure_future(client.get(path, headers=h)) for h in headers]
        while looked_up < len(headers):
            await asyncio.sleep(0.001)  # polling a condition, bounded by the pytest run
        gate.set()
        return list(await asyncio.gather(*requests))
    finally:
        cache.load = original


async def test_concurrent_waiters_with_different_cookies_each_get_their_own(conn):
    counter, gate = Counter(), asyncio.Event()
    app = user_app(conn, counter, gate=gate)
    async with client_for(app) as client:
        users = [f"user{i}" for i in range(8)]
        responses = await _concurrently(client, "/me/cookie", [{"Cookie": f"session={u}"} for u in users],
                                        app.state.caches["cookie"], gate)
    assert [r.json()["user"] for r in responses] == users
    assert counter.calls == len(users)  # different keys never collapse into one handler call


async def test_a_response_that_sets_a_cookie_is_never_shared(conn):
    counter, gate = Counter(), asyncio.Event()
    app = user_app(conn, counter, gate=gate)
    async with client_for(app) as client:
        # Six anonymous callers: equal keys, so they join one flight; its response sets a cookie.
        responses = await _concurrently(client, "/login", [{}] * 6, app.state.caches["login"], gate)
        later = await client.get("/login")
    cookies = [r.headers["set-cookie"].split(";")[0] for r in responses]
    assert len(set(cookies)) == 6  # each caller got the cookie its own handler call issued
    assert all(r.headers["x-cache"] == "MISS" and "no-store" in r.headers["cache-control"] for r in responses)
    assert later.headers["set-cookie"].startswith("session=token-7")  # nothing stored, nothing replayed
    assert redis_keys(conn) == []


async def test_a_forged_host_never_reaches_another_caller(conn):
    counter = Counter()
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    async with client_for(user_app(conn, counter)) as client:
        poisoned = await client.get("/links/BTCUSDT", headers=forged)
        normal = await client.get("/links/BTCUSDT")
        normal_again = await client.get("/links/BTCUSDT")
        only_xfh = await client.get("/links/BTCUSDT", headers={"X-Forwarded-Host": "evil.example"})
    assert poisoned.json() == {"self": "http://evil.example/links/BTCUSDT"}
    assert normal.json() == normal_again.json() == only_xfh.json() == {"self": "http://test/links/BTCUSDT"}
    assert normal.headers["x-cache"] == "MISS" and normal_again.headers["x-cache"] == "HIT"
    assert only_xfh.headers["x-cache"] == "HIT"  # X-Forwarded-* is not read, so it is no key either


async def test_undeclared_query_parameters_bypass_the_cache_and_create_no_key(conn):
    counter = Counter()
    async with client_for(make_app(conn, counter)) as client:
        busted = [await client.get("/market/BTCUSDT", params={"b": "x", "cachebust": str(i)}) for i in range(5)]
        declared = await client.get("/market/BTCUSDT", params={"depth": "5"})
    assert {r.headers["x-cache"] for r in busted} == {"BYPASS"}
    assert all(r.status_code == 200 for r in busted)
    assert declared.headers["x-cache"] == "MISS"
    assert len(redis_keys(conn)) == 1  # the declared query only


async def test_a_handler_that_says_no_store_is_not_stored(conn):
    counter = Counter()
    app = FastAPI()
    app.state.redtick_conn = conn

    @app.get("/volatile")
    @cache_response(ttl=30, key_prefix="volatile")
    async def volatile(request: Request):
        counter.calls += 1
        return JSONResponse({"call": counter.calls}, headers={"Cache-Control": "no-store"})

    async with client_for(app) as client:
        assert [(await client.get("/volatile")).json()["call"] for _ in range(2)] == [1, 2]
    assert redis_keys(conn) == []


def middleware_app(conn: Connection, counter: Counter, **options) -> FastAPI:
    app = FastAPI()
    app.state.redtick_conn = conn
    app.add_middleware(ResponseCacheMiddleware, ttl=15, key_prefix="mw", paths=["/p"], **options)

    @app.get("/p/me")
    async def me(request: Request):
        counter.calls += 1
        user = request.cookies.get("session") or request.headers.get("x-api-key") or "anonymous"
        return {"user": user, "call": counter.calls}

    @app.get("/p/links", name="mw_links")
    async def mw_links(request: Request):
        counter.calls += 1
        return {"self": str(request.url_for("mw_links"))}

    return app


async def test_middleware_serves_credentialed_requests_uncached_by_default(conn):
    counter = Counter()
    async with client_for(middleware_app(conn, counter, vary_on_headers=["X-Api-Key"])) as client:
        alice = await client.get("/p/me", headers={"Cookie": "session=alice"})
        bob = await client.get("/p/me", headers={"Cookie": "session=bob"})
        carol = await client.get("/p/me", headers={"X-Api-Key": "carol"})
        dave = await client.get("/p/me", headers={"X-Api-Key": "dave"})
        anonymous = [await client.get("/p/me") for _ in range(2)]
    assert [r.json()["user"] for r in (alice, bob, carol, dave)] == ["alice", "bob", "carol", "dave"]
    assert {r.headers["x-cache"] for r in (alice, bob, carol, dave)} == {"BYPASS"}
    assert anonymous[1].headers["x-cache"] == "HIT" and anonymous[1].json()["user"] == "anonymous"
    assert len(redis_keys(conn)) == 1


async def test_middleware_with_private_keys_each_credential(conn):
    counter = Counter()
    app = middleware_app(conn, counter, private=True)
    async with client_for(app) as client:
        alice = await client.get("/p/me", headers={"Cookie": "session=alice"})
        bob = await client.get("/p/me", headers={"Cookie": "session=bob"})
        alice_again = await client.get("/p/me", headers={"Cookie": "session=alice"})
    assert (alice.json()["user"], bob.json()["user"]) == ("alice", "bob")
    assert alice_again.headers["x-cache"] == "HIT" and alice_again.json() == alice.json()
    assert alice.headers["cache-control"] == "private, max-age=15"


async def test_middleware_under_a_forged_host_and_busted_query(conn):
    counter = Counter()
    async with client_for(middleware_app(conn, counter)) as client:
        poisoned = await client.get("/p/links", headers={"Host": "evil.example"})
        normal = await client.get("/p/links")
        busted = await client.get("/p/links", params={"x": "1"})
    assert poisoned.json()["self"] == "http://evil.example/p/links"
    assert normal.json()["self"] == "http://test/p/links" and normal.headers["x-cache"] == "MISS"
    assert busted.headers["x-cache"] == "BYPASS"
    assert len(redis_keys(conn)) == 2  # one per host; the query string made none
