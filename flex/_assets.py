"""Flexible assets: parameters, live state and the sustained-flexibility formulas of domain.md §4.3.

Load convention: + = consumption. *Up* flexibility is a load reduction (or generation increase) that the
asset can hold for the whole duration T; *down* flexibility is a load increase held for T. Every formula is
an energy-and-power envelope: the power change is limited by the asset's power rating and by the energy it
can shift within T without violating its bounds (SOC, comfort band, departure energy, process schedule).

The models double as the JSON stored in ``flex_assets.params`` and as API schemas, so every field carries
its unit in its name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from flex.errors import AssetError

AssetId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Fraction = Annotated[float, Field(gt=0, le=1)]
Percent = Annotated[float, Field(ge=0, le=100)]
NonNegKw = Annotated[float, Field(ge=0, allow_inf_nan=False)]


@dataclass(frozen=True, slots=True)
class Flex:
    """Sustained flexibility of one asset (or a sum) for one duration, in kW; rebound in kWh."""

    up_kw: float
    down_kw: float
    rebound_kwh: float = 0.0

    def __add__(self, other: Flex) -> Flex:
        return Flex(self.up_kw + other.up_kw, self.down_kw + other.down_kw, self.rebound_kwh + other.rebound_kwh)


ZERO = Flex(0.0, 0.0)


def _clip(value: float) -> float:
    return value if value > 0 and math.isfinite(value) else 0.0


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _AssetBase(_Model):
    asset_id: AssetId
    site_id: str | None = Field(default=None, max_length=64)
    name: str = Field(default="", max_length=200)


# --- battery ---------------------------------------------------------------------------------------------


class BatteryState(_Model):
    """Live battery state: state of charge and current power (+ = charging, like the meter)."""

    soc_pct: Percent
    power_kw: float = Field(allow_inf_nan=False)


class Battery(_AssetBase):
    """A stationary battery (BESS). Efficiencies per direction, or √(round-trip) when only that is known."""

    kind: Literal["battery"] = "battery"
    capacity_kwh: float = Field(gt=0, allow_inf_nan=False)
    charge_power_max_kw: NonNegKw
    discharge_power_max_kw: NonNegKw
    charge_efficiency: Fraction | None = None
    discharge_efficiency: Fraction | None = None
    roundtrip_efficiency: Fraction | None = None
    soc_min_pct: Percent = 0.0
    soc_max_pct: Percent = 100.0
    state: BatteryState | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.soc_min_pct >= self.soc_max_pct:
            raise ValueError("soc_min_pct must be below soc_max_pct")
        return self

    def efficiencies(self) -> tuple[float, float]:
        """(η_charge, η_discharge): given ones, else √RTE for both, else 1."""
        split = math.sqrt(self.roundtrip_efficiency) if self.roundtrip_efficiency else 1.0
        return (self.charge_efficiency or split, self.discharge_efficiency or split)


def battery_flex(battery: Battery, state: BatteryState, duration_h: float) -> Flex:
    """Battery envelope for duration T (h), P₀ = current power (+ charging).

    up   = P₀ + min(P_dis,max, (SOC − SOC_min)·E_cap·η_dis / T)
    down = min(P_ch,max, (SOC_max − SOC)·E_cap / (η_ch·T)) − P₀

    Both follow from holding a new power P for T within the power rating and the SOC bounds; domain.md
    writes the down term as min(P_ch,max − P₀, …), which drops P₀ from the energy term — the derivation
    subtracts P₀ from both, as done here.
    """
    if duration_h <= 0:
        raise AssetError(f"duration must be positive, got {duration_h}")
    eta_ch, eta_dis = battery.efficiencies()
    soc = state.soc_pct / 100.0
    soc_min, soc_max = battery.soc_min_pct / 100.0, battery.soc_max_pct / 100.0
    dischargeable_kw = max(0.0, soc - soc_min) * battery.capacity_kwh * eta_dis / duration_h
    chargeable_kw = max(0.0, soc_max - soc) * battery.capacity_kwh / (eta_ch * duration_h)
    up = state.power_kw + min(battery.discharge_power_max_kw, dischargeable_kw)
    down = min(battery.charge_power_max_kw, chargeable_kw) - state.power_kw
    return Flex(_clip(up), _clip(down))


# --- EV charging -----------------------------------------------------------------------------------------


class EvSession(_Model):
    """One EV at a connector: when it arrived (or is expected), when it leaves, what it still needs.

    ``energy_needed_kwh`` and ``power_kw`` are as of ``as_of``. ``battery_headroom_kwh`` is what the
    vehicle could still take before full (≥ energy needed); without it, charging beyond the target is not
    offered as down-flexibility.
    """

    session_id: str = Field(min_length=1, max_length=64)
    plugged_in_at: AwareDatetime
    departure_at: AwareDatetime
    as_of: AwareDatetime
    energy_needed_kwh: float = Field(ge=0, allow_inf_nan=False)
    power_kw: NonNegKw = 0.0
    battery_headroom_kwh: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.departure_at <= self.plugged_in_at:
            raise ValueError("departure_at must be after plugged_in_at")
        if self.battery_headroom_kwh is not None and self.battery_headroom_kwh < self.energy_needed_kwh:
            raise ValueError("battery_headroom_kwh must be at least energy_needed_kwh")
        return self


class EvCharger(_AssetBase):
    """An EV charger (one or more connectors) with its current and expected sessions."""

    kind: Literal["ev_charger"] = "ev_charger"
    evse_max_kw: float = Field(gt=0, allow_inf_nan=False)
    charging_efficiency: Fraction = 1.0
    sessions: tuple[EvSession, ...] = ()


def ev_session_flex(charger: EvCharger, session: EvSession, at: datetime, duration_h: float) -> Flex:
    """Flexibility of one session held for T hours from ``at`` (session state already projected to ``at``).

    The vehicle must be plugged in for the whole window (a departure inside it makes the sustained
    capacity zero). up = max(0, P_now − P_req) with P_req = E_needed / (η·(t_dep − t)) — the slowest
    charging that still meets the departure energy without a catch-up rebound; down =
    min(P_EVSE, E_headroom / (η·T)) − P_now.
    """
    end = at + timedelta(hours=duration_h)
    if at < session.plugged_in_at or end > session.departure_at:
        return ZERO
    eta = charger.charging_efficiency
    hours_left = (session.departure_at - at).total_seconds() / 3600.0
    p_req = session.energy_needed_kwh / (eta * hours_left)
    p_now = min(session.power_kw, charger.evse_max_kw)
    up = p_now - p_req
    headroom = session.battery_headroom_kwh if session.battery_headroom_kwh is not None else session.energy_needed_kwh
    down = min(charger.evse_max_kw, headroom / (eta * duration_h)) - p_now
    return Flex(_clip(up), _clip(down))


def project_session(charger: EvCharger, session: EvSession, at: datetime) -> EvSession:
    """The session's state at a later time ``at`` under uncontrolled charging (the no-event baseline).

    A plugged-in car keeps its current power (or the EVSE maximum once an expected car arrives) until
    its energy need is met.
    """
    if at <= session.as_of:
        return session
    start = max(session.as_of, session.plugged_in_at)
    if at <= start:
        return session.model_copy(update={"as_of": at})
    plugged_now = session.as_of >= session.plugged_in_at
    p = min(session.power_kw, charger.evse_max_kw) if plugged_now and session.power_kw > 0 else charger.evse_max_kw
    hours = (at - start).total_seconds() / 3600.0
    delivered = min(session.energy_needed_kwh, p * charger.charging_efficiency * hours)
    needed = session.energy_needed_kwh - delivered
    headroom = None if session.battery_headroom_kwh is None else session.battery_headroom_kwh - delivered
    return session.model_copy(
        update={"as_of": at, "energy_needed_kwh": needed, "power_kw": p if needed > 1e-9 else 0.0,
                "battery_headroom_kwh": headroom}
    )


def ev_flex(charger: EvCharger, at: datetime, duration_h: float) -> Flex:
    """Sum of the sessions' flexibility at ``at`` (each projected from its ``as_of`` state)."""
    total = ZERO
    for session in charger.sessions:
        total = total + ev_session_flex(charger, project_session(charger, session, at), at, duration_h)
    return total


# --- HVAC / thermal --------------------------------------------------------------------------------------


class ThermalState(_Model):
    """Live state of an HVAC system: indoor temperature and electric power drawn."""

    indoor_temp_c: float = Field(ge=-50, le=80)
    power_kw: NonNegKw


class Thermal(_AssetBase):
    """HVAC / thermal load with a comfort band and a lumped thermal capacitance.

    ``thermal_capacitance_kwh_per_k`` is C (kWh of heat per K of the zone, fitted from history);
    ``max_shed_fraction`` is the share of the running power the site allows to shed (practice: 0.3-0.6);
    ``rebound_fraction`` is the share of the shed electric energy recovered after the event.
    """

    kind: Literal["hvac"] = "hvac"
    mode: Literal["cooling", "heating"] = "cooling"
    rated_power_kw: float = Field(gt=0, allow_inf_nan=False)
    cop: float = Field(gt=0, le=20)
    thermal_capacitance_kwh_per_k: float = Field(gt=0, allow_inf_nan=False)
    comfort_min_c: float = Field(ge=-50, le=80)
    comfort_max_c: float = Field(ge=-50, le=80)
    max_shed_fraction: Fraction
    rebound_fraction: float = Field(default=1.0, ge=0, le=2)
    max_event_duration_h: float | None = Field(default=None, gt=0)
    state: ThermalState | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.comfort_min_c >= self.comfort_max_c:
            raise ValueError("comfort_min_c must be below comfort_max_c")
        return self


def thermal_flex(hvac: Thermal, state: ThermalState, duration_h: float) -> Flex:
    """Thermal envelope for T hours around a steady state (the running power balances the heat gains).

    Shedding ΔP electric changes the zone's heat balance by ΔP·COP, so the comfort limit is reached after
    t_lim = C·ΔT_margin / (ΔP·COP); holding for T needs ΔP ≤ C·ΔT_margin / (COP·T). Cooling: shedding
    uses the margin up to ``comfort_max_c``, pre-cooling the margin down to ``comfort_min_c``; heating
    mirrors both. Rebound = shed kW × T × rebound_fraction (kWh after the event).
    """
    if hvac.max_event_duration_h is not None and duration_h > hvac.max_event_duration_h:
        return ZERO
    c, cop = hvac.thermal_capacitance_kwh_per_k, hvac.cop
    t_in = state.indoor_temp_c
    if hvac.mode == "cooling":
        shed_margin_k, boost_margin_k = hvac.comfort_max_c - t_in, t_in - hvac.comfort_min_c
    else:
        shed_margin_k, boost_margin_k = t_in - hvac.comfort_min_c, hvac.comfort_max_c - t_in
    up = min(state.power_kw * hvac.max_shed_fraction, c * max(0.0, shed_margin_k) / (cop * duration_h))
    down = min(hvac.rated_power_kw - state.power_kw, c * max(0.0, boost_margin_k) / (cop * duration_h))
    up = _clip(up)
    return Flex(up, _clip(down), rebound_kwh=up * duration_h * hvac.rebound_fraction)


# --- curtailable process load ----------------------------------------------------------------------------


class ProcessBlock(_Model):
    """A declared schedule block: how much load may be curtailed (or added, if shiftable) in it."""

    start: AwareDatetime
    end: AwareDatetime
    curtailable_kw: NonNegKw
    increase_kw: NonNegKw = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.end <= self.start:
            raise ValueError("block end must be after start")
        return self


class ProcessState(_Model):
    """Events already run on a local day (for the events-per-day limit)."""

    events_on_day: int = Field(default=0, ge=0)
    day: str | None = Field(default=None, description="local date (ISO) the count refers to")


class ProcessLoad(_AssetBase):
    """Curtailable industrial process load under contract: schedule, notice, duration and frequency limits."""

    kind: Literal["process"] = "process"
    schedule: tuple[ProcessBlock, ...] = ()
    min_notice_minutes: int = Field(default=0, ge=0, le=7 * 24 * 60)
    max_duration_h: float = Field(gt=0, le=24)
    max_events_per_day: int | None = Field(default=None, ge=0)
    state: ProcessState = ProcessState()


def _min_over(blocks: tuple[ProcessBlock, ...], start: datetime, end: datetime, attr: str) -> float:
    cuts = sorted({start, end, *(b.start for b in blocks if start < b.start < end),
                   *(b.end for b in blocks if start < b.end < end)})
    lowest = math.inf
    for a, b in pairwise(cuts):
        mid = a + (b - a) / 2
        level = sum(getattr(blk, attr) for blk in blocks if blk.start <= mid < blk.end)
        lowest = min(lowest, level)
    return 0.0 if lowest is math.inf else lowest


def process_flex(process: ProcessLoad, at: datetime, duration_h: float, now: datetime, local_day: str) -> Flex:
    """Process flexibility from its declared schedule: the minimum curtailable (or addable) power over
    [at, at+T), zero when the notice is too short, T exceeds the contract's maximum duration, or the day's
    event budget is used up. ``local_day`` is the park-local ISO date of ``at``.
    """
    if duration_h > process.max_duration_h:
        return ZERO
    if (at - now) < timedelta(minutes=process.min_notice_minutes):
        return ZERO
    limit = process.max_events_per_day
    if limit is not None and process.state.day == local_day and process.state.events_on_day >= limit:
        return ZERO
    end = at + timedelta(hours=duration_h)
    return Flex(
        _clip(_min_over(process.schedule, at, end, "curtailable_kw")),
        _clip(_min_over(process.schedule, at, end, "increase_kw")),
    )


# --- PV --------------------------------------------------------------------------------------------------


class PvState(_Model):
    """Live PV output and the output available without curtailment (None = not curtailed)."""

    power_kw: NonNegKw
    available_kw: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class Pv(_AssetBase):
    """Grid-connected PV: down-flex by curtailing output; up-flex only while it is already curtailed."""

    kind: Literal["pv"] = "pv"
    rated_kw: float = Field(gt=0, allow_inf_nan=False)
    curtailable: bool = True
    state: PvState | None = None


def pv_flex(pv: Pv, state: PvState) -> Flex:
    """up = P_avail − P_now (un-curtail), down = P_now (curtail to zero) when the inverter allows it."""
    available = state.power_kw if state.available_kw is None else max(state.available_kw, state.power_kw)
    return Flex(_clip(available - state.power_kw), _clip(state.power_kw) if pv.curtailable else 0.0)


Asset = Annotated[Battery | EvCharger | Thermal | ProcessLoad | Pv, Field(discriminator="kind")]
ASSET_KINDS: tuple[str, ...] = ("battery", "ev_charger", "hvac", "process", "pv")
