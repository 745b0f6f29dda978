"""cached_repository on a real SQLite repository: hits send no SQL, writes are never followed by stale reads."""

from __future__ import annotations

import asyncio
import importlib.util
import pathlib
import sys

import pytest

from redtick.caches.repository import cached_repository
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import Unavailable
from tests.conftest import free_port

_EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "cached_user_repository.py"
_spec = importlib.util.spec_from_file_location("cached_user_repository_example", _EXAMPLE)
example = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = example  # dataclasses look their module up while the class is built
_spec.loader.exec_module(example)
User, UserRepository = example.User, example.UserRepository


def cached(conn, base=UserRepository, prefix="user"):
    @cached_repository(cache_prefix=prefix, default_ttl=600, conn=conn)
    class CachedUserRepository(base):
        pass

    return CachedUserRepository()


class Sql:
    """How many SQL statements a block sent."""

    def __init__(self, repo):
        self.repo = repo

    async def __call__(self, awaitable):
        before = self.repo.statements
        result = await awaitable
        return result, self.repo.statements - before


async def test_hit_sends_no_sql_and_keeps_types(conn):
    repo = cached(conn)
    sql = Sql(repo)
    await repo.create(User(1, "ada@example.com", "Ada"))
    first, cost_miss = await sql(repo.get_by_id(1, use_cache=True))
    again, cost_hit = await sql(repo.get_by_id(1, use_cache=True))
    assert (cost_miss, cost_hit) == (1, 0)
    assert first == again == User(1, "ada@example.com", "Ada")
    assert type(again) is User
    everyone, _ = await sql(repo.get_all())
    everyone_again, cost = await sql(repo.get_all())
    assert cost == 0 and everyone_again == everyone == [User(1, "ada@example.com", "Ada")]
    missing, _ = await sql(repo.get_by_id(99))
    missing_again, cost = await sql(repo.get_by_id(99))
    assert missing is missing_again is None and cost == 0
    assert repo.repository_cache.hits == 3 and repo.repository_cache.misses == 3
    keys = list(conn.sync.scan_iter(match=conn.keys.pattern("repo", "user")))
    assert keys and all(0 < conn.sync.ttl(k) <= 600 for k in keys)


@pytest.mark.parametrize("write", ["create", "update", "delete"])
async def test_a_write_is_never_followed_by_a_stale_read(conn, write):
    repo = cached(conn)
    await repo.create(User(1, "ada@example.com", "Ada"))
    before = (await repo.get_by_id(1), await repo.get_by_email("ada@example.com"), await repo.get_all())
    assert (await repo.get_by_id(1), await repo.get_all()) == (before[0], before[2])  # cached now
    if write == "create":
        await repo.create(User(2, "bob@example.com", "Bob"))
    elif write == "update":
        await repo.update(User(1, "ada@example.com", "Ada Lovelace"))
    else:
        await repo.delete(1)
    fresh = UserRepository.__new__(UserRepository)  # the uncached methods, on the same database
    fresh.__dict__ = repo.__dict__
    for method, args in (("get_by_id", (1,)), ("get_by_email", ("ada@example.com",)), ("get_all", ())):
        assert await getattr(repo, method)(*args) == await getattr(UserRepository, method)(fresh, *args), method


async def test_a_read_racing_a_write_cannot_leave_a_stale_entry(conn):
    queried, release = asyncio.Event(), asyncio.Event()

    class SlowReads(UserRepository):
        async def get_by_id(self, user_id: int) -> User | None:
            row = await super().get_by_id(user_id)
            queried.set()
            await release.wait()  # the write lands between the query and the cache store
            return row

    repo = cached(conn, SlowReads)
    await repo.create(User(1, "ada@example.com", "Ada"))
    reader = asyncio.ensure_future(repo.get_by_id(1))
    await queried.wait()
    await repo.update(User(1, "ada@example.com", "Ada Lovelace"))
    release.set()
    assert (await reader).name == "Ada"  # began before the write: the old row is a fair answer
    queried.clear()
    assert (await repo.get_by_id(1)).name == "Ada Lovelace"


async def test_use_cache_false_reads_the_database_and_refreshes(conn):
    repo = cached(conn)
    sql = Sql(repo)
    await repo.create(User(1, "ada@example.com", "Ada"))
    await repo.get_by_id(1)
    await UserRepository.update(repo, User(1, "ada@example.com", "Changed Elsewhere"))  # bypasses the cache
    assert (await repo.get_by_id(1)).name == "Ada"  # what a cache is: it has not seen that write
    fresh, cost = await sql(repo.get_by_id(1, use_cache=False))
    assert cost == 1 and fresh.name == "Changed Elsewhere"
    refreshed, cost = await sql(repo.get_by_id(1))
    assert cost == 0 and refreshed.name == "Changed Elsewhere"


async def test_invalidate_cache_by_pattern_stays_in_its_prefix(conn):
    users, orders = cached(conn), cached(conn, prefix="order")
    sql = Sql(users)
    await users.create(User(1, "ada@example.com", "Ada"))
    await orders.create(User(1, "ada@example.com", "Ada"))
    for repo in (users, orders):
        await repo.get_by_id(1)
        await repo.get_all()
    conn.sync.set("user:get_by_id:outside", b"1")  # not ours: outside the namespace
    try:
        assert await users.invalidate_cache("get_by_id*") == 1
        _, cost_by_id = await sql(users.get_by_id(1))
        _, cost_all = await sql(users.get_all())
        assert (cost_by_id, cost_all) == (1, 0)
        orders_before = orders.repository_cache.hits
        await orders.get_by_id(1)
        assert orders.repository_cache.hits == orders_before + 1
        assert await users.invalidate_cache("[") == 0  # glob characters in a pattern are literal
        assert conn.sync.get("user:get_by_id:outside") == b"1"
    finally:
        conn.sync.delete("user:get_by_id:outside")


async def test_redis_down_reads_from_the_database_and_refuses_writes():
    dead = Connection(Settings(url=f"redis://127.0.0.1:{free_port()}/0", retries=0, connect_timeout=0.5))
    repo = cached(dead)
    sql = Sql(repo)
    await UserRepository.create(repo, User(1, "ada@example.com", "Ada"))
    user, cost = await sql(repo.get_by_id(1))
    assert user == User(1, "ada@example.com", "Ada") and cost == 1
    with pytest.raises(Unavailable):
        await repo.update(User(1, "ada@example.com", "Never Written"))
    assert (await UserRepository.get_by_id(repo, 1)).name == "Ada"  # the database was not touched


def test_sync_reads_are_rejected():
    class SyncRepository:
        def get_by_id(self, user_id):
            return None

    with pytest.raises(TypeError, match=r"SyncRepository\.get_by_id is not async"):
        cached_repository(cache_prefix="sync")(SyncRepository)
