"""The users' live and fired alerts as frames, and a chart of a symbol's alert targets over its price."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from redtick.caches.alerts import FiredAlert, PriceAlerts
from redtick.caches.prices import PriceCache
from redtick.connection import Connection, blocking, connect
from redtick.frames import load_ohlcv
from redtick.ingest import fired_alerts_frame
from redtick.outputs import utc_index

__all__ = ["ALERT_COLUMNS", "alert_status", "alerts_figure", "fired_alert_history", "latest_tick_time"]

ALERT_COLUMNS = ("alert_id", "user_id", "symbol", "condition", "target_price", "created_at", "expires_at")


def _users(user_ids: str | Iterable[str]) -> list[str]:
    return [user_ids] if isinstance(user_ids, str) else list(user_ids)


def alert_status(user_ids: str | Iterable[str], *, conn: Connection | None = None) -> pd.DataFrame:
    """The users' live alerts, oldest first, with UTC times.

    Examples
    --------
    >>> from redtick.caches.alerts import set_alerts
    >>> _ = set_alerts([{"user_id": "doclive", "symbol": "DOCLIVE", "target_price": 7.0, "condition": "crosses"}])
    >>> alert_status("doclive")[["symbol", "condition", "target_price"]]
        symbol condition  target_price
    0  DOCLIVE   crosses           7.0
    """
    conn = conn or connect()
    users = _users(user_ids)
    alerts = PriceAlerts(conn)

    async def gather() -> list[dict[str, Any]]:
        return [a for user in users for a in await alerts.get_user_alerts(user)]

    table = pd.DataFrame(blocking(conn, gather), columns=list(ALERT_COLUMNS))
    for column in ("created_at", "expires_at"):
        table[column] = utc_index(table[column].to_numpy(np.int64), name=column)
    return table.astype({"target_price": np.float64})


def fired_alert_history(user_ids: str | Iterable[str], *, limit: int = 100, conn: Connection | None = None) -> pd.DataFrame:
    """The users' fired alerts, most recently fired first: what fired, at which price, when (UTC).

    ``fired_at`` is the time of the tick that met the condition (the market's clock: a replay of
    2013 ticks fires at 2013 times); ``recorded_at`` is when the write that fired it ran.

    Examples
    --------
    >>> import redtick
    >>> from redtick.caches.alerts import set_alerts
    >>> _ = set_alerts([{"user_id": "docfire", "symbol": "DOCFIRE", "target_price": 9.0, "condition": "above"}])
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 9.5, "volume": 1.0}], symbol="DOCFIRE")
    >>> fired_alert_history("docfire")[["symbol", "target_price", "price"]]
        symbol  target_price  price
    0  DOCFIRE           9.0    9.5
    """
    conn = conn or connect()
    users = _users(user_ids)
    alerts = PriceAlerts(conn)

    async def gather() -> list[FiredAlert]:
        return [f for user in users for f in await alerts.get_fired_alerts(user, limit=limit)]

    fired = sorted(blocking(conn, gather), key=lambda f: (f.recorded_at, f.fired_at, f.alert_id), reverse=True)
    return fired_alerts_frame(fired)


def latest_tick_time(symbol: str, *, conn: Connection | None = None) -> pd.Timestamp:
    """The time of the symbol's newest tick (UTC), or NaT without ticks: "now" on the ticks' clock.

    An alert set now was set at this time as its ticks see it; :func:`alerts_figure` takes it as ``set_at``.

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": 60_000, "price": 1.0, "volume": 1.0}], symbol="DOCNEWEST")
    >>> latest_tick_time("DOCNEWEST")
    Timestamp('1970-01-01 00:01:00+0000', tz='UTC')
    """
    conn = conn or connect()
    prices = PriceCache(conn)

    async def newest() -> dict[str, Any] | None:
        return await prices.get_current_quote(symbol)

    quote = blocking(conn, newest)
    return pd.NaT if quote is None else pd.Timestamp(quote["ts"], unit="ms", tz="UTC")


_LIVE, _FIRED = "#2980b9", "#c0392b"
_SAME_CLOCK = pd.Timedelta(days=1)  # how far after the last candle a wall-clock set time still belongs on the chart


def _set_times(alerts: pd.DataFrame, set_at: Any, first: pd.Timestamp, last: pd.Timestamp) -> pd.Series:
    """Each alert's set time on the ticks' clock: ``set_at`` (a time, or alert id -> time) when given, else
    ``created_at`` when it falls on the chart (a live feed shares the wall clock), else NaT (unknown)."""
    if isinstance(set_at, Mapping):
        given = pd.to_datetime(alerts["alert_id"].map(set_at), utc=True)
    elif set_at is not None:
        stamp = pd.Timestamp(set_at)
        given = pd.Series(stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC"), index=alerts.index)
    else:
        given = pd.Series(pd.NaT, index=alerts.index, dtype="datetime64[ms, UTC]")
    created = pd.to_datetime(alerts["created_at"], utc=True) if "created_at" in alerts else given
    on_chart = (created >= first) & (created <= last + _SAME_CLOCK)
    return given.fillna(created.where(on_chart))


def _alert_rows(symbol: str, live: pd.DataFrame, fired: pd.DataFrame, set_at: Any, first: pd.Timestamp,
                last: pd.Timestamp) -> pd.DataFrame:
    """One row per alert of ``symbol``: condition, target, state, set time (tick clock), fired time and price."""
    columns = ["alert_id", "condition", "target_price", "created_at", "price", "fired_at", "recorded_at"]
    parts = [frame[frame["symbol"] == symbol].reindex(columns=columns).assign(state=state)
             for frame, state in ((fired, "fired"), (live, "live"))]
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else \
        pd.DataFrame(columns=[*columns, "state"])
    rows["set_time"] = _set_times(rows, set_at, first, last) if len(rows) else pd.Series(dtype="datetime64[ms, UTC]")
    return rows


def _when(value: Any) -> str:
    return "unknown" if value is None or value is pd.NaT or value != value else \
        pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _alert_hover(row: Any) -> str:
    text = f"<b>{row.condition} {row.target_price:,.2f}</b> ({row.state}, id {row.alert_id})<br>set: {_when(row.set_time)}"
    if row.set_time is pd.NaT:
        # No set time given and the wall-clock one is off the chart (a replay of old ticks): it is not made up.
        text += (" on the ticks' clock (no tick of the symbol was stored when it was set, or it was set elsewhere;"
                 " its line starts at the chart's left edge)")
        if row.created_at == row.created_at:
            text += f"<br>set at {_when(row.created_at)} UTC on the wall clock"
    if row.state == "fired":
        text += (f"<br>fired: {_when(row.fired_at)} (tick time, UTC) at {row.price:,.2f}"
                 f"<br>recorded: {_when(row.recorded_at)} (wall clock, UTC)")
    return text


def _add_targets(figure: go.Figure, rows: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> None:
    """A segment per alert at its target, from its set time (or the chart's start when unknown) to its fire time
    (or the chart's end), solid once fired, dotted while live; a marker where each was set and where each fired."""
    for state, colour, dash in (("fired", _FIRED, "solid"), ("live", _LIVE, "dot")):
        mine = rows[rows["state"] == state]
        if mine.empty:
            continue
        xs: list[Any] = []
        ys: list[Any] = []
        hover: list[Any] = []
        for row in mine.itertuples():
            begin = row.set_time if row.set_time is not pd.NaT else first
            stop = row.fired_at if state == "fired" else last
            xs += [begin, stop, None]
            ys += [row.target_price, row.target_price, None]
            hover += [_alert_hover(row)] * 2 + [None]
        figure.add_scatter(x=xs, y=ys, mode="lines", line={"color": colour, "dash": dash, "width": 1.5},
                           name=f"target, {state}", hovertext=hover, hoverinfo="text")
    known = rows[rows["set_time"].notna()]
    if len(known):
        figure.add_scatter(x=known["set_time"], y=known["target_price"], mode="markers", name="set",
                           marker={"symbol": "triangle-right", "size": 11, "color": "#7f8c8d"},
                           hovertext=[_alert_hover(r) for r in known.itertuples()], hoverinfo="text")
    unknown = len(rows) - len(known)
    if unknown:  # a legend entry only: there is no time to put a marker at
        figure.add_scatter(x=[None], y=[None], mode="markers", name=f"set time unknown ({unknown}): no marker",
                           marker={"symbol": "triangle-right-open", "size": 11, "color": "#7f8c8d"}, hoverinfo="skip")
    shot = rows[rows["state"] == "fired"]
    if len(shot):
        figure.add_scatter(x=shot["fired_at"], y=shot["price"], mode="markers", name="fired (tick price)",
                           marker={"symbol": "x", "size": 12, "color": _FIRED, "line": {"width": 1}},
                           hovertext=[_alert_hover(r) for r in shot.itertuples()], hoverinfo="text")


def _add_labels(figure: go.Figure, rows: pd.DataFrame, low: float, high: float) -> None:
    """One label per target price at the right edge, naming every alert there; labels of near prices are
    spread apart (4% of the price range each) so none covers another."""
    if rows.empty:
        return
    prices = sorted(rows["target_price"].unique())
    gap = 0.04 * max(max(high, prices[-1]) - min(low, prices[0]), 1e-9)
    placed = -np.inf
    for price in prices:
        here = rows[rows["target_price"] == price]
        names = ", ".join(f"{r.condition} ({r.state})" for r in here.itertuples())
        placed = max(price, placed + gap)
        figure.add_annotation(x=1.0, xref="paper", xanchor="left", y=placed, yref="y", showarrow=False,
                              text=f"{names} {price:,.2f}", font={"size": 11,
                              "color": _FIRED if (here["state"] == "fired").all() else _LIVE}, align="left")


def alerts_figure(
    symbol: str,
    live: pd.DataFrame,
    fired: pd.DataFrame,
    *,
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    candles: pd.DataFrame | None = None,
    set_at: Any = None,
    conn: Connection | None = None,
) -> go.Figure:
    """The symbol's close price with each alert's target: from when it was set to when it fired (or now).

    Targets are segments, solid once fired and dotted while live; a triangle marks when each alert
    was set and a cross the tick that fired it (time and price on the tick's clock). A price that
    crossed a target before the alert was set is left of the triangle, so it does not read as a
    missed alert. Labels at the right edge name every alert at each target price.

    ``live`` and ``fired`` are :func:`alert_status` and :func:`fired_alert_history` frames; rows of
    other symbols are ignored.

    Parameters
    ----------
    set_at : time, or mapping of alert id to time, optional
        When each alert was set on the ticks' clock. Without it an alert's ``created_at`` (the wall
        clock) is used when it falls on the chart, as with a live feed; for a replay of old ticks pass
        the time of the last tick written before the alerts were set, or the set time stays unknown
        (the segment then starts at the chart's left edge, its hover says so and a legend entry counts such alerts).

    Examples
    --------
    >>> candles = pd.DataFrame({"close": [1.0, 2.0]}, index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"))
    >>> fired = pd.DataFrame({"alert_id": ["a"], "symbol": ["DOC"], "condition": ["above"], "target_price": [1.5],
    ...                       "price": [2.0], "fired_at": pd.to_datetime(["2024-01-02"], utc=True)})
    >>> live = pd.DataFrame({"alert_id": ["b"], "symbol": ["DOC"], "condition": ["below"], "target_price": [0.5]})
    >>> figure = alerts_figure("DOC", live, fired, candles=candles, set_at="2024-01-01")
    >>> [trace.name for trace in figure.data]
    ['DOC close (1m)', 'target, fired', 'target, live', 'set', 'fired (tick price)']
    >>> [a.text for a in figure.layout.annotations]
    ['below (live) 0.50', 'above (fired) 1.50']
    """
    if candles is None:
        candles = load_ohlcv(symbol, interval, start, end, columns=["close"], conn=conn)
    figure = go.Figure(go.Scatter(x=candles.index, y=candles["close"], mode="lines", name=f"{symbol} close ({interval})",
                                  line={"color": "#34495e", "width": 1.2}))
    first, last = (candles.index.min(), candles.index.max()) if len(candles) else (pd.NaT, pd.NaT)
    rows = _alert_rows(symbol, live, fired, set_at, first, last)
    _add_targets(figure, rows, first, last)
    _add_labels(figure, rows, float(candles["close"].min()) if len(candles) else 0.0,
                float(candles["close"].max()) if len(candles) else 0.0)
    # The legend goes in a row between the title and the plot: below the plot it ran over the x axis' title.
    figure.update_layout(title={"text": f"{symbol} alerts: {int((rows['state'] == 'fired').sum())} fired, "
                                        f"{int((rows['state'] == 'live').sum())} live", "y": 0.98, "yanchor": "top"},
                         xaxis_title="time (tick time, UTC)", yaxis_title="price", template="plotly_white",
                         margin={"r": 190, "t": 100},
                         legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"})
    return figure
