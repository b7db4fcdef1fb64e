"""Pure physics of the simulated park: daily shapes, weather, sun, PV, PUE, battery and registers.

Nothing here does I/O or reads a clock; randomness comes only from the ``random.Random`` a caller passes
in, so one seed always gives the same numbers. Power values are *interval means* (kW over the sample
interval); cumulative registers add exactly ``mean power x interval`` so a register difference always
equals the integral of the published power.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Final, Literal

SECONDS_PER_HOUR: Final = 3600.0
KJ_PER_GJ: Final = 1_000_000.0

ShapeName = Literal["office", "workshop", "data_centre_it", "flat", "constant", "canteen", "ev_arrivals"]

#: Daily shapes in local hours: (hour, fraction of the variable load) knots, interpolated linearly.
_SHAPES: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    # office: night base, morning ramp, lunch dip, evening decline
    "office": ((0, 0.0), (6.5, 0.0), (8.0, 0.6), (9.0, 1.0), (11.75, 1.0), (12.25, 0.7), (13.5, 0.95),
               (17.5, 0.9), (19.0, 0.35), (21.0, 0.1), (24, 0.0)),
    # workshop: two shifts 08-20 with a lunch and a shift-change dip, night maintenance load
    "workshop": ((0, 0.1), (6.5, 0.1), (7.5, 0.75), (8.0, 1.0), (11.75, 1.0), (12.0, 0.7), (13.0, 1.0),
                 (17.0, 1.0), (17.5, 0.8), (18.0, 0.9), (20.0, 0.8), (21.5, 0.2), (24, 0.1)),
    # data-centre IT load: nearly flat, a little higher during office hours
    "data_centre_it": ((0, 0.6), (8.0, 0.6), (10.0, 1.0), (17.0, 1.0), (22.0, 0.7), (24, 0.6)),
    "flat": ((0, 0.5), (24, 0.5)),
    "constant": ((0, 1.0), (24, 1.0)),
    # canteen kitchen: breakfast, lunch and dinner peaks
    "canteen": ((0, 0.0), (6.0, 0.1), (7.0, 0.6), (8.5, 0.3), (10.0, 0.5), (11.0, 1.0), (12.5, 0.9),
                (13.5, 0.2), (16.5, 0.6), (17.5, 1.0), (18.5, 0.4), (20.0, 0.05), (24, 0.0)),
    # EV session arrivals: commuters in the morning, fleet and residents in the evening
    "ev_arrivals": ((0, 0.05), (6.0, 0.1), (7.5, 1.0), (9.5, 1.0), (11.0, 0.3), (13.0, 0.4), (16.0, 0.3),
                    (17.5, 0.9), (20.0, 0.9), (22.0, 0.2), (24, 0.05)),
}
_SHAPE_HOURS: Final = {name: [h for h, _ in knots] for name, knots in _SHAPES.items()}


def shape_fraction(shape: str, hour: float) -> float:
    """Value of a daily shape at local ``hour`` (wrapped to [0, 24)), in [0, 1]."""
    knots, hours = _SHAPES[shape], _SHAPE_HOURS[shape]
    h = hour % 24.0
    i = bisect_right(hours, h)
    if i >= len(knots):
        return knots[-1][1]
    (h0, v0), (h1, v1) = knots[i - 1], knots[i]
    return v0 + (v1 - v0) * (h - h0) / (h1 - h0)


def shape_daily_mean(shape: str) -> float:
    """Mean of a shape over one day (exact integral of the piecewise-linear curve / 24 h)."""
    knots = _SHAPES[shape]
    area = sum((h1 - h0) * (v0 + v1) / 2 for (h0, v0), (h1, v1) in pairwise(knots))
    return area / 24.0


class SmoothNoise:
    """Zero-mean AR(1) Gaussian noise with standard deviation ``sigma`` and correlation time ``tau_s``.

    The correlation is defined in seconds, so a 10 s and a 60 s sample grid give noise of the same look.
    """

    __slots__ = ("_gauss", "_innovation", "_phi", "value")

    def __init__(self, rng: random.Random, sigma: float, tau_s: float, dt_s: float) -> None:
        self._phi = math.exp(-dt_s / tau_s) if tau_s > 0 else 0.0
        self._innovation = sigma * math.sqrt(1.0 - self._phi**2)
        self._gauss = rng.gauss
        self.value = self._gauss(0.0, sigma) if sigma > 0 else 0.0

    def next(self) -> float:
        """Advance one sample and return the new value."""
        self.value = self._phi * self.value + self._gauss(0.0, self._innovation) if self._innovation else 0.0
        return self.value


def outdoor_temperature_c(day_of_year: float, local_hour: float, monthly_mean_c: list[float],
                          daily_amplitude_c: float, warmest_hour: float) -> float:
    """Noise-free outdoor temperature: seasonal mean (monthly means, interpolated) plus a daily cosine."""
    month_pos = (day_of_year - 15.0) / (365.25 / 12.0)  # 0 at mid-January
    i = math.floor(month_pos)
    frac = month_pos - i
    mean = monthly_mean_c[i % 12] * (1 - frac) + monthly_mean_c[(i + 1) % 12] * frac
    return mean + daily_amplitude_c * math.cos(2 * math.pi * (local_hour - warmest_hour) / 24.0)


def solar_elevation_sine(ts: datetime, latitude_deg: float, longitude_deg: float) -> float:
    """Sine of the sun's elevation at ``ts`` (aware) for a site; negative at night.

    Uses the usual declination / equation-of-time approximations (error well under 1 degree), which is
    plenty for a simulator: sunrise, solar noon and seasonal height come out right in the park's local time.
    """
    utc = ts.astimezone(UTC)
    n = utc.timetuple().tm_yday
    b = 2 * math.pi * (n - 81) / 364.0
    equation_of_time_min = 9.87 * math.sin(2 * b) - 7.53 * math.cos(b) - 1.5 * math.sin(b)
    utc_hour = utc.hour + utc.minute / 60.0 + utc.second / 3600.0
    solar_hour = utc_hour + longitude_deg / 15.0 + equation_of_time_min / 60.0
    hour_angle = math.radians(15.0 * (solar_hour - 12.0))
    declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + n) / 365.0)
    lat = math.radians(latitude_deg)
    return math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)


def clear_sky_irradiance_w_m2(elevation_sine: float) -> float:
    """Global horizontal irradiance under a clear sky (Meinel air-mass model plus 10% diffuse); 0 at night."""
    if elevation_sine <= 0.0:
        return 0.0
    air_mass = min(1.0 / elevation_sine, 38.0)
    return 1.1 * 1353.0 * math.pow(0.7, math.pow(air_mass, 0.678)) * elevation_sine


def pv_power_kw(rated_kw: float, irradiance_w_m2: float, performance_ratio: float, cloud_factor: float) -> float:
    """AC output of a PV system: rated power scaled by irradiance, losses and clouds, clipped at rating."""
    if irradiance_w_m2 <= 0.0:
        return 0.0
    return min(rated_kw, rated_kw * irradiance_w_m2 / 1000.0 * performance_ratio * max(cloud_factor, 0.0))


def pue(outdoor_c: float, pue_min: float, pue_max: float, temp_low_c: float, temp_high_c: float) -> float:
    """Instantaneous PUE of an air/chiller-cooled data centre: rises linearly with outdoor temperature."""
    x = (outdoor_c - temp_low_c) / (temp_high_c - temp_low_c)
    return pue_min + (pue_max - pue_min) * min(1.0, max(0.0, x))


def truncate(value: float, decimals: int) -> float:
    """Round toward zero, so a rounded power never exceeds a physical limit computed before rounding."""
    scale = 10.0**decimals
    return math.trunc(value * scale) / scale


class Register:
    """A cumulative register (kWh, m3, GJ) that only moves forward and wraps after ``register_max``.

    ``register_max`` is the largest value the register can show (DL/T 645 XXXXXX.XX kWh: 999999.99); one
    ``resolution`` step later it shows 0 again, as a real meter does (domain.md §7.4). ``total`` is the
    unwrapped amount counted since the start; ``reading`` is ``total mod (register_max + resolution)``, or
    ``total`` when there is no maximum.
    """

    __slots__ = ("modulus", "register_max", "total")

    def __init__(self, initial: float, register_max: float | None, resolution: float = 0.01) -> None:
        if initial < 0:
            raise ValueError(f"register cannot start negative ({initial})")
        if register_max is not None and initial > register_max:
            raise ValueError(f"initial register {initial} must not exceed register_max {register_max}")
        self.total = float(initial)
        self.register_max = register_max
        self.modulus = register_max + resolution if register_max is not None else None

    def add(self, amount: float) -> None:
        """Count ``amount`` (>= 0) more units."""
        if amount < 0:
            raise ValueError(f"a register cannot count backwards ({amount})")
        self.total += amount

    @property
    def reading(self) -> float:
        """The displayed register value."""
        return self.total % self.modulus if self.modulus else self.total


@dataclass(frozen=True, slots=True)
class BatteryParams:
    """Battery energy and power limits; efficiencies apply on the way in and on the way out."""

    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    charge_efficiency: float
    discharge_efficiency: float
    soc_min_pct: float
    soc_max_pct: float


def battery_step(params: BatteryParams, stored_kwh: float, setpoint_kw: float, dt_s: float) -> tuple[float, float]:
    """Apply a power setpoint (+ = charging) for ``dt_s`` seconds within power and SOC limits.

    Returns ``(power_kw, stored_kwh_after)``. The power is truncated to 1 W toward zero *before* the
    energy update, so the stored energy is exactly consistent with the published power and never leaves
    ``[soc_min, soc_max]``: ``stored += P * eta_ch * dt`` when charging, ``stored -= |P| / eta_dis * dt``
    when discharging.
    """
    dt_h = dt_s / SECONDS_PER_HOUR
    e_min = params.capacity_kwh * params.soc_min_pct / 100.0
    e_max = params.capacity_kwh * params.soc_max_pct / 100.0
    if setpoint_kw > 0:
        headroom_kw = max(0.0, (e_max - stored_kwh) / (params.charge_efficiency * dt_h))
        power = truncate(min(setpoint_kw, params.max_charge_kw, headroom_kw), 3)
        return power, min(e_max, stored_kwh + power * params.charge_efficiency * dt_h)
    if setpoint_kw < 0:
        available_kw = max(0.0, (stored_kwh - e_min) * params.discharge_efficiency / dt_h)
        power = truncate(min(-setpoint_kw, params.max_discharge_kw, available_kw), 3)
        return -power, max(e_min, stored_kwh - power / params.discharge_efficiency * dt_h)
    return 0.0, stored_kwh


def three_phase(power_kw: float, voltages_v: tuple[float, float, float], power_factor: float,
                imbalance: tuple[float, float, float]) -> tuple[float, float, float]:
    """Phase currents (A) for a total active power, phase voltages and power factor.

    ``imbalance`` weights the phases; the currents satisfy ``sum(V_i * I_i) * pf == |P|`` exactly.
    """
    weighted = sum(v * k for v, k in zip(voltages_v, imbalance, strict=True))
    base = abs(power_kw) * 1000.0 / (power_factor * weighted) if weighted > 0 else 0.0
    return (base * imbalance[0], base * imbalance[1], base * imbalance[2])


def arrival_probability(rate_per_hour: float, dt_s: float) -> float:
    """Probability of at least one Poisson arrival in ``dt_s`` seconds at ``rate_per_hour``."""
    return 1.0 - math.exp(-rate_per_hour * dt_s / SECONDS_PER_HOUR)


@dataclass(frozen=True, slots=True)
class ZoneParams:
    """A thermal zone as one capacitance and one resistance (1R1C) served by a heat pump or chiller.

    ``heat_sign`` is +1 when the unit removes heat (cooling) and -1 when it adds heat (heating).
    """

    capacitance_kwh_per_k: float
    resistance_k_per_kw: float
    cop: float
    rated_power_kw: float
    heat_sign: float

    @property
    def time_constant_h(self) -> float:
        """R x C: how fast the zone drifts towards its free-running temperature."""
        return self.resistance_k_per_kw * self.capacitance_kwh_per_k


def zone_temperature_c(zone: ZoneParams, indoor_c: float, *, outdoor_c: float, gains_kw: float, power_kw: float,
                       hours: float) -> float:
    """Indoor temperature after ``hours`` at constant inputs: the exact solution of the 1R1C equation.

    ``C dT/dt = (T_out - T) / R + Q_gains - sign x COP x P`` relaxes exponentially (time constant R x C)
    towards ``T_inf = T_out + R (Q_gains - sign x COP x P)``; exact, so any sample interval gives the same
    trajectory at the shared instants.
    """
    t_inf = outdoor_c + zone.resistance_k_per_kw * (gains_kw - zone.heat_sign * zone.cop * power_kw)
    return t_inf + (indoor_c - t_inf) * math.exp(-hours / zone.time_constant_h)


def zone_power_kw(zone: ZoneParams, indoor_c: float, *, outdoor_c: float, gains_kw: float, target_c: float,
                  horizon_h: float) -> float:
    """Electric power that brings the zone to ``target_c`` in ``horizon_h`` hours, within ``[0, rated]``.

    A receding-horizon controller (re-evaluated every sample): at the target it returns the steady-state
    power that balances envelope and internal gains; after a setpoint rise it returns 0 until the zone has
    drifted up, after a setpoint drop it runs flat out (the rebound) until the zone is back.
    """
    decay = math.exp(-horizon_h / zone.time_constant_h)
    t_inf = (target_c - indoor_c * decay) / (1.0 - decay)
    power = zone.heat_sign * (outdoor_c + zone.resistance_k_per_kw * gains_kw - t_inf) / (
        zone.resistance_k_per_kw * zone.cop)
    return min(zone.rated_power_kw, max(0.0, power))


def ramp_toward(current: float, target: float, rate_per_s: float, dt_s: float) -> float:
    """``current`` moved toward ``target`` by at most ``rate_per_s x dt_s`` (a ramp-rate limit); exact on arrival."""
    step = max(0.0, rate_per_s) * max(0.0, dt_s)
    if abs(target - current) <= step:
        return target
    return current + step if target > current else current - step
