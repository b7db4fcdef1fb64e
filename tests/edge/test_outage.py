"""Store-and-forward under failure: a 60 s broker outage and a SIGKILLed agent lose nothing.

Each test runs its own Mosquitto (persistence on, so it can be stopped and restarted), the protocol
simulators, the agent, a persistent-session MQTT collector and the ingest service writing to the real
test database. Nothing is lost when the number of distinct readings (device, metric, ts) seen on the
broker and stored in the database both equal the agent's own count of readings it committed, no reading
was dropped, and every device's sequence numbers are contiguous from 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson
import psycopg
import pytest
import yaml

from edge.outbox import Outbox, read_stats
from ingest import IngestService, IngestSettings
from simulators.protocol.site import SimSite, build_site
from tests.edge.helpers import (
    Collected,
    GatedProxy,
    Mosquitto,
    agent_config,
    collect,
    free_port,
    running_agent,
    wait_until,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

OUTAGE_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    mq = Mosquitto(tmp_path / "mq")
    mq.start()
    yield mq
    mq.stop()


@pytest.fixture
async def site() -> AsyncIterator[SimSite]:
    sim = build_site(n_modbus=2, n_dlt645=1, modbus_port=free_port(), dlt645_port=free_port(),
                     prefix=f"o{uuid.uuid4().hex[:4]}")
    await sim.start()
    yield sim
    await sim.stop()


def _ingest(database_url: str, broker: Mosquitto, park_id: str) -> IngestService:
    return IngestService(IngestSettings(
        database_url=database_url, mqtt_url=broker.url, client_id=f"edge-test-ingest-{park_id}",
        share_group=f"g{uuid.uuid4().hex[:8]}", park_filter=park_id, metrics_port=-1, flush_interval_s=0.05,
        backoff_initial_s=0.2, backoff_max_s=1.0,
    ))


def _db_count(conn: psycopg.Connection, park_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key) "
        "WHERE d.park_id = %s", (park_id,)).fetchone()
    return int(row[0]) if row else 0


def _quarantined(conn: psycopg.Connection, park_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM quarantine WHERE park_id = %s", (park_id,)).fetchone()
    return int(row[0]) if row else 0


def _assert_nothing_lost(seen: Collected, devices: list[str], enqueued_readings: int, stored: int) -> None:
    assert seen.reading_count() == enqueued_readings == stored
    for device in devices:
        seqs = seen.seqs(device)
        assert seqs == set(range(len(seqs))), f"{device}: sequence gap"


async def test_broker_down_for_60_s_while_polling_loses_nothing(
    broker: Mosquitto, site: SimSite, database_url: str, db_conn: psycopg.Connection, park_id: str,
    tmp_path: Path,
) -> None:
    relay = GatedProxy(broker.port)  # the agent's path to the broker (see GatedProxy for why)
    await relay.start()
    config = agent_config(park_id, f"mqtt://127.0.0.1:{relay.port}", tmp_path / "outbox.sqlite",
                          site.device_entries(poll_interval_s=1.0),
                          drain={"backlog_rate_msgs_per_s": 40.0, "batch_size": 20})
    devices = [d.id for d in config.devices]
    try:
        async with _ingest(database_url, broker, park_id) as ingest:
            await ingest.wait_subscribed()
            async with collect(broker.port, park_id, client_id=f"c-{park_id}") as seen:
                async with running_agent(config) as agent:
                    await wait_until(lambda: all(len(seen.seqs(d)) >= 2 for d in devices), timeout=30)
                    broker.stop()
                    relay.open = False
                    down_at = datetime.now(UTC)
                    await asyncio.sleep(OUTAGE_S)
                    backlog = read_stats(config.outbox.path).pending_messages
                    broker.start()
                    up_at = datetime.now(UTC)
                    await _wait_ingest_subscribed(ingest, broker, park_id)
                    relay.open = True
                    await wait_until(lambda: read_stats(config.outbox.path).pending_messages == 0, timeout=90)
                    assert sum(s.connects for s in agent.sessions.values()) >= 2 * len(devices)
                stats = read_stats(config.outbox.path)
                await wait_until(lambda: seen.reading_count() >= stats.enqueued_readings, timeout=30)
                await wait_until(lambda: _db_count(db_conn, park_id) >= stats.enqueued_readings, timeout=30)
    finally:
        await relay.stop()

    # 3 meters polled every second for 60 s: about 180 messages waited in the outbox
    assert backlog >= len(devices) * (OUTAGE_S - 5)
    assert (stats.pending_messages, stats.dropped_messages) == (0, 0)
    _assert_nothing_lost(seen, devices, stats.enqueued_readings, _db_count(db_conn, park_id))
    assert _quarantined(db_conn, park_id) == 0
    for device in devices:  # readings taken while the broker was down all arrived, with their read times
        during = {ts for d, _, ts in seen.unique_readings()
                  if d == device and down_at <= datetime.fromisoformat(ts) <= up_at}
        assert len(during) >= OUTAGE_S - 5


async def _wait_ingest_subscribed(ingest: IngestService, broker: Mosquitto, park_id: str) -> None:
    """Publish status probes until ingest counts one: its shared subscription is live again."""
    before = ingest.metrics.messages_received["status"]
    probe = orjson.dumps({"v": 1, "device": "probe", "online": True})
    deadline = asyncio.get_running_loop().time() + 30
    while ingest.metrics.messages_received["status"] == before:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("ingest did not re-subscribe after the broker restart")
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
                await client.publish(f"parkpulse/v1/{park_id}/probe/status", probe, qos=1)
        except aiomqtt.MqttError:
            pass
        await asyncio.sleep(0.3)


async def test_sigkill_of_the_agent_loses_nothing(
    broker: Mosquitto, site: SimSite, database_url: str, db_conn: psycopg.Connection, park_id: str,
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "edge.yaml"
    outbox = tmp_path / "outbox.sqlite"
    config_path.write_text(yaml.safe_dump({
        "agent_id": "kill-test", "park_id": park_id, "status_interval_s": 1.0, "shutdown_grace_s": 10.0,
        "mqtt": {"url": broker.url, "backoff": {"initial_s": 0.2, "max_s": 1.0}},
        "outbox": {"path": str(outbox)},
        "devices": site.device_entries(poll_interval_s=0.5),
    }), encoding="utf-8")
    devices = [e["id"] for e in site.entries]
    command = [sys.executable, "-m", "edge", "--config", str(config_path), "--log-level", "WARNING"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async with _ingest(database_url, broker, park_id) as ingest:
        await ingest.wait_subscribed()
        async with collect(broker.port, park_id, client_id=f"c-{park_id}") as seen:
            first = start()
            try:
                await wait_until(lambda: all(len(seen.seqs(d)) >= 4 for d in devices), timeout=30)
            finally:
                os.kill(first.pid, signal.SIGKILL)
                first.wait()
            before_restart = {d: len(seen.seqs(d)) for d in devices}
            second = start()
            try:
                await wait_until(lambda: all(len(seen.seqs(d)) >= before_restart[d] + 4 for d in devices),
                                 timeout=30)
            finally:
                second.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(second.wait, 30) == 0
            stats = read_stats(outbox)
            await wait_until(lambda: seen.reading_count() >= stats.enqueued_readings, timeout=30)
            await wait_until(lambda: _db_count(db_conn, park_id) >= stats.enqueued_readings, timeout=30)

    assert (stats.pending_messages, stats.dropped_messages) == (0, 0)
    _assert_nothing_lost(seen, devices, stats.enqueued_readings, _db_count(db_conn, park_id))
    with Outbox(outbox) as box:
        assert box.integrity_check() == "ok"
