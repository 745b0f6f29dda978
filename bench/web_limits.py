"""The attacks of issue 13 against a live ``redtick serve``, measured: what each costs the server now.

Run: ``.venv/bin/python bench/web_limits.py [--keys 300000]``. A throwaway ``redis-server`` holding
``--keys`` keys in the namespace (what made each ``/health`` SCAN cost 640 ms), and a live
``redtick serve`` with the default limits. Prints one table:

- server RSS before and after four concurrent 200 MiB uploads (two with Content-Length, two chunked);
- median latency of ``GET /price`` alone (the baseline, same run), then while 10 clients send
  ``GET /health?b=<random>`` as fast as they can, and how many SCAN/PING commands Redis saw;
- ``GET /price-alerts`` of a user at the alert cap (1,000): bytes and time of one default page;
- 2,000 bearer-token guesses and 2,000 alert POSTs of one user: answers by status (the guesses
  come last: they lock this address out of authenticating for the rest of the minute).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import secrets
import statistics
import sys
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from web_faults import API, Server, seed, serve

from redtick.config import Settings
from redtick.connection import Connection
from redtick.service import CacheService


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


async def uploads(base: str) -> list[int | str]:
    async def one(declared: bool) -> int | str:
        async def chunks():
            for _ in range(3200):  # 200 MiB
                yield b"x" * 65_536

        headers = {"Content-Type": "application/json"}
        if declared:
            headers["Content-Length"] = str(3200 * 65_536)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            try:
                return (await http.post(f"{API}/price-alert", content=chunks(), headers=headers)).status_code
            except httpx.TransportError:
                return "closed after 413"

    return list(await asyncio.gather(*(one(i % 2 == 0) for i in range(4))))


async def price_latency(base: str, seconds: float) -> list[float]:
    timings = []
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            started = time.perf_counter()
            await http.get(f"{API}/price/BTCUSDT", params={"n": "1"})  # an undeclared query: never cached
            timings.append((time.perf_counter() - started) * 1000)
    return timings


async def busting(base: str, clients: int, seconds: float) -> int:
    sent = 0

    async def client() -> None:
        nonlocal sent
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                await http.get(f"{API}/health", params={"b": secrets.token_hex(8)})
                sent += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return sent


async def guesses(base: str, count: int) -> collections.Counter:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return collections.Counter([(await http.get(f"{API}/price-alerts", headers={
            "Authorization": f"Bearer {secrets.token_urlsafe(24)}"})).status_code for _ in range(count)])


async def posts(base: str, token: str, count: int) -> collections.Counter:
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        return collections.Counter([(await http.post(f"{API}/price-alert", headers={"Authorization": f"Bearer {token}"},
                                                     json={"symbol": "BTCUSDT", "target_price": 1.0})).status_code
                                    for _ in range(count)])


def commands(port: int, name: str) -> int:
    stats = redis.Redis(port=port).info("commandstats")
    return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))


async def main(keys: int) -> None:
    server = Server()
    server.start()
    process = None
    try:
        filler = redis.Redis(port=server.port)
        for start in range(0, keys, 10_000):
            with filler.pipeline(transaction=False) as pipe:
                for n in range(start, min(start + 10_000, keys)):
                    pipe.set(f"drill:market:price:{{S{n}}}", b"{}")
                pipe.execute()
        filler.config_set("appendfsync", "everysec")
        token = await seed(server.url, "drill")
        heavy = await seed(server.url, "drill")  # a second session: the user at the cap
        conn = Connection(Settings(url=server.url, namespace="drill"))
        await CacheService(conn).get_alerts().set_price_alerts(
            [{"user_id": "capped", "symbol": "BTCUSDT", "target_price": float(p), "condition": "above"}
             for p in range(1000)])
        capped = await CacheService(conn).get_session_cache().set_user_session("capped", {}, ttl=3600)
        log = str(Path(server.dir) / "serve.log")
        process, base = serve(server.url, "drill", deadline=10.0, socket_timeout=5.0, log_path=log,
                              REDTICK_WRITE_RATE_LIMIT="60/1m", REDTICK_MAX_ALERTS_PER_USER="1000")  # the defaults
        rows = []

        before = rss_mib(process.pid)
        statuses = await uploads(base)
        rows.append(("4 x 200 MiB uploads", f"answers {statuses}; RSS {before:.0f} -> {rss_mib(process.pid):.0f} MiB"))

        alone = await price_latency(base, 3.0)
        scans, pings = commands(server.port, "scan"), commands(server.port, "ping")
        bust = asyncio.ensure_future(busting(base, 10, 3.5))
        await asyncio.sleep(0.25)
        under = await price_latency(base, 3.0)
        sent = await bust
        rows.append(("GET /price median, alone", f"{statistics.median(alone):.1f} ms ({len(alone)} requests)"))
        rows.append(("... while 10 clients bust /health", f"{statistics.median(under):.1f} ms; {sent} busting requests, "
                     f"{commands(server.port, 'scan') - scans} SCAN and {commands(server.port, 'ping') - pings} PING "
                     f"in Redis, {keys:,} keys in the namespace"))
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            started = time.perf_counter()
            page = await http.get(f"{API}/price-alerts", headers={"Authorization": f"Bearer {capped}"})
            took = (time.perf_counter() - started) * 1000
        rows.append(("GET /price-alerts at the cap (1,000)", f"{len(page.content):,} bytes, {len(page.json()['data'])} "
                     f"alerts, next_cursor {'yes' if 'next_cursor' in page.json() else 'no'}, {took:.0f} ms"))
        rows.append(("2,000 alert POSTs, one user", dict(sorted((await posts(base, heavy, 2000)).items()))))
        rows.append(("2,000 token guesses", dict(sorted((await guesses(base, 2000)).items()))))
        del token
        print("| measure | result |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        server.remove()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=300_000)
    asyncio.run(main(parser.parse_args().keys))
