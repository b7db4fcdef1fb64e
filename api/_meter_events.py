"""Meter events under ``/v1/parks/{park_id}/meter-events``: replacements, CT/PT ratio changes, confirmed resets.

The same operations as ``parkpulse meter-event`` (:mod:`aggregation._event_store` does the work): list
(read scope), record one, import a CSV (all or nothing, problems by line) and void (write scope). Events
are an audit trail: never edited; a correction voids the old event and records a new one in the same
transaction (``corrects``). Recording or voiding queues the affected ranges in the change log, so the
next aggregation run recomputes the intervals, rollups and indicators there (``next_step`` says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from aggregation._event_input import (
    EventInput,
    InvalidMeterEventError,
    MeterEventConflictError,
    MeterEventError,
    MeterEventNotFoundError,
    complete,
    normalise_kind,
    parse_events_csv,
)
from aggregation._event_store import RecordResult, list_events, record_events, void_event
from api._keys import ApiClient
from api._models import Page, Problem, _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader, ParkWriter
from schemas.topics import ID_PATTERN

router = APIRouter(prefix="/v1", tags=["meter events"])

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **OPERATOR_RESPONSES,
    409: {"model": Problem, "description": "a live event already exists at that instant, or the event is already "
                                           "void", "content": _PROBLEM},
    413: {"model": Problem, "description": "the CSV body is too large", "content": _PROBLEM},
}
MAX_CSV_BYTES: Final = 4 * 1024 * 1024
_MAX_ID: Final = 2**63 - 1
_NEXT: Final = ("the next aggregation run (`parkpulse aggregate`) recomputes the affected intervals, rollups and "
                "indicators")

EventId = Annotated[int, Path(ge=1, le=_MAX_ID, description="meter event id")]
Kind = Literal["replacement", "ratio_change", "ratio-change", "reset"]


class MeterEventIn(BaseModel):
    """One event. Registers are in the metric's canonical unit (kWh, m3, GJ), as the meter shows them."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=f"^{ID_PATTERN}$", max_length=64)
    kind: Kind
    at: datetime = Field(description="when it happened, ISO 8601; without an offset it is read in the park's "
                                     "time zone (the response says so)")
    metric: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,64}$",
                               description="the register (default: the device's energy register)")
    old_final: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                    description="old meter's final register (replacement); reset: the register "
                                                "just before the clear; ratio change: the register at the change")
    new_initial: float | None = Field(default=None, ge=0, allow_inf_nan=False,
                                      description="new meter's initial register; reset: the value cleared to "
                                                  "(default 0)")
    old_ratio: str | None = Field(default=None, max_length=64, description="ratio before: 200/5 or 200/5x10000/100")
    new_ratio: str | None = Field(default=None, max_length=64, description="ratio after: 400/5 …")
    old_multiplier: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="or the multiplier")
    new_multiplier: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="or the multiplier")
    note: str | None = Field(default=None, max_length=2000)
    corrects: int | None = Field(default=None, ge=1, le=_MAX_ID,
                                 description="void this event and record this one in its place")
    reason: str | None = Field(default=None, max_length=500, description="why the corrected event is voided")


class VoidIn(BaseModel):
    """Why the event is void (kept in the audit trail)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class MeterEventOut(_Out):
    """A recorded event and its audit fields."""

    event_id: int
    park_id: str
    device_id: str
    metric: str
    kind: Literal["replacement", "ratio_change", "reset"]
    occurred_at: datetime
    old_final: float | None
    new_initial: float | None
    old_multiplier: float | None
    new_multiplier: float | None
    old_ratio: str | None
    new_ratio: str | None
    note: str | None
    recorded_by: str
    recorded_at: datetime
    source: Literal["cli", "api", "import"]
    corrects: int | None = Field(description="the voided event this one replaces")
    voided_at: datetime | None
    voided_by: str | None
    void_reason: str | None


class RecordOut(_Out):
    """What recording did."""

    park_id: str
    events: list[MeterEventOut]
    notes: list[str] = Field(description="how inputs were read (a time without offset, a ratio on primary-side "
                                         "registers)")
    queued: int = Field(description="change ranges queued for recomputation")
    next_step: str


def _by(client: ApiClient) -> str:
    return f"{client.name} (api key {client.client_id})"


def _http(exc: Exception) -> HTTPException:

    if isinstance(exc, MeterEventNotFoundError):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))
    if isinstance(exc, MeterEventConflictError):
        return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))
    if isinstance(exc, InvalidMeterEventError):
        conflict = [p for p in exc.problems if "already recorded" in p]
        code = status.HTTP_409_CONFLICT if conflict and len(conflict) == len(exc.problems) else 422
        return HTTPException(code, detail="nothing was recorded: " + str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))


def _record_out(park_id: str, result: RecordResult) -> dict[str, Any]:
    return {"park_id": park_id, "events": [e.to_json() for e in result.events], "notes": result.notes,
            "queued": result.queued, "next_step": _NEXT if result.queued else
            "no readings of that register yet: the event applies when they arrive"}


@router.get("/parks/{park_id}/meter-events", response_model=Page[MeterEventOut], responses=_RESPONSES)
def list_meter_events(
    client: ParkReader, park_id: ParkId, conn: Connection, *,
    device_id: Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$", max_length=64, description="only this device")
                         ] = None,
    include_void: Annotated[bool, Query(description="include voided events (the audit trail)")] = True,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The park's meter events in time order, voided ones included unless asked otherwise (read scope)."""

    try:
        events = list_events(conn, park_id, device_id=device_id, include_void=include_void)
    except MeterEventError as exc:
        raise _http(exc) from None
    page = events[offset:offset + limit]
    nxt = offset + limit if offset + limit < len(events) else None
    return {"items": [e.to_json() for e in page], "total": len(events), "limit": limit, "offset": offset,
            "next_offset": nxt}


@router.post("/parks/{park_id}/meter-events", response_model=RecordOut, status_code=status.HTTP_201_CREATED,
             responses=_RESPONSES)
def record_meter_event(client: ParkWriter, park_id: ParkId, body: MeterEventIn, conn: Connection) -> dict[str, Any]:
    """Record one event (write scope); the next aggregation run makes the energy across it exact."""

    try:
        ev = complete(EventInput(park_id, body.device_id, normalise_kind(body.kind), body.at, body.metric,
                                 body.old_final, body.new_initial, body.old_multiplier, body.new_multiplier,
                                 body.old_ratio, body.new_ratio, body.note))
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    try:
        result = record_events(conn, [ev], recorded_by=_by(client), source="api", corrects=body.corrects,
                               reason=body.reason)
    except MeterEventError as exc:
        raise _http(exc) from None
    return _record_out(park_id, result)


@router.api_route("/parks/{park_id}/meter-events", methods=["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
                  include_in_schema=False)
def meter_events_other_methods(park_id: ParkId) -> None:
    """405 naming both methods of the path (Starlette alone would name only the first route's GET)."""
    del park_id
    raise HTTPException(status.HTTP_405_METHOD_NOT_ALLOWED,
                        detail="use GET to list the park's meter events or POST to record one; events are never "
                               "edited or deleted: void one with POST …/meter-events/{event_id}/void",
                        headers={"Allow": "GET, POST"})


@router.post("/parks/{park_id}/meter-events/import", response_model=RecordOut, status_code=status.HTTP_201_CREATED,
             responses=_RESPONSES, openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {
                 "schema": {"type": "string", "description": "park_id,device_id,kind,at,metric,old_final,new_initial,"
                                                            "old_ratio,new_ratio,old_multiplier,new_multiplier,note "
                                                            "(device_id, kind, at required)"}}}}})
async def import_meter_events(request: Request, client: ParkWriter, park_id: ParkId,
                              conn: Connection) -> dict[str, Any]:
    """Record the events of a CSV file, all or nothing (write scope); problems are listed by line."""

    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"the body has {len(body):,} bytes; send at most {MAX_CSV_BYTES:,} bytes per "
                                   "request (split the file)")
    text = body.decode("utf-8-sig", errors="replace")

    def work() -> RecordResult:
        inputs = parse_events_csv(text, "CSV body", park_id)
        return record_events(conn, inputs, recorded_by=_by(client), source="import", source_name="CSV body")

    try:
        result = await run_in_threadpool(work)
    except MeterEventError as exc:
        raise _http(exc) from None
    return _record_out(park_id, result)


@router.post("/parks/{park_id}/meter-events/{event_id}/void", response_model=MeterEventOut, responses=_RESPONSES)
def void_meter_event(client: ParkWriter, park_id: ParkId, event_id: EventId, body: VoidIn,
                     conn: Connection) -> dict[str, Any]:
    """Void an event (write scope): it stays in the audit trail and the next run recomputes without it."""

    try:
        ev = void_event(conn, event_id, reason=body.reason, voided_by=_by(client), park_id=park_id)
    except MeterEventError as exc:
        raise _http(exc) from None
    return ev.to_json()
