"""The rule conditions as pure functions: each one firing, not firing, and skipped when it cannot judge.

Expected values are worked out by hand in each test from the rows it builds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from aggregation._quality import IntervalFlag as F
from alarms._rules import (
    BalanceRow,
    DeviceState,
    FlaggedInterval,
    MeterDay,
    PueDay,
    Skipped,
    complete_days,
    contracted_demand,
    counter_anomaly,
    data_gap,
    device_offline,
    estimated_share,
    meter_balance,
    pue_limit,
    reporting_interval_s,
    uplink_backlog,
)
from alarms._rules_model import (
    ContractedDemandParams,
    CounterAnomalyParams,
    DataGapParams,
    DeviceOfflineParams,
    EstimatedShareParams,
    MeterBalanceParams,
    PueLimitParams,
    UplinkBacklogParams,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 14, 12, 0, tzinfo=UTC)


def _device(device_id: str, last: datetime | None, *, meta: dict | None = None, online: bool | None = True,
            status_at: datetime | None = None, first: datetime = NOW - timedelta(days=30)) -> DeviceState:
    return DeviceState(device_id, meta or {}, last, last, online, status_at, first)


def test_offline_uses_the_devices_interval_with_a_floor():
    p = DeviceOfflineParams(intervals=3, default_interval_s=900, min_silence_s=600)
    devices = [
        _device("fast-ok", NOW - timedelta(seconds=600), meta={"poll_interval_s": 300}),      # limit 900 s
        _device("fast-late", NOW - timedelta(seconds=901), meta={"poll_interval_s": 300}),
        _device("floor-ok", NOW - timedelta(seconds=590), meta={"sample_interval_s": 60}),    # 180 s → 600 s floor
        _device("floor-late", NOW - timedelta(seconds=610), meta={"sample_interval_s": 60}),
        _device("default-ok", NOW - timedelta(seconds=2699)),                                  # 3 × 900 s
        _device("default-late", NOW - timedelta(seconds=2701)),
    ]
    found = device_offline(p, devices, NOW, SH)
    assert isinstance(found, list)
    assert {f.subject for f in found} == {"fast-late", "floor-late", "default-late"}
    late = next(f for f in found if f.subject == "fast-late")
    assert (late.value, late.limit, late.unit) == (901.0, 900.0, "s")
    assert late.context["interval_source"] == "poll_interval_s"
    assert "15 min" in late.message_en
    assert "分钟" in late.message_zh


def test_offline_by_last_will_and_for_a_device_that_never_sent():
    p = DeviceOfflineParams(intervals=3, default_interval_s=900, min_silence_s=900, grace_s=60)
    recent = NOW - timedelta(seconds=120)
    devices = [
        # last will 2 min ago, its last reading before that: offline now, though silent only 2 min
        _device("will", recent - timedelta(seconds=1), online=False, status_at=recent),
        # last will within the grace period: not yet
        _device("will-grace", NOW - timedelta(seconds=40), online=False, status_at=NOW - timedelta(seconds=30)),
        # a reading after the last will: the device is back
        _device("back", NOW - timedelta(seconds=10), online=False, status_at=recent),
        # never sent: measured from registration against 3 × 900 s = 45 min
        _device("never", None, online=None, first=NOW - timedelta(minutes=46)),
        _device("new", None, online=None, first=NOW - timedelta(minutes=44)),
    ]
    found = {f.subject: f for f in device_offline(p, devices, NOW, SH)}  # type: ignore[union-attr]
    assert set(found) == {"will", "never"}
    assert found["will"].context["last_will_offline"] is True
    assert "last will" in found["will"].message_en
    assert "never" in found["never"].message_en
    assert device_offline(DeviceOfflineParams(last_will=False), devices[:1], NOW, SH) == []


def test_reporting_interval_ignores_nonsense():
    nonsense = {"poll_interval_s": True, "sample_interval_s": "60"}
    assert reporting_interval_s(nonsense, 900) == (900, "default_interval_s")
    assert reporting_interval_s({"report_interval_s": 0, "poll_interval_s": 30}, 900) == (30.0, "poll_interval_s")


def test_complete_days_end_before_the_anchor_in_the_parks_zone():
    # 2026-10-14 16:00 UTC is 00:00 on the 15th in Shanghai: the 14th is complete
    assert complete_days(datetime(2026, 10, 14, 16, 0, tzinfo=UTC), SH, 2) == [date(2026, 10, 13), date(2026, 10, 14)]
    # 15:45 UTC = 23:45 local on the 14th: the 14th is not complete yet
    assert complete_days(datetime(2026, 10, 14, 15, 45, tzinfo=UTC), SH, 1) == [date(2026, 10, 13)]


def _day(device: str, day: date, n: int, est: float = 0.0, expected: int = 96) -> MeterDay:
    return MeterDay(device, "active_energy_import", day, n, expected, est)


def test_data_gap_per_meter_and_day_and_a_silent_meter():
    anchor = datetime(2026, 10, 14, 16, 0, tzinfo=UTC)          # days judged: 13th and 14th (lookback 2)
    d12, d13, d14 = date(2026, 10, 12), date(2026, 10, 13), date(2026, 10, 14)
    rows = [
        _day("ok", d13, 96), _day("ok", d14, 92),               # 4/96 = 4.17 % ≤ 5 %
        _day("gappy", d13, 96), _day("gappy", d14, 90),         # 6/96 = 6.25 %
        _day("silent", d12, 96),                                # no rollup on the 13th and 14th: 100 % each
        _day("new", d14, 96),                                   # first day the 14th: the 13th not judged
        _day("old-gap", date(2026, 10, 11), 10),                # outside the window
    ]
    found = {f.subject: f for f in data_gap(DataGapParams(lookback_days=2, max_gap_pct=5), rows, anchor, SH)}  # type: ignore[union-attr]
    assert set(found) == {"gappy/active_energy_import", "silent/active_energy_import",
                          "old-gap/active_energy_import"}
    assert found["gappy/active_energy_import"].value == pytest.approx(6.25)
    assert found["gappy/active_energy_import"].context["days"] == {"2026-10-14": 6.25}
    assert found["silent/active_energy_import"].context["days"] == {"2026-10-13": 100.0, "2026-10-14": 100.0}
    # old-gap had data on the 11th only: silent on the judged days
    assert found["old-gap/active_energy_import"].value == 100.0
    assert isinstance(data_gap(DataGapParams(), rows, None, SH), Skipped)


def test_estimated_share_per_meter_and_day():
    anchor = datetime(2026, 10, 14, 16, 0, tzinfo=UTC)
    d13, d14 = date(2026, 10, 13), date(2026, 10, 14)
    rows = [_day("a", d13, 96, est=9.6), _day("a", d14, 96, est=9.0),      # 10.0 % is not above 10 %
            _day("b", d13, 96, est=9.7), _day("b", d14, 96, est=0.0)]      # 10.10 %
    found = estimated_share(EstimatedShareParams(lookback_days=2, max_estimated_pct=10), rows, anchor, SH)
    assert [f.subject for f in found] == ["b/active_energy_import"]  # type: ignore[union-attr]
    assert found[0].value == pytest.approx(100 * 9.7 / 96, abs=1e-3)  # type: ignore[index]


def test_counter_anomaly_only_the_rules_flags_inside_the_window():
    anchor = NOW
    rows = [
        FlaggedInterval("m1", "active_energy_import", NOW - timedelta(hours=2), int(F.EPOCH_BREAK | F.SPLIT)),
        FlaggedInterval("m1", "active_energy_import", NOW - timedelta(hours=1), int(F.SPIKE)),
        FlaggedInterval("m2", "active_energy_import", NOW - timedelta(hours=3), int(F.GAP_LINEAR)),    # not the rule's
        FlaggedInterval("m3", "active_energy_import", NOW - timedelta(hours=30), int(F.SPIKE)),        # too old
        FlaggedInterval("m4", "active_energy_import", NOW - timedelta(hours=5), int(F.METER_REPLACED)),
    ]
    p = CounterAnomalyParams(lookback_hours=24, flags=("epoch_break", "spike"))
    found = counter_anomaly(p, rows, anchor, SH)
    assert [f.subject for f in found] == ["m1/active_energy_import"]  # type: ignore[union-attr]
    assert found[0].value == 2.0  # type: ignore[index]
    assert found[0].context["flags"] == ["epoch_break", "spike"]  # type: ignore[index]
    events = counter_anomaly(CounterAnomalyParams(flags=("meter_replaced", "reset_confirmed")), rows, anchor, SH)
    assert [f.subject for f in events] == ["m4/active_energy_import"]  # type: ignore[union-attr]


def _bal(carrier: str, hours_ago: int, pct: float | None, alarm: bool) -> BalanceRow:
    return BalanceRow(carrier, "active_energy_import", NOW - timedelta(hours=hours_ago), pct, alarm, 100.0, 90.0, "kWh")


def test_meter_balance_uses_the_newest_periods_and_the_flag_or_own_limit():
    rows = [_bal("electricity", 72, 30.0, True),                 # older than the 2 newest: ignored
            _bal("electricity", 48, 2.0, False), _bal("electricity", 24, -6.0, True),
            _bal("gas", 48, 4.0, False), _bal("gas", 24, 3.0, False)]
    found = meter_balance(MeterBalanceParams(lookback_periods=2), rows, SH)
    assert [(f.subject, f.value) for f in found] == [("electricity", -6.0)]  # type: ignore[union-attr]
    own = meter_balance(MeterBalanceParams(lookback_periods=2, limit_pct=3.5), rows, SH)
    assert [(f.subject, f.value) for f in own] == [("electricity", -6.0), ("gas", 4.0)]  # type: ignore[union-attr]
    assert meter_balance(MeterBalanceParams(lookback_periods=1, limit_pct=10), rows, SH) == []
    assert isinstance(meter_balance(MeterBalanceParams(), [], SH), Skipped)


def test_pue_over_the_window_against_each_sites_limit():
    day0 = datetime(2026, 10, 1, 16, tzinfo=UTC)
    rows = [PueDay("dc-a", day0 + timedelta(days=k), 130.0, 100.0, True) for k in range(7)]      # 1.30
    rows += [PueDay("dc-a", day0 - timedelta(days=1), 900.0, 100.0, True)]                       # outside 7 days
    rows += [PueDay("dc-b", day0 + timedelta(days=k), 130.0, 100.0, True) for k in range(7)]     # 1.30, existing
    rows += [PueDay("dc-c", day0 + timedelta(days=k), 150.0, 100.0, True) for k in range(2)]     # too few days
    rows += [PueDay("dc-d", day0 + timedelta(days=k), 120.0, 100.0, True) for k in range(5)]
    rows += [PueDay("dc-d", day0 + timedelta(days=5), 500.0, 100.0, False)]                      # implausible: out
    p = PueLimitParams(window_days=7, min_days=3, sites={"dc-a": "new", "dc-d": 1.15})
    found = {f.subject: f for f in pue_limit(p, rows)}  # type: ignore[union-attr]
    assert set(found) == {"dc-a", "dc-d"}
    assert (found["dc-a"].value, found["dc-a"].limit) == (pytest.approx(1.3), 1.25)
    assert (found["dc-d"].value, found["dc-d"].limit) == (pytest.approx(1.2), 1.15)
    assert found["dc-d"].context["days"] == 5
    assert isinstance(pue_limit(p, []), Skipped)


def test_contracted_demand_from_level1_energy_per_interval():
    q = timedelta(minutes=15)
    t0 = datetime(2026, 10, 14, 8, 0, tzinfo=UTC)
    energy = {t0 + k * q: 500.0 for k in range(8)}          # 500 kWh per 15 min = 2000 kW
    energy[t0 + 6 * q] = 760.0                               # 3040 kW
    p = ContractedDemandParams(contracted_demand_kw=3000, lookback_hours=1)
    found = contracted_demand(p, energy, SH)
    assert [(f.subject, f.value, f.limit, f.unit) for f in found] == [("park", 3040.0, 3000, "kW")]  # type: ignore[union-attr]
    # the exceedance is older than the last hour of data once more intervals arrive
    later = {**energy, **{t0 + k * q: 500.0 for k in range(8, 12)}}
    assert contracted_demand(p, later, SH) == []
    assert isinstance(contracted_demand(ContractedDemandParams(), energy, SH), Skipped)
    assert isinstance(contracted_demand(p, {}, SH), Skipped)


def test_uplink_backlog_is_a_stub():
    out = uplink_backlog(UplinkBacklogParams())
    assert isinstance(out, Skipped)
    assert "no uplink" in out.note
