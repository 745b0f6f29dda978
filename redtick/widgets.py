"""ipywidgets panels over :mod:`redtick.reports`: alerts (create, delete, replay and watch them fire), price change, memory.

Each panel is a plain object holding its widgets, the frames and figures it shows, and one method
per button (``on_create``, ``on_replay``, ``refresh``...); tests set widget values and click the
buttons (``button.click()``), no browser needed. Every panel has a Refresh button that rereads
the store (symbols written since, alerts fired by another process) and a status line that says
what the last action did and is cleared when the user or symbol it spoke of changes.

Displaying a panel shows ``panel.widget`` and, as an output of its own, a static copy of what it
shows (status, tables, and charts with a PNG), rewritten after every action so a saved notebook
keeps the panel's last state. Where the live widget draws (JupyterLab, or an exported page that
can fetch the widgets' JavaScript) a style rule hides the copy; where it cannot (``jupyter
nbconvert`` opened offline, GitHub's viewer, a reopened notebook without its kernel) the copy shows.
"""

from __future__ import annotations

import abc
import functools
import html
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
from IPython.display import DisplayHandle, display

from redtick import reports
from redtick.caches.alerts import FiredAlert, delete_alert, set_alerts
from redtick.catalog import layout_of, list_symbols
from redtick.connection import Connection, connect
from redtick.errors import InvalidKey, RedtickError
from redtick.ingest import replay_ticks
from redtick.keys import ALERT_CONDITIONS, validate_user_id
from redtick.live import LivePanel
from redtick.reports.prices import PRICE_CHANGE_COLUMNS
from redtick.reports.tables import ID_LENGTH

__all__ = ["AlertsPanel", "LivePanel", "MemoryPanel", "PriceChangePanel", "show_figure"]

PERIOD_CHOICES = ("1m", "5m", "15m", "1h", "4h", "1d", "1w")


def show_figure(output: w.Output, figure: go.Figure) -> None:
    """Replace what ``output`` shows with ``figure``: plotly's mime type for JupyterLab, and its HTML.

    Examples
    --------
    >>> out = w.Output()
    >>> show_figure(out, go.Figure(go.Bar(y=[1, 2])))
    >>> sorted(out.outputs[0]["data"])
    ['application/vnd.plotly.v1+json', 'text/html', 'text/plain']
    """
    output.outputs = ({"output_type": "display_data", "metadata": {},
                       "data": reports.figure_bundle(figure, image=False)},)


def _chart_html(figure: go.Figure | None) -> str:
    """A figure for the static copy: drawn by plotly.js where it runs, a PNG where it does not."""
    return "" if figure is None else reports.figure_html(figure, image=_image(figure.to_json()))


@functools.lru_cache(maxsize=32)
def _image(figure_json: str) -> bytes | None:
    # A copy is rewritten after every action; a chart the action left as it was keeps its PNG (~0.2 s each).
    return reports.figure_image(json.loads(figure_json))


_Action = TypeVar("_Action", bound=Callable[..., None])


def _action(method: _Action) -> _Action:
    """A panel action (a button's, a picker's, Refresh): once the outermost one ends, however it ends, the
    displayed copies are rewritten, once, not after each step such as every batch of a replay."""

    @functools.wraps(method)
    def act(self: _Panel, *args: Any, **kwargs: Any) -> None:
        self._acting += 1
        try:
            method(self, *args, **kwargs)
        finally:
            self._acting -= 1
            if not self._acting:
                self._update_copy()

    return cast("_Action", act)


def _status(text: str, *, error: bool = False) -> str:
    colour = "#c0392b" if error else "#2c3e50"
    return f'<span style="color:{colour}">{html.escape(text)}</span>'


class _Panel(abc.ABC):
    widget: w.Widget
    title = "redtick panel"
    _acting = 0  # actions running now, nested ones included (see _action)

    @abc.abstractmethod
    def static_html(self) -> str:
        """What the panel shows now as plain HTML: its status line, tables and charts."""

    @functools.cached_property
    def _copies(self) -> list[DisplayHandle]:
        """The static copies displayed so far (a panel displayed twice has two), rewritten by :meth:`_update_copy`."""
        return []

    @functools.cached_property
    def _mark(self) -> str:
        """This panel's name in class attributes: the live widget's and its copies' (a style rule pairs them)."""
        return f"redtick-{uuid.uuid4().hex[:12]}"

    def widget_bundle(self) -> dict[str, Any]:
        """The live widget's output: its view, and a line saying what it is where it cannot be drawn."""
        self.widget.add_class(f"{self._mark}-live")
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/plain"] = f"{self.title} (interactive: run the notebook in Jupyter to use it; a copy follows)"
        return bundle

    def static_bundle(self) -> dict[str, Any]:
        """The static copy's output: HTML hidden where the live widget is on the page, shown everywhere else."""
        hide = f"<style>body:has(.{self._mark}-live) .{self._mark}-copy {{display: none}}</style>"
        return {"text/html": (f"<div class='redtick-panel {self._mark}-copy'>{hide}<p><b>{html.escape(self.title)}</b> "
                              "<i>(a copy of the panel as it was last shown; run the notebook for the live panel)</i></p>"
                              f"{self.static_html()}</div>"),
                "text/plain": f"{self.title}: a copy of the panel as it was last shown"}

    def _ipython_display_(self) -> None:
        display(self.widget_bundle(), raw=True)  # type: ignore[no-untyped-call]  # IPython ships no types here
        self._copies.append(display(self.static_bundle(), raw=True, display_id=True))  # type: ignore[no-untyped-call]

    def _update_copy(self) -> None:
        """Rewrite every displayed copy with what the panel shows now (a no-op before the panel is displayed)."""
        if self._copies:
            bundle = self.static_bundle()
            for copy in self._copies:
                copy.update(bundle, raw=True)  # type: ignore[no-untyped-call]


class AlertsPanel(_Panel):
    """Create, list and delete a user's alerts; replay ticks through the writer and watch them fire.

    Parameters
    ----------
    ticks : DataFrame, optional
        Ticks to replay (``ts price volume`` and an id column), fed ``replay_size`` at a time in
        batches of ``batch_size`` through :func:`redtick.ingest.replay_ticks`.
    symbol, user_id : str
        Starting values of the pickers.
    interval : str
        Candles of the chart of the symbol's price and its alerts.
    conn : Connection, optional

    Examples
    --------
    >>> panel = AlertsPanel(symbol="DOCPANEL", user_id="docs")
    >>> panel.target.value = 10.0
    >>> panel.create.click()
    >>> panel.live[["symbol", "condition", "target_price"]].values.tolist()
    [['DOCPANEL', 'above', 10.0]]
    """

    title = "Alerts panel"
    live: pd.DataFrame
    """The user's live alerts (:func:`redtick.reports.alert_status`)."""
    fired: pd.DataFrame
    """The user's fired alerts (:func:`redtick.reports.fired_alert_history`)."""

    def __init__(self, ticks: pd.DataFrame | None = None, *, symbol: str = "ES", user_id: str = "quant_1",
                 batch_size: int = 250, replay_size: int = 2_000, interval: str = "1m", conn: Connection | None = None):
        self.conn = conn or connect()
        self.ticks = ticks if ticks is not None else pd.DataFrame(columns=["ts", "price", "volume"])
        self.cursor = 0
        self.batch_size = batch_size
        self.interval = interval
        self.fired_during_replay: list[FiredAlert] = []
        self.set_at: dict[str, pd.Timestamp] = {}
        """When each alert this panel created was set, on the ticks' clock (the symbol's newest tick then)."""
        self.figure: go.Figure | None = None
        self.symbol = w.Combobox(value=symbol, options=list_symbols(conn=self.conn), description="symbol",
                                 ensure_option=False, continuous_update=False)
        self.user = w.Text(value=validate_user_id(user_id), description="user", continuous_update=False)
        self.refresh_button = w.Button(description="Refresh", icon="refresh", tooltip="reread symbols and alerts")
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
        self.chart = w.Output()
        self.create.on_click(self.on_create)
        self.delete.on_click(self.on_delete)
        self.replay.on_click(self.on_replay)
        self.refresh_button.on_click(self.refresh)
        self.user.observe(self._context_changed, names="value")
        self.symbol.observe(self._context_changed, names="value")
        self.widget = w.VBox([
            w.HBox([self.symbol, self.user, self.refresh_button]),
            w.HBox([self.condition, self.target, self.ttl, self.create]),
            w.HBox([self.choice, self.delete]),
            w.HBox([self.replay_size, self.replay, self.progress]),
            self.status,
            self.chart,
            w.HTML("<b>Live alerts</b>"), self.live_table,
            w.HTML("<b>Fired alerts</b> (fired at: the tick's own time; recorded at: the wall clock)"), self.fired_table,
        ])
        self.refresh()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.value = _status(text, error=error)

    def _context_changed(self, _: Any = None) -> None:
        self.status.value = ""  # what it said was about the previous user or symbol
        self.refresh()

    @_action
    def refresh(self, _: Any = None) -> None:
        """Reread the symbols and the user's live and fired alerts; redraw the tables, the picker and the chart.

        A user id that is not one (typed into the picker) shows in the status line, with no alerts listed.
        """
        self.symbol.options = tuple(list_symbols(conn=self.conn))
        try:
            user = validate_user_id(self.user.value)
        except InvalidKey as exc:  # said in the panel: an exception here would only reach the kernel's log
            self._say(f"no alerts read: {exc}", error=True)
            self.live, self.fired = self.live.iloc[:0], self.fired.iloc[:0]
        else:
            self.live = reports.alert_status(user, conn=self.conn)
            self.fired = reports.fired_alert_history(user, conn=self.conn)
        self.live_table.value = reports.alerts_table_html(self.live)
        self.fired_table.value = reports.fired_table_html(self.fired)
        self._fill_choice()
        self._draw()

    def _fill_choice(self) -> None:
        """List the live alerts in the picker (short id, symbol, condition, target; the full id as value) and keep
        the alert picked before if still live, else pick the first: a picker left on nothing, as ipywidgets
        leaves one whose options change, makes Delete answer "no alert chosen"."""
        before = self.choice.value
        self.choice.options = [(f"{r.alert_id[:ID_LENGTH]}: {r.symbol} {r.condition} {r.target_price:,.2f}", r.alert_id)
                               for r in self.live.itertuples()]
        ids = list(self.live["alert_id"])
        self.choice.value = before if before in ids else (ids[0] if ids else None)

    def _draw(self) -> None:
        symbol = self.symbol.value
        if symbol not in self.symbol.options:  # no ticks or candles yet: nothing to draw the targets over
            self.figure = None
            self.chart.outputs = ()
            return
        self.figure = reports.alerts_figure(symbol, self.live, self.fired, interval=self.interval, set_at=self.set_at,
                                            conn=self.conn)
        show_figure(self.chart, self.figure)

    @_action
    def on_create(self, _: Any = None) -> None:
        """Create the alert the pickers describe."""
        try:
            (alert_id,) = set_alerts([{"user_id": self.user.value, "symbol": self.symbol.value,
                                       "target_price": self.target.value, "condition": self.condition.value,
                                       "ttl": self.ttl.value}], conn=self.conn)
        except RedtickError as exc:  # shown in the panel: a typo must not kill the widget
            self._say(f"not created: {exc}", error=True)
            return
        newest = reports.latest_tick_time(self.symbol.value, conn=self.conn)
        if newest is not pd.NaT:
            self.set_at[alert_id] = newest
        self._say(f"created {self.condition.value} {self.target.value:,.2f} on {self.symbol.value} "
                  f"(id {alert_id[:ID_LENGTH]})")
        self.refresh()
        if alert_id in self.live["alert_id"].to_numpy():  # the alert just made is the one a Delete after it means
            self.choice.value = alert_id

    @_action
    def on_delete(self, _: Any = None) -> None:
        """Delete the alert chosen in the picker."""
        if self.choice.value is None:
            self._say("no alert chosen", error=True)
            return
        chosen = self.choice.label
        deleted = delete_alert(self.user.value, self.choice.value, conn=self.conn)
        self._say(f"deleted {chosen}" if deleted else f"{chosen}: already gone (fired, expired or deleted)")
        self.refresh()

    @_action
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

    def static_html(self) -> str:
        return (f"<p>{html.escape(self.user.value)}'s alerts on {html.escape(str(self.symbol.value))}: {self.status.value}</p>"
                f"{_chart_html(self.figure)}<h4>Live alerts</h4>{self.live_table.value}"
                f"<h4>Fired alerts</h4>{self.fired_table.value}")


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

    title = "Price-change panel"

    def __init__(self, *, symbol: str | None = None, interval: str = "1h", periods: Sequence[str] = ("15m", "1h", "4h", "1d"),
                 conn: Connection | None = None):
        self.conn = conn or connect()
        self._wanted = symbol
        self._updating = False
        self.figure: go.Figure | None = None
        self.change_figure: go.Figure | None = None
        intervals = list(layout_of(self.conn).intervals)
        choices = sorted({*PERIOD_CHOICES, *periods}, key=reports.period_minutes)
        self.symbol = w.Dropdown(options=[], description="symbol")
        self.interval = w.Dropdown(options=intervals, value=interval if interval in intervals else intervals[0],
                                   description="interval")
        # Every period in view: a list box shorter than its options hides the longest periods behind a scrollbar.
        self.periods = w.SelectMultiple(options=choices, value=tuple(periods), rows=len(choices), description="periods")
        self.refresh_button = w.Button(description="Refresh", icon="refresh", tooltip="reread symbols and prices")
        self.status = w.HTML()
        self.table_html = w.HTML()
        self.candles_chart = w.Output()
        self.change_chart = w.Output()
        self.refresh_button.on_click(self.refresh)
        for picker in (self.symbol, self.interval, self.periods):
            picker.observe(self._picked, names="value")
        self.widget = w.VBox([w.HBox([self.symbol, self.interval, self.periods, self.refresh_button]), self.status,
                              self.table_html, self.change_chart, self.candles_chart])
        self.refresh()

    def _picked(self, _: Any = None) -> None:
        if not self._updating:
            self.refresh()

    def _reload_symbols(self) -> None:
        """The symbols stored now, keeping the picked one (or the one asked for) picked."""
        symbols = list_symbols(conn=self.conn)
        keep = self.symbol.value or self._wanted
        if keep is not None and keep not in symbols:
            symbols = sorted([*symbols, keep])
        self._updating = True
        try:
            self.symbol.options = symbols
            self.symbol.value = keep if keep is not None else (symbols[0] if symbols else None)
        finally:
            self._updating = False

    @_action
    def refresh(self, _: Any = None) -> None:
        """Reread the symbols, then recompute the table and both charts for the picked symbol, interval and periods."""
        self._reload_symbols()
        if self.symbol.value is None:
            self.table = pd.DataFrame(columns=list(PRICE_CHANGE_COLUMNS))
            self.table_html.value = "<p>no symbols with a price series yet</p>"
            self.status.value = ""
            return
        periods = sorted(self.periods.value, key=reports.period_minutes)
        try:
            self.table = reports.price_changes(self.symbol.value, periods, conn=self.conn)
            self.figure = reports.candlestick_figure(self.symbol.value, self.interval.value, conn=self.conn)
        except RedtickError as exc:
            self.status.value = _status(f"{self.symbol.value}: {exc}", error=True)
            return
        self.change_figure = reports.price_change_figure(self.table)
        newest = self.table["to_time"].max() if len(self.table) else pd.NaT
        self.status.value = _status(f"{self.symbol.value}: changes up to its newest tick, "
                                    f"{newest:%Y-%m-%d %H:%M:%S} UTC (tick time)" if newest is not pd.NaT else
                                    f"{self.symbol.value}: no ticks")
        self.table_html.value = reports.price_change_table_html(self.table)
        show_figure(self.change_chart, self.change_figure)
        show_figure(self.candles_chart, self.figure)

    def static_html(self) -> str:
        return (f"<p>{self.status.value}</p>{self.table_html.value}{_chart_html(self.change_figure)}"
                f"{_chart_html(self.figure)}")


class MemoryPanel(_Panel):
    """The memory report: headline figures, a family breakdown chart and tables, refreshed on demand.

    Examples
    --------
    >>> panel = MemoryPanel()
    >>> panel.report.method  # "estimated" on memory://
    'measured'
    """

    title = "Memory panel"

    def __init__(self, *, conn: Connection | None = None, sample_limit: int = 10_000):
        self.conn = conn or connect()
        self.sample_limit = sample_limit
        self.reads = 0
        """How many times the panel read the report (its Refresh clicks and the first read)."""
        self.refreshed_at = pd.Timestamp.now(tz="UTC")
        """When the last read ran, on the wall clock."""
        self.refresh_button = w.Button(description="Refresh", icon="refresh", tooltip="measure again")
        self.status = w.HTML()
        self.summary_html = w.HTML()
        self.families_html = w.HTML()
        self.symbols_html = w.HTML()
        self.chart = w.Output()
        self.refresh_button.on_click(self.refresh)
        self.widget = w.VBox([self.refresh_button, self.status, self.summary_html, self.chart,
                              w.HTML("<b>By key family</b>"), self.families_html,
                              w.HTML("<b>By symbol</b>"), self.symbols_html])
        self.refresh()

    @_action
    def refresh(self, _: Any = None) -> None:
        """Measure (or estimate) again and redraw."""
        self.report = reports.memory_report(self.conn, sample_limit=self.sample_limit)
        self.figure = reports.memory_figure(self.report)
        # The read's number and time say the Refresh ran even when nothing changed and every figure reads the same.
        self.reads += 1
        self.refreshed_at = pd.Timestamp.now(tz="UTC")
        self.status.value = _status(f"{self.report.total_keys:,} keys, {reports.format_bytes(self.report.total_bytes)} "
                                    f"({self.report.method}); read #{self.reads} at {self.refreshed_at:%H:%M:%S} UTC "
                                    "(wall clock)")
        self.summary_html.value = reports.table_html(self.report.summary())
        self.families_html.value = reports.families_table_html(self.report.families, self.report.method)
        self.symbols_html.value = reports.symbols_table_html(self.report.symbols)
        show_figure(self.chart, self.figure)

    def static_html(self) -> str:
        return (f"<p>{self.status.value}</p>{self.summary_html.value}{_chart_html(self.figure)}"
                f"<h4>By key family</h4>{self.families_html.value}<h4>By symbol</h4>{self.symbols_html.value}")
