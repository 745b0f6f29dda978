"""Bytes per tick and decode time of sealed tick chunks, against raw chunks decoded in the same run (no Redis).

Run: ``.venv/bin/python bench/bench_chunk_codec.py [--ticks N] [--rounds R]``.

Data, cut into 1-hour chunks as a series stores them:

- ``synthetic``: N ticks (default 1,000,000) 100 ms apart, 5% sharing a millisecond with the tick
  before, prices a random walk on a 0.01 grid, volumes random whole numbers, ids consecutive;
- ``ES``: the 500,000 real ES ticks of ``data/es_ticks_20130901.parquet``.

Cases, interleaved over the rounds (medians; every result kept until the round ends, so fresh
memory is paid for as a read pays for it):

- ``raw: records + concatenate`` is a read of raw chunks (33-byte records, ``np.frombuffer``);
- ``sealed: unpack_ticks + concatenate`` decodes whole records chunk by chunk;
- ``sealed: unpack_range`` decodes the columns a frame needs (ts, price, volume) straight into one
  array each;
- ``zstd`` rows seal with the header's other codec (zstd level 1) to show what LZ4 trades.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redtick import codec  # noqa: E402
from redtick.codec import TICK_DTYPE, seal_ticks, unpack_range, unpack_ticks  # noqa: E402

HOUR_MS = 3_600_000
FRAME_COLUMNS = ("ts", "price", "volume")


def synthetic_ticks(n: int, seed: int = 0, start_ms: int = 1_700_000_000_000) -> np.ndarray:
    """``n`` tick records 100 ms apart, 5% sharing a millisecond, prices on a 0.01 grid, random volumes."""
    rng = np.random.default_rng(seed)
    step = np.where(rng.random(n) < 0.05, 0, 100)
    step[0] = 0
    records = np.zeros(n, TICK_DTYPE)
    records["ts"] = start_ms + np.cumsum(step)
    records["id"] = 10_000_000 + np.arange(n)
    records["price"] = np.round(100 + np.cumsum(rng.integers(-3, 4, n)) * 0.01, 2)
    records["volume"] = rng.integers(1, 1_000, n).astype(np.float64)
    records["side"] = rng.integers(-1, 2, n)
    return records


def es_records() -> np.ndarray:
    """The real ES ticks as tick records, sorted by time and id."""
    es = pd.read_parquet(ROOT / "data" / "es_ticks_20130901.parquet")
    records = np.zeros(len(es), TICK_DTYPE)
    records["ts"] = es["ts"].dt.as_unit("ms").astype("int64").to_numpy()
    records["id"] = es["seq"].to_numpy()
    records["price"] = es["price"].to_numpy(np.float64)
    records["volume"] = es["volume"].to_numpy(np.float64)
    return records[np.lexsort((records["id"], records["ts"]))]


def hourly_chunks(records: np.ndarray) -> list[np.ndarray]:
    hours = records["ts"] // HOUR_MS
    return np.split(records, np.flatnonzero(np.diff(hours)) + 1)


def raw_read(blobs: list[bytes]) -> dict[str, np.ndarray]:
    pieces = [np.frombuffer(b, TICK_DTYPE) for b in blobs]
    return {name: np.concatenate([p[name] for p in pieces]) for name in FRAME_COLUMNS}


def records_read(blobs: list[bytes]) -> dict[str, np.ndarray]:
    pieces = [unpack_ticks(b) for b in blobs]
    return {name: np.concatenate([p[name] for p in pieces]) for name in FRAME_COLUMNS}


def range_read(blobs: list[bytes]) -> dict[str, np.ndarray]:
    return unpack_range(blobs, FRAME_COLUMNS)


def sealed_with(chunks: list[np.ndarray], codec_id: int) -> tuple[list[bytes], float]:
    """The chunks sealed with codec ``codec_id`` (1 zstd, 2 LZ4), and the seconds it took."""
    written = codec._WRITTEN_CODEC
    codec._WRITTEN_CODEC = codec_id
    try:
        started = time.perf_counter()
        blobs = [seal_ticks(c) for c in chunks]
        return blobs, time.perf_counter() - started
    finally:
        codec._WRITTEN_CODEC = written


def measure(records: np.ndarray, rounds: int) -> list[tuple[str, float, float, float]]:
    """(case, bytes per tick, median decode ms, seal ms) rows for one data set."""
    chunks = hourly_chunks(records)
    raw = [c.tobytes() for c in chunks]
    lz4, lz4_seconds = sealed_with(chunks, 2)
    zstd, zstd_seconds = sealed_with(chunks, 1)
    expected = raw_read(raw)
    for blobs in (lz4, zstd):
        got = range_read(blobs)
        assert all(np.array_equal(got[k].view(np.uint8), expected[k].view(np.uint8)) for k in FRAME_COLUMNS)
    cases: dict[str, tuple[list[bytes], float, Callable[[], object]]] = {
        "raw: records + concatenate": (raw, 0.0, lambda: raw_read(raw)),
        "sealed LZ4: unpack_ticks + concatenate": (lz4, lz4_seconds, lambda: records_read(lz4)),
        "sealed LZ4: unpack_range": (lz4, lz4_seconds, lambda: range_read(lz4)),
        "sealed zstd-1: unpack_range": (zstd, zstd_seconds, lambda: range_read(zstd)),
    }
    timings: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(rounds):
        kept = []  # results live until the round ends: each read pays for fresh pages, as a real one does
        gc.collect()
        for case, (_, _, read) in cases.items():
            started = time.perf_counter()
            kept.append(read())
            timings[case].append(time.perf_counter() - started)
    return [(case, sum(map(len, blobs)) / len(records), statistics.median(timings[case]) * 1e3, seconds * 1e3)
            for case, (blobs, seconds, _) in cases.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000, help="synthetic ticks (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    for title, records in ((f"synthetic, {args.ticks:,} ticks", synthetic_ticks(args.ticks)),
                           (f"real ES, {len(es_records()):,} ticks", es_records())):
        rows = measure(records, args.rounds)
        base = rows[0][2]
        print(f"\n### {title}, 1-hour chunks ({len(hourly_chunks(records))}); ts, price, volume decoded\n")
        print("| case | bytes/tick | decode ms | vs raw | seal ms |")
        print("|---|---:|---:|---:|---:|")
        for case, per_tick, ms, seal_ms in rows:
            print(f"| {case} | {per_tick:.2f} | {ms:.1f} | {ms / base:.2f}x | {seal_ms:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
