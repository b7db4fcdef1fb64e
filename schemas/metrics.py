"""The metric registry: what a device may report, in which canonical unit, of which kind and carrier.

A *series* in the database is one (device, metric) pair. The registry is the contract between devices,
ingest and aggregation: a metric's kind tells aggregation how to turn raw points into interval energy
(cumulative registers are differenced, instantaneous values are averaged, states are sampled).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from schemas.errors import UnknownMetricError
from schemas.units import get_unit


class MetricKind(StrEnum):
    """How a metric's values behave over time."""

    CUMULATIVE = "cumulative"        # a monotonically increasing register (kWh, m3, GJ) that may wrap or reset
    INSTANTANEOUS = "instantaneous"  # a sampled physical quantity (kW, V, degC)
    STATE = "state"                  # a discrete or bounded state (plugged in, state of charge)


class Carrier(StrEnum):
    """Energy carrier (or medium) a metric measures."""

    ELECTRICITY = "electricity"
    GAS = "gas"
    HEAT = "heat"
    COOLING = "cooling"
    WATER = "water"
    STEAM = "steam"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One registered metric: name, canonical unit, kind, carrier and a one-line meaning."""

    name: str
    unit: str
    kind: MetricKind
    carrier: Carrier
    description: str
    min_value: float | None = None
    max_value: float | None = None


_C, _I, _S = MetricKind.CUMULATIVE, MetricKind.INSTANTANEOUS, MetricKind.STATE
_E, _G, _H, _K, _W, _N = (Carrier.ELECTRICITY, Carrier.GAS, Carrier.HEAT, Carrier.COOLING, Carrier.WATER,
                          Carrier.NONE)

_SPECS: Final[tuple[MetricSpec, ...]] = (
    # electricity meters (GB 17167 levels 1-3), PV inverters, chargers, data-centre meters
    MetricSpec("active_energy_import", "kWh", _C, _E, "forward (import) active energy register", 0.0),
    MetricSpec("active_energy_export", "kWh", _C, _E, "reverse (export) active energy register", 0.0),
    MetricSpec("reactive_energy_import", "kvarh", _C, _E, "forward reactive energy register", 0.0),
    MetricSpec("active_power", "kW", _I, _E, "total active power, + = consumption/import"),
    MetricSpec("reactive_power", "kvar", _I, _E, "total reactive power"),
    MetricSpec("voltage_l1", "V", _I, _E, "phase A voltage", 0.0, 100_000.0),
    MetricSpec("voltage_l2", "V", _I, _E, "phase B voltage", 0.0, 100_000.0),
    MetricSpec("voltage_l3", "V", _I, _E, "phase C voltage", 0.0, 100_000.0),
    MetricSpec("current_l1", "A", _I, _E, "phase A current"),
    MetricSpec("current_l2", "A", _I, _E, "phase B current"),
    MetricSpec("current_l3", "A", _I, _E, "phase C current"),
    MetricSpec("power_factor", "1", _I, _E, "total power factor", -1.0, 1.0),
    MetricSpec("frequency", "Hz", _I, _E, "grid frequency", 0.0, 100.0),
    # generation and storage
    MetricSpec("generated_energy", "kWh", _C, _E, "energy produced by a generator (PV, CHP electrical)", 0.0),
    MetricSpec("generation_power", "kW", _I, _E, "generator output power, >= 0"),
    MetricSpec("battery_charge_energy", "kWh", _C, _E, "energy charged into a battery", 0.0),
    MetricSpec("battery_discharge_energy", "kWh", _C, _E, "energy discharged from a battery", 0.0),
    MetricSpec("battery_power", "kW", _I, _E, "battery power, + = charging, - = discharging"),
    MetricSpec("state_of_charge", "%", _S, _N, "battery state of charge", 0.0, 100.0),
    MetricSpec("ev_connected", "state", _S, _N, "EV plugged in (1) or not (0)", 0.0, 1.0),
    MetricSpec("ev_energy_requested", "kWh", _S, _E, "energy the plugged-in EV still needs", 0.0),
    # gas
    MetricSpec("gas_volume", "m3", _C, _G, "natural gas volume register (standard m3)", 0.0),
    MetricSpec("gas_flow", "m3/h", _I, _G, "natural gas flow rate"),
    MetricSpec("gas_volume_working", "m3", _C, _G,
               "natural gas volume register at line (working) conditions, not corrected to standard m3", 0.0),
    # heat, cooling, steam, water
    MetricSpec("heat_energy", "GJ", _C, _H, "heat meter energy register", 0.0),
    MetricSpec("heat_power", "kW", _I, _H, "heat meter thermal power"),
    MetricSpec("recovered_heat_energy", "GJ", _C, _H, "waste-heat recovery loop energy register", 0.0),
    MetricSpec("supply_temperature", "degC", _I, _N, "supply (flow) temperature", -50.0, 400.0),
    MetricSpec("return_temperature", "degC", _I, _N, "return temperature", -50.0, 400.0),
    MetricSpec("cooling_energy", "kWh", _C, _K, "cooling energy register", 0.0),
    MetricSpec("steam_mass", "m3", _C, Carrier.STEAM, "steam register (volume equivalent)", 0.0),
    MetricSpec("water_volume", "m3", _C, _W, "water volume register", 0.0),
    MetricSpec("heat_volume", "m3", _C, _H, "volume of heating/cooling water through a heat meter (register)", 0.0),
    MetricSpec("heat_volume_flow", "m3/h", _I, _H, "flow rate of heating/cooling water through a heat meter", 0.0),
    MetricSpec("cooling_power", "kW", _I, _K, "cooling meter thermal power", 0.0),
    MetricSpec("water_flow", "m3/h", _I, _W, "water flow rate", 0.0),
    # meter condition (CJ/T 188 status bytes)
    MetricSpec("battery_low", "state", _S, _N, "meter battery voltage low (1) or normal (0)", 0.0, 1.0),
    MetricSpec("valve_state", "state", _S, _N, "meter valve: 0 open, 1 closed, 2 abnormal", 0.0, 2.0),
    # environment
    MetricSpec("indoor_temperature", "degC", _I, _N, "indoor air temperature", -50.0, 80.0),
    MetricSpec("outdoor_temperature", "degC", _I, _N, "outdoor air temperature", -60.0, 70.0),
)

METRICS: Final[dict[str, MetricSpec]] = {m.name: m for m in _SPECS}

for _spec in _SPECS:  # fail at import time if the registry names a unit that does not exist
    get_unit(_spec.unit)


def get_metric(name: str) -> MetricSpec:
    """Return the :class:`MetricSpec` for ``name`` or raise :class:`UnknownMetricError`."""
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownMetricError(name) from None
