"""Pure physics and timing helpers of the simulator."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators import _physics as phy
from simulators._timing import SimulationWindow, batch_end, batch_index, parse_duration

GUANGZHOU = (23.13, 113.26)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1d12h", 129600), ("1h30m", 5400), ("300", 300),
     ("1w", 604800), ("0.5h", 1800)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "1x", "d", "-5m", "0s", "1d 2"])
def test_parse_duration_rejects_garbage(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_window_ends_at_now_floored_to_the_sample_interval():
    now = datetime(2026, 11, 20, 8, 7, 31, tzinfo=UTC)
    window = SimulationWindow.ending_at(now, timedelta(hours=1), 60)
    assert window.end == datetime(2026, 11, 20, 8, 7, tzinfo=UTC)
    assert window.start == datetime(2026, 11, 20, 7, 7, tzinfo=UTC)
    times = window.sample_times()
    assert len(times) == window.n_samples == 60
    assert times[0] == window.start + timedelta(minutes=1)
    assert times[-1] == window.end
    with pytest.raises(ValueError, match="aware"):
        SimulationWindow.ending_at(now.replace(tzinfo=None), timedelta(hours=1), 60)


def test_batches_are_epoch_aligned_and_include_their_end():
    ts = datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert batch_index(ts, 900) == batch_index(ts - timedelta(minutes=14), 900)
    assert batch_index(ts + timedelta(minutes=1), 900) == batch_index(ts, 900) + 1
    assert batch_end(batch_index(ts, 900), 900) == ts


def test_shapes_interpolate_and_wrap():
    assert phy.shape_fraction("office", 3.0) == 0.0
    assert phy.shape_fraction("office", 10.0) == 1.0
    assert phy.shape_fraction("office", 12.0) < phy.shape_fraction("office", 11.0)  # lunch dip
    assert phy.shape_fraction("office", 26.0) == phy.shape_fraction("office", 2.0)
    assert phy.shape_daily_mean("constant") == pytest.approx(1.0)
    assert phy.shape_daily_mean("flat") == pytest.approx(0.5)


def test_smooth_noise_is_deterministic_and_has_the_requested_spread():
    a = phy.SmoothNoise(random.Random(1), 0.05, 600, 60)
    b = phy.SmoothNoise(random.Random(1), 0.05, 600, 60)
    xs = [a.next() for _ in range(20000)]
    assert xs[:100] == [b.next() for _ in range(100)]
    std = math.sqrt(sum(x * x for x in xs) / len(xs))
    assert 0.035 < std < 0.065


def test_sun_is_down_at_local_midnight_and_up_at_local_noon():
    # 2026-06-21 in Guangzhou (UTC+8): local midnight is 16:00 UTC the day before, local noon is 04:00 UTC
    midnight = datetime(2026, 6, 20, 16, 0, tzinfo=UTC)
    noon = datetime(2026, 6, 21, 4, 30, tzinfo=UTC)
    assert phy.solar_elevation_sine(midnight, *GUANGZHOU) < 0
    assert phy.solar_elevation_sine(noon, *GUANGZHOU) > 0.95  # near the tropic at the solstice: sun almost overhead
    assert phy.clear_sky_irradiance_w_m2(phy.solar_elevation_sine(midnight, *GUANGZHOU)) == 0.0
    assert 800 < phy.clear_sky_irradiance_w_m2(phy.solar_elevation_sine(noon, *GUANGZHOU)) < 1100


def test_pv_power_is_clipped_at_the_rating():
    assert phy.pv_power_kw(100, 0, 0.8, 1) == 0
    assert phy.pv_power_kw(100, 2000, 1.0, 1.0) == 100
    assert phy.pv_power_kw(100, 500, 0.8, 0.5) == pytest.approx(20)


def test_pue_rises_with_temperature_within_its_bounds():
    values = [phy.pue(t, 1.3, 1.45, 15, 35) for t in range(-10, 50)]
    assert min(values) == 1.3
    assert max(values) == 1.45
    assert values == sorted(values)


def test_register_counts_forward_and_wraps_at_register_max():
    # DL/T 645 XXXXXX.XX kWh: 999999.99 is the last value shown, one 0.01 step later it shows 0.00
    reg = phy.Register(999_990.0, 999_999.99)
    reg.add(4.0)
    assert reg.reading == pytest.approx(999_994.0)
    reg.add(5.99)
    assert reg.reading == pytest.approx(999_999.99)
    reg.add(0.01)
    assert reg.reading == pytest.approx(0.0, abs=1e-6)
    reg.add(16.5)
    assert reg.reading == pytest.approx(16.5)  # 999,990 + 26.5 - 1,000,000.00
    assert reg.total == pytest.approx(1_000_016.5)
    with pytest.raises(ValueError, match="backwards"):
        reg.add(-1)
    with pytest.raises(ValueError, match="must not exceed register_max"):
        phy.Register(1_000_000.0, 999_999.99)


PARAMS = phy.BatteryParams(500, 250, 200, 0.95, 0.93, 10, 95)


@given(
    soc=st.floats(10, 95),
    setpoints=st.lists(st.floats(-400, 400, allow_nan=False), min_size=1, max_size=50),
    dt_s=st.sampled_from([1, 60, 900, 3600]),
)
def test_battery_step_respects_limits_and_conserves_energy(soc, setpoints, dt_s):
    stored = PARAMS.capacity_kwh * soc / 100
    for setpoint in setpoints:
        power, after = phy.battery_step(PARAMS, stored, setpoint, dt_s)
        dt_h = dt_s / 3600
        assert -PARAMS.max_discharge_kw <= power <= PARAMS.max_charge_kw
        assert power == 0 or math.copysign(1, power) == math.copysign(1, setpoint)
        assert 50 - 1e-9 <= after <= 475 + 1e-9
        expected = stored + (power * 0.95 if power > 0 else power / 0.93) * dt_h
        assert after == pytest.approx(expected, abs=1e-9)
        stored = after


def test_three_phase_currents_reproduce_the_power():
    volts = (229.0, 231.0, 230.5)
    currents = phy.three_phase(-120.0, volts, 0.9, (1.02, 0.97, 1.01))
    assert all(i > 0 for i in currents)
    assert sum(v * i for v, i in zip(volts, currents, strict=True)) * 0.9 / 1000 == pytest.approx(120.0)
