"""Targets in the database (table ``targets``, migration 0010): record versions, list, history, effective set.

A thin adapter over the pure rules of :mod:`alarms._targets`: :func:`record_targets` plans each new version
with :func:`alarms._targets.plan_version` against the key's stored versions and applies the plan in one
transaction (all targets of a call or none), under a per-park advisory lock so two writers cannot interleave.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import psycopg

from alarms._targets import (
    TARGET_INDICATORS,
    TargetInput,
    TargetKey,
    TargetVersion,
    effective_version,
    judged_on,
    plan_version,
)
from alarms._targets_errors import UnknownParkError

_COLUMNS: Final = ("target_id, park_id, subject_kind, subject, indicator, variant, year, month, value, unit, source, "
                   "source_kind, note, valid_from, valid_to, recorded_at, superseded_at, replaced_by, recorded_by")


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What recording one target did: ``created`` a version (ending or superseding others) or ``unchanged``."""

    target: TargetInput
    status: Literal["created", "unchanged"]
    target_id: int | None
    valid_from: date
    ended: tuple[int, ...] = ()
    superseded: tuple[int, ...] = ()
    note: str | None = None


def park_timezone(conn: psycopg.Connection[Any], park_id: str) -> str:
    """The park's time zone, or :class:`UnknownParkError`."""
    row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    if row is None:
        raise UnknownParkError(park_id)
    return str(row[0])


def local_today(tz: str, now: datetime | None = None) -> date:
    """The park-local date of ``now`` (default: the current instant)."""
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(tz)).date()


def _version(row: tuple[Any, ...]) -> TargetVersion:
    (target_id, park_id, subject_kind, subject, indicator, variant, year, month, value, unit, source, source_kind,
     note, valid_from, valid_to, recorded_at, superseded_at, replaced_by, recorded_by) = row
    target = TargetInput(park_id, indicator, variant, year, month, value, unit, source, source_kind, subject_kind,
                         subject, valid_from, note)
    return TargetVersion(target_id, target, valid_from, valid_to, recorded_at, superseded_at, replaced_by,
                         recorded_by)


def load_versions(conn: psycopg.Connection[Any], park_id: str, *, year: int | None = None,
                  live_only: bool = False) -> list[TargetVersion]:
    """Every stored version of the park's targets (of ``year``), oldest recorded first."""
    rows = conn.execute(f"""SELECT {_COLUMNS} FROM targets
                            WHERE park_id = %s AND (%s::int IS NULL OR year = %s::int)
                              AND (NOT %s OR superseded_at IS NULL)
                            ORDER BY indicator, variant, subject_kind, subject, year, month, recorded_at, target_id""",
                        (park_id, year, year, live_only)).fetchall()
    return [_version(r) for r in rows]


def by_key(versions: list[TargetVersion]) -> dict[TargetKey, list[TargetVersion]]:
    """Versions grouped by target key, in key order."""
    groups: dict[TargetKey, list[TargetVersion]] = defaultdict(list)
    for v in versions:
        groups[v.key].append(v)
    return dict(sorted(groups.items()))


def effective_targets(conn: psycopg.Connection[Any], park_id: str, year: int, as_of: date) -> list[TargetVersion]:
    """The version of each of the park's ``year`` targets that judges its period as of local day ``as_of``."""
    out: list[TargetVersion] = []
    for key, versions in by_key(load_versions(conn, park_id, year=year, live_only=True)).items():
        version = effective_version(versions, judged_on(key, as_of))
        if version is not None:
            out.append(version)
    return out


def record_targets(conn: psycopg.Connection[Any], targets: list[TargetInput], *, recorded_by: str,
                   today: date | None = None) -> list[RecordResult]:
    """Store a new version of every target whose content changed; all or nothing.

    ``today`` (park-local; default: now in the park's zone) is when an unspecified change takes effect.
    """
    results: list[RecordResult] = []
    with conn.transaction():
        zones: dict[str, str] = {}
        for park in sorted({t.park_id for t in targets}):
            zones[park] = park_timezone(conn, park)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('parkpulse.targets'), hashtext(%s))", (park,))
        for target in targets:
            day = today or local_today(zones[target.park_id])
            results.append(_record_one(conn, target, recorded_by, day))
    return results


def _record_one(conn: psycopg.Connection[Any], target: TargetInput, recorded_by: str, today: date) -> RecordResult:
    k = target.key
    rows = conn.execute(f"""SELECT {_COLUMNS} FROM targets
                            WHERE park_id = %s AND subject_kind = %s AND subject = %s AND indicator = %s
                              AND variant = %s AND year = %s AND month = %s
                            ORDER BY valid_from, target_id FOR UPDATE""",
                        (k.park_id, k.subject_kind, k.subject, k.indicator, k.variant, k.year, k.month)).fetchall()
    plan = plan_version(target, [_version(r) for r in rows], today)
    if plan.unchanged:
        return RecordResult(target, "unchanged", None, plan.valid_from)
    direction = TARGET_INDICATORS[target.indicator].direction
    if plan.supersede:
        # before the insert, so the live-key index never sees two live versions starting on one day
        conn.execute("UPDATE targets SET superseded_at = now() WHERE target_id = ANY(%s)", (list(plan.supersede),))
    new_row = conn.execute("""
        INSERT INTO targets (park_id, subject_kind, subject, indicator, variant, year, month, value, unit, direction,
                             source, source_kind, note, valid_from, recorded_by)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING target_id""",
                           (k.park_id, k.subject_kind, k.subject, k.indicator, k.variant, k.year, k.month,
                            target.value, target.unit, direction, target.source, target.source_kind, target.note,
                            plan.valid_from, recorded_by)).fetchone()
    assert new_row is not None  # INSERT … RETURNING always returns the row
    new_id = int(new_row[0])
    if plan.supersede:
        conn.execute("UPDATE targets SET replaced_by = %s WHERE target_id = ANY(%s)", (new_id, list(plan.supersede)))
    for target_id, end in plan.end_at.items():
        conn.execute("UPDATE targets SET valid_to = %s WHERE target_id = %s", (end, target_id))
    return RecordResult(target, "created", new_id, plan.valid_from, tuple(plan.end_at), plan.supersede, plan.note)
