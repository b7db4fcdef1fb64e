"""The dispatcher's SQL: route outbox rows, claim due deliveries, record attempts, read alarm state.

Async (``psycopg.AsyncConnection`` in autocommit mode; multi-statement steps open their own transaction).
Due deliveries are claimed by pushing ``next_attempt_at`` one lease ahead inside the claiming
transaction, so several dispatchers can run side by side, and a dispatcher that dies mid-send leaves its
rows to be retried once the lease runs out (delivery is at least once; webhooks get ``delivery_id`` to
deduplicate). Every query takes an optional list of parks, so a dispatcher (and each test) can serve only
its own parks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alarms._notification import Notification, Severity
from alarms._notify_policy import PlannedDelivery

logger = logging.getLogger(__name__)

Stage = Literal["primary", "escalation"]
Outcome = Literal["sent", "retry", "failed"]
EscalationState = Literal["not_applicable", "escalated", "acknowledged", "cleared"]

_PARKS = "(%(parks)s::text[] IS NULL OR o.park_id = ANY(%(parks)s))"
_OUTBOX_COLUMNS = """o.notification_id, o.park_id, o.dedupe_key, o.severity, o.title_zh, o.title_en, o.body_zh,
    o.body_en, o.links, o.alarm_id, o.created_at, o.escalated_after_minutes, p.timezone"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A queued notification with its id and the park's time zone."""

    notification_id: int
    notification: Notification
    timezone: str
    escalated_after_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery: the message, where it goes, and how many attempts it already had."""

    delivery_id: int
    stage: Stage
    list_name: str
    channel: str
    kind: str
    attempts: int
    message: OutboxRow


@dataclass(frozen=True, slots=True)
class AlarmState:
    """What escalation needs to know about an alarm."""

    acknowledged: bool
    cleared: bool


def _outbox_row(r: dict[str, Any]) -> OutboxRow:
    n = Notification(park_id=r["park_id"], dedupe_key=r["dedupe_key"], severity=cast("Severity", r["severity"]),
                     title_zh=r["title_zh"], title_en=r["title_en"], body_zh=r["body_zh"], body_en=r["body_en"],
                     created_at=r["created_at"], alarm_id=r["alarm_id"], links=dict(r["links"] or {}))
    return OutboxRow(r["notification_id"], n, r["timezone"], r["escalated_after_minutes"])


def _parks(parks: Sequence[str] | None) -> list[str] | None:
    return list(parks) if parks is not None else None


async def lock_unrouted(conn: psycopg.AsyncConnection, parks: Sequence[str] | None, limit: int) -> list[OutboxRow]:
    """Queued notifications with no deliveries yet, locked until the caller's transaction ends."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {_OUTBOX_COLUMNS} FROM notification_outbox o JOIN parks p USING (park_id)
                WHERE o.routed_at IS NULL AND {_PARKS}
                ORDER BY o.notification_id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED""",
            {"parks": _parks(parks), "limit": limit})
        return [_outbox_row(r) for r in await cur.fetchall()]


async def insert_deliveries(conn: psycopg.AsyncConnection, notification_id: int, stage: Stage,
                            plan: Sequence[PlannedDelivery], now: datetime) -> int:
    """One pending delivery per planned channel (existing ones are kept); returns how many were new."""
    created = 0
    for p in plan:
        cur = await conn.execute(
            """INSERT INTO notification_deliveries (notification_id, stage, list_name, channel, kind,
                                                    next_attempt_at, created_at, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (notification_id, stage, channel) DO NOTHING""",
            (notification_id, stage, p.list_name, p.channel, p.kind, now, now, now))
        created += cur.rowcount
    return created


async def mark_routed(conn: psycopg.AsyncConnection, notification_id: int, now: datetime,
                      escalation_state: EscalationState | None) -> None:
    """Record that the notification's deliveries exist (and whether escalation can still apply)."""
    await conn.execute(
        "UPDATE notification_outbox SET routed_at = %s, escalation_state = %s WHERE notification_id = %s",
        (now, escalation_state, notification_id))


async def lock_escalation_candidates(conn: psycopg.AsyncConnection, parks: Sequence[str] | None,
                                     created_before: datetime, limit: int) -> list[OutboxRow]:
    """Routed critical alarm notifications created by ``created_before`` whose escalation is undecided.

    Oldest first, locked until the caller's transaction ends. ``created_before`` is ``now`` minus the
    shortest escalation delay of any route, so rows that cannot be due yet do not crowd out those that are.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {_OUTBOX_COLUMNS} FROM notification_outbox o JOIN parks p USING (park_id)
                WHERE o.escalation_state IS NULL AND o.severity = 'critical' AND o.alarm_id IS NOT NULL
                  AND o.routed_at IS NOT NULL AND o.created_at <= %(before)s AND {_PARKS}
                ORDER BY o.created_at LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED""",
            {"parks": _parks(parks), "before": created_before, "limit": limit})
        return [_outbox_row(r) for r in await cur.fetchall()]


async def set_escalation(conn: psycopg.AsyncConnection, notification_id: int, state: EscalationState,
                         now: datetime, after_minutes: int | None = None) -> None:
    """Close the escalation decision: escalated (with when and after how long), acknowledged, cleared, n/a."""
    escalated = state == "escalated"
    await conn.execute(
        """UPDATE notification_outbox SET escalation_state = %s, escalated_at = %s, escalated_after_minutes = %s
           WHERE notification_id = %s""",
        (state, now if escalated else None, after_minutes if escalated else None, notification_id))


async def alarm_states(conn: psycopg.AsyncConnection, alarm_ids: Sequence[int]) -> dict[int, AlarmState] | None:
    """Acknowledged/cleared per alarm id from the ``alarms`` table; None when that table is not there.

    Read defensively: the table belongs to the alarm lifecycle, so only the columns found are used
    (``alarm_id`` or ``id``; ``acknowledged_at``; ``cleared_at``). Ids without a row are left out.
    """
    cur = await conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = 'alarms'""")
    columns = {str(r[0]) for r in await cur.fetchall()}
    key = next((c for c in ("alarm_id", "id") if c in columns), None)
    if key is None or "acknowledged_at" not in columns:
        return None
    cleared = sql.Identifier("cleared_at") if "cleared_at" in columns else sql.SQL("NULL::timestamptz")
    query = sql.SQL("SELECT {key}, acknowledged_at IS NOT NULL, {cleared} IS NOT NULL FROM alarms "
                    "WHERE {key} = ANY(%s)").format(key=sql.Identifier(key), cleared=cleared)
    cur = await conn.execute(query, (list(alarm_ids),))
    return {int(r[0]): AlarmState(bool(r[1]), bool(r[2])) for r in await cur.fetchall()}


async def claim_due(conn: psycopg.AsyncConnection, parks: Sequence[str] | None, now: datetime,
                    lease_until: datetime, limit: int) -> list[DueDelivery]:
    """Pending deliveries due at ``now``, leased until ``lease_until`` (oldest due first)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""WITH due AS (
                    SELECT d.delivery_id FROM notification_deliveries d
                    JOIN notification_outbox o USING (notification_id)
                    WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s AND {_PARKS}
                    ORDER BY d.next_attempt_at, d.delivery_id LIMIT %(limit)s FOR UPDATE OF d SKIP LOCKED)
                UPDATE notification_deliveries d SET next_attempt_at = %(lease)s, updated_at = %(now)s
                FROM due, notification_outbox o, parks p
                WHERE d.delivery_id = due.delivery_id AND o.notification_id = d.notification_id
                  AND p.park_id = o.park_id
                RETURNING d.delivery_id, d.stage, d.list_name, d.channel, d.kind, d.attempts, {_OUTBOX_COLUMNS}""",
            {"parks": _parks(parks), "now": now, "lease": lease_until, "limit": limit})
        rows = await cur.fetchall()
    due = [DueDelivery(r["delivery_id"], r["stage"], r["list_name"], r["channel"], r["kind"], r["attempts"],
                       _outbox_row(r)) for r in rows]
    return sorted(due, key=lambda d: d.delivery_id)


async def hold(conn: psycopg.AsyncConnection, delivery_id: int, until: datetime, now: datetime) -> None:
    """Postpone a delivery to the end of quiet hours (not an attempt)."""
    await conn.execute(
        """UPDATE notification_deliveries SET next_attempt_at = %s, held_until = %s, updated_at = %s
           WHERE delivery_id = %s""", (until, until, now, delivery_id))


async def cancel(conn: psycopg.AsyncConnection, delivery_id: int, reason: str, now: datetime) -> None:
    """Drop a delivery that is no longer wanted (an escalation whose alarm was acknowledged meanwhile)."""
    await conn.execute(
        """UPDATE notification_deliveries SET status = 'cancelled', last_error = %s, updated_at = %s
           WHERE delivery_id = %s""", (reason, now, delivery_id))


async def record_attempt(conn: psycopg.AsyncConnection, delivery_id: int, attempt: int, *, started_at: datetime,
                         finished_at: datetime, outcome: Outcome, response: str | None, error: str | None,
                         next_attempt_at: datetime | None) -> None:
    """Store one attempt and move the delivery on: sent, due again at ``next_attempt_at``, or failed."""
    status = {"sent": "sent", "retry": "pending", "failed": "failed"}[outcome]
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO notification_attempts (delivery_id, attempt, started_at, finished_at, outcome, response,
                                                  error)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (delivery_id, attempt, started_at, finished_at, outcome, response, error))
        await conn.execute(
            """UPDATE notification_deliveries
               SET status = %s, attempts = %s, last_error = %s, updated_at = %s,
                   sent_at = CASE WHEN %s = 'sent' THEN %s END,
                   next_attempt_at = COALESCE(%s, next_attempt_at)
               WHERE delivery_id = %s""",
            (status, attempt, error, finished_at, status, finished_at, next_attempt_at, delivery_id))


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery as the operator sees it (``parkpulse alarms deliveries``)."""

    delivery_id: int
    notification_id: int
    dedupe_key: str
    severity: str
    title_en: str
    stage: str
    channel: str
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime
    held_until: datetime | None
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime


def list_deliveries(conn: psycopg.Connection, park_id: str, *, status: str | None = None,
                    limit: int = 50) -> list[DeliveryView]:
    """The park's most recent deliveries, newest first (optionally only one status)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """SELECT d.delivery_id, d.notification_id, o.dedupe_key, o.severity, o.title_en, d.stage, d.channel,
                      d.kind, d.status, d.attempts, d.next_attempt_at, d.held_until, d.sent_at, d.last_error,
                      d.created_at
               FROM notification_deliveries d JOIN notification_outbox o USING (notification_id)
               WHERE o.park_id = %s AND (%s::text IS NULL OR d.status = %s)
               ORDER BY d.created_at DESC, d.delivery_id DESC LIMIT %s""",
            (park_id, status, status, limit))
        return [DeliveryView(**r) for r in cur.fetchall()]


def park_timezone(conn: psycopg.Connection, park_id: str) -> str | None:
    """The park's IANA time zone, or None when the park is not registered."""
    row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    return str(row[0]) if row else None
