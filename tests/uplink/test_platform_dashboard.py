"""The Uplink row of the health board: its SQL runs on the real database, empty and with queued records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from dashboards import build_dashboards
from schemas.uplink_record import RecordAck
from tests.dashboards.panels import frame_problems, run_board
from tests.uplink._platform_helpers import SHANGHAI, day_record
from uplink._store import EndpointQueue, apply_acks, upsert_records

pytestmark = pytest.mark.services

UPLINK_PANELS = {"Uplink queue", "Platform endpoints", "Rejected by the platform", "Flagged days"}


def _uplink_runs(conn: psycopg.Connection, park_id: str) -> dict[str, list[tuple[Any, ...]]]:
    (health,) = [b for b in build_dashboards() if b.board.uid == "pp-ingest-health"]
    runs = run_board(health, conn, park_id, datetime.now(UTC))
    mine = [r for r in runs if any(title in r.panel.title.render(health.context.lang) for title in UPLINK_PANELS)]
    assert len(mine) == len(UPLINK_PANELS)
    for run in mine:
        assert frame_problems(run) == [], (run.panel.title, run.sql)
    return {next(t for t in UPLINK_PANELS if t in r.panel.title.render(health.context.lang)): r.rows for r in mine}


def test_an_empty_park_shows_zero_counts_and_placeholder_rows(db_conn: psycopg.Connection, park_id: str) -> None:
    rows = _uplink_runs(db_conn, park_id)
    assert rows["Uplink queue"] == [(0, 0, 0, 0)]
    assert len(rows["Platform endpoints"]) == len(rows["Rejected by the platform"]) == len(rows["Flagged days"]) == 1


def test_queued_acked_rejected_and_flagged_show_up(db_conn: psycopg.Connection, park_id: str) -> None:
    records = [day_record("01010001", 1, 1.0, park=park_id), day_record("E99", 1, 2.0, park=park_id),
               day_record("01010001", 2, 3.0, park=park_id)]
    endpoint = f"city-{park_id[-8:]}"
    upsert_records(db_conn, "national-json", records,
                   [EndpointQueue(endpoint, "national-json", park_id, ("15min", "hour", "day", "month"))])
    apply_acks(db_conn, endpoint, [RecordAck(records[0].record_key, 1, True),
                                   RecordAck(records[1].record_key, 1, False, "数据项编码不存在")])
    db_conn.execute("""INSERT INTO uplink_quality_flags (park_id, profile, data_item_code, day, check_name, passed,
                                                         value, threshold, reason)
                       VALUES (%s, 'national-json', '01010001', %s, 'consistency', false, 0.08, 0.05,
                               'daily sum differs from the month by 8 %%')""",
                    (park_id, datetime.now(SHANGHAI).date() - timedelta(days=2)))
    rows = _uplink_runs(db_conn, park_id)
    assert rows["Uplink queue"] == [(1, 1, 1, 1)]
    assert [(r[0], r[2], r[3], r[4]) for r in rows["Platform endpoints"]] == [(endpoint, 1, 1, 1)]
    assert [r[3] for r in rows["Rejected by the platform"]] == ["数据项编码不存在"]
    assert [r[5] for r in rows["Flagged days"]] == ["daily sum differs from the month by 8 %"]
