"""What every simulated device shares: the step context, the model base class and seeded helpers.

Each device draws from its own ``random.Random(f"{seed}/{device_id}")``, so adding a device never changes
another device's numbers.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from simulators import _physics as phy
from simulators._device_specs import DeviceSpec

NOISE_TAU_S: Final = 600.0  # load noise stays correlated for ~10 minutes
HOUR_S: Final = phy.SECONDS_PER_HOUR


@dataclass(slots=True)
class StepContext:
    """What every device needs to know about one sample interval ``(ts - dt, ts]``."""

    ts: datetime            # interval end, UTC
    mid: datetime           # interval midpoint, UTC: where interval means are evaluated
    local_hour: float       # midpoint in the park's local time, hours since local midnight
    is_weekend: bool
    dt_s: float
    outdoor_temperature_c: float = 0.0
    pv_power_kw: float = 0.0  # total PV output of the park in this interval


def initial_register(rng: random.Random, spec: DeviceSpec, metric: str, typical_per_day: float) -> phy.Register:
    """Configured start value, else a deterministic "meter has been running for a while" value."""
    if metric in spec.initial_registers:
        initial = spec.initial_registers[metric]
    else:
        initial = round(typical_per_day * rng.uniform(30, 400), 2)
        if spec.register_max is not None:
            initial = min(initial, spec.register_max * 0.5)
    return phy.Register(initial, spec.register_max)


class DeviceModel(ABC):
    """One simulated device: its metrics (fixed order) and one ``step`` per sample interval."""

    metrics: tuple[str, ...]
    grid_power_kw: float = 0.0  # contribution to the parent meter this interval, + = consumption
    order: ClassVar[int] = 0    # evaluation rank inside a step (meters override by depth)

    def __init__(self, spec: DeviceSpec, seed: int, dt_s: float) -> None:
        self.spec = spec
        self.rng = random.Random(f"{seed}/{spec.id}")
        self.dt_s = dt_s

    @abstractmethod
    def step(self, ctx: StepContext) -> dict[str, float]:
        """Advance one interval and return the value of every metric at its end."""


class ShapedValue:
    """A daily-shaped quantity with a per-device time shift and scale and correlated noise."""

    __slots__ = ("base", "noise", "peak", "scale", "shape", "shift_h", "weekend_factor")

    def __init__(self, rng: random.Random, shape: str, *, base: float, peak: float, weekend_factor: float,
                 noise: float, dt_s: float) -> None:
        self.shape, self.base, self.peak, self.weekend_factor = shape, base, peak, weekend_factor
        self.shift_h = rng.uniform(-0.25, 0.25)
        self.scale = rng.uniform(0.93, 1.07)
        self.noise = phy.SmoothNoise(rng, noise, NOISE_TAU_S, dt_s)

    def fraction(self, ctx: StepContext) -> float:
        """Shape value at the interval midpoint, weekend-adjusted."""
        f = phy.shape_fraction(self.shape, ctx.local_hour + self.shift_h)
        return f * self.weekend_factor if ctx.is_weekend else f

    def value(self, ctx: StepContext, extra: float = 0.0) -> float:
        """``(base + (peak - base) * fraction + extra) * scale * (1 + noise)``, never negative."""
        raw = self.base + (self.peak - self.base) * self.fraction(ctx) + extra
        return max(0.0, raw * self.scale * (1.0 + self.noise.next()))
