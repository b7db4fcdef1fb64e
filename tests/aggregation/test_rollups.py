"""Rollups in the park's calendar (Asia/Shanghai vs UTC), group membership and the level balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from aggregation._intervals import INTERVALS_SCHEMA
from aggregation._rollups import META_SCHEMA, balance_check, group_rollup, meter_rollup, month_rollup

Q = timedelta(minutes=15)


def intervals(series_id: int, start: datetime, n: int, energy: float = 1.0, share: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame({"series_id": [series_id] * n, "ts": [start + k * Q for k in range(n)],
                         "energy": [energy] * n, "quality": [0] * n, "flags": [0] * n,
                         "estimated_share": [share] * n, "coverage": [1.0] * n}, schema=INTERVALS_SCHEMA)


def meta(rows: list[tuple[int, str, str, str | None, int | None, str, str]]) -> pl.DataFrame:
    """(series_id, park, timezone, site, level, carrier, metric)."""
    return pl.DataFrame([(s, p, tz, site, lvl, car, met, None) for s, p, tz, site, lvl, car, met in rows],
                        schema=META_SCHEMA, orient="row")


def test_days_follow_the_shanghai_calendar_not_utc() -> None:
    # 26 h of 1 kWh intervals from 2026-10-04 15:00 UTC (= 23:00 in Shanghai)
    iv = pl.concat([intervals(1, datetime(2026, 10, 4, 15, tzinfo=UTC), 104),
                    intervals(2, datetime(2026, 10, 4, 15, tzinfo=UTC), 104)])
    m = meta([(1, "p", "Asia/Shanghai", None, 1, "electricity", "active_energy_import"),
              (2, "q", "UTC", None, 1, "electricity", "active_energy_import")])
    days = meter_rollup(iv, m, "day", 900)
    sh = days.filter(pl.col("series_id") == 1)
    # Shanghai days start at 16:00 UTC: 15:00-15:45 (4) | 16:00 .. next 15:45 (96) | 16:00-16:45 (4)
    assert sh.get_column("period_start").to_list() == [datetime(2026, 10, 3, 16, tzinfo=UTC),
                                                       datetime(2026, 10, 4, 16, tzinfo=UTC),
                                                       datetime(2026, 10, 5, 16, tzinfo=UTC)]
    assert sh.get_column("energy").to_list() == [4.0, 96.0, 4.0]
    assert sh.get_column("n_expected").to_list() == [96, 96, 96]
    utc = days.filter(pl.col("series_id") == 2)
    # in UTC the same intervals split 36 (15:00-23:45) | 68 (00:00-16:45)
    assert utc.get_column("energy").to_list() == [36.0, 68.0]


def test_month_boundary_and_completeness_in_local_time() -> None:
    # the last Shanghai October interval is 2026-10-31 15:45 UTC; 16:00 UTC is already 1 November
    iv = intervals(1, datetime(2026, 10, 31, 15, 30, tzinfo=UTC), 4, energy=2.0, share=0.5)
    m = meta([(1, "p", "Asia/Shanghai", None, 1, "electricity", "active_energy_import")])
    months = month_rollup(meter_rollup(iv, m, "day", 900), m, 900)
    assert months.get_column("period_start").to_list() == [datetime(2026, 9, 30, 16, tzinfo=UTC),
                                                           datetime(2026, 10, 31, 16, tzinfo=UTC)]
    assert months.get_column("energy").to_list() == [4.0, 4.0]
    assert months.get_column("estimated_energy").to_list() == [2.0, 2.0]   # 2 kWh x 2 intervals x 0.5
    # October has 31 x 96 = 2976 intervals, November 30 x 96 = 2880
    assert months.get_column("n_expected").to_list() == [2976, 2880]
    assert months.get_column("n_intervals").to_list() == [2, 2]


def test_group_rollups_never_double_count_levels_and_balance_reports_the_difference() -> None:
    t = datetime(2026, 10, 4, 16, tzinfo=UTC)
    m = meta([(1, "p", "Asia/Shanghai", None, 1, "electricity", "active_energy_import"),
              (2, "p", "Asia/Shanghai", "s1", 2, "electricity", "active_energy_import"),
              (3, "p", "Asia/Shanghai", "s2", 2, "electricity", "active_energy_import"),
              (4, "p", "Asia/Shanghai", "s1", 3, "electricity", "active_energy_import"),
              (5, "p", "Asia/Shanghai", None, 1, "gas", "gas_volume")])
    iv = pl.concat([intervals(1, t, 96, 100 / 96), intervals(2, t, 96, 60 / 96), intervals(3, t, 96, 30 / 96),
                    intervals(4, t, 96, 20 / 96), intervals(5, t, 96, 1.0)])
    groups = group_rollup(meter_rollup(iv, m, "day", 900), m)

    def energy(dim: str, member: str, metric: str = "active_energy_import") -> float:
        row = groups.filter((pl.col("dimension") == dim) & (pl.col("member") == member)
                            & (pl.col("metric") == metric))
        return float(row.get_column("energy").item())

    assert energy("park", "") == pytest.approx(100.0)           # level 1 only, not 100 + 60 + 30 + 20
    assert energy("park", "", "gas_volume") == pytest.approx(96.0)
    assert energy("site", "s1") == pytest.approx(60.0)          # site s1's top level is 2: the level-3 20 is inside
    assert energy("site", "s2") == pytest.approx(30.0)
    assert energy("level", "2") == pytest.approx(90.0)
    assert energy("level", "3") == pytest.approx(20.0)
    bal = balance_check(groups, alarm_pct=5.0)
    row = bal.row(0, named=True)
    # level 1 100 - (60 + 30) = 10 kWh, 10 % of level 1 > 5 % alarm
    assert row["difference"] == pytest.approx(10.0)
    assert row["difference_pct"] == pytest.approx(10.0)
    assert row["alarm"] is True
    assert balance_check(groups, alarm_pct=12.0).get_column("alarm").to_list() == [False]
