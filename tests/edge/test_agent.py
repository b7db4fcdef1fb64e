"""The whole agent against protocol simulators and the real test broker."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from edge.outbox import read_stats
from infra.settings import parse_mqtt_url
from schemas import BIRTH_ADAPTER, STATUS_ADAPTER, decode_readings, parse_topic
from simulators.protocol.site import SimSite, build_site
from tests.edge.helpers import (
    Mosquitto,
    agent_config,
    collect,
    free_port,
    refused_port,
    running_agent,
    wait_until,
)

pytestmark = pytest.mark.services


@pytest.fixture
async def site() -> AsyncIterator[SimSite]:
    sim = build_site(n_modbus=2, n_dlt645=1, modbus_port=free_port(), dlt645_port=free_port(),
                     prefix=f"a{uuid.uuid4().hex[:4]}")
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as exit_stack:
        yield exit_stack


def _port(url: str) -> int:
    return parse_mqtt_url(url).port


async def test_every_reading_arrives_with_birth_and_status(
    site: SimSite, mqtt_url: str, park_id: str, tmp_path: Path
) -> None:
    config = agent_config(park_id, mqtt_url, tmp_path / "outbox.sqlite", site.device_entries(poll_interval_s=0.5))
    devices = [d.id for d in config.devices]
    async with collect(_port(mqtt_url), park_id, client_id=f"c-{park_id}") as seen:
        async with running_agent(config):
            await wait_until(lambda: all(len(seen.seqs(d)) >= 4 for d in devices), timeout=30)
        stats = read_stats(config.outbox.path)
        await wait_until(lambda: seen.reading_count() >= stats.enqueued_readings, timeout=10)

    assert (stats.pending_messages, stats.dropped_messages) == (0, 0)
    assert stats.published_readings == stats.enqueued_readings == seen.reading_count()
    for device in devices:  # sequence numbers are contiguous: no message was lost
        seqs = seen.seqs(device)
        assert seqs == set(range(len(seqs)))
    now = datetime.now(UTC)
    for message in seen.readings:
        topic = parse_topic(f"parkpulse/v1/{park_id}/{message['device']}/readings")
        decoded = decode_readings(topic, orjson.dumps(message), now=now)
        assert decoded.rejections == [], decoded.summary()

    births = {d: BIRTH_ADAPTER.validate_python(seen.births[d]) for d in devices}
    dl = next(d for d in devices if "-dl-" in d)
    assert births[dl]["profile"] == "dlt645_2007_3p"
    assert births[dl]["multiplier"] == 50.0
    assert births[dl]["register_max"] == pytest.approx(999999.99 * 50)
    assert births[dl]["metering_level"] == 2
    statuses = [STATUS_ADAPTER.validate_python(s) for s in seen.statuses]
    assert any(s["online"] and "sent_at" in s and "backlog" in s for s in statuses)
    last = {s["device"]: s for s in seen.statuses}
    assert all(last[d]["online"] is False and last[d]["reason"] == "agent_stopped" for d in devices)
    assert last[dl]["meter_clock_offset_s"] is not None


async def test_one_bad_device_never_stops_the_others(
    site: SimSite, mqtt_url: str, park_id: str, tmp_path: Path, stack: contextlib.ExitStack
) -> None:
    entries = site.device_entries(poll_interval_s=0.5, timeout_s=0.5)
    dead_port = stack.enter_context(refused_port())
    dead = {"id": "dead-gateway", "profile": "eastron_sdm630", "poll_interval_s": 0.5,
            "transport": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": dead_port, "timeout_s": 0.3}}
    config = agent_config(park_id, mqtt_url, tmp_path / "outbox.sqlite", [*entries, dead])
    dl = next(e["id"] for e in entries if "-dl-" in e["id"])
    healthy = [e["id"] for e in entries if e["id"] != dl]
    site.meters[dl].faults.garbage = "checksum"  # the DL/T 645 meter answers garbage frames
    async with collect(_port(mqtt_url), park_id, client_id=f"c-{park_id}") as seen, running_agent(config) as agent:
        await wait_until(lambda: all(len(seen.seqs(d)) >= 5 for d in healthy), timeout=30)
        await wait_until(lambda: {s["device"] for s in seen.statuses if s["online"] is False}
                         >= {dl, "dead-gateway"}, timeout=15)
        assert agent.health[dl].reads_ok == 0
        assert "ChecksumError" in (agent.health[dl].last_error or "")
        assert "DeviceConnectionError" in (agent.health["dead-gateway"].last_error or "")
        site.meters[dl].faults.garbage = None  # the meter recovers: data and online status come back
        await wait_until(lambda: len(seen.seqs(dl)) >= 2, timeout=15)
        await wait_until(lambda: any(s["device"] == dl and s["online"] for s in seen.statuses[-6:]), timeout=15)
    assert not seen.seqs("dead-gateway")


async def test_agent_clock_offset_is_visible_in_sent_at(
    site: SimSite, mqtt_url: str, park_id: str, tmp_path: Path
) -> None:
    skew = timedelta(seconds=120)
    config = agent_config(park_id, mqtt_url, tmp_path / "outbox.sqlite",
                          site.device_entries(poll_interval_s=0.5)[:1])
    received: list[tuple[datetime, datetime]] = []
    async with (
        collect(_port(mqtt_url), park_id, client_id=f"c-{park_id}") as seen,
        running_agent(config, clock=lambda: datetime.now(UTC) + skew),
    ):
        await wait_until(lambda: len(seen.readings) >= 2, timeout=30)
        received = [(datetime.fromisoformat(m["sent_at"]), datetime.now(UTC)) for m in seen.readings[:1]]
    sent_at, got_at = received[0]
    # ingest computes clock_offset_s = sent_at - receive time; the agent is 120 s ahead (give 5 s of slack)
    assert abs((sent_at - got_at).total_seconds() - 120.0) < 5.0
    first_ts = datetime.fromisoformat(seen.readings[0]["readings"][0]["ts"])
    assert first_ts > got_at + timedelta(seconds=100)  # readings carry the agent's (skewed) clock


async def test_per_device_credentials_and_acl_rejection_keeps_data(
    site: SimSite, park_id: str, tmp_path: Path
) -> None:
    entries = site.device_entries(poll_interval_s=0.5)[:2]
    good, misconfigured = entries[0]["id"], entries[1]["id"]
    broker = Mosquitto(tmp_path / "mq", users={good: "pw-good", misconfigured: "pw-b", "reader": "r"},
                       acl="user reader\ntopic read parkpulse/#\n\npattern write parkpulse/v1/+/%u/#\n")
    broker.start()
    try:
        entries[0]["mqtt"] = {"username": good, "password": "pw-good"}
        # the second meter was given the first meter's identity: the ACL refuses its topics (PUBACK 0x87)
        entries[1]["mqtt"] = {"username": good, "password": "pw-good"}
        config = agent_config(park_id, broker.url, tmp_path / "outbox.sqlite", entries)
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", broker.port, username="reader", password="r",
                                  protocol=aiomqtt.ProtocolVersion.V5) as reader:
            await reader.subscribe(f"parkpulse/v1/{park_id}/+/readings", qos=1)
            async with running_agent(config) as agent:
                got: list[str] = []

                async def pull() -> None:
                    async for message in reader.messages:
                        got.append(str(message.topic).split("/")[3])

                puller = asyncio.create_task(pull())
                await wait_until(lambda: got.count(good) >= 3, timeout=30)
                await wait_until(lambda: "Not authorized" in (agent.sessions[misconfigured].last_error or ""),
                                 timeout=15)
                puller.cancel()
        stats = read_stats(config.outbox.path)
        assert misconfigured not in got
        assert stats.pending_messages >= 1            # the refused readings wait in the outbox ...
        assert stats.dropped_messages == 0            # ... none is deleted
    finally:
        broker.stop()


async def test_readings_nobody_subscribes_to_stay_in_the_outbox_until_someone_does(
    site: SimSite, mqtt_url: str, park_id: str, tmp_path: Path
) -> None:
    """PUBACK 0x10 "no matching subscribers" means the broker dropped the reading: the agent must keep it.

    This is the window after a Mosquitto restart before ingest has its shared subscriptions back.
    """
    config = agent_config(park_id, mqtt_url, tmp_path / "outbox.sqlite", site.device_entries(poll_interval_s=0.3)[:1])
    device = config.devices[0].id
    async with running_agent(config) as agent:
        session = agent.sessions[device]
        await wait_until(lambda: session.undelivered_retries >= 1, timeout=30)
        stats = read_stats(config.outbox.path)
        assert stats.published_messages == 0
        assert stats.pending_messages >= 1  # nothing was deleted although the broker acknowledged it
        async with collect(_port(mqtt_url), park_id, client_id=f"c-{park_id}") as seen:
            await wait_until(lambda: len(seen.seqs(device)) >= stats.pending_messages, timeout=60)
    seqs = sorted(seen.seqs(device))
    assert seqs[0] in (0, 1)  # the first message, held back while nobody listened, arrived
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # and none after it went missing
