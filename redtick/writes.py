"""Tick writes as plans: each batch's write and its alert check in one transaction, and the retention warning."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from redtick import scripts
from redtick.caches.alerts import ALERT_CHECK_SCRIPT, FiredAlert, PricePath, alert_check_args, decode_fired
from redtick.clock import now_ms
from redtick.config import parse_duration
from redtick.errors import InvalidData
from redtick.keys import validate_symbol
from redtick.notices import TickNotice
from redtick.series import SeriesLayout, WriteResult
from redtick.steps import Command, Commit, Plan
from redtick.tick_write import Records
from redtick.ticks import NormalisedTicks, TimeUnit, normalise_ticks

__all__ = ["DEFAULT_BATCH", "AlertCheck", "CheckedCommit", "checked_write_plan", "warn_retention", "write_plans"]

log = logging.getLogger("redtick")

DEFAULT_BATCH = 100_000


@dataclasses.dataclass(frozen=True)
class AlertCheck:
    """The alert check of a write's new ticks: one EVAL of ``scripts/alert_check.lua``, and its reply read.

    EVAL, not EVALSHA: inside MULTI/EXEC a script missing from the server's cache would fail while the
    rest of the transaction applied.
    """

    command: Command

    @classmethod
    def of(cls, layout: SeriesLayout, symbol: str, new: Records) -> AlertCheck:
        # Expiry is judged by the writer's wall clock, as alerts are created with it, not by the
        # ticks' event time: a replay of old ticks must not resurrect expired alerts. The ticks'
        # own times say when each alert fired.
        path = PricePath.of_ticks(new["ts"], new["price"])
        keys, args = alert_check_args(layout.keys, symbol, path, now_ms(), settings=layout.settings)
        return cls(("EVAL", scripts.load(ALERT_CHECK_SCRIPT), len(keys), *keys, *args))

    @staticmethod
    def fired(reply: Sequence[Any]) -> list[FiredAlert]:
        """The alerts the check fired, from its reply."""
        return decode_fired(reply)


@dataclasses.dataclass(frozen=True)
class CheckedCommit:
    """One MULTI/EXEC of a prepared write's commands followed by its alert check; its reply read by name."""

    write: list[Command]
    check: AlertCheck

    def step(self) -> Commit:
        return Commit([*self.write, self.check.command])

    def fired(self, replies: Sequence[Any]) -> list[FiredAlert]:
        """The alerts fired, from the reply of :meth:`step`."""
        return self.check.fired(replies[len(self.write)])


def checked_write_plan(layout: SeriesLayout, symbol: str, batch: NormalisedTicks) -> Plan[WriteResult]:
    """Plan: write one batch and, in the same transaction, fire the symbol's alerts its new ticks met.

    The check runs inside the write's MULTI/EXEC: either the ticks and the alerts they fire both
    commit, or neither does and the plan, run again, does both. The symbol's candles must be in the
    current layout (:meth:`SeriesLayout.current_layout`).
    """
    return layout.current_layout(symbol, _write_and_check_alerts(layout, symbol, batch))


def _write_and_check_alerts(layout: SeriesLayout, symbol: str, batch: NormalisedTicks) -> Plan[WriteResult]:
    prepared = yield from layout.prepare_write_plan(symbol, batch)
    if not prepared.ready:
        return prepared.result
    # The notice rides in the commit: published if and only if the ticks it names were committed.
    notice = [TickNotice.of(symbol, prepared.new).command(layout.keys)] if len(prepared.new) else []
    commit = CheckedCommit([*prepared.commands, *notice], AlertCheck.of(layout, symbol, prepared.new))
    replies = yield commit.step()
    prepared.result.fired_alerts = commit.fired(replies)
    yield from prepared.finish_plan()
    return prepared.result


def write_plans(layout: SeriesLayout, symbol: str, ticks: Any, errors: Literal["raise", "skip"], batch_size: int, *,
                columns: Mapping[Any, str] | None = None, unit: TimeUnit | None = None,
                ) -> tuple[WriteResult, list[tuple[int, Callable[[], Plan[WriteResult]]]]]:
    """The totals of one call before any write, and its write plans: one per batch of at most ``batch_size``
    ticks, with the batch's size."""
    symbol = validate_symbol(symbol)
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise InvalidData(f"batch_size={batch_size!r}: expected a positive whole number")
    normalised = normalise_ticks(ticks, errors=errors, columns=columns, unit=unit)
    total = WriteResult(symbol, received=normalised.received, rejected=dict(normalised.rejected),
                        duplicates=normalised.duplicates)
    records = normalised.records
    batches: list[tuple[int, Callable[[], Plan[WriteResult]]]] = []
    for lo in range(0, len(records), batch_size):
        part = NormalisedTicks(records[lo : lo + batch_size], 0, {}, 0)
        batches.append((len(part.records), functools.partial(checked_write_plan, layout, symbol, part)))
    return total, batches


def _duration_setting(ms: int | None) -> str:
    """``ms`` as a retention setting is written: ``off``, or a whole number of the largest unit up to days."""
    if ms is None:
        return "off"
    for unit in ("d", "h", "m", "s"):
        size = parse_duration(f"1{unit}")
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def warn_retention(layout: SeriesLayout, result: WriteResult, refused: str = "ticks") -> None:
    """Log one WARNING for a write call in which retention refused or trimmed anything, naming the settings.

    A research dataset must not shrink silently: this line, with ``retention_refused``,
    ``trimmed_ticks`` and ``trimmed_chunks`` of the result, is how a user learns that it did.
    ``refused`` names what ``retention_refused`` counts (``ticks`` or ``candles``).
    """
    if not (result.retention_refused or result.trimmed_ticks or result.trimmed_chunks):
        return
    log.warning(
        "%s: retention refused %d %s older than the window behind the newest tick and trimmed %d ticks "
        "(%d chunks) that fell out of it (REDTICK_TICK_RETENTION=%s, REDTICK_CANDLE_RETENTION=%s)",
        result.symbol, result.retention_refused, refused, result.trimmed_ticks, result.trimmed_chunks,
        _duration_setting(layout.tick_retention_ms), _duration_setting(layout.candle_retention_ms),
    )
