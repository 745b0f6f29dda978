"""``redtick migrate``: read the platform's previous Redis cache layout and write it into redtick's.

The previous layer (``docs`` of the platform, the "Redis Caching Implementation") names its keys
by prefix only: ``market:price:BTCUSDT``, ``session:user:123:abc-def``, ``price:series:BTCUSDT``.
Its ``BaseCache`` builds ``<prefix>:<key>`` with the prefixes ``market`` (``market_data_cache``),
``session`` (``user_session_cache``) and ``price`` (``price_cache``), and stores JSON through
``redis_client.get_json``. What a doc-following implementation writes, and what this module
therefore reads, is defined here exactly; anything else is reported, never guessed.

======================================  ======  ===========================================================
key                                     type    value
======================================  ======  ===========================================================
``market:price:{SYMBOL}``               string  JSON ``{"symbol", "price", "timestamp", ...}`` (``volume``,
                                                ``change_24h``... kept as given); a hash of the same fields
                                                is read too. TTL 10-30 s.
``price:series:{SYMBOL}``               zset    one member per tick: score = the tick's time in epoch
                                                seconds (``datetime.timestamp()``) or milliseconds, told
                                                apart per member by magnitude; member = JSON
                                                ``{"price", "volume", "timestamp"?}`` (a member's own
                                                ``timestamp`` is not read: the score is the time the old
                                                reader ranged over).
``price:ohlcv:{SYMBOL}:{interval}``     string  JSON list of candles, as ``set_ohlcv_data`` is handed them:
(also ``ohlcv:{SYMBOL}:{interval}``)            ``{"open", "high", "low", "close", "volume"}`` plus the bucket
                                                start in ``timestamp``, ``ts``, ``time`` or ``open_time``
                                                (ISO 8601, naive = UTC, or epoch s/ms); optional ``vwap``
                                                and ``count``.
(the same key)                          zset    score = bucket start (epoch s or ms), member = JSON candle.
``session:user:{user_id}:{session_id}`` string  JSON ``{"session_id", "user_id", "data", "created_at",
                                                "last_activity"}``. TTL 1 h. Not migrated (see below).
``session:preferences:{user_id}``       string  JSON, any value (``set_user_preferences``).
``price:alert:{alert_id}``              string  JSON ``{"alert_id" (or "id"), "user_id", "symbol",
(also ``alert:{alert_id}``)                     "target_price", "condition", "created_at"?, "expires_at"?,
                                                "is_active"?, "triggered"?}``; TTL = the alert's lifetime.
``price:alerts:{SYMBOL}``               set     alert ids (an index: the records carry the data); as a
(also ``price_alerts:{SYMBOL}``)                hash (field = alert id) or list, its values are alert records.
``price:user_alerts:{user_id}``         set     alert ids (an index; not read).
======================================  ======  ===========================================================

Order books, trades, 24h statistics and symbol info (``market:<kind>:*``), websocket
subscriptions, rate-limit windows and the session index are counted as not migrated, with why:
each is refilled by the feed or the clients within its TTL of seconds to minutes.

What each kind becomes, through redtick's own public writers, so it lands exactly as redtick's
own data:

- **prices** -> :meth:`MarketDataCache.set_symbol_price` with the key's remaining TTL: the old key
  *is* ``market_data_cache``'s value, and callers of ``get_symbol_price`` read the same dict.
  Not a tick: its ``volume`` is the 24 h volume, and merging it into candles would invent a trade.
- **series** -> :func:`redtick.write_ticks`; each tick's trade id is the score's microseconds
  within its millisecond, then 53 bits of the member's BLAKE2b, so ticks of one millisecond keep
  their order and a second run is recognised, tick by tick, as duplicates.
- **ohlcv** -> :func:`redtick.write_candles`, only for buckets redtick holds no candle of; a
  bucket redtick already holds (as built from migrated ticks) is *already there* when equal and
  otherwise kept as redtick's and reported as skipped. Candles without a time (the platform doc's
  own example has none) are unreadable: redtick stores a candle at its bucket start.
- **preferences** -> :meth:`UserSessionCache.set_user_preferences` unless redtick already holds
  preferences for the user.
- **sessions** are skipped: a session id is a bearer token the clients hold, and redtick issues
  its own (192 random bits). A session re-created under a new id is one no client holds, so it
  would keep nobody logged in and only show up as a stray in the user's session list; users log
  in once more (sessions live an hour). Keeping the old ids would need a session writer that
  takes an id, which redtick deliberately does not have.
- **alerts** -> :meth:`PriceAlerts.set_price_alerts`, with the remaining TTL (else the record's
  ``expires_at``, else redtick's default); triggered, deactivated and expired alerts are skipped.
  An old alert counts as already there when the user holds a live redtick alert with the same
  symbol, condition and target (as many as the old layer has of them). Alerts are written last,
  after the series, so migrated history never fires them; migrating alerts *before* series (two
  runs with ``--kinds``) would. A rerun after redtick fired or its owner deleted a migrated alert
  brings it back while the old record is still active: stop the old writers before the last run.

The source is one server (``redis://``, ``rediss://``, ``unix://``) read with SCAN, never KEYS,
and pipelined TYPE and reads in batches. For a source cluster, run migrate once per master: their
keys are disjoint. Nothing is written to the source. Run it with the old writers stopped, or run
it again after they stop: every kind is idempotent, so a rerun writes only what is new.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import hashlib
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import numpy as np
import orjson
import pandas as pd
import redis

from redtick import checks
from redtick.bars import candles_from_frame
from redtick.caches.alerts import PriceAlerts
from redtick.caches.market import MarketDataCache
from redtick.caches.sessions import UserSessionCache
from redtick.clock import now_ms
from redtick.config import Settings
from redtick.connection import Connection, blocking, connect, translate_error
from redtick.errors import ConfigurationError, CredentialsRefused, InvalidData, InvalidKey, RedisError, Unavailable
from redtick.frames import load_ohlcv, load_ticks, write_candles, write_ticks
from redtick.keys import ALERT_CONDITIONS, validate_symbol, validate_user_id
from redtick.read_options import CANDLE_COLUMNS
from redtick.ticks import normalise_ticks, screen_rows

__all__ = [
    "KINDS",
    "KindCounts",
    "MigrationReport",
    "OldKey",
    "candles_from_list",
    "candles_from_zset",
    "check_kinds",
    "classify_key",
    "epoch_us",
    "format_report",
    "member_ids",
    "migrate",
    "parse_alert",
    "parse_price",
    "scan_old_layout",
    "series_ticks",
    "times_us",
    "unmigrated_alerts",
]

log = logging.getLogger("redtick")
T = TypeVar("T")

KINDS = ("prices", "series", "ohlcv", "preferences", "sessions", "alerts")
"""What migrate can move, in the order it moves them (alerts last: see the module docstring)."""

BATCH = 1000  # keys per SCAN step and per pipelined round trip
PAGE = 50_000  # sorted-set members per read and write of a tick series
SAMPLE_LIMIT = 20  # unreadable (kind, key, reason) examples kept in a report
SAMPLES_PER_REASON = 3
REASONS_LIMIT = 100  # distinct reasons kept per kind and column; the rest are lumped together
OTHER_REASONS = "other reasons (more than 100 distinct ones)"
SESSIONS_SKIPPED = ("sessions are re-issued at next login: a session id is a bearer token the clients hold, "
                    "and one re-created under a redtick id would be held by no client")
CANDLE_KEPT = "redtick already holds a different candle for this bucket (such as one built from migrated ticks); kept it"
PRICE_KEPT = "redtick already holds a price as new or newer; kept it"
PREFERENCES_KEPT = "redtick already holds other preferences for this user (set since the switch); kept them"
INACTIVE_ALERT = "alert already triggered or deactivated in the old layer"
EXPIRED_ALERT = "alert expired"
RETENTION_REFUSED = "refused by redtick's configured retention (older than the window behind the newest tick)"

# The previous layer's key names. They are foreign keys: redtick never writes them, and keys.py
# builds only redtick's own layout, so they are recognised here, in the one module that reads them.
# (kind, role, pattern); the first that matches the whole key wins.
_OLD_KEYS = (
    ("prices", "price", re.compile(r"market:price:(?P<symbol>.+)")),
    ("series", "ticks", re.compile(r"price:series:(?P<symbol>.+)")),
    ("ohlcv", "candles", re.compile(r"(?:price:)?ohlcv:(?P<symbol>.+):(?P<interval>[^:]+)")),
    ("preferences", "preferences", re.compile(r"session:preferences:(?P<user>.+)")),
    ("sessions", "session", re.compile(r"session:user:(?P<user>.+):(?P<session>[^:]+)")),
    ("alerts", "record", re.compile(r"(?:price:)?alert:(?P<alert>.+)")),
    ("alerts", "symbol_index", re.compile(r"(?:price:alerts|price_alerts):(?P<symbol>.+)")),
    ("alerts", "user_index", re.compile(r"price:user_alerts:(?P<user>.+)")),
)
_NOT_MIGRATED = (
    (re.compile(r"market:(?:orderbook|trades|stats24h|stats|info):.+"),
     "order books, trades, 24h stats and symbol info: refilled by the feed within their TTL"),
    (re.compile(r"session:(?:subscriptions?|websocket):.+"), "websocket subscriptions: re-sent when clients reconnect"),
    (re.compile(r"session:(?:rate_limit|ratelimit):.+"), "rate-limit windows: a minute long, they restart empty"),
    (re.compile(r"session:user_sessions:.+"), "index of sessions (sessions are re-issued at next login)"),
)
_ROLE_TYPES = {
    "price": ("string", "hash"), "ticks": ("zset",), "candles": ("string", "zset"), "preferences": ("string",),
    "session": ("string", "hash"), "record": ("string", "hash"), "symbol_index": ("set", "zset", "hash", "list"),
    "user_index": ("set", "zset"),
}
_TYPE_NAMES = {"string": "a string", "hash": "a hash", "zset": "a sorted set", "set": "a set", "list": "a list",
               "stream": "a stream"}
_TIME_FIELDS = ("timestamp", "ts", "time", "open_time")
# 1990-01-01 and 2200-01-01 in epoch seconds: the band redtick.ticks tells units apart by. The
# millisecond band is 1000 times higher, so the two never overlap and a number names its unit.
_FIRST_S, _END_S = 631_152_000, 7_258_118_400
_ID_BITS = 53  # trade id = microseconds within the ms (0-999, 10 bits) << 53 | 53 bits of the member's hash
_BAD_JSON = object()


# -- the report --------------------------------------------------------------------------------------
def _count(reasons: dict[str, int], reason: str, n: int) -> None:
    if reason not in reasons and len(reasons) >= REASONS_LIMIT:
        reason = OTHER_REASONS
    reasons[reason] = reasons.get(reason, 0) + n


@dataclasses.dataclass
class KindCounts:
    """What migrate found of one kind and what became of it: ``found = written + already + skipped + unreadable``.

    ``found`` counts records (a price, a tick, a candle, a user's preferences, a session, an
    alert); a key whose value cannot be read at all counts as one. In a dry run ``written`` is
    what a write would write (a configured retention, off by default, is applied only by a write).
    ``skipped`` and ``unreadable`` map each reason to its count.
    """

    keys: int = 0
    found: int = 0
    written: int = 0
    already: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    unreadable: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def unreadable_total(self) -> int:
        return sum(self.unreadable.values())


@dataclasses.dataclass(frozen=True)
class OldKey:
    """A key of the previous layout: its raw name, kind, role, the parts its name holds, and its Redis type."""

    raw: bytes
    kind: str
    role: str
    parts: Mapping[str, str]
    type: str = ""

    @property
    def name(self) -> str:
        """The key as a report shows it; a session key's session id (a bearer token) is never shown."""
        if self.kind == "sessions":
            return f"session:user:{self.parts['user']}:<session id>"
        return self.raw.decode("utf-8", "replace")


@dataclasses.dataclass
class MigrationReport:
    """What :func:`migrate` found per kind, wrote (or would write), left, and could not read, and why.

    ``ignored`` counts keys of the source that are not migrated, by reason; ``samples`` holds up to
    ``SAMPLE_LIMIT`` ``(kind, key, reason)`` of unreadable records.
    """

    source: str
    target: str
    dry_run: bool
    kinds: dict[str, KindCounts] = dataclasses.field(default_factory=dict)
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)
    samples: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def kind(self, kind: str) -> KindCounts:
        return self.kinds.setdefault(kind, KindCounts())

    def unreadable(self, key: OldKey, reason: str, n: int = 1) -> None:
        """Count ``n`` records of ``key`` as unreadable for ``reason``, keeping a bounded sample."""
        if n <= 0:
            return
        _count(self.kind(key.kind).unreadable, reason, n)
        same = sum(1 for kind, _, why in self.samples if (kind, why) == (key.kind, reason))
        if len(self.samples) < SAMPLE_LIMIT and same < SAMPLES_PER_REASON:
            self.samples.append((key.kind, key.name, reason))

    def unreadable_many(self, key: OldKey, reasons: Mapping[str, int]) -> None:
        for reason, n in reasons.items():
            self.unreadable(key, reason, n)

    def skipped(self, kind: str, reason: str, n: int = 1) -> None:
        if n > 0:
            _count(self.kind(kind).skipped, reason, n)

    @property
    def written(self) -> int:
        """Records written (or, in a dry run, that would be) over every kind."""
        return sum(c.written for c in self.kinds.values())


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text: the first column to the left, the others (numbers) to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
            for row in rows]


def format_report(report: MigrationReport) -> str:
    """The table the CLI prints: counts per kind, then the reasons for what was skipped or unreadable.

    Examples
    --------
    >>> report = MigrationReport("redis://old:6379/0", "redis://new:6379/0, namespace 'redtick'", dry_run=True)
    >>> report.kind("series").found, report.kind("series").written = 1_838, 1_837
    >>> report.unreadable(OldKey(b"price:series:ES", "series", "ticks", {"symbol": "ES"}), "member is not JSON")
    >>> print(format_report(report))
    redtick migrate: dry run, nothing written (pass --write to write)
    from redis://old:6379/0
    into redis://new:6379/0, namespace 'redtick'
    <BLANKLINE>
    kind    keys  found  to write  already there  skipped  unreadable
    series     0  1,838     1,837              0        0           1
    <BLANKLINE>
    unreadable, by reason:
      series: 1 member is not JSON
    <BLANKLINE>
    examples of unreadable records:
      series  price:series:ES: member is not JSON
    """
    head = ("redtick migrate: dry run, nothing written (pass --write to write)" if report.dry_run
            else "redtick migrate: written")
    lines = [head, f"from {report.source}", f"into {report.target}", ""]
    header = ("kind", "keys", "found", "to write" if report.dry_run else "written", "already there", "skipped",
              "unreadable")
    counts = [(kind, *(f"{n:,}" for n in (c.keys, c.found, c.written, c.already, c.skipped_total, c.unreadable_total)))
              for kind, c in report.kinds.items()]
    lines += _table([header, *counts])
    picks: tuple[tuple[str, Callable[[KindCounts], dict[str, int]]], ...] = (
        ("unreadable", lambda c: c.unreadable), ("skipped", lambda c: c.skipped))
    for title, pick in picks:
        found = [(kind, reason, n) for kind, c in report.kinds.items() for reason, n in pick(c).items()]
        if found:
            lines += ["", f"{title}, by reason:", *(f"  {kind}: {n:,} {reason}" for kind, reason, n in found)]
    if report.ignored:
        lines += ["", "keys not migrated:", *(f"  {n:,} {reason}" for reason, n in report.ignored.items())]
    if report.samples:
        lines += ["", "examples of unreadable records:", *(f"  {kind}  {key}: {reason}" for kind, key, reason in report.samples)]
    return "\n".join(lines)


# -- pure parsing ------------------------------------------------------------------------------------
def classify_key(name: bytes) -> OldKey | str | None:
    """The old-layout key ``name`` is, or why it is not migrated (a str), or None if it is no key of the layout.

    Examples
    --------
    >>> key = classify_key(b"price:ohlcv:BTCUSDT:1h")
    >>> key.kind, dict(key.parts)
    ('ohlcv', {'symbol': 'BTCUSDT', 'interval': '1h'})
    >>> classify_key(b"session:user:user:123:abc-def").parts["user"]
    'user:123'
    >>> classify_key(b"market:orderbook:BTCUSDT")
    'order books, trades, 24h stats and symbol info: refilled by the feed within their TTL'
    >>> classify_key(b"celery-task-meta-1") is None
    True
    """
    text = name.decode("utf-8", "replace")
    for kind, role, pattern in _OLD_KEYS:
        match = pattern.fullmatch(text)
        if match:
            return OldKey(name, kind, role, match.groupdict())
    return next((reason for pattern, reason in _NOT_MIGRATED if pattern.fullmatch(text)), None)


def epoch_us(numbers: np.ndarray) -> np.ndarray:
    """Epoch microseconds (float64, NaN where neither) of epoch seconds or milliseconds between 1990 and 2200.

    Each number names its unit by magnitude: the seconds and milliseconds bands are 1000 apart.

    Examples
    --------
    >>> epoch_us(np.array([1378072800.083, 1378072800083.0, 42.0])).tolist()
    [1378072800083000.0, 1378072800083000.0, nan]
    """
    numbers = np.asarray(numbers, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        seconds = (numbers >= _FIRST_S) & (numbers < _END_S)
        millis = (numbers >= _FIRST_S * 1_000) & (numbers < _END_S * 1_000)
    return np.where(seconds, np.round(numbers * 1e6), np.where(millis, np.round(numbers * 1e3), np.nan))


def _is_bool(values: pd.Series) -> np.ndarray:
    # pandas takes True for 1; a JSON true is no price, no volume and no time.
    if values.dtype == object:
        return np.asarray(values.map(lambda v: isinstance(v, bool)), dtype=bool)
    return np.full(len(values), values.dtype == bool)


def times_us(values: Sequence[Any] | pd.Series) -> np.ndarray:
    """Epoch microseconds (float64, NaN where unreadable) of ISO 8601 strings (naive = UTC) or epoch s/ms.

    Numbers and numeric strings count seconds or milliseconds, told apart as :func:`epoch_us` does.

    Examples
    --------
    >>> times_us(["2013-09-01T22:00:00.083", 1378072800.083, "1378072800083", "soon", None, True]).tolist()
    [1378072800083000.0, 1378072800083000.0, 1378072800083000.0, nan, nan, nan]
    """
    values = pd.Series(values, dtype=object).reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    numbers[_is_bool(values)] = np.nan
    out = epoch_us(numbers)
    text = np.isnan(numbers) & values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if text.any():
        stamps = pd.DatetimeIndex(pd.to_datetime(values[text], utc=True, errors="coerce", format="ISO8601")).as_unit("us")
        parsed = stamps.asi8.astype(np.float64)
        parsed[stamps.isna()] = np.nan
        out[text] = parsed
    return out


def _loads(raw: Any) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _BAD_JSON


def _json_fields(raw: bytes | str | Mapping[Any, Any], what: str) -> dict[str, Any]:
    """A JSON object, or a hash's fields (each value read as JSON where it is JSON, else kept as text)."""
    if isinstance(raw, Mapping):
        fields = {}
        for field, value in raw.items():
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            parsed = _loads(text)
            fields[field.decode("utf-8", "replace") if isinstance(field, bytes) else field] = \
                text if parsed is _BAD_JSON else parsed
        return fields
    data = _loads(raw)
    if data is _BAD_JSON:
        raise InvalidData(f"{what} is not JSON")
    if not isinstance(data, dict):
        raise InvalidData(f"{what} is JSON but not an object")
    return data


def _finite(value: Any, name: str) -> float:
    # The messages name no value: migrate counts unreadable records by them.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidData(f"{name} is not a number") from None
    try:
        return checks.number(value, name)
    except InvalidData:
        raise InvalidData(f"{name} is missing or not a finite number") from None


def _one_time_us(value: Any, name: str) -> int:
    us = times_us([value])[0]
    if np.isnan(us):
        raise InvalidData(f"{name} is missing, or not ISO 8601 nor epoch seconds or ms between 1990 and 2200")
    return int(us)


def _is_iso_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _iso(us: int) -> str:
    # Microseconds, not clock.iso_ms: an old record's timestamp keeps the precision it was written with.
    return str(pd.Timestamp(us, unit="us", tz="UTC").isoformat()).replace("+00:00", "Z")


def parse_price(raw: bytes | str | Mapping[Any, Any], symbol: str) -> dict[str, Any]:
    """A ``market:price:{SYMBOL}`` value as :meth:`MarketDataCache.set_symbol_price` takes it; InvalidData says why not.

    The price must be a positive number and ``timestamp`` readable: an ISO 8601 string is kept as
    given (callers parse it as they did), epoch seconds or ms become ISO 8601 in UTC (redtick's
    ``is_price_fresh`` refuses epoch seconds). Other fields are kept as given.

    Examples
    --------
    >>> parse_price(b'{"symbol": "BTCUSDT", "price": 50000.0, "volume": 1000.0, "timestamp": "2023-12-01T12:00:00"}',
    ...             "BTCUSDT")
    {'symbol': 'BTCUSDT', 'price': 50000.0, 'volume': 1000.0, 'timestamp': '2023-12-01T12:00:00'}
    >>> parse_price({b"price": b"50000.5", b"timestamp": b"1701432000"}, "BTCUSDT")["timestamp"]
    '2023-12-01T12:00:00Z'
    >>> parse_price(b'{"price": 50000.0}', "BTCUSDT")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: timestamp is missing, or not ISO 8601 nor epoch seconds or ms between 1990 and 2200
    """
    symbol = validate_symbol(symbol)
    data = _json_fields(raw, "value")
    price = _finite(data.get("price"), "price")
    if price <= 0:
        raise InvalidData("price is not above 0")
    if data.get("symbol", symbol) != symbol:
        raise InvalidData("the value's symbol differs from the key's")
    given = data.get("timestamp")
    stamp = _iso(_one_time_us(given, "timestamp"))
    return {**data, "symbol": symbol, "price": price, "timestamp": given if _is_iso_text(given) else stamp}


def member_ids(members: Sequence[bytes], sub_us: np.ndarray) -> np.ndarray:
    """Trade ids of sorted-set members: the microseconds within the millisecond, then 53 bits of the member's BLAKE2b.

    A member always gets the same id, so a tick migrated twice is one tick; ids within a
    millisecond sort by the microseconds of the score first.

    Examples
    --------
    >>> ids = member_ids([b'{"price": 1.0}', b'{"price": 2.0}', b'{"price": 1.0}'], np.array([7, 7, 0]))
    >>> (ids >> 53).tolist(), bool(ids[0] == member_ids([b'{"price": 1.0}'], np.array([7]))[0])
    ([7, 7, 0], True)
    """
    digests = b"".join(hashlib.blake2b(m, digest_size=8).digest() for m in members)
    hashed = np.frombuffer(digests, dtype=">u8") & np.uint64((1 << _ID_BITS) - 1)
    return (np.asarray(sub_us, dtype=np.int64) << _ID_BITS) | hashed.astype(np.int64)


def _objects(parsed: Sequence[Any], what: str = "member") -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Parsed JSON values as objects (``{}`` in place of the rest), and masks of those that are not JSON objects."""
    bad_json = np.fromiter((p is _BAD_JSON for p in parsed), dtype=bool, count=len(parsed))
    not_object = np.fromiter((not isinstance(p, dict) for p in parsed), dtype=bool, count=len(parsed)) & ~bad_json
    objects = [p if isinstance(p, dict) else {} for p in parsed]
    return objects, {f"{what} is not JSON": bad_json, f"{what} is JSON but not an object": not_object}


def _number_column(frame: pd.DataFrame, name: str, reasons: dict[str, np.ndarray], *, negative: bool = True) -> np.ndarray:
    """``frame[name]`` as float64, adding the reasons its values are missing or not numbers to ``reasons``."""
    column = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index, dtype=object)
    values = np.asarray(pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    reasons[f"no {name}"] = column.isna().to_numpy()
    with np.errstate(invalid="ignore"):
        wrong = ~np.isfinite(values) | _is_bool(column) | (False if negative else values < 0)
    reasons[f"{name} is not a {'' if negative else 'non-negative '}finite number"] = wrong
    return values


def series_ticks(members: Sequence[bytes], scores: np.ndarray) -> tuple[pd.DataFrame, dict[str, int]]:
    """Ticks of one page of a ``price:series:{SYMBOL}`` sorted set, and counts of the members it could not read, by reason.

    The frame has ``ts`` (epoch ms, from the score), ``price``, ``volume`` and ``trade_id``
    (:func:`member_ids`), ready for :func:`redtick.write_ticks` with ``unit="ms"``.

    Examples
    --------
    >>> members = [b'{"price": 1640.25, "volume": 8, "timestamp": "2013-09-01T22:00:00.083000"}',
    ...            b'{"price": 1640.5}', b'not json', b'{"price": 1640.75, "volume": 1}']
    >>> frame, unreadable = series_ticks(members, np.array([1378072800.083, 1378072800.084, 1378072800.085, 7.0]))
    >>> frame[["ts", "price", "volume"]]
                  ts    price  volume
    0  1378072800083  1640.25     8.0
    >>> unreadable
    {'member is not JSON': 1, 'no volume': 1, 'score is not an epoch time in seconds or ms between 1990 and 2200': 1}
    """
    objects, reasons = _objects([_loads(m) for m in members])
    fields = pd.DataFrame.from_records(objects, columns=["price", "volume"], nrows=len(objects))
    price = _number_column(fields, "price", reasons)
    volume = _number_column(fields, "volume", reasons, negative=False)
    us = epoch_us(scores)
    reasons["score is not an epoch time in seconds or ms between 1990 and 2200"] = np.isnan(us)
    bad, unreadable = screen_rows(reasons, len(objects), "skip", "members")
    keep = ~bad
    us = us[keep].astype(np.int64)
    frame = pd.DataFrame({"ts": us // 1_000, "price": price[keep], "volume": volume[keep],
                          "trade_id": member_ids([m for m, k in zip(members, keep, strict=True) if k], us % 1_000)})
    return frame, unreadable


def _candle_frame(objects: list[dict[str, Any]], us: np.ndarray,
                  reasons: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict[str, int]]:
    fields = pd.DataFrame.from_records(objects, nrows=len(objects))
    data = {name: _number_column(fields, name, reasons, negative=name != "volume") for name in CANDLE_COLUMNS}
    reasons["candle has no time, or one not ISO 8601 nor epoch seconds or ms between 1990 and 2200"] = np.isnan(us)
    bad, unreadable = screen_rows(reasons, len(objects), "skip", "candles")
    keep = ~bad
    frame = pd.DataFrame({"ts": us[keep].astype(np.int64) // 1_000, **{k: v[keep] for k, v in data.items()}})
    for optional in ("vwap", "count"):
        if optional in fields.columns:
            frame[optional] = pd.to_numeric(fields[optional][keep].reset_index(drop=True), errors="coerce")
    return frame, unreadable


def candles_from_list(raw: bytes | str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Candles of a ``price:ohlcv:{SYMBOL}:{interval}`` string (a JSON list), and counts of those it could not read.

    Each candle's time is its ``timestamp``, ``ts``, ``time`` or ``open_time`` (the first present);
    the frame has ``ts`` in epoch ms and float64 OHLCV (and ``vwap``, ``count`` when given).

    Examples
    --------
    >>> frame, unreadable = candles_from_list(b'[{"timestamp": "2023-12-01T12:00:00Z", "open": 49000, "high": 51000,'
    ...     b' "low": 48000, "close": 50000, "volume": 1000}, {"open": 49000, "high": 51000, "low": 48000,'
    ...     b' "close": 50000, "volume": 1000}]')
    >>> frame
                  ts     open     high      low    close  volume
    0  1701432000000  49000.0  51000.0  48000.0  50000.0  1000.0
    >>> unreadable
    {'candle has no time, or one not ISO 8601 nor epoch seconds or ms between 1990 and 2200': 1}
    """
    items = _loads(raw)
    if not isinstance(items, list):
        return _candle_frame([], np.zeros(0), {})[0], {"value is not a JSON list of candles": 1}
    objects, reasons = _objects(items, "candle")
    times = [next((o[f] for f in _TIME_FIELDS if o.get(f) is not None), None) for o in objects]
    return _candle_frame(objects, times_us(times), reasons)


def candles_from_zset(members: Sequence[bytes], scores: np.ndarray) -> tuple[pd.DataFrame, dict[str, int]]:
    """Candles of a ``price:ohlcv:{SYMBOL}:{interval}`` sorted set (score = bucket start, member = JSON candle).

    Examples
    --------
    >>> frame, unreadable = candles_from_zset([b'{"open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 3}'],
    ...                                       np.array([1701432000.0]))
    >>> frame["ts"].tolist(), unreadable
    ([1701432000000], {})
    """
    objects, reasons = _objects([_loads(m) for m in members], "candle")
    return _candle_frame(objects, epoch_us(scores), reasons)


def _alert_active(data: Mapping[str, Any]) -> bool:
    status = str(data.get("status", "active")).lower()
    return (data.get("is_active", True) is not False and not data.get("triggered") and data.get("triggered_at") is None
            and status not in ("triggered", "cancelled", "canceled", "inactive", "expired", "deleted"))


def parse_alert(raw: bytes | str | Mapping[Any, Any], alert_id: str | None = None) -> dict[str, Any]:
    """An old alert record as ``{alert_id, user_id, symbol, condition, target_price, created_us, expires_us, active}``.

    ``alert_id`` is the record's ``alert_id`` (or ``id``), else the one given (a hash field).
    Times are epoch microseconds or None; ``active`` is False for a record marked triggered,
    deactivated, cancelled or expired. InvalidData or InvalidKey says why a record is unreadable.

    Examples
    --------
    >>> alert = parse_alert(b'{"alert_id": "a1", "user_id": "user_123", "symbol": "BTCUSDT", "target_price": 55000,'
    ...                     b' "condition": "above", "created_at": "2023-12-01T12:00:00", "is_active": true}')
    >>> alert["user_id"], alert["target_price"], alert["condition"], alert["active"], alert["expires_us"]
    ('user_123', 55000.0, 'above', True, None)
    >>> parse_alert(b'{"user_id": "u1", "symbol": "BTCUSDT", "target_price": 1, "condition": "sideways"}')
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: condition is not one of above, below, crosses
    """
    data = _json_fields(raw, "alert")
    condition = str(data.get("condition", "")).lower()
    if condition not in ALERT_CONDITIONS:
        raise InvalidData(f"condition is not one of {', '.join(ALERT_CONDITIONS)}")
    created, expires = data.get("created_at"), data.get("expires_at")
    given = data.get("alert_id", data.get("id", alert_id))
    return {
        "alert_id": None if given is None else str(given),
        "user_id": validate_user_id(data.get("user_id")),
        "symbol": validate_symbol(data.get("symbol")),
        "condition": condition,
        "target_price": _finite(data.get("target_price"), "target_price"),
        "created_us": None if created is None else _one_time_us(created, "created_at"),
        "expires_us": None if expires is None else _one_time_us(expires, "expires_at"),
        "active": _alert_active(data),
    }


def unmigrated_alerts(alerts: Iterable[Mapping[str, Any]],
                      stored: Mapping[str, Iterable[Mapping[str, Any]]]) -> tuple[list[Mapping[str, Any]], int]:
    """(old alerts redtick does not hold yet, how many it does): matched per user on symbol, condition, target.

    Each live redtick alert stands for one old alert, oldest old alert first, so a user who set
    the same alert twice keeps two.

    Examples
    --------
    >>> old = [{"user_id": "u1", "symbol": "BTCUSDT", "condition": "above", "target_price": 55000.0, "alert_id": i,
    ...         "created_us": i} for i in (1, 2)]
    >>> stored = {"u1": [{"symbol": "BTCUSDT", "condition": "above", "target_price": 55000.0}]}
    >>> todo, already = unmigrated_alerts(old, stored)
    >>> [a["alert_id"] for a in todo], already
    ([2], 1)
    """
    held = collections.Counter((user, a["symbol"], a["condition"], float(a["target_price"]))
                               for user, theirs in stored.items() for a in theirs)
    todo, already = [], 0
    for alert in sorted(alerts, key=lambda a: (a.get("created_us") or 0, str(a["alert_id"]))):
        spec = (alert["user_id"], alert["symbol"], alert["condition"], alert["target_price"])
        if held[spec] > 0:
            held[spec] -= 1
            already += 1
        else:
            todo.append(alert)
    return todo, already


# -- reading the source ------------------------------------------------------------------------------
def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _client_label(client: redis.Redis) -> str:
    """Where an open client points, for the report (never its password)."""
    where = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if "host" in where and "server" not in where:  # fakeredis names a random host
        return f"redis://{where['host']}:{where.get('port', 6379)}/{where.get('db', 0)}"
    if "path" in where:
        return f"unix://{where['path']}"
    return f"a {type(client).__name__} client"


def _open_source(source: str | redis.Redis) -> tuple[redis.Redis, str, bool]:
    """(client, the source as a report shows it, whether migrate opened it and must close it)."""
    if not isinstance(source, str):
        if getattr(source, "connection_pool", None) and source.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigurationError("the source client decodes replies; give one with decode_responses=False")
        return source, _client_label(source), False
    scheme = urlsplit(source).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"--from has scheme {scheme!r}; expected one server: redis://, rediss:// or unix:// "
                                 "(for a cluster, run migrate once per master)")
    try:
        shown = Settings(url=source).safe_url  # never the password
        client = redis.Redis.from_url(source, socket_connect_timeout=5.0, socket_timeout=60.0)
    except ValueError:
        raise ConfigurationError("--from is not a Redis URL; expected such as redis://host:6379/0") from None
    try:
        client.ping()
    except redis.AuthenticationError:
        client.close()
        raise CredentialsRefused(f"the source Redis at {shown} refused the credentials of the --from URL") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        client.close()
        raise Unavailable(f"the source Redis at {shown} cannot be reached ({exc}); check the --from URL "
                          "and that the server runs") from None
    except redis.RedisError as exc:
        client.close()
        raise RedisError(f"the source Redis at {shown} refused PING: {exc}") from None
    return client, shown, True


def scan_old_layout(source: redis.Redis, kinds: Sequence[str], report: MigrationReport,
                    owns: Callable[[bytes], bool]) -> dict[str, list[OldKey]]:
    """The keys of the previous layout of ``kinds``, each with its type, found with SCAN and pipelined TYPE.

    Keys redtick does not migrate are counted in ``report.ignored`` by reason; keys ``owns`` says
    are redtick's own (a source that is also the target) are passed over.
    """
    found: dict[str, list[OldKey]] = {kind: [] for kind in kinds}
    for names in _batched(source.scan_iter(count=BATCH), BATCH):
        wanted = []
        for name in names:
            key = None if owns(name) else classify_key(name)
            if isinstance(key, str):
                _count(report.ignored, key, 1)
            elif key is not None and key.kind in found:
                wanted.append(key)
        pipe = source.pipeline(transaction=False)
        for key in wanted:
            pipe.type(key.raw)
        for key, kind in zip(wanted, pipe.execute(), strict=True):
            if kind != b"none":  # expired since the SCAN
                found[key.kind].append(dataclasses.replace(key, type=kind.decode()))
                report.kind(key.kind).keys += 1
    return found


def _typed(keys: Sequence[OldKey], report: MigrationReport) -> list[OldKey]:
    """The keys whose type their role allows; the others are counted unreadable (one record each)."""
    kept = []
    for key in keys:
        allowed = _ROLE_TYPES[key.role]
        if key.type in allowed:
            kept.append(key)
        else:
            report.kind(key.kind).found += 1
            expected = " or ".join(_TYPE_NAMES[t] for t in allowed)
            report.unreadable(key, f"expected {expected}, found {_TYPE_NAMES.get(key.type, key.type)}")
    return kept


_READERS: dict[str, Callable[[Any, bytes], Any]] = {
    "string": lambda pipe, key: pipe.get(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
    "set": lambda pipe, key: pipe.smembers(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
}


def _read_values(source: redis.Redis, keys: Sequence[OldKey]) -> Iterator[tuple[OldKey, Any, int]]:
    """(key, value, PTTL in ms) of each key, read in pipelined batches; keys gone since the SCAN are left out."""
    for batch in _batched(keys, BATCH):
        pipe = source.pipeline(transaction=False)
        for key in batch:
            _READERS[key.type](pipe, key.raw)
            pipe.pttl(key.raw)
        replies = pipe.execute()
        for key, value, pttl in zip(batch, replies[::2], replies[1::2], strict=True):
            if value is not None and pttl != -2 and (isinstance(value, bytes) or value):  # else gone since the SCAN
                yield key, value, pttl


def _zset_pages(source: redis.Redis, key: bytes, page: int = PAGE) -> Iterator[tuple[list[bytes], np.ndarray]]:
    """(members, scores) of a sorted set, ``page`` members at a time, in score order."""
    start = 0
    while True:
        # WITHSCORES answers (member, score) pairs; redis-py's types allow any reply shape.
        reply = cast("list[tuple[bytes, float]]", source.zrange(key, start, start + page - 1, withscores=True))
        if not reply:
            return
        yield [m for m, _ in reply], np.fromiter((s for _, s in reply), dtype=np.float64, count=len(reply))
        if len(reply) < page:
            return
        start += page


def _ttl(pttl: int) -> int | None:
    """Whole seconds left of a PTTL (at least 1), or None for a key without one."""
    return None if pttl < 0 else max(1, math.ceil(pttl / 1_000))


# -- running the async caches from sync code ---------------------------------------------------------
def _run_each(conn: Connection, calls: Sequence[Callable[[], Awaitable[T]]], size: int = 200) -> list[T]:
    """The results of the async ``calls``, run ``size`` at a time on one event loop."""

    async def each() -> list[T]:
        out: list[T] = []
        for start in range(0, len(calls), size):
            out += await asyncio.gather(*(call() for call in calls[start : start + size]))
        return out

    return blocking(conn, each) if calls else []


# -- one step per kind -------------------------------------------------------------------------------
def _migrate_prices(source: redis.Redis, conn: Connection, keys: Sequence[OldKey], report: MigrationReport,
                    dry_run: bool) -> None:
    counts = report.kind("prices")
    parsed = []
    for key, value, pttl in _read_values(source, _typed(keys, report)):
        counts.found += 1
        try:
            parsed.append((parse_price(value, key.parts["symbol"]), _ttl(pttl)))
        except (InvalidData, InvalidKey) as exc:
            report.unreadable(key, str(exc))
    cache = MarketDataCache(conn)
    stored = _run_each(conn, [functools.partial(cache.get_symbol_price, p["symbol"]) for p, _ in parsed])
    todo = []
    for (price, ttl), have in zip(parsed, stored, strict=True):
        if have == price:
            counts.already += 1
        elif have is not None and _held_time_us(have) >= _one_time_us(price["timestamp"], "timestamp"):
            report.skipped("prices", PRICE_KEPT)
        else:
            todo.append((price, ttl))
    counts.written += len(todo)
    if todo and not dry_run:
        _run_each(conn, [functools.partial(cache.set_symbol_price, p["symbol"], p, ttl=t) for p, t in todo])


def _held_time_us(price: Mapping[str, Any]) -> float:
    """Epoch microseconds of a price redtick holds, or -inf when its time is unreadable (then the old one wins)."""
    us = times_us([price.get("timestamp")])[0]
    return -math.inf if np.isnan(us) else float(us)


def _new_ticks(conn: Connection, symbol: str, frame: pd.DataFrame) -> tuple[int, int, dict[str, int]]:
    """(ticks a write would add, ticks redtick already holds, rejected by reason): the dry run of one page."""
    normalised = normalise_ticks(frame, errors="skip", unit="ms")
    records = normalised.records
    if not len(records):
        return 0, normalised.duplicates, normalised.rejected
    stored = load_ticks(symbol, start=int(records["ts"][0]), end=int(records["ts"][-1]), columns=["trade_id"],
                        missing="skip", conn=conn)
    held = pd.MultiIndex.from_arrays([stored.index.as_unit("ms").asi8, stored["trade_id"].to_numpy()])
    there = int(pd.MultiIndex.from_arrays([records["ts"], records["id"]]).isin(held).sum())
    return len(records) - there, there + normalised.duplicates, normalised.rejected


def _migrate_series(source: redis.Redis, conn: Connection, keys: Sequence[OldKey], report: MigrationReport,
                    dry_run: bool) -> None:
    counts = report.kind("series")
    for key in _typed(keys, report):
        try:
            symbol = validate_symbol(key.parts["symbol"])
        except InvalidKey as exc:
            size = source.zcard(key.raw)
            counts.found += size
            report.unreadable(key, str(exc), size)
            continue
        for members, scores in _zset_pages(source, key.raw):
            counts.found += len(members)
            frame, unreadable = series_ticks(members, scores)
            report.unreadable_many(key, unreadable)
            if dry_run:
                new, there, rejected = _new_ticks(conn, symbol, frame)
            else:
                result = write_ticks(frame, symbol, conn=conn, errors="skip", unit="ms")
                new, there, rejected = result.written, result.duplicates, result.rejected
                report.skipped("series", RETENTION_REFUSED, result.retention_refused)
            counts.written += new
            counts.already += there
            report.unreadable_many(key, rejected)


def _stored_candles(conn: Connection, symbol: str, interval: str, starts: np.ndarray,
                    packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the candles redtick holds equal (within 1e-9, relative) and of those it holds different."""
    if not len(starts):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    stored = load_ohlcv(symbol, interval, start=int(starts[0]), end=int(starts[-1]), columns=list(CANDLE_COLUMNS),
                        missing="skip", conn=conn)
    at = pd.Index(stored.index.as_unit("ms").asi8).get_indexer(starts)
    held = at >= 0
    ours = stored.to_numpy(dtype=np.float64)[at[held]]
    theirs = np.stack([packed[name][held] for name in CANDLE_COLUMNS], axis=1)
    same = np.zeros(len(starts), dtype=bool)
    same[held] = np.isclose(ours, theirs, rtol=1e-9, atol=0.0, equal_nan=True).all(axis=1)
    return same, held & ~same


def _candles_input(starts: np.ndarray, packed: np.ndarray) -> pd.DataFrame:
    """Validated packed candles back as the frame :func:`redtick.write_candles` takes (notional kept exact)."""
    return pd.DataFrame({"ts": starts, **{name: packed[name] for name in (*CANDLE_COLUMNS, "notional", "count")}})


def _put_candles(conn: Connection, key: OldKey, frame: pd.DataFrame, report: MigrationReport, dry_run: bool) -> None:
    symbol, interval = key.parts["symbol"], key.parts["interval"]
    counts = report.kind("ohlcv")
    starts, packed, rejected = candles_from_frame(frame, interval, errors="skip", unit="ms")
    report.unreadable_many(key, rejected)
    same, different = _stored_candles(conn, symbol, interval, starts, packed)
    new = ~(same | different)
    counts.already += int(same.sum())
    report.skipped("ohlcv", CANDLE_KEPT, int(different.sum()))
    if dry_run or not new.any():
        counts.written += int(new.sum())
        return
    result = write_candles(_candles_input(starts[new], packed[new]), symbol, interval, conn=conn, unit="ms")
    counts.written += result.written
    report.skipped("ohlcv", RETENTION_REFUSED, result.retention_refused)


def _ohlcv_key_problem(conn: Connection, key: OldKey) -> str | None:
    """Why the candles of ``key`` cannot go into redtick whatever they hold, or None."""
    try:
        validate_symbol(key.parts["symbol"])
    except InvalidKey as exc:
        return str(exc)
    if key.parts["interval"] not in conn.settings.intervals:
        return (f"interval {key.parts['interval']!r} is not one redtick stores ({', '.join(conn.settings.intervals)}); "
                "add it to REDTICK_INTERVALS to migrate these candles")
    return None


def _migrate_ohlcv(source: redis.Redis, conn: Connection, keys: Sequence[OldKey], report: MigrationReport,
                   dry_run: bool) -> None:
    counts = report.kind("ohlcv")
    for key, value, _ in _read_values(source, _typed(keys, report)):
        if key.type == "string":
            frame, unreadable = candles_from_list(value)
        else:
            frame, unreadable = candles_from_zset([m for m, _ in value], np.array([s for _, s in value], dtype=np.float64))
        counts.found += len(frame) + sum(unreadable.values())
        report.unreadable_many(key, unreadable)
        problem = _ohlcv_key_problem(conn, key)
        if problem is not None:
            report.unreadable(key, problem, len(frame))
        elif len(frame):
            _put_candles(conn, key, frame, report, dry_run)


def _migrate_preferences(source: redis.Redis, conn: Connection, keys: Sequence[OldKey], report: MigrationReport,
                         dry_run: bool) -> None:
    counts = report.kind("preferences")
    parsed = []
    for key, value, pttl in _read_values(source, _typed(keys, report)):
        counts.found += 1
        preferences = _loads(value)  # JSON null is no preferences: unreadable, not "already there"
        try:
            user = validate_user_id(key.parts["user"])
        except InvalidKey as exc:
            report.unreadable(key, str(exc))
            continue
        if preferences is _BAD_JSON or preferences is None:
            report.unreadable(key, "value is not JSON" if preferences is _BAD_JSON else "value is JSON null")
        else:
            parsed.append((user, preferences, _ttl(pttl)))
    cache = UserSessionCache(conn=conn)
    stored = _run_each(conn, [functools.partial(cache.get_user_preferences, u) for u, _, _ in parsed])
    todo = []
    for (user, preferences, ttl), have in zip(parsed, stored, strict=True):
        if have == preferences:
            counts.already += 1
        elif have is not None:
            report.skipped("preferences", PREFERENCES_KEPT)
        else:
            todo.append((user, preferences, ttl))
    counts.written += len(todo)
    if todo and not dry_run:
        _run_each(conn, [functools.partial(cache.set_user_preferences, u, p, ttl=t) for u, p, t in todo])


def _migrate_sessions(source: redis.Redis, conn: Connection, keys: Sequence[OldKey], report: MigrationReport,
                      dry_run: bool) -> None:
    # Read for their count only: why they are not written is in the module docstring.
    report.kind("sessions").found += len(keys)
    report.skipped("sessions", SESSIONS_SKIPPED, len(keys))


def _take_alert(key: OldKey, raw: Any, pttl: int | None, field: str | None, now_us: int, seen: set[str],
                report: MigrationReport) -> dict[str, Any] | None:
    """The alert of one old record ready to migrate (with its ``ttl``), or None, counting it in ``report``."""
    try:
        alert = parse_alert(raw, field)
    except (InvalidData, InvalidKey) as exc:
        report.kind("alerts").found += 1
        report.unreadable(key, str(exc))
        return None
    if alert["alert_id"] is not None:
        if alert["alert_id"] in seen:  # a record and a hash index holding the same alert
            return None
        seen.add(alert["alert_id"])
    report.kind("alerts").found += 1
    left_us = pttl * 1_000 if pttl and pttl > 0 else (None if alert["expires_us"] is None else alert["expires_us"] - now_us)
    if not alert["active"]:
        report.skipped("alerts", INACTIVE_ALERT)
    elif left_us is not None and left_us <= 0:
        report.skipped("alerts", EXPIRED_ALERT)
    else:
        return {**alert, "ttl": None if left_us is None else max(1, math.ceil(left_us / 1e6))}
    return None


def _old_alerts(source: redis.Redis, keys: Sequence[OldKey], report: MigrationReport) -> list[dict[str, Any]]:
    """Alerts to migrate from the records and from hash or list indexes (each alert id once)."""
    now_us = now_ms() * 1_000
    seen: set[str] = set()
    alerts: list[dict[str, Any] | None] = []
    typed = _typed(keys, report)
    records = [k for k in typed if k.role == "record"]
    holders = [k for k in typed if k.role == "symbol_index" and k.type in ("hash", "list")]
    for key, value, pttl in _read_values(source, records):
        alerts.append(_take_alert(key, value, pttl, key.parts["alert"], now_us, seen, report))
    for key, value, _ in _read_values(source, holders):
        items = value.items() if key.type == "hash" else ((None, item) for item in value)
        for field, item in items:
            name = None if field is None else field.decode("utf-8", "replace")
            alerts.append(_take_alert(key, item, None, name, now_us, seen, report))
    return [a for a in alerts if a is not None]


def _migrate_alerts(source: redis.Redis, conn: Connection, keys: Sequence[OldKey], report: MigrationReport,
                    dry_run: bool) -> None:
    counts = report.kind("alerts")
    alerts = _old_alerts(source, keys, report)
    cache = PriceAlerts(conn)
    users = sorted({a["user_id"] for a in alerts})
    stored = _run_each(conn, [functools.partial(cache.get_user_alerts, u) for u in users])
    todo, already = unmigrated_alerts(alerts, dict(zip(users, stored, strict=True)))
    counts.already += already
    counts.written += len(todo)
    if todo and not dry_run:
        specs = [{name: a[name] for name in ("user_id", "symbol", "target_price", "condition", "ttl")} for a in todo]
        blocking(conn, lambda: cache.set_price_alerts(specs))


_STEPS = {"prices": _migrate_prices, "series": _migrate_series, "ohlcv": _migrate_ohlcv,
          "preferences": _migrate_preferences, "sessions": _migrate_sessions, "alerts": _migrate_alerts}


def check_kinds(kinds: Iterable[str] | str | None) -> list[str]:
    """The kinds asked for, in migration order; all of them for None. InvalidData for an unknown one."""
    if kinds is None:
        return list(KINDS)
    asked = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else list(kinds)
    unknown = [k for k in asked if k not in KINDS]
    if unknown or not asked:
        raise InvalidData(f"kinds {unknown or asked!r}: expected some of {', '.join(KINDS)}")
    return [k for k in KINDS if k in asked]


def migrate(source: str | redis.Redis, *, conn: Connection | None = None, dry_run: bool = True,
            kinds: Iterable[str] | str | None = None) -> MigrationReport:
    """Read the previous cache layout from ``source`` and write it into redtick's; a report of what happened.

    What is read and what each kind becomes is in this module's docstring. Every kind is
    idempotent: a second run finds what the first wrote as *already there* and writes nothing new.
    A dry run writes nothing of the old layout; reading users' alerts drops redtick's own records
    of alerts that already fired or expired, as every ``get_user_alerts`` does.

    Parameters
    ----------
    source : str or redis.Redis
        The previous layer's Redis: a ``redis://``, ``rediss://`` or ``unix://`` URL of one server,
        or an open redis-py client of it. Only read, with SCAN (never KEYS).
    conn : Connection, optional
        Where to write; defaults to ``redtick.connect()``.
    dry_run : bool
        True (the default) writes nothing and reports what a write would do.
    kinds : iterable of str or str, optional
        Some of ``prices, series, ohlcv, preferences, sessions, alerts`` (a list or a comma-separated
        string); all of them by default. They run in that order whatever the order given.

    Raises
    ------
    Unavailable
        The source cannot be reached (the message names its host, never its password).
    ConfigurationError
        The URL is not of one server.

    Examples
    --------
    >>> import fakeredis
    >>> old = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    >>> _ = old.zadd("price:series:BTCUSDT", {b'{"price": 50000.0, "volume": 1.5}': 1701432000.0,
    ...                                       b'{"price": 50010.0, "volume": 0.5}': 1701432001.25, b"oops": 1701432002.0})
    >>> conn = Connection(Settings(url="memory://", namespace="docsmigrate"))
    >>> report = migrate(old, conn=conn, dry_run=False, kinds="series")
    >>> counts = report.kinds["series"]
    >>> counts.found, counts.written, counts.unreadable
    (3, 2, {'member is not JSON': 1})
    >>> migrate(old, conn=conn, dry_run=False).kinds["series"].already
    2
    """
    wanted = check_kinds(kinds)
    client, shown, opened = _open_source(source)  # before the target: a wrong --from fails fast
    conn = conn or connect()
    report = MigrationReport(source=shown, target=f"{conn.settings.safe_url}, namespace {conn.keys.namespace!r}",
                             dry_run=dry_run, kinds={kind: KindCounts() for kind in wanted})
    log.info("migrate %s: reading %s from %s into %s", "(dry run)" if dry_run else "(write)", ", ".join(wanted),
             report.source, report.target)
    try:
        found = scan_old_layout(client, wanted, report, conn.keys.owns)
        for kind in wanted:
            _STEPS[kind](client, conn, found[kind], report, dry_run)
    except redis.RedisError as exc:  # the source is a plain redis-py client: its errors become redtick's here
        raise translate_error(exc) from exc
    finally:
        if opened:
            client.close()
    return report
