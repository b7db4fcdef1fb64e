"""Payloads the agent sends validate against the contract in ``schemas.payload``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from edge.payload import Reading, assemble_readings_message, birth_payload, encode_readings, format_ts, status_payload
from schemas import BIRTH_ADAPTER, READINGS_ADAPTER, STATUS_ADAPTER, TopicKind, decode_readings, parse_topic

TS = datetime(2026, 11, 20, 8, 0, 0, 123000, tzinfo=UTC)


def test_readings_message_is_a_valid_contract_message() -> None:
    body = encode_readings([Reading(TS, "active_energy_import", 1234.56, "kWh"),
                            Reading(TS, "active_power", 12.5, "kW", quality="suspect")])
    raw = assemble_readings_message("m-001", 42, TS + timedelta(seconds=5), body)
    message = READINGS_ADAPTER.validate_json(raw)
    assert message["seq"] == 42
    assert message["sent_at"] == TS + timedelta(seconds=5)
    decoded = decode_readings(parse_topic(f"parkpulse/v1/p1/m-001/{TopicKind.READINGS.value}"), raw,
                              now=TS + timedelta(seconds=6))
    assert decoded.rejections == []
    assert [(r.metric, r.value, r.quality) for r in decoded.readings] == [
        ("active_energy_import", 1234.56, 0), ("active_power", 12.5, 2)]


def test_birth_and_status_validate() -> None:
    birth = birth_payload("m-001", TS, {"kind": "electricity_meter", "carrier": "electricity", "metering_level": 2,
                                        "multiplier": 200.0, "register_max": 199999998.0, "firmware": None,
                                        "agent": "gw-1"})
    parsed = BIRTH_ADAPTER.validate_json(birth)
    assert parsed["multiplier"] == 200.0
    assert "firmware" not in orjson.loads(birth)
    will = status_payload("m-001", online=False, sent_at=None, extra={"reason": "connection_lost"})
    assert "sent_at" not in STATUS_ADAPTER.validate_json(will)
    status = STATUS_ADAPTER.validate_json(status_payload("m-001", online=True, sent_at=TS, extra={"backlog": 7}))
    assert status["backlog"] == 7


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert format_ts(TS) == "2026-11-20T08:00:00.123Z"
    with pytest.raises(ValueError, match="naive"):
        format_ts(datetime(2026, 1, 1))
