"""MQTT payloads the agent sends, built exactly to ``schemas.payload`` (pure functions).

Readings are stored in the outbox as a JSON array the moment they are read; the envelope
(``v``, ``device``, ``seq``, ``sent_at``) is added when the message is published, so ``sent_at`` is the
agent's clock at send time even for a message that waited hours in the backlog. Ingest compares
``sent_at`` with its own receive time to measure the agent's clock offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from schemas import PAYLOAD_VERSION

QualityName = Literal["good", "estimated", "suspect", "bad"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One value read from a device, already in its metric's canonical unit."""

    ts: datetime
    metric: str
    value: float
    unit: str
    quality: QualityName = "good"


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC timestamp with millisecond precision (``2026-11-20T08:00:00.123Z``)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not allowed; use UTC")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_readings(readings: Sequence[Reading]) -> bytes:
    """The ``readings`` array of a message, as stored in the outbox."""
    items = []
    for r in readings:
        item: dict[str, Any] = {"ts": format_ts(r.ts), "metric": r.metric, "value": r.value, "unit": r.unit}
        if r.quality != "good":
            item["quality"] = r.quality
        items.append(item)
    return orjson.dumps(items)


def assemble_readings_message(device_id: str, seq: int, sent_at: datetime, readings_json: bytes) -> bytes:
    """A complete ``ReadingsMessage`` from its stored parts (no re-encoding of the readings)."""
    head = orjson.dumps({"v": PAYLOAD_VERSION, "device": device_id, "seq": seq, "sent_at": format_ts(sent_at)})
    return head[:-1] + b',"readings":' + readings_json + b"}"


def birth_payload(device_id: str, sent_at: datetime, metadata: Mapping[str, Any]) -> bytes:
    """Retained ``BirthMessage``: device metadata (profile, level, carrier, multipliers, firmware...)."""
    body: dict[str, Any] = {"v": PAYLOAD_VERSION, "device": device_id}
    body.update({k: v for k, v in metadata.items() if v is not None})
    body["sent_at"] = format_ts(sent_at)
    return orjson.dumps(body)


def status_payload(
    device_id: str, *, online: bool, sent_at: datetime | None, extra: Mapping[str, Any] | None = None
) -> bytes:
    """``StatusMessage``: online flag, the agent's send time (clock offset), backlog and counters.

    The last will has no ``sent_at``: it is composed at connect time and sent by the broker later.
    """
    body: dict[str, Any] = {"v": PAYLOAD_VERSION, "device": device_id, "online": online}
    if sent_at is not None:
        body["sent_at"] = format_ts(sent_at)
    if extra:
        body.update({k: v for k, v in extra.items() if v is not None})
    return orjson.dumps(body)


__all__ = [
    "Reading",
    "assemble_readings_message",
    "birth_payload",
    "encode_readings",
    "format_ts",
    "status_payload",
]
