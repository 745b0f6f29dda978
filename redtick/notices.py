"""What a tick write tells whoever watches its symbol: a small pub/sub notice, published as it commits.

Every tick write publishes one :class:`TickNotice` on its symbol's channel
(:meth:`~redtick.keys.KeySchema.tick_channel`) from inside its MULTI/EXEC, so a notice goes out if
and only if the ticks it names were committed, and no later than they became readable. A notice is
a hint: it says that ticks were written and where, never what they are. :mod:`redtick.feed` reads
the ticks themselves with the series' readers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from redtick import scripts
from redtick.codec import dumps, loads
from redtick.errors import InvalidData
from redtick.keys import KeySchema
from redtick.steps import Command

__all__ = ["TICK_NOTICE_SCRIPT", "TickNotice"]

TICK_NOTICE_SCRIPT = "tick_notice"


@dataclasses.dataclass(frozen=True)
class TickNotice:
    """One tick write's notice: its symbol, how many new ticks it stored, and the first and last of them.

    Attributes
    ----------
    symbol : str
    count : int
        New ticks the write stored (duplicates of stored ticks are not counted).
    first, last : tuple of int
        ``(time in epoch ms, id)`` of the write's first and last new tick, in the series' (time, id) order.

    Examples
    --------
    >>> from redtick.codec import TICK_DTYPE
    >>> new = np.array([(1_000, 7, 10.0, 1.0, 0), (2_000, 8, 11.0, 1.0, 0)], dtype=TICK_DTYPE)
    >>> notice = TickNotice.of("ES", new)
    >>> notice
    TickNotice(symbol='ES', count=2, first=(1000, 7), last=(2000, 8))
    >>> TickNotice.decode(notice.encode()) == notice
    True
    """

    symbol: str
    count: int
    first: tuple[int, int]
    last: tuple[int, int]

    @classmethod
    def of(cls, symbol: str, new: np.ndarray) -> TickNotice:
        """The notice of a write whose new tick records (``codec.TICK_DTYPE``, sorted, at least one) are ``new``."""
        if len(new) == 0:
            raise InvalidData("a tick notice needs at least one new tick: a write that stored none publishes nothing")
        return cls(symbol, len(new), (int(new["ts"][0]), int(new["id"][0])), (int(new["ts"][-1]), int(new["id"][-1])))

    def encode(self) -> bytes:
        """The notice as published: JSON ``{"symbol", "count", "first": [ts, id], "last": [ts, id]}``."""
        return dumps({"symbol": self.symbol, "count": self.count, "first": self.first, "last": self.last})

    @classmethod
    def decode(cls, data: Any) -> TickNotice:
        """The notice in a published message; InvalidData for anything else on the channel."""
        try:
            value = loads(data)
            first, last = value["first"], value["last"]
            return cls(str(value["symbol"]), int(value["count"]), (int(first[0]), int(first[1])),
                       (int(last[0]), int(last[1])))
        except (InvalidData, KeyError, IndexError, TypeError, ValueError):
            raise InvalidData(f"not a tick notice: {data!r:.200}; expected JSON with symbol, count, first and last"
                              ) from None

    def command(self, keys: KeySchema) -> Command:
        """The EVAL of ``scripts/tick_notice.lua`` that publishes this notice; queued in the write's MULTI/EXEC.

        EVAL, not EVALSHA, as for the alert check: inside MULTI/EXEC a script missing from the
        server's cache would fail while the rest of the transaction applied.
        """
        return ("EVAL", scripts.load(TICK_NOTICE_SCRIPT), 1, keys.tick_index(self.symbol),
                keys.tick_channel(self.symbol), self.encode())
