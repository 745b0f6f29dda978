"""redtick migrate: the platform's previous layout, written as its doc's code writes it, brought into redtick's.

The source is a fakeredis server on the memory leg and a throwaway single redis-server on the real
and cluster legs (migrate reads one server); the target is the suite's ``conn`` on every backend.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import uuid
from datetime import UTC, datetime

import fakeredis
import numpy as np
import pandas as pd
import pytest
import redis

from redtick.caches.alerts import PriceAlerts
from redtick.caches.market import MarketDataCache
from redtick.caches.sessions import UserSessionCache
from redtick.config import Settings
from redtick.connection import Connection, blocking
from redtick.errors import ConfigurationError, InvalidData, Unavailable
from redtick.frames import load_ohlcv, load_ticks
from redtick.migrate import (
    CANDLE_KEPT,
    INACTIVE_ALERT,
    SESSIONS_SKIPPED,
    candles_from_list,
    check_kinds,
    format_report,
    migrate,
    parse_price,
    series_ticks,
)
from tests.conftest import IN_CI, RedisServer, free_port

DATA = "data"
TICKS = 3_000  # the first ticks of the ES file: the Sunday open of 2013-09-01
AAPL_BARS = 300
EURUSD_BARS = 200
REDTICK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "bin", "redtick")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the doc's datetime.utcnow(): naive, in UTC


class OldPlatform:
    """The platform's previous cache layer as its doc's snippets write it.

    ``BaseCache`` keys are ``<prefix>:<key>`` with the prefixes ``market`` (market_data_cache),
    ``session`` (user_session_cache) and ``price`` (price_cache); values are JSON strings.
    """

    def __init__(self, client):
        self.redis = client

    # -- market_data_cache ----------------------------------------------------------------------
    def set_symbol_price(self, symbol: str, price_data: dict, ttl: int = 30) -> None:
        data = {"symbol": symbol, **price_data}
        data.setdefault("timestamp", _now().isoformat())
        self.redis.set(f"market:price:{symbol}", json.dumps(data), ex=ttl)

    def set_order_book(self, symbol: str, order_book: dict, ttl: int = 10) -> None:
        self.redis.set(f"market:orderbook:{symbol}", json.dumps(order_book), ex=ttl)

    # -- price_cache ----------------------------------------------------------------------------
    def set_current_price(self, symbol: str, price: float, volume: float = 0.0, timestamp: datetime | None = None):
        timestamp = timestamp or _now()
        data = {"price": price, "volume": volume, "timestamp": timestamp.isoformat()}
        self.redis.zadd(f"price:series:{symbol}", {json.dumps(data): timestamp.replace(tzinfo=UTC).timestamp()})

    def set_ohlcv_data(self, symbol: str, interval: str, candles: list[dict], ttl: int | None = None) -> None:
        self.redis.set(f"price:ohlcv:{symbol}:{interval}", json.dumps(candles), ex=ttl)

    def set_price_alert(self, user_id: str, symbol: str, target_price: float, condition: str, ttl: int = 86_400) -> str:
        alert_id = str(uuid.uuid4())
        alert = {"alert_id": alert_id, "user_id": user_id, "symbol": symbol, "target_price": target_price,
                 "condition": condition, "created_at": _now().isoformat(), "is_active": True}
        self.redis.set(f"price:alert:{alert_id}", json.dumps(alert), ex=ttl)
        self.redis.sadd(f"price:alerts:{symbol}", alert_id)
        self.redis.sadd(f"price:user_alerts:{user_id}", alert_id)
        return alert_id

    def check_price_alerts(self, symbol: str, price: float) -> list[str]:
        triggered = []
        for raw_id in self.redis.smembers(f"price:alerts:{symbol}"):
            alert_id = raw_id.decode()
            alert = json.loads(self.redis.get(f"price:alert:{alert_id}"))
            met = price >= alert["target_price"] if alert["condition"] == "above" else price <= alert["target_price"]
            if alert["is_active"] and met:
                alert.update(is_active=False, triggered_at=_now().isoformat())
                self.redis.set(f"price:alert:{alert_id}", json.dumps(alert), keepttl=True)
                self.redis.srem(f"price:alerts:{symbol}", alert_id)
                triggered.append(alert_id)
        return triggered

    # -- user_session_cache ---------------------------------------------------------------------
    def set_user_session(self, user_id: str, session_data: dict, ttl: int = 3600) -> str:
        session_id = str(uuid.uuid4())
        now = _now().isoformat()
        session = {"session_id": session_id, "user_id": user_id, "data": session_data, "created_at": now,
                   "last_activity": now}
        self.redis.set(f"session:user:{user_id}:{session_id}", json.dumps(session), ex=ttl)
        self.redis.sadd(f"session:user_sessions:{user_id}", session_id)
        return session_id

    def set_user_preferences(self, user_id: str, preferences: dict) -> None:
        self.redis.set(f"session:preferences:{user_id}", json.dumps(preferences))


def es_ticks() -> pd.DataFrame:
    return pd.read_parquet(f"{DATA}/es_ticks_20130901.parquet").iloc[:TICKS]


def bars(name: str, rows: int) -> pd.DataFrame:
    return pd.read_parquet(f"{DATA}/{name}.parquet").iloc[:rows]


def _candle(row, **time) -> dict:
    return {**time, **{c: float(row[c]) for c in ("open", "high", "low", "close", "volume")}}


def write_old_layout(client) -> None:
    """The old layer's data: real ES ticks, AAPL and EURUSD bars, users' sessions, preferences and alerts,
    plus a few corrupt members and keys."""
    old = OldPlatform(client.pipeline(transaction=False))
    for row in es_ticks().itertuples():
        old.set_current_price("ES", float(row.price), float(row.volume), row.ts.to_pydatetime().replace(tzinfo=None))
    old.redis.zadd("price:series:ES", {b"not json": 1378072801.0, b'{"price": "abc", "volume": 1}': 1378072801.5,
                                       b'{"price": 1640.0, "volume": 1}': 42.0})
    old.redis.zadd("price:series:BAD KEY", {b'{"price": 1.0, "volume": 1}': 1378072801.0,
                                            b'{"price": 2.0, "volume": 1}': 1378072802.0})
    old.redis.set("price:series:WRONGTYPE", b"1640.25")
    aapl = bars("aapl_1m_20260729", AAPL_BARS)
    old.set_ohlcv_data("AAPL", "1m", [_candle(r, timestamp=r.ts.isoformat()) for _, r in aapl.iterrows()])
    eurusd = bars("eurusd_1h_ask_2017", EURUSD_BARS)
    old.redis.zadd("ohlcv:EURUSD:1h", {json.dumps(_candle(r, timestamp=r.ts.isoformat())): r.ts.timestamp()
                                       for _, r in eurusd.iterrows()})
    # The doc's own example: candles with no time.
    old.set_ohlcv_data("BTCUSDT", "1h", [{"open": 49000, "high": 51000, "low": 48000, "close": 50000, "volume": 1000}] * 2)
    old.set_ohlcv_data("ES", "1M", [{"timestamp": "2013-09-01T00:00:00", "open": 1, "high": 2, "low": 1, "close": 2,
                                     "volume": 5}])
    old.set_symbol_price("BTCUSDT", {"price": 50000.0, "volume": 1000.0, "change_24h": 2.5}, ttl=300)
    old.redis.set("market:price:ETHUSDT", json.dumps({"symbol": "ETHUSDT", "price": 3000.0}), ex=300)
    old.set_order_book("BTCUSDT", {"bids": [[49950.0, 1.5]], "asks": [[50050.0, 1.2]]})
    for user, device in (("user_123", "browser"), ("user_123", "app"), ("user_456", "browser")):
        old.set_user_session(user, {"device": device, "ip_address": "192.168.1.100"})
    old.set_user_preferences("user_123", {"theme": "dark", "language": "en", "notifications": True})
    old.set_user_preferences("user_456", {"theme": "light"})
    old.redis.set("celery-task-meta-1", b"{}")  # not the cache layer's
    old.redis.execute()
    _old_alerts(OldPlatform(client))


def _old_alerts(old: OldPlatform) -> None:
    old.set_price_alert("user_123", "BTCUSDT", 55_000.0, "above")
    old.set_price_alert("user_123", "ES", 1_600.0, "above")  # the migrated ES history would fire it
    old.set_price_alert("user_456", "ETHUSDT", 3_000.0, "below")
    old.set_price_alert("user_456", "ETHUSDT", 3_000.0, "below")  # set twice: kept twice
    old.set_price_alert("user_456", "BTCUSDT", 40_000.0, "below")
    assert len(old.check_price_alerts("BTCUSDT", 39_000.0)) == 1  # the user_456 one, triggered in the old layer
    old.redis.set("price:alert:broken", json.dumps({"alert_id": "broken", "user_id": "user_456", "symbol": "ES",
                                                    "target_price": 1.0, "condition": "sideways"}))


def unique_es_ticks() -> pd.DataFrame:
    """What the old sorted set holds of the ES ticks: equal (time, price, volume) members collapsed into one."""
    ticks = es_ticks().drop_duplicates(["ts", "price", "volume"])
    return ticks.set_index("ts")[["price", "volume"]].astype(np.float64)


@pytest.fixture(scope="module")
def source_server():
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI=true but redis-server is not on PATH")
        pytest.skip("no redis-server on PATH")
    server = RedisServer(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def source(backend, request):
    """(client, URL or None) of a source holding the old layout: fakeredis on the memory leg, else a single server."""
    if backend == "memory":
        client, url = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0))), None
    else:
        server = request.getfixturevalue("source_server")
        client, url = redis.Redis(port=server.port), server.url
        client.flushall()
    write_old_layout(client)
    yield client, url
    client.close()


def target_keys(conn) -> int:
    return sum(1 for _ in conn.sync.scan_iter(match=conn.keys.everything(), count=1000))


def check_balanced(report) -> None:
    for kind, counts in report.kinds.items():
        assert counts.found == counts.written + counts.already + counts.skipped_total + counts.unreadable_total, kind


def expected_written(unique_ticks: int) -> dict[str, int]:
    return {"prices": 1, "series": unique_ticks, "ohlcv": AAPL_BARS + EURUSD_BARS, "preferences": 2, "sessions": 0,
            "alerts": 4}


def test_dry_run_writes_nothing_and_reports_what_it_would(conn, source):
    client, _ = source
    before = target_keys(conn)
    report = migrate(client, conn=conn)  # a dry run unless asked
    assert report.dry_run and target_keys(conn) == before
    unique = len(unique_es_ticks())
    assert {k: c.written for k, c in report.kinds.items()} == expected_written(unique)
    assert all(c.already == 0 for c in report.kinds.values())
    series = report.kinds["series"]
    assert (series.keys, series.found) == (3, unique + 3 + 2 + 1)
    assert series.unreadable["member is not JSON"] == 1
    assert series.unreadable["price is not a finite number"] == 1
    assert series.unreadable["score is not an epoch time in seconds or ms between 1990 and 2200"] == 1
    assert series.unreadable["expected a sorted set, found a string"] == 1
    assert any("'BAD KEY' has a space" in reason and n == 2 for reason, n in series.unreadable.items())
    assert report.kinds["sessions"].skipped == {SESSIONS_SKIPPED: 3}
    check_balanced(report)
    assert "dry run" in format_report(report)


def test_write_migrates_and_a_second_run_writes_nothing_new(conn, source):
    client, _ = source
    dry = migrate(client, conn=conn, dry_run=True)
    first = migrate(client, conn=conn, dry_run=False)
    assert {k: c.written for k, c in first.kinds.items()} == {k: c.written for k, c in dry.kinds.items()}
    check_balanced(first)
    stored = target_keys(conn)

    second = migrate(client, conn=conn, dry_run=False)
    check_balanced(second)
    assert {k: c.written for k, c in second.kinds.items()} == dict.fromkeys(first.kinds, 0)
    assert {k: c.already for k, c in second.kinds.items()} == {k: c.written for k, c in first.kinds.items()}
    assert target_keys(conn) == stored
    assert_ticks_and_candles_migrated(conn)
    assert_users_and_prices_migrated(conn, json.loads(client.get("market:price:BTCUSDT")))


def assert_ticks_and_candles_migrated(conn) -> None:
    ticks = load_ticks("ES", conn=conn)
    expected = unique_es_ticks()
    assert isinstance(ticks.index, pd.DatetimeIndex) and str(ticks.index.tz) == "UTC"
    pd.testing.assert_frame_equal(ticks.reset_index().sort_values(["ts", "price", "volume"], ignore_index=True),
                                  expected.reset_index().sort_values(["ts", "price", "volume"], ignore_index=True),
                                  check_dtype=False)
    for symbol, name, interval, rows in (("AAPL", "aapl_1m_20260729", "1m", AAPL_BARS),
                                         ("EURUSD", "eurusd_1h_ask_2017", "1h", EURUSD_BARS)):
        want = bars(name, rows).set_index("ts").astype(np.float64)
        got = load_ohlcv(symbol, interval, conn=conn)
        pd.testing.assert_frame_equal(got, want, check_names=False, check_freq=False, check_index_type=False)


def assert_users_and_prices_migrated(conn, old_price: dict) -> None:
    alerts, sessions, market = PriceAlerts(conn), UserSessionCache(conn=conn), MarketDataCache(conn)

    async def read():
        return ([(a["symbol"], a["condition"], a["target_price"]) for a in await alerts.get_user_alerts("user_123")],
                [(a["symbol"], a["condition"], a["target_price"]) for a in await alerts.get_user_alerts("user_456")],
                await sessions.get_user_preferences("user_123"), await sessions.get_user_sessions("user_123"),
                await market.get_symbol_price("BTCUSDT"))

    mine, theirs, preferences, live_sessions, price = blocking(conn, read)
    # The ES alert is live: the migrated history was written before it, so it could not fire it.
    assert sorted(mine) == [("BTCUSDT", "above", 55_000.0), ("ES", "above", 1_600.0)]
    assert theirs == [("ETHUSDT", "below", 3_000.0)] * 2
    assert preferences == {"theme": "dark", "language": "en", "notifications": True}
    assert live_sessions == []  # re-issued at next login
    assert price == old_price  # the same dict, its timestamp as the old layer wrote it
    assert blocking(conn, lambda: market.is_price_fresh("BTCUSDT", max_age_seconds=600))
    ttl = conn.sync.ttl(conn.keys.market("price", "BTCUSDT"))
    assert 0 < ttl <= 300  # what was left of the old key's 300 s


def test_unreadable_records_are_reported_with_reasons(conn, source):
    client, _ = source
    report = migrate(client, conn=conn, dry_run=False)
    assert report.kinds["prices"].unreadable == {
        "timestamp is missing, or not ISO 8601 nor epoch seconds or ms between 1990 and 2200": 1}
    ohlcv = report.kinds["ohlcv"]
    assert ohlcv.unreadable["candle has no time, or one not ISO 8601 nor epoch seconds or ms between 1990 and 2200"] == 2
    assert any(reason.startswith("interval '1M' is not one redtick stores") for reason in ohlcv.unreadable)
    alerts = report.kinds["alerts"]
    assert (alerts.found, alerts.written, alerts.skipped, alerts.unreadable) == (
        6, 4, {INACTIVE_ALERT: 1}, {"condition is not one of above, below, crosses": 1})
    assert ("series", "price:series:ES", "member is not JSON") in report.samples
    assert ("alerts", "price:alert:broken", "condition is not one of above, below, crosses") in report.samples
    assert report.ignored == {"order books, trades, 24h stats and symbol info: refilled by the feed within their TTL": 1,
                              "index of sessions (sessions are re-issued at next login)": 2}
    text = format_report(report)
    assert "1 member is not JSON" in text and "price:series:ES: member is not JSON" in text
    assert all("session:user:user_123:" not in key or key.endswith("<session id>") for _, key, _ in report.samples)


def test_kinds_select_what_is_read(conn, source):
    client, _ = source
    report = migrate(client, conn=conn, dry_run=False, kinds="alerts,prices")
    assert list(report.kinds) == ["prices", "alerts"]  # in migration order
    assert load_ticks("ES", conn=conn, missing="skip").empty


def test_other_doc_following_forms_are_read(conn):
    """Scores in ms, a price as a hash, candles as a sorted set in ms, alerts in a per-symbol hash."""
    old = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0)))
    old.zadd("price:series:BTCUSDT", {b'{"price": 50000.0, "volume": 0.5}': 1701432000123.0,
                                      b'{"price": "50001.5", "volume": "1"}': 1701432000123.0})
    old.hset("market:price:BTCUSDT", mapping={"price": "50000.0", "timestamp": "1701432000"})
    old.zadd("price:ohlcv:ETHUSDT:1m", {b'{"open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 3}': 1701432000000})
    record = {"user_id": "u1", "symbol": "SOLUSDT", "target_price": 150, "condition": "crosses",
              "expires_at": "2999-01-01T00:00:00Z"}
    old.hset("price_alerts:SOLUSDT", mapping={"a1": json.dumps(record), "a2": json.dumps({**record, "target_price": 160})})
    old.set("alert:a1", json.dumps({**record, "alert_id": "a1"}))  # the same alert under its own key: migrated once
    report = migrate(old, conn=conn, dry_run=False)
    check_balanced(report)
    assert {k: c.written for k, c in report.kinds.items()} == {"prices": 1, "series": 2, "ohlcv": 1, "preferences": 0,
                                                               "sessions": 0, "alerts": 2}
    ticks = load_ticks("BTCUSDT", conn=conn)
    assert ticks.index.unique().tolist() == [pd.Timestamp("2023-12-01T12:00:00.123Z")]
    assert sorted(ticks["price"].tolist()) == [50_000.0, 50_001.5]
    assert load_ohlcv("ETHUSDT", "1m", conn=conn)["close"].tolist() == [1.5]
    assert migrate(old, conn=conn, dry_run=False).written == 0


def test_a_candle_redtick_already_holds_differently_is_kept(conn):
    """Old 1h candles of a symbol whose ticks were migrated: equal ones are already there, others kept as redtick's."""
    old = fakeredis.FakeRedis(server=fakeredis.FakeServer(version=(7, 0)))
    platform = OldPlatform(old)
    ticks = es_ticks()
    for row in ticks.iloc[:50].itertuples():
        platform.set_current_price("ES", float(row.price), float(row.volume), row.ts.to_pydatetime().replace(tzinfo=None))
    migrate(old, conn=conn, dry_run=False, kinds="series")
    held = load_ohlcv("ES", "1h", conn=conn).iloc[0]
    candles = [{"timestamp": "2013-09-01T21:00:00Z", "open": 1640.0, "high": 1641.0, "low": 1639.0, "close": 1640.5,
                "volume": 10.0},
               {"timestamp": "2013-09-01T22:00:00Z", "open": 1.0, "high": 2.0, "low": 1.0, "close": 2.0, "volume": 1.0}]
    platform.set_ohlcv_data("ES", "1h", candles)
    report = migrate(old, conn=conn, dry_run=False, kinds="ohlcv")
    ohlcv = report.kinds["ohlcv"]
    assert (ohlcv.found, ohlcv.written, ohlcv.skipped) == (2, 1, {CANDLE_KEPT: 1})
    stored = load_ohlcv("ES", "1h", conn=conn)
    assert stored.index.tolist() == [pd.Timestamp("2013-09-01T21:00Z"), pd.Timestamp("2013-09-01T22:00Z")]
    pd.testing.assert_series_equal(stored.iloc[1], held)  # redtick's candle from the ticks, not the old one


def test_cli_dry_run_then_write(real_redis_url, source_server):
    """The CLI as users run it: a real source, a real target named by REDIS_URL, dry run first."""
    client = redis.Redis(port=source_server.port)
    client.flushall()
    write_old_layout(client)
    conn = Connection(Settings(url=real_redis_url, namespace="t" + secrets.token_hex(4)))
    env = {**os.environ, "REDIS_URL": real_redis_url, "REDTICK_NAMESPACE": conn.keys.namespace}
    env.pop("REDIS_HOST", None)

    def run(*args: str) -> str:
        done = subprocess.run([REDTICK, "migrate", "--from", source_server.url, *args], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        dry = run()
        assert "dry run, nothing written" in dry and target_keys(conn) == 0
        assert "series: 1 member is not JSON" in dry and "sessions are re-issued at next login" in dry
        assert "written" in run("--write", "--kinds", "series,ohlcv").splitlines()[0]
        assert len(load_ticks("ES", conn=conn)) == len(unique_es_ticks())
        row = next(line for line in run("--write", "--kinds", "series").splitlines() if line.startswith("series"))
        assert row.split()[3] == "0" and row.split()[4] == f"{len(unique_es_ticks()):,}"  # written, already there
    finally:
        keys = list(conn.sync.scan_iter(match=conn.keys.everything(), count=1000))
        if keys:
            conn.sync.delete(*keys)
        conn.close()
        client.close()


def test_an_unreachable_source_names_its_host_and_never_its_password():
    port = free_port()
    with pytest.raises(Unavailable) as caught:
        migrate(f"redis://:s3cret-pw@127.0.0.1:{port}/0", conn=Connection(Settings(url="memory://", namespace="tmig")))
    assert f"127.0.0.1:{port}" in str(caught.value) and "s3cret" not in str(caught.value)
    cli = subprocess.run([REDTICK, "migrate", "--from", f"redis://:s3cret-pw@127.0.0.1:{port}/0"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "REDIS_URL": "memory://"})
    assert cli.returncode == 2 and "Unavailable" in cli.stderr and "s3cret" not in cli.stderr + cli.stdout


def test_a_cluster_source_url_is_refused_and_kinds_are_checked():
    with pytest.raises(ConfigurationError, match="once per master"):
        migrate("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    with pytest.raises(InvalidData, match="expected some of prices, series"):
        check_kinds("prices,candles")


def test_parsers_say_why_they_cannot_read():
    frame, unreadable = series_ticks([b"[1, 2]", b'{"price": 1.0, "volume": -1}', b'{"price": true, "volume": 1}'],
                                     np.array([1.7e9, 1.7e9, 1.7e9]))
    assert frame.empty and unreadable == {"member is JSON but not an object": 1,
                                          "price is not a finite number": 1,
                                          "volume is not a non-negative finite number": 1}
    assert candles_from_list(b'{"open": 1}')[1] == {"value is not a JSON list of candles": 1}
    with pytest.raises(InvalidData, match="not above 0"):
        parse_price(b'{"price": 0, "timestamp": "2023-12-01T12:00:00Z"}', "BTCUSDT")
    with pytest.raises(InvalidData, match="symbol differs"):
        parse_price(b'{"symbol": "ETHUSDT", "price": 1, "timestamp": "2023-12-01T12:00:00Z"}', "BTCUSDT")


def test_report_is_a_dataclass_with_counts_per_kind(conn, source):
    client, _ = source
    report = migrate(client, conn=conn, kinds=["sessions"])
    assert dataclasses.asdict(report)["kinds"]["sessions"]["found"] == 3
