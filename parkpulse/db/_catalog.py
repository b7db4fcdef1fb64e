"""Declared park structure (parks and sites) written from scenario files or imports."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A building, workshop, station or data centre inside a park."""

    site_id: str
    name: str | None = None
    kind: str = "building"
    floor_area_m2: float | None = None
    is_public_building: bool = False


@dataclass(frozen=True, slots=True)
class ParkRecord:
    """A park and the attributes that choose its calendar and emission factors."""

    park_id: str
    name: str | None = None
    timezone: str = "Asia/Shanghai"
    province: str | None = None
    grid_region: str | None = None


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
            """INSERT INTO sites (park_id, site_id, name, kind, floor_area_m2, is_public_building)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (park_id, site_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,
                   floor_area_m2 = EXCLUDED.floor_area_m2, is_public_building = EXCLUDED.is_public_building""",
            [(park.park_id, s.site_id, s.name, s.kind, s.floor_area_m2, s.is_public_building) for s in sites],
        )
