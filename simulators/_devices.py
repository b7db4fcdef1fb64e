"""Device models: turn a scenario into per-sample readings, deterministically from a seed.

:class:`ParkModel` steps every device of a scenario through the sample grid in dependency order:
weather first, then PV (the battery may follow it), storage, chargers and HVAC, then meters from the
deepest level up, so each meter sees the interval power of everything below it. Each device draws from its
own ``random.Random(f"{seed}/{device_id}")``, so adding a device never changes another device's numbers,
and dispatch (``_dispatch``) changes only the dispatched devices and the meters above them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from schemas import METRICS
from simulators import _physics as phy
from simulators._device_base import HOUR_S, NOISE_TAU_S, DeviceModel, ShapedValue, StepContext, initial_register
from simulators._device_specs import (
    BatterySpec,
    DeviceSpec,
    ElectricityMeterSpec,
    EvChargerSpec,
    GasMeterSpec,
    HeatMeterSpec,
    HvacSpec,
    ProfileLoad,
    PueOverheadLoad,
    PvInverterSpec,
    WeatherStationSpec,
)
from simulators._dispatch import EvGroupCapWindow, share_cap
from simulators._ev import EvCharger, EvSession
from simulators._hvac import HvacUnit
from simulators._scenario import Scenario, WeatherSpec

_CLOUD_TAU_S: Final = 1800.0


class ElectricityMeter(DeviceModel):
    """A meter measuring its own load plus every device below it, with losses on the total."""

    def __init__(self, spec: ElectricityMeterSpec, seed: int, dt_s: float) -> None:
        super().__init__(spec, seed, dt_s)
        self.meter = spec
        self.children: list[DeviceModel] = []
        self.depth = 0
        self.profile = (ShapedValue(self.rng, spec.load.shape, base=spec.load.base_kw, peak=spec.load.peak_kw,
                                     weekend_factor=spec.load.weekend_factor, noise=spec.load.noise, dt_s=dt_s)
                        if isinstance(spec.load, ProfileLoad) else None)
        self.pue_noise = phy.SmoothNoise(self.rng, 0.004, 3 * NOISE_TAU_S, dt_s)
        typical_kw = spec.rated_power_kw or (spec.load.peak_kw if isinstance(spec.load, ProfileLoad) else 100.0)
        self.import_register = initial_register(self.rng, spec, "active_energy_import", typical_kw * 12)
        self.export_register = (initial_register(self.rng, spec, "active_energy_export", typical_kw)
                                if spec.bidirectional else None)
        self.voltage_noise = [phy.SmoothNoise(self.rng, 0.004, NOISE_TAU_S, dt_s) for _ in range(3)]
        self.pf_noise = phy.SmoothNoise(self.rng, 0.008, NOISE_TAU_S, dt_s)
        k = [1.0 + self.rng.uniform(-0.04, 0.04) for _ in range(3)]
        self.imbalance = (k[0] / (sum(k) / 3), k[1] / (sum(k) / 3), k[2] / (sum(k) / 3))
        self.metrics = ("active_energy_import", *(("active_energy_export",) if spec.bidirectional else ()),
                        "active_power", "voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2",
                        "current_l3", "power_factor")

    def own_load_kw(self, ctx: StepContext, children_kw: float) -> float:
        """Load of the meter's own circuit: a daily profile, a data-centre overhead, or nothing."""
        load = self.meter.load
        if isinstance(load, PueOverheadLoad):
            ratio = phy.pue(ctx.outdoor_temperature_c, load.pue_min, load.pue_max, load.temp_low_c, load.temp_high_c)
            ratio = min(load.pue_max, max(load.pue_min, ratio + self.pue_noise.next()))
            return max(0.0, children_kw) * (ratio - 1.0)
        if self.profile is not None and isinstance(load, ProfileLoad):
            cooling = load.cooling_kw_per_degc * max(0.0, ctx.outdoor_temperature_c - load.cooling_threshold_c)
            return self.profile.value(ctx, extra=cooling * (0.3 + 0.7 * self.profile.fraction(ctx)))
        return 0.0

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Sum children, add own load and losses, integrate into the registers."""
        children_kw = sum(c.grid_power_kw for c in self.children)
        total = self.own_load_kw(ctx, children_kw) + children_kw
        total += self.meter.loss_fraction * abs(total)
        power = round(total, 3)
        self.grid_power_kw = power
        dt_h = ctx.dt_s / HOUR_S
        self.import_register.add(max(power, 0.0) * dt_h)
        values = {"active_energy_import": self.import_register.reading}
        if self.export_register is not None:
            self.export_register.add(max(-power, 0.0) * dt_h)
            values["active_energy_export"] = self.export_register.reading
        rated = self.meter.rated_power_kw
        load_fraction = min(1.0, abs(power) / rated) if rated else 0.5
        nominal = self.meter.nominal_voltage_v
        v1, v2, v3 = (round(nominal * (1.0 + n.next() - 0.02 * load_fraction), 2) for n in self.voltage_noise)
        pf = round(min(0.999, max(0.5, self.meter.power_factor - 0.05 * (1.0 - load_fraction) + self.pf_noise.next())),
                   3)
        i1, i2, i3 = phy.three_phase(power, (v1, v2, v3), pf, self.imbalance)
        values.update(active_power=power, voltage_l1=v1, voltage_l2=v2, voltage_l3=v3, current_l1=round(i1, 3),
                      current_l2=round(i2, 3), current_l3=round(i3, 3), power_factor=pf)
        return values


class PvInverter(DeviceModel):
    """PV output from the sun's position in the park's sky, with autocorrelated cloud cover."""

    metrics = ("generated_energy", "generation_power")
    order = 1

    def __init__(self, spec: PvInverterSpec, seed: int, dt_s: float, *, latitude_deg: float,
                 longitude_deg: float) -> None:
        super().__init__(spec, seed, dt_s)
        self.pv = spec
        self.latitude_deg, self.longitude_deg = latitude_deg, longitude_deg
        self.cloud = phy.SmoothNoise(self.rng, 0.5 * spec.cloudiness + 0.02, _CLOUD_TAU_S, dt_s)
        self.register = initial_register(self.rng, spec, "generated_energy", spec.rated_power_kw * 3.5)

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Generation at the interval midpoint's sun height; exactly zero while the sun is down."""
        cloud_factor = min(1.0, max(0.15, 1.0 - self.pv.cloudiness + self.cloud.next()))
        irradiance = phy.clear_sky_irradiance_w_m2(
            phy.solar_elevation_sine(ctx.mid, self.latitude_deg, self.longitude_deg))
        power = round(phy.pv_power_kw(self.pv.rated_power_kw, irradiance, self.pv.performance_ratio, cloud_factor), 3)
        self.register.add(power * ctx.dt_s / HOUR_S)
        self.grid_power_kw = -power
        return {"generated_energy": self.register.reading, "generation_power": power}


class Battery(DeviceModel):
    """A battery following its dispatch schedule within power, SOC and efficiency limits."""

    metrics = ("state_of_charge", "battery_power", "battery_charge_energy", "battery_discharge_energy")
    order = 2

    def __init__(self, spec: BatterySpec, seed: int, dt_s: float) -> None:
        super().__init__(spec, seed, dt_s)
        self.battery = spec
        self.params = phy.BatteryParams(spec.capacity_kwh, spec.max_charge_kw, spec.max_discharge_kw,
                                        spec.charge_efficiency, spec.discharge_efficiency, spec.soc_min_pct,
                                        spec.soc_max_pct)
        self.stored_kwh = spec.capacity_kwh * spec.initial_soc_pct / 100.0
        self.charge_register = initial_register(self.rng, spec, "battery_charge_energy", spec.capacity_kwh)
        self.discharge_register = initial_register(self.rng, spec, "battery_discharge_energy", spec.capacity_kwh)

    def setpoint_kw(self, ctx: StepContext) -> float:
        """The schedule's setpoint for this interval (first active window wins, else idle)."""
        for window in self.battery.schedule:
            if window.active(ctx.mid, ctx.local_hour):
                if window.follow_pv_fraction is not None:
                    return window.follow_pv_fraction * ctx.pv_power_kw
                return window.power_kw or 0.0
        return 0.0

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Apply the setpoint, update SOC and the charge/discharge registers."""
        power, self.stored_kwh = phy.battery_step(self.params, self.stored_kwh, self.setpoint_kw(ctx), ctx.dt_s)
        dt_h = ctx.dt_s / HOUR_S
        self.charge_register.add(max(power, 0.0) * dt_h)
        self.discharge_register.add(max(-power, 0.0) * dt_h)
        self.grid_power_kw = power
        return {"state_of_charge": self.stored_kwh / self.battery.capacity_kwh * 100.0, "battery_power": power,
                "battery_charge_energy": self.charge_register.reading,
                "battery_discharge_energy": self.discharge_register.reading}


class GasMeter(DeviceModel):
    """Gas flow following a daily shape; the volume register integrates the flow."""

    metrics = ("gas_volume", "gas_flow")
    order = 4

    def __init__(self, spec: GasMeterSpec, seed: int, dt_s: float) -> None:
        super().__init__(spec, seed, dt_s)
        self.flow = ShapedValue(self.rng, spec.shape, base=spec.base_flow_m3_per_h, peak=spec.peak_flow_m3_per_h,
                                 weekend_factor=spec.weekend_factor, noise=0.04, dt_s=dt_s)
        self.register = initial_register(self.rng, spec, "gas_volume", spec.peak_flow_m3_per_h * 8)

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Mean flow over the interval and the advanced volume register."""
        flow_m3_per_h = round(self.flow.value(ctx), 4)
        self.register.add(flow_m3_per_h * ctx.dt_s / HOUR_S)
        return {"gas_volume": self.register.reading, "gas_flow": flow_m3_per_h}


class HeatMeter(DeviceModel):
    """Hot-water loop at constant flow: the temperature drop is proportional to the heat delivered."""

    metrics = ("heat_energy", "heat_power", "supply_temperature", "return_temperature")
    order = 4

    def __init__(self, spec: HeatMeterSpec, seed: int, dt_s: float) -> None:
        super().__init__(spec, seed, dt_s)
        self.heat = spec
        self.power = ShapedValue(self.rng, spec.shape, base=spec.base_power_kw, peak=spec.peak_power_kw,
                                  weekend_factor=spec.weekend_factor, noise=0.04, dt_s=dt_s)
        self.supply_noise = phy.SmoothNoise(self.rng, 0.4, NOISE_TAU_S, dt_s)
        daily_gj = spec.peak_power_kw * 10 * HOUR_S / phy.KJ_PER_GJ
        self.register = initial_register(self.rng, spec, "heat_energy", daily_gj)

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Thermal power, the GJ register (kW x s = kJ) and supply/return temperatures."""
        power_kw = round(self.power.value(ctx), 3)
        self.register.add(power_kw * ctx.dt_s / phy.KJ_PER_GJ)
        supply_c = round(self.heat.supply_temperature_c + self.supply_noise.next(), 2)
        peak = max(self.heat.peak_power_kw, 1e-9)
        return_c = round(supply_c - self.heat.design_delta_t_c * min(1.5, power_kw / peak), 2)
        return {"heat_energy": self.register.reading, "heat_power": power_kw, "supply_temperature": supply_c,
                "return_temperature": return_c}


class WeatherStation(DeviceModel):
    """Reports the park's outdoor temperature."""

    metrics = ("outdoor_temperature",)

    def step(self, ctx: StepContext) -> dict[str, float]:
        """The park weather's temperature for this interval."""
        return {"outdoor_temperature": round(ctx.outdoor_temperature_c, 2)}


class Weather:
    """Park-wide outdoor temperature: seasonal and daily cycle plus slow noise."""

    def __init__(self, spec: WeatherSpec, seed: int, dt_s: float) -> None:
        self.spec = spec
        self.noise = phy.SmoothNoise(random.Random(f"{seed}/weather"), spec.noise_c, 3 * HOUR_S, dt_s)

    def temperature_c(self, local: datetime) -> float:
        """Outdoor temperature at a local time (advances the noise by one sample)."""
        hour = local.hour + local.minute / 60.0 + local.second / HOUR_S
        day = local.timetuple().tm_yday + hour / 24.0
        base = phy.outdoor_temperature_c(day, hour, self.spec.monthly_mean_c, self.spec.daily_amplitude_c,
                                         self.spec.warmest_hour)
        return base + self.noise.next()


_MODELS: Final[dict[type, Callable[[Any, int, float], DeviceModel]]] = {
    ElectricityMeterSpec: ElectricityMeter, BatterySpec: Battery, EvChargerSpec: EvCharger, GasMeterSpec: GasMeter,
    HeatMeterSpec: HeatMeter, WeatherStationSpec: WeatherStation,
}


def build_device(spec: DeviceSpec, seed: int, dt_s: float, scenario: Scenario) -> DeviceModel:
    """The model for one device spec (an HVAC unit also gets the park-level offsets that name it)."""
    if isinstance(spec, PvInverterSpec):
        return PvInverter(spec, seed, dt_s, latitude_deg=scenario.park.latitude_deg,
                          longitude_deg=scenario.park.longitude_deg)
    if isinstance(spec, HvacSpec):
        park_windows = [w for w in scenario.dispatch.hvac if w.units is None or spec.id in w.units]
        return HvacUnit(spec, seed, dt_s, park_windows)
    return _MODELS[type(spec)](spec, seed, dt_s)


Sample = tuple[datetime, dict[str, dict[str, float]]]


class ParkModel:
    """All devices of a scenario, stepped together from ``start`` one sample interval at a time."""

    def __init__(self, scenario: Scenario, *, seed: int, start: datetime, sample_interval_s: int) -> None:
        self.scenario = scenario
        self.tz = ZoneInfo(scenario.park.timezone)
        self.dt = timedelta(seconds=sample_interval_s)
        self.ts = start
        dt_s = float(sample_interval_s)
        self.devices = [build_device(spec, seed, dt_s, scenario) for spec in scenario.all_devices()]
        self.weather = Weather(scenario.weather, seed, dt_s)
        by_id = {d.spec.id: d for d in self.devices}
        for d in self.devices:
            if d.spec.parent is not None:
                parent = by_id[d.spec.parent]
                assert isinstance(parent, ElectricityMeter)
                parent.children.append(d)
        for d in self.devices:
            if isinstance(d, ElectricityMeter):
                node = d.spec
                while node.parent is not None:
                    d.depth += 1
                    node = by_id[node.parent].spec
        max_depth = max((d.depth for d in self.devices if isinstance(d, ElectricityMeter)), default=0)
        self._ordered = sorted(self.devices, key=lambda d: (
            10 + max_depth - d.depth if isinstance(d, ElectricityMeter) else d.order))
        self._pv = [d for d in self.devices if isinstance(d, PvInverter)]
        self._evs = [d for d in self.devices if isinstance(d, EvCharger)]
        self._ev_groups: list[tuple[EvGroupCapWindow, list[EvCharger]]] = [
            (w, [c for c in self._evs if w.chargers is None or c.spec.id in w.chargers])
            for w in scenario.dispatch.ev_chargers]
        for d in self.devices:
            unknown = set(d.metrics) - METRICS.keys()
            assert not unknown, f"{d.spec.id}: metrics {unknown} are not registered"

    def step(self) -> Sample:
        """Advance one interval; return its end timestamp (UTC) and ``{device_id: {metric: value}}``."""
        end = self.ts + self.dt
        mid = self.ts + self.dt / 2
        local = mid.astimezone(self.tz)
        ctx = StepContext(ts=end, mid=mid, local_hour=local.hour + local.minute / 60.0 + local.second / HOUR_S,
                          is_weekend=local.weekday() >= 5, dt_s=self.dt.total_seconds())
        ctx.outdoor_temperature_c = self.weather.temperature_c(local)
        if self._evs:
            self._share_ev_caps(ctx)
        out: dict[str, dict[str, float]] = {}
        pv_done = False
        for device in self._ordered:
            if not pv_done and device.order > PvInverter.order:
                ctx.pv_power_kw = -sum(p.grid_power_kw for p in self._pv)
                pv_done = True
            out[device.spec.id] = device.step(ctx)
        self.ts = end
        return end, out

    def _share_ev_caps(self, ctx: StepContext) -> None:
        """Prepare every charger, then split each active group cap among its chargers' demands."""
        for charger in self._evs:
            charger.prepare(ctx)
        for window, group in self._ev_groups:
            if window.active(ctx.mid, ctx.local_hour):
                shares = share_cap([c.limit_kw for c in group], window.max_power_kw)
                for charger, share in zip(group, shares, strict=True):
                    charger.limit_kw = min(charger.limit_kw, share)

    def ev_sessions(self) -> list[EvSession]:
        """Every EV session that has ended so far, charger by charger in arrival order."""
        return [s for charger in self._evs for s in charger.sessions]

    def run(self, n_samples: int) -> Iterator[Sample]:
        """Yield the next ``n_samples`` steps."""
        for _ in range(n_samples):
            yield self.step()
