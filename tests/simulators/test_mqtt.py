"""The simulator against the real Mosquitto: what a subscriber receives is exactly what was reported."""

import asyncio
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from schemas import BIRTH_ADAPTER, TopicKind, decode_readings, parse_topic
from simulators import PublishError, load_scenario, run_simulation
from tests.simulators.helpers import clear_retained, mqtt_client

pytestmark = pytest.mark.services


async def test_subscriber_receives_exactly_what_was_published(mqtt_url, park_id):
    scenario = load_scenario().with_overrides(park_id=park_id, extra_meters=3, duplicate_message_rate=0.05,
                                              malformed_message_rate=0.05)
    device_ids = [d.id for d in scenario.all_devices()]
    received = []
    try:
        async with mqtt_client(mqtt_url) as sub:
            await sub.subscribe(f"parkpulse/v1/{park_id}/#", qos=1)
            report = await run_simulation(scenario, mqtt_url, duration="3h", speed=0, seed=7, record=True)
            expected = (report.births_published + report.status_published + report.messages_published
                        + report.duplicates_published + report.malformed_published)
            async with asyncio.timeout(60):
                async for message in sub.messages:
                    assert isinstance(message.payload, bytes)
                    received.append((message.topic.value, message.payload))
                    if len(received) == expected:
                        break
    finally:
        await clear_retained(mqtt_url, park_id, device_ids)

    now = datetime.now(UTC)
    assert report.simulated_end <= now
    births = [BIRTH_ADAPTER.validate_json(p) for t, p in received if parse_topic(t).kind is TopicKind.BIRTH]
    assert sorted(b["device"] for b in births) == sorted(device_ids)
    first_reading = next(i for i, (t, _) in enumerate(received) if parse_topic(t).kind is TopicKind.READINGS)
    assert all(parse_topic(t).kind is not TopicKind.BIRTH for t, _ in received[first_reading:])

    stored, seqs, rejected = set(), defaultdict(list), 0
    for topic, payload in received:
        address = parse_topic(topic)
        if address.kind is not TopicKind.READINGS:
            continue
        decoded = decode_readings(address, payload, now=now)
        rejected += bool(decoded.rejections)
        if decoded.seq is not None:
            seqs[address.device_id].append(decoded.seq)
        stored |= {(address.device_id, r.metric, r.ts, r.value) for r in decoded.readings}
    assert report.records is not None
    assert stored == {(r.device_id, r.metric, r.ts, r.value) for r in report.records}
    assert len(stored) == report.readings_published
    assert rejected == report.malformed_published
    for device, device_seqs in seqs.items():  # per device, the broker keeps the publish order
        assert device_seqs == sorted(device_seqs), device


async def test_unreachable_broker_is_a_publish_error():
    with pytest.raises(PublishError, match=r"127\.0\.0\.1:1"):
        await run_simulation(load_scenario(), "mqtt://127.0.0.1:1", duration="15m", speed=0, seed=1)
