"""What the dispatch planner takes and gives: intervals with targets, per-asset linear envelopes, the plan.

Powers follow the metering convention (+ = drawn from the park bus). An asset's *response* in an interval is
its change against its own no-event baseline in the event's direction: ``baseline − power`` for a load
reduction (``up``), ``power − baseline`` for a load increase (``down``). Every envelope carries the asset's
baseline power per interval, so the plan can say what each setpoint is worth.

Envelopes are built from flex's asset models (:mod:`flex._plan_assets`); the planner (:mod:`flex._plan`), the
greedy fallback (:mod:`flex._plan_greedy`) and the independent checker (:mod:`flex._plan_check`) all read the
same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flex._direction import Direction
from flex.errors import PlanError


@dataclass(frozen=True, slots=True)
class PlanInterval:
    """One event interval and the response (kW, ≥ 0) the park aims to deliver in it."""

    start: datetime
    end: datetime
    target_kw: float

    @property
    def duration_h(self) -> float:
        """Length in hours."""
        return (self.end - self.start).total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class _Envelope:
    asset_id: str
    device_id: str | None
    baseline_kw: tuple[float, ...]
    cost_per_kwh: float
    #: an operator's cap on |power − baseline| (kW); 0 excludes the asset from dispatch. None = no cap.
    max_change_kw: float | None


@dataclass(frozen=True, slots=True)
class BatteryEnvelope(_Envelope):
    """A battery: power in [−discharge_max, charge_max], stored energy kept in [energy_min, energy_max].

    ``energy_min_kwh`` already includes the safety SoC floor. When the battery starts outside its band the
    band is widened to include the start, so holding still is always allowed.
    """

    charge_max_kw: float
    discharge_max_kw: float
    charge_efficiency: float
    discharge_efficiency: float
    energy_kwh: float
    energy_min_kwh: float
    energy_max_kwh: float
    kind: Literal["battery"] = "battery"


@dataclass(frozen=True, slots=True)
class EvSessionEnvelope:
    """One charging session: the most it can draw per interval and the energy it must still get by a deadline.

    ``required_kwh`` must be delivered (to the battery, after efficiency) by the end of interval
    ``deadline_index`` — the departure, or the plan's end when the car leaves later (then only the part that
    cannot be delivered after the plan). ``headroom_kwh`` is the most the car takes in total.
    """

    session_id: str
    max_kw: tuple[float, ...]
    required_kwh: float
    deadline_index: int
    headroom_kwh: float
    baseline_kw: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class EvEnvelope(_Envelope):
    """An EV charger: the sum of its sessions' powers; commanded as a power limit."""

    charging_efficiency: float
    sessions: tuple[EvSessionEnvelope, ...]
    kind: Literal["ev_charger"] = "ev_charger"


@dataclass(frozen=True, slots=True)
class ThermalEnvelope(_Envelope):
    """HVAC: power in [power_min, power_max]; the zone drifts by ``mode_sign·(baseline − power)/kwh_per_degc``
    °C per hour and must stay in [temp_min_c, temp_max_c] (the comfort band, widened to include the start).

    ``kwh_per_degc`` = C / COP: the electric energy whose heat moves the zone by 1 °C (the thermal model's
    kW·h/°C). ``mode_sign`` is +1 for cooling (shedding warms the zone), −1 for heating.
    """

    power_min_kw: float
    power_max_kw: float
    temp_c: float
    temp_min_c: float
    temp_max_c: float
    kwh_per_degc: float
    mode_sign: int
    kind: Literal["hvac"] = "hvac"


@dataclass(frozen=True, slots=True)
class ProcessEnvelope(_Envelope):
    """A process load under contract: per interval it may drop by ``curtail_kw`` or rise by ``increase_kw``."""

    curtail_kw: tuple[float, ...]
    increase_kw: tuple[float, ...]
    kind: Literal["process"] = "process"


Envelope = BatteryEnvelope | EvEnvelope | ThermalEnvelope | ProcessEnvelope


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """Everything one plan depends on. ``park_baseline_kw`` (net park load without the event, per interval)
    is needed to honour the connection limits; without it they cannot be checked (the plan says so)."""

    intervals: tuple[PlanInterval, ...]
    assets: tuple[Envelope, ...]
    direction: Direction = Direction.UP
    park_baseline_kw: tuple[float, ...] | None = None
    import_max_kw: float | None = None
    export_max_kw: float | None = None

    def __post_init__(self) -> None:
        n = len(self.intervals)
        if n == 0:
            raise PlanError("a plan needs at least one interval")
        for i, iv in enumerate(self.intervals):
            if iv.end <= iv.start or iv.target_kw < 0 or iv.target_kw != iv.target_kw:
                raise PlanError(f"interval {i}: end must follow start and the target must be a number ≥ 0")
        if self.park_baseline_kw is not None and len(self.park_baseline_kw) != n:
            raise PlanError(f"park_baseline_kw has {len(self.park_baseline_kw)} values for {n} intervals")
        for a in self.assets:
            if len(a.baseline_kw) != n:
                raise PlanError(f"asset {a.asset_id}: {len(a.baseline_kw)} baseline values for {n} intervals")

    @property
    def sign(self) -> float:
        """+1 when the response is a load reduction, −1 for a load increase."""
        return 1.0 if self.direction == Direction.UP else -1.0

    def net_limits(self, t: int) -> tuple[float, float]:
        """(lowest, highest) park net load allowed in interval ``t``: the connection limits, widened to the
        baseline where the baseline itself is outside them (dispatch may not make a violation worse)."""
        base = self.park_baseline_kw[t] if self.park_baseline_kw is not None else 0.0
        low = -self.export_max_kw if self.export_max_kw is not None else -float("inf")
        high = self.import_max_kw if self.import_max_kw is not None else float("inf")
        return min(low, base), max(high, base)


@dataclass(frozen=True, slots=True)
class AssetSchedule:
    """The planned power of one asset per interval, and for HVAC the zone temperature at each interval's end."""

    asset_id: str
    kind: str
    device_id: str | None
    power_kw: tuple[float, ...]
    baseline_kw: tuple[float, ...]
    temp_c: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A dispatch plan: per-asset schedules, the response per interval and what is missing to the target."""

    method: Literal["lp", "greedy"]
    direction: Direction
    intervals: tuple[PlanInterval, ...]
    schedules: tuple[AssetSchedule, ...]
    response_kw: tuple[float, ...]
    shortfall_kw: tuple[float, ...]
    warnings: tuple[str, ...] = ()

    @property
    def direction_sign(self) -> float:
        """+1 when the response is a load reduction, −1 for a load increase."""
        return 1.0 if self.direction == Direction.UP else -1.0

    @property
    def shortfall_kwh(self) -> float:
        """Energy missing to the targets over the whole plan."""
        return sum(s * iv.duration_h for s, iv in zip(self.shortfall_kw, self.intervals, strict=True))

    @property
    def delivered_kwh(self) -> float:
        """Planned response energy counted up to each interval's target (what settlement pays for)."""
        return sum(min(r, iv.target_kw) * iv.duration_h
                   for r, iv in zip(self.response_kw, self.intervals, strict=True))

    @property
    def committed_kw(self) -> float:
        """The response the plan can hold in every interval with a target (its smallest such response)."""
        held = [min(r, iv.target_kw) for r, iv in zip(self.response_kw, self.intervals, strict=True)
                if iv.target_kw > 0]
        return max(0.0, min(held)) if held else 0.0
