"""Every window exact: any interval (stored, rolled up, below a minute, pandas calendar) over any
window, in any time zone and arrival order, equals pandas' resample of the same ticks, ``.loc[start:end]``."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Day, Tick

from redtick import frames, outputs
from redtick.caches.prices import PriceCache
from redtick.errors import InvalidData, InvalidKey, MissingExtra
from tests.series_reference import assert_frames_match, reference_resample

MINUTE = 60_000
HOUR = 60 * MINUTE
ALL = ["open", "high", "low", "close", "volume", "count", "notional", "vwap"]
ES_FILE = "data/es_ticks_20130901.parquet"
# 2013-11-01 00:00 UTC: three days over the end of US daylight saving time (Sunday 2013-11-03).
BASE = 1_383_264_000_000

# (redtick interval, pandas rule, resample arguments): stored intervals, multiples of them, widths
# below a minute (from the ticks), days, weeks and months, anchors, offsets and right-closed bins.
CASES = [
    ("1m", "1min", {}), ("5m", "5min", {}), ("15m", "15min", {}), ("1h", "1h", {}), ("4h", "4h", {}),
    ("1d", "24h", {}), ("3m", "3min", {}), ("10m", "10min", {}), ("2h", "2h", {}), ("90min", "90min", {}),
    ("1w", "168h", {}), ("30s", "30s", {}), ("1s", "1s", {}), ("250ms", "250ms", {}), ("7s", "7s", {}),
    ("1H", "1h", {}), ("D", "D", {}), ("1D", "1D", {}), ("W", "W", {}), ("W-MON", "W-MON", {}),
    ("W-MON", "W-MON", {"closed": "left", "label": "left"}), ("ME", "ME", {}), ("MS", "MS", {}), ("B", "B", {}),
    ("D", "D", {"offset": "17h"}), ("2D", "2D", {"offset": "17h"}), ("D", "D", {"origin": "2013-10-01 09:30"}),
    ("5min", "5min", {"closed": "right"}), ("1h", "1h", {"label": "right"}), ("D", "D", {"closed": "right"}),
    ("7min", "7min", {"origin": "2013-11-01 00:03"}), ("4h", "4h", {"offset": "1h"}),
    ("30min", "30min", {"offset": "15min"}),
]
ZONES = [None, "America/Chicago", "Asia/Kolkata", "Europe/London"]


@pytest.fixture
def series_conn(conn):
    """The backend under test with small tick chunks (10 minutes), so data spans many chunks; no retention."""
    small = dataclasses.replace(conn.settings, tick_chunk_ms=10 * MINUTE, tick_retention_ms=None,
                                candle_retention_ms=None)
    connection = conn.with_settings(small)
    yield connection
    connection.close()


def _reference(sent, rule, tz, options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas must not be ignoring an argument it was given
        return reference_resample(sent, rule, tz=tz, **options)


def _as_bound(ms, tz, style):
    """``ms`` spelled as a caller might: epoch ms, a Timestamp, or an ISO string with its UTC offset."""
    stamp = pd.Timestamp(ms, unit="ms", tz="UTC").tz_convert(tz or "UTC")
    return {"ms": int(ms), "timestamp": stamp, "string": stamp.isoformat(timespec="milliseconds")}[style]


def _window(reference, start_ms, end_ms, tz):
    """``reference.loc[start:end]`` for bounds in epoch ms (as a mask: pandas 3.1 refuses some one-row slices)."""
    keep = np.ones(len(reference), dtype=bool)
    ms = reference.index.as_unit("ms").asi8
    if start_ms is not None:
        keep &= ms >= start_ms
    if end_ms is not None:
        keep &= ms <= end_ms
    return reference[keep]


tick_times = st.tuples(st.integers(0, 3 * 1440 - 1), st.sampled_from([0, 1, 250, 29_999, 30_000, 59_999]))
tick_rows = st.lists(
    st.tuples(tick_times, st.integers(0, 30), st.sampled_from([99.5, 100.0, 100.25, 101.0, 250.0]),
              st.sampled_from([0.0, 1.0, 2.0, 0.5])),
    min_size=1, max_size=80,
)
bound_ms = st.one_of(
    st.none(),
    st.integers(-120, 3 * 1440 + 120).map(lambda m: BASE + m * MINUTE),  # on a minute
    st.integers(-2 * HOUR, 3 * 1440 * MINUTE + 2 * HOUR).map(lambda ms: BASE + ms),  # anywhere
)
queries = st.lists(
    st.tuples(st.sampled_from(CASES), st.sampled_from(ZONES), bound_ms, bound_ms,
              st.sampled_from(["ms", "timestamp", "string"])),
    min_size=1, max_size=4,
)


def _sent(rows):
    sent = pd.DataFrame([(BASE + m * MINUTE + ms, i, p, v) for (m, ms), i, p, v in rows],
                        columns=["ts", "trade_id", "price", "volume"])
    # The same (ts, trade_id) sent twice is the same tick: every version carries the first one's values.
    return sent.merge(sent.drop_duplicates(["ts", "trade_id"]), on=["ts", "trade_id"], suffixes=("_x", ""))[
        ["ts", "trade_id", "price", "volume"]]


def _write_in_batches(conn, symbol, sent, data):
    order = data.draw(st.permutations(range(len(sent))))
    shuffled = sent.iloc[list(order)].reset_index(drop=True)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(shuffled)), max_size=4)))
    batches = [shuffled.iloc[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    resend = data.draw(st.lists(st.integers(0, len(batches) - 1), max_size=2))
    for i in [*range(len(batches)), *resend]:
        if len(batches[i]):
            frames.write_ticks(batches[i], symbol, conn=conn)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=tick_rows, asked=queries, data=st.data())
def test_any_window_of_any_interval_equals_pandas(series_conn, rows, asked, data):
    sent = _sent(rows)
    symbol = f"W{abs(hash((tuple(rows), repr(asked)))) % 10**9}"
    _write_in_batches(series_conn, symbol, sent, data)
    for (interval, rule, options), tz, start, end, style in asked:
        got = frames.load_ohlcv(symbol, interval, None if start is None else _as_bound(start, tz, style),
                                None if end is None else _as_bound(end, tz, style), tz=tz, columns=ALL,
                                conn=series_conn, **options)
        expected = _window(_reference(sent, rule, tz, options), start, end, tz)
        assert_frames_match(got, expected[expected["count"] > 0])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=tick_rows, asked=queries, fill=st.sampled_from(["nan", "ffill"]))
def test_filled_windows_equal_pandas_on_its_bins_and_carry_beyond_them(series_conn, rows, asked, fill):
    """pandas' resample shows every bin from the data's first to its last; inside that span a filled
    read equals it exactly (NaN prices or the carried close, zero volume and count). Outside it, the
    requested window goes on: NaN before the data, the last close carried after it."""
    sent = _sent(rows)
    symbol = f"F{abs(hash((tuple(rows), repr(asked)))) % 10**9}"
    frames.write_ticks(sent, symbol, conn=series_conn)
    for (interval, rule, options), tz, start, end, _ in asked:
        got = frames.load_ohlcv(symbol, interval, start, end, tz=tz, columns=ALL, fill=fill, conn=series_conn,
                                **options)
        reference = _reference(sent, rule, tz, options)
        if fill == "ffill":
            reference["close"] = reference["close"].ffill()
            for column in ("open", "high", "low"):
                reference[column] = reference[column].fillna(reference["close"])
        expected = _window(reference, start, end, tz)
        # An open side ends at the data's first or last bucket (pandas adds an empty one before the
        # first when bins close on the right and the first tick sits on an edge).
        traded = reference.index[reference["count"] > 0]
        expected = expected.loc[traded[0] if start is None else None : traded[-1] if end is None else None]
        if len(got):
            assert got.index.freq is not None
            assert got.index.equals(pd.date_range(got.index[0], got.index[-1], freq=got.index.freq, unit="ms"))
        inside = got.loc[got.index.isin(expected.index)]
        assert_frames_match(inside, expected)
        before, after = got.loc[got.index < reference.index[0]], got.loc[got.index > reference.index[-1]]
        assert before[["open", "close"]].isna().all().all() and (before["volume"] == 0).all()
        carried = np.nan if fill == "nan" else reference["close"].iloc[-1]
        np.testing.assert_array_equal(after["close"].to_numpy(), np.full(len(after), carried))
        assert (after["count"] == 0).all()
        outside = pd.concat([before, after])
        assert outside["vwap"].isna().all() and (outside["notional"] == 0).all()  # no volume, no VWAP


@pytest.fixture
def es_conn(series_conn):
    es = pd.read_parquet(ES_FILE)
    frames.write_ticks(es.rename(columns={"seq": "trade_id"}), "ES", conn=series_conn)
    sent = pd.DataFrame({"ts": es["ts"].dt.as_unit("ms").astype("int64").to_numpy(), "trade_id": es["seq"].to_numpy(),
                         "price": es["price"].to_numpy(), "volume": es["volume"].to_numpy(dtype=np.float64)})
    return series_conn, sent


def test_the_issue_window_is_whole_on_the_real_es_ticks(es_conn):
    conn, sent = es_conn
    full = frames.load_ohlcv("ES", "3m", columns=["open", "volume", "count"], conn=conn)
    window = frames.load_ohlcv("ES", "3m", start="2013-09-03 13:31", end="2013-09-03 13:36",
                               columns=["open", "volume", "count"], conn=conn)
    # 13:30 starts before 13:31: left out, never returned partial; 13:33 and 13:36 whole.
    assert window.index.strftime("%H:%M").tolist() == ["13:33", "13:36"]
    pd.testing.assert_frame_equal(window, full.loc["2013-09-03 13:33":"2013-09-03 13:36"])
    ten = frames.load_ohlcv("ES", "10m", start="2013-09-03 13:35", columns=ALL, conn=conn)
    assert_frames_match(ten, reference_resample(sent, "10min").loc["2013-09-03 13:35":].query("count > 0"))


def test_random_windows_of_the_real_es_ticks_equal_pandas(es_conn):
    conn, sent = es_conn
    rng = np.random.default_rng(12)
    ts = np.sort(sent["ts"].to_numpy())
    cases = [("1m", "1min", None, {}), ("3m", "3min", None, {}), ("10m", "10min", None, {}), ("2h", "2h", None, {}),
             ("30s", "30s", None, {}), ("250ms", "250ms", None, {}), ("1h", "1h", "America/Chicago", {}),
             ("D", "D", "America/Chicago", {"offset": "17h"}), ("D", "D", "America/Chicago", {}),
             ("4h", "4h", "Asia/Kolkata", {}), ("W-MON", "W-MON", None, {"closed": "left", "label": "left"})]
    for interval, rule, tz, options in cases:
        reference = _reference(sent, rule, tz, options)
        reference = reference[reference["count"] > 0]
        picks = rng.choice(ts, 8)
        windows = [(int(a), int(a) + int(w)) for a, w in zip(picks[:6], rng.integers(0, 6 * HOUR, 6), strict=True)]
        windows += [(int(picks[6]), None), (None, int(picks[7])), (None, None)]
        for start, end in windows:
            got = frames.load_ohlcv("ES", interval, start, end, tz=tz, columns=ALL, conn=conn, **options)
            expected = _window(reference, start, end, tz)
            assert_frames_match(got, expected)
            # Quarter-point prices times whole contracts, and their sums, are exact in float64: so is VWAP,
            # whatever order redtick and pandas add in.
            np.testing.assert_array_equal(got["vwap"].to_numpy(), expected["vwap"].to_numpy())


def test_the_cme_session_day(es_conn):
    conn, sent = es_conn
    days = frames.load_ohlcv("ES", "1D", tz="America/Chicago", offset="17h", columns=ALL, conn=conn)
    # Sunday 17:00 Chicago opens the session of Monday (Labor Day), the 17:00 Monday one runs into Tuesday.
    assert days.index.strftime("%Y-%m-%d %H:%M%z").tolist() == ["2013-09-01 17:00-0500", "2013-09-02 17:00-0500"]
    local = pd.DatetimeIndex(sent["ts"].to_numpy().view("datetime64[ms]")).tz_localize("UTC").tz_convert("America/Chicago")
    session = (local - pd.Timedelta(hours=17)).normalize()
    assert days["count"].tolist() == pd.Series(1, index=session).groupby(level=0).size().tolist()
    # pandas 3 ignores offset= for days on a tz-aware index and says so; redtick bins wall-clock time.
    with pytest.warns(RuntimeWarning, match="offset"):
        pd.Series(1.0, index=local).resample("1D", offset="17h").size()


def _bars(path):
    return pd.read_parquet(path).set_index("ts")[["open", "high", "low", "close", "volume"]].astype("float64")


def _bar_reference(bars, rule, tz, options):
    index = bars.index.tz_convert(tz) if tz else bars.index
    out = bars.set_axis(index).resample(rule, **options).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    counts = bars.set_axis(index)["open"].resample(rule, **options).size()
    out = out[counts > 0]
    out.index = out.index.as_unit("ms")
    out.index.name = "ts"
    return out


@pytest.mark.parametrize(("path", "stored", "cases"), [
    ("data/aapl_1m_20260729.parquet", "1m",
     [("1m", "1min", None, {}), ("5m", "5min", None, {}), ("3m", "3min", None, {}), ("2h", "2h", None, {}),
      ("D", "D", "America/New_York", {}), ("W", "W", None, {}), ("30min", "30min", "America/New_York", {})]),
    ("data/eurusd_1h_ask_2017.parquet", "1h",
     [("1h", "1h", None, {}), ("4h", "4h", None, {}), ("2h", "2h", None, {}), ("D", "D", None, {}),
      ("D", "D", "Europe/London", {}), ("W", "W", None, {}), ("W-MON", "W-MON", None, {"closed": "left", "label": "left"}),
      ("ME", "ME", None, {}), ("D", "D", "America/New_York", {"offset": "17h"})]),
])
def test_random_windows_of_imported_bars_equal_pandas(series_conn, path, stored, cases):
    bars = _bars(path)
    frames.write_candles(bars.reset_index(), "BARS", stored, conn=series_conn)
    rng = np.random.default_rng(3)
    ms = bars.index.as_unit("ms").asi8
    for interval, rule, tz, options in cases:
        freq = to_offset(rule)
        if isinstance(freq, Day) and options:  # days with an offset: pandas on wall-clock times
            naive = bars.set_axis(bars.index.tz_convert(tz).tz_localize(None))
            reference = _bar_reference(naive, rule, None, {**options, "origin": "epoch"})
            reference.index = reference.index.tz_localize(tz)
        else:
            reference = _bar_reference(bars, rule, tz, {**options, **({"origin": "epoch"} if isinstance(freq, Tick) else {})})
        picks = rng.choice(ms, 6)
        windows = [(int(a), int(a) + int(w)) for a, w in zip(picks[:4], rng.integers(0, 40 * 24 * HOUR, 4), strict=True)]
        windows += [(int(picks[4]), None), (None, int(picks[5])), (None, None)]
        for start, end in windows:
            got = frames.load_ohlcv("BARS", interval, start, end, tz=tz, conn=series_conn, **options)
            assert_frames_match(got, _window(reference, start, end, tz), columns=("open", "high", "low", "close"))
        # These bars give no VWAP: every bucket's is unknown, never made up.
        assert frames.load_ohlcv("BARS", interval, tz=tz, columns=["vwap"], conn=series_conn, **options)["vwap"].isna().all()


def test_bars_are_never_split_into_what_they_do_not_hold(series_conn):
    bars = _bars("data/eurusd_1h_ask_2017.parquet")
    frames.write_candles(bars.reset_index(), "FX", "1h", conn=series_conn)
    for interval, options in [("30m", {}), ("30s", {}), ("1m", {}), ("D", {"tz": "Asia/Kolkata"})]:
        with pytest.raises(InvalidData, match="cannot be built exactly"):
            frames.load_ohlcv("FX", interval, "2017-03-01", "2017-03-03", conn=series_conn, **options)


def test_with_retention_a_read_returns_what_its_source_keeps(conn):
    """Ticks kept two hours, candles for ever: "30s" covers what the ticks keep, as "1m" covers what
    the 1m candles keep; the retention is the owner's choice, not data the read hides."""
    kept = dataclasses.replace(conn.settings, tick_chunk_ms=HOUR, tick_retention_ms=2 * HOUR, candle_retention_ms=None)
    connection = conn.with_settings(kept)
    ticks = pd.DataFrame({"ts": BASE + np.arange(10) * HOUR + 1_000, "price": 1.0 + np.arange(10), "volume": 1.0})
    frames.write_ticks(ticks, "TRIM", conn=connection)
    assert len(frames.load_ohlcv("TRIM", "1h", conn=connection)) == 10
    kept_ticks = frames.load_ticks("TRIM", conn=connection)
    assert frames.load_ohlcv("TRIM", "30s", conn=connection)["close"].tolist() == kept_ticks["price"].tolist()
    connection.close()


# -- interval grammar ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("interval", "error", "match"), [
    ("1M", InvalidData, "ambiguous"), ("M", InvalidData, "ambiguous"), ("2W", InvalidData, "14D"),
    ("1us", InvalidData, "millisecond"), ("bh", InvalidData, "not supported"), ("fortnight", InvalidKey, "neither"),
    (5, InvalidKey, "string"),
])
def test_intervals_pandas_or_redtick_does_not_read_are_refused(series_conn, interval, error, match):
    frames.write_ticks(pd.DataFrame({"ts": [BASE], "price": [1.0], "volume": [1.0]}), "G", conn=series_conn)
    with pytest.raises(error, match=match):
        frames.load_ohlcv("G", interval, conn=series_conn)


def test_arguments_pandas_would_ignore_or_base_on_the_data_are_refused(series_conn):
    frames.write_ticks(pd.DataFrame({"ts": [BASE], "price": [1.0], "volume": [1.0]}), "G", conn=series_conn)
    with pytest.raises(InvalidData, match="no effect"):
        frames.load_ohlcv("G", "W", offset="1h", conn=series_conn)
    with pytest.raises(InvalidData, match="moves as a stored series grows"):
        frames.load_ohlcv("G", "1h", origin="start_day", conn=series_conn)
    with pytest.raises(InvalidData, match="fill"):
        frames.load_ohlcv("G", "1h", fill="bfill", conn=series_conn)
    with pytest.raises(InvalidData, match="tz"):
        frames.load_ohlcv("G", "1h", tz="Mars/Olympus", conn=series_conn)


def test_redtick_names_keep_their_meaning(series_conn):
    # 2013-11-07 is a Thursday: "1w" weeks start on Thursdays (epoch-aligned), "W" ends on Sundays.
    ticks = pd.DataFrame({"ts": pd.to_datetime(["2013-11-06 12:00", "2013-11-07 12:00", "2013-11-11 12:00"], utc=True),
                          "price": [1.0, 2.0, 3.0], "volume": 1.0})
    frames.write_ticks(ticks, "NAMES", conn=series_conn)
    assert frames.load_ohlcv("NAMES", "1w", conn=series_conn).index.strftime("%a %d").tolist() == ["Thu 31", "Thu 07"]
    assert frames.load_ohlcv("NAMES", "W", conn=series_conn).index.strftime("%a %d").tolist() == ["Sun 10", "Sun 17"]
    minute = frames.load_ohlcv("NAMES", "1m", conn=series_conn)
    pd.testing.assert_frame_equal(minute, frames.load_ohlcv("NAMES", "1min", conn=series_conn))
    assert str(minute.index.dtype) == "datetime64[ms, UTC]"


# -- bounds --------------------------------------------------------------------------------------------
@pytest.fixture
def day_conn(series_conn):
    ms = [pd.Timestamp(t, tz="UTC").value // 10**6 for t in
          ["2013-09-02 23:59:59.999", "2013-09-03 00:00", "2013-09-03 13:31:00.000", "2013-09-03 13:31:00.001",
           "2013-09-03 23:59:59.999", "2013-09-04 00:00"]]
    ticks = pd.DataFrame({"ts": ms, "trade_id": range(6), "price": 1.0 + np.arange(6), "volume": 1.0})
    frames.write_ticks(ticks, "DAY", conn=series_conn)
    return series_conn


def test_a_date_only_end_is_the_whole_day_as_in_pandas_loc(day_conn):
    got = frames.load_ticks("DAY", "2013-09-03", "2013-09-03", conn=day_conn)
    everything = frames.load_ticks("DAY", conn=day_conn)
    pd.testing.assert_frame_equal(got, everything.loc["2013-09-03":"2013-09-03"])
    assert got["price"].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert frames.load_ticks("DAY", end="2013-09-03 13:31", conn=day_conn)["price"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert frames.load_ticks("DAY", end="2013-09", conn=day_conn)["price"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    candles = frames.load_ohlcv("DAY", "1h", end="2013-09-03", conn=day_conn)
    assert candles.index[-1] == pd.Timestamp("2013-09-03 23:00", tz="UTC")


def test_sub_millisecond_bounds_never_let_an_outside_tick_in(day_conn):
    inside = frames.load_ticks("DAY", "2013-09-03 13:31:00.0000001", "2013-09-03 13:31:00.0019", conn=day_conn)
    assert inside["price"].tolist() == [4.0]
    as_timestamp = frames.load_ticks("DAY", pd.Timestamp("2013-09-03 13:30:59.9999999", tz="UTC"),
                                     pd.Timestamp("2013-09-03 13:31:00.0009999", tz="UTC"), conn=day_conn)
    assert as_timestamp["price"].tolist() == [3.0]
    micro = pd.Timestamp("2013-09-03 13:31:00.000500", tz="UTC").value // 1_000
    assert frames.load_ticks("DAY", micro, unit="us", conn=day_conn)["price"].tolist() == [4.0, 5.0, 6.0]


def test_bounds_in_a_time_zone_and_as_a_date_range(day_conn):
    chicago = frames.load_ticks("DAY", "2013-09-03", "2013-09-03", tz="America/Chicago", conn=day_conn)
    assert chicago.index.tz is not None and str(chicago.index.tz) == "America/Chicago"
    assert chicago["price"].tolist() == [3.0, 4.0, 5.0, 6.0]  # 05:00 UTC on the 3rd to 05:00 UTC on the 4th
    pair = frames.load_ticks("DAY", date_range=("2013-09-03", "2013-09-03"), conn=day_conn)
    pd.testing.assert_frame_equal(pair, frames.load_ticks("DAY", "2013-09-03", "2013-09-03", conn=day_conn))
    with pytest.raises(InvalidData, match="only one of date_range or start/end"):
        frames.load_ohlcv("DAY", "1h", "2013-09-03", date_range=("2013-09-03", None), conn=day_conn)
    with pytest.raises(InvalidData, match="date_range"):
        frames.load_ticks("DAY", date_range="2013-09-03", conn=day_conn)


def test_columns_named_twice_are_refused(day_conn):
    with pytest.raises(InvalidData, match="more than once"):
        frames.load_ticks("DAY", columns=["price", "price"], conn=day_conn)
    with pytest.raises(InvalidData, match="more than once"):
        frames.load_ohlcv("DAY", "1h", columns=["close", "volume", "close"], conn=day_conn)


# -- outputs -------------------------------------------------------------------------------------------
def test_arrow_output_is_the_same_read(day_conn):
    frame = frames.load_ohlcv("DAY", "1h", columns=ALL, tz="America/Chicago", conn=day_conn)
    table = frames.load_ohlcv("DAY", "1h", columns=ALL, tz="America/Chicago", output="arrow", conn=day_conn)
    assert str(table.schema.field("ts").type) == "timestamp[ms, tz=America/Chicago]"
    pd.testing.assert_frame_equal(table.to_pandas().set_index("ts"), frame)
    ticks = frames.load_ticks(["DAY", "DAY2"], output="arrow", missing="skip", conn=day_conn)
    assert ticks.column_names == ["symbol", "ts", "price", "volume"] and ticks.num_rows == 6
    assert str(ticks.schema.field("ts").type) == "timestamp[ms, tz=UTC]"


def test_arrow_wraps_the_read_buffers_without_copying():
    ts, close = np.arange(3, dtype=np.int64) * MINUTE, np.array([1.0, 2.0, 3.0])
    table = outputs.arrow_table([frames.Columns(ts, {"close": close})], None, ["close"])
    assert table.column("ts").chunk(0).buffers()[1].address == ts.ctypes.data
    assert table.column("close").chunk(0).buffers()[1].address == close.ctypes.data


def test_polars_output_or_how_to_get_it(day_conn):
    try:
        import polars
    except ImportError:
        with pytest.raises(MissingExtra, match=r"pip install 'redtick\[polars\]'"):
            frames.load_ticks("DAY", output="polars", conn=day_conn)
    else:
        got = frames.load_ticks("DAY", output="polars", conn=day_conn)
        assert isinstance(got, polars.DataFrame) and got.height == 6
    with pytest.raises(InvalidData, match="output"):
        frames.load_ticks("DAY", output="numpy", conn=day_conn)


async def test_the_async_twin_takes_the_same_arguments(day_conn):
    cache = PriceCache(day_conn)
    options = {"tz": "America/Chicago", "offset": "17h", "fill": "ffill", "columns": ALL}
    got = await cache.load_ohlcv("DAY", "D", date_range=("2013-09-01", "2013-09-05"), **options)
    pd.testing.assert_frame_equal(got, frames.load_ohlcv("DAY", "D", "2013-09-01", "2013-09-05", conn=day_conn,
                                                         **options))
    assert got.index.freq == "D" and len(got) == 5
    table = await cache.load_ticks("DAY", "2013-09-03", "2013-09-03", output="arrow")
    assert table.num_rows == 4
