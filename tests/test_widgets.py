"""redtick.widgets: every panel action driven through its widgets (values set, buttons clicked), its output checked.

No browser: the panels are plain objects over ipywidgets, so a test sets a picker's value or calls
``button.click()`` (which runs the same callbacks a click in JupyterLab does) and reads the status
line, the tables' HTML, the charts' outputs and the panel's static copy.
"""

from __future__ import annotations

import base64
import functools
import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

import redtick
from redtick import datasets, reports, widgets
from redtick.caches.alerts import set_alerts
from redtick.errors import InvalidKey
from redtick.reports.display import PLOTLY_MIME
from tests.conftest import chromium


@functools.cache
def es_ticks() -> pd.DataFrame:
    return datasets.es_ticks().iloc[:40_000]


def chart(output, figure):
    """``figure``, after checking it is what the ``Output`` widget shows (plotly's JSON encodes arrays as bytes)."""
    (shown,) = output.outputs
    assert shown["data"][PLOTLY_MIME] == json.loads(pio.to_json(figure))
    return figure


def trace(figure, name: str):
    (found,) = [t for t in figure.data if t.name == name]
    return found


def test_alerts_panel_creates_lists_deletes_and_fires(conn):
    ticks = es_ticks()
    history, live = ticks.iloc[:30_000], ticks.iloc[30_000:]
    redtick.write_ticks(history, "ES", conn=conn)
    panel = widgets.AlertsPanel(live, symbol="ES", user_id="trader", batch_size=500, replay_size=4_000, conn=conn)
    assert panel.live.empty and panel.choice.options == ()

    high = live["price"].iloc[:4_000].max()
    panel.condition.value, panel.target.value = "above", float(high)
    panel.create.click()
    panel.condition.value, panel.target.value, panel.ttl.value = "below", 1.0, 600
    panel.create.click()
    assert panel.live["target_price"].tolist() == [high, 1.0]
    lives = panel.live["expires_at"] - panel.live["created_at"]
    assert lives.tolist() == [pd.Timedelta(seconds=86_400), pd.Timedelta(seconds=600)]
    assert len(panel.choice.options) == 2 and "created below 1.00 on ES" in panel.status.value
    # Ids are cut to 8 characters, with the whole id on hover.
    first_id = panel.live["alert_id"].iloc[0]
    assert f'title="{first_id}"' in panel.live_table.value and f">{first_id[:8]}…<" in panel.live_table.value
    assert "set at (wall clock, UTC)" in panel.live_table.value

    panel.choice.value = panel.live["alert_id"].iloc[1]
    panel.delete.click()
    assert panel.live["target_price"].tolist() == [high]
    assert "deleted" in panel.status.value

    panel.replay.click()
    assert panel.cursor == 4_000 and panel.progress.value == 4_000
    assert [f.target_price for f in panel.fired_during_replay] == [high]
    assert panel.fired["alert_id"].tolist() == [f.alert_id for f in panel.fired_during_replay]
    assert panel.live.empty and "1 alert(s) fired" in panel.status.value
    assert f"{high:,.2f}" in panel.fired_table.value
    # fired_at is the tick's own time (2013), which the table's header says; recorded_at the wall clock.
    fired_at = panel.fired["fired_at"].iloc[0]
    assert live["ts"].iloc[0] <= fired_at <= live["ts"].iloc[3_999]
    assert "fired at (tick time, UTC)" in panel.fired_table.value
    assert fired_at.strftime("%Y-%m-%d %H:%M:%S") in panel.fired_table.value

    panel.replay_size.value = 100_000
    panel.replay.click()
    assert panel.cursor == len(live) and panel.replay.disabled
    panel.replay.click()
    assert "nothing left to replay" in panel.status.value


def test_alerts_panel_chart_marks_set_and_fire_times(conn):
    ticks = es_ticks()
    history, live = ticks.iloc[:30_000], ticks.iloc[30_000:34_000]
    redtick.write_ticks(history, "ES", conn=conn)
    panel = widgets.AlertsPanel(live, symbol="ES", user_id="marks", batch_size=500, replay_size=4_000, conn=conn)
    crossing = float(live["price"].max())
    panel.condition.value, panel.target.value = "above", crossing
    panel.create.click()
    panel.condition.value, panel.target.value = "crosses", 1.0
    panel.create.click()
    panel.condition.value = "below"
    panel.create.click()  # same price as the crosses alert: one label names both
    panel.replay.click()

    figure = chart(panel.chart, panel.figure)
    set_marks = trace(figure, "set")
    # Set on the ticks' clock: the newest tick written when the alerts were created, not the wall clock.
    assert set(pd.to_datetime(set_marks.x, utc=True)) == {history["ts"].max()}
    fired = trace(figure, "fired (tick price)")
    row = panel.fired.iloc[0]
    assert pd.to_datetime(fired.x, utc=True).tolist() == [row["fired_at"]] and list(fired.y) == [row["price"]]
    labels = [a.text for a in figure.layout.annotations]
    assert labels == ["crosses (live), below (live) 1.00", f"above (fired) {crossing:,.2f}"]
    assert figure.layout.xaxis.title.text == "time (tick time, UTC)"


def test_alerts_panel_status_clears_when_the_user_or_symbol_changes(conn):
    panel = widgets.AlertsPanel(symbol="bad symbol", user_id="trader", conn=conn)
    panel.target.value = 10.0
    panel.create.click()
    assert "not created" in panel.status.value and panel.live.empty
    panel.user.value = "someone_else"
    assert panel.status.value == ""
    panel.delete.click()
    assert "no alert chosen" in panel.status.value
    panel.symbol.value = "ES"
    assert panel.status.value == ""
    assert panel.replay.disabled


def test_alerts_panel_refresh_rereads_symbols_and_alerts(conn):
    panel = widgets.AlertsPanel(symbol="ES", user_id="elsewhere", conn=conn)
    assert panel.symbol.options == () and panel.figure is None
    redtick.write_ticks(es_ticks().iloc[:2_000], "ES", conn=conn)
    (alert_id,) = set_alerts([{"user_id": "elsewhere", "symbol": "ES", "target_price": 1.0, "condition": "below"}],
                             conn=conn)
    assert panel.live.empty
    panel.refresh_button.click()
    assert panel.symbol.options == ("ES",)
    assert panel.live["alert_id"].tolist() == [alert_id] and [v for _, v in panel.choice.options] == [alert_id]
    assert panel.figure is not None and trace(chart(panel.chart, panel.figure), "target, live").y[0] == 1.0
    assert panel.choice.value == alert_id  # picked on refresh, not left on nothing


def test_alerts_panel_picker_lists_live_alerts_and_deletes_the_chosen_one(conn):
    redtick.write_ticks(es_ticks().iloc[:2_000], "ES", conn=conn)
    panel = widgets.AlertsPanel(symbol="ES", user_id="picker", conn=conn)
    assert panel.choice.options == () and panel.choice.value is None
    for condition, target in (("below", 1.0), ("above", 9_999.0), ("crosses", 1_500.5)):
        panel.condition.value, panel.target.value = condition, target
        panel.create.click()
        # the alert just created is listed and picked: Delete now means it
        newest = panel.live["alert_id"].iloc[-1]
        assert panel.choice.value == newest
        assert panel.choice.label == f"{newest[:8]}: ES {condition} {target:,.2f}"
    ids = panel.live["alert_id"].tolist()
    assert [value for _, value in panel.choice.options] == ids and len(ids) == 3

    panel.choice.value = ids[1]  # the user picks the middle one in the dropdown
    panel.delete.click()
    assert "deleted" in panel.status.value and "ES above 9,999.00" in panel.status.value
    assert panel.live["alert_id"].tolist() == [ids[0], ids[2]]
    assert reports.alert_status("picker", conn=conn)["alert_id"].tolist() == [ids[0], ids[2]]
    assert [value for _, value in panel.choice.options] == [ids[0], ids[2]] and panel.choice.value in (ids[0], ids[2])

    panel.delete.click()  # whatever is picked now goes too, then the last one
    panel.delete.click()
    assert panel.live.empty and reports.alert_status("picker", conn=conn).empty
    assert panel.choice.options == () and panel.choice.value is None
    panel.delete.click()
    assert "no alert chosen" in panel.status.value

    # a user change relists the picker for that user
    set_alerts([{"user_id": "other", "symbol": "ES", "target_price": 2.0, "condition": "below"}], conn=conn)
    panel.user.value = "other"
    assert panel.choice.value == panel.live["alert_id"].iloc[0] and "ES below 2.00" in panel.choice.label


def test_price_change_panel_follows_its_pickers(conn):
    ticks = es_ticks()
    redtick.write_ticks(ticks, "ES", conn=conn)
    redtick.write_ticks(ticks.iloc[:1_000].assign(price=lambda f: f["price"] * 2), "ES2", conn=conn)
    panel = widgets.PriceChangePanel(interval="1h", periods=["1h", "15m"], conn=conn)
    assert panel.symbol.options == ("ES", "ES2") and panel.symbol.value == "ES"
    assert panel.table["period"].tolist() == ["15m", "1h"]  # sorted by length
    pd.testing.assert_frame_equal(panel.table, reports.price_changes("ES", ["15m", "1h"], conn=conn))
    # Every period is in view: the list is as tall as its options.
    assert panel.periods.rows == len(panel.periods.options) and {"1d", "1w"} <= set(panel.periods.options)

    panel.symbol.value = "ES2"  # the observer refreshes
    assert panel.table["symbol"].unique().tolist() == ["ES2"]
    panel.interval.value = "5m"
    candles = redtick.load_ohlcv("ES2", "5m", conn=conn)
    assert list(panel.figure.data[0].close) == candles["close"].tolist()
    assert panel.figure.layout.yaxis2.title.text == "volume<br>(per 5m)"
    panel.periods.value = ("4h",)
    assert panel.table["period"].tolist() == ["4h"] and np.isnan(panel.table["change"].iloc[0])
    bars = chart(panel.change_chart, panel.change_figure).data[0]
    assert list(bars.x) == ["4h"]


def test_price_change_bars_are_labelled_in_percent(conn):
    ticks = es_ticks()
    redtick.write_ticks(ticks, "ES", conn=conn)
    panel = widgets.PriceChangePanel(symbol="ES", periods=["15m", "1h"], conn=conn)
    bars = chart(panel.change_chart, panel.change_figure)
    (series,) = bars.data
    expected = [f"{p:+,.2f}%" for p in panel.table["change_percent"]]
    assert list(series.text) == expected and all(re.fullmatch(r"[+-]\d+\.\d\d%", t) for t in series.text)
    # The absolute change, in price units, is on hover, beside the percent.
    for hover, change in zip(series.hovertext, panel.table["change"], strict=True):
        assert f"({change:+,.2f} in price)" in hover
    assert bars.layout.yaxis.title.text == "change (%)" and bars.layout.yaxis.ticksuffix == "%"
    assert f">{expected[0]}<" in panel.table_html.value and "change (%)" in panel.table_html.value


def test_price_change_panel_refresh_finds_new_symbols_and_clears_errors(conn):
    redtick.write_ticks(es_ticks().iloc[:5_000], "ES", conn=conn)
    panel = widgets.PriceChangePanel(symbol="NQ", periods=["1h"], conn=conn)  # not written yet
    assert panel.symbol.options == ("ES", "NQ") and panel.symbol.value == "NQ"
    assert "NQ:" in panel.status.value and "#c0392b" in panel.status.value  # the error, in the panel
    redtick.write_ticks(es_ticks().iloc[:5_000].assign(price=lambda f: f["price"] / 10), "NQ", conn=conn)
    redtick.write_ticks(es_ticks().iloc[:5_000], "YM", conn=conn)
    panel.refresh_button.click()
    assert panel.symbol.options == ("ES", "NQ", "YM") and panel.symbol.value == "NQ"
    assert "#c0392b" not in panel.status.value and "changes up to its newest tick" in panel.status.value
    assert panel.table["current_price"].tolist() == [es_ticks()["price"].iloc[4_999] / 10]
    panel.symbol.value = "YM"
    assert panel.table["symbol"].tolist() == ["YM"]


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
    assert f"{panel.report.total_keys:,} keys, {reports.format_bytes(panel.report.total_bytes)}" in panel.status.value
    figure = chart(panel.chart, panel.figure)
    bars = figure.data[0]
    unit = re.match(r"size \((\w+), ", figure.layout.xaxis.title.text).group(1)
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    expected = panel.report.families.query("keys > 0")["bytes"]
    assert dict(zip(bars.y, np.multiply(bars.x, scale).round().astype(int).tolist(), strict=True)) == expected.to_dict()
    # Sizes read as sizes: "15.8 MiB", not 16535728.
    for size in expected:
        assert reports.format_bytes(size) in panel.families_html.value
        assert f">{size}<" not in panel.families_html.value
    assert "ES" in panel.symbols_html.value
    # Headers apart, with units; numbers right-aligned (keys, sizes, share: columns 2 to 5 after the family).
    for header in ("<th>key family</th>", "<th>keys (count)</th>", "<th>keys sized (count)</th>",
                   f"<th>size ({panel.report.method})</th>", "<th>share of size (%)</th>"):
        assert header in panel.families_html.value
    for column in (2, 3, 4, 5):
        assert f"> :nth-child({column}) {{text-align: right}}" in panel.families_html.value
    assert "<th>ticks<br>(count)</th>" in panel.symbols_html.value

    # A Refresh with nothing new still shows it ran: the read's number and wall-clock time change.
    before = panel.status.value
    panel.refresh_button.click()
    assert panel.reads == 3 and panel.status.value != before
    assert f"read #3 at {panel.refreshed_at:%H:%M:%S} UTC (wall clock)" in panel.status.value


def test_format_bytes_units():
    assert [reports.format_bytes(n) for n in (0, 1023, 1024, 16535728, 5 * 2**30)] == \
        ["0 B", "1,023 B", "1.00 KiB", "15.8 MiB", "5.00 GiB"]


@pytest.fixture
def needs_chromium():
    chromium()  # the static image is drawn by kaleido in Chromium


# What each panel's copy holds after it is displayed, the action then taken, and what the copy must say after it.
COPY_CASES = {
    "alerts": (lambda p: (setattr(p.target, "value", 2.0), p.create.click()), lambda p: p.live["alert_id"].str[:8].tolist()),
    "prices": (lambda p: setattr(p.periods, "value", ("1h", "4h")), lambda p: ["<td>4h</td>"]),
    "memory": (lambda p: p.refresh_button.click(), lambda p: ["read #2"]),
}


@pytest.mark.parametrize("make", ["alerts", "prices", "memory"])
def test_a_displayed_panel_shows_its_widget_and_a_copy_kept_current(conn, make, needs_chromium):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    redtick.write_ticks(es_ticks().iloc[:5_000], "ES", conn=conn)
    (alert_id,) = set_alerts([{"user_id": "copy", "symbol": "ES", "target_price": 1.0, "condition": "below"}], conn=conn)
    panel = {"alerts": lambda: widgets.AlertsPanel(symbol="ES", user_id="copy", conn=conn),
             "prices": lambda: widgets.PriceChangePanel(symbol="ES", periods=["1h"], conn=conn),
             "memory": lambda: widgets.MemoryPanel(conn=conn)}[make]()
    act, after = COPY_CASES[make]
    with capture_output() as shown:
        display(panel)
        act(panel)
    live, copy, *updates = shown.outputs
    # the widget, then its copy: a separate output, so a page that cannot draw the widget still shows the copy
    assert live.data["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert "VBox" not in live.data["text/plain"] and "text/html" not in live.data
    page = copy.data["text/html"]
    assert "children" not in page and copy.transient["display_id"]
    charts = page.count('class="plotly-graph-div"')
    assert charts == {"alerts": 1, "prices": 2, "memory": 1}[make]
    assert page.count('<img class="redtick-chart-image"') == charts  # a PNG where scripts never run
    assert page.count("data:image/png;base64,iVBORw0KGgo") == charts
    tables = {"alerts": [alert_id[:8]], "prices": ["change (%)", "1h"], "memory": ["series ticks", "By symbol"]}[make]
    assert all(text in page for text in tables)
    # a style rule hides the copy wherever the live widget (which carries the paired class) is on the page
    (mark,) = [c[: -len("-live")] for c in panel.widget._dom_classes if c.endswith("-live")]
    assert f"body:has(.{mark}-live) .{mark}-copy {{display: none}}" in page and f"{mark}-copy" in page
    # the action rewrote the copy in place (same display id), so the saved notebook keeps the panel's last state
    assert updates and all(u.update and u.transient == copy.transient for u in updates)
    assert len(updates) == 1  # once per action, however many steps it took
    last = updates[-1].data["text/html"]
    assert all(text in last for text in after(panel)) and not all(text in page for text in after(panel))


@pytest.mark.parametrize("frontend", [None, "JPY_SESSION_NAME", "VSCODE_PID"])
def test_a_chart_carries_its_png_as_a_bundle_entry_only_when_no_frontend_draws_it(frontend, monkeypatch, needs_chromium):
    for name in ("JPY_SESSION_NAME", "VSCODE_PID"):
        monkeypatch.delenv(name, raising=False)
    if frontend is not None:
        monkeypatch.setenv(frontend, "notebook.ipynb")
    bundle = reports.figure_bundle(go.Figure(go.Bar(y=[1, 2]), layout_title_text="bars"))
    # headless (nbconvert, papermill): static viewers get the PNG; JupyterLab or VS Code draw the chart at once
    assert ("image/png" in bundle) == (frontend is None)
    if frontend is None:
        assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64,iVBORw0KGgo" in bundle["text/html"]  # exported pages show it until plotly draws


def test_a_replay_rewrites_the_copy_once_not_after_every_batch(conn, needs_chromium):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    ticks = es_ticks().iloc[:1_000]
    panel = widgets.AlertsPanel(ticks, symbol="ES", user_id="replayer", batch_size=250, replay_size=1_000, conn=conn)
    with capture_output() as shown:
        display(panel)
        panel.replay.click()
    _, copy, *updates = shown.outputs
    assert panel.cursor == 1_000 and panel.progress.value == 1_000  # four batches of 250
    assert len(updates) == 1 and updates[0].transient == copy.transient
    assert "replayed 1,000 ticks" in updates[0].data["text/html"]


def test_a_hostile_user_id_typed_into_the_alerts_panel_is_said_not_raised(conn):
    redtick.write_ticks(es_ticks().iloc[:100], "ES", conn=conn)
    set_alerts([{"user_id": "quant", "symbol": "ES", "target_price": 1.0, "condition": "below"}], conn=conn)
    panel = widgets.AlertsPanel(symbol="ES", user_id="quant", conn=conn)
    assert len(panel.live) == 1
    panel.user.value = "<img src=x onerror=alert(1)>"  # an observer's exception would only reach the kernel's log
    assert "no alerts read" in panel.status.value and "user id" in panel.status.value
    assert panel.live.empty and panel.fired.empty and panel.choice.options == ()
    page = panel.static_html()
    assert "<img src=x" not in page and "&lt;img src=x" in page
    panel.user.value = "quant"  # back to a real user: the error goes, the alert is listed again
    assert panel.status.value == "" and len(panel.live) == 1
    with pytest.raises(InvalidKey):
        widgets.AlertsPanel(symbol="ES", user_id="no spaces allowed", conn=conn)
