"""A bounded load test on loopback: writer and reader processes against a throwaway ``redis-server``.

Run: ``.venv/bin/python bench/load_test.py [--seconds 20] [--writers 3] [--readers 2] [--batch 500]
[--symbols 2]``. Writers feed ``redtick.write_ticks`` batches of ticks stamped with the wall clock,
each writer with trade ids of its own, so writers of one symbol contend for its keys (WATCH/MULTI);
readers alternate ``load_ticks`` over the last two seconds and ``load_ohlcv`` over the last ten
minutes. A baseline run of one writer alone, in the same invocation, comes first.

Prints throughput (ticks/s written, reads/s) and p50/p99 latency of write and read calls, then the
exact count check: every acknowledged tick is stored exactly once, and a tick stored but not
acknowledged can only come from a call that raised.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redtick import errors, frames
from redtick.config import Settings
from redtick.connection import Connection

ID_SPAN = 10**12  # trade ids of writer w are w * ID_SPAN + n: distinct across writers of one symbol


def start_server() -> tuple[subprocess.Popen, int, str]:
    """A throwaway server on a free loopback port (no persistence: the test measures the data path)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="redtick-load-")
    process = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", folder],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    probe = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 20
    while True:
        try:
            probe.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    probe.close()
    return process, port, folder


def _wait_for_start(start_at: float) -> None:
    """Every process starts its calls at the same wall-clock time, so the window is exactly ``--seconds``."""
    while time.time() < start_at:
        time.sleep(0.005)


def writer(settings: Settings, index: int, symbol: str, batch: int, start_at: float, until: float, results) -> None:
    conn = Connection(settings)
    conn.sync.ping()
    _wait_for_start(start_at)
    acked_ts, acked_id, failed_ts, failed_id, latencies = [], [], [], [], []
    failures: dict[str, int] = {}
    n = 0
    while time.time() < until:
        # A feed's clock: the batch is stamped now (ids order the ticks of one millisecond).
        now = int(time.time() * 1000)
        ids = index * ID_SPAN + n + np.arange(batch, dtype=np.int64)
        ts = np.full(batch, now, dtype=np.int64)
        ticks = pd.DataFrame({"ts": ts, "price": 100.0 + (ids % 97) * 0.01, "volume": 1.0, "trade_id": ids})
        n += batch
        began = time.perf_counter()
        try:
            frames.write_ticks(ticks, symbol, conn=conn)
        except errors.RedtickError as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            failed_ts.append(ts)
            failed_id.append(ids)
            continue
        latencies.append(time.perf_counter() - began)
        acked_ts.append(ts)
        acked_id.append(ids)
    conn.close()
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    results.put({"role": "write", "symbol": symbol, "latencies": np.array(latencies), "failures": failures,
                 "acked": (join(acked_ts), join(acked_id)), "failed": (join(failed_ts), join(failed_id))})


def reader(settings: Settings, index: int, symbols: list[str], start_at: float, until: float, results) -> None:
    conn = Connection(settings)
    conn.sync.ping()
    _wait_for_start(start_at)
    latencies, failures, rows = [], {}, 0
    i = 0
    while time.time() < until:
        symbol = symbols[(index + i) % len(symbols)]
        now = int(time.time() * 1000)
        began = time.perf_counter()
        try:
            if i % 2:
                rows += len(frames.load_ohlcv(symbol, "1m", start=now - 600_000, conn=conn))
            else:
                rows += len(frames.load_ticks(symbol, start=now - 2_000, conn=conn))
        except errors.RedtickError as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        else:
            latencies.append(time.perf_counter() - began)
        i += 1
    conn.close()
    results.put({"role": "read", "latencies": np.array(latencies), "failures": failures, "rows": rows})


def run_load(port: int, namespace: str, seconds: float, writers: int, readers: int, batch: int, symbols: int) -> dict:
    settings = Settings(url=f"redis://127.0.0.1:{port}/0", namespace=namespace,
                        tick_retention_ms=None, candle_retention_ms=None)
    names = [f"LOAD{i}" for i in range(symbols)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0  # spawned processes import redtick and connect within the head start
    until = start_at + seconds
    procs = [context.Process(target=writer, args=(settings, w, names[w % symbols], batch, start_at, until, results))
             for w in range(writers)]
    procs += [context.Process(target=reader, args=(settings, r, names, start_at, until, results))
              for r in range(readers)]
    for p in procs:
        p.start()
    collected = [results.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    return {"settings": settings, "symbols": names, "results": collected, "seconds": seconds}


def count_check(run: dict) -> list[str]:
    """Every acknowledged (ts, id) stored exactly once; anything else stored came from a failed call."""
    conn = Connection(run["settings"])
    lines = []
    for symbol in run["symbols"]:
        mine = [r for r in run["results"] if r["role"] == "write" and r["symbol"] == symbol]
        acked = pd.MultiIndex.from_arrays([np.concatenate([r["acked"][0] for r in mine]),
                                           np.concatenate([r["acked"][1] for r in mine])])
        failed = pd.MultiIndex.from_arrays([np.concatenate([r["failed"][0] for r in mine]),
                                            np.concatenate([r["failed"][1] for r in mine])])
        got = frames.load_ticks(symbol, columns=["trade_id"], conn=conn)
        stored = pd.MultiIndex.from_arrays([got.index.as_unit("ms").asi8, got["trade_id"].to_numpy()])
        doubled = int(stored.duplicated().sum())
        missing = len(acked.difference(stored))
        extra = stored.difference(acked)
        unexplained = len(extra.difference(failed))
        ok = doubled == 0 and missing == 0 and unexplained == 0 and not acked.duplicated().any()
        lines.append(f"{run['settings'].namespace}:{symbol}: acknowledged {len(acked):,}, stored {len(stored):,}, "
                     f"missing {missing}, doubled {doubled}, stored from failed calls {len(extra):,}, unexplained {unexplained} "
                     f"-> {'OK' if ok else 'FAILED'}")
        if not ok:
            raise SystemExit("\n".join(lines))
    conn.close()
    return lines


def table(run: dict, label: str) -> pd.DataFrame:
    rows = []
    for role in ("write", "read"):
        parts = [r for r in run["results"] if r["role"] == role]
        if not parts:
            continue
        lat = np.concatenate([r["latencies"] for r in parts]) * 1000
        failures: dict[str, int] = {}
        for r in parts:
            for name, n in r["failures"].items():
                failures[name] = failures.get(name, 0) + n
        calls = len(lat)
        done = sum(len(r["acked"][1]) for r in parts) if role == "write" else calls
        rows.append({
            "run": label, "role": role, "processes": len(parts), "calls ok": calls,
            "calls failed": ", ".join(f"{n} {name}" for name, n in failures.items()) or "0",
            "throughput": f"{done / run['seconds']:,.0f} " + ("ticks/s" if role == "write" else "reads/s"),
            "p50 ms": round(float(np.percentile(lat, 50)), 2) if calls else None,
            "p99 ms": round(float(np.percentile(lat, 99)), 2) if calls else None,
        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--symbols", type=int, default=2, help="writers share symbols when fewer than writers")
    args = parser.parse_args(argv)
    process, port, _ = start_server()
    try:
        baseline = run_load(port, "loadbase", max(2.0, args.seconds / 4), 1, 0, args.batch, 1)
        loaded = run_load(port, "load", args.seconds, args.writers, args.readers, args.batch, args.symbols)
        report = pd.concat([table(baseline, "baseline: 1 writer alone"),
                            table(loaded, f"{args.writers} writers + {args.readers} readers")])
        print(f"redis-server {redis.Redis(port=port).info()['redis_version']} on loopback, "
              f"{multiprocessing.cpu_count()} cores, {args.seconds:g} s, batches of {args.batch} ticks, "
              f"{args.symbols} symbol(s)")
        print(report.to_string(index=False))
        print("\n".join(count_check(baseline) + count_check(loaded)))
    finally:
        process.terminate()
        process.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
