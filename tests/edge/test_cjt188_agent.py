"""The edge agent reads CJ/T 188 gas, heat and water meters from the simulator over TCP, end to end.

Agent -> outbox -> the real test broker -> a collector and the ingest service -> TimescaleDB: every reading
arrives once, under the registry's metric names and canonical units, and the birth message says how the
meter is read (protocol, endpoint, profile, kind, carrier, register maximum).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psycopg
import pytest

from edge.outbox import read_stats
from infra.settings import parse_mqtt_url
from ingest import IngestService, IngestSettings
from schemas import BIRTH_ADAPTER, METRICS, decode_readings, parse_topic
from simulators.protocol.cjt188 import HeatPhysics, build_cjt188_line
from tests.edge.helpers import agent_config, collect, free_port, running_agent, wait_until

pytestmark = pytest.mark.services

EXPECTED_METRICS = {
    "gas": {"gas_volume", "battery_low", "valve_state"},
    "heat": {"heat_energy", "heat_power", "heat_volume_flow", "heat_volume", "supply_temperature",
             "return_temperature", "battery_low"},
    "water": {"water_volume", "battery_low", "valve_state"},
}


def _series(conn: psycopg.Connection, park_id: str) -> dict[tuple[str, str], tuple[str, int, float]]:
    rows = conn.execute(
        """SELECT d.device_id, s.metric, s.unit, count(r.ts), max(r.value)
             FROM series s JOIN devices d USING (device_key) LEFT JOIN readings r USING (series_id)
            WHERE d.park_id = %s GROUP BY 1, 2, 3""", (park_id,)).fetchall()
    return {(row[0], row[1]): (row[2], int(row[3]), float(row[4] or 0.0)) for row in rows}


async def test_gas_heat_and_water_meters_reach_mqtt_and_the_database(
    mqtt_url: str, park_id: str, database_url: str, db_conn: psycopg.Connection, tmp_path: Path
) -> None:
    line = build_cjt188_line(gas=1, heat=1, water=1, port=free_port(), prefix=f"j{uuid.uuid4().hex[:4]}",
                             heat_unit="MWh")
    await line.server.start()
    config = agent_config(park_id, mqtt_url, tmp_path / "outbox.sqlite",
                          line.device_entries(poll_interval_s=0.5, timeout_s=1.0))
    devices = [d.id for d in config.devices]
    port = parse_mqtt_url(mqtt_url).port
    ingest = IngestService(IngestSettings(
        database_url=database_url, mqtt_url=mqtt_url, client_id=f"cjt188-ingest-{park_id}",
        share_group=f"g{uuid.uuid4().hex[:8]}", park_filter=park_id, metrics_port=-1, flush_interval_s=0.05,
        backoff_initial_s=0.2, backoff_max_s=1.0,
    ))
    try:
        async with ingest:
            await ingest.wait_subscribed()
            async with collect(port, park_id, client_id=f"c-{park_id}") as seen:
                async with running_agent(config):
                    await wait_until(lambda: all(len(seen.seqs(d)) >= 4 for d in devices), timeout=30)
                stats = read_stats(config.outbox.path)
                await wait_until(lambda: seen.reading_count() >= stats.enqueued_readings, timeout=10)
                await wait_until(lambda: sum(n for _, n, _ in _series(db_conn, park_id).values())
                                 >= stats.enqueued_readings, timeout=30)
    finally:
        await line.server.stop()

    assert (stats.pending_messages, stats.dropped_messages) == (0, 0)
    assert stats.published_readings == stats.enqueued_readings == seen.reading_count()
    for message in seen.readings:  # what ingest's parser makes of every message: nothing rejected
        topic = parse_topic(f"parkpulse/v1/{park_id}/{message['device']}/readings")
        decoded = decode_readings(topic, orjson.dumps(message), now=datetime.now(UTC))
        assert decoded.rejections == [], decoded.summary()
    for device in devices:
        family = device.split("-")[1]
        sent = {(r["metric"], r["unit"]) for m in seen.readings if m["device"] == device for r in m["readings"]}
        assert sent == {(metric, METRICS[metric].unit) for metric in EXPECTED_METRICS[family]}
        assert seen.seqs(device) == set(range(len(seen.seqs(device))))

    births = {d: BIRTH_ADAPTER.validate_python(seen.births[d]) for d in devices}
    gas, heat, water = devices
    address = {e["id"]: e["transport"]["address"] for e in line.entries}
    assert seen.births[gas]["endpoint"] == f"cjt188://127.0.0.1:{line.server.port}/{address[gas]}"
    assert seen.births[gas]["protocol"] == "cjt188"
    assert (births[gas]["kind"], births[gas]["carrier"]) == ("gas_meter", "gas")
    assert births[gas]["register_max"] == pytest.approx(999999.99)
    assert (births[heat]["profile"], births[heat]["kind"], births[heat]["carrier"]) == (
        "cjt188_2018_heat", "heat_meter", "heat")
    assert births[heat]["register_max"] == pytest.approx(999999.99 * 3.6 / 1000)  # XXXXXX.XX kWh in GJ
    assert births[water]["carrier"] == "water"

    stored = _series(db_conn, park_id)
    for device in devices:
        for metric in EXPECTED_METRICS[device.split("-")[1]]:
            unit, count, _ = stored[(device, metric)]
            assert (unit, count > 0) == (METRICS[metric].unit, True)
    physics = line.meters[heat].physics
    assert isinstance(physics, HeatPhysics)
    # the meter shows MWh with 2 decimals (0.01 MWh = 0.036 GJ); the database holds GJ
    assert stored[(heat, "heat_energy")][2] == pytest.approx(physics.model.register.reading, abs=0.036)
    statuses = [s for s in seen.statuses if s.get("device") == heat and s.get("meter_clock_offset_s") is not None]
    assert statuses
    assert abs(statuses[-1]["meter_clock_offset_s"]) <= 1.0
