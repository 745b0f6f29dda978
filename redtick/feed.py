"""A symbol's new ticks as they are written: woken by the writer's pub/sub notice, read with the series' readers.

Every tick write publishes a :class:`~redtick.notices.TickNotice` on its symbol's channel from
inside the transaction that commits it (:mod:`redtick.writes`). :func:`watch` subscribes to that
channel and waits on the subscription's socket, so an idle watch costs no command at all; woken by
a notice, it reads the series after the last tick it delivered, by (time, id), with the same read
plans as :func:`redtick.load_ticks`, and hands the new ticks over as one frame.

Notices are hints only: a watch never takes a tick from a notice. Pub/sub delivers at most once
(a dropped connection or an overflowing subscriber buffer loses messages), so:

- a lost notice only delays ticks, to the next notice, or to the re-subscription that follows a
  reconnection (which triggers a read of its own); it never loses one;
- a notice for ticks already delivered, or several notices read at once, deliver nothing twice;

and every tick after the watch's start is delivered exactly once, in (time, id) order. A watch
follows the head of the series: a tick written at or before the last tick delivered (a late
backfill) is not delivered; :func:`redtick.load_ticks` reads it. On Redis Cluster the watch
listens on the node of the symbol's slot, where the notice is published.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis

from redtick import checks
from redtick.catalog import layout_of
from redtick.connection import Connection, connect, translate_error
from redtick.errors import InvalidData, RedisTimeout
from redtick.keys import validate_symbol
from redtick.notices import TickNotice
from redtick.outputs import finish
from redtick.read_options import TICK_FIELDS, check_output, read_columns, time_bound
from redtick.reads import Columns
from redtick.series import SeriesLayout
from redtick.steps import Plan, run

__all__ = ["TickWatch", "watch"]

_REDIS_EXCEPTIONS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)


class _Cursor:
    """Where a watch stands in a series: just after the tick ``(ts, id)`` it delivered last. No I/O of its own.

    ``ts`` None: before the series' first tick. ``id`` None with a ``ts``: before every tick of that
    millisecond.
    """

    def __init__(self, layout: SeriesLayout, symbol: str, columns: list[str]):
        self.layout = layout
        self.symbol = symbol
        self.columns = columns
        self.fields = [TICK_FIELDS[name] for name in columns]
        self.ts: int | None = None
        self.id: int | None = None

    @property
    def position(self) -> tuple[int, int | None] | None:
        return None if self.ts is None else (self.ts, self.id)

    def at_newest_plan(self) -> Plan[None]:
        """Plan: stand after the series' newest tick (nowhere yet for a series with none)."""
        newest = yield from self.layout.newest_plan(self.symbol)
        if newest is None:
            return
        last = yield from self.layout.read_ticks_plan(self.symbol, newest, newest, ["id"])
        self.ts, self.id = newest, (int(last["id"][-1]) if len(last["id"]) else None)

    def read_plan(self) -> Plan[Columns]:
        """Plan: the ticks after the cursor, by column name; the cursor moves past them."""
        got = yield from self.layout.read_ticks_plan(self.symbol, self.ts, None, ["ts", "id", *self.fields])
        ts, ids = got["ts"], got["id"]
        # The read is sorted by (ts, id) and starts at the cursor's millisecond: the ticks of that
        # millisecond delivered already are a prefix of it.
        first = 0 if self.ts is None or self.id is None else int(np.count_nonzero((ts == self.ts) & (ids <= self.id)))
        if first < len(ts):
            self.ts, self.id = int(ts[-1]), int(ids[-1])
        return Columns(ts[first:], {name: got[field][first:] for name, field in zip(self.columns, self.fields, strict=True)})


def _seconds(value: Any, name: str) -> float:
    return checks.number(value, name, low=0, high=86_400, expected="seconds from 0 to 86400")


class TickWatch:
    """A symbol's new ticks, frame by frame, as other processes write them; from :func:`watch`.

    Iterating blocks until new ticks are stored and yields them as one frame (never an empty one);
    :meth:`poll` waits at most a given time. Close it (or use it in a ``with`` block) to give its
    connection back.

    Parameters
    ----------
    symbol : str
    conn : Connection, optional
        Defaults to ``redtick.connect()``. The watch holds one connection of its pool while open.
    start : "now", None or a time
        ``"now"`` (default): the ticks stored after the series' newest tick when the watch opens.
        A time (str, datetime, epoch ms; naive in ``tz``): every tick from then on, the stored ones
        first. None: every tick of the series.
    columns : list of str, optional
        As :func:`redtick.load_ticks`: some of ``price``, ``volume``, ``trade_id``, ``side``.
    tz : str or tzinfo, optional
        Time zone of the frames' index and of a naive ``start``.
    output : {"pandas", "arrow", "polars"}
        The frames' form, as :func:`redtick.load_ticks` gives it.
    block : float
        Seconds one wait on the subscription lasts before the iterator checks ``idle_timeout``.
    idle_timeout : float, optional
        Iteration stops once no tick arrived for this many seconds; default: run until closed.

    Attributes
    ----------
    delivered : int
        Ticks handed over so far.
    notices : int
        Notices received (several may lead to one read, and a read may find nothing new).
    last : TickNotice or None
        The latest notice received.
    """

    def __init__(self, symbol: str, *, conn: Connection | None = None, start: Any = "now",
                 columns: list[str] | None = None, tz: Any = None, output: str = "pandas", block: float = 1.0,
                 idle_timeout: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.symbol = validate_symbol(symbol)
        self.wanted = read_columns(columns, "ticks")
        self.output = check_output(output)
        self.tz = tz
        now = isinstance(start, str) and start == "now"
        start_ms = None if now or start is None else time_bound(start, "start", tz=tz)
        self.block = _seconds(block, "block")
        self.idle_timeout = None if idle_timeout is None else _seconds(idle_timeout, "idle_timeout")
        self.clock = clock
        self.conn = conn or connect()
        self.delivered = self.notices = 0
        self.last: TickNotice | None = None
        self._cursor = _Cursor(layout_of(self.conn), self.symbol, self.wanted)
        self._cursor.ts = start_ms
        self._stale = not now  # a backlog to read first
        self._closed = False
        self._pubsub = self.conn.sync.pubsub()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        try:
            self._subscribe()
            if now:
                run(self.conn.sync, self._cursor.at_newest_plan)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"TickWatch({self.symbol!r}, after={self._cursor.position}, delivered={self.delivered})"

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _REDIS_EXCEPTIONS as exc:
            raise translate_error(exc) from exc

    def _subscribe(self) -> None:
        """Subscribe and wait for the server's confirmation: from then on, every write's notice reaches us."""
        self._call(self._pubsub.subscribe, self.conn.keys.tick_channel(self.symbol))
        deadline = self.clock() + max(self.conn.settings.socket_timeout, 1.0)
        while True:
            message = self._call(self._pubsub.get_message, timeout=max(deadline - self.clock(), 0.0))
            if message is not None and message["type"] == "subscribe":
                return
            if message is None and self.clock() >= deadline:
                raise RedisTimeout(f"Redis did not confirm the subscription to {self.symbol}'s tick notices "
                                  f"within {max(self.conn.settings.socket_timeout, 1.0):g}s; is the server overloaded?")

    def _take(self, message: dict[str, Any] | None) -> None:
        """Note one message of the subscription: a notice, or a (re-)subscription, calls for a read."""
        if message is None:
            return
        if message["type"] == "message":
            self.notices += 1
            self._stale = True
            with contextlib.suppress(InvalidData):  # not ours to judge: a hint all the same
                self.last = TickNotice.decode(message["data"])
        elif message["type"] == "subscribe":  # a reconnection re-subscribed: notices may have been lost
            self._stale = True

    def poll(self, timeout: float) -> Any | None:
        """The ticks stored since the last frame, waiting up to ``timeout`` seconds for some; None if none came.

        Every message waiting on the subscription is taken before the read, so a burst of writes
        costs one read.
        """
        if self._closed:
            raise InvalidData(f"the watch of {self.symbol} is closed; open another with redtick.watch()")
        deadline = self.clock() + _seconds(timeout, "timeout")
        while True:
            if self._stale:
                self._stale = False
                got = run(self.conn.sync, self._cursor.read_plan)
                if len(got):
                    self.delivered += len(got)
                    return finish([got], [self.symbol], False, self.wanted, tz=self.tz, output=self.output)
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            self._take(self._call(self._pubsub.get_message, timeout=remaining))
            while self._stale:  # take what else is waiting, without waiting
                message = self._call(self._pubsub.get_message, timeout=0.0)
                if message is None:
                    break
                self._take(message)

    def __iter__(self) -> TickWatch:
        return self

    def __next__(self) -> Any:
        idle_since = self.clock()
        while not self._closed:
            frame = self.poll(self.block)
            if frame is not None:
                return frame
            if self.idle_timeout is not None and self.clock() - idle_since >= self.idle_timeout:
                break
        raise StopIteration

    def close(self) -> None:
        """Unsubscribe and give the connection back to the pool; iterating then stops."""
        if not self._closed:
            self._closed = True
            try:
                self._pubsub.close()
            except _REDIS_EXCEPTIONS:
                pass  # the connection is dropped either way

    def __enter__(self) -> TickWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch(symbol: str, *, conn: Connection | None = None, **options: Any) -> TickWatch:
    """A symbol's new ticks as they are written, one frame per wake-up; options as :class:`TickWatch`.

    The watch waits on a pub/sub subscription to the writers' notices (no polling) and reads the
    new ticks with the series' readers: every tick after ``start`` once, in (time, id) order, also
    when a notice is lost (the next one, or the reconnection, catches up).

    Examples
    --------
    >>> import redtick
    >>> with redtick.watch("DOCSWATCH", idle_timeout=1.0) as ticks:
    ...     _ = redtick.write_ticks([{"ts": 1_000, "price": 10.0, "volume": 1.0},
    ...                              {"ts": 2_000, "price": 10.5, "volume": 2.0}], "DOCSWATCH")
    ...     frame = next(ticks)
    >>> frame  # doctest: +NORMALIZE_WHITESPACE
                               price  volume
    ts
    1970-01-01 00:00:01+00:00   10.0     1.0
    1970-01-01 00:00:02+00:00   10.5     2.0
    >>> ticks.delivered, ticks.notices
    (2, 1)
    """
    return TickWatch(symbol, conn=conn, **options)
