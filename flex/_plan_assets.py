"""From configured flex assets (``flex_assets`` rows, :class:`flex.AssetRecord`) to the planner's envelopes.

Which device receives an asset's commands: ``options["dispatch_device_id"]`` when set, else the asset's linked
``device_id`` (the device whose readings give its live state). An asset with neither cannot be commanded and
is left out of the plan, with a warning. Dispatch costs: ``options["dispatch_cost_per_kwh"]``, else a default
per kind (battery cheapest, then EV charging, HVAC, process). Batteries take a safety floor from
``options["safety_soc_min_pct"]`` on top of ``soc_min_pct``. Process loads take their running power from
``options["baseline_kw"]`` (default: the curtailable power of the block, i.e. that block is running).

Baselines are the no-event behaviour: a battery holds its present power while its SoC allows, EV
sessions charge uncontrolled (flex's ``project_session`` rule), HVAC keeps its present power, a process
runs its declared block. PV is not dispatched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flex._assets import Battery, EvCharger, EvSession, ProcessLoad, Thermal, _min_over, process_flex, project_session
from flex._plan_model import (
    BatteryEnvelope,
    Envelope,
    EvEnvelope,
    EvSessionEnvelope,
    PlanInterval,
    ProcessEnvelope,
    ThermalEnvelope,
)
from flex._records import AssetRecord

DEFAULT_COST_PER_KWH: Mapping[str, float] = {"battery": 0.05, "ev_charger": 0.1, "hvac": 0.2, "process": 0.3}


def device_of(record: AssetRecord) -> str | None:
    """The device that receives this asset's commands (see the module docstring)."""
    device = record.options.get("dispatch_device_id") or record.device_id
    return str(device) if device else None


def _hours(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds() / 3600.0)


def _battery(b: Battery, rec: AssetRecord, ivs: Sequence[PlanInterval], common: dict[str, object]) -> Envelope | None:
    if b.state is None:
        return None
    eta_ch, eta_dis = b.efficiencies()
    floor = max(b.soc_min_pct, float(rec.options.get("safety_soc_min_pct", 0.0)))
    energy = b.state.soc_pct / 100 * b.capacity_kwh
    e_min, e_max = floor / 100 * b.capacity_kwh, b.soc_max_pct / 100 * b.capacity_kwh
    baseline, e = [], energy
    for iv in ivs:  # hold the present power while the SoC allows
        dt, p = iv.duration_h, min(max(b.state.power_kw, -b.discharge_power_max_kw), b.charge_power_max_kw)
        if p > 0:
            p = min(p, max(0.0, (max(e_max, energy) - e) / (eta_ch * dt)))
        else:
            p = max(p, -max(0.0, (e - min(e_min, energy)) * eta_dis / dt))
        e += eta_ch * p * dt if p > 0 else p * dt / eta_dis
        baseline.append(p)
    return BatteryEnvelope(**common, baseline_kw=tuple(baseline), charge_max_kw=b.charge_power_max_kw,  # type: ignore[arg-type]
                           discharge_max_kw=b.discharge_power_max_kw, charge_efficiency=eta_ch,
                           discharge_efficiency=eta_dis, energy_kwh=energy, energy_min_kwh=e_min, energy_max_kwh=e_max)


def _session(ch: EvCharger, s: EvSession, ivs: Sequence[PlanInterval]) -> EvSessionEnvelope:
    start, end = ivs[0].start, ivs[-1].end
    at_start = project_session(ch, s, start)
    eta, need = ch.charging_efficiency, at_start.energy_needed_kwh
    max_kw, baseline, deadline = [], [], len(ivs) - 1
    remaining = need
    p_now = at_start.power_kw if at_start.power_kw > 0 and start >= s.plugged_in_at else ch.evse_max_kw
    for t, iv in enumerate(ivs):
        plugged_h = _hours(max(iv.start, s.plugged_in_at), min(iv.end, s.departure_at))
        max_kw.append(ch.evse_max_kw * plugged_h / iv.duration_h)
        p = min(min(p_now, ch.evse_max_kw) * plugged_h / iv.duration_h, remaining / (eta * iv.duration_h))
        remaining -= eta * p * iv.duration_h
        baseline.append(max(0.0, p))
        if s.departure_at <= iv.end and deadline == len(ivs) - 1 and s.departure_at > iv.start:
            deadline = t
    if s.departure_at > end:
        need = max(0.0, need - eta * ch.evse_max_kw * _hours(end, s.departure_at))
    achievable = sum(eta * m * iv.duration_h for m, iv in zip(max_kw[: deadline + 1], ivs, strict=False))
    headroom = at_start.battery_headroom_kwh
    if headroom is None:
        headroom = at_start.energy_needed_kwh
    required = min(need, achievable)
    return EvSessionEnvelope(session_id=s.session_id, max_kw=tuple(max_kw), required_kwh=required,
                             deadline_index=deadline, headroom_kwh=max(headroom, required),
                             baseline_kw=tuple(baseline))


def _ev(ch: EvCharger, ivs: Sequence[PlanInterval], common: dict[str, object]) -> Envelope:
    start, end = ivs[0].start, ivs[-1].end
    sessions = tuple(_session(ch, s, ivs) for s in ch.sessions if s.departure_at > start and s.plugged_in_at < end)
    baseline = tuple(sum(s.baseline_kw[t] for s in sessions) for t in range(len(ivs)))
    return EvEnvelope(**common, baseline_kw=baseline, charging_efficiency=ch.charging_efficiency,  # type: ignore[arg-type]
                      sessions=sessions)


def _thermal(h: Thermal, ivs: Sequence[PlanInterval], common: dict[str, object]) -> Envelope | None:
    if h.state is None:
        return None
    if h.max_event_duration_h is not None and _hours(ivs[0].start, ivs[-1].end) > h.max_event_duration_h:
        common = {**common, "max_change_kw": 0.0}
    p0 = h.state.power_kw
    return ThermalEnvelope(**common, baseline_kw=(p0,) * len(ivs), power_min_kw=p0 * (1 - h.max_shed_fraction),  # type: ignore[arg-type]
                           power_max_kw=max(h.rated_power_kw, p0), temp_c=h.state.indoor_temp_c,
                           temp_min_c=h.comfort_min_c, temp_max_c=h.comfort_max_c,
                           kwh_per_degc=h.thermal_capacitance_kwh_per_k / h.cop,
                           mode_sign=1 if h.mode == "cooling" else -1)


def _process(p: ProcessLoad, rec: AssetRecord, ivs: Sequence[PlanInterval], common: dict[str, object], *,
             now: datetime, timezone: str) -> Envelope:
    start = ivs[0].start
    local_day = start.astimezone(ZoneInfo(timezone)).date().isoformat()
    gate = process_flex(p, start, _hours(start, ivs[-1].end), now, local_day)
    allowed = gate.up_kw > 0 or gate.down_kw > 0
    curtail = tuple(_min_over(p.schedule, iv.start, iv.end, "curtailable_kw") if allowed else 0.0 for iv in ivs)
    increase = tuple(_min_over(p.schedule, iv.start, iv.end, "increase_kw") if allowed else 0.0 for iv in ivs)
    base = rec.options.get("baseline_kw")
    baseline = tuple(float(base) if base is not None else c for c in curtail)
    curtail = tuple(min(c, b) for c, b in zip(curtail, baseline, strict=True))
    return ProcessEnvelope(**common, baseline_kw=baseline, curtail_kw=curtail, increase_kw=increase)  # type: ignore[arg-type]


def plan_envelopes(records: Sequence[AssetRecord], intervals: Sequence[PlanInterval], *, now: datetime,
                   overrides: Mapping[str, float] | None = None,
                   timezone: str = "Asia/Shanghai") -> tuple[tuple[Envelope, ...], tuple[str, ...]]:
    """Envelopes of the dispatchable assets, and warnings for those left out (no device, no live state, PV).

    ``overrides`` maps a device id to the operator's cap on |power − baseline| (kW, 0 = excluded); an
    override always wins over the asset's own envelope.
    """
    overrides = overrides or {}
    out: list[Envelope] = []
    warnings: list[str] = []
    for rec in records:
        a = rec.asset
        device = device_of(rec)
        if a.kind == "pv":
            continue
        if device is None:
            warnings.append(f"asset {a.asset_id}: no device to command (set its device_id); left out")
            continue
        cost = float(rec.options.get("dispatch_cost_per_kwh", DEFAULT_COST_PER_KWH[a.kind]))
        common: dict[str, object] = {"asset_id": a.asset_id, "device_id": device, "cost_per_kwh": cost,
                                     "max_change_kw": overrides.get(device)}
        env: Envelope | None
        if isinstance(a, Battery):
            env = _battery(a, rec, intervals, common)
        elif isinstance(a, EvCharger):
            env = _ev(a, intervals, common)
        elif isinstance(a, Thermal):
            env = _thermal(a, intervals, common)
        elif isinstance(a, ProcessLoad):
            env = _process(a, rec, intervals, common, now=now, timezone=timezone)
        else:
            continue
        if env is None:
            warnings.append(f"asset {a.asset_id}: no live state; left out")
            continue
        out.append(env)
    return tuple(out), tuple(warnings)


def uniform_intervals(start: datetime, end: datetime, target_kw: float, *,
                      step: timedelta = timedelta(minutes=15)) -> tuple[PlanInterval, ...]:
    """``[start, end)`` cut at ``step`` boundaries with one target (an event given as one requested kW)."""
    out, t = [], start
    while t < end:
        nxt = min(end, t + step)
        out.append(PlanInterval(t, nxt, target_kw))
        t = nxt
    return tuple(out)
