"""Telling a device why its message was quarantined, on its own ``…/{park}/{device}/errors`` topic.

After the :class:`~ingest._committer.Committer` has committed a batch, :meth:`FeedbackPublisher.offer` turns
each of the batch's quarantine records into a :mod:`schemas.feedback` message for the device named by the
record's topic. Records whose topic does not parse (no park or device to tell) and CSV-import records get
none. The broker's ACL lets only that device read the topic (deploy/mosquitto/parkpulse.acl).

Feedback must never cost ingest anything, so:

* :class:`FeedbackLimiter` is a token bucket per device (by default a burst of 3, then one message per
  10 s); a reject over the limit only adds to a count that the device's next feedback message carries
  (``suppressed``), and so do rejects the quarantine itself only counted (its own rate limit);
* :meth:`FeedbackPublisher.offer` never waits: it puts the encoded messages on a bounded queue, and a
  full queue drops the message;
* :meth:`FeedbackPublisher.run` publishes from that queue at QoS 1 (not retained) on the service's
  current broker connection, one message at a time with a timeout. No connection, a timeout, a broker
  error or a refusing PUBACK (MQTT v5 reason code >= 0x80, e.g. 0x87 when the ACL does not let ingest
  write the topic) drops the message and counts it in ``feedback_dropped_total{cause}``: the data was
  committed before any of this happens.
* a refusal also suspends feedback for :data:`REFUSED_PAUSE_S`: Mosquitto closes the connection of a
  client whose publish it refused (with ``max_queued_messages 0``, as deployed), so each refusal costs
  ingest one reconnect (its unacknowledged messages come again and are skipped as duplicates). A broker
  whose ACL does not let user ``ingest`` write ``parkpulse/v1/+/+/errors`` costs one reconnect per pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiomqtt

from ingest._batch import Batch
from ingest._metrics import IngestMetrics
from schemas import InvalidTopicError, RejectReason, is_valid_id, parse_topic
from schemas.feedback import InvalidFeedbackError, build_feedback, encode_feedback
from schemas.topics import feedback_topic

logger = logging.getLogger(__name__)

#: Buckets untouched for this long are forgotten (with any count of suppressed rejects they still held).
IDLE_FORGET_S: Final = 3600.0
#: After the broker refused a feedback message, none is published for this long (see the module docstring).
REFUSED_PAUSE_S: Final = 600.0


@dataclass(slots=True)
class _DeviceBucket:
    tokens: float
    at_s: float
    suppressed: int = 0


@dataclass(slots=True)
class FeedbackLimiter:
    """Per-device token bucket for feedback messages: ``burst`` at once, then one per ``interval_s``.

    Pure: the caller passes the time (seconds on any monotonic clock).
    """

    interval_s: float = 10.0
    burst: int = 3
    _buckets: dict[tuple[str, str], _DeviceBucket] = field(default_factory=dict)
    _last_sweep_s: float | None = None

    def _bucket(self, park_id: str, device_id: str, now_s: float) -> _DeviceBucket:
        if self._last_sweep_s is None or now_s - self._last_sweep_s > IDLE_FORGET_S / 4:
            self._buckets = {k: b for k, b in self._buckets.items() if now_s - b.at_s < IDLE_FORGET_S}
            self._last_sweep_s = now_s
        bucket = self._buckets.get((park_id, device_id))
        if bucket is None:
            bucket = self._buckets[(park_id, device_id)] = _DeviceBucket(float(self.burst), now_s)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, now_s - bucket.at_s) / self.interval_s)
            bucket.at_s = now_s
        return bucket

    def admit(self, park_id: str, device_id: str, now_s: float) -> int | None:
        """Take a token for one feedback message to this device.

        Returns None when the device is over its rate (the reject is counted instead), else how many of
        its rejects went without a message since the last one (and resets that count).
        """
        bucket = self._bucket(park_id, device_id, now_s)
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return None
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return suppressed

    def note_suppressed(self, park_id: str, device_id: str, n: int, now_s: float) -> None:
        """Count ``n`` rejects of this device that get no message (reported by its next message)."""
        self._bucket(park_id, device_id, now_s).suppressed += n

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One encoded feedback message waiting to be published."""

    topic: str
    payload: bytes


class FeedbackPublisher:
    """Queues feedback for committed quarantine records and publishes it (see the module docstring)."""

    def __init__(self, metrics: IngestMetrics, *, interval_s: float = 10.0, burst: int = 3, queue_max: int = 1000,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Bind to the instance's counters; ``clock`` drives the rate limit (replaceable in tests)."""
        self.metrics = metrics
        self.limiter = FeedbackLimiter(interval_s=interval_s, burst=burst)
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=queue_max)
        self.timeout_s = timeout_s
        self._clock = clock
        self._watched: aiomqtt.Client | None = None
        self._refused = 0
        self._suspended_until_s = float("-inf")

    # -- committer side: synchronous, never waits ------------------------------------------------------
    def offer(self, batch: Batch, quarantine_ids: Sequence[int]) -> None:
        """Queue feedback for the records of a committed ``batch`` (``quarantine_ids`` in record order)."""
        now_s = self._clock()
        for (park, device, _reason, _minute), (n, _size) in batch.suppressed.items():
            if is_valid_id(park) and is_valid_id(device):
                self.limiter.note_suppressed(park, device, n, now_s)
        for record, quarantine_id in zip(batch.quarantine, quarantine_ids, strict=False):
            if record.source != "mqtt" or record.reason == RejectReason.INVALID_TOPIC:
                continue
            try:
                address = parse_topic(record.topic)
            except InvalidTopicError:
                continue  # no park and device to tell
            suppressed = self.limiter.admit(address.park_id, address.device_id, now_s)
            if suppressed is None:
                self.metrics.feedback_rate_limited += 1
                continue
            try:
                message = build_feedback(
                    quarantine_id=quarantine_id, reason=record.reason, detail=record.detail, topic=record.topic,
                    readings_rejected=record.n_rejected, readings_accepted=record.n_accepted,
                    received_at=record.received_at, suppressed=suppressed)
            except InvalidFeedbackError as exc:  # a record ingest itself made; log it rather than lose ingest
                logger.error("feedback for quarantine record %d not built: %s", quarantine_id, exc)  # noqa: TRY400
                self.metrics.feedback_dropped["invalid"] += 1
                continue
            try:
                self.queue.put_nowait(Outgoing(feedback_topic(address.park_id, address.device_id),
                                               encode_feedback(message)))
            except asyncio.QueueFull:
                self.metrics.feedback_dropped["queue_full"] += 1

    # -- publishing side --------------------------------------------------------------------------------
    async def run(self, current_client: Callable[[], aiomqtt.Client | None]) -> None:
        """Publish queued feedback on whatever connection ``current_client()`` returns, until cancelled."""
        while True:
            item = await self.queue.get()
            client = current_client()
            if client is None:
                self.metrics.feedback_dropped["disconnected"] += 1
                continue
            if self._clock() < self._suspended_until_s:
                self.metrics.feedback_dropped["suspended"] += 1
                continue
            self._watch(client)
            refused_before = self._refused
            try:
                async with asyncio.timeout(self.timeout_s):
                    await client.publish(item.topic, item.payload, qos=1, retain=False, timeout=self.timeout_s)
            except TimeoutError:
                self.metrics.feedback_dropped["timeout"] += 1
                continue
            except aiomqtt.MqttError as exc:
                self.metrics.feedback_dropped["broker_error"] += 1
                logger.debug("feedback on %s not published: %s", item.topic, exc)
                continue
            if self._refused > refused_before:
                self.metrics.feedback_dropped["refused"] += 1
                self._suspended_until_s = self._clock() + REFUSED_PAUSE_S
                logger.warning("the broker refused ingest's feedback on %s; no feedback for %.0f s. Let user "
                               "ingest write parkpulse/v1/+/+/errors in the broker ACL (deploy/mosquitto/"
                               "parkpulse.acl), or set PARKPULSE_FEEDBACK_ENABLED=false", item.topic,
                               REFUSED_PAUSE_S)
                continue
            self.metrics.feedback_sent += 1

    def _watch(self, client: aiomqtt.Client) -> None:
        """Count refusing PUBACKs on ``client``: aiomqtt 2.x returns from publish() without its reason code.

        Only feedback is published on the consumer connection, so every refused PUBACK on it is feedback.
        Uses the paho client inside aiomqtt 2.x (pinned <3), as :mod:`ingest._mqtt` does.
        """
        if client is self._watched:
            return
        paho_client: Any = client._client
        inner = paho_client.on_publish

        def on_publish(c: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
            if getattr(reason_code, "is_failure", False):
                self._refused += 1
            inner(c, userdata, mid, reason_code, properties)

        paho_client.on_publish = on_publish
        self._watched = client


__all__ = ["FeedbackLimiter", "FeedbackPublisher", "Outgoing"]
