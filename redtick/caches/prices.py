"""``PriceCache``: the async face of the price series and candles, and the spec's alert calls."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import pandas as pd

from redtick.bars import candles_from_frame
from redtick.caches.alert_feed import FiredAlertFeed
from redtick.caches.alerts import PriceAlerts
from redtick.caches.base import CacheFront
from redtick.catalog import layout_of
from redtick.checks import number, whole
from redtick.clock import iso_ms, now_ms
from redtick.connection import Connection
from redtick.keys import validate_symbol
from redtick.outputs import finish
from redtick.read_options import check_output, parse_symbols, read_bounds, read_columns
from redtick.reads import Columns, candles_read_plan, ticks_read_plan
from redtick.series import RetentionWindow, SeriesLayout, WriteResult
from redtick.steps import Plan, T, gather, run_async
from redtick.ticks import TimeUnit, to_epoch_ms
from redtick.writes import DEFAULT_BATCH, warn_retention, write_plans

__all__ = ["PriceCache", "price_cache"]


class PriceCache(CacheFront):
    """Price series, candles and alerts for the backend (async); the readers researchers use, too.

    Writes go through the same plans as :func:`redtick.write_ticks`: every tick is kept once and
    merged into every interval's candles in one transaction, then the symbol's alerts are checked.

    Parameters
    ----------
    conn : Connection, optional
        Defaults to ``redtick.connect()``.
    alerts : PriceAlerts, optional
        Where the alert calls go; defaults to one on the same connection.

    Examples
    --------
    >>> import asyncio
    >>> cache = PriceCache()
    >>> async def demo():
    ...     await cache.set_current_price("DOCSUSD", 50_000.0, volume=1_000.0)
    ...     return await cache.get_current_price("DOCSUSD")
    >>> asyncio.run(demo())
    50000.0
    """

    metrics_name = "price"
    """Its counters' ``cache`` label (families ``quote``, ``ticks``, ``candles``)."""

    def __init__(self, conn: Connection | None = None, alerts: PriceAlerts | None = None):
        self._conn = conn
        self._alerts = alerts

    def __repr__(self) -> str:
        return "PriceCache()"

    @property
    def alerts(self) -> PriceAlerts:
        if self._alerts is None:
            self._alerts = PriceAlerts(self.conn)
        return self._alerts

    @property
    def layout(self) -> SeriesLayout:
        return layout_of(self.conn)

    async def _run(self, make_plan: Callable[[], Plan[T]]) -> T:
        return await run_async(self.conn.async_client(), make_plan)

    # -- writing ---------------------------------------------------------------------------------
    async def write_ticks(
        self, ticks: Any, symbol: str, *, errors: Literal["raise", "skip"] = "raise", batch_size: int = DEFAULT_BATCH,
        columns: Mapping[Any, str] | None = None, unit: TimeUnit | None = None,
    ) -> WriteResult:
        """Store ticks, update candles and fire alerts; the async twin of :func:`redtick.write_ticks`.

        ``columns`` maps the frame's column names to fields and ``unit`` says the unit of numeric
        times, as in :func:`redtick.write_ticks`.

        Retention, when configured, refuses and trims as :func:`redtick.write_ticks` says, and
        logs one WARNING per call when it did either.
        """
        layout = self.layout
        total, batches = write_plans(layout, symbol, ticks, errors, batch_size, columns=columns, unit=unit)
        for _, make_plan in batches:
            total += await self._run(make_plan)
        self.counters.write("ticks", total.written)
        warn_retention(layout, total)
        return total

    async def set_current_price(
        self,
        symbol: str,
        price: float,
        volume: float = 0.0,
        *,
        timestamp: Any = None,
        trade_id: int | None = None,
        side: str | None = None,
    ) -> WriteResult:
        """Record a price update as a tick of the series (time defaults to now).

        Without a ``trade_id`` the tick's id is the nanosecond clock, so two updates in one
        millisecond stay two ticks in the order they were made.
        """
        now_ns = time.time_ns()  # the tick's id, unless given: finer than the millisecond now_ms() gives
        ts = now_ms() if timestamp is None else to_epoch_ms(timestamp, name="timestamp")
        tick: dict[str, Any] = {"ts": ts, "price": price, "volume": volume, "trade_id": now_ns if trade_id is None else trade_id}
        if side is not None:
            tick["side"] = side
        return await self.write_ticks([tick], symbol)

    async def get_current_quote(self, symbol: str) -> dict[str, Any] | None:
        """The newest tick as ``{symbol, price, volume, timestamp, ts}``, or None."""
        raw = await self.conn.async_client().hgetall(self.conn.keys.current_price(validate_symbol(symbol)))
        self.counters.read("quote", bool(raw))
        if not raw:
            return None
        ts = int(raw[b"ts"])
        return {"symbol": symbol, "price": float(raw[b"price"]), "volume": float(raw[b"volume"]),
                "timestamp": iso_ms(ts), "ts": ts}

    async def get_current_price(self, symbol: str) -> float | None:
        """The newest price of ``symbol``, or None."""
        quote = await self.get_current_quote(symbol)
        return None if quote is None else quote["price"]

    async def get_price_change(self, symbol: str, period_minutes: int = 1440, *, at: Any = None) -> dict[str, Any] | None:
        """Change of the price over ``period_minutes`` up to ``at`` (default: the newest tick).

        Returns ``{symbol, period_minutes, current_price, previous_price, change, change_percent,
        from_time, to_time}``; ``previous_price`` is the last tick at or before the period's start.
        None when the series has no tick at or before that time.

        Examples
        --------
        >>> import asyncio
        >>> cache = PriceCache()
        >>> async def demo():
        ...     await cache.set_current_price("CHG", 100.0, timestamp="2024-01-01T00:00:00Z")
        ...     await cache.set_current_price("CHG", 110.0, timestamp="2024-01-01T01:00:00Z")
        ...     change = await cache.get_price_change("CHG", period_minutes=60)
        ...     return change["change"], change["change_percent"]
        >>> asyncio.run(demo())
        (10.0, 10.0)
        """
        symbol = validate_symbol(symbol)
        minutes = whole(period_minutes, "period_minutes", low=1)
        at_ms = None if at is None else to_epoch_ms(at, name="at")
        current, previous = await self._run(lambda: self.layout.change_plan(symbol, minutes, at_ms))
        if current is None or previous is None:
            return None
        now, before = float(current["price"]), float(previous["price"])
        return {
            "symbol": symbol,
            "period_minutes": minutes,
            "current_price": now,
            "previous_price": before,
            "change": now - before,
            # As pandas' pct_change; a change from a price of zero (spreads, some markets) has none.
            "change_percent": (now - before) / before * 100.0 if before else math.nan,
            "from_time": iso_ms(int(previous["ts"])),
            "to_time": iso_ms(int(current["ts"])),
        }

    async def get_price_history(
        self, symbol: str, limit: int = 100, start_time: Any = None, end_time: Any = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` ticks between ``start_time`` and ``end_time`` (inclusive), oldest first."""
        symbol = validate_symbol(symbol)
        limit = whole(limit, "limit", low=1)
        start = None if start_time is None else to_epoch_ms(start_time, name="start_time")
        end = None if end_time is None else to_epoch_ms(end_time, name="end_time")
        records = await self._run(lambda: self.layout.recent_ticks_plan(symbol, limit, start, end))
        self.counters.read("ticks", len(records) > 0)
        return [
            {"timestamp": iso_ms(ts), "ts": ts, "price": price, "volume": volume, "trade_id": trade_id, "side": side}
            for ts, trade_id, price, volume, side in zip(
                records["ts"].tolist(), records["id"].tolist(), records["price"].tolist(),
                records["volume"].tolist(), records["side"].tolist(), strict=True)
        ]

    # -- research reads, async ---------------------------------------------------------------------
    async def load_ticks(self, symbol_or_symbols: str | Iterable[str], start: Any = None, end: Any = None, *,
                         date_range: tuple[Any, Any] | None = None, columns: Sequence[str] | None = None,
                         tz: Any = None, unit: TimeUnit | None = None,
                         output: Literal["pandas", "arrow", "polars"] = "pandas") -> Any:
        """The async twin of :func:`redtick.load_ticks` (the same parameters but ``missing``)."""
        symbols, many = parse_symbols(symbol_or_symbols)
        wanted = read_columns(columns, "ticks")
        check_output(output)
        start, end = read_bounds(start, end, date_range)
        result = await self._run(lambda: ticks_read_plan(self.layout, symbols, start, end, wanted, tz=tz, unit=unit))
        self._count_frames("ticks", result)
        return finish(result, symbols, many, wanted, tz=tz, output=output)

    async def load_ohlcv(self, symbol_or_symbols: str | Iterable[str], interval: str = "1m", start: Any = None,
                         end: Any = None, *, date_range: tuple[Any, Any] | None = None,
                         columns: Sequence[str] | None = None, tz: Any = None, origin: Any = "epoch",
                         offset: Any = None, closed: Literal["left", "right"] | None = None,
                         label: Literal["left", "right"] | None = None, fill: Literal["nan", "ffill"] | None = None,
                         unit: TimeUnit | None = None, output: Literal["pandas", "arrow", "polars"] = "pandas") -> Any:
        """The async twin of :func:`redtick.load_ohlcv` (the same parameters but ``missing``)."""
        symbols, many = parse_symbols(symbol_or_symbols)
        wanted = read_columns(columns, "candles")
        check_output(output)
        start, end = read_bounds(start, end, date_range)
        options = dict(tz=tz, origin=origin, offset=offset, closed=closed, label=label, fill=fill, unit=unit)
        result = await self._run(lambda: candles_read_plan(self.layout, symbols, interval, start, end, wanted, **options))
        self._count_frames("candles", result)
        return finish(result, symbols, many, wanted, tz=tz, output=output)

    def _count_frames(self, family: str, frames: list[Columns]) -> None:
        # One read per symbol: a hit if the range held anything.
        found = sum(1 for frame in frames if len(frame))
        self.counters.reads(family, hits=found, misses=len(frames) - found)

    # -- candles -----------------------------------------------------------------------------------
    async def set_ohlcv_data(self, symbol: str, interval: str, candles: pd.DataFrame | Iterable[dict[str, Any]]) -> int:
        """Store candles from elsewhere (each needs a ``timestamp``/``ts`` bucket start); returns how many.

        With a candle retention, candles out of the window behind the series' newest tick are
        refused (not counted in the number returned) and a WARNING says how many.
        """
        starts, packed, _ = candles_from_frame(candles, interval)
        written = await self._run(lambda: self.layout.set_candles_plan(symbol, interval, starts, packed))
        self.counters.write("candles", written)
        warn_retention(self.layout, WriteResult(symbol, received=len(starts), written=written,
                                                retention_refused=len(starts) - written), refused="candles")
        return written

    async def get_ohlcv_data(self, symbol: str, interval: str = "1h", start_time: Any = None, end_time: Any = None,
                             limit: int | None = None) -> list[dict[str, Any]]:
        """Candles as dicts ``{timestamp, ts, open, high, low, close, volume, count}``, oldest first.

        ``limit`` keeps the newest ``limit`` candles.
        """
        frame = await self.load_ohlcv(symbol, interval, start_time, end_time,
                                      columns=["open", "high", "low", "close", "volume", "count"])
        if limit is not None:
            frame = frame.iloc[-whole(limit, "limit", low=1):]
        ms = frame.index.asi8.tolist()
        rows = frame.to_dict("records")
        return [{"timestamp": iso_ms(ts), "ts": ts, **{k: (None if v != v else v) for k, v in row.items()}}
                for ts, row in zip(ms, rows, strict=True)]

    # -- housekeeping ------------------------------------------------------------------------------
    async def get_all_symbols(self) -> list[str]:
        """Symbols that have a price series or candles."""
        members = await self.conn.async_client().smembers(self.conn.keys.series_symbols())
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def apply_retention(self) -> dict[str, int]:
        """Apply the configured retention to every symbol, measured behind each one's newest tick.

        The maintenance loop, :meth:`CacheService.cleanup_expired_data` and ``POST /cleanup``
        call this. Writes already trim behind their newest tick, so this finds work only after
        the retention was shortened or switched on, or data was written without it. With
        retention off (``REDTICK_TICK_RETENTION`` and ``REDTICK_CANDLE_RETENTION``, the default)
        it deletes nothing. The wall clock plays no part: a series not written for a year keeps
        what it had.

        Returns ``{"symbols": checked, "chunks_removed": n, "ticks_removed": n}``.

        Examples
        --------
        >>> import asyncio
        >>> asyncio.run(PriceCache().apply_retention())  # retention is off by default
        {'symbols': 0, 'chunks_removed': 0, 'ticks_removed': 0}
        """
        layout = self.layout
        if not layout.retains:
            return {"symbols": 0, "chunks_removed": 0, "ticks_removed": 0}
        symbols = await self.get_all_symbols()
        newest = await self._run(lambda: gather(*(layout.newest_plan(symbol) for symbol in symbols)))
        return await self._trim(symbols, [layout.retention_window(n) for n in newest])

    async def cleanup_old_data(self, days: float = 7) -> dict[str, int]:
        """Delete tick and candle chunks that ended more than ``days`` ago by the wall clock.

        An explicit call, never made by maintenance: it deletes a series' data however recently
        it was written, by the age of the data itself (a backfill of 2013 goes at once).
        The configured retention, measured behind each series' newest tick, is
        :meth:`apply_retention`. A chunk goes when it ends at or before ``now - days``.

        Returns ``{"symbols": checked, "chunks_removed": n, "ticks_removed": n}``.
        """
        age_ms = int(number(days, "days", above=0, expected="a positive number") * 86_400_000)
        symbols = await self.get_all_symbols()
        window = self.layout.window(now_ms(), age_ms, age_ms)
        return await self._trim(symbols, [window] * len(symbols))

    async def _trim(self, symbols: list[str], windows: list[RetentionWindow]) -> dict[str, int]:
        chunks = ticks = 0
        for symbol, window in zip(symbols, windows, strict=True):
            removed = await self._run(functools.partial(self.layout.trim_plan, symbol, window))
            chunks, ticks = chunks + removed[0], ticks + removed[1]
        return {"symbols": len(symbols), "chunks_removed": chunks, "ticks_removed": ticks}

    # -- alerts (the spec's calls on price_cache) --------------------------------------------------
    async def set_price_alert(self, user_id: str, symbol: str, target_price: float, condition: str,
                              ttl: int | None = None) -> str:
        """Set an alert; see :meth:`PriceAlerts.set_price_alert`."""
        return await self.alerts.set_price_alert(user_id, symbol, target_price, condition, ttl=ttl)

    async def get_user_alerts(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live alerts; see :meth:`PriceAlerts.get_user_alerts`."""
        return await self.alerts.get_user_alerts(user_id)

    async def delete_price_alert(self, user_id: str, alert_id: str) -> bool:
        """Delete one of the user's alerts; see :meth:`PriceAlerts.delete_price_alert`."""
        return await self.alerts.delete_price_alert(user_id, alert_id)

    async def check_price_alerts(self, symbol: str, price: float) -> list[str]:
        """The alerts ``price`` fired, by the latest write at it or by this check; see :meth:`PriceAlerts.check_price_alerts`.

        ``await set_current_price(s, p)`` then ``await check_price_alerts(s, p)`` returns the
        alerts that write fired, once, to the first caller.
        """
        return await self.alerts.check_price_alerts(symbol, price)

    def fired_alerts(self, group: str, consumer: str, **options: Any) -> FiredAlertFeed:
        """Every fired alert through the consumer group ``group``, as an async iterator.

        Each alert goes to one consumer of the group and is acknowledged once handled; see
        :class:`~redtick.caches.alert_feed.FiredAlertFeed` for the options. A notifier::

            async for alert in price_cache.fired_alerts("notifier", "worker-1"):
                await notify(alert.user_id, alert)   # acknowledged when the loop moves on
        """
        return FiredAlertFeed(self.conn, group, consumer, **options)


price_cache = PriceCache()
