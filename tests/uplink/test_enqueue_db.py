"""Records computed from a seeded park through the real aggregation job, enqueued, revised by late data.

The park: level-1 meters m1 (10 kWh per 15 min) and m2 (5 kWh), a level-2 meter s1 (4 kWh), a level-1 gas
meter g1 (1 m³ per 15 min), over local day 2026-11-20 — so every expected value is a hand multiplication.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from aggregation._jobs import AggregationJob, RunReport
from aggregation._settings import AggregationSettings
from tests.aggregation._seed import Meter, create_series, register_rows, write_readings
from tests.uplink._support import SH, endpoint
from uplink._enqueue import after_aggregate, enqueue_range, recompute_start
from uplink._export import export_bodies
from uplink._quality import list_flags
from uplink._store import queued_keys

pytestmark = pytest.mark.services
Q = timedelta(minutes=15)
START = datetime(2026, 11, 20, tzinfo=SH)
NOW = datetime(2026, 11, 22, 1, tzinfo=SH)
GAP = (START + timedelta(hours=10), START + timedelta(hours=12))   # m2 silent 10:00-12:00 local


def _aggregate(database_url: str, park_id: str) -> RunReport:
    return AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                              aggregation_gap_timeout_s=0)).run()


def _seed(conn: psycopg.Connection, park_id: str) -> dict[str, int]:
    meters = [Meter("m1", per_interval=10.0, level=1), Meter("m2", per_interval=5.0, level=1),
              Meter("s1", per_interval=4.0, level=2), Meter("g1", metric="gas_volume", per_interval=1.0, level=1)]
    ids: dict[str, int] = {}
    for m in meters:
        ids[m.device_id] = create_series(conn, park_id, m)
        rows = register_rows(m, START, START + timedelta(days=1), Q)
        if m.device_id == "m2":
            rows = [r for r in rows if not GAP[0] < r[0] < GAP[1]]
        write_readings(conn, ids[m.device_id], rows)
    return ids


def test_records_from_rollups_revised_by_late_data(database_url: str, park_id: str,
                                                   db_conn: psycopg.Connection) -> None:
    _seed(db_conn, park_id)
    _aggregate(database_url, park_id)
    ep = endpoint(park_id, "a")
    day = (date(2026, 11, 20), date(2026, 11, 21))
    report = enqueue_range(database_url, [ep], park_id, *day, now=NOW)
    keys = queued_keys(db_conn, ep.name)

    def value(item: str, period: str, start: datetime) -> tuple[float, str, float]:
        row = db_conn.execute("SELECT value, quality, completeness FROM uplink_records WHERE profile = 'national-json' "
                              "AND record_key = %s", (f"{park_id}|{item}|{period}|{start.isoformat()}",)).fetchone()
        assert row is not None, (item, period, start)
        return float(row[0]), str(row[1]), float(row[2])

    assert value("01010001", "day", START)[0] == pytest.approx(96 * 15.0)
    assert value("01010001", "day", START)[1] == "estimated"        # m2's gap was filled by VEE
    assert value("01040002", "day", START) == (96 * 4.0, "measured", 1.0)   # sums of whole kWh: exact
    assert value("02010001", "day", START)[0] == pytest.approx(96.0)
    assert value("90000001", "day", START)[0] == pytest.approx(1440 * 0.0001229 + 96 * 0.0012143)
    assert value("01010001", "15min", START) == (15.0, "measured", 1.0)
    assert value("01010001", "hour", START + timedelta(hours=3))[0] == pytest.approx(60.0)
    n15 = sum(1 for k in keys if "|01010001|15min|" in k)
    assert n15 == 96
    assert report.new == len(keys)
    assert not any("|month|" in k for k in keys)

    # recomputing unchanged data does nothing
    again = enqueue_range(database_url, [ep], park_id, *day, now=NOW)
    assert (again.new, again.revised) == (0, 0)
    assert again.unchanged == report.new

    # the late readings of m2 arrive: the day becomes measured, a new revision re-queued
    m2 = Meter("m2", per_interval=5.0, level=1)
    sid = create_series(db_conn, park_id, m2)
    late = [r for r in register_rows(m2, START, START + timedelta(days=1), Q) if GAP[0] < r[0] < GAP[1]]
    write_readings(db_conn, sid, late)
    _aggregate(database_url, park_id)
    revised = enqueue_range(database_url, [ep], park_id, *day, now=NOW)
    assert revised.revised >= 1
    assert value("01010001", "day", START) == (1440.0, "measured", 1.0)
    key = f"{park_id}|01010001|day|{START.isoformat()}"
    assert queued_keys(db_conn, ep.name)[key] == ("pending", 2, None)

    bodies = export_bodies(database_url, [ep], park=park_id, profile="national-json", start=day[0], end=day[1])
    assert sum(n for _, n in bodies) == len(keys)
    assert key.encode() in b"".join(b for b, _ in bodies)


def test_after_aggregate_hook_enqueues_and_flags(database_url: str, park_id: str, db_conn: psycopg.Connection,
                                                 tmp_path: Path) -> None:
    _seed(db_conn, park_id)
    _aggregate(database_url, park_id)
    ep = endpoint(park_id, "hook")
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": [ep.model_dump(mode="json")]}, allow_unicode=True))
    lines = after_aggregate(database_url, None, endpoints_file=path, lookback_days=3,
                            now=NOW.astimezone(UTC))
    assert len(lines) == 1
    assert lines[0].startswith(f"uplink {park_id}: ")
    assert "new" in lines[0]
    assert queued_keys(db_conn, ep.name)
    flags = list_flags(db_conn, park_id, date(2026, 11, 19), date(2026, 11, 22), failed_only=True)
    by = {(f["data_item_code"], f["day"], f["check"]): f for f in flags if f["profile"] == "national-json"}
    # 11-19 and 11-21 have no data at all: flagged as missing; 11-20 is complete
    assert "missing meter data" in by[("01010001", date(2026, 11, 19), "completeness")]["reason"]
    assert ("01010001", date(2026, 11, 20), "completeness") not in by
    after = [f for f in flags if f["profile"] == f"national-json@{ep.name}" and f["day"] == date(2026, 11, 20)
             and f["data_item_code"] == "01010001"]
    assert [f["reason"][:26] for f in after] == ["not acknowledged: 96 of 96"]   # nothing was sent yet


def test_the_hook_revises_a_day_older_than_its_look_back_when_late_data_arrives(
        database_url: str, park_id: str, db_conn: psycopg.Connection, tmp_path: Path) -> None:
    _seed(db_conn, park_id)
    first = _aggregate(database_url, park_id)   # the job's first run computes everything: a rebuild
    ep = endpoint(park_id, "late")
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": [ep.model_dump(mode="json")]}, allow_unicode=True))
    key = f"{park_id}|01010001|day|{START.isoformat()}"
    after_aggregate(database_url, None, earliest_change=first.earliest_change, endpoints_file=path, lookback_days=1,
                    now=NOW.astimezone(UTC))
    assert queued_keys(db_conn, ep.name)[key] == ("pending", 1, None)   # the rebuild reaches back to 11-20

    # four weeks later m2's missing readings arrive; a 3-day look-back alone would never revisit 11-20
    m2 = Meter("m2", per_interval=5.0, level=1)
    sid = create_series(db_conn, park_id, m2)
    late = [r for r in register_rows(m2, START, START + timedelta(days=1), Q) if GAP[0] < r[0] < GAP[1]]
    write_readings(db_conn, sid, late)
    run = _aggregate(database_url, park_id)
    assert run.earliest_change == min(r[0] for r in late)
    [stored] = db_conn.execute("SELECT earliest_change FROM aggregation_runs WHERE started_at = %s",
                               (run.started_at,)).fetchone() or [None]
    assert stored == run.earliest_change
    later = (NOW + timedelta(days=28)).astimezone(UTC)
    without = after_aggregate(database_url, None, endpoints_file=path, lookback_days=3, now=later)
    assert re.search(r" 0 revised", without[0]), without   # the look-back alone misses 11-20
    lines = after_aggregate(database_url, None, earliest_change=run.earliest_change, endpoints_file=path,
                            lookback_days=3, now=later)
    assert re.search(r" [1-9]\d* revised", lines[0]), lines
    assert queued_keys(db_conn, ep.name)[key] == ("pending", 2, None)


def test_recompute_start_is_the_earliest_change_within_the_horizon() -> None:
    today = date(2026, 12, 20)
    assert recompute_start(today, SH, None, lookback_days=7, horizon_days=93) == date(2026, 12, 13)
    assert recompute_start(today, SH, datetime(2026, 11, 19, 16, 30, tzinfo=UTC), lookback_days=7,
                           horizon_days=93) == date(2026, 11, 20)          # 00:30 local on the 20th
    assert recompute_start(today, SH, datetime(1900, 1, 1, tzinfo=UTC), lookback_days=7,
                           horizon_days=93) == today - timedelta(days=93)
    assert recompute_start(today, SH, datetime(2026, 12, 19, tzinfo=UTC), lookback_days=7,
                           horizon_days=93) == date(2026, 12, 13)          # a recent change: the look-back


def test_month_from_indicator_and_manual_entry(database_url: str, park_id: str, db_conn: psycopg.Connection) -> None:
    _seed(db_conn, park_id)
    _aggregate(database_url, park_id)
    for kind, qty, unit in (("value_added", 300.0, "10^4 CNY"), ("gross_output", 900.0, "10^4 CNY"),
                            ("product_output", 50.0, "t")):
        db_conn.execute("""INSERT INTO declared_inputs (park_id, kind, period_start, period_end, quantity, unit,
                                                          source)
                           VALUES (%s, %s, '2026-11-01', '2026-12-01', %s, %s, '统计月报')""",
                        (park_id, kind, qty, unit))
    db_conn.execute("""INSERT INTO indicator_results (park_id, period, indicator, variant, period_start, period_end,
                                                      value, unit, status)
                       VALUES (%s, '2026-11', 'total_energy', '当量值', '2026-11-01', '2026-12-01', 0.5, 'tce', 'ok')
                       ON CONFLICT (park_id, period, subject, indicator, variant) DO UPDATE SET value = 0.5""",
                    (park_id,))
    ep = endpoint(park_id, "m")
    enqueue_range(database_url, [ep], park_id, date(2026, 11, 1), date(2026, 12, 1),
                  now=datetime(2026, 12, 2, tzinfo=SH))
    month = datetime(2026, 11, 1, tzinfo=SH).isoformat()
    rows: dict[str, float] = dict(db_conn.execute(
        "SELECT data_item_code, value FROM uplink_records WHERE park_id = %s AND period = 'month'",
        (park_id,)).fetchall())
    assert rows["91000002"] == 300.0
    assert rows["91000001"] == 900.0
    assert rows["90000001"] == 0.5                                  # the published indicator, not the estimate
    assert rows["92000002"] == pytest.approx(0.5 / 50 * 1000)       # kgce/t
    assert rows["01010001"] == pytest.approx(1440.0)
    assert f"{park_id}|92000002|month|{month}" in queued_keys(db_conn, ep.name)


def test_two_profiles_for_one_park(database_url: str, park_id: str, db_conn: psycopg.Connection) -> None:
    _seed(db_conn, park_id)
    _aggregate(database_url, park_id)
    national, provincial = endpoint(park_id, "city"), endpoint(park_id, "gd", profile="guangdong-2013", interval=60)
    report = enqueue_range(database_url, [national, provincial], park_id, date(2026, 11, 20), date(2026, 11, 21),
                           now=NOW)
    gd = queued_keys(db_conn, provincial.name)
    assert report.new == len(queued_keys(db_conn, national.name)) + len(gd)
    assert sum(1 for k in gd if "|E0100001|hour|" in k) == 24       # hourly real-time in the provincial profile
    assert not any("|15min|" in k for k in gd)
    assert f"{park_id}|Z0000001|day|{START.isoformat()}" in gd
