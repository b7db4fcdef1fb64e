"""PostgreSQL adapter for DR events, their M&V results and the capacity history (mixed into DrStore)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from flex._capacity import DrCapacity, EventRecord
from flex._direction import Direction
from flex._records import INTERVAL_SCHEMA, DrEvent, EventResult
from flex.errors import InvalidEventError

_EVENT_COLUMNS = """event_id, park_id, start_at, end_at, direction, requested_kw, declared_kw, baseline_method,
    baseline_overrides, notified_at, source, program_id, status, created_at"""
_CAPACITY_COLUMNS = """computed_at, direction, duration_h, declared_kw, verified_kw, verified_event_id, n_events,
    derating_factor, annual_max_demand_kw, annual_max_demand_at, declared_pct, verified_pct"""


def _event(row: tuple[Any, ...]) -> DrEvent:
    return DrEvent(
        event_id=row[0], park_id=row[1], start=row[2], end=row[3], direction=Direction(row[4]),
        requested_kw=row[5], declared_kw=row[6], baseline_method=row[7], baseline_overrides=dict(row[8] or {}),
        notified_at=row[9], source=row[10], program_id=row[11], status=row[12], created_at=row[13],
    )


def _capacity(row: tuple[Any, ...], target_min: float, target_max: float) -> DrCapacity:
    return DrCapacity(
        as_of=row[0], direction=Direction(row[1]), duration_h=row[2], declared_kw=row[3], verified_kw=row[4],
        verified_event_id=row[5], n_events=row[6], derating_factor=row[7], annual_max_demand_kw=row[8],
        annual_max_demand_at=row[9], declared_pct=row[10], verified_pct=row[11],
        target_pct_min=target_min, target_pct_max=target_max,
    )


class EventStoreMixin:
    """Event, result and capacity persistence; needs ``_conn()`` from the host class."""

    capacity_target_pct: tuple[float, float] = (3.0, 5.0)

    def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]:  # pragma: no cover - provided by DrStore
        raise NotImplementedError

    def create_event(self, event: DrEvent) -> DrEvent:
        """Insert a new event; a duplicate id raises :class:`InvalidEventError`."""
        with self._conn() as conn:
            try:
                row = conn.execute(
                    f"""INSERT INTO dr_events (event_id, park_id, start_at, end_at, direction, requested_kw,
                            declared_kw, baseline_method, baseline_overrides, notified_at, source, program_id, status)
                        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_EVENT_COLUMNS}""",
                    (event.event_id, event.park_id, event.start, event.end, event.direction.value, event.requested_kw,
                     event.declared_kw, event.baseline_method, Jsonb(dict(event.baseline_overrides)),
                     event.notified_at, event.source, event.program_id, event.status),
                ).fetchone()
            except psycopg.errors.UniqueViolation:
                raise InvalidEventError(f"event {event.event_id!r} already exists") from None
            except psycopg.errors.ForeignKeyViolation:
                raise InvalidEventError(f"park {event.park_id!r} does not exist") from None
        assert row is not None
        return _event(row)

    def get_event(self, event_id: str) -> DrEvent | None:
        """One event or None."""
        with self._conn() as conn:
            row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM dr_events WHERE event_id = %s", (event_id,)).fetchone()
        return _event(row) if row else None

    def list_events(
        self, park_id: str, *, start: datetime | None, end: datetime | None, limit: int, offset: int,
        direction: Direction | None = None,
    ) -> tuple[list[DrEvent], int]:
        """Events overlapping [start, end) (optionally of one direction), newest first, with the total count."""
        where = """park_id = %(park)s AND (%(start)s::timestamptz IS NULL OR end_at > %(start)s)
                   AND (%(end)s::timestamptz IS NULL OR start_at < %(end)s)
                   AND (%(direction)s::text IS NULL OR direction = %(direction)s)"""
        params = {"park": park_id, "start": start, "end": end, "limit": limit, "offset": offset,
                  "direction": direction.value if direction is not None else None}
        with self._conn() as conn:
            rows = conn.execute(
                f"""SELECT {_EVENT_COLUMNS} FROM dr_events WHERE {where}
                    ORDER BY start_at DESC, event_id LIMIT %(limit)s OFFSET %(offset)s""",
                params,
            ).fetchall()
            total_row = conn.execute(f"SELECT count(*) FROM dr_events WHERE {where}", params).fetchone()
        return [_event(r) for r in rows], int(total_row[0]) if total_row else 0

    def save_result(self, result: EventResult, intervals: pl.DataFrame) -> None:
        """Replace the event's result and interval table and mark it evaluated, in one transaction."""
        with self._conn() as conn, conn.transaction():
            conn.execute("DELETE FROM dr_event_results WHERE event_id = %s", (result.event_id,))
            conn.execute("DELETE FROM dr_event_intervals WHERE event_id = %s", (result.event_id,))
            conn.execute(
                """INSERT INTO dr_event_results (event_id, evaluated_at, baseline_method, baseline_params,
                       delivered_kwh, duration_h, avg_reduction_kw, min_reduction_kw, max_reduction_kw,
                       ratio_requested, ratio_declared, band, estimated_share_event, estimated_share_baseline,
                       missing_intervals, quality_ok, quality_reasons, baseline_days, adjustment, warnings)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (result.event_id, result.evaluated_at, result.baseline_method, Jsonb(dict(result.baseline_params)),
                 result.delivered_kwh, result.duration_h, result.avg_reduction_kw, result.min_reduction_kw,
                 result.max_reduction_kw, result.ratio_requested, result.ratio_declared, result.band,
                 result.estimated_share_event, result.estimated_share_baseline, result.missing_intervals,
                 result.quality_ok, list(result.quality_reasons), list(result.baseline_days),
                 Jsonb(dict(result.adjustment)), list(result.warnings)),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO dr_event_intervals (event_id, ts, baseline_kw, baseline_unadjusted_kw, actual_kw,
                           reduction_kw, estimated_share) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
                    [(result.event_id, *row) for row in intervals.select(list(INTERVAL_SCHEMA)).iter_rows()],
                )
            conn.execute("UPDATE dr_events SET status = 'evaluated' WHERE event_id = %s", (result.event_id,))

    def get_result(self, event_id: str) -> EventResult | None:
        """The stored evaluation or None."""
        with self._conn() as conn:
            row = conn.execute(
                """SELECT event_id, evaluated_at, baseline_method, baseline_params, delivered_kwh, duration_h,
                          avg_reduction_kw, min_reduction_kw, max_reduction_kw, ratio_requested, ratio_declared,
                          band, estimated_share_event, estimated_share_baseline, missing_intervals, quality_ok,
                          quality_reasons, baseline_days, adjustment, warnings
                   FROM dr_event_results WHERE event_id = %s""",
                (event_id,),
            ).fetchone()
        if row is None:
            return None
        values = list(row)
        for i in (16, 17, 19):
            values[i] = tuple(values[i] or ())
        values[3], values[18] = dict(values[3] or {}), dict(values[18] or {})
        return EventResult(*values)

    def get_intervals(self, event_id: str) -> pl.DataFrame:
        """The per-interval M&V table (empty when not evaluated)."""
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT ts, baseline_kw, baseline_unadjusted_kw, actual_kw, reduction_kw, estimated_share
                   FROM dr_event_intervals WHERE event_id = %s ORDER BY ts""",
                (event_id,),
            ).fetchall()
        return pl.DataFrame([(r[0].astimezone(UTC), *r[1:]) for r in rows], schema=INTERVAL_SCHEMA, orient="row")

    def event_records(self, park_id: str) -> list[EventRecord]:
        """Evaluated events of the park in capacity form, oldest first."""
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT e.event_id, e.start_at, r.duration_h, e.direction, e.requested_kw, e.declared_kw,
                          r.avg_reduction_kw, r.quality_ok
                   FROM dr_events e JOIN dr_event_results r ON r.event_id = e.event_id
                   WHERE e.park_id = %s AND e.status = 'evaluated' ORDER BY e.start_at""",
                (park_id,),
            ).fetchall()
        return [EventRecord(r[0], r[1], r[2], Direction(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def save_capacity(self, park_id: str, capacities: Sequence[DrCapacity]) -> None:
        """Append capacity computations (idempotent per computed_at, direction, duration)."""
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(
                f"""INSERT INTO dr_capacity_history (park_id, {_CAPACITY_COLUMNS})
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (park_id, computed_at, direction, duration_h) DO NOTHING""",
                [(park_id, c.as_of, c.direction.value, c.duration_h, c.declared_kw, c.verified_kw,
                  c.verified_event_id, c.n_events, c.derating_factor, c.annual_max_demand_kw,
                  c.annual_max_demand_at, c.declared_pct, c.verified_pct) for c in capacities],
            )

    def capacity_history(
        self, park_id: str, *, start: datetime | None, end: datetime | None, limit: int, offset: int
    ) -> tuple[list[DrCapacity], int]:
        """Capacity computations in [start, end), newest first, with the total count."""
        where = """park_id = %(park)s AND (%(start)s::timestamptz IS NULL OR computed_at >= %(start)s)
                   AND (%(end)s::timestamptz IS NULL OR computed_at < %(end)s)"""
        params = {"park": park_id, "start": start, "end": end, "limit": limit, "offset": offset}
        with self._conn() as conn:
            rows = conn.execute(
                f"""SELECT {_CAPACITY_COLUMNS} FROM dr_capacity_history WHERE {where}
                    ORDER BY computed_at DESC, direction, duration_h LIMIT %(limit)s OFFSET %(offset)s""",
                params,
            ).fetchall()
            total_row = conn.execute(f"SELECT count(*) FROM dr_capacity_history WHERE {where}", params).fetchone()
        lo, hi = self.capacity_target_pct
        return [_capacity(r, lo, hi) for r in rows], int(total_row[0]) if total_row else 0

