"""A simulated site: N Modbus meters behind one gateway and M DL/T 645 meters on one bus.

Used by tests, the benchmark and ``parkpulse protocol-sim`` to stand up real protocol peers quickly;
:meth:`SimSite.device_entries` gives the matching ``devices:`` list for an ``edge.yaml``.
:func:`build_flex_site` is the dispatchable variant: a battery, EV chargers and an HVAC unit that take
setpoints over Modbus, and the park's boundary meter summing a base load and those devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.profile import Dlt645Profile, ModbusProfile, builtin_profiles
from simulators.protocol.assets import SetpointDevice, SimBattery, SimBoundaryMeter, SimEvCharger, SimHvac
from simulators.protocol.dlt645 import Dlt645SimMeter, Dlt645SimServer
from simulators.protocol.modbus import ModbusSimDevice, ModbusSimServer
from simulators.protocol.physics import Clock, SimMeter, wall_clock

MODBUS_PROFILES = ("eastron_sdm630", "chint_dtsu666")
DLT645_PROFILE = "dlt645_2007_3p"
BATTERY_PROFILE, EV_PROFILE, HVAC_PROFILE = "generic_bess_modbus", "generic_ev_charger_modbus", "generic_hvac_modbus"
BOUNDARY_PROFILE = "eastron_sdm630"


@dataclass
class SimSite:
    """Running (after :meth:`start`) protocol servers and their meters, keyed by edge device id."""

    host: str
    modbus: ModbusSimServer | None
    dlt645: Dlt645SimServer | None
    meters: dict[str, SimMeter] = field(default_factory=dict)
    assets: dict[str, SetpointDevice] = field(default_factory=dict)  # devices taking setpoints (build_flex_site)
    entries: list[dict[str, Any]] = field(default_factory=list)

    async def start(self) -> None:
        """Start listening."""
        if self.modbus is not None:
            await self.modbus.start()
        if self.dlt645 is not None:
            await self.dlt645.start()

    async def stop(self) -> None:
        """Stop listening and drop connections."""
        if self.modbus is not None:
            await self.modbus.stop()
        if self.dlt645 is not None:
            await self.dlt645.stop()

    def device_entries(self, *, poll_interval_s: float = 15.0, timeout_s: float = 2.0) -> list[dict[str, Any]]:
        """``edge.yaml`` device entries that poll this site."""
        out = []
        for entry in self.entries:
            item = {**entry, "poll_interval_s": poll_interval_s}
            item["transport"] = {**entry["transport"], "timeout_s": timeout_s}
            out.append(item)
        return out


def build_site(*, n_modbus: int = 2, n_dlt645: int = 1, host: str = "127.0.0.1", modbus_port: int = 5020,
               dlt645_port: int = 8899, clock: Clock = wall_clock, seed: int = 1,
               prefix: str = "m") -> SimSite:
    """Meters with deterministic physics; Modbus meters alternate SDM630 and DTSU666 (CT 100)."""
    profiles = builtin_profiles()
    site = SimSite(host=host, modbus=None, dlt645=None)
    modbus_devices: list[ModbusSimDevice] = []
    for i in range(n_modbus):
        name = MODBUS_PROFILES[i % len(MODBUS_PROFILES)]
        profile = profiles[name]
        assert isinstance(profile, ModbusProfile)
        ct = 100.0 if name == "chint_dtsu666" else 1.0
        meter = SimMeter(base_kw=20.0 + 5.0 * i, seed=seed + i, clock=clock, energy_import_kwh=1000.0 + i)
        unit = i + 1
        modbus_devices.append(ModbusSimDevice(unit, profile, meter, ct_ratio=ct))
        device_id = f"{prefix}-mb-{unit:03d}"
        site.meters[device_id] = meter
        site.entries.append({"id": device_id, "profile": name, "ct_ratio": ct, "metering_level": 3,
                             "transport": {"kind": "modbus_tcp", "host": host, "port": modbus_port,
                                           "unit_id": unit}})
    dlt_meters: list[Dlt645SimMeter] = []
    dlt_profile = profiles[DLT645_PROFILE]
    assert isinstance(dlt_profile, Dlt645Profile)
    for j in range(n_dlt645):
        address = f"{j + 1:012d}"
        ct = 50.0
        meter = SimMeter(base_kw=100.0 + 10.0 * j, seed=seed + 1000 + j, clock=clock,
                         energy_import_kwh=5000.0 + j, register_max_kwh=dlt_profile.register_max(ct, 1.0))
        dlt_meters.append(Dlt645SimMeter(address, dlt_profile, meter, ct_ratio=ct))
        device_id = f"{prefix}-dl-{j + 1:03d}"
        site.meters[device_id] = meter
        site.entries.append({"id": device_id, "profile": DLT645_PROFILE, "ct_ratio": ct, "metering_level": 2,
                             "transport": {"kind": "dlt645_tcp", "host": host, "port": dlt645_port,
                                           "address": address}})
    if modbus_devices:
        site.modbus = ModbusSimServer(modbus_devices, host=host, port=modbus_port)
    if dlt_meters:
        site.dlt645 = Dlt645SimServer(dlt_meters, host=host, port=dlt645_port)
    return site


def build_flex_site(*, host: str = "127.0.0.1", port: int = 5020, clock: Clock = wall_clock, seed: int = 1,
                    prefix: str = "flex", base_load_kw: float = 300.0, n_ev: int = 2) -> SimSite:
    """A dispatchable park behind one Modbus TCP gateway (see :mod:`simulators.protocol.assets`).

    Unit 1 is the boundary meter (``{prefix}-boundary``, SDM630 map, level 1, role park_boundary): a base load
    of about ``base_load_kw`` plus every device below. Unit 2 the battery (``{prefix}-bess``), units 3.. the EV
    chargers (``{prefix}-ev-1``...), then the HVAC unit (``{prefix}-hvac``). Under their own control the battery
    idles, the chargers charge their cars at full power and the chiller holds 24 degC.
    """
    profiles = builtin_profiles()
    site = SimSite(host=host, modbus=None, dlt645=None)
    assets: list[tuple[str, str, SetpointDevice, str]] = [(f"{prefix}-bess", BATTERY_PROFILE, SimBattery(clock=clock),
                                                           "battery")]
    assets += [(f"{prefix}-ev-{i + 1}", EV_PROFILE, SimEvCharger(clock=clock, energy_needed_kwh=40.0 + 5 * i), "ev")
               for i in range(n_ev)]
    assets.append((f"{prefix}-hvac", HVAC_PROFILE, SimHvac(clock=clock), "hvac"))
    boundary = SimBoundaryMeter(base_kw=base_load_kw, daily_swing=0.0, noise=0.002, seed=seed, clock=clock,
                                energy_import_kwh=100_000.0, loads=[a[2] for a in assets])
    devices: list[ModbusSimDevice] = []
    rows: list[tuple[str, str, SimMeter | SetpointDevice, str, int]] = [
        (f"{prefix}-boundary", BOUNDARY_PROFILE, boundary, "park_boundary", 1)]
    rows += [(device_id, name, model, role, 3) for device_id, name, model, role in assets]
    for unit, (device_id, name, model, role, level) in enumerate(rows, start=1):
        profile = profiles[name]
        assert isinstance(profile, ModbusProfile)
        devices.append(ModbusSimDevice(unit, profile, model))
        if isinstance(model, SimMeter):
            site.meters[device_id] = model
        else:
            site.assets[device_id] = model
        site.entries.append({"id": device_id, "profile": name, "metering_level": level, "role": role,
                             "transport": {"kind": "modbus_tcp", "host": host, "port": port, "unit_id": unit}})
    site.modbus = ModbusSimServer(devices, host=host, port=port)
    return site


__all__ = ["SimSite", "build_flex_site", "build_site"]
