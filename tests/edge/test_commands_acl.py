"""Command topics under the production broker ACL (deploy/mosquitto/parkpulse.acl, tests/fixtures/deploy_broker.py).

The edge agent's battery session connects with its own credentials (user ``{park}/t-bess``), reads its own
cmd topic and writes its own ack; another device's identity can neither read that cmd topic nor forge
that ack, and only user ``vpp`` may send commands.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("cryptography", reason="the deploy broker fixture makes its PKI with cryptography (server install)")

from schemas.commands import CommandAction, ack_topic, build_command, command_topic, encode_command
from simulators.protocol.site import build_flex_site
from tests.edge.helpers import agent_config, free_port, running_agent, wait_until
from tests.fixtures.deploy_broker import NOT_AUTHORIZED, DeployBroker, Pki, Session, make_pki, mosquitto_binaries

pytestmark = pytest.mark.skipif(mosquitto_binaries() is None, reason="mosquitto is not installed")


@pytest.fixture
def park() -> str:
    return f"acl-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker(tmp_path: Path, park: str) -> Iterator[DeployBroker]:
    pki: Pki = make_pki(tmp_path / "pki")
    users = {"vpp": "pw-vpp", f"{park}/t-bess": "pw-bess", f"{park}/t-ev-1": "pw-ev"}
    deploy = DeployBroker(tmp_path / "broker", users=users, pki=pki)
    deploy.start()
    try:
        yield deploy
    finally:
        deploy.stop()


def _publish_once(broker: DeployBroker, user: str, password: str, topic: str) -> int:
    """PUBACK reason code of one publish in a session of its own (Mosquitto closes the connection after a
    refused publish with max_queued_messages 0; see tests/deploy/test_broker_acl_tls.py)."""
    session = Session(broker.plain_port, user, password)
    try:
        return session.publish(topic, b"{}")
    finally:
        session.close()


def _command(park: str, device: str, action: CommandAction, value: float, command_id: str) -> bytes:
    now = datetime.now(UTC)
    return encode_command(build_command(command_id=command_id, park=park, device=device, action=action, value=value,
                                        issued_at=now, expires_at=now + timedelta(minutes=1), issued_by="vpp"))


async def test_a_device_reads_only_its_own_cmd_topic_and_writes_only_its_own_ack(
        tmp_path: Path, broker: DeployBroker, park: str) -> None:
    site = build_flex_site(port=free_port(), prefix="t", n_ev=1)
    await site.start()
    bess_entry = next(e for e in site.device_entries() if e["id"] == "t-bess")
    config = agent_config(park, f"mqtt://127.0.0.1:{broker.plain_port}", tmp_path / "outbox.sqlite",
                          [{**bess_entry, "mqtt": {"password": "pw-bess"}}], mqtt={"require_subscriber": False})
    vpp = Session(broker.plain_port, "vpp", "pw-vpp")
    ev = Session(broker.plain_port, f"{park}/t-ev-1", "pw-ev")
    try:
        async with running_agent(config) as agent:
            await wait_until(agent.sessions["t-bess"].connected.is_set, timeout=15)
            assert vpp.subscribe(f"parkpulse/v1/{park}/+/ack") < 0x80
            # the EV's identity asks for the battery's commands: granted, but the broker delivers nothing
            for topic_filter in (command_topic(park, "t-bess"), "parkpulse/v1/+/+/cmd", command_topic(park, "t-ev-1")):
                assert ev.subscribe(topic_filter) < 0x80

            assert vpp.publish(command_topic(park, "t-bess"),
                               _command(park, "t-bess", CommandAction.SET_ACTIVE_POWER, -30.0, "acl-1")) < 0x80
            ack = await asyncio.to_thread(vpp.messages.get, timeout=15)
            assert ack.topic == ack_topic(park, "t-bess")  # written by the agent with the battery's own credentials
            assert json.loads(ack.payload)["status"] == "applied"
            assert site.assets["t-bess"].setpoint(CommandAction.SET_ACTIVE_POWER) == -30.0

            # a command for the EV itself reaches it, and it is the first thing the EV ever got: the battery's
            # command published before it never was delivered to the EV
            assert vpp.publish(command_topic(park, "t-ev-1"),
                               _command(park, "t-ev-1", CommandAction.SET_POWER_LIMIT, 7.0, "acl-2")) < 0x80
            first = await asyncio.to_thread(ev.messages.get, timeout=15)
            assert first.topic == command_topic(park, "t-ev-1")
            assert json.loads(first.payload)["command_id"] == "acl-2"

            # the EV cannot forge the battery's ack nor send commands; vpp cannot forge acks
            refused = [_publish_once(broker, user, password, topic) for user, password, topic in (
                (f"{park}/t-ev-1", "pw-ev", ack_topic(park, "t-bess")),
                (f"{park}/t-ev-1", "pw-ev", command_topic(park, "t-bess")),
                ("vpp", "pw-vpp", ack_topic(park, "t-bess")),
            )]
            assert refused == [NOT_AUTHORIZED] * 3
            assert _publish_once(broker, f"{park}/t-ev-1", "pw-ev", ack_topic(park, "t-ev-1")) < 0x80  # its own
    finally:
        vpp.close()
        ev.close()
        await site.stop()
