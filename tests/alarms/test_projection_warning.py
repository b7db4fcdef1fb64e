"""预警 levels: thresholds as data, caps and floors, and the hysteresis (margin or K consecutive days)."""

from __future__ import annotations

import math
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alarms._targets_errors import ThresholdsError
from alarms._warning import (
    DEFAULT_THRESHOLDS_FILE,
    SEVERITY,
    Thresholds,
    WarningState,
    level_at,
    load_warning_policy,
    step,
    target_ratio,
)

CAP = Thresholds(yellow=0.95, red=1.0)
FLOOR = Thresholds(yellow=1.05, red=1.0)
DAY = date(2026, 7, 1)


def _run(ratios: list[float], thresholds: Thresholds = CAP, direction: str = "cap", *, margin: float = 0.02,
         k: int = 3, same_day: bool = False) -> list[tuple[str, str]]:
    """(level after each evaluation, reason of the change or '') over one evaluation per day."""
    state, out = None, []
    for i, ratio in enumerate(ratios):
        day = DAY if same_day else DAY + timedelta(days=i)
        result = step(state, ratio, thresholds, direction, margin=margin, persistence_days=k,  # type: ignore[arg-type]
                      day=day)
        state = result.state
        out.append((state.level, result.reason or ""))
    return out


def test_the_packaged_thresholds():
    policy = load_warning_policy()
    assert policy.source == str(DEFAULT_THRESHOLDS_FILE)
    assert (policy.cap.yellow, policy.cap.red, policy.floor.yellow, policy.floor.red) == (0.95, 1.0, 1.05, 1.0)
    assert policy.thresholds("nonfossil_share") == policy.floor
    assert policy.thresholds("pue").yellow == 0.97
    assert (policy.margin, policy.persistence_days) == (0.02, 3)


def test_caps_and_floors():
    assert [level_at(r, CAP, "cap") for r in (0.9, 0.95, 0.99, 1.0, 1.3)] == ["green", "yellow", "yellow", "red",
                                                                               "red"]
    assert [level_at(r, FLOOR, "floor") for r in (1.2, 1.05, 1.01, 0.99)] == ["green", "green", "yellow", "red"]
    assert target_ratio(50, 0) == math.inf
    assert target_ratio(0, 0) == 1.0
    assert target_ratio(120, 100) == pytest.approx(1.2)


def test_a_ratio_oscillating_around_a_threshold_changes_the_level_once():
    # rises past yellow by more than the margin once, then wobbles around 0.95 by ±0.01 for two weeks
    ratios = [0.90, 0.98] + [0.94, 0.96] * 7
    levels = _run(ratios)
    changes = [(lvl, why) for lvl, why in levels if why and why != "first"]
    assert changes == [("yellow", "margin")]
    assert levels[-1][0] == "yellow"
    # without hysteresis the same ratios would have flipped 15 times
    raw = [level_at(r, CAP, "cap") for r in ratios]
    assert sum(a != b for a, b in pairwise(raw)) == 15


def test_a_small_crossing_must_last_k_consecutive_days():
    assert _run([0.90, 0.96, 0.96, 0.96]) == [("green", "first"), ("green", ""), ("green", ""),
                                               ("yellow", "persistence")]
    # an evaluation back on the green side ends the run
    assert [lvl for lvl, _ in _run([0.90, 0.96, 0.96, 0.94, 0.96, 0.96])] == ["green"] * 6
    # several evaluations on one day count once
    assert [lvl for lvl, _ in _run([0.90, 0.96, 0.96, 0.96, 0.96], same_day=True)] == ["green"] * 5


def test_the_run_moves_to_the_least_extreme_level_it_saw():
    # thresholds closer than the margin: three days just past yellow, two of them just past red → yellow
    close = Thresholds(yellow=0.99, red=1.0)
    assert _run([0.90, 1.005, 0.995, 1.005], close)[-1] == ("yellow", "persistence")
    assert _run([0.90, 1.005, 1.005, 1.005], close)[-1] == ("red", "persistence")
    # far past red at once
    assert _run([0.90, 1.05])[-1] == ("red", "margin")


def test_recovery_needs_the_margin_or_k_days_too():
    levels = _run([1.05, 0.99, 0.99, 0.99])  # red, then just under 1.0 for three days
    assert levels == [("red", "first"), ("red", ""), ("red", ""), ("yellow", "persistence")]
    assert _run([1.05, 0.90])[-1] == ("green", "margin")  # 0.90 < 0.95 - 0.02: straight to green


def test_floors_mirror_caps():
    assert _run([1.20, 1.02], FLOOR, "floor")[-1] == ("yellow", "margin")   # 1.02 < 1.05 - 0.02
    assert _run([1.20, 1.04, 1.04, 1.04], FLOOR, "floor")[-1] == ("yellow", "persistence")
    assert _run([1.20, 0.90], FLOOR, "floor")[-1] == ("red", "margin")


@given(ratios=st.lists(st.floats(0.5, 1.5), min_size=1, max_size=40), k=st.integers(1, 5),
       margin=st.floats(0, 0.1))
def test_a_level_change_always_has_a_reason_the_rules_allow(ratios, k, margin):
    state: WarningState | None = None
    run_days = 0
    for i, ratio in enumerate(ratios):
        result = step(state, ratio, CAP, "cap", margin=margin, persistence_days=k, day=DAY + timedelta(days=i))
        if state is not None and result.reason is not None:
            assert result.state.level != state.level
            if result.reason == "persistence":
                assert state.count + 1 >= k
            else:  # margin: the level the ratio reaches with the thresholds moved against the move
                worse = SEVERITY[result.state.level] > SEVERITY[state.level]
                assert level_at(ratio, CAP, "cap", margin if worse else -margin) == result.state.level
        run_days = result.state.count
        assert 0 <= run_days < k
        state = result.state


@pytest.mark.parametrize(("text", "fragment"), [
    ("levels: {cap: {yellow: 1.1, red: 1.0}, floor: {yellow: 1.05, red: 1.0}}\n", "must not be above its red"),
    ("levels: {cap: {yellow: 0.9, red: 1.0}, floor: {yellow: 0.9, red: 1.0}}\n", "must not be below its red"),
    ("levels: {cap: {yellow: 0.9, red: 1.0}, floor: {yellow: 1.1, red: 1.0}}\nindicators: {water: "
     "{yellow: 0.9, red: 1.0}}\n", "water have no targets"),
    ("levels: {cap: {yellow: 0.9}}\n", "levels.cap.red"),
    ("levels: [\n", "not valid YAML"),
    ("levels: {cap: {yellow: 0.9, red: 1.0}, floor: {yellow: 1.1, red: 1.0}}\nhysteresis: {persistence_days: 0}\n",
     "hysteresis.persistence_days"),
])
def test_bad_thresholds_files_say_what_to_fix(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ThresholdsError, match=fragment.replace(".", r"\.")):
        load_warning_policy(path)
    with pytest.raises(ThresholdsError, match="cannot be read"):
        load_warning_policy(tmp_path / "missing.yaml")
