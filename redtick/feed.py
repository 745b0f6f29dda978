"""A symbol's new ticks as they are written: woken by the writer's pub/sub notice, read with the series' readers.

Every tick write publishes a :class:`~redtick.notices.TickNotice` on its symbol's channel from
inside the transaction that commits it (:mod:`redtick.writes`). :func:`watch` subscribes to that
channel and waits on the subscription's socket, so an idle watch costs no command at all; woken by
a notice, it reads the series after the last tick it delivered, by (time, id), with the same read
plans as :func:`redtick.load_ticks`, and hands the new ticks over as one frame.
:func:`watch_async` runs the same watch in a worker thread for asyncio code.

Notices are hints only: a watch never takes a tick from a notice. Pub/sub delivers at most once
(a dropped connection or an overflowing subscriber buffer loses messages), so:

- a lost notice only delays ticks, to the next notice, or to the re-subscription that follows a
  reconnection (which triggers a read of its own); it never loses one;
- a notice for ticks already delivered, or several notices read at once, deliver nothing twice;

and every tick after the watch's start is delivered exactly once, in (time, id) order. A watch
follows the head of the series: a tick written at or before the last tick delivered (a late
backfill) is not delivered; :func:`redtick.load_ticks` reads it. Such a *late write* is not
silent: the watch records its notice in ``late`` and logs a warning; to tell such a write from one it
read before taking its notice, it sends one PING on the subscription after each read that delivered
ticks (see :class:`TickWatch`). On Redis Cluster the watch listens on the node of the symbol's slot,
where the notice is published.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import redis

from redtick import checks
from redtick.catalog import layout_of
from redtick.clock import iso_ms
from redtick.connection import Connection, connect, translate_error
from redtick.errors import InvalidData, RedisTimeout
from redtick.keys import validate_symbol
from redtick.notices import TickNotice
from redtick.outputs import finish
from redtick.read_options import TICK_FIELDS, check_output, read_columns, time_bound
from redtick.reads import Columns
from redtick.series import SeriesLayout
from redtick.steps import Plan, run

__all__ = ["LATE_KEPT", "AsyncTickWatch", "TickWatch", "watch", "watch_async"]

LATE_KEPT = 1_000
"""How many late notices a watch keeps in ``late`` (the newest); ``late_count`` counts them all."""

log = logging.getLogger("redtick.feed")

_REDIS_EXCEPTIONS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)
_FENCE = "redtick-watch-fence-"  # the PING message that marks a read on the subscription
_READS_KEPT = 64  # reads whose PING has not come back; more only when PINGs fail (see _LateWrites)

# Where a watch stands: just after the tick (ts, id); (ts, None): before every tick of that
# millisecond; None: before the series' first tick.
_Position = tuple[int, int | None] | None


def _at_or_before(tick: tuple[int, int], position: _Position) -> bool:
    """Whether ``tick`` is at or before ``position``, in the series' (time, id) order."""
    if position is None:
        return False
    ts, id_ = position
    return tick[0] < ts if id_ is None else tick <= (ts, id_)


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
    def position(self) -> _Position:
        return None if self.ts is None else (self.ts, self.id)

    def at_newest_plan(self) -> Plan[None]:
        """Plan: stand after the series' newest tick (nowhere yet for a series with none)."""
        newest = yield from self.layout.newest_plan(self.symbol)
        if newest is None:
            return
        last = yield from self.layout.read_ticks_plan(self.symbol, newest, newest, ["id"])
        self.ts, self.id = newest, (int(last["id"][-1]) if len(last["id"]) else None)

    def read_plan(self) -> Plan[tuple[Columns, np.ndarray]]:
        """Plan: the ticks after the cursor, by column name, and their ids; the cursor moves past them."""
        got = yield from self.layout.read_ticks_plan(self.symbol, self.ts, None, ["ts", "id", *self.fields])
        ts, ids = got["ts"], got["id"]
        # The read is sorted by (ts, id) and starts at the cursor's millisecond: the ticks of that
        # millisecond delivered already are a prefix of it.
        first = 0 if self.ts is None or self.id is None else int(np.count_nonzero((ts == self.ts) & (ids <= self.id)))
        if first < len(ts):
            self.ts, self.id = int(ts[-1]), int(ids[-1])
        columns = Columns(ts[first:], {name: got[field][first:] for name, field in zip(self.columns, self.fields,
                                                                                       strict=True)})
        return columns, ids[first:]


@dataclasses.dataclass(frozen=True)
class _Read:
    """One read of a watch: the span ``(after, upto]`` it covered and the ticks it delivered there.

    ``ts`` and ``ids`` None: the ticks are not known (the read of "now" as the watch opens, which
    delivers none but passes every tick stored then).
    """

    after: _Position
    upto: _Position
    ts: np.ndarray | None
    ids: np.ndarray | None

    def spans(self, tick: tuple[int, int]) -> bool:
        return not _at_or_before(tick, self.after) and _at_or_before(tick, self.upto)

    def delivered(self, tick: tuple[int, int]) -> bool:
        """Whether the read delivered ``tick``; True when that is not known (such a tick is never called late)."""
        if self.ts is None or self.ids is None:
            return True
        # Sorted by (ts, id): the read's ticks of that millisecond, then the id among them.
        low, high = np.searchsorted(self.ts, tick[0], side="left"), np.searchsorted(self.ts, tick[0], side="right")
        return bool(np.any(self.ids[low:high] == tick[1]))


class _LateWrites:
    """Tells a write that landed behind a watch's cursor from one it read already, by their notices. No I/O.

    A notice is *late* when its first new tick was not delivered and never will be: it is at or before
    a tick the watch delivered. A notice of ticks the watch read before it took the notice (several
    writes committed between two reads, their notices taken after the second) is not late, though
    its first tick is behind the cursor by then. To tell the two apart the watch keeps each read's
    span and the (time, id) of the ticks it delivered until a PING, sent on the subscription after
    the read (as the next poll starts), comes back: Redis answers it after every notice published
    before the read, so every notice taken later is of a write that committed after the read, and
    one whose first tick is at or before the read's last is late. Until then a notice whose first tick falls in the
    read's span is late exactly when the read did not deliver that tick.

    Exact for every notice received, with two limits: a notice that is lost is not seen at all; and
    while more than ``_READS_KEPT`` reads wait for their PING (only when PINGs fail, as a connection
    drops), a notice behind the oldest of them is not called late (never a false alarm).
    """

    def __init__(self, settled: _Position, reads: list[_Read]):
        # Every notice taken from now on whose first tick is at or before `settled` is late.
        self.settled = settled
        self.reads: collections.OrderedDict[int, _Read] = collections.OrderedDict(enumerate(reads))
        self.next_number = len(reads)

    def read(self, done: _Read) -> int:
        """Keep ``done``'s span and ticks; the number of the PING that settles it."""
        number, self.next_number = self.next_number, self.next_number + 1
        self.reads[number] = done
        while len(self.reads) > _READS_KEPT:
            self.reads.popitem(last=False)
        return number

    def fenced(self, number: int) -> None:
        """PING ``number`` came back: every notice of a write its read saw (or an earlier one saw) has been taken."""
        if number not in self.reads:  # an older PING's answer, after a later one settled its read
            return
        self.settled = self.reads[number].upto
        while self.reads and next(iter(self.reads)) <= number:
            self.reads.popitem(last=False)

    def is_late(self, first: tuple[int, int]) -> bool:
        if _at_or_before(first, self.settled):
            return True
        for done in self.reads.values():
            if done.spans(first):
                return not done.delivered(first)
        return False


def _fence_number(data: Any) -> int | None:
    """The number of one of our PINGs in a pong's ``data``; None for any other pong."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
    return int(text[len(_FENCE):]) if text.startswith(_FENCE) and text[len(_FENCE):].isdigit() else None


def _seconds(value: Any, name: str) -> float:
    return checks.number(value, name, low=0, high=86_400, expected="seconds from 0 to 86400")


class _Options(NamedTuple):
    """A watch's options, checked."""

    symbol: str
    wanted: list[str]
    output: str
    start_ms: int | None
    now: bool
    block: float
    idle_timeout: float | None


def _checked(symbol: str, start: Any, columns: list[str] | None, tz: Any, output: str, block: float,
             idle_timeout: float | None) -> _Options:
    """A watch's options, or the typed error of the first wrong one; no I/O."""
    checked_symbol = validate_symbol(symbol)
    wanted = read_columns(columns, "ticks")
    checked_output = check_output(output)
    now = isinstance(start, str) and start == "now"
    start_ms = None if now or start is None else time_bound(start, "start", tz=tz)
    return _Options(checked_symbol, wanted, checked_output, start_ms, now, _seconds(block, "block"),
                    None if idle_timeout is None else _seconds(idle_timeout, "idle_timeout"))


def _closed_error(symbol: str, opener: str) -> InvalidData:
    return InvalidData(f"the watch of {symbol} is closed; open another with redtick.{opener}()")


class TickWatch:
    """A symbol's new ticks, frame by frame, as other processes write them; from :func:`watch`.

    Iterating blocks until new ticks are stored and yields them as one frame (never an empty one);
    :meth:`poll` waits at most a given time. Close it (or use it in a ``with`` block) to give its
    connection back.

    A write whose first new tick is at or before a tick the watch delivered (a backfill, a feed
    resending an hour) is a *late write*: the watch delivers the write's ticks after its cursor, as
    any others, and cannot deliver those behind it, so it records the write's notice in ``late`` and
    logs one WARNING (logger ``redtick.feed``) naming the symbol, the count, the time range and the
    :func:`redtick.load_ticks` call that reads them. A write the watch read before it took the
    write's notice (several writes between two polls) is never called late: the watch remembers
    each read's ticks until a PING it sends on the subscription after the read comes back, which
    proves every notice of the writes that read saw has arrived. A lost notice is not seen, so its
    late write is not reported; nor is one that lands behind "now" while the watch opens, before
    that PING returns. A write behind ``start`` is late as well.

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
        Seconds one wait on the subscription lasts before the iterator checks ``idle_timeout`` (and
        an :class:`AsyncTickWatch` checks whether it was closed).
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
    late : list of TickNotice
        The notices of late writes, oldest first; the latest ``LATE_KEPT`` (1,000).
    late_count : int
        Late writes seen since the watch opened.
    """

    def __init__(self, symbol: str, *, conn: Connection | None = None, start: Any = "now",
                 columns: list[str] | None = None, tz: Any = None, output: str = "pandas", block: float = 1.0,
                 idle_timeout: float | None = None, clock: Callable[[], float] = time.monotonic):
        options = _checked(symbol, start, columns, tz, output, block, idle_timeout)
        self.symbol, self.wanted, self.output, self.tz = options.symbol, options.wanted, options.output, tz
        self.block, self.idle_timeout, self.clock = options.block, options.idle_timeout, clock
        self.conn = conn or connect()
        self.delivered = self.notices = self.late_count = 0
        self.last: TickNotice | None = None
        self.late: list[TickNotice] = []
        self._cursor = _Cursor(layout_of(self.conn), self.symbol, self.wanted)
        self._cursor.ts = options.start_ms
        self._late = _LateWrites(self._cursor.position, [])
        self._stale = not options.now  # a backlog to read first
        self._fence_due: int | None = None  # the PING of the last read, sent as the next poll starts
        self._closed = False
        self._pubsub = self.conn.sync.pubsub()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        try:
            self._subscribe()
            if options.now:
                run(self.conn.sync, self._cursor.at_newest_plan)
                # Writes that committed before that read passed with it, unread and not late.
                self._late = _LateWrites(None, [_Read(None, self._cursor.position, None, None)])
                self._fence(0)
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

    def _fence(self, number: int) -> None:
        """Send PING ``number`` on the subscription; its answer comes after every notice published before now."""
        # A PING that fails leaves its read unsettled (its span is judged by the ticks it delivered). The
        # subscription's next wait meets the broken connection, and reconnects.
        with contextlib.suppress(*_REDIS_EXCEPTIONS):
            self._pubsub.ping(f"{_FENCE}{number}")

    def _take(self, message: dict[str, Any] | None) -> None:
        """Note one message of the subscription: a notice, or a (re-)subscription, calls for a read."""
        if message is None:
            return
        if message["type"] == "message":
            self.notices += 1
            self._stale = True
            try:
                notice = TickNotice.decode(message["data"])
            except InvalidData:  # not ours to judge: a hint all the same
                return
            self.last = notice
            if self._late.is_late(notice.first):
                self._record_late(notice)
        elif message["type"] == "subscribe":  # a reconnection re-subscribed: notices may have been lost
            self._stale = True
        elif message["type"] == "pong" and (number := _fence_number(message["data"])) is not None:
            self._late.fenced(number)

    def _take_waiting(self) -> None:
        """Take the messages waiting on the subscription, without waiting, while they call for a read."""
        while self._stale:
            message = self._call(self._pubsub.get_message, timeout=0.0)
            if message is None:
                return
            self._take(message)

    def _record_late(self, notice: TickNotice) -> None:
        self.late.append(notice)
        del self.late[:-LATE_KEPT]
        self.late_count += 1
        first, last = iso_ms(notice.first[0]), iso_ms(notice.last[0])
        log.warning("late write to %s: %d new ticks from %s to %s, the first behind where this watch stands (the "
                    "last tick it delivered, or its start); it delivers only those after that. "
                    "redtick.load_ticks(%r, start=%r, end=%r) reads them all",
                    self.symbol, notice.count, first, last, self.symbol, first, last)

    def _read(self) -> Any | None:
        """Read the ticks after the cursor: their frame, or None when there are none."""
        self._stale = False
        after = self._cursor.position
        got, ids = run(self.conn.sync, self._cursor.read_plan)
        if not len(got):
            return None
        # Its PING goes out as the next poll starts, not between the write and the frame; later is as good.
        self._fence_due = self._late.read(_Read(after, self._cursor.position, got.ts, ids))
        self.delivered += len(got)
        return finish([got], [self.symbol], False, self.wanted, tz=self.tz, output=self.output)

    def poll(self, timeout: float) -> Any | None:
        """The ticks stored since the last frame, waiting up to ``timeout`` seconds for some; None if none came.

        Every message waiting on the subscription is taken before the read, so a burst of writes
        costs one read. A ``timeout`` of 0 takes what is waiting and does not wait.
        """
        if self._closed:
            raise _closed_error(self.symbol, "watch")
        deadline = self.clock() + _seconds(timeout, "timeout")
        if self._fence_due is not None:
            self._fence(self._fence_due)
            self._fence_due = None
        while True:
            if self._stale and (frame := self._read()) is not None:
                return frame
            remaining = deadline - self.clock()
            message = self._call(self._pubsub.get_message, timeout=max(remaining, 0.0))
            self._take(message)
            self._take_waiting()
            if message is None and remaining <= 0:
                return None

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
    when a notice is lost (the next one, or the reconnection, catches up). A write behind the last
    tick delivered is recorded in ``late`` and logged, not delivered. :func:`watch_async` is the
    asyncio form.

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
    >>> ticks.delivered, ticks.notices, ticks.late_count
    (2, 1, 0)
    """
    return TickWatch(symbol, conn=conn, **options)


class AsyncTickWatch:
    """A :class:`TickWatch` for asyncio code: ``async with``, ``async for`` and ``await poll()``; from :func:`watch_async`.

    The sync watch does the work in a worker thread (:func:`asyncio.to_thread`), one call at a
    time, so the event loop never waits on Redis, and it works on Redis Cluster too, whose asyncio
    client has no pub/sub. Options, attributes and late writes are the sync watch's.

    **Checking and opening.** The options are checked when the watch is made: a wrong one raises the
    sync watch's typed error before anything connects. The watch opens (connects, subscribes and,
    for ``start="now"``, takes the series' newest tick) in its thread when ``async with`` enters, on
    ``await ticks.open()``, or else on the first poll; ``"now"`` is then.

    **Waiting.** One call in the thread waits at most ``block`` seconds (with ``block=0``, the whole
    ``timeout``); :meth:`poll` makes as many as its ``timeout`` needs.

    **Cancellation.** Cancelling the task that awaits :meth:`poll` (or ``async for``, or opening)
    raises :class:`asyncio.CancelledError` in it at once, and the watch stays usable: the call in
    the thread runs on, at most ``block`` seconds; the next call waits for it to end before it
    starts (never two threads on one subscription), and a frame it read is what the next
    :meth:`poll` returns, so no tick is lost. :meth:`aclose` waits for that call likewise, then
    closes; if ``aclose`` is cancelled in turn, the watch closes as soon as that call ends.

    Parameters
    ----------
    symbol, conn, start, columns, tz, output, block, idle_timeout
        As :class:`TickWatch`.

    Attributes
    ----------
    delivered, notices, last, late, late_count
        As :class:`TickWatch` (0, None or empty until the watch opens).
    """

    def __init__(self, symbol: str, *, conn: Connection | None = None, start: Any = "now",
                 columns: list[str] | None = None, tz: Any = None, output: str = "pandas", block: float = 1.0,
                 idle_timeout: float | None = None, clock: Callable[[], float] = time.monotonic):
        options = _checked(symbol, start, columns, tz, output, block, idle_timeout)
        self.symbol, self.block, self.idle_timeout, self.clock = (options.symbol, options.block,
                                                                  options.idle_timeout, clock)
        self._make_watch = functools.partial(TickWatch, options.symbol, conn=conn, start=start, columns=columns,
                                             tz=tz, output=output, block=block, idle_timeout=idle_timeout, clock=clock)
        self._watch: TickWatch | None = None
        self._frames: collections.deque[Any] = collections.deque()  # read by a call whose caller was cancelled
        self._call: asyncio.Future[object] | None = None  # the call in the worker thread, while one runs
        self._turn = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._watch is not None else "not opened"
        return f"AsyncTickWatch({self.symbol!r}, {state}, delivered={self.delivered})"

    # -- the sync watch's state ------------------------------------------------------------------------
    @property
    def delivered(self) -> int:
        return 0 if self._watch is None else self._watch.delivered

    @property
    def notices(self) -> int:
        return 0 if self._watch is None else self._watch.notices

    @property
    def last(self) -> TickNotice | None:
        return None if self._watch is None else self._watch.last

    @property
    def late(self) -> list[TickNotice]:
        return [] if self._watch is None else list(self._watch.late)

    @property
    def late_count(self) -> int:
        return 0 if self._watch is None else self._watch.late_count

    # -- in the worker thread ------------------------------------------------------------------------
    def _opened(self) -> TickWatch:
        if self._watch is None:
            self._watch = self._make_watch()
        return self._watch

    def _poll_in_thread(self, timeout: float) -> None:
        if self._frames:  # the call of a cancelled caller, which this one waited for, read them
            return
        frame = self._opened().poll(timeout)
        if frame is not None:  # kept here, not returned: a cancelled caller must not take it with it
            self._frames.append(frame)

    async def _in_thread(self, function: Callable[..., object], *args: Any) -> None:
        """Run ``function(*args)`` in the worker thread, after the call a cancelled caller left running."""
        async with self._turn:
            await self._previous_call()
            if self._closed:
                raise _closed_error(self.symbol, "watch_async")
            call = self._call = asyncio.ensure_future(asyncio.to_thread(function, *args))
            try:
                await asyncio.shield(call)  # cancelled: the call runs on, and the next one waits for it
            finally:
                if call.done():
                    self._call = None

    async def _previous_call(self) -> None:
        """Wait for the call a cancelled caller left running; a frame it read waits in ``_frames``."""
        call = self._call
        if call is None:
            return
        with contextlib.suppress(Exception):  # its caller is gone; the next call meets a lasting fault again
            await asyncio.shield(call)
        self._call = None

    # -- the public face -----------------------------------------------------------------------------
    async def open(self) -> AsyncTickWatch:
        """Open the watch now, in its thread (subscribe and, for ``start="now"``, take the newest tick); itself."""
        await self._in_thread(self._opened)
        return self

    async def poll(self, timeout: float) -> Any | None:
        """The ticks stored since the last frame, waiting up to ``timeout`` seconds for some; None if none came.

        The event loop runs on meanwhile: the watch waits in its worker thread, ``block`` seconds
        at a time.
        """
        deadline = self.clock() + _seconds(timeout, "timeout")
        while True:
            if self._closed:
                raise _closed_error(self.symbol, "watch_async")
            if self._frames:
                return self._frames.popleft()
            remaining = max(deadline - self.clock(), 0.0)
            await self._in_thread(self._poll_in_thread, min(remaining, self.block) if self.block else remaining)
            if self._frames:
                return self._frames.popleft()
            if remaining <= 0:
                return None

    def __aiter__(self) -> AsyncTickWatch:
        return self

    async def __anext__(self) -> Any:
        idle_since = self.clock()
        while not self._closed:
            try:
                frame = await self.poll(self.block)
            except InvalidData:
                if self._closed:  # closed by another task while this one waited for its turn
                    break
                raise
            if frame is not None:
                return frame
            if self.idle_timeout is not None and self.clock() - idle_since >= self.idle_timeout:
                break
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Close the watch once its thread's call has ended (at most ``block`` seconds); iterating then stops."""
        self._closed = True
        call = self._call
        if call is not None and not call.done():
            call.add_done_callback(lambda _: self._close_watch())  # also if this wait is cancelled
            with contextlib.suppress(Exception):
                await asyncio.shield(call)
        self._close_watch()

    def _close_watch(self) -> None:
        """Close the sync watch; no call runs in the thread by now. A socket's close: no round trip to wait for."""
        self._frames.clear()
        if self._watch is not None:
            self._watch.close()

    async def __aenter__(self) -> AsyncTickWatch:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def watch_async(symbol: str, *, conn: Connection | None = None, **options: Any) -> AsyncTickWatch:
    """A symbol's new ticks as they are written, for asyncio code; options as :class:`TickWatch`.

    The :func:`watch` of :class:`AsyncTickWatch`: the same watch, run in a worker thread, so a
    FastAPI websocket handler can ``async for`` over it. The options are checked here; the watch
    opens when ``async with`` enters (or on ``await ticks.open()``, or the first poll).

    Examples
    --------
    >>> import asyncio, redtick
    >>> async def follow():
    ...     async with redtick.watch_async("DOCSASYNC", idle_timeout=1.0) as ticks:
    ...         await asyncio.to_thread(redtick.write_ticks, [{"ts": 1_000, "price": 10.0, "volume": 1.0}],
    ...                                 "DOCSASYNC")
    ...         async for frame in ticks:
    ...             return frame, ticks.delivered
    >>> asyncio.run(follow())  # doctest: +NORMALIZE_WHITESPACE
    (                           price  volume
    ts
    1970-01-01 00:00:01+00:00   10.0     1.0, 1)
    """
    return AsyncTickWatch(symbol, conn=conn, **options)
