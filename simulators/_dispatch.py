"""Dispatch of simulated assets: time windows with a battery setpoint, an EV power cap or an HVAC offset.

A window is either *daily* (``start_hour``/``end_hour`` in the park's local time, may wrap past midnight)
or *absolute* (``start``/``end``, timezone-aware: one DR event). A sample interval is dispatched when its
midpoint falls in the window, so a window on the sample grid covers exactly its intervals.

EV caps are honoured exactly (published power never exceeds them); the energy a capped session misses is
carried and charged after the window if the car is still plugged in. Caps on a *group* of chargers are
shared max-min fairly (:func:`share_cap`): no charger gets more than it can take, the rest is split evenly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Self

from pydantic import AwareDatetime, Field, model_validator

from simulators._spec_types import Hour, Id, NonNegative, SpecModel


class TimeWindow(SpecModel):
    """When a dispatch applies: daily local hours, or an absolute span for a single event."""

    start_hour: Hour | None = None
    end_hour: Hour | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_kind_of_time(self) -> Self:
        daily = self.start_hour is not None or self.end_hour is not None
        absolute = self.start is not None or self.end is not None
        if daily == absolute:
            raise ValueError("set either start_hour and end_hour (daily) or start and end (one event)")
        if daily and (self.start_hour is None or self.end_hour is None):
            raise ValueError("a daily window needs both start_hour and end_hour")
        if absolute and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("an event window needs start and end, with end after start")
        return self

    def contains(self, hour: float) -> bool:
        """True when local ``hour`` falls in a daily window (windows may wrap past midnight)."""
        if self.start_hour is None or self.end_hour is None:
            return False
        if self.start_hour <= self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour

    def active(self, mid: datetime, local_hour: float) -> bool:
        """True when an interval with midpoint ``mid`` (aware) and local hour ``local_hour`` is dispatched."""
        if self.start is not None and self.end is not None:
            return self.start <= mid < self.end
        return self.contains(local_hour % 24.0)


class EvCapWindow(TimeWindow):
    """A power cap on one EV charger (kW, 0 = pause charging) while the window lasts."""

    max_power_kw: NonNegative


class EvGroupCapWindow(EvCapWindow):
    """A cap on the *sum* of several chargers' power (``chargers``; none listed = every charger of the park)."""

    chargers: list[Id] | None = None


class HvacOffsetWindow(TimeWindow):
    """A setpoint offset (K) for an HVAC unit: + raises a cooling setpoint (sheds load), - lowers it."""

    setpoint_offset_c: Annotated[float, Field(ge=-10, le=10)]


class HvacGroupOffsetWindow(HvacOffsetWindow):
    """An offset for several HVAC units (``units``; none listed = every HVAC unit of the park)."""

    units: list[Id] | None = None


class ParkDispatchSpec(SpecModel):
    """Park-level dispatch, e.g. a DR event: an aggregate EV charging cap and HVAC setpoint offsets."""

    ev_chargers: list[EvGroupCapWindow] = Field(default_factory=list)
    hvac: list[HvacGroupOffsetWindow] = Field(default_factory=list)

    def device_ids(self) -> Iterable[tuple[str, str]]:
        """``(section, device_id)`` of every device named by a window (for reference checks)."""
        for cap in self.ev_chargers:
            for charger in cap.chargers or ():
                yield "ev_chargers", charger
        for offset in self.hvac:
            for unit in offset.units or ():
                yield "hvac", unit


def cap_kw(windows: Iterable[EvCapWindow], mid: datetime, local_hour: float) -> float | None:
    """The tightest cap among the active windows, or None when no window is active."""
    caps = [w.max_power_kw for w in windows if w.active(mid, local_hour)]
    return min(caps) if caps else None


def setpoint_offset_c(windows: Iterable[HvacOffsetWindow], mid: datetime, local_hour: float) -> float:
    """The offset of the first active window (device windows are passed before park ones), else 0."""
    for window in windows:
        if window.active(mid, local_hour):
            return window.setpoint_offset_c
    return 0.0


def share_cap(demands_kw: Sequence[float], cap_kw: float) -> list[float]:
    """Max-min fair split of ``cap_kw`` among loads that want ``demands_kw``.

    Every load gets ``min(demand, level)`` with one common level, so the shares sum to
    ``min(cap, sum(demands))`` and a load that wants less than an even share leaves the rest to the others.
    """
    shares = [0.0] * len(demands_kw)
    remaining = max(0.0, cap_kw)
    order = sorted(range(len(demands_kw)), key=lambda i: demands_kw[i])
    for k, i in enumerate(order):
        give = min(max(0.0, demands_kw[i]), remaining / (len(order) - k))
        shares[i] = give
        remaining -= give
    return shares
