"""The saturation search's step logic (scripts/bench_ingest_saturate.py), against a modelled pipeline.

The model sustains ``short_capacity`` readings/s for a 10 s step but only ``long_capacity`` for the 60 s
confirmation (checkpoints, autovacuum): the search must step down until a confirmation passes instead of
reporting 0 after two tries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
pytest.importorskip("aiomqtt", reason="the benchmark scripts need the server install")

from bench_ingest_saturate import _next_confirm_rate, _search


class _ModelledPipeline:
    """Stands in for ``_Search``: a step is sustained when the offered rate is within the capacity."""

    def __init__(self, short_capacity: float, long_capacity: float, publisher_max: float, *,
                 long_loses: bool = False) -> None:
        self.short_capacity, self.long_capacity, self.publisher_max = short_capacity, long_capacity, publisher_max
        self.long_loses = long_loses  # every long step loses readings (never sustained, whatever the rate)
        self.calls: list[tuple[str, float, float]] = []

    def step(self, label: str, rate: float, seconds: float) -> dict[str, Any]:
        self.calls.append((label, rate, seconds))
        capacity = self.short_capacity if seconds <= 10 else self.long_capacity
        offered = self.publisher_max if rate == 0 else rate
        stored_rate = min(offered, capacity)
        sustained = rate != 0 and offered <= capacity
        verdict = "sustained" if sustained else "lost" if seconds > 10 and self.long_loses else "backlog"
        return {"published_readings_per_s": round(offered), "stored_readings_per_s_while_publishing": stored_rate,
                "verdict": verdict, "sustained": sustained}


def _args(**kw: Any) -> argparse.Namespace:
    base = {"step_s": 10.0, "confirm_s": 60.0, "bisect_steps": 4, "confirm_attempts": 5, "min_rate": 1_000.0}
    return argparse.Namespace(**{**base, **kw})


def test_a_failed_confirmation_steps_down_until_one_is_sustained() -> None:
    pipeline = _ModelledPipeline(short_capacity=334_000, long_capacity=264_000, publisher_max=400_000)
    _, confirmed, step = _search(pipeline, _args())  # type: ignore[arg-type]
    assert step is not None
    assert step["sustained"]
    assert 0.8 * 264_000 <= confirmed <= 264_000
    confirms = [c for c in pipeline.calls if c[0].startswith("confirm")]
    assert len(confirms) >= 2
    assert all(seconds == 60.0 for _, _, seconds in confirms)
    assert [rate for _, rate, _ in confirms] == sorted((rate for _, rate, _ in confirms), reverse=True)


def test_no_confirmation_within_the_attempts_reports_zero() -> None:
    pipeline = _ModelledPipeline(short_capacity=334_000, long_capacity=0, publisher_max=400_000, long_loses=True)
    _, confirmed, step = _search(pipeline, _args(confirm_attempts=2))  # type: ignore[arg-type]
    assert (confirmed, step) == (0.0, None)
    assert sum(1 for c in pipeline.calls if c[0].startswith("confirm")) == 2


def test_the_next_rate_is_below_what_was_stored_on_backlog_and_at_least_15_percent_lower() -> None:
    assert _next_confirm_rate(300_000, {"verdict": "backlog", "stored_readings_per_s_while_publishing": 200_000}) \
        == pytest.approx(194_000)
    assert _next_confirm_rate(300_000, {"verdict": "backlog", "stored_readings_per_s_while_publishing": 299_000}) \
        == pytest.approx(255_000)
    assert _next_confirm_rate(300_000, {"verdict": "publisher_behind",
                                        "stored_readings_per_s_while_publishing": 100_000}) == pytest.approx(255_000)
