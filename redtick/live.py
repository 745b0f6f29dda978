"""A live view of one symbol in a notebook: its latest candles and ticks, redrawn as other processes write them.

:class:`LivePanel` (also ``redtick.widgets.LivePanel``) follows a :func:`redtick.feed.watch` on a
background thread: the thread sleeps on the pub/sub subscription until a write's notice wakes it,
reads the new ticks with redtick's readers and shows them; a second thread reads the candles they
touched and redraws the chart, at most every ``redraw`` seconds. A late write (behind the last tick
shown, which the watch does not deliver) is named in the status line and the chart is read again,
so its candles include it. Nothing polls Redis. The threads are daemons and end, closing the
subscription, when the panel stops (:meth:`LivePanel.stop`, the Stop button, or closing the
widget), so the panel neither keeps the process alive nor holds a connection after it.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go

from redtick import checks, reports
from redtick.catalog import layout_of
from redtick.connection import Connection, connect
from redtick.errors import RedtickError
from redtick.feed import TickWatch
from redtick.keys import validate_interval, validate_symbol
from redtick.notices import TickNotice
from redtick.outputs import finish
from redtick.read_options import read_columns
from redtick.reads import candles_read_plan
from redtick.steps import run

__all__ = ["LivePanel"]

_TICK_COLUMNS = ["price", "volume", "trade_id", "side"]
_RETRY_S = 1.0  # after a lost connection, the thread tries again this often (redis-py has retried already)


def _show_figure(output: w.Output, figure: go.Figure) -> None:
    # redtick.widgets re-exports LivePanel, so it is imported when the panel draws, not when this module loads.
    from redtick.widgets import show_figure

    show_figure(output, figure)


class _LiveBox(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The panel's box: closing it (``panel.widget.close()``) stops the panel's threads first."""

    def __init__(self, children: list[w.Widget], on_close: Callable[[], None]):
        super().__init__(children)
        self._on_close = on_close

    def close(self) -> None:
        self._on_close()
        super().close()


class LivePanel:
    """The latest candles and ticks of ``symbol``, updated as they are written, by this process or any other.

    Parameters
    ----------
    symbol : str
    interval : str
        The candles' interval (a stored one reads fastest; ``"1m"`` by default).
    candles : int
        How many of the latest candles the chart shows.
    rows : int
        How many of the latest ticks the table shows (newest first).
    conn : Connection, optional
        Defaults to ``redtick.connect()``. The panel's subscription holds one connection of its pool
        while it runs.
    start : bool
        Start following at once (default); else call :meth:`start`.
    block : float
        Seconds the threads wait at a time before looking whether they are stopped: how long
        :meth:`stop` may take.
    redraw : float
        Seconds between two redraws of the chart at least. The table shows each write as it comes;
        the candles are read and the chart redrawn at most this often (a chart takes tens of
        milliseconds to build), always once after the last write.
    on_update : callable, optional
        Called on the panel's ticks thread with each frame of new ticks, once the table shows it.

    Attributes
    ----------
    ticks : DataFrame
        The latest ``rows`` ticks (``price volume trade_id side``), oldest first.
    candles : DataFrame
        The latest ``candles`` candles, up to the newest tick's.
    figure : plotly Figure
        The candlestick chart shown.
    seen : int
        Ticks received since the panel opened.
    watch : TickWatch
        The watch the panel follows; its ``late`` lists the late writes seen. The status line names
        the latest and the chart is read again with it (the table shows the ticks as delivered).

    Examples
    --------
    >>> import redtick
    >>> panel = LivePanel("DOCLIVE", rows=5)
    >>> _ = redtick.write_ticks([{"ts": "2024-01-02 14:30:05", "price": 101.5, "volume": 3.0}], "DOCLIVE")
    >>> panel.wait_until(lambda p: len(p.candles) == 1, timeout=10)
    True
    >>> panel.ticks["price"].tolist(), panel.candles["close"].tolist()
    ([101.5], [101.5])
    >>> panel.stop()
    """

    def __init__(self, symbol: str, *, interval: str = "1m", candles: int = 60, rows: int = 20,
                 conn: Connection | None = None, start: bool = True, block: float = 0.25, redraw: float = 0.25,
                 on_update: Callable[[pd.DataFrame], None] | None = None):
        self.symbol = validate_symbol(symbol)
        self.interval = interval
        self.step_ms = validate_interval(interval)
        self.block = checks.number(block, "block", low=0.001, high=60, expected="seconds from 0.001 to 60")
        self.redraw = checks.number(redraw, "redraw", low=0, high=3600, expected="seconds from 0 to 3600")
        self.candle_count, self.rows = int(candles), int(rows)
        self.conn = conn or connect()
        self.on_update = on_update
        self.seen = 0
        self.changed = threading.Condition()
        self.ticks = pd.DataFrame(columns=_TICK_COLUMNS)
        self.candles = self._read_candles(None)
        self.figure = reports.candlestick_figure(self.symbol, interval, candles=self.candles)
        # The ticks of the candles shown come first, then every tick as it is written.
        newest = run(self.conn.sync, lambda: layout_of(self.conn).newest_plan(self.symbol))
        since = None if newest is None else self._window_start(newest)
        self.watch = TickWatch(self.symbol, conn=self.conn, start=since, columns=_TICK_COLUMNS, block=self.block)
        self.status = w.HTML()
        self.chart = w.Output()
        self.table = w.HTML()
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.stop_button.on_click(lambda _: self.stop())
        self.widget = _LiveBox([w.HBox([self.stop_button, self.status]), self.chart, self.table], self.stop)
        self._stopping = threading.Event()
        self._chart_due = threading.Event()
        self._newest: int | None = None  # the newest tick received: the chart's candles end with its
        self._state = ""
        self._late_note = ""  # the latest late write, kept in the status line until the next
        self._threads: list[threading.Thread] = []
        self._draw("waiting for ticks")
        if start:
            self.start()

    def __repr__(self) -> str:
        return f"LivePanel({self.symbol!r}, seen={self.seen}, running={self.running})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _window_start(self, newest_ms: int) -> int:
        return (newest_ms // self.step_ms - (self.candle_count - 1)) * self.step_ms

    def _read_candles(self, newest_ms: int | None) -> pd.DataFrame:
        """The latest candles up to ``newest_ms``'s, read straight from the series.

        Not through ``load_ohlcv``: a new series is listed just after its first write commits, and
        the panel may read in between.
        """
        wanted = read_columns(None, "candles")
        if newest_ms is None:
            return finish([], [], False, wanted)
        start = self._window_start(newest_ms)
        got = run(self.conn.sync, lambda: candles_read_plan(layout_of(self.conn), [self.symbol], self.interval,
                                                            start, None, wanted))
        return finish(got, [self.symbol], False, wanted)

    # -- the threads -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the panel's threads follow the symbol."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Follow the symbol on two daemon threads, one for the ticks and one for the chart (once; a
        stopped panel does not start again).

        The chart has its own thread so that building it, tens of milliseconds, never holds up the
        ticks table.
        """
        if self._threads:
            return
        # A full garbage collection pauses every thread for tens of milliseconds in a process holding pandas and
        # plotly; one now, while the caller waits anyway, leaves the next far off instead of in the first seconds.
        gc.collect()
        self._threads = [threading.Thread(target=target, name=f"redtick-live-{self.symbol}-{part}", daemon=True)
                         for target, part in ((self._follow, "ticks"), (self._redraw_charts, "chart"))]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following and close the subscription; returns once the threads have ended (or after ``timeout`` s)."""
        self._stopping.set()
        if not self._threads:
            self.watch.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(deadline - time.monotonic(), 0.0))
        self.stop_button.disabled = True

    def _follow(self) -> None:
        try:
            while not self._stopping.is_set():
                late_before = self.watch.late_count
                try:
                    frame = self.watch.poll(self.block)
                except RedtickError as exc:  # shown, and tried again: a restart of Redis must not end the view
                    self._draw_ticks(f"interrupted: {exc}; trying again")
                    self._stopping.wait(_RETRY_S)
                    continue
                if frame is not None:
                    self._show_ticks(frame)
                    self._newest = int(frame.index[-1].value // 1_000_000)
                    self._chart_due.set()
                if self.watch.late_count != late_before:
                    self._show_late(self.watch.late[-1])
        finally:
            self.watch.close()
            self._draw_ticks("stopped")

    def _redraw_charts(self) -> None:
        while not self._stopping.is_set():
            if not self._chart_due.wait(self.block):
                continue
            self._chart_due.clear()
            try:
                self._show_candles(self._newest)
            except RedtickError as exc:  # the next write draws it again
                self._draw_ticks(f"chart not redrawn: {exc}")
            self._stopping.wait(self.redraw)  # at most one redraw per `redraw` seconds; the last one always

    def _show_ticks(self, frame: pd.DataFrame) -> None:
        """Show ``frame``'s ticks in the table, then tell waiters and ``on_update``."""
        with self.changed:
            self.seen += len(frame)
            self.ticks = pd.concat([self.ticks, frame]).iloc[-self.rows:] if len(self.ticks) else frame.iloc[-self.rows:]
            self._draw_ticks(f"last tick {frame.index[-1]} at {frame['price'].iloc[-1]:,.4f}")
            self.changed.notify_all()
        if self.on_update is not None:
            self.on_update(frame)

    def _show_late(self, notice: TickNotice) -> None:
        """Name the late write of ``notice`` in the status line and have the chart read again: its candles are
        read from the series, so they include the late ticks the table does not show."""
        first, last = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in (notice.first[0], notice.last[0]))
        ticks = "1 tick" if notice.count == 1 else f"{notice.count:,} ticks"
        with self.changed:
            self._late_note = f"late write: {ticks} from {first} to {last}; the chart is reread"
            self._draw_ticks(self._state)
            self.changed.notify_all()
        self._chart_due.set()

    def _show_candles(self, newest_ms: int | None) -> None:
        """Read the candles up to ``newest_ms``'s and redraw the chart, then tell waiters (drawn first, so what
        :meth:`wait_until` sees is shown)."""
        candles = self._read_candles(newest_ms)
        figure = self._chart(candles)
        with self.changed:
            self.candles, self.figure = candles, figure
            _show_figure(self.chart, figure)
            self.changed.notify_all()

    def _chart(self, candles: pd.DataFrame) -> go.Figure:
        """The chart of ``candles``: the one shown with its traces' data and its title (which counts the
        candles) replaced. Building a figure takes about 50 milliseconds, which would hold up the ticks
        thread; replacing the data of one, one or two."""
        figure = self.figure
        if [trace.type for trace in figure.data] != ["candlestick", "bar"]:
            return reports.candlestick_figure(self.symbol, self.interval, candles=candles)
        with figure.batch_update():
            figure.data[0].update(x=candles.index, open=candles["open"], high=candles["high"], low=candles["low"],
                                  close=candles["close"])
            figure.data[1].update(x=candles.index, y=candles["volume"])
            figure.layout.title.text = reports.candles_title(self.symbol, self.interval, candles)
        return figure

    def _draw_ticks(self, state: str) -> None:
        self._state = state
        late = f" &middot; {self._late_note}" if self._late_note else ""
        self.status.value = f"<b>{self.symbol}</b> &middot; {self.seen:,} ticks received &middot; {state}{late}"
        self.table.value = reports.table_html(self.ticks.iloc[::-1], index=True)

    def _draw(self, state: str) -> None:
        self._draw_ticks(state)
        _show_figure(self.chart, self.figure)

    def wait_until(self, condition: Callable[[LivePanel], bool], timeout: float) -> bool:
        """Wait until ``condition(panel)`` holds after an update, at most ``timeout`` seconds; whether it does."""
        with self.changed:
            return self.changed.wait_for(lambda: condition(self), timeout)
