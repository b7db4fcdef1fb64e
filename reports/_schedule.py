"""Monthly report files written by the aggregation schedule after each month closes.

After every run of ``parkpulse aggregate --every N --reports-dir DIR``, :func:`write_due_reports` writes
``DIR/{park}-{YYYY-MM}.xlsx`` and ``.pdf`` for every park-month that

* is closed in the park's time zone (its local end has passed) and has published indicators, and
* has no file yet, or whose indicators changed since the file was written (late data, a new import, a
  recorded meter event: the fingerprint over ``indicator_results`` differs), or whose file is gone.

What was written is recorded in ``report_files`` (migration 0009). Files are written atomically (a
temporary file renamed into place), so a reader never sees half a workbook. A missing CJK font skips the
PDF with an error in the result and the log; the workbook is still written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import psycopg

from reports._gather import gather_month, indicators_fingerprint
from reports._monthly import FileFormat, render
from reports.errors import ReportError

logger = logging.getLogger(__name__)

FORMATS: Final[tuple[FileFormat, ...]] = ("xlsx", "pdf")
Reason = Literal["new", "indicators changed", "file missing"]


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """One file the schedule wrote (``error`` set and nothing written when it could not)."""

    park_id: str
    period: str
    format: str
    path: Path
    reason: Reason
    size_bytes: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """What ``report_files`` says about one park-month-format."""

    fingerprint: str
    path: Path


def closed_months(published: Iterable[str], tz: str, now: datetime) -> list[str]:
    """The ``YYYY-MM`` labels of ``published`` whose local month has ended at ``now``, oldest first."""
    local_today = now.astimezone(ZoneInfo(tz)).date()
    this_month = date(local_today.year, local_today.month, 1)
    out: list[str] = []
    for label in published:
        year, _, month = label.partition("-")
        if not (year.isdigit() and month.isdigit() and len(year) == 4 and len(month) == 2):
            continue
        if 1 <= int(month) <= 12 and date(int(year), int(month), 1) < this_month:
            out.append(label)
    return sorted(set(out))


def due(months: Iterable[str], fingerprints: Mapping[str, str], stored: Mapping[tuple[str, str], Stored],
        formats: Iterable[str], exists: Callable[[Path], bool] = Path.is_file) -> list[tuple[str, str, Reason]]:
    """``(period, format, reason)`` for every file to (re)write: new, indicators changed, or gone from disk."""
    out: list[tuple[str, str, Reason]] = []
    for period in months:
        for fmt in formats:
            have = stored.get((period, fmt))
            if have is None:
                out.append((period, fmt, "new"))
            elif have.fingerprint != fingerprints.get(period, ""):
                out.append((period, fmt, "indicators changed"))
            elif not exists(have.path):
                out.append((period, fmt, "file missing"))
    return out


def _atomic_write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def _park_months(conn: psycopg.Connection[Any], park_id: str | None) -> dict[str, tuple[str, list[str]]]:
    """park → (time zone, periods ``YYYY-MM`` with published indicators)."""
    rows = conn.execute(r"""
        SELECT p.park_id, p.timezone, array_agg(DISTINCT r.period)
        FROM parks p JOIN indicator_results r USING (park_id)
        WHERE r.period ~ '^\d{4}-\d{2}$' AND (%s::text IS NULL OR p.park_id = %s)
        GROUP BY p.park_id, p.timezone ORDER BY p.park_id""", (park_id, park_id)).fetchall()
    return {str(r[0]): (str(r[1]), [str(x) for x in r[2]]) for r in rows}


def _stored(conn: psycopg.Connection[Any], park_id: str) -> dict[tuple[str, str], Stored]:
    rows = conn.execute("SELECT period, format, indicators_fingerprint, path FROM report_files WHERE park_id = %s",
                        (park_id,)).fetchall()
    return {(str(r[0]), str(r[1])): Stored(str(r[2]), Path(r[3])) for r in rows}


def _record(conn: psycopg.Connection[Any], w: WrittenReport, fingerprint: str, sha256: str) -> None:
    conn.execute("""
        INSERT INTO report_files (park_id, period, format, path, size_bytes, sha256, indicators_fingerprint)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (park_id, period, format) DO UPDATE SET path = EXCLUDED.path, size_bytes = EXCLUDED.size_bytes,
            sha256 = EXCLUDED.sha256, indicators_fingerprint = EXCLUDED.indicators_fingerprint, written_at = now()""",
                 (w.park_id, w.period, w.format, str(w.path), w.size_bytes, sha256, fingerprint))


def write_due_reports(conn: psycopg.Connection[Any], reports_dir: Path, *, now: datetime | None = None,
                      park_id: str | None = None, formats: Iterable[FileFormat] = FORMATS,
                      font_file: Path | None = None) -> list[WrittenReport]:
    """Write every due monthly file into ``reports_dir`` (created if needed) and record it.

    ``conn`` must be an autocommit connection. Errors of one file (a missing font) are returned in
    :attr:`WrittenReport.error` and logged; they never stop the other files.
    """
    clock = now or datetime.now(UTC)
    reports_dir.mkdir(parents=True, exist_ok=True)
    wanted = tuple(formats)
    written: list[WrittenReport] = []
    for park, (tz, published) in _park_months(conn, park_id).items():
        months = closed_months(published, tz, clock)
        prints = {m: indicators_fingerprint(conn, park, m) for m in months}
        todo = due(months, prints, _stored(conn, park), wanted)
        for period in sorted({p for p, _, _ in todo}):
            data = gather_month(conn, park, period, now=clock)
            for p, fmt, reason in todo:
                if p != period:
                    continue
                path = reports_dir / f"{park}-{period}.{fmt}"
                try:
                    content, error = render(data, "pdf" if fmt == "pdf" else "xlsx", font_file), None
                except ReportError as exc:  # a missing CJK font: skip this PDF, keep going
                    content, error = b"", str(exc)
                if error is not None:
                    logger.error("monthly report %s not written: %s", path.name, error)
                    written.append(WrittenReport(park, period, fmt, path, reason, error=error))
                    continue
                _atomic_write(path, content)
                w = WrittenReport(park, period, fmt, path, reason, len(content))
                _record(conn, w, prints[period], hashlib.sha256(content).hexdigest())
                logger.info("wrote monthly report %s (%s, %d bytes)", path, reason, len(content))
                written.append(w)
    return written


def after_aggregate(database_url: str, reports_dir: Path, font_file: Path | None = None) -> list[WrittenReport]:
    """The hook ``parkpulse aggregate --reports-dir DIR`` calls after each run (own connection)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return write_due_reports(conn, reports_dir, font_file=font_file)
