"""A real SQLite user repository, cached with ``cached_repository``: hits send no SQL.

Run it with ``python examples/cached_user_repository.py``; it uses the configured Redis
(the in-memory fakeredis when ``REDIS_URL``/``REDIS_HOST`` are unset) and prints what each call
cost in SQL statements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading

from redtick.caches.repository import cached_repository


@dataclasses.dataclass
class User:
    id: int
    email: str
    name: str


class UserRepository:
    """Users in SQLite (stdlib ``sqlite3``), run off the event loop with ``asyncio.to_thread``.

    ``statements`` counts every SQL statement SQLite executes, through its trace callback.
    """

    def __init__(self, path: str = ":memory:"):
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()  # one sqlite3 connection, many worker threads
        self.statements = 0
        self._db.set_trace_callback(self._count)
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT)")

    def _count(self, _statement: str) -> None:
        self.statements += 1

    async def _run(self, sql: str, params: tuple = (), *, write: bool = False) -> list[tuple]:
        def work() -> list[tuple]:
            with self._lock:
                if write:
                    with self._db:  # commit on success, roll back on error
                        cursor = self._db.execute(sql, params)
                        return [(cursor.rowcount,)]
                return self._db.execute(sql, params).fetchall()

        return await asyncio.to_thread(work)

    async def get_by_id(self, user_id: int) -> User | None:
        rows = await self._run("SELECT id, email, name FROM users WHERE id = ?", (user_id,))
        return User(*rows[0]) if rows else None

    async def get_by_email(self, email: str) -> User | None:
        rows = await self._run("SELECT id, email, name FROM users WHERE email = ?", (email,))
        return User(*rows[0]) if rows else None

    async def get_all(self) -> list[User]:
        return [User(*row) for row in await self._run("SELECT id, email, name FROM users ORDER BY id")]

    async def create(self, user: User) -> User:
        await self._run("INSERT INTO users (id, email, name) VALUES (?, ?, ?)", (user.id, user.email, user.name),
                        write=True)
        return user

    async def update(self, user: User) -> User:
        await self._run("UPDATE users SET email = ?, name = ? WHERE id = ?", (user.email, user.name, user.id),
                        write=True)
        return user

    async def delete(self, user_id: int) -> bool:
        [(count,)] = await self._run("DELETE FROM users WHERE id = ?", (user_id,), write=True)
        return count > 0


@cached_repository(cache_prefix="user", default_ttl=600)
class CachedUserRepository(UserRepository):
    pass


async def main() -> None:
    repo = CachedUserRepository()
    await repo.invalidate_cache()  # a clean start when the configured Redis is shared

    async def cost(label: str, call) -> object:
        before = repo.statements
        result = await call
        print(f"{label:<44} {repo.statements - before} SQL  -> {result}")
        return result

    await cost("create(User(1, ...))", repo.create(User(1, "ada@example.com", "Ada")))
    await cost("get_by_id(1): miss, reads SQLite", repo.get_by_id(1, use_cache=True))
    await cost("get_by_id(1): hit, no SQL", repo.get_by_id(1, use_cache=True))
    await cost("get_by_id(1, use_cache=False): refresh", repo.get_by_id(1, use_cache=False))
    await cost("update(...): invalidates", repo.update(User(1, "ada@example.com", "Ada Lovelace")))
    await cost("get_by_id(1): fresh after the write", repo.get_by_id(1))
    await cost("invalidate_cache('get_by_id*')", repo.invalidate_cache("get_by_id*"))


if __name__ == "__main__":
    asyncio.run(main())
