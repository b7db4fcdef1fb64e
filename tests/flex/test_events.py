"""Golden cases for event measurement and verification (domain.md §3.3)."""

from __future__ import annotations

from datetime import date

import pytest

from flex import (
    Direction,
    EventRequest,
    EventWindow,
    InvalidEventError,
    compute_baseline,
    evaluate_event,
    load_policy,
    resolve_method,
)
from tests.flex.loadgen import build_load, local, window_overrides

DAY = date(2026, 7, 15)
WINDOW = EventWindow(local(DAY, 14), local(DAY, 15))  # 4 intervals


def _load(event_values: list[float], *, pre: float = 1000.0, estimated=None, missing=None):
    overrides = {local(DAY, 13, 45): pre}
    for i, v in enumerate(event_values):
        overrides[local(DAY, 14, 15 * i)] = v
    return build_load(date(2026, 7, 1), DAY, lambda d: 1000.0, overrides=overrides, estimated=estimated,
                      missing=missing)


def test_load_reduction_event_golden():
    # Jiangsu real-time baseline: B = 1000 kW (13:45-14:00). Actual 800, 750, 900, 850.
    # R = 200, 250, 100, 150 kW; ΔE = (200+250+100+150) * 0.25 h = 175 kWh over T = 1 h
    # -> R_avg = 175 kW, R_min = 100 kW; requested 200 kW -> ratio 0.875 (band "full", 0.8..1.2);
    # declared 250 kW -> 0.7.
    load = _load([800, 750, 900, 850])
    baseline = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    perf = evaluate_event(EventRequest(WINDOW, Direction.UP, 200.0, 250.0), baseline, load)
    assert perf.intervals["reduction_kw"].to_list() == pytest.approx([200, 250, 100, 150])
    assert perf.delivered_kwh == pytest.approx(175.0)
    assert perf.duration_h == pytest.approx(1.0)
    assert perf.avg_reduction_kw == pytest.approx(175.0)
    assert perf.min_reduction_kw == pytest.approx(100.0)
    assert perf.max_reduction_kw == pytest.approx(250.0)
    assert perf.ratio_requested == pytest.approx(0.875)
    assert perf.ratio_declared == pytest.approx(0.7)
    assert perf.band == "full"
    assert perf.quality_ok
    assert perf.quality_reasons == ()


def test_valley_filling_event_reverses_the_sign():
    # 填谷: R = A - B. Actual 1100, 1200, 1300, 1000 against B = 1000 -> 100, 200, 300, 0
    # -> ΔE = 600 * 0.25 = 150 kWh, R_avg = 150 kW; requested 400 -> 0.375 -> band "none" (< 0.5).
    load = _load([1100, 1200, 1300, 1000])
    baseline = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    perf = evaluate_event(EventRequest(WINDOW, Direction.DOWN, 400.0), baseline, load)
    assert perf.intervals["reduction_kw"].to_list() == pytest.approx([100, 200, 300, 0])
    assert perf.avg_reduction_kw == pytest.approx(150.0)
    assert perf.ratio_requested == pytest.approx(0.375)
    assert perf.ratio_declared is None
    assert perf.band == "none"


def test_missing_interval_delivers_nothing_and_fails_the_gate():
    # Third interval missing: ΔE = (200 + 250 + 150) * 0.25 = 150 kWh, still divided by T = 1 h.
    load = _load([800, 750, 900, 850], missing={local(DAY, 14, 30)})
    baseline = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    perf = evaluate_event(EventRequest(WINDOW, Direction.UP, 200.0), baseline, load)
    assert perf.missing_intervals == 1
    assert perf.avg_reduction_kw == pytest.approx(150.0)
    assert perf.intervals["actual_kw"].null_count() == 1
    assert not perf.quality_ok
    assert "no metered data" in perf.quality_reasons[0]


def test_estimated_share_gate():
    # Two of four event intervals fully estimated -> 50% > 10% allowed.
    est = {local(DAY, 14): 1.0, local(DAY, 14, 15): 1.0}
    load = _load([800, 750, 900, 850], estimated=est)
    baseline = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    perf = evaluate_event(EventRequest(WINDOW, Direction.UP, 200.0), baseline, load)
    assert perf.estimated_share_event == pytest.approx(0.5)
    assert not perf.quality_ok
    assert any("estimated" in r for r in perf.quality_reasons)


def test_minimum_interval_rule_from_policy():
    # With min_interval_fraction 0.6 of 200 kW = 120 kW, the 100 kW interval fails: 3 of 4 meet it.
    policy = load_policy().model_copy(update={"min_interval_fraction": 0.6})
    load = _load([800, 750, 900, 850])
    baseline = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    perf = evaluate_event(EventRequest(WINDOW, Direction.UP, 200.0), baseline, load, policy)
    assert perf.intervals_meeting_min == 3
    assert not perf.quality_ok


def test_failed_day_of_adjustment_fails_the_gate():
    # CAISO with the event day's 10:00-13:00 data missing: no adjustment possible -> flagged.
    missing = set(window_overrides(DAY, 10, 13, 0.0))
    load = build_load(date(2026, 5, 25), DAY, lambda d: 100.0, missing=missing)
    baseline = compute_baseline(load, WINDOW, resolve_method("CAISO_10IN10"))
    assert not baseline.adjustment.applied
    perf = evaluate_event(EventRequest(WINDOW, Direction.UP, 50.0), baseline, load)
    assert not perf.quality_ok
    assert any("adjustment" in r for r in perf.quality_reasons)


def test_request_validation():
    with pytest.raises(InvalidEventError):
        EventRequest(WINDOW, Direction.UP, 0.0)
    with pytest.raises(InvalidEventError):
        EventRequest(WINDOW, Direction.UP, 10.0, -1.0)
    load = _load([800, 750, 900, 850])
    baseline = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    other = EventWindow(local(DAY, 15), local(DAY, 16))
    with pytest.raises(InvalidEventError, match="different window"):
        evaluate_event(EventRequest(other, Direction.UP, 10.0), baseline, load)
