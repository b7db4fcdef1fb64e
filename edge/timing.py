"""Time arithmetic of the agent: poll schedules and the backlog pacer (pure, clock passed in)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def next_poll_at(now_s: float, interval_s: float, offset_s: float = 0.0) -> float:
    """The next poll time strictly after ``now_s`` on the grid ``k * interval_s + offset_s`` (epoch seconds).

    Polls land on round wall-clock times (every 15 s at :00, :15, ...), so readings of different meters
    line up, and a slow poll skips the ticks it overran instead of drifting.
    """
    if interval_s <= 0:
        raise ValueError("interval must be positive")
    k = math.floor((now_s - offset_s) / interval_s) + 1
    return k * interval_s + offset_s


@dataclass
class TokenBucket:
    """Rate limiter for backlog replay: ``rate`` messages per second, bursts up to ``burst``.

    Live messages never take tokens; only the backlog does, so a replay after a long outage proceeds at
    a pace the broker and ingest can absorb while fresh readings keep flowing.
    """

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated_s: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now_s: float) -> None:
        if self.updated_s is not None:
            self.tokens = min(self.burst, self.tokens + (now_s - self.updated_s) * self.rate)
        self.updated_s = now_s

    def take(self, want: int, now_s: float) -> tuple[int, float]:
        """Take up to ``want`` whole tokens: ``(granted, 0)``, or ``(0, seconds to wait)`` when empty."""
        self._refill(now_s)
        if self.tokens >= 1.0:
            granted = min(want, int(self.tokens))
            self.tokens -= granted
            return granted, 0.0
        return 0, (1.0 - self.tokens) / self.rate

    def give_back(self, count: int) -> None:
        """Return unused tokens (the backlog had fewer messages than granted)."""
        self.tokens = min(self.burst, self.tokens + count)


__all__ = ["TokenBucket", "next_poll_at"]
