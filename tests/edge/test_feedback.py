"""The agent listens on each device's feedback topic and logs what ingest says was wrong.

Runs in the slim edge install too: a private Mosquitto, a simulated meter, and feedback published by the
test as ingest would (tests/ingest/test_feedback_edge.py has the same path with a real ingest).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from schemas.feedback import build_feedback, encode_feedback, hint_for
from schemas.topics import feedback_topic
from simulators.protocol.site import SimSite, build_site
from tests.edge.helpers import Mosquitto, agent_config, free_port, running_agent, wait_until

pytestmark = pytest.mark.skipif(shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None,
                                reason="mosquitto is not installed")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    running = Mosquitto(tmp_path / "broker")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def site() -> AsyncIterator[SimSite]:
    sim = build_site(n_modbus=1, n_dlt645=0, modbus_port=free_port(), dlt645_port=free_port(),
                     prefix=f"f{uuid.uuid4().hex[:4]}")
    await sim.start()
    yield sim
    await sim.stop()


async def _send(broker: Mosquitto, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, payload, qos=1)


async def test_agent_logs_feedback_with_reason_and_hint_and_counts_it(
        broker: Mosquitto, site: SimSite, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    park = "p-feedback"
    config = agent_config(park, broker.url, tmp_path / "outbox.sqlite", site.device_entries(poll_interval_s=5.0))
    device = config.devices[0].id
    feedback = build_feedback(quarantine_id=812, reason="out_of_range", detail="active_power=9e9 kW outside [..]",
                              topic=f"parkpulse/v1/{park}/{device}/readings", readings_rejected=2,
                              readings_accepted=58, received_at=datetime.now(UTC), suppressed=7)
    caplog.set_level(logging.WARNING, logger="edge.session")
    async with running_agent(config) as agent:
        session = agent.sessions[device]
        await wait_until(session.connected.is_set, timeout=10)
        await _send(broker, feedback_topic(park, "someone-else"), encode_feedback(feedback))  # not this device's
        await _send(broker, feedback_topic(park, device), b"this is not feedback")
        await _send(broker, feedback_topic(park, device), encode_feedback(feedback))
        await wait_until(lambda: session.feedback_received >= 1, timeout=10)
        status = await agent._status_fields(device)
    assert session.feedback_received == 1
    assert status["feedback_received"] == 1
    assert status["last_feedback_reason"] == "out_of_range"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "edge.session"]
    told = [w for w in warnings if "ingest rejected" in w]
    assert len(told) == 1
    assert "out_of_range" in told[0]
    assert hint_for("out_of_range") in told[0]
    assert "quarantine id 812" in told[0]
    assert "+7 more rejected" in told[0]
    assert any("unreadable message" in w and "feedback payload" in w for w in warnings)
