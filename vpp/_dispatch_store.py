"""PostgreSQL adapter of the dispatcher: plans, the command audit trail and operator overrides (migration 0015).

Functions take an open psycopg connection (the API passes its request's); :class:`DispatchStore` wraps them
for the dispatcher, one short autocommit connection per call. Audit rows are only ever inserted (the
database refuses anything else); a command's status is its latest log entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from flex._plan_model import Plan
from schemas.commands import COMMAND_ADAPTER, CommandMessage
from vpp.errors import DispatchStoreError, OverrideNotFoundError


@dataclass(frozen=True, slots=True)
class CommandRow:
    """One command with its latest status (``sent``, ``resent``, ``applied``, ``rejected``, ``expired``…)."""

    command_id: str
    park_id: str
    device_id: str
    asset_id: str | None
    event_id: str | None
    action: str
    value: float
    unit: str
    interval_start: datetime | None
    issued_at: datetime
    expires_at: datetime
    hold_until: datetime | None
    reason: str
    status: str
    status_at: datetime | None
    status_reason: str | None
    applied_value: float | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Override:
    """An operator override of one device: cap on |power − baseline| (0 = excluded) until ``valid_until``."""

    override_id: int
    park_id: str
    device_id: str
    max_change_kw: float
    valid_until: datetime
    reason: str
    created_by: str
    created_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None

    def active(self, at: datetime) -> bool:
        """In force at ``at``."""
        return self.cleared_at is None and self.created_at <= at < self.valid_until


def _plan_json(plan: Plan) -> tuple[Jsonb, Jsonb]:
    intervals = [{"start": iv.start.isoformat(), "end": iv.end.isoformat(), "target_kw": iv.target_kw,
                  "response_kw": r} for iv, r in zip(plan.intervals, plan.response_kw, strict=True)]
    schedules = [{"asset_id": s.asset_id, "device_id": s.device_id, "kind": s.kind, "power_kw": list(s.power_kw),
                  "baseline_kw": list(s.baseline_kw), "temp_c": list(s.temp_c) if s.temp_c else None}
                 for s in plan.schedules]
    return Jsonb(intervals), Jsonb(schedules)


def record_plan(conn: psycopg.Connection[Any], park_id: str, event_id: str, plan: Plan, planned_at: datetime) -> int:
    """Store a plan; returns its id."""
    intervals, schedules = _plan_json(plan)
    row = conn.execute(
        """INSERT INTO vpp_plans (park_id, event_id, planned_at, method, direction, target_kw, committed_kw,
               shortfall_kwh, intervals, schedules, warnings)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING plan_id""",
        (park_id, event_id, planned_at, plan.method, plan.direction.value,
         max((iv.target_kw for iv in plan.intervals), default=0.0), plan.committed_kw, plan.shortfall_kwh,
         intervals, schedules, list(plan.warnings)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def record_command(conn: psycopg.Connection[Any], message: CommandMessage, *, asset_id: str | None,
                   plan_id: int | None, interval_start: datetime | None) -> None:
    """Store a command exactly as it will be published."""
    conn.execute(
        """INSERT INTO vpp_commands (command_id, park_id, device_id, asset_id, event_id, plan_id, action, value, unit,
               interval_start, issued_at, expires_at, hold_until, issued_by, reason, payload)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (message["command_id"], message["park"], message["device"], asset_id, message["event_id"], plan_id,
         message["action"].value, message["value"], message["unit"], interval_start, message["issued_at"],
         message["expires_at"], message["hold_until"], message["issued_by"], message["reason"],
         Jsonb(COMMAND_ADAPTER.dump_python(message, mode="json"))),
    )


def log_command(conn: psycopg.Connection[Any], command_id: str, kind: str, at: datetime, *, reason: str | None = None,
                detail: str = "", applied_value: float | None = None, payload: Any = None) -> None:
    """Append one thing that happened to a command."""
    conn.execute(
        """INSERT INTO vpp_command_log (command_id, kind, at, reason, detail, applied_value, payload)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (command_id, kind, at, reason, detail, applied_value, Jsonb(payload) if payload is not None else None),
    )


_COMMAND_SELECT = """
    SELECT c.command_id, c.park_id, c.device_id, c.asset_id, c.event_id, c.action, c.value, c.unit, c.interval_start,
           c.issued_at, c.expires_at, c.hold_until, c.reason, coalesce(l.kind, 'recorded'), l.at, l.reason,
           l.applied_value, (SELECT count(*) FROM vpp_command_log s WHERE s.command_id = c.command_id
                             AND s.kind IN ('sent', 'resent'))
    FROM vpp_commands c
    LEFT JOIN LATERAL (SELECT kind, at, reason, applied_value FROM vpp_command_log g
                       WHERE g.command_id = c.command_id ORDER BY log_id DESC LIMIT 1) l ON true"""


def list_commands(conn: psycopg.Connection[Any], park_id: str, *, event_id: str | None = None,
                  device_id: str | None = None, limit: int = 200, offset: int = 0) -> list[CommandRow]:
    """A park's commands (optionally of one event or device), newest first, each with its latest status."""
    rows = conn.execute(
        _COMMAND_SELECT + """
        WHERE c.park_id = %(park)s AND (%(event)s::text IS NULL OR c.event_id = %(event)s)
          AND (%(device)s::text IS NULL OR c.device_id = %(device)s)
        ORDER BY c.issued_at DESC, c.command_id LIMIT %(limit)s OFFSET %(offset)s""",
        {"park": park_id, "event": event_id, "device": device_id, "limit": limit, "offset": offset},
    ).fetchall()
    return [CommandRow(*r) for r in rows]


def command_log(conn: psycopg.Connection[Any], command_id: str) -> list[dict[str, Any]]:
    """Everything that happened to one command, oldest first."""
    rows = conn.execute(
        "SELECT kind, at, reason, detail, applied_value FROM vpp_command_log WHERE command_id = %s ORDER BY log_id",
        (command_id,),
    ).fetchall()
    return [{"kind": k, "at": at, "reason": r, "detail": d, "applied_value": v} for k, at, r, d, v in rows]


def latest_plans(conn: psycopg.Connection[Any], park_id: str) -> dict[str, dict[str, Any]]:
    """The newest plan of each of the park's events: event id → {plan_id, planned_at, method, committed_kw, …}."""
    rows = conn.execute(
        """SELECT DISTINCT ON (event_id) event_id, plan_id, planned_at, method, direction, target_kw, committed_kw,
                  shortfall_kwh, intervals, warnings
           FROM vpp_plans WHERE park_id = %s ORDER BY event_id, planned_at DESC, plan_id DESC""",
        (park_id,),
    ).fetchall()
    keys = ("plan_id", "planned_at", "method", "direction", "target_kw", "committed_kw", "shortfall_kwh",
            "intervals", "warnings")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


_OVERRIDE_COLUMNS = """override_id, park_id, device_id, max_change_kw, valid_until, reason, created_by, created_at,
    cleared_at, cleared_by"""


def set_override(conn: psycopg.Connection[Any], park_id: str, device_id: str, *, max_change_kw: float,
                 valid_until: datetime, reason: str, created_by: str) -> Override:
    """Record an override (it takes effect at once)."""
    try:
        row = conn.execute(
            f"""INSERT INTO vpp_overrides (park_id, device_id, max_change_kw, valid_until, reason, created_by)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_OVERRIDE_COLUMNS}""",
            (park_id, device_id, max_change_kw, valid_until, reason, created_by),
        ).fetchone()
    except psycopg.errors.CheckViolation as exc:
        raise DispatchStoreError(f"override refused: {exc.diag.message_primary}; --until must be in the future, "
                                 "the reason not empty and the cap ≥ 0") from None
    assert row is not None
    return Override(*row)


def clear_override(conn: psycopg.Connection[Any], park_id: str, override_id: int, *, cleared_by: str,
                   at: datetime) -> Override:
    """Clear a live override; :class:`OverrideNotFoundError` when the park has no such uncleared override."""
    row = conn.execute(
        f"""UPDATE vpp_overrides SET cleared_at = %s, cleared_by = %s
            WHERE override_id = %s AND park_id = %s AND cleared_at IS NULL RETURNING {_OVERRIDE_COLUMNS}""",
        (at, cleared_by, override_id, park_id),
    ).fetchone()
    if row is None:
        raise OverrideNotFoundError(park_id, override_id)
    return Override(*row)


def list_overrides(conn: psycopg.Connection[Any], park_id: str, *, at: datetime | None = None) -> list[Override]:
    """The park's overrides, newest first; with ``at``, only those in force then."""
    rows = conn.execute(
        f"""SELECT {_OVERRIDE_COLUMNS} FROM vpp_overrides WHERE park_id = %(park)s
            AND (%(at)s::timestamptz IS NULL OR (cleared_at IS NULL AND created_at <= %(at)s
                                                 AND valid_until > %(at)s))
            ORDER BY created_at DESC, override_id DESC""",
        {"park": park_id, "at": at},
    ).fetchall()
    return [Override(*r) for r in rows]


def override_caps(conn: psycopg.Connection[Any], park_id: str, at: datetime) -> dict[str, float]:
    """Device → the tightest cap (kW) of the overrides in force at ``at``."""
    caps: dict[str, float] = {}
    for o in list_overrides(conn, park_id, at=at):
        caps[o.device_id] = min(o.max_change_kw, caps.get(o.device_id, o.max_change_kw))
    return caps


class DispatchStore:
    """The dispatcher's store: the functions above on a fresh short autocommit connection each."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        """One autocommit connection; :class:`DispatchStoreError` when the database cannot be reached."""
        try:
            conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise DispatchStoreError(f"the database is unreachable ({exc.__class__.__name__}); "
                                     "check PARKPULSE_DATABASE_URL and `parkpulse services up`") from None
        try:
            yield conn
        finally:
            conn.close()
