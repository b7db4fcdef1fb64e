"""Report endpoints: per-meter energy (JSON) and the monthly report files (xlsx, pdf). Read scope.

* ``GET /v1/parks/{park_id}/energy?from=2026-10-01&to=2026-11-01&grain=day&device=m1`` — every meter's
  energy per local day or month with estimated share, completeness, quality and flags, at full float
  precision (the same rows as ``parkpulse report energy --format json``);
* ``GET /v1/parks/{park_id}/reports/monthly/2026-10.xlsx`` (or ``.pdf``) — the month's report file, the
  same bytes ``parkpulse report monthly`` writes, as an attachment.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import Response
from pydantic import Field

from aggregation._meter_energy import energy_window, load_meter_energy
from aggregation.errors import PeriodError
from api._models import _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader
from reports import FontNotFoundError, ReportPeriodError, UnknownParkError, build_monthly, park_row
from schemas.topics import ID_PATTERN

router = APIRouter(prefix="/v1", tags=["reports"])

_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **OPERATOR_RESPONSES,
    200: {"description": "the report file (attachment)", "content": {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
            "schema": {"type": "string", "format": "binary"}},
        "application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
}


class MeterEnergyRowOut(_Out):
    """One meter's energy in one local period; energy in ``unit`` (kWh, m3, GJ), shares as fractions 0..1."""

    device_id: str
    metric: str
    carrier: str
    metering_level: int | None
    site_id: str | None
    role: str | None
    unit: str = Field(description="unit of energy and estimated_energy (the metric's canonical unit)")
    period: str = Field(description="local period: YYYY-MM-DD (day) or YYYY-MM (month)")
    period_start: datetime = Field(description="UTC instant the local period starts")
    energy: float
    estimated_energy: float = Field(description="part of energy that was estimated (VEE), in unit")
    estimated_share: float | None = Field(description="estimated_energy / energy (null when energy is 0)")
    n_intervals: int = Field(description="intervals present")
    n_expected: int = Field(description="intervals the local period has")
    completeness: float | None = Field(description="n_intervals / n_expected")
    quality: Literal["measured", "estimated", "replacement"] = Field(
        description="replacement: a meter event (replacement, confirmed reset, CT/PT change) touched the period; "
                    "estimated: part of it was estimated; measured otherwise")
    flags: int = Field(description="OR of the period's interval flag bits (aggregation.IntervalFlag)")
    flag_names: list[str]


class MeterEnergyOut(_Out):
    """Per-meter energy of a park over the local window ``[from, to)``."""

    park_id: str
    timezone: str
    grain: Literal["day", "month"]
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    rows: list[MeterEnergyRowOut]


@router.get("/parks/{park_id}/energy", response_model=MeterEnergyOut, response_model_by_alias=True,
            responses=OPERATOR_RESPONSES)
def meter_energy(
    *, client: ParkReader, park_id: ParkId, conn: Connection,
    start: Annotated[date, Query(alias="from", description="first local day (included), YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="local day the window ends before (excluded)")],
    grain: Annotated[Literal["day", "month"], Query(description="local day or month")] = "day",
    device: Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$", max_length=64,
                                        description="only this device")] = None,
) -> dict[str, Any]:
    """Every meter's energy per local day or month, with quality, estimated share and completeness."""
    try:
        window = energy_window(start, end, grain)
        _, tz = park_row(conn, park_id)
    except PeriodError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=str(exc).replace("--from", "from").replace("--to", "to")) from None
    except UnknownParkError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no park {park_id!r}; register it first "
                                                              "(parkpulse registry park add)") from None
    rows = load_meter_energy(conn, park_id, tz, window, device)
    return {"park_id": park_id, "timezone": tz, "grain": window.grain, "from": window.start, "to": window.end,
            "rows": [MeterEnergyRowOut.model_validate(r, from_attributes=True) for r in rows]}


Period = Annotated[str, Path(pattern=r"^\d{4}-\d{2}$", description="the month, YYYY-MM")]


@router.get("/parks/{park_id}/reports/monthly/{period}.{fmt}", response_class=Response, responses=_FILE_RESPONSES)
def monthly_report(*, request: Request, client: ParkReader, park_id: ParkId, period: Period,
                   fmt: Annotated[Literal["xlsx", "pdf"], Path(description="xlsx or pdf")],
                   conn: Connection) -> Response:
    """The month's report file (Chinese and English): indicators, carbon by source, meters, balance, quality,
    charts."""
    font_file = getattr(request.app.state.settings, "report_font_file", None)
    try:
        report = build_monthly(conn, park_id, period, fmt, font_file=font_file)
    except UnknownParkError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no park {park_id!r}; register it first "
                                                              "(parkpulse registry park add)") from None
    except ReportPeriodError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except FontNotFoundError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"the server cannot draw Chinese text: {exc}; the .xlsx works meanwhile") from None
    return Response(report.content, media_type=report.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{report.filename}"'})
