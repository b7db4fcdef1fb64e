"""Helpers shared by the ingest tests: publish raw messages, run an ingest instance, poll the database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg

from infra.settings import parse_mqtt_url
from ingest import IngestSettings


def ingest_settings(database_url: str, mqtt_url: str, park_id: str, **overrides: Any) -> IngestSettings:
    """Settings for an ingest instance that only consumes ``park_id``'s topics."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "client_id": f"test-ingest-{park_id}",
        "park_filter": park_id,
        "metrics_port": 0,
        "flush_interval_s": 0.05,
        **overrides,
    }
    return IngestSettings(**values)


def readings_payload(device: str, seq: int, start: datetime, n: int, *, base: float = 1000.0) -> bytes:
    """A valid readings message: ``n`` one-minute energy register values from ``start``."""
    readings = [
        {"ts": (start + timedelta(minutes=i)).isoformat(), "metric": "active_energy_import",
         "value": round(base + i * 0.25, 2), "unit": "kWh"}
        for i in range(n)
    ]
    return json.dumps({"v": 1, "device": device, "seq": seq, "readings": readings}).encode()


async def publish(mqtt_url: str, messages: Iterable[tuple[str, bytes]], *, qos: int = 1, pace_s: float = 0.0,
                  retain: bool = False) -> int:
    """Publish (topic, payload) pairs at QoS 1, waiting for every PUBACK; returns the count."""
    ep = parse_mqtt_url(mqtt_url)
    count = 0
    async with aiomqtt.Client(ep.host, ep.port, protocol=aiomqtt.ProtocolVersion.V5,
                              identifier=f"test-pub-{uuid.uuid4().hex[:8]}") as client:
        client.pending_calls_threshold = 10_000
        pending: list[asyncio.Task[None]] = []
        for topic, payload in messages:
            pending.append(asyncio.create_task(client.publish(topic, payload, qos=qos, retain=retain)))
            count += 1
            if pace_s:
                await asyncio.sleep(pace_s)
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    return count


def count_readings(conn: psycopg.Connection, park_id: str) -> int:
    row = conn.execute(
        """SELECT count(*) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s""", (park_id,)).fetchone()
    return int(row[0]) if row else 0


def count_quarantine(conn: psycopg.Connection, park_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM quarantine WHERE park_id = %s", (park_id,)).fetchone()
    return int(row[0]) if row else 0


async def wait_until(predicate: Any, *, timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        await asyncio.sleep(interval)


def minute_floor(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def utcnow() -> datetime:
    return datetime.now(UTC)
