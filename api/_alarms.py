"""Operational alarms under ``/v1/parks/{park_id}/alarms``: list and show (read scope), acknowledge (write).

The same operations as ``parkpulse alarms list/show/ack`` (:mod:`alarms._lifecycle_store` does the work).
Alarms are raised and cleared by the evaluator only; people acknowledge them, which is kept in the alarm's
history with who (the name given, and the API key that sent it) and why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from alarms._lifecycle import STATES, State
from alarms._lifecycle_store import acknowledge, get_alarm, list_alarms
from alarms._rules_errors import AlarmNotFoundError, AlarmStateError
from api._keys import ApiClient
from api._models import Page, Problem, _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader, ParkWriter

router = APIRouter(prefix="/v1", tags=["alarms"])

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **OPERATOR_RESPONSES,
    409: {"model": Problem, "description": "the alarm is already acknowledged or cleared", "content": _PROBLEM},
}
_MAX_ID: Final = 2**63 - 1
AlarmId = Annotated[int, Path(ge=1, le=_MAX_ID, description="alarm id")]
Severity = Literal["info", "warning", "critical"]
StateFilter = Literal["active", "open", "acknowledged", "cleared", "all"]


class TransitionOut(_Out):
    """One step of an alarm's history."""

    transition_id: int
    at: datetime
    action: Literal["raised", "reopened", "acknowledged", "cleared", "severity"]
    from_state: State | None
    to_state: State
    severity: Severity
    actor: str = Field(description="'evaluator', or who acknowledged")
    comment: str | None
    value: float | None
    message_en: str | None


class AlarmOut(_Out):
    """An alarm: what, where, how bad, its state and, for one alarm, its history."""

    alarm_id: int
    park_id: str
    rule_id: str
    kind: str
    subject: str = Field(description="device, device/metric, carrier, data-centre site or 'park'")
    severity: Severity
    state: State
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    value: float | None = Field(description="measured (the worst of the rule's window), in unit")
    limit_value: float | None = Field(description="the rule's limit, in unit")
    unit: str
    context: dict[str, Any]
    raised_at: datetime
    last_raised_at: datetime = Field(description="raised, or last re-opened (flap suppression)")
    last_true_at: datetime = Field(description="the newest evaluation in which the condition held")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    cleared_at: datetime | None
    clear_reason: str | None
    reopen_count: int
    history: list[TransitionOut] | None = Field(default=None, description="oldest first (GET of one alarm)")


class AckIn(BaseModel):
    """Who acknowledges and what is being done about it."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    by: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S",
                           description="the person (default: the API key's name); the key is recorded too")


def _who(client: ApiClient, by: str | None) -> str:
    return f"{by.strip() if by else client.name} (api key {client.client_id})"


@router.get("/parks/{park_id}/alarms", response_model=Page[AlarmOut], responses=_RESPONSES)
def list_park_alarms(
    client: ParkReader, park_id: ParkId, conn: Connection, *,
    state: Annotated[StateFilter, Query(description="active = open or acknowledged")] = "active",
    severity: Annotated[Severity | None, Query(description="only this severity")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The park's alarms, newest raised first (read scope)."""
    del client
    states: tuple[State, ...]
    if state == "all":
        states = STATES
    elif state == "active":
        states = ("open", "acknowledged")
    else:
        states = (state,)
    alarms, total = list_alarms(conn, park_id, states=states, severity=severity, limit=limit, offset=offset)
    nxt = offset + limit if offset + limit < total else None
    return {"items": [a.to_json() for a in alarms], "total": total, "limit": limit, "offset": offset,
            "next_offset": nxt}


def _not_found(exc: AlarmNotFoundError, park_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND,
                         detail=f"no alarm {exc.alarm_id} in park {park_id}; list them with "
                                f"GET /v1/parks/{park_id}/alarms?state=all")


@router.get("/parks/{park_id}/alarms/{alarm_id}", response_model=AlarmOut, responses=_RESPONSES)
def show_park_alarm(client: ParkReader, park_id: ParkId, alarm_id: AlarmId, conn: Connection) -> dict[str, Any]:
    """One alarm with its full history (read scope)."""
    del client
    try:
        return get_alarm(conn, alarm_id, park_id).to_json(history=True)
    except AlarmNotFoundError as exc:
        raise _not_found(exc, park_id) from None


@router.post("/parks/{park_id}/alarms/{alarm_id}/ack", response_model=AlarmOut, responses=_RESPONSES)
def acknowledge_park_alarm(client: ParkWriter, park_id: ParkId, alarm_id: AlarmId, body: AckIn,
                           conn: Connection) -> dict[str, Any]:
    """Acknowledge an open alarm (write scope); it clears by itself once its condition is gone."""
    try:
        return acknowledge(conn, alarm_id, by=_who(client, body.by), comment=body.comment,
                           park_id=park_id).to_json(history=True)
    except AlarmNotFoundError as exc:
        raise _not_found(exc, park_id) from None
    except AlarmStateError as exc:
        why = ("was acknowledged already" if exc.state == "acknowledged"
               else "is cleared (its condition is gone), nothing to acknowledge")
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"alarm {alarm_id} {why}; its history is at "
                                   f"GET /v1/parks/{park_id}/alarms/{alarm_id}") from None
