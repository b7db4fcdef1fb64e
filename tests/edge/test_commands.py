"""Edge command handling end to end: a real Mosquitto, the real edge agent, the real Modbus TCP simulator.

The simulated devices run on a clock the test moves by hand, so "the power ramps to the setpoint" is
checked at exact simulated instants through the agent's own Modbus reader; the agent and the commands
use the wall clock (expiry is real time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from typer.testing import CliRunner

from edge.agent import EdgeAgent
from edge.readers.modbus import ModbusReader
from parkpulse.cli import app as cli_app
from schemas.commands import (
    CommandAck,
    CommandAction,
    build_command,
    command_topic,
    decode_ack,
    encode_command,
)
from simulators.protocol.assets import SimBattery, SimEvCharger, SimHvac
from simulators.protocol.site import SimSite, build_flex_site
from tests.edge.helpers import FakeClock, Mosquitto, agent_config, free_port, running_agent, wait_until

pytestmark = pytest.mark.skipif(shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None,
                                reason="mosquitto is not installed")


@dataclass
class Rig:
    """A running flex site, edge agent and a stand-in dispatcher client collecting acks."""

    park: str
    site: SimSite
    sim_clock: FakeClock
    agent: EdgeAgent
    client: aiomqtt.Client
    config_path: Path
    acks: dict[str, list[bytes]] = field(default_factory=dict)

    def device(self, kind: str) -> str:
        return next(d for d in self.site.assets if d.endswith(kind))

    async def publish(self, device: str, payload: bytes) -> None:
        await self.client.publish(command_topic(self.park, device), payload, qos=1)

    async def ack_for(self, command_id: str, count: int = 1) -> CommandAck:
        await wait_until(lambda: len(self.acks.get(command_id, [])) >= count, timeout=15)
        return decode_ack(self.acks[command_id][count - 1])

    async def send(self, device: str, action: CommandAction, value: float, *, command_id: str | None = None,
                   expires_in_s: float = 60.0, hold_s: float | None = None, **extra: Any) -> CommandAck:
        now = datetime.now(UTC)
        cid = command_id or f"c-{uuid.uuid4().hex[:12]}"
        message = build_command(command_id=cid, park=self.park, device=extra.pop("named", device), action=action,
                                value=value, issued_at=now - timedelta(seconds=120),
                                expires_at=now + timedelta(seconds=expires_in_s),
                                hold_until=None if hold_s is None else now + timedelta(seconds=hold_s),
                                event_id="ev-test", issued_by="test-dispatcher", reason="test")
        await self.publish(device, encode_command(message))
        return await self.ack_for(cid)

    async def power_kw(self, device: str) -> float:
        reader = self.agent.readers[device]
        assert isinstance(reader, ModbusReader)
        result = await reader.read(datetime.now(UTC))
        return next(r.value for r in result.readings if r.metric == "active_power")

    async def metric(self, device: str, metric: str) -> float:
        result = await self.agent.readers[device].read(datetime.now(UTC))
        return next(r.value for r in result.readings if r.metric == metric)


@contextlib.asynccontextmanager
async def make_rig(tmp_path: Path, **commands: Any) -> AsyncIterator[Rig]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    sim_clock = FakeClock(now=datetime.now(UTC).replace(microsecond=0))
    park = f"cmd-{uuid.uuid4().hex[:8]}"
    site = build_flex_site(port=free_port(), clock=sim_clock, prefix="t", n_ev=1)
    await site.start()
    config_data = {"commands": commands} if commands else {}
    config = agent_config(park, broker.url, tmp_path / "outbox.sqlite", site.device_entries(poll_interval_s=3600),
                          mqtt={"require_subscriber": False}, **config_data)
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(json.dumps(config.model_dump(mode="json", exclude_none=True)), encoding="utf-8")
    try:
        async with running_agent(config) as agent:
            await wait_until(lambda: all(agent.sessions[d].connected.is_set() for d in agent.commands.handlers),
                             timeout=15)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"vpp-{park}",
                                      protocol=aiomqtt.ProtocolVersion.V5) as client:
                rig = Rig(park, site, sim_clock, agent, client, config_path)
                await client.subscribe(f"parkpulse/v1/{park}/+/ack", qos=1)

                async def collect() -> None:
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        rig.acks.setdefault(json.loads(message.payload)["command_id"], []).append(message.payload)

                task = asyncio.create_task(collect())
                try:
                    yield rig
                finally:
                    task.cancel()
                    await asyncio.wait({task})
    finally:
        await site.stop()
        broker.stop()


async def test_battery_setpoint_is_written_read_back_and_the_metered_power_ramps_to_it(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        bess = rig.device("bess")
        battery = rig.site.assets[bess]
        assert isinstance(battery, SimBattery)
        rig.sim_clock.advance(60)  # chargers and chiller settle
        boundary_before = await rig.power_kw("t-boundary")
        assert await rig.power_kw(bess) == 0.0

        ack = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, -100.0)
        assert (ack["status"], ack["reason"], ack["applied_value"], ack["unit"]) == ("applied", None, -100.0, "kW")
        assert battery.remote
        assert battery.setpoint_kw == -100.0
        assert await rig.metric(bess, "active_power") == 0.0  # written, not yet ramped
        rig.sim_clock.advance(1.0)
        assert await rig.power_kw(bess) == pytest.approx(-50.0)  # 50 kW/s ramp limit
        rig.sim_clock.advance(2.0)
        assert await rig.power_kw(bess) == pytest.approx(-100.0)
        # the boundary meter sees the battery feed the park: the metered load drops by ~100 kW
        assert await rig.power_kw("t-boundary") == pytest.approx(boundary_before - 100.0, abs=5.0)

        soc_before = await rig.metric(bess, "state_of_charge")
        rig.sim_clock.advance(1800)
        expected_soc = soc_before - 100.0 * 0.5 / 0.95 / 500.0 * 100.0  # 50 kWh out, discharge efficiency 0.95
        assert await rig.metric(bess, "state_of_charge") == pytest.approx(expected_soc, abs=0.05)

        ack = await rig.send(bess, CommandAction.RELEASE, 0.0)
        assert ack["status"] == "applied"
        assert not battery.remote
        rig.sim_clock.advance(5)
        assert await rig.power_kw(bess) == 0.0  # back to its own (idle) behaviour


async def test_ev_limit_and_hvac_setpoint_lower_their_power(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        ev, hvac = rig.device("ev-1"), rig.device("hvac")
        assert isinstance(rig.site.assets[ev], SimEvCharger)
        assert isinstance(rig.site.assets[hvac], SimHvac)
        rig.sim_clock.advance(60)
        assert await rig.power_kw(ev) == pytest.approx(22.0)
        hvac_before = await rig.power_kw(hvac)
        assert hvac_before > 5.0

        ack = await rig.send(ev, CommandAction.SET_POWER_LIMIT, 7.4)
        assert ack["status"] == "applied"
        assert ack["applied_value"] == pytest.approx(7.4)
        ack = await rig.send(hvac, CommandAction.SET_TEMPERATURE_SETPOINT, 26.0)
        assert ack["status"] == "applied"
        assert ack["applied_value"] == pytest.approx(26.0)
        assert ack["unit"] == "degC"
        rig.sim_clock.advance(10)
        assert await rig.power_kw(ev) == pytest.approx(7.4)
        assert await rig.power_kw(hvac) == 0.0  # the chiller stops while the zone drifts up
        rig.sim_clock.advance(3 * 3600)
        indoor = await rig.metric(hvac, "indoor_temperature")
        assert indoor == pytest.approx(26.0, abs=0.2)  # comfort drift up to the new setpoint ...
        assert 0.0 < await rig.power_kw(hvac) < hvac_before  # ... then held there at a lower power


@pytest.mark.parametrize(("case", "reason"), [
    ("expired", "expired"),
    ("other_device", "invalid_command"),
    ("device_limit", "out_of_range"),
    ("safety_limit", "out_of_range"),
    ("unsupported", "unsupported_action"),
    ("offline", "device_offline"),
    ("no_connection", "device_offline"),
    ("config_override", "override_active"),
    ("invalid_json", "invalid_command"),
])
async def test_each_reject_reason_and_no_write(tmp_path: Path, case: str, reason: str) -> None:
    async with make_rig(tmp_path, limits={"t-bess": {"set_active_power": {"minimum": -150, "maximum": 150}}},
                        override_devices=["t-hvac"]) as rig:
        bess = rig.device("bess")
        battery = rig.site.assets[bess]
        writer = rig.agent.commands.handlers[bess].writer
        writes_before = writer.writes  # type: ignore[attr-defined]
        device, action, value = bess, CommandAction.SET_ACTIVE_POWER, -100.0
        extra: dict[str, Any] = {}
        if case == "expired":
            extra = {"expires_in_s": -1.0}
        elif case == "other_device":
            extra = {"named": rig.device("ev-1")}
        elif case == "device_limit":
            value = -300.0
        elif case == "safety_limit":
            value = -200.0
        elif case == "unsupported":
            action, value = CommandAction.SET_TEMPERATURE_SETPOINT, 22.0
        elif case == "offline":
            battery.faults.offline = True  # the gateway answers 0x0B for it
        elif case == "no_connection":
            await rig.site.stop()  # the gateway itself is gone
        elif case == "config_override":
            device, action, value = rig.device("hvac"), CommandAction.SET_TEMPERATURE_SETPOINT, 26.0
        if case == "invalid_json":
            await rig.publish(bess, b'{"command_id": "broken-1", "action": "set_active_power", "value": "lots"}')
            ack = await rig.ack_for("broken-1")
        else:
            ack = await rig.send(device, action, value, **extra)
        assert (ack["status"], ack["reason"]) == ("rejected", reason), ack
        assert ack["detail"]
        assert battery.setpoint(CommandAction.SET_ACTIVE_POWER) == 0.0
        assert not battery.remote
        if case not in {"offline", "no_connection"}:
            assert writer.writes == writes_before  # type: ignore[attr-defined]


async def test_unreadable_command_without_id_is_counted_not_acked(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        bess = rig.device("bess")
        await rig.publish(bess, b"\xff not json")
        handler = rig.agent.commands.handlers[bess]
        await wait_until(lambda: handler.stats.unreadable == 1, timeout=15)
        ack = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, 10.0)  # the session still works
        assert ack["status"] == "applied"
        assert len(rig.acks) == 1


async def test_duplicate_delivery_gets_the_same_ack_and_no_second_write(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        bess = rig.device("bess")
        handler = rig.agent.commands.handlers[bess]
        first = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, 50.0, command_id="dup-1")
        writes = handler.writer.writes  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        again = build_command(command_id="dup-1", park=rig.park, device=bess, action=CommandAction.SET_ACTIVE_POWER,
                              value=-200.0, issued_at=now, expires_at=now + timedelta(minutes=1), issued_by="x")
        await rig.publish(bess, encode_command(again))  # a resend with the same id is not a new command
        second = await rig.ack_for("dup-1", count=2)
        assert second == first
        assert rig.acks["dup-1"][0] == rig.acks["dup-1"][1]
        assert handler.writer.writes == writes  # type: ignore[attr-defined]
        assert rig.site.assets[bess].setpoint(CommandAction.SET_ACTIVE_POWER) == 50.0
        assert handler.stats.duplicates == 1


async def test_override_from_the_cli_wins_until_cleared_and_commands_are_listed(tmp_path: Path) -> None:
    runner = CliRunner()
    async with make_rig(tmp_path) as rig:
        bess = rig.device("bess")
        cfg = str(rig.config_path)
        out = runner.invoke(cli_app, ["edge-override", "set", "--config", cfg, "--device", bess,
                                      "--reason", "PCS maintenance", "--by", "site-staff"])
        assert out.exit_code == 0, out.output
        out = runner.invoke(cli_app, ["edge-override", "show", "--config", cfg, "--json"])
        assert [(o["device"], o["reason"], o["set_by"]) for o in json.loads(out.output)] == [
            (bess, "PCS maintenance", "site-staff")]
        ack = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, -20.0)
        assert (ack["status"], ack["reason"]) == ("rejected", "override_active")
        assert "PCS maintenance" in ack["detail"]
        assert "site-staff" in ack["detail"]
        out = runner.invoke(cli_app, ["edge-override", "clear", "--config", cfg, "--device", bess])
        assert out.exit_code == 0, out.output
        ack = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, -20.0)
        assert ack["status"] == "applied"

        out = runner.invoke(cli_app, ["edge-commands", "list", "--config", cfg, "--json"])
        assert out.exit_code == 0, out.output
        rows = json.loads(out.output)
        assert [(r["status"], r["reason"], r["value"]) for r in rows] == [
            ("applied", None, -20.0), ("rejected", "override_active", -20.0)]
        assert all(r["issued_by"] == "test-dispatcher" and r["device"] == bess for r in rows)
        out = runner.invoke(cli_app, ["edge-override", "clear", "--config", cfg, "--device", bess])
        assert out.exit_code == 1  # nothing left to clear: says so


async def test_hold_until_releases_the_device_unless_a_newer_command_came(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        bess = rig.device("bess")
        battery = rig.site.assets[bess]
        handler = rig.agent.commands.handlers[bess]
        ack = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, -80.0, command_id="held-1", hold_s=30.0)
        assert ack["status"] == "applied"
        assert handler.hold is not None
        await rig.send(bess, CommandAction.SET_ACTIVE_POWER, -60.0, command_id="newer-1")
        assert handler.hold is None  # the newer command (no hold time) replaced the hold
        ack = await rig.send(bess, CommandAction.SET_ACTIVE_POWER, -40.0, command_id="held-2", hold_s=1.5)
        assert ack["status"] == "applied"
        assert battery.remote
        await wait_until(lambda: handler.hold is None and not battery.remote, timeout=15)
        assert handler.stats.hold_releases == 1
        rows = handler.audit.commands(device=bess)
        assert rows[0].command_id == "hold-release.held-2"
        assert rows[0].issued_by == "edge-hold-timer"
        assert rows[0].status == "applied"
