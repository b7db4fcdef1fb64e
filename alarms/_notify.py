"""Enqueue a notification in the caller's transaction (the producers' side of the outbox).

A producer calls :func:`enqueue_notification` with the same connection, inside the same transaction, as
the state change the message is about (an alarm raised, a 预警 level changed). The message is then sent
if and only if that change commits, and exactly one message exists per ``(park_id, dedupe_key)`` however
often the producer retries. On commit, PostgreSQL delivers a ``parkpulse_notify`` NOTIFY, which wakes a
running dispatcher (``parkpulse alarms notify``) at once instead of at its next poll.
"""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg.types.json import Jsonb

from alarms._notification import Notification

NOTIFY_CHANNEL: Final = "parkpulse_notify"


def enqueue_notification(conn: psycopg.Connection, notification: Notification) -> bool:
    """Queue ``notification`` for delivery; False when its ``(park_id, dedupe_key)`` was already queued.

    Runs in the caller's transaction (or autocommits with an autocommit connection). Raises ValueError
    for a naive ``created_at`` or an empty ``dedupe_key``, and psycopg's ForeignKeyViolation for an
    unknown park.
    """
    n = notification
    if n.created_at.tzinfo is None or n.created_at.utcoffset() is None:
        raise ValueError(f"notification {n.dedupe_key!r}: created_at must be timezone-aware (UTC)")
    if not n.dedupe_key:
        raise ValueError("notification dedupe_key must not be empty (e.g. 'alarm:123:raised')")
    row = conn.execute(
        """
        INSERT INTO notification_outbox (park_id, dedupe_key, severity, title_zh, title_en, body_zh, body_en,
                                         links, alarm_id, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (park_id, dedupe_key) DO NOTHING
        RETURNING notification_id
        """,
        (n.park_id, n.dedupe_key, n.severity, n.title_zh, n.title_en, n.body_zh, n.body_en, Jsonb(dict(n.links)),
         n.alarm_id, n.created_at),
    ).fetchone()
    if row is None:
        return False
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, n.park_id))
    return True
