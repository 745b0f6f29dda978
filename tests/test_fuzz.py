"""Hostile input to the public writers, readers, key parts and codecs: a typed error or a correct result.

Never another exception type, never a hang, never a key written outside the test's namespace.
Every Redis-touching test runs on each backend of the ``conn`` fixture; examples are few and
small so the whole file stays within about a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import logging
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from redtick import codec, frames
from redtick.caches.alerts import PriceAlerts
from redtick.caches.base import BaseCache
from redtick.caches.market import MarketDataCache
from redtick.caches.prices import PriceCache
from redtick.caches.sessions import UserSessionCache
from redtick.catalog import list_symbols
from redtick.errors import InvalidKey, RedtickError
from redtick.keys import KeySchema, glob_escape, validate_symbol
from redtick.ticks import to_epoch_ms

FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PURE = settings(max_examples=400, deadline=None, derandomize=True)

# -- hostile values ----------------------------------------------------------------------------------
control = st.text(st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), min_size=1, max_size=8)
texts = st.one_of(
    st.text(max_size=40),
    control,
    st.sampled_from(["", " ", "*", "?", "[", "]", "{", "}", "{BTC}", ":", "a:b", "../x", "\x00", "\r\n", "é",
                     "\U0001f680", "BTC USDT", "btcusdt", "A" * 33, "A" * 10_000, "NaN", "inf", "-1", "1e308"]),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -0.0, 1e-320, 1e308, -1, 2**63, 2**64, float("nan"), float("inf"), -float("inf")]),
)
times = st.one_of(
    numbers,
    texts,
    st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)),
    st.sampled_from(["1677-09-21", "2262-04-12", "9999-12-31T23:59:59Z", "0001-01-01", "2024-01-01T00:00Z",
                     pd.Timestamp.min, pd.Timestamp.max, pd.NaT, np.datetime64("NaT"), b"2024", True]),
)
odd_types = st.sampled_from([None, True, b"bytes", bytearray(b"x"), [1, 2], (1,), {"a": 1}, {1, 2}, object(),
                             np.int64(5), np.float32("nan"), Ellipsis, 1j])
anything = st.one_of(texts, numbers, times, odd_types)
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(texts, numbers), inner, max_size=4)),
    max_leaves=12,
)
# Symbols as exchanges and data vendors spell them, and text from the wider alphabet that crowds
# the rule's edges: reserved glob and hash-tag characters, whitespace, separators, accents, length.
real_symbols = st.sampled_from(["btcusdt", "BTCUSDT", "BRK.B", "ES=F", "^GSPC", "EUR/USD", "BINANCE:BTCUSDT", "ES1!",
                                "\u5e01\u5b89\u4eba\u751fUSDT", "a:b", "FUZZ:", "x" * 64, "x" * 65, "e\u0301",
                                "'\"%,;", "..", "..."])
near_symbols = st.text(st.one_of(st.sampled_from("{}*?[]\\ \t\n:/.=^!$#'\"%@,;|~`\u00a0\u202e\x00"),
                                 st.characters(codec="utf-8")), min_size=1, max_size=70)
wide_symbols = st.one_of(real_symbols, near_symbols)
symbols = st.one_of(st.sampled_from(["FUZZ", "FUZZ2", "A.B/C-D_1"]), wide_symbols, texts, odd_types)
user_ids = st.one_of(texts, odd_types, st.integers(-(10**70), 10**70), st.sampled_from(["user:123", "u:1:2", "a@b.c"]))
intervals = st.one_of(st.sampled_from(["1m", "5m", "2h", "7m", "0m", "1x", "1d", "1w", "99999999999d"]), texts, odd_types)
columns = st.one_of(st.none(), texts, st.lists(st.one_of(st.sampled_from(["price", "volume", "open", "count", "side",
                                                                           "trade_id"]), texts), max_size=4), odd_types)
tick_rows = st.lists(
    st.fixed_dictionaries(
        {"ts": st.one_of(st.integers(1_704_067_200_000, 1_704_070_800_000), times), "price": numbers},
        optional={"volume": numbers, "trade_id": st.one_of(st.integers(-(2**63), 2**63 - 1), numbers, texts),
                  "side": st.one_of(st.sampled_from(["buy", "sell", "B", "ask"]), texts), "extra": anything},
    ),
    max_size=20,
)


def outside_keys(conn) -> set[bytes]:
    prefix = conn.keys.prefix.encode()
    return {k for k in conn.sync.scan_iter(count=1000) if not k.startswith(prefix)}


@pytest.fixture
def guarded(conn):
    """The backend under test, and a check that no key appeared outside its namespace."""
    before = outside_keys(conn)

    def check() -> None:
        assert outside_keys(conn) <= before, "a key was written outside the namespace"

    yield conn, check
    check()


def typed(call, *args, **kwargs):
    """``call(...)``'s result, or None when it raised a redtick error; anything else propagates."""
    try:
        return call(*args, **kwargs)
    except RedtickError:
        return None


async def typed_async(awaitable):
    try:
        return await awaitable
    except RedtickError:
        return None


# -- pure: key parts and codecs ------------------------------------------------------------------------
@PURE
@given(st.one_of(texts, odd_types), st.one_of(texts, odd_types, numbers))
def test_key_parts(part, other):
    keys = KeySchema("fuzz")
    builders = [
        lambda: keys.tick_index(part), lambda: keys.tick_chunk(part, 0), lambda: keys.candle_chunk(part, other, 0),
        lambda: keys.current_price(part), lambda: keys.market(part, "BTC"), lambda: keys.market("price", part),
        lambda: keys.session(part), lambda: keys.user_sessions(part), lambda: keys.user_preferences(part),
        lambda: keys.rate_limit(part, other), lambda: keys.alert_index(part, other), lambda: keys.alert_log(part, other),
        lambda: keys.snapshot(part), lambda: keys.key(part), lambda: keys.key("a", part), lambda: keys.pattern(part),
        lambda: keys.response(part, other), lambda: keys.repository(part, "m", "1", other),
    ]
    for build in builders:
        key = typed(build)
        if key is not None:
            assert key.startswith("fuzz:") and all(ch.isprintable() and not ch.isspace() for ch in key)
    assert typed(KeySchema, part) is None or (isinstance(part, str) and part.isascii())


@PURE
@given(json_like)
def test_codec_round_trip_or_invalid(value):
    data = typed(codec.dumps, value)
    if data is not None:
        assert isinstance(data, bytes)
        codec.loads(data)  # what dumps wrote, loads reads


@PURE
@given(st.one_of(st.binary(max_size=200), texts, odd_types, numbers))
def test_codec_loads_and_keys(raw):
    typed(codec.loads, raw)
    typed(codec.make_fernet, raw)


# -- writers -----------------------------------------------------------------------------------------
_fresh = itertools.count()


@FUZZ
@given(rows=tick_rows, errors=st.one_of(st.sampled_from(["skip", "raise"]), anything),
       batch_size=st.one_of(st.sampled_from([1, 3, 100_000]), anything), hostile_symbol=st.one_of(st.none(), symbols))
def test_write_ticks(guarded, rows, errors, batch_size, hostile_symbol):
    conn, check = guarded
    symbol = hostile_symbol if hostile_symbol is not None else f"WT{next(_fresh)}"
    result = typed(frames.write_ticks, rows, symbol, conn=conn, errors=errors, batch_size=batch_size)
    check()
    if result is None:
        return
    stored = frames.load_ticks(symbol, conn=conn, columns=["price", "volume", "trade_id"], missing="skip")
    if hostile_symbol is None:  # a symbol of its own: what is stored is exactly what was written
        assert len(stored) == result.written == result.received - result.duplicates - sum(result.rejected.values())
    assert np.isfinite(stored["price"]).all()  # zero and negative prices are prices
    assert (stored["volume"] >= 0).all() and not stored.reset_index().duplicated(["ts", "trade_id"]).any()


candle_rows = st.lists(
    st.fixed_dictionaries({"ts": st.one_of(st.just("2024-01-01T00:00Z"), st.just(1_704_067_260_000), times),
                           "open": numbers, "high": numbers, "low": numbers, "close": numbers},
                          optional={"volume": numbers, "count": anything}),
    max_size=6,
)


@FUZZ
@given(rows=candle_rows, interval=intervals, errors=st.one_of(st.sampled_from(["skip", "raise"]), anything),
       symbol=symbols)
def test_write_candles(guarded, rows, interval, errors, symbol):
    conn, check = guarded
    result = typed(frames.write_candles, rows, symbol, interval, conn=conn, errors=errors)
    check()
    if result is not None:
        got = frames.load_ohlcv(symbol, interval, conn=conn, columns=["open", "high", "low", "close", "volume"],
                                missing="skip")
        assert np.isfinite(got.to_numpy()).all()
        assert (got["high"] >= got[["open", "close"]].max(axis=1)).all()


# -- readers -----------------------------------------------------------------------------------------
@pytest.fixture
def seeded(guarded):
    conn, check = guarded
    ticks = pd.DataFrame({"ts": 1_704_067_200_000 + np.arange(300) * 20_000, "price": 100 + np.arange(300) * 0.5,
                          "volume": 1.0, "trade_id": np.arange(300)})
    frames.write_ticks(ticks, "FUZZ", conn=conn)
    return conn, check, ticks


@FUZZ
@given(symbol=st.one_of(symbols, st.lists(symbols, max_size=3)), start=st.one_of(st.none(), times),
       end=st.one_of(st.none(), times), interval=intervals, cols=columns)
def test_readers(seeded, symbol, start, end, interval, cols):
    conn, check, ticks = seeded
    got = typed(frames.load_ticks, symbol, start, end, columns=cols, conn=conn)
    if got is not None and symbol == "FUZZ":
        lo = -math.inf if start is None else to_epoch_ms(start)
        hi = math.inf if end is None else to_epoch_ms(end)
        expected = ticks[(ticks["ts"] >= lo) & (ticks["ts"] <= hi)]
        assert len(got) == len(expected)
    candles = typed(frames.load_ohlcv, symbol, interval, start, end, columns=cols, conn=conn)
    if candles is not None and symbol == "FUZZ" and (cols is None or "volume" in cols):
        assert candles["volume"].sum() <= len(ticks)
    check()


# -- async setters -------------------------------------------------------------------------------------
@FUZZ
@given(symbol=symbols, price=numbers, volume=numbers, timestamp=st.one_of(st.none(), times),
       trade_id=st.one_of(st.none(), anything), side=st.one_of(st.none(), anything), data=json_like,
       key=st.one_of(texts, odd_types), ttl=st.one_of(st.none(), numbers, odd_types), user=user_ids,
       condition=st.one_of(st.sampled_from(["above", "below", "crosses"]), texts))
def test_async_setters(guarded, symbol, price, volume, timestamp, trade_id, side, data, key, ttl, user, condition):
    conn, check = guarded

    async def scenario():
        try:
            prices, market = PriceCache(conn), MarketDataCache(conn)
            result = await typed_async(prices.set_current_price(symbol, price, volume, timestamp=timestamp,
                                                                 trade_id=trade_id, side=side))
            if result is not None:
                assert result.written + result.duplicates == 1
                assert math.isfinite(await prices.get_current_price(symbol))
            for setter in (market.set_symbol_price, market.set_order_book, market.set_24h_stats,
                           market.set_symbol_info, market.add_trade_history):
                await typed_async(setter(symbol, data, ttl=ttl))
                await typed_async(setter(symbol, {"price": price, "volume": volume, "bids": data, "asks": [[price, 1]]}))
            await typed_async(market.get_order_book(symbol, depth=ttl))
            base = BaseCache("fuzz", conn=conn)
            if await typed_async(base.set(key, data, ttl=ttl)):
                assert await base.get(key) == codec.loads(codec.dumps(data))
            sessions = UserSessionCache(conn=conn)
            session_id = await typed_async(sessions.set_user_session(user, data, ttl=ttl))
            if session_id is not None:  # an int user id is stored as its decimal string
                assert (await sessions.get_session_by_id(session_id))["user_id"] == str(user)
            await typed_async(sessions.set_user_preferences(user, data, ttl=ttl))
            await typed_async(sessions.set_user_subscription(user, key, data))
            await typed_async(sessions.update_session_activity(user, key, data))
            await typed_async(sessions.is_rate_limited(user, key, limit=volume, window=ttl))
            alerts = PriceAlerts(conn=conn)
            await typed_async(alerts.set_price_alert(user, symbol, price, condition, ttl=ttl))
            await typed_async(alerts.check_price_alerts(symbol, price))
        finally:
            await conn.aclose()

    asyncio.run(scenario())
    check()


# -- identifiers: the wider symbol alphabet ------------------------------------------------------------
@contextlib.contextmanager
def commands_sent():
    """The command lines the connection logs (``redtick.commands`` at DEBUG) while the block runs."""
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("redtick.commands")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def wipe(conn) -> None:
    """Remove the namespace's keys, one DEL each (a cluster client cannot DEL across slots in one)."""
    for key in list(conn.sync.scan_iter(match=conn.keys.everything(), count=1000)):
        conn.sync.delete(key)


def refuses_before_sending(conn, symbol) -> None:
    rows = [{"ts": 1_704_067_200_000, "price": 1.0, "volume": 1.0}]

    async def async_calls():
        try:
            for call in (lambda: PriceCache(conn).set_current_price(symbol, 1.0),
                         lambda: MarketDataCache(conn).set_symbol_price(symbol, {"price": 1.0}),
                         lambda: PriceAlerts(conn=conn).set_price_alert("u1", symbol, 1.0, "above")):
                with pytest.raises(InvalidKey):
                    await call()
        finally:
            await conn.aclose()

    with commands_sent() as sent:
        with pytest.raises(InvalidKey):
            frames.write_ticks(rows, symbol, conn=conn)
        with pytest.raises(InvalidKey):
            frames.load_ticks(symbol, conn=conn)
        with pytest.raises(InvalidKey):
            frames.load_ohlcv(symbol, "1m", conn=conn)
        asyncio.run(async_calls())
    assert sent == [], f"{symbol!r} was refused only after {sent}"


@FUZZ
@given(first=wide_symbols, second=wide_symbols)
def test_symbols_round_trip_and_stay_apart(guarded, first, second):
    """Any accepted symbol round-trips and owns its keys; any refused one raises before a command is sent."""
    conn, check = guarded
    wipe(conn)
    written = {}
    for i, symbol in enumerate(dict.fromkeys([first, second])):
        if typed(validate_symbol, symbol) is None:
            refuses_before_sending(conn, symbol)
            continue
        rows = [{"ts": 1_704_067_200_000 + j * 1_000, "price": 100.0 + i, "volume": 1.0 + j} for j in range(3)]
        assert frames.write_ticks(rows, symbol, conn=conn).written == 3
        written[symbol] = rows
    check()
    assert set(list_symbols(conn=conn)) == set(written)
    slots = {}
    for symbol, rows in written.items():
        got = frames.load_ticks(symbol, conn=conn)
        assert got["price"].tolist() == [r["price"] for r in rows]
        assert got["volume"].tolist() == [r["volume"] for r in rows]
        assert frames.load_ohlcv(symbol, "1m", conn=conn)["volume"].sum() == 6.0
        # A pattern made from the symbol matches its own keys and no other symbol's.
        pattern = conn.keys.prefix + "*{" + glob_escape(symbol) + "}*"
        found = [k.decode() for k in conn.sync.scan_iter(match=pattern, count=1000)]
        assert found and all(conn.keys.family_of(k)[1] == symbol for k in found)
        # Every key of the symbol sits in one cluster slot, wherever its bytes put it.
        assert len({key_slot(k.encode()) for k in found}) == 1
        slots[symbol] = set(found)
    if len(slots) == 2:
        assert not set.intersection(*slots.values())

