"""The live view: tick notices published by writes, redtick.watch() following them, and LivePanel drawing them.

Writers run in a second process (``python -c``) on the real server and the cluster, as a feed handler
would; on ``memory://`` the fakeredis server lives in this process, so there the writer is a thread.
Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
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
from redtick.feed import AsyncTickWatch, TickWatch, watch, watch_async
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


def test_a_write_partly_behind_the_last_tick_delivered_delivers_the_rest_once_and_is_recorded_late(conn, caplog):
    redtick.write_ticks([{"ts": 10_000, "price": 1.0, "volume": 1.0, "trade_id": 5}], "BEHIND", conn=conn)
    with watch("BEHIND", conn=conn, columns=["trade_id"], start=None) as ticks:
        assert collect(ticks, 1)[0]["trade_id"].tolist() == [5]
        with caplog.at_level(logging.WARNING, logger="redtick.feed"):
            redtick.write_ticks([{"ts": 10_000, "price": 1.0, "volume": 1.0, "trade_id": 4},
                                 {"ts": 11_000, "price": 1.0, "volume": 1.0, "trade_id": 1}], "BEHIND", conn=conn)
            assert collect(ticks, 1)[0]["trade_id"].tolist() == [1]  # the part ahead of the cursor
        assert ticks.poll(0.0) is None and ticks.delivered == 2  # once
        assert ticks.notices == 1 and ticks.last.first == (10_000, 4)
        assert ticks.late == [TickNotice("BEHIND", 2, (10_000, 4), (11_000, 1))] and ticks.late_count == 1
        [record] = [r for r in caplog.records if r.name == "redtick.feed"]
        assert record.levelno == logging.WARNING
        assert ("late write to BEHIND: 2 new ticks from 1970-01-01T00:00:10Z to 1970-01-01T00:00:11Z"
                in record.getMessage())
        assert "redtick.load_ticks('BEHIND', start='1970-01-01T00:00:10Z', end='1970-01-01T00:00:11Z')" in \
            record.getMessage()


def wait_for_notices(ticks: TickWatch, count: int) -> None:
    """Let ``ticks`` take notices until it has ``count``; none may bring a tick."""
    deadline = time.monotonic() + DEADLINE_S
    while ticks.notices < count:
        assert time.monotonic() < deadline, f"{ticks.notices} notices of {count} writes"
        assert ticks.poll(0.05) is None


def test_a_write_wholly_behind_is_recorded_late_and_logged_and_load_ticks_reads_it(conn, caplog):
    batches = batches_of(4)
    with watch("WHOLLY", conn=conn, columns=["trade_id"]) as ticks:
        for batch in batches:
            redtick.write_ticks(batch, "WHOLLY", conn=conn)
        assert pd.concat(collect(ticks, len(ids_of(batches))))["trade_id"].tolist() == ids_of(batches)
        wait_for_notices(ticks, len(batches))
        assert ticks.late_count == 0
        behind = [{"ts": BASE_MS - 2_000, "price": 1.0, "volume": 1.0, "trade_id": 900},
                  {"ts": BASE_MS + 500, "price": 1.0, "volume": 1.0, "trade_id": 901}]
        with caplog.at_level(logging.WARNING, logger="redtick.feed"):
            redtick.write_ticks(behind, "WHOLLY", conn=conn)
            wait_for_notices(ticks, len(batches) + 1)
        assert ticks.late == [TickNotice("WHOLLY", 2, (BASE_MS - 2_000, 900), (BASE_MS + 500, 901))]
        assert ticks.late_count == 1 and ticks.delivered == len(ids_of(batches))
        [record] = [r for r in caplog.records if r.name == "redtick.feed"]
        assert record.levelno == logging.WARNING and "late write to WHOLLY: 2 new ticks" in record.getMessage()
        # The call the warning names reads the late ticks.
        start, end = redtick.clock.iso_ms(BASE_MS - 2_000), redtick.clock.iso_ms(BASE_MS + 500)
        assert f"redtick.load_ticks('WHOLLY', start='{start}', end='{end}')" in record.getMessage()
        late = redtick.load_ticks("WHOLLY", start=start, end=end, columns=["trade_id"], conn=conn)
        assert {900, 901} <= set(late["trade_id"])
        redtick.write_ticks([{"ts": BASE_MS + 60_000, "price": 1.0, "volume": 1.0, "trade_id": 902}], "WHOLLY",
                            conn=conn)
        assert collect(ticks, 1)[0]["trade_id"].tolist() == [902]
        assert ticks.late_count == 1


class Meddler:
    """Stands between a watch and its subscription and runs actions (writes) at the two moments that matter.

    ``before_read``: each just before one of the watch's reads, once it has taken the messages waiting; such a
    write commits before the read, which delivers its ticks, and its notice is taken after the read.
    ``after_read``: each just after a read that delivered ticks, before the watch's PING that settles it; such a
    write's notice is taken before the PING's answer, though the read did not see it.
    """

    def __init__(self, ticks: TickWatch):
        self.ticks = ticks
        self.receive, self.ping = ticks._pubsub.get_message, ticks._pubsub.ping
        ticks._pubsub.get_message, ticks._pubsub.ping = self.get_message, self.fence
        self.before_read: list[Callable[[], Any]] = []
        self.after_read: list[Callable[[], Any]] = []

    def get_message(self, **options):
        message = self.receive(**options)
        if message is None and options.get("timeout") == 0.0 and self.ticks._stale and self.before_read:
            self.before_read.pop(0)()
        return message

    def fence(self, *args):
        if self.after_read:
            self.after_read.pop(0)()
        return self.ping(*args)


def test_in_order_writes_between_two_polls_are_never_late(conn):
    """Writes committed after the watch took one notice and before it read are delivered by that read; their
    notices come after it, behind the cursor by then, and are not late."""
    batches = batches_of(30)
    with watch("INORDER", conn=conn, columns=["trade_id"]) as ticks:
        meddler = Meddler(ticks)
        meddler.before_read.append(lambda: [redtick.write_ticks(b, "INORDER", conn=conn) for b in batches[1:5]])
        redtick.write_ticks(batches[0], "INORDER", conn=conn)
        frames = collect(ticks, len(ids_of(batches[:5])))
        assert not meddler.before_read  # the writes were made before the read
        assert len(frames[0]) > len(batches[0])  # that read delivered them all
        wait_for_notices(ticks, 5)
        for batch in batches[5:]:  # a burst, no poll between the writes
            redtick.write_ticks(batch, "INORDER", conn=conn)
        frames += collect(ticks, len(ids_of(batches[5:])))
        wait_for_notices(ticks, len(batches))
        assert pd.concat(frames)["trade_id"].tolist() == ids_of(batches)
        assert ticks.late == [] and ticks.late_count == 0


def test_a_write_behind_that_lands_just_after_a_read_is_late(conn):
    """Its notice comes before the watch knows every notice of what the read saw has come: the read's own
    ticks tell it apart."""
    tick = {"price": 1.0, "volume": 1.0}
    with watch("JUSTAFTER", conn=conn, columns=["trade_id"]) as ticks:
        meddler = Meddler(ticks)
        meddler.after_read.append(lambda: redtick.write_ticks([{"ts": 10_500, "trade_id": 3, **tick}], "JUSTAFTER",
                                                              conn=conn))
        redtick.write_ticks([{"ts": 10_000, "trade_id": 1, **tick}, {"ts": 11_000, "trade_id": 2, **tick}],
                            "JUSTAFTER", conn=conn)
        assert collect(ticks, 2)[0]["trade_id"].tolist() == [1, 2]
        wait_for_notices(ticks, 2)
        assert not meddler.after_read  # the write was made after the read, before its PING
        assert ticks.late == [TickNotice("JUSTAFTER", 1, (10_500, 3), (10_500, 3))]
        assert ticks.delivered == 2


def test_a_long_watch_forgets_the_reads_it_settled_and_still_calls_a_write_behind_them_late(conn):
    """Each read's ticks are kept only until the PING sent after it comes back, and a write behind them is late."""
    with watch("LONG", conn=conn, columns=["trade_id"]) as ticks:
        for k in range(100):
            redtick.write_ticks([{"ts": BASE_MS + k, "price": 1.0, "volume": 1.0, "trade_id": k}], "LONG", conn=conn)
            assert collect(ticks, 1)[0]["trade_id"].tolist() == [k]
        wait_for_notices(ticks, 100)
        deadline = time.monotonic() + DEADLINE_S
        while ticks._late.reads:  # the PINGs come back: none of the reads' ticks is kept after
            assert time.monotonic() < deadline, f"{len(ticks._late.reads)} reads still kept"
            assert ticks.poll(0.05) is None
        assert ticks.late_count == 0
        redtick.write_ticks([{"ts": BASE_MS - 1, "price": 1.0, "volume": 1.0, "trade_id": 1_000}], "LONG", conn=conn)
        wait_for_notices(ticks, 101)
        assert ticks.late_count == 1 and ticks.late[0].first == (BASE_MS - 1, 1_000)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(1, 3),
                          st.sampled_from(["poll", "before a read", "after a read", "write"])), min_size=1, max_size=10))
def test_a_notice_is_late_exactly_when_its_first_tick_is_never_delivered(writes):
    """Law: whatever writes land behind or ahead, and whenever the watch reads, the notices recorded late are
    those of the writes whose first tick the watch never delivers, in order; every tick it delivers, once.

    On ``memory://`` only, as the notice law above. Every tick is new: a write's first tick is its earliest.
    """
    conn = Connection(Settings(url="memory://", namespace="late"), memory_server=fakeredis.FakeServer(version=(7, 0)))
    head, next_id, committed, got = BASE_MS, 0, [], []

    def write(batch: list[dict]) -> None:
        redtick.write_ticks(batch, "LATELAW", conn=conn)
        committed.append(batch)

    with watch("LATELAW", conn=conn, columns=["trade_id"], start=None) as ticks:
        meddler = Meddler(ticks)
        for offset, size, when in writes:
            head += offset * 10
            batch = [{"ts": head + i, "price": 1.0, "volume": 1.0, "trade_id": next_id + i} for i in range(size)]
            next_id += size
            if when in ("before a read", "after a read"):
                (meddler.before_read if when == "before a read" else meddler.after_read).append(
                    lambda batch=batch: write(batch))
                continue
            write(batch)
            if when == "poll":
                frame = ticks.poll(0.0)
                got += [] if frame is None else frame["trade_id"].tolist()
        for waiting in (meddler.before_read, meddler.after_read):  # writes still waiting for a read
            while waiting:
                waiting.pop(0)()
        deadline = time.monotonic() + DEADLINE_S
        while True:  # until every write's notice is taken and a last read finds nothing new
            assert time.monotonic() < deadline, f"{ticks.notices} notices of {len(committed)} writes"
            all_taken = ticks.notices == len(committed)
            frame = ticks.poll(0.0 if all_taken else 0.05)
            if frame is None and all_taken:
                break
            got += [] if frame is None else frame["trade_id"].tolist()
    delivered = set(got)
    assert len(got) == len(delivered)
    order = {tick["trade_id"]: (tick["ts"], tick["trade_id"]) for batch in committed for tick in batch}
    assert [order[i] for i in got] == sorted(order[i] for i in got)
    assert [notice.first for notice in ticks.late] == [
        min(order[tick["trade_id"]] for tick in batch) for batch in committed
        if min(batch, key=lambda t: (t["ts"], t["trade_id"]))["trade_id"] not in delivered]


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


def test_a_poll_that_does_not_wait_takes_the_notices_waiting(conn):
    with watch("NOWAIT", conn=conn, columns=["trade_id"], block=0.0) as ticks:
        redtick.write_ticks([{"ts": 1_000, "price": 1.0, "volume": 1.0, "trade_id": 1}], "NOWAIT", conn=conn)
        deadline = time.monotonic() + DEADLINE_S
        while (frame := ticks.poll(0.0)) is None:  # until the notice has crossed the socket
            assert time.monotonic() < deadline, "poll(0) never took the waiting notice"
        assert frame["trade_id"].tolist() == [1]
        redtick.write_ticks([{"ts": 2_000, "price": 1.0, "volume": 1.0, "trade_id": 2}], "NOWAIT", conn=conn)
        assert next(ticks)["trade_id"].tolist() == [2]  # iterating with block=0 sees it too


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


def test_the_live_panel_names_a_late_write_and_its_candles_include_it(conn):
    minute = BASE_MS - BASE_MS % 60_000
    panel = LivePanel("LATEPANEL", conn=conn, candles=5, redraw=0.0)
    try:
        redtick.write_ticks([{"ts": minute + 30_000, "price": 10.0, "volume": 1.0, "trade_id": 2}], "LATEPANEL",
                            conn=conn)
        assert panel.wait_until(lambda p: p.seen == 1 and p.candles["volume"].tolist() == [1.0], DEADLINE_S)
        assert "late write" not in panel.status.value
        redtick.write_ticks([{"ts": minute + 10_000, "price": 9.0, "volume": 4.0, "trade_id": 1}], "LATEPANEL",
                            conn=conn)
        assert panel.wait_until(lambda p: "late write" in p.status.value and p.candles["volume"].tolist() == [5.0],
                                DEADLINE_S)
        at = pd.Timestamp(minute + 10_000, unit="ms", tz="UTC")
        assert f"late write: 1 tick from {at} to {at}; the chart is reread" in panel.status.value
        candle = panel.candles.iloc[0]
        assert (candle["open"], candle["low"], candle["close"]) == (9.0, 9.0, 10.0)  # the late tick opened the minute
        assert list(panel.figure.data[0].open) == [9.0]
        assert panel.seen == 1 and panel.ticks["trade_id"].tolist() == [2]  # the table shows what was delivered
        assert panel.watch.late_count == 1
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


# -- the async watch ----------------------------------------------------------------------------------
async def collect_async(ticks: AsyncTickWatch, count: int) -> list[pd.DataFrame]:
    """Frames from ``async for`` over ``ticks`` until they hold ``count`` ticks; fails at the deadline."""
    frames: list[pd.DataFrame] = []

    async def follow() -> None:
        async for frame in ticks:
            assert len(frame) > 0
            frames.append(frame)
            if sum(map(len, frames)) >= count:
                return

    try:
        await asyncio.wait_for(follow(), DEADLINE_S)
    except TimeoutError:
        pytest.fail(f"only {sum(map(len, frames))} of {count} ticks arrived in {DEADLINE_S}s")
    return frames


async def test_an_async_watch_sees_a_writer_process_tick_by_tick_exactly_once_and_in_order(conn, backend, settings):
    batches = batches_of(40)
    async with watch_async("ALIVE", conn=conn, columns=["price", "volume", "trade_id"]) as ticks:
        writer = Writer(backend, settings, conn, "ALIVE", batches)
        frames = await collect_async(ticks, len(ids_of(batches)))
        await asyncio.to_thread(writer.join)
        got = pd.concat(frames)
        assert got["trade_id"].tolist() == ids_of(batches)
        pd.testing.assert_frame_equal(got, redtick.load_ticks("ALIVE", columns=["price", "volume", "trade_id"],
                                                              conn=conn))
        deadline = time.monotonic() + DEADLINE_S
        while ticks.notices < len(batches):
            assert time.monotonic() < deadline, f"{ticks.notices} notices of {len(batches)} writes"
            assert await ticks.poll(0.05) is None
        assert ticks.delivered == len(got) and ticks.notices == len(batches)
        assert ticks.late == [] and ticks.late_count == 0
        first, last = batches[-1][0], batches[-1][-1]
        assert ticks.last == TickNotice("ALIVE", len(batches[-1]), (first["ts"], first["trade_id"]),
                                        (last["ts"], last["trade_id"]))


async def test_an_async_poll_times_out_with_none_and_aclose_ends_the_subscription(conn):
    channel = conn.keys.tick_channel("ASUBS")
    ticks = watch_async("ASUBS", conn=conn, block=0.05)
    assert numsub(conn, channel) == 0 and ticks.delivered == 0 and ticks.last is None  # not opened yet
    assert await ticks.open() is ticks
    assert numsub(conn, channel) == 1
    assert await ticks.poll(0.3) is None  # several waits of `block` in the thread, nothing written
    await ticks.aclose()
    deadline = time.monotonic() + DEADLINE_S
    while numsub(conn, channel) != 0:
        assert time.monotonic() < deadline, "the subscription outlived the watch"
        await asyncio.sleep(0.01)
    with pytest.raises(InvalidData, match="closed"):
        await ticks.poll(0.0)
    assert [frame async for frame in ticks] == []


async def test_an_async_watch_records_a_late_write(conn):
    tick = {"price": 1.0, "volume": 1.0}
    async with watch_async("ALATE", conn=conn, columns=["trade_id"]) as ticks:
        await asyncio.to_thread(redtick.write_ticks, [{"ts": 20_000, "trade_id": 2, **tick}], "ALATE", conn=conn)
        assert (await collect_async(ticks, 1))[0]["trade_id"].tolist() == [2]
        await asyncio.to_thread(redtick.write_ticks, [{"ts": 10_000, "trade_id": 1, **tick}], "ALATE", conn=conn)
        deadline = time.monotonic() + DEADLINE_S
        while ticks.notices < 2:
            assert time.monotonic() < deadline
            assert await ticks.poll(0.05) is None
        assert ticks.late == [TickNotice("ALATE", 1, (10_000, 1), (10_000, 1))] and ticks.late_count == 1


async def test_a_cancelled_async_poll_leaves_one_poller_and_loses_no_tick(conn):
    """The cancelled poll's thread waits on in the subscription: the next poll waits for it and gets its frame."""
    tick = {"price": 1.0, "volume": 1.0}
    async with watch_async("ACANCEL", conn=conn, columns=["trade_id"], block=DEADLINE_S) as ticks:
        pubsub = ticks._watch._pubsub
        receive, lock, waiting = pubsub.get_message, threading.Lock(), threading.Event()
        pollers = {"now": 0, "most": 0}

        def counted(**options):
            with lock:
                pollers["now"] += 1
                pollers["most"] = max(pollers["most"], pollers["now"])
            if options.get("timeout", 0.0) > 0:
                waiting.set()
            try:
                return receive(**options)
            finally:
                with lock:
                    pollers["now"] -= 1

        pubsub.get_message = counted
        cancelled = asyncio.create_task(ticks.poll(DEADLINE_S))
        assert await asyncio.to_thread(waiting.wait, DEADLINE_S)  # its thread waits on the subscription
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        following = asyncio.create_task(ticks.poll(DEADLINE_S))
        await asyncio.to_thread(redtick.write_ticks, [{"ts": 1_000, "trade_id": 1, **tick}], "ACANCEL", conn=conn)
        assert (await asyncio.wait_for(following, DEADLINE_S))["trade_id"].tolist() == [1]
        await asyncio.to_thread(redtick.write_ticks, [{"ts": 2_000, "trade_id": 2, **tick}], "ACANCEL", conn=conn)
        assert (await asyncio.wait_for(ticks.poll(DEADLINE_S), DEADLINE_S))["trade_id"].tolist() == [2]
        assert pollers["most"] == 1 and ticks.delivered == 2


async def test_the_event_loop_runs_on_while_an_async_watch_waits(conn):
    beats = 0

    async def beat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.01)
            beats += 1

    async with watch_async("ALOOP", conn=conn) as ticks:
        beating = asyncio.create_task(beat())
        assert await ticks.poll(0.5) is None
        beating.cancel()
    assert beats >= 3  # a poll that held the loop would have let it beat once at most


async def test_bad_arguments_fail_an_async_watch_before_it_subscribes(conn):
    with pytest.raises(InvalidKey):
        watch_async("BAD SYMBOL", conn=conn)
    with pytest.raises(InvalidData, match="start"):
        watch_async("AOK", conn=conn, start="not a time")
    with pytest.raises(InvalidData, match="output"):
        watch_async("AOK", conn=conn, output="excel")
    with pytest.raises(InvalidData, match="block"):
        watch_async("AOK", conn=conn, block=-1)
    ticks = watch_async("AOK", conn=conn)
    with pytest.raises(InvalidData, match="timeout"):
        await ticks.poll(-1)
    assert numsub(conn, conn.keys.tick_channel("AOK")) == 0  # nothing subscribed
    await ticks.aclose()
