"""Alert checks with 100,000 live alerts against a scan-every-alert baseline, and rate-limit hits per second.

Run: ``.venv/bin/python bench/bench_alerts.py`` (in-memory fakeredis, plus a throwaway real
``redis-server`` when the binary is on PATH). Prints one table; timings are medians.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import time
from pathlib import Path

import fakeredis
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redtick.caches.alerts import PriceAlerts
from redtick.caches.ratelimit import RateLimiter
from redtick.config import Settings
from redtick.connection import Connection

SYMBOL = "BTCUSDT"
ALERTS = 100_000
CHECKS = 7
BASE = 100_000.0
RATE_HITS = 2_000


async def load_alerts(alerts: PriceAlerts, conn: Connection) -> str:
    """100,000 alerts, half above and half below the start price, 1.0 apart; returns the baseline hash."""
    specs = [
        {"user_id": f"user{i % 1000}", "symbol": SYMBOL, "condition": "above" if i % 2 else "below",
         "target_price": BASE + 1 + i // 2 if i % 2 else BASE - 1 - i // 2}
        for i in range(ALERTS)
    ]
    await alerts.set_price_alerts(specs)
    # Baseline layout: every alert as JSON in one hash, read whole and filtered in Python.
    baseline = conn.keys.key("bench", "baseline")
    data = await conn.async_client().hgetall(conn.keys.alert_data(SYMBOL))
    await conn.async_client().hset(baseline, mapping=data)
    return baseline


async def baseline_check(conn: Connection, key: str, price: float) -> list[str]:
    client = conn.async_client()
    fired = []
    for alert_id, raw in (await client.hgetall(key)).items():
        alert = orjson.loads(raw)
        target, condition = alert["target_price"], alert["condition"]
        if (condition == "above" and price >= target) or (condition == "below" and price <= target):
            fired.append(alert_id)
    if fired:
        await client.hdel(key, *fired)
    return [a.decode() for a in fired]


async def timed(coro_factory, runs: int) -> tuple[float, list]:
    times, results = [], []
    for k in range(runs):
        start = time.perf_counter()
        results.append(await coro_factory(k))
        times.append(time.perf_counter() - start)
    return statistics.median(times), results


async def bench_backend(conn: Connection) -> dict[str, float]:
    alerts = PriceAlerts(conn=conn)
    start = time.perf_counter()
    baseline = await load_alerts(alerts, conn)
    load_s = time.perf_counter() - start
    await alerts.check_price_alerts(SYMBOL, BASE)  # the start price: nothing fires
    # Each check moves the price up by 5: five `above` alerts fire, 99,995 stay untouched.
    indexed, fired = await timed(lambda k: alerts.check_price_alerts(SYMBOL, BASE + 5 * (k + 1)), CHECKS)
    scanned, fired_base = await timed(lambda k: baseline_check(conn, baseline, BASE + 5 * (k + 1)), CHECKS)
    assert [len(f) for f in fired] == [5] * CHECKS and [len(f) for f in fired_base] == [5] * CHECKS
    assert [sorted(f) for f in fired] == [sorted(f) for f in fired_base]

    limiter = RateLimiter("bench", limit=10**6, window=60, conn=conn)
    start = time.perf_counter()
    for _ in range(RATE_HITS):
        await limiter.hit("client")
    sequential = RATE_HITS / (time.perf_counter() - start)
    start = time.perf_counter()

    async def client_loop(n: int) -> None:
        for _ in range(RATE_HITS // 50):
            await limiter.hit(f"client{n}")

    await asyncio.gather(*(client_loop(n) for n in range(50)))
    concurrent = RATE_HITS / (time.perf_counter() - start)
    client = conn.async_client()
    keys = [k async for k in client.scan_iter(match=conn.keys.everything(), count=1000)]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i : i + 500])
    await conn.aclose()
    return {"load": load_s, "indexed": indexed, "scanned": scanned, "seq": sequential, "conc": concurrent}


def main() -> None:
    backends = [("in-memory fakeredis", Connection(Settings(namespace="benchalerts"),
                                                  memory_server=fakeredis.FakeServer(version=(7, 0))))]
    server = None
    if shutil.which("redis-server"):
        from tests.servers import RedisServer

        server = RedisServer(shutil.which("redis-server"))
        server.start()
        backends.append(("redis-server (loopback)", Connection(Settings(url=server.url, namespace="benchalerts"))))
    try:
        rows = [(name, asyncio.run(bench_backend(conn))) for name, conn in backends]
    finally:
        if server is not None:
            server.close()
    print(f"check_price_alerts, {ALERTS:,} live alerts on one symbol, 5 fire per check; median of {CHECKS}")
    print(f"{'backend':<26}{'load 100k':>11}{'indexed check':>15}{'scan-all check':>16}{'speed-up':>10}"
          f"{'rate-limit hits/s':>19}{'(50 concurrent)':>17}")
    for name, r in rows:
        print(f"{name:<26}{r['load']:>10.2f}s{r['indexed'] * 1e3:>13.2f}ms{r['scanned'] * 1e3:>14.1f}ms"
              f"{r['scanned'] / r['indexed']:>9.0f}x{r['seq']:>19,.0f}{r['conc']:>17,.0f}")


if __name__ == "__main__":
    main()
