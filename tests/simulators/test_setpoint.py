"""Simulated devices respond physically to setpoints: ramps, SoC limits, session energy, comfort drift, and
the Modbus simulator's writable registers answer writes as a real controller does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from edge.profile import ModbusProfile, builtin_profiles
from edge.registers import DataType, WordOrder, decode_registers, encode_registers
from schemas.commands import CommandAction
from simulators._physics import ramp_toward
from simulators.protocol.assets import SimBattery, SimEvCharger, SimHvac
from simulators.protocol.site import build_flex_site
from simulators.protocol.writable import setpoint_raw


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@given(current=st.floats(-1e4, 1e4), target=st.floats(-1e4, 1e4), rate=st.floats(0, 100), dt=st.floats(0, 100))
def test_ramp_moves_toward_the_target_by_at_most_rate_times_dt(current: float, target: float, rate: float,
                                                               dt: float) -> None:
    moved = ramp_toward(current, target, rate, dt)
    assert abs(moved - current) <= rate * dt + 1e-9
    assert min(current, target) - 1e-9 <= moved <= max(current, target) + 1e-9
    assert moved == target or abs(moved - current) == pytest.approx(rate * dt)


def test_battery_ramps_then_discharges_until_soc_min_and_stops() -> None:
    clock = Clock()
    battery = SimBattery(clock=clock)  # 500 kWh, 60 %, SoC 10-95 %, 50 kW/s
    battery.apply(CommandAction.SET_ACTIVE_POWER, -250.0)
    battery.set_remote(True)
    clock.advance(2.0)
    assert battery.power_now() == pytest.approx(-100.0)
    clock.advance(3.0)
    assert battery.power_now() == pytest.approx(-250.0)
    export_before = battery.sample()["active_energy_export"]
    clock.advance(360)
    assert battery.sample()["active_energy_export"] - export_before == pytest.approx(25.0, abs=0.01)
    clock.advance(2 * 3600)  # 250 kWh above the floor at 250 kW / 0.95: empty after ~57 minutes
    values = battery.sample()
    assert values["state_of_charge"] == pytest.approx(10.0)
    assert values["active_power"] == 0.0  # the battery stopped at its limit
    battery.apply(CommandAction.SET_ACTIVE_POWER, 100.0)  # charging is still possible
    clock.advance(10)
    assert battery.power_now() == pytest.approx(100.0)
    battery.set_remote(False)  # release: back to its own (idle) behaviour
    clock.advance(10)
    assert battery.power_now() == 0.0


def test_battery_charges_until_soc_max() -> None:
    clock = Clock()
    battery = SimBattery(clock=clock, initial_soc_pct=90.0)
    battery.apply(CommandAction.SET_ACTIVE_POWER, 250.0)
    battery.set_remote(True)
    clock.advance(3600)
    assert battery.sample()["state_of_charge"] == pytest.approx(95.0)
    assert battery.power_now() == 0.0


def test_ev_limit_caps_power_session_energy_integrates_and_a_full_car_stops() -> None:
    clock = Clock()
    charger = SimEvCharger(clock=clock, energy_needed_kwh=10.0)
    assert charger.power_now() == 22.0
    charger.apply(CommandAction.SET_POWER_LIMIT, 5.0)
    charger.set_remote(True)
    clock.advance(3.0)
    assert charger.power_now() == pytest.approx(5.0)
    clock.advance(3600)
    assert charger.sample()["ev_energy_requested"] == pytest.approx(5.0, abs=0.05)
    assert charger.session_energy_kwh == pytest.approx(5.0, abs=0.05)
    charger.set_remote(False)  # release: full power again until the car is full
    clock.advance(3600)
    values = charger.sample()
    assert values["ev_energy_requested"] == 0.0
    assert values["active_power"] == 0.0
    assert charger.session_energy_kwh == pytest.approx(10.0)


def test_hvac_setpoint_rise_drifts_the_zone_and_release_rebounds() -> None:
    clock = Clock()
    hvac = SimHvac(clock=clock)
    steady = hvac.power_now()
    assert steady > 0
    hvac.apply(CommandAction.SET_TEMPERATURE_SETPOINT, 26.0)
    hvac.set_remote(True)
    assert hvac.power_now() == 0.0
    clock.advance(1800)
    assert 24.5 < hvac.sample()["indoor_temperature"] < 26.0  # comfort drift
    clock.advance(3 * 3600)
    assert hvac.sample()["indoor_temperature"] == pytest.approx(26.0, abs=0.1)
    assert 0.0 < hvac.power_now() < steady
    hvac.set_remote(False)
    assert hvac.power_now() > steady  # rebound toward 24 degC
    clock.advance(6 * 3600)
    assert hvac.sample()["indoor_temperature"] == pytest.approx(24.0, abs=0.1)
    assert hvac.power_now() == pytest.approx(steady, rel=0.02)


def _words(value: float, data_type: DataType) -> list[int]:
    return encode_registers(value, data_type, WordOrder.ABCD)


async def test_modbus_writes_drive_the_model_and_bad_writes_get_modbus_exceptions(unused_tcp_port: int) -> None:
    clock = Clock()
    site = build_flex_site(port=unused_tcp_port, clock=clock, prefix="s", n_ev=1)
    await site.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=unused_tcp_port, timeout=3, retries=0)
    try:
        assert await client.connect()
        bess = builtin_profiles()["generic_bess_modbus"]
        assert isinstance(bess, ModbusProfile)
        assert bess.writable is not None
        raw = setpoint_raw(bess.writable, CommandAction.SET_ACTIVE_POWER, -120.0)
        assert not (await client.write_registers(102, _words(raw, DataType.INT32), device_id=2)).isError()
        assert not (await client.write_registers(100, [1], device_id=2)).isError()
        battery = site.assets["s-bess"]
        assert battery.remote
        assert battery.setpoint(CommandAction.SET_ACTIVE_POWER) == -120.0
        readback = await client.read_holding_registers(104, count=2, device_id=2)
        assert decode_registers(readback.registers, DataType.INT32, WordOrder.ABCD) * 0.1 == pytest.approx(-120.0)
        clock.advance(10)
        power = await client.read_holding_registers(0, count=2, device_id=2)
        assert decode_registers(power.registers, DataType.INT32, WordOrder.ABCD) * 0.1 == pytest.approx(-120.0)
        boundary = await client.read_input_registers(0x34, count=2, device_id=1)
        boundary_kw = decode_registers(boundary.registers, DataType.FLOAT32, WordOrder.ABCD) / 1000
        assert boundary_kw == pytest.approx(300.0 + 22.0 + site.assets["s-hvac"].power_now() - 120.0, abs=3.0)

        too_much = await client.write_registers(102, _words(-3000, DataType.INT32), device_id=2)  # -300 kW
        assert too_much.isError()
        assert too_much.exception_code == 0x03
        assert (await client.write_registers(100, [7], device_id=2)).exception_code == 0x03  # unknown mode
        assert (await client.write_registers(104, [0, 0], device_id=2)).exception_code == 0x02  # read-back
        assert (await client.write_registers(102, [0], device_id=2)).exception_code == 0x02  # half a value
        assert (await client.write_registers(0x34, [0, 0], device_id=1)).isError()  # meters are read-only
        assert battery.setpoint(CommandAction.SET_ACTIVE_POWER) == -120.0
        battery.faults.offline = True
        assert (await client.write_registers(100, [0], device_id=2)).exception_code == 0x0B
    finally:
        client.close()
        await site.stop()
