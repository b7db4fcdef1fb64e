"""End to end through the production broker config: a device bound to its park, ingest over TLS.

A device with the credential ``{park}/{device}`` publishes over the TLS listener to its own topic and to
another park's topic; ingest (user ``ingest``, ``mqtts://`` verified against the test's CA) stores the
first, and the broker refuses the second (0x87), so nothing of it reaches the database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ingest import IngestService, IngestSettings
from tests.fixtures.deploy_broker import NOT_AUTHORIZED, DeployBroker, Pki, Session, Tls, make_pki, mosquitto_binaries
from tests.ingest.helpers import count_readings, wait_until

pytestmark = [pytest.mark.services,
              pytest.mark.skipif(mosquitto_binaries() is None, reason="mosquitto is not installed")]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def parks(db_conn: psycopg.Connection) -> tuple[str, str]:
    """Two registered parks: the device's own, and another it must not write into."""
    own, other = f"t-tls-{uuid.uuid4().hex[:8]}", f"t-tls-{uuid.uuid4().hex[:8]}"
    for park in (own, other):
        db_conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (park,))
    return own, other


@pytest.fixture
def broker(tmp_path: Path, pki: Pki, parks: tuple[str, str]) -> Iterator[DeployBroker]:
    own, _ = parks
    users = {"ingest": "pw-ingest", f"{own}/m1": "pw-device"}
    running = DeployBroker(tmp_path / "broker", users=users, pki=pki)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _payload(device: str, n: int) -> bytes:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    return json.dumps({"v": 1, "device": device, "seq": 1, "readings": [
        {"ts": (start + timedelta(minutes=i)).isoformat(), "metric": "active_energy_import", "value": 10.0 + i,
         "unit": "kWh"} for i in range(n)]}).encode()


async def test_a_device_writes_only_its_own_park_and_ingest_reads_over_tls(database_url, db_conn, broker, parks):
    own, other = parks
    settings = IngestSettings(database_url=database_url,
                              mqtt_url=f"mqtts://ingest:pw-ingest@localhost:{broker.tls_port}",
                              mqtt_ca_file=broker.pki.ca, client_id=f"t-tls-ingest-{own}", metrics_port=-1,
                              flush_interval_s=0.05)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        device = Session(broker.tls_port, f"{own}/m1", "pw-device", tls=Tls(broker.pki.ca))
        try:
            assert device.publish(f"parkpulse/v1/{own}/m1/readings", _payload("m1", 5)) == 0
            refused = device.publish(f"parkpulse/v1/{other}/m1/readings", _payload("m1", 7))
        finally:
            device.close()
        assert refused == NOT_AUTHORIZED
        assert await wait_until(lambda: count_readings(db_conn, own) == 5)
    assert count_readings(db_conn, other) == 0
    assert db_conn.execute("SELECT count(*) FROM quarantine WHERE park_id = %s", (other,)).fetchone() == (0,)
