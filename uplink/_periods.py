"""Local calendar periods of a park (15 min, hour, day, month) between two local dates.

Days start at local 00:00 and months on the 1st (the platforms' alignment rule); each period is returned
with its aware local start and its UTC start and end, so rollups stored by UTC start can be looked up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.uplink_record import Period

_STEP = {"15min": timedelta(minutes=15), "hour": timedelta(hours=1)}


@dataclass(frozen=True, slots=True)
class LocalPeriod:
    """One period: its kind, aware local start, and UTC bounds ``[start_utc, end_utc)``."""

    period: Period
    start_local: datetime
    start_utc: datetime
    end_utc: datetime

    def intervals(self, interval_s: int = 900) -> int:
        """How many metering intervals the period holds (DST days have more or fewer)."""
        return max(1, round((self.end_utc - self.start_utc).total_seconds() / interval_s))


def month_start(day: date) -> date:
    """The first of ``day``'s month."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first of the month after ``day``'s."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def iter_periods(period: Period, start: date, end: date, timezone: str) -> Iterator[LocalPeriod]:
    """The ``period`` periods starting in local ``[start, end)`` (months: those whose 1st is in the range,
    or that contain ``start``)."""
    tz = ZoneInfo(timezone)
    if period == "day":
        day = start
        while day < end:
            yield _local(period, _midnight(day, tz), _midnight(day + timedelta(days=1), tz))
            day += timedelta(days=1)
    elif period == "month":
        first = month_start(start)
        while first < end:
            yield _local(period, _midnight(first, tz), _midnight(next_month(first), tz))
            first = next_month(first)
    else:
        step = _STEP[period]
        cursor = _midnight(start, tz).astimezone(UTC)
        stop = _midnight(end, tz).astimezone(UTC)
        while cursor < stop:  # UTC arithmetic: exact through DST changes
            yield _local(period, cursor.astimezone(tz), (cursor + step).astimezone(tz))
            cursor += step


def _local(period: Period, start: datetime, end: datetime) -> LocalPeriod:
    return LocalPeriod(period, start, start.astimezone(UTC), end.astimezone(UTC))
