"""The durable per-endpoint queues (migration 0013): records, their revisions, and delivery state.

* :func:`upsert_records` is the idempotent enqueue. A record whose value and quality are unchanged does
  nothing; a changed one moves the old revision to ``uplink_record_history``, bumps ``revision`` and puts
  it back to ``pending`` for every endpoint; a new endpoint gets every existing record of its park.
* :func:`next_batch` hands the worker the oldest pending records first (back-fill after an outage drains in
  period order), :func:`mark_sent` / :func:`mark_failed` / :func:`apply_acks` record each attempt. A reject
  keeps the platform's reason and leaves the row out of the queue, so it never blocks it.

Nothing here prunes: records are retained (>= 6 months, as the specification asks) for export.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from schemas.uplink_record import Period, RecordAck, UplinkRecord
from uplink._keys import parse_record_key

#: A recomputed value counts as changed beyond float noise (summation order), or when its quality changed.
_CHANGED = "(abs(u.value - i.value) > 1e-9 * greatest(1.0, abs(u.value)) OR u.quality <> i.quality)"


@dataclass(frozen=True, slots=True)
class EndpointQueue:
    """What the store needs to know about an endpoint: its name, profile, park and record periods."""

    name: str
    profile: str
    park: str
    periods: tuple[Period, ...]


@dataclass(frozen=True, slots=True)
class EnqueueReport:
    """What one enqueue did: records new, revised (value changed) and unchanged."""

    new: int = 0
    revised: int = 0
    unchanged: int = 0

    def __add__(self, other: EnqueueReport) -> EnqueueReport:
        return EnqueueReport(self.new + other.new, self.revised + other.revised, self.unchanged + other.unchanged)


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint's queue at a glance."""

    endpoint: str
    backlog: int
    acked: int
    rejected: int
    last_acked_key: str | None
    last_acked_at: datetime | None
    oldest_unacked_key: str | None
    oldest_unacked_start: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class RejectRow:
    """A record the platform rejected, with its reason."""

    endpoint: str
    record_key: str
    revision: int
    reason: str | None
    rejected_at: datetime | None
    attempts: int


def record_to_json(record: UplinkRecord) -> dict[str, Any]:
    """The record as a JSON object (ISO date-times, lists), without its revision (the column holds it)."""
    out = asdict(record)
    out.pop("revision")
    out["period_start"] = record.period_start.isoformat()
    out["computed_at"] = record.computed_at.isoformat()
    out["meter_codes"] = list(record.meter_codes)
    return out


def record_from_json(data: dict[str, Any], revision: int) -> UplinkRecord:
    """The record stored by :func:`record_to_json`, at ``revision``."""
    return UplinkRecord(
        enterprise_code=data["enterprise_code"], record_key=data["record_key"], revision=revision,
        data_item_code=data["data_item_code"], period=data["period"],
        period_start=datetime.fromisoformat(data["period_start"]), value=float(data["value"]), unit=data["unit"],
        quality=data["quality"], completeness=float(data["completeness"]), meter_codes=tuple(data["meter_codes"]),
        computed_at=datetime.fromisoformat(data["computed_at"]))


def upsert_records(conn: psycopg.Connection[Any], profile: str, records: Sequence[UplinkRecord],
                   endpoints: Sequence[EndpointQueue]) -> EnqueueReport:
    """Store ``records`` of ``profile`` and queue them for ``endpoints`` (those of the same profile and park)."""
    if not records:
        return EnqueueReport()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS pg_temp.uplink_incoming")  # inside an outer transaction it outlives us
        cur.execute("""CREATE TEMP TABLE uplink_incoming (
                           record_key text PRIMARY KEY, park_id text, data_item_code text, period text,
                           period_start timestamptz, value double precision, quality text, completeness real,
                           payload jsonb, computed_at timestamptz) ON COMMIT DROP""")
        with cur.copy("COPY uplink_incoming FROM STDIN") as cp:
            seen: set[str] = set()
            for r in records:
                if r.record_key in seen:
                    continue
                seen.add(r.record_key)
                park = parse_record_key(r.record_key).park_id
                cp.write_row((r.record_key, park, r.data_item_code, r.period, r.period_start, r.value, r.quality,
                              r.completeness, json.dumps(record_to_json(r), ensure_ascii=False), r.computed_at))
        cur.execute(f"""INSERT INTO uplink_record_history (profile, record_key, revision, value, payload, computed_at)
                       SELECT u.profile, u.record_key, u.revision, u.value, u.payload, u.computed_at
                       FROM uplink_records u JOIN uplink_incoming i USING (record_key)
                       WHERE u.profile = %s AND {_CHANGED}
                       ON CONFLICT DO NOTHING""", (profile,))
        cur.execute(f"""UPDATE uplink_records u SET revision = u.revision + 1, value = i.value, quality = i.quality,
                              completeness = i.completeness, payload = i.payload, computed_at = i.computed_at
                       FROM uplink_incoming i
                       WHERE u.profile = %s AND u.record_key = i.record_key
                         AND {_CHANGED}""", (profile,))
        revised = cur.rowcount
        cur.execute("""INSERT INTO uplink_records (profile, record_key, park_id, data_item_code, period, period_start,
                                                   revision, value, quality, completeness, payload, computed_at)
                       SELECT %s, record_key, park_id, data_item_code, period, period_start, 1, value, quality,
                              completeness, payload, computed_at FROM uplink_incoming
                       ON CONFLICT (profile, record_key) DO NOTHING""", (profile,))
        new = cur.rowcount
        for ep in endpoints:
            if ep.profile != profile:
                continue
            cur.execute("""INSERT INTO uplink_deliveries (endpoint, profile, record_key, period_start, revision, state)
                           SELECT %s, u.profile, u.record_key, u.period_start, u.revision, 'pending'
                           FROM uplink_records u JOIN uplink_incoming i USING (record_key)
                           WHERE u.profile = %s AND u.park_id = %s AND u.period = ANY(%s)
                           ON CONFLICT (endpoint, record_key) DO UPDATE
                             SET revision = EXCLUDED.revision, state = 'pending', attempts = 0, last_error = NULL,
                                 platform_reason = NULL, enqueued_at = now()
                             WHERE uplink_deliveries.revision < EXCLUDED.revision""",
                        (ep.name, profile, ep.park, list(ep.periods)))
    return EnqueueReport(new, revised, len(seen) - new - revised)


#: First key of the two-key advisory locks that give one delivery process an endpoint (the second is its name's hash).
_DELIVERY_LOCK_SPACE = 0x55504C4B  # "UPLK"


def try_lock_endpoint(conn: psycopg.Connection[Any], endpoint: str) -> bool:
    """Take the session's delivery lock of ``endpoint``; False when another process holds it.

    Two ``uplink run`` processes serving one endpoint would send the same batch twice and race on its
    acknowledgements; the lock makes the second one wait. It is a session lock, so it dies with a crashed
    process's connection.
    """
    row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_DELIVERY_LOCK_SPACE, endpoint)).fetchone()
    return bool(row and row[0])


def unlock_endpoint(conn: psycopg.Connection[Any], endpoint: str) -> None:
    """Release the delivery lock taken by :func:`try_lock_endpoint` on this session."""
    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_DELIVERY_LOCK_SPACE, endpoint))


def next_batch(conn: psycopg.Connection[Any], endpoint: str, limit: int) -> list[UplinkRecord]:
    """The oldest ``limit`` records waiting for ``endpoint`` (pending, or sent without an answer)."""
    rows = conn.execute(
        """SELECT u.payload, u.revision FROM uplink_deliveries d
           JOIN uplink_records u ON u.profile = d.profile AND u.record_key = d.record_key
           WHERE d.endpoint = %s AND d.state IN ('pending', 'sent')
           ORDER BY d.period_start, d.record_key LIMIT %s""", (endpoint, limit)).fetchall()
    return [record_from_json(payload, int(rev)) for payload, rev in rows]


def mark_sent(conn: psycopg.Connection[Any], endpoint: str, records: Sequence[UplinkRecord], upload_id: str) -> None:
    """Record an attempt: ``sent``, attempts + 1, the batch's upload id."""
    conn.execute("""UPDATE uplink_deliveries SET state = 'sent', attempts = attempts + 1, upload_id = %s,
                           last_attempt_at = now()
                    WHERE endpoint = %s AND record_key = ANY(%s) AND state IN ('pending', 'sent')""",
                 (upload_id, endpoint, [r.record_key for r in records]))


def mark_failed(conn: psycopg.Connection[Any], endpoint: str, records: Sequence[UplinkRecord], error: str) -> None:
    """The attempt failed in transport (5xx, timeout, connection): back to ``pending`` with the error."""
    conn.execute("""UPDATE uplink_deliveries SET state = 'pending', last_error = %s
                    WHERE endpoint = %s AND record_key = ANY(%s) AND state = 'sent'""",
                 (error[:2000], endpoint, [r.record_key for r in records]))


def apply_acks(conn: psycopg.Connection[Any], endpoint: str, acks: Sequence[RecordAck]) -> tuple[int, int]:
    """Apply the platform's answers; returns (acknowledged, rejected).

    An answer counts for the revision it names: when the record was revised meanwhile, the newer revision
    stays queued (only ``acked_revision`` moves on).
    """
    acked = rejected = 0
    with conn.transaction(), conn.cursor() as cur:
        for ack in acks:
            if ack.accepted:
                cur.execute("""UPDATE uplink_deliveries SET acked_revision = GREATEST(COALESCE(acked_revision, 0), %s),
                                      acked_at = now(), last_error = NULL,
                                      state = CASE WHEN revision = %s THEN 'acked' ELSE state END
                               WHERE endpoint = %s AND record_key = %s AND revision >= %s""",
                            (ack.revision, ack.revision, endpoint, ack.record_key, ack.revision))
                acked += cur.rowcount
            else:
                cur.execute("""UPDATE uplink_deliveries SET state = 'rejected', platform_reason = %s,
                                      rejected_at = now()
                               WHERE endpoint = %s AND record_key = %s AND revision = %s""",
                            ((ack.reason or "rejected without a reason")[:2000], endpoint, ack.record_key,
                             ack.revision))
                rejected += cur.rowcount
    return acked, rejected


def endpoint_status(conn: psycopg.Connection[Any], endpoint: str) -> EndpointStatus:
    """Backlog, acknowledged and rejected counts, the last acknowledged and the oldest unacknowledged record."""
    counts = dict(conn.execute("""SELECT state, count(*) FROM uplink_deliveries WHERE endpoint = %s GROUP BY state""",
                               (endpoint,)).fetchall())
    last = conn.execute("""SELECT record_key, acked_at FROM uplink_deliveries WHERE endpoint = %s
                           AND acked_at IS NOT NULL ORDER BY acked_at DESC, period_start DESC LIMIT 1""",
                        (endpoint,)).fetchone()
    oldest = conn.execute("""SELECT record_key, period_start, last_error FROM uplink_deliveries
                             WHERE endpoint = %s AND state IN ('pending', 'sent')
                             ORDER BY period_start, record_key LIMIT 1""", (endpoint,)).fetchone()
    error = conn.execute("""SELECT last_error FROM uplink_deliveries WHERE endpoint = %s AND last_error IS NOT NULL
                            AND state IN ('pending', 'sent') ORDER BY last_attempt_at DESC NULLS LAST LIMIT 1""",
                         (endpoint,)).fetchone()
    return EndpointStatus(
        endpoint, int(counts.get("pending", 0)) + int(counts.get("sent", 0)), int(counts.get("acked", 0)),
        int(counts.get("rejected", 0)), last[0] if last else None, last[1] if last else None,
        oldest[0] if oldest else None, oldest[1] if oldest else None, error[0] if error else None)


def list_rejects(conn: psycopg.Connection[Any], endpoint: str | None = None, limit: int = 100) -> list[RejectRow]:
    """Rejected records, newest first, with the platform's reasons."""
    rows = conn.execute("""SELECT endpoint, record_key, revision, platform_reason, rejected_at, attempts
                           FROM uplink_deliveries WHERE state = 'rejected' AND (%s::text IS NULL OR endpoint = %s)
                           ORDER BY rejected_at DESC NULLS LAST, record_key LIMIT %s""",
                        (endpoint, endpoint, limit)).fetchall()
    return [RejectRow(*r) for r in rows]


def stored_records(conn: psycopg.Connection[Any], profile: str, park: str, *, start: date, end: date,
                   timezone: str, periods: Sequence[Period] | None = None) -> list[UplinkRecord]:
    """The retained records (latest revision) of ``park`` and ``profile`` starting in local ``[start, end)``."""
    rows = conn.execute(
        """SELECT payload, revision FROM uplink_records
           WHERE profile = %s AND park_id = %s AND period = ANY(%s)
             AND (period_start AT TIME ZONE %s)::date >= %s AND (period_start AT TIME ZONE %s)::date < %s
           ORDER BY period_start, record_key""",
        (profile, park, list(periods or ("15min", "hour", "day", "month")), timezone, start, timezone, end)).fetchall()
    return [record_from_json(p, int(r)) for p, r in rows]


def queued_keys(conn: psycopg.Connection[Any], endpoint: str) -> dict[str, tuple[str, int, int | None]]:
    """record_key → (state, revision, acked revision) for one endpoint (tests and the status detail)."""
    rows = conn.execute("SELECT record_key, state, revision, acked_revision FROM uplink_deliveries WHERE endpoint = %s",
                        (endpoint,)).fetchall()
    return {k: (s, int(r), a) for k, s, r, a in rows}


__all__ = ["EndpointQueue", "EndpointStatus", "EnqueueReport", "RejectRow", "apply_acks", "endpoint_status",
           "list_rejects", "mark_failed", "mark_sent", "next_batch", "queued_keys", "record_from_json",
           "record_to_json", "stored_records", "upsert_records"]
