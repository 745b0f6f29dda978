"""The wall clock, read in one place: epoch milliseconds now, and epoch milliseconds as ISO 8601 text.

Stored times are epoch milliseconds (UTC). Where a record carries the wall clock (an alert's
creation, ``recorded_at``, a session's activity) it comes from :func:`now_ms`, so a test can
move time by patching this one function.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

__all__ = ["iso_ms", "now_ms"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def now_ms(clock: Callable[[], float] | None = None) -> int:
    """The wall clock as whole epoch milliseconds, or ``clock()`` (epoch seconds) when a cache was given one.

    Examples
    --------
    >>> now_ms(lambda: 1378000000.5)
    1378000000500
    """
    if clock is not None:
        return int(clock() * 1000)
    return time.time_ns() // 1_000_000


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC text with a ``Z``, to the millisecond when there is one.

    Examples
    --------
    >>> iso_ms(1378000000000)
    '2013-09-01T01:46:40Z'
    >>> iso_ms(1378000000123)
    '2013-09-01T01:46:40.123000Z'
    """
    stamp = _EPOCH + datetime.timedelta(milliseconds=int(ms))
    return stamp.isoformat().replace("+00:00", "Z")
