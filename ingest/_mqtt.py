"""MQTT adapter: an aiomqtt 2.x client set up for at-least-once consumption.

aiomqtt 2 acknowledges QoS 1 messages as soon as paho hands them over, before the application has
stored anything. We switch paho to manual acknowledgements and send each PUBACK ourselves after the
database commit, with a persistent session (``clean_start=False`` + session expiry) so the broker
redelivers whatever was not acknowledged when a process dies. ``ReceiveMaximum`` bounds how many
unacknowledged messages the broker sends us: that is the backpressure when the database is down.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from infra.settings import MqttEndpoint


def make_consumer_client(endpoint: MqttEndpoint, *, client_id: str, session_expiry_s: int,
                         receive_maximum: int, ca_file: Path | None = None) -> aiomqtt.Client:
    """A v5 client with a persistent session and manual acknowledgements (see module docstring).

    An ``mqtts://`` endpoint connects over TLS and verifies the broker against ``ca_file`` (or the system's
    trust store when None).
    """
    tls = (aiomqtt.TLSParameters(ca_certs=str(ca_file) if ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
           if endpoint.tls else None)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = receive_maximum
    client = aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
        keepalive=30,
        timeout=10,
        tls_params=tls,
    )
    # Private attribute of aiomqtt 2.x (pinned <3): the paho client that owns the socket.
    client._client.manual_ack_set(True)
    return client


def ack(client: aiomqtt.Client, mid: int, qos: int) -> None:
    """Send the PUBACK for one message (no-op for QoS 0)."""
    if qos > 0:
        paho_client: Any = client._client
        paho_client.ack(mid, qos)
