"""The one place bytes are shaped: JSON values, Fernet encryption, packed tick and candle records."""

from __future__ import annotations

import decimal
import enum
import uuid
from typing import Any

import numpy as np
import orjson
from cryptography.fernet import Fernet, InvalidToken

from redtick.errors import ConfigurationError, InvalidData

__all__ = [
    "CANDLE_DTYPE",
    "CANDLE_DTYPE_V1",
    "TICK_DTYPE",
    "ValueCodec",
    "dumps",
    "loads",
    "make_fernet",
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
