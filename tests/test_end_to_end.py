"""Simulator → Mosquitto → ingest → TimescaleDB: the database holds exactly what was published."""

from __future__ import annotations

import pytest

from ingest import IngestService
from simulators import load_scenario, run_simulation
from tests.ingest.helpers import count_quarantine, count_readings, ingest_settings, wait_until

pytestmark = pytest.mark.services


async def test_simulated_park_is_stored_exactly(database_url, mqtt_url, park_id, db_conn):
    scenario = load_scenario().with_overrides(park_id=park_id, extra_meters=3, duplicate_message_rate=0.05,
                                              malformed_message_rate=0.05)
    async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service:
        await service.wait_subscribed()
        report = await run_simulation(scenario, mqtt_url, duration="3h", speed=0, seed=7, record=True)
        assert report.records is not None
        assert report.duplicates_published > 0
        assert report.malformed_published > 0
        assert await wait_until(lambda: count_readings(db_conn, park_id) >= report.readings_published, timeout=60)
        assert await wait_until(lambda: count_quarantine(db_conn, park_id) == report.malformed_published)
    assert count_readings(db_conn, park_id) == report.readings_published == len(report.records)
    stored = {
        (device, metric, ts): value
        for device, metric, ts, value in db_conn.execute(
            """SELECT d.device_id, s.metric, r.ts, r.value FROM readings r JOIN series s USING (series_id)
               JOIN devices d USING (device_key) WHERE d.park_id = %s""", (park_id,))
    }
    published = {(r.device_id, r.metric, r.ts): r.value for r in report.records}
    assert stored.keys() == published.keys()
    mismatched = [k for k, v in published.items() if stored[k] != pytest.approx(v, rel=1e-12, abs=1e-9)]
    assert mismatched == []
    assert service.metrics.readings_duplicate >= report.duplicates_published  # duplicates were skipped, not stored
    # birth metadata reached the device catalogue
    levels = dict(db_conn.execute("SELECT role, metering_level FROM devices WHERE park_id = %s AND role IS NOT NULL",
                                  (park_id,)).fetchall())
    assert levels.get("park_boundary") == 1
