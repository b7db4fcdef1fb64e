"""Aggregation benchmark: 1,000 meters x 1 year of 15-min registers, Polars path vs one SQL query.

Run with ``python scripts/bench_aggregation.py`` after ``parkpulse services up``. Everything runs on this
machine in one run, so the ratios compare like with like:

1. **Load**: ``--meters`` cumulative electricity registers x ``--days`` of 15-min readings, generated with
   Polars and written by binary COPY (ADBC ingest) into ``readings`` of a dedicated database
   (``<db>_aggbench``), plus one change-log row per meter. 1 % of the meters get a reset, 1 % a 6-hour gap and
   a few wrap at their register maximum, so the VEE paths run too.
2. **Compute, Polars path**: read every reading (ADBC/Arrow), interval energy with the full VEE pipeline
   (epochs, rollover, jitter, glitches, gaps, flags, estimated share) and the daily rollup in the park's
   calendar; nothing written.
3. **Compute, SQL path**: one SQL query in the database doing interval energy (``lag()`` difference with
   rollover, negative deltas clamped to 0, no VEE) and the same daily rollup in Asia/Shanghai.
4. **Full backfill**: ``AggregationJob.run(rebuild=True)``, i.e. ``parkpulse aggregate --rebuild``: interval
   energy persisted, meter/group rollups, balance, PUE and monthly indicators.
5. **Incremental**: one new 15-min reading per meter (as ingest writes them), then one
   ``parkpulse aggregate`` run, ``--incremental-runs`` times; the median is reported.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import polars as pl
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregation._bulk import Bulk
from aggregation._intervals import IntervalParams, interval_energy
from aggregation._jobs import AggregationJob, RunReport
from aggregation._pipeline import Prefetcher
from aggregation._registers import METERS_SCHEMA, READINGS_SCHEMA
from aggregation._rollups import meter_rollup
from aggregation._settings import AggregationSettings
from aggregation._store import load_meta
from infra.db import ParkRecord, SiteRecord, migrate, upsert_park
from infra.settings import ServiceSettings

PARK = "bench-park"
TZ = "Asia/Shanghai"
START = datetime(2025, 1, 1, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
Q = timedelta(minutes=15)
REGISTER_MAX = 1_000_000.0

SQL_PATH = """
WITH d AS (
    SELECT r.series_id, r.ts, r.value,
           lag(r.value) OVER w AS prev_value, lag(r.ts) OVER w AS prev_ts
    FROM readings r
    WINDOW w AS (PARTITION BY r.series_id ORDER BY r.ts)
), e AS (
    SELECT d.series_id, date_bin('15 minutes', d.prev_ts, TIMESTAMPTZ '2000-01-01') AS ts,
           CASE WHEN d.value >= d.prev_value THEN d.value - d.prev_value
                WHEN dev.register_max IS NOT NULL AND d.prev_value >= 0.9 * dev.register_max
                     AND d.value <= 0.1 * dev.register_max THEN dev.register_max + 0.01 - d.prev_value + d.value
                ELSE 0 END AS energy
    FROM d JOIN series s USING (series_id) JOIN devices dev USING (device_key)
    WHERE d.prev_value IS NOT NULL
)
SELECT series_id, date_trunc('day', ts, 'Asia/Shanghai') AS day, sum(energy) AS energy, count(*) AS n
FROM e GROUP BY 1, 2
"""


def _bench_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path}_aggbench"))


def _create_database(admin_url: str, url: str, fresh: bool) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            print(f"  (no TimescaleDB in the bench database: {exc.diag.message_primary}; plain PostgreSQL)")
    migrate(url)


def _catalog(url: str, meters: int) -> list[int]:
    """1 level-1 boundary meter, 20 level-2 building meters, the rest level 3; returns series ids."""
    sites = [SiteRecord(f"b{i:02d}", floor_area_m2=5000.0, is_public_building=i < 2) for i in range(20)]
    with psycopg.connect(url, autocommit=True) as conn:
        upsert_park(conn, ParkRecord(PARK, "Benchmark park", TZ, "广东", "南方"), sites)
        ids: list[int] = []
        with conn.transaction():
            for i in range(meters):
                level, role, site = (1, "park_boundary", None) if i == 0 else (
                    (2, None, f"b{(i - 1) % 20:02d}") if i <= 20 else (3, None, f"b{i % 20:02d}"))
                row = conn.execute(
                    """INSERT INTO devices (park_id, device_id, site_id, kind, carrier, metering_level, role,
                                            register_max, rated_power_kw, metadata)
                       VALUES (%s, %s, %s, 'electricity_meter', 'electricity', %s, %s, %s, %s,
                               '{"multiplier_applied": true}')
                       ON CONFLICT (park_id, device_id) DO UPDATE SET site_id = EXCLUDED.site_id
                       RETURNING device_key""",
                    (PARK, f"m{i:05d}", site, level, role, REGISTER_MAX, 4000.0 if i == 0 else 400.0)).fetchone()
                assert row is not None
                srow = conn.execute("""INSERT INTO series (device_key, metric, unit)
                                       VALUES (%s, 'active_energy_import', 'kWh')
                                       ON CONFLICT (device_key, metric) DO UPDATE SET unit = 'kWh'
                                       RETURNING series_id""", (row[0],)).fetchone()
                assert srow is not None
                ids.append(int(srow[0]))
    return ids


def _generate(series_ids: list[int], n: int, offset: int = 0) -> pl.DataFrame:
    """Registers of ``series_ids``: a daily load shape, ~1 % resets and 6-h gaps, some wraps."""
    sid = pl.DataFrame({"series_id": series_ids}, schema={"series_id": pl.Int32()})
    k = pl.DataFrame({"k": pl.int_range(offset, offset + n, eager=True)})
    frame = sid.join(k, how="cross").with_columns(
        ts=(pl.lit(START) + pl.duration(minutes=15 * pl.col("k"))).cast(pl.Datetime("us", "UTC")))
    hour = ((pl.col("k") % 96) / 4 + 8) % 24                                   # local hour in Shanghai
    shape = 0.6 + 0.4 * ((hour - 6) / 24 * 2 * 3.14159).sin().abs()
    kw = 20 + (pl.col("series_id") % 37) * 2
    frame = frame.with_columns(inc=kw * shape * 0.25 * (1 + 0.05 * ((pl.col("k") * 7919 + pl.col("series_id")) % 13
                                                                    / 13 - 0.5)))
    start_value = pl.when(pl.col("series_id") % 250 == 7).then(REGISTER_MAX - 2000.0).otherwise(
        (pl.col("series_id") * 1234.5) % 50_000)
    frame = frame.sort("series_id", "k").with_columns(
        value=(start_value + pl.col("inc").cum_sum().over("series_id") - pl.col("inc")))
    frame = frame.with_columns(
        value=pl.when(pl.col("value") > REGISTER_MAX).then(pl.col("value") - REGISTER_MAX - 0.01)
        .otherwise(pl.col("value")))
    reset_at = n // 2
    frame = frame.with_columns(
        value=pl.when((pl.col("series_id") % 100 == 3) & (pl.col("k") >= reset_at))
        .then(pl.col("value") - pl.col("value").filter(pl.col("k") == reset_at).first().over("series_id") + 0.5)
        .otherwise(pl.col("value")))
    gap = (pl.col("series_id") % 100 == 5) & (pl.col("k") % 96 >= 40) & (pl.col("k") % 96 < 64) & (
        pl.col("k") // 96 == 100)
    return frame.filter(~gap).select("series_id", "ts", "value", quality=pl.lit(0, pl.Int16()))


def _load(url: str, series_ids: list[int], days: int, chunk: int = 100) -> tuple[int, float]:
    n = days * 96 + 1
    rows = 0
    t0 = time.perf_counter()
    with Bulk(url) as bulk:
        for i in range(0, len(series_ids), chunk):
            part = _generate(series_ids[i:i + chunk], n)
            bulk.append("readings", part)
            bulk.append("reading_changes", part.group_by("series_id").agg(
                ts_min=pl.col("ts").min(), ts_max=pl.col("ts").max(), n_rows=pl.len().cast(pl.Int32())))
            bulk.commit()
            rows += part.height
            print(f"  loaded {rows:,} readings ({time.perf_counter() - t0:.0f} s)", end="\r", flush=True)
    print()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings")
    return rows, time.perf_counter() - t0


def _polars_compute(url: str, batch: int, connections: int) -> tuple[float, int, float]:
    """Read + interval energy (full VEE) + daily rollup in memory; returns (seconds, rows, total kWh).

    Like the job, the next batches are read on ``connections`` other connections while one is computed.
    """
    params = IntervalParams()
    t0 = time.perf_counter()
    total, n_days = 0.0, 0

    def fetch(reader: Bulk, bounds: tuple[int, int]) -> pl.DataFrame:
        # as the job does: index scans of the batch's series in every chunk, no ORDER BY (a merge of ordered
        # index scans costs the server ~2.5x more than Polars' sort); without the SET the planner scans
        # every chunk sequentially for each batch
        reader.execute("SET LOCAL enable_seqscan = off")
        try:
            return reader.read(f"SELECT series_id, ts, value, quality FROM readings "
                               f"WHERE series_id BETWEEN {bounds[0]} AND {bounds[1]}", READINGS_SCHEMA)
        finally:
            reader.commit()

    with Bulk(url) as bulk, Prefetcher(url, connections, fetch) as reader:
        meta = load_meta(bulk, PARK)
        ids = meta.get_column("series_id").to_list()
        ranges = [(ids[i], ids[min(i + batch, len(ids)) - 1]) for i in range(0, len(ids), batch)]
        for (lo, hi), readings in zip(ranges, reader.map(ranges), strict=True):
            part = meta.filter(pl.col("series_id").is_between(lo, hi))
            intervals = interval_energy(readings, part.select(METERS_SCHEMA.names()), params)
            daily = meter_rollup(intervals, part, "day", params.interval_s)
            total += float(daily.get_column("energy").sum())
            n_days += daily.height
    return time.perf_counter() - t0, n_days, total


def _sql_compute(url: str) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        rows = conn.execute(SQL_PATH).fetchall()
    return time.perf_counter() - t0, len(rows), float(sum(r[2] for r in rows))


def _append_interval(url: str, step: int) -> int:
    """One new reading per meter at the next 15-min boundary, one change-log row per meter (as ingest)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("""
            CREATE TEMP TABLE new_readings ON COMMIT DROP AS
            SELECT l.series_id, l.ts + interval '15 minutes' AS ts, l.value + 5.0 + %s * 0.01 AS value
            FROM (SELECT DISTINCT ON (series_id) series_id, ts, value FROM readings
                  ORDER BY series_id, ts DESC) l""", (step,))
        n = conn.execute("""INSERT INTO readings (series_id, ts, value, quality)
                            SELECT series_id, ts, value, 0 FROM new_readings""").rowcount
        conn.execute("""INSERT INTO reading_changes (series_id, ts_min, ts_max, n_rows)
                        SELECT series_id, ts, ts, 1 FROM new_readings""")
    return n


def _profiled(on: bool, label: str, fn: Callable[[], RunReport]) -> RunReport:
    """Run ``fn``, under cProfile when ``on`` (top 25 by cumulative time printed)."""
    if not on:
        return fn()
    prof = cProfile.Profile()
    rep = prof.runcall(fn)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
    print(f"--- cProfile, {label} ---\n{out.getvalue()}")
    return rep


def main() -> None:
    """Run the benchmark and print the figures (last line: JSON)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", help="admin database URL (default: settings); the bench uses <db>_aggbench")
    ap.add_argument("--meters", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--batch", type=int, default=50, help="meters per Polars batch (compute comparison)")
    ap.add_argument("--read-connections", type=int, default=2,
                    help="parallel read connections (Polars path and the job's backfill)")
    ap.add_argument("--write-connections", type=int, default=2, help="parallel write connections (the backfill)")
    ap.add_argument("--series-per-batch", type=int, default=None,
                    help="meters per job batch (default: the setting, 100); the pipeline needs several batches")
    ap.add_argument("--incremental-runs", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="keep an already loaded bench database")
    ap.add_argument("--skip-sql", action="store_true")
    ap.add_argument("--skip-backfill", action="store_true", help="with --reuse: keep the previous backfill")
    ap.add_argument("--skip-polars", action="store_true", help="skip the Polars compute comparison")
    ap.add_argument("--profile", action="store_true",
                    help="print cProfile top functions of the backfill and the first incremental run")
    args = ap.parse_args()
    admin = args.database_url or ServiceSettings().database_url  # type: ignore[call-arg]
    url = _bench_url(admin)
    figures: dict[str, object] = {"meters": args.meters, "days": args.days,
                                  "read_connections": args.read_connections,
                                  "write_connections": args.write_connections,
                                  "series_per_batch": args.series_per_batch}
    print(f"bench database {urlsplit(url).path.lstrip('/')}")
    with psycopg.connect(admin) as c:
        row = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (urlsplit(url).path.lstrip("/"),)).fetchone()
    if not (args.reuse and row):
        _create_database(admin, url, fresh=True)
        ids = _catalog(url, args.meters)
        n, secs = _load(url, ids, args.days)
        figures.update(readings=n, load_s=round(secs, 1), load_rows_per_s=round(n / secs))
        print(f"load: {n:,} readings in {secs:.1f} s ({n / secs:,.0f} rows/s, binary COPY via ADBC)")
    else:
        with psycopg.connect(url) as c:
            r = c.execute("SELECT count(*) FROM readings").fetchone()
        figures["readings"] = int(r[0]) if r else 0
        print(f"reusing {figures['readings']:,} readings")

    secs = float("nan")
    if not args.skip_polars:
        secs, n_days, kwh = _polars_compute(url, args.batch, args.read_connections)
        figures.update(polars_compute_s=round(secs, 1), polars_daily_rows=n_days, polars_kwh=round(kwh))
        print(f"polars path (read + interval energy with VEE + daily rollup): {secs:.1f} s, {n_days:,} meter-days")
    if not args.skip_sql:
        sql_secs, sql_rows, sql_kwh = _sql_compute(url)
        figures.update(sql_compute_s=round(sql_secs, 1), sql_daily_rows=sql_rows, sql_kwh=round(sql_kwh),
                       speedup=round(sql_secs / secs, 2))
        print(f"sql path (one query: lag() difference + rollover + daily rollup): {sql_secs:.1f} s, "
              f"{sql_rows:,} meter-days -> Polars is {sql_secs / secs:.2f}x faster")

    settings = AggregationSettings(database_url=url, aggregation_read_connections=args.read_connections,
                                   aggregation_write_connections=args.write_connections,
                                   **({} if args.series_per_batch is None
                                      else {"aggregation_series_per_batch": args.series_per_batch}))
    job = AggregationJob(settings)
    if not args.skip_backfill:
        t0 = time.perf_counter()
        rep = _profiled(args.profile, "backfill", lambda: job.run(rebuild=True))
        full = time.perf_counter() - t0
        figures.update(backfill_s=round(full, 1), backfill_intervals=rep.n_intervals,
                       backfill_estimated_share=rep.estimated_share, backfill_phases_s=rep.phases.seconds())
        print(f"full backfill (aggregate --rebuild, everything persisted): {full:.1f} s, {rep.n_intervals:,} "
              f"intervals, {rep.n_rollups:,} rollup rows, {rep.n_indicators} indicator values, "
              f"estimated share {rep.estimated_share or 0:.3%}")
    else:
        job.run()  # catch up with anything pending before timing single intervals

    times: list[float] = []
    for step in range(args.incremental_runs):
        _append_interval(url, step)
        t0 = time.perf_counter()
        rep = _profiled(args.profile and step == 0, "first incremental run", job.run)
        times.append(time.perf_counter() - t0)
        figures[f"incremental_{step + 1}_phases_s"] = rep.phases.seconds()
        print(f"incremental run {step + 1}: {rep.n_changes} changes, {rep.n_intervals} intervals rewritten, "
              f"{rep.n_rollups} rollup rows, {rep.n_indicators} indicator values in {times[-1]:.2f} s")
    if times:
        figures.update(incremental_s=[round(t, 2) for t in times],
                       incremental_median_s=round(statistics.median(times), 2))
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
