"""Research reports as DataFrames and plotly figures: price changes, candles, alerts, memory, one HTML page.

Every function takes an optional ``conn`` (default ``redtick.connect()``) and works on the
embedded default and on a real Redis alike. Functions that return tables return pandas frames;
functions named ``*_figure`` return plotly figures built from those tables. Reports only read:
alerts are set and deleted with :func:`redtick.caches.alerts.set_alerts` and
:func:`~redtick.caches.alerts.delete_alert`, ticks replayed with :func:`redtick.ingest.replay_ticks`.
"""

from redtick.reports.alerts import alert_status, alerts_figure, fired_alert_history
from redtick.reports.html import table_html, write_html_report
from redtick.reports.memory import MemoryReport, memory_figure, memory_report
from redtick.reports.prices import (
    DEFAULT_PERIODS,
    candlestick_figure,
    period_minutes,
    price_change_figure,
    price_changes,
)

__all__ = [
    "DEFAULT_PERIODS",
    "MemoryReport",
    "alert_status",
    "alerts_figure",
    "candlestick_figure",
    "fired_alert_history",
    "memory_figure",
    "memory_report",
    "period_minutes",
    "price_change_figure",
    "price_changes",
    "table_html",
    "write_html_report",
]
