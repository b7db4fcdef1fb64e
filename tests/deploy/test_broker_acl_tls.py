"""The production broker's rules, enforced by a real Mosquitto running deploy/mosquitto/parkpulse.conf and
parkpulse.acl (tests/fixtures/deploy_broker.py rewrites only paths and ports):

* a device's user name ``park/device`` binds both park and device: it may publish its own readings, birth
  and status and nothing else, and read only its own command and feedback topics;
* ingest reads every park through a plain persistent subscription as well as through ``$share``;
* the TLS listener serves a certificate that clients verify against the deployment's CA, and clients with
  no or another CA refuse it; the edge agent's own ``mqtts://`` client connects and publishes;
* the certificate variant: the client certificate's CN is the user name, so it binds park and device too.
"""

from __future__ import annotations

import asyncio
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml

from edge.config import parse_config
from edge.errors import ConfigError, PublishRejectedError
from edge.mqtt import ConfirmingClient, tls_parameters
from infra.settings import parse_mqtt_url
from tests.fixtures.deploy_broker import (
    DEPLOY_MOSQUITTO,
    NOT_AUTHORIZED,
    DeployBroker,
    Pki,
    Session,
    Tls,
    make_pki,
    mosquitto_binaries,
    paho_handshake_leak_ignored,
    try_connect,
)

pytestmark = pytest.mark.skipif(mosquitto_binaries() is None, reason="mosquitto is not installed")

USERS = {"ingest": "pw-ingest", "park-a/m1": "pw-a-m1", "park-a/m2": "pw-a-m2", "park-b/m1": "pw-b-m1",
         "t-commander": "pw-commander"}
# Test-only writer of the command/feedback topics (nothing in production writes them yet).
COMMANDER_ACL = "user t-commander\ntopic write parkpulse/v1/+/+/cmd\ntopic write parkpulse/v1/+/+/errors\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _running(base: Path, pki: Pki, *, client_certificates: bool) -> Iterator[DeployBroker]:
    broker = DeployBroker(base, users=USERS, pki=pki, client_certificates=client_certificates,
                          extra_acl=COMMANDER_ACL)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[DeployBroker]:
    """The production configuration: password authentication on both listeners, TLS on the device one."""
    yield from _running(tmp_path_factory.mktemp("broker"), pki, client_certificates=False)


@pytest.fixture(scope="module")
def cert_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[DeployBroker]:
    """The documented certificate variant of the device listener."""
    yield from _running(tmp_path_factory.mktemp("cert-broker"), pki, client_certificates=True)


def _device(broker: DeployBroker, user: str) -> Session:
    """A device session over TLS with its password, the production default."""
    return Session(broker.tls_port, user, USERS[user], tls=Tls(broker.pki.ca))


def _publish_once(broker: DeployBroker, user: str, topic: str) -> int:
    """Publish in a session of its own and return the PUBACK reason code.

    A session of its own because Mosquitto (2.0.11 with Debian's CVE-2023-28366 backport, and upstream
    2.0.16+) closes the connection after refusing a publish when ``max_queued_messages`` is 0, as here.
    """
    session = _device(broker, user)
    try:
        return session.publish(topic)
    finally:
        session.close()


def _until(session: Session, sentinel: str) -> list[str]:
    """Topics received up to (without) ``sentinel``: the broker delivers in order, so nothing refused
    earlier can still be on its way once the sentinel, published last, has arrived."""
    seen: list[str] = []
    while (topic := session.messages.get(timeout=10).topic) != sentinel:
        seen.append(topic)
    return seen


def test_a_device_credential_binds_park_and_device(broker: DeployBroker) -> None:
    """The issue-10 case: ``park-a/m1`` must not write park-b's (or park-a/m2's) topics."""
    plain = Session(broker.plain_port, "ingest", USERS["ingest"])  # ingest's coming persistent subscription
    shared = Session(broker.plain_port, "ingest", USERS["ingest"])  # and today's shared one
    try:
        assert plain.subscribe("parkpulse/v1/#") < 0x80
        assert shared.subscribe("$share/ingest/parkpulse/v1/#") < 0x80
        refused = [
            _publish_once(broker, "park-a/m1", "parkpulse/v1/park-b/m1/readings"),   # same device id, other park
            _publish_once(broker, "park-a/m1", "parkpulse/v1/park-a/m2/readings"),   # same park, other device
            _publish_once(broker, "park-a/m1", "parkpulse/v1/park-a/m1/cmd"),        # devices only read commands
            _publish_once(broker, "park-a/m1", "parkpulse/v1/park-a/m1/other"),      # not a contract topic
            _publish_once(broker, "park-a/m1", "parkpulse/v1/park-a/readings"),      # the user name is 2 levels
            _publish_once(broker, "ingest", "parkpulse/v1/park-a/m1/readings"),      # ingest only reads
        ]
        assert refused == [NOT_AUTHORIZED] * len(refused)
        accepted = ["parkpulse/v1/park-a/m1/readings", "parkpulse/v1/park-a/m1/birth",
                    "parkpulse/v1/park-a/m1/status"]
        assert [_publish_once(broker, "park-a/m1", t) for t in accepted] == [0, 0, 0]
        assert _publish_once(broker, "park-b/m1", "parkpulse/v1/park-b/m1/readings") == 0  # its own park
        sentinel = "parkpulse/v1/park-a/m2/status"
        assert _publish_once(broker, "park-a/m2", sentinel) == 0
        expected = [*accepted, "parkpulse/v1/park-b/m1/readings"]
        assert _until(plain, sentinel) == expected
        assert _until(shared, sentinel) == expected
    finally:
        plain.close()
        shared.close()


def test_a_device_reads_only_its_own_command_and_feedback_topics(broker: DeployBroker) -> None:
    # Mosquitto grants any SUBSCRIBE and applies read rights to every message it would deliver.
    device = _device(broker, "park-a/m1")
    commander = Session(broker.plain_port, "t-commander", USERS["t-commander"])
    try:
        assert device.subscribe("parkpulse/v1/#") < 0x80
        for topic in ("parkpulse/v1/park-a/m1/cmd", "parkpulse/v1/park-a/m2/cmd", "parkpulse/v1/park-b/m1/cmd",
                      "parkpulse/v1/park-b/m1/errors"):
            assert commander.publish(topic) == 0
        assert _publish_once(broker, "park-a/m2", "parkpulse/v1/park-a/m2/readings") == 0  # not for m1's eyes
        assert commander.publish("parkpulse/v1/park-a/m1/errors") == 0
        assert _until(device, "parkpulse/v1/park-a/m1/errors") == ["parkpulse/v1/park-a/m1/cmd"]
    finally:
        device.close()
        commander.close()


def test_tls_listener_is_verified_with_the_deployment_ca(broker: DeployBroker, pki: Pki) -> None:
    ingest = Session(broker.plain_port, "ingest", USERS["ingest"])
    try:
        assert ingest.subscribe("parkpulse/v1/#") < 0x80
        device = _device(broker, "park-a/m1")
        assert device.publish("parkpulse/v1/park-a/m1/readings") == 0
        device.close()
        assert ingest.topics(1) == ["parkpulse/v1/park-a/m1/readings"]
    finally:
        ingest.close()
    user, password = "park-a/m1", USERS["park-a/m1"]
    for tls in (Tls(None), Tls(pki.other_ca)):  # the system CAs, an unrelated CA
        outcome = try_connect(broker.tls_port, user, password, tls=tls)
        assert outcome.startswith("tls:"), outcome
        assert "CERTIFICATE_VERIFY_FAILED" in outcome, outcome
    assert try_connect(broker.tls_port, user, "wrong", tls=Tls(pki.ca)).startswith("connack:")
    assert try_connect(broker.tls_port, user, password) == "closed"  # plain MQTT on the TLS port
    assert try_connect(broker.plain_port, user, "wrong").startswith("connack:")  # passwords there too


async def test_the_edge_agent_client_uses_tls_for_mqtts(broker: DeployBroker, pki: Pki) -> None:
    """``edge.mqtt.tls_parameters`` + the session's client: ``mqtts://`` really is TLS, verified."""
    endpoint = parse_mqtt_url(f"mqtts://127.0.0.1:{broker.tls_port}")

    def edge_client(ca_file: Path | None) -> ConfirmingClient:
        return ConfirmingClient(endpoint.host, endpoint.port, username="park-a/m1", password=USERS["park-a/m1"],
                                protocol=aiomqtt.ProtocolVersion.V5, tls_params=tls_parameters(endpoint, ca_file))

    ingest = Session(broker.plain_port, "ingest", USERS["ingest"])
    try:
        assert ingest.subscribe("parkpulse/v1/#") < 0x80
        client = edge_client(pki.ca)
        async with client:
            await client.publish_confirmed("parkpulse/v1/park-a/m1/readings", b"{}", require_subscriber=True)
            with pytest.raises(PublishRejectedError) as refused:
                await client.publish_confirmed("parkpulse/v1/park-b/m1/readings", b"{}")
            assert refused.value.reason_code == NOT_AUTHORIZED
        client.consume_disconnect_error()
        assert ingest.topics(1) == ["parkpulse/v1/park-a/m1/readings"]
    finally:
        ingest.close()
    error = ""
    with paho_handshake_leak_ignored():
        untrusting = edge_client(None)  # system CAs only: the deployment's certificate is not trusted
        try:
            async with untrusting:
                pass
        except aiomqtt.MqttError as exc:
            error = str(exc)
        untrusting.consume_disconnect_error()
        del untrusting  # it holds the failed connect, and so paho's unclosed socket
        for _ in range(3):  # ... as does the event loop's last handle until its next iteration
            await asyncio.sleep(0)
    assert "CERTIFICATE_VERIFY_FAILED" in error


def test_certificate_variant_binds_park_and_device_through_the_cn(cert_broker: DeployBroker, pki: Pki) -> None:
    broker = cert_broker
    cert = pki.client("park-a/m1")
    ingest = Session(broker.plain_port, "ingest", USERS["ingest"])  # services keep passwords on 1883
    try:
        assert ingest.subscribe("parkpulse/v1/#") < 0x80
        def publish_once(claimed: str | None, topic: str) -> int:
            device = Session(broker.tls_port, claimed, USERS.get(claimed or ""), tls=Tls(pki.ca, cert))
            try:
                return device.publish(topic)
            finally:
                device.close()

        # no user name at all, and the user name + password of another device: the CN decides either way
        codes = {claimed: [publish_once(claimed, t) for t in ("parkpulse/v1/park-a/m1/readings",
                                                               "parkpulse/v1/park-b/m1/readings",
                                                               "parkpulse/v1/park-a/m2/readings")]
                 for claimed in (None, "park-b/m1")}
        assert codes == {None: [0, NOT_AUTHORIZED, NOT_AUTHORIZED], "park-b/m1": [0, NOT_AUTHORIZED, NOT_AUTHORIZED]}
        assert ingest.topics(2) == ["parkpulse/v1/park-a/m1/readings"] * 2
        assert ingest.messages.empty()
    finally:
        ingest.close()
    # no client certificate (a password is not enough here), or one from another CA: no session
    assert try_connect(broker.tls_port, "park-a/m1", USERS["park-a/m1"], tls=Tls(pki.ca)) == "closed"
    rogue = pki.client("park-a/m1", from_other_ca=True)
    assert try_connect(broker.tls_port, tls=Tls(pki.ca, rogue)) == "closed"
    log = broker.log()
    assert "peer did not return a certificate" in log
    assert "certificate verify failed" in log


def _entrypoint(tmp_path: Path, version: str) -> subprocess.CompletedProcess[str]:
    """Run entrypoint.sh in production mode with a stub `mosquitto` that reports ``version``."""
    stub = tmp_path / "mosquitto"
    stub.write_text(f"#!/bin/sh\necho 'mosquitto version {version}'\nexit 3\n", encoding="utf-8")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    return subprocess.run(["sh", str(DEPLOY_MOSQUITTO / "entrypoint.sh")], capture_output=True, text=True,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin", "PARKPULSE_DEPLOYMENT": "production"},
                          check=False)


def test_entrypoint_refuses_a_broker_that_is_not_2_0(tmp_path: Path) -> None:
    """eclipse-mosquitto:2 is 2.1 now, whose ACL matching would deny every park/device user."""
    run = _entrypoint(tmp_path, "2.1.2")
    assert run.returncode == 1
    assert "needs Mosquitto 2.0.x" in run.stderr


def test_entrypoint_refuses_to_start_without_real_tls_files(tmp_path: Path) -> None:
    if Path("/run/secrets/mqtt_tls_cert").exists():
        pytest.skip("this machine has a /run/secrets/mqtt_tls_cert; the entrypoint would use it")
    run = _entrypoint(tmp_path, "2.0.22")  # fails before it writes anything
    assert run.returncode == 1
    assert "mqtt_tls_cert is not a PEM file" in run.stderr
    placeholder = (DEPLOY_MOSQUITTO / "tls.placeholder").read_text(encoding="utf-8")
    assert "-----BEGIN " not in placeholder  # what compose mounts when no TLS file is configured


def test_compose_the_entrypoint_and_the_config_agree_on_tls() -> None:
    compose = yaml.safe_load((DEPLOY_MOSQUITTO.parents[1] / "docker-compose.yml").read_text(encoding="utf-8"))
    mosquitto = compose["services"]["mosquitto"]
    assert mosquitto["image"] == "eclipse-mosquitto:2.0"  # not :2, which is 2.1 now
    assert {"mqtt_tls_cert", "mqtt_tls_key", "mqtt_tls_ca"} <= set(mosquitto["secrets"])
    conf = (DEPLOY_MOSQUITTO / "parkpulse.conf").read_text(encoding="utf-8").splitlines()
    entrypoint = (DEPLOY_MOSQUITTO / "entrypoint.sh").read_text(encoding="utf-8")
    for line in ("certfile /tmp/parkpulse-tls/server.crt", "keyfile /tmp/parkpulse-tls/server.key",
                 "#cafile /tmp/parkpulse-tls/ca.crt"):
        assert line in conf
        name = line.rsplit("/", 1)[1]
        assert f'"$tls/{name}"' in entrypoint  # the entrypoint writes what the config reads
    assert conf.index("listener 8883") > conf.index("listener 1883")
    assert "autosave_interval 1" in conf
    assert "autosave_on_changes false" in conf


async def test_the_edge_agent_client_authenticates_with_its_device_certificate(cert_broker: DeployBroker,
                                                                               pki: Pki, tmp_path: Path) -> None:
    """A device configured with ``cert_file``/``key_file`` in edge.yaml: its certificate's CN is its identity."""
    cert, key = pki.client("park-a/m1")
    config = parse_config({"agent_id": "gw", "park_id": "park-a",
                           "mqtt": {"url": f"mqtts://127.0.0.1:{cert_broker.tls_port}", "ca_file": str(pki.ca)},
                           "devices": [{"id": "m1", "profile": "eastron_sdm630",
                                        "transport": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 1},
                                        "mqtt": {"cert_file": cert.name, "key_file": key.name}}]})
    device = config.devices[0]
    certificate = device.mqtt.client_certificate(cert.parent)  # relative paths resolve against edge.yaml's folder
    assert certificate == (cert, key)
    endpoint = parse_mqtt_url(config.mqtt.url or "")
    ingest = Session(cert_broker.plain_port, "ingest", USERS["ingest"])
    try:
        assert ingest.subscribe("parkpulse/v1/#") < 0x80
        client = ConfirmingClient(endpoint.host, endpoint.port, protocol=aiomqtt.ProtocolVersion.V5,
                                  tls_params=tls_parameters(endpoint, config.mqtt.ca_file, certificate))
        async with client:
            await client.publish_confirmed("parkpulse/v1/park-a/m1/readings", b"{}", require_subscriber=True)
            with pytest.raises(PublishRejectedError) as refused:
                await client.publish_confirmed("parkpulse/v1/park-b/m1/readings", b"{}")
            assert refused.value.reason_code == NOT_AUTHORIZED
        client.consume_disconnect_error()
        assert ingest.topics(1) == ["parkpulse/v1/park-a/m1/readings"]
    finally:
        ingest.close()
    with pytest.raises(ConfigError, match="cert_file and key_file together"):
        parse_config({"agent_id": "gw", "park_id": "park-a", "devices": [
            {"id": "m1", "profile": "eastron_sdm630", "transport": {"kind": "modbus_tcp", "host": "h", "port": 1},
             "mqtt": {"cert_file": "m1.crt"}}]})
