"""redtick ingest: CSV and Parquet, ticks and candles, bad rows counted by reason and the rest kept."""

import dataclasses
import re

import pandas as pd
import pytest

from redtick import frames
from redtick.cli import main
from redtick.errors import InvalidData
from redtick.ingest import format_report, ingest_file


@pytest.fixture
def iconn(conn):
    plain = dataclasses.replace(conn.settings, tick_retention_ms=None, candle_retention_ms=None)
    return conn.with_settings(plain)


def test_csv_ticks_with_bad_rows(iconn, tmp_path):
    path = tmp_path / "ticks.csv"
    path.write_text(
        "ts,price,volume,trade_id\n"
        "2024-01-01T00:00:00.000Z,100.0,1,1\n"
        "2024-01-01T00:00:00.000Z,100.0,1,2\n"
        "2024-01-01T00:00:01.000Z,nan,1,3\n"
        "not-a-time,100.0,1,4\n"
        "2024-01-01T00:00:02.000Z,101.0,-5,5\n"
        "2024-01-01T00:00:03.000Z,102.0,2,6\n"
        "2024-01-01T00:00:00.000Z,100.0,1,1\n"
    )
    report = ingest_file(path, "CSVT", conn=iconn, chunk_rows=3, progress=False)
    assert (report.kind, report.received, report.written, report.duplicates) == ("ticks", 7, 3, 1)
    assert report.rejected == {"price is missing, NaN or infinite": 1, "unparseable time": 1,
                               "volume is NaN, infinite or negative": 1}
    assert frames.load_ticks("CSVT", conn=iconn)["price"].tolist() == [100.0, 100.0, 102.0]
    text = format_report(report)
    assert re.search(r"rows read\s+7\n", text) and re.search(r"unparseable time\s+1\n", text)


def test_parquet_candles_interval_guessed(iconn):
    report = ingest_file("data/aapl_1m_20260729.parquet", "AAPL", conn=iconn, progress=False)
    assert (report.kind, report.interval, report.written) == ("candles", "1m", 2382)
    aapl = pd.read_parquet("data/aapl_1m_20260729.parquet")
    assert frames.load_ohlcv("AAPL", "1m", conn=iconn)["close"].tolist() == aapl["close"].tolist()


def test_bad_candle_rows_are_skipped_and_counted(iconn, tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(
        "ts,open,high,low,close,volume\n"
        "2024-01-01T00:00:00Z,10,11,9,10.5,100\n"
        "2024-01-01T00:01:00Z,10,9,9,10.5,100\n"
        "2024-01-01T00:02:30Z,10,11,9,10.5,100\n"
        "2024-01-01T00:03:00Z,10,11,9,10.5,100\n"
    )
    report = ingest_file(path, "BARS", interval="1m", conn=iconn, progress=False)
    assert report.written == 2
    assert report.rejected == {"high or low does not bound open and close": 1, "time is not on the 1m grid from the epoch": 1}


def test_missing_or_wrong_files_are_typed_errors(iconn, tmp_path):
    with pytest.raises(InvalidData, match="no such file"):
        ingest_file(tmp_path / "nope.csv", "X", conn=iconn)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(InvalidData, match=r"csv or \.parquet"):
        ingest_file(tmp_path / "x.json", "X", conn=iconn)


def test_cli_prints_a_summary(capsys):
    assert main(["ingest", "data/eurusd_1h_ask_2017.parquet", "--symbol", "EURUSD", "-q"]) == 0
    out = capsys.readouterr().out
    assert "candles (1h)" in out and "6,225" in out
    assert main(["ingest", "data/eurusd_1h_ask_2017.parquet", "--symbol", "bad symbol", "-q"]) == 2
