"""The msgspec fast path accepts exactly what the pydantic contract accepts, with the same values.

:func:`schemas.payload_fast.decode_readings_columns` only ever accepts; on anything else it answers None
and ingest runs :func:`schemas.payload.decode_readings`, so rejections and their reasons come from the
pydantic path by construction. These properties check the part that is not by construction:

* whenever the fast path accepts, the pydantic decoder accepts every reading, with the same device, seq,
  sent_at instant, and per metric the same timestamps (µs), canonical values (bit for bit) and quality;
* the combined decoder (fast, else pydantic) gives the same stored columns and the same rejections as the
  pydantic decoder alone, for valid payloads and for mutated ones (wrong types, missing, extra and repeated
  members, NaN, huge numbers, bad units, unknown metrics, bad timestamps, device mismatch, oversize);
* valid payloads in the canonical spelling do take the fast path (else it would be dead code).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas import METRICS, UNITS, ValidationPolicy, decode_readings, parse_topic
from schemas.payload import DecodedMessage
from schemas.payload_fast import (
    ColumnarMessage,
    columns_from_decoded,
    decode_readings_columns,
    ts_from_pg_us,
    ts_to_pg_us,
)

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ADDRESS = parse_topic("parkpulse/v1/park-a/m-001/readings")
POLICY = ValidationPolicy()
# (metric, unit) pairs a device may send: the canonical unit and every other unit of the same dimension
PAIRS = sorted((name, unit) for name, spec in METRICS.items() for unit, u in UNITS.items()
               if u.dimension == UNITS[spec.unit].dimension and (u.dimension != "temperature" or unit == spec.unit))


def _by_metric(columns: tuple[Any, ...]) -> dict[str, tuple[list[int], list[float], list[int]]]:
    return {c.metric: (c.ts_us.tolist(), c.value.tolist(), c.quality.tolist()) for c in columns}


def _assert_same(fast: ColumnarMessage, slow: DecodedMessage) -> None:
    assert slow.rejections == []
    assert (fast.device_id, fast.seq, fast.n_readings) == (slow.device_id, slow.seq, slow.n_readings_in)
    assert fast.sent_at == slow.sent_at  # same instant (aware datetimes compare by instant)
    fast_cols, slow_cols = _by_metric(fast.columns), _by_metric(columns_from_decoded(slow))
    assert fast_cols.keys() == slow_cols.keys()
    for metric, (ts, values, quality) in slow_cols.items():
        f_ts, f_values, f_quality = fast_cols[metric]
        assert f_ts == ts
        assert np.array(f_values).tobytes() == np.array(values).tobytes()  # bit for bit, -0.0 included
        assert f_quality == quality
    assert fast.newest_ts_us == max(max(t) for t, _, _ in slow_cols.values())


def _check(raw: bytes, policy: ValidationPolicy = POLICY) -> ColumnarMessage | None:
    """The property for one payload; returns the fast result for callers that expect one."""
    fast = decode_readings_columns(ADDRESS, raw, now=NOW, policy=policy)
    slow = decode_readings(ADDRESS, raw, now=NOW, policy=policy)
    if fast is not None:
        _assert_same(fast, slow)
    return fast


# -- generators --------------------------------------------------------------------------------------
@st.composite
def timestamps(draw: st.DrawFn, *, canonical: bool = True) -> str:
    """A reading time within the policy's window, spelled in one of the canonical ways (or not)."""
    seconds = draw(st.integers(-399 * 86_400, 4 * 60))
    micro = draw(st.sampled_from([0, 0, 500_000, 123_000, 123_456, draw(st.integers(0, 999_999))]))
    offset_min = draw(st.sampled_from([0, 0, 60, -300, 330, 545, -720, 23 * 60 + 59]))
    instant = NOW + timedelta(seconds=seconds, microseconds=micro)
    local = instant.astimezone(timezone(timedelta(minutes=offset_min)))
    spec = draw(st.sampled_from(["seconds", "milliseconds", "microseconds", "auto"]))
    text = local.isoformat(timespec=spec)
    if offset_min == 0 and draw(st.booleans()):
        text = text.replace("+00:00", "Z")
    if not canonical:
        text = draw(st.sampled_from([
            text, text.replace("T", " "), text.replace("T", "t"), text.replace("Z", "z"), text[:19],
            text[:16] + text[19:], text + "0", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
            "2026-11-20T24:00:00Z", "2026-11-20T23:60:00Z", "2026-11-20T23:59:60Z", "2026-11-20T08:00:00+24:00",
            "2026-11-20T08:00:00.1234567Z", "2026-11-20T08:00:00+0100", "20261120T080000Z", "2026-11-20",
            "2025-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-11-20T08:00:00-00:00", "1999-12-31T23:59:59Z",
            "2026-11-20T08:05:00.000001Z", "2026-11-20T08:05:00Z", "٢٠٢٦-11-20T08:00:00Z", "2026-11-20T08:00:00.Z"]))
    return text


@st.composite
def readings(draw: st.DrawFn, *, canonical: bool = True) -> dict[str, Any]:
    metric, unit = draw(st.sampled_from(PAIRS))
    value: Any = draw(st.one_of(st.floats(-1e6, 1e9, allow_nan=False), st.integers(-1000, 10**9),
                                st.sampled_from([0.0, -0.0, 1e-300, 5e-324])))
    reading: dict[str, Any] = {"ts": draw(timestamps(canonical=canonical)), "metric": metric, "value": value,
                               "unit": unit}
    if draw(st.booleans()):
        reading["quality"] = draw(st.sampled_from(["good", "estimated", "suspect", "bad"]))
    return reading


@st.composite
def messages(draw: st.DrawFn, *, canonical: bool = True) -> dict[str, Any]:
    n = draw(st.integers(1, 40))
    if draw(st.booleans()):  # one register's readings, the common case
        first = draw(readings(canonical=canonical))
        items = [{**first, "value": first["value"] + i if isinstance(first["value"], int) else first["value"] * 0.5 + i,
                  "ts": draw(timestamps(canonical=canonical))} for i in range(n)]
    else:
        items = draw(st.lists(readings(canonical=canonical), min_size=n, max_size=n))
    msg: dict[str, Any] = {"v": 1, "device": "m-001", "seq": draw(st.integers(0, 2**63 - 1)), "readings": items}
    if draw(st.booleans()):
        msg["sent_at"] = draw(timestamps(canonical=canonical))
    return msg


_BAD_VALUES: list[Any] = [None, True, "1.5", "x", [], {}, 2**64, -(2**63) - 1, 1.5, -1, "NaN", 10**400]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with one or more things wrong with it, serialised (some mutations act on bytes)."""
    msg = draw(messages(canonical=draw(st.booleans())))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["envelope_type", "reading_type", "missing", "extra", "metric", "unit", "device",
                                     "quality", "empty", "huge", "v", "seq"]))
        items = msg.get("readings")
        picked = draw(st.sampled_from(items)) if isinstance(items, list) and items else {}
        reading: dict[str, Any] = picked if isinstance(picked, dict) else {}
        in_reading = bool(reading) and draw(st.booleans())
        if kind == "envelope_type":
            member = draw(st.sampled_from(["v", "device", "seq", "sent_at", "readings"]))
            msg[member] = draw(st.sampled_from(_BAD_VALUES))
        elif kind == "reading_type" and reading:
            reading[draw(st.sampled_from(["ts", "metric", "value", "unit", "quality"]))] = draw(
                st.sampled_from(_BAD_VALUES))
        elif kind == "missing":
            target = reading if in_reading else msg
            if target:
                target.pop(draw(st.sampled_from(sorted(target))), None)
        elif kind == "extra":
            (reading if in_reading else msg)[draw(st.sampled_from(["extra", "Ts", "val"]))] = 1
        elif kind == "metric" and reading:
            reading["metric"] = draw(st.sampled_from(["nope", "", "Active_Energy_Import", "a" * 65,
                                                      "active_power\u0000"]))
        elif kind == "unit" and reading:
            reading["unit"] = draw(st.sampled_from(["", "kwh", "V", "kW", "MWh", "°C", "x" * 17]))
        elif kind == "device":
            msg["device"] = draw(st.sampled_from(["m-002", "M-001", "m-001\n", "m-001 ", ""]))
        elif kind == "quality" and reading:
            reading["quality"] = draw(st.sampled_from(["Good", "unknown", None, 0]))
        elif kind == "empty":
            msg["readings"] = []
        elif kind == "huge" and reading:
            reading["value"] = draw(st.sampled_from([1e308, -1e308, 1.7e308, 1e300, -1.0, 2**70]))
        elif kind == "v":
            msg["v"] = draw(st.sampled_from([0, 2, 1.0, "1"]))
        elif kind == "seq":
            msg["seq"] = draw(st.sampled_from([-1, 2**63, 1.0, "7", 2**63 - 1]))
    raw = json.dumps(msg, separators=(",", ":") if draw(st.booleans()) else None).encode()
    byte_kind = draw(st.sampled_from(["none", "none", "dup_envelope", "dup_reading", "nan", "inf", "overflow",
                                      "escape", "bom", "invalid_utf8", "truncate"]))
    if byte_kind == "dup_envelope":
        raw = raw.replace(b'{"v"', b'{"device":"m-001","v"', 1) if draw(st.booleans()) else raw.replace(
            b'"seq"', b'"seq":1,"seq"', 1)
    elif byte_kind == "dup_reading":
        raw = raw.replace(b'{"ts"', b'{"unit":"kWh","ts"', 1) if draw(st.booleans()) else raw.replace(
            b'"metric"', b'"value":1,"metric"', 1)
    elif byte_kind in ("nan", "inf", "overflow"):
        token = {"nan": b"NaN", "inf": b"-Infinity", "overflow": b"1e400"}[byte_kind]
        raw = raw.replace(b'"value":', b'"value":' + token + b',"_":', 1)
        raw = raw.replace(b',"_":', b',"x":', 1) if draw(st.booleans()) else raw
    elif byte_kind == "escape":
        raw = raw.replace(b'"metric"', b'"\\u006detric"', 1)
    elif byte_kind == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif byte_kind == "invalid_utf8":
        raw = raw.replace(b'"m-001"', b'"m-\xff01"', 1)
    elif byte_kind == "truncate":
        raw = raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    return raw


# -- properties --------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_valid_canonical_payloads_take_the_fast_path_with_identical_results(msg: dict[str, Any]) -> None:
    raw = json.dumps(msg).encode()
    fast = _check(raw)
    slow = decode_readings(ADDRESS, raw, now=NOW)
    all_accepted = not slow.rejections
    if all_accepted and len(msg["readings"]) >= 8:
        assert fast is not None, "a valid canonical payload must not need the pydantic decoder"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
@example(b'{"v":1,"device":"m-001","seq":1,"readings":[' + b",".join(
    [b'{"ts":"2026-02-29T00:00:00Z","metric":"active_power","value":1,"unit":"kW"}'] * 8) + b"]}")
@example(b'{"v":1,"device":"m-001","seq":1,"readings":[' + b",".join(
    [b'{"ts":"2026-11-20T08:00:00Z","metric":"active_power","value":1,"unit":"kW","unit":"W"}'] * 8) + b"]}")
@example(b'{"v":1,"device":"m-001","seq":1,"readings":[' + b",".join(  # overflow on conversion: out_of_range
    [b'{"ts":"2026-11-20T07:00:00Z","metric":"active_energy_import","value":1e308,"unit":"MWh"}'] * 8) + b"]}")
@example(b'{"v":1,"device":"m-001","seq":1,"readings":[' + b",".join(  # digits of another script
    [b'{"ts":"\\u0662\\u0660\\u0662\\u0666-11-20T08:00:00Z","metric":"active_power","value":1,"unit":"kW"}'] * 8)
    + b"]}")
@example(b'{"v":1,"device":"m-001","seq":1,"readings":[' + b",".join(  # the right shape, an impossible date
    [b'{"ts":"2026-11-20T08:00:00+01:00","metric":"active_power","value":1,"unit":"kW"}'] * 7
    + [b'{"ts":"2026-02-30T00:00:00Z","metric":"active_power","value":1,"unit":"kW"}']) + b"]}")
@example(b'{"v":1,"device":"m-001","seq":1,"sent_at":"2026-02-30T00:00:00Z","readings":[' + b",".join(
    [b'{"ts":"2026-11-20T08:00:00Z","metric":"active_power","value":1,"unit":"kW"}'] * 8) + b"]}")
def test_mutated_payloads_are_never_accepted_unless_pydantic_accepts_them(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.integers(50, 4000))
def test_oversize_and_too_many_readings_follow_the_policy(msg: dict[str, Any], limit: int) -> None:
    raw = json.dumps(msg).encode()
    _check(raw, ValidationPolicy(max_message_bytes=limit))
    _check(raw, ValidationPolicy(max_readings=len(msg["readings"]) - 1))


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                    timezones=st.just(UTC)))
def test_postgres_microseconds_round_trip(ts: datetime) -> None:
    assert ts_from_pg_us(ts_to_pg_us(ts)) == ts


def test_combined_decoder_matches_pydantic_on_a_message_with_one_bad_reading() -> None:
    """A partly bad message is undecided by the fast path, so its rejections are pydantic's, reading by reading."""
    good = {"ts": "2026-11-20T07:00:00Z", "metric": "active_power", "value": 5.0, "unit": "kW"}
    items = [dict(good, ts=f"2026-11-20T07:{i:02d}:00Z") for i in range(10)]
    items[3]["unit"] = "kWh"
    raw = json.dumps({"v": 1, "device": "m-001", "seq": 1, "readings": items}).encode()
    assert decode_readings_columns(ADDRESS, raw, now=NOW) is None
    slow = decode_readings(ADDRESS, raw, now=NOW)
    assert [(r.index, r.reason.value) for r in slow.rejections] == [(3, "unit_mismatch")]
