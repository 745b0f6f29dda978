"""The live view: tick notices published by writes, redtick.watch() following them, and LivePanel drawing them.

Writers run in a second process (``python -c``) on the real server and the cluster, as a feed handler
would; on ``memory://`` the fakeredis server lives in this process, so there the writer is a thread.
Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import fakeredis
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import redtick
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import InvalidData, InvalidKey
from redtick.feed import TickWatch, watch
from redtick.notices import TickNotice
from redtick.widgets import LivePanel

BASE_MS = 1_700_000_000_000
DEADLINE_S = 30.0

WRITER = """
    import json, sys
    import redtick
    for batch in json.loads(sys.argv[1]):
        redtick.write_ticks(batch, sys.argv[2])
    print("done", flush=True)
"""


def batches_of(writes: int, first_id: int = 0, first_ms: int = BASE_MS) -> list[list[dict]]:
    """``writes`` batches of 1-3 ticks, two writes per millisecond, ids rising: every tick is after the last."""
    batches, next_id = [], first_id
    for k in range(writes):
        batch = []
        for _ in range(1 + k % 3):
            batch.append({"ts": first_ms + (k // 2) * 1_000, "price": 100.0 + next_id % 17, "volume": 1.0 + k,
                          "trade_id": next_id})
            next_id += 1
        batches.append(batch)
    return batches


def ids_of(batches: list[list[dict]]) -> list[int]:
    return [tick["trade_id"] for batch in batches for tick in batch]


class Writer:
    """Writes ``batches`` of ``symbol``: a second process on a server, a thread on ``memory://``."""

    def __init__(self, backend: str, settings: Settings, conn: Connection, symbol: str, batches: list[list[dict]]):
        if backend == "memory":
            self.process = None
            self.thread = threading.Thread(target=lambda: [redtick.write_ticks(b, symbol, conn=conn) for b in batches])
            self.thread.start()
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
        env.update(REDIS_URL=settings.url or "", REDTICK_NAMESPACE=settings.namespace)
        self.process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), json.dumps(batches), symbol],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def join(self) -> None:
        if self.process is None:
            self.thread.join(DEADLINE_S)
            assert not self.thread.is_alive()
            return
        out, err = self.process.communicate(timeout=DEADLINE_S)
        assert self.process.returncode == 0, err
        assert out.strip() == "done"


def collect(ticks: TickWatch, count: int) -> list[pd.DataFrame]:
    """Frames from ``ticks`` until they hold ``count`` ticks; fails at the deadline."""
    frames, deadline = [], time.monotonic() + DEADLINE_S
    while sum(map(len, frames)) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {sum(map(len, frames))} of {count} ticks arrived in {DEADLINE_S}s"
        frame = ticks.poll(remaining)
        if frame is not None:
            assert len(frame) > 0  # a frame is never empty
            frames.append(frame)
    return frames


class Dropper:
    """Stands between a watch and its subscription: drops, or doubles, the notices it is told to."""

    def __init__(self, ticks: TickWatch):
        self.receive = ticks._pubsub.get_message
        ticks._pubsub.get_message = self
        self.plan: list[str] = []  # for each coming notice: "drop", "double" or "pass"; "pass" when empty
        self.dropped = 0
        self.doubled: list[dict] = []

    def __call__(self, **options):
        if self.doubled:
            return self.doubled.pop()
        message = self.receive(**options)
        if message is None or message["type"] != "message":
            return message
        fate = self.plan.pop(0) if self.plan else "pass"
        if fate == "drop":
            self.dropped += 1
            return None
        if fate == "double":
            self.doubled.append(dict(message))
        return message

    def wait_dropped(self, ticks: TickWatch, count: int) -> None:
        """Let ``ticks`` read its subscription until ``count`` notices were dropped; none may bring a tick."""
        deadline = time.monotonic() + DEADLINE_S
        while self.dropped < count:
            assert time.monotonic() < deadline, f"only {self.dropped} of {count} notices came to be dropped"
            assert ticks.poll(0.05) is None


def numsub(conn: Connection, channel: str) -> int:
    """Subscribers of ``channel``; on a cluster, on the node of its slot, where a watch listens."""
    client: Any = conn.sync
    where = {"target_nodes": client.get_node_from_key(channel)} if conn.settings.topology == "cluster" else {}
    return sum(int(n) for _, n in client.pubsub_numsub(channel, **where))


# -- notices ------------------------------------------------------------------------------------------
def test_each_committed_write_publishes_one_notice_and_a_write_of_duplicates_none(conn):
    channel = conn.keys.tick_channel("NOTE")
    listener = conn.sync.pubsub()
    listener.subscribe(channel)
    deadline = time.monotonic() + DEADLINE_S
    while (message := listener.get_message(timeout=1.0)) is None or message["type"] != "subscribe":
        assert time.monotonic() < deadline
    ticks = [{"ts": 5_000, "price": 1.0, "volume": 1.0, "trade_id": 9}, {"ts": 2_000, "price": 2.0, "volume": 1.0,
                                                                         "trade_id": 3}]
    redtick.write_ticks(ticks, "NOTE", conn=conn)
    redtick.write_ticks(ticks, "NOTE", conn=conn)  # all duplicates: nothing committed, nothing published
    redtick.write_ticks([ticks[0], {"ts": 7_000, "price": 3.0, "volume": 1.0, "trade_id": 1}], "NOTE", conn=conn)
    notices = []
    while len(notices) < 2:
        message = listener.get_message(timeout=max(deadline - time.monotonic(), 0.0))
        assert message is not None, "a notice did not arrive"
        if message["type"] == "message":
            notices.append(TickNotice.decode(message["data"]))
    assert notices == [TickNotice("NOTE", 2, (2_000, 3), (5_000, 9)), TickNotice("NOTE", 1, (7_000, 1), (7_000, 1))]
    assert listener.get_message(timeout=0.0) is None  # the duplicates' write published nothing
    listener.close()


def test_a_notice_refuses_what_is_not_one():
    with pytest.raises(InvalidData, match="not a tick notice"):
        TickNotice.decode(b'{"symbol": "ES"}')
    with pytest.raises(InvalidData, match="at least one new tick"):
        TickNotice.of("ES", np.zeros(0, dtype=[("ts", "<i8"), ("id", "<i8")]))


# -- the watch ----------------------------------------------------------------------------------------
def test_a_writer_process_is_seen_tick_by_tick_exactly_once_and_in_order(conn, backend, settings):
    batches = batches_of(40)
    with watch("LIVE", conn=conn, columns=["price", "volume", "trade_id"]) as ticks:
        writer = Writer(backend, settings, conn, "LIVE", batches)
        frames = collect(ticks, len(ids_of(batches)))
        writer.join()
        got = pd.concat(frames)
        assert got["trade_id"].tolist() == ids_of(batches)
        pd.testing.assert_frame_equal(got, redtick.load_ticks("LIVE", columns=["price", "volume", "trade_id"],
                                                              conn=conn))
        deadline = time.monotonic() + DEADLINE_S
        while ticks.notices < len(batches):  # one per write; those read late bring nothing new
            assert time.monotonic() < deadline, f"{ticks.notices} notices of {len(batches)} writes"
            assert ticks.poll(0.05) is None
        assert ticks.delivered == len(got) and ticks.notices == len(batches)
        first, last = batches[-1][0], batches[-1][-1]
        assert ticks.last == TickNotice("LIVE", len(batches[-1]), (first["ts"], first["trade_id"]),
                                        (last["ts"], last["trade_id"]))
        assert 1 <= len(frames) <= len(batches)


def test_lost_notices_delay_ticks_but_never_lose_or_double_one(conn):
    batches = batches_of(6)
    with watch("LOSSY", conn=conn, columns=["trade_id"]) as ticks:
        dropper = Dropper(ticks)
        dropper.plan = ["drop", "drop"]
        for batch in batches[:2]:
            redtick.write_ticks(batch, "LOSSY", conn=conn)
        dropper.wait_dropped(ticks, 2)
        assert ticks.poll(0.0) is None and ticks.delivered == 0  # nothing told it yet
        redtick.write_ticks(batches[2], "LOSSY", conn=conn)  # the next notice catches up
        assert pd.concat(collect(ticks, len(ids_of(batches[:3]))))["trade_id"].tolist() == ids_of(batches[:3])
        dropper.plan = ["double", "double"]
        for batch in batches[3:5]:
            redtick.write_ticks(batch, "LOSSY", conn=conn)
        assert pd.concat(collect(ticks, len(ids_of(batches[3:5]))))["trade_id"].tolist() == ids_of(batches[3:5])
        assert ticks.poll(0.0) is None  # the doubled notices read nothing new
        redtick.write_ticks(batches[5], "LOSSY", conn=conn)
        assert collect(ticks, len(batches[5]))[0]["trade_id"].tolist() == ids_of(batches[5:])
        assert ticks.delivered == len(ids_of(batches))


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 4), st.sampled_from(["pass", "drop", "double"]),
                          st.booleans()), min_size=1, max_size=8))
def test_whatever_notices_are_lost_every_tick_arrives_once_in_order(writes):
    """Law: with any notices dropped or doubled (but the last), the frames concatenated are the stored ticks.

    On ``memory://`` only: Hypothesis runs many examples, each on a fresh fakeredis server.
    """
    conn = Connection(Settings(url="memory://", namespace="law"), memory_server=fakeredis.FakeServer(version=(7, 0)))
    ts, next_id, expected, got = BASE_MS, 0, [], []
    with watch("LAW", conn=conn, columns=["trade_id"]) as ticks:
        dropper = Dropper(ticks)
        dropper.plan = [fate for _, _, fate, _ in writes[:-1]] + ["pass"]
        for gap, size, _, look in writes:
            ts += gap
            batch = [{"ts": ts, "price": 1.0, "volume": 1.0, "trade_id": next_id + i} for i in range(size)]
            next_id += size
            expected += ids_of([batch])
            redtick.write_ticks(batch, "LAW", conn=conn)
            if look:  # read between writes too, so drops land both before and after a read
                frame = ticks.poll(0.0)
                got += [] if frame is None else frame["trade_id"].tolist()
        if len(got) < len(expected):
            got += pd.concat(collect(ticks, len(expected) - len(got)))["trade_id"].tolist()
        assert ticks.poll(0.0) is None
    assert got == expected


def test_the_watch_starts_now_at_a_time_or_at_the_first_tick(conn):
    batches = batches_of(4)
    for batch in batches[:3]:
        redtick.write_ticks(batch, "START", conn=conn)
    second_ms = batches[2][0]["ts"]
    with watch("START", conn=conn, columns=["trade_id"]) as now, \
            watch("START", conn=conn, columns=["trade_id"], start=second_ms) as later, \
            watch("START", conn=conn, columns=["trade_id"], start=None, output="arrow") as everything:
        redtick.write_ticks(batches[3], "START", conn=conn)
        assert pd.concat(collect(now, len(batches[3])))["trade_id"].tolist() == ids_of(batches[3:])
        stored_since = [t["trade_id"] for t in ids_and_ts(batches) if t["ts"] >= second_ms]
        assert pd.concat(collect(later, len(stored_since)))["trade_id"].tolist() == stored_since
        table = everything.poll(DEADLINE_S)
        assert table.column("trade_id").to_pylist() == ids_of(batches)[: table.num_rows]


def ids_and_ts(batches: list[list[dict]]) -> list[dict]:
    return [tick for batch in batches for tick in batch]


def test_a_tick_written_behind_the_last_one_delivered_is_not_delivered(conn):
    redtick.write_ticks([{"ts": 10_000, "price": 1.0, "volume": 1.0, "trade_id": 5}], "BEHIND", conn=conn)
    with watch("BEHIND", conn=conn, columns=["trade_id"], start=None) as ticks:
        assert collect(ticks, 1)[0]["trade_id"].tolist() == [5]
        redtick.write_ticks([{"ts": 10_000, "price": 1.0, "volume": 1.0, "trade_id": 4},
                             {"ts": 11_000, "price": 1.0, "volume": 1.0, "trade_id": 1}], "BEHIND", conn=conn)
        assert collect(ticks, 1)[0]["trade_id"].tolist() == [1]
        assert ticks.notices == 1 and ticks.last.first == (10_000, 4)


def test_bad_arguments_fail_before_subscribing_and_a_closed_watch_says_so(conn):
    with pytest.raises(InvalidKey):
        watch("BAD SYMBOL", conn=conn)
    with pytest.raises(InvalidData, match="start"):
        watch("OK", conn=conn, start="not a time")
    with pytest.raises(InvalidData, match="output"):
        watch("OK", conn=conn, output="excel")
    ticks = watch("OK", conn=conn)
    ticks.close()
    with pytest.raises(InvalidData, match="closed"):
        ticks.poll(0.0)
    assert list(ticks) == []


def test_closing_a_watch_ends_its_subscription(conn):
    channel = conn.keys.tick_channel("SUBS")
    ticks = watch("SUBS", conn=conn)
    assert numsub(conn, channel) == 1
    ticks.close()
    deadline = time.monotonic() + DEADLINE_S
    while numsub(conn, channel) != 0:  # the server drops the subscriber as it reads the connection's close
        assert time.monotonic() < deadline, "the subscription outlived the watch"
        time.sleep(0.01)


def test_iterating_stops_after_idle_timeout(conn):
    with watch("IDLE", conn=conn, idle_timeout=0.2, block=0.05) as ticks:
        assert list(ticks) == []


# -- the panel ----------------------------------------------------------------------------------------
def test_the_live_panel_shows_ticks_another_process_writes_and_stop_ends_its_thread(conn, backend, settings):
    batches = batches_of(12, first_ms=BASE_MS - BASE_MS % 60_000)
    panel = LivePanel("PANEL", conn=conn, rows=5, candles=3)
    try:
        writer = Writer(backend, settings, conn, "PANEL", batches)
        last = ids_of(batches)[-1]
        volume, count = sum(tick["volume"] for tick in ids_and_ts(batches)), len(ids_of(batches))
        assert panel.wait_until(lambda p: p.seen == count and list(p.candles["volume"]) == [volume], DEADLINE_S)
        writer.join()
        assert panel.ticks["trade_id"].tolist() == ids_of(batches)[-5:]
        assert panel.ticks["trade_id"].iloc[-1] == last
        expected = redtick.load_ohlcv("PANEL", "1m", conn=conn)
        pd.testing.assert_frame_equal(panel.candles, expected)
        assert f"<td>{last}</td>" in panel.table.value
        assert list(panel.figure.data[0].close) == expected["close"].tolist()
        shown = panel.chart.outputs[0]["data"]["application/vnd.plotly.v1+json"]
        assert shown["layout"]["title"]["text"].startswith("PANEL 1m candles (1)")
        assert panel.running
    finally:
        panel.stop()
    assert not panel.running and not any(thread.is_alive() for thread in panel._threads)
    assert "stopped" in panel.status.value


def test_closing_the_widget_or_clicking_stop_stops_the_panel(conn):
    panel = LivePanel("CLOSE", conn=conn, block=0.05)
    assert panel.running
    panel.widget.close()
    assert not panel.running
    clicked = LivePanel("CLOSE", conn=conn, block=0.05)
    clicked.stop_button.click()
    assert not clicked.running and clicked.stop_button.disabled
    idle = LivePanel("CLOSE", conn=conn, start=False)
    idle.stop()  # never started: its subscription is closed all the same
    assert idle.watch._closed


def test_a_running_panel_does_not_keep_its_process_alive(settings):
    code = """
        import sys, redtick
        from redtick.widgets import LivePanel
        panel = LivePanel("ALIVE")
        assert panel.running
        print("open", flush=True)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(REDIS_URL=settings.url or "memory://", REDTICK_NAMESPACE=settings.namespace)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "open"


def test_the_chart_follows_each_candle_in_the_figure_shown(conn):
    minute = BASE_MS - BASE_MS % 60_000
    panel = LivePanel("CHART", conn=conn, candles=5, redraw=0.0)
    try:
        shown = panel.figure
        for ts, price, closes in ((minute, 10.0, [10.0]), (minute + 1_000, 12.0, [12.0]),
                                  (minute + 60_000, 11.0, [12.0, 11.0])):
            redtick.write_ticks([{"ts": ts, "price": price, "volume": 1.0}], "CHART", conn=conn)
            assert panel.wait_until(lambda p, closes=closes: p.candles["close"].tolist() == closes, DEADLINE_S)
            assert list(panel.figure.data[0].close) == closes
            # Its data and title replaced in the figure shown (a new figure would cost ~50 ms on the ticks' thread),
            # and the chart output shows that figure.
            title = f"CHART 1m candles ({len(closes)}), bar start times in UTC"
            assert panel.figure is shown and panel.figure.layout.title.text == title
            assert panel.wait_until(lambda p, title=title: p.chart.outputs[0]["data"][
                "application/vnd.plotly.v1+json"]["layout"]["title"]["text"] == title, DEADLINE_S)
    finally:
        panel.stop()


@pytest.mark.single_node("kills the subscriber's connection on the one server")
def test_a_dropped_subscription_reconnects_and_reads_what_it_missed(conn, backend):
    if backend == "memory":
        pytest.skip("fakeredis has no CLIENT KILL: there is no connection to drop in process")
    with watch("KILLED", conn=conn, columns=["trade_id"]) as ticks:
        assert conn.sync.client_kill_filter(_type="pubsub") >= 1
        redtick.write_ticks([{"ts": 1_000, "price": 1.0, "volume": 1.0, "trade_id": 1}], "KILLED", conn=conn)
        # The notice went to no one; the re-subscription after the reconnection reads the tick.
        assert collect(ticks, 1)[0]["trade_id"].tolist() == [1]
        assert ticks.notices == 0
