"""Poll grid and backlog pacing arithmetic."""

from __future__ import annotations

import pytest

from edge.timing import TokenBucket, next_poll_at


def test_polls_land_on_the_wall_clock_grid() -> None:
    assert next_poll_at(1000.0, 15.0) == 1005.0      # 1000 = 66*15 + 10 -> next multiple 67*15
    assert next_poll_at(1005.0, 15.0) == 1020.0      # strictly after now
    assert next_poll_at(1000.0, 15.0, 2.0) == 1007.0  # 1000 - 2 = 998 -> 67*15 + 2
    with pytest.raises(ValueError, match="positive"):
        next_poll_at(0.0, 0.0)


def test_token_bucket_grants_burst_then_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=50.0)
    assert bucket.take(80, now_s=0.0) == (50, 0.0)       # a full bucket gives its burst
    granted, wait = bucket.take(10, now_s=0.0)
    assert granted == 0
    assert wait == pytest.approx(0.01)
    assert bucket.take(10, now_s=0.05) == (5, 0.0)        # 0.05 s x 100/s = 5 tokens
    bucket.give_back(3)
    assert bucket.take(10, now_s=0.05) == (3, 0.0)
    assert bucket.take(1000, now_s=10.0) == (50, 0.0)     # never more than the burst
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0.0, burst=1.0)
