"""The incremental, idempotent aggregation job: change log → interval energy → rollups → PUE → indicators.

One run:

1. reads the change log past the watermark (:mod:`aggregation._changes`) and merges the changed ranges
   into windows per series (a rebuild, or the first run of a job, takes every series, whole history);
2. per batch of series, loads each window's readings with context, recomputes interval energy (VEE
   included) and replaces exactly the intervals whose inputs could have changed, then the meter rollups
   above them: the local hours they touch, the days above those hours and the months above those days
   (each level from the stored level below). With several batches (a backfill) this is a pipeline
   (:mod:`aggregation._pipeline`): the next batches are read and the previous ones written on their own
   connections while one is computed; a full rebuild empties the result tables first and then only
   appends. ``RunReport.phases`` has the read / compute / write seconds of every phase;
3. redoes, once, gap estimates in the 28 days after rewritten intervals (their like day may have changed);
4. recomputes the group rollups and level-1 vs level-2 balance of every affected park period;
5. recomputes PUE (daily, monthly, rolling 12 months) of affected data-centre sites;
6. republishes the monthly indicators of every affected park month (restatements are versioned);
7. only then advances the watermark. Every write is an upsert or a range replacement in a transaction,
   so re-running after a crash recomputes the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl
import psycopg

from aggregation._bulk import Bulk
from aggregation._changes import ChangeFeed, merge_windows
from aggregation._event_store import load_series_events
from aggregation._factors import FactorRegistry, default_registry
from aggregation._inputs import ParkInfo, load_park
from aggregation._intervals import IntervalParams, spans_to_intervals
from aggregation._periods import month_period
from aggregation._pipeline import Prefetcher, Writers
from aggregation._policy import Policy
from aggregation._profile import PhaseTimer
from aggregation._pue import FACILITY_ROLE, IT_ROLE, assess_pue, pue_table, rolling_12m
from aggregation._registers import METERS_SCHEMA, register_spans
from aggregation._report import compute_report, publish
from aggregation._rollups import balance_check, coarser_rollup, generation_rollup, group_rollup, meter_rollup
from aggregation._settings import AggregationSettings
from aggregation._store import (
    TIME_MAX,
    TIME_MIN,
    analyze_meter_rollups,
    like_day_dependents,
    load_history,
    load_intervals,
    load_meta,
    load_meter_rollups,
    load_park_meter_rollups,
    load_readings,
    replace_balance,
    replace_group_rollups,
    replace_intervals,
    replace_meter_rollups,
    replace_pue,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
#: one deferred replacement of stored rows, run on the writer connection
_Write = Callable[[Bulk], int]
_SHORT_WINDOW: Final = timedelta(days=7)
_LOCK_KEY: Final = 0x41474752  # "AGGR"; session lock, released when the run's connection closes
_UTC_DT: Final = pl.Datetime("us", "UTC")


@dataclass(slots=True)
class RunReport:
    """What one run did (also recorded in ``aggregation_runs``)."""

    started_at: datetime
    finished_at: datetime | None = None
    n_changes: int = 0
    n_series: int = 0
    n_intervals: int = 0
    n_rollups: int = 0
    n_indicators: int = 0
    energy: float = 0.0
    estimated_energy: float = 0.0
    watermark: int = 0
    #: the earliest reading time this run recomputed from (``TIME_MIN`` for a rebuild; None: nothing changed)
    earliest_change: datetime | None = None
    keys: list[pl.DataFrame] = field(default_factory=list)
    #: seconds per phase (read / compute / write …); worker-thread phases overlap the main thread's
    phases: PhaseTimer = field(default_factory=PhaseTimer)

    @property
    def elapsed_s(self) -> float:
        """Wall-clock seconds of the run."""
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    @property
    def estimated_share(self) -> float | None:
        """Estimated share of the interval energy written by this run."""
        return self.estimated_energy / self.energy if self.energy > 0 else None


def _needs_like_day(spans: pl.DataFrame, params: IntervalParams) -> bool:
    long_us = params.vee.linear_gap_max_s * 1_000_000
    return bool(spans.filter(pl.col("energy").is_null() | ((pl.col("t1") - pl.col("t0")) > long_us)).height)


def _floor_emit(emit: pl.DataFrame, iu: int) -> pl.DataFrame:
    """Emit ranges on the interval grid: from the bucket of the first context reading to after the last."""
    lo_us, hi_us = pl.col("lo").dt.epoch("us"), pl.col("hi").dt.epoch("us")
    return emit.with_columns(
        lo=pl.when(pl.col("lo") <= TIME_MIN).then(pl.col("lo"))
        .otherwise(((lo_us // iu) * iu).cast(_UTC_DT)),
        hi=pl.when(pl.col("hi") >= TIME_MAX).then(pl.col("hi"))
        .otherwise(((hi_us // iu) * iu + iu).cast(_UTC_DT)))


def _local_bounds(df: pl.DataFrame, lo: str, hi: str, unit: str, tz_col: str = "timezone") -> pl.DataFrame:
    """Widen ``[lo, hi)`` (UTC) to whole local ``unit`` periods ("1d" or "1mo") of each row's time zone."""
    out: list[pl.DataFrame] = []
    for (tz,), part in df.group_by(tz_col):
        start = pl.col(lo).dt.convert_time_zone(str(tz)).dt.truncate(unit)
        last = (pl.col(hi) - timedelta(microseconds=1)).dt.convert_time_zone(str(tz))
        end = last.dt.truncate(unit).dt.offset_by(unit)
        out.append(part.with_columns(start.dt.convert_time_zone("UTC").alias(lo),
                                     end.dt.convert_time_zone("UTC").alias(hi)))
    return pl.concat(out) if out else df


class AggregationJob:
    """Runs the pipeline against one database; construct once, call :meth:`run` as often as needed."""

    def __init__(self, settings: AggregationSettings, registry: FactorRegistry | None = None) -> None:
        self.settings = settings
        self.params: IntervalParams = settings.interval_params()
        self.policy: Policy = settings.policy()
        self.registry = registry or (FactorRegistry.from_file(settings.aggregation_factors_file)
                                     if settings.aggregation_factors_file else default_registry())
        self.job_params: dict[str, Any] = {"interval_s": self.params.interval_s}

    def run(self, rebuild: bool = False, park_id: str | None = None, progress: Progress | None = None) -> RunReport:
        """One pass over everything that changed (or everything, with ``rebuild``)."""
        scope = self.settings.aggregation_park
        if park_id is not None and not rebuild:
            raise ValueError("--park only applies to --rebuild: the change log is shared by all parks")
        park_id = park_id or scope
        report = RunReport(started_at=datetime.now(UTC))
        url = self.settings.database_url
        with psycopg.connect(url, autocommit=True) as conn, Bulk(url) as bulk:
            # one run at a time per database: two runs replacing the same ranges would collide
            t, t0 = report.phases, time.perf_counter()
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            feed = ChangeFeed(conn, self.settings.job_name, timedelta(seconds=self.settings.aggregation_gap_timeout_s))
            if feed.check_params(self.job_params, rebuild) and not rebuild:
                # a job that never ran: compute everything once, then follow the change log
                rebuild, park_id = True, scope
            run_id = conn.execute("INSERT INTO aggregation_runs (job, started_at, status) "
                                  "VALUES (%s, %s, 'running') RETURNING run_id",
                                  (self.settings.job_name, report.started_at)).fetchone()
            meta = load_meta(bulk, park_id)
            bulk.commit()
            batch = feed.snapshot() if rebuild else None
            if rebuild and park_id is None:
                # everything is recomputed: emptying the results is far cheaper than deleting them range by range
                conn.execute("TRUNCATE interval_energy, meter_rollups, group_rollups, balance_checks, pue_results")
            if rebuild:
                windows = meta.select("series_id", w0=pl.lit(TIME_MIN, _UTC_DT), w1=pl.lit(TIME_MAX, _UTC_DT))
                report.earliest_change = TIME_MIN
            else:
                batch = feed.read(self.settings.aggregation_max_changes, scope)
                report.n_changes = batch.changes.height
                changes = batch.changes.filter(pl.col("series_id").is_in(meta.get_column("series_id").implode()))
                windows = merge_windows(changes, timedelta(days=1))
                if changes.height:
                    report.earliest_change = changes.select(pl.col("ts_min").min()).item()
            t.add("setup", time.perf_counter() - t0)
            try:
                # after the TRUNCATE nothing is stored: the first pass appends without deleting ranges first
                self._process(bulk, conn, meta, windows, report=report, progress=progress,
                              known_empty=rebuild and park_id is None)
            except Exception:
                bulk.rollback()
                conn.execute("UPDATE aggregation_runs SET status = 'failed', finished_at = now() WHERE run_id = %s",
                             (run_id[0] if run_id else None,))
                raise
            if batch is not None and (not rebuild or park_id == scope):
                # a rebuild of one park under the all-parks job leaves the shared watermark alone
                with t.section("watermark"):
                    feed.commit(batch, self.job_params)
                report.watermark = batch.new_last_change_id
            report.finished_at = datetime.now(UTC)
            conn.execute("""UPDATE aggregation_runs SET status = 'ok', finished_at = %s, n_changes = %s, n_series = %s,
                                n_intervals = %s, n_rollups = %s, n_indicators = %s, estimated_share = %s,
                                earliest_change = %s
                            WHERE run_id = %s""",
                         (report.finished_at, report.n_changes, report.n_series, report.n_intervals, report.n_rollups,
                          report.n_indicators, report.estimated_share, report.earliest_change,
                          run_id[0] if run_id else None))
        logger.info("aggregation run: %d changes, %d series, %d intervals, %d rollups, %d indicators in %.2f s",
                    report.n_changes, report.n_series, report.n_intervals, report.n_rollups, report.n_indicators,
                    report.elapsed_s)
        logger.debug("aggregation run phases (s): %s", report.phases.seconds())
        return report

    # ------------------------------------------------------------------------------------------------ phases
    def _process(self, bulk: Bulk, conn: psycopg.Connection[Any], meta: pl.DataFrame, windows: pl.DataFrame, *,
                 report: RunReport, progress: Progress | None, known_empty: bool = False) -> None:
        t = report.phases
        if windows.height == 0:
            return
        report.n_series = windows.get_column("series_id").n_unique()
        emitted = self._meters_phase(bulk, meta, windows, report, progress, known_empty=known_empty)
        if known_empty:
            with t.section("rebuild.analyze"):
                analyze_meter_rollups(bulk)
                bulk.commit()
        # like-day estimates downstream of rewritten actual intervals use them as their like day: redo them
        # once (a re-estimated interval is not actual, so it is nobody's like day and the chain stops here)
        with t.section("like_day.read"):
            dependents = like_day_dependents(bulk, emitted, self.params.vee.like_day_lookback_days)
            bulk.commit()
        if dependents.height:
            logger.info("re-estimating like-day gaps of %d meters after changes to their like days",
                        dependents.get_column("series_id").n_unique())
            self._meters_phase(bulk, meta, dependents, report, progress)
        keys = (pl.concat(report.keys).unique() if report.keys else
                pl.DataFrame(schema={"park_id": pl.String(), "grain": pl.String(), "period_start": _UTC_DT}))
        report.keys.clear()
        with t.section("groups"):
            self._groups(bulk, meta, keys, report, progress)
        with t.section("pue"):
            self._pue(bulk, meta, keys, report)
            bulk.commit()
        with t.section("indicators"):
            self._indicators(bulk, conn, meta, keys, report=report, progress=progress)

    def _meters_phase(self, bulk: Bulk, meta: pl.DataFrame, windows: pl.DataFrame, report: RunReport,
                      progress: Progress | None, *, known_empty: bool = False) -> pl.DataFrame:
        """Interval energy and meter rollups for ``windows`` in batches; returns the emit ranges written."""
        series = windows.get_column("series_id").unique().sort().to_list()
        # long windows (backfills) stream in small batches of meters so reading and computing overlap; short
        # ones (the steady state: a few new readings per meter) are cheapest in one round trip
        longest = windows.select((pl.col("w1") - pl.col("w0")).max()).item()
        size = (self.settings.aggregation_series_per_batch if longest is None or longest > _SHORT_WINDOW
                else max(self.settings.aggregation_series_per_batch, 5000))
        chunks = [pl.Series(series[i:i + size], dtype=pl.Int32()).implode() for i in range(0, len(series), size)]
        context = self.settings.aggregation_context_readings
        emitted: list[pl.DataFrame] = []
        t = report.phases

        def fetch(reader: Bulk, ids: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
            with t.section("meters.read_readings (prefetch thread)"):
                try:
                    return load_readings(reader, windows.filter(pl.col("series_id").is_in(ids)), context)
                finally:
                    reader.commit()

        def write(writer: Bulk, writes: list[_Write]) -> None:
            with t.section("meters.write (writer threads)"):
                for w in writes:
                    w(writer)

        if len(chunks) == 1:
            # the steady state: one round trip on the job's connection, no second connection to open
            with t.section("meters.wait_for_readings"):
                readings, emit = fetch(bulk, chunks[0])
            done, writes = self._intervals_and_meter_rollups(
                bulk, meta.filter(pl.col("series_id").is_in(chunks[0])), readings, emit, report,
                known_empty=known_empty)
            write(bulk, writes)
            with t.section("meters.commit"):
                bulk.commit()
            if progress:
                progress("meters", 1, 1)
            return done
        # a pipeline over several connections: the next batches' readings are read while this batch is
        # computed and the previous batch is written. Batches hold disjoint series and a batch only reads stored rows
        # of its own series, so the overlap changes no result; each batch's writes commit together.
        url = self.settings.database_url
        with (Prefetcher(url, self.settings.aggregation_read_connections, fetch) as reader,
              Writers(url, self.settings.aggregation_write_connections) as writer):
            batches = reader.map(chunks)
            for i, ids in enumerate(chunks):
                with t.section("meters.wait_for_readings"):
                    readings, emit = next(batches)
                done, writes = self._intervals_and_meter_rollups(
                    bulk, meta.filter(pl.col("series_id").is_in(ids)), readings, emit, report, known_empty=known_empty)
                emitted.append(done)
                bulk.commit()
                with t.section("meters.wait_for_writers"):
                    writer.submit(partial(write, writes=writes))
                if progress:
                    progress("meters", i + 1, len(chunks))
            with t.section("meters.wait_for_writers"):
                writer.drain()
        return pl.concat(emitted)

    def _intervals_and_meter_rollups(self, bulk: Bulk, meta: pl.DataFrame, readings: pl.DataFrame,
                                     emit: pl.DataFrame, report: RunReport, *,
                                     known_empty: bool = False) -> tuple[pl.DataFrame, list[_Write]]:
        """One batch: recompute interval energy in the emit ranges, then the meter rollups above them.

        Returns the emit ranges and the writes that replace the stored rows, for the caller to run (on a
        writer connection). Nothing read here overlaps what the writes replace: each level reads the stored
        level below only *outside* the ranges recomputed in this batch.
        """
        writes: list[_Write] = []
        params, iu, t = self.params, self.params.interval_us, report.phases
        meters = meta.select(METERS_SCHEMA.names())
        # recorded meter events (replacements, confirmed resets, ratio changes) make their spans exact
        with t.section("meters.read_events"):
            events = load_series_events(bulk, meta.get_column("series_id"))
        with t.section("meters.compute_spans"):
            spans = register_spans(readings, meters, params.vee, events)
            emit = _floor_emit(emit, iu)
        history = None
        if _needs_like_day(spans, params):
            back = timedelta(days=params.vee.like_day_lookback_days + 1)
            # stored intervals before the emit range: inside it the stored values are about to be replaced
            with t.section("meters.read_history"):
                history = load_history(bulk, emit.with_columns(
                    lo=pl.max_horizontal(pl.col("lo") - back, pl.lit(TIME_MIN, _UTC_DT)), hi=pl.col("lo")))
        with t.section("meters.compute_intervals"):
            intervals = spans_to_intervals(spans, params, meta.select("series_id", "timezone"), history)
            inside = (intervals.join(emit, on="series_id", how="inner")
                      .filter((pl.col("ts") >= pl.col("lo")) & (pl.col("ts") < pl.col("hi")))
                      .drop("lo", "hi").unique(["series_id", "ts"]).sort("series_id", "ts"))
        writes.append(partial(replace_intervals, emit=emit, intervals=inside, known_empty=known_empty))
        report.n_intervals += inside.height
        report.energy += float(inside.get_column("energy").sum() or 0.0)
        report.estimated_energy += float((inside.get_column("energy")
                                          * inside.get_column("estimated_share").cast(pl.Float64())).sum() or 0.0)
        # 15 min -> hour -> day -> month: each level recomputes only the periods under what changed, taking
        # the rest of each period from the level below as stored
        span = readings.group_by("series_id").agg(first=pl.col("ts").min(), last=pl.col("ts").max())
        touched = (emit.join(span, on="series_id", how="inner")
                   .with_columns(lo=pl.max_horizontal("lo", "first"), hi=pl.min_horizontal("hi", "last"))
                   .filter(pl.col("lo") <= pl.col("hi"))
                   .join(meta.select("series_id", "timezone"), on="series_id")
                   .select("series_id", "lo", "hi", "timezone"))
        if touched.height == 0:
            return emit, writes
        hours = _local_bounds(touched, "lo", "hi", "1h")
        with t.section("meters.read_rollup_inputs"):
            stored = load_intervals(bulk, _outside(hours, emit))
        with t.section("meters.compute_rollups"):
            fresh = (inside.join(hours.select("series_id", "lo", "hi"), on="series_id")
                     .filter((pl.col("ts") >= pl.col("lo")) & (pl.col("ts") < pl.col("hi"))).drop("lo", "hi"))
            hourly = meter_rollup(pl.concat([fresh, stored]).unique(["series_id", "ts"], keep="first"), meta,
                                  "hour", params.interval_s)
        writes.append(partial(replace_meter_rollups, rollups=hourly, ranges=hours, grains=("hour",),
                              known_empty=known_empty))
        days = _local_bounds(hours, "lo", "hi", "1d")
        with t.section("meters.read_rollup_inputs"):
            below = pl.concat([hourly, load_meter_rollups(bulk, _outside(days, hours), "hour")])
        with t.section("meters.compute_rollups"):
            daily = coarser_rollup(below.unique(["series_id", "period_start"], keep="first"), meta, "day",
                                   params.interval_s)
        writes.append(partial(replace_meter_rollups, rollups=daily, ranges=days, grains=("day",),
                              known_empty=known_empty))
        months = _local_bounds(days, "lo", "hi", "1mo")
        with t.section("meters.read_rollup_inputs"):
            below = pl.concat([daily, load_meter_rollups(bulk, _outside(months, days), "day")])
        with t.section("meters.compute_rollups"):
            monthly = coarser_rollup(below.unique(["series_id", "period_start"], keep="first"), meta, "month",
                                     params.interval_s)
        writes.append(partial(replace_meter_rollups, rollups=monthly, ranges=months, grains=("month",),
                              known_empty=known_empty))
        report.n_rollups += hourly.height + daily.height + monthly.height
        park_of = meta.select("series_id", "park_id")
        report.keys.append(pl.concat([hourly, daily, monthly]).join(park_of, on="series_id")
                           .select("park_id", "grain", "period_start").unique())
        return emit, writes

    def _groups(self, bulk: Bulk, meta: pl.DataFrame, keys: pl.DataFrame, report: RunReport,
                progress: Progress | None) -> None:
        t = report.phases
        todo = keys.group_by("park_id", "grain").agg(pl.col("period_start").sort()).sort("park_id", "grain")
        for i, (park_id, grain, periods) in enumerate(todo.iter_rows()):
            park_meta = meta.filter(pl.col("park_id") == park_id)
            for chunk in _period_chunks(periods, 800):
                lo, hi = chunk[0], chunk[-1] + timedelta(microseconds=1)
                with t.section("groups.read"):
                    rollups = load_park_meter_rollups(bulk, park_id, grain, lo, hi)
                with t.section("groups.compute"):
                    wanted = pl.DataFrame({"period_start": chunk}, schema={"period_start": _UTC_DT})
                    rollups = rollups.join(wanted, on="period_start", how="semi")
                    groups = group_rollup(rollups, park_meta)
                    supply = pl.concat([groups, generation_rollup(rollups, park_meta)])
                    balance = balance_check(supply, self.policy.balance_alarm_pct)
                with t.section("groups.write"):
                    report.n_rollups += replace_group_rollups(bulk, park_id, grain, wanted, groups)
                    replace_balance(bulk, park_id, grain, wanted, balance)
            with t.section("groups.write"):
                bulk.commit()
            if progress:
                progress("groups", i + 1, todo.height)

    def _pue(self, bulk: Bulk, meta: pl.DataFrame, keys: pl.DataFrame, report: RunReport) -> None:
        dc = meta.filter(pl.col("role").is_in([FACILITY_ROLE, IT_ROLE])
                         & (pl.col("metric") == "active_energy_import"))
        if dc.height == 0:
            return
        for park_id in dc.get_column("park_id").unique().sort().to_list():
            park_dc = dc.filter(pl.col("park_id") == park_id)
            park_keys = keys.filter((pl.col("park_id") == park_id) & pl.col("grain").is_in(["day", "month"]))
            if park_keys.height == 0:
                continue
            tz = park_dc.get_column("timezone")[0]
            lo = park_keys.get_column("period_start").min()
            if not isinstance(lo, datetime):
                continue
            lo_12 = month_period(_local_date(lo, tz)).utc_bounds(tz)[0] - timedelta(days=366)
            hi = datetime.now(UTC) + timedelta(days=1)
            ranges = park_dc.select("series_id", lo=pl.lit(lo_12, _UTC_DT), hi=pl.lit(hi, _UTC_DT))
            tagged_cols = park_dc.select("series_id", "park_id", "site_id", "role")
            rows: list[pl.DataFrame] = []
            for grain in ("day", "month"):
                roll = load_meter_rollups(bulk, ranges, grain).join(tagged_cols, on="series_id")
                table = pue_table(roll)
                rows.append(table.filter(pl.col("period_start") >= lo))
                if grain == "month":
                    rows.append(rolling_12m(table, tz).filter(pl.col("period_start") >= lo))
            out = pl.concat(rows)
            if out.height == 0:
                continue
            cats = (park_dc.filter(pl.col("role") == IT_ROLE).group_by("site_id")
                    .agg(category=pl.col("pue_category").drop_nulls().unique().sort().str.join("/")))
            out = out.join(cats, on="site_id", how="left").with_columns(
                category=pl.when(pl.col("category").fill_null("") == "").then(pl.lit("unknown"))
                .otherwise(pl.col("category")))
            assessed = [assess_pue(v, self.policy.pue) for v in out.get_column("pue").to_list()]
            out = out.with_columns(plausible=pl.Series([a.plausible for a in assessed], dtype=pl.Boolean()),
                                   grade=pl.Series([a.grade for a in assessed], dtype=pl.Int16()),
                                   estimated_share=pl.col("estimated_share").cast(pl.Float32()))
            report.n_rollups += replace_pue(bulk, out)

    def _indicators(self, bulk: Bulk, conn: psycopg.Connection[Any], meta: pl.DataFrame, keys: pl.DataFrame, *,
                    report: RunReport, progress: Progress | None) -> None:
        months = keys.filter(pl.col("grain") == "month").select("park_id", "period_start").unique().sort(
            "park_id", "period_start")
        parks: dict[str, ParkInfo | None] = {}
        for i, (park_id, start) in enumerate(months.iter_rows()):
            if park_id not in parks:
                parks[park_id] = load_park(conn, park_id)
            park = parks[park_id]
            if park is None:
                continue
            period = month_period(_local_date(start, park.timezone))
            with report.phases.section("indicators.compute"):
                rep = compute_report(bulk, conn, park, period, meta=meta, registry=self.registry,
                                     policy=self.policy)
                bulk.commit()
            with report.phases.section("indicators.publish"):
                publish(conn, rep)
            report.n_indicators += len(rep.results)
            if progress:
                progress("indicators", i + 1, months.height)

    def republish(self, months: set[tuple[str, date]]) -> int:
        """Recompute and publish the monthly indicators of the given (park, month) pairs (after an import)."""
        url = self.settings.database_url
        n = 0
        with psycopg.connect(url, autocommit=True) as conn, Bulk(url) as bulk:
            meta = load_meta(bulk)
            for park_id, first in sorted(months):
                park = load_park(conn, park_id)
                if park is None:
                    continue
                rep = compute_report(bulk, conn, park, month_period(first), meta=meta, registry=self.registry,
                                     policy=self.policy)
                bulk.commit()
                publish(conn, rep)
                n += len(rep.results)
        return n


def _outside(outer: pl.DataFrame, inner: pl.DataFrame) -> pl.DataFrame:
    """The parts of each ``outer`` range (per series) before and after the ``inner`` ranges of the series."""
    both = outer.select("series_id", "lo", "hi").join(inner.select("series_id", "lo", "hi"), on="series_id",
                                                      suffix="_in")
    return pl.concat([
        both.select("series_id", "lo", hi=pl.min_horizontal("hi", "lo_in")),
        both.select("series_id", lo=pl.max_horizontal("lo", "hi_in"), hi="hi"),
    ]).filter(pl.col("lo") < pl.col("hi"))


def _local_date(ts: datetime, tz: str) -> date:
    return ts.astimezone(ZoneInfo(tz)).date()


def _period_chunks(periods: list[datetime], size: int) -> list[list[datetime]]:
    return [periods[i:i + size] for i in range(0, len(periods), size)]
