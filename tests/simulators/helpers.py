"""Shared helpers of the simulator tests that talk to the real broker."""

import uuid

import aiomqtt

from infra.settings import parse_mqtt_url
from schemas import TopicKind, build_topic


def mqtt_client(mqtt_url: str) -> aiomqtt.Client:
    """An MQTT v5 client with a unique identifier."""
    endpoint = parse_mqtt_url(mqtt_url)
    return aiomqtt.Client(endpoint.host, endpoint.port, username=endpoint.username, password=endpoint.password,
                          identifier=f"test-sim-{uuid.uuid4().hex[:10]}", protocol=aiomqtt.ProtocolVersion.V5)


async def clear_retained(mqtt_url: str, park_id: str, device_ids: list[str]) -> None:
    """Delete the retained birth and status messages a test run left on the broker."""
    async with mqtt_client(mqtt_url) as c:
        for device in device_ids:
            for kind in (TopicKind.BIRTH, TopicKind.STATUS):
                await c.publish(build_topic(park_id, device, kind), b"", qos=1, retain=True)
