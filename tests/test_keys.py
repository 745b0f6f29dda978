"""Key building and validation: every key stays inside the namespace, every bad part raises first."""

import unicodedata

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from redtick.errors import InvalidKey
from redtick.keys import (
    SYMBOL_RESERVED,
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


def test_namespace_is_validated():
    with pytest.raises(InvalidKey):
        KeySchema("Has Space")
