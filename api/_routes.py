"""Read-only utility endpoints under ``/v1``: parks, flexibility, DR capacity, baselines, events, OpenADR 3.

Direction parameters accept every spelling of :mod:`flex._direction` (up, reduce, 削峰, peak-shaving /
down, increase, 填谷, valley-filling); responses carry the canonical ``up``/``down`` with its meaning.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import AwareDatetime, ValidationError

from api._auth import Client, require_park
from api._convert import (
    baseline_out,
    capacity_out,
    event_detail_out,
    event_out,
    flexibility_out,
    forecast_out,
    group_capacities,
    park_out,
)
from api._models import (
    BaselineOut,
    CapacityByEventOut,
    CapacityOut,
    EventCapacityOut,
    EventDetailOut,
    EventOut,
    FlexibilityOut,
    ForecastOut,
    MethodCapacityOut,
    Page,
    ParkOut,
    Problem,
)
from api._openadr import availability_report, event_report
from flex import CapacityByEvent, Direction, DrService, EventWindow, baseline_presets, parse_direction
from flex._direction import direction_help, direction_words
from schemas.topics import ID_PATTERN

router = APIRouter(prefix="/v1")

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_ERR: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing, malformed, unknown, expired or revoked API key",
          "content": _PROBLEM},
    403: {"model": Problem, "description": "the key is not scoped to this park", "content": _PROBLEM},
    404: {"model": Problem, "description": "no such park or event", "content": _PROBLEM},
    422: {"model": Problem, "description": "invalid parameters, or data insufficient for the computation",
          "content": _PROBLEM},
}
_HISTORY_ROWS = 20_000  # capacity rows grouped per request (two per computation; years of daily runs)
BaselinePreset = StrEnum("BaselinePreset", {name: name for name in sorted(baseline_presets())})  # type: ignore[misc]
DirectionWord = StrEnum("DirectionWord", {word: word for word in direction_words()})  # type: ignore[misc]
DirectionQuery = Annotated[DirectionWord | None, Query(description=f"only this direction: {direction_help()}")]

ParkId = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", max_length=64, description="park id")]
EventId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="event id")]
ObjectId = Annotated[str | None, Query(pattern=r"^[a-zA-Z0-9_-]{1,128}$", description="OpenADR object id")]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
Start = Annotated[AwareDatetime | None, Query(description="inclusive, ISO 8601 with offset")]
End = Annotated[AwareDatetime | None, Query(description="exclusive, ISO 8601 with offset")]


def _service(request: Request) -> DrService:
    service: DrService = request.app.state.service
    return service


def _unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


#: Time parameters must fall in this span: metering data starts in 2000 (schemas.ValidationPolicy), and
#: look-backs and local-date arithmetic near year 1 or 9999 would leave the calendar.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _check_range(start: datetime | None, end: datetime | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not _EARLIEST <= value <= _LATEST:
            raise _unprocessable(f"{name} must be between {_EARLIEST.date()} and {_LATEST.date()}")
    if start is not None and end is not None and end <= start:
        raise _unprocessable("end must be after start")


def _page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    nxt = offset + limit if offset + limit < total else None
    return {"items": items, "total": total, "limit": limit, "offset": offset, "next_offset": nxt}


@router.get("/parks", response_model=Page[ParkOut], responses=_ERR, tags=["parks"])
def list_parks(request: Request, client: Client, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Parks this API key may read."""
    parks, total = _service(request).repo.list_parks(client.park_ids, limit=limit, offset=offset)
    return _page([park_out(p) for p in parks], total, limit, offset)


@router.get("/parks/{park_id}", response_model=ParkOut, responses=_ERR, tags=["parks"])
def get_park(request: Request, client: Client, park_id: ParkId) -> ParkOut:
    """One park."""
    require_park(client, park_id)
    return park_out(_service(request).park(park_id))


@router.get("/parks/{park_id}/flexibility", response_model=FlexibilityOut, responses=_ERR, tags=["flexibility"])
def current_flexibility(request: Request, client: Client, park_id: ParkId) -> FlexibilityOut:
    """Up/down flexibility now, sustained for 15 min, 1 h, 2 h and 4 h, with the per-asset breakdown."""
    require_park(client, park_id)
    return flexibility_out(_service(request).current_flex(park_id))


@router.get("/parks/{park_id}/flexibility/forecast", response_model=ForecastOut, responses=_ERR,
            tags=["flexibility"])
def flexibility_forecast(
    request: Request, client: Client, *, park_id: ParkId,
    hours: Annotated[int, Query(ge=1, le=48, description="forecast horizon")] = 24,
    duration_h: Annotated[float | None, Query(gt=0, le=24, description="only this duration")] = None,
) -> ForecastOut:
    """Flexibility forecast in 15-min slots from the current slot (default 24 h, all reporting durations)."""
    require_park(client, park_id)
    service = _service(request)
    now = service.clock()
    frame = service.forecast_flex(park_id, now=now, n_slots=hours * 4,
                                  durations_h=[duration_h] if duration_h is not None else None)
    return forecast_out(park_id, now, frame)


def _direction(word: DirectionWord | None) -> Direction | None:
    return None if word is None else parse_direction(word.value)


def _by_event_out(table: CapacityByEvent) -> CapacityByEventOut:
    events = [
        EventCapacityOut(
            event_id=e.event_id, start=e.start, end=e.end, duration_h=e.duration_h, direction=e.direction.value,
            requested_kw=e.requested_kw, declared_kw=e.declared_kw, sets_verified=e.sets_verified,
            methods=[MethodCapacityOut(method=m.method, avg_reduction_kw=m.avg_reduction_kw,
                                       pct_of_annual_max=m.pct_of_annual_max, delivered_kwh=m.delivered_kwh,
                                       ratio_requested=m.ratio_requested, quality_ok=m.quality_ok, problem=m.problem,
                                       evaluated_with=m.evaluated_with) for m in e.methods],
        )
        for e in table.events
    ]
    return CapacityByEventOut(as_of=table.as_of, annual_max_demand_kw=table.annual_max_demand_kw,
                              annual_max_demand_at=table.annual_max_demand_at, methods=list(table.methods),
                              events=events)


@router.get("/parks/{park_id}/dr-capacity", response_model=CapacityOut, responses=_ERR, tags=["dr-capacity"])
def dr_capacity(
    request: Request, client: Client, *, park_id: ParkId,
    by_event: Annotated[bool, Query(description="add every evaluated event under every baseline method (kW and "
                                                "% of annual max), computed for this request")] = False,
    method: Annotated[list[BaselinePreset] | None, Query(
        description="with by_event: only these presets (repeat the parameter; default: every preset)")] = None,
    direction: DirectionQuery = None,
) -> CapacityOut:
    """Latest declared and verified DR capacity (kW and % of annual maximum 15-min demand).

    With ``by_event=true`` the response also carries, for every evaluated event and every baseline method,
    the average reduction and its share of the annual maximum (``by_event``), not only the best event's.
    """
    require_park(client, park_id)
    service = _service(request)
    service.park(park_id)
    history, _ = service.repo.capacity_history(park_id, start=None, end=None, limit=8, offset=0)
    if history:
        out = capacity_out(park_id, group_capacities(history)[0], "stored")
    else:
        out = capacity_out(park_id, service.capacity(park_id, persist=False), "live")
    if not by_event:
        return out
    table = service.capacity_by_event(park_id, methods=[m.value for m in method] if method else None,
                                      direction=_direction(direction))
    return out.model_copy(update={"by_event": _by_event_out(table)})


@router.get("/parks/{park_id}/dr-capacity/history", response_model=Page[CapacityOut], responses=_ERR,
            tags=["dr-capacity"])
def dr_capacity_history(
    request: Request, client: Client, *, park_id: ParkId, start: Start = None, end: End = None,
    limit: Limit = 100, offset: Offset = 0,
) -> dict[str, Any]:
    """Every stored capacity computation in [start, end), newest first."""
    require_park(client, park_id)
    _check_range(start, end)
    service = _service(request)
    service.park(park_id)
    rows, _ = service.repo.capacity_history(park_id, start=start, end=end, limit=_HISTORY_ROWS, offset=0)
    groups = group_capacities(rows)
    page = [capacity_out(park_id, g, "stored") for g in groups[offset:offset + limit]]
    return _page(page, len(groups), limit, offset)


@router.get("/parks/{park_id}/baseline", response_model=BaselineOut, responses=_ERR, tags=["baselines"])
def baseline(
    request: Request, client: Client, *, park_id: ParkId,
    start: Annotated[AwareDatetime, Query(description="window start, on the 15-min grid")],
    end: Annotated[AwareDatetime, Query(description="window end (exclusive), at most 24 h after start")],
    method: Annotated[BaselinePreset | None, Query(description="preset; default: the park's method")] = None,
    overrides: Annotated[str | None, Query(max_length=2000, description="JSON object of method overrides")] = None,
    notice_date: Annotated[date | None, Query(description="local date the event was notified")] = None,
) -> BaselineOut:
    """Baseline for a window with the days used, every excluded day and why, and the adjustment."""
    require_park(client, park_id)
    _check_range(start, end)
    if notice_date is not None and not _EARLIEST.date() <= notice_date <= _LATEST.date():
        raise _unprocessable(f"notice_date must be between {_EARLIEST.date()} and {_LATEST.date()}")
    if end - start > timedelta(hours=24):
        raise _unprocessable("the window may span at most 24 hours")
    parsed: dict[str, Any] | None = None
    if overrides is not None:
        try:
            parsed = json.loads(overrides)
        except json.JSONDecodeError as exc:
            raise _unprocessable(f"overrides is not valid JSON: {exc.msg}") from None
        if not isinstance(parsed, dict):
            raise _unprocessable("overrides must be a JSON object")
    service = _service(request)
    service.park(park_id)
    try:
        resolved = service.method_for(park_id, method.value if method is not None else None, parsed)
    except ValidationError as exc:
        raise _unprocessable(f"invalid overrides: {exc.errors(include_url=False, include_input=False)}") from None
    result = service.baseline(park_id, EventWindow(start, end), method=resolved, notice_day=notice_date)
    return baseline_out(park_id, result)


@router.get("/parks/{park_id}/events", response_model=Page[EventOut], responses=_ERR, tags=["events"])
def list_events(
    request: Request, client: Client, *, park_id: ParkId, start: Start = None, end: End = None,
    direction: DirectionQuery = None, limit: Limit = 100, offset: Offset = 0,
) -> dict[str, Any]:
    """DR events overlapping [start, end) (optionally of one direction), newest first, with their performance
    once evaluated."""
    require_park(client, park_id)
    _check_range(start, end)
    service = _service(request)
    service.park(park_id)
    events, total = service.repo.list_events(park_id, start=start, end=end, limit=limit, offset=offset,
                                             direction=_direction(direction))
    return _page([event_out(e, service.repo.get_result(e.event_id)) for e in events], total, limit, offset)


def _event(service: DrService, park_id: str, event_id: str) -> Any:
    service.park(park_id)
    event = service.repo.get_event(event_id)
    if event is None or event.park_id != park_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"event {event_id!r} not found in park {park_id!r}")
    return event


@router.get("/parks/{park_id}/events/{event_id}", response_model=EventDetailOut, responses=_ERR, tags=["events"])
def get_event(request: Request, client: Client, park_id: ParkId, event_id: EventId) -> EventDetailOut:
    """One event with its performance and per-interval baseline, actual and reduction."""
    require_park(client, park_id)
    service = _service(request)
    event = _event(service, park_id, event_id)
    return event_detail_out(event, service.repo.get_result(event_id), service.repo.get_intervals(event_id))


def _openadr_ids(request: Request, program_id: str | None, event_id: str | None) -> tuple[str, str]:
    settings = request.app.state.settings
    program = program_id or settings.openadr_program_id
    event = event_id or settings.openadr_event_id
    if not program or not event:
        raise _unprocessable("program_id and event_id are required (no VTN program/event configured)")
    return program, event


@router.get("/parks/{park_id}/openadr/availability-report", responses=_ERR, tags=["openadr"],
            response_model=dict[str, Any])
def openadr_availability(
    request: Request, client: Client, *, park_id: ParkId,
    hours: Annotated[int, Query(ge=1, le=48, description="forecast horizon")] = 24,
    duration_h: Annotated[float | None, Query(gt=0, le=24, description="sustain duration")] = None,
    program_id: ObjectId = None,
    event_id: ObjectId = None,
) -> dict[str, Any]:
    """OpenADR 3 report: UP/DOWN_REGULATION_AVAILABLE (FORECAST, KW) per 15-min slot."""
    require_park(client, park_id)
    program, vtn_event = _openadr_ids(request, program_id, event_id)
    service = _service(request)
    duration = duration_h or service.repo.get_settings(park_id).declared_duration_h \
        or service.policy.declared_duration_h
    frame = service.forecast_flex(park_id, n_slots=hours * 4, durations_h=[duration])
    return availability_report(frame, duration_h=duration, program_id=program, event_id=vtn_event,
                               client_name=request.app.state.settings.ven_name, park_id=park_id)


@router.get("/parks/{park_id}/events/{event_id}/openadr-report", responses=_ERR, tags=["openadr"],
            response_model=dict[str, Any])
def openadr_event_report(
    request: Request, client: Client, *, park_id: ParkId, event_id: EventId,
    program_id: ObjectId = None,
    vtn_event_id: ObjectId = None,
) -> dict[str, Any]:
    """OpenADR 3 report: BASELINE, USAGE, DELTA_USAGE (KWH) and DATA_QUALITY per interval of an evaluated
    event. ``program_id`` defaults to the event's program, ``vtn_event_id`` to the event id."""
    require_park(client, park_id)
    service = _service(request)
    event = _event(service, park_id, event_id)
    intervals = service.repo.get_intervals(event_id)
    if intervals.is_empty():
        raise _unprocessable(f"event {event_id} has not been evaluated yet")
    program, vtn_event = _openadr_ids(request, program_id or event.program_id, vtn_event_id or event_id)
    return event_report(intervals, program_id=program, event_id=vtn_event,
                        client_name=request.app.state.settings.ven_name, park_id=park_id, local_event_id=event_id)

