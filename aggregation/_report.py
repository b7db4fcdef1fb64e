"""Indicator reports: compute every park indicator for a period, and publish results with provenance.

A report is computed from the stored month rollups and declared inputs (never from raw readings), so it
is cheap for any month-aligned period and always consistent with what the jobs published. Publishing
upserts ``indicator_results``; a value that changed since the last publication (late data, a corrected
import) is moved to ``indicator_results_history`` first and the revision is bumped, so a restatement is
visible rather than silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from aggregation._bulk import Bulk
from aggregation._factors import Basis, FactorRegistry
from aggregation._indicators import MISSING, NO_DATA, OK, IndicatorResult, compute_indicators
from aggregation._inputs import ParkInfo, build_inputs
from aggregation._periods import Period, month_period
from aggregation._policy import Policy
from aggregation._pue import FACILITY_ROLE, IT_ROLE, assess_pue, pue_table, rolling_12m
from aggregation._rollups import METER_ROLLUP_SCHEMA

logger = logging.getLogger(__name__)

DATA_ERROR = "data_error"


@dataclass(frozen=True, slots=True)
class Report:
    """Every indicator of one park and period, with the data-quality context a reviewer needs."""

    park_id: str
    period: Period
    timezone: str
    generated_at: datetime
    completeness: float | None
    results: list[IndicatorResult]
    declared_sources: tuple[str, ...] = ()
    factor_vintages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """The distinct FALLBACK notes of the results (a factor of another year than the period's)."""
        seen: dict[str, None] = {}
        for r in self.results:
            for note in r.notes:
                if note.startswith("FALLBACK"):
                    seen.setdefault(note)
        return list(seen)


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def pue_results(bulk: Bulk, park: ParkInfo, period: Period, meta: pl.DataFrame,
                policy: Policy) -> list[IndicatorResult]:
    """Interim PUE over the period and the rolling 12 months ending with it, per data-centre site."""
    dc = meta.filter(pl.col("role").is_in([FACILITY_ROLE, IT_ROLE]) & (pl.col("metric") == "active_energy_import"))
    if dc.height == 0:
        return []
    window_start = month_period(_add_months(period.end, -12)).start
    lo, _ = month_period(window_start).utc_bounds(park.timezone)
    _, hi = period.utc_bounds(park.timezone)
    bulk.stage("agg_dc_series", dc.select("series_id"))
    months = bulk.read("""
        SELECT m.series_id, m.grain, m.period_start, m.energy, m.estimated_energy, m.n_intervals, m.n_estimated,
               m.n_expected
        FROM meter_rollups m JOIN agg_dc_series s USING (series_id)
        WHERE m.grain = 'month' AND m.period_start >= $1 AND m.period_start < $2""",
                       METER_ROLLUP_SCHEMA, params=(lo, hi))
    tagged = months.join(dc.select("series_id", "park_id", "site_id", "role"), on="series_id", how="inner")
    monthly = pue_table(tagged)
    p_lo, _ = period.utc_bounds(park.timezone)
    in_period = monthly.filter(pl.col("period_start") >= p_lo)
    rolling = rolling_12m(monthly, park.timezone)
    out: list[IndicatorResult] = []
    for site in sorted(set(dc.get_column("site_id").drop_nulls().to_list())):
        it_meta = dc.filter((pl.col("site_id") == site) & (pl.col("role") == IT_ROLE))
        cats = sorted(set(it_meta.get_column("pue_category").drop_nulls().to_list())) or ["unknown"]
        category = f"category {'/'.join(cats)}"
        status_vals = dc.filter(pl.col("site_id") == site).get_column("dc_status").drop_nulls().to_list()
        dc_status = status_vals[0] if status_vals else None
        rows = in_period.filter(pl.col("site_id") == site)
        fac = float(rows.get_column("facility_kwh").sum()) if rows.height else 0.0
        it = float(rows.get_column("it_kwh").sum()) if rows.height else 0.0
        est = rows.select((pl.col("estimated_share").fill_null(0) * (pl.col("facility_kwh") + pl.col("it_kwh"))).sum()
                          ).item() if rows.height else 0.0
        value = fac / it if it > 0 else None
        out.append(_pue_result("pue", site, category, value, fac=fac, it=it,
                               share=(est / (fac + it)) if fac + it > 0 else None, policy=policy,
                               dc_status=dc_status))
        last = rolling.filter(pl.col("site_id") == site).sort("period_start").tail(1)
        if last.height:
            r = last.row(0, named=True)
            note = f"{r['months']} of 12 months with data"
            out.append(_pue_result("pue_rolling_12m", site, category, r["pue"], fac=r["facility_kwh"], it=r["it_kwh"],
                                   share=r["estimated_share"], policy=policy, dc_status=dc_status, extra=note))
    return out


def _pue_result(indicator: str, site: str, category: str, value: float | None, *, fac: float, it: float,
                share: float | None, policy: Policy, dc_status: str | None,
                extra: str | None = None) -> IndicatorResult:
    assessment = assess_pue(value, policy.pue, dc_status)
    notes = [assessment.summary(), f"{policy.pue.grade_scheme} limits {list(policy.pue.grade_limits)}"]
    if extra:
        notes.insert(0 if value is None else len(notes), extra)
    status = OK if value is not None and assessment.plausible else (DATA_ERROR if value is not None else NO_DATA)
    if indicator == "pue_rolling_12m" and value is None and it > 0:
        status = MISSING
    return IndicatorResult(indicator, category, value, "1", fac, it, share, {}, status, tuple(notes), True, site)


def compute_report(bulk: Bulk, conn: psycopg.Connection[Any], park: ParkInfo, period: Period, *, meta: pl.DataFrame,
                   registry: FactorRegistry, policy: Policy, basis: Basis | None = None) -> Report:
    """All indicators of ``park`` for ``period`` (headline basis ``basis`` or the policy default)."""
    park_meta = meta.filter(pl.col("park_id") == park.park_id)
    inputs = build_inputs(bulk, conn, park, period, park_meta)
    results = compute_indicators(inputs, registry, policy.indicators, basis)
    results.extend(pue_results(bulk, park, period, park_meta, policy))
    vintages: dict[str, dict[str, Any]] = {}
    for r in results:
        vintages.update(r.factors)
    return Report(park.park_id, period, park.timezone, datetime.now(UTC), inputs.completeness, results,
                  inputs.declared.sources, vintages)


def publish(conn: psycopg.Connection[Any], report: Report) -> int:
    """Upsert the report's results; changed values go to the history with a bumped revision.

    A result is restated when its value, estimated share, status or factor vintages change.
    """
    p = report.period
    changed = 0
    with conn.transaction(), conn.cursor() as cur:
        for r in report.results:
            key = (report.park_id, p.label, r.subject, r.indicator, r.variant)
            cur.execute("""INSERT INTO indicator_results_history (park_id, period, subject, indicator, variant, value,
                               estimated_share, factor_vintages, revision, computed_at)
                           SELECT park_id, period, subject, indicator, variant, value, estimated_share,
                                  factor_vintages, revision, computed_at
                           FROM indicator_results
                           WHERE park_id = %s AND period = %s AND subject = %s AND indicator = %s AND variant = %s
                             AND (value IS DISTINCT FROM %s OR estimated_share IS DISTINCT FROM %s::real
                                  OR status IS DISTINCT FROM %s OR factor_vintages IS DISTINCT FROM %s)""",
                        (*key, r.value, r.estimated_share, r.status, Jsonb(r.factors)))
            moved = cur.rowcount
            cur.execute("""INSERT INTO indicator_results (park_id, period, subject, indicator, variant, period_start,
                               period_end, value, unit, numerator, denominator, estimated_share, completeness, status,
                               headline, factor_vintages, notes)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                           ON CONFLICT (park_id, period, subject, indicator, variant) DO UPDATE SET
                               period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
                               value = EXCLUDED.value, unit = EXCLUDED.unit, numerator = EXCLUDED.numerator,
                               denominator = EXCLUDED.denominator, estimated_share = EXCLUDED.estimated_share,
                               completeness = EXCLUDED.completeness, status = EXCLUDED.status,
                               headline = EXCLUDED.headline, factor_vintages = EXCLUDED.factor_vintages,
                               notes = EXCLUDED.notes, computed_at = now(),
                               revision = indicator_results.revision + %s""",
                        (*key, p.start, p.end, r.value, r.unit, r.numerator, r.denominator, r.estimated_share,
                         report.completeness, r.status, r.headline, Jsonb(r.factors), Jsonb(list(r.notes)),
                         1 if moved else 0))
            changed += moved
    return changed


#: Columns of a balance row as :func:`load_balance` returns it (``level1_energy`` is the level-1 import).
BALANCE_COLUMNS: Final = ("period", "period_start", "grain", "carrier", "metric", "unit", "import_energy",
                          "generation_energy", "export_energy", "supply_energy", "level2_import_energy",
                          "level2_export_energy", "level2_energy", "difference", "difference_pct", "alarm")


def load_balance(conn: psycopg.Connection[Any], park_id: str, grain: str, *, period: Period | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
    """Stored balance rows of a park (newest first), every term at full precision.

    ``period`` keeps the rows whose local period starts inside it; ``limit`` keeps the newest periods (all
    carriers of a period together). Rows computed before migration 0008 have ``None`` terms.
    """
    lo, hi = (period.start, period.end) if period is not None else (None, None)
    rows = conn.execute("""
        SELECT (b.period_start AT TIME ZONE p.timezone)::date AS local_start, b.period_start, b.grain, b.carrier,
               b.metric, b.unit, b.level1_energy, b.generation_energy, b.export_energy, b.supply_energy,
               b.level2_import_energy, b.level2_export_energy, b.level2_energy, b.difference, b.difference_pct,
               b.alarm
        FROM balance_checks b JOIN parks p USING (park_id)
        WHERE b.park_id = %(park)s AND b.grain = %(grain)s
          AND (%(lo)s::date IS NULL OR (b.period_start AT TIME ZONE p.timezone)::date >= %(lo)s::date)
          AND (%(hi)s::date IS NULL OR (b.period_start AT TIME ZONE p.timezone)::date < %(hi)s::date)
        ORDER BY b.period_start DESC, b.carrier, b.metric""",
                        {"park": park_id, "grain": grain, "lo": lo, "hi": hi}).fetchall()
    out: list[dict[str, Any]] = []
    starts: set[datetime] = set()
    for row in rows:
        if limit is not None and row[1] not in starts and len(starts) >= limit:
            break
        starts.add(row[1])
        rec = dict(zip(BALANCE_COLUMNS, row, strict=True))
        rec["period"] = rec["period"].isoformat()
        rec["period_start"] = rec["period_start"].astimezone(UTC).isoformat()
        out.append(rec)
    return out
