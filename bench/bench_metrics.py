"""What measuring every round trip costs: per-command overhead with metrics off, on, and with the DEBUG command log.

Run: ``.venv/bin/python bench/bench_metrics.py`` (in-memory fakeredis, plus a throwaway real
``redis-server`` when the binary is on PATH). The baseline, in the same process, is the client
mixin as it was before metrics: errors translated by a ``translated()`` context manager, nothing
timed. Prints one table of medians in microseconds per command.
"""

from __future__ import annotations

import io
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

import fakeredis
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redtick.connection import _subclass, _SyncTranslation, translated
from redtick.metrics import Metrics

COMMANDS = 20_000
PIPELINED = 100
RUNS = 5
KEY = "redtick:bench:{BTCUSDT}:key"


class _Before:
    """The sync client mixin before metrics (the baseline)."""

    def execute_command(self, *args, **options):
        with translated():
            return super().execute_command(*args, **options)


def _median_us(run, count: int) -> float:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(samples)


def _gets(client) -> None:
    for _ in range(COMMANDS):
        client.get(KEY)


def _pipelines(client) -> None:
    for _ in range(COMMANDS // PIPELINED):
        pipe = client.pipeline(transaction=False)
        for _ in range(PIPELINED):
            pipe.get(KEY)
        pipe.execute()


def _clients(make):
    """(label, client) for the baseline and each measured variant, all on one server."""
    before = make(_subclass(make.base, _Before))
    off = make(_subclass(make.base, _SyncTranslation))
    on = make(_subclass(make.base, _SyncTranslation))
    on._redtick_metrics = Metrics()
    return [("before metrics (baseline)", before, False), ("mixin, no Metrics", off, False),
            ("metrics, log off", on, False), ("metrics + DEBUG log", on, True)]


def _bench(name: str, make) -> list[tuple[str, str, float, float]]:
    rows = []
    log = logging.getLogger("redtick.commands")
    handler = logging.StreamHandler(io.StringIO())  # formats every line, as a real handler would
    for label, client, debug in _clients(make):
        client.set(KEY, b"x" * 64)
        if debug:
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
        try:
            get = _median_us(lambda c=client: _gets(c), COMMANDS)
            pipelined = _median_us(lambda c=client: _pipelines(c), COMMANDS)
        finally:
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)
        rows.append((name, label, get, pipelined))
    return rows


def _in_process() -> list[tuple[str, str, float, float]]:
    """The bookkeeping alone, without any Redis: what measuring adds to one command."""
    metrics = Metrics()
    args = ("GET", KEY)
    stack = [(args, {})] * PIPELINED
    log = logging.getLogger("redtick.commands")
    rows = []
    for label, debug in (("metrics, log off", False), ("metrics + DEBUG log", True)):
        handler = logging.StreamHandler(io.StringIO())
        if debug:
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
        try:
            single = _median_us(lambda: [metrics.command_done(args, 0.0001) for _ in range(COMMANDS)], COMMANDS)
            batch = _median_us(lambda: [metrics.pipeline_done("PIPELINE", stack, 0.001)
                                        for _ in range(COMMANDS // PIPELINED)], COMMANDS)
        finally:
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)
        rows.append(("no Redis (bookkeeping only)", label, single, batch))
    return rows


def main() -> None:
    server = fakeredis.FakeServer(version=(7, 0))

    def embedded(cls):
        return cls(server=server)

    embedded.base = fakeredis.FakeRedis
    rows = _in_process() + _bench("in-memory fakeredis", embedded)
    binary = shutil.which("redis-server")
    if binary is not None:
        from tests.servers import RedisServer

        real = RedisServer(binary)
        real.start()
        try:
            def on_real(cls):
                return cls(port=real.port)

            on_real.base = redis.Redis
            rows += _bench("redis-server (loopback)", on_real)
        finally:
            real.close()
    print(f"{'server':<28} {'client':<26} {'GET us/cmd':>11} {'pipelined us/cmd':>17}")
    for name, label, get, pipelined in rows:
        print(f"{name:<28} {label:<26} {get:>11.2f} {pipelined:>17.2f}")


if __name__ == "__main__":
    main()
