"""The Chinese public-holiday calendar (data file) and the day types baselines select on.

Baseline methods pick "similar days": workdays for a workday event, weekends and holidays otherwise, and
never a public holiday for a workday baseline. In China the working week is moved around holidays
(调休), so a Saturday can be a working day and a Wednesday a holiday; the calendar therefore comes from the
State Council's yearly notice, shipped as data (``flex/data/cn_public_holidays.yaml``) with its source and
status, never from ``date.weekday()`` alone.

A park can layer its own days over that calendar (:meth:`HolidayCalendar.with_park_days`): shutdown days
declared holidays, or days it works although the nation rests. Park days always win over the built-in
calendar and classify their day even in a year the data file does not cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from flex.errors import CalendarCoverageError, DataFileError

_DEFAULT_FILE = "cn_public_holidays.yaml"
_SATURDAY = 5


class DayType(StrEnum):
    """What kind of day a local calendar date is, for baseline day selection."""

    WORKDAY = "workday"                    # Monday to Friday, not a public holiday
    ADJUSTED_WORKDAY = "adjusted_workday"  # a weekend day declared a working day (调休上班)
    WEEKEND = "weekend"                    # Saturday or Sunday, not a holiday and not adjusted
    HOLIDAY = "holiday"                    # inside a public-holiday block (放假)

    @property
    def is_working(self) -> bool:
        """True for days on which a normal production schedule runs."""
        return self in (DayType.WORKDAY, DayType.ADJUSTED_WORKDAY)


class CalendarDayKind(StrEnum):
    """What a park declares a day to be; the weekday decides whether a workday is an adjusted one."""

    HOLIDAY = "holiday"   # the park does not produce (own shutdown, local holiday)
    WORKDAY = "workday"   # the park works normally (调休上班, or production through a public holiday)


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """One day of a park's own calendar (local date in the park's time zone)."""

    day: date
    kind: CalendarDayKind
    name: str = ""


@dataclass(frozen=True, slots=True)
class SpecialDay:
    """A day that is not an ordinary weekday or weekend day, and where that comes from."""

    day: date
    day_type: DayType
    name: str
    source: str                    # "park" or "national"
    overrides: DayType | None = None  # the built-in classification a park day replaces, when different


@dataclass(frozen=True, slots=True)
class YearInfo:
    """Provenance of one calendar year."""

    year: int
    status: str       # official | provisional
    confidence: str   # V | K | U
    notice: str


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Public holidays and adjusted working days for the years the data file covers."""

    holidays: dict[date, str]
    adjusted_workdays: frozenset[date]
    years: dict[int, YearInfo]
    source: str
    park_days: Mapping[date, CalendarDay] = field(default_factory=dict)

    def with_park_days(self, days: Iterable[CalendarDay]) -> HolidayCalendar:
        """This calendar with a park's own days layered on top (they override the built-in days)."""
        layered = {d.day: d for d in days}
        if not layered:
            return self
        return replace(self, park_days=layered, source=f"{self.source} + {len(layered)} park day(s)")

    @property
    def covered_years(self) -> tuple[int, ...]:
        """The calendar years this calendar can classify."""
        return tuple(sorted(self.years))

    def covers(self, day: date) -> bool:
        """True when the year of ``day`` is in the data file, or the park declared that day."""
        return day.year in self.years or day in self.park_days

    def is_provisional(self, day: date) -> bool:
        """True when ``day`` falls in a year whose official notice is not in the data yet."""
        info = self.years.get(day.year)
        return info is not None and info.status != "official"

    def day_type(self, day: date) -> DayType:
        """Classify ``day``; raises :class:`CalendarCoverageError` for years the data does not cover."""
        own = self.park_days.get(day)
        if own is not None:
            return _park_day_type(own)
        return self._national_day_type(day)

    def _national_day_type(self, day: date) -> DayType:
        if day.year not in self.years:
            raise CalendarCoverageError(day, self.covered_years)
        if day in self.holidays:
            return DayType.HOLIDAY
        if day in self.adjusted_workdays:
            return DayType.ADJUSTED_WORKDAY
        return DayType.WEEKEND if day.weekday() >= _SATURDAY else DayType.WORKDAY

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name (e.g. 春节, or the park's own) or None when ``day`` is not a holiday."""
        own = self.park_days.get(day)
        if own is not None:
            return (own.name or "park holiday") if own.kind is CalendarDayKind.HOLIDAY else None
        return self.holidays.get(day)

    def special_days(self, year: int) -> list[SpecialDay]:
        """Every holiday and adjusted workday of ``year``, and every park day, sorted by date.

        National days the park overrides are listed once, as the park's, with the type they replace.
        """
        out: dict[date, SpecialDay] = {}
        for day, name in self.holidays.items():
            if day.year == year:
                out[day] = SpecialDay(day, DayType.HOLIDAY, name, "national")
        for day in self.adjusted_workdays:
            if day.year == year:
                out[day] = SpecialDay(day, DayType.ADJUSTED_WORKDAY, "调休上班", "national")
        for day, own in self.park_days.items():
            if day.year != year:
                continue
            try:
                before: DayType | None = self._national_day_type(day)
            except CalendarCoverageError:
                before = None
            after = _park_day_type(own)
            out[day] = SpecialDay(day, after, own.name, "park", before if before is not after else None)
        return [out[d] for d in sorted(out)]


def _park_day_type(own: CalendarDay) -> DayType:
    if own.kind is CalendarDayKind.HOLIDAY:
        return DayType.HOLIDAY
    return DayType.ADJUSTED_WORKDAY if own.day.weekday() >= _SATURDAY else DayType.WORKDAY


def _as_date(value: Any, where: str, path: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise DataFileError(path, f"{where}: {value!r} is not an ISO date") from None


def parse_holiday_calendar(document: dict[str, Any], path: str = "<memory>") -> HolidayCalendar:
    """Build a :class:`HolidayCalendar` from the parsed YAML document; raises :class:`DataFileError`."""
    years_doc = document.get("years")
    if not isinstance(years_doc, dict) or not years_doc:
        raise DataFileError(path, "missing 'years' mapping")
    holidays: dict[date, str] = {}
    adjusted: set[date] = set()
    years: dict[int, YearInfo] = {}
    for raw_year, body in years_doc.items():
        year = int(raw_year)
        if not isinstance(body, dict):
            raise DataFileError(path, f"year {year}: expected a mapping")
        status = str(body.get("status", ""))
        if status not in ("official", "provisional"):
            raise DataFileError(path, f"year {year}: status must be official or provisional, got {status!r}")
        years[year] = YearInfo(year, status, str(body.get("confidence", "U")), str(body.get("notice", "")))
        for block in body.get("holidays") or []:
            start = _as_date(block.get("from"), f"{year} {block.get('name')}", path)
            end = _as_date(block.get("to"), f"{year} {block.get('name')}", path)
            if end < start or (end - start).days > 14:
                raise DataFileError(path, f"{year} {block.get('name')}: bad range {start}..{end}")
            day = start
            while day <= end:
                holidays[day] = str(block.get("name", "holiday"))
                day += timedelta(days=1)
        for raw in body.get("adjusted_workdays") or []:
            day = _as_date(raw, f"{year} adjusted_workdays", path)
            if day.weekday() < _SATURDAY:
                raise DataFileError(path, f"adjusted workday {day} is not a weekend day")
            adjusted.add(day)
    clash = adjusted & holidays.keys()
    if clash:
        raise DataFileError(path, f"days both holiday and adjusted workday: {sorted(clash)}")
    return HolidayCalendar(holidays, frozenset(adjusted), years, source=path)


def load_holiday_calendar(path: Path | None = None) -> HolidayCalendar:
    """Load a calendar file; without ``path`` the shipped Chinese calendar (cached)."""
    if path is None:
        return _default_calendar()
    with path.open(encoding="utf-8") as fh:
        return parse_holiday_calendar(yaml.safe_load(fh), str(path))


@cache
def _default_calendar() -> HolidayCalendar:
    text = resources.files("flex").joinpath("data", _DEFAULT_FILE).read_text(encoding="utf-8")
    return parse_holiday_calendar(yaml.safe_load(text), f"flex/data/{_DEFAULT_FILE}")
