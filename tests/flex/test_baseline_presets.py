"""Hand-computed golden cases for every baseline preset.

Calendar used below (Asia/Shanghai, July 2026, no public holiday in range; 端午 is 06-19..21):
    Mon 06-29, Tue 06-30, Wed 07-01, Thu 07-02, Fri 07-03, Sat 07-04, Sun 07-05,
    Mon 07-06, Tue 07-07, Wed 07-08, Thu 07-09, Fri 07-10, Sat 07-11, Sun 07-12,
    Mon 07-13, Tue 07-14, Wed 07-15 (event day, 14:00-16:00 local = 06:00-08:00 UTC).
07-08 is a past event day in every test (its level 500 kW would be visible if it leaked in).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flex import EventWindow, InsufficientBaselineDataError, baseline_presets, compute_baseline, resolve_method
from tests.flex.loadgen import build_load, local, window_overrides

EVENT_DAY = date(2026, 7, 15)
PAST_EVENT = date(2026, 7, 8)
WINDOW = EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16))
FIRST = date(2026, 5, 25)


def _levels(days: dict[date, float], weekend: float = 50.0, workday: float = 100.0):
    def level(d: date) -> float:
        if d in days:
            return days[d]
        if d == PAST_EVENT:
            return 500.0
        return weekend if d.weekday() >= 5 else workday

    return level


def _values(result) -> list[float]:
    return [round(v, 6) for v in result.profile["baseline_kw"].to_list()]


def test_every_issue_preset_is_shipped_with_source_and_confidence():
    presets = baseline_presets()
    for name in ("CAISO_10IN10", "PJM_HIGH4OF5_SAA", "JIANGSU_5WD", "JIANGSU_RT_15MIN", "BEIJING_TOP5OF10"):
        assert name in presets
        assert presets[name].source
        assert presets[name].confidence in {"V", "K", "U"}


def test_caiso_10in10_weekday_with_load_point_adjustment():
    # 10 most recent non-event workdays: 07-14 (130), 07-13 (110), 07-10, 07-09, [07-08 event],
    # 07-07, 07-06, 07-03, 07-02, 07-01, 06-30 (all 100)  -> mean = (130 + 110 + 8*100) / 10 = 104 kW.
    # 06-29 (1000 kW) is the 11th and must not be used.
    # Adjustment window 10:00-13:00 on the event day (3 h ending 1 h before 14:00): actual 114.4 kW,
    # baseline 104 kW -> ratio 114.4 / 104 = 1.1 (inside 0.8..1.2) -> B = 104 * 1.1 = 114.4 kW.
    levels = _levels({date(2026, 7, 14): 130, date(2026, 7, 13): 110, date(2026, 6, 29): 1000})
    load = build_load(FIRST, EVENT_DAY, levels, overrides=window_overrides(EVENT_DAY, 10, 13, 114.4))
    result = compute_baseline(load, WINDOW, resolve_method("CAISO_10IN10"), event_days=[PAST_EVENT])
    assert sorted(result.days_used) == [
        date(2026, 6, 30), date(2026, 7, 1), date(2026, 7, 2), date(2026, 7, 3), date(2026, 7, 6),
        date(2026, 7, 7), date(2026, 7, 9), date(2026, 7, 10), date(2026, 7, 13), date(2026, 7, 14),
    ]
    assert result.profile["baseline_unadjusted_kw"].to_list() == pytest.approx([104.0] * 8)
    assert result.adjustment.ratio == pytest.approx(1.1)
    assert not result.adjustment.capped
    assert _values(result) == pytest.approx([114.4] * 8)
    assert result.profile.height == 8  # 2 h of 15-min intervals


def test_caiso_adjustment_is_capped_at_plus_20_percent():
    # Same days (mean 104 kW); actual 140 kW in the window -> raw ratio 140/104 = 1.3462 -> capped 1.2
    # -> B = 104 * 1.2 = 124.8 kW.
    levels = _levels({date(2026, 7, 14): 130, date(2026, 7, 13): 110})
    load = build_load(FIRST, EVENT_DAY, levels, overrides=window_overrides(EVENT_DAY, 10, 13, 140.0))
    result = compute_baseline(load, WINDOW, resolve_method("CAISO_10IN10"), event_days=[PAST_EVENT])
    assert result.adjustment.raw_ratio == pytest.approx(140 / 104)
    assert result.adjustment.capped
    assert _values(result) == pytest.approx([124.8] * 8)


def test_caiso_4in4_on_a_sunday():
    # Event on Sun 07-12 14:00-16:00: pool = weekend/holiday days within 20 days: Sat 07-11 (50),
    # Sun 07-05 (52), Sat 07-04 (54), Sun 06-28 (56) -> 53 kW. Adjustment window actual 53 -> ratio 1.
    sunday = date(2026, 7, 12)
    levels = _levels({date(2026, 7, 11): 50, date(2026, 7, 5): 52, date(2026, 7, 4): 54, date(2026, 6, 28): 56})
    load = build_load(FIRST, sunday, levels, overrides=window_overrides(sunday, 10, 13, 53.0))
    window = EventWindow(local(sunday, 14), local(sunday, 16))
    result = compute_baseline(load, window, resolve_method("CAISO_10IN10"))
    assert sorted(result.days_used) == [date(2026, 6, 28), date(2026, 7, 4), date(2026, 7, 5), date(2026, 7, 11)]
    assert _values(result) == pytest.approx([53.0] * 8)


def test_pjm_high4of5_low_usage_replacement_and_symmetric_additive_adjustment():
    # 5 most recent eligible weekdays: 07-14 (100), 07-13 (120), 07-10 (20), 07-09 (110), 07-07 (130).
    # Low-usage rule: mean = (100+120+20+110+130)/5 = 96; 25% of it = 24; 07-10 (20 < 24) is replaced by
    # the next eligible day 07-06 (105). Candidates: 100, 120, 110, 130, 105 -> keep the highest 4 by
    # event-window usage: 130, 120, 110, 105 -> CBL = 465 / 4 = 116.25 kW.
    # SAA window 10:00-13:00 on the event day: actual 126.25 -> offset = 126.25 - 116.25 = +10 kW
    # -> B = 126.25 kW.
    levels = _levels({date(2026, 7, 14): 100, date(2026, 7, 13): 120, date(2026, 7, 10): 20,
                      date(2026, 7, 9): 110, date(2026, 7, 7): 130, date(2026, 7, 6): 105})
    load = build_load(FIRST, EVENT_DAY, levels, overrides=window_overrides(EVENT_DAY, 10, 13, 126.25))
    result = compute_baseline(load, WINDOW, resolve_method("PJM_HIGH4OF5_SAA"), event_days=[PAST_EVENT])
    assert sorted(result.days_used) == [date(2026, 7, 6), date(2026, 7, 7), date(2026, 7, 9), date(2026, 7, 13)]
    audit = {a.day: a for a in result.audit}
    assert audit[date(2026, 7, 10)].status == "excluded"
    assert "low usage" in (audit[date(2026, 7, 10)].reason or "")
    assert audit[date(2026, 7, 14)].status == "not_selected"
    assert audit[PAST_EVENT].reason == "past event day"
    assert result.profile["baseline_unadjusted_kw"].to_list() == pytest.approx([116.25] * 8)
    assert result.adjustment.offset_kw == pytest.approx(10.0)
    assert _values(result) == pytest.approx([126.25] * 8)


def test_pjm_negative_saa_is_symmetric():
    # Same CBL 116.25 kW; actual 100 kW in the window -> offset -16.25 -> B = 100 kW.
    levels = _levels({date(2026, 7, 14): 100, date(2026, 7, 13): 120, date(2026, 7, 10): 20,
                      date(2026, 7, 9): 110, date(2026, 7, 7): 130, date(2026, 7, 6): 105})
    load = build_load(FIRST, EVENT_DAY, levels, overrides=window_overrides(EVENT_DAY, 10, 13, 100.0))
    result = compute_baseline(load, WINDOW, resolve_method("PJM_HIGH4OF5_SAA"), event_days=[PAST_EVENT])
    assert result.adjustment.offset_kw == pytest.approx(-16.25)
    assert _values(result) == pytest.approx([100.0] * 8)


def test_jiangsu_5wd_counts_back_from_the_notice_day():
    # Notified Mon 07-13 for Wed 07-15. Days after the notice (07-13, 07-14: 999 kW) are never used.
    # Workdays before 07-13: 07-10 (100), 07-09 (102), [07-08 event], 07-07 (104), 07-06 (106), 07-03 (108)
    # -> (100 + 102 + 104 + 106 + 108) / 5 = 104 kW, no adjustment.
    levels = _levels({date(2026, 7, 14): 999, date(2026, 7, 13): 999, date(2026, 7, 10): 100,
                      date(2026, 7, 9): 102, date(2026, 7, 7): 104, date(2026, 7, 6): 106, date(2026, 7, 3): 108})
    load = build_load(FIRST, EVENT_DAY, levels)
    result = compute_baseline(
        load, WINDOW, resolve_method("JIANGSU_5WD"), event_days=[PAST_EVENT], notice_day=date(2026, 7, 13)
    )
    assert sorted(result.days_used) == [date(2026, 7, 3), date(2026, 7, 6), date(2026, 7, 7), date(2026, 7, 9),
                                        date(2026, 7, 10)]
    assert result.adjustment.kind == "none"
    assert _values(result) == pytest.approx([104.0] * 8)


def test_jiangsu_5wd_around_national_day_uses_the_holiday_calendar():
    # Event Mon 2026-10-12 09:00-10:00. Walking back: Sun 10-11 weekend; Sat 10-10 is an adjusted working
    # day (调休上班) -> used; Fri 10-09, Thu 10-08 used; 10-01..10-07 国庆 holidays excluded; Wed 09-30,
    # Tue 09-29 used. Levels 10-10: 90, 10-09: 100, 10-08: 110, 09-30: 120, 09-29: 130 -> 110 kW.
    # Holidays carry 999 kW so any leak shows.
    event_day = date(2026, 10, 12)
    levels = {date(2026, 10, 10): 90.0, date(2026, 10, 9): 100.0, date(2026, 10, 8): 110.0,
              date(2026, 9, 30): 120.0, date(2026, 9, 29): 130.0, date(2026, 9, 28): 140.0}
    for i in range(7):
        levels[date(2026, 10, 1) + timedelta(days=i)] = 999.0
    load = build_load(date(2026, 9, 1), event_day, levels, default=100.0)
    window = EventWindow(local(event_day, 9), local(event_day, 10))
    result = compute_baseline(load, window, resolve_method("JIANGSU_5WD"), notice_day=event_day)
    assert sorted(result.days_used) == [date(2026, 9, 29), date(2026, 9, 30), date(2026, 10, 8), date(2026, 10, 9),
                                        date(2026, 10, 10)]
    assert _values(result) == pytest.approx([110.0] * 4)
    audit = {a.day: a for a in result.audit}
    assert audit[date(2026, 10, 3)].reason == "holiday, baseline uses working days"

    # Override: adjusted working days do not count -> 10-09, 10-08, 09-30, 09-29, 09-28 (140)
    # -> (100 + 110 + 120 + 130 + 140) / 5 = 120 kW.
    strict = resolve_method("JIANGSU_5WD", {"adjusted_workday_is_workday": False})
    result = compute_baseline(load, window, strict, notice_day=event_day)
    assert date(2026, 10, 10) not in result.days_used
    assert _values(result) == pytest.approx([120.0] * 4)


def test_jiangsu_realtime_uses_the_15_minutes_before_control():
    # Baseline = demand of 13:45-14:00 on the event day (123.4 kW), flat over the event.
    load = build_load(FIRST, EVENT_DAY, _levels({}), overrides={local(EVENT_DAY, 13, 45): 123.4})
    result = compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))
    assert _values(result) == pytest.approx([123.4] * 8)
    assert result.days_used == ()


def test_jiangsu_realtime_without_the_pre_event_interval_is_an_error():
    load = build_load(FIRST, EVENT_DAY, _levels({}), missing={local(EVENT_DAY, 13, 45)})
    with pytest.raises(InsufficientBaselineDataError):
        compute_baseline(load, WINDOW, resolve_method("JIANGSU_RT_15MIN"))


def test_beijing_top5_of_10_by_daily_maximum_from_d_minus_2():
    # D-1 (07-14) is skipped even though its max is 10000 kW. 10 workdays from D-2 back, skipping the
    # weekend and the past event day: 07-13, 07-10, 07-09, 07-07, 07-06, 07-03, 07-02, 07-01, 06-30, 06-29.
    # Each day runs at its level L all day except a one-interval spike M at 03:00 (daily max):
    #   day:   07-13 07-10 07-09 07-07 07-06 07-03 07-02 07-01 06-30 06-29
    #   L:      100   110   120   130   140   150   160   170   180   190
    #   M:      300   200   500   150   400   160   600   170   700   190
    # Top 5 by M: 06-30 (700, L180), 07-02 (600, L160), 07-09 (500, L120), 07-06 (400, L140),
    # 07-13 (300, L100) -> baseline = (180 + 160 + 120 + 140 + 100) / 5 = 140 kW.
    table = {
        date(2026, 7, 13): (100, 300), date(2026, 7, 10): (110, 200), date(2026, 7, 9): (120, 500),
        date(2026, 7, 7): (130, 150), date(2026, 7, 6): (140, 400), date(2026, 7, 3): (150, 160),
        date(2026, 7, 2): (160, 600), date(2026, 7, 1): (170, 170), date(2026, 6, 30): (180, 700),
        date(2026, 6, 29): (190, 190), date(2026, 7, 14): (100, 10000),
    }
    spikes = {local(d, 3): m for d, (_, m) in table.items()}
    load = build_load(FIRST, EVENT_DAY, _levels({d: lv for d, (lv, _) in table.items()}), overrides=spikes)
    result = compute_baseline(load, WINDOW, resolve_method("BEIJING_TOP5OF10"), event_days=[PAST_EVENT])
    assert sorted(result.days_used) == [date(2026, 6, 30), date(2026, 7, 2), date(2026, 7, 6), date(2026, 7, 9),
                                        date(2026, 7, 13)]
    assert _values(result) == pytest.approx([140.0] * 8)
    assert date(2026, 7, 14) not in {a.day for a in result.audit}  # D-1 is never even considered


def test_ercot_middle_8_of_10_drops_highest_and_lowest_daily_energy():
    # 10 most recent non-event workdays (as in the CAISO case): 07-14 300 (highest, dropped), 07-13 10
    # (lowest, dropped), the other 8 at 100 -> 100 kW.
    levels = _levels({date(2026, 7, 14): 300, date(2026, 7, 13): 10})
    load = build_load(FIRST, EVENT_DAY, levels)
    result = compute_baseline(load, WINDOW, resolve_method("ERCOT_MIDDLE8OF10"), event_days=[PAST_EVENT])
    assert date(2026, 7, 14) not in result.days_used
    assert date(2026, 7, 13) not in result.days_used
    assert len(result.days_used) == 8
    assert _values(result) == pytest.approx([100.0] * 8)
