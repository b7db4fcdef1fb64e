"""DrService over the in-memory repository: register → evaluate → capacity, flexibility now and forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from flex import (
    AssetRecord,
    Battery,
    BatteryState,
    Direction,
    DrService,
    DrSettings,
    EventWindow,
    InvalidEventError,
    MemoryRepository,
    NotFoundError,
    ParkInfo,
)
from tests.flex.loadgen import build_load, local, window_overrides

EVENT_DAY = date(2026, 7, 15)
WINDOW = EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16))
AFTER = local(EVENT_DAY, 18)


def _service(reduction_kw: float = 200.0) -> tuple[DrService, MemoryRepository]:
    repo = MemoryRepository()
    load = build_load(date(2026, 5, 25), EVENT_DAY, lambda d: 600.0 if d.weekday() >= 5 else 1000.0,
                      overrides=window_overrides(EVENT_DAY, 14, 16, 1000.0 - reduction_kw))
    repo.add_park(ParkInfo("p1", "Park One"), load)
    repo.put_settings("p1", DrSettings(import_max_kw=5000, export_max_kw=0))
    battery = Battery(asset_id="bess", capacity_kwh=1000, charge_power_max_kw=250, discharge_power_max_kw=250,
                      soc_min_pct=10, soc_max_pct=90, state=BatteryState(soc_pct=50, power_kw=0))
    repo.put_asset("p1", AssetRecord(battery))
    return DrService(repo, clock=lambda: AFTER), repo


def test_register_evaluate_and_capacity_round_trip():
    # Jiangsu 5WD (default method) -> baseline 1000 kW; actual 800 kW -> R_avg 200 kW over 2 h = 400 kWh.
    # Declared at registration: battery 2 h: min(250, (0.5-0.1)*1000/2 = 200) = 200 kW (no derating yet).
    service, _ = _service()
    event = service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=250.0,
                                   notified_at=local(EVENT_DAY, 9))
    assert event.declared_kw == pytest.approx(200.0)
    result = service.evaluate(event.event_id)
    assert result.avg_reduction_kw == pytest.approx(200.0)
    assert result.delivered_kwh == pytest.approx(400.0)
    assert result.ratio_requested == pytest.approx(0.8)
    assert result.ratio_declared == pytest.approx(1.0)
    assert result.quality_ok
    assert len(result.baseline_days) == 5
    intervals = service.repo.get_intervals(event.event_id)
    assert intervals.height == 8
    assert intervals["baseline_unadjusted_kw"].to_list() == pytest.approx([1000.0] * 8)

    # Capacity after the event: verified 200 kW; annual peak 1000 kW -> 20 %. Declared (2 h) = 200 kW,
    # derating = min(1, 200/200) = 1.0 -> 200 kW = 20 %.
    up, down = service.capacity("p1")
    assert (up.direction, down.direction) == (Direction.UP, Direction.DOWN)
    assert up.verified_kw == pytest.approx(200.0)
    assert up.verified_event_id == event.event_id
    assert up.annual_max_demand_kw == pytest.approx(1000.0)
    assert up.verified_pct == pytest.approx(20.0)
    assert up.declared_kw == pytest.approx(200.0)
    assert up.declared_pct == pytest.approx(20.0)
    _history, total = service.repo.capacity_history("p1", start=None, end=None, limit=10, offset=0)
    assert total == 2
    assert service.latest_capacity("p1")[0].as_of == AFTER


def test_poor_delivery_derates_declared_flexibility():
    # Delivered 100 kW against 200 kW declared -> derating 0.5 -> declared 2 h flex = 200 * 0.5 = 100 kW.
    service, _ = _service(reduction_kw=100.0)
    event = service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=200.0)
    service.evaluate(event.event_id)
    up = service.capacity("p1")[0]
    assert up.derating_factor == pytest.approx(0.5)
    assert up.declared_kw == pytest.approx(100.0)


def test_event_rules():
    service, _ = _service()
    with pytest.raises(NotFoundError):
        service.register_event("nope", WINDOW, direction=Direction.UP, requested_kw=1.0)
    with pytest.raises(InvalidEventError):
        service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=-5.0)
    event = service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=10.0, event_id="e-1")
    with pytest.raises(InvalidEventError, match="already exists"):
        service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=10.0, event_id="e-1")
    with pytest.raises(InvalidEventError, match="evaluate it afterwards"):
        service.evaluate(event.event_id, now=local(EVENT_DAY, 15))
    with pytest.raises(NotFoundError):
        service.evaluate("missing")


def test_past_events_are_excluded_from_later_baselines():
    # Event on 07-14 makes 07-14 ineligible for the 07-15 baseline.
    service, _ = _service()
    service.register_event("p1", EventWindow(local(date(2026, 7, 14), 14), local(date(2026, 7, 14), 15)),
                           direction=Direction.UP, requested_kw=10.0)
    method = service.method_for("p1", None, None)
    result = service.baseline("p1", WINDOW, method=method)
    assert date(2026, 7, 14) not in result.days_used


def test_current_and_forecast_flexibility():
    service, _ = _service()
    now = datetime(2026, 7, 15, 2, 0, tzinfo=UTC)
    current = service.current_flex("p1", now=now)
    by_duration = {f.duration_h: f for f in current.durations}
    # Battery SOC 50 %, 1000 kWh, 250 kW: 1 h up = min(250, 400) = 250; 4 h up = 400*1/4 = 100.
    assert by_duration[1.0].up_kw == pytest.approx(250.0)
    assert by_duration[4.0].up_kw == pytest.approx(100.0)
    # Connection: import 5000 at load 1000 -> down ≤ 4000 (battery 250 fits); export 0 -> up ≤ load 1000.
    assert current.park_load_kw == pytest.approx(1000.0)
    forecast = service.forecast_flex("p1", now=now)
    assert forecast.height == 96 * 4
    assert forecast["slot_start"].min() == now
    assert forecast["slot_start"].max() == now + timedelta(minutes=15 * 95)
