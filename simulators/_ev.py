"""Simulated EV charging points: Poisson sessions with a departure time, honouring dispatch caps.

Every sample draws the same four random numbers whatever happens (arrival, session energy, stay, power
acceptance), so a dispatched run and an undispatched run of the same seed see the same arrival stream:
the difference between them is the dispatch and its consequences, not a reshuffled future. A car that
arrives while the point is occupied goes elsewhere.

A session is stepped in two phases so the park can share a group cap among chargers:
:meth:`EvCharger.prepare` (departure, arrival, the power the car would take under the charger's own caps)
then :meth:`EvCharger.step` (charge at ``min(demand, limit_kw)``, truncated to 1 W so caps hold exactly).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from simulators import _physics as phy
from simulators._device_base import HOUR_S, DeviceModel, StepContext, initial_register
from simulators._device_specs import EvChargerSpec
from simulators._dispatch import cap_kw

logger = logging.getLogger(__name__)

FULL_BELOW_KWH = 1e-3  # below the display resolution of ev_energy_requested: the EV counts as full


@dataclass(frozen=True, slots=True)
class EvSession:
    """One finished charging session; ``unmet_kwh`` is what the car left without (e.g. after a cap)."""

    charger_id: str
    arrived_at: datetime    # start of the interval the car arrived in (UTC)
    departed_at: datetime   # start of the interval it left in (UTC)
    requested_kwh: float
    delivered_kwh: float
    unmet_kwh: float


class EvCharger(DeviceModel):
    """An EV charging point: Poisson arrivals shaped by time of day, charge to the request, leave on time.

    ``ev_energy_requested`` is counted at the charger's meter: delivered energy plus the energy still
    requested always equals the request made on arrival, and the import register integrates exactly the
    published power.
    """

    metrics = ("active_energy_import", "active_power", "ev_connected", "ev_energy_requested")
    order = 3
    _ARRIVAL_MEAN: ClassVar[float] = phy.shape_daily_mean("ev_arrivals")

    def __init__(self, spec: EvChargerSpec, seed: int, dt_s: float) -> None:
        super().__init__(spec, seed, dt_s)
        self.ev = spec
        self.connected = False
        self.requested_kwh = 0.0       # still to deliver in the current session
        self.stay_left_s = 0.0         # until the car leaves
        self.session_requested_kwh = 0.0
        self.session_delivered_kwh = 0.0
        self.arrived_at: datetime | None = None
        self.sessions: list[EvSession] = []
        self.demand_kw = 0.0           # what the car would take this interval under the charger's own caps
        self.limit_kw = math.inf       # a park-level cap's share (set between prepare and step)
        self._prepared_for: datetime | None = None
        self.register = initial_register(self.rng, spec, "active_energy_import", spec.rated_power_kw * 4)

    def prepare(self, ctx: StepContext) -> float:
        """Departure, arrival and the power the car would take this interval; returns that demand (kW)."""
        rng = self.rng
        u_arrival, u_energy, u_stay, u_accept = rng.random(), rng.random(), rng.random(), rng.random()
        interval_start = ctx.ts - timedelta(seconds=ctx.dt_s)
        left = False
        if self.connected and self.stay_left_s <= 0:
            self._depart(interval_start)
            left = True  # the bay is being vacated: no new car in the same interval
        if not self.connected and not left:
            rate = self.ev.sessions_per_day * phy.shape_fraction("ev_arrivals", ctx.local_hour) / (
                24.0 * self._ARRIVAL_MEAN)
            if ctx.is_weekend:
                rate *= self.ev.weekend_factor
            if u_arrival < phy.arrival_probability(rate, ctx.dt_s):
                self._arrive(interval_start, u_energy, u_stay, ctx.dt_s)
        demand = 0.0
        if self.connected and self.requested_kwh > 0:
            low, high = self.ev.power_acceptance
            demand = min(self.ev.rated_power_kw * (low + (high - low) * u_accept),
                         self.requested_kwh * HOUR_S / ctx.dt_s)
            cap = cap_kw(self.ev.dispatch, ctx.mid, ctx.local_hour)
            if cap is not None:
                demand = min(demand, cap)
        self.demand_kw = self.limit_kw = demand
        self._prepared_for = ctx.ts
        return demand

    def _arrive(self, at: datetime, u_energy: float, u_stay: float, dt_s: float) -> None:
        low, high = sorted(self.ev.session_energy_kwh)
        self.connected = True
        self.arrived_at = at
        self.requested_kwh = self.session_requested_kwh = round(low + (high - low) * u_energy, 3)
        self.session_delivered_kwh = 0.0
        slowest_kw = self.ev.rated_power_kw * self.ev.power_acceptance[0]
        self.stay_left_s = (self.requested_kwh / slowest_kw * HOUR_S + dt_s
                            + u_stay * self.ev.max_dwell_after_full_min * 60.0)

    def _depart(self, at: datetime) -> None:
        assert self.arrived_at is not None
        session = EvSession(self.spec.id, self.arrived_at, at, self.session_requested_kwh,
                            self.session_delivered_kwh, self.requested_kwh)
        self.sessions.append(session)
        if session.unmet_kwh > 0:
            logger.debug("EV left %s at %s with %.3f kWh of %.3f kWh unmet", self.spec.id, at.isoformat(),
                         session.unmet_kwh, session.requested_kwh)
        self.connected = False
        self.requested_kwh = 0.0
        self.arrived_at = None

    def step(self, ctx: StepContext) -> dict[str, float]:
        """Charge at the prepared demand within ``limit_kw``, count the energy, count down the stay."""
        if self._prepared_for != ctx.ts:
            self.prepare(ctx)
        power = phy.truncate(min(self.demand_kw, self.limit_kw), 3)
        energy_kwh = power * ctx.dt_s / HOUR_S
        if self.connected:
            self.requested_kwh = max(0.0, self.requested_kwh - energy_kwh)
            self.session_delivered_kwh += energy_kwh
            if self.requested_kwh < FULL_BELOW_KWH:
                self.requested_kwh = 0.0
            self.stay_left_s -= ctx.dt_s
        self.register.add(energy_kwh)
        self.grid_power_kw = power
        return {"active_energy_import": self.register.reading, "active_power": power,
                "ev_connected": 1.0 if self.connected else 0.0, "ev_energy_requested": round(self.requested_kwh, 6)}
