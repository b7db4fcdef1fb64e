"""Quiet hours, backoff and escalation timing as pure rules (times worked out by hand in the tests)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from alarms._notify_config import QuietHours, RetryPolicy
from alarms._notify_policy import escalation_due, gives_up, quiet_until, retry_delay_s

NIGHT = QuietHours(start=time(22, 0), end=time(7, 0))
LUNCH = QuietHours(start=time(12, 0), end=time(13, 30), critical_overrides=False)
SH = "Asia/Shanghai"  # UTC+8, no daylight saving


def utc(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def test_overnight_quiet_hours_in_the_park_time_zone() -> None:
    # 23:30 Shanghai = 15:30 UTC: quiet until 07:00 Shanghai next day = 23:00 UTC the same UTC day
    assert quiet_until(NIGHT, "warning", utc(2026, 3, 2, 15, 30), SH) == utc(2026, 3, 2, 23, 0)
    # 03:00 Shanghai = 19:00 UTC the day before: quiet until 07:00 Shanghai the same local day
    assert quiet_until(NIGHT, "info", utc(2026, 3, 1, 19, 0), SH) == utc(2026, 3, 1, 23, 0)
    # 07:00 Shanghai exactly: the span is over
    assert quiet_until(NIGHT, "warning", utc(2026, 3, 1, 23, 0), SH) is None
    # 21:59 Shanghai: not yet
    assert quiet_until(NIGHT, "warning", utc(2026, 3, 2, 13, 59), SH) is None
    # the same UTC instant is daytime in Shanghai but night in Berlin (UTC+1 in March)
    assert quiet_until(NIGHT, "warning", utc(2026, 3, 2, 23, 30), "Europe/Berlin") == utc(2026, 3, 3, 6, 0)


def test_critical_passes_unless_the_list_holds_everything() -> None:
    assert quiet_until(NIGHT, "critical", utc(2026, 3, 2, 15, 30), SH) is None
    # 12:10 Shanghai = 04:10 UTC, the lunch rule holds critical too, until 13:30 Shanghai = 05:30 UTC
    assert quiet_until(LUNCH, "critical", utc(2026, 3, 2, 4, 10), SH) == utc(2026, 3, 2, 5, 30)
    assert quiet_until(None, "warning", utc(2026, 3, 2, 4, 10), SH) is None


def test_backoff_doubles_within_jitter_and_stays_capped() -> None:
    policy = RetryPolicy(max_attempts=10, initial_delay_s=30, max_delay_s=200)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 30), (2, 60), (3, 120), (4, 200), (9, 200)]:
        delays = [retry_delay_s(attempt, policy, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 10  # jittered, not constant
    assert not gives_up(9, policy)
    assert gives_up(10, policy)


def test_escalation_waits_the_full_minutes() -> None:
    created = utc(2026, 3, 2, 1, 0)
    assert not escalation_due(created, 30, created + timedelta(minutes=29, seconds=59))
    assert escalation_due(created, 30, created + timedelta(minutes=30))


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
       st.sampled_from([SH, "Europe/Berlin", "America/New_York", "UTC"]),
       st.integers(0, 23), st.integers(0, 23))
def test_a_held_message_is_released_at_a_local_end_of_quiet_hours(now: datetime, tz: str, start_h: int,
                                                                  end_h: int) -> None:
    if start_h == end_h:
        return
    rule = QuietHours(start=time(start_h), end=time(end_h))
    until = quiet_until(rule, "warning", now, tz)
    if until is None:
        return
    assert until > now
    assert until - now <= timedelta(hours=25)  # never longer than one span (plus a DST hour)
    # released at the end of the span; a DST gap may push the wall clock an hour on
    assert until.astimezone(ZoneInfo(tz)).hour in (end_h, (end_h + 1) % 24)
    # and at the release time the rule no longer holds the message
    assert quiet_until(rule, "warning", until, tz) is None
