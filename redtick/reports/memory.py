"""Where the namespace's memory goes: by key family, by symbol, the biggest keys, bytes per tick."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from redis.cluster import RedisCluster

from redtick.codec import candle_raw_size
from redtick.connection import Connection, connect
from redtick.errors import RedisError
from redtick.keys import KEY_FAMILIES
from redtick.reports.tables import format_bytes
from redtick.series import TICK_SIZE
from redtick.server_info import merge_node_info
from redtick.tick_write import TickCounts

__all__ = ["MemoryReport", "memory_figure", "memory_report"]

_PIPELINE = 1000  # keys per pipelined round trip while measuring memory


@dataclasses.dataclass
class MemoryReport:
    """Where the namespace's memory goes, by key family and by symbol.

    ``method`` is ``"measured"`` (``MEMORY USAGE`` of every key), ``"sampled"`` (``MEMORY USAGE``
    of a random sample of each key shape, scaled to the shape's key count, with a 95% margin of
    error per family in ``families["margin"]``) or ``"estimated"`` (the server has no ``MEMORY``:
    key name plus stored value bytes, a lower bound that leaves out Redis's per-key overhead).
    ``note`` says which in words.
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
    tick_raw_bytes: int = 0
    """Bytes the stored ticks take decoded (33 a tick)."""
    tick_stored_bytes: int = 0
    """Bytes the tick chunks store, raw or sealed: their string lengths, measured on every server."""
    candle_raw_bytes: int = 0
    """Bytes the candle chunks take decoded (88 a slot, empty slots included)."""
    candle_stored_bytes: int = 0
    """Bytes the candle chunks store, raw or sealed: their string lengths, measured on every server."""

    @property
    def tick_ratio(self) -> float:
        """Raw over stored bytes of the tick chunks (NaN without ticks): what sealing saves."""
        return self.tick_raw_bytes / self.tick_stored_bytes if self.tick_stored_bytes else math.nan

    @property
    def candle_ratio(self) -> float:
        """Raw over stored bytes of the candle chunks (NaN without candles): what sealing saves."""
        return self.candle_raw_bytes / self.candle_stored_bytes if self.candle_stored_bytes else math.nan

    @property
    def margin(self) -> float:
        """The 95% margin of error of ``total_bytes`` (0 unless sampled): the families' margins combined."""
        return float(np.sqrt((self.families["margin"].astype(np.float64) ** 2).sum()))

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
            return "n/a" if n is None else f"{format_bytes(n)} ({n:,.0f} B)"

        share = self.maxmemory_share
        limit = ("n/a (no INFO on this server)" if self.used_memory is None
                 else "no limit (maxmemory 0)" if not self.maxmemory else size(self.maxmemory))
        rows = [
            ("method", self.method),
            ("note", self.note),
            ("keys in namespace", f"{self.total_keys:,}"),
            (f"bytes in namespace ({self.method})", size(self.total_bytes) + (
                f" ± {format_bytes(self.margin)} (95%)" if self.method == "sampled" else "")),
            ("ticks stored", f"{self.ticks:,}"),
            (f"bytes per tick ({self.method})", "n/a" if not self.ticks else f"{self.bytes_per_tick:,.1f} B"),
            ("tick chunks, raw (decoded) bytes", size(self.tick_raw_bytes)),
            ("tick chunks, stored bytes (string lengths, measured)", size(self.tick_stored_bytes)),
            ("tick chunks, raw / stored", "n/a" if not self.tick_stored_bytes else f"{self.tick_ratio:,.2f}x"),
            ("candle chunks, raw (decoded) bytes", size(self.candle_raw_bytes)),
            ("candle chunks, stored bytes (string lengths, measured)", size(self.candle_stored_bytes)),
            ("candle chunks, raw / stored", "n/a" if not self.candle_stored_bytes else f"{self.candle_ratio:,.2f}x"),
            ("used_memory (INFO)", "n/a (no INFO on this server)" if self.used_memory is None else size(self.used_memory)),
            ("maxmemory (INFO)", limit),
            ("share of maxmemory in use", "n/a" if share is None else f"{share:.2%}"),
        ]
        return pd.DataFrame(rows, columns=["figure", "value"])


# -- reading the keys ------------------------------------------------------------------------------------
def _pipelined(conn: Connection, items: Sequence[Any], command: Callable[[Any, Any], Any]) -> list[Any]:
    """``command(pipe, item)`` for every item, ``_PIPELINE`` items per round trip; the replies in order."""
    replies: list[Any] = []
    for lo in range(0, len(items), _PIPELINE):
        pipe = conn.sync.pipeline(transaction=False)
        for item in items[lo : lo + _PIPELINE]:
            command(pipe, item)
        replies += pipe.execute()
    return replies


_PAYLOAD_READS: dict[str, Callable[[Any, str], Any]] = {
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
    sizes = [payload.get(key) for key in keys]
    return [None if size is None else len(key.encode()) + size for key, size in zip(keys, sizes, strict=True)]


def _measured_bytes(conn: Connection, keys: Sequence[str]) -> list[int | None]:
    # SAMPLES 0 walks every element of a collection: exact, and the same figure on every run.
    return _pipelined(conn, keys, lambda pipe, key: pipe.memory_usage(key, samples=0))


def _server_memory(conn: Connection) -> tuple[int | None, int | None]:
    try:
        if conn.settings.topology == "cluster":  # every master's memory, not one node's
            info = merge_node_info(conn.sync.info("memory", target_nodes=RedisCluster.PRIMARIES))
        else:
            info = conn.sync.info("memory")
    except RedisError:
        return None, None  # the in-memory fakeredis has no INFO
    # A cluster client may answer per node ({node: info}); memory is then the sum over the nodes.
    nodes = list(info.values()) if info and all(isinstance(v, dict) for v in info.values()) else [info]
    return sum(int(n.get("used_memory", 0)) for n in nodes), sum(int(n.get("maxmemory", 0)) for n in nodes)


def _tick_counts(conn: Connection, symbols: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(ticks, stored bytes) per symbol: each chunk's count from its header and length, raw or sealed
    (:class:`~redtick.tick_write.TickCounts`), and the sum of their lengths."""
    counts = {}
    for symbol in symbols:
        starts = cast("list[bytes]", conn.sync.zrange(conn.keys.tick_index(symbol), 0, -1))
        reads = TickCounts([conn.keys.tick_chunk(symbol, int(s)) for s in starts])
        replies = _pipelined(conn, reads.commands(), lambda pipe, command: pipe.execute_command(*command))
        counts[symbol] = sum(reads.parse(replies)), sum(TickCounts.stored_bytes(replies))
    return counts


def _candle_sizes(conn: Connection, symbols: Iterable[str], intervals: Iterable[str]) -> tuple[int, int]:
    """(raw, stored) bytes of every candle chunk of ``symbols``: each chunk's header (a sealed one's slot
    count) and its length (:func:`~redtick.codec.candle_raw_size`)."""
    series = [(symbol, name) for symbol in symbols for name in intervals]
    indexes = _pipelined(conn, series, lambda pipe, s: pipe.zrange(conn.keys.candle_index(*s), 0, -1))  # one trip
    keys = [conn.keys.candle_chunk(symbol, name, int(start))
            for (symbol, name), starts in zip(series, indexes, strict=True) for start in starts]
    commands = [cmd for key in keys for cmd in (("GETRANGE", key, 0, 23), ("STRLEN", key))]
    replies = _pipelined(conn, commands, lambda pipe, command: pipe.execute_command(*command))
    lengths = [int(n) for n in replies[1::2]]
    raw = sum(candle_raw_size(prefix or b"", n) for prefix, n in zip(replies[0::2], lengths, strict=True))
    return raw, sum(lengths)


# -- the report's steps ----------------------------------------------------------------------------------
def _classified_keys(conn: Connection) -> pd.DataFrame:
    """Every key of the namespace (SCAN), sorted, with its family, symbol and shape (:func:`_shape`)."""
    keys = sorted(k.decode("utf-8", "replace") for k in conn.sync.scan_iter(match=conn.keys.everything(), count=1000))
    infos = [conn.keys.describe(k) for k in keys]
    return pd.DataFrame({"key": keys, "family": [i.family for i in infos], "symbol": [i.symbol for i in infos],
                         "shape": [_shape(k, i.tag) for k, i in zip(keys, infos, strict=True)]},
                        columns=["key", "family", "symbol", "shape"])


def _shape(key: str, tag: str | None) -> str:
    """The key with its tag (the symbol, user or session it belongs to) and numbers blanked: keys of one shape
    hold one kind of value (a tick chunk, a series' index, a 15m candle chunk, a session), so they are alike
    in size and are sampled together.

    Examples
    --------
    >>> _shape("rt:ticks:{ES}:1378000000000", "ES"), _shape("rt:candles:{ES}:15m:1377993600000", "ES")
    ('rt:ticks:{*}:#', 'rt:candles:{*}:15m:#')
    """
    return _NUMBER.sub("#", key if tag is None else key.replace(f"{{{tag}}}", "{*}", 1))


_NUMBER = re.compile(r"(?<=:)\d+(?=:|$)")  # a key part that is a number (a chunk's start), not "15m" or "v2"


def _sample(frame: pd.DataFrame, sample_limit: int, seed: int) -> pd.DataFrame:
    """At most about ``sample_limit`` keys, drawn from each shape in proportion to its size, two at least.

    Sampling by shape rather than by family keeps a family's big and small keys (tick chunks
    beside their index and quote) in their true proportion, and two keys of a shape give its spread.
    """
    rng = np.random.default_rng(seed)
    picks = []
    for _, rows in frame.groupby("shape"):
        size = min(len(rows), max(2, math.ceil(sample_limit * len(rows) / len(frame))))
        picks.append(rows.iloc[np.sort(rng.choice(len(rows), size=size, replace=False))])
    return pd.concat(picks).sort_values("key")


def _scaled(frame: pd.DataFrame, every: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each measured key's bytes scaled to its shape's key count, and each family's 95% margin of error
    (stratified sampling without replacement; 0 for a shape measured whole)."""
    population = every["shape"].value_counts()
    by_shape = frame.groupby("shape")["bytes"]
    sizes, spread = by_shape.size(), by_shape.var(ddof=1).fillna(0.0)
    weighted = frame["bytes"] * frame["shape"].map(population / sizes)
    whole = population.reindex(sizes.index)
    variance = whole**2 * (1 - sizes / whole) * spread / sizes
    family_of_shape = frame.groupby("shape")["family"].first()
    margin = 1.96 * np.sqrt(variance.groupby(family_of_shape).sum())
    return weighted, margin


def _with_bytes(conn: Connection, frame: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """``frame`` with each key's ``bytes`` (keys gone since SCAN dropped); whether MEMORY USAGE measured them."""
    measured = not conn.in_memory
    if measured:
        try:
            frame = frame.assign(bytes=_measured_bytes(conn, frame["key"].tolist()))
        except RedisError:  # a server without MEMORY (or an ACL that forbids it): estimate instead
            measured = False
    if not measured:
        frame = frame.assign(bytes=_estimated_bytes(conn, frame["key"].tolist()))
    return frame.dropna(subset=["bytes"]).astype({"bytes": np.int64}), measured


def _method_note(measured: bool, sampled: bool, seed: int, read: int, total: int) -> tuple[str, str]:
    if not measured:
        return "estimated", ("estimated from stored bytes (key name + value bytes): this server has no "
                             "MEMORY USAGE or INFO; Redis's per-key overhead is not included")
    if sampled:
        return "sampled", (f"MEMORY USAGE of {read:,} sampled keys of {total:,}, scaled to each key shape's "
                           f"count (seed {seed}); a family's margin is its 95% interval")
    return "measured", f"MEMORY USAGE of all {total:,} keys"


def _families_table(counts: pd.Series, per_family: pd.Series, weighted: pd.Series, family: pd.Series,
                    margin: pd.Series) -> pd.DataFrame:
    families = pd.DataFrame(index=pd.Index(KEY_FAMILIES, name="family"))
    families["keys"] = counts.reindex(families.index, fill_value=0).astype(np.int64)
    families["measured_keys"] = per_family.reindex(families.index, fill_value=0).astype(np.int64)
    families["bytes"] = weighted.groupby(family).sum().reindex(families.index, fill_value=0).round().astype(np.int64)
    families["margin"] = margin.reindex(families.index, fill_value=0.0).round().astype(np.int64)
    total = int(families["bytes"].sum())
    families["share"] = families["bytes"] / total if total else 0.0
    return families


def _symbols_table(conn: Connection, frame: pd.DataFrame, weighted: pd.Series) -> pd.DataFrame:
    """Bytes per symbol and family, with ticks, bytes per tick and the tick chunks' raw and stored bytes."""
    with_symbol = frame.dropna(subset=["symbol"])
    symbols = (weighted.loc[with_symbol.index].groupby([with_symbol["symbol"], with_symbol["family"]]).sum()
               .unstack("family", fill_value=0).round().astype(np.int64))
    symbols.columns.name = None
    symbols.index.name = "symbol"
    symbols["total"] = symbols.sum(axis=1)
    series_symbols = sorted(with_symbol.loc[with_symbol["family"] == "series ticks", "symbol"].unique())
    counts = _tick_counts(conn, series_symbols)
    symbols["ticks"] = pd.Series({s: n for s, (n, _) in counts.items()}, dtype=np.int64).reindex(symbols.index, fill_value=0)
    series_bytes = symbols["series ticks"] if "series ticks" in symbols else pd.Series(0, index=symbols.index)
    symbols["bytes_per_tick"] = (series_bytes / symbols["ticks"].replace(0, np.nan)).astype(np.float64)
    symbols["tick_raw_bytes"] = symbols["ticks"] * TICK_SIZE
    symbols["tick_stored_bytes"] = (pd.Series({s: b for s, (_, b) in counts.items()}, dtype=np.int64)
                                    .reindex(symbols.index, fill_value=0))
    symbols["tick_ratio"] = (symbols["tick_raw_bytes"] / symbols["tick_stored_bytes"].replace(0, np.nan)).astype(np.float64)
    return symbols.sort_values("total", ascending=False)


def memory_report(
    conn: Connection | None = None, *, top: int = 10, sample_limit: int = 10_000, seed: int = 0
) -> MemoryReport:
    """Memory of the namespace by key family and by symbol, the biggest keys, bytes per tick, maxmemory share.

    Keys are found with SCAN inside the namespace only. On a real Redis each key's bytes come from
    ``MEMORY USAGE`` and the server's from ``INFO memory``; beyond ``sample_limit`` keys, a random
    sample of each key shape (tick chunks, series indexes, each interval's candle chunks, sessions:
    in proportion to their counts, two at least) is measured and scaled up, and the report says
    "sampled" and gives each family's 95% margin of error. The in-memory fakeredis has neither
    command: bytes are estimated from what is stored (key name plus value bytes; 8 bytes per
    sorted-set score) and the report says "estimated".

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
    ('measured', ['keys', 'measured_keys', 'bytes', 'margin', 'share'])
    """
    conn = conn or connect()
    every = _classified_keys(conn)
    counts = every["family"].value_counts()
    sampled = len(every) > sample_limit
    frame, measured = _with_bytes(conn, _sample(every, sample_limit, seed) if sampled else every)
    per_family = frame.groupby("family").size()
    weighted, margin = _scaled(frame, every)
    method, note = _method_note(measured, sampled, seed, len(frame), len(every))
    families = _families_table(counts, per_family, weighted, frame["family"], margin)
    symbols = _symbols_table(conn, frame, weighted)
    biggest = frame.nlargest(top, "bytes")[["key", "family", "symbol", "bytes"]].reset_index(drop=True)
    used, limit = _server_memory(conn) if measured else (None, None)
    series = every.loc[every["family"].isin(["series ticks", "candles"]), "symbol"].dropna().unique()
    candle_raw, candle_stored = _candle_sizes(conn, sorted(series), conn.settings.intervals)
    return MemoryReport(method, note, families, symbols, biggest, len(every), int(families["bytes"].sum()),
                        int(symbols["ticks"].sum()) if len(symbols) else 0, used, limit,
                        int(symbols["tick_raw_bytes"].sum()) if len(symbols) else 0,
                        int(symbols["tick_stored_bytes"].sum()) if len(symbols) else 0, candle_raw, candle_stored)


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
    unit, scale = _unit_for(int(families["bytes"].max()) if len(families) else 0)
    labels = [f"{format_bytes(b)} · {k:,} keys" for b, k in zip(families["bytes"], families["keys"], strict=True)]
    hover = [f"{name}: {b:,} bytes ({report.method}), {k:,} keys, {share:.1%} of the namespace"
             for name, b, k, share in zip(families.index, families["bytes"], families["keys"], families["share"], strict=True)]
    figure = go.Figure(go.Bar(x=(families["bytes"] / scale).tolist(), y=families.index.tolist(), orientation="h",
                              text=labels, textposition="auto", hovertext=hover, hoverinfo="text"))
    figure.update_layout(title=f"Memory by key family ({report.method}): {format_bytes(report.total_bytes)} in "
                               f"{report.total_keys:,} keys", xaxis_title=f"size ({unit}, {report.method})",
                         yaxis_title="key family", template="plotly_white")
    return figure


def _unit_for(largest: int) -> tuple[str, int]:
    """The binary unit (and its size in bytes) that shows ``largest`` bytes as a number from 1 to 1024."""
    unit, scale = "B", 1
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if largest < scale * 1024:
            break
        unit, scale = name, scale * 1024
    return unit, scale
