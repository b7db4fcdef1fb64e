"""Feedback through access-controlled brokers: only the device itself reads it, and a refusing broker costs
the feedback, never the data.

The first test runs the production broker configuration (deploy/mosquitto/parkpulse.conf and .acl, through
tests/fixtures/deploy_broker.py), whose ACL lets user ``ingest`` write the errors topics. The second runs a
broker whose ACL lets ingest only read, as a misconfigured deployment would.
"""

from __future__ import annotations

import asyncio
import json
import queue
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from ingest import IngestService, IngestSettings
from schemas import build_topic
from schemas.feedback import decode_feedback
from schemas.topics import feedback_topic
from tests.edge.helpers import Mosquitto
from tests.fixtures.deploy_broker import DeployBroker, Pki, Session, Tls, make_pki, mosquitto_binaries
from tests.ingest.helpers import count_quarantine, count_readings, wait_until

pytestmark = [pytest.mark.services,
              pytest.mark.skipif(mosquitto_binaries() is None, reason="mosquitto is not installed")]

def _payload(device: str, seq: int, n: int) -> bytes:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1, minutes=-seq * n)
    return json.dumps({"v": 1, "device": device, "seq": seq, "readings": [
        {"ts": (start + timedelta(minutes=i)).isoformat(), "metric": "active_energy_import", "value": 10.0 + i,
         "unit": "kWh"} for i in range(n)]}).encode()


def _settings(database_url: str, url: str, park_id: str) -> IngestSettings:
    return IngestSettings(database_url=database_url, mqtt_url=url, client_id=f"t-fb-ingest-{park_id}",
                          park_filter=park_id, metrics_port=-1, flush_interval_s=0.05,
                          broker_backoff_initial_s=0.05, broker_backoff_max_s=0.2)


async def _next(session: Session, timeout: float = 10.0) -> mqtt.MQTTMessage:
    """The session's next message, waited for off the event loop (ingest runs on it)."""
    return await asyncio.to_thread(session.messages.get, timeout=timeout)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def deploy_broker(tmp_path: Path, pki: Pki, park_id: str) -> Iterator[DeployBroker]:
    users = {"ingest": "pw-ingest", f"{park_id}/m1": "pw-m1", f"{park_id}/m2": "pw-m2"}
    broker = DeployBroker(tmp_path / "broker", users=users, pki=pki)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_only_the_device_itself_reads_its_feedback(database_url: str, db_conn: psycopg.Connection,
                                                         deploy_broker: DeployBroker, park_id: str) -> None:
    broker = deploy_broker
    url = f"mqtt://ingest:pw-ingest@127.0.0.1:{broker.plain_port}"
    m1 = Session(broker.tls_port, f"{park_id}/m1", "pw-m1", tls=Tls(broker.pki.ca))
    m2 = Session(broker.tls_port, f"{park_id}/m2", "pw-m2", tls=Tls(broker.pki.ca))
    try:
        assert m1.subscribe(feedback_topic(park_id, "m1")) < 0x80
        for flt in (feedback_topic(park_id, "m1"), "parkpulse/v1/+/+/errors", "parkpulse/v1/#"):
            assert m2.subscribe(flt) < 0x80  # Mosquitto grants it, and checks read rights per message
        async with IngestService(_settings(database_url, url, park_id)) as service:
            await service.wait_subscribed()
            assert await asyncio.to_thread(m1.publish, build_topic(park_id, "m1"), b'{"v": 1, "readings": [') == 0
            mine = await _next(m1)
            assert mine.topic == feedback_topic(park_id, "m1")
            assert decode_feedback(mine.payload)["reason"] == "invalid_json"
            # m2's own feedback, published by ingest after m1's: the broker delivers in order, so had m1's
            # reached m2 it would come first
            assert await asyncio.to_thread(m2.publish, build_topic(park_id, "m2"), b"\xff") == 0
            first_for_m2 = await _next(m2)
            assert first_for_m2.topic == feedback_topic(park_id, "m2")
            assert decode_feedback(first_for_m2.payload)["reason"] == "invalid_utf8"
            # m2 subscribed through three overlapping filters and Mosquitto delivers a copy per filter: every
            # copy it got is its own feedback, never m1's
            await asyncio.sleep(0.5)
            copies = []
            while not m2.messages.empty():
                copies.append(m2.messages.get_nowait().topic)
            assert set(copies) <= {feedback_topic(park_id, "m2")}
            assert await wait_until(lambda: service.metrics.feedback_sent == 2, timeout=5)  # its PUBACK may lag
            assert sum(service.metrics.feedback_dropped.values()) == 0
    finally:
        m1.close()
        m2.close()
    assert count_quarantine(db_conn, park_id) == 2


async def test_a_broker_refusing_feedback_costs_the_feedback_not_the_data(
        database_url: str, db_conn: psycopg.Connection, tmp_path: Path, park_id: str) -> None:
    acl = ("user ingest\ntopic read parkpulse/v1/#\n"
           f"user {park_id}/m1\ntopic write parkpulse/v1/{park_id}/m1/readings\n"
           f"topic read parkpulse/v1/{park_id}/m1/errors\n")
    broker = Mosquitto(tmp_path / "refusing", acl=acl, users={"ingest": "pw-ingest", f"{park_id}/m1": "pw-m1"})
    broker.start()
    device = Session(broker.port, f"{park_id}/m1", "pw-m1")
    try:
        assert device.subscribe(feedback_topic(park_id, "m1")) < 0x80
        url = f"mqtt://ingest:pw-ingest@127.0.0.1:{broker.port}"
        async with IngestService(_settings(database_url, url, park_id)) as service:
            await service.wait_subscribed()
            topic = build_topic(park_id, "m1")
            for raw in (_payload("m1", 0, 5), b"not json", _payload("m1", 1, 5)):
                assert await asyncio.to_thread(device.publish, topic, raw) == 0
            assert await wait_until(lambda: service.metrics.feedback_dropped["refused"] == 1, timeout=15)
            assert await wait_until(lambda: count_readings(db_conn, park_id) == 10, timeout=15)
            # ingest reconnected (Mosquitto drops a client whose publish it refused) and still stores
            assert await asyncio.to_thread(device.publish, topic, _payload("m1", 2, 5)) == 0
            assert await wait_until(lambda: count_readings(db_conn, park_id) == 15, timeout=15)
            # feedback is suspended after a refusal: the next reject is stored and not even tried
            assert await asyncio.to_thread(device.publish, topic, b"still not json") == 0
            assert await wait_until(lambda: service.metrics.feedback_dropped["suspended"] == 1, timeout=15)
            assert service.metrics.feedback_sent == 0
            assert service.metrics.broker_reconnects <= 1  # the suspension bounds what refusals cost
    finally:
        device.close()
        broker.stop()
    assert count_quarantine(db_conn, park_id) == 2
    with pytest.raises(queue.Empty):
        device.messages.get(timeout=0.2)
