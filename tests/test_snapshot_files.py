"""Snapshot files other tools read (Arrow IPC files), old stream files still load; Parquet exports say what they hold."""

import dataclasses
import importlib.metadata
import json
import os
import stat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import redtick
from redtick import frames, read_options, snapshot
from redtick.errors import InvalidData


@pytest.fixture
def sconn(conn):
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    return conn.with_settings(plain)


def _ticks(n=5_000):
    rng = np.random.default_rng(1)
    index = pd.DatetimeIndex(1_700_000_000_000 + np.sort(rng.integers(0, 10**8, n)), dtype="datetime64[ms, UTC]", name="ts")
    return pd.DataFrame({"price": rng.uniform(1, 2, n), "volume": rng.uniform(0, 5, n),
                         "trade_id": np.arange(n, dtype=np.int64), "side": rng.choice([-1, 0, 1], n).astype(np.int8)},
                        index=index)


def _candles():
    index = pd.MultiIndex.from_product([["AAA", "BBB"], pd.date_range("2024-01-01", periods=3, freq="1min", tz="UTC",
                                                                      unit="ms")], names=["symbol", "ts"])
    return pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0,
                         "count": [4.0, np.nan, 6.0, 7.0, 8.0, np.nan]}, index=index)


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
@pytest.mark.parametrize("make", [_ticks, _candles])
def test_a_snapshot_file_is_an_arrow_ipc_file_that_pandas_and_pyarrow_read(tmp_path, compression, make):
    frame = make()
    path = tmp_path / "snap.arrow"
    info = snapshot.save(frame, path=path, compression=compression)
    data = path.read_bytes()
    assert data[:6] == b"ARROW1" and data[-6:] == b"ARROW1"  # the IPC file format's magic at both ends
    assert (info.rows, info.bytes) == (len(frame), len(data))
    pd.testing.assert_frame_equal(snapshot.load(path=path), frame)
    pd.testing.assert_frame_equal(pd.read_feather(path), frame)
    with pa.ipc.open_file(path) as reader:
        assert reader.num_record_batches >= 1
        pd.testing.assert_frame_equal(reader.read_all().to_pandas(), frame)


def test_stream_files_written_before_still_load(tmp_path):
    frame = _ticks(100)
    for compression in (None, "zstd"):
        old = tmp_path / f"old-{compression}.arrow"
        old.write_bytes(snapshot.frame_to_ipc(frame, compression))  # what save(path=...) used to write
        assert old.read_bytes()[:6] != b"ARROW1"
        pd.testing.assert_frame_equal(snapshot.load(path=old), frame)


def test_a_file_is_replaced_whole_and_readable_by_others(tmp_path):
    path = tmp_path / "snap.arrow"
    snapshot.save(_ticks(), path=path)
    small = _ticks(3)
    snapshot.save(small, path=str(path))
    pd.testing.assert_frame_equal(snapshot.load(path=path), small)
    assert os.listdir(tmp_path) == ["snap.arrow"]  # no temporary file left beside it
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # the umask's, not 0600


def test_broken_files_are_invalid_data(tmp_path):
    good = snapshot.frame_to_ipc(_ticks(100), file=True)
    for name, data in [("garbage", b"not arrow at all"), ("truncated", good[: len(good) // 2]),
                       ("empty", b"")]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InvalidData):
            snapshot.load(path=tmp_path / name)


@pytest.mark.parametrize("reader", ["polars", "duckdb"])
def test_polars_and_duckdb_read_snapshot_files(tmp_path, reader):
    module = pytest.importorskip(reader)
    frame = _ticks(50)
    path = tmp_path / "snap.arrow"
    snapshot.save(frame, path=path, compression=None)
    if reader == "polars":
        back = module.read_ipc(path)
        assert back["price"].to_list() == frame["price"].tolist()
    else:
        # DuckDB's own Arrow-file reader is an extension fetched from the network; from Python it
        # scans the file as a pyarrow dataset (zero copy), which is how its users read Feather files.
        snap = ds.dataset(path, format="ipc")  # noqa: F841 - DuckDB finds the variable by name
        back = module.sql("SELECT price FROM snap").fetchnumpy()
        assert back["price"].tolist() == frame["price"].tolist()


def _metadata(path) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items() if k != b"pandas"}


def test_parquet_of_candles_says_what_count_means_and_keeps_it_nullable(sconn, tmp_path):
    frames.write_ticks(pd.DataFrame({"ts": [60_000, 61_000, 125_000], "price": [1.0, 2.0, 3.0], "volume": 1.0}),
                       "AAA", conn=sconn)
    # An imported bar without a count: its count is unknown, not zero.
    frames.write_candles([{"ts": 0, "open": 5.0, "high": 6.0, "low": 4.0, "close": 5.5, "volume": 9.0}], "AAA", "1m",
                         conn=sconn)
    path = tmp_path / "aaa.parquet"
    assert snapshot.to_parquet("AAA", path, kind="ohlcv", interval="1m", conn=sconn) == 3
    meta = _metadata(path)
    assert meta["kind"] == "ohlcv" and meta["interval"] == "1m" and json.loads(meta["symbols"]) == ["AAA"]
    assert meta["redtick_version"] == importlib.metadata.version("redtick") == redtick.__version__
    assert meta["timezone"] == "UTC" and "label='left'" in meta["index"]
    assert meta["count"] == snapshot.PARQUET_MEANINGS["count"] and "ticks merged" in meta["count"]
    assert meta["vwap"] == snapshot.PARQUET_MEANINGS["vwap"]  # symbols export vwap and notional too (NaN: an import)
    assert pq.read_schema(path).field("count").type == pa.int64()
    back = pd.read_parquet(path)
    assert str(back["count"].dtype) == "Int64"
    assert back["count"].isna().tolist() == [True, False, False] and back["count"].iloc[1:].tolist() == [2, 1]
    loaded = frames.load_ohlcv("AAA", "1m", columns=[*read_options.CANDLE_COLUMNS, *read_options.CANDLE_OPTIONAL], conn=sconn)
    pd.testing.assert_frame_equal(back, loaded.assign(count=loaded["count"].astype("Int64")))


def test_parquet_of_ticks_and_of_several_symbols(sconn, tmp_path):
    for symbol in ("AAA", "BBB"):
        frames.write_ticks(pd.DataFrame({"ts": [1_000, 2_000], "price": [1.0, 2.0], "volume": 1.0}), symbol, conn=sconn)
    path = tmp_path / "ticks.parquet"
    assert snapshot.to_parquet(iter(["AAA", "BBB"]), path, conn=sconn) == 4
    meta = _metadata(path)
    assert meta["kind"] == "ticks" and json.loads(meta["symbols"]) == ["AAA", "BBB"]
    assert meta["index"].startswith("(symbol, ts)")
    assert not {"interval", "count", "vwap"} & set(meta)
    expected = frames.load_ticks(["AAA", "BBB"], columns=["price", "volume", "trade_id", "side"], conn=sconn)
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)


def test_parquet_of_a_frame_tells_its_kind_and_describes_vwap(tmp_path):
    frame = _candles().assign(vwap=[1.2, np.nan, 1.3, 1.4, 1.1, np.nan])
    path = tmp_path / "bars.parquet"
    snapshot.to_parquet(frame, path, interval="1min")
    meta = _metadata(path)
    assert meta["kind"] == "ohlcv" and meta["interval"] == "1min" and json.loads(meta["symbols"]) == ["AAA", "BBB"]
    assert meta["vwap"] == snapshot.PARQUET_MEANINGS["vwap"] and "sum(price * volume) / sum(volume)" in meta["vwap"]
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame.assign(count=frame["count"].astype("Int64")))
    snapshot.to_parquet(_ticks(10), tmp_path / "ticks.parquet")
    assert _metadata(tmp_path / "ticks.parquet")["kind"] == "ticks"
    assert "symbols" not in _metadata(tmp_path / "ticks.parquet")  # a frame without a symbol level names none
    with pytest.raises(InvalidData, match="count"):
        snapshot.to_parquet(_candles().assign(count=0.5), tmp_path / "bad.parquet")
