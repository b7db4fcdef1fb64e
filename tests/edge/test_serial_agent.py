"""The edge agent on two RS-485 buses (pty pairs), through every injected fault, loses no reading.

One DL/T 645 bus (three meters, 8E1) and one Modbus RTU bus (two units, 8N1), each a ``socat`` pty pair
with the protocol simulator on the far end. The broker is unreachable on purpose, so everything the agent
reads must still be in its outbox at the end: the count of stored readings equals the count the readers
returned, every device's sequence has no gap, and each meter's energy register only grows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from edge.agent import birth_metadata
from edge.config import parse_config
from edge.outbox import Outbox, read_stats
from edge.profile import Dlt645Profile, ModbusProfile, builtin_profiles
from edge.serial_bus import SerialBusSettings
from simulators.protocol import Dlt645SimMeter, Dlt645SimServer, ModbusSimDevice, ModbusSimServer, SimMeter
from tests.edge.helpers import agent_config, refused_port, running_agent, wait_until
from tests.fixtures.serial_pty import start_pty_pair


def _profiles() -> tuple[Dlt645Profile, ModbusProfile]:
    dlt, sdm = builtin_profiles()["dlt645_2007_3p"], builtin_profiles()["eastron_sdm630"]
    assert isinstance(dlt, Dlt645Profile)
    assert isinstance(sdm, ModbusProfile)
    return dlt, sdm


DLT, SDM = _profiles()
DL_ADDRESSES = ("000000000201", "000000000202", "000000000203")


def _line(bus_id: str, port: str, parity: str) -> dict[str, Any]:
    return {"id": bus_id, "port": port, "baudrate": 9600, "parity": parity, "timeout_s": 0.3, "retries": 1}


def _devices() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = [
        {"id": f"dl-{a[-3:]}", "profile": "dlt645_2007_3p", "ct_ratio": 50.0, "poll_interval_s": 0.5,
         "transport": {"kind": "dlt645_serial", "bus": "dl-bus", "address": a}} for a in DL_ADDRESSES]
    devices += [{"id": f"rtu-{u}", "profile": "eastron_sdm630", "poll_interval_s": 0.5,
                 "transport": {"kind": "modbus_rtu", "bus": "rtu-bus", "unit_id": u}} for u in (1, 2)]
    return devices


async def test_agent_on_two_serial_buses_survives_every_fault_without_loss(tmp_path: Path) -> None:
    dl_pair, rtu_pair = start_pty_pair(tmp_path / "dl-pty"), start_pty_pair(tmp_path / "rtu-pty")
    dl_meters = [Dlt645SimMeter(a, DLT, SimMeter(base_kw=80.0 + i, energy_import_kwh=100.0 * (i + 1), seed=i),
                                ct_ratio=50.0) for i, a in enumerate(DL_ADDRESSES)]
    rtu_units = [ModbusSimDevice(u, SDM, SimMeter(base_kw=10.0 * u, seed=10 + u)) for u in (1, 2)]
    dl_sim, rtu_sim = Dlt645SimServer(dl_meters), ModbusSimServer(rtu_units)
    await dl_sim.start_serial(SerialBusSettings(**_line("sim", dl_pair.sim_end, "E")), pace=False)
    await rtu_sim.start_serial(SerialBusSettings(**_line("sim", rtu_pair.sim_end, "N")))
    outbox = tmp_path / "outbox.sqlite"
    try:
        with refused_port() as port:
            config = agent_config("serial-park", f"mqtt://127.0.0.1:{port}", outbox, _devices(),
                                  serial_buses=[_line("dl-bus", dl_pair.agent_end, "E"),
                                                _line("rtu-bus", rtu_pair.agent_end, "N")])
            async with running_agent(config) as agent:
                health = agent.health
                await wait_until(lambda: all(h.reads_ok >= 2 for h in health.values()), timeout=30)
                # every fault at once, on both buses
                dl_meters[0].wire_fault, dl_meters[0].wire_fault_replies = "checksum", 5   # retried away
                dl_meters[1].wire_fault = "cut"                                              # fails while on
                dl_meters[2].meter.faults.offline = True                                     # silent
                rtu_units[0].wire_fault = "noise"                                            # fails while on
                rtu_units[1].meter.faults.offline = True                                     # silent
                marks = {d: h.reads_failed for d, h in health.items()}
                await wait_until(lambda: all(health[d].reads_failed >= marks[d] + 2
                                             for d in ("dl-202", "dl-203", "rtu-1", "rtu-2")), timeout=30)
                ok_during = health["dl-201"].reads_ok
                await wait_until(lambda: health["dl-201"].reads_ok >= ok_during + 2, timeout=30)
                # faults cleared: everyone answers again
                dl_meters[1].wire_fault = None
                dl_meters[2].meter.faults.offline = False
                rtu_units[0].wire_fault = None
                rtu_units[1].meter.faults.offline = False
                marks = {d: h.reads_ok for d, h in health.items()}
                await wait_until(lambda: all(health[d].reads_ok >= marks[d] + 2 for d in health), timeout=30)
                read_per_device = {d: h.readings_read for d, h in health.items()}
                failed = {d: h.reads_failed for d, h in health.items()}
                assert not any(s.connected.is_set() for s in agent.sessions.values())
            await asyncio.sleep(0)
    finally:
        await dl_sim.stop()
        await rtu_sim.stop()
        dl_pair.stop()
        rtu_pair.stop()

    assert failed["dl-201"] == 0  # five damaged replies, each retried on the bus: no failed poll at all
    assert all(failed[d] >= 2 for d in ("dl-202", "dl-203", "rtu-1", "rtu-2"))
    stats = read_stats(outbox)
    assert stats.dropped_messages == 0
    assert stats.pending_messages == stats.enqueued_messages
    assert stats.enqueued_readings == sum(read_per_device.values())  # the agent stored every reading it read
    with Outbox(outbox) as box:
        for device, n_read in read_per_device.items():
            messages = box.fetch(device, limit=100_000)
            assert [m.seq for m in messages] == list(range(len(messages))), device  # no gap
            readings = [r for m in messages for r in orjson.loads(m.body)]
            assert len(readings) == n_read
            energy = [r["value"] for r in readings if r["metric"] == "active_energy_import"]
            assert energy == sorted(energy), device   # the register only grows: no reply booked to another meter
            if device.startswith("dl-"):
                assert all(r["unit"] == "kWh" for r in readings if r["metric"] == "active_energy_import")


def test_birth_metadata_names_the_serial_endpoint(tmp_path: Path) -> None:
    config = parse_config({
        "agent_id": "gw", "park_id": "p", "outbox": {"path": str(tmp_path / "o.sqlite")},
        "serial_buses": [_line("dl-bus", "/dev/ttyUSB0", "E"), _line("rtu-bus", "/dev/ttyUSB1", "N")],
        "devices": _devices(),
    })
    dl, rtu = config.devices[0], config.devices[3]
    assert dl.transport.bus_settings.port == "/dev/ttyUSB0"  # type: ignore[union-attr]
    assert "dl-bus" in birth_metadata(dl, DLT, "gw")["endpoint"]
    assert "rtu-bus" in birth_metadata(rtu, SDM, "gw")["endpoint"]
    assert dl.transport.endpoint_uri == "dlt645-serial://dl-bus/000000000201"  # type: ignore[union-attr]
    assert rtu.transport.endpoint_uri == "modbus-rtu://rtu-bus/1"  # type: ignore[union-attr]


@pytest.mark.parametrize("bus", [None, "other"])
def test_a_device_on_an_unknown_bus_is_refused_by_name(tmp_path: Path, bus: str | None) -> None:
    from edge.errors import ConfigError

    buses = [] if bus is None else [_line(bus, "/dev/ttyUSB0", "E")]
    with pytest.raises(ConfigError, match=r"device dl-201: unknown serial bus 'dl-bus'"):
        parse_config({"agent_id": "gw", "park_id": "p", "outbox": {"path": str(tmp_path / "o.sqlite")},
                      "serial_buses": buses, "devices": _devices()[:1]})
