"""Declared park structure (parks and sites) written from scenario files (the demo, benchmarks, tests).

Operators register parks and sites through :mod:`infra.db._registry` (CLI, API, registry files).
"""

from __future__ import annotations

import psycopg

from infra.db._records import ParkRecord, SiteRecord


def upsert_park(conn: psycopg.Connection, park: ParkRecord, sites: list[SiteRecord]) -> None:
    """Create or update a park and its sites in one transaction (idempotent)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            """INSERT INTO parks (park_id, name, timezone, province, grid_region)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (park_id) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone,
                   province = EXCLUDED.province, grid_region = EXCLUDED.grid_region""",
            (park.park_id, park.name, park.timezone, park.province, park.grid_region),
        )
        cur.executemany(
            """INSERT INTO sites (park_id, site_id, name, kind, floor_area_m2, is_public_building, roof_area_m2)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (park_id, site_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                   floor_area_m2 = EXCLUDED.floor_area_m2, is_public_building = EXCLUDED.is_public_building,
                   roof_area_m2 = EXCLUDED.roof_area_m2""",
            [(park.park_id, s.site_id, s.name, s.kind, s.floor_area_m2, s.is_public_building, s.roof_area_m2)
             for s in sites],
        )
