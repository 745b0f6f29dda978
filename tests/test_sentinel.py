"""Redis Sentinel: a failover during a steady ingest loses nothing once the unacknowledged batches are resent.

A local master, one replica and three sentinels (quorum 2) run on free ports. A writer thread calls
``redtick.write_ticks`` batch after batch through a ``redis+sentinel://`` connection; the test kills
the master, waits until the sentinels promote the replica and the writer is acknowledged again, then
resends exactly the batches that raised. The series and every interval's candles must equal those of
an undisturbed run on a fresh embedded server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest
import redis

from redtick import frames
from redtick.config import DEFAULT_INTERVALS, Settings
from redtick.connection import Connection
from redtick.errors import RedtickError
from tests.conftest import IN_CI, RedisServer, free_port

SERVICE = "mymaster"
SYMBOL = "FAILOVER"
TICKS_PER_BATCH = 50
BASE_MS = 1_700_000_000_000
FEED_INTERVAL_S = 0.01  # the feed's pace: a new batch every 10 ms, as ticks arrive


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except (redis.exceptions.RedisError, OSError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)  # polling a condition with a deadline, not waiting and hoping


class Sentinels:
    """Three ``redis-server --sentinel`` processes monitoring one master with quorum 2."""

    def __init__(self, binary: str, master_port: int, count: int = 3):
        self.binary = binary
        self.master_port = master_port
        self.ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        for port in self.ports:
            directory = tempfile.mkdtemp(prefix="redtick-sentinel-")
            config = os.path.join(directory, "sentinel.conf")  # sentinels rewrite their config file
            with open(config, "w") as out:
                out.write(f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                          f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                          f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                          f"sentinel failover-timeout {SERVICE} 5000\n"
                          f"sentinel parallel-syncs {SERVICE} 1\n")
            self.processes.append(subprocess.Popen([self.binary, config, "--sentinel"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        for port in self.ports:  # each sentinel knows the replica and the two other sentinels
            probe = redis.Redis(port=port, socket_timeout=1.0, decode_responses=True)
            wait_for(lambda probe=probe: probe.sentinel_master(SERVICE)["num-other-sentinels"] == len(self.ports) - 1
                     and probe.sentinel_master(SERVICE)["num-slaves"] >= 1, 20, f"sentinel {port} discovery")
            probe.close()

    def master_port_now(self) -> int | None:
        probe = redis.Redis(port=self.ports[0], socket_timeout=1.0)
        try:
            address = probe.sentinel_get_master_addr_by_name(SERVICE)
        finally:
            probe.close()
        return int(address[1]) if address else None

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + f"/{SERVICE}/0"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


@pytest.fixture
def sentinel_setup():
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI=true but redis-server is not on PATH: the sentinel test must run in CI")
        pytest.skip("no redis-server on PATH")
    master = RedisServer(binary)
    master.start()
    replica = RedisServer(binary, "--replicaof", "127.0.0.1", str(master.port))
    replica.start()
    sentinels = Sentinels(binary, master.port)
    try:
        probe = redis.Redis(port=replica.port, socket_timeout=1.0, decode_responses=True)
        wait_for(lambda: probe.info("replication")["master_link_status"] == "up", 20, "replica sync")
        probe.close()
        sentinels.start()
        yield master, replica, sentinels
    finally:
        sentinels.stop()
        replica.stop()
        if master.process is not None and master.process.poll() is None:
            master.stop()


def batch(i: int) -> pd.DataFrame:
    """Batch ``i`` of the feed: deterministic ticks with trade ids unique across batches."""
    rng = np.random.default_rng(i)
    ids = np.arange(i * TICKS_PER_BATCH, (i + 1) * TICKS_PER_BATCH)
    return pd.DataFrame({"ts": BASE_MS + ids * 700, "trade_id": ids,
                         "price": rng.uniform(100, 110, TICKS_PER_BATCH).round(2),
                         "volume": rng.integers(1, 9, TICKS_PER_BATCH).astype(float)})


class Feed(threading.Thread):
    """Writes batch 0, 1, 2... until stopped; remembers which were acknowledged and which raised."""

    def __init__(self, conn: Connection):
        super().__init__(daemon=True)
        self.conn = conn
        self.acked: list[int] = []
        self.failed: dict[int, BaseException] = {}
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            i = self.sent
            try:
                frames.write_ticks(batch(i), SYMBOL, conn=self.conn)
                self.acked.append(i)
            except BaseException as exc:  # every failure is recorded, and checked to be typed below
                self.failed[i] = exc
            self.sent += 1
            self.stop.wait(FEED_INTERVAL_S)


def test_failover_during_ingest_loses_nothing_after_resending_unacknowledged_batches(sentinel_setup):
    master, replica, sentinels = sentinel_setup
    settings = Settings(url=sentinels.url, namespace="sentinel", socket_timeout=1.0, connect_timeout=0.5,
                        retries=2, tick_retention_ms=None, candle_retention_ms=None)
    conn = Connection(settings)
    assert conn.sync.ping()
    feed = Feed(conn)
    feed.start()
    try:
        wait_for(lambda: len(feed.acked) >= 20, 20, "20 acknowledged batches before the failover")
        master.process.send_signal(signal.SIGKILL)
        master.process.wait(timeout=10)
        killed_at, started = feed.sent, time.monotonic()
        wait_for(lambda: sentinels.master_port_now() == replica.port, 30, "promotion of the replica")
        promoted = time.monotonic() - started
        wait_for(lambda: sum(i > killed_at for i in feed.acked) >= 20, 30, "20 acknowledged batches after the failover")
    finally:
        feed.stop.set()
        feed.join(timeout=30)
    assert not feed.is_alive()

    # Every batch was either acknowledged or raised a typed redtick error, never both.
    assert sorted(feed.acked + list(feed.failed)) == list(range(feed.sent))
    for exc in feed.failed.values():
        assert isinstance(exc, RedtickError), repr(exc)
    assert feed.failed, "the failover should have cost at least one batch"
    print(f"replica promoted {promoted:.1f}s after the kill; {len(feed.failed)} of {feed.sent} batches "
          f"unacknowledged ({sorted({type(e).__name__ for e in feed.failed.values()})}), all resent")

    for i in sorted(feed.failed):  # the feed resends exactly what was not acknowledged
        frames.write_ticks(batch(i), SYMBOL, conn=conn)

    reference = Connection(Settings(url="memory://", namespace="t" + secrets.token_hex(4), tick_retention_ms=None,
                                    candle_retention_ms=None))
    frames.write_ticks(pd.concat([batch(i) for i in range(feed.sent)]), SYMBOL, conn=reference)
    columns = ["price", "volume", "trade_id"]
    stored = frames.load_ticks(SYMBOL, conn=conn, columns=columns)
    assert len(stored) == feed.sent * TICKS_PER_BATCH  # no loss, no doubles
    pd.testing.assert_frame_equal(stored, frames.load_ticks(SYMBOL, conn=reference, columns=columns))
    for interval in DEFAULT_INTERVALS:
        pd.testing.assert_frame_equal(
            frames.load_ohlcv(SYMBOL, interval, conn=conn, columns=["open", "high", "low", "close", "volume", "count"]),
            frames.load_ohlcv(SYMBOL, interval, conn=reference, columns=["open", "high", "low", "close", "volume", "count"]),
        )
    conn.close()
