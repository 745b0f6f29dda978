"""Knowing what is stored: list_symbols, describe, and SymbolNotFound naming close matches."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

import redtick
from redtick.caches.prices import PriceCache
from redtick.errors import SymbolNotFound

T0 = 1_378_215_000_000  # 2013-09-03 13:30 UTC


def ticks(n: int, start: int = T0) -> pd.DataFrame:
    return pd.DataFrame({"ts": start + np.arange(n) * 1_500, "price": 100 + np.arange(n) % 7 * 0.25,
                         "volume": 1.0 + np.arange(n) % 3, "trade_id": np.arange(n)})


def test_list_symbols_and_the_async_twin_agree(conn):
    for symbol in ("ES", "NQ", "BTCUSDT"):
        redtick.write_ticks(ticks(10), symbol, conn=conn)
    assert redtick.list_symbols(conn=conn) == ["BTCUSDT", "ES", "NQ"]
    cache = PriceCache(conn)

    async def both():
        try:
            return sorted(await cache.get_all_symbols())
        finally:
            await conn.aclose()

    assert asyncio.run(both()) == ["BTCUSDT", "ES", "NQ"]


def test_describe_tells_ticks_intervals_bytes_and_retention(conn):
    frame = ticks(5_000)
    redtick.write_ticks(frame, "ES", conn=conn)
    info = redtick.describe("ES", conn=conn)
    assert info.ticks == 5_000
    assert info.first_tick == pd.Timestamp(T0, unit="ms", tz="UTC")
    assert info.last_tick == pd.Timestamp(T0 + 4_999 * 1_500, unit="ms", tz="UTC")
    by_interval = info.frame()
    reference = pd.Series(1, index=pd.to_datetime(frame["ts"], unit="ms", utc=True))
    for interval, rule in [("1m", "1min"), ("5m", "5min"), ("1h", "1h")]:
        buckets = reference.resample(rule).count()
        buckets = buckets[buckets > 0]
        assert by_interval.loc[interval, "candles"] == len(buckets)
        assert by_interval.loc[interval, "first"] == buckets.index[0]
        assert by_interval.loc[interval, "last"] == buckets.index[-1]
    assert info.bytes >= 5_000 * 33 and info.bytes_measured == (not conn.in_memory)
    assert info.tick_retention is None and info.candle_retention is None
    assert "ES" in str(info) and "retention off" in str(info)
    kept = conn.with_settings(tick_retention_ms=7 * 86_400_000)
    assert redtick.describe("ES", conn=kept).tick_retention == pd.Timedelta("7D")


def test_an_unknown_symbol_is_an_error_naming_close_matches(conn):
    redtick.write_ticks(ticks(10), "BTCUSDT", conn=conn)
    with pytest.raises(SymbolNotFound, match=r"'BTCUSD'.*did you mean 'BTCUSDT'") as raised:
        redtick.load_ticks("BTCUSD", conn=conn)
    assert isinstance(raised.value, LookupError) and raised.value.close_matches == ["BTCUSDT"]
    with pytest.raises(SymbolNotFound, match="BTCUSD"):
        redtick.load_ohlcv("BTCUSD", "1m", conn=conn)
    with pytest.raises(SymbolNotFound, match="NOPE"):
        redtick.describe("NOPE", conn=conn)


def test_a_multi_symbol_read_raises_unless_told_to_skip(conn):
    redtick.write_ticks(ticks(10), "ES", conn=conn)
    with pytest.raises(SymbolNotFound, match="NQ"):
        redtick.load_ticks(["ES", "NQ"], conn=conn)
    with pytest.raises(SymbolNotFound, match="NQ"):
        redtick.load_ohlcv(["ES", "NQ"], "1m", conn=conn)
    skipped = redtick.load_ticks(["ES", "NQ"], conn=conn, missing="skip")
    assert skipped.index.get_level_values("symbol").unique().tolist() == ["ES"] and len(skipped) == 10
    candles = redtick.load_ohlcv(["ES", "NQ"], "1m", conn=conn, missing="skip")
    assert candles.index.get_level_values("symbol").unique().tolist() == ["ES"]


def test_skipping_every_symbol_gives_an_empty_keyed_frame(conn):
    redtick.write_ticks(ticks(3), "ES", conn=conn)
    empty = redtick.load_ticks(["NQ", "YM"], conn=conn, missing="skip", columns=["price", "trade_id"])
    assert empty.empty and list(empty.columns) == ["price", "trade_id"] and empty.index.names == ["symbol", "ts"]


def test_a_symbol_named_twice_is_refused(conn):
    redtick.write_ticks(ticks(3), "ES", conn=conn)
    with pytest.raises(redtick.InvalidData, match="more than once"):
        redtick.load_ticks(["ES", "ES"], conn=conn)
