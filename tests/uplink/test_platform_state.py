"""The simulated platform's memory (pure): idempotent by key, highest revision wins, every receipt counted."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from simulators.platform import Faults, PlatformState
from tests.uplink._platform_helpers import day_record

receipts = st.lists(st.tuples(st.integers(1, 3), st.integers(1, 4)), max_size=40)  # (day, revision)


@given(receipts)
def test_any_receipt_order_keeps_the_highest_revision_once_per_key(sent: list[tuple[int, int]]) -> None:
    state = PlatformState(clock=lambda: 0.0)
    for day, revision in sent:
        acks = state.receive((day_record("E01", day, float(revision), revision=revision),))
        assert acks[0].accepted
    highest: dict[int, int] = {}
    for day, revision in sent:
        highest[day] = max(highest.get(day, 0), revision)
    assert {s.record.period_start.day: (s.record.revision, s.record.value) for s in state.records.values()} == {
        day: (revision, float(revision)) for day, revision in highest.items()}
    assert sum(s.receipts for s in state.records.values()) == len(sent)
    replaced = sum(s.replaced for s in state.records.values())
    assert state.stats.duplicates + state.stats.stale_revisions + replaced + len(state.records) == len(sent)


@given(st.lists(st.sampled_from(["E01", "E02", "E99"]), min_size=1, max_size=10))
def test_rejected_codes_are_answered_and_never_stored(codes: list[str]) -> None:
    state = PlatformState(clock=lambda: 0.0)
    state.set_faults(Faults(reject_item_codes=["E99"]))
    records = tuple(replace(day_record(code, 1, 1.0), record_key=f"k{i}") for i, code in enumerate(codes))
    acks = state.receive(records)
    assert [ack.accepted for ack in acks] == [code != "E99" for code in codes]
    assert len(state.records) == sum(code != "E99" for code in codes)


def test_a_timed_down_period_ends_by_itself() -> None:
    now = [0.0]
    state = PlatformState(clock=lambda: now[0])
    state.set_faults(Faults(down="503", down_for_s=60))
    assert state.is_down() == "503"
    now[0] = 59.0
    assert state.is_down() == "503"
    now[0] = 60.0
    assert state.is_down() == "up"


def test_tokens_expire_on_the_platform_clock_and_on_demand() -> None:
    now = [0.0]
    state = PlatformState(clock=lambda: now[0], credentials={"unit": "pw"}, token_ttl_s=10)
    assert state.issue_token("unit", "wrong") is None
    issued = state.issue_token("unit", "pw")
    assert issued is not None
    assert state.check_token(issued[0]) == "ok"
    now[0] = 10.0
    assert state.check_token(issued[0]) == "expired"
    fresh = state.issue_token("unit", "pw")
    assert fresh is not None
    state.set_faults(Faults(expire_tokens=True))
    assert state.check_token(fresh[0]) == "expired"
    assert state.check_token("made-up") == "invalid"
