"""The greedy dispatch planner: interval by interval, cheapest asset first, within the same limits as the LP.

It is the fallback when HiGHS reports no optimum, and the yardstick the LP is tested against. Each interval
it works out each asset's feasible power range from the asset's state so far (SoC, zone temperature,
override cap). It starts every asset at its baseline clamped into that range and then moves the cheapest
assets toward the target within the park's connection headroom. It never looks ahead beyond what keeps the
future feasible. That myopia is why the LP is the default (see :mod:`flex._plan`). For the same reason it
leaves EV chargers at their baseline: deferring a session's charging is only safe when the catch-up
before its departure fits under the connection limit and any override cap in later intervals. A
one-interval-at-a-time pass cannot check that (the property tests found the counter-examples).
"""

from __future__ import annotations

from flex._plan_model import BatteryEnvelope, Envelope, EvEnvelope, PlanRequest, ThermalEnvelope


class _State:
    """What each asset has used so far along the greedy trajectory."""

    def __init__(self, a: Envelope) -> None:
        self.energy_kwh = a.energy_kwh if isinstance(a, BatteryEnvelope) else 0.0
        self.temp_c = a.temp_c if isinstance(a, ThermalEnvelope) else 0.0


def _range(a: Envelope, st: _State, req: PlanRequest, t: int) -> tuple[float, float]:
    dt, p0 = req.intervals[t].duration_h, a.baseline_kw[t]
    if isinstance(a, BatteryEnvelope):
        low, high = min(a.energy_min_kwh, a.energy_kwh), max(a.energy_max_kwh, a.energy_kwh)
        ch = max(0.0, min(a.charge_max_kw, (high - st.energy_kwh) / (a.charge_efficiency * dt)))
        dis = max(0.0, min(a.discharge_max_kw, (st.energy_kwh - low) * a.discharge_efficiency / dt))
        lo, hi = -dis, ch
    elif isinstance(a, EvEnvelope):
        lo = hi = p0  # never deferred: a greedy pass cannot see the catch-up (module docstring)
    elif isinstance(a, ThermalEnvelope):
        low, high = min(a.temp_min_c, a.temp_c), max(a.temp_max_c, a.temp_c)
        k = a.kwh_per_degc / dt
        warm, cool = (high - st.temp_c) * k, (st.temp_c - low) * k
        shed, boost = (warm, cool) if a.mode_sign > 0 else (cool, warm)
        lo, hi = max(a.power_min_kw, p0 - max(0.0, shed)), min(a.power_max_kw, p0 + max(0.0, boost))
        hi = max(hi, lo)
    else:
        lo, hi = p0 - max(0.0, a.curtail_kw[t]), p0 + max(0.0, a.increase_kw[t])
    if a.max_change_kw is not None:
        capped_lo, capped_hi = max(lo, p0 - a.max_change_kw), min(hi, p0 + a.max_change_kw)
        if capped_lo <= capped_hi:
            lo, hi = capped_lo, capped_hi
    return lo, hi


def _advance(a: Envelope, st: _State, req: PlanRequest, t: int, p: float) -> None:
    dt = req.intervals[t].duration_h
    if isinstance(a, BatteryEnvelope):
        st.energy_kwh += a.charge_efficiency * p * dt if p > 0 else p * dt / a.discharge_efficiency
    elif isinstance(a, ThermalEnvelope):
        st.temp_c += a.mode_sign * (a.baseline_kw[t] - p) * dt / a.kwh_per_degc


def _repair(req: PlanRequest, t: int, chosen: list[float], ranges: list[tuple[float, float]]) -> None:
    """Move assets within their ranges until the park's net load is back inside the connection limits
    (a deadline-forced EV charge or a clamped battery can push it out before any dispatch)."""
    if req.park_baseline_kw is None:
        return
    low, high = req.net_limits(t)
    net = req.park_baseline_kw[t] + sum(p - a.baseline_kw[t] for p, a in zip(chosen, req.assets, strict=True))
    for i, (lo, hi) in enumerate(ranges):
        if net > high:
            step = min(net - high, chosen[i] - lo)
            chosen[i] -= step
            net -= step
        elif net < low:
            step = min(low - net, hi - chosen[i])
            chosen[i] += step
            net += step


def plan_greedy(req: PlanRequest) -> list[list[float]]:
    """Per-asset powers (kW, + consume) per interval; same limits as the LP, decided one interval at a time."""
    states = [_State(a) for a in req.assets]
    powers: list[list[float]] = [[] for _ in req.assets]
    order = sorted(range(len(req.assets)), key=lambda i: (req.assets[i].cost_per_kwh, req.assets[i].asset_id))
    for t, iv in enumerate(req.intervals):
        ranges, chosen = [], []
        for a, st in zip(req.assets, states, strict=True):
            if a.max_change_kw is not None and a.max_change_kw <= 0:
                ranges.append((a.baseline_kw[t], a.baseline_kw[t]))
            else:
                ranges.append(_range(a, st, req, t))
            lo, hi = ranges[-1]
            chosen.append(min(max(a.baseline_kw[t], lo), hi))
        net = sum(p - a.baseline_kw[t] for p, a in zip(chosen, req.assets, strict=True))
        room = float("inf")
        if req.park_baseline_kw is not None:
            low, high = req.net_limits(t)
            net += req.park_baseline_kw[t]
            room = max(0.0, net - low) if req.sign > 0 else max(0.0, high - net)
        _repair(req, t, chosen, ranges)
        need = iv.target_kw - sum(req.sign * (a.baseline_kw[t] - p) for p, a in zip(chosen, req.assets, strict=True))
        for i in order:
            if need <= 0 or room <= 0:
                break
            lo, hi = ranges[i]
            movable = chosen[i] - lo if req.sign > 0 else hi - chosen[i]
            step = max(0.0, min(need, movable, room))
            chosen[i] -= req.sign * step
            need -= step
            room -= step
        for i, (a, st) in enumerate(zip(req.assets, states, strict=True)):
            if not (a.max_change_kw is not None and a.max_change_kw <= 0):
                _advance(a, st, req, t, chosen[i])
            powers[i].append(chosen[i])
    return powers

