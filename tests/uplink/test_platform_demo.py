"""The demo's uplink step on a seeded, aggregated park: every computed record of the day is acknowledged."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from aggregation._jobs import AggregationJob
from aggregation._settings import AggregationSettings
from parkpulse._demo_uplink import DEMO_ENDPOINT, PROFILE, run_demo_uplink
from tests.aggregation._seed import Meter, create_series, register_rows, write_readings

pytestmark = pytest.mark.services
DAY = date(2026, 11, 20)


def test_the_demo_uploads_the_day_and_prints_the_acknowledged_count(database_url: str, park_id: str,
                                                                    db_conn: psycopg.Connection) -> None:
    start = datetime(2026, 11, 20, tzinfo=ZoneInfo("Asia/Shanghai"))
    for meter in (Meter("m1", per_interval=10.0, level=1), Meter("g1", metric="gas_volume", per_interval=1.0,
                                                                  level=1)):
        write_readings(db_conn, create_series(db_conn, park_id, meter),
                       register_rows(meter, start, start + timedelta(days=1), timedelta(minutes=15)))
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0)).run()
    line = run_demo_uplink(database_url, park_id, DAY)
    computed = db_conn.execute("SELECT count(*) FROM uplink_records WHERE park_id = %s AND profile = %s",
                               (park_id, PROFILE)).fetchone()
    assert computed is not None
    assert computed[0] > 96  # at least the quarter hours of the electricity item
    assert line == f"uplink: {computed[0]} records acknowledged by the platform simulator (profile {PROFILE})"
    states = db_conn.execute("SELECT state, count(*) FROM uplink_deliveries WHERE endpoint = %s GROUP BY state",
                             (DEMO_ENDPOINT,)).fetchall()
    assert states == [("acked", computed[0])]
    assert run_demo_uplink(database_url, park_id, DAY) == line  # a second demo run uploads the day again
