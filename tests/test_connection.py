"""Connections: the shared default, errors translated, bounded failure, recovery after a restart."""

import asyncio
import time

import pytest

import redtick
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import RedisError, Unavailable


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
    from tests.conftest import free_port

    port = free_port()  # nothing listens here
    conn = Connection(Settings(url=f"redis://127.0.0.1:{port}/0", connect_timeout=0.5, retries=2))
    started = time.monotonic()
    with pytest.raises(Unavailable, match="Redis is unavailable"):
        conn.sync.ping()
    assert time.monotonic() - started < 30  # bounded: a hang would trip pytest's own limits first


async def test_unreachable_server_async():
    from tests.conftest import free_port

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
