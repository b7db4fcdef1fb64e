"""Quarantine reasons sent back to the device on ``parkpulse/v1/{park}/{device}/errors``.

The rate limit and the queueing are checked on their own; then a real ingest instance on the real
broker and database tells a device what was wrong, holds a flood to the rate limit (and accounts for every
reject it did not send), and stores the data whatever happens to the feedback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import pytest

from infra.settings import parse_mqtt_url
from ingest import IngestService
from ingest._batch import Batch, QuarantineRecord
from ingest._feedback import FeedbackLimiter, FeedbackPublisher
from ingest._metrics import IngestMetrics
from schemas import build_topic
from schemas.feedback import decode_feedback, hint_for
from schemas.topics import feedback_topic
from tests.ingest.helpers import (
    count_quarantine,
    count_readings,
    ingest_settings,
    minute_floor,
    publish,
    readings_payload,
    utcnow,
    wait_until,
)

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


# --- the rate limit (pure) ------------------------------------------------------------------------------------

def test_limiter_allows_a_burst_then_one_per_interval_and_reports_what_it_held_back():
    limiter = FeedbackLimiter(interval_s=10.0, burst=3)
    at_zero = [limiter.admit("p", "d", 0.0) for _ in range(5)]
    assert at_zero == [0, 0, 0, None, None]
    assert limiter.admit("p", "d", 9.0) is None          # 0.9 of a token back: still over
    assert limiter.admit("p", "d", 10.5) == 3            # one token back; carries the 3 held back
    assert limiter.admit("p", "d", 10.6) is None
    assert limiter.admit("p", "other", 10.6) == 0        # devices do not share a bucket
    limiter.note_suppressed("p", "d", 40, 11.0)          # rejects the quarantine only counted
    assert limiter.admit("p", "d", 60.0) == 41
    assert limiter.admit("p", "d", 60.0) == 0            # refilled to the burst, not beyond it
    assert limiter.admit("p", "d", 60.0) == 0
    assert limiter.admit("p", "d", 60.0) is None


def test_limiter_forgets_idle_devices():
    limiter = FeedbackLimiter(interval_s=10.0, burst=3)
    for i in range(50):
        limiter.admit("p", f"d{i}", 0.0)
    assert len(limiter) == 50
    limiter.admit("p", "late", 4000.0)
    assert len(limiter) == 1


# --- offering and publishing (no broker) ---------------------------------------------------------------------

def _record(topic: str, reason: str = "invalid_json", source: str = "mqtt") -> QuarantineRecord:
    return QuarantineRecord(topic=topic, park_id=None, device_id=None, reason=reason, detail="byte 3: bad",
                            n_rejected=1, n_accepted=0, raw=b"{", received_at=NOW, source=source)


def test_offer_skips_records_without_a_device_and_import_records():
    publisher = FeedbackPublisher(IngestMetrics(), clock=lambda: 0.0)
    batch = Batch()
    batch.quarantine.extend([
        _record("parkpulse/v1/park-a/m-1/readings"),
        _record("parkpulse/v1/park-a/BAD DEVICE/readings", reason="invalid_topic"),
        _record("elsewhere/entirely"),
        _record("parkpulse/v1/park-a/m-2/readings", source="import"),
        _record("parkpulse/v1/park-a/m-3/birth", reason="unregistered"),
    ])
    publisher.offer(batch, [11, 12, 13, 14, 15])
    queued = [publisher.queue.get_nowait() for _ in range(publisher.queue.qsize())]
    assert [q.topic for q in queued] == ["parkpulse/v1/park-a/m-1/errors", "parkpulse/v1/park-a/m-3/errors"]
    first, second = (decode_feedback(q.payload) for q in queued)
    assert (first["quarantine_id"], first["reason"], first["topic"]) == (
        11, "invalid_json", "parkpulse/v1/park-a/m-1/readings")
    assert (second["quarantine_id"], second["reason"], second["hint"]) == (15, "unregistered",
                                                                          hint_for("unregistered"))


def test_a_full_queue_drops_feedback_and_counts_it():
    metrics = IngestMetrics()
    publisher = FeedbackPublisher(metrics, burst=100, queue_max=2, clock=lambda: 0.0)
    batch = Batch()
    batch.quarantine.extend(_record("parkpulse/v1/park-a/m-1/readings") for _ in range(5))
    publisher.offer(batch, [1, 2, 3, 4, 5])
    assert publisher.queue.qsize() == 2
    assert metrics.feedback_dropped["queue_full"] == 3
    assert 'parkpulse_ingest_feedback_dropped_total{cause="queue_full"} 3' in metrics.render()


async def test_without_a_connection_feedback_is_dropped_not_waited_for():
    metrics = IngestMetrics()
    publisher = FeedbackPublisher(metrics, clock=lambda: 0.0)
    batch = Batch()
    batch.quarantine.append(_record("parkpulse/v1/park-a/m-1/readings"))
    publisher.offer(batch, [1])
    runner = asyncio.create_task(publisher.run(lambda: None))
    try:
        assert await wait_until(lambda: metrics.feedback_dropped["disconnected"] == 1, timeout=5)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert publisher.queue.qsize() == 0
    assert metrics.feedback_sent == 0


# --- with the real broker and database ------------------------------------------------------------------------

@dataclass
class Heard:
    """Feedback messages received, with their topics."""

    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def listening(mqtt_url: str, topic_filter: str) -> AsyncIterator[Heard]:
    """Subscribe to ``topic_filter`` (QoS 1) and collect decoded feedback until the block ends."""
    ep = parse_mqtt_url(mqtt_url)
    heard = Heard()
    ready = asyncio.Event()

    async def run() -> None:
        async with aiomqtt.Client(ep.host, ep.port, protocol=aiomqtt.ProtocolVersion.V5,
                                  identifier=f"t-fb-{uuid.uuid4().hex[:8]}") as client:
            await client.subscribe(topic_filter, qos=1)
            ready.set()
            async for message in client.messages:
                assert message.retain is False
                assert message.qos == 1
                heard.messages.append((message.topic.value, dict(decode_feedback(bytes(message.payload)))))  # type: ignore[arg-type]

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), timeout=10)
    try:
        yield heard
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.services
async def test_a_device_learns_why_its_reading_was_rejected(database_url, mqtt_url, park_id, db_conn):
    now = minute_floor(utcnow())
    good = readings_payload("m-1", 1, now - timedelta(minutes=30), 5)
    bad_unit = json.dumps({"v": 1, "device": "m-1", "seq": 2, "readings": [
        {"ts": (now - timedelta(minutes=10)).isoformat(), "metric": "active_power", "value": 3.0, "unit": "kW"},
        {"ts": (now - timedelta(minutes=9)).isoformat(), "metric": "active_power", "value": 3.0, "unit": "kWh"},
    ]}).encode()
    malformed = b'{"v": 1, "device": "m-2", "seq": 1, "readings": ['
    async with (listening(mqtt_url, f"parkpulse/v1/{park_id}/+/errors") as heard,
                IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service):
        await service.wait_subscribed()
        await publish(mqtt_url, [(build_topic(park_id, "m-1"), good), (build_topic(park_id, "m-1"), bad_unit),
                                 (build_topic(park_id, "m-2"), malformed)])
        assert await wait_until(lambda: len(heard.messages) == 2, timeout=15)
        assert count_readings(db_conn, park_id) == 6
    rows = {device: (qid, reason) for qid, device, reason in db_conn.execute(
        "SELECT quarantine_id, device_id, reason FROM quarantine WHERE park_id = %s", (park_id,)).fetchall()}
    by_topic = dict(heard.messages)
    m1 = by_topic[f"parkpulse/v1/{park_id}/m-1/errors"]
    assert (m1["quarantine_id"], m1["reason"]) == rows["m-1"] == (m1["quarantine_id"], "unit_mismatch")
    assert (m1["readings_rejected"], m1["readings_accepted"], m1["suppressed"]) == (1, 1, 0)
    assert m1["topic"] == build_topic(park_id, "m-1")
    assert "kWh" in m1["detail"]
    assert m1["hint"] == hint_for("unit_mismatch")
    m2 = by_topic[f"parkpulse/v1/{park_id}/m-2/errors"]
    assert (m2["quarantine_id"], m2["reason"]) == rows["m-2"] == (m2["quarantine_id"], "invalid_json")
    assert service.metrics.feedback_sent == 2
    assert "parkpulse_ingest_feedback_sent_total 2" in service.metrics.render()


@pytest.mark.services
async def test_a_flood_gets_rate_limited_feedback_that_accounts_for_every_reject(database_url, mqtt_url, park_id,
                                                                                    db_conn):
    interval_s, burst, flood = 2.0, 3, 100
    settings = ingest_settings(database_url, mqtt_url, park_id, feedback_interval_s=interval_s,
                               feedback_burst=burst)
    topic = build_topic(park_id, "m-1")
    async with (listening(mqtt_url, feedback_topic(park_id, "m-1")) as heard,
                IngestService(settings) as service):
        await service.wait_subscribed()
        started = time.monotonic()
        await publish(mqtt_url, [(topic, b"not json %d" % i) for i in range(flood)])
        assert await wait_until(lambda: count_quarantine(db_conn, park_id) == flood, timeout=30)
        flood_s = time.monotonic() - started
        await asyncio.sleep(interval_s * 1.2)  # a token is back: the next reject is told, with the count
        await publish(mqtt_url, [(topic, b"one more")])
        assert await wait_until(lambda: count_quarantine(db_conn, park_id) == flood + 1, timeout=15)
        assert await wait_until(lambda: service.metrics.feedback_sent + service.metrics.feedback_rate_limited
                                == flood + 1, timeout=10)
        assert await wait_until(lambda: len(heard.messages) == service.metrics.feedback_sent, timeout=10)
        await asyncio.sleep(0.3)  # nothing more is on its way
    told = [m for _, m in heard.messages]
    # the bucket: a burst, then one per interval over the flood's own duration, plus the final message
    assert 2 <= len(told) <= burst + int(flood_s / interval_s) + 1 + 1, (len(told), flood_s)
    assert len(told) < 10
    assert sum(1 + m["suppressed"] for m in told) == flood + 1  # every reject is a message or in a count
    assert told[-1]["suppressed"] > 0
    assert {m["reason"] for m in told} == {"invalid_json"}
    ids = {row[0] for row in db_conn.execute("SELECT quarantine_id FROM quarantine WHERE park_id = %s",
                                             (park_id,)).fetchall()}
    assert {m["quarantine_id"] for m in told} <= ids
