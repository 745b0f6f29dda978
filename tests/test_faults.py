"""Restarts, crashes, stalls and lost replies on one server: typed errors, recovery, nothing lost or doubled.

These tests need a real ``redis-server`` of their own (they kill, restart and pause it), so they
do not use the parametrised ``conn`` fixture: the in-memory fakeredis cannot crash or stall.

The proof is the same in every test: a writer thread feeds numbered batches through
``redtick.write_ticks`` while the server is disturbed and records which calls raised; once the
feed resends exactly those batches, the stored ticks and the candles of every interval equal an
undisturbed run of the same batches on a fresh connection. Readers racing the writer and the
faults either return a consistent frame or raise a typed error.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import socket
import threading
import time
import traceback

import numpy as np
import pandas as pd
import pytest
import redis

from redtick import errors, frames
from redtick.config import Settings
from redtick.connection import Connection
from tests.conftest import RedisServer

MINUTE = 60_000
START = 1_704_067_200_000  # 2024-01-01
SYMBOL = "FAULT"
# A call may retry (redis-py Retry) and rerun its plan; this only catches a hang, it is no speed check.
CALL_BOUND_S = 30.0

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def make_batches(n_batches: int, per_batch: int, seed: int = 7) -> list[pd.DataFrame]:
    """Ticks over 3 hours in batches that mostly advance in time, with late ticks and resent ones mixed in."""
    rng = np.random.default_rng(seed)
    n = n_batches * per_batch
    ts = np.sort(START + rng.integers(0, 180 * MINUTE, n))
    ids = np.arange(n, dtype=np.int64)
    order = np.arange(n)
    # A tenth of the ticks arrive a few batches late (reaching back into older chunks).
    late = rng.choice(n, n // 10, replace=False)
    order[late] = np.minimum(order[late] + rng.integers(1, 4 * per_batch, len(late)), n - 1)
    arrival = np.argsort(order, kind="stable")
    ticks = pd.DataFrame({"ts": ts, "price": np.round(100 + rng.normal(0, 1, n).cumsum() * 0.01, 2),
                          "volume": rng.integers(1, 10, n).astype(float), "trade_id": ids})
    ticks["price"] = ticks["price"].abs() + 1
    ticks = ticks.iloc[arrival].reset_index(drop=True)
    return [ticks.iloc[i : i + per_batch] for i in range(0, n, per_batch)]


def fault_settings(url: str, **overrides) -> Settings:
    base = Settings(url=url, namespace="f" + secrets.token_hex(4), socket_timeout=0.5, connect_timeout=0.5,
                    retries=2, tick_chunk_ms=10 * MINUTE, tick_retention_ms=None, candle_retention_ms=None)
    return dataclasses.replace(base, **overrides)


def stored_state(conn: Connection) -> dict[str, pd.DataFrame]:
    state = {"ticks": frames.load_ticks(SYMBOL, conn=conn, columns=["price", "volume", "trade_id", "side"])}
    for interval in conn.settings.intervals:
        state[interval] = frames.load_ohlcv(SYMBOL, interval, conn=conn,
                                            columns=["open", "high", "low", "close", "volume", "count"])
    return state


def assert_equals_undisturbed(conn: Connection, batches: list[pd.DataFrame]) -> None:
    """What ``conn`` holds equals an undisturbed run of ``batches`` on a fresh connection and namespace."""
    reference = Connection(dataclasses.replace(conn.settings, namespace="r" + secrets.token_hex(4)))
    try:
        for batch in batches:
            frames.write_ticks(batch, SYMBOL, conn=reference)
        expected, got = stored_state(reference), stored_state(conn)
    finally:
        keys = list(reference.sync.scan_iter(match=reference.keys.everything(), count=1000))
        if keys:
            reference.sync.delete(*keys)
        reference.close()
    n = sum(len(b) for b in batches)
    assert len(expected["ticks"]) == n
    assert not got["ticks"].reset_index().duplicated(["ts", "trade_id"]).any()
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


class Feed:
    """A writer thread: writes every batch once, records which calls raised, and can be held at a gate."""

    def __init__(self, conn: Connection, batches: list[pd.DataFrame], gate_at: int):
        self.conn, self.batches, self.gate_at = conn, batches, gate_at
        self.done: list[int] = []
        self.failed: dict[int, BaseException] = {}
        self.durations: list[float] = []
        self.at_gate, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feed:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for i, batch in enumerate(self.batches):
                if i == self.gate_at:
                    self.at_gate.set()
                    self.release.wait(60)
                began = time.monotonic()
                try:
                    frames.write_ticks(batch, SYMBOL, conn=self.conn)
                except Exception as exc:  # recorded and checked by the test: every one must be typed
                    self.failed[i] = exc
                else:
                    self.done.append(i)
                self.durations.append(time.monotonic() - began)
        finally:
            self.finished.set()

    def join(self) -> None:
        self.release.set()
        assert self.finished.wait(120), "writer did not finish"

    def resend_failed(self) -> None:
        for i in sorted(self.failed):
            frames.write_ticks(self.batches[i], SYMBOL, conn=self.conn)

    def check_errors(self, *allowed: type[BaseException]) -> None:
        for exc in self.failed.values():
            assert isinstance(exc, allowed), "".join(traceback.format_exception(exc))
        assert max(self.durations) < CALL_BOUND_S


class Reader:
    """A reader thread racing the writer: every frame it gets must be consistent, every error typed."""

    def __init__(self, conn: Connection, batches: list[pd.DataFrame]):
        self.conn = conn
        every = pd.concat(batches)
        self.known = every.set_index(["ts", "trade_id"]).sort_index()
        self.reads = 0
        self.errors: list[BaseException] = []
        self.bad: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Reader:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                # missing="skip": the reader may start before the feed's first write lists the symbol.
                ticks = frames.load_ticks(SYMBOL, conn=self.conn, columns=["price", "volume", "trade_id"], missing="skip")
                candles = frames.load_ohlcv(SYMBOL, "5m", conn=self.conn, columns=["high", "low", "count"],
                                            missing="skip")
            except Exception as exc:  # checked by the test: every one must be typed
                self.errors.append(exc)
                continue
            self.reads += 1
            self._check(ticks, candles)

    def _check(self, ticks: pd.DataFrame, candles: pd.DataFrame) -> None:
        keyed = pd.DataFrame({"ts": ticks.index.as_unit("ms").asi8, "trade_id": ticks["trade_id"].to_numpy(),
                              "price": ticks["price"].to_numpy(), "volume": ticks["volume"].to_numpy()})
        if keyed.duplicated(["ts", "trade_id"]).any():
            self.bad.append("a tick came back twice")
        if not (np.diff(keyed["ts"].to_numpy()) >= 0).all():
            self.bad.append("ticks out of time order")
        sent = self.known.reindex(pd.MultiIndex.from_frame(keyed[["ts", "trade_id"]]))
        if not (np.array_equal(sent["price"].to_numpy(), keyed["price"].to_numpy())
                and np.array_equal(sent["volume"].to_numpy(), keyed["volume"].to_numpy())):
            self.bad.append("a tick that was never sent, or with other values (half-decoded?)")
        if len(candles) and not ((candles["count"] > 0) & (candles["high"] >= candles["low"])).all():
            self.bad.append("a candle that is not a merge of ticks")

    def join(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert not self.bad, self.bad[:5]
        assert self.reads > 0
        for exc in self.errors:
            assert isinstance(exc, errors.Unavailable), f"reader raised {type(exc).__name__}: {exc}"


@pytest.fixture
def aof_server():
    """A throwaway server that keeps every acknowledged write across a crash (AOF, fsync always)."""
    server = RedisServer(shutil.which("redis-server"), "--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.stop()


def test_crash_and_restart_during_ingest(aof_server):
    batches = make_batches(160, 120)
    conn = Connection(fault_settings(aof_server.url))
    feed = Feed(conn, batches, gate_at=len(batches) - 5).start()
    reader = Reader(Connection(conn.settings), batches).start()
    try:
        # A crash (SIGKILL) in the middle of the ingest, then a graceful restart (SIGTERM).
        for stop, at in ((lambda: aof_server.process.kill(), 40), (aof_server.stop, 90)):
            wait_for(lambda at=at: len(feed.done) >= at, what=f"{at} batches written")
            failed_before = len(feed.failed)
            stop()
            if aof_server.process is not None:
                aof_server.process.wait(10)
            wait_for(lambda n=failed_before: len(feed.failed) > n, what="a write to fail while the server is down")
            done_before = len(feed.done)
            aof_server.start()
            wait_for(lambda n=done_before: len(feed.done) > n, what="writes to recover after the restart")
        wait_for(feed.at_gate.is_set, what="the writer to reach its gate")
    finally:
        feed.join()
        reader.join()
    feed.check_errors(errors.Unavailable)
    assert feed.failed and len(feed.done) + len(feed.failed) == len(batches)
    feed.resend_failed()
    assert_equals_undisturbed(conn, batches)
    conn.close()


def test_client_pause_longer_than_socket_timeout(aof_server):
    batches = make_batches(120, 120, seed=11)
    conn = Connection(fault_settings(aof_server.url, socket_timeout=0.2, retries=1))
    admin = redis.Redis(port=aof_server.port)
    feed = Feed(conn, batches, gate_at=len(batches) - 5).start()
    reader = Reader(Connection(conn.settings), batches).start()
    try:
        for mode, at in (("WRITE", 30), ("ALL", 70)):
            wait_for(lambda at=at: len(feed.done) >= at, what=f"{at} batches written")
            failed_before, done_before = len(feed.failed), len(feed.done)
            admin.execute_command("CLIENT", "PAUSE", 2500, mode)  # ten socket timeouts and more
            wait_for(lambda n=failed_before: len(feed.failed) > n, what="a write to time out during the pause")
            wait_for(lambda n=done_before: len(feed.done) > n, what="writes to recover after the pause")
        wait_for(feed.at_gate.is_set, what="the writer to reach its gate")
    finally:
        feed.join()
        reader.join()
        admin.close()
    feed.check_errors(errors.Unavailable)
    assert any(isinstance(exc, errors.RedisTimeout) for exc in feed.failed.values())
    feed.resend_failed()
    assert_equals_undisturbed(conn, batches)
    conn.close()


class ReplyDroppingProxy:
    """A loopback TCP proxy that can let an ``EXEC`` reach the server and then lose its reply.

    ``cut_next_exec()`` arms it: the next client chunk ending in ``EXEC`` is forwarded, the
    server's reply is read and thrown away, the connection is closed, and (unless
    ``then_refuse=False``) new connections are refused (accepted and closed at once) until ``heal()``.
    """

    EXEC = b"*1\r\n$4\r\nEXEC\r\n"

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = False
        self.then_refuse = True
        self.refusing = False
        self.replies_lost = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_next_exec(self, *, then_refuse: bool = True) -> None:
        self.then_refuse = then_refuse
        self.armed = True

    def heal(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            state = {"swallow": False, "replied": threading.Event()}
            threading.Thread(target=self._upstream, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, state), daemon=True).start()

    def _upstream(self, client, server, state) -> None:
        tail = b""
        try:
            while data := client.recv(65536):
                tail = (tail + data)[-len(self.EXEC):]
                cut = False
                with self.lock:
                    if self.armed and tail == self.EXEC:
                        self.armed, self.refusing, cut = False, self.then_refuse, True
                        state["swallow"] = True
                server.sendall(data)
                if cut:
                    # The server has the whole transaction; wait until it answered, then lose the answer.
                    state["replied"].wait(5)
                    self.replies_lost += 1
                    break
        except OSError:
            pass
        for sock in (client, server):
            sock.close()

    def _downstream(self, server, client, state) -> None:
        try:
            while data := server.recv(65536):
                if state["swallow"]:
                    state["replied"].set()
                    continue
                client.sendall(data)
        except OSError:
            pass


@pytest.fixture
def proxied(redis_server):
    """A connection through a reply-dropping proxy, and an observer straight to the server."""
    if redis_server is None:
        pytest.skip("needs the session's redis-server")
    proxy = ReplyDroppingProxy(redis_server.port)
    conn = Connection(fault_settings(proxy.url, retries=1, socket_timeout=2.0))
    observer = Connection(dataclasses.replace(conn.settings, url=redis_server.url))
    yield proxy, conn, observer
    keys = list(observer.sync.scan_iter(match=observer.keys.everything(), count=1000))
    if keys:
        observer.sync.delete(*keys)
    for c in (conn, observer):
        c.close()
    proxy.close()


def test_exec_applied_but_reply_lost_then_resent(proxied):
    """The subtle case: MULTI/EXEC reached the server, its reply did not reach the client.

    The writer gets a typed error; the ticks are in fact stored; resending the batch writes
    nothing new (every tick is a duplicate) and the series equals an undisturbed run.
    """
    proxy, conn, observer = proxied
    batches = make_batches(6, 200, seed=3)
    for batch in batches[:2]:
        frames.write_ticks(batch, SYMBOL, conn=conn)
    stored_before = len(frames.load_ticks(SYMBOL, conn=observer))

    proxy.cut_next_exec()
    with pytest.raises(errors.Unavailable):
        frames.write_ticks(batches[2], SYMBOL, conn=conn)
    assert proxy.replies_lost == 1
    # The transaction did run: the server holds the batch although the client never heard so.
    assert len(frames.load_ticks(SYMBOL, conn=observer)) == stored_before + len(batches[2])

    proxy.heal()
    resent = frames.write_ticks(batches[2], SYMBOL, conn=conn)
    assert (resent.written, resent.duplicates) == (0, len(batches[2]))
    for batch in batches[3:]:
        frames.write_ticks(batch, SYMBOL, conn=conn)
    assert_equals_undisturbed(observer, batches)


def test_exec_reply_lost_while_server_stays_reachable(proxied):
    """A lost EXEC reply with the server still reachable is a typed error at once, not a conflict.

    redis-py reports a connection lost while WATCHing as a WatchError; redtick must not take it
    for a concurrent writer and rerun the plan up to 64 times (each rerun waiting out timeouts).
    """
    proxy, conn, observer = proxied
    batches = make_batches(3, 200, seed=5)
    frames.write_ticks(batches[0], SYMBOL, conn=conn)
    proxy.cut_next_exec(then_refuse=False)
    with pytest.raises(errors.Unavailable):
        frames.write_ticks(batches[1], SYMBOL, conn=conn)
    assert proxy.replies_lost == 1
    resent = frames.write_ticks(batches[1], SYMBOL, conn=conn)
    assert (resent.written, resent.duplicates) == (0, len(batches[1]))
    frames.write_ticks(batches[2], SYMBOL, conn=conn)
    assert_equals_undisturbed(observer, batches)


def test_alerts_fired_by_a_batch_whose_reply_was_lost_are_not_lost(proxied):
    """The alert check commits with the ticks: a lost EXEC reply and a resend fire the alert exactly once."""
    import asyncio

    from redtick.caches.alerts import PriceAlerts

    proxy, conn, observer = proxied
    first, second = make_batches(2, 200, seed=11)
    frames.write_ticks(first, SYMBOL, conn=conn)
    spike = second.copy()
    top = float(max(first["price"].max(), second["price"].max()))
    spike.loc[spike.index[50], "price"] = top * 2  # only this batch reaches the alert
    alerts = PriceAlerts(observer)
    alert_id = asyncio.run(alerts.set_price_alert("trader", SYMBOL, top * 1.5, "above"))

    proxy.cut_next_exec()
    with pytest.raises(errors.Unavailable):
        frames.write_ticks(spike, SYMBOL, conn=conn)
    proxy.heal()
    resent = frames.write_ticks(spike, SYMBOL, conn=conn)
    assert (resent.written, resent.fired_alerts) == (0, [])
    fired = asyncio.run(alerts.get_fired_alerts("trader"))
    assert [(f.alert_id, f.price) for f in fired] == [(alert_id, top * 2)]
    assert asyncio.run(alerts.get_user_alerts("trader")) == []
