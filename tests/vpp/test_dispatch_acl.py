"""The dispatcher under the production broker ACL (deploy/mosquitto/parkpulse.acl): it connects as user ``vpp``,
which may write every device's cmd topic and read every ack topic; the device, as ``{park}/{device}``, reads
only its own commands and acknowledges on its own ack topic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("cryptography", reason="the deploy broker fixture makes its PKI with cryptography (server install)")

from flex._direction import Direction
from tests.fixtures.deploy_broker import DeployBroker, make_pki, mosquitto_binaries
from tests.vpp.test_dispatch import apply_all, assets, commands, devices, intervals, settings, wait_for  # noqa: F401
from vpp._dispatch import Dispatcher

pytestmark = pytest.mark.skipif(mosquitto_binaries() is None, reason="mosquitto is not installed")


@pytest.fixture
def broker(tmp_path: Path, park_id: str) -> Iterator[DeployBroker]:
    users = {"vpp": "pw-vpp", f"{park_id}/bess-1": "pw-bess"}
    deploy = DeployBroker(tmp_path / "broker", users=users, pki=make_pki(tmp_path / "pki"))
    deploy.start()
    try:
        yield deploy
    finally:
        deploy.stop()


async def test_dispatch_as_user_vpp_reaches_the_device_under_the_acl(broker: DeployBroker, assets: str,  # noqa: F811
                                                                     database_url: str) -> None:
    park, port = assets, broker.plain_port
    device_url = f"mqtt://{park}%2Fbess-1:pw-bess@127.0.0.1:{port}"
    vpp_url = f"mqtt://vpp:pw-vpp@127.0.0.1:{port}"
    async with devices(device_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, f"mqtt://127.0.0.1:{port}", vpp_dispatch_mqtt_url=vpp_url,
                                vpp_dispatch_client_id=f"vpp-{uuid.uuid4().hex[:6]}")) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-acl", park, Direction.UP, intervals(1, 30.0, 20.0, lead_s=0.0))
        await wait_for(lambda: dispatcher.acks_received >= 1, "the acknowledgement through the ACL")
    assert [c["device"] for c in fake.received] == ["bess-1"]
    [row] = commands(database_url, park, event_id="ev-acl")
    assert (row.status, row.attempts) == ("applied", 1)
