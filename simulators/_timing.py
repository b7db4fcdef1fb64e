"""Simulated time: parsing durations and laying out the sample and batch grid.

The simulated window always *ends* at "now" (floored to the sample interval), so no published timestamp
is ever in the future, whatever the speed. Samples are stamped at the *end* of the interval they cover
(``start + k * interval`` for ``k = 1..n``), the usual convention for interval meter data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(value: str | timedelta | float) -> timedelta:
    """Parse ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1d12h"`` or a number of seconds.

    Used by the CLI and ``run_simulation`` so durations read the same everywhere; raises ValueError on
    anything else or on a duration that is not positive.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float):
        result = timedelta(seconds=float(value))
    else:
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            result = timedelta(seconds=float(text))
        elif text and re.fullmatch(rf"(?:{_DURATION_RE.pattern})+", text, re.IGNORECASE):
            seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_RE.findall(text))
            result = timedelta(seconds=seconds)
        else:
            raise ValueError(f"cannot parse duration {value!r}: use e.g. 90s, 15m, 2h, 1d or 1d12h")
    if result <= timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return result


def floor_time(ts: datetime, step_s: float) -> datetime:
    """Floor an aware datetime to a multiple of ``step_s`` seconds since the Unix epoch."""
    offset = (ts - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(offset / step_s) * step_s)


@dataclass(frozen=True, slots=True)
class SimulationWindow:
    """The simulated span ``(start, end]`` sampled every ``sample_interval_s`` seconds."""

    start: datetime
    end: datetime
    sample_interval_s: int

    @classmethod
    def ending_at(cls, now: datetime, duration: timedelta, sample_interval_s: int) -> SimulationWindow:
        """The window of (at least) ``duration`` whose last sample is ``now`` floored to the interval."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        end = floor_time(now.astimezone(UTC), sample_interval_s)
        n_samples = max(1, math.ceil(duration.total_seconds() / sample_interval_s - 1e-9))
        return cls(end - timedelta(seconds=n_samples * sample_interval_s), end, sample_interval_s)

    @property
    def n_samples(self) -> int:
        """Number of samples in the window."""
        return round((self.end - self.start).total_seconds() / self.sample_interval_s)

    @property
    def duration_s(self) -> float:
        """Simulated seconds covered by the window."""
        return (self.end - self.start).total_seconds()

    def sample_times(self) -> list[datetime]:
        """Interval-end timestamps of every sample, oldest first (UTC)."""
        step = timedelta(seconds=self.sample_interval_s)
        return [self.start + step * k for k in range(1, self.n_samples + 1)]


def batch_index(ts: datetime, batch_interval_s: int) -> int:
    """Index of the batch window ``((i-1)*B, i*B]`` (epoch-aligned) holding the sample stamped ``ts``.

    Epoch alignment puts 15-minute batches on the quarter hours of every whole-hour time zone.
    """
    return math.ceil((ts - _EPOCH).total_seconds() / batch_interval_s)


def batch_end(index: int, batch_interval_s: int) -> datetime:
    """End timestamp of batch window ``index``."""
    return _EPOCH + timedelta(seconds=index * batch_interval_s)
