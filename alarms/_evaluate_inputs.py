"""What the alarm rules look at, read from the tables ingest and aggregation write.

Thin adapters over one park: device sessions (``devices`` + ``device_status``), daily meter rollups,
flagged intervals, balance checks, daily PUE and the level-1 electricity import per interval. Each returns
the plain rows :mod:`alarms._rules` judges; the windows are a little wider than the rules' own, which the
pure conditions narrow exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from alarms._rules import BalanceRow, DeviceState, FlaggedInterval, MeterDay, PueDay

#: Meters that existed before the judged days: a rollup this many days earlier makes a silent day a gap.
HISTORY_DAYS = 7


def park_timezone(conn: psycopg.Connection[Any], park_id: str) -> ZoneInfo | None:
    """The park's time zone, or None when the park is not registered."""
    row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    if row is None:
        return None
    try:
        return ZoneInfo(row[0] or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def interval_s(conn: psycopg.Connection[Any], park_id: str, default_s: int) -> int:
    """The interval length aggregation computed the park with (its job parameters), else ``default_s``."""
    row = conn.execute(
        """SELECT (params->>'interval_s')::integer FROM aggregation_watermarks
           WHERE job IN ('aggregation:' || %s, 'aggregation') AND params ? 'interval_s'
           ORDER BY job = 'aggregation' LIMIT 1""", (park_id,)).fetchone()
    return int(row[0]) if row and row[0] else default_s


def data_anchor(conn: psycopg.Connection[Any], park_id: str, step_s: int) -> datetime | None:
    """End of the park's newest interval of energy (start + one interval), or None before any."""
    row = conn.execute(
        """SELECT max(x.ts) FROM series s JOIN devices d USING (device_key),
                LATERAL (SELECT ie.ts FROM interval_energy ie WHERE ie.series_id = s.series_id
                         ORDER BY ie.ts DESC LIMIT 1) x
           WHERE d.park_id = %s""", (park_id,)).fetchone()
    return None if row is None or row[0] is None else row[0] + timedelta(seconds=step_s)


def devices(conn: psycopg.Connection[Any], park_id: str) -> list[DeviceState]:
    """Every registered device of the park with its session state."""
    rows = conn.execute(
        """SELECT d.device_id, d.metadata, ds.last_reading_ts, ds.last_seen_at, ds.online, ds.status_at,
                  d.first_seen_at
           FROM devices d LEFT JOIN device_status ds USING (device_key)
           WHERE d.park_id = %s ORDER BY d.device_id""", (park_id,)).fetchall()
    return [DeviceState(r[0], dict(r[1] or {}), r[2], r[3], r[4], r[5], r[6]) for r in rows]


def meter_days(conn: psycopg.Connection[Any], park_id: str, anchor: datetime, lookback_days: int,
               tz: ZoneInfo) -> list[MeterDay]:
    """Daily rollups of the park's meters from ``HISTORY_DAYS`` before the judged days up to ``anchor``."""
    since = anchor - timedelta(days=lookback_days + HISTORY_DAYS + 1)
    rows = conn.execute(
        """SELECT d.device_id, s.metric, m.period_start, m.n_intervals, m.n_expected, m.n_estimated
           FROM meter_rollups m JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND m.grain = 'day' AND m.period_start >= %s AND m.period_start < %s""",
        (park_id, since, anchor)).fetchall()
    return [MeterDay(r[0], r[1], r[2].astimezone(tz).date(), int(r[3]), int(r[4]), float(r[5])) for r in rows]


def flagged_intervals(conn: psycopg.Connection[Any], park_id: str, anchor: datetime, hours: float,
                      mask: int) -> list[FlaggedInterval]:
    """Intervals of the park in the ``hours`` before ``anchor`` with a flag of ``mask`` set."""
    rows = conn.execute(
        """SELECT d.device_id, s.metric, ie.ts, ie.flags
           FROM interval_energy ie JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND ie.ts >= %s AND ie.ts < %s AND ie.flags & %s <> 0
           ORDER BY ie.ts""",
        (park_id, anchor - timedelta(hours=hours), anchor, mask)).fetchall()
    return [FlaggedInterval(r[0], r[1], r[2], int(r[3])) for r in rows]


def balance_rows(conn: psycopg.Connection[Any], park_id: str, grain: str, periods: int) -> list[BalanceRow]:
    """The ``periods`` newest balance checks of each carrier at ``grain``."""
    rows = conn.execute(
        """SELECT carrier, metric, period_start, difference_pct, alarm, supply_energy, level2_energy, unit
           FROM (SELECT b.*, row_number() OVER (PARTITION BY carrier ORDER BY period_start DESC) AS rn
                 FROM balance_checks b WHERE park_id = %s AND grain = %s) x
           WHERE rn <= %s""", (park_id, grain, periods)).fetchall()
    return [BalanceRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], float(r[6]), r[7]) for r in rows]


def pue_days(conn: psycopg.Connection[Any], park_id: str, days: int) -> list[PueDay]:
    """The ``days`` newest daily PUE results of each data-centre site."""
    rows = conn.execute(
        """SELECT site_id, period_start, facility_kwh, it_kwh, plausible
           FROM (SELECT p.*, row_number() OVER (PARTITION BY site_id ORDER BY period_start DESC) AS rn
                 FROM pue_results p WHERE park_id = %s AND grain = 'day') x
           WHERE rn <= %s""", (park_id, days)).fetchall()
    return [PueDay(r[0], r[1], float(r[2]), float(r[3]), bool(r[4])) for r in rows]


def level1_import(conn: psycopg.Connection[Any], park_id: str, anchor: datetime, hours: float) -> dict[datetime, float]:
    """Σ energy (kWh) per interval start of the level-1 electricity import meters, ``hours`` before ``anchor``."""
    rows = conn.execute(
        """SELECT ie.ts, sum(ie.energy)
           FROM interval_energy ie JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND d.metering_level = 1 AND d.carrier = 'electricity'
             AND s.metric = 'active_energy_import' AND ie.ts >= %s AND ie.ts < %s
           GROUP BY ie.ts""",
        (park_id, anchor - timedelta(hours=hours + 1), anchor)).fetchall()
    return {r[0]: float(r[1]) for r in rows}
