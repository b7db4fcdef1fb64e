"""The command/ack contract (schemas/commands.py): round trips, and every byte string either decodes or fails
with InvalidCommandError naming a field — never another exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.commands import (
    AckStatus,
    CommandAction,
    InvalidCommandError,
    RejectCode,
    ack_topic,
    build_ack,
    build_command,
    command_topic,
    decode_ack,
    decode_command,
    encode_ack,
    encode_command,
    parse_device_topic,
)
from schemas.errors import InvalidTopicError

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(park=ids, device=ids, action=st.sampled_from(CommandAction), value=values,
       ttl_s=st.integers(min_value=1, max_value=86_400), hold=st.booleans(),
       command_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,40}", fullmatch=True))
def test_a_built_command_round_trips(park: str, device: str, action: CommandAction, value: float, ttl_s: int,
                                     hold: bool, command_id: str) -> None:
    command = build_command(command_id=command_id, park=park, device=device, action=action, value=value,
                            issued_at=T0, expires_at=T0 + timedelta(seconds=ttl_s),
                            hold_until=T0 + timedelta(hours=1) if hold else None, issued_by="vpp")
    assert decode_command(encode_command(command)) == command
    assert parse_device_topic(command_topic(park, device), "cmd") == (park, device)


@settings(max_examples=200, deadline=None)
@given(status=st.sampled_from(AckStatus), reason=st.sampled_from(RejectCode), value=st.none() | values)
def test_a_built_ack_round_trips(status: AckStatus, reason: RejectCode, value: float | None) -> None:
    ack = build_ack(command_id="c-1", device="bess-1", status=status, acked_at=T0,
                    reason=reason if status == AckStatus.REJECTED else None, applied_value=value, unit="kW")
    assert decode_ack(encode_ack(ack)) == ack
    assert parse_device_topic(ack_topic("park-a", "bess-1"), "ack") == ("park-a", "bess-1")


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_any_bytes_decode_or_fail_with_the_contract_error(raw: bytes) -> None:
    for decode in (decode_command, decode_ack):
        error: InvalidCommandError | None = None
        try:
            decode(raw)
        except InvalidCommandError as exc:
            error = exc
        if error is not None:
            assert error.field
            assert error.reason


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from(["command_id", "park", "device", "action", "value", "unit", "issued_at", "expires_at",
                              "issued_by", "schema"]),
       bad=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))
def test_a_mutated_command_names_the_field(field: str, bad: object) -> None:
    good = json.loads(encode_command(build_command(
        command_id="c-1", park="park-a", device="bess-1", action=CommandAction.SET_ACTIVE_POWER, value=-50.0,
        issued_at=T0, expires_at=T0 + timedelta(minutes=1), issued_by="vpp")))
    good[field] = bad
    error: InvalidCommandError | None = None
    try:
        decoded = decode_command(json.dumps(good).encode())
    except InvalidCommandError as exc:
        error = exc
    if error is not None:
        assert error.field.split(".")[0] == field
    else:  # the mutation happened to be valid (e.g. a text that is a valid id)
        assert decoded[field] == bad  # type: ignore[literal-required]


def test_rules_a_schema_cannot_express() -> None:
    with pytest.raises(InvalidCommandError, match="expires_at"):
        build_command(command_id="c", park="p", device="d", action=CommandAction.RELEASE, value=0.0, issued_at=T0,
                      expires_at=T0, issued_by="vpp")
    with pytest.raises(InvalidCommandError, match="reason"):
        build_ack(command_id="c", device="d", status=AckStatus.REJECTED, acked_at=T0)
    with pytest.raises(InvalidCommandError, match="reason"):
        build_ack(command_id="c", device="d", status=AckStatus.APPLIED, acked_at=T0, reason=RejectCode.EXPIRED)
    with pytest.raises(InvalidCommandError, match="limit"):
        decode_command(b"{" + b" " * 5000 + b"}")
    with pytest.raises(InvalidTopicError):
        parse_device_topic("parkpulse/v1/park-a/bess-1/readings", "cmd")
