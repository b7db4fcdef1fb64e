"""PUE (ISO/IEC 30134-2): energy-based values, grades, city rules, implausible values, rolling 12 months."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from aggregation._policy import default_policy
from aggregation._pue import assess_pue, pue_table, pue_value, rolling_12m

PUE = default_policy().pue
SH = ZoneInfo("Asia/Shanghai")


def test_pue_is_facility_over_it_energy() -> None:
    assert pue_value(1_450.0, 1_000.0) == pytest.approx(1.45)
    assert pue_value(10.0, 0.0) is None


@pytest.mark.parametrize(("value", "grade", "within"), [(1.18, 1, True), (1.20, 1, True), (1.25, 2, True),
                                                        (1.45, 3, True), (1.6, None, False)])
def test_gb40879_grades(value: float, grade: int | None, within: bool) -> None:
    a = assess_pue(value, PUE)
    assert (a.grade, a.within_limit, a.plausible) == (grade, within, True)


def test_shenzhen_rules_depend_on_new_or_existing() -> None:
    new = {r.id: hit for r, hit in assess_pue(1.30, PUE, "new").rules}
    assert new == {"shenzhen_new_build": False, "national_hub_new_build": False}     # 1.30 is not < 1.25
    old = {r.id: hit for r, hit in assess_pue(1.45, PUE, "existing").rules}
    assert old == {"shenzhen_retrofit": True}                                       # 1.45 > 1.4: retrofit


@pytest.mark.parametrize("value", [0.8, 3.4])
def test_physically_impossible_values_are_flagged_not_graded(value: float) -> None:
    a = assess_pue(value, PUE)
    assert not a.plausible
    assert a.grade is None
    assert a.rules == ()
    assert "implausible" in a.summary()


def _months(n: int, it: float = 100.0, fac: float = 150.0, odd: float | None = None) -> pl.DataFrame:
    rows = []
    for k in range(n):
        start = datetime(2025 + (10 + k) // 12, (10 + k) % 12 + 1, 1, tzinfo=SH).astimezone(UTC)
        f = odd if (odd is not None and k == n - 1) else fac
        rows += [("p", "dc", "dc_facility", "month", start, f, 0.0), ("p", "dc", "dc_it", "month", start, it, 0.0)]
    return pl.DataFrame(rows, schema={"park_id": pl.String, "site_id": pl.String, "role": pl.String,
                                      "grain": pl.String, "period_start": pl.Datetime("us", "UTC"),
                                      "energy": pl.Float64, "estimated_energy": pl.Float64}, orient="row")


def test_rolling_12_months_needs_all_twelve() -> None:
    monthly = pue_table(_months(12, odd=200.0))
    roll = rolling_12m(monthly, "Asia/Shanghai")
    last = roll.sort("period_start").row(-1, named=True)
    # 11 months of 150/100 and one of 200/100: (11 x 150 + 200) / (12 x 100) = 1850 / 1200
    assert last["months"] == 12
    assert last["pue"] == pytest.approx(1850 / 1200)
    first = roll.sort("period_start").row(0, named=True)
    assert first["months"] == 1
    assert first["pue"] is None
