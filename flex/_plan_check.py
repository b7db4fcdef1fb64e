"""An independent check of a dispatch plan against every limit of its request (for tests and before sending).

It recomputes each asset's trajectory (stored energy, zone temperature, EV energy by each deadline) from the
planned powers alone, so a formulation mistake in the LP or the greedy planner shows up as a violation
instead of a command to a device. EV sessions are checked in aggregate per charger (the plan keeps the
charger's power, not its split between sessions): the energy due by each deadline and the total headroom.
"""

from __future__ import annotations

from flex._plan_model import BatteryEnvelope, EvEnvelope, Plan, PlanRequest, ProcessEnvelope, ThermalEnvelope

TOLERANCE = 1e-5


def _over(value: float, limit: float) -> bool:
    return value > limit + TOLERANCE * max(1.0, abs(limit))


def _battery(a: BatteryEnvelope, ps: tuple[float, ...], req: PlanRequest) -> list[str]:
    out, energy = [], a.energy_kwh
    low, high = min(a.energy_min_kwh, a.energy_kwh), max(a.energy_max_kwh, a.energy_kwh)
    for t, (p, iv) in enumerate(zip(ps, req.intervals, strict=True)):
        if _over(p, a.charge_max_kw) or _over(-p, a.discharge_max_kw):
            out.append(f"{a.asset_id}[{t}]: {p:.3f} kW outside the power rating")
        energy += a.charge_efficiency * p * iv.duration_h if p > 0 else p * iv.duration_h / a.discharge_efficiency
        if _over(low, energy) or _over(energy, high):
            out.append(f"{a.asset_id}[{t}]: stored energy {energy:.3f} kWh outside [{low:.3f}, {high:.3f}]")
    return out


def _ev(a: EvEnvelope, ps: tuple[float, ...], req: PlanRequest) -> list[str]:
    out: list[str] = []
    cumulative = 0.0
    for t, (p, iv) in enumerate(zip(ps, req.intervals, strict=True)):
        if _over(0.0, p) or _over(p, sum(max(0.0, s.max_kw[t]) for s in a.sessions)):
            out.append(f"{a.asset_id}[{t}]: {p:.3f} kW outside what the plugged-in sessions can draw")
        cumulative += a.charging_efficiency * p * iv.duration_h
        due = sum(s.required_kwh for s in a.sessions if s.deadline_index <= t)
        if _over(due, cumulative):
            out.append(f"{a.asset_id}[{t}]: {cumulative:.3f} kWh delivered, {due:.3f} kWh due by now")
    if _over(cumulative, sum(s.headroom_kwh for s in a.sessions)):
        out.append(f"{a.asset_id}: {cumulative:.3f} kWh is more than the cars can take")
    return out


def _thermal(a: ThermalEnvelope, ps: tuple[float, ...], req: PlanRequest) -> list[str]:
    out, temp = [], a.temp_c
    low, high = min(a.temp_min_c, a.temp_c), max(a.temp_max_c, a.temp_c)
    for t, (p, iv) in enumerate(zip(ps, req.intervals, strict=True)):
        if _over(a.power_min_kw, p) or _over(p, a.power_max_kw):
            out.append(f"{a.asset_id}[{t}]: {p:.3f} kW outside [{a.power_min_kw}, {a.power_max_kw}]")
        temp += a.mode_sign * (a.baseline_kw[t] - p) * iv.duration_h / a.kwh_per_degc
        if _over(low, temp) or _over(temp, high):
            out.append(f"{a.asset_id}[{t}]: zone at {temp:.3f} °C outside the comfort band [{low}, {high}]")
    return out


def _process(a: ProcessEnvelope, ps: tuple[float, ...]) -> list[str]:
    return [f"{a.asset_id}[{t}]: {p:.3f} kW outside its contract block"
            for t, p in enumerate(ps)
            if _over(a.baseline_kw[t] - a.curtail_kw[t], p) or _over(p, a.baseline_kw[t] + a.increase_kw[t])]


def check_plan(req: PlanRequest, plan: Plan) -> list[str]:
    """Every limit the plan breaks, as sentences naming asset and interval; empty when it keeps them all."""
    out: list[str] = []
    net = list(req.park_baseline_kw) if req.park_baseline_kw is not None else None
    for a, sched in zip(req.assets, plan.schedules, strict=True):
        ps = sched.power_kw
        excluded = a.max_change_kw is not None and a.max_change_kw <= 0
        if a.max_change_kw is not None:
            out.extend(f"{a.asset_id}[{t}]: moved {abs(p - p0):.3f} kW, the override allows {a.max_change_kw}"
                       for t, (p, p0) in enumerate(zip(ps, a.baseline_kw, strict=True))
                       if _over(abs(p - p0), a.max_change_kw))
        if not excluded:
            if isinstance(a, BatteryEnvelope):
                out.extend(_battery(a, ps, req))
            elif isinstance(a, EvEnvelope):
                out.extend(_ev(a, ps, req))
            elif isinstance(a, ThermalEnvelope):
                out.extend(_thermal(a, ps, req))
            else:
                out.extend(_process(a, ps))
        if net is not None:
            for t, (p, p0) in enumerate(zip(ps, a.baseline_kw, strict=True)):
                net[t] += p - p0
    if net is not None:
        for t, value in enumerate(net):
            low, high = req.net_limits(t)
            if _over(low, value) or _over(value, high):
                out.append(f"park[{t}]: net load {value:.3f} kW outside the connection limits [{low}, {high}]")
    return out
