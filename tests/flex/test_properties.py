"""Invariants that must hold for any input (hypothesis)."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flex import (
    AssetFlex,
    Battery,
    BatteryState,
    ConnectionLimit,
    EventWindow,
    LoadWindow,
    Thermal,
    ThermalState,
    aggregate_flex,
    baseline_presets,
    battery_flex,
    compute_baseline,
    thermal_flex,
)
from tests.flex.loadgen import build_load, local

finite = st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False)
DURATIONS = (0.25, 1.0, 2.0, 4.0)


@given(
    capacity=st.floats(min_value=1, max_value=1e4), p_ch=finite, p_dis=finite,
    soc=st.floats(min_value=0, max_value=100), power=st.floats(min_value=-1e4, max_value=1e4),
    rte=st.floats(min_value=0.5, max_value=1.0),
)
def test_battery_flex_is_non_negative_and_shrinks_with_duration(capacity, p_ch, p_dis, soc, power, rte):
    b = Battery(asset_id="b", capacity_kwh=capacity, charge_power_max_kw=p_ch, discharge_power_max_kw=p_dis,
                roundtrip_efficiency=rte, soc_min_pct=5, soc_max_pct=95)
    state = BatteryState(soc_pct=soc, power_kw=power)
    flexes = [battery_flex(b, state, t) for t in DURATIONS]
    for f in flexes:
        assert f.up_kw >= 0
        assert f.down_kw >= 0
    for shorter, longer in pairwise(flexes):
        assert longer.up_kw <= shorter.up_kw + 1e-9
        assert longer.down_kw <= shorter.down_kw + 1e-9
    # Energy bound: what is held for T never exceeds the stored (or free) energy plus the current power.
    eta = rte ** 0.5
    for t, f in zip(DURATIONS, flexes, strict=True):
        assert f.up_kw * t <= max(0.0, power) * t + max(0.0, soc - 5) / 100 * capacity * eta + 1e-6


@given(temp=st.floats(min_value=18, max_value=30), power=st.floats(min_value=0, max_value=500),
       cap=st.floats(min_value=1, max_value=500), mode=st.sampled_from(["cooling", "heating"]))
def test_thermal_flex_respects_power_limits(temp, power, cap, mode):
    hvac = Thermal(asset_id="h", mode=mode, rated_power_kw=500, cop=3, thermal_capacitance_kwh_per_k=cap,
                   comfort_min_c=21, comfort_max_c=26, max_shed_fraction=0.5)
    f = thermal_flex(hvac, ThermalState(indoor_temp_c=temp, power_kw=power), 1.0)
    assert 0 <= f.up_kw <= power * 0.5 + 1e-9
    assert 0 <= f.down_kw <= max(0.0, 500 - power) + 1e-9


@given(
    flexes=st.lists(st.tuples(st.sampled_from(["s1", "s2", None]), finite, finite), max_size=8),
    load=finite, import_max=finite, export_max=finite, derate=st.floats(min_value=0, max_value=1),
)
def test_aggregation_never_exceeds_the_sum_or_goes_negative(flexes, load, import_max, export_max, derate):
    assets = [AssetFlex(f"a{i}", "battery", site, up, down, 0.0) for i, (site, up, down) in enumerate(flexes)]
    pf = aggregate_flex(assets, duration_h=1.0, park_limit=ConnectionLimit(import_max, export_max),
                        park_load=LoadWindow.flat(load), site_limits={"s1": ConnectionLimit(import_max / 2, 0)},
                        site_loads={"s1": LoadWindow.flat(load / 3)}, derating_up=derate, derating_down=derate)
    assert 0 <= pf.up_kw <= pf.up_sum_kw * derate + 1e-6
    assert 0 <= pf.down_kw <= pf.down_sum_kw * derate + 1e-6
    assert pf.up_kw <= (load + export_max) * derate + 1e-6


@pytest.mark.parametrize("preset", sorted(baseline_presets()))
@settings(max_examples=5, deadline=None)
@given(level=st.floats(min_value=1, max_value=1e5))
def test_constant_load_has_a_constant_baseline_under_every_preset(preset, level):
    day = date(2026, 7, 15)
    load = build_load(date(2026, 4, 1), day, lambda d: level)
    result = compute_baseline(load, EventWindow(local(day, 14), local(day, 16)), baseline_presets()[preset])
    assert result.profile["baseline_kw"].to_list() == pytest.approx([level] * 8)
