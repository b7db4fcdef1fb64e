"""Database adapter: reads what the mapping needs for one park and window (:class:`MappingInputs`).

Series and devices come from the registry tables, 15-minute energy from ``interval_energy``, hour / day /
month energy from ``meter_rollups``, the month's 综合能耗 from ``indicator_results`` (``total_energy``) and
manual-entry values from ``declared_inputs`` (``parkpulse import …``). Read-only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg

from uplink._items import DeclaredSource, ItemTable, MeteredSource, TotalEnergySource
from uplink._mapping import DeclaredRow, MappingInputs, Meter, MeterPeriod
from uplink._periods import month_start, next_month
from uplink.errors import UplinkStoreError

_BASIS: Final = {"当量值": "calorific", "等价值": "coal_equivalent"}


def park_timezone(conn: psycopg.Connection[Any], park_id: str) -> str:
    """The park's time zone; raises when the park is not registered."""
    row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    if row is None:
        raise UplinkStoreError(f"park {park_id!r} is not registered; register it with "
                               f"`parkpulse registry park add {park_id}`")
    return str(row[0])


def _date(text: object) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def load_meters(conn: psycopg.Connection[Any], park_id: str) -> list[Meter]:
    """Every series of the park's devices with the registry attributes the bindings use."""
    rows = conn.execute(
        """SELECT s.series_id, d.device_id, s.metric, d.carrier, d.kind, d.metering_level, d.role, d.site_id,
                  d.metadata->>'accuracy_class', d.metadata->>'calibration_date'
           FROM series s JOIN devices d USING (device_key) WHERE d.park_id = %s ORDER BY d.device_id, s.metric""",
        (park_id,)).fetchall()
    return [Meter(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], _date(r[9])) for r in rows]


def _metrics(table: ItemTable) -> set[str]:
    out: set[str] = set()
    for item in table.items:
        src = item.source
        if isinstance(src, MeteredSource):
            out.add(src.metric)
        elif isinstance(src, TotalEnergySource):
            out.update(src.tce_per_unit)
    return out


def _declared_kinds(table: ItemTable) -> list[str]:
    return sorted({i.source.declared_kind for i in table.items if isinstance(i.source, DeclaredSource)})


def load_inputs(conn: psycopg.Connection[Any], table: ItemTable, park_id: str, *, enterprise_code: str,
                start: date, end: date) -> MappingInputs:
    """What :func:`uplink._mapping.compute_records` needs for local ``[start, end)`` (whole months included)."""
    tz = park_timezone(conn, park_id)
    zone = ZoneInfo(tz)
    lo_month, hi_month = month_start(start), next_month(max(start, end - timedelta(days=1)))
    lo = datetime.combine(lo_month, time(0), tzinfo=zone).astimezone(UTC)
    hi = datetime.combine(hi_month, time(0), tzinfo=zone).astimezone(UTC)
    day_lo = datetime.combine(start, time(0), tzinfo=zone).astimezone(UTC)
    day_hi = datetime.combine(end, time(0), tzinfo=zone).astimezone(UTC)
    wanted = _metrics(table)
    meters = [m for m in load_meters(conn, park_id) if m.metric in wanted]
    ids = [m.series_id for m in meters]
    periods: list[MeterPeriod] = []
    if ids:
        for sid, ts, energy, est in conn.execute(
                """SELECT series_id, ts, energy, energy * estimated_share FROM interval_energy
                   WHERE series_id = ANY(%s) AND ts >= %s AND ts < %s""", (ids, day_lo, day_hi)):
            periods.append(MeterPeriod(int(sid), "15min", ts, float(energy), float(est), 1.0))
        for sid, grain, ts, energy, est, n in conn.execute(
                """SELECT series_id, grain, period_start, energy, estimated_energy, n_intervals FROM meter_rollups
                   WHERE series_id = ANY(%s) AND period_start >= %s AND period_start < %s
                     AND (grain = 'month' OR period_start >= %s AND period_start < %s)""",
                (ids, lo, hi, day_lo, day_hi)):
            periods.append(MeterPeriod(int(sid), grain, ts, float(energy), float(est), float(n)))
    monthly: dict[tuple[str, date], float] = {}
    for variant, first, value in conn.execute(
            """SELECT variant, period_start, value FROM indicator_results
               WHERE park_id = %s AND indicator = 'total_energy' AND subject = '' AND value IS NOT NULL
                 AND period ~ '^[0-9]{4}-[0-9]{2}$' AND period_start >= %s AND period_start < %s""",
            (park_id, lo_month, hi_month)):
        if variant in _BASIS:
            monthly[(_BASIS[variant], first)] = float(value)
    declared = [DeclaredRow(k, s, a, b, float(q)) for k, s, a, b, q in conn.execute(
        """SELECT kind, subject, period_start, period_end, quantity FROM declared_inputs
           WHERE park_id = %s AND kind = ANY(%s) AND period_end IS NOT NULL
             AND period_end > %s AND period_start < %s""",
        (park_id, _declared_kinds(table), lo_month, hi_month))]
    return MappingInputs(park_id, tz, enterprise_code, tuple(meters), tuple(periods), monthly, tuple(declared))
