"""Reporting periods in the park's calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from aggregation._periods import parse_period
from aggregation.errors import PeriodError


def test_month_quarter_year_and_ytd() -> None:
    assert parse_period("2026-10").months() == [date(2026, 10, 1)]
    q = parse_period("2026-Q4")
    assert (q.start, q.end, len(q.months())) == (date(2026, 10, 1), date(2027, 1, 1), 3)
    assert len(parse_period("2026").months()) == 12
    ytd = parse_period("2026-YTD", today=date(2026, 11, 20))
    assert (ytd.label, ytd.start, ytd.end) == ("2026-11-YTD", date(2026, 1, 1), date(2026, 12, 1))
    assert parse_period("2026-10-YTD").end == date(2026, 11, 1)


def test_utc_bounds_of_a_shanghai_month() -> None:
    lo, hi = parse_period("2026-10").utc_bounds("Asia/Shanghai")
    # local midnight 1 October = 30 September 16:00 UTC
    assert (lo, hi) == (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 10, 31, 16, tzinfo=UTC))


@pytest.mark.parametrize("text", ["2026-13", "2026-Q5", "26-10", "last month", "2026-00-YTD"])
def test_invalid_periods(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text)
