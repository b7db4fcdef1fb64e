"""CJ/T 188 profiles, and the reader against the CJ/T 188 simulator over TCP and over a real pty serial line.

Expected values come from the simulated physics' own registers (GJ, m3), converted here by hand, or from
bytes written by the test; never from the reader.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.cjt188 import Cjt188ReplyError
from edge.errors import ChecksumError, ConfigError, DeviceConnectionError, DeviceTimeoutError, FrameError
from edge.profile import Cjt188Profile, builtin_profiles, parse_profile
from edge.readers.base import ReadResult
from edge.readers.cjt188 import Cjt188Reader, GatewayEndpoint
from edge.serial_bus import SerialBus, SerialBusSettings
from simulators.protocol.cjt188 import Cjt188Line, HeatPhysics, VolumePhysics, build_cjt188_line
from tests.edge.helpers import FakeClock, free_port, refused_port
from tests.fixtures.serial_pty import PtyPair, pty_pair  # noqa: F401 - fixture

CJT188_PROFILES = ("cjt188_2004_water", "cjt188_2004_gas", "cjt188_2004_gas_corrector", "cjt188_2004_heat",
                   "cjt188_2018_heat")
GJ_PER_KWH = 3.6 / 1000


def profile(name: str) -> Cjt188Profile:
    found = builtin_profiles()[name]
    assert isinstance(found, Cjt188Profile)
    return found


def values(result: ReadResult) -> dict[str, tuple[float, str]]:
    return {r.metric: (r.value, r.unit) for r in result.readings}


def near(expected: float, unit: str, *, abs_tol: float = 0.01) -> tuple[object, str]:
    """``(value, unit)`` that equals a reading within ``abs_tol``."""
    return pytest.approx(expected, abs=abs_tol), unit


# -- profiles ---------------------------------------------------------------------------------------------

def test_shipped_profiles_load_with_kind_carrier_and_register_max() -> None:
    kinds = {name: (profile(name).kind, profile(name).carrier) for name in CJT188_PROFILES}
    assert kinds == {"cjt188_2004_water": ("water_meter", "water"), "cjt188_2004_gas": ("gas_meter", "gas"),
                     "cjt188_2004_gas_corrector": ("gas_meter", "gas"), "cjt188_2004_heat": ("heat_meter", "heat"),
                     "cjt188_2018_heat": ("heat_meter", "heat")}
    assert profile("cjt188_2004_water").register_max() == pytest.approx(999999.99)
    assert profile("cjt188_2018_heat").register_max() == pytest.approx(999999.99 * GJ_PER_KWH)
    assert profile("cjt188_2004_heat").wire_di_order.value == "high_first"
    assert profile("cjt188_2018_heat").wire_di_order.value == "low_first"


VALID: dict[str, Any] = {"name": "p", "protocol": "cjt188", "meter_type": "30H",
                         "points": [{"metric": "gas_volume", "field": "current_volume", "unit": "m3"}]}


@pytest.mark.parametrize(("change", "message"), [
    ({"points": [{"metric": "gas_volume", "field": "current_heat", "unit": "m3"}]}, "use one of current_volume"),
    ({"points": [{"metric": "gas_volume", "field": "current_volume", "unit": "kWh"}]}, "expected volume"),
    ({"points": [{"metric": "heat_energy", "field": "current_volume", "unit": "m3"}]}, "expected energy"),
    ({"meter_type": "40"}, "no known current-data layout"),
    ({"meter_type": "zz"}, "meter_type"),
    ({"version": "2010"}, "version"),
    ({"energy_metric": "water_volume"}, "energy_metric 'water_volume' is not one of the points"),
    ({"extra_fields": [{"name": "Bad Name", "bytes": 4}]}, "extra_fields"),
    ({"points": [{"metric": "gas_volume", "field": "current_volume", "unit": "m3", "scaling": "ct"}]},
     "remove scaling"),
])
def test_profile_errors_name_the_field_and_the_fix(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile({**VALID, **change}, origin="site.yaml")


def test_extra_field_maps_onto_a_metric() -> None:
    parsed = parse_profile({**VALID, "extra_fields": [{"name": "working_volume", "bytes": 4, "decimals": 2,
                                                       "dimension": "volume"}],
                            "points": [*VALID["points"], {"metric": "gas_volume_working", "field": "working_volume",
                                                          "unit": "m3"}]})
    assert isinstance(parsed, Cjt188Profile)
    assert [f.name for f in parsed.layout()][-1] == "working_volume"


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.text(max_size=12),
                         st.sampled_from(["10", "20H", "0x30", "2004", "2018", "m3", "kWh", "current_volume"]))


@given(st.dictionaries(st.sampled_from(["meter_type", "version", "di_order", "energy_metric", "kind", "points",
                                        "extra_fields", "carrier", "protocol"]),
                       st.one_of(yaml_scalars, st.lists(st.dictionaries(
                           st.sampled_from(["metric", "field", "unit", "name", "bytes", "decimals", "dimension"]),
                           yaml_scalars), max_size=3)), max_size=4))
def test_any_profile_document_is_valid_or_a_config_error(change: dict[str, Any]) -> None:
    error: ConfigError | None = None
    try:
        parse_profile({**VALID, **change}, origin="fuzz.yaml")
    except ConfigError as exc:
        error = exc
    assert error is None or "invalid device profile fuzz.yaml" in str(error)


# -- reader over TCP --------------------------------------------------------------------------------------

@pytest.fixture
async def line() -> AsyncIterator[Cjt188Line]:
    sim = build_cjt188_line(gas=1, heat=1, water=1, port=free_port(), clock=FakeClock(), prefix="t")
    await sim.server.start()
    yield sim
    await sim.server.stop()


def reader_for(line: Cjt188Line, device: str, endpoint: GatewayEndpoint, **kwargs: Any) -> Cjt188Reader:
    entry = next(e for e in line.entries if e["id"] == device)
    return Cjt188Reader(device, profile(entry["profile"]), entry["transport"]["address"], endpoint, **kwargs)


async def test_heat_meter_readings_in_registry_units_for_every_unit_code(line: Cjt188Line) -> None:
    endpoint = GatewayEndpoint(line.server.host, line.server.port, timeout_s=1.0)
    sim = line.meters["t-heat-001"]
    assert isinstance(sim.physics, HeatPhysics)
    clock = sim.clock
    assert isinstance(clock, FakeClock)
    reader = reader_for(line, "t-heat-001", endpoint, clock=clock)
    for unit in ("kWh", "MWh", "GJ"):
        clock.advance(600)
        sim.physics.energy_unit = unit
        got = values(await reader.read(clock()))
        expected_gj = sim.physics.model.register.reading
        resolution_gj = {"kWh": 0.01 * GJ_PER_KWH, "MWh": 0.01 * 3.6, "GJ": 0.01}[unit]
        assert got["heat_energy"][1] == "GJ"
        assert got["heat_energy"][0] == pytest.approx(expected_gj, abs=resolution_gj)
    assert got["heat_power"] == near(sim.physics.values["heat_power"], "kW")
    assert got["supply_temperature"] == near(sim.physics.values["supply_temperature"], "degC")
    assert got["return_temperature"] == near(sim.physics.values["return_temperature"], "degC")
    assert got["heat_volume_flow"][1] == "m3/h"
    assert got["heat_volume"][1] == "m3"
    assert got["battery_low"] == (0.0, "state")
    endpoint.close()


async def test_volume_registers_and_meter_clock(line: Cjt188Line) -> None:
    endpoint = GatewayEndpoint(line.server.host, line.server.port, timeout_s=1.0)
    clock = line.meters["t-gas-001"].clock
    assert isinstance(clock, FakeClock)
    gas = reader_for(line, "t-gas-001", endpoint, clock=clock)
    water = reader_for(line, "t-water-001", endpoint, clock=clock)
    first = await gas.read(clock(), read_clock=True)
    clock.advance(3600)
    second = await gas.read(clock(), read_clock=True)
    physics = line.meters["t-gas-001"].physics
    assert isinstance(physics, VolumePhysics)
    assert values(second)["gas_volume"] == near(physics.model.register.reading, "m3")
    assert values(second)["gas_volume"][0] > values(first)["gas_volume"][0]
    assert second.meter_clock == clock().replace(microsecond=0)  # the meter keeps local time; read back in UTC
    assert second.meter_clock_read_at == clock()
    water_values = values(await water.read(clock()))
    assert set(water_values) == {"water_volume", "battery_low", "valve_state"}
    assert water_values["water_volume"][1] == "m3"
    endpoint.close()


async def test_status_bits_become_battery_and_valve_readings(line: Cjt188Line) -> None:
    from edge.cjt188_data import MeterStatus

    endpoint = GatewayEndpoint(line.server.host, line.server.port, timeout_s=1.0)
    line.meters["t-water-001"].status = MeterStatus(bytes([0b101, 0]))  # D2 battery low, D1 D0 = 01 closed
    got = values(await reader_for(line, "t-water-001", endpoint).read(datetime.now(UTC)))
    assert got["battery_low"] == (1.0, "state")
    assert got["valve_state"] == (1.0, "state")
    line.meters["t-water-001"].status = MeterStatus(bytes([0b10, 0]))  # reserved valve code: no reading
    result = await reader_for(line, "t-water-001", endpoint).read(datetime.now(UTC))
    assert "valve_state" not in values(result)
    assert result.skipped == [("valve_state", "valve status bits 10 (reserved)")]
    endpoint.close()


@pytest.mark.parametrize(("where", "attr", "value", "error", "message"), [
    ("faults", "offline", True, DeviceTimeoutError, "no reply"),
    ("faults", "garbage", "checksum", ChecksumError, "checksum"),
    ("meter", "wire_fault", "cut", DeviceTimeoutError, "without a complete frame"),
    ("meter", "error_reply", True, Cjt188ReplyError, "error reply"),
])
async def test_faults_raise_device_errors_and_the_line_recovers(line: Cjt188Line, where: str, attr: str, value: Any,
                                                                 error: type[Exception], message: str) -> None:
    endpoint = GatewayEndpoint(line.server.host, line.server.port, timeout_s=0.3)
    sim = line.meters["t-gas-001"]
    target: Any = sim.faults if where == "faults" else sim
    healthy = getattr(target, attr)
    setattr(target, attr, value)
    reader = reader_for(line, "t-gas-001", endpoint)
    with pytest.raises(error, match=message) as caught:
        await reader.read(datetime.now(UTC))
    assert caught.value.device_id == "t-gas-001"  # type: ignore[attr-defined]
    water = await reader_for(line, "t-water-001", endpoint).read(datetime.now(UTC))  # same line, other meter
    assert "water_volume" in values(water)
    setattr(target, attr, healthy)
    assert "gas_volume" in values(await reader.read(datetime.now(UTC)))
    endpoint.close()


async def test_noise_and_duplicates_never_become_readings(line: Cjt188Line) -> None:
    endpoint = GatewayEndpoint(line.server.host, line.server.port, timeout_s=0.3)
    sim = line.meters["t-gas-001"]
    sim.faults.garbage = "noise"
    reader = reader_for(line, "t-gas-001", endpoint)
    for _ in range(5):
        with pytest.raises((DeviceTimeoutError, FrameError)):
            await reader.read(datetime.now(UTC))
    sim.faults.garbage = None
    sim.faults.duplicate = True
    for _ in range(3):
        assert "gas_volume" in values(await reader.read(datetime.now(UTC)))
    assert endpoint.discarded_bytes > 0  # the duplicates were thrown away before the next request
    endpoint.close()


async def test_a_dead_meter_costs_only_its_own_timeout(line: Cjt188Line) -> None:
    endpoint = GatewayEndpoint(line.server.host, line.server.port, timeout_s=0.4)
    line.meters["t-heat-001"].faults.offline = True
    started = time.monotonic()
    with pytest.raises(DeviceTimeoutError):
        await reader_for(line, "t-heat-001", endpoint).read(datetime.now(UTC))
    assert "gas_volume" in values(await reader_for(line, "t-gas-001", endpoint).read(datetime.now(UTC)))
    assert time.monotonic() - started < 0.4 + 0.3
    endpoint.close()


async def test_unreachable_converter_is_a_connection_error() -> None:
    with refused_port() as port:
        endpoint = GatewayEndpoint("127.0.0.1", port, timeout_s=0.5)
        reader = Cjt188Reader("x", profile("cjt188_2004_gas"), "00000000300001", endpoint)
        with pytest.raises(DeviceConnectionError, match="transparent TCP server"):
            await reader.read(datetime.now(UTC))


# -- reader over a real serial line (socat pty pair) -----------------------------------------------------

async def test_gas_and_heat_meters_on_one_rs485_line(pty_pair: PtyPair) -> None:  # noqa: F811
    sim = build_cjt188_line(gas=1, heat=1, port=free_port(), prefix=f"s{uuid.uuid4().hex[:4]}")
    line = SerialBusSettings(id="bus-1", port=pty_pair.sim_end, baudrate=2400, parity="E")
    await sim.server.start_serial(line, pace=True)
    bus = SerialBus(line.model_copy(update={"port": pty_pair.agent_end, "timeout_s": 0.5, "retries": 1}))
    try:
        readers = {e["id"]: Cjt188Reader(e["id"], profile(e["profile"]), e["transport"]["address"], bus)
                   for e in sim.entries}
        for device, reader in readers.items():
            got = values(await reader.read(datetime.now(UTC)))
            assert ("gas_volume" if "gas" in device else "heat_energy") in got
        gas_id = next(d for d in readers if "gas" in d)
        sim.meters[gas_id].wire_fault, sim.meters[gas_id].wire_fault_replies = "cut", 1
        assert "gas_volume" in values(await readers[gas_id].read(datetime.now(UTC)))  # the bus sent it again
        assert bus.retries_used == 1
        sim.meters[gas_id].faults.offline = True
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            await readers[gas_id].read(datetime.now(UTC))
        heat_id = next(d for d in readers if "heat" in d)
        assert "heat_energy" in values(await readers[heat_id].read(datetime.now(UTC)))
        assert time.monotonic() - started < 2 * 0.5 + 1.0  # two attempts of the dead meter, then the heat read
    finally:
        bus.close()
        await sim.server.stop()



async def test_gas_meter_with_converter_reports_standard_and_working_volume() -> None:
    from simulators._device_specs import GasMeterSpec
    from simulators.protocol.cjt188 import Cjt188SimMeter, Cjt188SimServer

    clock = FakeClock()
    physics = VolumePhysics(GasMeterSpec(id="g", kind="gas_meter", initial_registers={"gas_volume": 5000.0}),
                            start=clock(), working_per_standard=0.9)
    server = Cjt188SimServer([Cjt188SimMeter("00000000300009", profile("cjt188_2004_gas_corrector"), physics,
                                             clock=clock)], port=free_port())
    await server.start()
    endpoint = GatewayEndpoint(server.host, server.port, timeout_s=1.0)
    try:
        clock.advance(1800)
        reader = Cjt188Reader("g", profile("cjt188_2004_gas_corrector"), "00000000300009", endpoint)
        got = values(await reader.read(clock()))
    finally:
        endpoint.close()
        await server.stop()
    standard = physics.model.register.reading
    assert standard > 5000.0
    assert got["gas_volume"] == near(standard, "m3")
    assert got["gas_volume_working"] == near(standard * 0.9, "m3")
