"""Ingest against the real broker and database: storage, idempotency, quarantine, metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

import pytest

from ingest import IngestService
from schemas import TopicKind, build_topic
from tests.ingest.helpers import (
    count_quarantine,
    count_readings,
    ingest_settings,
    minute_floor,
    publish,
    readings_payload,
    utcnow,
    wait_until,
)

pytestmark = pytest.mark.services


async def test_published_readings_are_stored_exactly_once(database_url, mqtt_url, park_id, db_conn):
    start = minute_floor(utcnow()) - timedelta(hours=3)
    messages = [
        (build_topic(park_id, f"m-{d}"), readings_payload(f"m-{d}", seq, start + timedelta(minutes=30 * seq), 30,
                                                          base=100.0 * d + 30 * seq))
        for d in range(4) for seq in range(5)
    ]
    async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service:
        await service.wait_subscribed()
        await publish(mqtt_url, messages)
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 4 * 5 * 30)
        # the same messages again (as a redelivery or an edge replay would send them): no new rows
        await publish(mqtt_url, messages)
        assert await wait_until(lambda: service.metrics.readings_duplicate == 600)
    assert count_readings(db_conn, park_id) == 600
    rows = db_conn.execute(
        """SELECT d.device_id, r.ts, r.value FROM readings r JOIN series s USING (series_id)
           JOIN devices d USING (device_key) WHERE d.park_id = %s AND s.metric = 'active_energy_import'
           ORDER BY d.device_id, r.ts""", (park_id,)).fetchall()
    expected = sorted(
        (f"m-{d}", start + timedelta(minutes=30 * seq + i), round(100.0 * d + 30 * seq + i * 0.25, 2))
        for d in range(4) for seq in range(5) for i in range(30))
    assert [(dev, ts, val) for dev, ts, val in rows] == expected
    changes = db_conn.execute(
        """SELECT sum(n_rows) FROM reading_changes c JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s""", (park_id,)).fetchone()
    assert changes == (600,)  # the replay wrote nothing, so it logged no change
    assert service.metrics.readings_stored == 600


async def test_malformed_payloads_are_quarantined_and_neighbours_stored(database_url, mqtt_url, park_id, db_conn):
    now = minute_floor(utcnow())
    topic = build_topic(park_id, "m-1")
    good_a = readings_payload("m-1", 1, now - timedelta(hours=1), 10)
    good_b = readings_payload("m-1", 3, now - timedelta(minutes=40), 10, base=2000.0)
    partly_bad = json.dumps({"v": 1, "device": "m-1", "seq": 2, "readings": [
        {"ts": (now - timedelta(minutes=20)).isoformat(), "metric": "active_power", "value": 12.5, "unit": "kW"},
        {"ts": (now - timedelta(minutes=19)).isoformat(), "metric": "active_power", "value": float("nan"),
         "unit": "kW"},
        {"ts": (now - timedelta(minutes=18)).isoformat(), "metric": "no_such_metric", "value": 1.0, "unit": "kW"},
        {"ts": (now + timedelta(days=1)).isoformat(), "metric": "active_power", "value": 1.0, "unit": "kW"},
    ]}).encode()
    bad = {
        "invalid_json": b'{"v": 1, "device": "m-1", "seq": 9, "readings": [',
        "invalid_utf8": b"\xc3\x28\xa0\xa1 not utf-8",
        "garbage_1mb": bytes(range(256)) * 4096,
        "wrong_types": json.dumps({"v": 1, "device": "m-1", "seq": "nine", "readings": "many"}).encode(),
    }
    messages = [(topic, good_a), *((topic, raw) for raw in bad.values()), (topic, partly_bad), (topic, good_b),
                (f"parkpulse/v1/{park_id}/BAD DEVICE/readings", good_a)]
    async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service:
        await service.wait_subscribed()
        await publish(mqtt_url, messages)
        assert await wait_until(lambda: count_quarantine(db_conn, park_id) == 6)
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 21)
        metrics_text = service.metrics.render()
    reasons = dict(db_conn.execute(
        "SELECT reason, count(*) FROM quarantine WHERE park_id = %s GROUP BY reason", (park_id,)).fetchall())
    assert reasons == {"invalid_json": 1, "invalid_utf8": 2, "schema_violation": 1, "non_finite_value": 1,
                       "invalid_topic": 1}
    big = db_conn.execute(
        "SELECT raw, raw_length, raw_sha256, raw_truncated FROM quarantine WHERE park_id = %s AND raw_length > 1000000",
        (park_id,)).fetchone()
    assert big is not None  # kept up to the 64 KiB cap, with the whole payload's length and digest
    assert bytes(big[0]) == bad["garbage_1mb"][:65_536]
    assert big[1] == len(bad["garbage_1mb"])
    assert bytes(big[2]) == hashlib.sha256(bad["garbage_1mb"]).digest()
    assert big[3] is True
    partial = db_conn.execute(
        "SELECT n_rejected, n_accepted, detail FROM quarantine WHERE park_id = %s AND reason = 'non_finite_value'",
        (park_id,)).fetchone()
    assert partial is not None
    assert partial[:2] == (3, 1)
    assert "unknown_metric" in partial[2]
    assert "future_timestamp" in partial[2]
    assert 'parkpulse_ingest_messages_quarantined_total{reason="invalid_utf8"} 2' in metrics_text


async def test_births_register_device_metadata_and_status_tracks_sessions(database_url, mqtt_url, park_id, db_conn):
    birth = json.dumps({"v": 1, "device": "dc-it", "kind": "electricity_meter", "carrier": "electricity",
                        "metering_level": 3, "role": "dc_it", "site": "dc1", "profile": "sdm630",
                        "register_max": 999999.99, "multiplier": 40.0, "firmware": "1.2.3", "ct_ratio": 200}).encode()
    now = minute_floor(utcnow())
    data = readings_payload("dc-it", 41, now - timedelta(minutes=5), 5)
    data_doc = json.loads(data)
    data_doc["sent_at"] = (utcnow() + timedelta(seconds=30)).isoformat()  # a device clock 30 s fast
    offline = json.dumps({"v": 1, "device": "dc-it", "online": False}).encode()
    async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service:
        await service.wait_subscribed()
        await publish(mqtt_url, [(build_topic(park_id, "dc-it", TopicKind.BIRTH), birth),
                                 (build_topic(park_id, "dc-it"), json.dumps(data_doc).encode())])
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 5)
        await asyncio.sleep(0.3)
        await publish(mqtt_url, [(build_topic(park_id, "dc-it", TopicKind.STATUS), offline)])
        assert await wait_until(lambda: db_conn.execute(
            "SELECT s.online FROM device_status s JOIN devices d USING (device_key) WHERE d.park_id = %s",
            (park_id,)).fetchone() == (False,))
    device = db_conn.execute(
        """SELECT kind, carrier, metering_level, role, site_id, register_max, multiplier, metadata->>'ct_ratio'
           FROM devices WHERE park_id = %s AND device_id = 'dc-it'""", (park_id,)).fetchone()
    assert device == ("electricity_meter", "electricity", 3, "dc_it", "dc1", 999999.99, 40.0, "200")
    status = db_conn.execute(
        """SELECT last_seq, clock_offset_s FROM device_status s JOIN devices d USING (device_key)
           WHERE d.park_id = %s""", (park_id,)).fetchone()
    assert status is not None
    assert status[0] == 41
    assert 20 < status[1] < 31


async def test_metrics_endpoint_serves_prometheus_text(database_url, mqtt_url, park_id):
    async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service:
        await service.wait_subscribed()
        await publish(mqtt_url, [(build_topic(park_id, "m-1"), readings_payload("m-1", 1, minute_floor(utcnow())
                                                                               - timedelta(minutes=10), 3))])
        assert await wait_until(lambda: service.metrics.readings_stored == 3)
        reader, writer = await asyncio.open_connection("127.0.0.1", service.metrics_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        body = (await reader.read()).decode()
        writer.close()
    assert body.startswith("HTTP/1.1 200 OK")
    assert "# TYPE parkpulse_ingest_readings_stored_total counter" in body
    assert "parkpulse_ingest_readings_stored_total 3" in body
    assert 'parkpulse_ingest_messages_received_total{kind="readings"} 1' in body
