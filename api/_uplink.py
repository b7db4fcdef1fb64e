"""The uplink to the energy online-monitoring platforms over HTTP: the same data as ``parkpulse uplink …``.

All ``read`` scope, for one park:

* ``GET /v1/parks/{park_id}/uplink/status`` — per platform endpoint that holds this park's records:
  backlog, acknowledged and rejected counts, the last acknowledged and the oldest unacknowledged record,
  the last transport error; plus how many days in the last 31 have a failed quality check;
* ``GET /v1/parks/{park_id}/uplink/quality?from=&to=`` — the quality self-checks (completeness ≥ 90 %,
  daily vs monthly within 5 %, timestamp alignment) per data item and day, with the reason of each failure
  (``failed_only=true`` for the flagged ones);
* ``GET /v1/parks/{park_id}/uplink/rejects`` — records a platform rejected, with the platform's reason
  (they never block the queue; fix the mapping or the data and they are re-sent as a new revision);
* ``GET /v1/parks/{park_id}/uplink/instruments?profile=`` — the instrument register (计量器具台账) built
  from the device registry, as it is uploaded under ``profile``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import Field

from api._models import _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader
from uplink._inputs import load_meters
from uplink._items import load_items
from uplink._mapping import instrument_register
from uplink._quality import list_flags
from uplink._store import endpoint_status, list_rejects
from uplink.errors import UplinkError

router = APIRouter(prefix="/v1", tags=["uplink"])

FromQ = Annotated[date | None, Query(alias="from", description="first park-local day (default: 30 days ago)")]
ToQ = Annotated[date | None, Query(alias="to", description="last park-local day, inclusive (default: today)")]
_MAX_DAYS = 400


class EndpointStatusOut(_Out):
    """One platform endpoint's queue for this park."""

    endpoint: str
    profile: str
    backlog: int = Field(description="records pending or sent but not yet acknowledged")
    acked: int
    rejected: int
    last_acked_key: str | None
    last_acked_at: datetime | None
    oldest_unacked_key: str | None
    oldest_unacked_start: datetime | None = Field(description="period start of the oldest record still queued")
    last_error: str | None = Field(description="transport error of the last failed attempt, if the queue is stuck")


class UplinkStatusOut(_Out):
    """Every endpoint's queue, and the days with a failed quality check."""

    park_id: str
    endpoints: list[EndpointStatusOut]
    flagged_days_31d: int = Field(description="local days of the last 31 with at least one failed quality check")


class QualityFlagOut(_Out):
    """One check of one data item for one local day (monthly checks: the month's 1st)."""

    profile: str
    data_item_code: str
    day: date
    check: str = Field(description="completeness, consistency or alignment")
    passed: bool
    value: float | None = Field(description="completeness share, daily-vs-monthly gap share, or offset minutes")
    threshold: float | None
    reason: str | None = Field(description="why it failed: missing meter data, estimated share, late data, ...")
    checked_at: datetime


class UplinkQualityOut(_Out):
    """Quality self-checks of a park for local days [from, to]."""

    park_id: str
    start: date
    end: date
    flags: list[QualityFlagOut]


class RejectOut(_Out):
    """A record a platform rejected."""

    endpoint: str
    record_key: str
    revision: int
    reason: str | None = Field(description="the platform's reason, as it gave it")
    rejected_at: datetime | None
    attempts: int


class UplinkRejectsOut(_Out):
    """Rejected records of a park, newest first."""

    park_id: str
    rejects: list[RejectOut]


class InstrumentOut(_Out):
    """One line of the instrument register."""

    meter_code: str
    name: str
    carrier: str
    instrument_type: str
    accuracy_class: str | None = Field(description="null when the registry does not hold it")
    calibration_date: date | None = Field(description="null when the registry does not hold it")
    metering_level: int | None = Field(description="1, 2 or 3 (GB 17167)")
    data_item_codes: list[str]


class InstrumentsOut(_Out):
    """The park's instrument register under one profile."""

    park_id: str
    profile: str
    instruments: list[InstrumentOut]


def _timezone(conn: Any, park_id: str) -> str:
    row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no park {park_id!r}; register it first "
                                                              f"(parkpulse registry park add {park_id})")
    return str(row[0])


def _endpoints(conn: Any, park_id: str) -> list[tuple[str, str]]:
    """(endpoint, profile) of every queue holding records of ``park_id``."""
    rows = conn.execute("""SELECT DISTINCT d.endpoint, d.profile FROM uplink_deliveries d
                           JOIN uplink_records r ON r.profile = d.profile AND r.record_key = d.record_key
                           WHERE r.park_id = %s ORDER BY 1""", (park_id,)).fetchall()
    return [(str(e), str(p)) for e, p in rows]


def _range(conn: Any, park_id: str, start: date | None, end: date | None) -> tuple[date, date]:
    today = datetime.now(ZoneInfo(_timezone(conn, park_id))).date()
    end = end or today
    start = start or end - timedelta(days=30)
    if start > end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"from {start} is after to {end}")
    if (end - start).days > _MAX_DAYS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"at most {_MAX_DAYS} days per request; narrow from/to")
    return start, end


@router.get("/parks/{park_id}/uplink/status", response_model=UplinkStatusOut, responses=OPERATOR_RESPONSES)
def get_uplink_status(*, client: ParkReader, park_id: ParkId, conn: Connection) -> dict[str, Any]:
    """Per endpoint: backlog, acknowledged, rejected, last acknowledged and oldest unacknowledged record."""
    start, end = _range(conn, park_id, None, None)
    out = []
    for endpoint, profile in _endpoints(conn, park_id):
        s = endpoint_status(conn, endpoint)
        out.append({"endpoint": endpoint, "profile": profile, "backlog": s.backlog, "acked": s.acked,
                    "rejected": s.rejected, "last_acked_key": s.last_acked_key, "last_acked_at": s.last_acked_at,
                    "oldest_unacked_key": s.oldest_unacked_key, "oldest_unacked_start": s.oldest_unacked_start,
                    "last_error": s.last_error})
    flagged = {flag["day"] for flag in list_flags(conn, park_id, start, end + timedelta(days=1), failed_only=True)}
    return {"park_id": park_id, "endpoints": out, "flagged_days_31d": len(flagged)}


@router.get("/parks/{park_id}/uplink/quality", response_model=UplinkQualityOut, responses=OPERATOR_RESPONSES)
def get_uplink_quality(*, client: ParkReader, park_id: ParkId, conn: Connection, start: FromQ = None,
                       end: ToQ = None,
                       failed_only: Annotated[bool, Query(description="only the failed checks")] = False,
                       ) -> dict[str, Any]:
    """Quality self-checks per data item and local day, with reasons (``parkpulse uplink quality``)."""
    start, end = _range(conn, park_id, start, end)
    flags = list_flags(conn, park_id, start, end + timedelta(days=1), failed_only=failed_only)
    return {"park_id": park_id, "start": start, "end": end, "flags": flags}


@router.get("/parks/{park_id}/uplink/rejects", response_model=UplinkRejectsOut, responses=OPERATOR_RESPONSES)
def get_uplink_rejects(*, client: ParkReader, park_id: ParkId, conn: Connection,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Records the platforms rejected, with their reasons (``parkpulse uplink rejects``)."""
    _timezone(conn, park_id)
    rows = [row for endpoint, _ in _endpoints(conn, park_id) for row in list_rejects(conn, endpoint, limit)]
    rows.sort(key=lambda r: (r.rejected_at is None, -(r.rejected_at.timestamp() if r.rejected_at else 0)))
    return {"park_id": park_id, "rejects": [
        {"endpoint": r.endpoint, "record_key": r.record_key, "revision": r.revision, "reason": r.reason,
         "rejected_at": r.rejected_at, "attempts": r.attempts} for r in rows[:limit]]}


@router.get("/parks/{park_id}/uplink/instruments", response_model=InstrumentsOut, responses=OPERATOR_RESPONSES)
def get_uplink_instruments(*, client: ParkReader, park_id: ParkId, conn: Connection,
                           profile: Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
                                                         description="national-json or guangdong-2013")]
                           = "national-json") -> dict[str, Any]:
    """The instrument register from the device registry, as uploaded under ``profile``."""
    _timezone(conn, park_id)
    try:
        table = load_items(profile)
    except UplinkError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    entries = instrument_register(table, load_meters(conn, park_id))
    return {"park_id": park_id, "profile": profile, "instruments": [
        {"meter_code": e.meter_code, "name": e.name, "carrier": e.carrier, "instrument_type": e.instrument_type,
         "accuracy_class": e.accuracy_class, "calibration_date": e.calibration_date,
         "metering_level": e.metering_level, "data_item_codes": list(e.data_item_codes)} for e in entries]}
