"""Golden cases for declared/verified DR capacity, derating and the annual maximum demand."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from flex import Direction, EventRecord, annual_max_demand, derating_factor, dr_capacity, load_policy
from tests.flex.loadgen import build_load, local

AS_OF = datetime(2026, 7, 15, 8, 0, tzinfo=UTC)


def _rec(event_id, start, hours, avg, declared, ok=True, direction=Direction.UP):
    return EventRecord(event_id, start, hours, direction, 100.0, declared, avg, ok)


RECORDS = [
    _rec("e5", datetime(2025, 1, 1, tzinfo=UTC), 2, 700, None),              # > 365 days old
    _rec("e1", datetime(2026, 3, 1, tzinfo=UTC), 2, 400, 500),                # 0.8
    _rec("e2", datetime(2026, 5, 1, tzinfo=UTC), 1, 600, 500),                # min(1, 1.2) = 1.0
    _rec("e3", datetime(2026, 6, 1, tzinfo=UTC), 0.5, 900, 1000),             # too short to verify; 0.9
    _rec("e4", datetime(2026, 6, 15, tzinfo=UTC), 2, 2000, 500, ok=False),    # failed the quality gate
    _rec("d1", datetime(2026, 6, 20, tzinfo=UTC), 2, 5000, 500, direction=Direction.DOWN),
]


def test_derating_is_mean_delivered_over_declared_of_recent_good_events():
    # Usable (quality ok, declared, up): e1 0.8, e2 1.0, e3 0.9 -> mean 0.9.
    assert derating_factor(RECORDS, Direction.UP) == pytest.approx(0.9)
    # No history -> policy default (1.0).
    assert derating_factor([], Direction.UP) == pytest.approx(load_policy().derating.default_factor)
    # Look-back of 2 events -> e2 1.0, e3 0.9 -> 0.95.
    pol = load_policy()
    short = pol.model_copy(update={"derating": pol.derating.model_copy(update={"lookback_events": 2})})
    assert derating_factor(RECORDS, Direction.UP, short) == pytest.approx(0.95)


def test_capacity_declared_and_verified_as_percent_of_annual_peak():
    # Verified = max R_avg over qualifying up events in 365 days with T >= 1 h: e1 400, e2 600 -> 600 (e2).
    # Annual peak 12 000 kW -> verified 600 / 12000 = 5.0 %; declared 450 kW -> 3.75 %.
    load = build_load(date(2025, 8, 1), date(2026, 7, 14), lambda d: 8000.0,
                      overrides={local(date(2026, 1, 5), 11): 12000.0})
    peak = annual_max_demand(load, as_of=AS_OF)
    assert peak is not None
    assert peak.demand_kw == 12000.0
    assert peak.at == local(date(2026, 1, 5), 11)
    cap = dr_capacity(as_of=AS_OF, declared_kw=450.0, records=RECORDS, peak=peak)
    assert cap.verified_kw == 600.0
    assert cap.verified_event_id == "e2"
    assert cap.n_events == 2
    assert cap.verified_pct == pytest.approx(5.0)
    assert cap.declared_pct == pytest.approx(3.75)
    assert cap.derating_factor == pytest.approx(0.9)
    assert (cap.target_pct_min, cap.target_pct_max) == (3.0, 5.0)
    down = dr_capacity(as_of=AS_OF, declared_kw=None, records=RECORDS, peak=peak, direction=Direction.DOWN)
    assert down.verified_kw == 5000.0
    assert down.declared_pct is None


def test_annual_peak_bases():
    # A 20 000 kW spike in 2025-06 is outside the trailing 365 days before 2026-07-15 but the
    # calendar-year basis (2026 local) ignores it as well; a 15 000 kW spike on 2025-12-31 23:45 local is
    # inside the trailing window, outside calendar year 2026.
    load = build_load(date(2025, 6, 1), date(2026, 7, 14), lambda d: 8000.0, overrides={
        local(date(2025, 6, 2), 12): 20000.0, local(date(2025, 12, 31), 23, 45): 15000.0,
        local(date(2026, 2, 1), 9): 9000.0,
    })
    trailing = annual_max_demand(load, as_of=AS_OF)
    assert trailing is not None
    assert trailing.demand_kw == 15000.0
    calendar = annual_max_demand(load, as_of=AS_OF, basis="calendar_year")
    assert calendar is not None
    assert calendar.demand_kw == 9000.0
    assert annual_max_demand(load.clear(), as_of=AS_OF) is None
    assert annual_max_demand(pl.DataFrame(schema=load.schema), as_of=AS_OF) is None


def test_no_events_means_no_verified_capacity():
    cap = dr_capacity(as_of=AS_OF, declared_kw=100.0, records=[], peak=None)
    assert cap.verified_kw is None
    assert cap.verified_pct is None
    assert cap.declared_pct is None
