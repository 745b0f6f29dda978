"""ipywidgets panels over :mod:`redtick.reports`: alerts (create, delete, replay and watch them fire), price change, memory.

Each panel is a plain object holding its widgets, the frames and figures it shows, and one method
per button (``on_create``, ``on_replay``, ``refresh``...). Displaying it in Jupyter shows
``panel.widget``; tests set widget values and call the methods directly, no browser needed.
Charts go into an ``Output`` as plotly's own mime type, which JupyterLab renders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from redtick import reports
from redtick.caches.alerts import FiredAlert, delete_alert, set_alerts
from redtick.catalog import layout_of, list_symbols
from redtick.connection import Connection, connect
from redtick.ingest import replay_ticks
from redtick.keys import ALERT_CONDITIONS
from redtick.reports.prices import PRICE_CHANGE_COLUMNS

__all__ = ["AlertsPanel", "MemoryPanel", "PriceChangePanel", "show_figure"]

PERIOD_CHOICES = ("1m", "5m", "15m", "1h", "4h", "1d", "1w")


def show_figure(output: w.Output, figure: go.Figure) -> None:
    """Replace what ``output`` shows with ``figure`` (plotly's mime type; works without a kernel).

    Examples
    --------
    >>> out = w.Output()
    >>> show_figure(out, go.Figure(go.Bar(y=[1, 2])))
    >>> list(out.outputs[0]["data"])
    ['application/vnd.plotly.v1+json', 'text/plain']
    """
    title = figure.layout.title.text or "plotly figure"
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": {"application/vnd.plotly.v1+json": json.loads(pio.to_json(figure)),
                                "text/plain": f"<{title}>"}},)


class _Panel:
    widget: w.Widget

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class AlertsPanel(_Panel):
    """Create, list and delete a user's alerts; replay ticks through the writer and watch them fire.

    Parameters
    ----------
    ticks : DataFrame, optional
        Ticks to replay (``ts price volume`` and an id column), fed ``replay_size`` at a time in
        batches of ``batch_size`` through :func:`redtick.ingest.replay_ticks`.
    symbol, user_id : str
        Starting values of the pickers.
    conn : Connection, optional

    Examples
    --------
    >>> panel = AlertsPanel(symbol="DOCPANEL", user_id="docs")
    >>> panel.target.value = 10.0
    >>> panel.on_create()
    >>> panel.live[["symbol", "condition", "target_price"]].values.tolist()
    [['DOCPANEL', 'above', 10.0]]
    """

    def __init__(self, ticks: pd.DataFrame | None = None, *, symbol: str = "ES", user_id: str = "quant_1",
                 batch_size: int = 250, replay_size: int = 2_000, conn: Connection | None = None):
        self.conn = conn or connect()
        self.ticks = ticks if ticks is not None else pd.DataFrame(columns=["ts", "price", "volume"])
        self.cursor = 0
        self.batch_size = batch_size
        self.fired_during_replay: list[FiredAlert] = []
        self.symbol = w.Text(value=symbol, description="symbol")
        self.user = w.Text(value=user_id, description="user")
        self.condition = w.Dropdown(options=list(ALERT_CONDITIONS), value="above", description="condition")
        self.target = w.FloatText(value=0.0, description="target")
        self.ttl = w.IntText(value=86_400, description="ttl (s)")
        self.create = w.Button(description="Create alert", button_style="primary")
        self.choice = w.Dropdown(options=[], description="alert")
        self.delete = w.Button(description="Delete alert", button_style="danger")
        self.replay_size = w.IntText(value=replay_size, description="ticks")
        self.replay = w.Button(description="Replay ticks", disabled=len(self.ticks) == 0)
        self.progress = w.IntProgress(value=0, min=0, max=max(len(self.ticks), 1), description="replayed")
        self.status = w.HTML()
        self.live_table = w.HTML()
        self.fired_table = w.HTML()
        self.create.on_click(self.on_create)
        self.delete.on_click(self.on_delete)
        self.replay.on_click(self.on_replay)
        self.user.observe(lambda _: self.refresh(), names="value")
        self.widget = w.VBox([
            w.HBox([self.symbol, self.user]),
            w.HBox([self.condition, self.target, self.ttl, self.create]),
            w.HBox([self.choice, self.delete]),
            w.HBox([self.replay_size, self.replay, self.progress]),
            self.status,
            w.HTML("<b>Live alerts</b>"), self.live_table,
            w.HTML("<b>Fired alerts</b>"), self.fired_table,
        ])
        self.refresh()

    def _say(self, text: str) -> None:
        self.status.value = f"<span>{text}</span>"

    def refresh(self) -> None:
        """Reload the user's live and fired alerts into the tables and the delete picker."""
        self.live = reports.alert_status(self.user.value, conn=self.conn)
        self.fired = reports.fired_alert_history(self.user.value, conn=self.conn)
        self.live_table.value = reports.table_html(self.live)
        self.fired_table.value = reports.table_html(self.fired)
        self.choice.options = [(f"{r.symbol} {r.condition} {r.target_price:,.2f} ({r.alert_id[:6]})", r.alert_id)
                               for r in self.live.itertuples()]

    def on_create(self, _: Any = None) -> None:
        """Create the alert the pickers describe."""
        try:
            (alert_id,) = set_alerts([{"user_id": self.user.value, "symbol": self.symbol.value,
                                       "target_price": self.target.value, "condition": self.condition.value,
                                       "ttl": self.ttl.value}], conn=self.conn)
        except Exception as exc:  # shown in the panel: a typo must not kill the widget
            self._say(f"not created: {exc}")
            return
        self._say(f"created {self.condition.value} {self.target.value:,.2f} on {self.symbol.value} ({alert_id[:6]})")
        self.refresh()

    def on_delete(self, _: Any = None) -> None:
        """Delete the alert chosen in the picker."""
        if self.choice.value is None:
            self._say("no alert chosen")
            return
        deleted = delete_alert(self.user.value, self.choice.value, conn=self.conn)
        self._say("deleted" if deleted else "already gone (fired, expired or deleted)")
        self.refresh()

    def on_replay(self, _: Any = None) -> None:
        """Write the next ``replay_size`` ticks in small batches; each batch checks the alerts once."""
        part = self.ticks.iloc[self.cursor : self.cursor + max(self.replay_size.value, 0)]
        if part.empty:
            self._say("nothing left to replay")
            return

        def landed(row: dict[str, Any]) -> None:
            self.progress.value = min(self.progress.value + row["ticks"], self.progress.max)
            if row["fired"]:
                self._say(f"batch {row['batch']}: {row['fired']} alert(s) fired (prices {row['low']:,.2f}-{row['high']:,.2f})")

        result = replay_ticks(part, self.symbol.value, batch_size=self.batch_size, conn=self.conn, on_batch=landed)
        self.cursor += len(part)
        self.fired_during_replay += result.fired
        self._say(f"replayed {len(part):,} ticks ({result.written:,} new): {len(result.fired)} alert(s) fired")
        self.replay.disabled = self.cursor >= len(self.ticks)
        self.refresh()


class PriceChangePanel(_Panel):
    """Symbol, interval and period pickers driving a candlestick, a price-change chart and a table.

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 10.0, "volume": 1.0}, {"ts": 3_600_000, "price": 11.0, "volume": 1.0}],
    ...                         symbol="DOCPCP")
    >>> panel = PriceChangePanel(symbol="DOCPCP", periods=["1h"])
    >>> panel.table["change"].tolist()
    [1.0]
    """

    def __init__(self, *, symbol: str | None = None, interval: str = "1h", periods: Sequence[str] = ("15m", "1h", "4h", "1d"),
                 conn: Connection | None = None):
        self.conn = conn or connect()
        symbols = list_symbols(conn=self.conn)
        if symbol is not None and symbol not in symbols:
            symbols = sorted([*symbols, symbol])
        intervals = list(layout_of(self.conn).intervals)
        self.symbol = w.Dropdown(options=symbols, value=symbol or (symbols[0] if symbols else None), description="symbol")
        self.interval = w.Dropdown(options=intervals, value=interval if interval in intervals else intervals[0],
                                   description="interval")
        self.periods = w.SelectMultiple(options=sorted({*PERIOD_CHOICES, *periods}, key=reports.period_minutes),
                                        value=tuple(periods), description="periods")
        self.refresh_button = w.Button(description="Refresh")
        self.table_html = w.HTML()
        self.candles_chart = w.Output()
        self.change_chart = w.Output()
        self.refresh_button.on_click(lambda _: self.refresh())
        for picker in (self.symbol, self.interval, self.periods):
            picker.observe(lambda _: self.refresh(), names="value")
        self.widget = w.VBox([w.HBox([self.symbol, self.interval, self.periods, self.refresh_button]),
                              self.table_html, self.change_chart, self.candles_chart])
        self.refresh()

    def refresh(self) -> None:
        """Recompute the table and both charts for the picked symbol, interval and periods."""
        if self.symbol.value is None:
            self.table = pd.DataFrame(columns=list(PRICE_CHANGE_COLUMNS))
            self.table_html.value = "<p>no symbols with a price series yet</p>"
            return
        periods = sorted(self.periods.value, key=reports.period_minutes)
        self.table = reports.price_changes(self.symbol.value, periods, conn=self.conn)
        self.figure = reports.candlestick_figure(self.symbol.value, self.interval.value, conn=self.conn)
        self.change_figure = reports.price_change_figure(self.table)
        self.table_html.value = reports.table_html(self.table)
        show_figure(self.change_chart, self.change_figure)
        show_figure(self.candles_chart, self.figure)


class MemoryPanel(_Panel):
    """The memory report: headline figures, a family breakdown chart and table, refreshed on demand.

    Examples
    --------
    >>> panel = MemoryPanel()
    >>> panel.report.method  # "estimated" on memory://
    'measured'
    """

    def __init__(self, *, conn: Connection | None = None, sample_limit: int = 10_000):
        self.conn = conn or connect()
        self.sample_limit = sample_limit
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.summary_html = w.HTML()
        self.families_html = w.HTML()
        self.chart = w.Output()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = w.VBox([self.refresh_button, self.summary_html, self.chart, self.families_html])
        self.refresh()

    def refresh(self) -> None:
        """Measure (or estimate) again and redraw."""
        self.report = reports.memory_report(self.conn, sample_limit=self.sample_limit)
        self.figure = reports.memory_figure(self.report)
        self.summary_html.value = reports.table_html(self.report.summary())
        families = self.report.families
        self.families_html.value = reports.table_html(families[families["keys"] > 0], index=True)
        show_figure(self.chart, self.figure)
