"""Live M&V of a VPP event over HTTP: what ``parkpulse vpp mv show`` prints.

* ``GET /v1/parks/{park_id}/vpp/events/{event_id}/performance`` (``read``) — the baseline fixed at
  notification, and per interval the plan, the metered demand and the delivered reduction; delivered energy
  so far, the forecast of the event's final performance and delivered ÷ committed. While the event runs the
  figures are as of the last live M&V pass (``as_of``); after it, ``status`` is ``final`` and the figures
  are the event's M&V result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import Field

from api._models import _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader
from vpp._live_mv_doc import performance_document
from vpp._live_mv_store import LiveMvStore

router = APIRouter(tags=["vpp"])  # included by api/_vpp.py (prefix /v1)

EventId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="ParkPulse DR event id")]


class BaselineOut(_Out):
    """How the baseline was fixed at notification."""

    fixed_at: datetime = Field(description="no data metered after this instant was used")
    method: str
    interval_minutes: int
    days_used: list[str]
    adjustment_applied: bool
    warnings: list[str]


class IntervalOut(_Out):
    """One event interval (kW are interval means; null = not metered yet or missing)."""

    ts: datetime
    baseline_kw: float
    planned_kw: float | None
    metered_kw: float | None
    reduction_kw: float | None = Field(description="baseline − metered for load reduction; metered − baseline "
                                                   "for load increase")
    complete: bool = Field(description="the interval has ended and counts in the totals")


class PerformanceOut(_Out):
    """An event's live (or final) performance."""

    event_id: str
    park_id: str
    status: Literal["active", "cancelled", "final"]
    start: datetime
    end: datetime
    direction: Literal["up", "down"]
    requested_kw: float
    committed_kw: float
    baseline: BaselineOut
    as_of: datetime | None
    completed_intervals: int
    delivered_kwh: float | None
    planned_kwh: float
    forecast_kwh: float | None = Field(description="delivered so far + the remaining plan scaled by how well the "
                                                   "plan has been kept")
    avg_reduction_kw: float | None
    forecast_avg_kw: float | None
    delivered_ratio: float | None = Field(description="average reduction so far ÷ committed reduction")
    missing_intervals: int | None
    quality_ok: bool | None = Field(description="set when the event is final")
    quality_reasons: list[str]
    intervals: list[IntervalOut]


@router.get("/parks/{park_id}/vpp/events/{event_id}/performance", response_model=PerformanceOut,
            responses=OPERATOR_RESPONSES)
def get_performance(*, client: ParkReader, park_id: ParkId, event_id: EventId, conn: Connection) -> dict[str, Any]:
    """Live M&V of one event of the park."""
    del client
    store = LiveMvStore(connection=conn)
    event = store.get_event(event_id)
    if event is None or event.park_id != park_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=(
            f"no live M&V for event {event_id!r} of park {park_id!r}: only events received through the VPP loop "
            f"are measured live; list them with GET /v1/parks/{park_id}/vpp/events"))
    return performance_document(event, store.intervals(event_id))
