"""Per-meter energy shaping (pure): quality labels, flag names, windows, local labels and shares."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregation._meter_energy import (
    REPLACEMENT_MASK,
    EnergyWindow,
    RawRollup,
    energy_window,
    flag_names,
    quality_label,
    shape_rows,
)
from aggregation._quality import IntervalFlag
from aggregation.errors import PeriodError


def raw(**kw) -> RawRollup:
    base = {"device_id": "m1", "metric": "active_energy_import", "carrier": "electricity", "metering_level": 1,
            "site_id": None, "role": None, "unit": "kWh", "period_start": datetime(2026, 9, 30, 16, tzinfo=UTC),
            "energy": 960.0, "estimated_energy": 0.0, "n_intervals": 96, "n_estimated": 0.0, "n_expected": 96,
            "flags": 0}
    base.update(kw)
    return RawRollup(**base)


def test_meter_event_bits_make_a_replacement_whatever_else_is_set():
    assert REPLACEMENT_MASK == 8192 | 16384 | 32768
    for bit in (8192, 16384, 32768):
        assert quality_label(bit | int(IntervalFlag.GAP_LINEAR), 5.0, 1.0) == "replacement"
    assert quality_label(int(IntervalFlag.GAP_LINEAR), 5.0, 1.0) == "estimated"
    assert quality_label(0, 0.0, 0.5) == "estimated"          # an estimated interval of zero energy still counts
    assert quality_label(int(IntervalFlag.SPLIT | IntervalFlag.JITTER), 0.0, 0.0) == "measured"


def test_flag_names_in_bit_order_including_the_event_bits_by_value():
    flags = int(IntervalFlag.ROLLOVER | IntervalFlag.GAP_LINEAR) | 8192 | 32768
    assert flag_names(flags) == ("gap_linear", "rollover", "meter_replaced", "ratio_change")
    assert flag_names(0) == ()


def test_rows_get_local_labels_shares_and_completeness():
    day2 = datetime(2026, 10, 1, 16, tzinfo=UTC)
    rows = shape_rows([
        raw(period_start=day2, energy=1000.0, estimated_energy=250.0, n_estimated=24.0, n_intervals=90,
            flags=int(IntervalFlag.GAP_LIKE_DAY)),
        raw(),
        raw(device_id="gas", metric="gas_volume", carrier="gas", unit="m3", energy=0.0, metering_level=None),
    ], "Asia/Shanghai", "day")
    assert [(r.device_id, r.period) for r in rows] == [("m1", "2026-10-01"), ("m1", "2026-10-02"),
                                                      ("gas", "2026-10-01")]
    second = rows[1]
    assert second.estimated_share == 0.25
    assert second.completeness == 90 / 96
    assert (second.quality, second.flag_names) == ("estimated", ("gap_like_day",))
    assert rows[2].estimated_share is None                   # no energy: the share is undefined, not 0
    assert rows[2].carrier == "gas"
    month = shape_rows([raw()], "Asia/Shanghai", "month")[0]
    assert month.period == "2026-10"


def test_window_rules_say_what_to_pass_instead():
    assert energy_window(date(2026, 10, 1), date(2026, 11, 1), "month").grain == "month"
    with pytest.raises(PeriodError, match="first days of months"):
        energy_window(date(2026, 10, 5), date(2026, 11, 1), "month")
    with pytest.raises(PeriodError, match="must be after --from"):
        energy_window(date(2026, 10, 1), date(2026, 10, 1), "day")
    with pytest.raises(PeriodError, match="at most 400 days"):
        energy_window(date(2024, 1, 1), date(2026, 1, 1), "day")
    with pytest.raises(PeriodError, match="grain must be day or month"):
        energy_window(date(2026, 10, 1), date(2026, 11, 1), "hour")


def test_window_utc_bounds_are_local_midnights():
    lo, hi = energy_window(date(2026, 10, 1), date(2026, 10, 2), "day").utc_bounds("Asia/Shanghai")
    assert (lo, hi) == (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 10, 1, 16, tzinfo=UTC))


@given(start=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)),
       days=st.integers(min_value=-50, max_value=5000), grain=st.sampled_from(["day", "month", "week", ""]))
def test_any_window_is_accepted_or_refused_with_a_reason(start: date, days: int, grain: str):
    end = start + timedelta(days=days)
    window: EnergyWindow | None = None
    error: PeriodError | None = None
    try:
        window = energy_window(start, end, grain)
    except PeriodError as exc:
        error = exc
    if error is not None:
        assert "--from" in error.reason or "grain" in error.reason or "at most" in error.reason
    else:
        assert window is not None
        assert window.start < window.end
        assert (window.end - window.start).days <= 3700
