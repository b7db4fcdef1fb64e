"""Dispatch planning: per-asset, per-interval setpoints that meet a DR event's targets within every limit.

Method: a small linear programme solved with HiGHS (``highspy``), in two lexicographic passes.

1. Minimise the energy missing to the targets, Σₜ max(0, targetₜ − responseₜ)·Δtₜ.
2. Keep that optimum (within 1e-6) and minimise a fairness term plus the dispatch cost. The fairness term is
   the largest per-interval shortfall as a share of that interval's target: with equal energy missing,
   one evenly short plan beats one that is fine early and empty late. The cost is Σ cost_per_kwh·|power −
   baseline|·Δt per asset, so the cheapest assets move first and nothing moves without need.

Why an LP rather than greedy: the limits that matter couple intervals through stored energy: a battery's SoC,
an EV session's energy still due before its departure, a zone's temperature inside its comfort band. A
greedy pass, interval by interval, spends these early (it empties the battery in the first interval even
when another asset could only have served that one) and cannot defer EV charging safely (the catch-up
before departure may not fit under the connection limit later), so it leaves EVs alone.
The LP sees all intervals at once. It is small (a few columns per asset and
interval) and solves in milliseconds. The greedy planner (:mod:`flex._plan_greedy`) stays as the
fallback when the solver reports no optimum (time limit, numerical trouble). Its plans obey the same
limits, so the LP can never deliver less (tested as a property).

Hard constraints in both: power ratings, SoC bounds with the safety floor, EV deadlines and headroom, the
comfort band, process contract blocks, operator overrides (cap on |power − baseline|, 0 = excluded) and the
park's connection limits (when the park's baseline load is known; a baseline already outside a limit may
not be made worse).
"""

from __future__ import annotations

from dataclasses import dataclass

from flex._plan_greedy import plan_greedy
from flex._plan_lp import INF, LinearProgram, solve
from flex._plan_model import (
    AssetSchedule,
    BatteryEnvelope,
    Envelope,
    EvEnvelope,
    Plan,
    PlanRequest,
    ProcessEnvelope,
    ThermalEnvelope,
)
from flex.errors import PlanError

#: Weight of the fairness term (largest shortfall share, 0..1) against the cost terms in pass 2.
FAIRNESS_WEIGHT = 1000.0
#: Targets below this (kW) take no part in the fairness term.
MIN_TARGET_KW = 1e-3
#: A tiny cost on battery throughput so the LP never charges and discharges in the same interval.
THROUGHPUT_COST = 1e-4


@dataclass(slots=True)
class _Power:
    """An asset's power in one interval as ``constant + Σ coefficient·column``."""

    terms: dict[int, float]
    constant: float


def _fixed(a: Envelope) -> list[_Power]:
    return [_Power({}, p0) for p0 in a.baseline_kw]


def _battery(lp: LinearProgram, req: PlanRequest, a: BatteryEnvelope) -> list[_Power]:
    """Charge and discharge columns per interval. Charging and discharging at once would let the LP burn
    energy as losses (a load increase without filling the battery), which no battery does; the second row
    counts the net power at the charging efficiency, a bound the real stored energy never exceeds, so
    such a plan cannot overfill it either."""
    out: list[_Power] = []
    cumulative: dict[int, float] = {}
    net: dict[int, float] = {}
    low, high = min(a.energy_min_kwh, a.energy_kwh), max(a.energy_max_kwh, a.energy_kwh)
    for iv in req.intervals:
        dt = iv.duration_h
        ch = lp.column(0.0, a.charge_max_kw, THROUGHPUT_COST * dt)
        dis = lp.column(0.0, a.discharge_max_kw, THROUGHPUT_COST * dt)
        cumulative[ch] = a.charge_efficiency * dt
        cumulative[dis] = -dt / a.discharge_efficiency
        net[ch], net[dis] = a.charge_efficiency * dt, -a.charge_efficiency * dt
        lp.row(dict(cumulative), low - a.energy_kwh, high - a.energy_kwh)
        lp.row(dict(net), upper=high - a.energy_kwh)
        out.append(_Power({ch: 1.0, dis: -1.0}, 0.0))
    return out


def _ev(lp: LinearProgram, req: PlanRequest, a: EvEnvelope) -> list[_Power]:
    out = [_Power({}, 0.0) for _ in req.intervals]
    eta = a.charging_efficiency
    for s in a.sessions:
        cols = [lp.column(0.0, max(0.0, s.max_kw[t])) for t in range(len(req.intervals))]
        for t, col in enumerate(cols):
            out[t].terms[col] = 1.0
        delivered = {col: eta * req.intervals[t].duration_h for t, col in enumerate(cols)}
        if s.required_kwh > 0:
            lp.row({col: c for t, (col, c) in enumerate(delivered.items()) if t <= s.deadline_index},
                   lower=s.required_kwh)
        lp.row(delivered, upper=s.headroom_kwh)
    return out


def _thermal(lp: LinearProgram, req: PlanRequest, a: ThermalEnvelope) -> list[_Power]:
    out: list[_Power] = []
    drift: dict[int, float] = {}  # °C contributed by each interval's power
    offset = 0.0                  # °C from the baselines so far
    low, high = min(a.temp_min_c, a.temp_c), max(a.temp_max_c, a.temp_c)
    for t, iv in enumerate(req.intervals):
        k = a.mode_sign * iv.duration_h / a.kwh_per_degc
        col = lp.column(a.power_min_kw, a.power_max_kw)
        drift[col] = -k
        offset += k * a.baseline_kw[t]
        lp.row(dict(drift), low - a.temp_c - offset, high - a.temp_c - offset)
        out.append(_Power({col: 1.0}, 0.0))
    return out


def _process(lp: LinearProgram, a: ProcessEnvelope) -> list[_Power]:
    return [_Power({lp.column(p0 - max(0.0, c), p0 + max(0.0, i)): 1.0}, 0.0)
            for p0, c, i in zip(a.baseline_kw, a.curtail_kw, a.increase_kw, strict=True)]


def _asset_powers(lp: LinearProgram, req: PlanRequest, a: Envelope) -> list[_Power]:
    if a.max_change_kw is not None and a.max_change_kw <= 0:
        return _fixed(a)
    if isinstance(a, BatteryEnvelope):
        powers = _battery(lp, req, a)
    elif isinstance(a, EvEnvelope):
        powers = _ev(lp, req, a)
    elif isinstance(a, ThermalEnvelope):
        powers = _thermal(lp, req, a)
    else:
        powers = _process(lp, a)
    for t, p in enumerate(powers):
        p0 = a.baseline_kw[t]
        if a.max_change_kw is not None:
            lp.row(p.terms, p0 - a.max_change_kw - p.constant, p0 + a.max_change_kw - p.constant)
        up = lp.column(0.0, INF, a.cost_per_kwh * req.intervals[t].duration_h)
        down = lp.column(0.0, INF, a.cost_per_kwh * req.intervals[t].duration_h)
        lp.row({**p.terms, up: -1.0, down: 1.0}, p0 - p.constant, p0 - p.constant)
    return powers


def _formulate(req: PlanRequest) -> tuple[LinearProgram, list[list[_Power]], list[int]]:
    """The LP of pass 1 (shortfall columns carry cost Δt, everything else its pass-2 cost scaled to zero)."""
    lp = LinearProgram()
    powers = [_asset_powers(lp, req, a) for a in req.assets]
    shortfall: list[int] = []
    for t, iv in enumerate(req.intervals):
        sh = lp.column(0.0, INF)
        shortfall.append(sh)
        response: dict[int, float] = {sh: 1.0}
        constant = 0.0
        for a, ps in zip(req.assets, powers, strict=True):
            for col, c in ps[t].terms.items():
                response[col] = response.get(col, 0.0) - req.sign * c
            constant += req.sign * (a.baseline_kw[t] - ps[t].constant)
        lp.row(response, lower=iv.target_kw - constant)
        if req.park_baseline_kw is not None:
            low, high = req.net_limits(t)
            net = {col: c for col, c in response.items() if col != sh}
            net = {col: -c * req.sign for col, c in net.items()}  # Σ coefficient of power
            shift = req.park_baseline_kw[t] - req.sign * constant
            lp.row(net, low - shift, high - shift)
    return lp, powers, shortfall


def _value(p: _Power, x: list[float]) -> float:
    return p.constant + sum(c * x[col] for col, c in p.terms.items())


def _solve_lp(req: PlanRequest, warnings: list[str]) -> list[list[float]]:
    lp, powers, shortfall = _formulate(req)
    pass2_cost = lp.cost
    lp.cost = [0.0] * len(pass2_cost)
    for t, sh in enumerate(shortfall):
        lp.cost[sh] = req.intervals[t].duration_h
    x = solve(lp)
    missing = sum(x[sh] * req.intervals[t].duration_h for t, sh in enumerate(shortfall))
    lp.cost = pass2_cost
    lp.row({sh: req.intervals[t].duration_h for t, sh in enumerate(shortfall)}, upper=missing + 1e-6 * (1 + missing))
    worst = lp.column(0.0, INF, FAIRNESS_WEIGHT)
    for t, sh in enumerate(shortfall):
        if req.intervals[t].target_kw > MIN_TARGET_KW:  # a vanishing target would only make the LP ill-scaled
            lp.row({worst: req.intervals[t].target_kw, sh: -1.0}, lower=0.0)
    try:
        x = solve(lp)
    except PlanError as exc:  # pass 1's answer already meets the target as far as possible
        warnings.append(f"{exc} in the fairness/cost pass; the plan may be uneven or costlier than needed")
    return [[_value(p, x) for p in ps] for ps in powers]


def finish_plan(req: PlanRequest, power_kw: list[list[float]], method: str, warnings: list[str]) -> Plan:
    """Assemble a :class:`Plan` from per-asset powers: responses, shortfalls and HVAC temperatures."""
    n = len(req.intervals)
    schedules: list[AssetSchedule] = []
    response = [0.0] * n
    for a, ps in zip(req.assets, power_kw, strict=True):
        temps: tuple[float, ...] | None = None
        if isinstance(a, ThermalEnvelope):
            temp, out = a.temp_c, []
            for t, iv in enumerate(req.intervals):
                temp += a.mode_sign * (a.baseline_kw[t] - ps[t]) * iv.duration_h / a.kwh_per_degc
                out.append(temp)
            temps = tuple(out)
        for t in range(n):
            response[t] += req.sign * (a.baseline_kw[t] - ps[t])
        schedules.append(AssetSchedule(a.asset_id, a.kind, a.device_id, tuple(ps), a.baseline_kw, temps))
    shortfall = tuple(max(0.0, iv.target_kw - r) for iv, r in zip(req.intervals, response, strict=True))
    if req.park_baseline_kw is None and (req.import_max_kw is not None or req.export_max_kw is not None):
        warnings.append("no park baseline load: the connection limits could not be checked")
    missing_kwh = sum(s * iv.duration_h for s, iv in zip(shortfall, req.intervals, strict=True))
    if missing_kwh > 1e-6:
        warnings.append(f"the assets cannot meet the target: {missing_kwh:.1f} kWh short")
    return Plan(method=method, direction=req.direction, intervals=req.intervals, schedules=tuple(schedules),  # type: ignore[arg-type]
                response_kw=tuple(response), shortfall_kw=shortfall, warnings=tuple(warnings))


def plan_dispatch(request: PlanRequest, *, method: str = "lp") -> Plan:
    """Plan the event (see the module docstring). ``method="greedy"`` forces the fallback (for comparison)."""
    if method == "greedy":
        return finish_plan(request, plan_greedy(request), "greedy", [])
    if method != "lp":
        raise PlanError(f"unknown planning method {method!r}; use lp or greedy")
    warnings: list[str] = []
    try:
        powers = _solve_lp(request, warnings)
    except PlanError as exc:
        return finish_plan(request, plan_greedy(request), "greedy", [f"{exc}; used the greedy planner instead"])
    return finish_plan(request, powers, "lp", warnings)
