"""Database adapter of the jobs: meter metadata, readings with context, interval energy and rollups.

Thin by design: every function is one round of SQL on a :class:`~aggregation._bulk.Bulk` connection and
returns or takes Polars frames with the schemas of the pure modules. Nothing here decides anything about
energy; it only moves rows. Writes replace exactly the recomputed ranges inside the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import polars as pl

from aggregation._bulk import Bulk
from aggregation._intervals import HISTORY_SCHEMA, INTERVALS_SCHEMA
from aggregation._quality import IntervalFlag
from aggregation._registers import READINGS_SCHEMA
from aggregation._rollups import GROUP_ROLLUP_SCHEMA, METER_ROLLUP_SCHEMA
from schemas import METRICS, MetricKind

CUMULATIVE_METRICS: Final = tuple(sorted(m.name for m in METRICS.values() if m.kind is MetricKind.CUMULATIVE))
_METRIC_CARRIER: Final = {m.name: m.carrier.value for m in METRICS.values()}

META_COLUMNS: Final = pl.Schema({
    "series_id": pl.Int32(), "park_id": pl.String(), "timezone": pl.String(), "site_id": pl.String(),
    "metering_level": pl.Int16(), "carrier": pl.String(), "metric": pl.String(), "role": pl.String(),
    "unit": pl.String(), "register_max": pl.Float64(), "multiplier": pl.Float64(), "max_rate_per_h": pl.Float64(),
    "resolution": pl.Float64(), "float32_register": pl.Boolean(), "pue_category": pl.String(),
    "dc_status": pl.String(), "province": pl.String(), "grid_region": pl.String(),
})
WINDOW_SCHEMA: Final = pl.Schema({"series_id": pl.Int32(), "w0": pl.Datetime("us", "UTC"),
                                  "w1": pl.Datetime("us", "UTC")})
EMIT_SCHEMA: Final = pl.Schema({"series_id": pl.Int32(), "lo": pl.Datetime("us", "UTC"),
                                "hi": pl.Datetime("us", "UTC")})
RANGE_SCHEMA: Final = EMIT_SCHEMA
#: Stand-ins for -infinity / +infinity (Polars datetimes cannot hold PostgreSQL's infinities).
TIME_MIN: Final = datetime(1900, 1, 1, tzinfo=UTC)
TIME_MAX: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _sql_list(values: tuple[str, ...]) -> str:
    """A SQL list of string literals from code constants (metric names: ``[a-z0-9_]`` only)."""
    for v in values:
        if not v.replace("_", "").isalnum():
            raise ValueError(f"unexpected metric name {v!r}")
    return ", ".join(f"'{v}'" for v in values)


def _outer(ranges: pl.DataFrame, lo: str = "lo", hi: str = "hi") -> tuple[datetime, datetime]:
    """Constant bounds around a set of ranges: with them TimescaleDB excludes chunks at plan time."""
    row = ranges.select(pl.col(lo).min(), pl.col(hi).max()).row(0)
    return (row[0] or TIME_MIN), (row[1] or TIME_MAX)


def load_meta(bulk: Bulk, park_id: str | None = None) -> pl.DataFrame:
    """Cumulative series with their device, site, park and plausibility parameters (``META_COLUMNS``).

    Edge agents and the simulator publish primary-side values (CT x PT already applied; the birth
    message says ``multiplier_applied``, and ``register_max`` is primary too). Then the multiplier used
    here is 1 and the register step scales by the device multiplier; a device that reports raw
    secondary registers (``multiplier_applied: false``) gets its energy multiplied instead.
    """
    where = "" if park_id is None else "AND d.park_id = $1"
    sql = f"""
        SELECT s.series_id, d.park_id, p.timezone, d.site_id, d.metering_level::int2 AS metering_level,
               d.carrier, s.metric, d.role, s.unit, d.register_max,
               CASE WHEN applied THEN 1.0::float8 ELSE d.multiplier END AS multiplier,
               CASE WHEN s.unit = 'kWh' THEN d.rated_power_kw
                    ELSE (d.metadata->>'max_rate_per_h')::float8 END AS max_rate_per_h,
               (d.metadata->>'register_resolution')::float8
                   * CASE WHEN applied THEN d.multiplier ELSE 1.0 END AS resolution,
               COALESCE(d.metadata->>'register_format', '') = 'float32' AS float32_register,
               d.metadata->>'pue_category' AS pue_category, d.metadata->>'dc_status' AS dc_status,
               p.province, p.grid_region
        FROM series s JOIN devices d USING (device_key) JOIN parks p USING (park_id),
             LATERAL (SELECT COALESCE((d.metadata->>'multiplier_applied')::boolean, true) AS applied) m
        WHERE s.metric IN ({_sql_list(CUMULATIVE_METRICS)}) {where}
        ORDER BY s.series_id"""
    df = bulk.read(sql, META_COLUMNS, params=None if park_id is None else (park_id,))
    return df.with_columns(
        carrier=pl.col("metric").replace_strict(_METRIC_CARRIER, default=pl.col("carrier"),
                                                return_dtype=pl.String()))


def load_readings(bulk: Bulk, windows: pl.DataFrame, context: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings of each window plus ``2 × context`` readings either side, and the emit ranges.

    ``windows`` (``WINDOW_SCHEMA``) are the changed ranges. The emit range of a window runs from the
    ``context``-th reading before ``w0`` to the ``context``-th after ``w1`` (open-ended where the series has
    fewer): intervals inside it are computed with full context and may replace the stored ones.
    """
    bulk.stage("agg_windows", windows.select(WINDOW_SCHEMA.names()))
    far = 2 * context
    bulk.execute(f"""
        CREATE TEMP TABLE agg_bounds ON COMMIT DROP AS
        SELECT w.series_id,
               COALESCE((SELECT min(x.ts) FROM (SELECT r.ts FROM readings r WHERE r.series_id = w.series_id
                         AND r.ts < w.w0 ORDER BY r.ts DESC LIMIT {far}) x), w.w0) AS lo,
               COALESCE((SELECT max(x.ts) FROM (SELECT r.ts FROM readings r WHERE r.series_id = w.series_id
                         AND r.ts > w.w1 ORDER BY r.ts LIMIT {far}) x), w.w1) AS hi,
               (SELECT x.ts FROM (SELECT r.ts FROM readings r WHERE r.series_id = w.series_id
                         AND r.ts < w.w0 ORDER BY r.ts DESC LIMIT {context}) x
                ORDER BY x.ts DESC LIMIT 1 OFFSET {context - 1}) AS emit_lo,
               (SELECT x.ts FROM (SELECT r.ts FROM readings r WHERE r.series_id = w.series_id
                         AND r.ts > w.w1 ORDER BY r.ts LIMIT {context}) x
                ORDER BY x.ts LIMIT 1 OFFSET {context - 1}) AS emit_hi
        FROM agg_windows w""")
    # constant outer bounds let TimescaleDB skip chunks; unordered on purpose (no merge of index scans:
    # the server streams the chunks and Polars sorts)
    outer = bulk.read("SELECT min(lo) AS lo, max(hi) AS hi FROM agg_bounds",
                      pl.Schema({"lo": pl.Datetime("us", "UTC"), "hi": pl.Datetime("us", "UTC")}))
    lo, hi = outer.row(0) if outer.height else (None, None)
    # readings are time-partitioned and we want a subset of series: at ~25 % selectivity the planner would
    # scan every chunk sequentially, i.e. read the whole table once per batch
    bulk.execute("SET LOCAL enable_seqscan = off")
    readings = bulk.read("""
        SELECT r.series_id, r.ts, r.value, r.quality
        FROM agg_bounds b JOIN readings r ON r.series_id = b.series_id AND r.ts >= b.lo AND r.ts <= b.hi
        WHERE r.ts >= $1 AND r.ts <= $2""", READINGS_SCHEMA, params=(lo or TIME_MIN, hi or TIME_MIN))
    emit = bulk.read("""
        SELECT series_id, COALESCE(emit_lo, $1) AS lo, COALESCE(emit_hi, $2) AS hi FROM agg_bounds""",
                     EMIT_SCHEMA, params=(TIME_MIN, TIME_MAX))
    bulk.execute("SET LOCAL enable_seqscan = on")
    bulk.execute("DROP TABLE agg_bounds")
    readings = readings.sort("series_id", "ts")
    if readings.height and readings.select(
            ((pl.col("series_id").diff() == 0) & (pl.col("ts").diff() == pl.duration(microseconds=0))).any()).item():
        readings = readings.unique(["series_id", "ts"], keep="first", maintain_order=True)
    return readings, emit


def load_intervals(bulk: Bulk, ranges: pl.DataFrame, actual_only: bool = False) -> pl.DataFrame:
    """Stored interval energy of each ``(series_id, lo, hi)`` range (``INTERVALS_SCHEMA``)."""
    if ranges.height == 0:
        return INTERVALS_SCHEMA.to_frame()
    bulk.stage("agg_ranges", ranges.select(RANGE_SCHEMA.names()))
    only = "AND ie.quality = 0 AND ie.estimated_share = 0 AND ie.coverage >= 1" if actual_only else ""
    return bulk.read(f"""
        SELECT DISTINCT ie.series_id, ie.ts, ie.energy, ie.quality, ie.flags, ie.estimated_share, ie.coverage
        FROM agg_ranges g JOIN interval_energy ie
             ON ie.series_id = g.series_id AND ie.ts >= g.lo AND ie.ts < g.hi {only}
        WHERE ie.ts >= $1 AND ie.ts < $2
        ORDER BY ie.series_id, ie.ts""", INTERVALS_SCHEMA, params=_outer(ranges))


def load_history(bulk: Bulk, ranges: pl.DataFrame) -> pl.DataFrame:
    """Actual (unestimated, complete) stored intervals for like-day estimation (``HISTORY_SCHEMA``)."""
    return load_intervals(bulk, ranges, actual_only=True).select(HISTORY_SCHEMA.names())


def replace_intervals(bulk: Bulk, emit: pl.DataFrame, intervals: pl.DataFrame, *, known_empty: bool = False) -> int:
    """Delete stored intervals inside the emit ranges and insert ``intervals`` (already inside them).

    ``known_empty``: the caller knows nothing is stored there (a full rebuild right after emptying the
    table, when the table has no index and a DELETE would scan everything written so far).
    """
    if not known_empty:
        bulk.stage("agg_emit", emit.select(EMIT_SCHEMA.names()))
        bulk.execute("""DELETE FROM interval_energy ie USING agg_emit e
                        WHERE ie.series_id = e.series_id AND ie.ts >= e.lo AND ie.ts < e.hi
                          AND ie.ts >= $1 AND ie.ts < $2""", _outer(emit))
    if intervals.height == 0:
        return 0
    # the ranges are empty now: binary COPY straight into the table (no staging, no conflict handling)
    return bulk.append("interval_energy", intervals.select(INTERVALS_SCHEMA.names()))


def like_day_dependents(bulk: Bulk, emitted: pl.DataFrame, lookback_days: int) -> pl.DataFrame:
    """Windows ``(series_id, w0, w1)`` of stored gap estimates within ``lookback_days`` after each emit range.

    Their like days may just have been rewritten (or become actual, so a linear fallback can now use them).
    Cheap for appends at the head: nothing lies after them.
    """
    if emitted.height == 0:
        return WINDOW_SCHEMA.to_frame()
    finite = emitted.select(EMIT_SCHEMA.names()).filter(pl.col("hi") < TIME_MAX)
    if finite.height == 0:
        return WINDOW_SCHEMA.to_frame()
    bulk.stage("agg_emitted", finite)
    lo, hi = finite.get_column("hi").min(), finite.get_column("hi").max()
    return bulk.read(f"""
        SELECT ie.series_id, min(ie.ts) AS w0, max(ie.ts) AS w1
        FROM agg_emitted e JOIN interval_energy ie
             ON ie.series_id = e.series_id AND ie.ts >= e.hi AND ie.ts < e.hi + interval '{int(lookback_days)} days'
        WHERE ie.quality <> 0 AND (ie.flags & {int(IntervalFlag.GAP_LIKE_DAY | IntervalFlag.GAP_LINEAR)}) <> 0
          AND ie.ts >= $1 AND ie.ts < $2::timestamptz + interval '{int(lookback_days)} days'
        GROUP BY ie.series_id""", WINDOW_SCHEMA, params=(lo, hi))


def load_meter_rollups(bulk: Bulk, keys: pl.DataFrame, grain: str) -> pl.DataFrame:
    """Stored meter rollups of ``grain`` for ``(series_id, lo, hi)`` period-start ranges."""
    if keys.height == 0:
        return METER_ROLLUP_SCHEMA.to_frame()
    bulk.stage("agg_ranges", keys.select(RANGE_SCHEMA.names()))
    return bulk.read(f"""
        SELECT DISTINCT m.series_id, m.grain, m.period_start, m.energy, m.estimated_energy, m.n_intervals,
               m.n_estimated, m.n_expected
        FROM agg_ranges g JOIN meter_rollups m
             ON m.series_id = g.series_id AND m.grain = '{grain}' AND m.period_start >= g.lo
                AND m.period_start < g.hi
        WHERE m.period_start >= $1 AND m.period_start < $2
        ORDER BY m.series_id, m.period_start""", METER_ROLLUP_SCHEMA, params=_outer(keys))


def replace_meter_rollups(bulk: Bulk, rollups: pl.DataFrame, ranges: pl.DataFrame, grains: tuple[str, ...], *,
                          known_empty: bool = False) -> int:
    """Replace meter rollups of ``grains`` whose period starts in each ``(series_id, lo, hi)`` range.

    ``known_empty`` as for :func:`replace_intervals`.
    """
    if not known_empty:
        bulk.stage("agg_ranges", ranges.select(RANGE_SCHEMA.names()))
        # the constant outer bounds let the (grain, period_start) index narrow the scan (an incremental run
        # touches the last days of each series, not the whole history)
        bulk.execute(f"""DELETE FROM meter_rollups m USING agg_ranges g
                         WHERE m.series_id = g.series_id AND m.grain IN ({_sql_list(grains)})
                           AND m.period_start >= g.lo AND m.period_start < g.hi
                           AND m.period_start >= $1 AND m.period_start < $2""", _outer(ranges))
    if rollups.height == 0:
        return 0
    return bulk.append("meter_rollups", rollups.select(METER_ROLLUP_SCHEMA.names()))


def analyze_meter_rollups(bulk: Bulk) -> None:
    """Refresh the planner statistics of ``meter_rollups`` (after a full rebuild refilled it from empty).

    Without this the statistics still describe the emptied table, and the group phase's park query turns
    into a nested loop with one series and one device lookup per rollup row (2.4 s instead of 0.9 s for
    720 k hour rollups). ``interval_energy`` is left to autovacuum: analysing it costs seconds, and its
    readers bound their scans by constant time ranges.
    """
    bulk.execute("ANALYZE meter_rollups")


def load_park_meter_rollups(bulk: Bulk, park_id: str, grain: str, lo: datetime, hi: datetime) -> pl.DataFrame:
    """All meter rollups of one park's cumulative series for ``grain`` periods starting in ``[lo, hi)``."""
    return bulk.read(f"""
        SELECT m.series_id, m.grain, m.period_start, m.energy, m.estimated_energy, m.n_intervals,
               m.n_estimated, m.n_expected
        FROM meter_rollups m JOIN series s USING (series_id) JOIN devices d USING (device_key)
        WHERE d.park_id = $1 AND m.grain = '{grain}' AND m.period_start >= $2 AND m.period_start < $3
        ORDER BY m.series_id, m.period_start""", METER_ROLLUP_SCHEMA, params=(park_id, lo, hi))


def replace_group_rollups(bulk: Bulk, park_id: str, grain: str, periods: pl.DataFrame,
                          rollups: pl.DataFrame) -> int:
    """Replace a park's group rollups for the given ``period_start`` values of ``grain``."""
    bulk.stage("agg_periods", periods.select(pl.col("period_start").cast(pl.Datetime("us", "UTC"))).unique())
    bulk.execute("""DELETE FROM group_rollups g USING agg_periods p
                    WHERE g.park_id = $1 AND g.grain = $2 AND g.period_start = p.period_start""",
                 (park_id, grain))
    if rollups.height == 0:
        return 0
    return bulk.append("group_rollups", rollups.select(GROUP_ROLLUP_SCHEMA.names()))


def replace_balance(bulk: Bulk, park_id: str, grain: str, periods: pl.DataFrame, balance: pl.DataFrame) -> int:
    """Replace a park's balance checks for the given periods."""
    bulk.stage("agg_periods", periods.select(pl.col("period_start").cast(pl.Datetime("us", "UTC"))).unique())
    bulk.execute("""DELETE FROM balance_checks b USING agg_periods p
                    WHERE b.park_id = $1 AND b.grain = $2 AND b.period_start = p.period_start""",
                 (park_id, grain))
    if balance.height == 0:
        return 0
    bulk.stage("agg_balance", balance)
    return bulk.execute("""
        INSERT INTO balance_checks (park_id, grain, period_start, carrier, metric, unit, level1_energy, export_energy,
                                    generation_energy, supply_energy, level2_import_energy, level2_export_energy,
                                    level2_energy, difference, difference_pct, alarm)
        SELECT park_id, grain, period_start, carrier, metric, unit, level1_energy, export_energy, generation_energy,
               supply_energy, level2_import_energy, level2_export_energy, level2_energy, difference,
               difference_pct, alarm FROM agg_balance""")


def replace_pue(bulk: Bulk, rows: pl.DataFrame) -> int:
    """Upsert PUE results (``park_id, site_id, grain, period_start`` …, category, plausible, grade)."""
    if rows.height == 0:
        return 0
    bulk.stage("agg_pue", rows)
    return bulk.execute("""
        INSERT INTO pue_results (park_id, site_id, grain, period_start, facility_kwh, it_kwh, pue,
                                 estimated_share, months, category, plausible, grade)
        SELECT park_id, site_id, grain, period_start, facility_kwh, it_kwh, pue, estimated_share, months,
               category, plausible, grade FROM agg_pue
        ON CONFLICT (park_id, site_id, grain, period_start) DO UPDATE SET
            facility_kwh = EXCLUDED.facility_kwh, it_kwh = EXCLUDED.it_kwh, pue = EXCLUDED.pue,
            estimated_share = EXCLUDED.estimated_share, months = EXCLUDED.months,
            category = EXCLUDED.category, plausible = EXCLUDED.plausible, grade = EXCLUDED.grade,
            computed_at = now()""")
