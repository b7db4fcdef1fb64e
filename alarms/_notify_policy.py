"""Delivery decisions as pure functions: quiet hours, retry backoff, escalation timing, routing plans.

The dispatcher (:mod:`alarms._dispatch`) asks these with the injected clock's ``now``; nothing here reads
a clock, the database or the network, so every rule is tested directly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alarms._notification import Severity
from alarms._notify_config import NotifyConfig, QuietHours, RetryPolicy


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One channel to tell, and the list (with its quiet hours) it was reached through."""

    list_name: str
    channel: str
    kind: str


def quiet_until(rule: QuietHours | None, severity: Severity, now: datetime, timezone: str) -> datetime | None:
    """The end (UTC) of the quiet period ``now`` falls in, or None when a ``severity`` message may go now.

    Quiet hours are wall-clock times of the park's time zone; a span whose end is before its start runs
    over midnight. Critical messages pass when the rule says ``critical_overrides``.
    """
    if rule is None or (severity == "critical" and rule.critical_overrides):
        return None
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if rule.start < rule.end:
        inside, end_day = rule.start <= t < rule.end, local.date()
    else:
        inside = t >= rule.start or t < rule.end
        end_day = local.date() + timedelta(days=1) if t >= rule.start else local.date()
    if not inside:
        return None
    end = datetime.combine(end_day, rule.end, tzinfo=tz).astimezone(UTC)
    return end if end > now else None


def retry_delay_s(attempts_done: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempts_done`` (1-based).

    The ceiling doubles from ``initial_delay_s`` up to ``max_delay_s``; the delay is drawn from its upper
    half ("equal jitter"), so retries after a shared outage spread out but never come back immediately.
    """
    ceiling = min(policy.max_delay_s, policy.initial_delay_s * 2 ** min(max(attempts_done, 1) - 1, 30))
    return rng.uniform(ceiling / 2, ceiling)


def gives_up(attempts_done: int, policy: RetryPolicy) -> bool:
    """True once ``attempts_done`` reached the policy's maximum."""
    return attempts_done >= policy.max_attempts


def escalation_due(created_at: datetime, after_minutes: int, now: datetime) -> bool:
    """Whether ``after_minutes`` have passed since the alarm's message was created."""
    return now >= created_at + timedelta(minutes=after_minutes)


def plan_deliveries(config: NotifyConfig, list_names: list[str]) -> list[PlannedDelivery]:
    """Each channel of ``list_names`` once (the first list naming it decides its quiet hours)."""
    seen: set[str] = set()
    plan: list[PlannedDelivery] = []
    for list_name in list_names:
        for channel in config.lists[list_name].channels:
            if channel not in seen:
                seen.add(channel)
                plan.append(PlannedDelivery(list_name, channel, config.channels[channel].kind))
    return plan
