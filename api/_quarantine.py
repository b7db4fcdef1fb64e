"""Quarantine endpoints under ``/v1/parks/{park_id}/quarantine``: see a park's rejected input and replay it.

Reading (list, one record) needs the ``read`` scope like every GET; replay is an operator action and needs
the ``write`` scope (403 with the command that creates such a key otherwise). Records are scoped to the
key's parks exactly like the other routes: a record of another park is a 404, a park outside the key's
scope a 403. The data comes from a :class:`QuarantineBackend` wired by :func:`api.build_app`:
:class:`ingest._replay.PgQuarantine` in production, :class:`ingest._replay.MemoryQuarantine` in tests.
Raw bytes are returned as base64 plus an escaped preview (see :mod:`ingest._payload_view`), never as
bytes that a browser or terminal would interpret.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api._auth import Client, require_park, require_scope
from api._keys import ApiClient
from api._models import Page, Problem, _Out
from ingest._payload_view import render_payload
from ingest._quarantine import QuarantineEntry, QuarantineFilter, QuarantineNotFoundError
from ingest._replay import ReplayReport
from ingest.errors import StorageUnavailableError
from schemas.topics import ID_PATTERN

router = APIRouter(prefix="/v1", tags=["quarantine"])

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the request body is not parseable (not UTF-8 JSON)", "content": _PROBLEM},
    401: {"model": Problem, "description": "missing, malformed, unknown, expired or revoked API key",
          "content": _PROBLEM},
    403: {"model": Problem, "description": "the key is not scoped to this park, or lacks the scope the request "
                                           "needs (read for GET, write for replay)", "content": _PROBLEM},
    404: {"model": Problem, "description": "no such quarantine record in this park", "content": _PROBLEM},
    422: {"model": Problem, "description": "invalid parameters", "content": _PROBLEM},
    503: {"model": Problem, "description": "the database is unavailable; retry later", "content": _PROBLEM},
}
_MAX_ID: Final = 2**63 - 1
_PREVIEW_HEX_BYTES: Final = 4096
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)

Source = Literal["mqtt", "import"]
OutcomeFilter = Literal["stored", "rejected", "not_replayable", "never"]
ParkId = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", max_length=64, description="park id")]
QuarantineId = Annotated[int, Path(ge=1, le=_MAX_ID, description="quarantine record id")]
DeviceQ = Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$", max_length=64, description="only this device")]
ReasonQ = Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$", description="only this reason, e.g. unregistered")]
SourceQ = Annotated[Source | None, Query(description="mqtt messages or CSV import rows")]
SinceQ = Annotated[AwareDatetime | None, Query(description="received at or after (ISO 8601 with offset)")]
UntilQ = Annotated[AwareDatetime | None, Query(description="received before (ISO 8601 with offset)")]
ReplayableQ = Annotated[bool | None, Query(description="true: raw bytes complete; false: truncated at capture")]
OutcomeQ = Annotated[OutcomeFilter | None, Query(description="last replay outcome, or never (not replayed yet)")]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]


class QuarantineBackend(Protocol):
    """Where the API reads and replays quarantine records."""

    def list_records(self, flt: QuarantineFilter, *, limit: int = 50,
                     offset: int = 0) -> tuple[list[QuarantineEntry], int]:
        """One page of matching records (newest first) and the total."""
        ...

    def get_record(self, quarantine_id: int) -> QuarantineEntry | None:
        """One record with its raw bytes."""
        ...

    async def replay(self, flt: QuarantineFilter, *, dry_run: bool = False,
                     limit: int | None = None) -> ReplayReport:
        """Replay the matching records, oldest first."""
        ...


class QuarantineItemOut(_Out):
    """One quarantined message (or CSV import chunk) and what replay last did with it."""

    quarantine_id: int
    received_at: datetime = Field(description="when ingest received it; replay validates as of this time")
    source: str = Field(description="mqtt or import")
    topic: str | None
    park_id: str | None
    device_id: str | None
    reason: str = Field(description="first rejection reason (schemas.RejectReason code)")
    detail: str
    n_rejected: int = Field(description="readings rejected (0 when only the envelope failed)")
    n_accepted: int = Field(description="readings of the same message that were stored")
    raw_length: int = Field(description="bytes of the whole payload as received")
    raw_sha256: str = Field(description="SHA-256 (hex) of the whole payload")
    raw_truncated: bool = Field(description="only the first bytes were kept: the record cannot be replayed")
    replayable: bool
    replayed_at: datetime | None
    replay_outcome: Literal["stored", "rejected", "not_replayable"] | None
    replay_detail: str | None


class QuarantineDetailOut(QuarantineItemOut):
    """One record with its kept bytes."""

    raw_base64: str = Field(description="the kept raw bytes, base64 (fewer than raw_length when truncated)")
    raw_kind: Literal["json", "text", "binary"] = Field(description="how raw_preview shows the bytes")
    raw_preview: str = Field(description="safe view: pretty JSON or text with control characters escaped, or a "
                                         "hex dump of the first 4 KiB")


class ReplayIn(BaseModel):
    """Which of the park's records to replay: explicit ids and/or filters (at most ``limit``, oldest first)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=_MAX_ID)]] = Field(default_factory=list, max_length=1000)
    device_id: str | None = Field(default=None, pattern=f"^{ID_PATTERN}$", max_length=64)
    reason: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    source: Source | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    replayable: bool | None = None
    outcome: OutcomeFilter | None = Field(default=None, description="e.g. never: records not replayed yet")
    limit: int = Field(default=100, ge=1, le=1000, description="records replayed at most (ignored with ids)")
    dry_run: bool = Field(default=False, description="validate only: nothing is written or recorded")


class ReplayItemOut(_Out):
    """What replaying one record did."""

    quarantine_id: int
    device_id: str | None
    outcome: Literal["stored", "rejected", "not_replayable", "error"]
    readings: int = Field(description="valid readings in the message now")
    stored: int | None = Field(description="readings newly stored (null on a dry run)")
    duplicates: int | None = Field(description="readings already stored before (null on a dry run)")
    reason: str | None = Field(description="the new rejection reason when rejected")
    detail: str


class ReplayOut(_Out):
    """Per-record results and totals; rejections are normal outcomes, ``error`` means the database failed."""

    dry_run: bool
    counts: dict[str, int] = Field(description="records per outcome")
    stored: int
    duplicates: int
    results: list[ReplayItemOut]


def _backend(request: Request) -> QuarantineBackend:
    backend: QuarantineBackend = request.app.state.quarantine
    return backend


def _operator(client: Client, park_id: ParkId) -> ApiClient:
    """The client, if it may act on ``park_id``: checked before the body, so a read key always gets 403."""
    require_park(client, park_id)
    require_scope(client, "write", "quarantine replay")
    return client


Operator = Annotated[ApiClient, Depends(_operator)]


def _check_times(since: datetime | None, until: datetime | None) -> None:
    for name, value in (("since", since), ("until", until)):
        if value is not None and not _EARLIEST <= value <= _LATEST:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                detail=f"{name} must be between {_EARLIEST.date()} and {_LATEST.date()}")
    if since is not None and until is not None and until <= since:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="until must be after since")


def _unavailable(exc: StorageUnavailableError) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"database unavailable, retry later: {exc}")


def _item(entry: QuarantineEntry) -> dict[str, Any]:
    data = entry.to_json()
    data.pop("raw_hex", None)
    return data


@router.get("/parks/{park_id}/quarantine", response_model=Page[QuarantineItemOut], responses=_RESPONSES)
def list_quarantine(
    request: Request, client: Client, *, park_id: ParkId, device_id: DeviceQ = None, reason: ReasonQ = None,
    source: SourceQ = None, since: SinceQ = None, until: UntilQ = None, replayable: ReplayableQ = None,
    outcome: OutcomeQ = None, limit: Limit = 100, offset: Offset = 0,
) -> dict[str, Any]:
    """The park's quarantined messages, newest first, with reason, size and last replay outcome."""
    require_park(client, park_id)
    _check_times(since, until)
    flt = QuarantineFilter(park_id=park_id, device_id=device_id, reason=reason, source=source, since=since,
                           until=until, replayable=replayable, outcome=outcome)
    try:
        entries, total = _backend(request).list_records(flt, limit=limit, offset=offset)
    except StorageUnavailableError as exc:
        raise _unavailable(exc) from None
    nxt = offset + limit if offset + limit < total else None
    return {"items": [_item(e) for e in entries], "total": total, "limit": limit, "offset": offset,
            "next_offset": nxt}


# Declared before /quarantine/{quarantine_id} so that path never shadows it (405 Allow headers, matching).
@router.post("/parks/{park_id}/quarantine/replay", response_model=ReplayOut, responses=_RESPONSES)
async def replay_quarantine(request: Request, client: Operator, park_id: ParkId, body: ReplayIn) -> dict[str, Any]:
    """Replay the park's held messages through validation and the idempotent store (``write`` scope).

    Each record's outcome is recorded on it: stored (new readings stored, duplicates skipped), rejected
    (the new reason; no new quarantine record) or not_replayable (raw bytes truncated at capture).
    Replaying again stores nothing new.
    """
    _check_times(body.since, body.until)
    flt = QuarantineFilter(ids=tuple(body.ids), park_id=park_id, device_id=body.device_id, reason=body.reason,
                           source=body.source, since=body.since, until=body.until, replayable=body.replayable,
                           outcome=body.outcome)
    try:
        report = await _backend(request).replay(flt, dry_run=body.dry_run,
                                                 limit=None if body.ids else body.limit)
    except QuarantineNotFoundError as exc:
        ids = ", ".join(str(i) for i in exc.ids)
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no quarantine record {ids} in park {park_id!r} (nothing was replayed); list "
                                   f"them with GET /v1/parks/{park_id}/quarantine") from None
    except StorageUnavailableError as exc:
        raise _unavailable(exc) from None
    return {"dry_run": report.dry_run, "counts": report.counts(), "stored": report.stored,
            "duplicates": report.duplicates, "results": [r.to_json() for r in report.results]}


@router.get("/parks/{park_id}/quarantine/{quarantine_id}", response_model=QuarantineDetailOut,
            responses=_RESPONSES)
def get_quarantine(request: Request, client: Client, park_id: ParkId, quarantine_id: QuarantineId) -> dict[str, Any]:
    """One record: every column, the raw bytes (base64) and a safely escaped preview."""
    require_park(client, park_id)
    try:
        entry = _backend(request).get_record(quarantine_id)
    except StorageUnavailableError as exc:
        raise _unavailable(exc) from None
    if entry is None or entry.park_id != park_id or entry.raw is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no quarantine record {quarantine_id} in park {park_id!r}; list them with "
                                   f"GET /v1/parks/{park_id}/quarantine")
    kind, preview = render_payload(entry.raw, hex_limit=_PREVIEW_HEX_BYTES)
    return {**_item(entry), "raw_base64": base64.b64encode(entry.raw).decode("ascii"), "raw_kind": kind,
            "raw_preview": preview}
