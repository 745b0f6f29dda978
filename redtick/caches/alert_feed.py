"""Fired alerts delivered through Redis consumer groups: each to one consumer of a group, acknowledged when handled.

Every fired alert is appended to its symbol's stream in the transaction that fires it (see
:func:`redtick.caches.alerts.alert_check_args`), so nothing fired while no one listened is lost,
unlike pub/sub. A feed reads the streams of every symbol alerts were set on through one consumer
group: the group's consumers share the alerts, each delivered to one of them; several groups
each see every alert. An alert is acknowledged (``XACK``) once handled; one a consumer took and
never acknowledged (it died) is claimed by another after ``claim_idle`` seconds (``XAUTOCLAIM``),
and a consumer that restarts under its name first takes back what it held.

The logic is written once as plans (:mod:`redtick.steps`) that :class:`FiredAlertFeed` (async)
and :class:`FiredAlertFeedSync` drive.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Iterable
from typing import Any

from redtick import checks
from redtick.caches.alerts import FiredAlert
from redtick.connection import Connection, connect
from redtick.errors import InvalidData
from redtick.keys import validate_name, validate_symbol
from redtick.steps import Batch, Command, Plan, Script, run, run_async
from redtick.ticks import to_epoch_ms

__all__ = ["FiredAlertFeed", "FiredAlertFeedSync", "fired_alerts"]

_FIRST = "0-0"


def _start_id(start: Any) -> str:
    """The stream id a new group starts after: ``"$"`` (from now on), ``"0"`` (all kept) or a time."""
    if start in ("$", "0", 0):
        return str(start)
    if start is None:
        raise InvalidData("start=None: expected '$' (new alerts only), '0' (every alert kept) or a time")
    # Stream ids are the wall clock (ms) of the write that fired the alert: recorded_at.
    return f"{to_epoch_ms(start, name='start') - 1}-18446744073709551615"


def _seconds(value: Any, name: str) -> float:
    return checks.number(value, name, low=0, high=86_400, expected="seconds from 0 to 86400")


def _streams(reply: Any) -> list[tuple[str, list[Any]]]:
    """``(stream key, entries)`` of an XREADGROUP reply (RESP2 pairs or RESP3 map); empty when it timed out."""
    pairs = reply.items() if isinstance(reply, dict) else reply or []
    return [(key.decode() if isinstance(key, bytes) else key, entries) for key, entries in pairs]


class _Feed:
    """What a feed knows and the plans it runs; no I/O of its own."""

    def __init__(self, conn: Connection, group: str, consumer: str, *, symbols: Iterable[str] | None, start: Any,
                 count: int, block: float, claim_idle: float, clock: Callable[[], float]):
        self.keys = conn.keys
        self.cluster = conn.settings.topology == "cluster"
        self.group = validate_name(group, "group name")
        self.consumer = validate_name(consumer, "consumer name")
        self.fixed = None if symbols is None else sorted({validate_symbol(s) for s in symbols})
        self.start_id = _start_id(start)
        self.count = checks.whole(count, "count", low=1, high=10_000, expected="a whole number from 1 to 10000")
        # A blocked read holds its connection; it must end well inside the socket timeout.
        self.block_ms = int(min(_seconds(block, "block"), conn.settings.socket_timeout / 2) * 1000)
        self.claim_idle_ms = int(_seconds(claim_idle, "claim_idle") * 1000)
        self.clock = clock
        self.streams: dict[str, str] = {}  # symbol -> stream key, once joined
        self.own: dict[str, str] = {}  # symbol -> id after which its own pending entries are re-read
        self.claim_from: dict[str, str] = {}
        self.next_claim = 0.0
        self.buffer: collections.deque[FiredAlert] = collections.deque()
        self.gone: list[Command] = []  # XACKs of entries trimmed away while pending

    def _take(self, symbol: str, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> str | None:
        """Buffer the alerts among ``entries`` of ``symbol``'s stream; the last id seen."""
        last = None
        for entry_id, fields in entries:
            last = entry_id.decode()
            if fields is None or b"record" not in fields:
                self.gone.append(("XACK", self.streams[symbol], self.group, entry_id))
            else:
                self.buffer.append(FiredAlert.from_record(fields[b"record"], entry_id=last))
        return last

    def poll_plan(self, block_ms: int) -> Plan[None]:
        """Plan: fill the buffer from, in order, the consumer's own pending, claimable and new entries."""
        yield from self._join_plan()
        if self.gone:
            yield Batch(self.gone)
            self.gone = []
        if self.own:
            yield from self._own_plan()
        if not self.buffer and self.streams and self.clock() >= self.next_claim:
            yield from self._claim_plan()
        if not self.buffer and self.streams:
            yield from self._read_plan(block_ms)

    def _join_plan(self) -> Plan[None]:
        if self.fixed is None:
            (members,) = yield Batch([("SMEMBERS", self.keys.alert_stream_symbols())])
            symbols = sorted(m.decode() for m in members)
        else:
            symbols = self.fixed
        for symbol in symbols:
            if symbol not in self.streams:
                key = self.keys.alert_stream(symbol)
                yield Script("alert_group", [key], [self.group, self.start_id])
                self.streams[symbol] = key
                self.own[symbol] = _FIRST
                self.claim_from[symbol] = _FIRST

    def _own_plan(self) -> Plan[None]:
        """Re-read what this consumer was given and never acknowledged (it restarted)."""
        symbols = list(self.own)
        replies = yield Batch([("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.count,
                                "STREAMS", self.streams[s], self.own[s]) for s in symbols])
        for symbol, reply in zip(symbols, replies, strict=True):
            last = self._take(symbol, [entry for _, entries in _streams(reply) for entry in entries])
            if last is None:
                del self.own[symbol]
            else:
                self.own[symbol] = last

    def _claim_plan(self) -> Plan[None]:
        symbols = list(self.streams)
        replies = yield Batch([("XAUTOCLAIM", self.streams[s], self.group, self.consumer, self.claim_idle_ms,
                                self.claim_from[s], "COUNT", self.count) for s in symbols])
        swept = True
        for symbol, reply in zip(symbols, replies, strict=True):
            cursor, claimed = reply[0], reply[1]  # Redis 7 adds the ids it found deleted; 6.2 does not
            for entry_id in reply[2] if len(reply) > 2 else []:
                self.gone.append(("XACK", self.streams[symbol], self.group, entry_id))
            self._take(symbol, claimed)
            self.claim_from[symbol] = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            swept = swept and self.claim_from[symbol] == _FIRST
        if swept:  # every stream's pending list went through: look again after half the idle time
            self.next_claim = self.clock() + self.claim_idle_ms / 2000

    def _read_plan(self, block_ms: int) -> Plan[None]:
        keys = list(self.streams.values())
        if self.cluster:
            # One XREADGROUP cannot span slots; each stream is read on its own, without blocking.
            replies = yield Batch([("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.count,
                                    "STREAMS", key, ">") for key in keys])
        else:
            replies = yield Batch([("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.count,
                                    "BLOCK", block_ms, "STREAMS", *keys, *(">" for _ in keys))])
        symbol_of = {key: symbol for symbol, key in self.streams.items()}
        for reply in replies:
            for key, entries in _streams(reply):
                self._take(symbol_of[key], entries)

    def ack_command(self, alert: FiredAlert) -> Command:
        if not alert.entry_id:
            raise InvalidData(f"alert {alert.alert_id} was not delivered by a feed: there is nothing to acknowledge")
        return ("XACK", self.keys.alert_stream(alert.symbol), self.group, alert.entry_id)

    def wait_s(self, idle_since: float, idle_timeout: float | None) -> float | None:
        """Seconds to wait before the next poll; None when the feed has been idle past ``idle_timeout``."""
        if idle_timeout is not None and self.clock() - idle_since >= idle_timeout:
            return None
        if self.streams and not self.cluster:
            return 0.0  # the read itself blocked
        remaining = float("inf") if idle_timeout is None else idle_timeout - (self.clock() - idle_since)
        return max(0.0, min(self.block_ms / 1000, remaining))

    def block_for(self, idle_since: float, idle_timeout: float | None) -> int:
        if idle_timeout is None:
            return self.block_ms
        remaining_ms = int((idle_timeout - (self.clock() - idle_since)) * 1000)
        return max(1, min(self.block_ms, remaining_ms))


_OPTIONS_DOC = """
    Parameters
    ----------
    group : str
        The consumer group: every group sees every fired alert once.
    consumer : str
        This consumer's name in the group, stable across restarts (a restarted consumer first
        takes back the alerts it held).
    symbols : iterable of str, optional
        The symbols to follow; default every symbol alerts were ever set on, re-read as the feed
        runs.
    start : "$", "0" or a time
        Where a group that does not exist yet starts: ``"$"`` (default) at the alerts fired from
        now on, ``"0"`` at every alert the streams keep (``REDTICK_ALERT_STREAM_RETENTION``, 7
        days), or a time (str, datetime, epoch ms): the alerts recorded from then on. An existing
        group keeps its place.
    count : int
        Most entries read per stream and round trip.
    block : float
        Seconds a read waits for new alerts before looking for new symbols and idle claims.
    claim_idle : float
        Seconds an alert stays with a consumer that has not acknowledged it before another
        consumer of the group claims it. Longer than a handler may take.
    idle_timeout : float, optional
        Stop once no alert arrived for this many seconds; default: run until closed.
    auto_ack : bool
        Acknowledge an alert when the next one is asked for (the loop body returned); with
        False, call ``ack(alert)``. An alert whose handler raised is never acknowledged, so the
        group delivers it again (at least once).
"""


class _FeedFront:
    def __init__(self, conn: Connection | None, group: str, consumer: str, *, symbols: Iterable[str] | None = None,
                 start: Any = "$", count: int = 100, block: float = 1.0, claim_idle: float = 60.0,
                 idle_timeout: float | None = None, auto_ack: bool = True, clock: Callable[[], float] = time.monotonic):
        self.conn = conn or connect()
        self.feed = _Feed(self.conn, group, consumer, symbols=symbols, start=start, count=count, block=block,
                          claim_idle=claim_idle, clock=clock)
        self.idle_timeout = None if idle_timeout is None else _seconds(idle_timeout, "idle_timeout")
        self.auto_ack = auto_ack
        self.handed: FiredAlert | None = None
        self.idle_since = clock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(group={self.feed.group!r}, consumer={self.feed.consumer!r})"


class FiredAlertFeed(_FeedFront):
    __doc__ = """Fired alerts as an async iterator over a consumer group; from :meth:`PriceCache.fired_alerts`.
    """ + _OPTIONS_DOC + """
    Examples
    --------
    >>> import asyncio
    >>> from redtick import price_cache
    >>> async def notifier():
    ...     await price_cache.set_price_alert("u_feed", "FEEDUSD", 10.0, "above")
    ...     await price_cache.write_ticks([{"ts": "2013-09-01 22:00", "price": 10.5, "volume": 1.0}], "FEEDUSD")
    ...     feed = price_cache.fired_alerts("notifier", "worker-1", start="0", idle_timeout=0.2)
    ...     return [(a.user_id, a.price, a.fired_at) async for a in feed]
    >>> asyncio.run(notifier())
    [('u_feed', 10.5, 1378072800000)]
    """

    def __aiter__(self) -> FiredAlertFeed:
        return self

    async def __anext__(self) -> FiredAlert:
        if self.auto_ack and self.handed is not None:
            await self.ack(self.handed)
        self.handed = None
        feed, client = self.feed, self.conn.async_client()
        while not feed.buffer:
            await run_async(client, lambda: feed.poll_plan(feed.block_for(self.idle_since, self.idle_timeout)))
            if feed.buffer:
                break
            wait = feed.wait_s(self.idle_since, self.idle_timeout)
            if wait is None:
                self.idle_since = feed.clock()  # iterated again, it waits afresh
                raise StopAsyncIteration
            await asyncio.sleep(wait)
        self.idle_since = feed.clock()
        self.handed = feed.buffer.popleft()
        return self.handed

    async def ack(self, alert: FiredAlert) -> None:
        """Acknowledge ``alert``: the group never delivers it again."""
        await run_async(self.conn.async_client(), lambda: _one_step(Batch([self.feed.ack_command(alert)])))


class FiredAlertFeedSync(_FeedFront):
    __doc__ = """Fired alerts as an iterator over a consumer group; from :func:`redtick.fired_alerts`.
    """ + _OPTIONS_DOC + """
    Examples
    --------
    >>> import redtick
    >>> from redtick.caches.alerts import set_alerts
    >>> _ = set_alerts([{"user_id": "u_sync", "symbol": "SYNCUSD", "target_price": 5.0, "condition": "below"}])
    >>> _ = redtick.write_ticks([{"ts": "2013-09-02 08:00", "price": 4.75, "volume": 1.0}], "SYNCUSD")
    >>> [(a.condition, a.price) for a in redtick.fired_alerts("pager", "p1", symbols=["SYNCUSD"], start="0",
    ...                                                        idle_timeout=0.2)]
    [('below', 4.75)]
    """

    def __iter__(self) -> FiredAlertFeedSync:
        return self

    def __next__(self) -> FiredAlert:
        if self.auto_ack and self.handed is not None:
            self.ack(self.handed)
        self.handed = None
        feed, client = self.feed, self.conn.sync
        while not feed.buffer:
            run(client, lambda: feed.poll_plan(feed.block_for(self.idle_since, self.idle_timeout)))
            if feed.buffer:
                break
            wait = feed.wait_s(self.idle_since, self.idle_timeout)
            if wait is None:
                self.idle_since = feed.clock()  # iterated again, it waits afresh
                raise StopIteration
            time.sleep(wait)
        self.idle_since = feed.clock()
        self.handed = feed.buffer.popleft()
        return self.handed

    def ack(self, alert: FiredAlert) -> None:
        """Acknowledge ``alert``: the group never delivers it again."""
        run(self.conn.sync, lambda: _one_step(Batch([self.feed.ack_command(alert)])))


def _one_step(step: Batch) -> Plan[Any]:
    """Plan: one step, its reply the result."""
    return (yield step)


def fired_alerts(group: str, consumer: str, *, conn: Connection | None = None, **options: Any) -> FiredAlertFeedSync:
    """Fired alerts through a consumer group, as an iterator; the sync twin of :meth:`PriceCache.fired_alerts`.

    Options as :class:`FiredAlertFeedSync`. A notifier::

        for alert in redtick.fired_alerts("notifier", "worker-1"):
            send(alert.user_id, alert)   # acknowledged once this returns and the loop moves on
    """
    return FiredAlertFeedSync(conn, group, consumer, **options)
