"""Reading one park-month from the database into a :class:`~reports._data.MonthlyData` (the I/O adapter).

Everything is read from what the aggregation jobs and imports already stored, never recomputed:
``indicator_results`` (all rows of the period, headline first), ``meter_rollups`` + interval flags (via
:func:`aggregation._meter_energy.load_meter_energy`), ``balance_checks`` (every column the table has),
``group_rollups`` (the park's daily energy per carrier), ``interval_energy`` of the level-1 electricity
import meters (load duration), ``pue_results`` (daily PUE) and ``quarantine`` (rejected input).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg

from aggregation._indicators import CATALOGUE
from aggregation._meter_energy import EnergyWindow, load_meter_energy
from aggregation._periods import Period, parse_period
from aggregation.errors import PeriodError
from reports._data import (
    BY_SOURCE,
    BalanceTable,
    DailyEnergy,
    IndicatorRow,
    MonthlyData,
    PueDay,
    QuarantineCount,
    carrier_quality,
    load_duration,
    source_rows,
)
from reports.errors import ReportPeriodError, UnknownParkError
from schemas import METRICS

_UNIT: Final = {m.name: m.unit for m in METRICS.values()}
#: balance_checks columns that are keys or bookkeeping, not figures.
_BALANCE_HIDDEN: Final = ("park_id", "grain", "period_start", "computed_at")


def month_of(text: str, today: date) -> Period:
    """The month ``YYYY-MM`` as a period; months starting after ``today`` (park-local) are refused.

    Raises:
        ReportPeriodError: not a month, or a future one.
    """
    try:
        period = parse_period(text, today=today)
    except PeriodError as exc:
        raise ReportPeriodError(text, f"{exc.reason}; monthly reports take YYYY-MM, e.g. 2026-10") from None
    if period.kind != "month":
        raise ReportPeriodError(text, "monthly reports take one month, YYYY-MM (e.g. 2026-10)")
    if period.start > today:
        raise ReportPeriodError(text, f"the month has not started yet (today is {today.isoformat()} in the park)")
    return period


def park_row(conn: psycopg.Connection[Any], park_id: str) -> tuple[str | None, str]:
    """(name, time zone) of a park.

    Raises:
        UnknownParkError: the park is not registered.
    """
    row = conn.execute("SELECT name, timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    if row is None:
        raise UnknownParkError(park_id)
    return row[0], str(row[1])


def _indicators(conn: psycopg.Connection[Any], park_id: str, period: str) -> list[IndicatorRow]:
    rows = conn.execute("""
        SELECT indicator, variant, subject, value, unit, estimated_share, completeness, status, headline, revision,
               ARRAY(SELECT DISTINCT v->>'vintage' FROM jsonb_each(factor_vintages) AS e(k, v)
                     WHERE jsonb_typeof(v) = 'object' ORDER BY 1), notes
        FROM indicator_results WHERE park_id = %s AND period = %s""", (park_id, period)).fetchall()
    order = {k: i for i, k in enumerate(CATALOGUE)}
    out = [IndicatorRow(r[0], CATALOGUE[r[0]].name_zh if r[0] in CATALOGUE else None, r[1], r[2], r[3], r[4], r[5],
                        r[6], r[7], bool(r[8]), int(r[9]), tuple(v for v in r[10] if v),
                        tuple(str(n) for n in (r[11] or []))) for r in rows]
    out.sort(key=lambda r: (not r.headline, order.get(r.indicator, len(order)), r.indicator, r.subject, r.variant))
    return out


def _balance(conn: psycopg.Connection[Any], park_id: str, start_utc: datetime) -> BalanceTable:
    with conn.cursor() as cur:
        cur.execute("""SELECT * FROM balance_checks WHERE park_id = %s AND grain = 'month' AND period_start = %s
                       ORDER BY carrier, metric""", (park_id, start_utc))
        names = [d.name for d in cur.description or ()]
        keep = [i for i, n in enumerate(names) if n not in _BALANCE_HIDDEN]
        rows = tuple(tuple(r[i] for i in keep) for r in cur.fetchall())
    return BalanceTable(tuple(names[i] for i in keep), rows)


def _quarantine(conn: psycopg.Connection[Any], park_id: str, lo: datetime, hi: datetime) -> list[QuarantineCount]:
    rows = conn.execute("""SELECT reason, source, count(*), COALESCE(sum(n_rejected), 0) FROM quarantine
                           WHERE park_id = %s AND received_at >= %s AND received_at < %s
                           GROUP BY reason, source ORDER BY count(*) DESC, reason, source""",
                        (park_id, lo, hi)).fetchall()
    return [QuarantineCount(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


def _daily(conn: psycopg.Connection[Any], park_id: str, tz: str, lo: datetime, hi: datetime) -> list[DailyEnergy]:
    rows = conn.execute("""SELECT (period_start AT TIME ZONE %s)::date, carrier, metric, energy FROM group_rollups
                           WHERE park_id = %s AND grain = 'day' AND dimension = 'park' AND member = ''
                             AND period_start >= %s AND period_start < %s
                           ORDER BY carrier, metric, period_start""", (tz, park_id, lo, hi)).fetchall()
    return [DailyEnergy(r[0], str(r[1]), str(r[2]), _UNIT.get(str(r[2]), ""), float(r[3])) for r in rows]


def _load(conn: psycopg.Connection[Any], park_id: str, lo: datetime, hi: datetime) -> tuple[list[float], float, int]:
    """Interval energy summed over the level-1 electricity import meters, the interval hours, the meter count."""
    series = [int(r[0]) for r in conn.execute("""
        SELECT s.series_id FROM series s JOIN devices d USING (device_key)
        WHERE d.park_id = %s AND d.metering_level = 1 AND s.metric = 'active_energy_import'""",
                                             (park_id,)).fetchall()]
    if not series:
        return [], 0.0, 0
    expected = conn.execute("""SELECT max(n_expected) FROM meter_rollups WHERE series_id = ANY(%s) AND grain = 'month'
                               AND period_start = %s""", (series, lo)).fetchone()
    if not expected or not expected[0]:
        return [], 0.0, len(series)
    interval_h = (hi - lo).total_seconds() / 3600 / int(expected[0])
    energy = conn.execute("""SELECT sum(energy) FROM interval_energy WHERE series_id = ANY(%s)
                             AND ts >= %s AND ts < %s GROUP BY ts""", (series, lo, hi)).fetchall()
    return [float(r[0]) for r in energy], interval_h, len(series)


def _pue(conn: psycopg.Connection[Any], park_id: str, tz: str, lo: datetime, hi: datetime) -> list[PueDay]:
    rows = conn.execute("""SELECT site_id, (period_start AT TIME ZONE %s)::date, pue, facility_kwh, it_kwh
                           FROM pue_results WHERE park_id = %s AND grain = 'day'
                             AND period_start >= %s AND period_start < %s
                           ORDER BY site_id, period_start""", (tz, park_id, lo, hi)).fetchall()
    return [PueDay(str(r[0]), r[1], r[2], float(r[3]), float(r[4])) for r in rows]


def gather_month(conn: psycopg.Connection[Any], park_id: str, period_text: str,
                 now: datetime | None = None) -> MonthlyData:
    """Read everything the monthly report of ``park_id`` shows for the month ``period_text`` (``YYYY-MM``).

    Raises:
        UnknownParkError: no such park.
        ReportPeriodError: not a month, or one that has not started.
    """
    name, tz = park_row(conn, park_id)
    clock = now or datetime.now(UTC)
    period = month_of(period_text, clock.astimezone(ZoneInfo(tz)).date())
    lo, hi = period.utc_bounds(tz)
    indicators = _indicators(conn, park_id, period.label)
    meters = load_meter_energy(conn, park_id, tz, EnergyWindow(period.start, period.end, "month"))
    energy, interval_h, n_meters = _load(conn, park_id, lo, hi)
    completeness = next((r.completeness for r in indicators if r.completeness is not None), None)
    notes: list[str] = []
    if not indicators:
        notes.append("指标未发布 no indicators published for this month: run `parkpulse aggregate` (or "
                     f"`parkpulse report indicators --park {park_id} --period {period.label} --publish`)")
    if not meters:
        notes.append("无分表数据 no meter rollups for this month: import or ingest readings, then run "
                     "`parkpulse aggregate`")
    if clock < hi:
        notes.append("月份未结束 the month is not closed yet: figures are provisional")
    return MonthlyData(
        park_id=park_id, park_name=name, timezone=tz, period=period.label, local_start=period.start,
        local_end=period.end, generated_at=clock, closed=clock >= hi,
        indicators=tuple(r for r in indicators if r.indicator not in BY_SOURCE),
        by_source=source_rows(indicators), meters=tuple(meters), balance=_balance(conn, park_id, lo),
        quality=carrier_quality(meters), quarantine=tuple(_quarantine(conn, park_id, lo, hi)),
        daily=tuple(_daily(conn, park_id, tz, lo, hi)),
        load=load_duration(energy, interval_h, n_meters) if energy else None,
        pue=tuple(_pue(conn, park_id, tz, lo, hi)), metered_completeness=completeness, notes=tuple(notes))


def indicators_fingerprint(conn: psycopg.Connection[Any], park_id: str, period: str) -> str:
    """A digest of the period's published indicators (ids, values, revisions): changes when any is restated."""
    row = conn.execute("""
        SELECT md5(COALESCE(string_agg(concat_ws('|', indicator, variant, subject, revision, value, status),
                                       ';' ORDER BY indicator, variant, subject), ''))
        FROM indicator_results WHERE park_id = %s AND period = %s""", (park_id, period)).fetchone()
    return str(row[0]) if row else ""

