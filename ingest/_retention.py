"""Quarantine retention: records older than the age limit go, then the oldest beyond the size limit.

Run by every ingest instance every ``retention_interval_s`` (an advisory lock lets one of them do it at a
time) and by ``parkpulse quarantine prune``. The size counted is the stored raw bytes plus the reason
text; per-minute suppressed counts are kept as long as records are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

_LOCK_KEY: Final = 0x5050_5154  # "PPQT": one pruner at a time across instances


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one retention pass removed (``ran`` is False when another instance held the lock)."""

    ran: bool
    by_age: int = 0
    by_size: int = 0
    suppressed_rows: int = 0


async def prune_quarantine(conn: psycopg.AsyncConnection[Any], *, now: datetime, max_age: timedelta,
                           max_bytes: int) -> PruneResult:
    """Delete quarantine records past ``max_age``, then the oldest until at most ``max_bytes`` remain."""
    cutoff = now - max_age
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,))
        row = await cur.fetchone()
        if not (row and row[0]):
            return PruneResult(ran=False)
        await cur.execute("DELETE FROM quarantine WHERE received_at < %s", (cutoff,))
        by_age = max(cur.rowcount, 0)
        await cur.execute(
            """DELETE FROM quarantine WHERE quarantine_id IN (
                   SELECT quarantine_id FROM (
                       SELECT quarantine_id, sum(octet_length(raw) + octet_length(detail))
                                             OVER (ORDER BY received_at DESC, quarantine_id DESC) AS kept_bytes
                       FROM quarantine) newest_first
                   WHERE kept_bytes > %s)""", (max_bytes,))
        by_size = max(cur.rowcount, 0)
        await cur.execute("DELETE FROM quarantine_suppressed WHERE window_start < %s", (cutoff,))
        suppressed = max(cur.rowcount, 0)
    return PruneResult(ran=True, by_age=by_age, by_size=by_size, suppressed_rows=suppressed)
