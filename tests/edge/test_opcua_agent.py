"""The edge agent reads the OPC UA simulator (a polled boiler, a subscribed chiller) through its outbox and
sessions to a private Mosquitto, and the OPC UA server restarts in the middle.

Checked: birth metadata of OPC UA devices, readings in canonical units, the restart seen as failed polls
then a reconnect, every chiller value the server published before the restart delivered, readings
after it, and no gap in either device's message sequence.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("asyncua", reason="the OPC UA extra is not installed (pip install 'parkpulse[edge,opcua]')")

from edge.config import OpcUaTransport
from edge.readers.opcua import OpcUaEndpoint
from simulators.protocol.opcua import OpcUaSimServer, PlantModel, opcua_device_entries
from tests.edge.helpers import Mosquitto, agent_config, collect, free_port, running_agent, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None,
                       reason="mosquitto is not installed"),
]

BOILER, CHILLER = "opcua-boiler-1", "opcua-chiller-1"


class RecordingSim(OpcUaSimServer):
    """The simulator, remembering every value it wrote (what the server *had*)."""

    def __init__(self, written: list[tuple[str, float]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.written = written

    async def set(self, name: str, value: float | None, *, status: int = 0) -> None:
        await super().set(name, value, status=status)
        if value is not None:
            self.written.append((name, value))


def device_entries(url: str) -> list[dict[str, Any]]:
    entries = opcua_device_entries(url, poll_interval_s=0.3)
    for entry in entries:
        entry["transport"].update({"timeout_s": 1.0, "backoff": {"initial_s": 0.1, "max_s": 0.5}})
    chiller = entries[1]["transport"]
    chiller.update({"sampling_interval_ms": 50, "publishing_interval_ms": 100})
    return entries


async def test_agent_reads_opcua_through_a_server_restart(tmp_path: Path) -> None:
    park = f"t-opcua-{uuid.uuid4().hex[:8]}"
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    written: list[tuple[str, float]] = []
    model = PlantModel()
    port = free_port()
    sim = RecordingSim(written, port=port, model=model, update_interval_s=0.25)
    await sim.start()
    try:
        config = agent_config(park, broker.url, tmp_path / "outbox.sqlite", device_entries(sim.url))
        async with collect(broker.port, park, client_id=f"c-{park}") as seen, running_agent(config) as agent:
            await wait_until(lambda: seen.reading_count(BOILER) >= 12 and seen.reading_count(CHILLER) >= 10,
                             timeout=30)
            await sim.freeze()
            await asyncio.sleep(0.5)  # the last values are published (100 ms) before the server goes
            stopped_at = len(written)
            await sim.stop()
            await wait_until(lambda: agent.health[BOILER].reads_failed >= 2, timeout=20)
            sim = RecordingSim(written, port=port, model=model, update_interval_s=0.25)
            await sim.start()
            before = seen.reading_count(BOILER), seen.reading_count(CHILLER)
            await wait_until(lambda: seen.reading_count(BOILER) >= before[0] + 12
                             and seen.reading_count(CHILLER) >= before[1] + 10, timeout=30)
            endpoints = {id(r.endpoint): r.endpoint for r in agent.readers.values()  # type: ignore[attr-defined]
                         if isinstance(getattr(r, "endpoint", None), OpcUaEndpoint)}
            health = agent.health[BOILER]
    finally:
        await sim.stop()
        broker.stop()

    # births: what the device is, where it is read from, which metrics
    boiler_birth, chiller_birth = seen.births[BOILER], seen.births[CHILLER]
    assert (boiler_birth["protocol"], boiler_birth["kind"], boiler_birth["carrier"]) == ("opcua", "heat_meter", "heat")
    assert boiler_birth["endpoint"] == sim.url
    assert boiler_birth["acquisition"] == "poll"
    assert chiller_birth["acquisition"] == "subscription"
    assert set(chiller_birth["metrics"]) == {"active_power", "active_energy_import", "cooling_energy",
                                             "supply_temperature", "return_temperature"}

    units = {r["metric"]: r["unit"] for m in seen.readings for r in m["readings"]}
    assert (units["heat_power"], units["heat_energy"], units["cooling_energy"]) == ("kW", "GJ", "kWh")

    # one session shared by both devices of the server, and it reconnected once after the restart
    (endpoint,) = endpoints.values()
    assert endpoint.connects == 2
    assert health.reads_failed >= 2
    assert health.reachable

    # nothing the server had before the restart is missing from the chiller's subscription
    def values(device: str, metric: str) -> list[float]:
        return [r["value"] for m in seen.readings if m["device"] == device for r in m["readings"]
                if r["metric"] == metric]

    published = [v for name, v in written[:stopped_at] if name == "Chiller1.ElectricEnergy"]
    delivered = values(CHILLER, "active_energy_import")
    # writes before the subscription existed are not expected; every later one must be there
    missing = [v for v in published if v not in delivered and v >= delivered[0]]
    assert missing == []
    assert max(delivered) > max(published)  # and the restarted server's values arrived too

    # the boiler's gas register only grows across the restart (the model kept counting)
    gas = values(BOILER, "gas_volume")
    assert gas == sorted(gas)

    # no sequence gap: every message the agent made reached the broker
    for device in (BOILER, CHILLER):
        seqs = seen.seqs(device)
        assert seqs == set(range(min(seqs), max(seqs) + 1))


def test_the_agent_builds_opcua_devices_without_a_profile(tmp_path: Path) -> None:
    config = agent_config("p1", "mqtt://127.0.0.1:1", tmp_path / "outbox.sqlite",
                          device_entries("opc.tcp://127.0.0.1:4840/parkpulse/"))
    assert all(isinstance(d.transport, OpcUaTransport) for d in config.devices)
    from edge.agent import EdgeAgent

    agent = EdgeAgent(config)
    assert set(agent.readers) == {BOILER, CHILLER}
    agent.pool.close()  # nothing connected yet
