"""Connections: the shared default, errors translated, bounded failure, recovery after a restart, sync calls of async work."""

import asyncio
import os
import time

import pytest

import redtick
from redtick.config import Settings
from redtick.connection import Connection, blocking
from redtick.errors import RedisError, Unavailable
from tests.servers import free_port


async def test_sync_and_async_clients_see_the_same_data(conn):
    key = conn.keys.key("shared")
    conn.sync.set(key, b"from-sync")
    assert await conn.async_client().get(key) == b"from-sync"
    await conn.async_client().set(key, b"from-async")
    assert conn.sync.get(key) == b"from-async"
    await conn.aclose()


def test_default_connection_is_shared_and_on_the_local_store():
    conn = redtick.connect()
    assert conn is redtick.connect()
    assert conn.store is not None and conn.settings.topology == "local"
    assert conn.sync.ping() and conn.store.answers()


def test_server_errors_are_translated(conn):
    # A cluster client refuses a keyless unknown command before sending it: typed all the same.
    with pytest.raises(RedisError, match=r"unknown command|Missing key"):
        conn.sync.execute_command("NOSUCHCOMMAND")
    key = conn.keys.key("a-string")
    conn.sync.set(key, b"x")
    pipe = conn.sync.pipeline()
    pipe.lpush(key, b"y")
    with pytest.raises(RedisError, match="WRONGTYPE"):
        pipe.execute()


async def test_async_errors_are_translated(conn):
    client = conn.async_client()
    with pytest.raises(RedisError, match=r"unknown command|Missing key|target nodes"):
        await client.execute_command("NOSUCHCOMMAND")
    await conn.aclose()


def test_unreachable_server_gives_a_bounded_clear_error():
    port = free_port()  # nothing listens here
    conn = Connection(Settings(url=f"redis://127.0.0.1:{port}/0", connect_timeout=0.5, retries=2))
    started = time.monotonic()
    with pytest.raises(Unavailable, match="Redis is unavailable"):
        conn.sync.ping()
    assert time.monotonic() - started < 30  # bounded: a hang would trip pytest's own limits first


async def test_unreachable_server_async():
    conn = Connection(Settings(url=f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5, retries=1))
    with pytest.raises(Unavailable):
        await asyncio.wait_for(conn.async_client().ping(), timeout=60)


def test_client_recovers_by_itself_after_a_server_restart(redis_server):
    if redis_server is None:
        pytest.skip("needs a local redis-server binary to restart")
    conn = Connection(Settings(url=redis_server.url, namespace="trestart", retries=5))
    key = conn.keys.key("alive")
    assert conn.sync.set(key, b"1")
    redis_server.restart()  # the pooled connection is now dead
    # No reconnect call: the same client reconnects through redis-py's Retry with backoff.
    assert conn.sync.set(key, b"2")
    assert conn.sync.get(key) == b"2"
    conn.close()


async def test_async_client_recovers_after_a_server_restart(redis_server):
    if redis_server is None:
        pytest.skip("needs a local redis-server binary to restart")
    conn = Connection(Settings(url=redis_server.url, namespace="trestart2", retries=5))
    client = conn.async_client()
    key = conn.keys.key("alive")
    assert await client.set(key, b"1")
    redis_server.restart()
    assert await client.set(key, b"2")
    assert await client.get(key) == b"2"
    await conn.aclose()


def test_repr_never_shows_the_password():
    conn = Connection(Settings(url="redis://:topsecret@127.0.0.1:6379/0"))
    assert "topsecret" not in repr(conn)


def test_with_settings_reaches_the_same_data_with_other_settings(conn):
    key = conn.keys.key("shared")
    conn.sync.set(key, b"1")
    other = conn.with_settings(tick_chunk_ms=600_000)
    assert other.settings.tick_chunk_ms == 600_000 and other.settings.namespace == conn.settings.namespace
    assert other.sync.get(key) == b"1" and other.server is conn.server
    same = conn.with_settings(other.settings, retries=1)
    assert same.settings.tick_chunk_ms == 600_000 and same.settings.retries == 1 and same.sync.get(key) == b"1"
    other.close()
    same.close()


# -- blocking(): async work from sync code, on one background loop ---------------------------------------
async def _pinged_client(conn):
    client = conn.async_client()
    assert await client.ping()
    return client


def _connections_received(conn) -> int:
    return conn.sync.info("stats")["total_connections_received"]


def test_blocking_calls_reuse_one_client_and_its_pool(conn, backend):
    first = blocking(conn, lambda: _pinged_client(conn))
    received = _connections_received(conn) if backend == "real" else 0
    clients = {id(blocking(conn, lambda: _pinged_client(conn))) for _ in range(25)}
    assert clients == {id(first)}
    if backend == "real":  # the server saw no new connection: each call was one round trip on the kept pool
        assert _connections_received(conn) == received
    conn.close()


async def test_blocking_works_inside_a_running_event_loop(conn):
    asyncio.get_running_loop()  # as in Jupyter, where asyncio.run refuses to start
    assert blocking(conn, lambda: conn.async_client().ping())
    conn.close()


def test_an_exception_in_blocking_keeps_its_type(conn):
    async def fails():
        raise KeyError("no such thing")

    with pytest.raises(KeyError, match="no such thing"):
        blocking(conn, fails)
    with pytest.raises(RedisError, match=r"unknown command|Missing key|target nodes"):
        blocking(conn, lambda: conn.async_client().execute_command("NOSUCHCOMMAND"))
    assert blocking(conn, lambda: conn.async_client().ping())  # the loop and the client still serve
    conn.close()


def test_blocking_works_after_the_connection_is_closed_and_reopened(conn):
    key = conn.keys.key("reopened")
    first = blocking(conn, lambda: _pinged_client(conn))
    conn.close()
    second = blocking(conn, lambda: _pinged_client(conn))
    assert second is not first
    assert blocking(conn, lambda: conn.async_client().set(key, b"1"))
    assert conn.sync.get(key) == b"1"
    conn.close()


def test_blocking_on_its_own_background_loop_refuses_instead_of_deadlocking(conn):
    async def nested():
        return blocking(conn, lambda: conn.async_client().ping())

    with pytest.raises(RuntimeError, match="background event loop"):
        blocking(conn, nested)
    conn.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_blocking_works_in_a_forked_child(conn):
    assert blocking(conn, lambda: conn.async_client().ping())  # the parent's loop thread runs
    pid = os.fork()
    if pid == 0:  # the child: the loop thread did not survive the fork, so blocking starts another
        code = 1
        try:
            code = 0 if blocking(conn, lambda: conn.async_client().ping()) else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("blocking() hung in a forked child")
        time.sleep(0.05)  # polling the child's exit
    assert os.waitstatus_to_exitcode(done[1]) == 0
    conn.close()
