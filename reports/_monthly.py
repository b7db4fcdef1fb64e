"""One monthly report file, end to end: gather the park-month, then write it as xlsx or pdf.

The command (``parkpulse report monthly``), the API (``GET …/reports/monthly/2026-10.pdf``) and the
schedule (:mod:`reports._schedule`) all call :func:`build_monthly`, so the three always produce the same
file for the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import psycopg

from reports._data import MonthlyData
from reports._gather import gather_month

FileFormat = Literal["xlsx", "pdf"]
MEDIA_TYPES: Final[dict[str, str]] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


@dataclass(frozen=True, slots=True)
class ReportFile:
    """A written report: its bytes, a file name, its media type and the data it shows."""

    content: bytes
    filename: str
    media_type: str
    data: MonthlyData


def render(data: MonthlyData, fmt: FileFormat, font_file: Path | None = None) -> bytes:
    """The report file's bytes (the PDF needs a CJK font; the workbook does not).

    Raises:
        FontNotFoundError: PDF only, no usable CJK font.
    """
    if fmt == "xlsx":
        from reports._xlsx import write_xlsx  # noqa: PLC0415 - XlsxWriter only when a workbook is asked for

        return write_xlsx(data)
    from reports._fonts import find_cjk_font  # noqa: PLC0415 - fontTools/ReportLab/matplotlib only for a PDF
    from reports._pdf import write_pdf  # noqa: PLC0415

    return write_pdf(data, find_cjk_font(font_file))


def build_monthly(conn: psycopg.Connection[Any], park_id: str, period: str, fmt: FileFormat, *,
                  font_file: Path | None = None, now: datetime | None = None) -> ReportFile:
    """Gather ``park_id``'s month ``period`` (``YYYY-MM``) and write it as ``fmt``.

    Raises:
        UnknownParkError, ReportPeriodError, FontNotFoundError: with what to do next.
    """
    data = gather_month(conn, park_id, period, now=now)
    return ReportFile(render(data, fmt, font_file), f"{park_id}-{data.period}.{fmt}", MEDIA_TYPES[fmt], data)
