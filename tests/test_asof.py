"""asof: the tick in force at many times equals pandas.merge_asof on the stored ticks, on every backend."""

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redtick import frames
from redtick.errors import InvalidData, NotFound, SymbolNotFound
from redtick.lookups import _first_at_or_after_plan, asof
from tests.series_reference import run_with_write_at_first_fetch

MINUTE = 60_000
ES_FILE = "data/es_ticks_20130901.parquet"
ALL_COLUMNS = ["price", "volume", "trade_id", "side"]
EXAMPLES = itertools.count()  # a fresh symbol for each hypothesis example: they share one namespace


@pytest.fixture
def aconn(conn):
    """The backend under test with 10-minute tick chunks, so a few hours span many chunks; no retention."""
    small = dataclasses.replace(conn.settings, tick_chunk_ms=10 * MINUTE, tick_retention_ms=None, candle_retention_ms=None)
    connection = conn.with_settings(small)
    yield connection
    connection.close()


def expected_asof(ticks: pd.DataFrame, times: pd.DatetimeIndex, direction: str, tolerance=None) -> pd.DataFrame:
    """What pandas.merge_asof says, in the order of ``times``, for ticks indexed by time."""
    right = ticks.assign(tick_ts=ticks.index)
    right.index = right.index.as_unit(times.unit)
    left = pd.DataFrame({"time": times, "position": np.arange(len(times))}).sort_values("time", kind="stable")
    merged = pd.merge_asof(left, right, left_on="time", right_index=True, direction=direction,
                           tolerance=None if tolerance is None else pd.Timedelta(tolerance))
    return merged.sort_values("position").drop(columns="position").set_index("time")


def assert_equals_merge_asof(conn, symbol, times, direction, tolerance=None, columns=ALL_COLUMNS):
    got = asof(symbol, times, direction, columns=columns, tolerance=tolerance, conn=conn)
    stored = frames.load_ticks(symbol, conn=conn, columns=columns)
    expected = expected_asof(stored, got.index, direction, tolerance)
    pd.testing.assert_frame_equal(got, expected)
    return got


tick_rows = st.lists(
    st.tuples(
        st.integers(0, 3 * 60 * MINUTE),  # three hours of 10-minute chunks
        st.integers(0, 5),  # few ids: many ticks share a millisecond
        st.sampled_from([99.5, 100.0, 100.25, 101.0]),
        st.sampled_from([0.0, 1.0, 2.5]),
        st.sampled_from([-1, 0, 1]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=tick_rows, data=st.data())
def test_asof_equals_merge_asof_for_any_ticks_and_times(aconn, rows, data):
    base = 1_700_000_000_000 // (60 * MINUTE) * (60 * MINUTE)
    ticks = pd.DataFrame(rows, columns=["ts", "trade_id", "price", "volume", "side"]).drop_duplicates(["ts", "trade_id"])
    ticks["ts"] += base
    symbol = f"ASOF{next(EXAMPLES)}"
    frames.write_ticks(ticks, symbol, conn=aconn)
    stored_ms = ticks["ts"].to_numpy()
    # Times anywhere from an hour before the first tick to an hour after the last, at any
    # nanosecond, and times on a tick or a nanosecond either side of it.
    anywhere = st.integers(-60 * MINUTE * 10**6, 4 * 60 * MINUTE * 10**6).map(lambda ns: base * 10**6 + ns)
    near_tick = st.tuples(st.sampled_from(stored_ms.tolist()), st.sampled_from([-1, 0, 1])).map(
        lambda pair: pair[0] * 10**6 + pair[1])
    ns = data.draw(st.lists(st.one_of(anywhere, near_tick), min_size=1, max_size=30))
    unit = data.draw(st.sampled_from(["ns", "us", "ms", "s"]))
    times = pd.DatetimeIndex(np.array(ns, dtype="datetime64[ns]")).as_unit(unit)  # as_unit floors to the unit
    direction = data.draw(st.sampled_from(["backward", "forward", "nearest"]))
    tolerance = data.draw(st.sampled_from([None, "0ms", "1ms", "90s", "25min"]))
    assert_equals_merge_asof(aconn, symbol, times, direction, tolerance)


def test_asof_equals_merge_asof_on_the_real_es_ticks_at_random_times(conn):
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    connection = conn.with_settings(plain)
    es = pd.read_parquet(ES_FILE)
    frames.write_ticks(es.rename(columns={"seq": "trade_id"}), "ES", conn=connection)
    # The reference is pandas on the file itself, ordered by (time, sequence) as ticks are stored.
    ordered = es.sort_values(["ts", "seq"], kind="stable")
    reference = pd.DataFrame({"price": ordered["price"].to_numpy(), "volume": ordered["volume"].to_numpy(np.float64),
                              "trade_id": ordered["seq"].to_numpy()},
                             index=pd.DatetimeIndex(ordered["ts"], name="ts"))
    rng = np.random.default_rng(12)
    first, last = es["ts"].min().value, es["ts"].max().value
    anywhere = rng.integers(first - 3_600 * 10**9, last + 3_600 * 10**9, 3_000)
    on_ticks = es["ts"].sample(500, random_state=3).dt.as_unit("ns").astype("int64").to_numpy()
    times = pd.DatetimeIndex(np.r_[anywhere, on_ticks, on_ticks + 1, on_ticks - 1].astype("datetime64[ns]"), tz="UTC")
    for direction, tolerance in [("backward", None), ("forward", None), ("nearest", None), ("backward", "2s"),
                                 ("nearest", "250ms")]:
        got = asof("ES", times, direction, columns=["price", "volume", "trade_id"], tolerance=tolerance, conn=connection)
        pd.testing.assert_frame_equal(got, expected_asof(reference, times, direction, tolerance))
    # Two times a day apart: the ticks between are read once, the edges are searched.
    sparse = pd.DatetimeIndex([es["ts"].iloc[1_000], es["ts"].iloc[-1_000]]).as_unit("ns")
    for direction in ("backward", "forward", "nearest"):
        got = asof("ES", sparse, direction, columns=["price", "volume", "trade_id"], conn=connection)
        pd.testing.assert_frame_equal(got, expected_asof(reference, sparse, direction))
    connection.close()


def test_the_tick_before_or_after_may_be_far_away(aconn):
    ticks = pd.DataFrame({"ts": ["2013-09-02 10:00:00.001", "2013-09-02 10:00:00.001", "2013-09-02 11:30:00"],
                          "trade_id": [1, 2, 3], "price": [1.0, 2.0, 3.0], "volume": [1.0, 1.0, 1.0]})
    frames.write_ticks(ticks, "FAR", conn=aconn)
    times = ["2020-01-01", "2001-01-01", "2013-09-02 10:00:00.001", "2013-09-02 10:00:00.000999"]
    # Of ticks sharing a millisecond, backward takes the last, forward the first, nearest the backward one.
    back = assert_equals_merge_asof(aconn, "FAR", times, "backward")
    np.testing.assert_array_equal(back["price"].to_numpy(), [3.0, np.nan, 2.0, np.nan])
    forward = assert_equals_merge_asof(aconn, "FAR", times, "forward")
    np.testing.assert_array_equal(forward["price"].to_numpy(), [np.nan, 1.0, 1.0, 1.0])
    nearest = assert_equals_merge_asof(aconn, "FAR", times, "nearest")
    assert nearest["price"].tolist() == [3.0, 1.0, 2.0, 1.0]
    assert_equals_merge_asof(aconn, "FAR", times, "nearest", tolerance="1ms")


def test_times_in_any_form_come_back_in_order_with_duplicates(aconn):
    frames.write_ticks(pd.DataFrame({"ts": [1_000, 2_000, 3_000], "price": [1.0, 2.0, 3.0], "volume": 1.0}),
                       "FORMS", conn=aconn)
    expected = [3.0, 1.0, 1.0, 2.0]
    utc = pd.DatetimeIndex(["1970-01-01 00:00:05", "1970-01-01 00:00:01.5", "1970-01-01 00:00:01.5",
                            "1970-01-01 00:00:02"], tz="UTC")
    forms = [
        ["1970-01-01T00:00:05Z", "1970-01-01 00:00:01.5", "1970-01-01T01:00:01.500+01:00", "1970-01-01 00:00:02"],
        utc.tz_localize(None),
        pd.Series(utc.tz_convert("America/Chicago")),
        utc.tz_localize(None).to_numpy(),
        list(utc),
        [t.to_pydatetime() for t in utc],
    ]
    for times in forms:
        got = asof("FORMS", times, conn=aconn)
        assert got["price"].tolist() == expected, times
        assert got.index.equals(utc.as_unit(got.index.unit).rename("time")), times
        assert str(got.index.tz) == "UTC"
        assert got.columns.tolist() == ["price", "volume", "tick_ts"]
    one = asof("FORMS", "1970-01-01 00:00:02.5", conn=aconn)
    assert one["price"].tolist() == [2.0] and one["tick_ts"].iloc[0] == pd.Timestamp(2_000, unit="ms", tz="UTC")
    empty = asof("FORMS", [], columns=["price", "side"], conn=aconn)
    assert len(empty) == 0 and empty.columns.tolist() == ["price", "side", "tick_ts"]


def test_a_search_racing_an_insert_still_finds_the_first_tick_after(conn):
    """Ticks inserted between the forward search and its fetch shift records later; the fetch notices
    (a full fetch with nothing at or after the time) and fetches on."""
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    connection = conn.with_settings(plain)
    base = 1_700_000_000_000 // (60 * MINUTE) * (60 * MINUTE)
    n = 20_000
    ticks = pd.DataFrame({"ts": base + np.arange(n) * 100, "trade_id": np.arange(n), "price": 1.0, "volume": 1.0})
    frames.write_ticks(ticks, "RACER", conn=connection)
    at = base + 1_000_050  # between two ticks: the answer is the tick at base + 1_000_100
    early = pd.DataFrame({"ts": base + 100 + np.arange(500) * 50, "trade_id": n + np.arange(500), "price": 2.0,
                          "volume": 1.0})
    plan = _first_at_or_after_plan(frames.layout_of(connection), "RACER", at)
    got, inserted = run_with_write_at_first_fetch(connection, plan, lambda: frames.write_ticks(early, "RACER", conn=connection))
    assert inserted
    assert got["ts"].tolist() == [base + 1_000_100] and got["id"].tolist() == [10_001]
    connection.close()


def test_unknown_symbols_and_bad_arguments_are_typed_errors(aconn):
    frames.write_ticks(pd.DataFrame({"ts": [1_000], "price": [1.0], "volume": [1.0]}), "KNOWN", conn=aconn)
    with pytest.raises(SymbolNotFound, match="KNOWN"):
        asof("KNOWM", ["1970-01-01"], conn=aconn)
    frames.write_candles([{"ts": 0, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}], "BARS", "1m",
                         conn=aconn)
    with pytest.raises(NotFound, match="no ticks"):
        asof("BARS", ["1970-01-01"], conn=aconn)
    for bad in [
        {"direction": "closest"},
        {"times": [1_000, 2_000]},
        {"times": np.array([1.5])},
        {"times": ["1970-01-01", None]},
        {"times": ["not a time"]},
        {"tolerance": 5},
        {"tolerance": "-1s"},
        {"tolerance": "soon"},
        {"columns": ["price", "bid"]},
    ]:
        arguments = {"times": ["1970-01-01"], **bad}
        with pytest.raises(InvalidData):
            asof("KNOWN", conn=aconn, **arguments)
