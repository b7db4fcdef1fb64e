"""Reporting periods: month, quarter, year and year to date, as local calendar ranges.

Indicator periods are whole local months of the park's calendar: ``2026-10`` (month), ``2026-Q4``
(quarter), ``2026`` (year), ``2026-YTD`` (January up to and including the current month, given "today"),
``2026-10-YTD`` (January to October). A period knows its first day, its exclusive end and its months, and
converts them to UTC instants in a given time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from aggregation.errors import PeriodError

PeriodKind = Literal["month", "quarter", "year", "ytd"]

_MONTH: Final = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)
_QUARTER: Final = re.compile(r"^(\d{4})-[Qq]([1-4])$", re.ASCII)
_YEAR: Final = re.compile(r"^(\d{4})$", re.ASCII)
_YTD: Final = re.compile(r"^(\d{4})(?:-(\d{2}))?-[Yy][Tt][Dd]$", re.ASCII)


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + (d.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """A span of whole local months: ``[start, end)`` in the park's calendar."""

    label: str
    kind: PeriodKind
    start: date
    end: date

    @property
    def year(self) -> int:
        """The calendar year the period belongs to (selects factor vintages)."""
        return self.start.year

    def months(self) -> list[date]:
        """First day of every month in the period, in order."""
        out: list[date] = []
        current = self.start
        while current < self.end:
            out.append(current)
            current = _add_months(current, 1)
        return out

    def utc_bounds(self, tz: str) -> tuple[datetime, datetime]:
        """UTC instants of the local start and exclusive end of the period."""
        zone = ZoneInfo(tz)
        lo = datetime(self.start.year, self.start.month, self.start.day, tzinfo=zone).astimezone(UTC)
        hi = datetime(self.end.year, self.end.month, self.end.day, tzinfo=zone).astimezone(UTC)
        return lo, hi


#: Years a report period may name: metering data of this platform cannot predate 1970 or follow 2200.
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2200


def month_period(month_start: date) -> Period:
    """The one-month period starting at ``month_start`` (day ignored)."""
    start = date(month_start.year, month_start.month, 1)
    return Period(f"{start.year:04d}-{start.month:02d}", "month", start, _add_months(start, 1))


def parse_period(text: str, today: date | None = None) -> Period:
    """Parse a period string; ``today`` (local date) bounds ``YYYY-YTD`` to the current month."""
    raw = text.strip()
    year_text = raw[:4]
    if year_text.isascii() and year_text.isdigit() and not MIN_YEAR <= int(year_text) <= MAX_YEAR:
        raise PeriodError(text, f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    if m := _MONTH.match(raw):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise PeriodError(text, "month must be 01..12")
        return month_period(date(year, month, 1))
    if m := _QUARTER.match(raw):
        year, q = int(m[1]), int(m[2])
        start = date(year, 3 * (q - 1) + 1, 1)
        return Period(f"{year:04d}-Q{q}", "quarter", start, _add_months(start, 3))
    if m := _YEAR.match(raw):
        year = int(m[1])
        return Period(f"{year:04d}", "year", date(year, 1, 1), date(year + 1, 1, 1))
    if m := _YTD.match(raw):
        year = int(m[1])
        if m[2] is not None:
            last = int(m[2])
            if not 1 <= last <= 12:
                raise PeriodError(text, "month must be 01..12")
        else:
            ref = today or datetime.now(UTC).date()
            last = 12 if ref.year > year else ref.month
            if ref.year < year:
                raise PeriodError(text, "year to date of a future year")
        return Period(f"{year:04d}-{last:02d}-YTD", "ytd", date(year, 1, 1),
                      _add_months(date(year, last, 1), 1))
    raise PeriodError(text, "use YYYY-MM, YYYY-Qn, YYYY, YYYY-YTD or YYYY-MM-YTD")
