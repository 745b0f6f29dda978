"""Upgrading a store written before candles carried notional: refused until ``redtick upgrade``, then exact."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from redtick import catalog, cli, frames
from redtick.caches.prices import PriceCache
from redtick.catalog import layout_of
from redtick.codec import CANDLE_DTYPE_V1, unpack_candles
from redtick.errors import UpgradeNeeded
from redtick.steps import run
from redtick.ticks import normalise_ticks
from tests.series_reference import assert_candles_equal, reference_candles

MINUTE = 60_000
BASE = 1_383_264_000_000  # 2013-11-01 00:00 UTC
ALL = ["open", "high", "low", "close", "volume", "count", "notional", "vwap"]


def some_ticks(n: int, start: int, span_ms: int, seed: int, first_id: int = 1) -> pd.DataFrame:
    """``n`` ticks over ``span_ms`` from ``start``: quarter-point prices and whole lots, so every sum is exact."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ts": np.sort(start + rng.integers(0, span_ms, n)), "trade_id": first_id + np.arange(n),
                         "price": 4000 + rng.integers(-400, 400, n) / 4, "volume": rng.integers(1, 20, n).astype(float)})


def stored_ticks(conn, symbol: str) -> pd.DataFrame:
    got = frames.load_ticks(symbol, conn=conn, columns=["price", "volume", "trade_id"])
    return pd.DataFrame({"ts": got.index.asi8, "trade_id": got["trade_id"].to_numpy(),
                         "price": got["price"].to_numpy(), "volume": got["volume"].to_numpy()})


def to_older_layout(conn, symbol: str) -> int:
    """Move ``symbol``'s candles to the keys and 80-byte slots of the layout before notional; the keys made."""
    keys, sync, made = conn.keys, conn.sync, 0
    for name in conn.settings.intervals:
        starts = [int(m) for m in sync.zrange(keys.candle_index(symbol, name), 0, -1)]
        for start in starts:
            slots = unpack_candles(sync.get(keys.candle_chunk(symbol, name, start)))
            narrow = np.zeros(len(slots), dtype=CANDLE_DTYPE_V1)
            for field in CANDLE_DTYPE_V1.names:
                narrow[field] = slots[field]
            sync.set(keys.legacy_candle_chunk(symbol, name, start), narrow.tobytes())
            sync.delete(keys.candle_chunk(symbol, name, start))
        if starts:
            sync.zadd(keys.legacy_candle_index(symbol, name), {str(s): s for s in starts})
            sync.delete(keys.candle_index(symbol, name))
            made += len(starts) + 1
    return made


def older_keys(conn, symbol: str) -> list[str]:
    keys = conn.keys
    found = [k for k in conn.sync.scan_iter(match=keys.pattern("candles", tail="*"), count=1000)]
    return [k.decode() for k in found if f"{{{symbol}}}:" in k.decode() and ":v2:" not in k.decode()]


def assert_refused(conn, symbol: str, ticks: pd.DataFrame) -> None:
    """Candle reads and every write of ``symbol`` raise UpgradeNeeded naming the command, and change nothing."""
    before = stored_ticks(conn, symbol) if len(ticks) else None
    bar = [{"ts": BASE, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}]
    late = ticks.assign(ts=ticks["ts"] + 30 * MINUTE, trade_id=ticks["trade_id"] + 10**6).head(50)
    if not len(late):
        late = pd.DataFrame({"ts": [BASE], "trade_id": [1], "price": [1.0], "volume": [1.0]})
    attempts = [
        lambda: frames.load_ohlcv(symbol, "1m", conn=conn),
        lambda: frames.load_ohlcv(symbol, "7m", start=BASE, end=BASE + 60 * MINUTE, conn=conn),  # from the ticks
        lambda: frames.write_ticks(late, symbol, conn=conn),
        lambda: frames.write_candles(bar, symbol, "1m", conn=conn),
    ]
    for attempt in attempts:
        with pytest.raises(UpgradeNeeded, match=rf"older layout; run `redtick upgrade`.*--symbol {symbol}`"):
            attempt()
    cache = PriceCache(conn)

    async def async_twins():
        for attempt in (lambda: cache.load_ohlcv(symbol, "5m"), lambda: cache.set_ohlcv_data(symbol, "1m", bar),
                        lambda: cache.write_ticks(late, symbol)):
            with pytest.raises(UpgradeNeeded, match="redtick upgrade"):
                await attempt()

    asyncio.run(async_twins())
    if before is not None:
        pd.testing.assert_frame_equal(stored_ticks(conn, symbol), before)


def test_an_older_store_is_refused_until_upgraded_then_equals_pandas(conn):
    sent = some_ticks(4000, BASE + 7 * MINUTE, 3 * 86_400_000, seed=1)
    frames.write_ticks(sent, "ES", conn=conn, batch_size=700)
    frames.write_ticks(some_ticks(300, BASE, 86_400_000, seed=2), "NQ", conn=conn)  # current layout: not upgraded
    made = to_older_layout(conn, "ES")
    assert made > 2 * len(conn.settings.intervals) and older_keys(conn, "ES")
    assert_refused(conn, "ES", sent)

    done = catalog.upgrade(conn=conn)

    assert [(r.symbol, r.old_keys_removed, r.kept) for r in done] == [("ES", made, 0)]
    assert older_keys(conn, "ES") == []
    ticks = stored_ticks(conn, "ES")
    pd.testing.assert_frame_equal(ticks, sent.sort_values(["ts", "trade_id"], ignore_index=True), check_dtype=False)
    total = 0
    for name, iv in layout_of(conn).intervals.items():
        got = frames.load_ohlcv("ES", name, columns=ALL, conn=conn)
        assert_candles_equal(got, reference_candles(ticks, iv))
        total += len(got)
    assert done[0].from_ticks == total
    assert catalog.upgrade(conn=conn) == [] and catalog.upgrade("ES", conn=conn) == []  # a second run does nothing
    frames.write_ticks(some_ticks(10, BASE, MINUTE, seed=3, first_id=10**7), "ES", conn=conn)  # writes work again


def test_a_bucket_straddling_the_upgrade_comes_back_whole(conn):
    """Ticks written by the version that built candles in the new keys without the older ones (the bug this
    upgrade repairs): the buckets they share with older candles are rebuilt from all their ticks."""
    before = some_ticks(500, BASE, 2 * 3_600_000, seed=4)
    after = some_ticks(500, BASE + 90 * MINUTE, 2 * 3_600_000, seed=5, first_id=10_000)
    frames.write_ticks(before, "ES", conn=conn)
    to_older_layout(conn, "ES")
    layout = layout_of(conn)
    run(conn.sync, lambda: layout._write_plan("ES", normalise_ticks(after)))  # unchecked, as that version did

    (done,) = catalog.upgrade("ES", conn=conn)

    ticks = stored_ticks(conn, "ES")
    assert len(ticks) == 1000 and done.kept == 0
    for name, iv in layout.intervals.items():
        assert_candles_equal(frames.load_ohlcv("ES", name, columns=ALL, conn=conn), reference_candles(ticks, iv))


def test_bars_imported_in_the_older_layout_are_carried_over_with_vwap_unknown(conn):
    bars = pd.DataFrame({"ts": BASE + MINUTE * np.arange(30), "open": 10.0, "high": 12.0, "low": 9.0,
                         "close": 10.0 + np.arange(30) / 16, "volume": 2.0})
    bars.loc[29, "high"] = 20.0
    frames.write_candles(bars, "BARS", "1m", conn=conn)
    expected = {name: frames.load_ohlcv("BARS", name, columns=["open", "high", "low", "close", "volume", "count"],
                                        conn=conn) for name in conn.settings.intervals}
    to_older_layout(conn, "BARS")
    assert_refused(conn, "BARS", pd.DataFrame(columns=["ts", "trade_id"]))

    (done,) = catalog.upgrade(conn=conn)

    assert done.from_ticks == 0 and done.kept == sum(len(f) for f in expected.values())
    for name, frame in expected.items():
        got = frames.load_ohlcv("BARS", name, columns=ALL, conn=conn)
        pd.testing.assert_frame_equal(got[frame.columns], frame)
        assert got["vwap"].isna().all() and got["notional"].isna().all()
    assert older_keys(conn, "BARS") == [] and catalog.upgrade(conn=conn) == []


def test_the_command_rebuilds_each_symbol_once(conn, monkeypatch, capsys):
    frames.write_ticks(some_ticks(200, BASE, 86_400_000, seed=6), "ES", conn=conn)
    made = to_older_layout(conn, "ES")
    monkeypatch.setattr(catalog, "connect", lambda: conn)

    assert cli.main(["upgrade", "--symbol", "ES"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ES: ") and f"{made:,} old keys removed" in out and "upgraded 1 symbol(s)" in out
    assert cli.main(["upgrade"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to upgrade: every symbol is in the current layout"
    assert cli.main(["upgrade", "--symbol", "NOPE"]) == 2
    assert "SymbolNotFound" in capsys.readouterr().err
