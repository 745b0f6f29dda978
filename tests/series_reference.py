"""The pandas reference that stored candles must equal: resample over ticks sorted by time, then id."""

import numpy as np
import pandas as pd


def reference_ticks(df: pd.DataFrame) -> pd.DataFrame:
    """Distinct ticks (first of each (ts, trade_id)) sorted by time, then trade id."""
    unique = df.drop_duplicates(subset=["ts", "trade_id"], keep="first")
    return unique.sort_values(["ts", "trade_id"], kind="stable").reset_index(drop=True)


def reference_candles(ticks: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """OHLCV + count per non-empty bucket, as pandas resample(label='left', closed='left', origin='epoch')."""
    ordered = reference_ticks(ticks)
    index = pd.to_datetime(ordered["ts"].to_numpy(dtype=np.int64), unit="ms")
    frame = pd.DataFrame({"price": ordered["price"].to_numpy(), "volume": ordered["volume"].to_numpy()}, index=index)
    out = frame.resample(pd.Timedelta(milliseconds=interval_ms), label="left", closed="left", origin="epoch").agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("volume", "sum"), count=("price", "size"),
    )
    out = out[out["count"] > 0].astype("float64")
    out.index = out.index.tz_localize("UTC").as_unit("ms")
    out.index.name = "ts"
    return out


def assert_candles_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.index.asi8) == list(expected.index.asi8), "bucket starts differ"
    for column in ("open", "high", "low", "close", "count"):
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    # Volumes are summed in a different order (per batch, then merged): equal up to float rounding.
    np.testing.assert_allclose(got["volume"].to_numpy(), expected["volume"].to_numpy(), rtol=1e-12)
