"""``PriceAlerts``: above, below and crosses alerts indexed by target price, fired exactly once by a Lua script; its sync face."""

from __future__ import annotations

import collections
import dataclasses
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from redtick import checks, codec, scripts
from redtick.caches.base import CacheFront, check_ttl, commit_in_phases
from redtick.clock import now_ms
from redtick.config import Settings
from redtick.connection import Connection, blocking, connect
from redtick.errors import InvalidData
from redtick.keys import ALERT_CONDITIONS, KeySchema, validate_id, validate_symbol, validate_user_id

__all__ = [
    "ALERT_CHECK_SCRIPT",
    "FiredAlert",
    "PriceAlerts",
    "PricePath",
    "alert_check_args",
    "decode_fired",
    "delete_alert",
    "set_alerts",
]

ALERT_CHECK_SCRIPT = "alert_check"
"""Name of the package script :func:`alert_check_args` builds a call for (``redtick.scripts.bound``)."""

FIRED_LOG_MAX = 1000
"""Entries kept per user and symbol in the fired-alert log, newest first."""

_WRITE_BATCH = 10_000
_ALERT_ID_BYTES = 16  # 128 random bits: ids cannot be guessed to probe other users' alerts


def _check_condition(condition: Any) -> str:
    if condition not in ALERT_CONDITIONS:
        raise InvalidData(f"condition={condition!r}: expected one of {', '.join(ALERT_CONDITIONS)}")
    return str(condition)


def _text(reply: bytes | str) -> str:
    """A reply as text: the clients answer bytes, their type stubs allow str."""
    return reply.decode() if isinstance(reply, bytes) else reply


def _exact(price: float) -> str:
    """The shortest text that reads back as exactly ``price`` (Redis and Lua parse it with strtod)."""
    return repr(price)


@dataclasses.dataclass(frozen=True)
class FiredAlert:
    """One alert a check fired, as logged for its owner, streamed and published on the alert channel.

    ``price`` and ``fired_at`` are those of the tick that met the condition: the first tick of
    the batch whose price reached the target (for ``crosses``, coming from the side the price
    was on). A replay of 2013 ticks fires alerts at 2013 times. ``recorded_at`` is the wall
    clock of the write that fired it. Times are epoch milliseconds. ``entry_id`` is the stream
    entry the alert was delivered as by :meth:`PriceAlerts.fired_alerts`, else empty.
    """

    alert_id: str
    user_id: str
    symbol: str
    condition: str
    target_price: float
    price: float
    fired_at: int
    recorded_at: int
    created_at: int
    expires_at: int
    entry_id: str = ""

    @classmethod
    def from_record(cls, record: bytes | str, entry_id: str = "") -> FiredAlert:
        """The alert in one fired record (the JSON of the log, the stream and the channel)."""
        data = orjson.loads(record)
        alert = data["alert"]
        return cls(
            alert_id=alert["alert_id"],
            user_id=alert["user_id"],
            symbol=alert["symbol"],
            condition=alert["condition"],
            target_price=alert["target_price"],
            price=data["price"],
            fired_at=data["fired_at"],
            # Records written before recorded_at existed stamped fired_at with the wall clock.
            recorded_at=data.get("recorded_at", data["fired_at"]),
            created_at=alert["created_at"],
            expires_at=alert["expires_at"],
            entry_id=entry_id,
        )


@dataclasses.dataclass(frozen=True)
class PricePath:
    """The prices a check saw, reduced to what decides which tick fired each alert.

    ``up`` holds the ticks at which the running high rose (prices strictly increasing), ``down``
    those at which the running low fell (strictly decreasing), each as ``(price, epoch ms)``.
    The first point of ``up`` at or above an ``above`` alert's target is the tick that fired
    it; likewise ``down`` for ``below``. Their sizes are the number of new highs and lows, not
    of ticks: a few dozen for a day of ES ticks.

    Examples
    --------
    >>> path = PricePath.of_ticks(np.array([1, 2, 3, 4]), np.array([10.0, 9.0, 12.0, 11.0]))
    >>> path.up, path.down, path.low, path.high, path.last
    ([(10.0, 1), (12.0, 3)], [(10.0, 1), (9.0, 2)], 9.0, 12.0, 11.0)
    """

    up: list[tuple[float, int]]
    down: list[tuple[float, int]]
    last: float

    @property
    def low(self) -> float:
        return self.down[-1][0]

    @property
    def high(self) -> float:
        return self.up[-1][0]

    @classmethod
    def of_ticks(cls, ts: np.ndarray, prices: np.ndarray) -> PricePath:
        """The path of ticks in time order (``ts`` epoch ms, ``prices`` finite)."""
        if len(prices) == 0:
            raise InvalidData("a price path needs at least one tick")
        prices = np.asarray(prices, dtype=np.float64)
        if not np.isfinite(prices).all():
            raise InvalidData("prices must be finite numbers")
        rises = np.flatnonzero(np.r_[True, prices[1:] > np.maximum.accumulate(prices)[:-1]])
        falls = np.flatnonzero(np.r_[True, prices[1:] < np.minimum.accumulate(prices)[:-1]])

        def points(at: np.ndarray) -> list[tuple[float, int]]:
            return list(zip(prices[at].tolist(), np.asarray(ts)[at].astype(np.int64).tolist(), strict=True))

        return cls(points(rises), points(falls), float(prices[-1]))

    @classmethod
    def of_price(cls, price: float, at_ms: int) -> PricePath:
        """One price seen at ``at_ms``."""
        price = checks.number(price, "price")
        return cls([(price, int(at_ms))], [(price, int(at_ms))], price)

    @classmethod
    def of_range(cls, low: float, high: float, last: float, at_ms: int) -> PricePath:
        """Prices that ranged over ``[low, high]`` and ended at ``last``, all seen at ``at_ms``.

        Their order is unknown, so an alert met by the range reports its extreme: ``high`` for
        ``above``, ``low`` for ``below``.
        """
        low, high, last = checks.number(low, "low"), checks.number(high, "high"), checks.number(last, "last")
        if not low <= last <= high:
            raise InvalidData(f"low={low!r}, last={last!r}, high={high!r}: expected low <= last <= high")
        return cls([(high, int(at_ms))], [(low, int(at_ms))], last)

    def json(self) -> bytes:
        """The path as the alert script reads it: prices as exact text, times as integer text."""
        return orjson.dumps({
            side: [[_exact(price), str(ms)] for price, ms in steps] for side, steps in (("up", self.up), ("down", self.down))
        })


def alert_check_args(
    keys: KeySchema, symbol: str, path: PricePath, now_ms: int, *, settings: Settings, handoff: str = "file"
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ``alert_check`` script for a batch of prices of one symbol.

    The batch's prices, ``path``, ranged from ``path.low`` to ``path.high`` and ended at
    ``path.last``. The script, run once for the batch, atomically drops every alert whose
    expiry is at or before ``now_ms``, then fires and removes

    - every ``above`` alert with target <= ``high``;
    - every ``below`` alert with target >= ``low``;
    - every ``crosses`` alert whose target lies in ``[low, high]``, or strictly between the
      previous check's last price and that range (the price moved through it); with no
      previous check, only ``[low, high]`` counts;

    and for each, in the same atomic step: logs it to its owner's log, appends it to the
    symbol's stream (``keys.alert_stream``, trimmed to ``settings.alert_stream_retention_ms``),
    publishes it on ``keys.alert_channel()`` and, with ``handoff="file"``, keeps it for
    ``settings.alert_handoff_ms`` in the hand-off list of ``last`` for a
    :meth:`PriceAlerts.check_price_alerts` at that price to return. With ``handoff="take"`` the
    script first returns (and empties) that list. It stores ``last`` as the previous price of
    the next check. Each alert fires exactly once however many checkers run.

    Run it with ``redtick.scripts.bound(client, ALERT_CHECK_SCRIPT)(keys=keys, args=args)``,
    on a sync or async client or inside a transaction (one slot: every key carries the
    symbol's hash tag), and read the reply with :func:`decode_fired`.

    Parameters
    ----------
    keys : KeySchema
        The namespace's key builder (``conn.keys``).
    symbol : str
        The symbol the prices belong to.
    path : PricePath
        The batch's prices; its ticks' times become the fired alerts' ``fired_at``.
    now_ms : int
        Epoch milliseconds of the wall clock: expiry is judged and ``recorded_at`` stamped with
        it. Use the writer's clock (the one alerts were created with), not the ticks' event
        time, or a replay of old ticks would resurrect expired alerts.
    settings : Settings
        The stream retention and hand-off life.
    handoff : {"file", "take"}
        Whether fired alerts wait in the hand-off list (a write) or the list is taken (a check).

    Raises
    ------
    InvalidKey
        For a malformed symbol.

    Examples
    --------
    >>> path = PricePath.of_ticks(np.array([1_000, 2_000]), np.array([49_900.0, 50_100.5]))
    >>> keys, args = alert_check_args(KeySchema("redtick"), "BTCUSDT", path, 1_700_000_000_000, settings=Settings())
    >>> keys[6], keys[7]
    ('redtick:alerts:{BTCUSDT}:stream', 'redtick:alerts:{BTCUSDT}:handoff:50100.5')
    >>> args[:4]
    ['49900.0', '50100.5', '50100.5', 1700000000000]
    """
    if handoff not in ("file", "take"):
        raise InvalidData(f"handoff={handoff!r}: expected 'file' or 'take'")
    return [*_script_keys(keys, symbol), keys.alert_handoff(symbol, path.last)], [
        _exact(path.low),
        _exact(path.high),
        _exact(path.last),
        int(now_ms),
        keys.alert_log_prefix(symbol),
        keys.alert_channel(),
        FIRED_LOG_MAX,
        path.json(),
        int(now_ms) - settings.alert_stream_retention_ms,
        handoff,
        settings.alert_handoff_ms,
    ]


def _script_keys(keys: KeySchema, symbol: str) -> list[str]:
    return [
        *(keys.alert_index(symbol, c) for c in ALERT_CONDITIONS),
        keys.alert_expiry(symbol),
        keys.alert_data(symbol),
        keys.alert_last_price(symbol),
        keys.alert_stream(symbol),
    ]


def decode_fired(reply: Sequence[Any]) -> list[FiredAlert]:
    """The alerts in an ``alert_check`` reply (``[id, record, id, record, ...]``), in firing order.

    Examples
    --------
    >>> record = (b'{"alert":{"alert_id":"a1","user_id":"u1","symbol":"BTCUSDT","condition":"above",'
    ...           b'"target_price":55000.0,"created_at":1,"expires_at":9},"price":55500.0,"fired_at":5,"recorded_at":7}')
    >>> decode_fired([b"a1", record])[0].price
    55500.0
    """
    return [FiredAlert.from_record(record) for record in reply[1::2]]


class PriceAlerts(CacheFront):
    """Price alerts per symbol, indexed by target price, that fire exactly once.

    Each condition of a symbol has a sorted set of alert ids scored by target price, so a check
    reads only the alerts it fires (a range of each set). Firing, logging to the owner's log and
    publishing happen in one script (see :func:`alert_check_args`). The spec's ``price_cache``
    delegates its alert calls here. It writes only the alert keys of its layout, through these
    methods (no generic key-value API); the cache service counts and clears them.

    Parameters
    ----------
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    default_ttl : int
        Seconds an alert lives unless ``set_price_alert`` says otherwise (default 30 days).
    clock : callable, optional
        Seconds since the epoch (default: the wall clock, :func:`redtick.clock.now_ms`): stamps
        creation, expiry and checks.

    Examples
    --------
    >>> import asyncio
    >>> alerts = PriceAlerts()
    >>> async def demo():
    ...     alert_id = await alerts.set_price_alert("user_123", "DOCUSDT", 55_000.0, "above", ttl=86_400)
    ...     fired = await alerts.check_price_alerts("DOCUSDT", 55_500.0)
    ...     again = await alerts.check_price_alerts("DOCUSDT", 56_000.0)
    ...     return fired == [alert_id], again
    >>> asyncio.run(demo())
    (True, [])
    """

    def __init__(
        self,
        conn: Connection | None = None,
        default_ttl: int | None = 30 * 86_400,
        clock: Callable[[], float] | None = None,
    ):
        self._conn = conn
        self.default_ttl = None if default_ttl is None else check_ttl(default_ttl, name="default_ttl")
        self.clock = clock

    metrics_name = "alerts"

    def __repr__(self) -> str:
        return f"PriceAlerts(default_ttl={self.default_ttl})"

    async def set_price_alert(
        self, user_id: str, symbol: str, target_price: float, condition: str, ttl: int | None = None
    ) -> str:
        """Set an alert for ``user_id`` on ``symbol``; returns its id.

        ``condition`` is ``"above"`` (fires once the price is at or above the target),
        ``"below"`` (at or below) or ``"crosses"`` (the price reaches the target, coming from
        either side). The alert lives ``ttl`` seconds unless it fires or is deleted first.
        Bad input raises before anything is written.

        Examples
        --------
        >>> import asyncio
        >>> alert_id = asyncio.run(PriceAlerts().set_price_alert("user_123", "BTCUSDT", 55_000.0, "above"))
        >>> len(alert_id)
        22
        """
        alert = self._new_alert(user_id, symbol, target_price, condition, ttl, now_ms(self.clock))
        await self._write([alert])
        return str(alert["alert_id"])

    async def set_price_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> list[str]:
        """Set many alerts at once; returns their ids in order. All are checked before any is written.

        Each mapping holds ``user_id``, ``symbol``, ``target_price``, ``condition`` and
        optionally ``ttl``, as for :meth:`set_price_alert`. Writes go in batches of 10,000
        alerts, each batch one MULTI of a few variadic commands.

        Examples
        --------
        >>> import asyncio
        >>> specs = [{"user_id": "u1", "symbol": "BTCUSDT", "target_price": p, "condition": "above"}
        ...          for p in (60_000.0, 70_000.0)]
        >>> len(asyncio.run(PriceAlerts().set_price_alerts(specs)))
        2
        """
        now = now_ms(self.clock)
        new = [
            self._new_alert(a["user_id"], a["symbol"], a["target_price"], a["condition"], a.get("ttl"), now)
            for a in alerts
        ]
        for start in range(0, len(new), _WRITE_BATCH):
            await self._write(new[start : start + _WRITE_BATCH])
        return [a["alert_id"] for a in new]

    def _new_alert(
        self, user_id: Any, symbol: Any, target_price: Any, condition: Any, ttl: int | None, now: int
    ) -> dict[str, Any]:
        """A validated alert record with a fresh id; raises before anything is written."""
        seconds = self.default_ttl if ttl is None else check_ttl(ttl)
        if seconds is None:  # a PriceAlerts made with default_ttl=None, and an alert set without ttl
            raise InvalidData("ttl=None: expected the alert's lifetime in seconds (this PriceAlerts has no default_ttl)")
        return {
            "alert_id": secrets.token_urlsafe(_ALERT_ID_BYTES),
            "user_id": validate_user_id(user_id),
            "symbol": validate_symbol(symbol),
            "condition": _check_condition(condition),
            # Zero and negative prices are real (spreads, power, WTI in April 2020): any finite number.
            "target_price": checks.number(target_price, "target_price"),
            "created_at": now,
            "expires_at": now + seconds * 1000,
        }

    async def _write(self, alerts: list[dict[str, Any]]) -> None:
        await self._write_records(alerts)
        self.counters.write("alert", len(alerts))

    async def _write_records(self, alerts: list[dict[str, Any]]) -> None:
        keys = self.keys
        by_user: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        by_symbol: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for alert in alerts:
            by_user[alert["user_id"]].append(alert)
            by_symbol[alert["symbol"]].append(alert)
        # Users' records first, then the symbols' indexes. On one server both go into one MULTI;
        # on Redis Cluster (a user's keys and a symbol's keys are separate slots) each user and
        # each symbol is its own MULTI, and a failure between the phases leaves only records of
        # alerts that do not exist yet: get_user_alerts drops them, and no alert can fire that
        # its owner cannot list or delete.
        cluster = self.conn.settings.topology == "cluster"

        def user_records(user_id: str, mine: list[dict[str, Any]]) -> Callable[[Any], None]:
            def queue(pipe: Any) -> None:
                user_alerts = keys.user_alerts(user_id)
                latest = max(a["expires_at"] for a in mine)
                pipe.hset(user_alerts, mapping={a["alert_id"]: a["symbol"] for a in mine})
                # The record outlives no alert of it. redis-py refuses scripts in cluster pipelines,
                # and a cluster runs Redis 7; a single server may be 6.2 (the local store), whose
                # PEXPIREAT has no NX/GT, so there a script applies the same rule.
                if cluster:
                    pipe.pexpireat(user_alerts, latest, nx=True)
                    pipe.pexpireat(user_alerts, latest, gt=True)
                else:
                    pipe.eval(scripts.load("extend_expiry"), 1, user_alerts, latest)
                pipe.sadd(keys.user_alert_symbols(user_id), *{a["symbol"] for a in mine})
            return queue

        def symbol_indexes(symbol: str, theirs: list[dict[str, Any]]) -> Callable[[Any], None]:
            def queue(pipe: Any) -> None:
                pipe.hset(keys.alert_data(symbol), mapping={a["alert_id"]: codec.dumps(a) for a in theirs})
                pipe.zadd(keys.alert_expiry(symbol), {a["alert_id"]: a["expires_at"] for a in theirs})
                for condition in ALERT_CONDITIONS:
                    targets = {a["alert_id"]: a["target_price"] for a in theirs if a["condition"] == condition}
                    if targets:
                        pipe.zadd(keys.alert_index(symbol, condition), targets)
            return queue

        def stream_symbols(pipe: Any) -> None:
            pipe.sadd(keys.alert_stream_symbols(), *by_symbol)

        # The symbols go into the registry of streams first: a consumer of fired alerts learns
        # of a symbol's stream before any alert on it can fire.
        await commit_in_phases(self.conn, [
            [stream_symbols],
            [user_records(u, mine) for u, mine in by_user.items()],
            [symbol_indexes(s, theirs) for s, theirs in by_symbol.items()],
        ])

    async def get_user_alerts(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live alerts, oldest first; records of fired, deleted or expired ones are dropped.

        Examples
        --------
        >>> import asyncio
        >>> alerts = PriceAlerts()
        >>> async def demo():
        ...     await alerts.set_price_alert("user_456", "ETHUSDT", 3_000.0, "below")
        ...     return [(a["symbol"], a["condition"], a["target_price"]) for a in await alerts.get_user_alerts("user_456")]
        >>> asyncio.run(demo())
        [('ETHUSDT', 'below', 3000.0)]
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        keys = self.keys
        user_alerts = keys.user_alerts(user_id)
        records = {_text(k): _text(v) for k, v in (await self.redis.hgetall(user_alerts)).items()}
        if not records:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id, symbol in records.items():
                pipe.hget(keys.alert_data(symbol), alert_id)
            raws = await pipe.execute()
        now = now_ms(self.clock)
        live, stale = [], []
        for alert_id, raw in zip(records, raws, strict=True):
            alert = codec.loads(raw)
            if alert is None or alert["user_id"] != user_id:
                stale.append(alert_id)
            elif alert["expires_at"] > now:
                live.append(alert)
        if stale:
            await self.redis.hdel(user_alerts, *stale)
        self.counters.reads("alert", hits=len(live), misses=len(records) - len(live))
        return sorted(live, key=lambda a: (a["created_at"], a["alert_id"]))

    async def delete_price_alert(self, user_id: str, alert_id: str) -> bool:
        """Delete the user's alert; False if the user has no live alert with that id.

        Only the owner can delete an alert: another user's id is not found for them.

        Examples
        --------
        >>> import asyncio
        >>> alerts = PriceAlerts()
        >>> async def demo():
        ...     alert_id = await alerts.set_price_alert("user_789", "BTCUSDT", 40_000.0, "below")
        ...     theirs = await alerts.delete_price_alert("intruder", alert_id)
        ...     return theirs, await alerts.delete_price_alert("user_789", alert_id)
        >>> asyncio.run(demo())
        (False, True)
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        keys = self.keys
        user_alerts = keys.user_alerts(user_id)
        validate_id(alert_id, "alert id")
        symbol = await self.redis.hget(user_alerts, alert_id)
        if symbol is None:
            return False
        script = scripts.bound(self.redis, "alert_delete")
        deleted = await script(keys=_script_keys(keys, _text(symbol))[:5], args=[alert_id, user_id])
        await self.redis.hdel(user_alerts, alert_id)
        return bool(deleted == 1)

    async def check_price_range(self, symbol: str, low: float, high: float, last: float) -> list[FiredAlert]:
        """Fire the alerts met by prices that ranged over ``[low, high]`` and ended at ``last``, seen now.

        See :func:`alert_check_args` for exactly which alerts fire; with no order known, an
        alert reports the range's extreme as its price (see :meth:`PricePath.of_range`).

        Examples
        --------
        >>> import asyncio
        >>> alerts = PriceAlerts()
        >>> async def demo():
        ...     await alerts.set_price_alert("user_1", "SOLUSDT", 150.0, "crosses")
        ...     fired = await alerts.check_price_range("SOLUSDT", 148.0, 152.0, 149.5)
        ...     return [(f.condition, f.target_price, f.price) for f in fired]
        >>> asyncio.run(demo())
        [('crosses', 150.0, 152.0)]
        """
        now = now_ms(self.clock)
        return await self._check(symbol, PricePath.of_range(low, high, last, now), now, "file")

    async def _check(self, symbol: str, path: PricePath, now_ms: int, handoff: str) -> list[FiredAlert]:
        keys, args = alert_check_args(self.keys, symbol, path, now_ms, settings=self.conn.settings, handoff=handoff)
        reply = await scripts.bound(self.redis, ALERT_CHECK_SCRIPT)(keys=keys, args=args)
        return decode_fired(reply)

    async def check_price_alerts(self, symbol: str, price: float) -> list[str]:
        """The ids of the alerts ``price`` fired: by the latest write at this price, or by this check.

        The platform's flow works as written::

            await price_cache.set_current_price("BTCUSDT", 50_500.0)   # the write fires the alerts
            triggered = await price_cache.check_price_alerts("BTCUSDT", 50_500.0)

        The write fires the alerts its tick meets, in its own transaction (logged, streamed to
        :meth:`fired_alerts`, published), and keeps them for ``REDTICK_ALERT_HANDOFF`` (1 minute)
        under its last price. This check hands them over, to the first caller only, and then
        fires, as before, whatever else ``price`` meets (an alert set since, or a price never
        written). No alert fires twice and none is handed over twice. Called alone, it is a
        check of one price seen now.

        Examples
        --------
        >>> import asyncio
        >>> alerts = PriceAlerts()
        >>> async def demo():
        ...     alert_id = await alerts.set_price_alert("user", "TEST", 110.0, "above")
        ...     return alert_id in await alerts.check_price_alerts("TEST", 115.0)
        >>> asyncio.run(demo())
        True
        """
        now = now_ms(self.clock)
        return [fired.alert_id for fired in await self._check(symbol, PricePath.of_price(price, now), now, "take")]

    async def get_fired_alerts(self, user_id: str, limit: int = 100) -> list[FiredAlert]:
        """The user's fired alerts across symbols, most recently fired (``recorded_at``) first, at most ``limit``.

        Examples
        --------
        >>> import asyncio
        >>> alerts = PriceAlerts()
        >>> async def demo():
        ...     await alerts.set_price_alert("user_log", "XRPUSDT", 0.5, "below")
        ...     await alerts.check_price_alerts("XRPUSDT", 0.49)
        ...     return [(f.symbol, f.price) for f in await alerts.get_fired_alerts("user_log")]
        >>> asyncio.run(demo())
        [('XRPUSDT', 0.49)]
        """
        user_id = validate_user_id(user_id)  # an int id is its decimal string, as stored
        keys = self.keys
        limit = checks.whole(limit, "limit", low=1)
        symbols = sorted(_text(s) for s in await self.redis.smembers(keys.user_alert_symbols(user_id)))
        if not symbols:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for symbol in symbols:
                pipe.lrange(keys.alert_log(symbol, user_id), 0, limit - 1)
            logs = await pipe.execute()
        fired = [FiredAlert.from_record(record) for log in logs for record in log]
        fired.sort(key=lambda f: (f.recorded_at, f.fired_at, f.alert_id), reverse=True)
        return fired[:limit]

    async def cleanup_all_expired_alerts(self) -> int:
        """:meth:`cleanup_expired_alerts` for every symbol alerts were set on; returns how many alerts were dropped."""
        symbols = sorted(_text(s) for s in await self.redis.smembers(self.keys.alert_stream_symbols()))
        return sum([await self.cleanup_expired_alerts(symbol) for symbol in symbols])

    async def cleanup_expired_alerts(self, symbol: str) -> int:
        """Drop the symbol's expired alerts from its indexes without checking a price; returns how many.

        Checks drop expired alerts too; this serves symbols that go quiet. It also trims the
        symbol's stream of fired alerts to ``REDTICK_ALERT_STREAM_RETENTION``, which a quiet
        symbol's firing would otherwise do.
        """
        now = now_ms(self.clock)
        keys = [*_script_keys(self.keys, symbol), self.keys.alert_handoff(symbol, 0.0)]
        args = ["", "", "", now, "", "", FIRED_LOG_MAX, "", now - self.conn.settings.alert_stream_retention_ms, "", 0]
        return int(await scripts.bound(self.redis, ALERT_CHECK_SCRIPT)(keys=keys, args=args))


# -- the sync face: what notebooks, the demo and widgets write ---------------------------------------------
def set_alerts(alerts: Iterable[Mapping[str, Any]], *, conn: Connection | None = None) -> list[str]:
    """:meth:`PriceAlerts.set_price_alerts` from sync code (also inside Jupyter): the new alerts' ids, in order.

    Each mapping holds ``user_id``, ``symbol``, ``target_price``, ``condition`` and optionally
    ``ttl`` (seconds). All are checked before any is written.

    Examples
    --------
    >>> ids = set_alerts([{"user_id": "doc", "symbol": "DOCALRT", "target_price": 10.0, "condition": "above"}])
    >>> len(ids)
    1
    """
    conn = conn or connect()
    specs = list(alerts)
    return blocking(conn, lambda: PriceAlerts(conn).set_price_alerts(specs))


def delete_alert(user_id: str, alert_id: str, *, conn: Connection | None = None) -> bool:
    """:meth:`PriceAlerts.delete_price_alert` from sync code: False when the user has no live alert with that id.

    Examples
    --------
    >>> (alert_id,) = set_alerts([{"user_id": "doc", "symbol": "DOCDEL", "target_price": 5.0, "condition": "below"}])
    >>> delete_alert("doc", alert_id), delete_alert("doc", alert_id)
    (True, False)
    """
    conn = conn or connect()
    return blocking(conn, lambda: PriceAlerts(conn).delete_price_alert(user_id, alert_id))
