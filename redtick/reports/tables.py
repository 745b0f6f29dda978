"""The reports' frames as HTML tables a person reads: units in the headers, human sizes, short ids, times that don't wrap.

The frames themselves keep raw numbers (bytes, ratios, full ids, UTC timestamps) for code to use;
these functions only decide how a table shows them.
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

__all__ = ["alerts_table_html", "families_table_html", "fired_table_html", "format_bytes", "format_percent",
           "format_time", "id_html", "price_change_table_html", "symbols_table_html", "table_html"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
ID_LENGTH = 8


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def format_bytes(n: float | None) -> str:
    """Bytes in binary units with three significant figures: ``15.8 MiB``; ``n/a`` for None or NaN.

    Examples
    --------
    >>> format_bytes(16535728), format_bytes(512), format_bytes(1536), format_bytes(None)
    ('15.8 MiB', '512 B', '1.50 KiB', 'n/a')
    """
    if _missing(n):
        return "n/a"
    size, unit = float(n), 0  # type: ignore[arg-type]
    while abs(size) >= 1024 and unit < len(_UNITS) - 1:
        size, unit = size / 1024, unit + 1
    if unit == 0:
        return f"{size:,.0f} B"
    return f"{size:,.{max(0, 2 - int(math.log10(max(abs(size), 1))))}f} {_UNITS[unit]}"


def format_percent(value: float | None, digits: int = 2) -> str:
    """A signed percentage: ``-0.91%``, ``+1.20%``; ``n/a`` for NaN.

    Examples
    --------
    >>> format_percent(-0.9137), format_percent(1.2), format_percent(float("nan"))
    ('-0.91%', '+1.20%', 'n/a')
    """
    return "n/a" if _missing(value) else f"{value:+,.{digits}f}%"


def format_time(value: Any) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS.mmm`` (milliseconds only when not zero), kept on one line.

    The column's header says the clock and zone; the value does not repeat ``+00:00``.

    Examples
    --------
    >>> format_time(pd.Timestamp("2013-09-03 20:14:05.120", tz="UTC"))
    '<span style="white-space:nowrap">2013-09-03 20:14:05.120</span>'
    >>> format_time(pd.NaT)
    'n/a'
    """
    if _missing(value):
        return "n/a"
    stamp = pd.Timestamp(value)
    text = stamp.strftime("%Y-%m-%d %H:%M:%S") + (f".{stamp.microsecond // 1000:03d}" if stamp.microsecond else "")
    return f'<span style="white-space:nowrap">{text}</span>'


def id_html(value: Any, length: int = ID_LENGTH) -> str:
    """An id cut to ``length`` characters with the full id on hover (the ``title`` attribute).

    Examples
    --------
    >>> id_html("a1b2c3d4e5f6g7h8i9j0kl")
    '<span title="a1b2c3d4e5f6g7h8i9j0kl" style="white-space:nowrap">a1b2c3d4…</span>'
    """
    full = html.escape(str(value))
    short = full if len(str(value)) <= length else html.escape(str(value)[:length]) + "…"
    return f'<span title="{full}" style="white-space:nowrap">{short}</span>'


def _number(value: Any) -> str:
    return "n/a" if _missing(value) else f"{value:,.4f}".rstrip("0").rstrip(".")


def _cell(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return format_time(value)
    if isinstance(value, float):
        return _number(value)
    return "n/a" if _missing(value) else html.escape(str(value))


def table_html(
    table: pd.DataFrame,
    index: bool = False,
    *,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A frame as an HTML table (``none`` when empty): numbers right-aligned, headers apart, cells that don't wrap.

    Each column's cells go through ``formats[column]`` (which returns HTML) when given; otherwise
    times show as :func:`format_time`, floats without trailing zeros, text escaped. ``headers``
    renames columns, for units: ``{"bytes": "size"}``; a newline in a header breaks it there. With
    ``index`` the index is the first column, its name the first header. The layout is a ``<style>`` scoped to the table (by an id
    made from its content): JupyterLab's widgets and exported HTML apply it; viewers that drop
    styles show the plain table.

    Examples
    --------
    >>> "<td>1.5</td>" in table_html(pd.DataFrame({"x": [1.5]}))
    True
    >>> page = table_html(pd.DataFrame({"name": ["a"], "bytes": [2048]}), formats={"bytes": format_bytes},
    ...                   headers={"bytes": "size"})
    >>> "<th>size</th>" in page, "<td>2.00 KiB</td>" in page, "> :nth-child(2) {text-align: right}" in page
    (True, True, True)
    """
    if table.empty:
        return "<p class='note'>none</p>"
    formats = dict(formats or {})
    names = dict(headers or {})
    columns = [html.escape(str(names.get(c, c))).replace("\n", "<br>") for c in table.columns]
    cells = [table[column].map(formats.get(column, _cell)).tolist() for column in table.columns]
    labels = [_cell(v) for v in table.index] if index else None
    head = "".join(f"<th>{c}</th>" for c in ([html.escape(str(table.index.name or ""))] if index else []) + columns)
    rows = "".join("<tr>" + (f"<th>{labels[i]}</th>" if labels is not None else "")
                   + "".join(f"<td>{column[i]}</td>" for column in cells) + "</tr>" for i in range(len(table)))
    body = f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
    table_id = "redtick-table-" + hashlib.sha1(body.encode()).hexdigest()[:12]
    first = 2 if index else 1  # nth-child of the first data column
    numeric = [first + k for k, column in enumerate(table.columns)
               if pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column])]
    rules = [f"#{table_id} {{border-collapse: collapse}}",
             f"#{table_id} th, #{table_id} td {{padding: 3px 12px; white-space: nowrap; text-align: left}}",
             f"#{table_id} thead th {{border-bottom: 1px solid #95a5a6; vertical-align: bottom}}",
             f"#{table_id} tbody tr:nth-child(even) {{background: rgba(127, 140, 141, 0.08)}}",
             *(f"#{table_id} tr > :nth-child({n}) {{text-align: right}}" for n in numeric)]
    return (f"<style>{' '.join(rules)}</style>"
            f'<table id="{table_id}" class="redtick-table">{body}</table>')


def _price(value: Any) -> str:
    return "n/a" if _missing(value) else f"{value:,.2f}"


def alerts_table_html(live: pd.DataFrame) -> str:
    """Live alerts (:func:`~redtick.reports.alert_status`): short ids, target price, set and expiry on the wall clock."""
    columns = ["alert_id", "symbol", "condition", "target_price", "created_at", "expires_at"]
    return table_html(live[columns], formats={"alert_id": id_html, "target_price": _price},
                      headers={"alert_id": "id", "target_price": "target (price)",
                               "created_at": "set at (wall clock, UTC)", "expires_at": "expires (wall clock, UTC)"})


def fired_table_html(fired: pd.DataFrame) -> str:
    """Fired alerts (:func:`~redtick.reports.fired_alert_history`): the tick that fired each, on the tick's clock.

    ``fired at`` is the tick's own time (2013 for a replay of 2013 ticks); ``recorded at`` is the
    wall clock when the write that fired it ran.
    """
    columns = ["alert_id", "symbol", "condition", "target_price", "price", "fired_at", "recorded_at"]
    return table_html(fired[columns], formats={"alert_id": id_html, "target_price": _price, "price": _price},
                      headers={"alert_id": "id", "target_price": "target (price)", "price": "tick price",
                               "fired_at": "fired at (tick time, UTC)", "recorded_at": "recorded at (wall clock, UTC)"})


def price_change_table_html(table: pd.DataFrame) -> str:
    """Price changes (:func:`~redtick.reports.price_changes`): prices, change in price units and in %, tick times."""
    columns = ["symbol", "period", "previous_price", "current_price", "change", "change_percent", "from_time", "to_time"]
    return table_html(table[columns],
                      formats={"previous_price": _price, "current_price": _price, "change_percent": format_percent,
                               "change": lambda v: "n/a" if _missing(v) else f"{v:+,.2f}"},
                      headers={"previous_price": "from (price)", "current_price": "to (price)",
                               "change": "change (price)", "change_percent": "change (%)",
                               "from_time": "from (tick time, UTC)", "to_time": "to (tick time, UTC)"})


def families_table_html(families: pd.DataFrame, method: str = "measured") -> str:
    """Memory by key family (:attr:`MemoryReport.families`, families with keys): sizes in binary units, share in %.

    ``method`` (:attr:`MemoryReport.method`) goes in the size's header: a sampled size is an estimate.

    Examples
    --------
    >>> families = pd.DataFrame({"keys": [3], "measured_keys": [1], "bytes": [4096], "share": [1.0]},
    ...                         index=pd.Index(["alerts"], name="family"))
    >>> "<th>size (sampled: estimate)</th>" in families_table_html(families, "sampled")
    True
    """
    shown = families[families["keys"] > 0].rename_axis("key family")
    if method != "sampled":  # a margin only a sample has
        shown = shown.drop(columns="margin", errors="ignore")
    size = "size (sampled: estimate)" if method == "sampled" else f"size ({method})"
    return table_html(shown, index=True,
                      formats={"keys": "{:,}".format, "measured_keys": "{:,}".format, "bytes": format_bytes,
                               "margin": lambda v: f"± {format_bytes(v)}", "share": "{:.1%}".format},
                      headers={"keys": "keys (count)", "measured_keys": "keys sized (count)", "bytes": size,
                               "margin": "margin (95%)", "share": "share of size (%)"})


def symbols_table_html(symbols: pd.DataFrame) -> str:
    """Memory by symbol (:attr:`MemoryReport.symbols`): each family's size, ticks, bytes per tick, raw / stored."""
    sizes = [c for c in symbols.columns if c not in ("ticks", "bytes_per_tick", "tick_ratio")]
    formats: dict[str, Callable[[Any], str]] = dict.fromkeys(sizes, format_bytes)
    formats.update({"ticks": "{:,}".format, "bytes_per_tick": lambda v: "n/a" if _missing(v) else f"{v:,.1f} B",
                    "tick_ratio": lambda v: "n/a" if _missing(v) else f"{v:,.2f}x"})
    # two-line headers: the table has ten columns and must fit a notebook's width
    headers = {c: f"{c}\n(size)" for c in sizes}
    headers.update({"ticks": "ticks\n(count)", "bytes_per_tick": "series bytes\nper tick", "tick_raw_bytes": "ticks raw\n(size)",
                    "tick_stored_bytes": "ticks stored\n(size)", "tick_ratio": "raw / stored\n(x)"})
    return table_html(symbols, index=True, formats=formats, headers=headers)
