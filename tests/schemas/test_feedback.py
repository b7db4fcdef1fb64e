"""The feedback topic and payload: round trips, truncation, and clear errors for anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import InvalidTopicError, RejectReason, parse_topic
from schemas.feedback import (
    DETAIL_MAX_CHARS,
    FEEDBACK_SCHEMA,
    GENERIC_HINT,
    InvalidFeedbackError,
    build_feedback,
    decode_feedback,
    encode_feedback,
    hint_for,
)
from schemas.topics import feedback_topic, parse_feedback_topic

ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]))
reasons = st.one_of(st.sampled_from([r.value for r in RejectReason]), st.from_regex(r"\A[a-z][a-z0-9_]{0,63}\Z"))
counts = st.integers(min_value=0, max_value=10**9)


def valid_doc() -> dict[str, object]:
    return {"schema": FEEDBACK_SCHEMA, "quarantine_id": 7, "reason": "invalid_json", "detail": "byte 3",
            "topic": "parkpulse/v1/park-a/m-1/readings", "readings_rejected": 1, "readings_accepted": 0,
            "received_at": "2026-11-20T08:00:05Z", "hint": "x", "suppressed": 0}


# --- topic ----------------------------------------------------------------------------------------------------

@given(ids, ids)
def test_feedback_topic_round_trips_and_is_never_a_data_topic(park, device):
    topic = feedback_topic(park, device)
    assert topic == f"parkpulse/v1/{park}/{device}/errors"
    assert parse_feedback_topic(topic) == (park, device)
    with pytest.raises(InvalidTopicError, match="message kind"):  # ingest would never store it as data
        parse_topic(topic)


@pytest.mark.parametrize(("topic", "fragment"), [
    ("parkpulse/v1/park-a/m-1/readings", "last level must be 'errors'"),
    ("parkpulse/v1/park-a/m-1", "5 levels"),
    ("parkpulse/v2/park-a/m-1/errors", "must start with parkpulse/v1/"),
    ("parkpulse/v1/park-a/+/errors", "device id '+'"),
    ("parkpulse/v1/Park/m-1/errors", "park id 'Park'"),
])
def test_other_topics_are_not_feedback_topics(topic, fragment):
    with pytest.raises(InvalidTopicError) as info:
        parse_feedback_topic(topic)
    assert fragment in str(info.value)


def test_feedback_topic_refuses_wildcards():
    with pytest.raises(InvalidTopicError, match="device id"):
        feedback_topic("park-a", "#")


# --- payload ----------------------------------------------------------------------------------------------------

def test_encoded_message_has_the_documented_members():
    received = datetime(2026, 11, 20, 16, 0, 5, 250_000, tzinfo=timezone(timedelta(hours=8)))
    message = build_feedback(quarantine_id=4711, reason="unit_mismatch", detail="readings[0]: kWh is not kW",
                             topic="parkpulse/v1/park-a/m-1/readings", readings_rejected=1, readings_accepted=29,
                             received_at=received, suppressed=4)
    assert json.loads(encode_feedback(message)) == {
        "schema": "parkpulse-feedback-v1", "quarantine_id": 4711, "reason": "unit_mismatch",
        "detail": "readings[0]: kWh is not kW", "topic": "parkpulse/v1/park-a/m-1/readings",
        "readings_rejected": 1, "readings_accepted": 29, "received_at": "2026-11-20T08:00:05.250000Z",
        "hint": "send the metric's unit or one convertible to it (e.g. Wh or kWh for energy)", "suppressed": 4}


@given(st.integers(min_value=1, max_value=2**62), reasons, st.text(max_size=2000), counts, counts, aware, counts)
def test_built_messages_round_trip(quarantine_id, reason, detail, rejected, accepted, received, suppressed):
    message = build_feedback(quarantine_id=quarantine_id, reason=reason, detail=detail,
                             topic="parkpulse/v1/p/d/readings", readings_rejected=rejected,
                             readings_accepted=accepted, received_at=received, suppressed=suppressed)
    decoded = decode_feedback(encode_feedback(message))
    assert decoded == message
    assert decoded["received_at"] == received
    assert decoded["received_at"].utcoffset() == timedelta(0)
    assert len(decoded["detail"]) <= DETAIL_MAX_CHARS
    if len(detail) <= DETAIL_MAX_CHARS:
        assert decoded["detail"] == detail
    else:  # cut, saying how much: what is kept plus the count is the whole text
        kept, _, tail = decoded["detail"].rpartition("… (+")
        assert detail.startswith(kept)
        assert len(kept) + int(tail.removesuffix(" chars)")) == len(detail)


def test_every_reason_a_device_can_cause_has_its_own_hint():
    never_sent = {RejectReason.INVALID_TOPIC}  # no park/device to send it to
    for reason in RejectReason:
        if reason not in never_sent:
            assert hint_for(reason.value) != GENERIC_HINT, reason
    assert hint_for("something_new") == GENERIC_HINT


def test_build_refuses_values_that_cannot_be_sent():
    with pytest.raises(InvalidFeedbackError, match="received_at: must be timezone-aware"):
        build_feedback(quarantine_id=1, reason="x", detail="", topic="t", readings_rejected=0, readings_accepted=0,
                       received_at=datetime(2026, 1, 1))  # a naive datetime
    with pytest.raises(InvalidFeedbackError, match="quarantine_id"):
        build_feedback(quarantine_id=0, reason="x", detail="", topic="t", readings_rejected=0, readings_accepted=0,
                       received_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_unknown_members_are_ignored_within_version_1():
    doc = valid_doc() | {"added_later": {"nested": True}}
    assert "added_later" not in decode_feedback(json.dumps(doc).encode())


BAD_VALUES = {
    "schema": st.sampled_from(["parkpulse-feedback-v2", "", 1, None]),
    "quarantine_id": st.one_of(st.integers(max_value=0), st.just("7"), st.floats(), st.none()),
    "reason": st.one_of(st.just("Bad Reason"), st.just(""), st.integers(), st.text(min_size=65, max_size=70)),
    "detail": st.one_of(st.text(min_size=DETAIL_MAX_CHARS + 1, max_size=DETAIL_MAX_CHARS + 5), st.integers()),
    "topic": st.one_of(st.just(""), st.lists(st.text(), max_size=2)),
    "readings_rejected": st.one_of(st.integers(max_value=-1), st.just("1"), st.booleans()),
    "readings_accepted": st.one_of(st.integers(max_value=-1), st.floats(allow_nan=False)),
    "received_at": st.one_of(st.just("2026-11-20T08:00:05"), st.just(1700000000), st.just("yesterday")),
    "suppressed": st.one_of(st.integers(max_value=-1), st.none()),
}


@given(st.sampled_from(sorted(BAD_VALUES)).flatmap(lambda f: st.tuples(st.just(f), BAD_VALUES[f])))
def test_a_bad_member_is_named(field_and_value):
    field, value = field_and_value
    raw = json.dumps(valid_doc() | {field: value}).encode()
    with pytest.raises(InvalidFeedbackError) as info:
        decode_feedback(raw)
    assert info.value.field == field
    assert f"feedback payload, {field}:" in str(info.value)
    assert "ParkPulse ingest" in str(info.value)  # says what was expected


@given(st.sampled_from(sorted(valid_doc())))
def test_a_missing_member_is_named(field):
    doc = valid_doc()
    del doc[field]
    with pytest.raises(InvalidFeedbackError) as info:
        decode_feedback(json.dumps(doc).encode())
    assert info.value.field == field


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                        max_size=4),
                              max_leaves=12).map(lambda v: json.dumps(v).encode())))
def test_arbitrary_input_gives_a_clear_error_and_never_crashes(raw):
    with pytest.raises(InvalidFeedbackError) as info:
        decode_feedback(raw)
    text = str(info.value)
    assert text.startswith("feedback payload, ")
    assert info.value.field
    assert text.isprintable()


def test_oversized_input_is_refused_before_parsing():
    with pytest.raises(InvalidFeedbackError, match="over the 8192-byte limit"):
        decode_feedback(b" " * 9000)
