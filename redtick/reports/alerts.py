"""The users' live and fired alerts as frames, and a chart of a symbol's alert targets over its price."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from redtick.caches.alerts import FiredAlert, PriceAlerts
from redtick.connection import Connection, blocking, connect
from redtick.frames import load_ohlcv
from redtick.ingest import fired_alerts_frame
from redtick.outputs import utc_index

__all__ = ["ALERT_COLUMNS", "alert_status", "alerts_figure", "fired_alert_history"]

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


def alerts_figure(
    symbol: str,
    live: pd.DataFrame,
    fired: pd.DataFrame,
    *,
    interval: str = "1m",
    start: Any = None,
    end: Any = None,
    candles: pd.DataFrame | None = None,
    conn: Connection | None = None,
) -> go.Figure:
    """The symbol's close price with each alert's target as a line: solid when fired, dotted while live.

    ``live`` and ``fired`` are :func:`alert_status` and :func:`fired_alert_history` frames; rows of
    other symbols are ignored.

    Examples
    --------
    >>> candles = pd.DataFrame({"close": [1.0, 2.0]}, index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"))
    >>> fired = pd.DataFrame({"symbol": ["DOC"], "condition": ["above"], "target_price": [1.5], "price": [2.0]})
    >>> live = pd.DataFrame({"symbol": ["DOC"], "condition": ["below"], "target_price": [0.5]})
    >>> len(alerts_figure("DOC", live, fired, candles=candles).layout.shapes)
    2
    """
    if candles is None:
        candles = load_ohlcv(symbol, interval, start, end, columns=["close"], conn=conn)
    figure = go.Figure(go.Scatter(x=candles.index, y=candles["close"], mode="lines", name=f"{symbol} close"))
    for rows, dash, state in ((fired, "solid", "fired"), (live, "dot", "live")):
        for row in rows[rows["symbol"] == symbol].itertuples():
            figure.add_hline(y=row.target_price, line_dash=dash, line_color="#c0392b" if state == "fired" else "#2980b9",
                             annotation_text=f"{row.condition} {row.target_price:,.2f} ({state})")
    figure.update_layout(title=f"{symbol} alerts: {int((fired['symbol'] == symbol).sum())} fired, "
                               f"{int((live['symbol'] == symbol).sum())} live",
                         yaxis_title="price", template="plotly_white")
    return figure
