"""Seed a test park in the real database: park, level-1 meters and their interval energy, device readings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl
import psycopg

from infra.db import ParkRecord, SiteRecord, upsert_park


def seed_park(conn: psycopg.Connection, park_id: str, sites: Iterable[str] = ()) -> None:
    """Create the park (Asia/Shanghai) and sites."""
    upsert_park(conn, ParkRecord(park_id, name=f"test {park_id}"), [SiteRecord(s) for s in sites])


def add_series(conn: psycopg.Connection, park_id: str, device_id: str, metric: str, unit: str, *,
               level: int | None = None, kind: str = "electricity_meter") -> int:
    """Create (or reuse) a device and its series; return the series id."""
    row = conn.execute(
        """INSERT INTO devices (park_id, device_id, kind, carrier, metering_level)
           VALUES (%s, %s, %s, 'electricity', %s)
           ON CONFLICT (park_id, device_id) DO UPDATE SET metering_level = EXCLUDED.metering_level
           RETURNING device_key""",
        (park_id, device_id, kind, level),
    ).fetchone()
    assert row is not None
    series = conn.execute(
        """INSERT INTO series (device_key, metric, unit) VALUES (%s, %s, %s)
           ON CONFLICT (device_key, metric) DO UPDATE SET unit = EXCLUDED.unit RETURNING series_id""",
        (row[0], metric, unit),
    ).fetchone()
    assert series is not None
    return int(series[0])


def write_interval_energy(conn: psycopg.Connection, series_id: int, demand: pl.DataFrame) -> None:
    """Write a demand frame (ts, demand_kw, estimated_share) as 15-min interval energy (kWh = kW * 0.25)."""
    with conn.cursor().copy(
        "COPY interval_energy (series_id, ts, energy, quality, estimated_share) FROM STDIN"
    ) as copy:
        for ts, kw, est in demand.select("ts", "demand_kw", "estimated_share").iter_rows():
            copy.write_row((series_id, ts, kw * 0.25, 1 if est > 0 else 0, est))


def write_readings(conn: psycopg.Connection, series_id: int, points: Iterable[tuple[datetime, float]]) -> None:
    """Insert raw readings for a series."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (series_id, ts, value) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(series_id, ts, v) for ts, v in points],
        )
