"""The notification a producer (an alarm transition, a 预警 level change) hands to delivery.

Producers never talk to SMTP, webhooks or chat robots themselves: they build a :class:`Notification` and
enqueue it (``alarms._notify.enqueue_notification``) in the same transaction as the state change that caused
it, so a notification is sent if and only if the change committed. Delivery (retry, quiet hours, escalation,
records) is :mod:`alarms._notify`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one subject, in Chinese and English.

    ``dedupe_key`` identifies what it is about (e.g. ``alarm:123:raised``); enqueueing the same key twice
    sends once. ``alarm_id`` lets escalation check whether the alarm was acknowledged meanwhile.
    """

    park_id: str
    dedupe_key: str
    severity: Severity
    title_zh: str
    title_en: str
    body_zh: str
    body_en: str
    created_at: datetime
    alarm_id: int | None = None
    links: dict[str, str] = field(default_factory=dict)
