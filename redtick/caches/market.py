"""``MarketDataCache``: latest prices, order books, recent trades, 24h statistics and symbol info."""

from __future__ import annotations

from typing import Any

from redtick import checks
from redtick.caches.base import CacheFront, check_ttl
from redtick.clock import iso_ms, now_ms
from redtick.connection import Connection
from redtick.errors import InvalidData
from redtick.keys import validate_symbol
from redtick.ticks import to_epoch_ms

__all__ = ["DEFAULT_TTLS", "MarketDataCache", "market_data_cache"]

# Seconds, from the platform's TTL table: real-time data 10-30 s, market data 1-5 min, static 1 h+.
DEFAULT_TTLS = {"price": 30, "orderbook": 10, "trades": 300, "stats24h": 300, "info": 3600}
MAX_TRADES = 1000
SYMBOL_LIST_HORIZON_MS = 86_400_000  # get_all_symbols lists symbols priced within a day


def _number(value: Any, name: str, *, positive: bool) -> float:
    return checks.number(value, name, above=0) if positive else checks.number(value, name, low=0)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidData(f"{name} must be a dict, not {type(value).__name__}")
    return dict(value)


def _levels(levels: Any, side: str) -> list[list[float]]:
    if not isinstance(levels, list | tuple):
        raise InvalidData(f"order book {side} must be a list of [price, quantity] pairs")
    out = []
    for level in levels:
        if not isinstance(level, list | tuple) or len(level) != 2:
            raise InvalidData(f"order book {side} level {level!r}: expected [price, quantity]")
        out.append([_number(level[0], f"{side} price", positive=True),
                    _number(level[1], f"{side} quantity", positive=False)])
    return out


class MarketDataCache(CacheFront):
    """Market data per symbol, each kind with its own default TTL (``DEFAULT_TTLS``), JSON values.

    Every key carries the symbol as a hash tag. Values are validated before anything is written.
    It writes only its own keys (``market:<kind>:{SYMBOL}`` and the symbol list), through the
    methods below: there is no generic get/set.

    Examples
    --------
    >>> import asyncio
    >>> cache = MarketDataCache()
    >>> async def demo():
    ...     await cache.set_symbol_price("BTCUSDT", {"price": 50000.0, "volume": 1000.0}, ttl=30)
    ...     price = await cache.get_symbol_price("BTCUSDT")
    ...     return price["price"], await cache.is_price_fresh("BTCUSDT", max_age_seconds=60)
    >>> asyncio.run(demo())
    (50000.0, True)
    """

    metrics_name = "market_data"

    def __init__(self, conn: Connection | None = None, ttls: dict[str, int] | None = None):
        self._conn = conn
        self.ttls = {**DEFAULT_TTLS, **(ttls or {})}
        for kind, ttl in self.ttls.items():
            check_ttl(ttl, name=f"ttl of {kind}")

    def __repr__(self) -> str:
        return f"MarketDataCache(ttls={self.ttls})"

    def _ttl_of(self, kind: str, ttl: int | None) -> int:
        return self.ttls[kind] if ttl is None else check_ttl(ttl)

    async def _put(self, kind: str, symbol: str, value: Any, ttl: int | None) -> bool:
        key = self.keys.market(kind, symbol)
        stored = bool(await self.redis.set(key, self.codec.encode(value), ex=self._ttl_of(kind, ttl)))
        self.counters.write(kind)
        return stored

    async def _get(self, kind: str, symbol: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self.keys.market(kind, symbol))
        self.counters.read(kind, raw is not None)
        value: dict[str, Any] | None = self.codec.decode(raw)  # every kind is stored as a dict
        return value

    # -- prices ----------------------------------------------------------------------------------
    async def set_symbol_price(self, symbol: str, price_data: dict[str, Any], ttl: int | None = None) -> bool:
        """Cache the latest price of ``symbol``; adds ``symbol`` and a UTC ``timestamp`` if missing."""
        symbol = validate_symbol(symbol)
        data = _mapping(price_data, "price_data")
        _number(data.get("price"), "price", positive=True)
        now = now_ms()
        stamp = to_epoch_ms(data["timestamp"], name="timestamp") if "timestamp" in data else now
        data.setdefault("symbol", symbol)
        data.setdefault("timestamp", iso_ms(stamp))
        seconds = self._ttl_of("price", ttl)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.market("price", symbol), self.codec.encode(data), ex=seconds)
            pipe.zadd(self.keys.market_symbols(), {symbol: stamp})
            pipe.zremrangebyscore(self.keys.market_symbols(), "-inf", now - SYMBOL_LIST_HORIZON_MS)
            await pipe.execute()
        self.counters.write("price")
        return True

    async def get_symbol_price(self, symbol: str) -> dict[str, Any] | None:
        """The cached price of ``symbol`` (with its ``timestamp``), or None once it expired."""
        return await self._get("price", validate_symbol(symbol))

    async def is_price_fresh(self, symbol: str, max_age_seconds: float = 60) -> bool:
        """True if the cached price exists and its timestamp is at most ``max_age_seconds`` old."""
        max_age = _number(max_age_seconds, "max_age_seconds", positive=True)
        price = await self.get_symbol_price(symbol)
        if price is None:
            return False
        age_ms = now_ms() - to_epoch_ms(price["timestamp"], name="timestamp")
        return age_ms <= max_age * 1000

    async def get_all_symbols(self) -> list[str]:
        """Symbols priced within the last day, sorted."""
        since = now_ms() - SYMBOL_LIST_HORIZON_MS
        members: list[bytes] = await self.redis.zrangebyscore(self.keys.market_symbols(), since, "+inf")
        return sorted(m.decode() for m in members)

    # -- order books -----------------------------------------------------------------------------
    async def set_order_book(self, symbol: str, order_book: dict[str, Any], ttl: int | None = None) -> bool:
        """Cache an order book ``{"bids": [[price, qty], ...], "asks": [...]}`` (validated)."""
        symbol = validate_symbol(symbol)
        book = _mapping(order_book, "order_book")
        book["bids"] = _levels(book.get("bids", []), "bids")
        book["asks"] = _levels(book.get("asks", []), "asks")
        book.setdefault("symbol", symbol)
        book.setdefault("timestamp", iso_ms(now_ms()))
        return await self._put("orderbook", symbol, book, ttl)

    async def get_order_book(self, symbol: str, depth: int | None = None) -> dict[str, Any] | None:
        """The cached order book, optionally cut to ``depth`` levels a side."""
        if depth is not None:
            depth = checks.whole(depth, "depth", low=0, expected="a whole number of levels, 0 or more")
        book = await self._get("orderbook", validate_symbol(symbol))
        if book is not None and depth is not None:
            book["bids"], book["asks"] = book["bids"][:depth], book["asks"][:depth]
        return book

    # -- trades ----------------------------------------------------------------------------------
    async def add_trade_history(self, symbol: str, trade: dict[str, Any], ttl: int | None = None,
                                max_trades: int = MAX_TRADES) -> int:
        """Push a trade onto the symbol's recent trades (newest first, capped at ``max_trades``).

        Returns the list's length after the push.
        """
        symbol = validate_symbol(symbol)
        data = _mapping(trade, "trade")
        _number(data.get("price"), "price", positive=True)
        _number(data.get("quantity", data.get("volume", 0.0)), "quantity", positive=False)
        if data.get("side") not in (None, "buy", "sell"):
            raise InvalidData(f"side={data['side']!r}: expected 'buy' or 'sell'")
        checks.whole(max_trades, "max_trades", low=1)
        data.setdefault("symbol", symbol)
        data.setdefault("timestamp", iso_ms(now_ms()))
        key = self.keys.market("trades", symbol)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, self.codec.encode(data))
            pipe.ltrim(key, 0, max_trades - 1)
            pipe.expire(key, self._ttl_of("trades", ttl))
            pipe.llen(key)
            *_, length = await pipe.execute()
        self.counters.write("trades")
        return int(length)

    async def get_trade_history(self, symbol: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` trades, newest first."""
        limit = checks.whole(limit, "limit", low=1)
        raw = await self.redis.lrange(self.keys.market("trades", validate_symbol(symbol)), 0, limit - 1)
        self.counters.read("trades", bool(raw))
        return [self.codec.decode(item) for item in raw]

    # -- 24h statistics and symbol information ---------------------------------------------------
    async def set_24h_stats(self, symbol: str, stats: dict[str, Any], ttl: int | None = None) -> bool:
        """Cache 24h statistics (high, low, volume, change...)."""
        symbol = validate_symbol(symbol)
        return await self._put("stats24h", symbol, _mapping(stats, "stats"), ttl)

    async def get_24h_stats(self, symbol: str) -> dict[str, Any] | None:
        return await self._get("stats24h", validate_symbol(symbol))

    async def set_symbol_info(self, symbol: str, info: dict[str, Any], ttl: int | None = None) -> bool:
        """Cache static symbol information (tick size, lot size, base and quote assets...)."""
        symbol = validate_symbol(symbol)
        return await self._put("info", symbol, _mapping(info, "info"), ttl)

    async def get_symbol_info(self, symbol: str) -> dict[str, Any] | None:
        return await self._get("info", validate_symbol(symbol))


market_data_cache = MarketDataCache()
