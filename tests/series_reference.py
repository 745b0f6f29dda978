"""The pandas reference that stored candles must equal: resample over ticks sorted by time, then id."""

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Day, Tick

# Sums of volume and of price x volume are added in another order here than in redtick (per write
# batch, then merged; pandas in time order with Kahan compensation), so they may differ in the last
# bits: at most about n x 1.1e-16 relative for n ticks of prices of one sign. 1e-12 leaves room for
# buckets of thousands of ticks; where every product and partial sum is exact (the ES ticks, the
# sampled prices below) the two are equal.
SUM_RTOL = 1e-12


def reference_ticks(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct ticks (first of each (ts, trade_id)) sorted by time, then trade id."""
    unique = df.drop_duplicates(subset=["ts", "trade_id"], keep="first")
    return unique.sort_values(["ts", "trade_id"], kind="stable").reset_index(drop=True)


def reference_candles(ticks: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """OHLCV, count, notional and vwap per non-empty bucket, as pandas resample(label='left', closed='left',
    origin='epoch'); vwap is (price * volume).resample(...).sum() / volume.resample(...).sum()."""
    ordered = reference_ticks(ticks)
    index = pd.to_datetime(ordered["ts"].to_numpy(dtype=np.int64), unit="ms")
    frame = _with_notional(ordered, index)
    out = frame.resample(pd.Timedelta(milliseconds=interval_ms), label="left", closed="left", origin="epoch").agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("volume", "sum"), count=("price", "size"), notional=("notional", "sum"),
    )
    out = out[out["count"] > 0].astype("float64")
    out["vwap"] = out["notional"] / out["volume"]  # 0 / 0 is NaN: no volume, no VWAP
    out.index = out.index.tz_localize("UTC").as_unit("ms")
    out.index.name = "ts"
    return out


def _with_notional(ordered: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    price, volume = ordered["price"].to_numpy(), ordered["volume"].to_numpy(dtype=np.float64)
    return pd.DataFrame({"price": price, "volume": volume, "notional": price * volume}, index=index)


def assert_sums_close(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """volume, and notional and vwap where ``got`` has them, equal up to the order of the additions (NaN = NaN)."""
    for column in ("volume", "notional", "vwap"):
        if column in got.columns or column == "volume":
            np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(), rtol=SUM_RTOL,
                                       err_msg=column)


def assert_candles_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index.asi8) == list(expected.index.asi8), "bucket starts differ"
    for column in ("open", "high", "low", "close", "count"):
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    assert_sums_close(got, expected)


def _in_zone(origin, tz):
    """``origin`` as pandas needs it on an index in ``tz``: a naive time read as a wall-clock time there."""
    if origin == "epoch":
        return origin
    stamp = pd.Timestamp(origin)
    return stamp.tz_localize(tz or "UTC") if stamp.tzinfo is None else stamp


def _naive_origin(origin, tz):
    if origin == "epoch":
        return origin
    stamp = pd.Timestamp(origin)
    return stamp if stamp.tzinfo is None else stamp.tz_convert(tz or "UTC").tz_localize(None)


def reference_resample(ticks: pd.DataFrame, rule: str, *, tz=None, origin="epoch", offset=None, closed=None,
                       label=None) -> pd.DataFrame:
    """pandas' own resample of the distinct ticks (sorted by time, then id) in ``tz``: open, high, low,
    close, volume, count, notional (sum of price x volume) and vwap (notional / volume) for every bin
    pandas makes, empty ones included (count 0).

    ``rule`` is a pandas alias. Fixed widths get ``origin``/``offset`` as pandas takes them (a naive
    origin read in ``tz``). Days with an origin, an offset or n > 1 are binned as pandas bins them
    on a tz-naive index of wall-clock times, their labels then placed in ``tz`` (what redtick
    promises, where pandas 3 ignores origin/offset on a tz-aware index); plain days and anchored
    offsets are pandas' on the tz-aware index.
    """
    ordered = reference_ticks(ticks)
    index = pd.DatetimeIndex(ordered["ts"].to_numpy(dtype=np.int64).view("datetime64[ms]")).tz_localize("UTC")
    index = index.tz_convert(tz) if tz is not None else index
    freq = to_offset(rule)
    wall = isinstance(freq, Day) and (offset is not None or origin != "epoch" or freq.n > 1)
    options = {"closed": closed, "label": label}
    if isinstance(freq, Tick):
        options.update(origin=_in_zone(origin, tz), offset=offset)
    if wall:
        index = index.tz_localize(None)
        options.update(origin=_naive_origin(origin, tz), offset=offset)
    frame = _with_notional(ordered, index)
    out = frame.resample(rule, **options).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("volume", "sum"), count=("price", "size"), notional=("notional", "sum"),
    ).astype("float64")
    out["vwap"] = out["notional"] / out["volume"]  # NaN in empty bins and where no volume traded
    if wall:
        out.index = out.index.tz_localize(tz or "UTC", ambiguous=np.ones(len(out), dtype=bool),
                                          nonexistent="shift_forward")
    out.index.name = "ts"
    return out


def assert_frames_match(got: pd.DataFrame, expected: pd.DataFrame, columns=("open", "high", "low", "close", "count")):
    """Same labels (as instants and in the same zone), prices and counts exactly, volumes (and notional and
    vwap, when ``got`` has them) to rounding."""
    assert str(got.index.tz) == str(expected.index.tz), (got.index.tz, expected.index.tz)
    assert got.index.as_unit("ms").asi8.tolist() == expected.index.as_unit("ms").asi8.tolist(), "labels differ"
    for column in columns:
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    assert_sums_close(got, expected)


def run_with_write_at_first_fetch(connection, plan, write):
    """Run a read ``plan`` step by step on ``connection``'s sync client, calling ``write()`` once just
    before the first step that fetches records (a GETRANGE of more than 8 bytes): a writer landing
    between a read's search and its fetch. Returns (the plan's result, whether ``write`` ran)."""
    reply, wrote = None, False
    try:
        while True:
            step = plan.send(reply)
            if not wrote and any(c[0] == "GETRANGE" and c[3] - c[2] > 7 for c in step.commands):
                write()
                wrote = True
            pipe = connection.sync.pipeline(transaction=False)
            for command in step.commands:
                pipe.execute_command(*command)
            reply = pipe.execute()
    except StopIteration as stop:
        return stop.value, wrote
