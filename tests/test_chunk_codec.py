"""The sealed tick chunk format: every chunk comes back to the bit, whatever its values (no Redis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redtick.codec import (
    SEALED_HEADER_SIZE,
    SEALED_MAGIC,
    TICK_COLUMNS,
    TICK_DTYPE,
    is_sealed,
    seal_ticks,
    sealed_count,
    tick_count,
    unpack_columns,
    unpack_range,
    unpack_ticks,
)
from redtick.errors import InvalidData

INT64 = st.integers(-(2**63), 2**63 - 1)
EDGE_FLOATS = [0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324, 2.0**52, 2.0**53 + 2, 0.1, -0.01, 1e-8, 123456.789]


def on_grid(digits: int) -> st.SearchStrategy[float]:
    """Floats that are whole numbers of 10**-digits, as a feed would send them."""
    return st.integers(-(10**12), 10**12).map(lambda k: k / 10.0**digits)


FLOATS = st.one_of(
    st.sampled_from(EDGE_FLOATS),
    st.floats(allow_nan=False),  # off every grid, and the infinities
    st.integers(0, 8).flatmap(on_grid),
)


@st.composite
def columns(draw: st.DrawFn, values: st.SearchStrategy[float], n: int) -> list[float]:
    """A column that is either all one kind (on one grid: the compact encoding) or mixed (XOR'd bits)."""
    if draw(st.booleans()):
        digits = draw(st.integers(0, 8))
        return draw(st.lists(on_grid(digits), min_size=n, max_size=n))
    return draw(st.lists(values, min_size=n, max_size=n))


@st.composite
def chunks(draw: st.DrawFn, max_size: int = 200, times: st.SearchStrategy[int] = INT64) -> np.ndarray:
    """Sorted tick records: equal times, wide and narrow gaps, ids anywhere in int64, any floats, any side."""
    n = draw(st.integers(1, max_size))
    start = draw(times)
    gaps = draw(st.lists(st.one_of(st.just(0), st.integers(0, 300), st.integers(0, 2**40)), min_size=n, max_size=n))
    records = np.zeros(n, TICK_DTYPE)
    ts = np.cumsum(np.array(gaps, dtype=object)) + start  # exact in Python ints, then clipped to int64
    records["ts"] = np.clip(ts, -(2**63), 2**63 - 1).astype(np.int64)
    ids = draw(st.one_of(st.lists(INT64, min_size=n, max_size=n),
                         INT64.map(lambda first: [(first + i + 2**63) % 2**64 - 2**63 for i in range(n)])))
    records["id"] = np.array(ids, dtype=np.int64)
    records["price"] = draw(columns(FLOATS, n))
    records["volume"] = draw(columns(FLOATS, n))
    records["side"] = draw(st.lists(st.integers(-128, 127), min_size=n, max_size=n))
    return records[np.lexsort((records["id"], records["ts"]))]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks())
def test_a_sealed_chunk_comes_back_to_the_bit(records: np.ndarray) -> None:
    sealed = seal_ticks(records)
    assert same_bits(unpack_ticks(sealed), records)
    assert same_bits(unpack_ticks(memoryview(sealed)), records)  # a reply buffer decodes without a copy
    assert sealed[:8] == SEALED_MAGIC and is_sealed(sealed) and is_sealed(memoryview(sealed)[:8])
    # The last record, raw, ends the chunk: GETRANGE key -33 -1 reads it as from a raw chunk.
    assert sealed[-TICK_DTYPE.itemsize :] == records[-1:].tobytes()
    assert sealed_count(sealed[:SEALED_HEADER_SIZE]) == len(records)
    assert tick_count(sealed[:SEALED_HEADER_SIZE], len(sealed)) == len(records)
    assert seal_ticks(records) == sealed  # the same records always seal to the same bytes
    for name, values in unpack_columns(sealed).items():
        assert values.flags.c_contiguous and same_bits(values, np.ascontiguousarray(records[name]))


@st.composite
def walks(draw: st.DrawFn) -> np.ndarray:
    """Long chunks made by numpy from drawn shapes: random walks whose steps are small next to their
    span, so times, ids, prices and volumes are stored as deltas (of one sign or both) in every width,
    ids wrapping past the ends of int64."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    n = draw(st.integers(1_000, 20_000))

    def walk(start: int, low: int, high: int) -> np.ndarray:
        steps = rng.integers(low, high, n, dtype=np.int64, endpoint=True)
        steps[0] = 0
        return np.cumsum(steps) + np.int64(start)  # wraps around 2**64, as the codec must undo

    records = np.zeros(n, TICK_DTYPE)
    step = draw(st.sampled_from([1, 100, 60_000, 2**20, 2**40]))
    records["ts"] = walk(draw(st.integers(0, 2**50)), 0, step)
    spread = draw(st.sampled_from([1, 200, 40_000, 2**30, 2**62]))
    records["id"] = walk(draw(INT64), -spread if draw(st.booleans()) else 1, spread)
    digits = draw(st.integers(0, 4))
    for name in ("price", "volume"):
        ticks = draw(st.sampled_from([1, 3, 300, 70_000]))
        records[name] = walk(draw(st.integers(-(10**6), 10**6)), -ticks, ticks) / 10.0**digits
    records["side"] = rng.integers(-1, 2, n)
    return records[np.lexsort((records["id"], records["ts"]))]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walks())
def test_long_walks_come_back_to_the_bit(records: np.ndarray) -> None:
    sealed = seal_ticks(records)
    assert same_bits(unpack_ticks(sealed), records)
    assert sealed[-TICK_DTYPE.itemsize :] == records[-1:].tobytes()


@settings(max_examples=100, deadline=None)
@given(chunks(times=st.integers(0, 2**62)))
def test_a_raw_chunk_is_never_taken_for_a_sealed_one(records: np.ndarray) -> None:
    raw = records.tobytes()
    assert not is_sealed(raw)
    assert tick_count(raw[:SEALED_HEADER_SIZE], len(raw)) == len(records)
    assert same_bits(unpack_ticks(raw), records)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks(max_size=300, times=st.integers(0, 2**50)), st.data())
def test_a_range_over_raw_and_sealed_chunks_is_the_filter_of_their_records(records: np.ndarray, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, len(records) - 1)), max_size=5, unique=True)))
    parts = [p for p in np.split(records, cuts) if len(p)]
    # Each chunk as a reader may hold it: sealed bytes, raw bytes, or records already decoded (a clipped raw part).
    forms = [seal_ticks, lambda p: p.tobytes(), lambda p: p]
    blobs = [forms[data.draw(st.integers(0, 2))](p) for p in parts]
    bound = st.one_of(st.none(), st.integers(int(records["ts"][0]) - 5, int(records["ts"][-1]) + 5))
    start_ms, end_ms = data.draw(bound), data.draw(bound)
    wanted = data.draw(st.lists(st.sampled_from(TICK_COLUMNS), unique=True, min_size=1))
    keep = np.ones(len(records), bool)
    if start_ms is not None:
        keep &= records["ts"] >= start_ms
    if end_ms is not None:
        keep &= records["ts"] <= end_ms
    got = unpack_range(blobs, wanted, start_ms, end_ms)
    assert list(got) == wanted
    for name in wanted:
        assert same_bits(got[name], np.ascontiguousarray(records[name][keep]))
    for part, blob in zip(parts, blobs, strict=True):
        if isinstance(blob, bytes):
            decoded = unpack_columns(blob, wanted)
            assert all(same_bits(np.ascontiguousarray(decoded[name]), np.ascontiguousarray(part[name])) for name in wanted)


@pytest.mark.parametrize("step", [1, 100, 30_000, 2**30, 2**62])
def test_walks_down_and_up_in_each_width_come_back(step: int) -> None:
    # Steps of both signs, small next to the span: stored as zigzag deltas 1, 1, 2, 4 and 8 bytes wide.
    rng = np.random.default_rng(step)
    records = np.zeros(5_000, TICK_DTYPE)
    records["ts"] = np.arange(len(records)) * 250
    records["id"] = np.cumsum(rng.integers(-step, step, len(records), dtype=np.int64, endpoint=True))
    records["price"] = np.cumsum(rng.integers(-step, step, len(records), dtype=np.int64, endpoint=True) % 2**40) / 100
    records["volume"] = rng.integers(0, 2**53, len(records)) / 1e4
    sealed = seal_ticks(records)
    assert same_bits(unpack_ticks(sealed), records)


def test_many_chunks_of_a_walk_come_back_whole_in_a_tenth_of_the_bytes() -> None:
    rng = np.random.default_rng(7)
    records = np.zeros(240_000, TICK_DTYPE)
    records["ts"] = 1_700_000_000_000 + np.cumsum(rng.integers(0, 200, len(records)))
    records["id"] = np.arange(len(records))
    records["price"] = np.round(100 + np.cumsum(rng.integers(-3, 4, len(records))) * 0.25, 2)
    records["volume"] = rng.integers(1, 50, len(records)).astype(float)
    blobs = [seal_ticks(p) for p in np.split(records, 6)]
    got = unpack_range(blobs)
    assert all(same_bits(got[name], records[name].copy()) for name in TICK_COLUMNS)
    # The point of sealing: a tenth of the raw bytes or less on ticks like these.
    assert sum(map(len, blobs)) < records.nbytes / 10


def test_nan_payloads_and_infinities_come_back_too() -> None:
    records = np.zeros(4, TICK_DTYPE)
    records["ts"] = [1, 2, 3, 4]
    weird = np.array([0x7FF8000000000001, 0xFFF0000000000000, 0x7FF0000000000000, 0x8000000000000000], np.uint64)
    records["price"] = weird.view(np.float64)
    assert same_bits(unpack_ticks(seal_ticks(records)), records)


def test_an_empty_chunk_cannot_be_sealed() -> None:
    # A sealed chunk ends with its last record, and an empty chunk is deleted, never stored.
    with pytest.raises(InvalidData, match="empty tick chunk"):
        seal_ticks(np.zeros(0, TICK_DTYPE))
    assert len(unpack_ticks(b"")) == 0  # an empty raw blob (a key that vanished) is no ticks


def test_a_damaged_sealed_chunk_says_so() -> None:
    records = np.zeros(10, TICK_DTYPE)
    records["ts"] = np.arange(10)
    sealed = seal_ticks(records)
    for damaged in (sealed[:-1], sealed[:30], sealed + b"\0"):
        with pytest.raises(InvalidData, match="truncated"):
            unpack_ticks(damaged)
    newer = sealed[:18] + b"\x09" + sealed[19:]  # a codec byte this version does not know
    with pytest.raises(InvalidData, match="newer redtick"):
        unpack_ticks(newer)


def test_an_unknown_column_names_the_columns() -> None:
    records = np.zeros(1, TICK_DTYPE)
    with pytest.raises(InvalidData, match="unknown tick column 'bid'; tick columns are ts, id, price, volume, side"):
        unpack_columns(seal_ticks(records), ["price", "bid"])
