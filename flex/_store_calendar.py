"""PostgreSQL adapter for park calendars (migration 0007, ``dr_calendar_days``; mixed into DrStore)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

import psycopg

from flex._calendar import CalendarDay, CalendarDayKind


class CalendarStoreMixin:
    """A park's own calendar days; needs ``_conn()`` from the host class."""

    def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]:  # pragma: no cover - provided by DrStore
        raise NotImplementedError

    def calendar_days(self, park_id: str) -> list[CalendarDay]:
        """The park's own days, sorted by date."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT day, kind, name FROM dr_calendar_days WHERE park_id = %s ORDER BY day", (park_id,)
            ).fetchall()
        return [CalendarDay(day, CalendarDayKind(kind), name) for day, kind, name in rows]

    def put_calendar_days(self, park_id: str, days: Sequence[CalendarDay], *, merge: bool = False) -> None:
        """Replace the park's days with ``days`` in one transaction (``merge``: upsert only these days)."""
        with self._conn() as conn, conn.transaction():
            if not merge:
                conn.execute("DELETE FROM dr_calendar_days WHERE park_id = %s", (park_id,))
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO dr_calendar_days (park_id, day, kind, name) VALUES (%s, %s, %s, %s)
                       ON CONFLICT (park_id, day) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name,
                           updated_at = now()""",
                    [(park_id, d.day, d.kind.value, d.name) for d in days],
                )

    def clear_calendar_days(self, park_id: str, *, year: int | None = None) -> int:
        """Delete the park's days (of one year, or all); returns how many were deleted."""
        with self._conn() as conn:
            if year is None:
                cur = conn.execute("DELETE FROM dr_calendar_days WHERE park_id = %s", (park_id,))
            else:
                cur = conn.execute(
                    "DELETE FROM dr_calendar_days WHERE park_id = %s AND day >= %s AND day < %s",
                    (park_id, date(year, 1, 1), date(year + 1, 1, 1)),
                )
            return cur.rowcount
