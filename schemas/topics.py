"""MQTT topic grammar, version 1.

``parkpulse/v1/{park}/{device}/{kind}`` where ``kind`` is ``readings`` (a batch of measurements),
``birth`` (retained device metadata, sent on connect) or ``status`` (online/offline, last will, clock and
backlog figures). Park and device ids are lower-case ``[a-z0-9][a-z0-9_-]{0,63}``: safe as topic levels,
file names and SQL values. The device id in the topic is the identity per-device broker credentials bind
to, so ingest trusts the topic, and a payload that names another device is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from schemas.errors import InvalidTopicError

TOPIC_ROOT: Final = "parkpulse"
TOPIC_VERSION: Final = "v1"
ID_PATTERN: Final = r"[a-z0-9][a-z0-9_-]{0,63}"
_ID_RE: Final = re.compile(rf"^{ID_PATTERN}$")


class TopicKind(StrEnum):
    """The last topic level: what a message on the topic carries."""

    READINGS = "readings"
    BIRTH = "birth"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """A parsed topic: which park and device a message belongs to, and what it carries."""

    park_id: str
    device_id: str
    kind: TopicKind

    @property
    def topic(self) -> str:
        """The topic string for this address."""
        return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{self.park_id}/{self.device_id}/{self.kind.value}"


def is_valid_id(value: str) -> bool:
    """True when ``value`` may be used as a park or device id."""
    return bool(_ID_RE.match(value))


def build_topic(park_id: str, device_id: str, kind: TopicKind = TopicKind.READINGS) -> str:
    """Return the topic for a device's messages of ``kind``; raises on invalid ids."""
    for label, value in (("park", park_id), ("device", device_id)):
        if not is_valid_id(value):
            raise InvalidTopicError(f"{park_id}/{device_id}", f"{label} id {value!r} is not {ID_PATTERN}")
    return TopicAddress(park_id, device_id, kind).topic


def parse_topic(topic: str) -> TopicAddress:
    """Parse a concrete topic into a :class:`TopicAddress`, raising :class:`InvalidTopicError`."""
    parts = topic.split("/")
    if len(parts) != 5:
        raise InvalidTopicError(topic, f"expected 5 levels, got {len(parts)}")
    root, version, park_id, device_id, kind = parts
    if root != TOPIC_ROOT:
        raise InvalidTopicError(topic, f"root must be {TOPIC_ROOT!r}")
    if version != TOPIC_VERSION:
        raise InvalidTopicError(topic, f"unsupported version {version!r}")
    if not is_valid_id(park_id):
        raise InvalidTopicError(topic, f"park id {park_id!r} is not {ID_PATTERN}")
    if not is_valid_id(device_id):
        raise InvalidTopicError(topic, f"device id {device_id!r} is not {ID_PATTERN}")
    try:
        topic_kind = TopicKind(kind)
    except ValueError:
        raise InvalidTopicError(topic, f"unknown message kind {kind!r}") from None
    return TopicAddress(park_id, device_id, topic_kind)


def subscription_filter(
    kind: TopicKind | None = None, *, park_id: str | None = None, share_group: str | None = None
) -> str:
    """Topic filter for all devices (optionally of one park and one kind), optionally shared.

    ``share_group`` makes it an MQTT v5 shared subscription (``$share/{group}/...``) so N ingest
    instances split the load.
    """
    park = park_id or "+"
    last = kind.value if kind else "+"
    flt = f"{TOPIC_ROOT}/{TOPIC_VERSION}/{park}/+/{last}"
    return f"$share/{share_group}/{flt}" if share_group else flt


#: Last level of the per-device feedback topic ``parkpulse/v1/{park}/{device}/errors``. It is not a
#: :class:`TopicKind`: devices never publish there and ingest never subscribes to it; ingest writes each
#: quarantine reason back to the device it concerns, and the broker ACL lets only that device read it.
FEEDBACK_LEVEL: Final = "errors"


def feedback_topic(park_id: str, device_id: str) -> str:
    """The topic on which ingest tells one device why its messages were rejected; raises on invalid ids."""
    for label, value in (("park", park_id), ("device", device_id)):
        if not is_valid_id(value):
            raise InvalidTopicError(f"{park_id}/{device_id}", f"{label} id {value!r} is not {ID_PATTERN}")
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{park_id}/{device_id}/{FEEDBACK_LEVEL}"


def parse_feedback_topic(topic: str) -> tuple[str, str]:
    """``(park_id, device_id)`` of a feedback topic, raising :class:`InvalidTopicError` for anything else."""
    parts = topic.split("/")
    if len(parts) != 5:
        raise InvalidTopicError(topic, f"expected 5 levels, got {len(parts)}")
    root, version, park_id, device_id, last = parts
    if (root, version) != (TOPIC_ROOT, TOPIC_VERSION):
        raise InvalidTopicError(topic, f"must start with {TOPIC_ROOT}/{TOPIC_VERSION}/")
    if last != FEEDBACK_LEVEL:
        raise InvalidTopicError(topic, f"last level must be {FEEDBACK_LEVEL!r}, not {last!r}")
    for label, value in (("park", park_id), ("device", device_id)):
        if not is_valid_id(value):
            raise InvalidTopicError(topic, f"{label} id {value!r} is not {ID_PATTERN}")
    return park_id, device_id
