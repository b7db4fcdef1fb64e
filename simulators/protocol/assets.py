"""Simulated dispatchable devices that respond physically to setpoints written over Modbus.

Each model integrates its own physics between samples (the wall clock, or an injected clock in tests),
so what the metered power registers show is the consequence of what was written:

* :class:`SimBattery`: the power ramps toward the setpoint at ``ramp_kw_per_s``; the stored energy
  integrates with the charge/discharge efficiencies and stops at the SoC limits (the battery then stops:
  :func:`simulators._physics.battery_step`); under local control it follows ``baseline_kw``.
* :class:`SimEvCharger`: a car is plugged in and wants ``energy_needed_kwh``; the charger delivers
  ``min(car, rating, limit)`` (the limit only under remote control), ramping, and stops when the car is full.
  Session energy and the import register integrate.
* :class:`SimHvac`: a chiller holds a 1R1C zone (:func:`simulators._physics.zone_power_kw`) at its
  setpoint: raising the setpoint stops the compressor until the zone has drifted up (comfort drift), then it
  holds the warmer zone at a lower power; release returns to ``baseline_setpoint_c`` (and the rebound).
* :class:`SimBoundaryMeter`: a park boundary meter whose power is a base load plus the devices behind it.

All power values are in kW drawn from the bus (+ consume, - feed), the command contract's convention.
Models follow :class:`SetpointDevice`; ``simulators/protocol/writable.py`` maps them to registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from schemas.commands import CommandAction
from simulators import _physics as phy
from simulators.protocol.physics import Clock, Faults, SimMeter, wall_clock

MAX_SUBSTEPS = 20_000


class SetpointDevice(Protocol):
    """What the Modbus simulator needs from a device that takes setpoints."""

    faults: Faults
    remote: bool

    def sample(self) -> dict[str, float]:
        """Metric -> value (canonical unit) now."""
        ...

    def power_now(self) -> float:
        """The power drawn from the bus now (kW)."""
        ...

    def setpoint(self, action: CommandAction) -> float:
        """The setpoint in force for ``action`` (command unit)."""
        ...

    def apply(self, action: CommandAction, value: float) -> None:
        """Take a new setpoint; raises ValueError for an action the device does not have."""
        ...

    def set_remote(self, remote: bool) -> None:
        """Follow the written setpoints (True) or the device's own control (False)."""
        ...


def _substeps(dt_s: float, max_step_s: float) -> tuple[int, float]:
    n = min(MAX_SUBSTEPS, max(1, int(dt_s / max_step_s + 0.999999)))
    return n, dt_s / n


@dataclass
class _Timed:
    """Shared clock handling: integrate from the last instant to now before anything changes."""

    clock: Clock = wall_clock
    faults: Faults = field(default_factory=Faults)
    remote: bool = False
    _last_at: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._last_at = self.clock()  # the physics runs from construction on

    def _elapsed_s(self) -> float:
        now = self.clock()
        dt = 0.0 if self._last_at is None else max(0.0, (now - self._last_at).total_seconds())
        self._last_at = now
        return dt

    def _integrate(self, dt_s: float) -> None:
        raise NotImplementedError

    def _advance(self) -> None:
        dt = self._elapsed_s()
        if dt > 0:
            self._integrate(dt)

    def set_remote(self, remote: bool) -> None:
        """Switch between remote setpoints and own control (the physics up to now is kept)."""
        self._advance()
        self.remote = remote


@dataclass
class SimBattery(_Timed):
    """A battery behind its PCS (see the module docstring)."""

    params: phy.BatteryParams = field(default_factory=lambda: phy.BatteryParams(
        capacity_kwh=500.0, max_charge_kw=250.0, max_discharge_kw=250.0, charge_efficiency=0.95,
        discharge_efficiency=0.95, soc_min_pct=10.0, soc_max_pct=95.0))
    ramp_kw_per_s: float = 50.0
    initial_soc_pct: float = 60.0
    baseline_kw: float = 0.0
    setpoint_kw: float = 0.0
    power_kw: float = 0.0
    energy_import_kwh: float = 100.0
    energy_export_kwh: float = 100.0
    stored_kwh: float = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stored_kwh = self.params.capacity_kwh * self.initial_soc_pct / 100.0

    @property
    def soc_pct(self) -> float:
        """State of charge, % of capacity."""
        return 100.0 * self.stored_kwh / self.params.capacity_kwh

    def _integrate(self, dt_s: float) -> None:
        target = self.setpoint_kw if self.remote else self.baseline_kw
        n, h = _substeps(dt_s, 0.5)
        for _ in range(n):
            wanted = phy.ramp_toward(self.power_kw, target, self.ramp_kw_per_s, h)
            self.power_kw, self.stored_kwh = phy.battery_step(self.params, self.stored_kwh, wanted, h)
            if self.power_kw >= 0:
                self.energy_import_kwh += self.power_kw * h / phy.SECONDS_PER_HOUR
            else:
                self.energy_export_kwh += -self.power_kw * h / phy.SECONDS_PER_HOUR

    def power_now(self) -> float:
        """Power now, kW (+ charging)."""
        self._advance()
        return self.power_kw

    def setpoint(self, action: CommandAction) -> float:
        """The power setpoint in force (kW)."""
        del action
        return self.setpoint_kw

    def apply(self, action: CommandAction, value: float) -> None:
        """A new power setpoint (kW, + charge / - discharge)."""
        if action is not CommandAction.SET_ACTIVE_POWER:
            raise ValueError(f"a battery takes set_active_power, not {action.value}")
        self._advance()
        self.setpoint_kw = value

    def sample(self) -> dict[str, float]:
        """Power, SoC and the energy registers now."""
        self._advance()
        return {"active_power": self.power_kw, "battery_power": self.power_kw, "state_of_charge": self.soc_pct,
                "active_energy_import": self.energy_import_kwh, "active_energy_export": self.energy_export_kwh}


@dataclass
class SimEvCharger(_Timed):
    """An AC charging point with one car plugged in (see the module docstring)."""

    rated_kw: float = 22.0
    car_max_kw: float = 22.0
    ramp_kw_per_s: float = 11.0
    energy_needed_kwh: float = 40.0
    limit_kw: float = 22.0
    power_kw: float = 0.0
    session_energy_kwh: float = 0.0
    energy_import_kwh: float = 500.0
    connected: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.power_kw = self._target()  # charging at full power when the simulation starts

    def _target(self) -> float:
        if not self.connected or self.energy_needed_kwh <= 0:
            return 0.0
        cap = min(self.rated_kw, self.car_max_kw)
        return min(cap, self.limit_kw) if self.remote else cap

    def _integrate(self, dt_s: float) -> None:
        n, h = _substeps(dt_s, 0.5)
        for _ in range(n):
            self.power_kw = phy.ramp_toward(self.power_kw, self._target(), self.ramp_kw_per_s, h)
            delivered = min(self.power_kw * h / phy.SECONDS_PER_HOUR, max(0.0, self.energy_needed_kwh))
            self.energy_needed_kwh -= delivered
            self.session_energy_kwh += delivered
            self.energy_import_kwh += delivered
            if self.energy_needed_kwh <= 1e-9:
                self.power_kw = 0.0

    def power_now(self) -> float:
        """Power now, kW."""
        self._advance()
        return self.power_kw

    def setpoint(self, action: CommandAction) -> float:
        """The power limit in force (kW)."""
        del action
        return self.limit_kw

    def apply(self, action: CommandAction, value: float) -> None:
        """A new charging power limit (kW)."""
        if action is not CommandAction.SET_POWER_LIMIT:
            raise ValueError(f"an EV charger takes set_power_limit, not {action.value}")
        self._advance()
        self.limit_kw = value

    def sample(self) -> dict[str, float]:
        """Power, energy, plug state and what the car still needs."""
        self._advance()
        return {"active_power": self.power_kw, "active_energy_import": self.energy_import_kwh,
                "ev_connected": 1.0 if self.connected else 0.0, "ev_energy_requested": self.energy_needed_kwh}


@dataclass
class SimHvac(_Timed):
    """A chiller holding one 1R1C zone at its setpoint (see the module docstring)."""

    zone: phy.ZoneParams = field(default_factory=lambda: phy.ZoneParams(
        capacitance_kwh_per_k=20.0, resistance_k_per_kw=0.5, cop=3.0, rated_power_kw=60.0, heat_sign=1.0))
    outdoor_c: float = 32.0
    gains_kw: float = 30.0
    baseline_setpoint_c: float = 24.0
    setpoint_c: float = 24.0
    horizon_h: float = 0.25
    indoor_c: float = 24.0
    power_kw: float = field(init=False)
    energy_import_kwh: float = 2000.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.power_kw = self._control()

    def _control(self) -> float:
        target = self.setpoint_c if self.remote else self.baseline_setpoint_c
        return phy.zone_power_kw(self.zone, self.indoor_c, outdoor_c=self.outdoor_c, gains_kw=self.gains_kw,
                                 target_c=target, horizon_h=self.horizon_h)

    def _integrate(self, dt_s: float) -> None:
        n, h = _substeps(dt_s, 10.0)
        for _ in range(n):
            self.power_kw = self._control()
            self.indoor_c = phy.zone_temperature_c(self.zone, self.indoor_c, outdoor_c=self.outdoor_c,
                                                   gains_kw=self.gains_kw, power_kw=self.power_kw,
                                                   hours=h / phy.SECONDS_PER_HOUR)
            self.energy_import_kwh += self.power_kw * h / phy.SECONDS_PER_HOUR
        self.power_kw = self._control()

    def power_now(self) -> float:
        """Electric power now, kW."""
        self._advance()
        return self.power_kw

    def setpoint(self, action: CommandAction) -> float:
        """The zone setpoint in force (degC)."""
        del action
        return self.setpoint_c

    def apply(self, action: CommandAction, value: float) -> None:
        """A new zone setpoint (degC); the controller reacts at once."""
        if action is not CommandAction.SET_TEMPERATURE_SETPOINT:
            raise ValueError(f"an HVAC unit takes set_temperature_setpoint, not {action.value}")
        self._advance()
        self.setpoint_c = value
        self.power_kw = self._control()

    def set_remote(self, remote: bool) -> None:
        """Switch control source; the controller reacts at once."""
        super().set_remote(remote)
        self.power_kw = self._control()

    def sample(self) -> dict[str, float]:
        """Power, energy and the zone temperature."""
        self._advance()
        return {"active_power": self.power_kw, "active_energy_import": self.energy_import_kwh,
                "indoor_temperature": self.indoor_c}


@dataclass
class SimBoundaryMeter(SimMeter):
    """The park's boundary meter: a base load (the :class:`SimMeter` shape) plus every device behind it."""

    loads: list[SetpointDevice] = field(default_factory=list)

    def power_kw(self, at: datetime) -> float:
        """Base load at ``at`` plus the devices' power now."""
        return super().power_kw(at) + sum(load.power_now() for load in self.loads)


__all__ = ["SetpointDevice", "SimBattery", "SimBoundaryMeter", "SimEvCharger", "SimHvac"]
