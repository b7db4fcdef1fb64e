"""Ingest under failure: a killed process, a database outage. Nothing may be lost or duplicated."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from ingest import IngestService
from schemas import build_topic
from tests.fixtures.proxy import CuttableProxy
from tests.ingest.helpers import (
    count_readings,
    ingest_settings,
    minute_floor,
    publish,
    readings_payload,
    utcnow,
    wait_until,
)

pytestmark = pytest.mark.services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def start_ingest(database_url: str, mqtt_url: str, park_id: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PARKPULSE_DATABASE_URL": database_url, "PARKPULSE_MQTT_URL": mqtt_url,
           "PARKPULSE_FLUSH_INTERVAL_S": "0.05", "PARKPULSE_BATCH_MAX_MESSAGES": "20",
           "PARKPULSE_SHARE_GROUP": f"kill-{park_id[-8:]}"}
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "parkpulse.cli", "ingest", "--client-id", f"kill-{park_id}", "--park", park_id,
             "--metrics-port", str(port), "--no-migrate"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr)


async def test_sigkill_mid_stream_loses_and_duplicates_nothing(database_url, mqtt_url, park_id, db_conn, tmp_path):
    start = minute_floor(utcnow()) - timedelta(hours=6)
    n_devices, n_messages, per_message = 5, 60, 5  # 1,500 readings
    messages = [
        (build_topic(park_id, f"m-{d}"),
         readings_payload(f"m-{d}", seq, start + timedelta(minutes=per_message * seq), per_message, base=10.0 * d))
        for seq in range(n_messages) for d in range(n_devices)
    ]
    expected = n_devices * n_messages * per_message
    port = free_port()
    proc = start_ingest(database_url, mqtt_url, park_id, port, tmp_path / "ingest.log")
    try:
        assert await wait_until(lambda: healthy(port), timeout=30), "ingest did not come up"
        publisher = asyncio.create_task(publish(mqtt_url, messages, pace_s=0.01))
        assert await wait_until(lambda: count_readings(db_conn, park_id) > 0, timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        stored_at_kill = count_readings(db_conn, park_id)
        await publisher  # the rest is queued by the broker in the instance's persistent session
        proc = start_ingest(database_url, mqtt_url, park_id, port, tmp_path / "ingest.log")
        assert await wait_until(lambda: count_readings(db_conn, park_id) == expected, timeout=60)
        await asyncio.sleep(1.0)  # a late redelivery would show up as an extra row here (it cannot: PK)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert 0 < stored_at_kill < expected, "the kill should land mid-stream"
    assert count_readings(db_conn, park_id) == expected
    values = db_conn.execute(
        """SELECT count(DISTINCT (s.series_id, r.ts)), min(r.value), max(r.value) FROM readings r
           JOIN series s USING (series_id) JOIN devices d USING (device_key) WHERE d.park_id = %s""",
        (park_id,)).fetchone()
    assert values == (expected, 0.0, 10.0 * (n_devices - 1) + 0.25 * (per_message - 1))


async def test_database_outage_holds_acks_and_loses_nothing(database_url, mqtt_url, park_id, db_conn):
    url = urlsplit(database_url)
    proxy = CuttableProxy(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = urlunsplit(url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{proxy.port}"))
    start = minute_floor(utcnow()) - timedelta(hours=4)  # 200 one-minute readings, all in the past
    batches = [[(build_topic(park_id, "m-1"), readings_payload("m-1", part * 10 + i,
                                                              start + timedelta(minutes=10 * (part * 10 + i)), 10))
                for i in range(10)] for part in range(2)]
    settings = ingest_settings(proxied, mqtt_url, park_id, backoff_initial_s=0.1, backoff_max_s=0.5,
                               receive_maximum=5, batch_max_messages=2)
    try:
        async with IngestService(settings) as service:
            await service.wait_subscribed()
            await publish(mqtt_url, batches[0])
            assert await wait_until(lambda: count_readings(db_conn, park_id) == 100)
            proxy.cut()
            await publish(mqtt_url, batches[1])
            assert await wait_until(lambda: service.metrics.storage_errors >= 2)
            assert count_readings(db_conn, park_id) == 100
            assert service.metrics.pending_messages <= 5  # receive maximum: the broker holds the rest
            proxy.restore()
            assert await wait_until(lambda: count_readings(db_conn, park_id) == 200, timeout=30)
    finally:
        await proxy.close()
    assert service.metrics.readings_stored == 200


async def test_broker_restart_reconnects_and_loses_nothing(database_url, private_broker, park_id, db_conn):
    start = minute_floor(utcnow()) - timedelta(hours=4)
    topic = build_topic(park_id, "m-1")
    before = [(topic, readings_payload("m-1", i, start + timedelta(minutes=10 * i), 10)) for i in range(5)]
    after = [(topic, readings_payload("m-1", i, start + timedelta(minutes=10 * i), 10)) for i in range(5, 12)]
    settings = ingest_settings(database_url, private_broker.url, park_id, backoff_initial_s=0.1, backoff_max_s=0.5)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        await publish(private_broker.url, before)
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 50)
        private_broker.stop()
        assert await wait_until(lambda: not service.metrics.mqtt_connected)
        private_broker.start()
        assert await wait_until(lambda: service.metrics.mqtt_connected, timeout=30)
        await publish(private_broker.url, after)
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 120, timeout=30)
    assert service.metrics.broker_reconnects >= 1


async def test_exclusive_subscription_survives_a_broker_restart_while_ingest_is_down(
        database_url, private_broker, park_id, db_conn):
    """Messages published after a broker restart, before ingest reconnects, are kept for its session."""
    start = minute_floor(utcnow()) - timedelta(hours=4)
    topic = build_topic(park_id, "m-1")
    messages = [(topic, readings_payload("m-1", i, start + timedelta(minutes=10 * i), 10)) for i in range(6)]
    settings = ingest_settings(database_url, private_broker.url, park_id, share_group="")
    async with IngestService(settings) as service:
        await service.wait_subscribed()  # creates the persistent session and its subscription
    private_broker.stop()
    private_broker.start()
    await publish(private_broker.url, messages)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 60, timeout=30)
