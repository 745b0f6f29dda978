"""redtick.reports: price changes, candles, alerts and memory checked against independent computations."""

from __future__ import annotations

import asyncio
import functools
import itertools
import pathlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import redtick
from redtick import reports
from redtick.caches.alerts import delete_alert, set_alerts
from redtick.errors import InvalidData
from redtick.ingest import replay_ticks

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


@functools.cache
def es_ticks() -> pd.DataFrame:
    return pd.read_parquet(DATA / "es_ticks_20130901.parquet")


def ticks_slice(n: int) -> pd.DataFrame:
    return es_ticks().iloc[:n].copy()


def expected_change(ticks: pd.DataFrame, minutes: int, at: pd.Timestamp) -> tuple[float, float]:
    """(previous, current) price from pandas: the last tick by (ts, seq) at or before each time."""
    ordered = ticks.sort_values(["ts", "seq"])
    current = ordered[ordered["ts"] <= at]["price"].iloc[-1]
    before = ordered[ordered["ts"] <= at - pd.Timedelta(minutes=minutes)]["price"]
    return (before.iloc[-1] if len(before) else np.nan), current


def test_price_changes_equal_pandas_on_es_ticks(conn):
    ticks = es_ticks()
    redtick.write_ticks(ticks, "ES", conn=conn)
    table = reports.price_changes("ES", ["1m", "15m", "1h", 240, "1d"], conn=conn)
    assert table["period"].tolist() == ["1m", "15m", "1h", "240m", "1d"]
    assert table["period_minutes"].tolist() == [1, 15, 60, 240, 1440]
    at = ticks["ts"].max()
    for row in table.itertuples():
        previous, current = expected_change(ticks, row.period_minutes, at)
        assert row.previous_price == previous
        assert row.current_price == current
        assert row.change == current - previous
        assert row.change_percent == (current - previous) / previous * 100.0
        assert row.to_time == at


def test_price_changes_at_a_given_time_and_before_the_series(conn):
    ticks = ticks_slice(60_000)
    redtick.write_ticks(ticks, "ES", conn=conn)
    at = ticks["ts"].iloc[40_000]
    table = reports.price_changes(["ES"], ["5m", "1d"], at=at, conn=conn)
    previous, current = expected_change(ticks, 5, at)
    assert (table.loc[0, "previous_price"], table.loc[0, "current_price"]) == (previous, current)
    # A day before the first tick: no previous price, so the row is NaN, not an error.
    assert np.isnan(table.loc[1, "change"]) and pd.isna(table.loc[1, "from_time"])
    assert table["change"].dtype == np.float64


@pytest.mark.parametrize("period", ["90s", 0, "soon", True])
def test_price_changes_refuses_bad_periods(conn, period):
    with pytest.raises(InvalidData):
        reports.price_changes("ES", [period], conn=conn)


def test_candlestick_figure_holds_the_stored_candles(conn):
    ticks = ticks_slice(100_000)
    redtick.write_ticks(ticks, "ES", conn=conn)
    figure = reports.candlestick_figure("ES", "1h", conn=conn)
    candle, volume = figure.data
    ordered = ticks.sort_values(["ts", "seq"]).set_index("ts")
    expected = ordered["price"].resample("1h", label="left", closed="left").ohlc().dropna()
    assert list(candle.open) == expected["open"].tolist()
    assert list(candle.close) == expected["close"].tolist()
    assert list(volume.y) == ordered["volume"].resample("1h").sum()[expected.index].astype(float).tolist()


def test_replay_fires_each_alert_in_the_batch_that_meets_it(conn):
    ticks = ticks_slice(30_000)
    head, tail = ticks.iloc[:20_000], ticks.iloc[20_000:]
    redtick.write_ticks(head, "ES", conn=conn)
    above, below = tail["price"].max(), tail["price"].min()
    never = above + 100.0
    specs = [{"user_id": "quant", "symbol": "ES", "target_price": p, "condition": c}
             for p, c in ((above, "above"), (below, "below"), (never, "above"))]
    ids = set_alerts(specs, conn=conn)
    seen = []
    replay = replay_ticks(tail, "ES", batch_size=1_000, conn=conn, on_batch=seen.append)
    assert len(seen) == 10 and replay.written == 10_000 and replay.duplicates == 0

    # Independently: the first batch whose high (above) or low (below) reaches the target.
    batch = np.arange(len(tail)) // 1_000
    highs = tail.groupby(batch)["price"].max().to_numpy()
    lows = tail.groupby(batch)["price"].min().to_numpy()
    first_above, first_below = int(np.argmax(highs >= above)), int(np.argmax(lows <= below))
    expected_counts = np.zeros(10, dtype=int)
    expected_counts[first_above] += 1
    expected_counts[first_below] += 1
    assert replay.batches["fired"].tolist() == expected_counts.tolist()
    assert {(f.alert_id, f.price) for f in replay.fired} == {(ids[0], highs[first_above]), (ids[1], lows[first_below])}

    live = reports.alert_status("quant", conn=conn)
    assert live["alert_id"].tolist() == [ids[2]] and live["target_price"].tolist() == [never]
    history = reports.fired_alert_history(["quant", "nobody"], conn=conn)
    assert sorted(history["alert_id"]) == sorted(ids[:2])
    assert history["fired_at"].dtype == pd.DatetimeTZDtype("ms", "UTC")
    assert delete_alert("quant", ids[2], conn=conn) is True
    assert reports.alert_status("quant", conn=conn).empty
    figure = reports.alerts_figure("ES", live, history, conn=conn)
    targets = {t.name: sorted({y for y in t.y if y is not None}) for t in figure.data if t.name.startswith("target")}
    assert targets == {"target, fired": sorted([above, below]), "target, live": [never]}
    (crosses,) = [t for t in figure.data if t.name == "fired (tick price)"]
    assert sorted(crosses.y) == sorted(history["price"]) and set(crosses.x) == set(history["fired_at"])


def test_sync_alert_calls_work_inside_a_running_event_loop(conn):
    """Jupyter's kernel runs a loop: the sync wrappers must not call asyncio.run in it."""

    async def inside_a_loop():
        ids = set_alerts([{"user_id": "nb", "symbol": "ES", "target_price": 5.0, "condition": "below"}], conn=conn)
        return ids, reports.alert_status("nb", conn=conn)

    ids, live = asyncio.run(inside_a_loop())
    assert live["alert_id"].tolist() == ids


def _fill_every_family(conn) -> None:
    redtick.write_ticks(ticks_slice(20_000), "ES", conn=conn)
    redtick.write_ticks(ticks_slice(5_000).assign(price=lambda f: f["price"] / 10), "NQ", conn=conn)
    set_alerts([{"user_id": "quant", "symbol": "ES", "target_price": 1.0, "condition": "below"}], conn=conn)
    conn.sync.zadd(conn.keys.rate_limit("api", "quant"), {"hit-1": 1, "hit-22": 2})
    conn.sync.set(conn.keys.response("market", "abc123"), b"x" * 300)
    conn.sync.hset(conn.keys.session("s1"), mapping={"user_id": "quant", "data": "{}"})
    redtick.snapshot.save("ES", "es-snap", conn=conn)


def test_memory_report_bytes_match_an_independent_count(conn):
    _fill_every_family(conn)
    foreign = "zz-not-redtick:key"
    conn.sync.set(foreign, b"y" * 10_000)  # outside the namespace: never counted
    try:
        report = reports.memory_report(conn)
    finally:
        conn.sync.delete(foreign)
    client = conn.sync
    keys = sorted(k.decode() for k in client.scan_iter(match=conn.keys.everything()))
    assert report.total_keys == len(keys)

    if conn.in_memory:
        assert report.method == "estimated" and report.estimated and "estimated" in report.note
        assert report.used_memory is None and report.maxmemory_share is None

        def expected_bytes(key: str) -> int:  # by type, written out again here
            kind = client.type(key).decode()
            if kind == "string":
                return len(key) + client.strlen(key)
            if kind == "hash":
                return len(key) + sum(len(f) + len(v) for f, v in client.hgetall(key).items())
            if kind == "zset":
                return len(key) + sum(len(m) + 8 for m in client.zrange(key, 0, -1))
            return len(key) + sum(len(m) for m in (client.smembers(key) if kind == "set" else client.lrange(key, 0, -1)))
    else:
        assert report.method == "measured" and not report.estimated
        assert report.used_memory > 0

        def expected_bytes(key: str) -> int:
            return client.memory_usage(key, samples=0)

    by_family: dict[str, int] = {}
    for key in keys:
        family = conn.keys.family_of(key)[0]
        by_family[family] = by_family.get(family, 0) + expected_bytes(key)
    assert report.families["bytes"][report.families["bytes"] > 0].to_dict() == by_family
    assert report.total_bytes == sum(by_family.values())
    assert set(by_family) == {"series ticks", "candles", "alerts", "rate limits", "HTTP cache", "sessions", "snapshots"}

    # Ticks: every stored tick chunk's bytes over the record size, per symbol.
    assert report.ticks == 25_000
    assert report.symbols.loc["ES", "ticks"] == 20_000 and report.symbols.loc["NQ", "ticks"] == 5_000
    es_series = sum(expected_bytes(k) for k in keys if conn.keys.family_of(k) == ("series ticks", "ES"))
    assert report.symbols.loc["ES", "series ticks"] == es_series
    assert report.symbols.loc["ES", "bytes_per_tick"] == es_series / 20_000
    assert report.bytes_per_tick == by_family["series ticks"] / 25_000
    assert report.biggest["bytes"].tolist() == sorted((expected_bytes(k) for k in keys), reverse=True)[:10]
    assert report.families.loc["other", "keys"] == 0


def test_memory_report_samples_large_keyspaces_and_says_so(conn):
    _fill_every_family(conn)
    full = reports.memory_report(conn)
    sampled = reports.memory_report(conn, sample_limit=10, seed=1)
    assert sampled.families["keys"].equals(full.families["keys"])  # counts come from SCAN, never sampled
    assert sampled.families["measured_keys"].sum() < full.total_keys
    if conn.in_memory:
        assert sampled.method == "estimated"
    else:
        assert sampled.method == "sampled" and "sampled" in sampled.note
    # A family with one key is measured whole, so its figure is exact even when sampling.
    one_key = full.families[full.families["keys"] == 1].index
    assert len(one_key) and sampled.families.loc[one_key, "bytes"].equals(full.families.loc[one_key, "bytes"])
    assert sampled.total_bytes > 0


def test_a_sample_of_keys_alike_in_each_shape_is_exact_with_no_margin(conn):
    # 30 symbols with the same ticks: every tick chunk, series index, quote and candle chunk of one shape holds the
    # same bytes, but a family mixes big chunks with small indexes. A sample drawn by shape scales each shape by
    # its own count, so it is exact; one drawn by family would over- or understate the family by its luck.
    # (On a real Redis, MEMORY USAGE of equal values may differ by an allocator size class.)
    ticks = es_ticks().iloc[:3_000]
    for n in range(30):
        redtick.write_ticks(ticks, f"S{n:02d}", conn=conn)
    full = reports.memory_report(conn)
    sampled = reports.memory_report(conn, sample_limit=full.total_keys // 5, seed=3)
    assert sampled.method == ("estimated" if conn.in_memory else "sampled")
    assert sampled.families["measured_keys"].sum() < full.total_keys / 2
    if conn.in_memory:
        assert sampled.families["bytes"].to_dict() == full.families["bytes"].to_dict()
        assert (sampled.families["margin"] == 0).all() and sampled.margin == 0
    else:
        # Equal values may sit in allocator size classes 16 bytes apart: a small family (30 quotes of ~90 B)
        # is off by that much per key at most; the big ones stay within 1%.
        error = (sampled.families["bytes"] - full.families["bytes"]).abs()
        assert (error <= 0.01 * full.families["bytes"] + 16 * full.families["keys"]).all(), error
        big = ["series ticks", "candles"]
        assert (error[big] <= 0.01 * full.families.loc[big, "bytes"]).all(), error
    assert (full.families["margin"] == 0).all() and full.margin == 0


def test_a_sample_of_keys_unlike_in_size_says_its_margin(conn):
    for n in range(40):  # sessions of one shape holding from 10 to 400 bytes of data
        redtick.write_ticks([{"ts": 1_000, "price": 1.0, "volume": 1.0}], f"U{n:02d}", conn=conn)
        conn.sync.set(conn.keys.session(f"s{n:02d}"), "x" * (10 * (n + 1)))
    full = reports.memory_report(conn)
    sampled = reports.memory_report(conn, sample_limit=20, seed=5)
    assert sampled.families.loc["sessions", "measured_keys"] < full.families.loc["sessions", "keys"]
    assert sampled.families.loc["sessions", "margin"] > 0 and full.families.loc["sessions", "margin"] == 0
    assert sampled.margin > 0 and full.margin == 0
    shown = reports.families_table_html(sampled.families, sampled.method)
    assert ("margin (95%)" in shown) == (sampled.method == "sampled")
    assert "margin" not in reports.families_table_html(full.families, full.method)


@pytest.mark.single_node("CONFIG SET reaches one node; tests/test_cluster.py sets every master's maxmemory")
def test_memory_report_share_of_maxmemory(conn):
    report = reports.memory_report(conn)
    if conn.in_memory:
        assert report.maxmemory_share is None
        assert "n/a" in report.summary().set_index("figure").loc["share of maxmemory in use", "value"]
        return
    limit = 512 * 2**20
    old = conn.sync.config_get("maxmemory")["maxmemory"]
    conn.sync.config_set("maxmemory", limit)
    try:
        report = reports.memory_report(conn)
    finally:
        conn.sync.config_set("maxmemory", old)
    assert report.maxmemory == limit
    assert report.maxmemory_share == report.used_memory / limit


def test_memory_figure_and_empty_namespace(conn):
    report = reports.memory_report(conn)
    assert report.total_keys == 0 and report.ticks == 0 and np.isnan(report.bytes_per_tick)
    assert report.symbols.empty and report.biggest.empty
    figure = reports.memory_figure(report)
    assert report.method in figure.layout.title.text


def test_family_of_sorts_every_key_builder():
    keys = redtick.KeySchema("ns")
    assert keys.family_of(keys.candle_chunk("ES", "1m", 0)) == ("candles", "ES")
    assert keys.family_of(keys.current_price("ES")) == ("series ticks", "ES")
    assert keys.family_of(keys.market("orderbook", "ES")) == ("market", "ES")
    assert keys.family_of(keys.alert_log("ES", "u1")) == ("alerts", "ES")
    assert keys.family_of(keys.user_sessions("u1")) == ("sessions", None)
    assert keys.family_of(keys.user_alert_symbols("u1")) == ("alerts", None)
    assert keys.family_of(keys.rate_limit("api", "u1")) == ("rate limits", None)
    assert keys.family_of(keys.response("p", "d1")) == ("HTTP cache", None)
    assert keys.family_of(keys.snapshot("s", 3)) == ("snapshots", None)
    assert keys.family_of(keys.repository_generation("users")) == ("repository cache", None)
    assert keys.family_of(b"other-ns:ticks:{ES}:index") == ("other", None)
    assert keys.family_of("ns:mystery") == ("other", None)


def test_html_report_is_self_contained(conn, tmp_path):
    redtick.write_ticks(ticks_slice(50_000), "ES", conn=conn)
    set_alerts([{"user_id": "quant", "symbol": "ES", "target_price": 1.0, "condition": "above"}], conn=conn)
    redtick.write_ticks(ticks_slice(50_001).iloc[-1:].assign(seq=10**9), "ES", conn=conn)
    summary = pd.DataFrame({"figure": ["ticks written"], "value": ["50,001"]})
    path = reports.write_html_report(tmp_path / "sub" / "report.html", "ES", user_ids="quant", summary=summary, conn=conn)
    page = path.read_text()
    assert page.count('class="plotly-graph-div"') == 4
    assert page.count("<script src=") == 0  # plotly inlined, nothing fetched
    assert "ticks written" in page and "Fired" in page
    assert f"Memory ({'estimated' if conn.in_memory else 'measured'})" in page


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["above", "below", "crosses"]),
                          st.integers(min_value=0, max_value=40).map(lambda q: 1_630.0 + q / 4)), min_size=1, max_size=12))
def test_alert_labels_never_overlap_and_name_every_alert(alerts):
    """One label per target price, each naming all its alerts, spread at least 4% of the price range apart."""
    candles = pd.DataFrame({"close": [1_632.0, 1_638.0]},
                           index=pd.DatetimeIndex(["2013-09-03 18:00", "2013-09-03 18:01"], tz="UTC"))
    live = pd.DataFrame({"alert_id": [f"a{i}" for i in range(len(alerts))], "symbol": "ES",
                         "condition": [c for c, _ in alerts], "target_price": [p for _, p in alerts]})
    fired = pd.DataFrame(columns=["alert_id", "symbol", "condition", "target_price", "price", "fired_at"])
    labels = reports.alerts_figure("ES", live, fired, candles=candles).layout.annotations
    prices = sorted({p for _, p in alerts})
    assert [a.text.rsplit(" ", 1)[1] for a in labels] == [f"{p:,.2f}" for p in prices]
    for label, price in zip(labels, prices, strict=True):
        assert label.text.count("(live)") == sum(p == price for _, p in alerts)
    span = max(1_638.0, prices[-1]) - min(1_632.0, prices[0])
    positions = [a.y for a in labels]
    assert all(b - a >= 0.04 * span - 1e-9 for a, b in itertools.pairwise(positions))
    assert all(y >= p for y, p in zip(positions, prices, strict=True))  # moved up, never below its line
