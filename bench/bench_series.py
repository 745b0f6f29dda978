"""Ingest and read throughput of the tick series and candles, against baselines measured in the same run.

Run: ``.venv/bin/python bench/bench_series.py [--ticks N]`` (in-memory fakeredis, plus a throwaway
real ``redis-server`` when the binary is on PATH). Prints one table per backend.

Data: the 500,000 real ES ticks, repeated with shifted times and trade ids up to N ticks
(default 1,000,000 on real Redis; the embedded server gets 200,000, as its naive baseline is slow).

Baselines, on the same ticks and the same server:

- ``naive zset``: what the platform's doc implies, one JSON member ``{ts, id, price, volume}``
  per tick in a sorted set, written with variadic ZADD and read with ZRANGE + ``json.loads``
  row by row (with time and id in the member, so no tick is lost);
- ``bare zadd``: the same ZADD without JSON, 8-byte members: the floor for any per-tick layout;
- ``arrow blob``: the whole frame as one Arrow IPC value, SET then GET + decode: the practical
  limit of a read from Redis.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redtick import frames, snapshot  # noqa: E402
from redtick.config import Settings  # noqa: E402
from redtick.connection import Connection  # noqa: E402

CHUNK = 100_000
REPEATS = 3


def es_ticks(n: int) -> pd.DataFrame:
    """``n`` ticks: the real ES sample, repeated with times shifted by whole weeks and ids offset."""
    es = pd.read_parquet(ROOT / "data" / "es_ticks_20130901.parquet")
    ts = es["ts"].dt.as_unit("ms").astype("int64").to_numpy()
    copies = -(-n // len(es))
    week = 7 * 86_400_000
    frame = pd.DataFrame({
        "ts": np.concatenate([ts + i * week for i in range(copies)])[:n],
        "trade_id": np.arange(copies * len(es))[:n],
        "price": np.tile(es["price"].to_numpy(), copies)[:n],
        "volume": np.tile(es["volume"].to_numpy(np.float64), copies)[:n],
    })
    return frame


def timed(fn, repeats: int = REPEATS) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def naive_write(client, key: str, ticks: pd.DataFrame) -> None:
    ts, ids = ticks["ts"].to_numpy(), ticks["trade_id"].to_numpy()
    price, volume = ticks["price"].to_numpy(), ticks["volume"].to_numpy()
    for lo in range(0, len(ticks), CHUNK):
        mapping = {orjson.dumps({"ts": int(ts[i]), "id": int(ids[i]), "price": float(price[i]), "volume": float(volume[i])}):
                   int(ts[i]) for i in range(lo, min(lo + CHUNK, len(ticks)))}
        client.zadd(key, mapping)


def naive_read(client, key: str) -> pd.DataFrame:
    rows = [orjson.loads(m) for m in client.zrange(key, 0, -1)]
    frame = pd.DataFrame.from_records(rows)
    return frame.set_index(pd.to_datetime(frame.pop("ts"), unit="ms", utc=True))


def bare_zadd(client, key: str, ticks: pd.DataFrame) -> None:
    ids = ticks["trade_id"].to_numpy(np.int64)
    ts = ticks["ts"].to_numpy(np.int64)
    for lo in range(0, len(ticks), CHUNK):
        hi = min(lo + CHUNK, len(ticks))
        members = ids[lo:hi].astype("<i8").tobytes()
        args = []
        for i in range(hi - lo):
            args += [int(ts[lo + i]), members[i * 8 : i * 8 + 8]]
        client.execute_command("ZADD", key, *args)


def memory_of(conn: Connection, pattern: str) -> int | None:
    """Bytes by MEMORY USAGE over keys matching ``pattern``; None on the embedded server (no MEMORY)."""
    if conn.in_memory:
        return None
    return sum(conn.sync.memory_usage(k, samples=0) or 0 for k in conn.sync.scan_iter(match=pattern, count=1000))


def bench_backend(conn: Connection, n: int) -> list[dict]:
    rows: list[dict] = []
    client = conn.sync
    ticks = es_ticks(n)
    keys = conn.keys

    def add(case, seconds, count, unit="rows", memory=None):
        rows.append({"case": case, "n": count, "seconds": seconds, "rate": count / seconds, "unit": unit,
                     "bytes_per_tick": None if memory is None else memory / count})

    # -- ingest: each repeat writes into a fresh symbol -------------------------------------------
    symbols = iter(f"ING{i}" for i in range(REPEATS))
    seconds, _ = timed(lambda: frames.write_ticks(ticks, next(symbols), conn=conn))
    add("write_ticks (ticks + 6 intervals of candles)", seconds, n, "ticks",
        memory_of(conn, f"{keys.prefix}ticks:{{ING0}}*"))
    zkeys = iter(keys.key("bench", "bare", str(i)) for i in range(REPEATS))
    seconds, _ = timed(lambda: bare_zadd(client, next(zkeys), ticks))
    add("baseline: bare variadic ZADD (8-byte members)", seconds, n, "ticks", memory_of(conn, keys.key("bench", "bare", "0")))
    naive_key = keys.key("bench", "naive")
    seconds, _ = timed(lambda: naive_write(client, naive_key, ticks), repeats=1)
    add("baseline: naive zset, one JSON member per tick", seconds, n, "ticks", memory_of(conn, naive_key))
    blob = frames.load_ticks("ING0", conn=conn)
    seconds, _ = timed(lambda: snapshot.save(blob, "bench-blob", compression=None, conn=conn))
    add("baseline: arrow blob SET", seconds, n, "ticks", memory_of(conn, keys.snapshot_pattern()))

    # -- reads -----------------------------------------------------------------------------------
    seconds, got = timed(lambda: frames.load_ticks("ING0", conn=conn))
    assert len(got) == n
    add("load_ticks", seconds, n)
    seconds, got = timed(lambda: naive_read(client, naive_key), repeats=1)
    assert len(got) == n
    add("baseline: naive zset ZRANGE + json.loads per row", seconds, n)
    seconds, got = timed(lambda: snapshot.load("bench-blob", conn=conn))
    assert len(got) == n
    add("baseline: arrow blob GET + decode", seconds, n)

    # -- candles: 100,000 one-minute bars ---------------------------------------------------------
    bars = 100_000
    start = 1_600_000_000_000 // 60_000 * 60_000
    rng = np.random.default_rng(0)
    close = 100 + np.cumsum(rng.normal(0, 0.1, bars))
    candles = pd.DataFrame({"ts": start + np.arange(bars) * 60_000, "open": close, "high": close + 0.5,
                            "low": close - 0.5, "close": close, "volume": 1.0})
    frames.write_candles(candles, "BARS", "1m", conn=conn)
    seconds, got = timed(lambda: frames.load_ohlcv("BARS", "1m", conn=conn))
    assert len(got) == bars
    add("load_ohlcv 1m (100,000 candles)", seconds, bars)
    seconds, got = timed(lambda: frames.load_ohlcv("ING0", "1m", conn=conn))
    add(f"load_ohlcv 1m of the ticks ({len(got):,} candles)", seconds, len(got))
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    by_case = {r["case"]: r for r in rows}
    ingest = by_case["write_ticks (ticks + 6 intervals of candles)"]
    bare = by_case["baseline: bare variadic ZADD (8-byte members)"]
    read = by_case["load_ticks"]
    blob = by_case["baseline: arrow blob GET + decode"]
    naive_read_row = by_case["baseline: naive zset ZRANGE + json.loads per row"]
    print(f"\n### {title}\n")
    print("| case | n | median s | rate | bytes/tick |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        per_tick = "" if r["bytes_per_tick"] is None else f"{r['bytes_per_tick']:.1f}"
        print(f"| {r['case']} | {r['n']:,} | {r['seconds']:.3f} | {r['rate'] / 1e6:.2f} M {r['unit']}/s | {per_tick} |")
    print()
    print(f"- write_ticks / bare ZADD: {ingest['rate'] / bare['rate']:.2f}x")
    print(f"- load_ticks / arrow blob: {read['rate'] / blob['rate']:.2f}x; "
          f"load_ticks / naive zset: {read['rate'] / naive_read_row['rate']:.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000, help="ticks on real Redis (default 1,000,000)")
    parser.add_argument("--embedded-ticks", type=int, default=200_000, help="ticks on the embedded server")
    args = parser.parse_args(argv)
    quiet = Settings(tick_retention_ms=None, candle_retention_ms=None, namespace="bench")
    import fakeredis

    embedded = Connection(quiet, memory_server=fakeredis.FakeServer(version=(7, 0)))
    print_table(f"in-memory fakeredis, {args.embedded_ticks:,} ticks", bench_backend(embedded, args.embedded_ticks))
    binary = shutil.which("redis-server")
    if binary is None:
        print("\n(no redis-server on PATH: real-Redis figures skipped)")
        return 0
    from tests.servers import RedisServer

    server = RedisServer(binary)
    server.start()
    try:
        import dataclasses

        real = Connection(dataclasses.replace(quiet, url=server.url))
        version = real.sync.info("server")["redis_version"]
        print_table(f"real redis-server {version} on loopback, {args.ticks:,} ticks", bench_backend(real, args.ticks))
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
