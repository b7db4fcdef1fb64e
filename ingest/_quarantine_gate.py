"""Keeping the quarantine bounded and safe to store (pure: the caller passes the time).

* :func:`clean_text` makes any reason text storable in PostgreSQL ``text``: NUL and other C0 controls
  and lone surrogates are escaped, and the length is capped. A reason quoting hostile input (a key
  ``"x\\u0000"``) must never make the quarantine insert itself fail.
* :func:`capped_raw` keeps the raw bytes up to a cap, with the full length and the SHA-256 of the whole
  payload, so a truncated record still proves what arrived.
* :class:`RejectRateLimit` is a token bucket per (park, device): a device that floods bad messages gets
  its rejects counted per minute instead of stored one by one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

_UNSAFE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_text(text: str, limit: int = 2000) -> str:
    """``text`` with control characters and lone surrogates escaped (``\\x00``, ``\\ud800``), capped."""
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if len(text) > limit:
        text = text[: limit - 15] + f"… (+{len(text) - limit + 15} chars)"
    return text


@dataclass(frozen=True, slots=True)
class CappedRaw:
    """Raw bytes as kept: the first ``cap`` bytes, and the length and SHA-256 of the whole payload."""

    kept: bytes
    length: int
    sha256: bytes

    @property
    def truncated(self) -> bool:
        """True when bytes were cut off (such a record cannot be replayed)."""
        return len(self.kept) < self.length


def capped_raw(raw: bytes, cap: int) -> CappedRaw:
    """Keep at most ``cap`` bytes of ``raw``, recording its full length and digest."""
    return CappedRaw(kept=raw[:cap], length=len(raw), sha256=hashlib.sha256(raw).digest())


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class RejectRateLimit:
    """Per-sender token bucket for quarantine records: ``burst`` at once, ``per_minute`` refill.

    Buckets of senders idle for longer than a full refill are dropped, so the table of buckets stays as
    small as the set of currently misbehaving devices.
    """

    per_minute: float = 120.0
    burst: float = 240.0
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _last_sweep: float = 0.0

    def allow(self, park_id: str, device_id: str, now: datetime) -> bool:
        """Take one token for this sender; False when it is over its limit."""
        t = now.timestamp()
        key = (park_id, device_id)
        bucket = self._buckets.get(key)
        rate = self.per_minute / 60.0
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, t)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + max(0.0, t - bucket.at) * rate)
            bucket.at = t
        if t - self._last_sweep > 60.0:
            self._sweep(t)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _sweep(self, t: float) -> None:
        full_after = self.burst / (self.per_minute / 60.0) if self.per_minute > 0 else float("inf")
        self._buckets = {k: b for k, b in self._buckets.items() if t - b.at < full_after}
        self._last_sweep = t
