"""The one place bytes are shaped: JSON values, Fernet encryption, packed tick and candle records."""

from __future__ import annotations

import decimal
import enum
import math
import uuid
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from cryptography.fernet import Fernet, InvalidToken

from redtick.errors import ConfigurationError, InvalidData

__all__ = [
    "CANDLE_DTYPE",
    "CANDLE_DTYPE_V1",
    "SEALED_HEADER_SIZE",
    "SEALED_MAGIC",
    "TICK_DTYPE",
    "ValueCodec",
    "dumps",
    "is_sealed",
    "loads",
    "make_fernet",
    "seal_ticks",
    "sealed_count",
    "tick_count",
    "unpack_ticks",
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
_ZSTD = pa.Codec("zstd", compression_level=1)  # level 1: as small as 3 on ticks (measured), and faster
_XOR = -1  # a float column stored as the XOR of each value's bits with the previous one's
_MAX_SCALE = 8


def _decimal_scale(values: np.ndarray) -> tuple[int, np.ndarray]:
    """(d, the values times 10**d as int64) for the smallest d <= 8 that makes every value a whole number
    exactly, or (-1, the XOR of each value's float bits with the previous one's) when none does."""
    largest = float(np.abs(values).max(initial=0.0)) if np.isfinite(values).all() else math.inf
    for d in range(_MAX_SCALE + 1):
        if largest * 10.0**d >= 2.0**52:  # past where every whole float is exact; larger d only grows it
            break
        whole = np.round(values * 10.0**d).astype(np.int64)
        # Decoded as the decoder will, compared bit for bit: -0.0 must not come back as 0.0.
        if np.array_equal((whole / 10.0**d).view(np.int64), values.view(np.int64)):
            return d, whole
    bits = values.view(np.int64)
    return _XOR, bits ^ np.r_[np.int64(0), bits[:-1]]


def _zigzag_deltas(values: np.ndarray) -> np.ndarray:
    deltas = np.diff(values, prepend=np.int64(0))
    return (deltas << 1) ^ (deltas >> 63)


def _undo_zigzag_deltas(encoded: np.ndarray) -> np.ndarray:
    halved = (encoded.view(np.uint64) >> np.uint64(1)).view(np.int64)  # a logical shift: the sign is in bit 0
    return np.cumsum(halved ^ -(encoded & 1))  # deltas that wrapped around 2**64 wrap back


def _byte_planes(column: np.ndarray) -> bytes:
    """An int64 column as its 8 byte planes (all first bytes, then all second bytes...): small deltas make
    whole planes of zeros, which the codec then all but drops."""
    return np.ascontiguousarray(column.view(np.uint8).reshape(-1, 8).T).tobytes()


def _from_byte_planes(planes: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(planes.reshape(8, n).T).view(np.int64).ravel()


def seal_ticks(records: np.ndarray) -> bytes:
    """A tick chunk's records (:data:`TICK_DTYPE`, sorted) in the sealed format.

    Column-wise: times and ids as zigzag deltas, prices and volumes as deltas of their values on
    the smallest decimal grid that holds them exactly (else the XOR of their float bits with the
    previous value's), each int64 column split into byte planes, side as bytes; the whole zstd
    compressed. A header (:data:`SEALED_MAGIC`, count, sizes, scales) comes first and the last
    record, raw, last, so the chunk's end reads as a raw chunk's does. Lossless: every float bit
    pattern comes back (see :func:`unpack_ticks`).

    Examples
    --------
    >>> ticks = np.zeros(3, TICK_DTYPE)
    >>> ticks["ts"], ticks["id"], ticks["price"], ticks["volume"] = [1, 1, 2], [7, 8, 9], [1.25, 1.5, -0.75], [1, 2, 3]
    >>> sealed = seal_ticks(ticks)
    >>> sealed[:8] == SEALED_MAGIC, unpack_ticks(sealed).tobytes() == ticks.tobytes()
    (True, True)
    """
    records = np.ascontiguousarray(records, dtype=TICK_DTYPE)
    price_scale, prices = _decimal_scale(records["price"])
    volume_scale, volumes = _decimal_scale(records["volume"])
    columns = [_zigzag_deltas(records["ts"]), _zigzag_deltas(records["id"]),
               prices if price_scale == _XOR else _zigzag_deltas(prices),
               volumes if volume_scale == _XOR else _zigzag_deltas(volumes)]
    body = b"".join(_byte_planes(c) for c in columns) + records["side"].tobytes()
    header = np.zeros(1, _SEALED_HEADER)
    header[0] = (SEALED_MAGIC, len(records), len(body), price_scale, volume_scale, 0, 0)
    compressed: bytes = _ZSTD.compress(body, asbytes=True)
    return header.tobytes() + compressed + records[-1:].tobytes()


def is_sealed(blob: bytes | memoryview) -> bool:
    """True if ``blob`` (a whole chunk, or at least its first 8 bytes) is a sealed tick chunk."""
    return bytes(blob[:8]) == SEALED_MAGIC


def sealed_count(header: bytes) -> int:
    """The number of ticks a sealed chunk holds, from its first :data:`SEALED_HEADER_SIZE` bytes."""
    return int(np.frombuffer(header[:SEALED_HEADER_SIZE], _SEALED_HEADER)[0]["count"])


def tick_count(prefix: bytes, length: int) -> int:
    """Ticks in a chunk of ``length`` bytes whose first bytes are ``prefix`` (raw or sealed)."""
    return sealed_count(prefix) if is_sealed(prefix) else length // TICK_DTYPE.itemsize


def _scaled_back(column: np.ndarray, scale: int) -> np.ndarray:
    if scale == _XOR:
        return np.bitwise_xor.accumulate(column).view(np.float64)
    return _undo_zigzag_deltas(column) / 10.0**scale


def unpack_ticks(blob: bytes | memoryview) -> np.ndarray:
    """The records of a tick chunk, raw or sealed (:func:`seal_ticks`), as a :data:`TICK_DTYPE` array."""
    if not is_sealed(blob):
        return np.frombuffer(blob, dtype=TICK_DTYPE)
    header = np.frombuffer(blob[:SEALED_HEADER_SIZE], _SEALED_HEADER)[0]
    n, size = int(header["count"]), int(header["body"])
    compressed = blob[SEALED_HEADER_SIZE : len(blob) - TICK_DTYPE.itemsize]
    body = np.frombuffer(_ZSTD.decompress(compressed, decompressed_size=size, asbytes=True), np.uint8)
    out = np.empty(n, TICK_DTYPE)
    planes = [_from_byte_planes(body[i * 8 * n : (i + 1) * 8 * n], n) for i in range(4)]
    out["ts"] = _undo_zigzag_deltas(planes[0])
    out["id"] = _undo_zigzag_deltas(planes[1])
    out["price"] = _scaled_back(planes[2], int(header["price_scale"]))
    out["volume"] = _scaled_back(planes[3], int(header["volume_scale"]))
    out["side"] = body[32 * n :].view(np.int8)
    return out
