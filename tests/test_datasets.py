"""The samples installed with redtick: what the loaders return, the files behind them, and ingesting one by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import redtick
from redtick import datasets
from redtick.cli import main
from redtick.errors import NotFound

LOADERS = {"es_ticks": datasets.es_ticks, "aapl_1m": datasets.aapl_1m, "eurusd_1h": datasets.eurusd_1h}
COLUMNS = {
    "es_ticks": ["ts", "seq", "price", "volume"],
    "aapl_1m": ["ts", "open", "high", "low", "close", "volume"],
    "eurusd_1h": ["ts", "open", "high", "low", "close", "volume"],
}

DECIMAL_PRICES = {"aapl_1m": ["open", "high", "low", "close"]}  # float32 in the file, its decimals in the frame


def test_every_sample_has_a_loader_and_every_packaged_file_is_a_sample():
    assert set(LOADERS) == set(datasets.SAMPLES)
    packaged = sorted(f.name for f in datasets.files().iterdir() if f.name.endswith(".parquet"))
    assert packaged == sorted(s.file for s in datasets.SAMPLES.values())


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_loader_returns_its_file_as_documented(name):
    sample = datasets.SAMPLES[name]
    frame = LOADERS[name]()
    assert list(frame.columns) == COLUMNS[name]
    assert len(frame) == sample.rows
    assert str(frame["ts"].dtype) == "datetime64[ms, UTC]"
    assert frame["ts"].is_monotonic_increasing
    on_disk = pq.read_table(datasets.path(name)).to_pandas()
    decimal = DECIMAL_PRICES.get(name, [])
    pd.testing.assert_frame_equal(frame.drop(columns=decimal), on_disk.drop(columns=decimal))
    for column in decimal:  # the same float32 as the file's, read as its decimal
        np.testing.assert_array_equal(frame[column].to_numpy(np.float32), on_disk[column].to_numpy(np.float32))
    assert f"{sample.rows:,}" in LOADERS[name].__doc__  # the docstring states the real row count


def test_float32_prices_read_as_the_decimals_they_stand_for():
    on_disk = pq.read_table(datasets.path("aapl_1m")).to_pandas()
    prices = datasets.aapl_1m()[DECIMAL_PRICES["aapl_1m"]]
    # the file holds float32 noise: 339.690002 is the float32 nearest 339.69, widened
    assert on_disk["open"].iloc[0] != 339.69 and np.float32(on_disk["open"].iloc[0]) == np.float32(339.69)
    assert prices["open"].iloc[0] == 339.69 and prices["close"].iloc[1] == 340.83
    # each is the shortest decimal of its float32: Yahoo's quotes have at most 4 decimals, cents mostly
    assert prices.map(lambda v: len(repr(v).partition(".")[2])).to_numpy().max() == 4
    assert (prices.to_numpy(np.float32).astype(np.float64) != prices.to_numpy()).any()


def test_each_call_is_a_frame_of_its_own():
    first = datasets.eurusd_1h()
    first.loc[0, "close"] = -1.0
    assert datasets.eurusd_1h().loc[0, "close"] == 1.05227


def test_the_es_ticks_are_real_trades():
    ticks = datasets.es_ticks()
    np.testing.assert_array_equal(ticks["seq"].to_numpy(), np.arange(len(ticks)))
    assert (ticks["price"] * 4 == (ticks["price"] * 4).round()).all()  # the 0.25 index-point grid
    assert (ticks["volume"] > 0).all()
    assert int(ticks["ts"].duplicated().sum()) == 415_432  # ticks sharing a millisecond, as the docstring says
    assert ticks["ts"].diff().max() > pd.Timedelta(hours=6)  # the Labor Day halt


@pytest.mark.parametrize("bars", [datasets.aapl_1m, datasets.eurusd_1h])
def test_the_bars_are_consistent(bars):
    frame = bars()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


def test_a_sample_is_found_by_name_or_file_name_and_nothing_else():
    assert datasets.path("es_ticks") == datasets.path("es_ticks_20130901.parquet")
    assert datasets.path("aapl_1m").is_file()
    with pytest.raises(NotFound) as raised:
        datasets.path("data/es_ticks_20130901.parquet")
    assert str(raised.value) == ("no packaged sample named 'data/es_ticks_20130901.parquet'; the samples are "
                                 "es_ticks, aapl_1m, eurusd_1h")


def test_the_package_root_exports_the_samples():
    assert redtick.datasets is datasets


def test_ingest_takes_a_packaged_sample_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/ folder here: the sample comes from the installed package
    assert main(["ingest", "--sample", "eurusd_1h", "--symbol", "EURUSD-SAMPLE", "-q"]) == 0
    assert "6,225" in capsys.readouterr().out
    stored = redtick.load_ohlcv("EURUSD-SAMPLE", "1h")
    expected = datasets.eurusd_1h().set_index("ts")
    assert len(stored) == len(expected)
    np.testing.assert_array_equal(stored["close"].to_numpy(), expected["close"].to_numpy())


def test_ingest_of_the_aapl_sample_stores_the_decimals_not_the_float32_noise(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["ingest", "--sample", "aapl_1m", "--symbol", "AAPL-SAMPLE", "-q"]) == 0
    assert "sample aapl_1m" in capsys.readouterr().out
    stored = redtick.load_ohlcv("AAPL-SAMPLE", "1m")
    expected = datasets.aapl_1m().set_index("ts")
    for column in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(stored[column].to_numpy(), expected[column].to_numpy())
    assert stored["open"].iloc[0] == 339.69  # the file holds 339.690002, the float32 nearest it


@pytest.mark.parametrize("argv", [["ingest", "--symbol", "X"],
                                  ["ingest", "x.csv", "--sample", "es_ticks", "--symbol", "X"],
                                  ["ingest", "--sample", "es", "--symbol", "X"]])
def test_ingest_wants_exactly_one_file_or_sample(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err
