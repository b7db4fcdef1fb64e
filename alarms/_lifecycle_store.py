"""The alarms in the database (migration 0011): carry out a rule's plan, acknowledge, list and show.

:func:`apply_plan` runs inside the evaluator's transaction, and every raise (and every rise to critical)
enqueues its :class:`~alarms._notification.Notification` in that same transaction, so a message exists if
and only if the alarm change committed. Every change appends a row to ``alarm_transitions``, the history
the API and ``parkpulse alarms show`` print. The unique index ``alarms_one_live`` keeps one alarm per
(park, rule, subject) that is not cleared, whatever the callers do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alarms._lifecycle import (
    EVALUATOR,
    STATES,
    ClearedAlarm,
    LiveAlarm,
    RulePlan,
    State,
)
from alarms._notification import Notification, Severity
from alarms._rules import Finding
from alarms._rules_errors import AlarmNotFoundError, AlarmStateError
from alarms._rules_model import Rule

logger = logging.getLogger(__name__)

_SEVERITY_ZH: Final = {"info": "提示", "warning": "警告", "critical": "严重"}
_COLUMNS: Final = ("alarm_id, park_id, rule_id, kind, subject, severity, state, title_zh, title_en, message_zh, "
                   "message_en, value, limit_value, unit, context, raised_at, last_raised_at, last_true_at, "
                   "acknowledged_at, acknowledged_by, ack_comment, cleared_at, clear_reason, reopen_count")


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of an alarm's history."""

    transition_id: int
    at: datetime
    action: str
    from_state: State | None
    to_state: State
    severity: Severity
    actor: str
    comment: str | None
    value: float | None
    message_en: str | None

    def to_json(self) -> dict[str, Any]:
        """The transition as a JSON-ready mapping (times in ISO 8601, UTC)."""
        return {"transition_id": self.transition_id, "at": self.at.astimezone(UTC).isoformat(),
                "action": self.action, "from_state": self.from_state, "to_state": self.to_state,
                "severity": self.severity, "actor": self.actor, "comment": self.comment, "value": self.value,
                "message_en": self.message_en}


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """An alarm as stored, with its history when it was asked for."""

    alarm_id: int
    park_id: str
    rule_id: str
    kind: str
    subject: str
    severity: Severity
    state: State
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    value: float | None
    limit_value: float | None
    unit: str
    context: dict[str, Any]
    raised_at: datetime
    last_raised_at: datetime
    last_true_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    cleared_at: datetime | None
    clear_reason: str | None
    reopen_count: int
    history: tuple[Transition, ...] = ()

    def to_json(self, *, history: bool = False) -> dict[str, Any]:
        """The alarm as a JSON-ready mapping; ``history`` adds its transitions, oldest first."""
        out: dict[str, Any] = {}
        for name in _COLUMNS.split(", "):
            value = getattr(self, name)
            out[name] = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value
        if history:
            out["history"] = [t.to_json() for t in self.history]
        return out


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """What :func:`apply_plan` did to one alarm (for the evaluation report)."""

    alarm_id: int
    rule_id: str
    subject: str
    action: str               # raised | reopened | cleared | severity
    severity: Severity
    notified: bool


def lock_park(conn: psycopg.Connection[Any], park_id: str) -> None:
    """Serialise evaluations and acknowledgements of one park until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('parkpulse.alarms'), hashtext(%s))", (park_id,))


def load_state(conn: psycopg.Connection[Any], park_id: str) -> tuple[
        dict[str, dict[str, LiveAlarm]], dict[str, dict[str, ClearedAlarm]], dict[str, dict[str, int]]]:
    """Per rule id: the live alarms, the newest cleared alarm and the pending count, each by subject."""
    live: dict[str, dict[str, LiveAlarm]] = {}
    cleared: dict[str, dict[str, ClearedAlarm]] = {}
    pending: dict[str, dict[str, int]] = {}
    for alarm_id, rule_id, subject, state, severity in conn.execute(
            "SELECT alarm_id, rule_id, subject, state, severity FROM alarms WHERE park_id = %s AND state <> 'cleared'",
            (park_id,)).fetchall():
        live.setdefault(rule_id, {})[subject] = LiveAlarm(int(alarm_id), subject, state, severity)
    for alarm_id, rule_id, subject, cleared_at in conn.execute(
            """SELECT DISTINCT ON (rule_id, subject) alarm_id, rule_id, subject, cleared_at FROM alarms
               WHERE park_id = %s AND state = 'cleared' ORDER BY rule_id, subject, cleared_at DESC""",
            (park_id,)).fetchall():
        cleared.setdefault(rule_id, {})[subject] = ClearedAlarm(int(alarm_id), subject, cleared_at)
    for rule_id, subject, hits in conn.execute(
            "SELECT rule_id, subject, hits FROM alarm_pending WHERE park_id = %s", (park_id,)).fetchall():
        pending.setdefault(rule_id, {})[subject] = int(hits)
    return live, cleared, pending


def _transition(conn: psycopg.Connection[Any], alarm_id: int, *, at: datetime, action: str,
                from_state: State | None, to_state: State, severity: Severity, actor: str = EVALUATOR,
                comment: str | None = None, finding: Finding | None = None) -> None:
    conn.execute(
        """INSERT INTO alarm_transitions (alarm_id, at, action, from_state, to_state, severity, actor, comment,
                                          value, message_en)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (alarm_id, at, action, from_state, to_state, severity, actor, comment,
         finding.value if finding else None, finding.message_en if finding else None))


def notification_for(park_id: str, alarm_id: int, rule: Rule, finding: Finding, *, at: datetime,
                     event: str) -> Notification:
    """The bilingual message of a raise (``event`` "raised") or a rise to critical ("critical")."""
    sev_zh = _SEVERITY_ZH[rule.severity]
    ack = f"parkpulse alarms ack {alarm_id} --by NAME --comment TEXT"
    verb_en = "raised" if event == "raised" else "is now critical"
    verb_zh = "告警" if event == "raised" else "升级为严重"
    return Notification(
        park_id=park_id, dedupe_key=f"alarm:{alarm_id}:{event}", severity=rule.severity,
        title_zh=f"[{sev_zh}] {park_id} {rule.title_zh}{verb_zh}：{finding.subject}",
        title_en=f"[{rule.severity}] {park_id}: {rule.title_en} {verb_en}: {finding.subject}",
        body_zh=f"{finding.message_zh}\n告警编号 {alarm_id}，规则 {rule.id}。确认：{ack}",
        body_en=f"{finding.message_en}\nAlarm {alarm_id}, rule {rule.id}. Acknowledge: {ack}",
        created_at=at, alarm_id=alarm_id,
        links={"api": f"/v1/parks/{park_id}/alarms/{alarm_id}"})


def _enqueue(conn: psycopg.Connection[Any], notification: Notification) -> bool:
    """Queue the message in the caller's transaction (alarms._notify, imported when first needed)."""
    try:
        from alarms._notify import enqueue_notification  # noqa: PLC0415  (delivery is optional for evaluation)
    except ImportError:
        logger.warning("alarms._notify is not installed: %s is not queued for delivery", notification.dedupe_key)
        return False
    return enqueue_notification(conn, notification)


def apply_plan(conn: psycopg.Connection[Any], park_id: str, rule: Rule, plan: RulePlan,
               now: datetime) -> list[AppliedChange]:
    """Write one rule's plan (inside the caller's transaction) and queue its notifications."""
    changes: list[AppliedChange] = []
    for r in plan.raises:
        f = r.finding
        row = conn.execute(
            """INSERT INTO alarms (park_id, rule_id, kind, subject, severity, state, title_zh, title_en, message_zh,
                                   message_en, value, limit_value, unit, context, raised_at, last_raised_at,
                                   last_true_at)
               VALUES (%s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING alarm_id""",
            (park_id, rule.id, rule.kind, f.subject, rule.severity, rule.title_zh, rule.title_en, f.message_zh,
             f.message_en, f.value, f.limit, f.unit, Jsonb(f.context), now, now, now)).fetchone()
        assert row is not None
        alarm_id = int(row[0])
        _transition(conn, alarm_id, at=now, action="raised", from_state=None, to_state="open",
                    severity=rule.severity, finding=f)
        notified = _enqueue(conn, notification_for(park_id, alarm_id, rule, f, at=now, event="raised"))
        changes.append(AppliedChange(alarm_id, rule.id, f.subject, "raised", rule.severity, notified))
    for o in plan.reopens:
        f = o.finding
        conn.execute(
            """UPDATE alarms SET state = 'open', severity = %s, title_zh = %s, title_en = %s, message_zh = %s,
                      message_en = %s, value = %s, limit_value = %s, unit = %s, context = %s, last_raised_at = %s,
                      last_true_at = %s, cleared_at = NULL, clear_reason = NULL, acknowledged_at = NULL,
                      acknowledged_by = NULL, ack_comment = NULL, reopen_count = reopen_count + 1
               WHERE alarm_id = %s AND state = 'cleared'""",
            (rule.severity, rule.title_zh, rule.title_en, f.message_zh, f.message_en, f.value, f.limit, f.unit,
             Jsonb(f.context), now, now, o.alarm_id))
        _transition(conn, o.alarm_id, at=now, action="reopened", from_state="cleared", to_state="open",
                    severity=rule.severity,
                    comment=f"condition returned within {rule.reopen_within_min:g} min of clearing", finding=f)
        changes.append(AppliedChange(o.alarm_id, rule.id, f.subject, "reopened", rule.severity, False))
    for u in plan.refreshes:
        f = u.finding
        row = conn.execute(
            """UPDATE alarms SET severity = %s, message_zh = %s, message_en = %s, value = %s, limit_value = %s,
                      unit = %s, context = %s, last_true_at = %s
               WHERE alarm_id = %s RETURNING state""",
            (u.severity_to, f.message_zh, f.message_en, f.value, f.limit, f.unit, Jsonb(f.context), now,
             u.alarm_id)).fetchone()
        if row is None or u.severity_from == u.severity_to:
            continue
        _transition(conn, u.alarm_id, at=now, action="severity", from_state=row[0], to_state=row[0],
                    severity=u.severity_to,
                    comment=f"severity {u.severity_from} → {u.severity_to} (rule {rule.id})", finding=f)
        notified = u.escalated and _enqueue(conn, notification_for(park_id, u.alarm_id, rule, f, at=now,
                                                                          event="critical"))
        changes.append(AppliedChange(u.alarm_id, rule.id, f.subject, "severity", u.severity_to, notified))
    for c in plan.clears:
        severity = clear_alarm(conn, c.alarm_id, c.reason, now)
        if severity is not None:
            changes.append(AppliedChange(c.alarm_id, rule.id, c.subject, "cleared", severity, False))
    _store_pending(conn, park_id, rule.id, plan.pending, now)
    return changes


def clear_alarm(conn: psycopg.Connection[Any], alarm_id: int, reason: str, now: datetime) -> Severity | None:
    """Clear one open or acknowledged alarm (with its transition); its severity, or None if already cleared."""
    row = conn.execute("SELECT state, severity FROM alarms WHERE alarm_id = %s AND state <> 'cleared' FOR UPDATE",
                       (alarm_id,)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE alarms SET state = 'cleared', cleared_at = %s, clear_reason = %s WHERE alarm_id = %s",
                 (now, reason, alarm_id))
    _transition(conn, alarm_id, at=now, action="cleared", from_state=row[0], to_state="cleared", severity=row[1],
                comment=reason)
    severity: Severity = row[1]
    return severity


def _store_pending(conn: psycopg.Connection[Any], park_id: str, rule_id: str, pending: dict[str, int],
                   now: datetime) -> None:
    conn.execute("DELETE FROM alarm_pending WHERE park_id = %s AND rule_id = %s AND NOT (subject = ANY(%s))",
                 (park_id, rule_id, list(pending)))
    if not pending:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO alarm_pending (park_id, rule_id, subject, hits, first_at, last_at)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (park_id, rule_id, subject)
               DO UPDATE SET hits = EXCLUDED.hits, last_at = EXCLUDED.last_at""",
            [(park_id, rule_id, subject, hits, now, now) for subject, hits in sorted(pending.items())])


def _record(row: dict[str, Any], history: tuple[Transition, ...] = ()) -> AlarmRecord:
    return AlarmRecord(**{k: row[k] for k in _COLUMNS.split(", ")}, history=history)


def list_alarms(conn: psycopg.Connection[Any], park_id: str | None, *, states: Sequence[State] = STATES,
                severity: Severity | None = None, limit: int = 100, offset: int = 0) -> tuple[list[AlarmRecord], int]:
    """A page of alarms in ``states`` (newest raised first) and how many there are in all."""
    unknown = sorted(set(states) - set(STATES))
    if unknown:
        raise ValueError(f"unknown alarm state {unknown[0]!r}; the states are {', '.join(STATES)}")
    where = ["state = ANY(%s)"]
    params: list[Any] = [list(states)]
    if park_id is not None:
        where.append("park_id = %s")
        params.append(park_id)
    if severity is not None:
        where.append("severity = %s")
        params.append(severity)
    cond = " AND ".join(where)
    with conn.cursor(row_factory=dict_row) as cur:
        total_row = cur.execute(f"SELECT count(*) AS n FROM alarms WHERE {cond}", params).fetchone()
        rows = cur.execute(f"SELECT {_COLUMNS} FROM alarms WHERE {cond} "
                           "ORDER BY last_raised_at DESC, alarm_id DESC LIMIT %s OFFSET %s",
                           [*params, limit, offset]).fetchall()
    return [_record(r) for r in rows], int(total_row["n"]) if total_row else 0


def get_alarm(conn: psycopg.Connection[Any], alarm_id: int, park_id: str | None = None) -> AlarmRecord:
    """One alarm with its full history; :class:`AlarmNotFoundError` if absent (or in another park)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_COLUMNS} FROM alarms WHERE alarm_id = %s", (alarm_id,)).fetchone()
        if row is None or (park_id is not None and row["park_id"] != park_id):
            raise AlarmNotFoundError(alarm_id, park_id)
        history = tuple(Transition(**t) for t in cur.execute(
            """SELECT transition_id, at, action, from_state, to_state, severity, actor, comment, value, message_en
               FROM alarm_transitions WHERE alarm_id = %s ORDER BY transition_id""", (alarm_id,)).fetchall())
    return _record(row, history)


def acknowledge(conn: psycopg.Connection[Any], alarm_id: int, *, by: str, comment: str,
                park_id: str | None = None, now: datetime | None = None) -> AlarmRecord:
    """Acknowledge an open alarm (who, with a comment); returns it with its history.

    Raises:
        AlarmNotFoundError: no such alarm (in ``park_id``).
        AlarmStateError: it is already acknowledged or cleared.
        ValueError: ``by`` or ``comment`` is empty.
    """
    if not by.strip() or not comment.strip():
        raise ValueError("say who acknowledges (--by) and why (--comment); both are kept in the alarm's history")
    at = now or datetime.now(UTC)
    with conn.transaction():
        row = conn.execute("SELECT park_id, state, severity FROM alarms WHERE alarm_id = %s", (alarm_id,)).fetchone()
        if row is None or (park_id is not None and row[0] != park_id):
            raise AlarmNotFoundError(alarm_id, park_id)
        lock_park(conn, row[0])
        state_row = conn.execute("SELECT state, severity, acknowledged_by FROM alarms WHERE alarm_id = %s FOR UPDATE",
                                 (alarm_id,)).fetchone()
        assert state_row is not None
        state, severity, who = state_row
        if state == "acknowledged":
            raise AlarmStateError(alarm_id, state, f"{who} acknowledged it already; see `parkpulse alarms show "
                                                   f"{alarm_id}`")
        if state == "cleared":
            raise AlarmStateError(alarm_id, state, "its condition is gone, nothing to acknowledge; the history "
                                                   f"is in `parkpulse alarms show {alarm_id}`")
        conn.execute("""UPDATE alarms SET state = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s,
                                          ack_comment = %s WHERE alarm_id = %s""",
                     (at, by.strip(), comment.strip(), alarm_id))
        _transition(conn, alarm_id, at=at, action="acknowledged", from_state="open", to_state="acknowledged",
                    severity=severity, actor=by.strip(), comment=comment.strip())
    return get_alarm(conn, alarm_id)


def load_overrides(conn: psycopg.Connection[Any], park_id: str) -> dict[str, dict[str, Any]]:
    """The park's rule overrides stored in the database (rule id → override)."""
    return {rule_id: dict(override) for rule_id, override in conn.execute(
        "SELECT rule_id, override FROM alarm_rule_overrides WHERE park_id = %s ORDER BY rule_id",
        (park_id,)).fetchall()}


def save_override(conn: psycopg.Connection[Any], park_id: str, rule_id: str, override: dict[str, Any],
                  by: str) -> None:
    """Store (replace) one rule's override for the park; an empty override deletes it."""
    if not override:
        conn.execute("DELETE FROM alarm_rule_overrides WHERE park_id = %s AND rule_id = %s", (park_id, rule_id))
        return
    conn.execute(
        """INSERT INTO alarm_rule_overrides (park_id, rule_id, override, updated_by) VALUES (%s, %s, %s, %s)
           ON CONFLICT (park_id, rule_id) DO UPDATE SET override = EXCLUDED.override,
               updated_by = EXCLUDED.updated_by, updated_at = now()""",
        (park_id, rule_id, Jsonb(override), by))
