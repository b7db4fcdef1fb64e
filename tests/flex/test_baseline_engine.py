"""Baseline engine behaviour beyond the presets: data quality, overrides, errors, calendar edge cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from pydantic import ValidationError

from flex import (
    CalendarCoverageError,
    DayType,
    EventWindow,
    InsufficientBaselineDataError,
    InvalidEventError,
    InvalidLoadDataError,
    UnknownBaselineMethodError,
    compute_baseline,
    load_holiday_calendar,
    resolve_method,
)
from tests.flex.loadgen import build_load, local

EVENT_DAY = date(2026, 7, 15)
WINDOW = EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16))
FIRST = date(2026, 5, 25)


def _workdays_100(d: date) -> float:
    return 50.0 if d.weekday() >= 5 else 100.0


def test_days_with_gaps_or_estimated_data_are_replaced_by_older_days():
    # Jiangsu 5WD from the event day: 07-14, 07-13, 07-10, 07-09, 07-08 would be used.
    # 07-14 misses 20 intervals (20.8% > 10% allowed) and 07-13 is 50% estimated (> 25%) -> replaced by
    # 07-07 and 07-06. Those two days carry 200 kW: baseline = (100*3 + 200*2) / 5 = 140 kW.
    missing = {local(date(2026, 7, 14), 0) + timedelta(minutes=15 * i) for i in range(20)}
    estimated = {local(date(2026, 7, 13), 0) + timedelta(minutes=15 * i): 1.0 for i in range(48)}
    levels = {date(2026, 7, 7): 200.0, date(2026, 7, 6): 200.0}
    load = build_load(FIRST, EVENT_DAY, lambda d: levels.get(d, _workdays_100(d)), missing=missing,
                      estimated=estimated)
    result = compute_baseline(load, WINDOW, resolve_method("JIANGSU_5WD"))
    assert sorted(result.days_used) == [date(2026, 7, 6), date(2026, 7, 7), date(2026, 7, 8), date(2026, 7, 9),
                                        date(2026, 7, 10)]
    reasons = {a.day: a.reason for a in result.audit}
    assert "missing" in (reasons[date(2026, 7, 14)] or "")
    assert "estimated" in (reasons[date(2026, 7, 13)] or "")
    assert result.profile["baseline_kw"].to_list() == pytest.approx([140.0] * 8)
    assert any("no notice day" in w for w in result.warnings)


def test_a_gap_inside_the_event_window_disqualifies_the_day():
    missing = {local(date(2026, 7, 14), 14, 30)}
    load = build_load(FIRST, EVENT_DAY, _workdays_100, missing=missing)
    result = compute_baseline(load, WINDOW, resolve_method("JIANGSU_5WD"))
    assert date(2026, 7, 14) not in result.days_used
    assert {a.day: a.reason for a in result.audit}[date(2026, 7, 14)] == "missing data in the event window"


def test_too_few_days_raises_with_the_reasons():
    load = build_load(date(2026, 7, 10), EVENT_DAY, _workdays_100)
    with pytest.raises(InsufficientBaselineDataError) as info:
        compute_baseline(load, WINDOW, resolve_method("CAISO_10IN10"))
    assert info.value.needed == 5
    assert info.value.found == 3  # 07-14, 07-13, 07-10
    assert "no data" in info.value.detail


def test_short_but_sufficient_history_is_used_with_a_warning():
    # CAISO needs 10 but accepts >= 5: 5 workdays of data (07-08..07-14) -> warning, mean 100.
    load = build_load(date(2026, 7, 8), EVENT_DAY, _workdays_100)
    result = compute_baseline(load, WINDOW, resolve_method("CAISO_10IN10", {"adjustment": {"kind": "none"}}))
    assert len(result.days_used) == 5
    assert any("only 5 of 10" in w for w in result.warnings)


def test_overrides_are_validated_and_named():
    method = resolve_method("PJM_HIGH4OF5_SAA", {"workday": {"n_days": 6}})
    assert method.workday is not None
    assert (method.workday.n_days, method.workday.n_used) == (6, 4)
    assert method.name == "PJM_HIGH4OF5_SAA.custom"
    with pytest.raises(ValidationError, match="n_used"):
        resolve_method("PJM_HIGH4OF5_SAA", {"workday": {"n_days": 3}})
    with pytest.raises(ValidationError):
        resolve_method("CAISO_10IN10", {"no_such_parameter": 1})
    with pytest.raises(UnknownBaselineMethodError):
        resolve_method("NYISO_SOMETHING")


def test_event_crossing_midnight_maps_by_wall_clock_offset():
    # Event 23:00 on 07-14 to 01:00 on 07-15 (Jiangsu 5WD, event day 07-14 -> days 07-13, 07-10, 07-09,
    # 07-08, 07-07). Each day d has level L(d); the event's 00:00-01:00 part reads the *next* day's level.
    # Levels: 07-07: 100, 07-08: 110, 07-09: 120, 07-10: 130, 07-13: 140, next days 07-08..07-14 too.
    # Intervals 23:00-24:00: mean(140, 130, 120, 110, 100) = 120.
    # Intervals 00:00-01:00: next days 07-14, 07-11, 07-10, 07-09, 07-08 -> (150, 60, 130, 120, 110) / 5 = 114.
    levels = {date(2026, 7, 7): 100.0, date(2026, 7, 8): 110.0, date(2026, 7, 9): 120.0, date(2026, 7, 10): 130.0,
              date(2026, 7, 11): 60.0, date(2026, 7, 13): 140.0, date(2026, 7, 14): 150.0}
    load = build_load(FIRST, EVENT_DAY, lambda d: levels.get(d, _workdays_100(d)))
    window = EventWindow(local(date(2026, 7, 14), 23), local(date(2026, 7, 15), 1))
    result = compute_baseline(load, window, resolve_method("JIANGSU_5WD"))
    assert result.event_day == date(2026, 7, 14)
    assert result.profile["baseline_kw"].to_list() == pytest.approx([120.0] * 4 + [114.0] * 4)


def test_weekend_event_with_a_workdays_only_method_uses_workdays():
    sunday = date(2026, 7, 12)
    load = build_load(FIRST, sunday, _workdays_100)
    window = EventWindow(local(sunday, 14), local(sunday, 15))
    result = compute_baseline(load, window, resolve_method("JIANGSU_5WD"))
    assert result.event_day_type is DayType.WEEKEND
    assert all(d.weekday() < 5 for d in result.days_used)
    assert result.profile["baseline_kw"].to_list() == pytest.approx([100.0] * 4)


def test_input_validation():
    good = build_load(FIRST, EVENT_DAY, _workdays_100)
    naive = good.with_columns(pl.col("ts").dt.replace_time_zone(None))
    with pytest.raises(InvalidLoadDataError, match="timezone-aware"):
        compute_baseline(naive, WINDOW, resolve_method("JIANGSU_5WD"))
    shifted = good.with_columns(pl.col("ts") + pl.duration(minutes=5))
    with pytest.raises(InvalidLoadDataError, match="grid"):
        compute_baseline(shifted, WINDOW, resolve_method("JIANGSU_5WD"))
    with pytest.raises(InvalidLoadDataError, match="duplicate"):
        compute_baseline(pl.concat([good, good.head(1)]), WINDOW, resolve_method("JIANGSU_5WD"))
    with pytest.raises(InvalidLoadDataError, match="lacks"):
        compute_baseline(good.rename({"demand_kw": "kw"}), WINDOW, resolve_method("JIANGSU_5WD"))
    off_grid = EventWindow(local(EVENT_DAY, 14, 5), local(EVENT_DAY, 15))
    with pytest.raises(InvalidEventError, match="grid"):
        compute_baseline(good, off_grid, resolve_method("JIANGSU_5WD"))
    with pytest.raises(InvalidEventError):
        EventWindow(local(EVENT_DAY, 15), local(EVENT_DAY, 14))
    with pytest.raises(InvalidEventError):
        EventWindow(datetime(2026, 7, 15, 14), datetime(2026, 7, 15, 15))  # naive


def test_calendar_coverage_and_provisional_years():
    cal = load_holiday_calendar()
    assert cal.covered_years == (2024, 2025, 2026, 2027)
    assert cal.day_type(date(2025, 1, 28)) is DayType.HOLIDAY  # 除夕, new statutory holiday from 2025
    assert cal.day_type(date(2025, 1, 26)) is DayType.ADJUSTED_WORKDAY  # Sunday 调休上班
    assert cal.day_type(date(2026, 2, 14)) is DayType.ADJUSTED_WORKDAY
    assert cal.day_type(date(2026, 10, 8)) is DayType.WORKDAY
    assert cal.holiday_name(date(2024, 6, 10)) == "端午节"
    assert cal.is_provisional(date(2027, 3, 1))
    with pytest.raises(CalendarCoverageError):
        cal.day_type(date(2023, 12, 29))

    # An event in a provisional year computes with a warning; days before the calendar are excluded.
    event_day = date(2027, 3, 3)
    load = build_load(date(2027, 1, 10), event_day, _workdays_100)
    window = EventWindow(local(event_day, 10), local(event_day, 11))
    result = compute_baseline(load, window, resolve_method("JIANGSU_5WD"))
    assert any("provisional" in w for w in result.warnings)
    early = build_load(date(2023, 12, 1), date(2024, 1, 3), _workdays_100)
    result = compute_baseline(early, EventWindow(local(date(2024, 1, 3), 10), local(date(2024, 1, 3), 11)),
                              resolve_method("JIANGSU_5WD", {"workday": {"min_days": 1}}))
    assert {a.reason for a in result.audit if a.day.year == 2023} == {"outside the public-holiday calendar"}


def test_result_profile_is_utc_and_sorted():
    load = build_load(FIRST, EVENT_DAY, _workdays_100)
    result = compute_baseline(load, WINDOW, resolve_method("JIANGSU_5WD"))
    ts = result.profile["ts"].to_list()
    assert ts == sorted(ts)
    assert ts[0] == datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
