"""Research reports as DataFrames and plotly figures: price changes, candles, alerts, memory, one HTML page.

Every function takes an optional ``conn`` (default ``redtick.connect()``) and works on the
embedded default and on a real Redis alike. Functions that return tables return pandas frames;
functions named ``*_figure`` return plotly figures built from those tables. The alert calls are
async in :class:`~redtick.PriceAlerts`; the sync wrappers here run them on a private event loop,
also from inside Jupyter, whose own loop is already running.
"""

from __future__ import annotations

import dataclasses
import html
import math
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from redtick.caches.alerts import FiredAlert, PriceAlerts
from redtick.caches.prices import PriceCache
from redtick.config import parse_duration
from redtick.connection import Connection, blocking, connect
from redtick.errors import ConfigurationError, InvalidData, RedisError
from redtick.frames import UTC_MS, load_ohlcv, write_ticks
from redtick.keys import KEY_FAMILIES, validate_symbol
from redtick.series import TICK_SIZE
from redtick.server_info import merge_node_info

__all__ = [
    "DEFAULT_PERIODS",
    "MemoryReport",
    "Replay",
    "alert_status",
    "alerts_figure",
    "blocking",
    "candlestick_figure",
    "delete_alert",
    "fired_alert_history",
    "memory_figure",
    "memory_report",
    "period_minutes",
    "price_change_figure",
    "price_changes",
    "replay_ticks",
    "set_alerts",
    "table_html",
    "write_html_report",
]

T = TypeVar("T")
DEFAULT_PERIODS = ("15m", "1h", "4h", "1d")
PRICE_CHANGE_COLUMNS = ("symbol", "period", "period_minutes", "previous_price", "current_price", "change",
                        "change_percent", "from_time", "to_time")
ALERT_COLUMNS = ("alert_id", "user_id", "symbol", "condition", "target_price", "created_at", "expires_at")
FIRED_COLUMNS = ("alert_id", "user_id", "symbol", "condition", "target_price", "price", "fired_at", "recorded_at",
                 "created_at", "expires_at")
_PIPELINE = 1000  # keys per pipelined round trip while measuring memory


def _utc(ms: pd.Series) -> pd.Series:
    """Epoch ms as UTC times at ms resolution, like the readers' indexes."""
    return pd.to_datetime(ms, unit="ms", utc=True).astype(UTC_MS)


def _as_list(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# -- price change ---------------------------------------------------------------------------------------
def period_minutes(period: str | int) -> int:
    """Whole minutes in a period given as minutes or a duration such as ``"4h"``; InvalidData otherwise.

    Examples
    --------
    >>> period_minutes("4h"), period_minutes(90)
    (240, 90)
    """
    if isinstance(period, bool):
        raise InvalidData(f"period {period!r}: expected whole minutes or a duration such as '1h'")
    if isinstance(period, int | np.integer):
        if period < 1:
            raise InvalidData(f"period {period!r}: expected whole minutes from 1")
        return int(period)
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
    names = [validate_symbol(s) for s in _as_list(symbols)]
    wanted = [(_period_label(p), period_minutes(p)) for p in periods]
    cache = PriceCache(conn)

    async def gather() -> list[dict | None]:
        return [await cache.get_price_change(s, minutes, at=at) for s in names for _, minutes in wanted]

    rows = []
    for (symbol, (label, minutes)), found in zip(((s, w) for s in names for w in wanted), blocking(conn, gather),
                                                 strict=True):
        found = found or {}
        rows.append({"symbol": symbol, "period": label, "period_minutes": minutes,
                     **{k: found.get(k, math.nan) for k in PRICE_CHANGE_COLUMNS[3:7]},
                     "from_time": found.get("from_time"), "to_time": found.get("to_time")})
    table = pd.DataFrame(rows, columns=list(PRICE_CHANGE_COLUMNS))
    for column in ("from_time", "to_time"):
        table[column] = pd.to_datetime(table[column], utc=True)
    for column in PRICE_CHANGE_COLUMNS[3:7]:
        table[column] = table[column].astype(np.float64)
    return table


def price_change_figure(table: pd.DataFrame) -> go.Figure:
    """Bars of percent change per period, one colour per symbol, from :func:`price_changes`.

    Examples
    --------
    >>> table = pd.DataFrame({"symbol": ["ES"], "period": ["1h"], "change_percent": [0.25], "change": [4.0]})
    >>> list(price_change_figure(table).data[0].y)
    [0.25]
    """
    figure = go.Figure()
    for symbol, rows in table.groupby("symbol", sort=False):
        figure.add_bar(name=symbol, x=rows["period"].tolist(), y=rows["change_percent"].tolist(),
                       text=[f"{c:+,.2f}" if c == c else "n/a" for c in rows["change"]], textposition="outside")
    figure.update_layout(title="Price change by period", barmode="group", yaxis_title="change %",
                         xaxis_title="period", template="plotly_white")
    return figure


# -- candles ---------------------------------------------------------------------------------------------
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
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03)
    figure.add_trace(go.Candlestick(x=candles.index, open=candles["open"], high=candles["high"], low=candles["low"],
                                    close=candles["close"], name=symbol), row=1, col=1)
    figure.add_trace(go.Bar(x=candles.index, y=candles["volume"], name="volume", marker_color="#7f8c8d"), row=2, col=1)
    figure.update_layout(title=f"{symbol} {interval} candles ({len(candles):,})", xaxis_rangeslider_visible=False,
                         showlegend=False, template="plotly_white", yaxis_title="price", yaxis2_title="volume")
    return figure


# -- alerts ----------------------------------------------------------------------------------------------
def set_alerts(alerts: Iterable[Mapping[str, Any]], *, conn: Connection | None = None) -> list[str]:
    """Set alerts (``user_id symbol target_price condition [ttl]`` each); returns their ids in order.

    Examples
    --------
    >>> ids = set_alerts([{"user_id": "doc", "symbol": "DOCALRT", "target_price": 10.0, "condition": "above"}])
    >>> len(ids)
    1
    """
    conn = conn or connect()
    specs = list(alerts)
    return blocking(conn, lambda: PriceAlerts(conn).set_price_alerts(specs))


def delete_alert(user_id: str, alert_id: str, *, conn: Connection | None = None) -> bool:
    """Delete one of the user's alerts; False when the user has no live alert with that id.

    Examples
    --------
    >>> (alert_id,) = set_alerts([{"user_id": "doc", "symbol": "DOCDEL", "target_price": 5.0, "condition": "below"}])
    >>> delete_alert("doc", alert_id), delete_alert("doc", alert_id)
    (True, False)
    """
    conn = conn or connect()
    return blocking(conn, lambda: PriceAlerts(conn).delete_price_alert(user_id, alert_id))


def alert_status(user_ids: str | Iterable[str], *, conn: Connection | None = None) -> pd.DataFrame:
    """The users' live alerts, oldest first, with UTC times.

    Examples
    --------
    >>> _ = set_alerts([{"user_id": "doclive", "symbol": "DOCLIVE", "target_price": 7.0, "condition": "crosses"}])
    >>> alert_status("doclive")[["symbol", "condition", "target_price"]]
        symbol condition  target_price
    0  DOCLIVE   crosses           7.0
    """
    conn = conn or connect()
    users = _as_list(user_ids)
    alerts = PriceAlerts(conn)

    async def gather() -> list[dict]:
        return [a for user in users for a in await alerts.get_user_alerts(user)]

    table = pd.DataFrame(blocking(conn, gather), columns=list(ALERT_COLUMNS))
    for column in ("created_at", "expires_at"):
        table[column] = _utc(table[column].astype(np.int64))
    table["target_price"] = table["target_price"].astype(np.float64)
    return table


def fired_alert_history(user_ids: str | Iterable[str], *, limit: int = 100, conn: Connection | None = None) -> pd.DataFrame:
    """The users' fired alerts, most recently fired first: what fired, at which price, when (UTC).

    ``fired_at`` is the time of the tick that met the condition (the market's clock: a replay of
    2013 ticks fires at 2013 times); ``recorded_at`` is when the write that fired it ran.

    Examples
    --------
    >>> import redtick
    >>> _ = set_alerts([{"user_id": "docfire", "symbol": "DOCFIRE", "target_price": 9.0, "condition": "above"}])
    >>> _ = redtick.write_ticks([{"ts": 0, "price": 9.5, "volume": 1.0}], symbol="DOCFIRE")
    >>> fired_alert_history("docfire")[["symbol", "target_price", "price"]]
        symbol  target_price  price
    0  DOCFIRE           9.0    9.5
    """
    conn = conn or connect()
    users = _as_list(user_ids)
    alerts = PriceAlerts(conn)

    async def gather() -> list[FiredAlert]:
        return [f for user in users for f in await alerts.get_fired_alerts(user, limit=limit)]

    fired = sorted(blocking(conn, gather), key=lambda f: (f.recorded_at, f.fired_at, f.alert_id), reverse=True)
    return _fired_frame(fired)


def _fired_frame(fired: Sequence[FiredAlert]) -> pd.DataFrame:
    table = pd.DataFrame([dataclasses.asdict(f) for f in fired], columns=list(FIRED_COLUMNS))
    for column in ("fired_at", "recorded_at", "created_at", "expires_at"):
        table[column] = _utc(table[column].astype(np.int64))
    for column in ("target_price", "price"):
        table[column] = table[column].astype(np.float64)
    return table


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


@dataclasses.dataclass
class Replay:
    """What :func:`replay_ticks` did: one row per batch, and the alerts that fired, in order."""

    batches: pd.DataFrame
    fired: list[FiredAlert]

    @property
    def written(self) -> int:
        return int(self.batches["written"].sum())

    @property
    def duplicates(self) -> int:
        return int(self.batches["duplicates"].sum())

    def fired_frame(self) -> pd.DataFrame:
        """The fired alerts as a frame (columns as :func:`fired_alert_history`)."""
        return _fired_frame(self.fired)


def replay_ticks(
    ticks: pd.DataFrame,
    symbol: str,
    *,
    batch_size: int = 500,
    conn: Connection | None = None,
    progress: bool = False,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> Replay:
    """Feed ``ticks`` to :func:`redtick.write_ticks` in small batches, as a live feed would, and record what fired.

    Each batch is one write, so each checks the symbol's alerts once, over that batch's ticks: an
    alert reports the first tick that reached its target (price and time). ``on_batch`` is called
    with each batch's row as it lands (a widget updates itself from it).

    Returns
    -------
    Replay
        ``batches`` has ``batch first_ts last_ts ticks written duplicates low high last fired``.

    Examples
    --------
    >>> ticks = pd.DataFrame({"ts": [0, 1, 2, 3], "price": [1.0, 2.0, 3.0, 4.0], "volume": 1.0})
    >>> _ = set_alerts([{"user_id": "docrep", "symbol": "DOCREP", "target_price": 3.0, "condition": "above"}])
    >>> replay = replay_ticks(ticks, "DOCREP", batch_size=2)
    >>> replay.batches["fired"].tolist(), replay.fired[0].price, replay.fired[0].fired_at
    ([0, 1], 3.0, 2)
    """
    conn = conn or connect()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidData(f"batch_size={batch_size!r}: expected a whole number from 1")
    times = pd.Series(ticks.index if "ts" not in ticks.columns else ticks["ts"].to_numpy())
    rows, fired = [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ticks), unit="tick", unit_scale=True, desc=f"replay {symbol}")
    try:
        for number, lo in enumerate(range(0, len(ticks), batch_size)):
            part = ticks.iloc[lo : lo + batch_size]
            result = write_ticks(part, symbol, conn=conn, batch_size=batch_size)
            fired.extend(result.fired_alerts)
            row = {"batch": number, "first_ts": times.iloc[lo], "last_ts": times.iloc[lo + len(part) - 1],
                   "ticks": len(part), "written": result.written, "duplicates": result.duplicates,
                   "low": result.low, "high": result.high, "last": result.last, "fired": len(result.fired_alerts)}
            rows.append(row)
            if bar is not None:
                bar.update(len(part))
            if on_batch is not None:
                on_batch(row)
    finally:
        if bar is not None:
            bar.close()
    columns = ["batch", "first_ts", "last_ts", "ticks", "written", "duplicates", "low", "high", "last", "fired"]
    return Replay(pd.DataFrame(rows, columns=columns), fired)


# -- memory ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class MemoryReport:
    """Where the namespace's memory goes, by key family and by symbol.

    ``method`` is ``"measured"`` (``MEMORY USAGE`` of every key), ``"sampled"`` (``MEMORY USAGE``
    of a random sample per family, scaled to the family's key count) or ``"estimated"`` (the
    server has no ``MEMORY``: key name plus stored value bytes, a lower bound that leaves out
    Redis's per-key overhead). ``note`` says which in words.
    """

    method: str
    note: str
    families: pd.DataFrame
    symbols: pd.DataFrame
    biggest: pd.DataFrame
    total_keys: int
    total_bytes: int
    ticks: int
    used_memory: int | None
    maxmemory: int | None

    @property
    def estimated(self) -> bool:
        return self.method == "estimated"

    @property
    def bytes_per_tick(self) -> float:
        """Bytes of the tick series (chunks, indexes, current prices) per stored tick; NaN without ticks."""
        series = float(self.families.loc["series ticks", "bytes"])
        return series / self.ticks if self.ticks else math.nan

    @property
    def maxmemory_share(self) -> float | None:
        """``used_memory / maxmemory`` (0-1), or None without INFO or without a ``maxmemory`` limit."""
        if not self.used_memory or not self.maxmemory:
            return None
        return self.used_memory / self.maxmemory

    def summary(self) -> pd.DataFrame:
        """The headline figures as a two-column table (``figure``, ``value``), values as text."""

        def size(n: float | None) -> str:
            return "n/a" if n is None else f"{n:,.0f} B ({n / 2**20:,.2f} MiB)"

        share = self.maxmemory_share
        limit = ("n/a (no INFO on this server)" if self.used_memory is None
                 else "no limit (maxmemory 0)" if not self.maxmemory else size(self.maxmemory))
        rows = [
            ("method", self.method),
            ("note", self.note),
            ("keys in namespace", f"{self.total_keys:,}"),
            (f"bytes in namespace ({self.method})", size(self.total_bytes)),
            ("ticks stored", f"{self.ticks:,}"),
            (f"bytes per tick ({self.method})", "n/a" if not self.ticks else f"{self.bytes_per_tick:,.1f}"),
            ("used_memory (INFO)", "n/a (no INFO on this server)" if self.used_memory is None else size(self.used_memory)),
            ("maxmemory (INFO)", limit),
            ("share of maxmemory in use", "n/a" if share is None else f"{share:.2%}"),
        ]
        return pd.DataFrame(rows, columns=["figure", "value"])


def _scan(conn: Connection) -> list[str]:
    return sorted(k.decode("utf-8", "replace") for k in conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


def _pipelined(conn: Connection, items: Sequence[Any], command: Callable[[Any, Any], Any]) -> list[Any]:
    """``command(pipe, item)`` for every item, ``_PIPELINE`` items per round trip; the replies in order."""
    replies: list[Any] = []
    for lo in range(0, len(items), _PIPELINE):
        pipe = conn.sync.pipeline(transaction=False)
        for item in items[lo : lo + _PIPELINE]:
            command(pipe, item)
        replies += pipe.execute()
    return replies


_PAYLOAD_READS = {
    "string": lambda pipe, key: pipe.strlen(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
    "set": lambda pipe, key: pipe.smembers(key),
}


def _payload_bytes(kind: str, reply: Any) -> int | None:
    """Stored bytes of one value: string length; hash fields and values; set, list members; zset members + 8 per score."""
    if kind == "string":
        return int(reply)
    if kind == "hash":
        return sum(len(f) + len(v) for f, v in reply.items())
    if kind == "zset":
        return sum(len(m) + 8 for m, _ in reply)
    if kind in ("list", "set"):
        return sum(len(m) for m in reply)
    return None  # gone between SCAN and TYPE, or a type redtick does not write


def _estimated_bytes(conn: Connection, keys: Sequence[str]) -> list[int | None]:
    kinds = [k.decode() if isinstance(k, bytes) else k for k in _pipelined(conn, keys, lambda p, key: p.type(key))]
    readable = [(key, kind) for key, kind in zip(keys, kinds, strict=True) if kind in _PAYLOAD_READS]
    replies = _pipelined(conn, readable, lambda pipe, item: _PAYLOAD_READS[item[1]](pipe, item[0]))
    payload = {key: _payload_bytes(kind, reply) for (key, kind), reply in zip(readable, replies, strict=True)}
    return [None if payload.get(key) is None else len(key.encode()) + payload[key] for key in keys]


def _measured_bytes(conn: Connection, keys: Sequence[str]) -> list[int | None]:
    # SAMPLES 0 walks every element of a collection: exact, and the same figure on every run.
    return _pipelined(conn, keys, lambda pipe, key: pipe.memory_usage(key, samples=0))


def _server_memory(conn: Connection) -> tuple[int | None, int | None]:
    try:
        if conn.settings.topology == "cluster":  # every master's memory, not one node's
            info = merge_node_info(conn.sync.info("memory", target_nodes=conn.sync.PRIMARIES))
        else:
            info = conn.sync.info("memory")
    except RedisError:
        return None, None  # the in-memory fakeredis has no INFO
    # A cluster client may answer per node ({node: info}); memory is then the sum over the nodes.
    nodes = list(info.values()) if info and all(isinstance(v, dict) for v in info.values()) else [info]
    return sum(int(n.get("used_memory", 0)) for n in nodes), sum(int(n.get("maxmemory", 0)) for n in nodes)


def _tick_counts(conn: Connection, symbols: Iterable[str]) -> dict[str, int]:
    """Ticks stored per symbol: the bytes of its tick chunks over the record size."""
    counts = {}
    for symbol in symbols:
        starts = conn.sync.zrange(conn.keys.tick_index(symbol), 0, -1)
        chunks = [conn.keys.tick_chunk(symbol, int(s)) for s in starts]
        counts[symbol] = sum(_pipelined(conn, chunks, lambda pipe, key: pipe.strlen(key))) // TICK_SIZE
    return counts


def memory_report(
    conn: Connection | None = None, *, top: int = 10, sample_limit: int = 10_000, seed: int = 0
) -> MemoryReport:
    """Memory of the namespace by key family and by symbol, the biggest keys, bytes per tick, maxmemory share.

    Keys are found with SCAN inside the namespace only. On a real Redis each key's bytes come from
    ``MEMORY USAGE`` and the server's from ``INFO memory``; beyond ``sample_limit`` keys, a random
    sample of each family (in proportion to its size) is measured and scaled up, and the report
    says "sampled". The in-memory fakeredis has neither command: bytes are estimated from what is
    stored (key name plus value bytes; 8 bytes per sorted-set score) and the report says "estimated".

    Parameters
    ----------
    conn : Connection, optional
    top : int
        How many of the biggest keys to list.
    sample_limit : int
        Most keys measured one by one before sampling.
    seed : int
        Seed of the sample, so a report can be repeated.

    Examples
    --------
    >>> import redtick
    >>> report = memory_report(redtick.connect())
    >>> report.method, list(report.families.columns)  # "estimated" on memory://, which has no MEMORY
    ('measured', ['keys', 'measured_keys', 'bytes', 'share'])
    """
    conn = conn or connect()
    keys = _scan(conn)
    classified = [conn.keys.family_of(k) for k in keys]
    frame = pd.DataFrame({"key": keys, "family": [f for f, _ in classified], "symbol": [s for _, s in classified]},
                         columns=["key", "family", "symbol"])
    counts = frame["family"].value_counts()
    sampled = len(frame) > sample_limit
    if sampled:
        rng = np.random.default_rng(seed)
        picks = []
        for _, rows in frame.groupby("family"):
            size = min(len(rows), max(1, math.ceil(sample_limit * len(rows) / len(frame))))
            picks.append(rows.iloc[np.sort(rng.choice(len(rows), size=size, replace=False))])
        frame = pd.concat(picks).sort_values("key")
    measured = not conn.in_memory
    if measured:
        try:
            frame["bytes"] = _measured_bytes(conn, frame["key"].tolist())
        except RedisError:  # a server without MEMORY (or an ACL that forbids it): estimate instead
            measured = False
    if not measured:
        frame["bytes"] = _estimated_bytes(conn, frame["key"].tolist())
    frame = frame.dropna(subset=["bytes"]).astype({"bytes": np.int64})
    per_family = frame.groupby("family").size()
    frame["weight"] = frame["family"].map(counts / per_family)

    if not measured:
        method, note = "estimated", ("estimated from stored bytes (key name + value bytes): this server has no "
                                     "MEMORY USAGE or INFO; Redis's per-key overhead is not included")
    elif sampled:
        method, note = "sampled", (f"MEMORY USAGE of {len(frame):,} sampled keys of {len(keys):,}, scaled to each "
                                   f"family's key count (seed {seed})")
    else:
        method, note = "measured", f"MEMORY USAGE of all {len(keys):,} keys"

    weighted = frame["bytes"] * frame["weight"]
    families = pd.DataFrame(index=pd.Index(KEY_FAMILIES, name="family"))
    families["keys"] = counts.reindex(families.index, fill_value=0).astype(np.int64)
    families["measured_keys"] = per_family.reindex(families.index, fill_value=0).astype(np.int64)
    families["bytes"] = weighted.groupby(frame["family"]).sum().reindex(families.index, fill_value=0).round().astype(np.int64)
    total = int(families["bytes"].sum())
    families["share"] = families["bytes"] / total if total else 0.0

    with_symbol = frame.dropna(subset=["symbol"])
    symbols = (weighted.loc[with_symbol.index].groupby([with_symbol["symbol"], with_symbol["family"]]).sum()
               .unstack("family", fill_value=0).round().astype(np.int64))
    symbols.columns.name = None
    symbols.index.name = "symbol"
    symbols["total"] = symbols.sum(axis=1)
    series_symbols = sorted(with_symbol.loc[with_symbol["family"] == "series ticks", "symbol"].unique())
    ticks = _tick_counts(conn, series_symbols)
    symbols["ticks"] = pd.Series(ticks, dtype=np.int64).reindex(symbols.index, fill_value=0)
    series_bytes = symbols["series ticks"] if "series ticks" in symbols else pd.Series(0, index=symbols.index)
    symbols["bytes_per_tick"] = (series_bytes / symbols["ticks"].replace(0, np.nan)).astype(np.float64)
    symbols = symbols.sort_values("total", ascending=False)

    biggest = frame.nlargest(top, "bytes")[["key", "family", "symbol", "bytes"]].reset_index(drop=True)
    used, limit = _server_memory(conn) if measured else (None, None)
    return MemoryReport(method, note, families, symbols, biggest, len(keys), total, sum(ticks.values()), used, limit)


def memory_figure(report: MemoryReport) -> go.Figure:
    """Horizontal bars of bytes per key family, labelled with the method (measured, sampled, estimated).

    Examples
    --------
    >>> import redtick
    >>> figure = memory_figure(memory_report(redtick.connect()))
    >>> "measured" in figure.layout.title.text  # the local store is a real Redis: MEMORY USAGE
    True
    """
    families = report.families[report.families["keys"] > 0].sort_values("bytes")
    figure = go.Figure(go.Bar(x=families["bytes"].tolist(), y=families.index.tolist(), orientation="h",
                              text=[f"{b / 2**20:,.2f} MiB · {k:,} keys" for b, k in zip(families["bytes"], families["keys"],
                                                                                       strict=True)],
                              textposition="auto"))
    figure.update_layout(title=f"Memory by key family ({report.method}): {report.total_bytes / 2**20:,.2f} MiB in "
                               f"{report.total_keys:,} keys", xaxis_title=f"bytes ({report.method})",
                         template="plotly_white")
    return figure


# -- one self-contained page ----------------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } .note { color: #555; }
"""


def table_html(table: pd.DataFrame, index: bool = False) -> str:
    """A frame as a plain HTML table (``none`` when empty), numbers without trailing zeros.

    Examples
    --------
    >>> "<td>1.5</td>" in table_html(pd.DataFrame({"x": [1.5]}))
    True
    """
    if table.empty:
        return "<p class='note'>none</p>"
    return table.to_html(index=index, border=0, na_rep="n/a", float_format=lambda x: f"{x:,.4f}".rstrip("0").rstrip("."))


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
    users = _as_list(user_ids)
    changes = price_changes(symbol, periods, conn=conn)
    live = alert_status(users, conn=conn)
    fired = fired_alert_history(users, conn=conn)
    memory = memory or memory_report(conn)
    figures = [candlestick_figure(symbol, interval, conn=conn), price_change_figure(changes),
               alerts_figure(symbol, live, fired, interval=interval, conn=conn), memory_figure(memory)]
    charts = [f.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="520px")
              for i, f in enumerate(figures)]
    family_table = memory.families.assign(share=memory.families["share"].map("{:.1%}".format))
    sections = [
        f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(symbol)} on {html.escape(conn.settings.safe_url)}, "
        f"namespace {html.escape(conn.keys.namespace)}</p>",
        "" if summary is None else table_html(summary),
        f"<h2>Candles</h2>{charts[0]}",
        f"<h2>Price change</h2>{table_html(changes)}{charts[1]}",
        f"<h2>Alerts</h2>{charts[2]}<h3>Fired</h3>{table_html(fired)}<h3>Live</h3>{table_html(live)}",
        f"<h2>Memory ({html.escape(memory.method)})</h2><p class='note'>{html.escape(memory.note)}</p>"
        f"{table_html(memory.summary())}{charts[3]}<h3>By family</h3>{table_html(family_table, index=True)}"
        f"<h3>By symbol</h3>{table_html(memory.symbols, index=True)}<h3>Biggest keys</h3>{table_html(memory.biggest)}",
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>")
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
