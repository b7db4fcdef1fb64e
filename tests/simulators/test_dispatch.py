"""Dispatch windows, the fair split of a group cap, and how the scenario file validates dispatch."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from simulators import DEFAULT_SCENARIO, ScenarioError, load_scenario
from simulators._dispatch import EvCapWindow, HvacOffsetWindow, TimeWindow, cap_kw, setpoint_offset_c, share_cap

SH = ZoneInfo("Asia/Shanghai")


def test_daily_window_uses_the_local_hour_and_may_wrap_past_midnight():
    evening = TimeWindow(start_hour=17, end_hour=21)
    night = TimeWindow(start_hour=22, end_hour=6)
    mid = datetime(2026, 7, 15, 12, tzinfo=UTC)  # ignored by daily windows
    assert evening.active(mid, 17.0)
    assert evening.active(mid, 20.99)
    assert not evening.active(mid, 21.0)
    assert night.active(mid, 23.5)
    assert night.active(mid, 24 + 2.0)  # hours past 24 wrap
    assert not night.active(mid, 12.0)


def test_event_window_uses_the_absolute_midpoint_whatever_the_zone():
    window = TimeWindow(start=datetime(2026, 7, 15, 15, tzinfo=SH), end=datetime(2026, 7, 15, 16, tzinfo=SH))
    first_mid = datetime(2026, 7, 15, 7, 0, 30, tzinfo=UTC)  # 15:00:30 in Shanghai
    assert window.active(first_mid, 99.0)
    assert window.active(first_mid + timedelta(minutes=59), 0.0)
    assert not window.active(first_mid + timedelta(minutes=60), 15.5)   # 16:00:30 local
    assert not window.active(first_mid - timedelta(minutes=1), 15.5)    # 14:59:30 local
    assert not window.active(datetime(2026, 7, 16, 7, 30, tzinfo=UTC), 15.5)  # next day, same hour


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "either start_hour and end_hour"),
        ({"start_hour": 1, "end_hour": 2, "start": datetime(2026, 1, 1, tzinfo=UTC),
          "end": datetime(2026, 1, 2, tzinfo=UTC)}, "either start_hour and end_hour"),
        ({"start_hour": 1}, "needs both start_hour and end_hour"),
        ({"start": datetime(2026, 1, 1, tzinfo=UTC)}, "needs start and end"),
        ({"start": datetime(2026, 1, 2, tzinfo=UTC), "end": datetime(2026, 1, 1, tzinfo=UTC)}, "end after start"),
        ({"start": datetime(2026, 1, 1), "end": datetime(2026, 1, 2)}, "timezone"),
        ({"start_hour": 25, "end_hour": 2}, "less than or equal to 24"),
    ],
)
def test_bad_windows_are_rejected(fields, message):
    with pytest.raises(ValidationError, match=message):
        TimeWindow(**fields)


def test_the_tightest_cap_and_the_first_offset_apply():
    mid = datetime(2026, 7, 15, 7, 30, tzinfo=UTC)
    caps = [EvCapWindow(start_hour=8, end_hour=9, max_power_kw=1), EvCapWindow(start_hour=15, end_hour=16,
                                                                               max_power_kw=20),
            EvCapWindow(start_hour=14, end_hour=18, max_power_kw=11)]
    assert cap_kw(caps, mid, 15.5) == 11
    assert cap_kw(caps, mid, 17.0) == 11
    assert cap_kw(caps, mid, 12.0) is None
    offsets = [HvacOffsetWindow(start_hour=15, end_hour=16, setpoint_offset_c=2),
               HvacOffsetWindow(start_hour=14, end_hour=18, setpoint_offset_c=1)]
    assert setpoint_offset_c(offsets, mid, 15.5) == 2
    assert setpoint_offset_c(offsets, mid, 17.0) == 1
    assert setpoint_offset_c(offsets, mid, 3.0) == 0


def test_share_cap_is_max_min_fair():
    # 10 kW among demands 2, 7, 7: the small one gets its 2, the other two split the remaining 8.
    assert share_cap([7.0, 2.0, 7.0], 10.0) == [4.0, 2.0, 4.0]
    # Enough for everyone: each gets its demand.
    assert share_cap([3.0, 0.0, 5.0], 100.0) == [3.0, 0.0, 5.0]
    # Nothing allowed: nobody charges.
    assert share_cap([3.0, 4.0], 0.0) == [0.0, 0.0]
    # 50 among 60, 60, 6.6: 6.6 served, (50 - 6.6) / 2 = 21.7 each.
    shares = share_cap([60.0, 60.0, 6.6], 50.0)
    assert shares == pytest.approx([21.7, 21.7, 6.6])
    assert sum(shares) == pytest.approx(50.0)
    assert share_cap([], 10.0) == []


def _demo():
    return yaml.safe_load(DEFAULT_SCENARIO.read_text("utf-8"))


def _load(tmp_path, data):
    path = tmp_path / "park.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return load_scenario(path)


def test_shipped_scenario_has_an_office_hvac_below_the_office_meter():
    scenario = load_scenario()
    hvac = [d for d in scenario.devices if d.kind == "hvac"]
    assert [(h.id, h.parent, h.site, h.role, h.metering_level) for h in hvac] == [
        ("hvac-office-1", "m2-office", "office", "hvac", 3)]
    assert scenario.dispatch.ev_chargers == []
    assert scenario.dispatch.hvac == []


def test_event_dispatch_in_yaml_loads_with_offsets(tmp_path):
    data = _demo()
    data["dispatch"] = {
        "ev_chargers": [{"start": "2026-07-15T15:00:00+08:00", "end": "2026-07-15T16:00:00+08:00",
                         "max_power_kw": 10, "chargers": ["ev-dc-1", "ev-dc-2"]}],
        "hvac": [{"start_hour": 15, "end_hour": 16, "setpoint_offset_c": 2}],
    }
    scenario = _load(tmp_path, data)
    cap = scenario.dispatch.ev_chargers[0]
    assert cap.start == datetime(2026, 7, 15, 7, tzinfo=UTC)
    assert cap.chargers == ["ev-dc-1", "ev-dc-2"]
    assert scenario.dispatch.hvac[0].setpoint_offset_c == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(dispatch={"ev_chargers": [{"start_hour": 1, "end_hour": 2, "max_power_kw": 5,
                                                       "chargers": ["m2-office"]}]}),
         r"dispatch.ev_chargers: 'm2-office' is not an EV charger"),
        (lambda d: d.update(dispatch={"hvac": [{"start_hour": 1, "end_hour": 2, "setpoint_offset_c": 1,
                                                "units": ["ev-dc-1"]}]}),
         r"dispatch.hvac: 'ev-dc-1' is not an HVAC unit"),
        (lambda d: d.update(dispatch={"hvac": [{"start_hour": 1, "end_hour": 2, "setpoint_offset_c": 11}]}),
         r"setpoint_offset_c: .*less than or equal to 10"),
        (lambda d: d["devices"][5].update(setpoint_c=30), r"\(hvac-office-1\).*comfort_min_c <= setpoint_c"),
        (lambda d: d["devices"][5].update(cop=0), r"\(hvac-office-1\)\.cop: .*greater than 0"),
        (lambda d: d["devices"][5].update(dispatch=[{"start_hour": 3, "setpoint_offset_c": 1}]),
         r"\(hvac-office-1\)\.dispatch\[0\]: .*needs both start_hour and end_hour"),
        (lambda d: d["devices"][9].update(dispatch=[{"start_hour": 3, "end_hour": 4, "max_power_kw": -1}]),
         r"\(ev-dc-1\)\.dispatch\[0\]\.max_power_kw: .*greater than or equal to 0"),
        (lambda d: d["devices"][9].update(power_acceptance=[1.0, 0.5]), r"power_acceptance must be"),
        (lambda d: d["devices"][5].update(parent="hvac-office-1"), r"not an electricity meter"),
    ],
)
def test_bad_dispatch_says_what_and_where(tmp_path, mutate, message):
    data = _demo()
    assert data["devices"][5]["id"] == "hvac-office-1"
    assert data["devices"][9]["id"] == "ev-dc-1"
    mutate(data)
    with pytest.raises(ScenarioError, match=message):
        _load(tmp_path, data)
