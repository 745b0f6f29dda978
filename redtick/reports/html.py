"""One self-contained HTML page of the reports: candles, price changes, alerts and memory."""

from __future__ import annotations

import html
import pathlib
from collections.abc import Iterable, Sequence

import pandas as pd

from redtick.connection import Connection, connect
from redtick.reports.alerts import alert_status, alerts_figure, fired_alert_history
from redtick.reports.memory import MemoryReport, memory_figure, memory_report
from redtick.reports.prices import DEFAULT_PERIODS, candlestick_figure, price_change_figure, price_changes
from redtick.reports.tables import (
    alerts_table_html,
    families_table_html,
    fired_table_html,
    format_bytes,
    price_change_table_html,
    symbols_table_html,
    table_html,
)

__all__ = ["write_html_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } .note { color: #555; }
"""


def write_html_report(
    path: str | pathlib.Path,
    symbol: str,
    *,
    user_ids: str | Iterable[str] = (),
    periods: Sequence[str | int] = DEFAULT_PERIODS,
    interval: str = "1h",
    summary: pd.DataFrame | None = None,
    memory: MemoryReport | None = None,
    title: str = "redtick report",
    conn: Connection | None = None,
) -> pathlib.Path:
    """Write one self-contained HTML page: candlestick, price changes, fired alerts, memory report.

    plotly's JavaScript is inlined once, so the page opens offline and can be mailed as one file.

    Parameters
    ----------
    path : str or Path
        The file to write; its folder is created.
    symbol : str
        The symbol charted.
    user_ids : str or list of str
        Whose alerts (live and fired) to show.
    periods, interval
        Price-change periods and the candle interval.
    summary : DataFrame, optional
        A table shown first (the demo passes its run summary).
    memory : MemoryReport, optional
        Defaults to a fresh :func:`memory_report`.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import redtick, tempfile, os
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 10.0, "volume": 1.0}], symbol="DOCHTML")
    >>> out = write_html_report(os.path.join(tempfile.mkdtemp(), "r.html"), "DOCHTML")
    >>> out.read_text().count("<h2>")
    4
    """
    conn = conn or connect()
    changes = price_changes(symbol, periods, conn=conn)
    live = alert_status(user_ids, conn=conn)
    fired = fired_alert_history(user_ids, conn=conn)
    memory = memory or memory_report(conn)
    figures = [candlestick_figure(symbol, interval, conn=conn), price_change_figure(changes),
               alerts_figure(symbol, live, fired, interval=interval, conn=conn), memory_figure(memory)]
    charts = [f.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="520px")
              for i, f in enumerate(figures)]
    sections = [
        f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(symbol)} on {html.escape(conn.settings.safe_url)}, "
        f"namespace {html.escape(conn.keys.namespace)}</p>",
        "" if summary is None else table_html(summary),
        f"<h2>Candles</h2>{charts[0]}",
        f"<h2>Price change</h2>{price_change_table_html(changes)}{charts[1]}",
        f"<h2>Alerts</h2>{charts[2]}<h3>Fired</h3>{fired_table_html(fired)}<h3>Live</h3>{alerts_table_html(live)}",
        f"<h2>Memory ({html.escape(memory.method)})</h2><p class='note'>{html.escape(memory.note)}</p>"
        f"{table_html(memory.summary())}{charts[3]}<h3>By family</h3>{families_table_html(memory.families)}"
        f"<h3>By symbol</h3>{symbols_table_html(memory.symbols)}<h3>Biggest keys</h3>"
        f"{table_html(memory.biggest, formats={'bytes': format_bytes}, headers={'bytes': 'size'})}",
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>")
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
