"""A simulated HVAC unit: a chiller or heat pump holding a 1R1C zone at its setpoint, with its own sub-meter.

The unit publishes ``indoor_temperature`` and, as a level-3 sub-meter, ``active_power`` and
``active_energy_import``; its power also counts in its parent meter. A dispatch window offsets the
setpoint (clamped to the comfort band while the building is occupied): with +2 K on a cooling unit the
controller stops until the zone has drifted up, then holds the warmer zone at a lower power; when the
window ends it runs up to its rating to pull the zone back down, the physical rebound.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulators import _physics as phy
from simulators._device_base import HOUR_S, DeviceModel, ShapedValue, StepContext, initial_register
from simulators._device_specs import HvacSpec
from simulators._dispatch import HvacOffsetWindow, setpoint_offset_c


class HvacUnit(DeviceModel):
    """A building chiller or heat pump: receding-horizon setpoint control of an exact 1R1C zone."""

    metrics = ("active_energy_import", "active_power", "indoor_temperature")
    order = 3

    def __init__(self, spec: HvacSpec, seed: int, dt_s: float,
                 park_windows: Sequence[HvacOffsetWindow] = ()) -> None:
        super().__init__(spec, seed, dt_s)
        self.hvac = spec
        self.zone = phy.ZoneParams(spec.thermal_capacitance_kwh_per_k, spec.thermal_resistance_k_per_kw, spec.cop,
                                   spec.rated_power_kw, 1.0 if spec.mode == "cooling" else -1.0)
        g = spec.gains
        self.gains = ShapedValue(self.rng, g.shape, base=g.base_kw, peak=g.peak_kw, weekend_factor=g.weekend_factor,
                                 noise=g.noise, dt_s=dt_s)
        self.windows = (*spec.dispatch, *park_windows)  # the device's own windows take precedence
        self.indoor_c = spec.initial_indoor_c
        self.register = initial_register(self.rng, spec, "active_energy_import", spec.rated_power_kw * 10)

    def occupied(self, ctx: StepContext) -> bool:
        """True inside the daily occupied hours (weekends only if the building is used then)."""
        if ctx.is_weekend and not self.hvac.occupied_on_weekends:
            return False
        start, end = self.hvac.occupied_hours
        hour = ctx.local_hour % 24.0
        return start <= hour < end if start <= end else (hour >= start or hour < end)

    def target_c(self, ctx: StepContext) -> float:
        """The setpoint in force: occupied or set-back, plus any dispatch offset (comfort-clamped if occupied)."""
        offset = setpoint_offset_c(self.windows, ctx.mid, ctx.local_hour)
        spec = self.hvac
        if spec.unoccupied_setpoint_c is not None and not self.occupied(ctx):
            return spec.unoccupied_setpoint_c + offset
        return min(spec.comfort_max_c, max(spec.comfort_min_c, spec.setpoint_c + offset))

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Choose the power for this interval, integrate the zone exactly over it, count the energy."""
        target = self.target_c(ctx)
        indoor = target if self.indoor_c is None else self.indoor_c
        gains_kw = self.gains.value(ctx)
        horizon_h = max(self.hvac.control_horizon_min * 60.0, ctx.dt_s) / HOUR_S
        outdoor_c = ctx.outdoor_temperature_c
        power = phy.truncate(phy.zone_power_kw(self.zone, indoor, outdoor_c=outdoor_c, gains_kw=gains_kw,
                                               target_c=target, horizon_h=horizon_h), 3)
        dt_h = ctx.dt_s / HOUR_S
        self.indoor_c = phy.zone_temperature_c(self.zone, indoor, outdoor_c=outdoor_c, gains_kw=gains_kw,
                                               power_kw=power, hours=dt_h)
        self.register.add(power * dt_h)
        self.grid_power_kw = power
        return {"active_energy_import": self.register.reading, "active_power": power,
                "indoor_temperature": round(self.indoor_c, 3)}
