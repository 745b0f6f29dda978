"""The interval grammar of candle reads, and the buckets an interval cuts time into.

An interval is spelled one of two ways:

- **redtick's names**, ``<n><unit>`` with unit ``ms``, ``s``, ``m``, ``h``, ``d`` or ``w`` (``"1m"``,
  ``"30s"``, ``"4h"``, ``"1d"``, ``"1w"``; ``n`` may be left out): fixed widths counted from the
  epoch, the grid the stored intervals use. ``m`` is a minute (pandas' ``"1min"``), ``d`` is 24 hours
  (pandas' ``"24h"``) and ``w`` is 168 hours, so ``"1w"`` buckets start on Thursdays (1970-01-01 was
  one). Where pandas 3 reads ``"1d"``/``"1w"`` as deprecated spellings of ``"D"``/``"W"``, redtick
  keeps these meanings; in UTC ``"1d"`` and ``"D"`` give the same buckets.
- **pandas offset aliases**, parsed by :func:`pandas.tseries.frequencies.to_offset` and meaning what
  they mean to ``DataFrame.resample``: fixed widths (``"1min"``, ``"5min"``, ``"90min"``, ``"1h"``,
  ``"30s"``, ``"250ms"``), calendar days (``"D"``, ``"3D"``) and the anchored calendar offsets
  ``"W"`` (= ``"W-SUN"``), ``"W-MON"`` ..., ``"ME"``, ``"MS"``, ``"QE"``, ``"QS"``, ``"YE"``, ``"YS"``,
  ``"B"`` and their business variants, once each (``n`` = 1: pandas anchors ``"2W"`` on the data's
  first date, which a stored, growing series does not have; ``"14D"`` with ``origin=`` does it).
  ``"H"``, ``"T"``, ``"S"`` and ``"L"`` keep the meaning pandas gave them before 2.2 (hour, minute,
  second, millisecond). ``"M"`` is refused: a minute is ``"1m"``/``"1min"``, a month end ``"ME"``.
  Widths below a millisecond are refused (redtick stores milliseconds).

Buckets are pandas' (``resample(rule, closed=, label=, origin=, offset=)`` on an index in ``tz``):

- **fixed widths** tile absolute time from ``origin + offset``; ``origin="epoch"`` is midnight of
  1970-01-01 in ``tz`` (pandas' rule), the default;
- **days** (``"D"``, ``"nD"``) are ``n`` x 24 hours of wall-clock time in ``tz`` from ``origin +
  offset``: what pandas does on a tz-naive index of local times. pandas 3 ignores ``origin`` and
  ``offset`` for days on a tz-aware index (with a warning); redtick honours them, so a CME session
  day is ``"D", tz="America/Chicago", offset="17h"``. Without them both give local midnights;
- **anchored offsets** (``"W"``, ``"ME"`` ...) are pandas' calendar dates at local midnight;
  ``origin``/``offset`` have no effect on them in pandas and are refused here.

Labels and closed sides default as in pandas: ``"W"``, ``"ME"``, ``"QE"``, ``"YE"`` (and ``"BME"``,
``"BQE"``, ``"BYE"``, anchored forms included) are closed and labelled on the right, every other
interval on the left. Edges in wall-clock time that fall into a DST gap move forward and those in a
repeated hour take its first occurrence, as pandas' own bin edges do.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets as pdo
from pandas.tseries.frequencies import to_offset

from redtick.errors import InvalidData, InvalidKey

__all__ = ["Bins", "CalendarBins", "FixedBins", "parse_interval", "parse_time"]

_REDTICK_NAME = re.compile(r"(\d*)(ms|s|m|h|d|w)")
_REDTICK_UNIT = {"ms": pdo.Milli, "s": pdo.Second, "m": pdo.Minute, "h": pdo.Hour}
_HOURS_IN = {"d": 24, "w": 168}
_LEGACY = re.compile(r"(\d*)(H|T|S|L)")  # pandas < 2.2 spellings pandas 3 refuses
_LEGACY_ALIAS = {"H": "h", "T": "min", "S": "s", "L": "ms"}
_MONTH = re.compile(r"\d*M")
_ANCHORED = (pdo.Week, pdo.MonthEnd, pdo.MonthBegin, pdo.BusinessMonthEnd, pdo.BusinessMonthBegin,
             pdo.QuarterEnd, pdo.QuarterBegin, pdo.BQuarterEnd, pdo.BQuarterBegin, pdo.YearEnd,
             pdo.YearBegin, pdo.BYearEnd, pdo.BYearBegin, pdo.BusinessDay)
# pandas' resample closes and labels these on the right (TimeGrouper.__init__) ...
_RIGHT_BY_DEFAULT = {"ME", "YE", "QE", "BME", "BYE", "BQE", "W"}
# ... and, closed on the right, moves their edges to the last moment of the day (_adjust_bin_edges).
_END_OF_DAY = {"ME", "BME", "W", "BQE", "BYE", "QE", "YE"}
_DATA_ORIGINS = ("start", "start_day", "end", "end_day")
MS = 1
DAY_MS = 86_400_000
_ONE_MS = pd.Timedelta(1, "ms")
_EPOCH = pd.Timestamp(0)
_EPOCH_UTC = pd.Timestamp(0, tz="UTC")


def _rule(freq: pdo.BaseOffset) -> str:
    return str(freq.rule_code).split("-")[0]


def _offset_of(interval: object) -> pdo.BaseOffset:
    """The pandas offset an interval names (redtick names first, then pandas aliases)."""
    if not isinstance(interval, str) or not interval.strip():
        raise InvalidKey(f"interval {interval!r}: expected a string such as '1m', '5min', '4h', 'D' or 'W-MON'")
    text = interval.strip()
    named = _REDTICK_NAME.fullmatch(text)
    legacy = _LEGACY.fullmatch(text)
    if named:
        n, unit = int(named.group(1) or 1), named.group(2)
        freq = pdo.Hour(n * _HOURS_IN[unit]) if unit in _HOURS_IN else _REDTICK_UNIT[unit](n)
    elif legacy:
        freq = to_offset((legacy.group(1) or "1") + _LEGACY_ALIAS[legacy.group(2)])
    elif _MONTH.fullmatch(text):
        raise InvalidData(f"interval {text!r} is ambiguous: a minute is '1m' or '1min', a month end 'ME', a month start 'MS'")
    else:
        try:
            freq = to_offset(text)
        except ValueError as exc:
            raise InvalidKey(
                f"interval {text!r} is neither a redtick interval (1m, 5m, 1h, 1d, 1w) nor a pandas offset "
                f"alias (30s, 1min, 4h, D, W-MON, ME): {exc}"
            ) from None
    if freq.n <= 0:
        raise InvalidData(f"interval {text!r}: expected a positive width")
    return freq


def _zone(tz: Any) -> Any:
    if tz is None:
        return None
    try:
        pd.Timestamp(0, tz=tz)
    except Exception:  # pandas raises several kinds for an unknown zone
        raise InvalidData(f"tz={tz!r} is not a time zone; expected a name such as 'America/Chicago' or 'UTC'") from None
    return tz


def _sides(freq: pdo.BaseOffset, closed: str | None, label: str | None) -> tuple[str, str]:
    for name, value in (("closed", closed), ("label", label)):
        if value not in (None, "left", "right"):
            raise InvalidData(f"{name}={value!r}: expected 'left' or 'right'")
    default = "right" if _rule(freq) in _RIGHT_BY_DEFAULT and not isinstance(freq, pdo.Tick) else "left"
    return closed or default, label or default


def parse_time(value: Any, name: str, unreadable: str) -> pd.Timestamp:
    """``value`` as a Timestamp; InvalidData naming ``name`` if pandas cannot read it (``unreadable`` follows
    the value in the message) or it is NaT.

    Examples
    --------
    >>> parse_time("2013-09-03 13:31", "start", " is not a time")
    Timestamp('2013-09-03 13:31:00')
    >>> parse_time("soon", "start", " is not a time")
    Traceback (most recent call last):
    ...
    redtick.errors.InvalidData: start='soon' is not a time
    """
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InvalidData(f"{name}={value!r}{unreadable}") from None
    if stamp is pd.NaT:
        raise InvalidData(f"{name}={value!r} is not a time")
    return stamp


def _timestamp(value: Any, name: str) -> pd.Timestamp:
    return parse_time(value, name, ": expected 'epoch', a time (str, datetime, Timestamp)")


def _delta_ms(offset: Any) -> int:
    """``offset`` (a Timedelta, its string or a fixed pandas offset) in whole milliseconds."""
    if offset is None:
        return 0
    try:
        delta = pd.Timedelta(offset.nanos, "ns") if isinstance(offset, pdo.Tick) else pd.Timedelta(offset)
    except (ValueError, TypeError):
        raise InvalidData(f"offset={offset!r}: expected a time span such as '17h' or pd.Timedelta(hours=17)") from None
    if delta is pd.NaT or delta % _ONE_MS:
        raise InvalidData(f"offset={offset!r}: expected whole milliseconds")
    return int(delta // _ONE_MS)


def _utc_ms(stamp: pd.Timestamp, tz: Any) -> int:
    """Epoch ms of ``stamp``; a naive one is a wall-clock time in ``tz`` (UTC when None)."""
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(tz or "UTC")
    return int((stamp - _EPOCH_UTC) // _ONE_MS)


def _wall_ms(stamp: pd.Timestamp, tz: Any) -> int:
    """Wall-clock ms in ``tz`` of ``stamp``; a naive one already is."""
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(tz or "UTC").tz_localize(None)
    return int((stamp - _EPOCH) // _ONE_MS)


def _to_wall(ms: np.ndarray, tz: Any) -> np.ndarray:
    """Wall-clock ms in ``tz`` of epoch ms."""
    index = pd.DatetimeIndex(np.asarray(ms, dtype=np.int64).view("datetime64[ms]")).tz_localize("UTC")
    return np.asarray(index.tz_convert(tz or "UTC").tz_localize(None).asi8)


def _from_wall(wall_ms: np.ndarray, tz: Any) -> np.ndarray:
    """Epoch ms of wall-clock ms in ``tz``: a time in a DST gap moves forward, one in a repeated hour is
    its first occurrence (pandas' own bin edges, ``date_range(..., ambiguous=True, nonexistent="shift_forward")``)."""
    index = pd.DatetimeIndex(np.asarray(wall_ms, dtype=np.int64).view("datetime64[ms]"))
    local = index.tz_localize(tz or "UTC", ambiguous=np.ones(len(index), dtype=bool), nonexistent="shift_forward")
    return np.asarray(local.tz_convert("UTC").tz_localize(None).asi8)


@dataclasses.dataclass(frozen=True)
class Bins(abc.ABC):
    """How one read cuts time into buckets: each has an effective span ``[start, end)`` in epoch ms and a label.

    ``closed="right"`` buckets ``(a, b]`` hold, at millisecond resolution, the ticks of ``[a + 1 ms, b + 1 ms)``:
    effective starts are those half-open spans. Subclasses say where the edges lie.
    """

    name: str
    freq: pdo.BaseOffset
    tz: Any
    closed: str
    label: str

    @abc.abstractmethod
    def keys(self, times: np.ndarray) -> np.ndarray:
        """The effective start of the bucket holding each of ``times`` (epoch ms, sorted)."""

    @abc.abstractmethod
    def labels(self, keys: np.ndarray) -> np.ndarray:
        """The label (epoch ms) of each bucket given by its effective start."""

    @abc.abstractmethod
    def table(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(effective starts, effective ends, labels) of consecutive buckets covering ``[lo, hi]`` in
        time and in labels."""

    @abc.abstractmethod
    def aligned(self, step: int, lo: int, hi: int) -> bool:
        """True if every bucket edge in ``[lo, hi]`` lies on the epoch grid of ``step`` ms."""

    def read_range(self, start: int, end: int) -> tuple[int, int] | None:
        """The time span ``[lo, hi]`` of the buckets labelled in ``[start, end]``, whole; None if none is."""
        starts, ends, labels = self.table(start, end)
        chosen = np.flatnonzero((labels >= start) & (labels <= end))
        if len(chosen) == 0:
            return None
        return int(starts[chosen[0]]), int(ends[chosen[-1]]) - 1

    def grid(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, effective starts) of every bucket labelled in ``[first, last]``, in order."""
        starts, _, labels = self.table(first, last)
        chosen = (labels >= first) & (labels <= last)
        return labels[chosen], starts[chosen]


@dataclasses.dataclass(frozen=True)
class FixedBins(Bins):
    """Buckets of one width tiling absolute time from ``anchor`` (origin + offset, epoch ms)."""

    width: int
    anchor: int

    @property
    def _shift(self) -> int:  # effective starts sit 1 ms after the nominal edges when closed on the right
        return self.anchor + (MS if self.closed == "right" else 0)

    @property
    def _label_lag(self) -> int:  # label minus effective start
        return (self.width if self.label == "right" else 0) - (MS if self.closed == "right" else 0)

    def keys(self, times: np.ndarray) -> np.ndarray:
        shift = self._shift
        return (np.asarray(times, dtype=np.int64) - shift) // self.width * self.width + shift

    def labels(self, keys: np.ndarray) -> np.ndarray:
        return np.asarray(keys, dtype=np.int64) + self._label_lag

    def table(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        first = int(self.keys(np.array([lo]))[0]) - self.width
        last = int(self.keys(np.array([hi]))[0]) + self.width
        starts = np.arange(first, last + 1, self.width, dtype=np.int64)
        return starts, starts + self.width, self.labels(starts)

    def read_range(self, start: int, end: int) -> tuple[int, int] | None:
        # Arithmetic, so an hour of 1 ms buckets costs nothing: first and last key labelled inside.
        lag, w, shift = self._label_lag, self.width, self._shift
        first = -((shift - (start - lag)) // w) * w + shift  # ceil to the grid of keys
        last = (end - lag - shift) // w * w + shift
        return None if first > last else (first, last + w - 1)

    def aligned(self, step: int, lo: int, hi: int) -> bool:
        return self.width % step == 0 and self._shift % step == 0

    def grid(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        span = self.read_range(first, last)
        if span is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        starts = np.arange(span[0], span[1] + 1, self.width, dtype=np.int64)
        return self.labels(starts), starts


@dataclasses.dataclass(frozen=True)
class CalendarBins(Bins):
    """Buckets whose edges are wall-clock dates in ``tz``: ``n`` days from an origin, or pandas' anchored
    dates (weeks, month ends ...). ``anchor`` is the wall-clock ms of one day edge (days only)."""

    anchor: int

    def _wall_edges(self, lo: int, hi: int) -> np.ndarray:
        """Wall-clock ms of the nominal edges around ``[lo, hi]``, two buckets of margin each side."""
        wall_lo, wall_hi = _to_wall(np.array([lo, hi]), self.tz)
        if isinstance(self.freq, pdo.Day):
            step = self.freq.n * DAY_MS
            k0 = (wall_lo - self.anchor) // step - 2
            k1 = -((self.anchor - wall_hi) // step) + 2
            return np.asarray(self.anchor + np.arange(k0, k1 + 1, dtype=np.int64) * step)
        low = pd.Timestamp(int(wall_lo), unit="ms").normalize()
        first = self.freq.rollback(low) - 2 * self.freq
        last = pd.Timestamp(int(wall_hi), unit="ms") + 2 * self.freq
        return np.asarray(pd.date_range(first, last, freq=self.freq, unit="ms").asi8)

    def _table(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        wall = self._wall_edges(lo, hi)
        nominal = _from_wall(wall, self.tz)
        if self.closed == "left":
            effective = nominal
        elif _rule(self.freq) in _END_OF_DAY:
            # pandas moves these edges to the day's last moment (wall clock) and closes bins on the right.
            effective = _from_wall(wall + DAY_MS - MS, self.tz) + MS
        else:
            effective = nominal + MS
        labels = nominal[:-1] if self.label == "left" else nominal[1:]
        return effective[:-1], effective[1:], labels

    def table(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._table(lo, hi)

    def keys(self, times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, dtype=np.int64)
        if len(times) == 0:
            return times.copy()
        starts, _, _ = self._table(int(times[0]), int(times[-1]))
        return starts[np.searchsorted(starts, times, side="right") - 1]

    def labels(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) == 0:
            return keys.copy()
        starts, _, labels = self._table(int(keys[0]), int(keys[-1]))
        return labels[np.searchsorted(starts, keys)]

    def aligned(self, step: int, lo: int, hi: int) -> bool:
        starts, ends, _ = self._table(lo, hi)
        inside = (ends > lo) & (starts <= hi)
        return bool(np.all(starts[inside] % step == 0) and np.all(ends[inside] % step == 0))


def _fixed_anchor(origin: Any, offset: Any, tz: Any) -> int:
    """Epoch ms of one fixed-width edge: ``origin + offset`` with pandas' ``origin="epoch"`` (1970 in ``tz``)."""
    if isinstance(origin, str) and origin == "epoch":
        stamp = pd.Timestamp("1970-01-01", tz=tz or "UTC")
    else:
        stamp = _timestamp(origin, "origin")
    return _utc_ms(stamp, tz) + _delta_ms(offset)


def parse_interval(
    interval: str,
    *,
    tz: Any = None,
    origin: Any = "epoch",
    offset: Any = None,
    closed: str | None = None,
    label: str | None = None,
) -> Bins:
    """The buckets ``interval`` makes, with pandas' ``resample`` arguments ``tz``, ``origin``, ``offset``,
    ``closed`` and ``label`` (see the module docstring for the grammar and the rules).

    ``origin`` is ``"epoch"`` (the default, where pandas' is ``"start_day"``: a stored series grows and
    is backfilled, so buckets anchored to its first tick would move) or a time, naive meaning in ``tz``.
    pandas' data-dependent origins ``"start"``, ``"start_day"``, ``"end"`` and ``"end_day"`` are refused.

    Examples
    --------
    >>> bins = parse_interval("3m")
    >>> bins.width, bins.anchor, bins.label
    (180000, 0, 'left')
    >>> parse_interval("5min").width == parse_interval("5m").width
    True
    >>> week = parse_interval("W")
    >>> week.freq, week.closed, week.label
    (<Week: weekday=6>, 'right', 'right')
    >>> cme = parse_interval("D", tz="America/Chicago", offset="17h")
    >>> at = np.array([1378215000000])  # 2013-09-03 08:30 in Chicago: the session opened the day before
    >>> pd.Timestamp(int(cme.labels(cme.keys(at))[0]), unit="ms", tz="America/Chicago")
    Timestamp('2013-09-02 17:00:00-0500', tz='America/Chicago')
    """
    freq = _offset_of(interval)
    tz = _zone(tz)
    closed, label = _sides(freq, closed, label)
    if isinstance(origin, str) and origin in _DATA_ORIGINS:
        raise InvalidData(
            f"origin={origin!r} anchors buckets on the data's first or last tick, which moves as a stored "
            "series grows; pass origin='epoch' (the default) or a time such as '2024-01-01 17:00'"
        )
    if isinstance(freq, pdo.Day):  # before Tick: pandas < 3 made Day a Tick; these are pandas 3's calendar days
        stamp = pd.Timestamp("1970-01-01") if isinstance(origin, str) and origin == "epoch" else _timestamp(origin, "origin")
        return CalendarBins(interval, freq, tz, closed, label, _wall_ms(stamp, tz) + _delta_ms(offset))
    if isinstance(freq, pdo.Tick):
        if freq.nanos % 1_000_000:
            raise InvalidData(f"interval {interval!r} is finer than a millisecond, the resolution redtick stores")
        return FixedBins(interval, freq, tz, closed, label, freq.nanos // 1_000_000, _fixed_anchor(origin, offset, tz))
    if not isinstance(freq, _ANCHORED):
        raise InvalidData(f"interval {interval!r} ({type(freq).__name__}) is not supported; use a fixed width, "
                          "days ('D'), weeks ('W-MON'), months ('ME', 'MS'), quarters, years or business days ('B')")
    if freq.n != 1:
        raise InvalidData(f"interval {interval!r}: pandas anchors {freq.n} x {freq.rule_code} on the data's first "
                          f"date; use days with an origin (such as '14D', origin='2024-01-01') for fixed multiples")
    if offset is not None or not (isinstance(origin, str) and origin == "epoch"):
        raise InvalidData(f"origin= and offset= have no effect on {interval!r} in pandas; for weeks or days from "
                          "a chosen time use days with an origin, such as '7D', origin='2024-01-01 17:00'")
    return CalendarBins(interval, freq, tz, closed, label, 0)
