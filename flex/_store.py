"""PostgreSQL/TimescaleDB adapter for DR: parks, settings, assets, park demand (thin, no logic).

Park demand is the sum over the park's level-1 (GB 17167 一级) electricity meters of
``interval_energy`` (migration 0002) import minus export, divided by the 0.25 h interval; an interval
is only returned when every level-1 meter has it, so a missing feeder never looks like a load drop.
Events, results and capacity live in :mod:`flex._store_events`, park calendars in
:mod:`flex._store_calendar` (both mixed into :class:`DrStore`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import polars as pl
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from pydantic import TypeAdapter, ValidationError

from flex._assets import Asset, EvCharger
from flex._capacity import DemandPeak
from flex._flexibility import ConnectionLimit
from flex._records import AssetRecord, DrSettings, ParkInfo
from flex._series import DEMAND_KW, ESTIMATED_SHARE, TS
from flex._state import STATE_METRICS, with_live_state
from flex._store_calendar import CalendarStoreMixin
from flex._store_events import EventStoreMixin
from flex.errors import AssetError

logger = logging.getLogger(__name__)

INTERVAL_H: Final = 0.25
_ASSET_ADAPTER: Final = TypeAdapter(Asset)
_DEMAND_CTE: Final = """
WITH meters AS (
    SELECT s.series_id, CASE s.metric WHEN 'active_energy_export' THEN -1.0 ELSE 1.0 END AS sign
    FROM devices d JOIN series s ON s.device_key = d.device_key
    WHERE d.park_id = %(park)s AND d.metering_level = 1
      AND s.metric IN ('active_energy_import', 'active_energy_export')
), demand AS (
    SELECT ie.ts,
           sum(m.sign * ie.energy) / %(hours)s AS demand_kw,
           CASE WHEN sum(ie.energy) > 0 THEN sum(ie.energy * ie.estimated_share) / sum(ie.energy)
                ELSE avg(ie.estimated_share) END AS estimated_share
    FROM interval_energy ie JOIN meters m ON m.series_id = ie.series_id
    WHERE ie.ts >= %(start)s AND ie.ts < %(end)s
    GROUP BY ie.ts
    HAVING count(*) = (SELECT count(*) FROM meters)
)
"""


class DrStore(EventStoreMixin, CalendarStoreMixin):
    """:class:`flex.DrRepository` on PostgreSQL, over a small connection pool."""

    def __init__(self, conninfo: str, *, max_size: int = 4, state_max_age: timedelta = timedelta(minutes=30)) -> None:
        """Open a pool to ``conninfo``; ``state_max_age`` is how old readings may be to count as live state."""
        self.state_max_age = state_max_age
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": True},
            name="parkpulse-dr",
        )
        self._pool.open(wait=True, timeout=10)

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    def __enter__(self) -> DrStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:
            yield conn

    # --- parks and settings ----------------------------------------------------------------------------

    def list_parks(self, park_ids: Collection[str] | None, *, limit: int, offset: int) -> tuple[list[ParkInfo], int]:
        """Parks ordered by id (optionally restricted to ``park_ids``) and the total count."""
        ids = None if park_ids is None else list(park_ids)
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                """SELECT park_id, name, timezone, province, grid_region, count(*) OVER () AS total
                   FROM parks WHERE (%(ids)s::text[] IS NULL OR park_id = ANY(%(ids)s))
                   ORDER BY park_id LIMIT %(limit)s OFFSET %(offset)s""",
                {"ids": ids, "limit": limit, "offset": offset},
            )
            rows = cur.fetchall()
            if rows:
                total = int(rows[0]["total"])
            else:
                cur.execute(
                    "SELECT count(*) AS n FROM parks WHERE (%(ids)s::text[] IS NULL OR park_id = ANY(%(ids)s))",
                    {"ids": ids},
                )
                found = cur.fetchone()
                total = int(found["n"]) if found else 0
        return [ParkInfo(r["park_id"], r["name"], r["timezone"], r["province"], r["grid_region"]) for r in rows], total

    def get_park(self, park_id: str) -> ParkInfo | None:
        """One park or None."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT park_id, name, timezone, province, grid_region FROM parks WHERE park_id = %s", (park_id,)
            ).fetchone()
        return ParkInfo(*row) if row else None

    def get_settings(self, park_id: str) -> DrSettings:
        """Stored settings, or defaults."""
        with self._conn() as conn:
            row = conn.execute(
                """SELECT import_max_kw, export_max_kw, baseline_method, baseline_overrides, declared_duration_h
                   FROM dr_park_settings WHERE park_id = %s""",
                (park_id,),
            ).fetchone()
            sites = conn.execute(
                "SELECT site_id, import_max_kw, export_max_kw FROM dr_site_limits WHERE park_id = %s", (park_id,)
            ).fetchall()
        limits = {s: ConnectionLimit(i, e) for s, i, e in sites}
        if row is None:
            return DrSettings(site_limits=limits)
        return DrSettings(row[0], row[1], row[2], dict(row[3] or {}), row[4], limits)

    def put_settings(self, park_id: str, settings: DrSettings) -> None:
        """Create or replace the park's settings and site limits in one transaction."""
        with self._conn() as conn, conn.transaction():
            conn.execute(
                """INSERT INTO dr_park_settings (park_id, import_max_kw, export_max_kw, baseline_method,
                                                 baseline_overrides, declared_duration_h, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s, now())
                   ON CONFLICT (park_id) DO UPDATE SET import_max_kw = EXCLUDED.import_max_kw,
                       export_max_kw = EXCLUDED.export_max_kw, baseline_method = EXCLUDED.baseline_method,
                       baseline_overrides = EXCLUDED.baseline_overrides,
                       declared_duration_h = EXCLUDED.declared_duration_h, updated_at = now()""",
                (park_id, settings.import_max_kw, settings.export_max_kw, settings.baseline_method,
                 Jsonb(dict(settings.baseline_overrides)), settings.declared_duration_h),
            )
            conn.execute("DELETE FROM dr_site_limits WHERE park_id = %s", (park_id,))
            for site_id, lim in settings.site_limits.items():
                conn.execute(
                    """INSERT INTO dr_site_limits (park_id, site_id, import_max_kw, export_max_kw)
                       VALUES (%s, %s, %s, %s)""",
                    (park_id, site_id, lim.import_max_kw, lim.export_max_kw),
                )

    # --- assets --------------------------------------------------------------------------------------

    def put_asset(self, park_id: str, record: AssetRecord) -> None:
        """Create or replace an asset; a state on the model is stored as the snapshot."""
        asset = record.asset
        params = asset.model_dump(mode="json", exclude={"state"} if hasattr(asset, "state") else set())
        state = getattr(asset, "state", None)
        with self._conn() as conn:
            conn.execute(
                """INSERT INTO flex_assets (park_id, asset_id, kind, site_id, device_id, params, state, state_at,
                                            options, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                   ON CONFLICT (park_id, asset_id) DO UPDATE SET kind = EXCLUDED.kind, site_id = EXCLUDED.site_id,
                       device_id = EXCLUDED.device_id, params = EXCLUDED.params, state = EXCLUDED.state,
                       state_at = EXCLUDED.state_at, options = EXCLUDED.options, enabled = true, updated_at = now()""",
                (park_id, asset.asset_id, asset.kind, asset.site_id, record.device_id, Jsonb(params),
                 Jsonb(state.model_dump(mode="json")) if state is not None else None,
                 record.state_at if state is not None else None, Jsonb(dict(record.options))),
            )

    def list_assets(self, park_id: str, *, now: datetime) -> list[AssetRecord]:
        """Enabled assets; state from the device's fresh readings, else the stored snapshot, else none."""
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT asset_id, params, state, state_at, device_id, options FROM flex_assets
                   WHERE park_id = %s AND enabled ORDER BY asset_id""",
                (park_id,),
            ).fetchall()
            records = []
            for asset_id, params, state, state_at, device_id, options in rows:
                try:
                    asset = _ASSET_ADAPTER.validate_python({**params, "state": state} if state else params)
                except ValidationError as exc:
                    raise AssetError(f"stored asset {park_id}/{asset_id} is invalid: {exc}") from exc
                records.append(self._resolve_state(conn, park_id, asset, device_id=device_id, state_at=state_at,
                                                   options=dict(options), now=now))
        return records

    def _resolve_state(
        self, conn: psycopg.Connection[Any], park_id: str, asset: Asset, *, device_id: str | None,
        state_at: datetime | None, options: dict[str, Any], now: datetime,
    ) -> AssetRecord:
        metrics = STATE_METRICS.get(asset.kind)
        if device_id and metrics:
            latest = self._latest(conn, park_id, device_id, metrics, now)
            plugged = self._plugged_in_at(conn, park_id, device_id, now) if isinstance(asset, EvCharger) else None
            live = with_live_state(asset, latest, now=now, options=options, plugged_in_at=plugged)
            if live is not None:
                newest = max(ts for ts, _ in latest.values())
                return AssetRecord(live, device_id, newest, "readings", options)
        snapshot_fresh = state_at is not None and now - state_at <= self.state_max_age
        if getattr(asset, "state", None) is not None and (snapshot_fresh or asset.kind == "process"):
            return AssetRecord(asset, device_id, state_at, "snapshot", options)
        if asset.kind in ("process", "ev_charger"):  # schedule / declared sessions need no metered state
            return AssetRecord(asset, device_id, state_at, "snapshot", options)
        stale = asset.model_copy(update={"state": None})
        return AssetRecord(stale, device_id, state_at, "none", options)

    def _latest(
        self, conn: psycopg.Connection[Any], park_id: str, device_id: str, metrics: tuple[str, ...], now: datetime
    ) -> dict[str, tuple[datetime, float]]:
        rows = conn.execute(
            """SELECT DISTINCT ON (s.metric) s.metric, r.ts, r.value
               FROM devices d JOIN series s ON s.device_key = d.device_key
               JOIN readings r ON r.series_id = s.series_id
               WHERE d.park_id = %s AND d.device_id = %s AND s.metric = ANY(%s)
                 AND r.ts > %s AND r.ts <= %s AND r.quality < 3
               ORDER BY s.metric, r.ts DESC""",
            (park_id, device_id, list(metrics), now - self.state_max_age, now),
        ).fetchall()
        return {m: (ts, float(v)) for m, ts, v in rows}

    def _plugged_in_at(
        self, conn: psycopg.Connection[Any], park_id: str, device_id: str, now: datetime
    ) -> datetime | None:
        row = conn.execute(
            """WITH conn AS (
                   SELECT r.ts, r.value FROM devices d JOIN series s ON s.device_key = d.device_key
                   JOIN readings r ON r.series_id = s.series_id
                   WHERE d.park_id = %(park)s AND d.device_id = %(dev)s AND s.metric = 'ev_connected'
                     AND r.ts > %(since)s AND r.ts <= %(now)s)
               SELECT min(ts) FROM conn
               WHERE value >= 0.5 AND ts > coalesce((SELECT max(ts) FROM conn WHERE value < 0.5), '-infinity')""",
            {"park": park_id, "dev": device_id, "since": now - timedelta(days=2), "now": now},
        ).fetchone()
        return row[0] if row else None

    # --- demand --------------------------------------------------------------------------------------

    def park_demand(self, park_id: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Boundary demand per 15-min interval in [start, end)."""
        params = {"park": park_id, "start": start, "end": end, "hours": INTERVAL_H}
        with self._conn() as conn:
            rows = conn.execute(
                _DEMAND_CTE + "SELECT ts, demand_kw, estimated_share FROM demand ORDER BY ts", params
            ).fetchall()
        return pl.DataFrame(
            [(ts.astimezone(UTC), float(kw), float(est)) for ts, kw, est in rows],
            schema={TS: pl.Datetime("us", "UTC"), DEMAND_KW: pl.Float64, ESTIMATED_SHARE: pl.Float64},
            orient="row",
        )

    def park_peak(self, park_id: str, start: datetime, end: datetime) -> DemandPeak | None:
        """Maximum boundary demand in [start, end), computed in the database."""
        params = {"park": park_id, "start": start, "end": end, "hours": INTERVAL_H}
        with self._conn() as conn:
            row = conn.execute(
                _DEMAND_CTE + "SELECT ts, demand_kw FROM demand ORDER BY demand_kw DESC, ts LIMIT 1", params
            ).fetchone()
        return DemandPeak(float(row[1]), row[0], start, end) if row else None

