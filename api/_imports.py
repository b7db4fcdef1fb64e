"""``POST /v1/parks/{park_id}/readings/import``: backfill a meter export through the API.

The body is the same CSV as ``parkpulse import readings`` (``device_id,ts,metric,value,unit[,quality][,park_id]``)
and goes through the same validation, quarantine and idempotent write (:func:`ingest.import_readings_csv`),
so an operator who works only through the API loses nothing either: rejected rows are quarantined with their
line numbers and listed by ``GET /v1/parks/{park_id}/quarantine?source=import``. A ``park_id`` column, if
present, must name the park of the path on every row: a key scoped to one park cannot write into another.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import Field

from api._models import _Out
from api._operator import OPERATOR_RESPONSES, DatabaseUrl, ParkId, ParkWriter
from ingest import CsvFormatError, ReadingStore, import_readings_csv
from ingest.errors import StorageUnavailableError

router = APIRouter(prefix="/v1", tags=["imports"])

#: A month of 15-minute readings of ~1,000 meters is ≈ 200 MB; larger histories go in several requests.
MAX_BODY_BYTES: Final = 256 * 1024 * 1024


class ReadingsImportOut(_Out):
    """What the import stored, skipped as already present, and quarantined (per reason)."""

    park_id: str
    rows: int = Field(description="CSV data rows read")
    stored: int = Field(description="readings written")
    duplicates: int = Field(description="readings already present (a re-import is idempotent)")
    rejected_rows: int = Field(description="rows quarantined with their reason")
    reasons: dict[str, int] = Field(description="rejected rows per reason")
    next_step: str | None = Field(default=None, description="what to do about rejected rows")


def _check_park_column(text: str, park_id: str) -> None:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "park_id" not in header:
        return
    column = header.index("park_id")
    for line, row in enumerate(reader, start=2):
        if len(row) > column and row[column] not in ("", park_id):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                detail=f"CSV line {line}: park_id {row[column][:64]!r} is not the park of this request "
                                       f"({park_id!r}); import each park's rows through its own URL")


@router.post("/parks/{park_id}/readings/import", response_model=ReadingsImportOut, responses=OPERATOR_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                 "type": "string", "description": "device_id,ts,metric,value,unit[,quality][,park_id]"}}}}})
async def import_readings(request: Request, client: ParkWriter, park_id: ParkId, url: DatabaseUrl) -> dict[str, Any]:
    """Import a CSV history of meter readings into the park (write scope)."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"the body has {len(body):,} bytes; split the history into files of at most "
                                   f"{MAX_BODY_BYTES:,} bytes (for example one per month)")
    text = body.decode("utf-8-sig", errors="replace")
    _check_park_column(text, park_id)
    store = ReadingStore(url)
    try:
        report = await import_readings_csv(text, store, park_id=park_id)
    except CsvFormatError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except StorageUnavailableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"{exc}; retry later") from None
    finally:
        await store.close()
    hint = (f"list the rejected rows with GET /v1/parks/{park_id}/quarantine?source=import, fix the registry or the "
            f"file, then replay them with POST /v1/parks/{park_id}/quarantine/replay") if report.rejected_rows else None
    return {"park_id": park_id, "rows": report.rows, "stored": report.stored, "duplicates": report.duplicates,
            "rejected_rows": report.rejected_rows, "reasons": report.reasons, "next_step": hint}
