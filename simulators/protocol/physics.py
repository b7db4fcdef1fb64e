"""A small, self-contained three-phase meter model with fault injection.

The protocol servers in this package ask a :class:`SimMeter` for its values at the moment a request
arrives. The meter integrates its load into energy registers between requests, so the registers grow
exactly as the power says, and it can be told to misbehave the ways field meters do:

* ``offline``            the meter stops answering (Modbus gateways say exception 0x0B, DL/T 645 is silent)
* ``roll_over_soon()``   the energy register is set just below its maximum and wraps (999999.99 kWh)
* ``replace_meter(v)``   a new meter: the register restarts at ``v``
* ``reset_to_zero()``    the register is cleared (DL/T 645 command 1AH)
* ``stuck``              every value freezes at the last sample
* ``spike(n, factor)``   the next ``n`` samples show power and energy multiplied by ``factor``
* ``clock_skew_s``       the meter's own clock runs ahead (+) or behind (-) the true time
* ``garbage``            replies are corrupted ("checksum": bad CS byte, "noise": random bytes)
* ``duplicate``          each reply is sent twice (a bus echo / gateway retry)
* ``out_of_order``       the reply to the previous request is sent before the current one

Values are *primary* quantities in the metrics' canonical units (kW, kWh, V, A); servers turn them into
secondary register values with the profile's CT/PT scaling, exactly what a real meter shows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    """The real time, UTC."""
    return datetime.now(UTC)


@dataclass
class Faults:
    """Switchable misbehaviour of one simulated meter (see the module docstring)."""

    offline: bool = False
    stuck: bool = False
    garbage: Literal["checksum", "noise"] | None = None
    duplicate: bool = False
    out_of_order: bool = False
    clock_skew_s: float = 0.0
    reply_delay_s: float = 0.0
    spike_samples: int = 0
    spike_factor: float = 1000.0


@dataclass
class SimMeter:
    """One simulated three-phase meter (primary values); thread-unsafe, used from one event loop."""

    base_kw: float = 50.0
    daily_swing: float = 0.3
    noise: float = 0.02
    nominal_voltage_v: float = 230.0
    power_factor: float = 0.95
    energy_import_kwh: float = 1000.0
    energy_export_kwh: float = 0.0
    reactive_energy_kvarh: float = 0.0
    register_max_kwh: float | None = None      # primary-side rollover point (None: never wraps)
    register_resolution_kwh: float = 0.01
    seed: int = 1
    clock: Clock = wall_clock
    faults: Faults = field(default_factory=Faults)
    samples: int = 0
    rollovers: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _last_at: datetime | None = field(default=None, init=False, repr=False)
    _last_values: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- events ------------------------------------------------------------------------------------------

    def roll_over_soon(self, margin_kwh: float = 0.5) -> None:
        """Set the import register ``margin_kwh`` below its maximum so it wraps within a few samples."""
        if self.register_max_kwh is None:
            raise ValueError("this meter's register does not wrap (float registers)")
        self._advance()
        self.energy_import_kwh = self.register_max_kwh - margin_kwh

    def replace_meter(self, new_start_kwh: float) -> None:
        """Swap the meter: the import register restarts at ``new_start_kwh``."""
        self._advance()
        self.energy_import_kwh = new_start_kwh

    def reset_to_zero(self) -> None:
        """Clear the energy registers (a meter clear command or a firmware reset)."""
        self._advance()
        self.energy_import_kwh = 0.0
        self.energy_export_kwh = 0.0
        self.reactive_energy_kvarh = 0.0

    def spike(self, samples: int = 1, factor: float = 1000.0) -> None:
        """Make the next ``samples`` samples show power and energy multiplied by ``factor``."""
        self.faults.spike_samples = samples
        self.faults.spike_factor = factor

    def meter_time(self) -> datetime:
        """The meter's own clock (true time plus the injected skew)."""
        return self.clock() + timedelta(seconds=self.faults.clock_skew_s)

    # -- physics -----------------------------------------------------------------------------------------

    def power_kw(self, at: datetime) -> float:
        """Active power at ``at``: a daily sine around ``base_kw`` (peak mid-afternoon) plus noise."""
        hour = at.hour + at.minute / 60 + at.second / 3600
        shape = 1.0 + self.daily_swing * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
        return self.base_kw * shape * (1.0 + self.noise * self._rng.gauss(0.0, 1.0))

    def _advance(self) -> float:
        """Integrate energy up to now; returns the power used for the step."""
        now = self.clock()
        power = self.power_kw(now)
        if self._last_at is not None:
            hours = max(0.0, (now - self._last_at).total_seconds() / 3600.0)
            if power >= 0:
                self.energy_import_kwh += power * hours
            else:
                self.energy_export_kwh += -power * hours
            tan_phi = math.tan(math.acos(max(0.05, min(1.0, self.power_factor))))
            self.reactive_energy_kvarh += abs(power) * tan_phi * hours
            if self.register_max_kwh is not None:
                span = self.register_max_kwh + self.register_resolution_kwh
                while self.energy_import_kwh >= span:
                    self.energy_import_kwh -= span
                    self.rollovers += 1
        self._last_at = now
        return power

    def sample(self) -> dict[str, float]:
        """All values (metric -> primary value in the canonical unit) as the meter shows them now."""
        if self.faults.stuck and self._last_values:
            return dict(self._last_values)
        power = self._advance()
        rng = self._rng
        pf = max(0.05, min(1.0, self.power_factor + 0.01 * rng.gauss(0.0, 1.0)))
        voltages = [self.nominal_voltage_v * (1.0 + 0.005 * rng.gauss(0.0, 1.0)) for _ in range(3)]
        currents = [abs(power) * 1000.0 / (3.0 * v * pf) for v in voltages]
        energy = round(self.energy_import_kwh, 6)
        if self.faults.spike_samples > 0:
            self.faults.spike_samples -= 1
            power *= self.faults.spike_factor
            energy *= self.faults.spike_factor
        values = {
            "active_power": power,
            "reactive_power": abs(power) * math.tan(math.acos(pf)),
            "voltage_l1": voltages[0], "voltage_l2": voltages[1], "voltage_l3": voltages[2],
            "current_l1": currents[0], "current_l2": currents[1], "current_l3": currents[2],
            "power_factor": pf,
            "frequency": 50.0 + 0.02 * rng.gauss(0.0, 1.0),
            "active_energy_import": energy,
            "active_energy_export": self.energy_export_kwh,
            "reactive_energy_import": self.reactive_energy_kvarh,
        }
        self.samples += 1
        self._last_values = values
        return dict(values)


__all__ = ["Clock", "Faults", "SimMeter", "wall_clock"]
