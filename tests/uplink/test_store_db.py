"""The durable queues on the real database: idempotent enqueue, revisions, oldest-first batches, answers."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from schemas.uplink_record import RecordAck
from tests.uplink._support import days, endpoint, record
from uplink._enqueue import enqueue_records, queues
from uplink._store import (
    apply_acks,
    endpoint_status,
    list_rejects,
    mark_failed,
    mark_sent,
    next_batch,
    queued_keys,
    stored_records,
)

pytestmark = pytest.mark.services


def test_enqueue_is_idempotent_and_revisions_requeue_everywhere(database_url: str, park_id: str,
                                                                  db_conn: psycopg.Connection) -> None:
    eps = [endpoint(park_id, "city"), endpoint(park_id, "prov")]
    first = enqueue_records(database_url, eps, "national-json", days(park_id, 3))
    assert (first.new, first.revised, first.unchanged) == (3, 0, 0)
    again = enqueue_records(database_url, eps, "national-json", days(park_id, 3))
    assert (again.new, again.revised, again.unchanged) == (0, 0, 3)
    for ep in eps:
        assert {v[:2] for v in queued_keys(db_conn, ep.name).values()} == {("pending", 1)}

    # the city platform acknowledges everything
    city = eps[0].name
    batch = next_batch(db_conn, city, 10)
    mark_sent(db_conn, city, batch, "u1")
    assert apply_acks(db_conn, city, [RecordAck(r.record_key, r.revision, True) for r in batch]) == (3, 0)
    assert endpoint_status(db_conn, city).backlog == 0

    # late data changes day 2: a new revision, queued again for both endpoints, the old one kept in history
    late = days(park_id, 3)
    late[1] = record(park_id, 2, 555.0)
    report = enqueue_records(database_url, eps, "national-json", late)
    assert (report.new, report.revised, report.unchanged) == (0, 1, 2)
    key = late[1].record_key
    assert queued_keys(db_conn, city)[key] == ("pending", 2, 1)
    assert queued_keys(db_conn, eps[1].name)[key] == ("pending", 2, None)
    hist = db_conn.execute("SELECT revision, value FROM uplink_record_history WHERE record_key = %s",
                           (key,)).fetchall()
    assert hist == [(1, 101.0)]
    resend = next_batch(db_conn, city, 10)
    assert [(r.record_key, r.revision, r.value) for r in resend] == [(key, 2, 555.0)]


def test_batches_are_oldest_first_and_failures_requeue(database_url: str, park_id: str,
                                                        db_conn: psycopg.Connection) -> None:
    ep = endpoint(park_id, "a")
    records = days(park_id, 5)
    enqueue_records(database_url, [ep], "national-json", list(reversed(records)))
    batch = next_batch(db_conn, ep.name, 2)
    assert [r.record_key for r in batch] == [r.record_key for r in records[:2]]
    mark_sent(db_conn, ep.name, batch, "u1")
    mark_failed(db_conn, ep.name, batch, "UplinkTransientError: HTTP 503")
    status = endpoint_status(db_conn, ep.name)
    assert status.backlog == 5
    assert status.oldest_unacked_key == records[0].record_key
    assert status.last_error == "UplinkTransientError: HTTP 503"
    assert [r.record_key for r in next_batch(db_conn, ep.name, 2)] == [r.record_key for r in records[:2]]
    attempts = db_conn.execute("SELECT attempts FROM uplink_deliveries WHERE endpoint = %s AND record_key = %s",
                               (ep.name, records[0].record_key)).fetchone()
    assert attempts == (1,)


def test_reject_keeps_reason_and_never_blocks(database_url: str, park_id: str, db_conn: psycopg.Connection) -> None:
    ep = endpoint(park_id, "a")
    records = days(park_id, 3)
    enqueue_records(database_url, [ep], "national-json", records)
    batch = next_batch(db_conn, ep.name, 10)
    acks = [RecordAck(batch[0].record_key, 1, False, "E102 value out of range"),
            *(RecordAck(r.record_key, 1, True) for r in batch[1:])]
    assert apply_acks(db_conn, ep.name, acks) == (2, 1)
    assert next_batch(db_conn, ep.name, 10) == []
    rejects = list_rejects(db_conn, ep.name)
    assert [(r.record_key, r.reason) for r in rejects] == [(records[0].record_key, "E102 value out of range")]
    status = endpoint_status(db_conn, ep.name)
    assert (status.backlog, status.acked, status.rejected) == (0, 2, 1)
    # a corrected value is a new revision: queued again, the reason cleared
    enqueue_records(database_url, [ep], "national-json", [record(park_id, 1, 42.0)])
    assert queued_keys(db_conn, ep.name)[records[0].record_key][:2] == ("pending", 2)
    assert list_rejects(db_conn, ep.name) == []


def test_ack_of_an_older_revision_keeps_the_newer_queued(database_url: str, park_id: str,
                                                         db_conn: psycopg.Connection) -> None:
    ep = endpoint(park_id, "a")
    enqueue_records(database_url, [ep], "national-json", [record(park_id, 1, 1.0)])
    sent = next_batch(db_conn, ep.name, 10)
    mark_sent(db_conn, ep.name, sent, "u1")
    enqueue_records(database_url, [ep], "national-json", [record(park_id, 1, 2.0)])   # revised while in flight
    apply_acks(db_conn, ep.name, [RecordAck(sent[0].record_key, 1, True)])
    assert queued_keys(db_conn, ep.name)[sent[0].record_key] == ("pending", 2, 1)


def test_new_endpoint_gets_existing_records_and_periods_follow_interval(database_url: str, park_id: str,
                                                                        db_conn: psycopg.Connection) -> None:
    first = endpoint(park_id, "a")
    recs = [*days(park_id, 2), record(park_id, 1, 3.0, period="15min"), record(park_id, 1, 4.0, period="hour")]
    enqueue_records(database_url, [first], "national-json", recs)
    hourly = endpoint(park_id, "b", interval=60)
    report = enqueue_records(database_url, [first, hourly], "national-json", recs)
    assert report.unchanged == 4
    assert len(queued_keys(db_conn, first.name)) == 4
    assert sorted(k.split("|")[2] for k in queued_keys(db_conn, hourly.name)) == ["day", "day", "hour"]
    assert [q.periods for q in queues([hourly])] == [("hour", "day", "month")]


def test_stored_records_for_export(database_url: str, park_id: str, db_conn: psycopg.Connection) -> None:
    ep = endpoint(park_id, "a")
    enqueue_records(database_url, [ep], "national-json", days(park_id, 10))
    got = stored_records(db_conn, "national-json", park_id, start=date(2026, 11, 3), end=date(2026, 11, 6),
                         timezone="Asia/Shanghai")
    assert [r.period_start.day for r in got] == [3, 4, 5]
    assert [r.value for r in got] == [102.0, 103.0, 104.0]
