"""``AlertQuota``: at most so many live price alerts per user, exact within a process."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import weakref
from collections.abc import AsyncIterator

from redtick.errors import InvalidData
from redtick.service import CacheService

__all__ = ["AlertQuota"]


class AlertQuota:
    """Refuse a new alert when its user already holds ``cap`` live ones (422).

    Within a process, a user's creations take turns to count, under a per-user lock: one reads
    the length of the user's alert record from Redis (live, fired and expired alerts) and adds
    the creations still writing. Below the cap, it reserves a slot and writes while the next one
    counts. At the cap, the count may include a write both in Redis and as a reservation, or dead
    alerts: the creation then waits for the writes in flight, counts the live alerts exactly
    (which also drops the records of dead ones) and writes before the lock passes on. So
    concurrent requests never overshoot the cap, none is refused below it, and far from the cap
    writes run concurrently. Across processes the count is as exact as Redis's answer at the
    time: concurrent creations in different processes can overshoot by at most their number
    (the per-user write rate limit bounds that).

    Parameters
    ----------
    cap : int
        Live alerts one user may hold (``REDTICK_MAX_ALERTS_PER_USER``).

    Examples
    --------
    >>> import asyncio
    >>> quota, service = AlertQuota(cap=1), CacheService()
    >>> async def demo():
    ...     async with quota.slot(service, "quota_user"):
    ...         await service.get_alerts().set_price_alert("quota_user", "BTCUSDT", 1.0, "above")
    ...     async with quota.slot(service, "quota_user"):
    ...         pass
    >>> asyncio.run(demo())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: you have 1 live alerts, the most one user may hold (REDTICK_MAX_ALERTS_PER_USER=1); ...
    """

    def __init__(self, cap: int):
        self.cap = cap
        self._writing: collections.Counter[str] = collections.Counter()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._idle: dict[str, asyncio.Event] = {}  # per user with writes in flight: set when they end

    def _lock(self, user_id: str) -> asyncio.Lock:
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        return lock

    def _reserve(self, user_id: str) -> None:
        self._writing[user_id] += 1
        self._idle.setdefault(user_id, asyncio.Event())

    def _release(self, user_id: str) -> None:
        # No await here: a cancelled request (its deadline) still gives its slot back.
        self._writing[user_id] -= 1
        if not self._writing[user_id]:
            del self._writing[user_id]
            self._idle.pop(user_id).set()

    @contextlib.asynccontextmanager
    async def slot(self, service: CacheService, user_id: str) -> AsyncIterator[None]:
        """Hold one of the user's slots while the alert is written; InvalidData (422) if none is free."""
        lock, conn = self._lock(user_id), service.conn
        async with lock:
            recorded = await conn.async_client().hlen(conn.keys.user_alerts(user_id))
            below = recorded + self._writing[user_id] < self.cap
            if below:
                self._reserve(user_id)
            else:  # at the cap's edge: no reservation can start while this holds the lock
                if user_id in self._idle:
                    await self._idle[user_id].wait()
                held = len(await service.get_alerts().get_user_alerts(user_id))
                if held >= self.cap:
                    raise InvalidData(
                        f"you have {held} live alerts, the most one user may hold "
                        f"(REDTICK_MAX_ALERTS_PER_USER={self.cap}); delete some first"
                    )
                self._reserve(user_id)
                try:
                    yield  # written before the next creation counts
                finally:
                    self._release(user_id)
                return
        try:
            yield  # concurrently with the next creation's count
        finally:
            self._release(user_id)
