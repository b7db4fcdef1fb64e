"""The schedule writes a park-month's files once the month closes, and again only when its indicators change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports._fonts import CjkFont
from reports._schedule import Stored, closed_months, due, write_due_reports
from tests.reports._park import build_park

DEC = datetime(2026, 12, 5, tzinfo=UTC)


def test_closed_months_follow_the_park_calendar():
    # 2026-10-31 17:00 UTC is already November 1st in Shanghai, but not in Lisbon
    at = datetime(2026, 10, 31, 17, tzinfo=UTC)
    assert closed_months(["2026-10", "2026-09", "2026-11"], "Asia/Shanghai", at) == ["2026-09", "2026-10"]
    assert closed_months(["2026-10", "2026-09"], "Europe/Lisbon", at) == ["2026-09"]
    assert closed_months(["2026-Q3", "2026", "2026-10-YTD", "2026-13"], "Asia/Shanghai", DEC) == []


@given(labels=st.lists(st.text(max_size=12), max_size=8))
def test_closed_months_ignores_anything_that_is_not_a_month(labels: list[str]):
    months = closed_months(labels, "Asia/Shanghai", DEC)
    assert set(months) <= set(labels)
    for m in months:
        assert (len(m), m[4]) == (7, "-")
        assert 1 <= int(m[5:]) <= 12


def test_due_files_are_new_restated_or_missing(tmp_path: Path):
    present = tmp_path / "a.xlsx"
    present.write_bytes(b"x")
    stored = {("2026-09", "xlsx"): Stored("f9", present), ("2026-10", "xlsx"): Stored("old", present),
              ("2026-08", "xlsx"): Stored("f8", tmp_path / "gone.xlsx")}
    got = due(["2026-08", "2026-09", "2026-10", "2026-11"], {"2026-08": "f8", "2026-09": "f9", "2026-10": "new"},
              stored, ["xlsx"])
    assert got == [("2026-08", "xlsx", "file missing"), ("2026-10", "xlsx", "indicators changed"),
                   ("2026-11", "xlsx", "new")]


@pytest.mark.services
def test_files_are_written_once_then_on_restatement(database_url: str, db_conn: psycopg.Connection, park_id: str,
                                                    tmp_path: Path, cjk_font: CjkFont):
    build_park(db_conn, database_url, park_id)
    open_month = write_due_reports(db_conn, tmp_path, now=datetime(2026, 10, 20, tzinfo=UTC), park_id=park_id)
    assert open_month == []                                          # October is not closed yet

    first = write_due_reports(db_conn, tmp_path, now=DEC, park_id=park_id)
    assert sorted((w.format, w.reason, w.error) for w in first) == [("pdf", "new", None), ("xlsx", "new", None)]
    for w in first:
        assert w.path == tmp_path / f"{park_id}-2026-10.{w.format}"
        assert w.path.stat().st_size == w.size_bytes > 1000
    recorded = db_conn.execute("SELECT format, size_bytes FROM report_files WHERE park_id = %s ORDER BY format",
                               (park_id,)).fetchall()
    assert recorded == sorted((w.format, w.size_bytes) for w in first)
    assert write_due_reports(db_conn, tmp_path, now=DEC, park_id=park_id) == []

    # a restated indicator (late data, a new import) makes both files due again
    db_conn.execute("""UPDATE indicator_results SET value = value + 1, revision = revision + 1
                       WHERE park_id = %s AND period = '2026-10' AND indicator = 'total_energy' AND headline""",
                    (park_id,))
    again = write_due_reports(db_conn, tmp_path, now=DEC, park_id=park_id)
    assert sorted((w.format, w.reason) for w in again) == [("pdf", "indicators changed"),
                                                          ("xlsx", "indicators changed")]
    (tmp_path / f"{park_id}-2026-10.xlsx").unlink()
    assert [(w.format, w.reason) for w in write_due_reports(db_conn, tmp_path, now=DEC, park_id=park_id)] == [
        ("xlsx", "file missing")]
    assert not list(tmp_path.glob(".*.tmp"))                         # atomic writes leave no temporaries
