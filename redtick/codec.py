"""The one place bytes are shaped: JSON values, Fernet encryption, packed tick and candle records."""

from __future__ import annotations

import decimal
import enum
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from cryptography.fernet import Fernet, InvalidToken

from redtick.errors import ConfigurationError, InvalidData

__all__ = [
    "CANDLES_SEALED_MAGIC",
    "CANDLE_COLUMNS",
    "CANDLE_DTYPE",
    "CANDLE_DTYPE_V1",
    "SEALED_HEADER_SIZE",
    "SEALED_MAGIC",
    "TICK_COLUMNS",
    "TICK_DTYPE",
    "TickChunk",
    "ValueCodec",
    "candle_columns",
    "candle_raw_size",
    "candles_sealed",
    "dumps",
    "is_sealed",
    "loads",
    "make_fernet",
    "seal_candles",
    "seal_ticks",
    "sealed_candles_size",
    "sealed_count",
    "tick_count",
    "unpack_candles",
    "unpack_columns",
    "unpack_range",
    "unpack_ticks",
    "whole_candles",
    "widen_v1_candles",
]

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, uuid.UUID | enum.Enum):
        return str(value.value if isinstance(value, enum.Enum) else value)
    if hasattr(value, "model_dump"):  # pydantic models
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):  # pandas Timestamp and friends
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value`` (dicts, lists, numbers, str, datetimes, numpy, dataclasses).

    Raises InvalidData for a value JSON cannot carry.

    Examples
    --------
    >>> dumps({"price": 50000.0, "side": "buy"})
    b'{"price":50000.0,"side":"buy"}'
    """
    try:
        return orjson.dumps(value, default=_default, option=_JSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidData(f"value cannot be stored as JSON: {exc}") from None


def loads(data: bytes | str | None) -> Any:
    """The value in JSON ``data``; ``None`` stays ``None``. Raises InvalidData on malformed JSON."""
    if data is None:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidData(f"stored value is not valid JSON: {exc}") from None


def make_fernet(key: str | bytes | None) -> Fernet:
    """A ``cryptography`` Fernet for ``key`` (32 url-safe base64 bytes); ConfigurationError if malformed.

    Examples
    --------
    >>> make_fernet("not-a-key")
    Traceback (most recent call last):
    ...
    redtick.errors.ConfigurationError: encryption key is not a Fernet key (32 url-safe base64 bytes)
    """
    if key is None:
        raise ConfigurationError(
            "encryption needs a key: set REDTICK_ENCRYPTION_KEY or pass encryption_key="
        )
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise ConfigurationError("encryption key is not a Fernet key (32 url-safe base64 bytes)") from None


class ValueCodec:
    """How a cache's values become stored bytes and back: JSON, Fernet-encrypted at rest when given a Fernet.

    Every cache that stores values holds one, so JSON, encryption and the error for a value
    that will not decrypt are written here once.

    Parameters
    ----------
    fernet : Fernet, optional
        Encrypts every value stored; without one, values are plain JSON.
    label : str
        What the values are, for the error a value that will not decrypt raises.

    Examples
    --------
    >>> plain = ValueCodec()
    >>> plain.encode({"price": 1.5}), plain.decode(b'{"price":1.5}'), plain.decode(None)
    (b'{"price":1.5}', {'price': 1.5}, None)
    >>> secret = ValueCodec.for_key(b"x3yx3G0RK9YXSmh-4s1-nj5N7nQJ0X4q4mAakJrmBX8=")
    >>> stored = secret.encode({"email": "trader@example.com"})
    >>> b"trader" in stored, secret.decode(stored)
    (False, {'email': 'trader@example.com'})
    >>> ValueCodec.for_key(b"qbHWNCBhLdVZEEF1nUxMw0O2WAR5fcdZt6Ij0WOAmsk=").decode(stored)
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: stored value cannot be decrypted with this key
    """

    __slots__ = ("fernet", "label")

    def __init__(self, fernet: Fernet | None = None, *, label: str = "stored value"):
        self.fernet = fernet
        self.label = label

    @classmethod
    def for_key(cls, key: str | bytes | None, *, label: str = "stored value") -> ValueCodec:
        """A codec that encrypts with ``key``, or plain JSON when ``key`` is None; ConfigurationError if malformed."""
        return cls(None if key is None else make_fernet(key), label=label)

    def __repr__(self) -> str:
        return f"ValueCodec(encrypted={self.encrypted})"

    @property
    def encrypted(self) -> bool:
        """True if values are encrypted at rest."""
        return self.fernet is not None

    def encode(self, value: Any) -> bytes:
        """The bytes stored for ``value``: its JSON, encrypted when the codec has a Fernet."""
        data = dumps(value)
        return data if self.fernet is None else self.fernet.encrypt(data)

    def decode(self, raw: bytes | str | None) -> Any:
        """The value stored as ``raw``; None stays None. InvalidData if it is not JSON or will not decrypt."""
        if raw is None:
            return None
        if self.fernet is None:
            return loads(raw)
        try:
            return loads(self.fernet.decrypt(raw))
        except InvalidToken:
            raise InvalidData(f"{self.label} cannot be decrypted with this key") from None


# Packed records. Little-endian, fixed width, so a whole reply decodes with one numpy.frombuffer.
TICK_DTYPE = np.dtype(
    [("ts", "<i8"), ("id", "<i8"), ("price", "<f8"), ("volume", "<f8"), ("side", "i1")]
)
CANDLE_DTYPE = np.dtype(
    [
        ("first_ts", "<i8"),
        ("first_id", "<i8"),
        ("last_ts", "<i8"),
        ("last_id", "<i8"),
        ("count", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("volume", "<f8"),
        ("notional", "<f8"),
    ]
)
"""One candle slot, 88 bytes. ``notional`` is the sum of price x volume over the candle's ticks, summed
like ``volume``, so ``notional / volume`` is the candle's exact VWAP; NaN where unknown (an imported bar
that did not give it). Slots of another width (the 80-byte ones before ``notional``) live under other
keys (:data:`redtick.keys.CANDLE_LAYOUT`), so they are never read with this dtype."""

_V1_FIELDS = tuple(name for name in CANDLE_DTYPE.names or () if name != "notional")
CANDLE_DTYPE_V1 = np.dtype([(name, CANDLE_DTYPE[name]) for name in _V1_FIELDS])
"""One candle slot of the layout before ``notional``, 80 bytes: first_ts first_id last_ts last_id count open high
low close volume. Only :meth:`redtick.series.SeriesLayout.rebuild_candles_plan` reads it, to upgrade a store."""


def widen_v1_candles(blob: bytes | None) -> np.ndarray:
    """:data:`CANDLE_DTYPE` records of packed 80-byte slots of the layout before ``notional``.

    Their notional is unknown (NaN), except where the volume is 0 (empty slots too), where it is 0.

    Examples
    --------
    >>> old = np.zeros(2, CANDLE_DTYPE_V1)
    >>> old["count"], old["volume"], old["close"] = [-1, 0], [4.0, 0.0], [10.5, 0.0]
    >>> wide = widen_v1_candles(old.tobytes())
    >>> wide["close"].tolist(), wide["notional"].tolist()
    ([10.5, 0.0], [nan, 0.0])
    """
    old = np.frombuffer(blob or b"", dtype=CANDLE_DTYPE_V1)
    out = np.zeros(len(old), dtype=CANDLE_DTYPE)
    for name in _V1_FIELDS:
        out[name] = old[name]
    out["notional"] = np.where(out["volume"] == 0, 0.0, np.nan)
    return out


# -- sealed tick chunks ------------------------------------------------------------------------------
SEALED_MAGIC = b"RTZ\x01\x00\x00\x00\xff"
"""First 8 bytes of a sealed (compressed) tick chunk. As a little-endian int64 it is negative, which no
raw chunk's first tick time can be (ticks are 1970-2200), so the two formats never mix up."""
_SEALED_HEADER = np.dtype([("magic", "S8"), ("count", "<u4"), ("body", "<u4"), ("price_scale", "i1"),
                           ("volume_scale", "i1"), ("codec", "u1"), ("reserved", "u1")])
SEALED_HEADER_SIZE = _SEALED_HEADER.itemsize  # 20
# One entry per column, right after the header: how the column is stored and its compressed size,
# so a reader decompresses only the columns it wants.
_COLUMN_ENTRY = np.dtype([("mode", "u1"), ("width", "u1"), ("base", "<i8"), ("size", "<u4")])
TICK_COLUMNS: tuple[str, ...] = tuple(TICK_DTYPE.fields or ())
"""The columns of a tick record, in stored order: ts, id, price, volume, side."""
_DIRECTORY_SIZE = _COLUMN_ENTRY.itemsize * len(TICK_COLUMNS)
_TICK_SIZE = TICK_DTYPE.itemsize

# How a column's stored integers give back its values (each column says which, in its directory entry;
# _encode_integers weighs offsets against deltas).
_OFFSET = 0  # value = base + stored
_DELTA = 1  # value = base + running sum of stored (a column that never decreases: times)
_ZIGZAG = 2  # value = base + running sum of the zigzag-decoded stored (deltas of either sign)
_XOR = 3  # float bits = running XOR of stored (floats on no decimal grid)
_PLAIN = 4  # the bytes themselves (side)

# Codecs by the header's codec byte, each column a frame of its own. LZ4 (pyarrow's: no new dependency)
# is the one written: on 1M synthetic ticks in hourly chunks it takes 4.1 bytes a tick and the columns
# of a frame (ts, price, volume) decode in 6 ms, where zstd level 1 takes 2.8 bytes and 14 ms: bytes
# far under the memory target, and reads are where researchers wait (bench/bench_chunk_codec.py).
_CODECS = {1: pa.Codec("zstd", compression_level=1), 2: pa.Codec("lz4")}
_WRITTEN_CODEC = 2
_WIDTHS = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))
_MAX_SCALE = 8
_RUNNING_SUM_BYTES = 1.0  # per tick: undoing deltas (~2.5 ns a tick) costs about what moving a byte does


def _decimal_scale(values: np.ndarray) -> tuple[int, np.ndarray | None]:
    """(d, the values times 10**d as int64) for the smallest d <= 8 that makes every value a whole
    number exactly, or (-1, None) when none does."""
    largest = float(np.abs(values).max(initial=0.0)) if np.isfinite(values).all() else math.inf
    for d in range(_MAX_SCALE + 1):
        if largest * 10.0**d >= 2.0**52:  # past where every whole float is exact; larger d only grows it
            break
        whole = np.round(values * 10.0**d).astype(np.int64)
        # Decoded as the decoder will, compared bit for bit: -0.0 must not come back as 0.0.
        if np.array_equal((whole / 10.0**d).view(np.int64), values.view(np.int64)):
            return d, whole
    return -1, None


def _narrowest(stored: np.ndarray) -> np.ndarray:
    """``stored`` (uint64) in the narrowest unsigned width that holds its largest value."""
    top = int(stored.max(initial=0))
    width = next(w for w in _WIDTHS if top <= np.iinfo(w).max)
    return stored.astype(width)


def _encode_integers(values: np.ndarray, codec: pa.Codec) -> tuple[int, int, np.ndarray, bytes]:
    """(mode, base, stored, compressed) for an int64 column: its offsets from its minimum, or its
    deltas from the first value, whichever is cheaper to keep and to read.

    Deltas are smaller (times 100 ms apart take a byte each, and compress to almost nothing) but a
    reader must undo them with a running sum, which costs about what moving
    :data:`_RUNNING_SUM_BYTES` more bytes per tick out of Redis does; so offsets win unless deltas
    compress smaller by more than that. Differences wrap around 2**64 and the decoder's sums wrap
    back, so any int64 comes back.
    """
    base = values.min()  # never empty: seal_ticks refuses an empty chunk
    offsets = _narrowest((values - base).view(np.uint64))
    packed = codec.compress(offsets, asbytes=True)
    deltas = np.diff(values, prepend=values[:1])
    if (deltas >= 0).all():
        mode, stored = _DELTA, _narrowest(deltas.view(np.uint64))
    else:
        mode, stored = _ZIGZAG, _narrowest(((deltas << 1) ^ (deltas >> 63)).view(np.uint64))
    packed_deltas = codec.compress(stored, asbytes=True)
    if len(packed) <= len(packed_deltas) + _RUNNING_SUM_BYTES * len(values):
        return _OFFSET, int(base), offsets, packed
    return mode, int(values[0]), stored, packed_deltas


def _encode_values(column: np.ndarray, codec: pa.Codec) -> tuple[int, int, int, np.ndarray, bytes]:
    """(decimal scale or -1, mode, base, stored, compressed) of one int64 or float64 column."""
    if column.dtype.kind == "i":
        return (0, *_encode_integers(column, codec))
    scale, whole = _decimal_scale(column)
    if whole is None:
        bits = column.view(np.int64)
        stored = _narrowest((bits ^ np.r_[np.int64(0), bits[:-1]]).view(np.uint64))
        return -1, _XOR, 0, stored, codec.compress(stored, asbytes=True)
    return (scale, *_encode_integers(whole, codec))


def _encode_column(name: str, column: np.ndarray, codec: pa.Codec) -> tuple[int, int, int, np.ndarray, bytes]:
    """(decimal scale or -1, mode, base, stored, compressed) of one column of tick records."""
    if name == "side":
        return 0, _PLAIN, 0, column.view(np.uint8), codec.compress(column.view(np.uint8), asbytes=True)
    return _encode_values(column, codec)


def seal_ticks(records: np.ndarray) -> bytes:
    """A tick chunk's records (:data:`TICK_DTYPE`, sorted by time and id) in the sealed format.

    Column by column, each in the narrowest of 1, 2, 4 or 8 bytes per tick and compressed on its
    own (LZ4), so a reader decodes only the columns it wants, without transposing anything: times
    and ids as offsets from their minimum or as deltas from the previous tick, whichever is cheaper
    to keep and to read; prices and volumes the same, as whole numbers on the smallest decimal grid
    that holds them exactly (else the XOR of their float bits with the previous value's); side as
    bytes. A header (:data:`SEALED_MAGIC`, count, sizes, scales) and a directory of the columns
    (how each is stored, its base, its compressed size) come first and the last record, raw, last,
    so the chunk's end reads as a raw chunk's does. Lossless: every int64 and every float bit
    pattern comes back (see :func:`unpack_ticks`).

    Raises
    ------
    InvalidData
        If ``records`` is empty: a sealed chunk ends with its last record, and an empty chunk is
        deleted, never stored.

    Examples
    --------
    >>> ticks = np.zeros(3, TICK_DTYPE)
    >>> ticks["ts"], ticks["id"], ticks["price"], ticks["volume"] = [1, 1, 2], [7, 8, 9], [1.25, 1.5, -0.75], [1, 2, 3]
    >>> sealed = seal_ticks(ticks)
    >>> sealed[:8] == SEALED_MAGIC, unpack_ticks(sealed).tobytes() == ticks.tobytes()
    (True, True)
    >>> sealed[-33:] == ticks[-1:].tobytes()
    True
    """
    records = np.ascontiguousarray(records, dtype=TICK_DTYPE)
    if not len(records):
        raise InvalidData("cannot seal an empty tick chunk: a sealed chunk holds at least one tick")
    codec = _CODECS[_WRITTEN_CODEC]
    directory = np.zeros(len(TICK_COLUMNS), _COLUMN_ENTRY)
    scales, frames = {}, []
    for i, name in enumerate(TICK_COLUMNS):
        scales[name], mode, base, stored, frame = _encode_column(name, np.ascontiguousarray(records[name]), codec)
        frames.append(frame)
        directory[i] = (mode, stored.itemsize, base, len(frame))
    body = directory.tobytes() + b"".join(frames)
    header = np.zeros(1, _SEALED_HEADER)
    header[0] = (SEALED_MAGIC, len(records), len(body), scales["price"], scales["volume"], _WRITTEN_CODEC, 0)
    return header.tobytes() + body + records[-1:].tobytes()


def is_sealed(blob: bytes | memoryview) -> bool:
    """True if ``blob`` (a whole chunk, or at least its first 8 bytes) is a sealed tick chunk."""
    return bytes(blob[:8]) == SEALED_MAGIC


def sealed_count(header: bytes) -> int:
    """The number of ticks a sealed chunk holds, from its first :data:`SEALED_HEADER_SIZE` bytes."""
    return int(np.frombuffer(header[:SEALED_HEADER_SIZE], _SEALED_HEADER)[0]["count"])


def tick_count(prefix: bytes, length: int) -> int:
    """Ticks in a chunk of ``length`` bytes whose first bytes are ``prefix`` (raw or sealed)."""
    return sealed_count(prefix) if is_sealed(prefix) else length // _TICK_SIZE


def _wanted(columns: Iterable[str] | None) -> tuple[str, ...]:
    if columns is None:
        return TICK_COLUMNS
    wanted = tuple(columns)
    unknown = [c for c in wanted if c not in TICK_COLUMNS]
    if unknown:
        raise InvalidData(f"unknown tick column {unknown[0]!r}; tick columns are {', '.join(TICK_COLUMNS)}")
    return wanted


class _Sealed:
    """A sealed chunk's header and column directory, read once, its length checked against them."""

    __slots__ = ("codec", "count", "directory", "ends", "scales", "view")

    def __init__(self, blob: bytes | memoryview):
        if len(blob) < SEALED_HEADER_SIZE + _DIRECTORY_SIZE + _TICK_SIZE:
            raise InvalidData(f"sealed tick chunk of {len(blob)} bytes is shorter than its header: truncated")
        header = np.frombuffer(blob, _SEALED_HEADER, count=1)[0]
        directory = np.frombuffer(blob, _COLUMN_ENTRY, count=len(TICK_COLUMNS), offset=SEALED_HEADER_SIZE)
        expected = SEALED_HEADER_SIZE + int(header["body"]) + _TICK_SIZE
        sizes_add_up = int(directory["size"].sum()) + _DIRECTORY_SIZE == int(header["body"])
        if int(header["codec"]) not in _CODECS or expected != len(blob) or not sizes_add_up:
            raise InvalidData(f"sealed tick chunk of {len(blob)} bytes (codec {int(header['codec'])}) does not match "
                              f"its header ({expected} bytes, codec 1 or 2): truncated, or written by a newer redtick")
        self.count = int(header["count"])
        self.codec = _CODECS[int(header["codec"])]
        self.directory = directory
        self.ends = SEALED_HEADER_SIZE + _DIRECTORY_SIZE + np.cumsum(directory["size"], dtype=np.int64)
        self.scales = {"price": int(header["price_scale"]), "volume": int(header["volume_scale"])}
        self.view = memoryview(blob)

    def decode(self, name: str, out: np.ndarray) -> None:
        """Decode column ``name`` into ``out``: contiguous, of the column's dtype, one slot per tick."""
        i = TICK_COLUMNS.index(name)
        mode, width, base, size = (int(v) for v in self.directory[i].tolist())
        frame = self.view[int(self.ends[i]) - size : int(self.ends[i])]
        _decode_values(self.codec.decompress(frame, decompressed_size=self.count * width), mode, width, base,
                       self.scales.get(name, 0), out)


def _decode_values(data: Any, mode: int, width: int, base: int, scale: int, out: np.ndarray) -> None:
    """Decode one column's decompressed ``data`` (``width`` bytes a value, stored as ``mode`` says) into ``out``."""
    stored = np.frombuffer(data, _WIDTHS[width.bit_length() - 1])
    if mode == _PLAIN:
        out[:] = stored.view(out.dtype)
    elif mode == _XOR:
        np.bitwise_xor.accumulate(stored.astype(np.uint64), out=out.view(np.uint64))
    elif out.dtype.kind == "f" and mode == _OFFSET:
        # Whole numbers below 2**52 (the encoder's bound), so exact in float64 and so is their sum
        # with the base: one pass, then the division the encoder checked, bit for bit.
        np.add(stored, float(base), out=out, dtype=np.float64)
        if scale:
            out /= 10.0**scale
    elif out.dtype.kind == "f":  # deltas on a decimal grid: summed as integers, divided back as encoded
        whole = np.empty(len(out), np.int64)
        _decode_integers(mode, base, stored, whole)
        np.divide(whole, 10.0**scale, out=out)
    else:
        _decode_integers(mode, base, stored, out)


def _decode_integers(mode: int, base: int, stored: np.ndarray, out: np.ndarray) -> None:
    if mode == _OFFSET:  # uint64 offsets past 2**63 wrap to negative, and adding the base wraps them back
        np.add(stored, np.int64(base), out=out, dtype=np.int64, casting="unsafe")
        return
    if mode == _DELTA:
        np.cumsum(stored, dtype=np.int64, out=out)
    else:  # zigzag, undone in the stored width: (s >> 1) ^ -(s & 1), read as signed
        signed = stored.view(np.dtype(f"<i{stored.itemsize}"))
        np.cumsum((stored >> stored.dtype.type(1)).view(signed.dtype) ^ -(signed & 1), dtype=np.int64, out=out)
    out += np.int64(base)


TickChunk = bytes | memoryview | np.ndarray
"""A tick chunk as :func:`unpack_range` takes it: its bytes, raw or sealed, or records already decoded."""


def _opened(chunk: TickChunk) -> _Sealed | np.ndarray:
    """A sealed chunk's header read, or a raw chunk's records (a view of its bytes)."""
    if isinstance(chunk, np.ndarray):
        return chunk
    return _Sealed(chunk) if is_sealed(chunk) else np.frombuffer(chunk, TICK_DTYPE)


def _decode_slice(part: _Sealed | np.ndarray, name: str, out: np.ndarray, lo: int = 0) -> None:
    """Fill ``out`` with ticks ``lo`` to ``lo + len(out)`` of column ``name`` of an opened chunk."""
    if isinstance(part, np.ndarray):
        out[:] = part[name][lo : lo + len(out)]
    elif lo == 0 and len(out) == part.count:
        part.decode(name, out)
    else:
        whole = np.empty(part.count, TICK_DTYPE[name])
        part.decode(name, whole)
        out[:] = whole[lo : lo + len(out)]


def unpack_columns(blob: bytes | memoryview, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The columns of a tick chunk, raw or sealed, by name (all of :data:`TICK_COLUMNS` by default).

    A sealed chunk decodes only the columns asked for, each into its own contiguous array; a raw
    chunk gives views of its records.

    Examples
    --------
    >>> ticks = np.zeros(2, TICK_DTYPE)
    >>> ticks["ts"], ticks["price"] = [5, 9], [1.5, 1.75]
    >>> got = unpack_columns(seal_ticks(ticks), ["ts", "price"])
    >>> sorted(got), got["price"].tolist()
    (['price', 'ts'], [1.5, 1.75])
    """
    wanted = _wanted(columns)
    if not is_sealed(blob):
        records = np.frombuffer(blob, dtype=TICK_DTYPE)
        return {name: records[name] for name in wanted}
    sealed = _Sealed(blob)
    out = {name: np.empty(sealed.count, TICK_DTYPE[name]) for name in wanted}
    for name in wanted:
        sealed.decode(name, out[name])
    return out


def unpack_ticks(blob: bytes | memoryview) -> np.ndarray:
    """The records of a tick chunk, raw or sealed (:func:`seal_ticks`), as a :data:`TICK_DTYPE` array."""
    if not is_sealed(blob):
        return np.frombuffer(blob, dtype=TICK_DTYPE)
    sealed = _Sealed(blob)
    out = np.empty(sealed.count, TICK_DTYPE)
    for name in TICK_COLUMNS:
        # Into a column first: numpy's running sums and casts are twice as fast into contiguous memory
        # as into the 33-byte stride of a record's field, more than the copy after costs.
        column = np.empty(sealed.count, TICK_DTYPE[name])
        sealed.decode(name, column)
        out[name] = column
    return out


def unpack_range(chunks: Sequence[TickChunk], columns: Iterable[str] | None = None,
                 start_ms: int | None = None, end_ms: int | None = None) -> dict[str, np.ndarray]:
    """The ticks with ``start_ms <= ts <= end_ms`` of consecutive chunks, one array per column.

    ``chunks`` are chunks of one series in time order (as its index lists them), each its bytes,
    raw or sealed, or its records; so the ticks in range are one run of their concatenation. Times
    are decoded first, straight into one array, to find that run; then each wanted column of each
    chunk is decoded straight into its place in the result, with no per-chunk pieces to concatenate:
    at a million ticks a fresh copy costs as much as the decoding (every page of it is new).

    Examples
    --------
    >>> ticks = np.zeros(4, TICK_DTYPE)
    >>> ticks["ts"], ticks["price"] = [1, 2, 3, 4], [10.0, 10.5, 11.0, 11.5]
    >>> got = unpack_range([seal_ticks(ticks[:2]), ticks[2:].tobytes()], ["ts", "price"], 2, 3)
    >>> got["ts"].tolist(), got["price"].tolist()
    ([2, 3], [10.5, 11.0])
    """
    wanted = _wanted(columns)
    parts = [_opened(c) for c in chunks]
    edges = np.cumsum([0, *(p.count if isinstance(p, _Sealed) else len(p) for p in parts)]).tolist()
    times = np.empty(edges[-1], np.int64)
    for i, part in enumerate(parts):
        _decode_slice(part, "ts", times[edges[i] : edges[i + 1]])
    lo = 0 if start_ms is None else int(np.searchsorted(times, start_ms, side="left"))
    hi = len(times) if end_ms is None else max(lo, int(np.searchsorted(times, end_ms, side="right")))
    out = {name: times[lo:hi] if name == "ts" else np.empty(hi - lo, TICK_DTYPE[name]) for name in wanted}
    for i, part in enumerate(parts):
        first, last = max(lo, edges[i]), min(hi, edges[i + 1])
        for name in wanted:
            if name != "ts" and first < last:
                _decode_slice(part, name, out[name][first - lo : last - lo], first - edges[i])
    return out


# -- sealed candle chunks ----------------------------------------------------------------------------
CANDLES_SEALED_MAGIC = b"RTC\x01\x00\x00\x00\xff"
"""First 8 bytes of a sealed candle chunk. As a little-endian int64 it is negative, which no raw chunk's
first slot can start with (an empty slot is zeros, a filled one starts with its first tick's time)."""
_CANDLES_HEADER = np.dtype([("magic", "S8"), ("slots", "<u4"), ("filled", "<u4"), ("body", "<u4"),
                            ("codec", "u1"), ("reserved", "S3")])
# A candle column keeps its own decimal scale: open, high, low, close, volume and notional each have one.
_CANDLE_ENTRY = np.dtype([("mode", "u1"), ("width", "u1"), ("scale", "i1"), ("base", "<i8"), ("size", "<u4")])
CANDLE_COLUMNS: tuple[str, ...] = tuple(CANDLE_DTYPE.fields or ())
"""The fields of a candle slot, in stored order."""
_CANDLE_DIRECTORY_SIZE = _CANDLE_ENTRY.itemsize * len(CANDLE_COLUMNS)
_CANDLE_COLUMN_AT = {name: i for i, name in enumerate(CANDLE_COLUMNS)}
_CANDLE_COLUMN_DTYPES = [CANDLE_DTYPE[name] for name in CANDLE_COLUMNS]
_CANDLE_SIZE = CANDLE_DTYPE.itemsize


def seal_candles(slots: np.ndarray) -> bytes:
    """A candle chunk's slots (:data:`CANDLE_DTYPE`, empty ones all zeros) in the sealed format.

    Only the filled slots are kept (a bitmap says which), column by column as :func:`seal_ticks`
    keeps ticks: times, ids and counts as offsets or deltas, prices, volumes and notionals on their
    decimal grid (each column its own) or as XOR'd float bits, each column LZ4-compressed on its
    own. Lossless to the bit; a day of 1m candles takes about a fifth of its 126,720 raw bytes.

    Raises
    ------
    InvalidData
        If no slot is filled: an empty candle chunk is never stored.

    Examples
    --------
    >>> slots = np.zeros(5, CANDLE_DTYPE)
    >>> slots["count"][[1, 3]], slots["close"][[1, 3]], slots["notional"][[1, 3]] = [2, -1], [10.25, 10.5], [20.5, np.nan]
    >>> sealed = seal_candles(slots)
    >>> sealed[:8] == CANDLES_SEALED_MAGIC, unpack_candles(sealed).tobytes() == slots.tobytes()
    (True, True)
    """
    slots = np.ascontiguousarray(slots, dtype=CANDLE_DTYPE)
    filled = slots["count"] != 0
    rows = slots[filled]
    if not len(rows):
        raise InvalidData("cannot seal a candle chunk with no candle: an empty chunk is never stored")
    codec = _CODECS[_WRITTEN_CODEC]
    directory = np.zeros(len(CANDLE_COLUMNS), _CANDLE_ENTRY)
    frames = []
    for i, name in enumerate(CANDLE_COLUMNS):
        scale, mode, base, stored, frame = _encode_values(np.ascontiguousarray(rows[name]), codec)
        frames.append(frame)
        directory[i] = (mode, stored.itemsize, scale, base, len(frame))
    body = np.packbits(filled, bitorder="little").tobytes() + directory.tobytes() + b"".join(frames)
    header = np.zeros(1, _CANDLES_HEADER)
    header[0] = (CANDLES_SEALED_MAGIC, len(slots), len(rows), len(body), _WRITTEN_CODEC, b"")
    return header.tobytes() + body


def candles_sealed(blob: bytes | memoryview) -> bool:
    """True if ``blob`` (a whole candle chunk, or at least its first 8 bytes) is a sealed candle chunk."""
    return bytes(blob[:8]) == CANDLES_SEALED_MAGIC


def sealed_candles_size(prefix: bytes | memoryview) -> int:
    """The whole length of a sealed candle chunk, from its first 24 bytes (or more); -1 from fewer."""
    if len(prefix) < _CANDLES_HEADER.itemsize:
        return -1
    header = np.frombuffer(prefix, _CANDLES_HEADER, count=1)[0]
    return _CANDLES_HEADER.itemsize + int(header["body"])


def candle_raw_size(prefix: bytes | memoryview, length: int) -> int:
    """Bytes a candle chunk of ``length`` bytes, whose first 24 (or more) bytes are ``prefix``, takes decoded.

    Examples
    --------
    >>> slots = np.zeros(1440, CANDLE_DTYPE); slots["count"][7] = 1
    >>> sealed = seal_candles(slots)
    >>> candle_raw_size(sealed[:24], len(sealed)), candle_raw_size(b"", 880)
    (126720, 880)
    """
    if not candles_sealed(prefix):
        return length
    return int(np.frombuffer(prefix, _CANDLES_HEADER, count=1)[0]["slots"]) * _CANDLE_SIZE


def whole_candles(slots: np.ndarray, seal: bool) -> bytes:
    """The bytes of a candle chunk written whole: sealed when ``seal`` and that is smaller, else raw.

    Examples
    --------
    >>> slots = np.zeros(1440, CANDLE_DTYPE); slots["count"][:3] = 1
    >>> len(whole_candles(slots, False)), len(whole_candles(slots, True)) < 1000
    (126720, True)
    """
    raw = np.ascontiguousarray(slots, dtype=CANDLE_DTYPE).tobytes()
    if not seal or not (slots["count"] != 0).any():
        return raw
    sealed = seal_candles(slots)
    return sealed if len(sealed) < len(raw) else raw


class _SealedCandles:
    """A sealed candle chunk's header, bitmap and directory, read once, its length checked against them."""

    __slots__ = ("codec", "directory", "ends", "filled", "slots", "view")

    def __init__(self, blob: bytes | memoryview):
        head = _CANDLES_HEADER.itemsize
        if len(blob) < head:
            raise InvalidData(f"sealed candle chunk of {len(blob)} bytes is shorter than its header: truncated")
        header = np.frombuffer(blob, _CANDLES_HEADER, count=1)[0]
        slots, bitmap = int(header["slots"]), -(-int(header["slots"]) // 8)
        directory = np.frombuffer(blob, _CANDLE_ENTRY, count=len(CANDLE_COLUMNS), offset=head + bitmap) \
            if len(blob) >= head + bitmap + _CANDLE_DIRECTORY_SIZE else None
        if (directory is None or int(header["codec"]) not in _CODECS or head + int(header["body"]) != len(blob)
                or bitmap + _CANDLE_DIRECTORY_SIZE + int(directory["size"].sum()) != int(header["body"])):
            raise InvalidData(f"sealed candle chunk of {len(blob)} bytes does not match its header: truncated, "
                              "or written by a newer redtick")
        mask = np.unpackbits(np.frombuffer(blob, np.uint8, count=bitmap, offset=head), count=slots, bitorder="little")
        self.slots = slots
        self.filled = np.flatnonzero(mask)
        if len(self.filled) != int(header["filled"]):
            raise InvalidData("sealed candle chunk's bitmap does not match its count of candles: corrupted")
        self.codec = _CODECS[int(header["codec"])]
        # As Python numbers once: a chunk's columns are decoded one call each, and a read decodes many chunks.
        self.directory = directory.tolist()
        self.ends = (head + bitmap + _CANDLE_DIRECTORY_SIZE + np.cumsum(directory["size"], dtype=np.int64)).tolist()
        self.view = memoryview(blob)

    def decode(self, name: str) -> np.ndarray:
        """Column ``name`` of the filled slots, in slot order."""
        i = _CANDLE_COLUMN_AT[name]
        mode, width, scale, base, size = self.directory[i]
        out = np.empty(len(self.filled), _CANDLE_COLUMN_DTYPES[i])
        end = self.ends[i]
        _decode_values(self.codec.decompress(self.view[end - size : end], decompressed_size=len(out) * width), mode, width,
                       base, scale, out)
        return out


def unpack_candles(blob: bytes | memoryview | None) -> np.ndarray:
    """The slots of a candle chunk, raw or sealed (:func:`seal_candles`), as a :data:`CANDLE_DTYPE` array."""
    if not blob or not candles_sealed(blob):
        return np.frombuffer(blob or b"", dtype=CANDLE_DTYPE)
    sealed = _SealedCandles(blob)
    out = np.zeros(sealed.slots, CANDLE_DTYPE)
    for name in CANDLE_COLUMNS:
        out[name][sealed.filled] = sealed.decode(name)
    return out


def candle_columns(blob: bytes | memoryview | None, fields: Iterable[str], first: int = 0, last: int | None = None,
                   offset: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(slot numbers, columns) of the filled slots ``first <= slot <= last`` of a candle chunk.

    ``blob`` is a whole chunk, raw or sealed, or a raw chunk's bytes from slot ``offset`` on (a
    GETRANGE of its slots); a sealed chunk is always whole. Only the wanted ``fields`` are decoded,
    each into its own array.

    Examples
    --------
    >>> slots = np.zeros(4, CANDLE_DTYPE); slots["count"][[0, 2, 3]] = 1; slots["close"] = [1.0, 0.0, 2.5, 3.0]
    >>> at, got = candle_columns(seal_candles(slots), ["close"], first=1)
    >>> at.tolist(), got["close"].tolist()
    ([2, 3], [2.5, 3.0])
    >>> at, got = candle_columns(slots[2:].tobytes(), ["close"], first=2, last=2, offset=2)
    >>> at.tolist(), got["close"].tolist()
    ([2], [2.5])
    """
    wanted = tuple(fields)
    if blob and candles_sealed(blob):
        sealed = _SealedCandles(blob)
        lo = int(np.searchsorted(sealed.filled, first, side="left"))
        hi = len(sealed.filled) if last is None else int(np.searchsorted(sealed.filled, last, side="right"))
        return sealed.filled[lo:hi].astype(np.int64), {name: sealed.decode(name)[lo:hi] for name in wanted}
    records = np.frombuffer(blob or b"", dtype=CANDLE_DTYPE)
    stop = len(records) if last is None else max(0, min(len(records), last + 1 - offset))
    records = records[max(0, first - offset) : stop]
    rows = np.flatnonzero(records["count"] != 0)
    return max(first, offset) + rows.astype(np.int64), {name: records[name][rows] for name in wanted}
