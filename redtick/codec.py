"""The one place bytes are shaped: JSON values, Fernet encryption, packed tick and candle records."""

from __future__ import annotations

import decimal
import enum
import uuid
from typing import Any

import numpy as np
import orjson

from redtick.errors import ConfigurationError, InvalidData

__all__ = [
    "CANDLE_DTYPE",
    "CANDLE_DTYPE_V1",
    "TICK_DTYPE",
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


def make_fernet(key: str | bytes | None):
    """A ``cryptography`` Fernet for ``key`` (32 url-safe base64 bytes); ConfigurationError if malformed."""
    from cryptography.fernet import Fernet as _Fernet

    if key is None:
        raise ConfigurationError(
            "encryption needs a key: set REDTICK_ENCRYPTION_KEY or pass encryption_key="
        )
    try:
        return _Fernet(key)
    except (ValueError, TypeError):
        raise ConfigurationError("encryption key is not a Fernet key (32 url-safe base64 bytes)") from None


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

CANDLE_DTYPE_V1 = np.dtype([(name, CANDLE_DTYPE[name]) for name in CANDLE_DTYPE.names if name != "notional"])
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
    for name in CANDLE_DTYPE_V1.names:
        out[name] = old[name]
    out["notional"] = np.where(out["volume"] == 0, 0.0, np.nan)
    return out
