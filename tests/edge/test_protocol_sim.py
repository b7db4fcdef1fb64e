"""The agent's readers against the protocol simulators, including every injected fault.

These run real Modbus TCP and DL/T 645 TCP servers on loopback ports; no broker or database needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from edge.config import Dlt645TcpTransport, ModbusTcpTransport
from edge.errors import ChecksumError, DeviceError, DeviceTimeoutError, ModbusExceptionError
from edge.profile import Dlt645Profile, ModbusFunction, ModbusProfile, builtin_profiles
from edge.readers import Dlt645Reader, EndpointPool, ModbusReader
from edge.registers import DataType, WordOrder, decode_registers
from simulators.protocol import Dlt645SimMeter, Dlt645SimServer, ModbusSimDevice, ModbusSimServer, SimMeter
from tests.edge.helpers import FakeClock, free_port


def _profiles() -> tuple[Dlt645Profile, ModbusProfile, ModbusProfile]:
    dlt, sdm, dtsu = (builtin_profiles()[n] for n in ("dlt645_2007_3p", "eastron_sdm630", "chint_dtsu666"))
    assert isinstance(dlt, Dlt645Profile)
    assert isinstance(sdm, ModbusProfile)
    assert isinstance(dtsu, ModbusProfile)
    return dlt, sdm, dtsu


DLT, SDM, DTSU = _profiles()


@dataclass
class Rig:
    clock: FakeClock
    dl_meter: SimMeter
    sdm_meter: SimMeter
    dtsu_meter: SimMeter
    dl: Dlt645Reader
    sdm: ModbusReader
    dtsu: ModbusReader
    pool: EndpointPool


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = FakeClock()
    steady: dict[str, Any] = {"noise": 0.0, "daily_swing": 0.0, "clock": clock}
    # DL/T 645 meter behind CT 50: the primary register wraps at 999999.99 x 50, in steps of 0.01 x 50 kWh
    dl_meter = SimMeter(base_kw=100.0, energy_import_kwh=5000.0, register_max_kwh=DLT.register_max(50.0),
                        register_resolution_kwh=0.5, **steady)
    sdm_meter = SimMeter(base_kw=20.0, **steady)
    dtsu_meter = SimMeter(base_kw=400.0, **steady)
    dl_port, mb_port = free_port(), free_port()
    dl_server = Dlt645SimServer([Dlt645SimMeter("000000000161", DLT, dl_meter, ct_ratio=50.0)], port=dl_port)
    mb_server = ModbusSimServer([ModbusSimDevice(1, SDM, sdm_meter), ModbusSimDevice(2, DTSU, dtsu_meter,
                                                                                   ct_ratio=100.0, pt_ratio=10.0)],
                                port=mb_port)
    await dl_server.start()
    await mb_server.start()
    pool = EndpointPool()
    dl_t = Dlt645TcpTransport(kind="dlt645_tcp", host="127.0.0.1", port=dl_port, address="000000000161",
                              timeout_s=0.5)
    sdm_t = ModbusTcpTransport(kind="modbus_tcp", host="127.0.0.1", port=mb_port, unit_id=1, timeout_s=0.5)
    dtsu_t = ModbusTcpTransport(kind="modbus_tcp", host="127.0.0.1", port=mb_port, unit_id=2, timeout_s=0.5)
    yield Rig(
        clock, dl_meter, sdm_meter, dtsu_meter,
        Dlt645Reader("dl", DLT, dl_t, pool.dlt645(dl_t), ct_ratio=50.0, clock=clock),
        ModbusReader("sdm", SDM, sdm_t, pool.modbus(sdm_t)),
        ModbusReader("dtsu", DTSU, dtsu_t, pool.modbus(dtsu_t), ct_ratio=100.0, pt_ratio=10.0),
        pool,
    )
    pool.close()
    await mb_server.stop()
    await dl_server.stop()


def _values(result: object) -> dict[str, float]:
    return {r.metric: r.value for r in result.readings}  # type: ignore[attr-defined]


async def test_modbus_profiles_read_back_the_simulated_primary_values(rig: Rig) -> None:
    for meter, reader in ((rig.sdm_meter, rig.sdm), (rig.dtsu_meter, rig.dtsu)):
        truth = meter.sample()
        meter.faults.stuck = True  # every request now sees exactly `truth`
        got = _values(await reader.read(rig.clock()))
        assert set(got) == {p.metric for p in reader.profile.points}
        for metric, value in got.items():
            assert value == pytest.approx(truth[metric], rel=1e-6, abs=1e-6), metric


async def test_dtsu666_registers_hold_secondary_values(rig: Rig) -> None:
    # 400 kW primary behind CT 100 x PT 10: the meter shows 400 kW / 1000 = 400 W, in 0.1 W units = 4000.0
    truth = rig.dtsu_meter.sample()
    rig.dtsu_meter.faults.stuck = True
    endpoint = rig.dtsu.endpoint
    async with endpoint.lock:
        regs = await endpoint.read_registers(ModbusFunction.HOLDING, 0x2012, 2, unit_id=2, device_id="dtsu")
    assert truth["active_power"] == 400.0
    assert decode_registers(regs, DataType.FLOAT32, WordOrder.ABCD) == pytest.approx(4000.0)


async def test_input_register_meter_refuses_holding_reads(rig: Rig) -> None:
    async with rig.sdm.endpoint.lock:
        with pytest.raises(ModbusExceptionError) as info:
            await rig.sdm.endpoint.read_registers(ModbusFunction.HOLDING, 0, 2, unit_id=1, device_id="sdm")
    assert info.value.exception_code == 2  # illegal data address


async def test_dlt645_values_and_ct_scaling(rig: Rig) -> None:
    truth = rig.dl_meter.sample()
    rig.dl_meter.faults.stuck = True
    got = _values(await rig.dl.read(rig.clock()))
    assert got["active_energy_import"] == 5000.0
    # secondary power 100 kW / 50 = 2.0000 kW (XX.XXXX), x 50 again at the agent
    assert got["active_power"] == pytest.approx(truth["active_power"], abs=50 * 1e-4)
    assert got["voltage_l1"] == pytest.approx(truth["voltage_l1"], abs=0.05)        # XXX.X V, PT 1
    assert got["current_l1"] == pytest.approx(truth["current_l1"], abs=50 * 5e-4)   # XXX.XXX A x CT 50


async def test_value_outside_the_bcd_format_skips_one_point(rig: Rig) -> None:
    rig.dl_meter.base_kw = 6000.0  # 6000 / CT 50 = 120 kW secondary > 79.9999 (XX.XXXX + sign): D1H
    result = await rig.dl.read(rig.clock())
    assert [metric for metric, _ in result.skipped] == ["active_power"]
    assert "meter error reply" in result.skipped[0][1]
    assert len(result.readings) == len(DLT.points) - 1


async def test_register_rollover_at_999999_99(rig: Rig) -> None:
    # secondary register 999999.99 - 0.06 = 999999.93 kWh, i.e. primary 49999996.5 kWh at CT 50
    rig.dl_meter.roll_over_soon(margin_kwh=0.06 * 50)
    rig.clock.advance(360)  # 100 kW x 0.1 h = 10 kWh primary = 0.2 kWh secondary
    got = _values(await rig.dl.read(rig.clock()))
    # secondary 999999.93 + 0.2 = 1000000.13 -> wraps at 1000000.00 (max + 0.01) -> 0.13 -> x 50 = 6.5 kWh
    assert got["active_energy_import"] == pytest.approx(6.5, abs=0.01)
    assert rig.dl_meter.rollovers == 1


async def test_meter_replacement_and_reset(rig: Rig) -> None:
    rig.dl_meter.replace_meter(1234.5)
    rig.clock.advance(36)  # 100 kW x 0.01 h = 1 kWh
    # resolution of the primary value is 0.01 kWh x CT 50 = 0.5 kWh
    assert _values(await rig.dl.read(rig.clock()))["active_energy_import"] == pytest.approx(1235.5, abs=0.5)
    rig.dl_meter.reset_to_zero()
    rig.clock.advance(72)  # 2 kWh
    assert _values(await rig.dl.read(rig.clock()))["active_energy_import"] == pytest.approx(2.0, abs=0.5)


async def test_stuck_value_and_spike(rig: Rig) -> None:
    first = _values(await rig.sdm.read(rig.clock()))
    rig.sdm_meter.faults.stuck = True
    rig.clock.advance(600)
    assert _values(await rig.sdm.read(rig.clock())) == first
    rig.sdm_meter.faults.stuck = False
    rig.sdm_meter.spike(samples=1, factor=1000.0)
    spiked = _values(await rig.sdm.read(rig.clock()))
    assert spiked["active_power"] == pytest.approx(20.0 * 1000.0)  # 20 kW steady load x 1000
    assert _values(await rig.sdm.read(rig.clock()))["active_power"] == pytest.approx(20.0)


async def test_meter_clock_skew_is_measured(rig: Rig) -> None:
    rig.dl_meter.faults.clock_skew_s = 300.0
    result = await rig.dl.read(rig.clock(), read_clock=True)
    assert result.meter_clock is not None
    assert result.meter_clock_read_at is not None
    assert (result.meter_clock - result.meter_clock_read_at).total_seconds() == 300.0


@pytest.mark.parametrize("fault", ["duplicate", "out_of_order"])
async def test_duplicate_and_out_of_order_replies_never_mix_up_identifiers(rig: Rig, fault: str) -> None:
    truth = rig.dl_meter.sample()
    rig.dl_meter.faults.stuck = True
    setattr(rig.dl_meter.faults, fault, True)
    for _ in range(2):
        got = _values(await rig.dl.read(rig.clock()))
        assert got["voltage_l1"] == pytest.approx(truth["voltage_l1"], abs=0.05)
        assert got["active_energy_import"] == pytest.approx(truth["active_energy_import"], abs=0.5)
        assert got["frequency"] == pytest.approx(truth["frequency"], abs=0.005)
    if fault == "out_of_order":
        assert rig.dl.endpoint.stale_frames >= len(DLT.points)


async def test_garbage_frames_raise_precise_errors(rig: Rig) -> None:
    rig.dl_meter.faults.garbage = "checksum"
    with pytest.raises(ChecksumError):
        await rig.dl.read(rig.clock())
    rig.dl_meter.faults.garbage = "noise"
    with pytest.raises(DeviceTimeoutError, match=r"noise discarded|no reply"):
        await rig.dl.read(rig.clock())
    rig.dl_meter.faults.garbage = None
    assert len((await rig.dl.read(rig.clock())).readings) == len(DLT.points)  # recovers on the next poll


async def test_offline_meters(rig: Rig) -> None:
    rig.dl_meter.faults.offline = True
    with pytest.raises(DeviceTimeoutError):
        await rig.dl.read(rig.clock())
    rig.sdm_meter.faults.offline = True
    with pytest.raises(ModbusExceptionError) as info:
        await rig.sdm.read(rig.clock())
    assert info.value.exception_code == 0x0B  # gateway: target device failed to respond
    assert len((await rig.dtsu.read(rig.clock())).readings) == len(DTSU.points)  # same gateway, other meter


async def test_modbus_garbage_is_a_device_error(rig: Rig) -> None:
    rig.sdm_meter.faults.garbage = "noise"
    with pytest.raises(DeviceError):
        await rig.sdm.read(rig.clock())
    rig.sdm_meter.faults.garbage = None
    assert len((await rig.sdm.read(rig.clock())).readings) == len(SDM.points)


async def test_modbus_rtu_frames_over_tcp() -> None:
    meter = SimMeter(base_kw=20.0, noise=0.0, daily_swing=0.0, clock=FakeClock())
    port = free_port()
    server = ModbusSimServer([ModbusSimDevice(3, SDM, meter)], port=port, framer="rtu")
    await server.start()
    pool = EndpointPool()
    try:
        transport = ModbusTcpTransport(kind="modbus_tcp", host="127.0.0.1", port=port, unit_id=3, framer="rtu",
                                       timeout_s=0.5)
        reader = ModbusReader("rtu", SDM, transport, pool.modbus(transport))
        got = _values(await reader.read(FakeClock()()))
        assert got["active_power"] == pytest.approx(20.0)
    finally:
        pool.close()
        await server.stop()
