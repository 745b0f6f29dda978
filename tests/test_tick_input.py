"""What comes in as ticks is taken exactly or refused with a reason: columns, time units, prices.

Pure: no Redis. The laws compare redtick's conversions with the same times computed another way
(Python integers, numpy datetimes, pandas).
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redtick.errors import InvalidData
from redtick.ticks import (
    BAD_PRICE,
    BAD_VOLUME,
    MAX_TS_MS,
    TICK_INPUT_FIELDS,
    normalise_ticks,
    rename_columns,
    require_columns,
    screen_times,
    times_ms,
    to_epoch_ms,
)

LAWS = settings(max_examples=200, deadline=None, derandomize=True)
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
JAN_1990_S, JAN_2200_S = 631_152_000, 7_258_118_400
ZONES = [None, "UTC", "America/New_York", "America/Chicago", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]

units = st.sampled_from(["s", "ms", "us", "ns"])
zones = st.sampled_from(ZONES)


def ticks(ts, **more) -> pd.DataFrame:
    n = len(ts)
    return pd.DataFrame({"ts": ts, "price": np.arange(1.0, n + 1), "volume": 1.0, **more})


def exact_ms(count: int, unit: str) -> int:
    """Floored epoch ms of ``count`` units, in Python integers."""
    return count * 1_000 // PER_SECOND[unit]


@st.composite
def counts(draw, unit: str, first_s: int = 0, end_s: int = JAN_2200_S) -> int:
    """Whole ``unit``s since the epoch for a time in [first_s, end_s) seconds."""
    return draw(st.integers(first_s * PER_SECOND[unit], end_s * PER_SECOND[unit] - 1))


# -- datetime columns: any unit, any zone, exact ------------------------------------------------------
@LAWS
@given(data=st.data(), unit=units, tz=zones, as_index=st.booleans())
def test_datetimes_of_any_unit_and_zone_give_the_exact_ms(data, unit, tz, as_index):
    # datetime64[ns] ends in 2262; the other units reach far past 2200 (and before 1970).
    low_s, end_s = (-(2**31), 2**33) if unit != "ns" else (-(2**33), 2**33)
    values = data.draw(st.lists(counts(unit, low_s, end_s), min_size=1, max_size=20))
    stamps = pd.DatetimeIndex(np.array(values, dtype=np.int64).view(f"datetime64[{unit}]"))
    if tz is not None:
        stamps = stamps.tz_localize("UTC").tz_convert(tz)  # the same instants, shown in another zone
    frame = pd.DataFrame({"price": 1.0}, index=stamps) if as_index else pd.DataFrame({"ts": stamps})
    assert times_ms(frame).astype(np.int64).tolist() == [exact_ms(v, unit) for v in values]


@pytest.mark.parametrize("tz", ["America/Chicago", "Asia/Kolkata", "Europe/London"])
def test_wall_times_in_a_zone_are_converted_to_utc(tz):
    local = pd.to_datetime(["2024-03-10 01:59:59.999", "2024-03-10 03:00:00.0015"]).tz_localize(tz)
    expected = [int(t.timestamp() * 1_000) for t in local.tz_convert("UTC").floor("ms")]
    assert times_ms(pd.DataFrame({"ts": local})).astype(np.int64).tolist() == expected


def test_naive_times_are_utc_and_seconds_past_2262_stay_exact():
    naive = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01 00:00:00.001"])})
    assert times_ms(naive).tolist() == [1_704_067_200_001.0]
    far = pd.DataFrame({"ts": np.array(["2300-01-01T00:00:01"], dtype="datetime64[s]")})
    days = (datetime.date(2300, 1, 1) - datetime.date(1970, 1, 1)).days
    assert times_ms(far).tolist() == [days * 86_400_000 + 1_000]
    assert normalise_ticks(ticks(far["ts"]), errors="skip").rejected == {"time outside 1970-2200": 1}


def test_python_datetimes_with_mixed_offsets_and_strings():
    moments = [datetime.datetime(2024, 1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
               datetime.datetime(2024, 1, 1, 0, 0, 0, 2_500), "2024-01-01T00:00:03-05:00"]
    assert times_ms(pd.DataFrame({"ts": moments})).tolist() == [1_704_067_200_000, 1_704_067_200_002,
                                                                  1_704_085_203_000]


# -- epoch numbers: unit= on writes and bounds ----------------------------------------------------------
@LAWS
@given(data=st.data(), unit=units)
def test_unit_gives_the_same_ms_as_the_datetime_path(data, unit):
    values = data.draw(st.lists(counts(unit), min_size=1, max_size=20))
    as_datetimes = pd.DatetimeIndex(np.array(values, dtype=np.int64).view(f"datetime64[{unit}]"))
    expected = times_ms(pd.DataFrame({"ts": as_datetimes})).astype(np.int64)
    assert expected.tolist() == [exact_ms(v, unit) for v in values]
    written = normalise_ticks(ticks(values, trade_id=np.arange(len(values))), unit=unit).records
    assert sorted(written["ts"].tolist()) == sorted(expected.tolist())
    assert [to_epoch_ms(v, unit=unit) for v in values] == expected.tolist()
    assert [to_epoch_ms(np.int64(v), unit=unit) for v in values] == expected.tolist()


@LAWS
@given(data=st.data(), unit=units)
def test_float_epochs_convert_as_pandas_does(data, unit):
    # Whole numbers a float64 holds exactly (ns below 2**63: multiples of 2**10) give the integer path.
    step = 1_024 if unit == "ns" else 1
    whole = data.draw(st.lists(counts(unit), min_size=1, max_size=10))
    whole = [v - v % step for v in whole]
    floats = np.array(whole, dtype=np.float64)
    assert [float(f) == v for f, v in zip(floats, whole, strict=True)] == [True] * len(whole)
    assert times_ms(pd.DataFrame({"ts": floats}), unit=unit).astype(np.int64).tolist() == [exact_ms(v, unit) for v in whole]
    # Fractions land where pandas' to_datetime(unit=) puts them, floored to the millisecond.
    fraction = data.draw(st.floats(0, 1, exclude_max=True))
    mixed = floats + fraction
    pandas_ms = (pd.to_datetime(mixed, unit=unit).as_unit("ns").asi8 // 1_000_000).tolist()
    assert times_ms(pd.DataFrame({"ts": mixed}), unit=unit).astype(np.int64).tolist() == pandas_ms
    assert [to_epoch_ms(float(v), unit=unit) for v in mixed] == pandas_ms


@LAWS
@given(data=st.data(), unit=st.sampled_from(["s", "us", "ns"]))
def test_without_unit_a_1990_2200_magnitude_names_its_unit(data, unit):
    values = data.draw(st.lists(counts(unit, JAN_1990_S), min_size=1, max_size=10))
    hint = f"unit='{unit}'"
    with pytest.raises(InvalidData, match=hint):
        to_epoch_ms(values[0], name="start")
    with pytest.raises(InvalidData, match=hint):
        to_epoch_ms(float(values[0]))
    for errors in ("raise", "skip"):  # a whole column in another unit is refused even when skipping rows
        with pytest.raises(InvalidData, match=hint):
            normalise_ticks(ticks(values), errors=errors)


@LAWS
@given(data=st.data())
def test_without_unit_epoch_ms_of_1990_2200_are_taken_as_they_are(data):
    values = data.draw(st.lists(counts("ms", JAN_1990_S), min_size=1, max_size=10))
    assert to_epoch_ms(values[0]) == values[0]
    out = normalise_ticks(ticks(values, trade_id=np.arange(len(values))))
    assert sorted(out.records["ts"].tolist()) == sorted(values)


def test_small_numbers_stay_epoch_ms():
    # Synthetic data and the docs use small times (ts=1_000); below 1990 in seconds nothing names
    # another unit, and between 2200 in seconds and 1990 in ms only ms fits.
    values = [0, 1, 1_000, 61_000, 3_600_000, 631_151_999, 7_258_118_400, 60_000_000_000, 631_151_999_999]
    assert normalise_ticks(ticks(values)).records["ts"].tolist() == values
    assert [to_epoch_ms(v) for v in values] == values


def test_an_explicit_ms_unit_takes_the_seconds_band_as_1970():
    with pytest.raises(InvalidData, match="epoch seconds"):
        normalise_ticks(ticks([1_000_000_000]))
    assert normalise_ticks(ticks([1_000_000_000]), unit="ms").records["ts"].tolist() == [1_000_000_000]
    assert to_epoch_ms(1_000_000_000, unit="ms") == 1_000_000_000


def test_a_stray_row_in_another_unit_is_a_row_reason():
    frame = ticks([1_704_067_200_000, 1_704_067_201, 1_704_067_202_000_000, 1_704_067_203_000_000_000, 10**17, -1])
    out = normalise_ticks(frame, errors="skip")
    assert out.records["ts"].tolist() == [1_704_067_200_000]
    assert out.rejected == {"time looks like epoch seconds, not ms (pass unit='s')": 1,
                            "time looks like epoch microseconds, not ms (pass unit='us')": 1,
                            "time looks like epoch nanoseconds, not ms (pass unit='ns')": 1,
                            "time outside 1970-2200": 2}
    with pytest.raises(InvalidData, match=r"5 of 6 ticks are invalid \(1 time looks like epoch seconds"):
        normalise_ticks(frame)


def test_with_a_unit_the_range_is_checked_after_conversion():
    out = normalise_ticks(ticks([1_704_067_200, 7_258_118_400, -1]), unit="s", errors="skip")
    assert out.records["ts"].tolist() == [1_704_067_200_000]
    assert out.rejected == {"time outside 1970-2200": 2}


def test_numbers_among_date_strings_follow_the_unit_rule():
    rows = [{"ts": 1_704_067_200_000, "price": 1.0, "volume": 1.0},
            {"ts": "2024-01-01T00:00:01Z", "price": 2.0, "volume": 1.0},
            {"ts": "garbage", "price": 3.0, "volume": 1.0}]
    out = normalise_ticks(rows, errors="skip")
    assert out.records["ts"].tolist() == [1_704_067_200_000, 1_704_067_201_000]
    assert out.rejected == {"unparseable time": 1}
    rows[0]["ts"] = 1_704_067_200
    assert normalise_ticks(rows, unit="s", errors="skip").records["ts"].tolist() == [1_704_067_200_000, 1_704_067_201_000]
    with pytest.raises(InvalidData, match="unit='s'"):
        normalise_ticks(rows)


def test_big_integers_stay_exact():
    ns = [1_704_067_200_123_456_789, 1_704_067_200_123_999_999]  # differ below 2**53's resolution
    assert normalise_ticks(ticks(ns), unit="ns").records["ts"].tolist() == [1_704_067_200_123, 1_704_067_200_123]
    as_objects = pd.Series([*ns, "2024-01-01T00:00:00.5Z"], dtype=object)
    assert times_ms(pd.DataFrame({"ts": as_objects}), unit="ns").astype(np.int64).tolist() == [
        1_704_067_200_123, 1_704_067_200_123, 1_704_067_200_500]


def test_nullable_and_unsigned_integer_columns():
    frame = ticks(pd.array([1_704_067_200, None, 2**63 // 10**9], dtype="UInt64"))
    out = normalise_ticks(frame, unit="s", errors="skip")
    assert out.records["ts"].tolist() == [1_704_067_200_000]
    assert out.rejected == {"unparseable time": 1, "time outside 1970-2200": 1}


@pytest.mark.parametrize("unit", ["m", "S", "sec", "", 1, None])
def test_unknown_units_raise(unit):
    if unit is None:
        assert to_epoch_ms(5, unit=unit) == 5
        return
    for call in (lambda: to_epoch_ms(5, unit=unit), lambda: normalise_ticks(ticks([5]), unit=unit),
                 lambda: times_ms(ticks([5]), unit=unit), lambda: screen_times(ticks([5]), unit=unit)):
        with pytest.raises(InvalidData, match="unit="):
            call()


def test_bounds_that_carry_their_own_unit_ignore_unit():
    assert to_epoch_ms("2024-01-01T00:00:01Z", unit="s") == 1_704_067_201_000
    assert to_epoch_ms(pd.Timestamp("2024-01-01 06:00:01", tz="Asia/Kolkata"), unit="ns") == 1_704_069_001_000
    assert to_epoch_ms(datetime.datetime(2024, 1, 1, 0, 0, 1), unit="us") == 1_704_067_201_000
    assert to_epoch_ms(np.datetime64("2300-01-01T00:00:00", "s")) == times_ms(
        pd.DataFrame({"ts": np.array(["2300-01-01"], dtype="datetime64[s]")})).astype(np.int64)[0]


@pytest.mark.parametrize("value", [True, np.bool_(False), float("nan"), float("inf"), "not a time", None, b"x"])
def test_bounds_that_are_not_times_raise(value):
    with pytest.raises(InvalidData):
        to_epoch_ms(value, name="start")


def test_boolean_time_columns_are_not_1970():
    out = normalise_ticks(ticks([True, False]), errors="skip")
    assert len(out.records) == 0 and out.rejected == {"unparseable time": 2}


# -- columns: nothing invented, mappings checked ---------------------------------------------------------
def test_a_missing_volume_is_named_with_the_columns_there_are():
    frame = pd.DataFrame({"ts": [1_000], "price": [1.0], "size": [2.0]})
    with pytest.raises(InvalidData, match=r"no 'volume' column \(columns: \['ts', 'price', 'size'\]\).*'size': 'volume'"):
        normalise_ticks(frame)
    with pytest.raises(InvalidData, match="no 'volume' column"):
        normalise_ticks([{"ts": 1_000, "price": 1.0}], errors="skip")  # skipping rows does not make one up
    assert normalise_ticks(frame, columns={"size": "volume"}).records["volume"].tolist() == [2.0]


@pytest.mark.parametrize("missing", ["ts", "price", "volume"])
def test_every_required_field_is_named_when_missing(missing):
    frame = ticks([1_000]).drop(columns=[missing])
    with pytest.raises(InvalidData, match="no time" if missing == "ts" else f"no '{missing}' column"):
        normalise_ticks(frame)


def test_each_field_can_be_mapped():
    plain = ticks([1_000, 2_000], trade_id=[7, 8], side=["buy", "sell"])
    odd = {"ts": "t_exch", "price": "px", "volume": "qty", "trade_id": "tid", "side": "aggressor"}
    renamed = plain.rename(columns=odd)
    expected = normalise_ticks(plain).records
    got = normalise_ticks(renamed, columns={v: k for k, v in odd.items()}).records
    np.testing.assert_array_equal(got, expected)
    assert got["id"].tolist() == [7, 8] and got["side"].tolist() == [1, -1]


def test_a_mapping_must_name_real_columns_and_fields():
    frame = ticks([1_000]).rename(columns={"volume": "size"})
    with pytest.raises(InvalidData, match=r"columns maps 'qty', but the ticks have no such column; columns are \["):
        normalise_ticks(frame, columns={"qty": "volume"})
    with pytest.raises(InvalidData, match=r"'size' to 'vol', which is not a field of ticks; fields are \['ts'"):
        normalise_ticks(frame, columns={"size": "vol"})
    with pytest.raises(InvalidData, match="two columns named"):
        normalise_ticks(frame.assign(volume=1.0), columns={"size": "volume"})
    with pytest.raises(InvalidData, match="two columns named"):
        normalise_ticks(frame.assign(other=1.0), columns={"size": "volume", "other": "volume"})
    with pytest.raises(InvalidData, match="expected a dict"):
        normalise_ticks(frame, columns=["size"])


def test_a_mapped_column_takes_precedence_over_other_spellings():
    frame = pd.DataFrame({"timestamp": [1_000], "exchange_ts": [2_000], "price": [1.0], "volume": [1.0]})
    assert normalise_ticks(frame).records["ts"].tolist() == [1_000]
    assert normalise_ticks(frame, columns={"exchange_ts": "ts"}).records["ts"].tolist() == [2_000]


def test_swapping_columns_is_allowed():
    frame = pd.DataFrame({"ts": [1_000], "price": [2.0], "volume": [3.0]})
    out = normalise_ticks(frame, columns={"price": "volume", "volume": "price"}).records
    assert (out["price"].tolist(), out["volume"].tolist()) == ([3.0], [2.0])


def test_candle_fields_use_the_same_rule():
    candle_fields = ("ts", "open", "high", "low", "close", "volume", "count")
    bars = pd.DataFrame({"time": [0], "o": [1.0], "h": [2.0], "l": [0.5], "c": [1.5], "v": [10.0]})
    mapping = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
    renamed = rename_columns(bars, mapping, candle_fields, what="candles")
    assert list(renamed.columns) == ["time", "open", "high", "low", "close", "volume"]
    require_columns(renamed, ("ts", "open", "high", "low", "close", "volume"), what="candles")
    with pytest.raises(InvalidData, match=r"candles have no 'volume' column.*'qty': 'volume'"):
        require_columns(bars.rename(columns=mapping).drop(columns="volume").assign(qty=1),
                        ("ts", "open", "high", "low", "close", "volume"), what="candles")
    with pytest.raises(InvalidData, match="not a field of candles"):
        rename_columns(bars, {"o": "price"}, candle_fields, what="candles")
    assert set(TICK_INPUT_FIELDS) == {"ts", "price", "volume", "trade_id", "side"}


# -- prices and volumes -------------------------------------------------------------------------------------
@LAWS
@given(prices=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)),
                       min_size=1, max_size=30))
def test_any_finite_price_is_kept_exactly_and_the_rest_counted(prices):
    out = normalise_ticks(ticks(np.arange(len(prices)) * 1_000).assign(price=pd.Series(prices, dtype=object)),
                          errors="skip")
    finite = [float(p) for p in prices if np.isfinite(float(p))]
    assert out.records["price"].tolist() == finite
    assert out.rejected == ({BAD_PRICE: len(prices) - len(finite)} if len(finite) < len(prices) else {})


def test_zero_and_negative_prices_are_prices():
    wti = normalise_ticks(ticks([1_000, 2_000, 3_000]).assign(price=[-37.63, 0.0, -0.0]))
    assert wti.records["price"].tolist() == [-37.63, 0.0, 0.0]


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -float("inf"), None, "abc"])
def test_a_bad_price_refuses_the_batch_naming_the_reason(price):
    rows = [{"ts": 1_000, "price": 1.0, "volume": 1.0}, {"ts": 2_000, "price": price, "volume": 1.0}]
    with pytest.raises(InvalidData, match=r"1 of 2 ticks are invalid \(1 price is missing, NaN or infinite\)"):
        normalise_ticks(rows)
    assert normalise_ticks(rows, errors="skip").rejected == {BAD_PRICE: 1}


@pytest.mark.parametrize("volume", [float("nan"), float("inf"), -float("inf"), -1.0, None])
def test_a_bad_volume_is_still_refused(volume):
    rows = [{"ts": 1_000, "price": 1.0, "volume": 1.0}, {"ts": 2_000, "price": 1.0, "volume": volume}]
    with pytest.raises(InvalidData, match="volume is NaN, infinite or negative"):
        normalise_ticks(rows)
    out = normalise_ticks(rows, errors="skip")
    assert out.rejected == {BAD_VOLUME: 1} and out.records["volume"].tolist() == [1.0]


def test_times_stay_inside_the_stored_range():
    assert to_epoch_ms("2200-01-01") == MAX_TS_MS == JAN_2200_S * 1_000
    assert to_epoch_ms("1990-01-01") == JAN_1990_S * 1_000
