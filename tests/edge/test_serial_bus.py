"""RS-485 buses over real pseudo-terminals: the agent's serial readers against the protocol simulators.

A ``socat`` pty pair (tests/fixtures/serial_pty.py) is the line: the simulator serves on one end, the
reader polls the other. Covers several meters on one bus, strict turn-taking, a dead meter that costs only
its own timeout, every wire fault (garbled bytes, a frame cut in half, a wrong checksum, silence), the
address query and broadcast reads, Modbus RTU, and a port handed between protocols.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from edge.config import Dlt645SerialTransport, ModbusRtuTransport
from edge.dlt645 import WILDCARD_ADDRESS, decode_bcd
from edge.errors import ChecksumError, DeviceConnectionError, DeviceError, DeviceTimeoutError, FrameError
from edge.profile import Dlt645Profile, ModbusFunction, ModbusProfile, builtin_profiles
from edge.readers import Dlt645Reader, Dlt645SerialEndpoint, ModbusReader, ModbusRtuEndpoint
from edge.readers.base import ReadResult
from edge.serial_bus import SerialBus, SerialBusSettings
from simulators.protocol import Dlt645SimMeter, Dlt645SimServer, ModbusSimDevice, ModbusSimServer, SimMeter
from simulators.protocol.dlt645 import bcd_value
from tests.edge.helpers import FakeClock
from tests.fixtures.serial_pty import PtyPair, pty_pair  # noqa: F401 - the fixture


def _profiles() -> tuple[Dlt645Profile, ModbusProfile, ModbusProfile]:
    dlt, sdm, dtsu = (builtin_profiles()[n] for n in ("dlt645_2007_3p", "eastron_sdm630", "chint_dtsu666"))
    assert isinstance(dlt, Dlt645Profile)
    assert isinstance(sdm, ModbusProfile)
    assert isinstance(dtsu, ModbusProfile)
    return dlt, sdm, dtsu


DLT, SDM, DTSU = _profiles()

ADDRESSES = ("000000000101", "000000000102", "000000000103")
CT = 50.0
TIMEOUT_S = 0.3
STEADY: dict[str, Any] = {"noise": 0.0, "daily_swing": 0.0}


def line(port: str, *, baud: int = 9600, parity: str = "E", **extra: Any) -> SerialBusSettings:
    return SerialBusSettings(id="bus-1", port=port, baudrate=baud, parity=parity, **extra)  # type: ignore[arg-type]


def _values(result: ReadResult) -> dict[str, float]:
    return {r.metric: r.value for r in result.readings}


@dataclass
class DltRig:
    clock: FakeClock
    sim: Dlt645SimServer
    meters: dict[str, Dlt645SimMeter]
    bus: SerialBus
    endpoint: Dlt645SerialEndpoint
    readers: dict[str, Dlt645Reader]


async def _dlt_rig(pair: PtyPair, *, pace: bool, **bus_settings: Any) -> DltRig:
    clock = FakeClock()
    meters = {a: Dlt645SimMeter(a, DLT, SimMeter(base_kw=100.0 + 10 * i, energy_import_kwh=5000.0 + i, clock=clock,
                                                 seed=i, **STEADY), ct_ratio=CT)
              for i, a in enumerate(ADDRESSES)}
    sim = Dlt645SimServer(list(meters.values()))
    settings = line(pair.agent_end, **{"timeout_s": TIMEOUT_S, **bus_settings})
    await sim.start_serial(line(pair.sim_end), pace=pace)
    bus = SerialBus(settings)
    endpoint = Dlt645SerialEndpoint(bus)
    readers = {}
    for address in ADDRESSES:
        transport = Dlt645SerialTransport(kind="dlt645_serial", bus="bus-1", address=address)
        readers[address] = Dlt645Reader(f"dl-{address[-3:]}", DLT, transport, endpoint, ct_ratio=CT, clock=clock)
    return DltRig(clock, sim, meters, bus, endpoint, readers)


@pytest.fixture
async def dlt(pty_pair: PtyPair) -> AsyncIterator[DltRig]:  # noqa: F811 - the fixture
    rig = await _dlt_rig(pty_pair, pace=False)
    yield rig
    rig.bus.close()
    await rig.sim.stop()


@pytest.fixture
async def paced(pty_pair: PtyPair) -> AsyncIterator[DltRig]:  # noqa: F811 - the fixture
    """Meters answering at the pace of a real 9600 baud 8E1 line."""
    rig = await _dlt_rig(pty_pair, pace=True)
    yield rig
    rig.bus.close()
    await rig.sim.stop()


def _expected(meter: Dlt645SimMeter) -> dict[str, float]:
    """What the agent must report: the meter's BCD display (secondary) scaled back by the CT, per point."""
    truth = meter.meter.sample()
    meter.meter.faults.stuck = True  # every later request sees exactly `truth`
    out = {}
    for point in DLT.points:
        shown = decode_bcd(bcd_value(point, truth[point.metric], ct_ratio=CT, pt_ratio=1.0),
                           decimals=point.decimals, signed=point.signed)
        out[point.metric] = shown * point.scaling.factor(CT, 1.0) * point.unit_factor
    return out


async def test_three_meters_on_one_bus_each_report_their_own_values(dlt: DltRig) -> None:
    expected = {a: _expected(m) for a, m in dlt.meters.items()}
    results = await asyncio.gather(*(r.read(dlt.clock()) for r in dlt.readers.values()))
    for address, result in zip(ADDRESSES, results, strict=True):
        got = _values(result)
        assert set(got) == {p.metric for p in DLT.points}
        for metric, value in got.items():
            assert value == pytest.approx(expected[address][metric], rel=1e-9, abs=1e-9), (address, metric)
    # distinct meters really answered (their energies differ by construction)
    assert len({_values(r)["active_energy_import"] for r in results}) == 3


async def test_concurrent_polls_never_overlap_on_the_wire(paced: DltRig) -> None:
    results = await asyncio.gather(*(r.read(paced.clock()) for r in paced.readers.values()))
    assert all(len(r.readings) == len(DLT.points) for r in results)
    assert paced.sim.requests == 3 * len(DLT.points)
    assert paced.sim.collisions == 0  # no request arrived while a meter was still answering


async def test_devices_take_turns_per_poll_and_are_stamped_when_read(paced: DltRig) -> None:
    ts = paced.clock()
    done_at: dict[str, float] = {}

    async def poll(address: str) -> ReadResult:
        result = await paced.readers[address].read(ts)
        done_at[address] = time.monotonic()
        return result

    started = time.monotonic()
    results = await asyncio.gather(*(poll(a) for a in ADDRESSES))
    one_poll_s = paced.bus.settings.wire_time_s(len(DLT.points) * 44)  # 11 exchanges of >= 44 bytes each
    stamps = [{r.ts for r in result.readings} for result in results]
    assert all(len(s) == 1 for s in stamps)  # one timestamp per poll
    offsets = [(s.pop() - ts).total_seconds() for s in stamps]
    # the first meter is read at once, the next ones after whole polls of the earlier ones (FIFO turns)
    assert offsets[0] < 0.1
    assert offsets[1] >= 0.9 * one_poll_s
    assert offsets[2] >= offsets[1] + 0.9 * one_poll_s
    # ... and each poll ends before the next meter's starts (not all together at the end of the cycle)
    assert done_at[ADDRESSES[0]] - started < 1.5 * one_poll_s + 0.2


async def test_a_dead_meter_costs_only_its_own_timeout(paced: DltRig) -> None:
    started = time.monotonic()
    healthy = await asyncio.gather(*(r.read(paced.clock()) for r in paced.readers.values()))
    baseline_s = time.monotonic() - started
    assert all(r.readings for r in healthy)

    paced.meters[ADDRESSES[1]].meter.faults.offline = True
    started = time.monotonic()
    outcome = await asyncio.gather(*(r.read(paced.clock()) for r in paced.readers.values()),
                                   return_exceptions=True)
    with_dead_s = time.monotonic() - started
    assert isinstance(outcome[1], DeviceTimeoutError)
    assert all(isinstance(outcome[i], ReadResult) and len(outcome[i].readings) == len(DLT.points)  # type: ignore[union-attr]
               for i in (0, 2))
    settings = paced.bus.settings
    request_wire_s = settings.wire_time_s(20)  # FE x4 + 16-byte read request
    dead_cost_s = (1 + settings.retries) * (TIMEOUT_S + request_wire_s + settings.turnaround)
    # the dead meter aborts its poll at the first silent request: one timeout (with retries), not one per point
    assert with_dead_s < baseline_s * 2 / 3 + dead_cost_s + 0.25
    assert paced.bus.timeouts == 1 + settings.retries


@pytest.mark.parametrize("fault", ["checksum", "noise", "cut"])
async def test_one_damaged_reply_is_sent_again(dlt: DltRig, fault: str) -> None:
    meter = dlt.meters[ADDRESSES[0]]
    expected = _expected(meter)
    meter.wire_fault, meter.wire_fault_replies = fault, 1  # type: ignore[assignment]
    result = await dlt.readers[ADDRESSES[0]].read(dlt.clock())
    got = _values(result)
    assert got == pytest.approx(expected)
    assert dlt.bus.retries_used == 1
    assert meter.wire_fault_replies == 0


@pytest.mark.parametrize(("fault", "error"), [("checksum", ChecksumError), ("cut", DeviceTimeoutError),
                                              ("noise", (DeviceTimeoutError, FrameError))])
async def test_a_meter_that_always_garbles_fails_alone(dlt: DltRig, fault: str,
                                                       error: type[Exception] | tuple[type[Exception], ...]) -> None:
    bad, good = dlt.meters[ADDRESSES[0]], dlt.meters[ADDRESSES[2]]
    bad.wire_fault = fault  # type: ignore[assignment]
    expected = _expected(good)
    started = time.monotonic()
    with pytest.raises(error):
        await dlt.readers[ADDRESSES[0]].read(dlt.clock())
    assert time.monotonic() - started < (1 + dlt.bus.settings.retries) * (TIMEOUT_S + 0.1) * len(DLT.points) + 0.5
    # the bus is fine for everyone else, right away
    assert _values(await dlt.readers[ADDRESSES[2]].read(dlt.clock())) == pytest.approx(expected)


async def test_a_cut_frame_is_detected_by_the_gap_not_the_timeout(pty_pair: PtyPair) -> None:  # noqa: F811
    rig = await _dlt_rig(pty_pair, pace=False, timeout_s=2.0, retries=0)
    try:
        rig.meters[ADDRESSES[0]].wire_fault = "cut"
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError, match="stopped after"):
            await rig.endpoint.request(ADDRESSES[0], 0x00010000, device_id="dl")
        assert time.monotonic() - started < 0.5  # frame gap (50 ms), far below the 2 s timeout
    finally:
        rig.bus.close()
        await rig.sim.stop()


async def test_address_query_finds_the_meter_and_a_wildcard_read_reaches_it(pty_pair: PtyPair) -> None:  # noqa: F811
    meter = Dlt645SimMeter("202312345678", DLT, SimMeter(energy_import_kwh=1234.56, **STEADY))
    sim = Dlt645SimServer([meter])
    await sim.start_serial(line(pty_pair.sim_end, baud=2400))
    bus = SerialBus(line(pty_pair.agent_end, baud=2400, timeout_s=1.0))
    endpoint = Dlt645SerialEndpoint(bus)
    try:
        assert await endpoint.discover(window_s=0.5) == ["202312345678"]
        value = await endpoint.request(WILDCARD_ADDRESS, 0x00010000, device_id="new-meter")
        assert decode_bcd(value[:4], decimals=2) == pytest.approx(1234.56, abs=0.01)
        meter.wire_fault, meter.wire_fault_replies = "checksum", 1
        assert await endpoint.discover(window_s=0.5) == []  # a damaged answer is skipped, not misread
        assert await endpoint.discover(window_s=0.5) == ["202312345678"]
    finally:
        bus.close()
        await sim.stop()


async def test_discovery_lists_every_meter_that_answers(dlt: DltRig) -> None:
    # (on a real line several answers collide; the simulator answers in turn, so all are heard)
    assert sorted(await dlt.endpoint.discover(window_s=0.5)) == sorted(ADDRESSES)


async def test_a_missing_port_says_what_to_check() -> None:
    bus = SerialBus(line("/dev/ttyNOPE0"))
    with pytest.raises(DeviceConnectionError, match=r"cannot open serial port /dev/ttyNOPE0.*dialout"):
        await bus.transact(b"\x00", expect=lambda b: (b, len(b)), device_id="m")


async def test_the_port_vanishing_is_a_connection_error_and_the_bus_recovers(pty_pair: PtyPair) -> None:  # noqa: F811
    rig = await _dlt_rig(pty_pair, pace=False)
    try:
        assert (await rig.readers[ADDRESSES[0]].read(rig.clock())).readings
        pty_pair.stop()  # the adapter is unplugged
        with pytest.raises(DeviceError):
            await rig.readers[ADDRESSES[0]].read(rig.clock())
        with pytest.raises(DeviceConnectionError):
            await rig.readers[ADDRESSES[0]].read(rig.clock())
    finally:
        rig.bus.close()
        await rig.sim.stop()


# -- Modbus RTU ------------------------------------------------------------------------------------------


@dataclass
class RtuRig:
    sim: ModbusSimServer
    bus: SerialBus
    sdm: ModbusReader
    dtsu: ModbusReader


@pytest.fixture
async def rtu(pty_pair: PtyPair) -> AsyncIterator[RtuRig]:  # noqa: F811 - the fixture
    clock = FakeClock()
    sim = ModbusSimServer([ModbusSimDevice(1, SDM, SimMeter(base_kw=20.0, clock=clock, **STEADY)),
                           ModbusSimDevice(2, DTSU, SimMeter(base_kw=400.0, clock=clock, **STEADY),
                                           ct_ratio=100.0, pt_ratio=10.0)])
    await sim.start_serial(line(pty_pair.sim_end, parity="N"))
    bus = SerialBus(line(pty_pair.agent_end, parity="N", timeout_s=TIMEOUT_S))
    endpoint = ModbusRtuEndpoint(bus)
    sdm = ModbusReader("sdm", SDM, ModbusRtuTransport(kind="modbus_rtu", bus="bus-1", unit_id=1), endpoint)
    dtsu = ModbusReader("dtsu", DTSU, ModbusRtuTransport(kind="modbus_rtu", bus="bus-1", unit_id=2), endpoint,
                        ct_ratio=100.0, pt_ratio=10.0)
    yield RtuRig(sim, bus, sdm, dtsu)
    bus.close()
    await sim.stop()


async def test_modbus_rtu_units_on_one_bus_read_back_primary_values(rtu: RtuRig) -> None:
    for unit, reader in ((1, rtu.sdm), (2, rtu.dtsu)):
        meter = rtu.sim.devices[unit].meter
        truth = meter.sample()
        meter.faults.stuck = True
        got = _values(await reader.read(FakeClock()()))
        assert set(got) == {p.metric for p in reader.profile.points}
        for metric, value in got.items():
            assert value == pytest.approx(truth[metric], rel=1e-6, abs=1e-6), (unit, metric)


async def test_modbus_rtu_dead_unit_times_out_alone(rtu: RtuRig) -> None:
    rtu.sim.devices[1].meter.faults.offline = True
    outcome = await asyncio.gather(rtu.sdm.read(FakeClock()()), rtu.dtsu.read(FakeClock()()),
                                   return_exceptions=True)
    assert isinstance(outcome[0], DeviceTimeoutError)
    assert isinstance(outcome[1], ReadResult)
    assert len(outcome[1].readings) == len(DTSU.points)


@pytest.mark.parametrize("fault", ["checksum", "noise", "cut"])
async def test_modbus_rtu_damaged_reply_is_retried(rtu: RtuRig, fault: str) -> None:
    device = rtu.sim.devices[2]
    truth = device.meter.sample()
    device.meter.faults.stuck = True
    device.wire_fault, device.wire_fault_replies = fault, 1  # type: ignore[assignment]
    got = _values(await rtu.dtsu.read(FakeClock()()))
    assert got["active_power"] == pytest.approx(truth["active_power"], rel=1e-6)
    assert device.wire_fault_replies == 0
    device.wire_fault_replies = None  # now every reply: the read fails, the other unit does not
    with pytest.raises(DeviceTimeoutError):
        await rtu.dtsu.read(FakeClock()())
    assert (await rtu.sdm.read(FakeClock()())).readings


async def test_modbus_rtu_unknown_unit_is_silence_not_an_answer(rtu: RtuRig) -> None:
    endpoint = rtu.sdm.endpoint
    assert isinstance(endpoint, ModbusRtuEndpoint)
    with pytest.raises(DeviceTimeoutError):
        await endpoint.read_registers(ModbusFunction.INPUT, 0, 2, unit_id=9, device_id="ghost")


async def test_one_port_is_handed_between_dlt645_and_modbus(rtu: RtuRig) -> None:
    # a mixed bus (same line settings): the DL/T 645 side opens the port, Modbus RTU takes it over, and back
    dlt = Dlt645SerialEndpoint(rtu.bus)
    with pytest.raises(DeviceTimeoutError):  # no DL/T 645 meter on this line: silence, but the port works
        await dlt.request("000000000001", 0x00010000, device_id="dl")
    assert (await rtu.sdm.read(FakeClock()())).readings
    with pytest.raises(DeviceTimeoutError):
        await dlt.request("000000000001", 0x00010000, device_id="dl")
    assert (await rtu.dtsu.read(FakeClock()())).readings
