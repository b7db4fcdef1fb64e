import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    Quality,
    RejectReason,
    ValidationPolicy,
    decode_readings,
    parse_topic,
    payload_json_schemas,
)

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ADDRESS = parse_topic("parkpulse/v1/park-a/m-1/readings")


def message(readings, device="m-1", seq=7, **extra):
    return json.dumps({"v": 1, "device": device, "seq": seq, "readings": readings, **extra}).encode()


def reading(minutes_ago=0, metric="active_energy_import", value=100.0, unit="kWh", **extra):
    ts = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {"ts": ts, "metric": metric, "value": value, "unit": unit, **extra}


def test_valid_message_converts_to_canonical_units_and_utc():
    raw = message([
        reading(15, value=1500.0, unit="Wh"),
        {**reading(0, metric="active_power", value=2000.0, unit="W"), "ts": "2026-11-20T16:00:00+08:00"},
        reading(0, metric="heat_energy", value=3.6, unit="MJ", quality="estimated"),
    ], sent_at="2026-11-20T08:00:01Z")
    decoded = decode_readings(ADDRESS, raw, now=NOW)
    assert decoded.rejections == []
    assert (decoded.device_id, decoded.seq, decoded.sent_at) == ("m-1", 7, datetime(2026, 11, 20, 8, 0, 1, tzinfo=UTC))
    energy, power, heat = decoded.readings
    assert energy.value == pytest.approx(1.5)
    assert energy.metric == "active_energy_import"
    assert power.value == pytest.approx(2.0)
    assert power.ts == NOW
    assert heat.value == pytest.approx(0.0036)
    assert heat.quality == Quality.ESTIMATED


def test_bad_readings_are_rejected_one_by_one_and_good_neighbours_kept():
    raw = message([
        reading(4),
        reading(3, value=float("nan")),
        reading(2, metric="bogus_metric"),
        reading(1, unit="V"),
        {**reading(0), "ts": (NOW + timedelta(hours=2)).isoformat()},
        {**reading(0), "ts": "1970-01-01T00:00:00Z"},
        reading(0, metric="power_factor", value=1.7, unit="1"),
        {**reading(0), "value": "12"},
        reading(0, metric="active_power", value=5.0, unit="kW"),
    ])
    decoded = decode_readings(ADDRESS, raw, now=NOW)
    assert [r.metric for r in decoded.readings] == ["active_energy_import", "active_power"]
    reasons = {r.index: r.reason for r in decoded.rejections}
    assert reasons == {
        1: RejectReason.NON_FINITE_VALUE,
        2: RejectReason.UNKNOWN_METRIC,
        3: RejectReason.UNIT_MISMATCH,
        4: RejectReason.FUTURE_TIMESTAMP,
        5: RejectReason.STALE_TIMESTAMP,
        6: RejectReason.OUT_OF_RANGE,
        7: RejectReason.SCHEMA_VIOLATION,  # strings are not numbers
    }
    assert not decoded.whole_message_rejected
    assert "readings[1]: non_finite_value" in decoded.summary()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe\x00garbage", RejectReason.INVALID_UTF8),
        (b'{"v": 1, "device": ', RejectReason.INVALID_JSON),
        (b"[1, 2, 3]", RejectReason.SCHEMA_VIOLATION),
        (json.dumps({"v": 2, "device": "m-1", "seq": 1, "readings": [reading()]}).encode(),
         RejectReason.SCHEMA_VIOLATION),
        (json.dumps({"v": 1, "device": "m-1", "seq": 1, "readings": []}).encode(), RejectReason.SCHEMA_VIOLATION),
        (json.dumps({"v": 1, "device": "m-1", "seq": -1, "readings": [reading()]}).encode(),
         RejectReason.SCHEMA_VIOLATION),
        (message([reading()], device="m-2"), RejectReason.DEVICE_MISMATCH),
        (b"x" * 2_000_000, RejectReason.OVERSIZED),
    ],
)
def test_whole_message_rejections(raw, reason):
    decoded = decode_readings(ADDRESS, raw, now=NOW)
    assert decoded.readings == []
    assert decoded.whole_message_rejected
    assert decoded.rejections[0].reason is reason


def test_naive_timestamps_are_rejected():
    raw = message([{**reading(), "ts": "2026-11-20T08:00:00"}])
    decoded = decode_readings(ADDRESS, raw, now=NOW)
    assert decoded.readings == []
    assert decoded.rejections[0].reason is RejectReason.SCHEMA_VIOLATION
    assert "timezone" in decoded.rejections[0].detail


def test_policy_limits_are_applied():
    policy = ValidationPolicy(max_readings=2, max_future=timedelta(seconds=10))
    too_many = decode_readings(ADDRESS, message([reading(i) for i in range(3)]), now=NOW, policy=policy)
    assert too_many.rejections[0].reason is RejectReason.TOO_MANY_READINGS
    ahead = decode_readings(ADDRESS, message([{**reading(), "ts": (NOW + timedelta(seconds=11)).isoformat()}]),
                            now=NOW, policy=policy)
    assert ahead.rejections[0].reason is RejectReason.FUTURE_TIMESTAMP


@given(st.binary(max_size=512))
def test_decoding_never_raises_on_arbitrary_bytes(raw):
    decoded = decode_readings(ADDRESS, raw, now=NOW)
    assert decoded.readings == [] or not decoded.whole_message_rejected


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12))
def test_decoding_never_raises_on_arbitrary_json(value):
    raw = json.dumps({"v": 1, "device": "m-1", "seq": 1, "readings": [value]}).encode()
    decoded = decode_readings(ADDRESS, raw, now=NOW)
    assert len(decoded.readings) + len(decoded.rejections) >= 1


def test_exported_json_schema_describes_the_payload():
    schemas = payload_json_schemas()
    readings = schemas["readings"]
    assert set(readings["required"]) == {"v", "device", "seq", "readings"}
    assert readings["additionalProperties"] is False
    item = readings["$defs"]["ReadingIn"]
    assert set(item["required"]) == {"ts", "metric", "value", "unit"}
    assert {"birth", "status"} <= set(schemas)
