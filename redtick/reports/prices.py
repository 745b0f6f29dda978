"""Price changes over periods and candlestick charts, as frames and plotly figures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from redtick import checks
from redtick.caches.prices import PriceCache
from redtick.config import parse_duration
from redtick.connection import Connection, blocking, connect
from redtick.errors import ConfigurationError, InvalidData
from redtick.frames import load_ohlcv
from redtick.keys import validate_symbol

__all__ = ["DEFAULT_PERIODS", "PRICE_CHANGE_COLUMNS", "candles_title", "candlestick_figure", "period_minutes",
           "price_change_figure", "price_changes"]

DEFAULT_PERIODS = ("15m", "1h", "4h", "1d")
PRICE_CHANGE_COLUMNS = ("symbol", "period", "period_minutes", "previous_price", "current_price", "change",
                        "change_percent", "from_time", "to_time")
_PRICES = PRICE_CHANGE_COLUMNS[3:7]  # the float columns a period the series does not reach leaves NaN


def period_minutes(period: str | int) -> int:
    """Whole minutes in a period given as minutes or a duration such as ``"4h"``; InvalidData otherwise.

    Examples
    --------
    >>> period_minutes("4h"), period_minutes(90)
    (240, 90)
    """
    if not isinstance(period, str):
        return checks.whole(period, "period", low=1, expected="whole minutes from 1 or a duration such as '1h'")
    try:
        ms = parse_duration(period, name="period")
    except ConfigurationError as exc:
        raise InvalidData(str(exc)) from None
    if ms % 60_000:
        raise InvalidData(f"period {period!r} is not a whole number of minutes")
    return ms // 60_000


def _period_label(period: str | int) -> str:
    return period if isinstance(period, str) else f"{int(period)}m"


def price_changes(
    symbols: str | Iterable[str],
    periods: Sequence[str | int] = DEFAULT_PERIODS,
    *,
    at: Any = None,
    conn: Connection | None = None,
) -> pd.DataFrame:
    """Price change of each symbol over each period, one row per (symbol, period).

    Each row is :meth:`PriceCache.get_price_change`: the last tick at or before ``at`` (default:
    the symbol's newest tick) against the last tick at or before ``at - period``. A period the
    series does not reach back to gives NaN prices and NaT times.

    Parameters
    ----------
    symbols : str or list of str
    periods : list of str or int
        Durations such as ``"15m"``, ``"1h"``, ``"1d"``, or whole minutes.
    at : str, datetime, pd.Timestamp or epoch ms, optional
        The end of every period.
    conn : Connection, optional

    Returns
    -------
    DataFrame
        Columns ``symbol period period_minutes previous_price current_price change change_percent
        from_time to_time``.

    Examples
    --------
    >>> import redtick
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 100.0, "volume": 1.0},
    ...                          {"ts": 3_600_000, "price": 101.0, "volume": 1.0}], symbol="CHGDOC")
    >>> price_changes("CHGDOC", ["1h"])[["period", "change", "change_percent"]]
      period  change  change_percent
    0     1h     1.0             1.0
    """
    conn = conn or connect()
    names = [validate_symbol(s) for s in ([symbols] if isinstance(symbols, str) else symbols)]
    pairs = [(symbol, _period_label(p), period_minutes(p)) for symbol in names for p in periods]
    cache = PriceCache(conn)

    async def gather() -> list[dict[str, Any] | None]:
        return [await cache.get_price_change(symbol, minutes, at=at) for symbol, _, minutes in pairs]

    rows = []
    for (symbol, label, minutes), found in zip(pairs, blocking(conn, gather), strict=True):
        change = found or {}
        rows.append({"symbol": symbol, "period": label, "period_minutes": minutes,
                     **{k: change.get(k, math.nan) for k in _PRICES},
                     "from_time": change.get("from_time"), "to_time": change.get("to_time")})
    table = pd.DataFrame(rows, columns=list(PRICE_CHANGE_COLUMNS))
    for column in ("from_time", "to_time"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return table.astype(dict.fromkeys(_PRICES, np.float64))


def price_change_figure(table: pd.DataFrame) -> go.Figure:
    """Bars of percent change per period, one colour per symbol, from :func:`price_changes`.

    Bars are labelled in percent (``-0.91%``), the unit of their height; hovering shows the change
    in price units and the two ticks' prices and times. A period the series does not reach back
    to has no bar and says ``n/a``.

    Examples
    --------
    >>> table = pd.DataFrame({"symbol": ["ES"], "period": ["1h"], "change_percent": [0.25], "change": [4.0]})
    >>> bars = price_change_figure(table).data[0]
    >>> list(bars.y), list(bars.text)
    ([0.25], ['+0.25%'])
    """
    figure = go.Figure()
    for symbol, rows in table.reindex(columns=list(PRICE_CHANGE_COLUMNS)).groupby("symbol", sort=False):
        hover = [f"{symbol} over {r.period}: {_signed(r.change_percent, '%')} ({_signed(r.change, '')} in price)<br>"
                 f"{_price(r.previous_price)} at {_when(r.from_time)} → {_price(r.current_price)} at {_when(r.to_time)}"
                 " (tick times, UTC)" for r in rows.itertuples()]
        figure.add_bar(name=str(symbol), x=rows["period"].tolist(), y=rows["change_percent"].tolist(),
                       text=[_signed(p, "%") for p in rows["change_percent"]], textposition="outside",
                       cliponaxis=False, hovertext=hover, hoverinfo="text")
        for period in rows.loc[rows["change_percent"].isna(), "period"]:
            figure.add_annotation(x=period, y=0, text=f"{symbol}: n/a (no tick {period} back)", showarrow=False,
                                  yshift=12, font_color="#7f8c8d")
    ends = table["to_time"].dropna().unique() if "to_time" in table else []
    symbols = table["symbol"].unique()
    title = f"{symbols[0]} price change by period (%)" if len(symbols) == 1 else "Price change by period (%)"
    if len(ends) == 1:
        title += f", up to {_when(ends[0])} UTC (tick time)"
    figure.update_layout(title=title, barmode="group", template="plotly_white",
                         xaxis_title="period", yaxis_title="change (%)",
                         yaxis_ticksuffix="%", legend_title_text="symbol")
    return figure


def _signed(value: float, unit: str) -> str:
    return "n/a" if value != value else f"{value:+,.2f}{unit}"


def _price(value: float) -> str:
    return "n/a" if value != value else f"{value:,.2f}"


def _when(value: Any) -> str:
    return "n/a" if value is None or value is pd.NaT or value != value else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _zone(candles: pd.DataFrame) -> Any:
    return candles.index.tz if isinstance(candles.index, pd.DatetimeIndex) and candles.index.tz is not None else "UTC"


def candles_title(symbol: str, interval: str, candles: pd.DataFrame) -> str:
    """The title of :func:`candlestick_figure`: what the candles are, how many, and the zone of their times.

    Examples
    --------
    >>> candles_title("ES", "1m", pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")))
    'ES 1m candles (0), bar start times in UTC'
    """
    return f"{symbol} {interval} candles ({len(candles):,}), bar start times in {_zone(candles)}"


def candlestick_figure(
    symbol: str,
    interval: str = "1h",
    start: Any = None,
    end: Any = None,
    *,
    candles: pd.DataFrame | None = None,
    conn: Connection | None = None,
) -> go.Figure:
    """Candlestick with volume bars below it, from :func:`redtick.load_ohlcv` (or ``candles`` given).

    Examples
    --------
    >>> candles = pd.DataFrame({"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [10.0]},
    ...                        index=pd.DatetimeIndex(["2024-01-01"], tz="UTC", name="ts"))
    >>> [trace.type for trace in candlestick_figure("DOC", candles=candles).data]
    ['candlestick', 'bar']
    """
    if candles is None:
        candles = load_ohlcv(symbol, interval, start, end, conn=conn)
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    figure.add_trace(go.Candlestick(x=candles.index, open=candles["open"], high=candles["high"], low=candles["low"],
                                    close=candles["close"], name=symbol), row=1, col=1)
    figure.add_trace(go.Bar(x=candles.index, y=candles["volume"], name="volume", marker_color="#7f8c8d"), row=2, col=1)
    zone = _zone(candles)
    figure.update_layout(title=candles_title(symbol, interval, candles),
                         height=480,  # the volume pane gets about 110 pixels, room for its two-line title
                         xaxis_rangeslider_visible=False, showlegend=False, template="plotly_white",
                         # two short lines: one long line is taller than the volume pane and runs into "price"
                         yaxis_title="price", yaxis2_title=f"volume<br>(per {interval})", xaxis2_title=f"time ({zone})")
    return figure
