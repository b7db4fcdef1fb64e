"""Capped, jittered exponential backoff for reconnect loops."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    """Delay sequence ``uniform(0, min(cap, initial * 2**attempt))`` ("full jitter").

    Jitter keeps a fleet of instances from reconnecting in lock-step after a shared outage.
    """

    initial_s: float = 0.5
    cap_s: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call grows the ceiling until the cap."""
        ceiling = min(self.cap_s, self.initial_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return random.uniform(self.initial_s / 2, max(ceiling, self.initial_s / 2))

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self.attempt = 0
