"""Assembling a period's indicator inputs from the database: rollups by meter role plus declared data.

Which meters feed which input (the park boundary is GB 17167 level 1):

* grid import / export — ``active_energy_import`` / ``active_energy_export`` of boundary meters (role
  ``park_boundary``, or no role, at the park's top metering level for that metric);
* on-site renewable generation — ``generated_energy`` of meters with a renewable role (pv, wind …);
* gas, purchased heat, fresh water — ``gas_volume``, ``heat_energy``, ``water_volume`` boundary meters;
* recovered waste heat — ``recovered_heat_energy`` of the park's top-level meters of that metric;
* public buildings — the top-level meters of sites flagged ``is_public_building`` (or whose devices have
  role ``public_building``), with the declared floor area if imported, else ``sites.floor_area_m2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import polars as pl
import psycopg

from aggregation._amounts import Amount, IndicatorInputs, PublicBuilding
from aggregation._bulk import Bulk
from aggregation._declared import DeclaredRow, declared_totals
from aggregation._periods import Period
from aggregation._rollups import METER_ROLLUP_SCHEMA, group_members
from aggregation.errors import DeclaredDataError

RENEWABLE_ROLES: Final = ("pv", "wind", "hydro", "renewable")
BOUNDARY_ROLES: Final = ("", "park_boundary")


@dataclass(frozen=True, slots=True)
class ParkInfo:
    """The park attributes indicators depend on."""

    park_id: str
    timezone: str
    province: str | None
    grid_region: str | None


def load_park(conn: psycopg.Connection[Any], park_id: str) -> ParkInfo | None:
    """The park row, or ``None`` when it does not exist."""
    row = conn.execute("SELECT park_id, timezone, province, grid_region FROM parks WHERE park_id = %s",
                       (park_id,)).fetchone()
    return ParkInfo(row[0], row[1], row[2], row[3]) if row else None


def load_declared(conn: psycopg.Connection[Any], park_id: str) -> list[DeclaredRow]:
    """Every declared input of a park."""
    rows = conn.execute("""SELECT park_id, kind, subject, period_start, period_end, quantity, unit, source, note
                           FROM declared_inputs WHERE park_id = %s ORDER BY kind, subject, period_start""",
                        (park_id,)).fetchall()
    return [DeclaredRow(*r) for r in rows]


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What an import did."""

    inserted: int
    replaced: int
    unchanged: int


def store_declared(conn: psycopg.Connection[Any], rows: list[DeclaredRow], import_file: str) -> StoreResult:
    """Upsert declared rows in one transaction; a changed value moves the old row to the history."""
    parks = {r.park_id for r in rows}
    known = {p for (p,) in conn.execute("SELECT park_id FROM parks WHERE park_id = ANY(%s)", (list(parks),))}
    if parks - known:
        raise DeclaredDataError(import_file, None, f"unknown park(s) {sorted(parks - known)}")
    inserted = replaced = unchanged = 0
    key = """park_id = %s AND kind = %s AND subject = %s AND period_start = %s
             AND COALESCE(period_end, DATE '9999-12-31') = COALESCE(%s::date, DATE '9999-12-31')"""
    with conn.transaction(), conn.cursor() as cur:
        for r in rows:
            k = (r.park_id, r.kind, r.subject, r.period_start, r.period_end)
            cur.execute(f"SELECT quantity, unit, source FROM declared_inputs WHERE {key}", k)
            old = cur.fetchone()
            if old is not None and (old[0], old[1], old[2]) == (r.quantity, r.unit, r.source):
                unchanged += 1
                continue
            if old is not None:
                cur.execute(f"""INSERT INTO declared_inputs_history (declared_id, park_id, kind, subject, period_start,
                                    period_end, quantity, unit, source, note, import_file, imported_at)
                                SELECT declared_id, park_id, kind, subject, period_start, period_end, quantity, unit,
                                       source, note, import_file, imported_at FROM declared_inputs WHERE {key}""", k)
                cur.execute(f"DELETE FROM declared_inputs WHERE {key}", k)
                replaced += 1
            else:
                inserted += 1
            cur.execute("""INSERT INTO declared_inputs (park_id, kind, subject, period_start, period_end, quantity,
                                                        unit, source, note, import_file)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                        (*k, r.quantity, r.unit, r.source, r.note, import_file))
    return StoreResult(inserted, replaced, unchanged)


def _amount(df: pl.DataFrame) -> Amount:
    if df.height == 0:
        return Amount()
    return Amount(float(df.get_column("energy").sum()), float(df.get_column("estimated_energy").sum()))


def boundary_series(meta: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Boundary meters of ``metric``: role park_boundary or none, at the top level present."""
    cand = meta.filter((pl.col("metric") == metric)
                       & pl.col("role").fill_null("").is_in(BOUNDARY_ROLES))
    if cand.height == 0:
        return cand
    top = cand.get_column("metering_level").min()
    if top is None:
        return cand
    return cand.filter(pl.col("metering_level") == top)


def period_meter_totals(bulk: Bulk, park_id: str, lo: object, hi: object) -> pl.DataFrame:
    """Per-series sums of month rollups with period_start in ``[lo, hi)``."""
    rollups = bulk.read("""
        SELECT m.series_id, m.grain, m.period_start, m.energy, m.estimated_energy, m.n_intervals,
               m.n_estimated, m.n_expected
        FROM meter_rollups m JOIN series s USING (series_id) JOIN devices d USING (device_key)
        WHERE d.park_id = $1 AND m.grain = 'month' AND m.period_start >= $2 AND m.period_start < $3""",
                        METER_ROLLUP_SCHEMA, params=(park_id, lo, hi))
    return rollups.group_by("series_id").agg(pl.col("energy").sum(), pl.col("estimated_energy").sum(),
                                             pl.col("n_intervals").sum(), pl.col("n_expected").sum())


def build_inputs(bulk: Bulk, conn: psycopg.Connection[Any], park: ParkInfo, period: Period,
                 meta: pl.DataFrame) -> IndicatorInputs:
    """The :class:`IndicatorInputs` of one park and period from month rollups and declared data."""
    lo, hi = period.utc_bounds(park.timezone)
    totals = period_meter_totals(bulk, park.park_id, lo, hi).join(meta, on="series_id", how="inner")
    used: list[pl.DataFrame] = []

    def take(series: pl.DataFrame) -> Amount:
        part = totals.filter(pl.col("series_id").is_in(series.get_column("series_id").implode()))
        used.append(part)
        return _amount(part)

    renewables = meta.filter((pl.col("metric") == "generated_energy")
                             & pl.col("role").fill_null("").is_in(RENEWABLE_ROLES))
    members = group_members(meta)
    park_top = members.filter(pl.col("dimension") == "park")
    recovered = park_top.filter(pl.col("metric") == "recovered_heat_energy")
    inputs = dict(
        grid_import_kwh=take(boundary_series(meta, "active_energy_import")),
        grid_export_kwh=take(boundary_series(meta, "active_energy_export")),
        pv_generation_kwh=take(renewables),
        gas_m3=take(boundary_series(meta, "gas_volume")),
        heat_purchased_gj=take(boundary_series(meta, "heat_energy")),
        water_m3=take(boundary_series(meta, "water_volume")),
        recovered_heat_gj=take(recovered),
    )
    buildings = _public_buildings(conn, park.park_id, meta, members, totals)
    used_all = pl.concat(used) if used else pl.DataFrame()
    expected = int(used_all.get_column("n_expected").sum()) if used_all.height else 0
    completeness = (float(used_all.get_column("n_intervals").sum()) / expected) if expected else None
    return IndicatorInputs(
        park_id=park.park_id, period=period, province=park.province, grid_region=park.grid_region,
        declared=declared_totals(load_declared(conn, park.park_id), period), public_buildings=buildings,
        completeness=completeness, **inputs)


def _public_buildings(conn: psycopg.Connection[Any], park_id: str, meta: pl.DataFrame, members: pl.DataFrame,
                      totals: pl.DataFrame) -> tuple[PublicBuilding, ...]:
    rows = conn.execute("""SELECT s.site_id, s.floor_area_m2 FROM sites s WHERE s.park_id = %s AND
                               (s.is_public_building OR EXISTS (SELECT 1 FROM devices d WHERE d.park_id = s.park_id
                                AND d.site_id = s.site_id AND d.role = 'public_building'))
                           ORDER BY s.site_id""", (park_id,)).fetchall()
    site_rows = members.filter(pl.col("dimension") == "site")
    out: list[PublicBuilding] = []
    for site_id, area in rows:
        mine = site_rows.filter(pl.col("member") == site_id)

        def amount(metric: str, mine: pl.DataFrame = mine) -> Amount:
            ids = mine.filter(pl.col("metric") == metric).get_column("series_id")
            return _amount(totals.filter(pl.col("series_id").is_in(ids.implode())))

        out.append(PublicBuilding(site_id, area, amount("active_energy_import"), amount("gas_volume"),
                                  amount("heat_energy")))
    return tuple(out)

