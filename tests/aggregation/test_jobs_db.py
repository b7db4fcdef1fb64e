"""The incremental jobs against the real database: backfill, late data, idempotence, watermark gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from aggregation._jobs import AggregationJob
from aggregation._quality import IntervalFlag as F
from aggregation._settings import AggregationSettings
from aggregation.errors import ConfigurationChangedError
from infra.db import SiteRecord
from tests.aggregation._seed import Meter, create_park, create_series, register_rows, seed, write_readings

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)
OCT_START = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)   # 2026-09-30 16:00 UTC
NOV_START = datetime(2026, 11, 1, tzinfo=SH).astimezone(UTC)   # 2026-10-31 16:00 UTC

PARK_METERS = [
    Meter("m1", per_interval=41.0, level=1, role="park_boundary", rated_power_kw=4000),
    Meter("m2-office", per_interval=10.0, level=2, site="office", rated_power_kw=600),
    Meter("m2-ws", per_interval=20.0, level=2, site="workshop", rated_power_kw=1600),
    Meter("m2-dc", per_interval=15.0, level=2, site="dc", role="dc_facility", rated_power_kw=400),
    Meter("m3-it", per_interval=10.0, level=3, site="dc", role="dc_it", metadata={"pue_category": "2"}),
    Meter("pv", metric="generated_energy", per_interval=5.0, role="pv", site="office"),
    Meter("gas", metric="gas_volume", per_interval=2.5, level=1, role="park_boundary"),
]
SITES = [SiteRecord("office", is_public_building=True, floor_area_m2=12_000), SiteRecord("workshop"),
         SiteRecord("dc", kind="data_centre")]


def job_for(database_url: str, park_id: str, gap_timeout_s: float = 0.0) -> AggregationJob:
    """A per-park job; no waiting for open change ids unless asked (other suites share the change log)."""
    return AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                              aggregation_gap_timeout_s=gap_timeout_s))


def seed_october(conn: psycopg.Connection, park_id: str) -> dict[str, int]:
    create_park(conn, park_id, SITES)
    return seed(conn, park_id, PARK_METERS, OCT_START, NOV_START)


def test_backfill_month_rollups_balance_pue_and_indicators(database_url: str, db_conn: psycopg.Connection,
                                                           park_id: str) -> None:
    ids = seed_october(db_conn, park_id)
    report = job_for(database_url, park_id).run()
    # 7 meters x 31 days x 96 intervals
    assert report.n_intervals == 7 * 31 * 96
    assert report.estimated_share == 0
    month = db_conn.execute("""SELECT energy, n_intervals, n_expected FROM meter_rollups
                               WHERE series_id = %s AND grain = 'month' AND period_start = %s""",
                            (ids["m1"], OCT_START)).fetchone()
    assert month == (41.0 * 2976, 2976, 2976)                      # 122 016 kWh, complete
    bal = db_conn.execute("""SELECT level1_energy, level2_energy, difference FROM balance_checks
                             WHERE park_id = %s AND grain = 'month' AND metric = 'active_energy_import'""",
                          (park_id,)).fetchone()
    # level-1 import 41 x 2976 plus the PV behind the boundary 5 x 2976 supply (10 + 20 + 15) x 2976 of
    # level 2: 1 x 2976 left as losses (no negative loss from self-consumed generation)
    assert bal == (122_016.0, 133_920.0, 2_976.0)
    pue = db_conn.execute("""SELECT pue, category, grade, plausible FROM pue_results
                             WHERE park_id = %s AND grain = 'month' AND period_start = %s""",
                          (park_id, OCT_START)).fetchone()
    assert pue == (pytest.approx(1.5), "2", 3, True)               # 15 / 10 per interval
    rows: dict[str, float] = dict(db_conn.execute("""SELECT indicator || '/' || variant, value FROM indicator_results
                                   WHERE park_id = %s AND period = '2026-10' AND subject = ''""",
                                (park_id,)).fetchall())
    # consumed = (41 + 5) x 2976 = 136 896 kWh; x 0.1229 tce/MWh = 16.8245; gas 2.5 x 2976 x 0.0012143 = 9.0344
    assert rows["total_energy/当量值"] == pytest.approx(136.896 * 0.1229 + 7_440 * 0.0012143)
    # location CO2: 122.016 MWh x 0.4042 (南方 2023) + 7 440 m3 x 0.002165
    assert rows["total_co2/location"] == pytest.approx(122.016 * 0.4042 + 7_440 * 0.002165)
    assert rows["public_building_energy_intensity/MJ"] == pytest.approx(10 * 2976 * 3.6 / 12_000)
    vintages = db_conn.execute("""SELECT factor_vintages FROM indicator_results WHERE park_id = %s
                                  AND indicator = 'total_co2' AND variant = 'location'""", (park_id,)).fetchone()
    assert vintages is not None
    assert vintages[0]["grid_emission_factor.average.南方.2023"]["vintage"].startswith("MEE/NBS 2023")


def test_late_data_recomputes_exactly_the_affected_intervals(database_url: str, db_conn: psycopg.Connection,
                                                             park_id: str) -> None:
    create_park(db_conn, park_id)
    meter = Meter("m", per_interval=10.0, level=1, role="park_boundary", rated_power_kw=400)
    sid = create_series(db_conn, park_id, meter)
    start = datetime(2026, 10, 6, tzinfo=SH).astimezone(UTC)      # Tuesday; day 2 is a Wednesday (like day)
    rows = register_rows(meter, start, start + timedelta(days=2), Q)
    hole = rows[110:120]                                  # 10 readings of day 2 arrive late
    write_readings(db_conn, sid, rows[:110] + rows[120:])
    job = job_for(database_url, park_id)
    job.run()

    def intervals() -> dict[datetime, tuple[float, int, int, datetime]]:
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in db_conn.execute(
            "SELECT ts, energy, quality, flags, computed_at FROM interval_energy WHERE series_id = %s", (sid,))}

    before = intervals()
    gap = [start + k * Q for k in range(109, 120)]       # 109 -> 120 is one 2 h 45 min span
    assert all(before[t][1] == 1 and before[t][2] & F.GAP_LIKE_DAY for t in gap)   # like day = day 1
    assert sum(before[t][0] for t in gap) == pytest.approx(110.0)                 # 11 intervals x 10
    day_rollup = """SELECT energy, estimated_energy FROM meter_rollups WHERE series_id = %s AND grain = 'day'
                    AND period_start = %s"""
    day2 = start + timedelta(days=1)
    assert db_conn.execute(day_rollup, (sid, day2)).fetchone() == (960.0, pytest.approx(110.0))

    write_readings(db_conn, sid, hole)                   # the late readings
    run = job.run()
    after = intervals()
    assert all(after[t][1] == 0 and after[t][2] == 0 for t in gap)
    assert db_conn.execute(day_rollup, (sid, day2)).fetchone() == (960.0, 0.0)
    # only intervals within 4 readings of the late range were rewritten; day 1 was not touched
    rewritten = {t for t in after if after[t][3] != before[t][3]}
    assert rewritten == {start + k * Q for k in range(106, 124)}
    assert run.n_intervals == len(rewritten)
    # the month's indicators were restated: revision 2, the old value in the history
    rev = db_conn.execute("""SELECT revision, estimated_share FROM indicator_results WHERE park_id = %s
                             AND period = '2026-10' AND indicator = 'total_energy' AND variant = '当量值'""",
                          (park_id,)).fetchone()
    assert rev == (2, 0.0)
    hist = db_conn.execute("""SELECT count(*) FROM indicator_results_history WHERE park_id = %s
                              AND indicator = 'total_energy'""", (park_id,)).fetchone()
    assert hist is not None
    assert hist[0] >= 1


def test_rerun_is_idempotent_and_rebuild_gives_the_same_numbers(database_url: str, db_conn: psycopg.Connection,
                                                                park_id: str) -> None:
    create_park(db_conn, park_id)
    start = datetime(2026, 10, 5, tzinfo=SH).astimezone(UTC)
    seed(db_conn, park_id, [Meter("m", per_interval=7.5, level=1, register_max=1000.0, start_value=900.0)],
         start, start + timedelta(hours=12))
    job = job_for(database_url, park_id)
    first = job.run()
    snapshot = "SELECT ts, energy, quality, flags FROM interval_energy ie JOIN series s USING (series_id) " \
               "JOIN devices d USING (device_key) WHERE d.park_id = %s ORDER BY ts"
    values = db_conn.execute(snapshot, (park_id,)).fetchall()
    assert first.n_intervals == 48
    assert sum(v[1] for v in values) == pytest.approx(48 * 7.5)       # across a wrap at 1000
    assert any(v[3] & F.ROLLOVER for v in values)
    assert job.run().n_intervals == 0                                  # nothing changed: nothing done
    job.run(rebuild=True, park_id=park_id)
    assert db_conn.execute(snapshot, (park_id,)).fetchall() == values


def test_change_ids_committed_out_of_order_are_not_lost(database_url: str, db_conn: psycopg.Connection,
                                                        park_id: str) -> None:
    create_park(db_conn, park_id)
    meter = Meter("m", per_interval=10.0, level=1)
    sid = create_series(db_conn, park_id, meter)
    start = datetime(2026, 10, 5, tzinfo=SH).astimezone(UTC)
    rows = register_rows(meter, start, start + timedelta(hours=6), Q)
    job = job_for(database_url, park_id, gap_timeout_s=300.0)
    write_readings(db_conn, sid, rows[:10])
    # a concurrent ingest transaction took the next change id but has not committed yet
    late_id = db_conn.execute("SELECT nextval(pg_get_serial_sequence('reading_changes', 'change_id'))").fetchone()
    assert late_id is not None
    write_readings(db_conn, sid, rows[20:])
    job.run()
    job_name = f"aggregation:{park_id}"
    pending = db_conn.execute("SELECT change_id FROM aggregation_pending_changes WHERE job = %s",
                              (job_name,)).fetchall()
    mark = db_conn.execute("SELECT last_change_id FROM aggregation_watermarks WHERE job = %s", (job_name,)).fetchone()
    assert mark is not None
    # the open id is remembered, or (when the shared test database has many open gaps) the watermark waits
    assert (late_id[0],) in pending or mark[0] < late_id[0]
    # ... it commits now, with the id it took
    with db_conn.transaction():
        with db_conn.cursor().copy("COPY readings (series_id, ts, value, quality) FROM STDIN") as cp:
            for ts, value in rows[10:20]:
                cp.write_row((sid, ts, value, 0))
        db_conn.execute("""INSERT INTO reading_changes (change_id, series_id, ts_min, ts_max, n_rows)
                           VALUES (%s, %s, %s, %s, 10)""", (late_id[0], sid, rows[10][0], rows[19][0]))
    job.run()
    flags = db_conn.execute("SELECT bool_or(quality <> 0) FROM interval_energy WHERE series_id = %s",
                            (sid,)).fetchone()
    assert flags == (False,)                                          # the hole is filled with actual data
    assert db_conn.execute("SELECT count(*) FROM aggregation_pending_changes WHERE job = %s AND change_id = %s",
                           (job_name, late_id[0])).fetchone() == (0,)


def test_late_data_on_a_like_day_re_estimates_the_gaps_that_use_it(database_url: str, db_conn: psycopg.Connection,
                                                                   park_id: str) -> None:
    create_park(db_conn, park_id)

    def profile(ts: datetime) -> float:        # 5 kWh per interval at night, 15 from 08:00 to 20:00 local
        return 15.0 if 8 <= ts.astimezone(SH).hour < 20 else 5.0

    meter = Meter("m", per_interval=profile, level=1, rated_power_kw=200)
    sid = create_series(db_conn, park_id, meter)
    monday_a = datetime(2026, 10, 5, tzinfo=SH)      # the like day (Monday)
    monday_b = datetime(2026, 10, 12, tzinfo=SH)     # one week later, same day type
    rows = register_rows(meter, monday_a.astimezone(UTC), (monday_b + timedelta(days=1)).astimezone(UTC), Q)

    def local(r: tuple[datetime, float]) -> datetime:
        return r[0].astimezone(SH)

    hole_a = [r for r in rows if monday_a + timedelta(hours=5) < local(r) < monday_a + timedelta(hours=13)]
    gap_b = [r for r in rows if monday_b + timedelta(hours=6) < local(r) < monday_b + timedelta(hours=12)]
    write_readings(db_conn, sid, [r for r in rows if r not in hole_a and r not in gap_b])
    job = job_for(database_url, park_id)
    job.run()
    lo, hi = (monday_b + timedelta(hours=6)).astimezone(UTC), (monday_b + timedelta(hours=12)).astimezone(UTC)
    query = "SELECT energy FROM interval_energy WHERE series_id = %s AND ts >= %s AND ts < %s ORDER BY ts"
    before = [r[0] for r in db_conn.execute(query, (sid, lo, hi))]
    # day A is estimated where B needs it, so B falls back to linear: (8 x 5 + 16 x 15) / 24 = 280 / 24
    assert before == pytest.approx([280 / 24] * 24)
    write_readings(db_conn, sid, hole_a)             # day A's hole arrives late
    job.run()
    after = [r[0] for r in db_conn.execute(query, (sid, lo, hi))]
    # day A is actual now and B's gap takes its shape: 5 x 8 (06:00-08:00) and 15 x 16 (08:00-12:00)
    assert after == pytest.approx([5.0] * 8 + [15.0] * 16)


def test_a_changed_interval_length_needs_a_rebuild(database_url: str, db_conn: psycopg.Connection,
                                                   park_id: str) -> None:
    create_park(db_conn, park_id)
    start = datetime(2026, 10, 5, tzinfo=SH).astimezone(UTC)
    seed(db_conn, park_id, [Meter("m", per_interval=10.0, level=1)], start, start + timedelta(hours=2))
    job_for(database_url, park_id).run()
    half_hourly = AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                                     aggregation_gap_timeout_s=0, aggregation_interval_minutes=30))
    with pytest.raises(ConfigurationChangedError, match="--rebuild"):
        half_hourly.run()
    report = half_hourly.run(rebuild=True, park_id=park_id)
    assert report.n_intervals == 4                       # 2 h of 30-min intervals
    assert half_hourly.run().n_intervals == 0
