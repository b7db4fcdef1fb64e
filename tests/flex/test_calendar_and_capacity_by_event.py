"""A park's own calendar changes its baselines; capacity per event and per baseline method (in memory).

Expectations are computed here from the load's construction (one level per local day) and a plain
weekday rule, not with the baseline engine.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flex import (
    CalendarDay,
    CalendarDayKind,
    Direction,
    DrService,
    EventWindow,
    MemoryRepository,
    NotFoundError,
    ParkInfo,
    override_policy,
    parse_direction,
)
from tests.flex.loadgen import build_load, local, window_overrides

FIRST = date(2026, 5, 25)
EVENT_DAY = date(2026, 7, 15)                        # a Wednesday; no public holiday from 2026-06-22 on
WINDOW = EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16))
ACTUAL_KW = 800.0


def level(day: date) -> float:
    """Weekdays grow by 10 kW a day (so every day is distinguishable), weekends sit at 600 kW."""
    return 600.0 if day.weekday() >= 5 else 1000.0 + 10.0 * (day - FIRST).days


def working_days_before(day: date, n: int, *, holidays=frozenset(), workdays=frozenset(), skip: int = 0) -> list[date]:
    """The ``n`` most recent working days before ``day`` (after skipping ``skip`` calendar days)."""
    found: list[date] = []
    d = day - timedelta(days=1 + skip)
    while len(found) < n:
        if d in workdays or (d.weekday() < 5 and d not in holidays):
            found.append(d)
        d -= timedelta(days=1)
    return found


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _service() -> tuple[DrService, MemoryRepository]:
    repo = MemoryRepository()
    load = build_load(FIRST, EVENT_DAY, level, overrides=window_overrides(EVENT_DAY, 14, 16, ACTUAL_KW))
    repo.add_park(ParkInfo("p1"), load)
    return DrService(repo, clock=lambda: local(EVENT_DAY, 18)), repo


def test_declaring_a_holiday_and_a_workday_changes_the_baseline():
    service, _ = _service()
    method = service.method_for("p1", "JIANGSU_5WD", None)
    before = service.baseline("p1", WINDOW, method=method)
    days = working_days_before(EVENT_DAY, 5)
    assert sorted(before.days_used) == sorted(days)
    assert before.profile["baseline_kw"].to_list() == pytest.approx([mean(level(d) for d in days)] * 8)

    shutdown, saturday = date(2026, 7, 13), date(2026, 7, 11)
    service.set_calendar("p1", [CalendarDay(shutdown, CalendarDayKind.HOLIDAY, "年度检修"),
                                CalendarDay(saturday, CalendarDayKind.WORKDAY, "调休上班")])
    after = service.baseline("p1", WINDOW, method=method)
    days = working_days_before(EVENT_DAY, 5, holidays={shutdown}, workdays={saturday})
    assert saturday in days
    assert shutdown not in days
    assert sorted(after.days_used) == sorted(days)
    expected = mean(level(d) for d in days)
    assert after.profile["baseline_kw"].to_list() == pytest.approx([expected] * 8)
    assert expected != pytest.approx(before.profile["baseline_kw"][0])
    excluded = {a.day: a.reason for a in after.audit if a.status == "excluded"}
    assert excluded[shutdown] == "holiday, baseline uses working days"

    # The event evaluated now uses the park's calendar as well.
    event = service.register_event("p1", WINDOW, direction=parse_direction("削峰"), requested_kw=500.0,
                                   declared_kw=500.0)
    assert service.evaluate(event.event_id).avg_reduction_kw == pytest.approx(expected - ACTUAL_KW)

    assert service.clear_calendar("p1", year=2025) == 0
    assert service.clear_calendar("p1") == 2
    assert service.baseline("p1", WINDOW, method=method).profile["baseline_kw"][0] == pytest.approx(
        before.profile["baseline_kw"][0])
    with pytest.raises(NotFoundError):
        service.set_calendar("nope", [])


def test_capacity_per_event_and_method():
    service, _ = _service()
    event = service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=600.0, declared_kw=600.0,
                                   event_id="e1")
    service.evaluate(event.event_id)
    # the trailing year up to 18:00 includes the event day's morning, the highest weekday level so far
    peak_kw = max(level(FIRST + timedelta(days=i)) for i in range((EVENT_DAY - FIRST).days + 1))

    methods = ["BEIJING_TOP5OF10", "JIANGSU_5WD", "JIANGSU_RT_15MIN"]
    table = service.capacity_by_event("p1", methods=methods)
    assert table.annual_max_demand_kw == pytest.approx(peak_kw)
    assert table.methods == tuple(methods)
    (row,) = table.events
    assert (row.event_id, row.direction, row.sets_verified) == ("e1", Direction.UP, True)
    by_method = {m.method: m for m in row.methods}
    expected_baseline = {
        # 5 most recent workdays before the event day
        "JIANGSU_5WD": mean(level(d) for d in working_days_before(EVENT_DAY, 5)),
        # the 15 minutes before the event on the event day itself
        "JIANGSU_RT_15MIN": level(EVENT_DAY),
        # 10 workdays from D-2 back, the 5 with the highest daily maximum
        "BEIJING_TOP5OF10": mean(sorted((level(d) for d in working_days_before(EVENT_DAY, 10, skip=1)),
                                        reverse=True)[:5]),
    }
    for name, baseline_kw in expected_baseline.items():
        m = by_method[name]
        assert m.avg_reduction_kw == pytest.approx(baseline_kw - ACTUAL_KW), name
        assert m.pct_of_annual_max == pytest.approx((baseline_kw - ACTUAL_KW) / peak_kw * 100), name
        assert m.delivered_kwh == pytest.approx((baseline_kw - ACTUAL_KW) * 2), name
        assert m.evaluated_with == (name == "JIANGSU_5WD")
    assert len({round(m.avg_reduction_kw or 0, 6) for m in row.methods}) == 3  # the methods really differ

    # The summary still reports the best event under its own method.
    up = service.capacity("p1", persist=False)[0]
    assert up.verified_kw == pytest.approx(by_method["JIANGSU_5WD"].avg_reduction_kw)

    # Every preset by default; a method that cannot compute says why instead of giving a number.
    full = service.capacity_by_event("p1")
    assert set(full.methods) >= {"CAISO_10IN10", "PJM_HIGH4OF5_SAA", "ERCOT_MIDDLE8OF10"}
    assert all(m.avg_reduction_kw is not None or m.problem for m in full.events[0].methods)
    assert service.capacity_by_event("p1", direction=Direction.DOWN).events == ()


def test_a_policy_changes_the_per_event_figures_quality_verdict():
    service, repo = _service()
    event = service.register_event("p1", WINDOW, direction=Direction.UP, requested_kw=600.0, event_id="e1")
    service.evaluate(event.event_id)
    strict = DrService(repo, clock=service.clock, policy=override_policy(
        {"data_quality": {"max_event_missing_intervals": 0}, "min_interval_fraction": 1.5}))
    ok = service.capacity_by_event("p1", methods=["JIANGSU_5WD"]).events[0].methods[0]
    failed = strict.capacity_by_event("p1", methods=["JIANGSU_5WD"]).events[0].methods[0]
    assert ok.quality_ok is True
    assert failed.quality_ok is False
    assert "intervals reached 150%" in (failed.problem or "")
