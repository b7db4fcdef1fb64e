"""Live M&V core: baseline fixed at notification, per-interval delivery, forecast, and the final figures
agreeing with flex's after-the-fact evaluation on the same data."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flex import Direction, EventRequest, EventWindow, evaluate_event, resolve_method
from tests.flex.loadgen import build_load, local
from vpp._live_mv import fix_baseline, interval_demand_kw, live_performance, metered_frame

DAY = date(2026, 7, 15)
WINDOW = EventWindow(local(DAY, 14), local(DAY, 16))  # 8 intervals of 15 min
NOTIFIED = local(DAY, 9)


def _history(seed: int) -> object:
    rng = random.Random(seed)
    return build_load(date(2026, 6, 1), DAY, lambda d: 900.0 + rng.uniform(-100, 100))


@pytest.mark.parametrize("preset", ["JIANGSU_5WD", "CAISO_10IN10", "PJM_HIGH4OF5_SAA"])
@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN])
def test_final_live_figures_match_flex_evaluate_event(preset: str, direction: Direction) -> None:
    method = resolve_method(preset)
    demand = _history(7)
    baseline = fix_baseline(demand, WINDOW, method, notified_at=NOTIFIED, timezone="Asia/Shanghai")
    slots = WINDOW.slots(15)
    rng = random.Random(3)
    metered = {ts: 600.0 + rng.uniform(-200, 400) for ts in slots if ts != slots[3]}  # one interval missing
    perf = live_performance(baseline.baseline_kw(), metered, {}, direction=direction, committed_kw=250.0,
                            interval_minutes=15, now=WINDOW.end + timedelta(minutes=1))
    final = evaluate_event(EventRequest(WINDOW, direction, 250.0), baseline, metered_frame(metered))
    assert perf.finished
    assert perf.missing_intervals == final.missing_intervals == 1
    assert math.isclose(perf.delivered_kwh, final.delivered_kwh, rel_tol=1e-12, abs_tol=1e-9)
    assert math.isclose(perf.avg_reduction_kw, final.avg_reduction_kw, rel_tol=1e-12, abs_tol=1e-9)
    assert [r.reduction_kw for r in perf.intervals] == final.intervals["reduction_kw"].to_list()


def test_baseline_ignores_everything_metered_after_notification() -> None:
    method = resolve_method("CAISO_10IN10")  # day-of adjustment window 10:00-13:00 lies after a 09:00 notice
    demand = _history(11)
    early = fix_baseline(demand, WINDOW, method, notified_at=local(DAY, 9), timezone="Asia/Shanghai")
    spiked = demand.with_columns(demand["demand_kw"] * 3.0)  # every value changes, incl. after notification
    later_rows = spiked.filter(spiked["ts"] >= local(DAY, 8, 45).astimezone(UTC))
    mixed = demand.filter(demand["ts"] < local(DAY, 8, 45).astimezone(UTC)).vstack(later_rows)
    again = fix_baseline(mixed, WINDOW, method, notified_at=local(DAY, 9), timezone="Asia/Shanghai")
    assert again.baseline_kw() == early.baseline_kw()
    assert not early.adjustment.applied  # its window had not been metered at notification
    full = fix_baseline(mixed, WINDOW, method, notified_at=local(DAY, 13, 30), timezone="Asia/Shanghai")
    assert full.adjustment.applied
    assert full.baseline_kw() != early.baseline_kw()


def test_forecast_scales_the_remaining_plan_by_how_well_the_plan_was_kept() -> None:
    slots = WINDOW.slots(15)
    base = dict.fromkeys(slots, 1000.0)
    plan = dict.fromkeys(slots, 200.0)
    metered = {slots[0]: 900.0, slots[1]: 900.0}  # 100 kW delivered where 200 kW were planned
    perf = live_performance(base, metered, plan, direction=Direction.UP, committed_kw=200.0, interval_minutes=15,
                            now=slots[2] + timedelta(minutes=5))
    assert perf.completed_intervals == 2
    assert not perf.finished
    assert perf.delivered_kwh == pytest.approx(50.0)
    assert perf.delivered_ratio == pytest.approx(0.5)
    # 50 kWh so far + 6 intervals × 200 kW × 0.25 h × 0.5 kept = 200 kWh over 2 h → 100 kW, half the commitment
    assert perf.forecast_kwh == pytest.approx(200.0)
    assert perf.forecast_ratio == pytest.approx(0.5)
    on_plan = live_performance(base, {slots[0]: 800.0}, plan, direction=Direction.UP, committed_kw=200.0,
                               interval_minutes=15, now=slots[1])
    assert on_plan.forecast_ratio == pytest.approx(1.0)
    before = live_performance(base, {}, plan, direction=Direction.UP, committed_kw=200.0, interval_minutes=15,
                              now=slots[0] - timedelta(hours=1))
    assert before.completed_intervals == 0
    assert before.forecast_ratio == pytest.approx(1.0)
    assert before.delivered_ratio is None


def test_missing_completed_interval_delivers_nothing() -> None:
    slots = WINDOW.slots(15)
    perf = live_performance(dict.fromkeys(slots, 500.0), {}, {}, direction=Direction.UP, committed_kw=100.0,
                            interval_minutes=15, now=WINDOW.end)
    assert perf.delivered_kwh == 0.0
    assert perf.missing_intervals == len(slots)
    assert perf.forecast_kwh == 0.0


T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


@given(
    power_kw=st.floats(min_value=0.0, max_value=5000.0),
    export_kw=st.floats(min_value=0.0, max_value=500.0),
    period_s=st.integers(min_value=1, max_value=45),
    offset_s=st.integers(min_value=0, max_value=44),
    n_slots=st.integers(min_value=1, max_value=5),
)
def test_constant_power_is_recovered_from_the_counters(
    power_kw: float, export_kw: float, period_s: int, offset_s: int, n_slots: int
) -> None:
    start = T0 - timedelta(seconds=offset_s % period_s + period_s)
    times = [start + timedelta(seconds=period_s * i) for i in range((n_slots * 60 + 2 * period_s + 60) // period_s)]
    imp = [(t, 10_000.0 + power_kw * (t - T0).total_seconds() / 3600) for t in times]
    exp = [(t, 50.0 + export_kw * (t - T0).total_seconds() / 3600) for t in times]
    slots = [T0 + timedelta(minutes=i) for i in range(n_slots)]
    got = interval_demand_kw([(1.0, imp), (-1.0, exp)], slots, 1)
    covered = [s for s in slots if s + timedelta(minutes=1) <= times[-1]]
    assert sorted(got) == covered
    for value in got.values():
        assert value == pytest.approx(power_kw - export_kw, abs=1e-6)


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), max_size=8))
def test_counter_gaps_and_resets_never_become_numbers(values: list[float]) -> None:
    readings = [(T0 + timedelta(seconds=20 * i), v) for i, v in enumerate(values)]
    got = interval_demand_kw([(1.0, readings)], [T0, T0 + timedelta(minutes=1)], 1)
    for ts, kw in got.items():
        assert math.isfinite(kw)
        assert kw >= 0.0
        assert readings
        assert readings[0][0] <= ts
        assert ts + timedelta(minutes=1) <= readings[-1][0]
    assert interval_demand_kw([], [T0], 1) == {}
