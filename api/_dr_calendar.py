"""A park's own DR calendar: ``GET``/``PUT /v1/parks/{park_id}/dr/calendar`` (read / write scope).

The days a park declares (its own shutdowns as ``holiday``, days it works although the national calendar
rests as ``workday``) are layered over the built-in Chinese public-holiday calendar and used by every
baseline of the park, and so by every evaluation and capacity figure computed afterwards. ``PUT`` replaces
the park's days (``merge=true``: adds or updates only the given ones); an empty list clears them. The
storage is the DR service's repository, like every other DR route.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api._operator import OPERATOR_RESPONSES, ParkId, ParkReader, ParkWriter
from flex import CalendarFileError, DrService, HolidayCalendar, parse_calendar_rows
from flex._series import park_zone

router = APIRouter(prefix="/v1", tags=["dr-calendar"])

_DAY_TYPE_MEANINGS = {
    "workday": "workday",
    "adjusted_workday": "adjusted workday (调休上班)",
    "weekend": "weekend",
    "holiday": "holiday (放假)",
}


class CalendarDayIn(BaseModel):
    """One day the park declares (a local date in the park's time zone)."""

    model_config = ConfigDict(extra="forbid")

    date: date
    kind: Literal["holiday", "workday"] = Field(
        description="holiday: the park does not produce; workday: it works normally (调休上班, or through a "
                    "public holiday)")
    name: str = Field(default="", max_length=64, description="e.g. 年度检修 (annual maintenance)")


class CalendarIn(BaseModel):
    """The park's own days; PUT replaces all of them (an empty list clears the park's calendar)."""

    model_config = ConfigDict(extra="forbid")

    days: list[CalendarDayIn] = Field(max_length=5000)


class CalendarDayOut(BaseModel):
    """A day of the park's own calendar."""

    model_config = ConfigDict(frozen=True)

    date: date
    kind: Literal["holiday", "workday"]
    name: str


class SpecialDayOut(BaseModel):
    """A day of the year that is not an ordinary weekday or weekend day, as baselines see it."""

    model_config = ConfigDict(frozen=True)

    date: date
    day_type: Literal["workday", "adjusted_workday", "weekend", "holiday"]
    day_type_meaning: str
    name: str
    source: Literal["park", "national"]
    overrides: str | None = Field(description="the national day type a park day replaces, when different")


class CalendarOut(BaseModel):
    """The park's own days and the effective special days of ``year``."""

    model_config = ConfigDict(frozen=True)

    park_id: str
    year: int
    national_status: Literal["official", "provisional"] | None = Field(
        description="the built-in calendar's status for the year; null when it does not cover the year")
    national_notice: str | None
    days: list[CalendarDayOut] = Field(description="every day the park declared (all years), sorted by date")
    effective: list[SpecialDayOut] = Field(description="holidays and adjusted workdays of the year, park days "
                                                       "first in precedence")


Year = Annotated[int | None, Query(ge=2000, le=2099, description="local calendar year (default: the current one)")]


def _service(request: Request) -> DrService:
    service: DrService = request.app.state.service
    return service


def _calendar_out(park_id: str, calendar: HolidayCalendar, year: int) -> CalendarOut:
    info = calendar.years.get(year)
    status_value: Literal["official", "provisional"] | None = None
    if info is not None:
        status_value = "official" if info.status == "official" else "provisional"
    return CalendarOut(
        park_id=park_id, year=year, national_status=status_value, national_notice=info.notice if info else None,
        days=[CalendarDayOut(date=d.day, kind=d.kind.value, name=d.name)
              for d in sorted(calendar.park_days.values(), key=lambda d: d.day)],
        effective=[
            SpecialDayOut(date=s.day, day_type=s.day_type.value, day_type_meaning=_DAY_TYPE_MEANINGS[s.day_type.value],
                          name=s.name, source="park" if s.source == "park" else "national",
                          overrides=s.overrides.value if s.overrides else None)
            for s in calendar.special_days(year)
        ],
    )


def _year(service: DrService, park_id: str, year: int | None) -> int:
    if year is not None:
        return year
    return datetime.now(UTC).astimezone(park_zone(service.park(park_id).timezone)).year


@router.get("/parks/{park_id}/dr/calendar", response_model=CalendarOut, responses=OPERATOR_RESPONSES)
def get_calendar(request: Request, client: ParkReader, park_id: ParkId, year: Year = None) -> CalendarOut:
    """The park's own days and the effective holidays and adjusted workdays of a year."""
    del client
    service = _service(request)
    service.park(park_id)
    return _calendar_out(park_id, service.park_calendar(park_id), _year(service, park_id, year))


@router.put("/parks/{park_id}/dr/calendar", response_model=CalendarOut, responses=OPERATOR_RESPONSES)
def put_calendar(
    request: Request, *, client: ParkWriter, park_id: ParkId, body: CalendarIn,
    merge: Annotated[bool, Query(description="keep the park's other days; only add or update these")] = False,
    year: Year = None,
) -> CalendarOut:
    """Replace the park's own days (or merge them in); baselines computed from now on use them.

    Events evaluated before keep their stored result until they are evaluated again.
    """
    del client
    service = _service(request)
    service.park(park_id)
    try:
        days = parse_calendar_rows([d.model_dump(mode="json") for d in body.days], source="request body days")
    except CalendarFileError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"{exc} (rows count from 1); fix the day and send the calendar again") from None
    calendar = service.set_calendar(park_id, days, merge=merge)
    return _calendar_out(park_id, calendar, _year(service, park_id, year))


@router.api_route("/parks/{park_id}/dr/calendar", methods=["POST", "PATCH", "DELETE", "OPTIONS", "TRACE"],
                  include_in_schema=False)
def calendar_other_methods(park_id: ParkId) -> None:
    """405 naming both methods of the path (Starlette alone would name only the first route's GET)."""
    del park_id
    raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED,
                        detail="use GET to read the park's calendar or PUT to replace it",
                        headers={"Allow": "GET, PUT"})
