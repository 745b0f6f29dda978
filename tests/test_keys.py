"""Key building and validation: every key stays inside the namespace, every bad part raises first."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redtick.errors import InvalidKey
from redtick.keys import KeySchema, validate_symbol, validate_user_id

keys = KeySchema("ns")


def test_symbol_keys_carry_a_hash_tag():
    assert keys.tick_index("BTCUSDT") == "ns:ticks:{BTCUSDT}:index"
    assert keys.candle_chunk("ES", "1m", 1_000) == "ns:candles:{ES}:1m:chunk:1000"
    assert keys.market("price", "BTC/USDT") == "ns:market:price:{BTC/USDT}"


@pytest.mark.parametrize(
    ("symbol", "message"),
    [("BTC USDT", "has a space"), ("", "is empty"), ("btcusdt", "A-Z"), ("A" * 33, "1-32"),
     ("BTC}*", "outside"), ("BTC\nUSDT", "whitespace"), (None, "NoneType")],
)
def test_bad_symbols_say_what_is_wrong(symbol, message):
    with pytest.raises(InvalidKey, match=message):
        validate_symbol(symbol)


def test_message_shape_matches_the_style_guide():
    with pytest.raises(InvalidKey) as info:
        validate_symbol("BTC USDT")
    assert str(info.value) == "symbol 'BTC USDT' has a space; symbols are 1-32 of A-Z 0-9 . _ - /"


@given(st.text(max_size=80))
def test_any_string_gives_a_namespaced_key_or_raises(part):
    for build in (keys.tick_index, lambda p: keys.key("cache", p), lambda p: keys.market("price", p)):
        try:
            key = build(part)
        except InvalidKey:
            continue
        assert key.startswith("ns:")
        assert part in key
        assert not any(c in key.replace("{", "").replace("}", "") for c in "*?[]\\ \n\r\t")


@given(st.text(max_size=80))
def test_user_ids_are_validated(user_id):
    try:
        assert validate_user_id(user_id) == user_id
    except InvalidKey:
        return
    assert 1 <= len(user_id) <= 64


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


def test_namespace_is_validated():
    with pytest.raises(InvalidKey):
        KeySchema("Has Space")
