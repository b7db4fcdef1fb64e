"""Quality self-checks of the records (pure core + a thin store), as the platforms' rules ask:

* **completeness** per data item and local day: for items with real-time values, real-time records present
  ÷ due (96 per day at 15 min); for daily-only items, the day record's metered completeness; >= 90 %;
* **consistency** per item and month: the sum of the daily values against the monthly value, within 5 %;
* **alignment** per item and day / month: daily values start at local 00:00 ± 1 min, monthly on the 1st
  ± 1 day.

A failed check carries its reasons: missing meter data (how much, which meters), estimated share, late data
(the value was revised after it was first computed). Flags are stored in ``uplink_quality_flags`` for the
CLI, the API and the dashboard panel.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import psycopg

from schemas.uplink_record import Period, UplinkRecord
from uplink._endpoints import EndpointConfig
from uplink._items import ItemTable, load_items
from uplink._periods import iter_periods, month_start, next_month
from uplink._store import stored_records

COMPLETENESS_MIN: Final = 0.90
CONSISTENCY_MAX: Final = 0.05
Check = Literal["completeness", "consistency", "alignment"]


@dataclass(frozen=True, slots=True)
class QualityFlag:
    """One check of one item for one local day (or month, keyed by its 1st)."""

    data_item_code: str
    day: date
    check: Check
    passed: bool
    value: float | None
    threshold: float
    reason: str | None


def _reasons(records: Sequence[UplinkRecord], missing: int, due: int, *, uploaded: bool = False) -> list[str]:
    out: list[str] = []
    if missing > 0 and uploaded:
        out.append(f"not acknowledged: {missing} of {due} values are not (yet) acknowledged by the platform "
                   "(see `parkpulse uplink status` and `rejects`)")
    elif missing > 0:
        meters = sorted({m for r in records for m in r.meter_codes})
        out.append(f"missing meter data: {missing} of {due} values have no data"
                   + (f" (meters {', '.join(meters[:6])})" if meters else ""))
    partial = [r for r in records if r.completeness < 1.0]
    if partial:
        worst = min(r.completeness for r in partial)
        out.append(f"missing meter data: {len(partial)} values are incomplete (lowest {worst:.0%} of intervals)")
    estimated = [r for r in records if r.quality == "estimated"]
    if estimated:
        out.append(f"estimated share: {len(estimated)} of {len(records)} values hold VEE-estimated energy")
    late = [r for r in records if r.revision > 1]
    if late:
        out.append(f"late data: {len(late)} values were revised after they were first computed")
    return out


def check_records(table: ItemTable, records: Sequence[UplinkRecord], timezone: str, start: date, end: date, *,
                  now: datetime, uploaded: bool = False, periods: Sequence[Period] | None = None) -> list[QualityFlag]:
    """Every check for the items of ``table`` over local days ``[start, end)`` (closed days and months only).

    With ``uploaded``, ``records`` are those an endpoint acknowledged: the completeness is the after-upload one;
    ``periods`` limits the checks to the periods that endpoint receives (its real-time one: 15 min or hour).
    """
    tz = ZoneInfo(timezone)
    by: dict[tuple[str, Period], dict[datetime, UplinkRecord]] = defaultdict(dict)
    for r in records:
        by[(r.data_item_code, r.period)][r.period_start.astimezone(UTC)] = r
    flags: list[QualityFlag] = []
    for item in table.items:
        realtime: Period | None = next((p for p in ("15min", "hour") if p in item.periods
                                        and (periods is None or p in periods)), None)
        for day in iter_periods("day", start, end, timezone):
            if day.end_utc > now:
                break
            d = day.start_local.date()
            if realtime is not None:
                due_p = [p for p in iter_periods(realtime, d, d + timedelta(days=1), timezone)]
                series = by[(item.code, realtime)]
                got = [series[p.start_utc] for p in due_p if p.start_utc in series]
                ratio = len(got) * 1.0 / len(due_p) if due_p else 0.0
                if got:
                    ratio *= sum(r.completeness for r in got) / len(got)
                reasons = _reasons(got, len(due_p) - len(got), len(due_p), uploaded=uploaded)
            elif "day" in item.periods:
                rec = by[(item.code, "day")].get(day.start_utc)
                ratio = rec.completeness if rec else 0.0
                reasons = _reasons([rec] if rec else [], 0 if rec else 1, 1, uploaded=uploaded)
            else:
                continue
            ok = ratio >= COMPLETENESS_MIN
            flags.append(QualityFlag(item.code, d, "completeness", ok, round(ratio, 4), COMPLETENESS_MIN,
                                     None if ok else "; ".join(reasons) or "no values"))
            if "day" in item.periods and (rec := by[(item.code, "day")].get(day.start_utc)) is not None:
                local = rec.period_start.astimezone(tz)
                off = abs((local - local.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds())
                off = min(off, 86400 - off)
                flags.append(QualityFlag(item.code, d, "alignment", off <= 60, off, 60.0,
                                         None if off <= 60 else f"daily value starts {local.isoformat()}, "
                                         "not at local 00:00 ± 1 min"))
        if "day" in item.periods and "month" in item.periods:
            flags.extend(_consistency(item.code, by, timezone, start=start, end=end, now=now))
    return flags


def _consistency(code: str, by: dict[tuple[str, Period], dict[datetime, UplinkRecord]], timezone: str, *, start: date,
                 end: date, now: datetime) -> list[QualityFlag]:
    out: list[QualityFlag] = []
    for month in iter_periods("month", month_start(start), end, timezone):
        if month.end_utc > now:
            break
        first = month.start_local.date()
        rec = by[(code, "month")].get(month.start_utc)
        days = list(iter_periods("day", first, next_month(first), timezone))
        got = [by[(code, "day")][p.start_utc] for p in days if p.start_utc in by[(code, "day")]]
        if rec is None:
            if got:
                out.append(QualityFlag(code, first, "consistency", False, None, CONSISTENCY_MAX,
                                       "missing meter data: daily values but no monthly value"))
            continue
        total = sum(r.value for r in got)
        dev = abs(total - rec.value) / abs(rec.value) if rec.value else (0.0 if total == 0 else 1.0)
        ok = dev <= CONSISTENCY_MAX
        reason = None if ok else "; ".join(
            [f"Σ days {total:.6g} vs month {rec.value:.6g} {rec.unit}",
             *_reasons(got, len(days) - len(got), len(days))])
        out.append(QualityFlag(code, first, "consistency", ok, round(dev, 6), CONSISTENCY_MAX, reason))
        local = rec.period_start.astimezone(ZoneInfo(timezone))
        aligned = (local.day == 1 and local.hour == 0) or (local + timedelta(days=1)).day == 1
        out.append(QualityFlag(code, first, "alignment", aligned, None, 1.0,
                               None if aligned else
                               f"monthly value starts {local.isoformat()}, not on the 1st ± 1 day"))
    return out


def store_flags(conn: psycopg.Connection[Any], park: str, profile: str, flags: Sequence[QualityFlag]) -> int:
    """Upsert the flags; returns how many failed."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO uplink_quality_flags (park_id, profile, data_item_code, day, check_name, passed, value,
                                                 threshold, reason, checked_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (park_id, profile, data_item_code, day, check_name) DO UPDATE
                 SET passed = EXCLUDED.passed, value = EXCLUDED.value, threshold = EXCLUDED.threshold,
                     reason = EXCLUDED.reason, checked_at = now()""",
            [(park, profile, f.data_item_code, f.day, f.check, f.passed, f.value, f.threshold, f.reason)
             for f in flags])
    return sum(1 for f in flags if not f.passed)


def refresh_quality(database_url: str, endpoints: Sequence[EndpointConfig], park: str, start: date, end: date, *,
                    now: datetime | None = None) -> int:
    """Check the stored records of ``park`` for local ``[start, end)`` for each of its profiles; store the flags.

    Before upload: every check on the computed records (flags under the profile's name). After upload:
    completeness over the records each endpoint acknowledged (flags under ``<profile>@<endpoint>``).
    Returns the number of failed checks.
    """
    now = now or datetime.now(UTC)
    failed = 0
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park,)).fetchone()
        tz = str(row[0]) if row else "Asia/Shanghai"
        for profile in sorted({e.profile for e in endpoints if e.park == park}):
            table = load_items(profile)
            records = stored_records(conn, profile, park, start=month_start(start), timezone=tz,
                                     end=next_month(end - timedelta(days=1)) if end > start else end)
            failed += store_flags(conn, park, profile, check_records(table, records, tz, start, end, now=now))
            for ep in (e for e in endpoints if e.park == park and e.profile == profile):
                acked = {k for (k,) in conn.execute("""SELECT record_key FROM uplink_deliveries
                                                       WHERE endpoint = %s AND acked_revision IS NOT NULL""",
                                                    (ep.name,))}
                mine = [r for r in records if r.record_key in acked and r.period in ep.periods]
                flags = [f for f in check_records(table, mine, tz, start, end, now=now, uploaded=True,
                                                  periods=ep.periods) if f.check == "completeness"]
                failed += store_flags(conn, park, f"{profile}@{ep.name}", flags)
    return failed


def list_flags(conn: psycopg.Connection[Any], park: str, start: date, end: date, *,
               failed_only: bool = False) -> list[dict[str, Any]]:
    """Stored flags of ``park`` for days in ``[start, end)``, as JSON-ready dicts."""
    rows = conn.execute(
        """SELECT profile, data_item_code, day, check_name, passed, value, threshold, reason, checked_at
           FROM uplink_quality_flags WHERE park_id = %s AND day >= %s AND day < %s AND (NOT %s OR NOT passed)
           ORDER BY day, profile, data_item_code, check_name""", (park, start, end, failed_only)).fetchall()
    keys = ("profile", "data_item_code", "day", "check", "passed", "value", "threshold", "reason", "checked_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]
