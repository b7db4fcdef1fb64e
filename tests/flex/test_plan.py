"""The dispatch planner: LP and greedy plans keep every limit; the LP never delivers less than greedy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flex._assets import Battery, BatteryState, EvCharger, EvSession, ProcessBlock, ProcessLoad, Thermal, ThermalState
from flex._direction import Direction
from flex._plan import plan_dispatch
from flex._plan_assets import device_of, plan_envelopes, uniform_intervals
from flex._plan_check import check_plan
from flex._plan_model import (
    BatteryEnvelope,
    EvEnvelope,
    EvSessionEnvelope,
    PlanInterval,
    PlanRequest,
    ProcessEnvelope,
    ThermalEnvelope,
)
from flex._records import AssetRecord
from flex.errors import PlanError

T0 = datetime(2026, 12, 5, 8, tzinfo=UTC)
Q = timedelta(minutes=15)


def intervals(*targets: float) -> tuple[PlanInterval, ...]:
    return tuple(PlanInterval(T0 + i * Q, T0 + (i + 1) * Q, t) for i, t in enumerate(targets))


def battery(energy_kwh: float, *, n: int, cap: float | None = None, power_kw: float = 200.0,
            cost: float = 0.05) -> BatteryEnvelope:
    return BatteryEnvelope(asset_id="bess", device_id="bess-1", baseline_kw=(0.0,) * n, cost_per_kwh=cost,
                           max_change_kw=cap, charge_max_kw=power_kw, discharge_max_kw=power_kw, charge_efficiency=1.0,
                           discharge_efficiency=1.0, energy_kwh=energy_kwh, energy_min_kwh=0.0, energy_max_kwh=200.0)


def test_the_lp_keeps_the_battery_for_later_when_a_process_block_covers_only_the_first_interval() -> None:
    # 25 kWh of battery is 100 kW for one quarter hour; the process can shed 100 kW in the first interval only.
    # Greedy spends the cheaper battery first and has nothing left for the second interval; the LP does not.
    ivs = intervals(100, 100)
    process = ProcessEnvelope(asset_id="press", device_id="press-1", baseline_kw=(150.0, 150.0), cost_per_kwh=0.3,
                              max_change_kw=None, curtail_kw=(100.0, 0.0), increase_kw=(0.0, 0.0))
    req = PlanRequest(ivs, (battery(25.0, n=2), process))
    lp, greedy = plan_dispatch(req), plan_dispatch(req, method="greedy")
    assert check_plan(req, lp) == []
    assert check_plan(req, greedy) == []
    assert lp.method == "lp"
    assert lp.shortfall_kwh == pytest.approx(0.0, abs=1e-6)
    assert greedy.shortfall_kwh == pytest.approx(25.0)
    assert lp.response_kw == pytest.approx((100.0, 100.0))
    assert lp.committed_kw == pytest.approx(100.0)


def test_an_energy_limited_battery_is_spread_evenly_over_the_event() -> None:
    ivs = intervals(100, 100, 100, 100)
    req = PlanRequest(ivs, (battery(50.0, n=4),))
    lp = plan_dispatch(req)
    assert lp.response_kw == pytest.approx((50.0,) * 4)  # same energy as greedy's 100,100,0,0, fairly shared
    assert lp.shortfall_kwh == pytest.approx(plan_dispatch(req, method="greedy").shortfall_kwh)
    assert any("short" in w for w in lp.warnings)


def test_ev_deadline_is_met_and_the_lp_avoids_a_catch_up_inside_the_event() -> None:
    ivs = intervals(40, 40, 40, 40)
    session = EvSessionEnvelope("s1", max_kw=(44.0,) * 4, required_kwh=11.0, deadline_index=3, headroom_kwh=30.0,
                                baseline_kw=(44.0, 0.0, 0.0, 0.0))
    ev = EvEnvelope(asset_id="ev", device_id="evse-1", baseline_kw=(44.0, 0.0, 0.0, 0.0), cost_per_kwh=0.1,
                    max_change_kw=None, charging_efficiency=1.0, sessions=(session,))
    req = PlanRequest(ivs, (ev,))
    lp, greedy = plan_dispatch(req), plan_dispatch(req, method="greedy")
    for plan in (lp, greedy):
        assert check_plan(req, plan) == []
        assert sum(p * 0.25 for p in plan.schedules[0].power_kw) == pytest.approx(11.0)
    assert min(lp.response_kw) >= min(greedy.response_kw) - 1e-6
    assert lp.shortfall_kwh <= greedy.shortfall_kwh + 1e-6


def test_an_override_wins_excluded_assets_stay_at_baseline_and_caps_hold() -> None:
    ivs = intervals(150, 150)
    hvac = ThermalEnvelope(asset_id="ahu", device_id="ahu-1", baseline_kw=(80.0, 80.0), cost_per_kwh=0.2,
                           max_change_kw=10.0, power_min_kw=20.0, power_max_kw=100.0, temp_c=24.0, temp_min_c=22.0,
                           temp_max_c=26.0, kwh_per_degc=5.0, mode_sign=1)
    req = PlanRequest(ivs, (battery(200.0, n=2, cap=0.0), hvac))
    plan = plan_dispatch(req)
    assert check_plan(req, plan) == []
    assert plan.schedules[0].power_kw == (0.0, 0.0)
    assert all(abs(p - 80.0) <= 10.0 + 1e-6 for p in plan.schedules[1].power_kw)
    assert plan.response_kw == pytest.approx((10.0, 10.0))


def test_hvac_setpoints_stay_in_the_comfort_band() -> None:
    ivs = intervals(60, 60, 60, 60)
    hvac = ThermalEnvelope(asset_id="ahu", device_id="ahu-1", baseline_kw=(80.0,) * 4, cost_per_kwh=0.2,
                           max_change_kw=None, power_min_kw=20.0, power_max_kw=100.0, temp_c=24.0, temp_min_c=22.0,
                           temp_max_c=25.0, kwh_per_degc=10.0, mode_sign=1)
    plan = plan_dispatch(PlanRequest(ivs, (hvac,)))
    temps = plan.schedules[0].temp_c
    assert temps is not None
    assert max(temps) <= 25.0 + 1e-6
    assert temps[-1] == pytest.approx(25.0)
    assert sum(plan.response_kw) * 0.25 == pytest.approx(10.0)  # 1 °C of margin × 10 kWh/°C


def test_the_export_limit_caps_battery_discharge() -> None:
    ivs = intervals(150, 150)
    req = PlanRequest(ivs, (battery(200.0, n=2),), park_baseline_kw=(60.0, 60.0), import_max_kw=500.0,
                      export_max_kw=20.0)
    for plan in (plan_dispatch(req), plan_dispatch(req, method="greedy")):
        assert check_plan(req, plan) == []
        assert plan.response_kw == pytest.approx((80.0, 80.0))


def test_a_load_increase_event_charges_the_battery() -> None:
    ivs = intervals(50, 50)
    req = PlanRequest(ivs, (battery(100.0, n=2),), direction=Direction.DOWN)
    plan = plan_dispatch(req)
    assert plan.schedules[0].power_kw == pytest.approx((50.0, 50.0))
    assert check_plan(req, plan) == []


def test_bad_requests_say_what_is_wrong() -> None:
    with pytest.raises(PlanError, match="at least one interval"):
        PlanRequest((), ())
    with pytest.raises(PlanError, match="baseline values"):
        PlanRequest(intervals(10), (battery(10.0, n=2),))
    with pytest.raises(PlanError, match="unknown planning method"):
        plan_dispatch(PlanRequest(intervals(10), ()), method="magic")


def test_envelopes_from_configured_assets() -> None:
    now = T0 - timedelta(minutes=5)
    ivs = uniform_intervals(T0, T0 + timedelta(hours=1), 100.0)
    records = [
        AssetRecord(Battery(asset_id="b1", capacity_kwh=200, charge_power_max_kw=100, discharge_power_max_kw=100,
                            soc_min_pct=10, state=BatteryState(soc_pct=50, power_kw=0)), device_id="bess-1",
                    options={"safety_soc_min_pct": 20}),
        AssetRecord(EvCharger(asset_id="ev1", evse_max_kw=22, sessions=(
            EvSession(session_id="s", plugged_in_at=now - timedelta(hours=1), departure_at=T0 + timedelta(minutes=45),
                      as_of=now, energy_needed_kwh=10, power_kw=22),)), device_id="evse-1"),
        AssetRecord(Thermal(asset_id="h1", rated_power_kw=100, cop=3, thermal_capacitance_kwh_per_k=30,
                            comfort_min_c=22, comfort_max_c=26, max_shed_fraction=0.5,
                            state=ThermalState(indoor_temp_c=24, power_kw=60)), device_id="ahu-1"),
        AssetRecord(ProcessLoad(asset_id="p1", max_duration_h=2, schedule=(
            ProcessBlock(start=T0 - Q, end=T0 + 4 * Q, curtailable_kw=40),)), options={"dispatch_device_id": "press"}),
        AssetRecord(Battery(asset_id="b2", capacity_kwh=10, charge_power_max_kw=5, discharge_power_max_kw=5)),
    ]
    assert device_of(records[3]) == "press"
    envs, warnings = plan_envelopes(records, ivs, now=now, overrides={"ahu-1": 0.0})
    assert [e.asset_id for e in envs] == ["b1", "ev1", "h1", "p1"]
    assert warnings == ("asset b2: no device to command (set its device_id); left out",)
    b1, ev1, h1, p1 = envs
    assert isinstance(b1, BatteryEnvelope)
    assert b1.energy_min_kwh == pytest.approx(40.0)
    assert isinstance(ev1, EvEnvelope)
    assert ev1.sessions[0].deadline_index == 2
    assert ev1.sessions[0].required_kwh == pytest.approx(10.0 - 22 * 5 / 60)  # projected to the event start
    assert isinstance(h1, ThermalEnvelope)
    assert h1.max_change_kw == 0.0
    assert h1.kwh_per_degc == pytest.approx(10.0)
    assert isinstance(p1, ProcessEnvelope)
    assert p1.curtail_kw == (40.0,) * 4
    req = PlanRequest(ivs, envs)
    plan = plan_dispatch(req)
    assert check_plan(req, plan) == []
    assert plan.schedules[2].power_kw == (60.0,) * 4  # the override wins


# --- properties -------------------------------------------------------------------------------------------

@st.composite
def requests(draw: st.DrawFn) -> PlanRequest:
    n = draw(st.integers(1, 6))
    ivs = tuple(PlanInterval(T0 + i * Q, T0 + (i + 1) * Q, draw(st.floats(0, 300))) for i in range(n))
    caps = st.one_of(st.none(), st.just(0.0), st.floats(1, 100))
    cost = st.floats(0.01, 1.0)
    assets: list[object] = []
    for i in range(draw(st.integers(0, 2))):
        e_max = draw(st.floats(10, 300))
        assets.append(BatteryEnvelope(
            asset_id=f"b{i}", device_id=f"b{i}", baseline_kw=(0.0,) * n, cost_per_kwh=draw(cost),
            max_change_kw=draw(caps), charge_max_kw=draw(st.floats(0, 200)), discharge_max_kw=draw(st.floats(0, 200)),
            charge_efficiency=draw(st.floats(0.8, 1)), discharge_efficiency=draw(st.floats(0.8, 1)),
            energy_kwh=draw(st.floats(0, e_max)), energy_min_kwh=draw(st.floats(0, e_max / 2)), energy_max_kwh=e_max))
    for i in range(draw(st.integers(0, 2))):
        p0 = draw(st.floats(0, 150))
        t_min = draw(st.floats(18, 24))
        assets.append(ThermalEnvelope(
            asset_id=f"h{i}", device_id=f"h{i}", baseline_kw=(p0,) * n, cost_per_kwh=draw(cost),
            max_change_kw=draw(caps), power_min_kw=p0 * draw(st.floats(0, 1)), power_max_kw=p0 + draw(st.floats(0, 50)),
            temp_c=draw(st.floats(16, 30)), temp_min_c=t_min, temp_max_c=t_min + draw(st.floats(0.5, 6)),
            kwh_per_degc=draw(st.floats(1, 50)), mode_sign=draw(st.sampled_from([1, -1]))))
    for i in range(draw(st.integers(0, 2))):
        p0s = tuple(draw(st.floats(0, 200)) for _ in range(n))
        assets.append(ProcessEnvelope(
            asset_id=f"p{i}", device_id=f"p{i}", baseline_kw=p0s, cost_per_kwh=draw(cost), max_change_kw=draw(caps),
            curtail_kw=tuple(draw(st.floats(0, p)) for p in p0s),
            increase_kw=tuple(draw(st.floats(0, 50)) for _ in p0s)))
    for i in range(draw(st.integers(0, 2))):
        sessions = []
        for j in range(draw(st.integers(1, 3))):
            max_kw = tuple(draw(st.sampled_from([0.0, 7.0, 22.0])) for _ in range(n))
            deadline = draw(st.integers(0, n - 1))
            achievable = sum(m * 0.25 for m in max_kw[: deadline + 1])
            required = draw(st.floats(0, 1)) * achievable
            baseline, left = [], required
            for m in max_kw:  # uncontrolled charging: flat out until the need is met
                p = min(m, left / 0.25)
                baseline.append(p)
                left -= p * 0.25
            sessions.append(EvSessionEnvelope(f"s{j}", max_kw, required, deadline,
                                              required + draw(st.floats(0, 30)), tuple(baseline)))
        base = tuple(sum(s.baseline_kw[t] for s in sessions) for t in range(n))
        assets.append(EvEnvelope(asset_id=f"e{i}", device_id=f"e{i}", baseline_kw=base, cost_per_kwh=draw(cost),
                                 max_change_kw=draw(caps), charging_efficiency=1.0, sessions=tuple(sessions)))
    limits = draw(st.booleans())
    return PlanRequest(
        ivs, tuple(assets), direction=draw(st.sampled_from(list(Direction))),  # type: ignore[arg-type]
        park_baseline_kw=tuple(draw(st.floats(-50, 600)) for _ in range(n)) if limits else None,
        import_max_kw=draw(st.floats(0, 600)) if limits else None,
        export_max_kw=draw(st.floats(0, 100)) if limits else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_every_plan_keeps_every_limit_and_the_lp_never_delivers_less_than_greedy(req: PlanRequest) -> None:
    lp = plan_dispatch(req)
    greedy = plan_dispatch(req, method="greedy")
    assert lp.method == "lp"
    assert check_plan(req, lp) == []
    assert check_plan(req, greedy) == []
    assert lp.delivered_kwh >= greedy.delivered_kwh - 1e-3 * (1 + greedy.delivered_kwh)
    assert all(s >= 0 for s in lp.shortfall_kw)
