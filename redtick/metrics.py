"""Cache hit/miss/write counters and Redis round-trip timings per connection, and the command log.

Every :class:`~redtick.connection.Connection` owns one :class:`Metrics`, backed by its own
``prometheus_client`` registry, so two connections (two tests) never share a count. Everything
is counted in this process: counting sends nothing to Redis.

What is counted
---------------
``redtick_cache_{hits,misses,writes,expired}_total{cache, family}``
    Counted by the caches where they read and write. ``cache`` is the cache object
    (``market_data``, ``user_session``, ``price``, ``alerts``, ``rate_limit``,
    ``http_response``, ``repository``, or a :class:`~redtick.caches.base.BaseCache`'s prefix);
    ``family`` the kind of key inside it, as :meth:`KeySchema.describe` names it
    (``price``, ``orderbook``, ``session``, ``preferences``, ``quote``, ``candles``, the
    response cache's key prefix...). ``expired`` counts entries redtick *saw* expire by TTL:
    Redis drops expired keys silently, so only the session cache, whose index outlives its
    sessions, can tell (its cleanup counts the sessions whose hash the TTL removed). The
    server-wide ``expired_keys``/``evicted_keys`` are in ``CacheService.health_check()``.
``redtick_cache_errors_total{cache, family, error}``
    Redis failures (``error`` is the redtick error class: Unavailable, RedisTimeout...),
    attributed to the cache and family of the failing command's first key.
``redtick_redis_round_trip_seconds{command}``
    One observation per round trip, as the client sees it (pool wait and retries included):
    ``command`` is the command's name, or ``PIPELINE``/``MULTI`` for a pipelined batch.
``redtick_redis_commands_total{command}``
    Commands sent, pipelined ones included.
``redtick_redis_errors_total{command, error}``
    Round trips that failed.

The command log
---------------
At DEBUG on the ``redtick.commands`` logger, each round trip is one line: the command's name,
its keys (never its values; session ids in keys replaced by a digest, see
:meth:`KeySchema.redact`) and its duration. Off by default; when off, a command costs one
``isEnabledFor`` check.
"""

from __future__ import annotations

import logging
from collections import Counter as _Tally
from typing import Any

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from redtick.keys import KeySchema

__all__ = ["CACHE_EVENTS", "ROUND_TRIP_BUCKETS", "CacheCounters", "Metrics", "command_keys"]

command_log = logging.getLogger("redtick.commands")
_DEBUG = logging.DEBUG

CACHE_EVENTS = ("hits", "misses", "writes", "expired", "errors")
"""The per-cache counters, as :meth:`Metrics.cache_stats` reports them."""

ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                      5.0, float("inf"))
"""Seconds: from a loopback round trip (~100 µs) to a socket timeout."""

_SHOWN_KEYS = 3  # a DEL of 500 keys logs three of them and how many more

# Where a command's keys are; a command not listed here is logged by name only, so an unknown
# command's arguments (AUTH's password, a value) can never reach a log line.
_FIRST_KEY = frozenset(
    [
        "GET", "SET", "SETEX", "PSETEX", "SETNX", "GETEX", "GETDEL", "GETSET", "APPEND", "STRLEN", "GETRANGE",
        "SETRANGE", "INCR", "INCRBY", "INCRBYFLOAT", "DECR", "DECRBY", "EXPIRE", "PEXPIRE", "EXPIREAT",
        "PEXPIREAT", "EXPIRETIME", "PEXPIRETIME", "TTL", "PTTL", "PERSIST", "TYPE", "DUMP", "RESTORE", "OBJECT",
        "HSET", "HSETNX", "HGET", "HGETALL", "HDEL", "HMGET", "HMSET", "HINCRBY", "HINCRBYFLOAT", "HEXISTS",
        "HKEYS", "HVALS", "HLEN", "HSCAN", "HSTRLEN", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LTRIM", "LRANGE",
        "LLEN", "LPOP", "RPOP", "LINDEX", "LSET", "LREM", "LINSERT", "LPOS", "SADD", "SREM", "SMEMBERS",
        "SCARD", "SISMEMBER", "SMISMEMBER", "SPOP", "SRANDMEMBER", "SSCAN", "ZADD", "ZREM", "ZRANGE",
        "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZREVRANGE", "ZRANGEBYLEX", "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK",
        "ZREMRANGEBYLEX", "ZCARD", "ZSCORE", "ZMSCORE", "ZCOUNT", "ZINCRBY", "ZRANK", "ZREVRANK", "ZPOPMIN",
        "ZPOPMAX", "ZSCAN", "XADD", "XLEN", "XRANGE", "XREVRANGE", "XTRIM", "XDEL", "PFADD", "BITCOUNT",
        "SETBIT", "GETBIT"
    ]
)
_ALL_KEYS = frozenset(["DEL", "UNLINK", "EXISTS", "MGET", "WATCH", "TOUCH", "SINTER", "SUNION", "SDIFF", "PFCOUNT"])
_TWO_KEYS = frozenset(["RENAME", "RENAMENX", "COPY", "SMOVE", "LMOVE", "RPOPLPUSH", "ZRANGESTORE"])
_SCRIPTS = frozenset(["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"])
_PAIRS = frozenset(("MSET", "MSETNX"))


def command_keys(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The keys among a command's arguments (``args[0]`` is its name); ``()`` if it has none we know of.

    Examples
    --------
    >>> command_keys(("SET", "k", "secret value", "EX", 30))
    ('k',)
    >>> command_keys(("EVALSHA", "ab12", 2, "k1", "k2", "arg"))
    ('k1', 'k2')
    >>> command_keys(("AUTH", "user", "password"))
    ()
    """
    name = _name(args[0])
    if name in _FIRST_KEY:
        return args[1:2]
    if name in _ALL_KEYS:
        return args[1:]
    if name in _SCRIPTS:
        try:
            return args[3 : 3 + int(args[2])]
        except (IndexError, TypeError, ValueError):
            return ()
    if name in _TWO_KEYS:
        return args[1:3]
    if name in _PAIRS:
        return args[1::2]
    return ()


def _name(raw: Any) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return str(raw).upper()


class CacheCounters:
    """The counters of one cache; get it with ``conn.metrics.cache(name)``.

    Examples
    --------
    >>> metrics = Metrics()
    >>> counters = metrics.cache("market_data")
    >>> counters.read("price", found=True)
    >>> counters.read("price", found=False)
    >>> metrics.cache_stats()["market_data"]["hit_rate"]
    0.5
    """

    __slots__ = ("_children", "_metrics", "name")

    def __init__(self, metrics: Metrics, name: str):
        self._metrics = metrics
        self.name = name
        self._children: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        return f"CacheCounters({self.name!r})"

    def _child(self, event: str, family: str) -> Any:
        child = self._children.get((event, family))
        if child is None:
            child = self._children[(event, family)] = self._metrics._cache_counters[event].labels(self.name, family)
        return child

    def read(self, family: str, found: bool) -> None:
        """One read of ``family``: a hit if it ``found`` a value, else a miss."""
        self._child("hits" if found else "misses", family).inc()

    def reads(self, family: str, hits: int, misses: int) -> None:
        """A batch read (MGET...) that found ``hits`` values and missed ``misses``."""
        if hits:
            self._child("hits", family).inc(hits)
        if misses:
            self._child("misses", family).inc(misses)

    def write(self, family: str, count: int = 1) -> None:
        """``count`` values written."""
        if count:
            self._child("writes", family).inc(count)

    def expired(self, family: str, count: int = 1) -> None:
        """``count`` entries seen to have expired by TTL."""
        if count:
            self._child("expired", family).inc(count)


class Metrics:
    """The counters and timings of one connection, in a registry of its own.

    Parameters
    ----------
    keys : KeySchema, optional
        Attributes failing commands to caches and redacts keys in the command log.
    registry : prometheus_client.CollectorRegistry, optional
        Where the metrics live; a new one by default, so counts start at zero.

    Examples
    --------
    >>> metrics = Metrics()
    >>> metrics.command_done(("GET", "redtick:market:price:{BTCUSDT}"), 0.0002)
    >>> metrics.value("redtick_redis_commands_total", command="GET")
    1.0
    """

    def __init__(self, keys: KeySchema | None = None, registry: CollectorRegistry | None = None):
        self.keys = keys or KeySchema()
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.round_trips = Histogram(
            "redtick_redis_round_trip_seconds", "Redis round trips as the client sees them (PIPELINE/MULTI: a batch)",
            ["command"], buckets=ROUND_TRIP_BUCKETS, registry=r,
        )
        self.commands = Counter("redtick_redis_commands", "Redis commands sent, pipelined ones included", ["command"],
                                registry=r)
        self.command_errors = Counter("redtick_redis_errors", "Redis round trips that failed", ["command", "error"],
                                      registry=r)
        described = {
            "hits": "Cache reads that found a value",
            "misses": "Cache reads that found nothing (absent or expired)",
            "writes": "Values written to a cache",
            "expired": "Cache entries redtick saw expire by TTL (sessions only; Redis expires keys silently)",
        }
        self._cache_counters = {
            event: Counter(f"redtick_cache_{event}", text, ["cache", "family"], registry=r)
            for event, text in described.items()
        }
        self.cache_errors = Counter("redtick_cache_errors", "Redis failures by the cache and family of their key",
                                    ["cache", "family", "error"], registry=r)
        self._caches: dict[str, CacheCounters] = {}
        self._timers: dict[Any, Any] = {}
        self._counts: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"Metrics({self.keys.namespace!r})"

    def cache(self, name: str) -> CacheCounters:
        """The counters of the cache called ``name`` (made on first use)."""
        counters = self._caches.get(name)
        if counters is None:
            counters = self._caches.setdefault(name, CacheCounters(self, name))
        return counters

    # -- the command layer (called by redtick.connection for every round trip) -------------------
    def _timer(self, raw: Any) -> tuple[Any, Any]:
        timer = self._timers.get(raw)
        if timer is None:
            name = _name(raw)
            timer = self._timers[raw] = (self.round_trips.labels(name), self.commands.labels(name))
        return timer

    def command_done(self, args: tuple[Any, ...], seconds: float) -> None:
        """One command answered after ``seconds``."""
        histogram, counter = self._timer(args[0])
        histogram.observe(seconds)
        counter.inc()
        if command_log.isEnabledFor(_DEBUG):
            command_log.debug("%s %s %.3f ms", _name(args[0]), self._shown(command_keys(args)), seconds * 1e3)

    def command_failed(self, args: tuple[Any, ...], seconds: float, exc: BaseException) -> None:
        """One command that raised ``exc`` after ``seconds``."""
        name = _name(args[0])
        self._failed(name, command_keys(args), exc)
        self.commands.labels(name).inc()
        if command_log.isEnabledFor(_DEBUG):
            command_log.debug("%s %s failed after %.3f ms (%s)", name, self._shown(command_keys(args)), seconds * 1e3,
                              type(exc).__name__)

    def pipeline_done(self, kind: str, stack: list[Any], seconds: float) -> None:
        """A pipelined batch of ``stack`` (redis-py's ``[(args, options), ...]``) answered after ``seconds``."""
        self._timer(kind)[0].observe(seconds)
        for raw, count in _Tally(_args(entry)[0] for entry in stack).items():
            self._timer(raw)[1].inc(count)
        if command_log.isEnabledFor(_DEBUG):
            command_log.debug("%s of %d %.3f ms: %s", kind, len(stack), seconds * 1e3, self._listed(stack))

    def pipeline_failed(self, kind: str, stack: list[Any], seconds: float, exc: BaseException) -> None:
        """A pipelined batch that raised ``exc``; counted against its first command's key."""
        first = _args(stack[0]) if stack else (kind,)
        self._failed(kind, command_keys(first), exc)
        for raw, count in _Tally(_args(entry)[0] for entry in stack).items():
            self._timer(raw)[1].inc(count)
        if command_log.isEnabledFor(_DEBUG):
            command_log.debug("%s of %d failed after %.3f ms (%s): %s", kind, len(stack), seconds * 1e3,
                              type(exc).__name__, self._listed(stack))

    def _failed(self, name: str, keys: tuple[Any, ...], exc: BaseException) -> None:
        error = type(exc).__name__
        self.command_errors.labels(name, error).inc()
        first = keys[0] if keys and isinstance(keys[0], str | bytes) else b""  # b"" is outside every namespace
        self.cache_errors.labels(*self.keys.describe(first).metric_labels, error).inc()

    def _shown(self, keys: tuple[Any, ...]) -> str:
        shown = " ".join(self.keys.redact(k) if isinstance(k, str | bytes) else "?" for k in keys[:_SHOWN_KEYS])
        return shown + (f" (+{len(keys) - _SHOWN_KEYS} keys)" if len(keys) > _SHOWN_KEYS else "")

    def _listed(self, stack: list[Any]) -> str:
        return "; ".join(f"{_name(args[0])} {self._shown(command_keys(args))}".rstrip()
                         for args in map(_args, stack))

    # -- reading ---------------------------------------------------------------------------------
    def value(self, name: str, **labels: str) -> float:
        """The current value of one sample (0.0 if never counted): exact, for tests and reports.

        ``name`` is the sample's exposition name, such as ``"redtick_cache_hits_total"``.
        """
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def cache_stats(self) -> dict[str, dict[str, Any]]:
        """``{cache: {hits, misses, writes, expired, errors, hit_rate, families: {family: {...}}}}``.

        ``hit_rate`` is hits / (hits + misses), or None before the first read.
        """
        rows: dict[tuple[str, str], dict[str, float]] = {}
        for event, counter in (*self._cache_counters.items(), ("errors", self.cache_errors)):
            for metric in counter.collect():
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        row = rows.setdefault((sample.labels["cache"], sample.labels["family"]),
                                              dict.fromkeys(CACHE_EVENTS, 0))
                        row[event] += int(sample.value)
        stats: dict[str, dict[str, Any]] = {}
        for (cache, family), row in sorted(rows.items()):
            total = stats.setdefault(cache, {**dict.fromkeys(CACHE_EVENTS, 0), "families": {}})
            for event in CACHE_EVENTS:
                total[event] += row[event]
            total["families"][family] = {**row, "hit_rate": _rate(row)}
        for total in stats.values():
            total["hit_rate"] = _rate(total)
        return stats

    def hit_rates(self) -> dict[str, float | None]:
        """``{cache: hit rate or None}`` of every cache that counted anything."""
        return {cache: row["hit_rate"] for cache, row in self.cache_stats().items()}

    def overall_hit_rate(self) -> float | None:
        """Hits / (hits + misses) over every cache, or None before the first read."""
        stats = self.cache_stats().values()
        return _rate({"hits": sum(s["hits"] for s in stats), "misses": sum(s["misses"] for s in stats)})

    def frame(self) -> pd.DataFrame:
        """The per-family counts of :meth:`cache_stats` as a DataFrame indexed by (cache, family).

        Examples
        --------
        >>> metrics = Metrics()
        >>> metrics.cache("market_data").reads("price", hits=3, misses=1)
        >>> frame = metrics.frame()
        >>> int(frame.loc[("market_data", "price"), "hits"]), float(frame.loc[("market_data", "price"), "hit_rate"])
        (3, 0.75)
        """
        columns = [*CACHE_EVENTS, "hit_rate"]
        rows = {(cache, family): [row[c] for c in columns]
                for cache, stats in self.cache_stats().items() for family, row in stats["families"].items()}
        index = pd.MultiIndex.from_tuples(list(rows), names=["cache", "family"])
        frame = pd.DataFrame(list(rows.values()), index=index, columns=columns)
        return frame.astype({**dict.fromkeys(CACHE_EVENTS, "int64"), "hit_rate": "float64"})

    def exposition(self) -> bytes:
        """This connection's metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def _rate(row: dict[str, Any]) -> float | None:
    reads = row["hits"] + row["misses"]
    return None if reads == 0 else round(row["hits"] / reads, 6)


def _args(entry: Any) -> tuple[Any, ...]:
    """A pipeline stack entry's arguments: redis-py's ``(args, options)`` or a cluster ``PipelineCommand``."""
    args = getattr(entry, "args", None)
    return tuple(args if args is not None else entry[0])
