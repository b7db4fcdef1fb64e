"""Seed a synthetic park straight into the database (devices, series, readings, change log).

The helpers write exactly what ingest writes (``readings`` plus one ``reading_changes`` row per series and
batch), so the aggregation job sees the same inputs it would after MQTT ingest, with values simple enough
to check by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from infra.db import ParkRecord, SiteRecord, upsert_park
from schemas import get_metric


@dataclass(frozen=True)
class Meter:
    """One simulated register: ``per_interval`` units every ``step`` (or a function of the timestamp)."""

    device_id: str
    metric: str = "active_energy_import"
    per_interval: float | Callable[[datetime], float] = 10.0
    level: int | None = None
    role: str | None = None
    site: str | None = None
    register_max: float | None = 1_000_000.0
    rated_power_kw: float | None = None
    start_value: float = 1000.0
    metadata: dict[str, Any] = field(default_factory=dict)


def create_park(conn: psycopg.Connection, park_id: str, sites: Sequence[SiteRecord] = (),
                timezone: str = "Asia/Shanghai", province: str | None = "广东",
                grid_region: str | None = "南方") -> None:
    """Create the park and its sites."""
    upsert_park(conn, ParkRecord(park_id, park_id, timezone, province, grid_region), list(sites))


def create_series(conn: psycopg.Connection, park_id: str, meter: Meter) -> int:
    """Create the device and its series; return the series id."""
    spec = get_metric(meter.metric)
    row = conn.execute(
        """INSERT INTO devices (park_id, device_id, site_id, kind, carrier, metering_level, role, register_max,
                                rated_power_kw, metadata)
           VALUES (%s, %s, %s, 'meter', %s, %s, %s, %s, %s, %s)
           ON CONFLICT (park_id, device_id) DO UPDATE SET site_id = EXCLUDED.site_id
           RETURNING device_key""",
        (park_id, meter.device_id, meter.site, spec.carrier.value, meter.level, meter.role, meter.register_max,
         meter.rated_power_kw, Jsonb(meter.metadata))).fetchone()
    assert row is not None
    srow = conn.execute(
        """INSERT INTO series (device_key, metric, unit) VALUES (%s, %s, %s)
           ON CONFLICT (device_key, metric) DO UPDATE SET unit = EXCLUDED.unit RETURNING series_id""",
        (row[0], meter.metric, spec.unit)).fetchone()
    assert srow is not None
    return int(srow[0])


def write_readings(conn: psycopg.Connection, series_id: int, rows: Sequence[tuple[datetime, float]],
                   quality: int = 0) -> None:
    """Insert readings the way ingest does (skip duplicates) and log the change."""
    if not rows:
        return
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy("COPY readings (series_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "timestamptz", "float8", "int2"])
            for ts, value in rows:
                cp.write_row((series_id, ts, value, quality))
        cur.execute("INSERT INTO reading_changes (series_id, ts_min, ts_max, n_rows) VALUES (%s, %s, %s, %s)",
                    (series_id, min(t for t, _ in rows), max(t for t, _ in rows), len(rows)))


def register_rows(meter: Meter, start: datetime, end: datetime, step: timedelta,
                  value0: float | None = None) -> list[tuple[datetime, float]]:
    """Cumulative register values from ``start`` to ``end`` inclusive (wrapping at ``register_max``)."""
    rows: list[tuple[datetime, float]] = []
    value = meter.start_value if value0 is None else value0
    ts = start
    while ts <= end:
        rows.append((ts, round(value, 6)))
        inc = meter.per_interval(ts) if callable(meter.per_interval) else meter.per_interval
        value += inc
        if meter.register_max is not None and value > meter.register_max:
            value -= meter.register_max + 0.01
        ts += step
    return rows


def seed(conn: psycopg.Connection, park_id: str, meters: Sequence[Meter], start: datetime, end: datetime,
         step: timedelta = timedelta(minutes=15)) -> dict[str, int]:
    """Create every meter and write its readings from ``start`` to ``end``; returns device id -> series id."""
    ids: dict[str, int] = {}
    for m in meters:
        sid = create_series(conn, park_id, m)
        ids[m.device_id] = sid
        write_readings(conn, sid, register_rows(m, start, end, step))
    return ids
