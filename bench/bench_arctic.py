"""redtick beside ArcticDB in one process: reads, memory, ingest, streaming writes and candles, with the targets of issue 16.

Run: ``pip install -e '.[bench]'`` in an environment of its own (ArcticDB 6.28 needs pandas below 3),
then ``python bench/bench_arctic.py [--ticks N] [--rounds R]``. Needs ``redis-server`` on PATH.

Data: N ticks (default 1,000,000) 100 ms apart, 5% sharing a millisecond, prices a random walk on
a 0.01 grid, random whole volumes, consecutive trade ids (``bench_chunk_codec.synthetic_ticks``).

Systems, all in this process:

- ``ArcticDB``: a library on local LMDB in a throwaway folder, the ticks a frame indexed by time;
- ``redtick``: a throwaway real ``redis-server`` on loopback (``tests.servers.RedisServer``), with
  sealed (compressed) tick chunks, and with them off (``Settings(tick_compression=False)``, how
  redtick stored ticks before): the baseline for "no worse than today".

Cases interleaved over the rounds, medians: read all ticks (price, volume) to a DataFrame; read a
100k-tick window; bytes per tick (``MEMORY USAGE`` summed over the symbol's keys; ArcticDB: the
blocks its LMDB files take on disk); write all ticks in 100k batches (redtick keeps 6 intervals of
candles as it goes; ArcticDB one write, and one write plus appends); a streaming 500-tick batch's
p50; ``load_ohlcv`` of 100,000 one-minute candles (ArcticDB: reading the same bars as a frame).
The real ES ticks' bytes per tick are measured too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_chunk_codec import es_records, synthetic_ticks  # noqa: E402 - the same ticks as the codec benchmark

from redtick import frames  # noqa: E402
from redtick.codec import unpack_range  # noqa: E402
from redtick.config import Settings  # noqa: E402
from redtick.connection import Connection  # noqa: E402
from redtick.outputs import utc_index  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

BATCH = 100_000
STREAM_BATCH = 500
STREAM_BATCHES = 60  # per round and configuration
WINDOW = 100_000
BARS = 100_000
COMPRESSION_SETTING = "tick_compression" in {f.name for f in dataclasses.fields(Settings)}


def tick_frame(records: np.ndarray) -> pd.DataFrame:
    """What a user hands ``write_ticks``: epoch-ms times, price, volume, trade id."""
    return pd.DataFrame({"ts": records["ts"], "price": records["price"], "volume": records["volume"],
                         "trade_id": records["id"]})


def arctic_frame(records: np.ndarray) -> pd.DataFrame:
    """The same ticks as ArcticDB keeps them: a frame indexed by time."""
    index = pd.DatetimeIndex(pd.to_datetime(records["ts"], unit="ms"), name="ts")
    return pd.DataFrame({"price": records["price"], "volume": records["volume"], "trade_id": records["id"]}, index=index)


def bar_frame() -> pd.DataFrame:
    start = 1_600_000_000_000 // 60_000 * 60_000
    # On a 0.01 grid, as real bars are (and as the ticks here are): sealed candle columns keep them as whole cents.
    close = np.round(100 + np.cumsum(np.random.default_rng(0).normal(0, 0.1, BARS)), 2)
    return pd.DataFrame({"ts": start + np.arange(BARS) * 60_000, "open": close, "high": close + 0.5,
                         "low": close - 0.5, "close": close, "volume": 1.0})


def floor_read(conn: Connection, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> pd.DataFrame:
    """The least a read of a series can do: its index, one MGET of the chunks the range touches, the
    times and two columns decoded straight into their arrays (``codec.unpack_range``), a frame over them."""
    client = conn.sync
    chunk_ms = conn.settings.tick_chunk_ms
    low = "-inf" if start_ms is None else start_ms // chunk_ms * chunk_ms
    starts = client.zrangebyscore(conn.keys.tick_index(symbol), low, "+inf" if end_ms is None else end_ms)
    blobs = client.mget([conn.keys.tick_chunk(symbol, int(s)) for s in starts])
    columns = unpack_range(blobs, ("ts", "price", "volume"), start_ms, end_ms)
    return pd.DataFrame({"price": columns["price"], "volume": columns["volume"]}, index=utc_index(columns["ts"]),
                        copy=False)


def settle() -> None:
    gc.collect()


def seconds_of(fn: Callable[[], Any]) -> float:
    settle()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def redis_bytes(conn: Connection, symbol: str) -> int:
    """MEMORY USAGE summed over every key of ``symbol`` (its hash tag is in each)."""
    client = conn.sync
    return sum(client.memory_usage(k, samples=0) or 0 for k in client.scan_iter(match=f"*{{{symbol}}}*", count=1000))


def drop_symbol(conn: Connection, symbol: str) -> None:
    client = conn.sync
    keys = list(client.scan_iter(match=f"*{{{symbol}}}*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])


def disk_bytes(folder: str) -> int:
    """Bytes the files under ``folder`` take on disk (LMDB preallocates a sparse map: its apparent size lies)."""
    return sum(os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, files in os.walk(folder) for f in files)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_arctic needs redis-server on PATH")
    server = RedisServer(binary)
    server.start()
    try:
        yield server.url
    finally:
        server.close()


def redtick_conn(url: str, compressed: bool) -> Connection:
    settings = Settings(url=url, namespace="bench", tick_retention_ms=None, candle_retention_ms=None)
    if COMPRESSION_SETTING:
        settings = dataclasses.replace(settings, tick_compression=compressed)
    return Connection(settings)


class Bench:
    """Every case of every system, each round visiting them in turn."""

    def __init__(self, url: str, arctic_dir: str, records: np.ndarray):
        import arcticdb  # an optional dependency: the bench extra

        self.records = records
        self.ticks = tick_frame(records)
        self.frame = arctic_frame(records)
        self.window = (int(records["ts"][len(records) // 3]), int(records["ts"][len(records) // 3 + WINDOW - 1]))
        self.arctic = arcticdb.Arctic(f"lmdb://{arctic_dir}")
        self.lib = self.arctic.get_library("ticks", create_if_missing=True)
        self.arctic_dir = arctic_dir
        self.conns = {"on": redtick_conn(url, True), "off": redtick_conn(url, False)}
        self.times: dict[str, list[float]] = {}
        self.facts: dict[str, float] = {}

    def add(self, case: str, seconds: float) -> None:
        self.times.setdefault(case, []).append(seconds)

    def median(self, case: str) -> float:
        return statistics.median(self.times[case])

    # -- setup: what the reads read ------------------------------------------------------------------
    def load(self) -> None:
        for name, conn in self.conns.items():
            frames.write_ticks(self.ticks, f"T{name}", conn=conn, batch_size=BATCH)
            frames.write_candles(bar_frame(), f"B{name}", "1m", conn=conn)
            # The streaming series: the last 100k ticks, so each batch lands on a well-filled head chunk.
            frames.write_ticks(self.ticks.iloc[-BATCH:], f"S{name}", conn=conn, batch_size=BATCH)
            self.facts[f"bytes/tick {name}"] = redis_bytes(conn, f"T{name}") / len(self.records)
            self.facts[f"bytes/candle {name}"] = redis_bytes(conn, f"B{name}") / BARS
        self.lib.write("T", self.frame)
        self.lib.write("B", bar_frame().set_index(pd.to_datetime(bar_frame()["ts"], unit="ms")).drop(columns="ts"))
        sizing = tempfile.mkdtemp(prefix="redtick-bench-arctic-size-")
        try:  # a library of its own holding only the ticks, so its files are theirs alone
            import arcticdb

            arcticdb.Arctic(f"lmdb://{sizing}").get_library("size", create_if_missing=True).write("T", self.frame)
            self.facts["bytes/tick arctic"] = disk_bytes(sizing) / len(self.records)
        finally:
            shutil.rmtree(sizing, ignore_errors=True)
        es = es_records()
        for name, conn in self.conns.items():
            frames.write_ticks(tick_frame(es), f"ES{name}", conn=conn, batch_size=BATCH)
            self.facts[f"ES bytes/tick {name}"] = redis_bytes(conn, f"ES{name}") / len(es)

    # -- one round -------------------------------------------------------------------------------------
    def reads(self, round_: int) -> None:
        lo, hi = self.window
        order = list(self.conns.items())
        for name, conn in order[::-1] if round_ % 2 else order:  # neither store always reads first
            got = None

            def read_all(conn: Connection = conn, name: str = name) -> None:
                nonlocal got
                got = frames.load_ticks(f"T{name}", conn=conn)

            self.add(f"read all {name}", seconds_of(read_all))
            assert got is not None and len(got) == len(self.records)
            self.add(f"floor {name}", seconds_of(lambda conn=conn, name=name: floor_read(conn, f"T{name}")))
            self.add(f"window {name}", seconds_of(lambda conn=conn, name=name: frames.load_ticks(f"T{name}", lo, hi, conn=conn)))
            assert len(floor_read(conn, f"T{name}", lo, hi)) == WINDOW
            self.add(f"floor window {name}", seconds_of(lambda conn=conn, name=name: floor_read(conn, f"T{name}", lo, hi)))
            self.add(f"ohlcv {name}", seconds_of(lambda conn=conn, name=name: frames.load_ohlcv(f"B{name}", "1m", conn=conn)))
        start, end = (pd.Timestamp(t, unit="ms") for t in self.window)
        self.add("read all arctic", seconds_of(lambda: self.lib.read("T", columns=["price", "volume"]).data))
        got = self.lib.read("T", date_range=(start, end), columns=["price", "volume"]).data
        assert len(got) == WINDOW, len(got)
        self.add("window arctic", seconds_of(lambda: self.lib.read("T", date_range=(start, end),
                                                                   columns=["price", "volume"]).data))
        self.add("ohlcv arctic", seconds_of(lambda: self.lib.read("B").data))

    def ingest(self, round_: int) -> None:
        for name, conn in self.conns.items():
            symbol = f"W{name}{round_}"
            self.add(f"ingest {name}", seconds_of(lambda conn=conn, symbol=symbol: frames.write_ticks(
                self.ticks, symbol, conn=conn, batch_size=BATCH)))
            drop_symbol(conn, symbol)
        self.add("ingest arctic", seconds_of(lambda: self.lib.write(f"W{round_}", self.frame)))

        def appends() -> None:
            self.lib.write(f"A{round_}", self.frame.iloc[:BATCH])
            for lo in range(BATCH, len(self.frame), BATCH):
                self.lib.append(f"A{round_}", self.frame.iloc[lo : lo + BATCH])

        self.add("ingest arctic appends", seconds_of(appends))
        self.lib.delete(f"W{round_}")
        self.lib.delete(f"A{round_}")

    def streaming(self, round_: int) -> None:
        """500-tick batches continuing a series at its head, as a feed writes them; each round's a
        little later than all before, so the head keeps moving into new hours and sealing the last."""
        start = int(self.records["ts"][-1]) + 1 + round_ * 10_000_000  # after everything written so far
        batch = synthetic_ticks(STREAM_BATCH * STREAM_BATCHES, seed=round_ + 1, start_ms=start)
        batch["id"] += 10_000_000 * (round_ + 2)
        for name, conn in self.conns.items():
            for b in range(STREAM_BATCHES):
                frame = tick_frame(batch[b * STREAM_BATCH : (b + 1) * STREAM_BATCH])
                self.add(f"stream {name}", seconds_of(lambda conn=conn, name=name, frame=frame: frames.write_ticks(
                    frame, f"S{name}", conn=conn)))
        stream_frame = arctic_frame(batch)
        self.lib.write(f"S{round_}", arctic_frame(self.records[:1]))
        for b in range(STREAM_BATCHES):
            part = stream_frame.iloc[b * STREAM_BATCH : (b + 1) * STREAM_BATCH]
            self.add("stream arctic", seconds_of(lambda part=part: self.lib.append(f"S{round_}", part)))
        self.lib.delete(f"S{round_}")


def report(bench: Bench, n: int) -> None:
    m, f = bench.median, bench.facts
    ms = 1e3

    def row(what: str, arctic: str, on: str, off: str, ratio: str, target: str, met: bool | None) -> None:
        verdict = "" if met is None else ("yes" if met else "**no**")
        print(f"| {what} | {arctic} | {on} | {off} | {ratio} | {target} | {verdict} |")

    print(f"\n### {n:,} synthetic ticks; real redis-server on loopback; ArcticDB on local LMDB; medians\n")
    print("| case | ArcticDB | redtick, sealed chunks | redtick, compression off | sealed vs ArcticDB | target | met |")
    print("|---|---:|---:|---:|---:|---|:---:|")
    read_ratio = m("read all on") / m("read all arctic")
    row("read all ticks (price, volume) to a DataFrame", f"{m('read all arctic') * ms:.1f} ms",
        f"{m('read all on') * ms:.1f} ms", f"{m('read all off') * ms:.1f} ms", f"{read_ratio:.2f}x", "<= 2.0x ArcticDB",
        read_ratio <= 2.0)
    floor_ratio = m("floor on") / m("read all arctic")
    row("the same, floor: ZRANGE + MGET + `codec.unpack_range` + frame", "", f"{m('floor on') * ms:.1f} ms",
        f"{m('floor off') * ms:.1f} ms", f"{floor_ratio:.2f}x", "", None)
    window_ratio = m("window on") / m("window arctic")
    row(f"read a {WINDOW // 1000}k-tick window", f"{m('window arctic') * ms:.1f} ms", f"{m('window on') * ms:.1f} ms",
        f"{m('window off') * ms:.1f} ms", f"{window_ratio:.2f}x", "<= 1.0x ArcticDB", window_ratio <= 1.0)
    floor_ratio = m("floor window on") / m("window arctic")
    row("the same, floor", "", f"{m('floor window on') * ms:.1f} ms", f"{m('floor window off') * ms:.1f} ms",
        f"{floor_ratio:.2f}x", "", None)
    row("bytes per tick (Redis MEMORY USAGE, all the symbol's keys; ArcticDB: disk)", f"{f['bytes/tick arctic']:.1f}",
        f"{f['bytes/tick on']:.1f}", f"{f['bytes/tick off']:.1f}", f"{f['bytes/tick on'] / f['bytes/tick arctic']:.2f}x",
        "<= 12 B/tick", f["bytes/tick on"] <= 12)
    row("bytes per tick, real ES ticks (500k)", "", f"{f['ES bytes/tick on']:.1f}", f"{f['ES bytes/tick off']:.1f}", "",
        "<= 12 B/tick", f["ES bytes/tick on"] <= 12)
    rate = {k: n / m(f"ingest {k}") / 1e6 for k in ("on", "off", "arctic", "arctic appends")}
    row("write all ticks, 100k batches (redtick: + 6 candle intervals)",
        f"{rate['arctic']:.1f} M/s one write; {rate['arctic appends']:.1f} M/s appends",
        f"{rate['on']:.2f} M/s", f"{rate['off']:.2f} M/s", f"{rate['on'] / rate['arctic appends']:.2f}x of appends",
        ">= 1.5 M ticks/s", rate["on"] >= 1.5)
    p50 = {k: m(f"stream {k}") * ms for k in ("on", "off", "arctic")}
    row(f"streaming {STREAM_BATCH}-tick batch, p50", f"{p50['arctic']:.2f} ms (append)", f"{p50['on']:.2f} ms",
        f"{p50['off']:.2f} ms", f"{p50['on'] / p50['off']:.2f}x of off", "<= compression off", p50["on"] <= p50["off"] * 1.05)
    ohlcv = {k: m(f"ohlcv {k}") * ms for k in ("on", "off", "arctic")}
    row(f"load_ohlcv 1m, {BARS // 1000}k candles", f"{ohlcv['arctic']:.1f} ms (read)", f"{ohlcv['on']:.1f} ms",
        f"{ohlcv['off']:.1f} ms", f"{ohlcv['on'] / ohlcv['off']:.2f}x of off", "<= compression off",
        ohlcv["on"] <= ohlcv["off"] * 1.05)
    row(f"bytes per 1m candle ({BARS // 1000}k bars, all 6 intervals' keys)", "", f"{f['bytes/candle on']:.1f}",
        f"{f['bytes/candle off']:.1f}", "", "", None)
    print("\n(met within 5% for the two 'no worse than off' rows: the noise between rounds on this machine)")


def machine() -> str:
    import arcticdb
    import redis

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, pandas {pd.__version__}, "
            f"numpy {np.__version__}, ArcticDB {arcticdb.__version__}, redis-py {redis.__version__}, "
            f"{time.strftime('%Y-%m-%d')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7, help="read and streaming rounds (ingest runs 3)")
    args = parser.parse_args(argv)
    if not COMPRESSION_SETTING:
        print("(this redtick has no tick_compression setting: both redtick columns are what it stores by default)")
    records = synthetic_ticks(args.ticks)
    arctic_dir = tempfile.mkdtemp(prefix="redtick-bench-arctic-")
    try:
        with redis_server() as url:
            bench = Bench(url, arctic_dir, records)
            bench.load()
            for round_ in range(args.rounds):
                bench.reads(round_)
                bench.streaming(round_)
                if round_ < 3:
                    bench.ingest(round_)
            report(bench, len(records))
    finally:
        shutil.rmtree(arctic_dir, ignore_errors=True)
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
