"""The main job, end to end on whichever Redis is configured (the embedded default when none)."""

from __future__ import annotations

import asyncio

from redtick.caches.base import BaseCache, EncryptedCache
from redtick.client import RedisClient
from redtick.connection import connect

__all__ = ["run_demo"]


async def _round_trip(conn) -> list[tuple[str, str]]:
    client = RedisClient(conn)
    await client.connect()
    cache = BaseCache("demo", default_ttl=60, conn=conn)
    await cache.set_many({"BTCUSDT": {"price": 50000.0}, "ETHUSDT": {"price": 2500.0}})
    values = await cache.get_many(["BTCUSDT", "ETHUSDT", "MISSING"])
    rows = [("connected to", conn.settings.safe_url), ("base cache round trip", repr(values))]
    rows.append(("keys in the demo cache (SCAN)", str(await cache.count_keys())))
    if conn.settings.encryption_key:
        secret = EncryptedCache("demo-secret", conn=conn)
        await secret.set("note", {"pii": "stays encrypted at rest"})
        rows.append(("encrypted cache round trip", repr(await secret.get("note"))))
    await client.disconnect()
    return rows


def run_demo(data_dir: str = "data", out: str = "reports") -> int:
    """Run the demo and print what happened; returns a process exit code."""
    conn = connect()
    rows = asyncio.run(_round_trip(conn))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0
