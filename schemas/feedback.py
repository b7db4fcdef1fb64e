"""The feedback payload: why ingest rejected a device's message, sent back to that device.

Ingest publishes one of these on ``parkpulse/v1/{park}/{device}/errors`` (:func:`schemas.topics.feedback_topic`)
after it has committed a quarantine record for a message of that device. The broker ACL lets only that
device read the topic, so the reason never leaks to another park or device::

    {"schema": "parkpulse-feedback-v1", "quarantine_id": 4711, "reason": "unit_mismatch",
     "detail": "readings[0]: unit_mismatch: active_power: unit 'kWh': ...",
     "topic": "parkpulse/v1/park-a/m-001/readings", "readings_rejected": 1, "readings_accepted": 29,
     "received_at": "2026-11-20T08:00:05.123000Z", "hint": "send the metric's unit ...", "suppressed": 0}

``suppressed`` counts the rejects of this device that got no feedback message of their own since the
previous one (ingest rate-limits feedback per device). ``detail`` is truncated to :data:`DETAIL_MAX_CHARS`:
the whole text stays in the quarantine, where the operator finds it by ``quarantine_id``.

Pure code (pydantic only): the edge agent decodes these in the slim install.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from schemas._control_message import decode_control_message, validated
from schemas._strict_json import StrictTimestamp
from schemas.errors import InvalidFeedbackError
from schemas.payload import RejectReason

FEEDBACK_SCHEMA: Final = "parkpulse-feedback-v1"
DETAIL_MAX_CHARS: Final = 300
TOPIC_MAX_CHARS: Final = 512
HINT_MAX_CHARS: Final = 300
MAX_FEEDBACK_BYTES: Final = 8192  # the largest valid message is about 1.5 kB; anything bigger is not ours

#: What a device (or its installer) should change, per reject reason. Reasons not listed get the generic one.
HINTS: Final[dict[str, str]] = {
    RejectReason.OVERSIZED: "split the batch into smaller messages (the limit is in the detail)",
    RejectReason.INVALID_UTF8: "encode the payload as UTF-8 JSON",
    RejectReason.INVALID_JSON: "send one complete JSON object per message (`parkpulse schema export` "
                               "prints the schema)",
    RejectReason.SCHEMA_VIOLATION: "fix the fields named in the detail (`parkpulse schema export` prints the "
                                   "schema)",
    RejectReason.DEVICE_MISMATCH: "the payload's \"device\" must equal the device id in the topic",
    RejectReason.TOO_MANY_READINGS: "send fewer readings per message (the limit is in the detail)",
    RejectReason.NON_FINITE_VALUE: "leave out readings whose value is NaN or infinite",
    RejectReason.UNKNOWN_METRIC: "use a registered metric name (`parkpulse schema export` lists them)",
    RejectReason.UNIT_MISMATCH: "send the metric's unit or one convertible to it (e.g. Wh or kWh for energy)",
    RejectReason.OUT_OF_RANGE: "check the register scaling, multiplier and CT/PT ratios: the value is "
                               "outside the metric's physical range",
    RejectReason.FUTURE_TIMESTAMP: "set the device or agent clock (NTP) and send UTC timestamps",
    RejectReason.STALE_TIMESTAMP: "readings this old are refused live; import old history with "
                                  "`parkpulse import readings`",
    RejectReason.DUPLICATE_KEY: "name each JSON member once per object",
    RejectReason.UNREGISTERED: "ask the park operator to register this device (`parkpulse registry`)",
    RejectReason.STORE_ERROR: "the server could not store this message; tell the park operator the "
                              "quarantine id",
}
GENERIC_HINT: Final = "tell the park operator the quarantine id (`parkpulse quarantine show ID`)"

ReasonCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Count = Annotated[int, Field(ge=0, strict=True)]


@with_config(ConfigDict(extra="ignore"))
class FeedbackMessage(TypedDict):
    """One quarantine reason sent back to the device (see the module docstring).

    Unknown members are ignored when decoding, so a server may add fields within version 1.
    """

    schema: Literal["parkpulse-feedback-v1"]
    quarantine_id: Annotated[int, Field(ge=1, strict=True)]
    reason: ReasonCode
    detail: Annotated[str, Field(max_length=DETAIL_MAX_CHARS)]
    topic: Annotated[str, Field(min_length=1, max_length=TOPIC_MAX_CHARS)]
    readings_rejected: Count
    readings_accepted: Count
    received_at: StrictTimestamp
    hint: Annotated[str, Field(max_length=HINT_MAX_CHARS)]
    suppressed: Count


FEEDBACK_ADAPTER: Final = TypeAdapter(FeedbackMessage)


def hint_for(reason: str) -> str:
    """What to fix for a reject ``reason`` (the generic hint for reasons without their own)."""
    return HINTS.get(reason, GENERIC_HINT)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    tail = ""
    while True:  # the count names what is cut, which depends on the tail's own length (settles in <= 3 rounds)
        new_tail = f"… (+{len(text) - limit + len(tail)} chars)"
        if len(new_tail) == len(tail):
            return text[: limit - len(tail)] + new_tail
        tail = new_tail


def build_feedback(*, quarantine_id: int, reason: str, detail: str, topic: str, readings_rejected: int,
                   readings_accepted: int, received_at: datetime, suppressed: int = 0) -> FeedbackMessage:
    """A feedback message for one committed quarantine record: detail truncated, hint chosen by reason.

    ``received_at`` must be timezone-aware; it is sent in UTC. Raises :class:`InvalidFeedbackError` when a
    value cannot be sent (a zero id, a negative count, a reason that is not a code).
    """
    if received_at.tzinfo is None:
        raise InvalidFeedbackError("received_at", "must be timezone-aware (UTC)")
    message = {
        "schema": FEEDBACK_SCHEMA, "quarantine_id": quarantine_id, "reason": reason,
        "detail": _truncate(detail, DETAIL_MAX_CHARS), "topic": _truncate(topic, TOPIC_MAX_CHARS),
        "readings_rejected": readings_rejected, "readings_accepted": readings_accepted,
        "received_at": received_at.astimezone(UTC), "hint": hint_for(reason), "suppressed": suppressed,
    }
    return validated(FEEDBACK_ADAPTER, message, InvalidFeedbackError)


def encode_feedback(message: FeedbackMessage) -> bytes:
    """The message as compact JSON (UTF-8, ``received_at`` in ISO 8601 with ``Z``)."""
    return FEEDBACK_ADAPTER.dump_json(message)


def decode_feedback(raw: bytes) -> FeedbackMessage:
    """Parse and validate a feedback payload; raises :class:`InvalidFeedbackError` naming the bad field."""
    return decode_control_message(FEEDBACK_ADAPTER, raw, max_bytes=MAX_FEEDBACK_BYTES, error=InvalidFeedbackError)


__all__ = [
    "DETAIL_MAX_CHARS", "FEEDBACK_ADAPTER", "FEEDBACK_SCHEMA", "GENERIC_HINT", "HINTS", "FeedbackMessage",
    "InvalidFeedbackError", "build_feedback", "decode_feedback", "encode_feedback", "hint_for",
]
