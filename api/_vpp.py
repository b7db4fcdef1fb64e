"""The VPP loop for a utility or aggregator: events received, what the park committed, commands sent.

* ``GET /v1/parks/{park_id}/vpp/events`` (``read``) — DR events received over OpenADR (newest first): version,
  status, opt decision, requested and committed kW, and the latest dispatch plan's figures;
* ``GET /v1/parks/{park_id}/vpp/events/{event_id}`` (``read``) — one event with its intervals, the latest plan
  per interval (target, planned response) and its commands counted by status;
* ``GET /v1/parks/{park_id}/vpp/commitments`` (``read``) — per event: opt in/out and why, the kW committed to
  the VTN, and the kW the dispatch plan holds in every interval;
* ``GET /v1/parks/{park_id}/vpp/commands`` (``read``) — the audited setpoint commands with their latest status
  (sent, resent, applied, rejected with reason, expired, suppressed by an override, cancelled);
* ``GET|POST /v1/parks/{park_id}/vpp/overrides``, ``DELETE …/vpp/overrides/{override_id}`` (``write`` to
  change) — operator overrides: exclude a device from dispatch or cap how far it may be moved, until a time.

Live M&V of an event (``…/vpp/events/{event_id}/performance``) is in :mod:`api._vpp_mv`, included here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api._models import _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader, ParkWriter
from api._vpp_mv import router as _mv_router
from vpp._dispatch_store import (
    Override,
    clear_override,
    latest_plans,
    list_commands,
    list_overrides,
    set_override,
)
from vpp.errors import DispatchStoreError, OverrideNotFoundError

router = APIRouter(prefix="/v1", tags=["vpp"])
router.include_router(_mv_router)

EventId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="ParkPulse DR event id")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
_EVENT_COLUMNS = """dr_event_id, source, vtn_id, vtn_event_id, modification_number, vtn_status, action, opt, opt_reason,
    signal_name, signal_kind, direction, requested_kw, committed_kw, start_at, end_at, program_id, intervals,
    first_received_at, received_at"""


class PlanSummaryOut(_Out):
    """The latest dispatch plan of an event."""

    plan_id: int
    planned_at: datetime
    method: Literal["lp", "greedy"]
    committed_kw: float = Field(description="response the plan holds in every interval with a target")
    shortfall_kwh: float = Field(description="energy the assets cannot deliver against the targets")
    warnings: list[str]


class EventOut(_Out):
    """A DR event as received from the VTN (version in force) and what the park made of it."""

    event_id: str
    source: Literal["oadr2", "oadr3"]
    vtn_id: str
    vtn_event_id: str
    modification_number: int
    vtn_status: str
    action: str
    opt: Literal["optIn", "optOut"]
    opt_reason: str | None
    signal_name: str
    signal_kind: str
    direction: Literal["up", "down"]
    requested_kw: float
    committed_kw: float
    start: datetime | None
    end: datetime | None
    program_id: str | None
    first_received_at: datetime = Field(description="notification: the baseline is fixed here")
    received_at: datetime
    plan: PlanSummaryOut | None


class EventsOut(_Out):
    """A park's events, newest first."""

    park_id: str
    events: list[EventOut]


class PlanIntervalOut(_Out):
    """One interval of the latest plan."""

    start: datetime
    end: datetime
    target_kw: float
    planned_kw: float = Field(description="planned response (reduction for up, increase for down)")


class EventDetailOut(EventOut):
    """One event with its plan per interval and its commands counted by status."""

    intervals: list[dict[str, Any]] = Field(description="the VTN's intervals: start, duration_s, value, unit")
    plan_intervals: list[PlanIntervalOut]
    commands_by_status: dict[str, int]


class CommitmentOut(_Out):
    """What the park committed for one event."""

    event_id: str
    opt: Literal["optIn", "optOut"]
    opt_reason: str | None
    direction: Literal["up", "down"]
    start: datetime | None
    end: datetime | None
    requested_kw: float
    committed_kw: float = Field(description="kW committed to the VTN")
    planned_kw: float | None = Field(description="kW the latest dispatch plan holds in every interval")
    shortfall_kwh: float | None


class CommitmentsOut(_Out):
    """A park's commitments, newest event first."""

    park_id: str
    commitments: list[CommitmentOut]


class CommandOut(_Out):
    """One audited command and its latest status."""

    command_id: str
    device_id: str
    asset_id: str | None
    event_id: str | None
    action: str
    value: float
    unit: str
    interval_start: datetime | None
    issued_at: datetime
    expires_at: datetime
    hold_until: datetime | None
    reason: str
    status: str = Field(description="sent, resent, applied, rejected, expired, suppressed or cancelled")
    status_at: datetime | None
    status_reason: str | None = Field(description="the device's reject code, or why it was suppressed")
    applied_value: float | None
    attempts: int = Field(description="times published (first send and resends)")


class CommandsOut(_Out):
    """A park's commands, newest first."""

    park_id: str
    commands: list[CommandOut]


class OverrideIn(BaseModel):
    """An operator override: ``max_change_kw`` 0 (default) excludes the device from dispatch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    until: datetime = Field(description="the override ends here (timezone-aware)")
    reason: str = Field(min_length=1, max_length=500)
    max_change_kw: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False,
                                 description="the most the device may be moved from its baseline (kW)")


class OverrideOut(_Out):
    """One override."""

    override_id: int
    device_id: str
    max_change_kw: float
    valid_until: datetime
    reason: str
    created_by: str
    created_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None
    active: bool


class OverridesOut(_Out):
    """A park's overrides, newest first."""

    park_id: str
    overrides: list[OverrideOut]


def _require_park(conn: Any, park_id: str) -> None:
    if conn.execute("SELECT 1 FROM parks WHERE park_id = %s", (park_id,)).fetchone() is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no park {park_id!r}; register it first (parkpulse registry park add {park_id})")


def _event(row: tuple[Any, ...], plans: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (event_id, source, vtn_id, vtn_event_id, modification, vtn_status, action, opt, opt_reason, signal_name,
     signal_kind, direction, requested, committed, start, end, program, _intervals, first, received) = row
    plan = plans.get(event_id)
    return {"event_id": event_id, "source": source, "vtn_id": vtn_id, "vtn_event_id": vtn_event_id,
            "modification_number": modification, "vtn_status": vtn_status, "action": action, "opt": opt,
            "opt_reason": opt_reason, "signal_name": signal_name, "signal_kind": signal_kind, "direction": direction,
            "requested_kw": requested, "committed_kw": committed, "start": start, "end": end, "program_id": program,
            "first_received_at": first, "received_at": received,
            "plan": None if plan is None else {k: plan[k] for k in ("plan_id", "planned_at", "method", "committed_kw",
                                                                    "shortfall_kwh", "warnings")}}


def _events(conn: Any, park_id: str, limit: int, offset: int) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = conn.execute(
        f"""SELECT {_EVENT_COLUMNS} FROM vpp_events WHERE park_id = %s
            ORDER BY start_at DESC NULLS LAST, dr_event_id LIMIT %s OFFSET %s""",
        (park_id, limit, offset),
    ).fetchall()
    return rows


@router.get("/parks/{park_id}/vpp/events", response_model=EventsOut, responses=OPERATOR_RESPONSES)
def get_events(*, client: ParkReader, park_id: ParkId, conn: Connection, limit: Limit = 100,
               offset: Offset = 0) -> dict[str, Any]:
    """DR events received for the park, newest first, with the latest plan of each."""
    _require_park(conn, park_id)
    plans = latest_plans(conn, park_id)
    return {"park_id": park_id, "events": [_event(r, plans) for r in _events(conn, park_id, limit, offset)]}


@router.get("/parks/{park_id}/vpp/events/{event_id}", response_model=EventDetailOut, responses=OPERATOR_RESPONSES)
def get_event(*, client: ParkReader, park_id: ParkId, event_id: EventId, conn: Connection) -> dict[str, Any]:
    """One event: the VTN's intervals, the plan per interval and the commands counted by status."""
    row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM vpp_events WHERE park_id = %s AND dr_event_id = %s",
                       (park_id, event_id)).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"park {park_id!r} has no VPP event {event_id!r}; list them at "
                                   f"/v1/parks/{park_id}/vpp/events")
    plans = latest_plans(conn, park_id)
    out = _event(row, plans)
    plan = plans.get(event_id)
    out["intervals"] = list(row[17] or [])
    out["plan_intervals"] = [] if plan is None else [
        {"start": iv["start"], "end": iv["end"], "target_kw": iv["target_kw"], "planned_kw": iv["response_kw"]}
        for iv in plan["intervals"]]
    counts: dict[str, int] = {}
    for c in list_commands(conn, park_id, event_id=event_id, limit=100_000):
        counts[c.status] = counts.get(c.status, 0) + 1
    out["commands_by_status"] = counts
    return out


@router.get("/parks/{park_id}/vpp/commitments", response_model=CommitmentsOut, responses=OPERATOR_RESPONSES)
def get_commitments(*, client: ParkReader, park_id: ParkId, conn: Connection, limit: Limit = 100,
                    offset: Offset = 0) -> dict[str, Any]:
    """Per event: opt in or out (and why), kW committed to the VTN, kW the dispatch plan holds."""
    _require_park(conn, park_id)
    plans = latest_plans(conn, park_id)
    out = []
    for r in _events(conn, park_id, limit, offset):
        e = _event(r, plans)
        plan = plans.get(e["event_id"])
        out.append({k: e[k] for k in ("event_id", "opt", "opt_reason", "direction", "start", "end", "requested_kw",
                                      "committed_kw")}
                   | {"planned_kw": plan["committed_kw"] if plan else None,
                      "shortfall_kwh": plan["shortfall_kwh"] if plan else None})
    return {"park_id": park_id, "commitments": out}


@router.get("/parks/{park_id}/vpp/commands", response_model=CommandsOut, responses=OPERATOR_RESPONSES)
def get_commands(*, client: ParkReader, park_id: ParkId, conn: Connection,
                 event_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,128}$")] = None,
                 device_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = None,
                 limit: Limit = 200, offset: Offset = 0) -> dict[str, Any]:
    """The park's audited commands (optionally of one event or device), newest first."""
    _require_park(conn, park_id)
    rows = list_commands(conn, park_id, event_id=event_id, device_id=device_id, limit=limit, offset=offset)
    return {"park_id": park_id, "commands": [
        {k: getattr(c, k) for k in CommandOut.model_fields} for c in rows]}


def _override(o: Override, now: datetime) -> dict[str, Any]:
    return {"override_id": o.override_id, "device_id": o.device_id, "max_change_kw": o.max_change_kw,
            "valid_until": o.valid_until, "reason": o.reason, "created_by": o.created_by, "created_at": o.created_at,
            "cleared_at": o.cleared_at, "cleared_by": o.cleared_by, "active": o.active(now)}


@router.get("/parks/{park_id}/vpp/overrides", response_model=OverridesOut, responses=OPERATOR_RESPONSES)
def get_overrides(*, client: ParkReader, park_id: ParkId, conn: Connection,
                  active: Annotated[bool, Query(description="only those in force now")] = False) -> dict[str, Any]:
    """The park's operator overrides, newest first."""
    _require_park(conn, park_id)
    now = datetime.now(UTC)
    rows = list_overrides(conn, park_id, at=now if active else None)
    return {"park_id": park_id, "overrides": [_override(o, now) for o in rows]}


@router.post("/parks/{park_id}/vpp/overrides", response_model=OverrideOut, status_code=status.HTTP_201_CREATED,
             responses=OPERATOR_RESPONSES)
def post_override(*, client: ParkWriter, park_id: ParkId, conn: Connection, body: OverrideIn) -> dict[str, Any]:
    """Exclude a device from dispatch (or cap it) until ``until``; it wins over every plan from now on."""
    _require_park(conn, park_id)
    if body.until.tzinfo is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="until must carry a time zone (e.g. Z)")
    try:
        o = set_override(conn, park_id, body.device_id, max_change_kw=body.max_change_kw, valid_until=body.until,
                         reason=body.reason, created_by=f"api:{client.name}")
    except DispatchStoreError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return _override(o, datetime.now(UTC))


@router.delete("/parks/{park_id}/vpp/overrides/{override_id}", response_model=OverrideOut,
               responses=OPERATOR_RESPONSES)
def delete_override(*, client: ParkWriter, park_id: ParkId, conn: Connection,
                    override_id: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """Clear an override (it stays in the audit trail with who cleared it and when)."""
    now = datetime.now(UTC)
    try:
        o = clear_override(conn, park_id, override_id, cleared_by=f"api:{client.name}", at=now)
    except OverrideNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return _override(o, now)


__all__ = ["router"]
