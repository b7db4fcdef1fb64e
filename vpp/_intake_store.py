"""PostgreSQL adapter of the event intake (migration 0014): events in force, every version, park policies.

Thin on purpose: the decisions live in :mod:`vpp._intake_policy` and :mod:`vpp._intake`. One intake call
runs in one transaction under a transaction-scoped advisory lock on the event's key, so two deliveries of
the same event (a VTN retry racing a poll) are serialised and the second one sees the first's result.
The flex DR event (``dr_events``, migration 0003) is written in the same transaction, so an event is
either recorded everywhere or nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from flex import DrEvent
from vpp._event_model import IncomingEvent, IntakeAction
from vpp._intake_policy import Decision, IntakePolicy
from vpp.errors import IntakeError

_EVENT_COLUMNS: Final = """source, vtn_id, vtn_event_id, dr_event_id, park_id, modification_number, vtn_status,
    action, opt, opt_reason, signal_name, signal_kind, direction, requested_kw, committed_kw, start_at, end_at,
    program_id, intervals, report_request, first_received_at, received_at, updated_at"""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event's version in force, as stored in ``vpp_events``."""

    source: str
    vtn_id: str
    vtn_event_id: str
    dr_event_id: str
    park_id: str
    modification_number: int
    vtn_status: str
    action: str
    opt: str
    opt_reason: str | None
    signal_name: str
    signal_kind: str
    direction: str
    requested_kw: float
    committed_kw: float
    start: datetime | None
    end: datetime | None
    program_id: str | None
    intervals: list[dict[str, Any]]
    report_request: dict[str, Any] | None
    first_received_at: datetime
    received_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict (ISO timestamps) for the CLI and the API."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One received version (``vpp_event_versions``)."""

    version_id: int
    modification_number: int
    received_at: datetime
    action: str
    opt: str | None
    opt_reason: str | None
    raw: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"version_id": self.version_id, "modification_number": self.modification_number,
                "received_at": self.received_at.isoformat(), "action": self.action, "opt": self.opt,
                "opt_reason": self.opt_reason, "raw": self.raw}


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    values = list(row)
    values[18] = list(values[18] or [])
    return StoredEvent(*values)


def _json_safe(raw: Mapping[str, Any]) -> Any:
    """The raw payload as JSON (datetimes and other objects as strings)."""
    return json.loads(json.dumps(dict(raw), default=str))


def intervals_json(event: IncomingEvent, interval_kw: tuple[float, ...] = ()) -> list[dict[str, Any]]:
    """The event's intervals as stored in ``vpp_events.intervals`` (``kw``: what each asks for, when decided)."""
    kws: list[float | None] = [*interval_kw, *([None] * (len(event.intervals) - len(interval_kw)))]
    return [{"start": i.start.isoformat(), "duration_s": i.duration.total_seconds(), "value": i.value,
             "unit": i.unit, "kw": kw} for i, kw in zip(event.intervals, kws, strict=False)]


class IntakeTransaction:
    """The intake's view of one locked transaction on one event key."""

    def __init__(self, conn: psycopg.Connection[Any], event: IncomingEvent) -> None:
        self._conn = conn
        self._event = event

    def current(self) -> StoredEvent | None:
        """The stored version in force of this event, or None for a first delivery."""
        row = self._conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM vpp_events WHERE source = %s AND vtn_id = %s AND vtn_event_id = %s",
            self._event.key,
        ).fetchone()
        return _stored(row) if row else None

    def save(self, dr_event_id: str, action: IntakeAction, decision: Decision, first_received_at: datetime) -> None:
        """Insert or replace the version in force."""
        e = self._event
        report = None if e.report_request is None else {
            "interval_s": e.report_request.interval.total_seconds(), "kinds": [k.value for k in e.report_request.kinds]}
        self._conn.execute(
            f"""INSERT INTO vpp_events ({_EVENT_COLUMNS})
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (source, vtn_id, vtn_event_id) DO UPDATE SET
                    park_id = EXCLUDED.park_id, modification_number = EXCLUDED.modification_number,
                    vtn_status = EXCLUDED.vtn_status, action = EXCLUDED.action, opt = EXCLUDED.opt,
                    opt_reason = EXCLUDED.opt_reason, signal_name = EXCLUDED.signal_name,
                    signal_kind = EXCLUDED.signal_kind, direction = EXCLUDED.direction,
                    requested_kw = EXCLUDED.requested_kw, committed_kw = EXCLUDED.committed_kw,
                    start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at, program_id = EXCLUDED.program_id,
                    intervals = EXCLUDED.intervals, report_request = EXCLUDED.report_request,
                    received_at = EXCLUDED.received_at, updated_at = now()""",
            (*e.key, dr_event_id, e.park_id, e.modification_number, e.status.value, action.value,
             decision.opt.value, decision.reason, e.signal_name, e.signal_kind.value, decision.direction.value,
             decision.requested_kw, decision.committed_kw, e.start, e.end, e.program_id,
             Jsonb(intervals_json(e, decision.interval_kw)), Jsonb(report) if report else None, first_received_at,
             e.received_at),
        )

    def add_version(self, action: IntakeAction, decision: Decision | None) -> None:
        """Record this delivery (raw payload) with what the intake did with it."""
        e = self._event
        self._conn.execute(
            """INSERT INTO vpp_event_versions (source, vtn_id, vtn_event_id, modification_number, received_at,
                   action, opt, opt_reason, raw) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (*e.key, e.modification_number, e.received_at, action.value,
             decision.opt.value if decision else None, decision.reason if decision else None,
             Jsonb(_json_safe(e.raw))),
        )

    def dr_event_exists(self, dr_event_id: str) -> bool:
        """True when the flex DR event exists."""
        return self._conn.execute("SELECT 1 FROM dr_events WHERE event_id = %s", (dr_event_id,)).fetchone() is not None

    def create_dr_event(self, event: DrEvent) -> None:
        """Insert the flex DR event (status registered)."""
        self._conn.execute(
            """INSERT INTO dr_events (event_id, park_id, start_at, end_at, direction, requested_kw, declared_kw,
                   baseline_method, baseline_overrides, notified_at, source, program_id, status)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'registered')""",
            (event.event_id, event.park_id, event.start, event.end, event.direction.value, event.requested_kw,
             event.declared_kw, event.baseline_method, Jsonb(dict(event.baseline_overrides)), event.notified_at,
             event.source, event.program_id),
        )

    def update_dr_event(self, event: DrEvent) -> None:
        """Apply a modification: window, direction, kW (baseline method and notification stay as registered)."""
        self._conn.execute(
            """UPDATE dr_events SET start_at = %s, end_at = %s, direction = %s, requested_kw = %s, declared_kw = %s,
                   program_id = %s, status = 'registered' WHERE event_id = %s""",
            (event.start, event.end, event.direction.value, event.requested_kw, event.declared_kw,
             event.program_id, event.event_id),
        )

    def cancel_dr_event(self, dr_event_id: str) -> None:
        """Mark the flex DR event cancelled (kept for the record; M&V skips it)."""
        self._conn.execute("UPDATE dr_events SET status = 'cancelled' WHERE event_id = %s", (dr_event_id,))


class IntakeStore:
    """Intake persistence over a small connection pool."""

    def __init__(self, conninfo: str, *, max_size: int = 4) -> None:
        """Open a pool to ``conninfo`` (migrated with ``parkpulse db migrate``)."""
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": True},
            name="parkpulse-vpp-intake",
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except psycopg.OperationalError as exc:  # pragma: no cover - depends on the environment
            raise IntakeError(f"cannot reach the database: {exc}; start it with `make services`") from exc

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()

    def __enter__(self) -> IntakeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self, event: IncomingEvent) -> Iterator[IntakeTransaction]:
        """One transaction holding the advisory lock of ``event``'s key; commits when the block exits cleanly."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 14))", ("\x1f".join(event.key),))
            yield IntakeTransaction(conn, event)

    def get(self, dr_event_id: str) -> StoredEvent | None:
        """One event by its ParkPulse id."""
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM vpp_events WHERE dr_event_id = %s",
                               (dr_event_id,)).fetchone()
        return _stored(row) if row else None

    def list_events(
        self, park_id: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[StoredEvent], int]:
        """Events (of one park, or all), latest start first, and the total count."""
        where = "WHERE park_id = %(park)s" if park_id else ""
        params = {"park": park_id, "limit": limit, "offset": offset}
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"""SELECT {_EVENT_COLUMNS} FROM vpp_events {where}
                    ORDER BY start_at DESC NULLS LAST, received_at DESC LIMIT %(limit)s OFFSET %(offset)s""",
                params,
            ).fetchall()
            total = conn.execute(f"SELECT count(*) FROM vpp_events {where}", params).fetchone()
        return [_stored(r) for r in rows], int(total[0]) if total else 0

    def versions(self, dr_event_id: str) -> list[StoredVersion]:
        """Every version received of one event, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                """SELECT v.version_id, v.modification_number, v.received_at, v.action, v.opt, v.opt_reason, v.raw
                   FROM vpp_event_versions v JOIN vpp_events e USING (source, vtn_id, vtn_event_id)
                   WHERE e.dr_event_id = %s ORDER BY v.version_id""",
                (dr_event_id,),
            ).fetchall()
        return [StoredVersion(*r) for r in rows]

    def get_policy(self, park_id: str) -> IntakePolicy | None:
        """The park's stored intake policy, or None (defaults apply)."""
        with self._pool.connection() as conn:
            row = conn.execute("SELECT policy FROM vpp_intake_policies WHERE park_id = %s", (park_id,)).fetchone()
        return IntakePolicy.model_validate(row[0]) if row else None

    def put_policy(self, park_id: str, policy: IntakePolicy) -> None:
        """Create or replace the park's intake policy."""
        with self._pool.connection() as conn:
            try:
                conn.execute(
                    """INSERT INTO vpp_intake_policies (park_id, policy) VALUES (%s, %s)
                       ON CONFLICT (park_id) DO UPDATE SET policy = EXCLUDED.policy, updated_at = now()""",
                    (park_id, Jsonb(policy.model_dump(mode="json"))),
                )
            except psycopg.errors.ForeignKeyViolation:
                raise IntakeError(f"park {park_id!r} does not exist: register it first") from None
