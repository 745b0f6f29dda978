"""VWAP: candles carry notional (sum of price x volume) merged like volume, so ``vwap = notional / volume``
equals pandas for any interval, and is NaN, never partial, where a bar of the bucket did not give it."""

import dataclasses

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redtick import bars, frames, read_options, snapshot
from redtick.caches.prices import PriceCache
from redtick.candles import candles_from_ticks, merge_candles, rollup_candles
from redtick.codec import CANDLE_DTYPE, TICK_DTYPE
from redtick.errors import InvalidData, UpgradeNeeded
from redtick.keys import CANDLE_LAYOUT
from tests.series_reference import SUM_RTOL, assert_frames_match, reference_resample

MINUTE = 60_000
BASE = 1_383_264_000_000  # 2013-11-01 00:00 UTC
SUMS = ["volume", "count", "notional", "vwap"]
ALL = ["open", "high", "low", "close", *SUMS]
# Each slot width the candle keys have held, and the layout version in those keys: a new dtype width
# needs a new version, or bytes of one width would be read as the other.
LAYOUT_OF_SLOT = {80: None, 88: "v2"}


@pytest.fixture
def vconn(conn):
    """The backend under test with 10-minute tick chunks and no retention."""
    small = dataclasses.replace(conn.settings, tick_chunk_ms=10 * MINUTE, tick_retention_ms=None,
                                candle_retention_ms=None)
    connection = conn.with_settings(small)
    yield connection
    connection.close()


# -- the stored layout ---------------------------------------------------------------------------------
def test_a_slot_is_88_bytes_and_its_width_is_in_the_candle_keys(vconn):
    assert CANDLE_DTYPE.itemsize == 88 and CANDLE_DTYPE.names[-1] == "notional"
    assert LAYOUT_OF_SLOT[CANDLE_DTYPE.itemsize] == CANDLE_LAYOUT
    keys = vconn.keys
    assert keys.candle_chunk("ES", "1m", 0) == f"{keys.prefix}candles:{{ES}}:{CANDLE_LAYOUT}:1m:chunk:0"
    assert keys.candle_index("ES", "1m") == f"{keys.prefix}candles:{{ES}}:{CANDLE_LAYOUT}:1m:index"
    assert keys.family_of(keys.candle_chunk("ES", "1m", 0)) == ("candles", "ES")


def test_slots_of_the_80_byte_layout_are_never_read(vconn):
    """The earlier layout's keys (``candles:{SYM}:1m:...``, 80-byte slots) are never decoded as 88-byte ones: ten
    of its slots are 880 bytes, exactly ten 88-byte ones. A symbol that has them is refused until
    ``redtick upgrade`` rebuilds its candles (tests/test_upgrade.py)."""
    sync, prefix = vconn.sync, vconn.keys.prefix
    ticks = pd.DataFrame({"ts": BASE + np.array([1_000, 2_000, 61_000]), "price": [10.0, 11.0, 12.0], "volume": 2.0})
    frames.write_ticks(ticks, "OLD", conn=vconn)
    old = np.zeros(11, dtype=[(name, CANDLE_DTYPE[name]) for name in CANDLE_DTYPE.names[:-1]])
    old["count"], old["open"], old["close"], old["volume"] = 5, 1.0, 1.0, 9.0
    assert len(old.tobytes()) == 880 == 10 * CANDLE_DTYPE.itemsize
    start = BASE // (1440 * MINUTE) * (1440 * MINUTE)
    sync.set(f"{prefix}candles:{{OLD}}:1m:chunk:{start}", old.tobytes())
    sync.zadd(f"{prefix}candles:{{OLD}}:1m:index", {str(start): start})
    with pytest.raises(UpgradeNeeded, match="older layout; run `redtick upgrade`"):
        frames.load_ohlcv("OLD", "1m", columns=ALL, conn=vconn)
    with pytest.raises(UpgradeNeeded):
        frames.write_ticks(ticks.assign(ts=ticks["ts"] + 1), "OLD", conn=vconn)


# -- candle arithmetic ---------------------------------------------------------------------------------
def test_notional_merges_like_volume_and_an_unknown_part_stays_unknown():
    ticks = np.array([(0, 1, 10.0, 1.0, 0), (1_000, 2, 12.0, 3.0, 0), (60_000, 3, 11.0, 2.0, 0)], dtype=TICK_DTYPE)
    starts, candles = candles_from_ticks(ticks, MINUTE)
    assert candles["notional"].tolist() == [46.0, 22.0]
    imported = candles.copy()
    imported["notional"][1], imported["count"][1] = np.nan, -1
    merged = merge_candles(candles, imported)
    assert merged["notional"][0] == 92.0 and np.isnan(merged["notional"][1])
    _, hourly = rollup_candles(starts, {"notional": imported["notional"], "volume": imported["volume"]}, 60 * MINUTE)
    assert np.isnan(hourly["notional"][0])  # the hour holds a bar of unknown notional: unknown, not 46


# -- equal to pandas: any interval, window, zone, batches and arrival order ------------------------------
INTERVALS = [  # (redtick interval, pandas rule, resample arguments): stored, rolled up, below a minute, calendar
    ("1m", "1min", {}), ("5m", "5min", {}), ("1h", "1h", {}), ("1d", "24h", {}), ("3m", "3min", {}),
    ("2h", "2h", {}), ("30s", "30s", {}), ("250ms", "250ms", {}), ("D", "D", {"offset": "17h"}),
    ("W-MON", "W-MON", {"closed": "left", "label": "left"}), ("5min", "5min", {"closed": "right"}),
    ("7min", "7min", {"origin": "2013-11-01 00:03"}),
]
ZONES = [None, "America/Chicago", "Asia/Kolkata"]
# Prices and sizes that are not exact binary fractions, so sums added in another order really differ.
tick_rows = st.lists(
    st.tuples(st.integers(0, 2 * 1440 - 1), st.integers(0, 59_999), st.integers(0, 20),
              st.floats(0.01, 1e5), st.one_of(st.just(0.0), st.floats(1e-3, 1e4))),
    min_size=1, max_size=80,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=tick_rows, asked=st.lists(st.tuples(st.sampled_from(INTERVALS), st.sampled_from(ZONES),
                                                 st.sampled_from([None, "nan"])), min_size=1, max_size=3),
       data=st.data())
def test_vwap_equals_pandas_for_any_interval_batches_and_order(vconn, rows, asked, data):
    sent = pd.DataFrame([(BASE + m * MINUTE + ms, i, p, v) for m, ms, i, p, v in rows],
                        columns=["ts", "trade_id", "price", "volume"]).drop_duplicates(["ts", "trade_id"])
    order = data.draw(st.permutations(range(len(sent))))
    shuffled = sent.iloc[list(order)].reset_index(drop=True)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=4)))
    symbol = f"V{abs(hash((tuple(rows), tuple(order)))) % 10**9}"
    for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True):
        if b > a:
            frames.write_ticks(shuffled.iloc[a:b], symbol, conn=vconn)
    for (interval, rule, options), tz, fill in asked:
        got = frames.load_ohlcv(symbol, interval, tz=tz, columns=ALL, fill=fill, conn=vconn, **options)
        expected = reference_resample(sent, rule, tz=tz, **options)
        if fill is None:
            expected = expected[expected["count"] > 0]
        else:  # pandas shows every bin from the data's first to its last; a filled read, the same span
            traded = expected.index[expected["count"] > 0]
            expected = expected.loc[traded[0] : traded[-1]]
        assert_frames_match(got, expected)
        assert got["vwap"].isna().tolist() == (got["volume"] == 0).tolist()  # NaN exactly where nothing traded


def test_vwap_is_nan_where_the_volume_is_zero(vconn):
    ticks = pd.DataFrame({"ts": BASE + np.array([0, 1_000, 2 * MINUTE]), "price": [10.0, 11.0, 12.0],
                          "volume": [0.0, 0.0, 3.0]})
    frames.write_ticks(ticks, "ZERO", conn=vconn)
    got = frames.load_ohlcv("ZERO", "1m", columns=["close", "volume", "notional", "vwap"], fill="ffill", conn=vconn)
    assert got["volume"].tolist() == [0.0, 0.0, 3.0] and got["notional"].tolist() == [0.0, 0.0, 36.0]
    np.testing.assert_array_equal(got["vwap"].to_numpy(), [np.nan, np.nan, 12.0])  # a carried close is no VWAP
    assert np.isnan(frames.load_ohlcv("ZERO", "30s", columns=["vwap"], conn=vconn)["vwap"].iloc[0])


# -- imported bars -------------------------------------------------------------------------------------
def _bars(vwap):
    ts = pd.date_range("2024-01-02 14:30", periods=len(vwap), freq="1min", tz="UTC")
    return pd.DataFrame({"ts": ts, "open": 10.0, "high": 12.0, "low": 9.0, "close": 11.0,
                         "volume": [3.0, 1.5, 0.0, 7.0, 2.0, 5.0][: len(vwap)], "vwap": vwap})


def _pandas_vwap(bars, rule):
    """(vwap * volume).resample(rule).sum() / volume.resample(rule).sum(), per bucket with bars."""
    frame = bars.set_index("ts")
    notional = (frame["vwap"] * frame["volume"]).resample(rule).sum(min_count=1)
    # pandas' sum skips NaN; a bucket with a bar of unknown VWAP has none (redtick's rule, stated here).
    unknown = (frame["vwap"].isna() & (frame["volume"] > 0)).resample(rule).sum() > 0
    volume = frame["volume"].resample(rule).sum()
    out = (notional / volume).where(~unknown & (volume > 0))
    return out[frame["open"].resample(rule).size() > 0]


def test_bars_with_a_vwap_give_exact_rolled_up_vwaps(vconn):
    bars = _bars([10.5, 11.25, np.nan, 10.75, 11.5, 9.5])  # the zero-volume bar gives no VWAP: none is needed
    frames.write_candles(bars, "BARS", "1m", conn=vconn)
    for interval, rule in [("1m", "1min"), ("2m", "2min"), ("3m", "3min"), ("5m", "5min"), ("1h", "1h"), ("D", "D")]:
        got = frames.load_ohlcv("BARS", interval, columns=["vwap", "notional"], conn=vconn)["vwap"]
        np.testing.assert_allclose(got.to_numpy(), _pandas_vwap(bars, rule).to_numpy(), rtol=SUM_RTOL, err_msg=interval)
    minutes = frames.load_ohlcv("BARS", "1m", columns=["vwap"], conn=vconn)["vwap"]
    assert np.isnan(minutes.iloc[2]) and minutes.drop(minutes.index[2]).notna().all()


def test_a_bucket_with_a_bar_of_unknown_vwap_has_no_vwap_never_a_partial_one(vconn):
    bars = _bars([10.5, np.nan, 11.0, 10.75, 11.5, 9.5])
    frames.write_candles(bars, "GAPS", "1m", conn=vconn)
    two = frames.load_ohlcv("GAPS", "2m", columns=["volume", "notional", "vwap"], conn=vconn)
    assert two["volume"].tolist() == [4.5, 7.0, 7.0]
    assert np.isnan(two["notional"].iloc[0]) and np.isnan(two["vwap"].iloc[0])
    np.testing.assert_allclose(two["vwap"].iloc[1:].to_numpy(), _pandas_vwap(bars, "2min").iloc[1:].to_numpy(),
                               rtol=SUM_RTOL)
    assert frames.load_ohlcv("GAPS", "1h", columns=["vwap"], conn=vconn)["vwap"].isna().all()
    assert frames.load_ohlcv("GAPS", "1h", columns=["volume"], conn=vconn)["volume"].tolist() == [18.5]
    # Ticks merged into a bar of unknown VWAP leave it unknown; into a known one, exact.
    frames.write_ticks(pd.DataFrame({"ts": bars["ts"].iloc[[1, 3]] + pd.Timedelta("10s"), "price": [20.0, 20.0],
                                     "volume": [1.0, 1.0]}), "GAPS", conn=vconn)
    minutes = frames.load_ohlcv("GAPS", "1m", columns=["vwap"], conn=vconn)["vwap"]
    assert np.isnan(minutes.iloc[1])
    assert minutes.iloc[3] == pytest.approx((10.75 * 7.0 + 20.0) / 8.0, rel=SUM_RTOL)


def test_bars_without_a_vwap_have_none_and_a_notional_column_is_taken_as_is(vconn):
    plain = _bars([np.nan] * 3).drop(columns="vwap")
    frames.write_candles(plain, "PLAIN", "1m", conn=vconn)
    got = frames.load_ohlcv("PLAIN", "5m", columns=["volume", "vwap", "notional"], conn=vconn)
    assert got["volume"].tolist() == [4.5] and got[["vwap", "notional"]].isna().all().all()
    given = _bars([np.nan] * 4).drop(columns="vwap").assign(turnover=[31.5, 15.0, 0.0, 77.0])
    frames.write_candles(given, "NOTIONAL", "1m", columns={"turnover": "notional"}, conn=vconn)
    five = frames.load_ohlcv("NOTIONAL", "5m", columns=["notional", "vwap"], conn=vconn)
    assert five["notional"].tolist() == [123.5] and five["vwap"].tolist() == [123.5 / 11.5]
    renamed = _bars([10.5, 11.0]).rename(columns={"vwap": "vw"})
    frames.write_candles(renamed, "VW", "1m", columns={"vw": "vwap"}, conn=vconn)
    assert frames.load_ohlcv("VW", "1m", columns=["vwap"], conn=vconn)["vwap"].tolist() == [10.5, 11.0]


def test_bad_vwaps_are_refused_per_row(vconn):
    with pytest.raises(InvalidData, match="both a 'vwap' and a 'notional'"):
        frames.write_candles(_bars([10.5]).assign(notional=31.5), "BAD", "1m", conn=vconn)
    bad = _bars([10.5, np.inf, "ten", 1.0])  # text is not an unknown VWAP, even where the volume is 0
    with pytest.raises(InvalidData, match="vwap or notional"):
        frames.write_candles(bad, "BAD", "1m", conn=vconn)
    result = frames.write_candles(bad, "BAD", "1m", conn=vconn, errors="skip")
    assert result.written == 2 and result.rejected == {bars.BAD_NOTIONAL: 2}
    nonzero = _bars([np.nan] * 3).drop(columns="vwap").assign(notional=[31.5, 15.0, 4.0])
    assert frames.write_candles(nonzero, "BAD2", "1m", conn=vconn, errors="skip").rejected == {bars.BAD_NOTIONAL: 1}


# -- every face: async twin, Arrow, Parquet --------------------------------------------------------------
async def test_the_async_twin_arrow_and_parquet_carry_vwap(vconn, tmp_path):
    cache = PriceCache(vconn)
    bars = _bars([10.5, 11.25, np.nan, 10.75])
    assert await cache.set_ohlcv_data("ASYNCV", "1m", bars) == 4
    got = await cache.load_ohlcv("ASYNCV", "2m", columns=["close", "vwap", "notional"])
    pd.testing.assert_frame_equal(got, frames.load_ohlcv("ASYNCV", "2m", columns=["close", "vwap", "notional"],
                                                         conn=vconn))
    assert got["vwap"].tolist() == pytest.approx([(31.5 + 16.875) / 4.5, 10.75])
    table = frames.load_ohlcv("ASYNCV", "2m", columns=["vwap"], output="arrow", conn=vconn)
    assert table.column_names == ["ts", "vwap"] and table.column("vwap").to_pylist() == got["vwap"].tolist()
    path = tmp_path / "bars.parquet"
    snapshot.to_parquet("ASYNCV", path, kind="ohlcv", interval="1m", conn=vconn)
    back = pd.read_parquet(path)
    assert list(back.columns) == [*read_options.CANDLE_COLUMNS, "count", "vwap", "notional"]
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items()}
    assert meta["vwap"] == snapshot.PARQUET_MEANINGS["vwap"] and meta["notional"] == snapshot.PARQUET_MEANINGS["notional"]
