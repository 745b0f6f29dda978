"""Arrow snapshots: identical round trips through Redis (split into parts or not) and files; Parquet."""

import dataclasses

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from redtick import frames, snapshot
from redtick.errors import InvalidData, NotFound


@pytest.fixture
def sconn(conn):
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    return conn.with_settings(plain)


def _frame(n=5_000):
    rng = np.random.default_rng(1)
    index = pd.DatetimeIndex(1_700_000_000_000 + np.sort(rng.integers(0, 10**8, n)), dtype="datetime64[ms, UTC]", name="ts")
    return pd.DataFrame({"price": rng.uniform(1, 2, n), "volume": rng.uniform(0, 5, n),
                         "trade_id": np.arange(n, dtype=np.int64), "side": rng.choice([-1, 0, 1], n).astype(np.int8)},
                        index=index)


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
@pytest.mark.parametrize("part_bytes", [1024, 64 * 1024 * 1024])
def test_redis_round_trip_is_identical(sconn, compression, part_bytes):
    frame = _frame()
    info = snapshot.save(frame, "snap", compression=compression, part_bytes=part_bytes, conn=sconn)
    assert info.rows == len(frame) and (info.parts > 1) == (part_bytes == 1024)
    back = snapshot.load("snap", conn=sconn)
    pd.testing.assert_frame_equal(back, frame)
    assert str(back.index.dtype) == "datetime64[ms, UTC]"


def test_a_smaller_resave_leaves_no_stale_parts(sconn):
    snapshot.save(_frame(5_000), "shrink", part_bytes=1024, compression=None, conn=sconn)
    small = _frame(10)
    snapshot.save(small, "shrink", part_bytes=1024, conn=sconn)
    pd.testing.assert_frame_equal(snapshot.load("shrink", conn=sconn), small)
    parts = [k for k in sconn.sync.scan_iter(match=sconn.keys.snapshot_pattern()) if b":part:" in k]
    assert len(parts) == snapshot.info("shrink", conn=sconn).parts
    assert snapshot.list_snapshots(conn=sconn) == ["shrink"]
    assert snapshot.delete("shrink", conn=sconn)
    assert list(sconn.sync.scan_iter(match=sconn.keys.snapshot_pattern())) == []


def test_symbols_snapshot_keeps_the_multi_symbol_frame(sconn):
    for symbol in ("AAA", "BBB"):
        frames.write_ticks(pd.DataFrame({"ts": [1_000, 2_000], "price": [1.0, 2.0], "volume": 1.0}), symbol, conn=sconn)
    snapshot.save(["AAA", "BBB"], "both", conn=sconn)
    back = snapshot.load("both", conn=sconn)
    expected = frames.load_ticks(["AAA", "BBB"], conn=sconn, columns=["price", "volume", "trade_id", "side"])
    pd.testing.assert_frame_equal(back, expected)
    candles = snapshot.save("AAA", "candles", kind="ohlcv", interval="1m", conn=sconn)
    assert candles.rows == 1


def test_file_and_parquet(sconn, tmp_path):
    frame = _frame()
    snapshot.save(frame, path=tmp_path / "f.arrow", conn=sconn)
    pd.testing.assert_frame_equal(snapshot.load(path=tmp_path / "f.arrow"), frame)
    assert snapshot.to_parquet(frame, tmp_path / "f.parquet", conn=sconn) == len(frame)
    pd.testing.assert_frame_equal(pq.read_table(tmp_path / "f.parquet").to_pandas(), frame)


def test_corruption_and_missing_are_typed_errors(sconn):
    snapshot.save(_frame(), "c", part_bytes=1024, conn=sconn)
    sconn.sync.set(sconn.keys.snapshot("c", 1), b"garbage")
    with pytest.raises(InvalidData, match="checksum"):
        snapshot.load("c", conn=sconn)
    sconn.sync.delete(sconn.keys.snapshot("c", 2))
    with pytest.raises(NotFound, match="part"):
        snapshot.load("c", conn=sconn)
    with pytest.raises(NotFound):
        snapshot.load("never-saved", conn=sconn)
    with pytest.raises(InvalidData):
        snapshot.save(_frame(), conn=sconn)
    with pytest.raises(InvalidData):
        snapshot.save(_frame(), "x", compression="gzip9", conn=sconn)
