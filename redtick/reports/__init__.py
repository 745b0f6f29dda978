"""Research reports as DataFrames and plotly figures: price changes, candles, alerts, memory, one HTML page.

Every function takes an optional ``conn`` (default ``redtick.connect()``) and works on the
embedded default and on a real Redis alike. Functions that return tables return pandas frames;
functions named ``*_figure`` return plotly figures built from those tables, and ``*_table_html``
show those frames with units, human sizes and short ids. Reports only read: alerts are set and
deleted with :func:`redtick.caches.alerts.set_alerts` and :func:`~redtick.caches.alerts.delete_alert`,
ticks replayed with :func:`redtick.ingest.replay_ticks`.

In a notebook, call :func:`setup_notebook` once at the top: figures then draw in JupyterLab, in
HTML exported with ``jupyter nbconvert`` (offline) and, as a PNG, in GitHub's viewer.
"""

from redtick.reports.alerts import alert_status, alerts_figure, fired_alert_history, latest_tick_time
from redtick.reports.display import figure_bundle, figure_html, figure_image, plotlyjs_html, setup_notebook
from redtick.reports.html import write_html_report
from redtick.reports.memory import MemoryReport, memory_figure, memory_report
from redtick.reports.prices import (
    DEFAULT_PERIODS,
    candles_title,
    candlestick_figure,
    period_minutes,
    price_change_figure,
    price_changes,
)
from redtick.reports.tables import (
    alerts_table_html,
    families_table_html,
    fired_table_html,
    format_bytes,
    format_percent,
    format_time,
    id_html,
    price_change_table_html,
    symbols_table_html,
    table_html,
)

__all__ = [
    "DEFAULT_PERIODS",
    "MemoryReport",
    "alert_status",
    "alerts_figure",
    "alerts_table_html",
    "candles_title",
    "candlestick_figure",
    "families_table_html",
    "figure_bundle",
    "figure_html",
    "figure_image",
    "fired_alert_history",
    "fired_table_html",
    "format_bytes",
    "format_percent",
    "format_time",
    "id_html",
    "latest_tick_time",
    "memory_figure",
    "memory_report",
    "period_minutes",
    "plotlyjs_html",
    "price_change_figure",
    "price_change_table_html",
    "price_changes",
    "setup_notebook",
    "symbols_table_html",
    "table_html",
    "write_html_report",
]
