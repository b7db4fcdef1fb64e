"""The demo's edge step on the real services: the CJ/T 188 gas meter read by the edge agent is stored."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from ingest import IngestService, IngestSettings
from parkpulse._demo_edge import EDGE_GAS_METER, read_cjt188_gas_meter

pytestmark = pytest.mark.services


async def test_the_edge_agent_reads_the_cjt188_gas_meter_into_the_database(
    database_url: str, mqtt_url: str, park_id: str, db_conn: psycopg.Connection, tmp_path: Path
) -> None:
    settings = IngestSettings(database_url=database_url, mqtt_url=mqtt_url, client_id=f"demo-edge-{park_id}",
                              share_group=f"g{uuid.uuid4().hex[:8]}", park_filter=park_id, metrics_port=-1,
                              flush_interval_s=0.05)
    async with IngestService(settings) as ingest:
        await ingest.wait_subscribed()
        step = await read_cjt188_gas_meter(park_id, mqtt_url, database_url, tmp_path, seconds=4.0,
                                           poll_interval_s=1.0)
    assert step.readings_published >= 3
    assert step.readings_stored == step.readings_published
    assert step.pending == 0
    level, carrier, role = db_conn.execute(
        "SELECT metering_level, carrier, role FROM devices WHERE park_id = %s AND device_id = %s",
        (park_id, EDGE_GAS_METER)).fetchone()
    assert (level, carrier, role) == (1, "gas", "park_boundary")
    metrics = {m for (m,) in db_conn.execute(
        """SELECT s.metric FROM series s JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND d.device_id = %s""", (park_id, EDGE_GAS_METER))}
    assert "gas_volume" in metrics
