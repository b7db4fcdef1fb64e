"""Turning received MQTT messages into one database batch (pure: no I/O, no clock).

A :class:`Batch` collects decoded messages until it is flushed. It keeps, in arrival order, the
acknowledgement handles of every message so the service can ack them only after the batch commits, and
it separates what goes to ``readings``, ``quarantine``, ``devices`` (birth) and ``device_status``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas import (
    BIRTH_ADAPTER,
    STATUS_ADAPTER,
    InvalidTopicError,
    RejectReason,
    TopicAddress,
    TopicKind,
    ValidationPolicy,
    decode_readings,
    parse_topic,
)


@dataclass(frozen=True, slots=True)
class AckHandle:
    """What is needed to acknowledge one MQTT message: its packet id, QoS and connection generation."""

    mid: int
    qos: int
    generation: int


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A message (or the bad part of one) kept with its reason and raw bytes."""

    topic: str
    park_id: str | None
    device_id: str | None
    reason: str
    detail: str
    n_rejected: int
    n_accepted: int
    raw: bytes
    received_at: datetime
    source: str = "mqtt"


@dataclass(frozen=True, slots=True)
class RowKey:
    """Identity of a series before it has a database id."""

    park_id: str
    device_id: str
    metric: str


@dataclass(slots=True)
class DeviceActivity:
    """Per-device session facts gathered from one batch (for ``device_status``)."""

    last_seen_at: datetime
    last_reading_ts: datetime | None = None
    last_seq: int | None = None
    clock_offset_s: float | None = None
    online: bool | None = None
    backlog: int | None = None
    status_at: datetime | None = None


@dataclass(slots=True)
class Batch:
    """Everything one flush writes in one transaction, plus the acks to send after the commit."""

    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    acks: list[AckHandle] = field(default_factory=list)
    rows: dict[RowKey, list[tuple[datetime, float, int]]] = field(default_factory=dict)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    births: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    activity: dict[tuple[str, str], DeviceActivity] = field(default_factory=dict)
    n_messages: int = 0
    n_readings_in: int = 0
    n_readings_valid: int = 0
    n_readings_rejected: int = 0
    oldest_received_at: datetime | None = None

    def __len__(self) -> int:
        return self.n_messages

    def add(self, topic: str, payload: bytes, *, received_at: datetime, ack: AckHandle | None) -> None:
        """Decode one message and file its parts; never raises on bad input."""
        self.n_messages += 1
        if ack is not None:
            self.acks.append(ack)
        if self.oldest_received_at is None:
            self.oldest_received_at = received_at
        try:
            address = parse_topic(topic)
        except InvalidTopicError as exc:
            self._quarantine(topic, None, payload, received_at=received_at, reason=RejectReason.INVALID_TOPIC.value,
                             detail=exc.reason, n_rejected=1, n_accepted=0)
            return
        if address.kind is TopicKind.READINGS:
            self._add_readings(address, topic, payload, received_at)
        elif address.kind is TopicKind.BIRTH:
            self._add_birth(address, topic, payload, received_at)
        else:
            self._add_status(address, topic, payload, received_at)

    def _quarantine(self, topic: str, address: TopicAddress | None, payload: bytes, *, received_at: datetime,
                    reason: str, detail: str, n_rejected: int, n_accepted: int) -> None:
        park_id: str | None
        device_id: str | None
        if address is not None:
            park_id, device_id = address.park_id, address.device_id
        else:  # keep whatever the topic's levels say, so operators can find the sender
            levels = topic.split("/")
            park_id = levels[2][:64] if len(levels) > 2 else None
            device_id = levels[3][:64] if len(levels) > 3 else None
        self.quarantine.append(QuarantineRecord(
            topic=topic, park_id=park_id, device_id=device_id, reason=reason, detail=detail[:2000],
            n_rejected=n_rejected, n_accepted=n_accepted, raw=payload, received_at=received_at))

    def _activity(self, address: TopicAddress, received_at: datetime) -> DeviceActivity:
        key = (address.park_id, address.device_id)
        act = self.activity.get(key)
        if act is None:
            act = self.activity[key] = DeviceActivity(last_seen_at=received_at)
        elif received_at > act.last_seen_at:
            act.last_seen_at = received_at
        return act

    def _add_readings(self, address: TopicAddress, topic: str, payload: bytes, received_at: datetime) -> None:
        decoded = decode_readings(address, payload, now=received_at, policy=self.policy)
        self.n_readings_in += max(decoded.n_readings_in, 1 if decoded.whole_message_rejected else 0)
        if decoded.rejections:
            n_bad = (max(decoded.n_readings_in, 1) if decoded.whole_message_rejected
                     else len(decoded.rejections))
            self.n_readings_rejected += n_bad
            first = decoded.rejections[0].reason.value
            self._quarantine(topic, address, payload, received_at=received_at, reason=first, detail=decoded.summary(),
                             n_rejected=n_bad,
                             n_accepted=0 if decoded.whole_message_rejected else len(decoded.readings))
            if decoded.whole_message_rejected:
                return
        if not decoded.readings:
            return
        self.n_readings_valid += len(decoded.readings)
        park, device = address.park_id, address.device_id
        rows = self.rows
        buckets: dict[str, list[tuple[datetime, float, int]]] = {}  # this message's series, by metric
        for metric, ts, value, quality in decoded.readings:
            bucket = buckets.get(metric)
            if bucket is None:
                bucket = buckets[metric] = rows.setdefault(RowKey(park, device, metric), [])
            bucket.append((ts, value, quality))
        newest = max(r.ts for r in decoded.readings)
        act = self._activity(address, received_at)
        if act.last_reading_ts is None or newest > act.last_reading_ts:
            act.last_reading_ts = newest
        if decoded.seq is not None and (act.last_seq is None or decoded.seq > act.last_seq):
            act.last_seq = decoded.seq
            if decoded.sent_at is not None:
                act.clock_offset_s = (decoded.sent_at - received_at).total_seconds()

    def _add_birth(self, address: TopicAddress, topic: str, payload: bytes, received_at: datetime) -> None:
        try:
            birth: dict[str, Any] = BIRTH_ADAPTER.validate_json(payload)  # type: ignore[assignment]
        except ValidationError as exc:
            self._quarantine(topic, address, payload, received_at=received_at,
                             reason=RejectReason.SCHEMA_VIOLATION.value, detail=str(exc), n_rejected=0, n_accepted=0)
            return
        if birth["device"] != address.device_id:
            self._quarantine(topic, address, payload, received_at=received_at,
                             reason=RejectReason.DEVICE_MISMATCH.value,
                             detail=f"payload device {birth['device']!r} != topic device {address.device_id!r}",
                             n_rejected=0, n_accepted=0)
            return
        self.births[(address.park_id, address.device_id)] = birth
        self._activity(address, received_at)

    def _add_status(self, address: TopicAddress, topic: str, payload: bytes, received_at: datetime) -> None:
        try:
            status: dict[str, Any] = STATUS_ADAPTER.validate_json(payload)  # type: ignore[assignment]
        except ValidationError as exc:
            self._quarantine(topic, address, payload, received_at=received_at,
                             reason=RejectReason.SCHEMA_VIOLATION.value, detail=str(exc), n_rejected=0, n_accepted=0)
            return
        act = self._activity(address, received_at)
        act.online = bool(status["online"])
        act.status_at = received_at
        if "backlog" in status:
            act.backlog = int(status["backlog"])
        if status.get("sent_at") is not None:
            act.clock_offset_s = (status["sent_at"] - received_at).total_seconds()
