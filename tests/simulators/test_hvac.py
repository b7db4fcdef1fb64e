"""The simulated HVAC unit: exact 1R1C physics, setpoint control, setpoint-offset dispatch and its rebound."""

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from simulators import Scenario, load_scenario
from simulators import _physics as phy
from simulators._devices import ParkModel

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 7, 15, 0, 0, tzinfo=SH).astimezone(UTC)  # a Wednesday in July
DT_S = 60
ZONE = phy.ZoneParams(capacitance_kwh_per_k=10.0, resistance_k_per_kw=0.1, cop=3.0, rated_power_kw=50.0, heat_sign=1.0)


def test_zone_temperature_is_the_exact_1r1c_solution():
    # RC = 0.1 K/kW x 10 kWh/K = 1 h. Free-running from 20 degC with 30 degC outside for 1 h:
    # T = 30 + (20 - 30) e^-1 = 26.3212 degC.
    assert phy.zone_temperature_c(ZONE, 20.0, outdoor_c=30.0, gains_kw=0.0, power_kw=0.0, hours=1.0) == (
        pytest.approx(30 - 10 * math.exp(-1)))
    # Cooling 10 kW electric at COP 3 removes 30 kW: T_inf = 30 + 0.1 x (0 - 30) = 27; T = 27 - 7 e^-1.
    assert phy.zone_temperature_c(ZONE, 20.0, outdoor_c=30.0, gains_kw=0.0, power_kw=10.0, hours=1.0) == (
        pytest.approx(27 - 7 * math.exp(-1)))
    # Exact: two half hours equal one hour.
    half = phy.zone_temperature_c(ZONE, 20.0, outdoor_c=30.0, gains_kw=5.0, power_kw=4.0, hours=0.5)
    assert phy.zone_temperature_c(ZONE, half, outdoor_c=30.0, gains_kw=5.0, power_kw=4.0, hours=0.5) == (
        pytest.approx(phy.zone_temperature_c(ZONE, 20.0, outdoor_c=30.0, gains_kw=5.0, power_kw=4.0, hours=1.0)))


def test_controller_holds_the_setpoint_with_the_balancing_power():
    # At 24 degC with 30 degC outside: envelope (30 - 24) / 0.1 = 60 kW plus 20 kW gains = 80 kW of heat;
    # at COP 3 that is 26.667 kW electric, whatever the horizon.
    for horizon_h in (0.1, 0.5, 2.0):
        power = phy.zone_power_kw(ZONE, 24.0, outdoor_c=30.0, gains_kw=20.0, target_c=24.0, horizon_h=horizon_h)
        assert power == pytest.approx(80 / 3)
    # Heating mirrors it: 0 degC outside, 20 degC inside, loss 200 kW minus 5 kW gains = 195 kW / 3.
    heat_pump = phy.ZoneParams(10.0, 0.1, 3.0, 100.0, -1.0)
    assert phy.zone_power_kw(heat_pump, 20.0, outdoor_c=0.0, gains_kw=5.0, target_c=20.0, horizon_h=0.5) == (
        pytest.approx(65.0))


def test_controller_reaches_the_target_in_its_horizon_and_clips_to_its_rating():
    power = phy.zone_power_kw(ZONE, 25.0, outdoor_c=30.0, gains_kw=20.0, target_c=24.5, horizon_h=0.5)
    assert 0 < power < ZONE.rated_power_kw
    reached = phy.zone_temperature_c(ZONE, 25.0, outdoor_c=30.0, gains_kw=20.0, power_kw=power, hours=0.5)
    assert reached == pytest.approx(24.5)
    # A raised setpoint: cooling stops. A big pull-down: full power.
    # (free-running, the zone only reaches 32 - 8 e^-0.1 = 24.76 degC in 0.1 h)
    assert phy.zone_power_kw(ZONE, 24.0, outdoor_c=30.0, gains_kw=20.0, target_c=26.0, horizon_h=0.1) == 0.0
    assert phy.zone_power_kw(ZONE, 30.0, outdoor_c=30.0, gains_kw=20.0, target_c=24.0, horizon_h=0.3) == 50.0


def _with_offset(offset_c: float, *, start_h=15, end_h=16, units=None) -> Scenario:
    data = load_scenario().with_overrides(extra_meters=0).model_dump(mode="python")
    data["dispatch"] = {"hvac": [{"start": datetime(2026, 7, 15, start_h, tzinfo=SH),
                                  "end": datetime(2026, 7, 15, end_h, tzinfo=SH), "setpoint_offset_c": offset_c,
                                  "units": units}]}
    return Scenario.model_validate(data)


def _run(scenario, n=1440):
    return list(ParkModel(scenario, seed=11, start=START, sample_interval_s=DT_S).run(n))


def _hour(ts):
    local = (ts - timedelta(seconds=DT_S / 2)).astimezone(SH)
    return local.hour + local.minute / 60


@pytest.fixture(scope="module")
def runs():
    return _run(_with_offset(0.0)), _run(_with_offset(2.0, units=["hvac-office-1"]))


def _series(run, metric, start_h, end_h):
    return [v["hvac-office-1"][metric] for ts, v in run if start_h <= _hour(ts) < end_h]


def test_occupied_hours_hold_the_setpoint_and_nights_float(runs):
    free, _ = runs
    spec = next(d for d in load_scenario().devices if d.id == "hvac-office-1")
    occupied = _series(free, "indoor_temperature", 9, 19)
    assert max(abs(t - spec.setpoint_c) for t in occupied) < 0.1
    assert min(_series(free, "active_power", 10, 17)) > 20        # a July afternoon needs cooling
    assert max(_series(free, "active_power", 0, 7)) == 0.0        # set back to 30 degC: the chiller rests
    assert max(_series(free, "indoor_temperature", 0, 7)) <= spec.unoccupied_setpoint_c + 1e-6
    assert max(_series(free, "active_power", 7.5, 8)) == spec.rated_power_kw  # morning pull-down


def test_setpoint_offset_sheds_then_rebounds(runs):
    free, shed = runs
    assert _series(free, "active_power", 0, 15) == _series(shed, "active_power", 0, 15)
    in_window = _series(shed, "active_power", 15, 16)
    assert in_window[0] == 0.0                                           # cooling stops at once
    temps = _series(shed, "indoor_temperature", 15, 16)
    assert all(b >= a - 1e-9 for a, b in pairwise(temps))  # the zone drifts up
    assert 27 < temps[-1] <= 28 + 1e-6                                        # ... towards 26 + 2 degC
    shed_kw = (sum(_series(free, "active_power", 15, 16)) - sum(in_window)) / 60
    assert shed_kw > 30
    after_free, after_shed = _series(free, "active_power", 16, 17), _series(shed, "active_power", 16, 17)
    assert after_shed[0] == 120.0                                        # rebound: full power to pull down
    rebound_kwh = (sum(after_shed) - sum(after_free)) / 60
    assert 0.5 * shed_kw < rebound_kwh < 1.5 * shed_kw                   # most of the shed energy comes back
    assert abs(_series(shed, "indoor_temperature", 17, 17.1)[0] - 26) < 0.3  # back at the setpoint by 17:00


def test_offsets_are_clamped_to_the_comfort_band_while_occupied():
    temps = _series(_run(_with_offset(8.0, start_h=10, end_h=14), n=900), "indoor_temperature", 10, 14)
    assert max(temps) <= 28 + 1e-6
    assert max(temps) > 27.5


def test_hvac_counts_in_the_office_meter_and_the_boundary(runs):
    free, shed = runs
    for (_, f), (_, s) in zip(free, shed, strict=True):
        delta = f["hvac-office-1"]["active_power"] - s["hvac-office-1"]["active_power"]
        assert f["m2-office"]["active_power"] - s["m2-office"]["active_power"] == pytest.approx(delta, abs=2e-3)
        assert f["m1-boundary"]["active_power"] - s["m1-boundary"]["active_power"] == pytest.approx(
            delta * 1.012, abs=5e-3)
        assert f["m2-workshop-a"] == s["m2-workshop-a"]
        assert f["ev-dc-1"] == s["ev-dc-1"]


def test_offset_for_other_units_leaves_this_one_alone():
    data = _with_offset(2.0).model_dump(mode="python")
    unit = next(d for d in data["devices"] if d["id"] == "hvac-office-1")
    data["devices"].append({**unit, "id": "hvac-office-2", "initial_registers": {}})
    data["dispatch"]["hvac"][0]["units"] = ["hvac-office-2"]
    run = _run(Scenario.model_validate(data), n=1000)
    reference = _run(_with_offset(0.0), n=1000)
    assert _series(run, "active_power", 15, 16) == _series(reference, "active_power", 15, 16)
    assert [v["hvac-office-2"]["active_power"] for ts, v in run if 15 <= _hour(ts) < 15.1] == [0.0] * 6
