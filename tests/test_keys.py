"""Key building and validation: every key stays inside the namespace, every bad part raises first."""

import unicodedata

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from redtick.errors import InvalidKey
from redtick.keys import (
    KEY_FAMILIES,
    SYMBOL_RESERVED,
    KeyInfo,
    KeySchema,
    glob_escape,
    validate_identity,
    validate_symbol,
    validate_user_id,
)

keys = KeySchema("ns")
REAL_SYMBOLS = ["BTCUSDT", "btcusdt", "BRK.B", "ES=F", "^GSPC", "EUR/USD", "BINANCE:BTCUSDT", "ES1!", "6E",
                "BTC-PERP", "NIFTY50.NS", "$SPX", "#BTC", "a" * 64, "币安人生USDT", "'quoted'", "...", "100%"]


def follows_the_rule(symbol: str) -> bool:
    """The symbol rule restated from the issue, independently of keys.py's regex."""
    return (1 <= len(symbol) <= 64 and unicodedata.is_normalized("NFC", symbol) and symbol not in (".", "..")
            and all(ch.isprintable() and not ch.isspace() and ch not in "{}*?[]\\" for ch in symbol))


def test_symbol_keys_carry_a_hash_tag():
    assert keys.tick_index("BTCUSDT") == "ns:ticks:{BTCUSDT}:index"
    assert keys.candle_chunk("ES", "1m", 1_000) == "ns:candles:{ES}:v2:1m:chunk:1000"
    assert keys.market("price", "BTC/USDT") == "ns:market:price:{BTC/USDT}"
    assert keys.tick_index("BINANCE:BTCUSDT") == "ns:ticks:{BINANCE:BTCUSDT}:index"


@pytest.mark.parametrize("symbol", REAL_SYMBOLS)
def test_real_symbols_keep_their_case_and_spelling(symbol):
    assert validate_symbol(symbol) == symbol
    key = keys.tick_chunk(symbol, 0)
    assert key == "ns:ticks:{" + symbol + "}:chunk:0"
    assert keys.family_of(key) == ("series ticks", symbol)
    assert keys.family_of(keys.market("price", symbol)) == ("market", symbol)


def test_every_real_symbol_has_keys_of_its_own():
    built = [keys.tick_index(s) for s in REAL_SYMBOLS]
    assert len(set(built)) == len(REAL_SYMBOLS)  # btcusdt and BTCUSDT are two series


@pytest.mark.parametrize(
    ("symbol", "message"),
    [("BTC USDT", "has a space"), ("", "is empty"), ("A" * 65, "is 65 characters long"),
     ("BTC}*", "has '}'"), ("{BTC", "has '{'"), ("BTC*", "has '[*]'"), ("B?", "has '[?]'"), ("B[1]", "has '\\['"),
     ("B\\1", "has '\\\\\\\\'"), ("BTC\nUSDT", "whitespace"), ("BTC\u00a0USDT", "whitespace"),
     ("BTC\x00", "control character"), ("BTC\u202e", "control character"), ("e\u0301", "NFC"),
     (".", "dot-segment"), ("..", "dot-segment"),
     (None, "NoneType"), (5, "is an int"), (b"BTC", "is a bytes")],
)
def test_bad_symbols_say_what_is_wrong(symbol, message):
    with pytest.raises(InvalidKey, match=message):
        validate_symbol(symbol)


def test_message_shape_matches_the_style_guide():
    with pytest.raises(InvalidKey) as info:
        validate_symbol("BTC USDT")
    assert str(info.value) == (
        "symbol 'BTC USDT' has a space; symbols are up to 64 printable characters except whitespace and { } * ? [ ] \\"
    )


@given(st.text(max_size=80) | st.text(st.sampled_from("aZ9.:/{}*?[]\\ \t\u0301e\x00"), max_size=70))
@example(".")
@example("...")
@example("A" * 64)
@example("A" * 65)
def test_a_symbol_is_accepted_exactly_when_it_follows_the_rule(symbol):
    try:
        validate_symbol(symbol)
    except InvalidKey:
        assert not follows_the_rule(symbol)
        return
    assert follows_the_rule(symbol)
    # Its key holds it whole as the hash tag: the cluster slot is the symbol's alone.
    key = keys.tick_index(symbol)
    assert key[key.index("{") + 1 : key.index("}")] == symbol


@given(st.text(max_size=80))
def test_any_string_gives_a_namespaced_key_or_raises(part):
    for build in (keys.tick_index, lambda p: keys.key("cache", p), lambda p: keys.market("price", p)):
        try:
            key = build(part)
        except InvalidKey:
            continue
        assert key.startswith("ns:")
        assert part in key
        assert key.count("{") <= 1 and key.count("}") <= 1
        assert not any(c in key for c in "*?[]\\ \n\r\t")


@pytest.mark.parametrize(("user_id", "stored"), [("u1", "u1"), ("user:123", "user:123"), (123, "123"), (0, "0"),
                                                 (-7, "-7"), (np.int64(42), "42"), ("a.b_c-d@e", "a.b_c-d@e")])
def test_user_ids_as_platforms_write_them(user_id, stored):
    assert validate_user_id(user_id) == stored
    assert keys.user_sessions(user_id) == "ns:user:{" + stored + "}:sessions"
    assert validate_identity(user_id) == stored


@pytest.mark.parametrize(("user_id", "message"), [(True, "is a bool"), (False, "is a bool"), (1.0, "is a float"),
                                                  ("a b", "has a space"), ("u{1}", "outside"), ("u*", "outside"),
                                                  ("u/1", "outside"), (10**64, "65 characters"), (None, "NoneType")])
def test_bad_user_ids_say_what_is_wrong(user_id, message):
    with pytest.raises(InvalidKey, match=message):
        validate_user_id(user_id)


@given(st.text(max_size=80))
def test_user_ids_are_validated(user_id):
    try:
        assert validate_user_id(user_id) == user_id
    except InvalidKey:
        return
    assert 1 <= len(user_id) <= 64
    assert not any(c in user_id for c in "{}*?[]\\ ")


@given(st.text(max_size=40))
def test_a_pattern_starts_with_a_literal_namespaced_head(tail):
    try:
        pattern = keys.pattern("http", tail=tail)
    except InvalidKey:
        return
    # Redis glob matching needs a key to start with a literal head, so nothing outside ns:http: matches.
    assert pattern.startswith("ns:http:")
    rest = pattern[len("ns:http:"):]
    for i, ch in enumerate(rest):
        if ch in "[]":
            assert rest[i - 1] == "\\"


@given(st.text(max_size=40))
def test_glob_escape_leaves_no_glob_character_bare(text):
    escaped = glob_escape(text)
    i = 0
    while i < len(escaped):  # read it as Redis's matcher does: a backslash makes the next character literal
        if escaped[i] == "\\":
            assert i + 1 < len(escaped)
            i += 2
            continue
        assert escaped[i] not in "*?[]", escaped
        i += 1
    assert escaped.replace("\\", "") == text.replace("\\", "")
    assert len(escaped) == len(text) + sum(text.count(c) for c in SYMBOL_RESERVED if c not in "{}")


def test_pattern_heads_are_literal():
    assert keys.pattern("repo", "users") == "ns:repo:users:*"
    with pytest.raises(InvalidKey):
        keys.pattern("repo*")


def test_rate_limit_logs_and_spans_never_collide():
    assert keys.rate_limit("api", 42) == "ns:ratelimit:api:{42}"
    assert keys.rate_limit_span("api", "user:42") == "ns:ratelimit:api:{user:42}:span"
    assert keys.family_of(keys.rate_limit_span("api", 1)) == ("rate limits", None)
    with pytest.raises(InvalidKey):
        keys.rate_limit("api", True)


def every_key(schema: KeySchema) -> dict[str, str]:
    """One key of every builder, by what it is."""
    return {
        "tick index": schema.tick_index("ES"), "tick chunk": schema.tick_chunk("ES", 0),
        "candle index": schema.candle_index("ES", "1m"), "candle chunk": schema.candle_chunk("ES", "1m", 0),
        "legacy candle chunk": schema.legacy_candle_chunk("ES", "1m", 0), "current price": schema.current_price("ES"),
        "series symbols": schema.series_symbols(), "market price": schema.market("price", "ES"),
        "market symbols": schema.market_symbols(), "session": schema.session("s1"),
        "user sessions": schema.user_sessions("u1"), "session expiry": schema.session_expiry(),
        "preferences": schema.user_preferences("u1"), "subscriptions": schema.user_subscriptions("u1"),
        "rate limit": schema.rate_limit("api", "u1"), "rate limit span": schema.rate_limit_span("api", "u1"),
        "alert index": schema.alert_index("ES", "above"), "alert data": schema.alert_data("ES"),
        "alert log": schema.alert_log("ES", "u1"), "alert stream": schema.alert_stream("ES"),
        "alert streams": schema.alert_stream_symbols(), "user alerts": schema.user_alerts("u1"),
        "user alert symbols": schema.user_alert_symbols("u1"), "snapshot": schema.snapshot("s"),
        "snapshot part": schema.snapshot("s", 3), "response": schema.response("p", "d1"),
        "repository read": schema.repository("users", "get_by_id", "0", "d1"),
        "repository generation": schema.repository_generation("users"), "cache value": schema.key("things", "a"),
    }


def test_describe_is_the_one_answer_for_every_key():
    """Family, owning cache, metric labels and symbol of every key the schema builds, in one table."""
    expected = {
        "tick index": ("ticks", "series ticks", "price", "ticks", "ES"),
        "tick chunk": ("ticks", "series ticks", "price", "ticks", "ES"),
        "candle index": ("candles", "candles", "price", "candles", "ES"),
        "candle chunk": ("candles", "candles", "price", "candles", "ES"),
        "legacy candle chunk": ("candles", "candles", "price", "candles", "ES"),
        "current price": ("price", "series ticks", "price", "quote", "ES"),
        "series symbols": ("series", "series ticks", "price", "symbols", None),
        "market price": ("market", "market", "market_data", "price", "ES"),
        "market symbols": ("market", "market", "market_data", "symbols", None),
        "session": ("session", "sessions", "user_session", "session", None),
        "user sessions": ("user", "sessions", "user_session", "session", None),
        "session expiry": ("sessions", "sessions", "user_session", "session", None),
        "preferences": ("user", "sessions", "user_session", "preferences", None),
        "subscriptions": ("user", "sessions", "user_session", "subscriptions", None),
        # The rate limiter owns its logs, whoever calls it (the session cache is one caller of many).
        "rate limit": ("ratelimit", "rate limits", "rate_limit", "api", None),
        "rate limit span": ("ratelimit", "rate limits", "rate_limit", "api", None),
        # Alerts are PriceAlerts' keys, per symbol and per user alike.
        "alert index": ("alerts", "alerts", "alerts", "alert", "ES"),
        "alert data": ("alerts", "alerts", "alerts", "alert", "ES"),
        "alert log": ("alerts", "alerts", "alerts", "alert", "ES"),
        "alert stream": ("alerts", "alerts", "alerts", "alert", "ES"),
        "alert streams": ("alerts", "alerts", "alerts", "alert", None),
        "user alerts": ("user", "alerts", "alerts", "alert", None),
        "user alert symbols": ("user", "alerts", "alerts", "alert", None),
        "snapshot": ("snapshot", "snapshots", "snapshot", "snapshot", None),
        "snapshot part": ("snapshot", "snapshots", "snapshot", "snapshot", None),
        "response": ("http", "HTTP cache", "http_response", "p", None),
        "repository read": ("repo", "repository cache", "repository", "users", None),
        "repository generation": ("repogen", "repository cache", "repository", "users", None),
        "cache value": ("things", "other", "things", "things", None),  # a BaseCache("things")
    }
    described = {what: keys.describe(key) for what, key in every_key(keys).items()}
    assert {what: (i.head, i.family, i.cache, i.metric_family, i.symbol) for what, i in described.items()} == expected
    for key in every_key(keys).values():
        info = keys.describe(key)
        assert info.family in KEY_FAMILIES
        assert keys.describe(key.encode()) == info
        assert keys.family_of(key) == (info.family, info.symbol)
        assert keys.metric_labels(key) == info.metric_labels == (info.cache, info.metric_family)


def test_describe_reads_tags_and_stays_inside_its_namespace():
    assert keys.describe(keys.snapshot("daily", 2)).tag == "daily"
    assert keys.describe(keys.user_preferences("user:42")).tag == "user:42"
    outside = keys.describe(KeySchema("other").tick_index("ES"))
    assert outside == KeyInfo("", "other", "other", "other", None, None)
    assert keys.describe("nsx:ticks:{ES}:index").family == "other"  # shares the namespace's first letters
    with pytest.raises(AttributeError):
        outside.family = "market"


def test_namespace_is_validated():
    with pytest.raises(InvalidKey):
        KeySchema("Has Space")
