"""MarketDataCache: the spec's calls, TTLs from the table, validation before writing."""

import pytest

from redtick.caches.market import DEFAULT_TTLS, MarketDataCache
from redtick.errors import InvalidData, InvalidKey


async def test_prices_with_timestamp_freshness_and_symbols(conn):
    cache = MarketDataCache(conn)
    await cache.set_symbol_price("BTCUSDT", {"symbol": "BTCUSDT", "price": 50000.0, "volume": 1000.0, "change_24h": 2.5})
    price = await cache.get_symbol_price("BTCUSDT")
    assert price["price"] == 50000.0 and price["timestamp"].endswith("Z")
    assert await cache.is_price_fresh("BTCUSDT", max_age_seconds=60)
    assert 0 < await conn.async_client().ttl(conn.keys.market("price", "BTCUSDT")) <= DEFAULT_TTLS["price"]
    await cache.set_symbol_price("ETHUSDT", {"price": 2500.0, "timestamp": "2020-01-01T00:00:00Z"}, ttl=120)
    assert not await cache.is_price_fresh("ETHUSDT", max_age_seconds=60)
    assert 60 < await conn.async_client().ttl(conn.keys.market("price", "ETHUSDT")) <= 120
    assert await cache.get_all_symbols() == ["BTCUSDT"]  # ETHUSDT's price is years old
    assert not await cache.is_price_fresh("NOPE")


async def test_order_book_round_trip_and_depth(conn):
    cache = MarketDataCache(conn)
    book = {"symbol": "BTCUSDT", "bids": [[49950.0, 1.5], [49940.0, 2.0]], "asks": [[50050.0, 1.2], [50060.0, 0.8]]}
    await cache.set_order_book("BTCUSDT", book, ttl=10)
    got = await cache.get_order_book("BTCUSDT")
    assert got["bids"] == book["bids"] and got["asks"] == book["asks"]
    assert (await cache.get_order_book("BTCUSDT", depth=1))["asks"] == [[50050.0, 1.2]]
    assert 0 < await conn.async_client().ttl(conn.keys.market("orderbook", "BTCUSDT")) <= 10


async def test_trade_history_is_capped_newest_first(conn):
    cache = MarketDataCache(conn)
    for i in range(15):
        length = await cache.add_trade_history("BTCUSDT", {"price": 50000.0 + i, "quantity": 0.1, "side": "buy"},
                                               max_trades=10)
    assert length == 10
    trades = await cache.get_trade_history("BTCUSDT", limit=3)
    assert [t["price"] for t in trades] == [50014.0, 50013.0, 50012.0]


async def test_stats_and_info(conn):
    cache = MarketDataCache(conn)
    await cache.set_24h_stats("BTCUSDT", {"high": 51000.0, "low": 49000.0, "volume": 12345.0})
    await cache.set_symbol_info("BTCUSDT", {"base": "BTC", "quote": "USDT", "tick_size": 0.01})
    assert (await cache.get_24h_stats("BTCUSDT"))["high"] == 51000.0
    assert (await cache.get_symbol_info("BTCUSDT"))["base"] == "BTC"
    assert await conn.async_client().ttl(conn.keys.market("info", "BTCUSDT")) > 3000


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("set_symbol_price", ("BTCUSDT", {"price": float("nan")})),
        ("set_symbol_price", ("BTCUSDT", {"volume": 1.0})),
        ("set_symbol_price", ("BTCUSDT", {"price": 1.0}, 0)),
        ("set_order_book", ("BTCUSDT", {"bids": [[1.0]], "asks": []})),
        ("set_order_book", ("BTCUSDT", {"bids": [[-1.0, 1.0]], "asks": []})),
        ("add_trade_history", ("BTCUSDT", {"price": 1.0, "side": "hold"})),
        ("set_24h_stats", ("BTCUSDT", ["not", "a", "dict"])),
    ],
)
async def test_bad_input_raises_and_writes_nothing(conn, call, args):
    cache = MarketDataCache(conn)
    with pytest.raises(InvalidData):
        await getattr(cache, call)(*args)
    assert list(conn.sync.scan_iter(match=conn.keys.everything())) == []


async def test_bad_symbol_raises_invalid_key(conn):
    with pytest.raises(InvalidKey):
        await MarketDataCache(conn).set_symbol_price("BTC*", {"price": 1.0})


@pytest.mark.parametrize("generic", ["get", "set", "delete", "get_many", "set_many", "clear", "scan_keys"])
def test_no_generic_key_value_api_that_writes_outside_its_layout(generic):
    """The market cache holds a codec and writes only its own keys; the spec never calls a generic get/set on it."""
    assert not hasattr(MarketDataCache, generic)
