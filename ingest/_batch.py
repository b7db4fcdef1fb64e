"""Turning received MQTT messages into one database batch (pure: no I/O, no clock).

A :class:`Batch` collects decoded messages until it is flushed. It keeps, in arrival order, the
acknowledgement handles of every message so the service can ack them only after the batch commits, and
it separates what goes to ``readings``, ``quarantine``, ``devices`` (birth) and ``device_status``.

It also keeps every message it was given (:attr:`Batch.messages`), so that when the database refuses the
batch for a reason other than a lost connection, the service can rebuild smaller batches from the same
bytes (:meth:`Batch.rebuilt`) and isolate the one message that the database refuses.

Senders are checked against a :class:`~ingest._admission.RegistryView`; quarantine records are capped and
sanitised, and rate-limited per sender (:mod:`ingest._quarantine_gate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest._admission import Admission, OpenRegistry, RegistryView
from ingest._quarantine_gate import RejectRateLimit, capped_raw, clean_text
from schemas import (
    InvalidTopicError,
    RejectReason,
    TopicAddress,
    TopicKind,
    ValidationPolicy,
    decode_birth,
    decode_readings,
    decode_status,
    parse_topic,
)
from schemas.payload_fast import MetricColumns, columns_from_decoded, decode_readings_columns, ts_from_pg_us


@dataclass(frozen=True, slots=True)
class AckHandle:
    """What is needed to acknowledge one MQTT message: its packet id, QoS and connection generation."""

    mid: int
    qos: int
    generation: int


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A message (or the bad part of one) kept with its reason and raw bytes.

    ``raw`` holds at most the batch's cap; ``raw_length`` and ``raw_sha256`` describe the whole payload
    (they default to ``raw`` itself when a caller builds an uncapped record).
    """

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
    raw_length: int | None = None
    raw_sha256: bytes | None = None


@dataclass(frozen=True, slots=True)
class QuarantineLimits:
    """How much of a rejected message is kept, and how often one sender may add records."""

    raw_cap_bytes: int = 65_536
    rate_limit: RejectRateLimit | None = None


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """One message as received, kept until its batch commits (to rebuild smaller batches)."""

    topic: str
    payload: bytes
    received_at: datetime
    ack: AckHandle | None


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
    registry: RegistryView = field(default_factory=OpenRegistry)
    limits: QuarantineLimits = field(default_factory=QuarantineLimits)
    acks: list[AckHandle] = field(default_factory=list)
    messages: list[HeldMessage] = field(default_factory=list)
    #: accepted readings per series, as the column chunks of each message (ingest._copy_rows writes them)
    rows: dict[RowKey, list[MetricColumns]] = field(default_factory=dict)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    births: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    activity: dict[tuple[str, str], DeviceActivity] = field(default_factory=dict)
    #: devices the store creates (their park auto-registers, or the registry view is open)
    new_devices: set[tuple[str, str]] = field(default_factory=set)
    #: senders quarantined as unregistered in this batch (the service re-checks the registry for them)
    unregistered: set[tuple[str, str]] = field(default_factory=set)
    #: the registry version the first of them was refused against
    unregistered_version: int | None = None
    #: rejects over a sender's rate limit: (park, device, reason, minute) → [messages, bytes]
    suppressed: dict[tuple[str, str, str, datetime], list[int]] = field(default_factory=dict)
    n_messages: int = 0
    n_skipped: int = 0
    n_readings_in: int = 0
    n_readings_valid: int = 0
    n_readings_rejected: int = 0
    oldest_received_at: datetime | None = None

    def __len__(self) -> int:
        return self.n_messages

    @property
    def is_empty(self) -> bool:
        """True when committing the batch would write nothing (only skipped messages to acknowledge)."""
        return not (self.rows or self.quarantine or self.births or self.activity or self.suppressed)

    def readings(self) -> Iterator[tuple[RowKey, datetime, float, int]]:
        """Every accepted reading as (series key, UTC time, canonical value, quality): for checks, not the hot path."""
        for key, chunks in self.rows.items():
            for chunk in chunks:
                for ts_us, value, quality in zip(chunk.ts_us.tolist(), chunk.value.tolist(), chunk.quality.tolist(),
                                                 strict=True):
                    yield key, ts_from_pg_us(ts_us), value, quality

    def skip(self, ack: AckHandle | None) -> None:
        """Acknowledge a message with this batch without storing it (another partition stores it)."""
        self.n_skipped += 1
        if ack is not None:
            self.acks.append(ack)

    def rebuilt(self, messages: list[HeldMessage] | None = None, registry: RegistryView | None = None) -> Batch:
        """A new batch from ``messages`` (default: all of this one's), decoded again; acks are not carried.

        The rebuilt batch does not rate-limit its rejects: this batch's messages already took their share,
        and taking it twice would turn records into bare counts.
        """
        fresh = Batch(policy=self.policy, registry=registry or self.registry,
                      limits=QuarantineLimits(raw_cap_bytes=self.limits.raw_cap_bytes))
        for m in self.messages if messages is None else messages:
            fresh.add(m.topic, m.payload, received_at=m.received_at, ack=None)
        return fresh

    def add(self, topic: str, payload: bytes, *, received_at: datetime, ack: AckHandle | None) -> None:
        """Decode one message and file its parts; never raises on bad input."""
        self.n_messages += 1
        self.messages.append(HeldMessage(topic, payload, received_at, ack))
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
        admission = self.registry.admit(address.park_id, address.device_id)
        if admission is Admission.UNREGISTERED:
            self.unregistered.add((address.park_id, address.device_id))
            if self.unregistered_version is None:
                self.unregistered_version = self.registry.version
            self._quarantine(topic, address, payload, received_at=received_at,
                             reason=RejectReason.UNREGISTERED.value,
                             detail=self.registry.explain(address.park_id, address.device_id),
                             n_rejected=1 if address.kind is TopicKind.READINGS else 0, n_accepted=0)
            return
        if admission is Admission.AUTO_REGISTER:
            self.new_devices.add((address.park_id, address.device_id))
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
            park_id = clean_text(levels[2], 64) if len(levels) > 2 else None
            device_id = clean_text(levels[3], 64) if len(levels) > 3 else None
        limit = self.limits.rate_limit
        if limit is not None and not limit.allow(park_id or "", device_id or "", received_at):
            minute = received_at.replace(second=0, microsecond=0)
            counts = self.suppressed.setdefault((park_id or "", device_id or "", reason, minute), [0, 0])
            counts[0] += 1
            counts[1] += len(payload)
            return
        kept = capped_raw(payload, self.limits.raw_cap_bytes)
        self.quarantine.append(QuarantineRecord(
            topic=clean_text(topic, 512), park_id=park_id, device_id=device_id, reason=reason,
            detail=clean_text(detail), n_rejected=n_rejected, n_accepted=n_accepted, raw=kept.kept,
            received_at=received_at, raw_length=kept.length, raw_sha256=kept.sha256))

    def quarantine_whole(self, message: HeldMessage, *, reason: str, detail: str) -> None:
        """Quarantine one held message as a whole (used when the database refused to store it)."""
        self.n_messages += 1
        self.messages.append(message)
        try:
            address: TopicAddress | None = parse_topic(message.topic)
        except InvalidTopicError:
            address = None
        self._quarantine(message.topic, address, message.payload, received_at=message.received_at, reason=reason,
                         detail=detail, n_rejected=0, n_accepted=0)

    def _activity(self, address: TopicAddress, received_at: datetime) -> DeviceActivity:
        key = (address.park_id, address.device_id)
        act = self.activity.get(key)
        if act is None:
            act = self.activity[key] = DeviceActivity(last_seen_at=received_at)
        elif received_at > act.last_seen_at:
            act.last_seen_at = received_at
        return act

    def _add_readings(self, address: TopicAddress, topic: str, payload: bytes, received_at: datetime) -> None:
        """Decode a readings message: the msgspec fast path when it accepts the whole message, else pydantic.

        The fast path only ever accepts (:mod:`schemas.payload_fast`); any message it cannot vouch for is
        decoded by :func:`schemas.decode_readings`, so rejections and their reasons are pydantic's.
        """
        fast = decode_readings_columns(address, payload, now=received_at, policy=self.policy)
        if fast is not None:
            self.n_readings_in += fast.n_readings
            self.n_readings_valid += fast.n_readings
            self._file_columns(address, fast.columns, received_at, newest=ts_from_pg_us(fast.newest_ts_us),
                               seq=fast.seq, sent_at=fast.sent_at)
            return
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
        self._file_columns(address, columns_from_decoded(decoded), received_at,
                           newest=max(r.ts for r in decoded.readings), seq=decoded.seq, sent_at=decoded.sent_at)

    def _file_columns(self, address: TopicAddress, columns: tuple[MetricColumns, ...], received_at: datetime, *,
                      newest: datetime, seq: int | None, sent_at: datetime | None) -> None:
        """File one message's accepted columns under their series and update the device's session facts."""
        park, device, rows = address.park_id, address.device_id, self.rows
        for chunk in columns:
            rows.setdefault(RowKey(park, device, chunk.metric), []).append(chunk)
        act = self._activity(address, received_at)
        if act.last_reading_ts is None or newest > act.last_reading_ts:
            act.last_reading_ts = newest
        if seq is not None and (act.last_seq is None or seq > act.last_seq):
            act.last_seq = seq
            if sent_at is not None:
                act.clock_offset_s = (sent_at - received_at).total_seconds()

    def _device_message(self, address: TopicAddress, topic: str, payload: bytes,
                        received_at: datetime) -> dict[str, Any] | None:
        """A birth or status payload decoded, or None when it is empty or was quarantined.

        An empty payload only clears the broker's retained copy: there is nothing to store.
        """
        if not payload:
            return None
        decode = decode_birth if address.kind is TopicKind.BIRTH else decode_status
        decoded = decode(address, payload, policy=self.policy)
        if decoded.message is None:
            assert decoded.rejection is not None
            self._quarantine(topic, address, payload, received_at=received_at, reason=decoded.rejection.reason.value,
                             detail=decoded.rejection.detail, n_rejected=0, n_accepted=0)
        return decoded.message

    def _add_birth(self, address: TopicAddress, topic: str, payload: bytes, received_at: datetime) -> None:
        birth = self._device_message(address, topic, payload, received_at)
        if birth is not None:
            self.births[(address.park_id, address.device_id)] = birth
            self._activity(address, received_at)

    def _add_status(self, address: TopicAddress, topic: str, payload: bytes, received_at: datetime) -> None:
        status = self._device_message(address, topic, payload, received_at)
        if status is None:
            return
        act = self._activity(address, received_at)
        act.online = bool(status["online"])
        act.status_at = received_at
        if "backlog" in status:
            act.backlog = int(status["backlog"])
        if status.get("sent_at") is not None:
            act.clock_offset_s = (status["sent_at"] - received_at).total_seconds()
