"""End to end: an edge agent whose meter the park has not registered learns why ingest refuses it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from ingest import IngestService
from schemas.feedback import hint_for
from simulators.protocol.site import SimSite, build_site
from tests.edge.helpers import agent_config, free_port, running_agent
from tests.edge.helpers import wait_until as edge_wait_until
from tests.fixtures.services import unique_park_id
from tests.ingest.helpers import count_quarantine, ingest_settings, wait_until

pytestmark = pytest.mark.services


@pytest.fixture
def closed_park(request: pytest.FixtureRequest, db_conn: psycopg.Connection) -> str:
    """A registered park that does not auto-register devices: its meters must be registered first."""
    park = unique_park_id(request)
    db_conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, false)", (park,))
    return park


@pytest.fixture
async def site() -> AsyncIterator[SimSite]:
    sim = build_site(n_modbus=1, n_dlt645=0, modbus_port=free_port(), dlt645_port=free_port(),
                     prefix=f"u{uuid.uuid4().hex[:4]}")
    await sim.start()
    yield sim
    await sim.stop()


async def test_an_unregistered_meter_is_told_to_get_registered(
        database_url: str, mqtt_url: str, closed_park: str, db_conn: psycopg.Connection, site: SimSite,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = agent_config(closed_park, mqtt_url, tmp_path / "outbox.sqlite", site.device_entries(poll_interval_s=0.5))
    device = config.devices[0].id
    caplog.set_level(logging.WARNING, logger="edge.session")
    async with IngestService(ingest_settings(database_url, mqtt_url, closed_park)) as service:
        await service.wait_subscribed()
        async with running_agent(config) as agent:
            session = agent.sessions[device]
            await edge_wait_until(lambda: session.feedback_received >= 1, timeout=20)
        assert await wait_until(lambda: service.metrics.feedback_sent >= session.feedback_received, timeout=5)
    reasons = {r[0] for r in db_conn.execute("SELECT DISTINCT reason FROM quarantine WHERE park_id = %s",
                                             (closed_park,)).fetchall()}
    assert reasons == {"unregistered"}
    assert count_quarantine(db_conn, closed_park) >= session.feedback_received
    assert session.last_feedback is not None
    assert session.last_feedback["reason"] == "unregistered"
    told = [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "ingest rejected" in r.getMessage()]
    assert told
    assert all(f"{device}: ingest rejected" in t and "unregistered" in t for t in told)
    assert hint_for("unregistered") in told[0]
    assert "parkpulse registry" in told[0]
