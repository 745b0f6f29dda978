"""redtick.widgets: panels are built and their callbacks driven directly, without a browser."""

from __future__ import annotations

import functools
import pathlib

import numpy as np
import pandas as pd

import redtick
from redtick import reports, widgets

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


@functools.cache
def es_ticks() -> pd.DataFrame:
    return pd.read_parquet(DATA / "es_ticks_20130901.parquet").iloc[:40_000]


def test_alerts_panel_creates_lists_deletes_and_fires(conn):
    ticks = es_ticks()
    history, live = ticks.iloc[:30_000], ticks.iloc[30_000:]
    redtick.write_ticks(history, "ES", conn=conn)
    panel = widgets.AlertsPanel(live, symbol="ES", user_id="trader", batch_size=500, replay_size=4_000, conn=conn)
    assert panel.live.empty and panel.choice.options == ()

    high = live["price"].iloc[:4_000].max()
    panel.condition.value, panel.target.value = "above", float(high)
    panel.on_create()
    panel.condition.value, panel.target.value = "below", 1.0
    panel.on_create()
    assert panel.live["target_price"].tolist() == [high, 1.0]
    assert len(panel.choice.options) == 2 and "created below" in panel.status.value

    panel.choice.value = panel.live["alert_id"].iloc[1]
    panel.on_delete()
    assert panel.live["target_price"].tolist() == [high]
    assert "deleted" in panel.status.value

    panel.on_replay()
    assert panel.cursor == 4_000 and panel.progress.value == 4_000
    assert [f.target_price for f in panel.fired_during_replay] == [high]
    assert panel.fired["alert_id"].tolist() == [f.alert_id for f in panel.fired_during_replay]
    assert panel.live.empty and "1 alert(s) fired" in panel.status.value
    assert f"{high:,.2f}" in panel.fired_table.value

    panel.replay_size.value = 100_000
    panel.on_replay()
    assert panel.cursor == len(live) and panel.replay.disabled
    panel.on_replay()
    assert panel.status.value.endswith("nothing left to replay</span>")


def test_alerts_panel_reports_bad_input_in_the_panel(conn):
    panel = widgets.AlertsPanel(symbol="bad symbol", user_id="trader", conn=conn)
    panel.target.value = 10.0
    panel.on_create()
    assert "not created" in panel.status.value and panel.live.empty
    panel.on_delete()
    assert "no alert chosen" in panel.status.value
    assert panel.replay.disabled


def test_price_change_panel_follows_its_pickers(conn):
    ticks = es_ticks()
    redtick.write_ticks(ticks, "ES", conn=conn)
    redtick.write_ticks(ticks.iloc[:1_000].assign(price=lambda f: f["price"] * 2), "ES2", conn=conn)
    panel = widgets.PriceChangePanel(interval="1h", periods=["1h", "15m"], conn=conn)
    assert panel.symbol.options == ("ES", "ES2") and panel.symbol.value == "ES"
    assert panel.table["period"].tolist() == ["15m", "1h"]  # sorted by length
    pd.testing.assert_frame_equal(panel.table, reports.price_changes("ES", ["15m", "1h"], conn=conn))

    panel.symbol.value = "ES2"  # the observer refreshes
    assert panel.table["symbol"].unique().tolist() == ["ES2"]
    panel.interval.value = "5m"
    candles = redtick.load_ohlcv("ES2", "5m", conn=conn)
    assert list(panel.figure.data[0].close) == candles["close"].tolist()
    panel.periods.value = ("4h",)
    assert panel.table["period"].tolist() == ["4h"] and np.isnan(panel.table["change"].iloc[0])
    data = panel.change_chart.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert data["data"][0]["x"] == ["4h"]


def test_price_change_panel_without_series(conn):
    panel = widgets.PriceChangePanel(conn=conn)
    assert panel.symbol.value is None and panel.table.empty
    assert "no symbols" in panel.table_html.value


def test_memory_panel_refreshes(conn):
    panel = widgets.MemoryPanel(conn=conn)
    assert panel.report.total_keys == 0
    redtick.write_ticks(es_ticks().iloc[:5_000], "ES", conn=conn)
    panel.refresh_button.click()
    assert panel.report.ticks == 5_000
    assert panel.report.method == ("estimated" if conn.in_memory else "measured")
    assert panel.report.method in panel.summary_html.value
    bars = panel.chart.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]
    assert dict(zip(bars["y"], bars["x"], strict=True)) == panel.report.families.query("keys > 0")["bytes"].to_dict()
