"""The main job, end to end on whichever Redis is configured (a throwaway local store when none).

Ingest the real ES ticks installed with redtick (:func:`redtick.datasets.es_ticks`), build candles,
set alerts and watch them fire while the last ticks are replayed as a live feed, then print a
summary and write a self-contained HTML report. The demo works in a namespace of its own
(``<namespace>-demo``), emptied first, so it can run again on a real Redis and never touches
other keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd

from redtick import datasets, snapshot
from redtick.caches.alerts import set_alerts
from redtick.caches.base import BaseCache, EncryptedCache
from redtick.catalog import layout_of
from redtick.client import RedisClient
from redtick.config import Settings, get_settings
from redtick.connection import Connection, blocking
from redtick.frames import load_ohlcv, write_ticks
from redtick.ingest import replay_ticks
from redtick.service import CacheService
from redtick.store import LocalStore

__all__ = ["DEMO_SYMBOL", "DEMO_USER", "REPLAY_TICKS", "demo_alerts", "demo_connection", "run_demo"]

DEMO_SYMBOL = "ES"
DEMO_USER = "quant_1"
REPLAY_TICKS = 20_000
"""The last ticks of the sample, fed in small batches after the alerts are set."""
REPLAY_BATCH = 250
ES_FILE = "es_ticks_20130901.parquet"


async def _round_trip(conn: Connection) -> list[tuple[str, str]]:
    client = RedisClient(conn)
    await client.connect()
    cache = BaseCache("demo", default_ttl=60, conn=conn)
    await cache.set_many({"BTCUSDT": {"price": 50000.0}, "ETHUSDT": {"price": 2500.0}})
    values = await cache.get_many(["BTCUSDT", "ETHUSDT", "MISSING"])
    rows = [("base cache round trip", repr(values))]
    if conn.settings.encryption_key:
        secret = EncryptedCache("demo-secret", conn=conn)
        await secret.set("note", {"pii": "stays encrypted at rest"})
        rows.append(("encrypted cache round trip", repr(await secret.get("note"))))
    await client.disconnect()
    return rows


@contextlib.contextmanager
def _throwaway_store() -> Iterator[tuple[Settings, str]]:
    """Settings for the demo: the configured server, or a local store in a temporary folder.

    With no server configured the demo must not write into the user's own store, so it runs on
    a store of its own, stopped and removed when the demo ends.
    """
    settings = get_settings()
    if not settings.local:
        yield settings, "the configured server"
        return
    home = tempfile.mkdtemp(prefix="redtick-demo-")
    try:
        yield dataclasses.replace(settings, home=home), "a throwaway local store (your own store is untouched)"
    finally:
        LocalStore(home).stop()
        shutil.rmtree(home, ignore_errors=True)


def demo_connection(suffix: str = "demo", settings: Settings | None = None) -> Connection:
    """A connection to the configured Redis in the namespace ``<namespace>-<suffix>``, emptied first.

    The demo and each notebook work in a namespace of their own, so they can run again on a real
    Redis and never touch other keys.

    Examples
    --------
    >>> demo_connection("docs").keys.namespace
    'redtick-docs'
    """
    settings = settings or get_settings()
    conn = Connection(dataclasses.replace(settings, namespace=f"{settings.namespace[:31 - len(suffix)]}-{suffix}"))
    if next(conn.sync.scan_iter(match=conn.keys.everything(), count=1000), None) is not None:
        blocking(conn, lambda: CacheService(conn).clear_all_cache())
    return conn


def demo_alerts(before: float, replay: pd.Series, user_id: str = DEMO_USER,
                symbol: str = DEMO_SYMBOL) -> list[dict[str, Any]]:
    """Alerts that the replay of ``replay`` prices fires, after a feed that ended at ``before``, plus one it does not.

    ``above`` at the replay's high, ``below`` at its low, ``crosses`` at the replay price farthest
    from ``before`` (so the price must travel to it), and an ``above`` out of reach that stays live.

    Examples
    --------
    >>> [(a["condition"], a["target_price"]) for a in demo_alerts(10.0, pd.Series([9.0, 12.0, 11.0]))]
    [('above', 12.0), ('below', 9.0), ('crosses', 12.0), ('above', 23.0)]
    """
    high, low = float(replay.max()), float(replay.min())
    far = high if high - before >= before - low else low
    targets = [(high, "above"), (low, "below"), (far, "crosses"), (high + (high - low) * 2 + 5, "above")]
    return [{"user_id": user_id, "symbol": symbol, "target_price": t, "condition": c} for t, c in targets]


def _print_table(title: str, table: pd.DataFrame, *, index: bool = False) -> None:
    print(f"\n{title}")
    print(table.to_string(index=index) if not table.empty else "  (none)")


def run_demo(data_dir: str | None = None, out: str = "reports") -> int:
    """Run the demo and print what happened; returns a process exit code.

    Parameters
    ----------
    data_dir : str, optional
        Folder holding ``es_ticks_20130901.parquet``; by default the sample installed with redtick
        (:func:`redtick.datasets.es_ticks`), so the demo runs from any folder.
    out : str
        Folder the HTML report is written to.
    """
    with _throwaway_store() as (settings, which):
        return _run_demo(settings, which, data_dir, out)


def _run_demo(settings: Settings, which: str, data_dir: str | None, out: str) -> int:
    from redtick import reports  # plotly lives at the edges: only the demo and notebooks need it

    started = time.perf_counter()
    conn = demo_connection(settings=settings)
    print(f"redtick demo on {which}: {conn.settings.safe_url}, namespace {conn.keys.namespace!r} (emptied first)")
    rows = blocking(conn, lambda: _round_trip(conn))

    ticks = datasets.es_ticks() if data_dir is None else pd.read_parquet(pathlib.Path(data_dir) / ES_FILE)
    history, live = ticks.iloc[:-REPLAY_TICKS], ticks.iloc[-REPLAY_TICKS:]
    ingest = write_ticks(history, DEMO_SYMBOL, conn=conn, progress=True)
    alert_ids = set_alerts(demo_alerts(ingest.last, live["price"]), conn=conn)
    replay = replay_ticks(live, DEMO_SYMBOL, batch_size=REPLAY_BATCH, conn=conn, progress=True)
    resent = write_ticks(ticks.iloc[:10_000], DEMO_SYMBOL, conn=conn)
    saved = snapshot.save(DEMO_SYMBOL, "es-1h", kind="ohlcv", interval="1h", conn=conn)

    candles = {name: len(load_ohlcv(DEMO_SYMBOL, name, conn=conn)) for name in layout_of(conn).intervals}
    changes = reports.price_changes(DEMO_SYMBOL, conn=conn)
    hour = changes.set_index("period").loc["1h"]
    fired = reports.fired_alert_history(DEMO_USER, conn=conn)
    memory = reports.memory_report(conn)

    rows += [
        ("ticks in the sample file", f"{len(ticks):,}"),
        ("ticks written (ingest + live replay)",
         f"{ingest.written:,} + {replay.written:,} = {ingest.written + replay.written:,}"),
        ("re-sent ticks skipped as duplicates", f"{resent.duplicates:,} of {resent.received:,}"),
        ("candles per interval", ", ".join(f"{name} {n:,}" for name, n in candles.items())),
        ("1h price change", f"{hour.previous_price:,.2f} -> {hour.current_price:,.2f}: {hour.change:+,.2f} "
                            f"({hour.change_percent:+.3f}%)"),
        ("alerts set / fired during replay", f"{len(alert_ids)} / {len(replay.fired)} "
                                             f"(in {int((replay.batches['fired'] > 0).sum())} of {len(replay.batches)} batches)"),
        (f"memory in namespace ({memory.method})", f"{memory.total_bytes / 2**20:,.2f} MiB in {memory.total_keys:,} keys, "
                                                   f"{memory.bytes_per_tick:,.1f} B/tick"),
        ("share of maxmemory in use", "n/a" if memory.maxmemory_share is None else f"{memory.maxmemory_share:.2%}"),
        ("cache hit rates (this process)", ", ".join(
            f"{cache} {rate:.0%}" for cache, rate in conn.metrics.hit_rates().items() if rate is not None) or "no reads"),
        ("Arrow snapshot of 1h candles", f"{saved.rows:,} rows, {saved.bytes:,} bytes ({saved.compression})"),
    ]
    summary = pd.DataFrame(rows, columns=["figure", "value"])

    _print_table(f"{DEMO_SYMBOL} 1h candles (last 5)", load_ohlcv(DEMO_SYMBOL, "1h", conn=conn).tail(5), index=True)
    _print_table("price change", changes[["symbol", "period", "previous_price", "current_price", "change", "change_percent"]])
    _print_table("fired alerts", fired[["condition", "target_price", "price", "fired_at", "recorded_at"]])
    _print_table(f"memory by key family ({memory.method})", memory.families[memory.families["keys"] > 0], index=True)
    _print_table("cache hits, misses and writes (this process)", conn.metrics.frame(), index=True)
    path = reports.write_html_report(pathlib.Path(out) / "redtick_report.html", DEMO_SYMBOL, user_ids=DEMO_USER,
                                     summary=summary, memory=memory, title="redtick demo: ES ticks", conn=conn)
    summary.loc[len(summary)] = ["finished in", f"{time.perf_counter() - started:,.1f} s"]
    _print_table("summary", summary)
    print(f"\nHTML report: {path.resolve()}")
    conn.close()
    return 0
