"""Golden cases for per-asset flexibility (domain.md §4.3), park aggregation and the 24-hour forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from flex import (
    AssetFlex,
    Battery,
    BatteryState,
    ConnectionLimit,
    EvCharger,
    EvSession,
    LoadWindow,
    ParkContext,
    ProcessBlock,
    ProcessLoad,
    ProcessState,
    Pv,
    PvState,
    Thermal,
    ThermalState,
    aggregate_flex,
    asset_flex,
    battery_flex,
    ev_session_flex,
    forecast_park_flex,
    park_flex_at,
    process_flex,
    project_session,
    pv_flex,
    thermal_flex,
)
from tests.flex.loadgen import local

DAY = date(2026, 7, 15)


def _battery(**state) -> Battery:
    return Battery(
        asset_id="bess-1", site_id="s1", capacity_kwh=200, charge_power_max_kw=100, discharge_power_max_kw=100,
        roundtrip_efficiency=0.81, soc_min_pct=10, soc_max_pct=90,
        state=BatteryState(**({"soc_pct": 60, "power_kw": 20} | state)),
    )


def test_battery_envelope_golden():
    # η = √0.81 = 0.9 each way; SOC 60 %, bounds 10..90 %, E = 200 kWh, P₀ = +20 kW (charging).
    # T = 1 h: dischargeable = (0.6-0.1)*200*0.9/1 = 90 -> up = 20 + min(100, 90) = 110
    #          chargeable   = (0.9-0.6)*200/(0.9*1) = 66.667 -> down = min(100, 66.667) - 20 = 46.667
    # T = 0.25 h: 360 / 266.7 -> power-limited: up = 20 + 100 = 120, down = 100 - 20 = 80
    # T = 4 h: up = 20 + 22.5 = 42.5; down = 16.667 - 20 < 0 -> 0
    b = _battery()
    assert b.state is not None
    one = battery_flex(b, b.state, 1.0)
    assert (one.up_kw, one.down_kw) == pytest.approx((110.0, 46.6667), rel=1e-4)
    quarter = battery_flex(b, b.state, 0.25)
    assert (quarter.up_kw, quarter.down_kw) == pytest.approx((120.0, 80.0))
    four = battery_flex(b, b.state, 4.0)
    assert (four.up_kw, four.down_kw) == pytest.approx((42.5, 0.0))


def test_battery_discharging_at_full_power_has_no_up_flex():
    b = _battery(power_kw=-100.0)
    assert b.state is not None
    f = battery_flex(b, b.state, 1.0)
    assert f.up_kw == 0.0
    # down = min(100, 66.667) - (-100) = 166.667: stop discharging and charge
    assert f.down_kw == pytest.approx(166.6667, rel=1e-4)


def test_battery_parameter_validation():
    with pytest.raises(ValidationError, match="soc_min_pct"):
        Battery(asset_id="b", capacity_kwh=1, charge_power_max_kw=1, discharge_power_max_kw=1,
                soc_min_pct=90, soc_max_pct=10)
    with pytest.raises(ValidationError):
        Battery(asset_id="b", capacity_kwh=-1, charge_power_max_kw=1, discharge_power_max_kw=1)


def _charger(*sessions: EvSession) -> EvCharger:
    return EvCharger(asset_id="evse-1", site_id="s1", evse_max_kw=22, sessions=sessions)


def _session(**kw) -> EvSession:
    base = {"session_id": "a", "plugged_in_at": local(DAY, 8), "departure_at": local(DAY, 18), "as_of": local(DAY, 10),
            "energy_needed_kwh": 40.0, "power_kw": 22.0, "battery_headroom_kwh": 60.0}
    return EvSession(**(base | kw))


def test_ev_session_golden():
    # At 10:00, needs 40 kWh by 18:00 (8 h) -> P_req = 40/8 = 5 kW; charging at 22 kW -> up = 17 kW.
    # down = min(22, 60/1) - 22 = 0 (already at the EVSE limit).
    s = _session()
    charger = _charger(s)
    f = ev_session_flex(charger, s, local(DAY, 10), 1.0)
    assert (f.up_kw, f.down_kw) == pytest.approx((17.0, 0.0))
    # An idle car with 30 kWh headroom: down = min(22, 30/1) = 22 for 1 h, min(22, 30/2) = 15 for 2 h.
    idle = _session(energy_needed_kwh=0.0, power_kw=0.0, battery_headroom_kwh=30.0)
    assert ev_session_flex(charger, idle, local(DAY, 10), 1.0).down_kw == pytest.approx(22.0)
    assert ev_session_flex(charger, idle, local(DAY, 10), 2.0).down_kw == pytest.approx(15.0)
    # Leaves at 10:30: cannot sustain 1 h -> nothing.
    leaving = _session(departure_at=local(DAY, 10, 30))
    assert ev_session_flex(charger, leaving, local(DAY, 10), 1.0).up_kw == 0.0


def test_ev_session_projection_under_uncontrolled_charging():
    # 40 kWh at 22 kW: after 1 h 18 kWh left (still charging), after 2 h done (power 0).
    s = _session()
    charger = _charger(s)
    one_hour = project_session(charger, s, local(DAY, 11))
    assert one_hour.energy_needed_kwh == pytest.approx(18.0)
    assert one_hour.power_kw == pytest.approx(22.0)
    assert one_hour.battery_headroom_kwh == pytest.approx(38.0)
    two_hours = project_session(charger, s, local(DAY, 12))
    assert two_hours.energy_needed_kwh == pytest.approx(0.0)
    assert two_hours.power_kw == 0.0
    # An expected arrival at 12:00 is absent before and charges at the EVSE maximum after.
    later = _session(session_id="b", plugged_in_at=local(DAY, 12), power_kw=0.0)
    assert asset_flex(_charger(later), at=local(DAY, 11), duration_h=0.25, now=local(DAY, 10)).up_kw == 0.0
    p = project_session(charger, later, local(DAY, 13))
    assert p.energy_needed_kwh == pytest.approx(18.0)


def test_thermal_envelope_golden():
    # Cooling, C = 50 kWh/K, COP 4, band 22..26 °C, indoor 24 °C, P = 120 kW, rated 200, shed ≤ 50 %.
    # T = 1 h: up = min(120*0.5 = 60, 50*(26-24)/(4*1) = 25) = 25; down = min(200-120 = 80, 50*2/4 = 25) = 25
    #          rebound = 25 kW * 1 h * 1.0 = 25 kWh
    # T = 0.25 h: up = min(60, 100) = 60; down = min(80, 100) = 80
    hvac = Thermal(asset_id="ahu", rated_power_kw=200, cop=4, thermal_capacitance_kwh_per_k=50, comfort_min_c=22,
                   comfort_max_c=26, max_shed_fraction=0.5, max_event_duration_h=2,
                   state=ThermalState(indoor_temp_c=24, power_kw=120))
    assert hvac.state is not None
    one = thermal_flex(hvac, hvac.state, 1.0)
    assert (one.up_kw, one.down_kw, one.rebound_kwh) == pytest.approx((25.0, 25.0, 25.0))
    quarter = thermal_flex(hvac, hvac.state, 0.25)
    assert (quarter.up_kw, quarter.down_kw) == pytest.approx((60.0, 80.0))
    assert thermal_flex(hvac, hvac.state, 4.0).up_kw == 0.0  # beyond the 2 h the site allows
    # Heating mode mirrors: shedding uses the margin down to 22 °C (2 K) -> same 25 kW for 1 h.
    heating = hvac.model_copy(update={"mode": "heating"})
    assert thermal_flex(heating, ThermalState(indoor_temp_c=23, power_kw=120), 1.0).up_kw == pytest.approx(12.5)


def _process(**state) -> ProcessLoad:
    blocks = (
        ProcessBlock(start=local(DAY, 8), end=local(DAY, 12), curtailable_kw=300, increase_kw=50),
        ProcessBlock(start=local(DAY, 12), end=local(DAY, 13), curtailable_kw=100),
        ProcessBlock(start=local(DAY, 13), end=local(DAY, 18), curtailable_kw=300, increase_kw=50),
    )
    return ProcessLoad(asset_id="kiln", schedule=blocks, min_notice_minutes=60, max_duration_h=2,
                       max_events_per_day=1, state=ProcessState(**state))


def test_process_envelope_golden():
    p = _process()
    now = local(DAY, 9)
    assert process_flex(p, local(DAY, 10), 1.0, now, "2026-07-15").up_kw == 300.0
    assert process_flex(p, local(DAY, 10), 1.0, now, "2026-07-15").down_kw == 50.0
    # 11:30-12:30 spans the 100 kW block -> min = 100; no increase block at 12:00-13:00 -> 0.
    f = process_flex(p, local(DAY, 11, 30), 1.0, now, "2026-07-15")
    assert (f.up_kw, f.down_kw) == (100.0, 0.0)
    assert process_flex(p, local(DAY, 10), 4.0, now, "2026-07-15").up_kw == 0.0       # > max duration
    assert process_flex(p, local(DAY, 9, 30), 1.0, now, "2026-07-15").up_kw == 0.0    # notice 30 < 60 min
    assert process_flex(p, local(DAY, 17, 30), 1.0, now, "2026-07-15").up_kw == 0.0   # schedule ends 18:00
    used = _process(events_on_day=1, day="2026-07-15")
    assert process_flex(used, local(DAY, 10), 1.0, now, "2026-07-15").up_kw == 0.0    # daily budget used
    assert process_flex(used, local(DAY, 10), 1.0, now, "2026-07-16").up_kw == 300.0  # another day


def test_pv_envelope():
    pv = Pv(asset_id="pv", rated_kw=120)
    assert pv_flex(pv, PvState(power_kw=80, available_kw=100)) == pv_flex(pv, PvState(power_kw=80, available_kw=100))
    f = pv_flex(pv, PvState(power_kw=80, available_kw=100))
    assert (f.up_kw, f.down_kw) == (20.0, 80.0)
    fixed = pv.model_copy(update={"curtailable": False})
    assert pv_flex(fixed, PvState(power_kw=80)).down_kw == 0.0


def test_aggregation_with_site_and_park_limits_and_derating():
    # Site s1: A (100 up / 50 down) + B (60 / 40) = 160 / 90; s1 export limit 0 at load 120 -> up ≤ 120;
    # import 500 -> down ≤ 380 (90 ok). Unsited C: 30 / 10. Total 150 / 100.
    # Park import 1000 at load 950 -> down ≤ 50 (limited). Derating up 0.8 -> up 120; down 50.
    flexes = [AssetFlex("a", "battery", "s1", 100, 50, 0), AssetFlex("b", "hvac", "s1", 60, 40, 5),
              AssetFlex("c", "pv", None, 30, 10, 0)]
    pf = aggregate_flex(
        flexes, duration_h=1.0, park_limit=ConnectionLimit(import_max_kw=1000), park_load=LoadWindow.flat(950),
        site_limits={"s1": ConnectionLimit(import_max_kw=500, export_max_kw=0)},
        site_loads={"s1": LoadWindow.flat(120)}, derating_up=0.8,
    )
    assert (pf.up_sum_kw, pf.down_sum_kw) == (190, 100)
    assert pf.up_kw == pytest.approx(120.0)
    assert pf.down_kw == pytest.approx(50.0)
    assert pf.limited_by == ("s1:export", "park:import")


def test_park_flex_and_forecast():
    now = datetime(2026, 7, 15, 2, 7, tzinfo=UTC)  # 10:07 local -> first slot 02:00 UTC
    battery = _battery()
    charger = _charger(_session(as_of=now, departure_at=now + timedelta(hours=2)))
    assets = [battery, charger]
    ctx = ParkContext(park_limit=ConnectionLimit(import_max_kw=10_000, export_max_kw=0), park_load_kw=5000.0)
    current = park_flex_at(assets, at=now, duration_h=1.0, now=now, context=ctx)
    # battery 110 / 46.667 (golden above) + EV: 40 kWh over the 1.883 h left -> P_req 21.24 -> up 0.76
    p_req = 40.0 / ((now + timedelta(hours=2) - now).total_seconds() / 3600 - 0)
    assert current.up_kw == pytest.approx(110.0 + (22.0 - p_req))
    frame = forecast_park_flex(assets, now=now, durations_h=[0.25, 1, 2, 4], context=ctx)
    assert frame.height == 96 * 4
    assert frame["slot_start"][0] == datetime(2026, 7, 15, 2, 0, tzinfo=UTC)
    later = frame.filter((frame["slot_start"] == datetime(2026, 7, 15, 5, 0, tzinfo=UTC)) & (frame["duration_h"] == 1))
    # Three hours later the battery idles at 60 %: up = 0 + 90, down = 66.667; the EV has left.
    assert later["up_kw"][0] == pytest.approx(90.0)
    assert later["down_kw"][0] == pytest.approx(66.6667, rel=1e-4)
