"""schemas.uplink_wire: every message round-trips in both profiles; any bytes give a clear error, never a crash."""

from __future__ import annotations

import contextlib
import json
import string
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.errors import (
    UplinkDecodeError,
    UplinkProfileError,
    UplinkRequestRejected,
    UplinkTransientError,
    UplinkWireError,
)
from schemas.uplink_record import InstrumentEntry, RecordAck, UplinkRecord
from schemas.uplink_wire import (
    PROFILES_DIR,
    DataRequest,
    DataResponse,
    InstrumentRequest,
    PlatformError,
    RegisterAck,
    TokenGrant,
    TokenRequest,
    UnitInfo,
    UnitInfoRequest,
    decode_body,
    decode_data_response,
    encode_body,
    encode_data_request,
    load_wire_profile,
    parse_wire_profile,
    profile_names,
)
from schemas.uplink_wire_json import json_schemas

PROFILES = [load_wire_profile(name) for name in ("national-json", "guangdong-2013")]
KINDS = {TokenRequest: "token_request", TokenGrant: "token_grant", DataRequest: "data_request",
         DataResponse: "data_response", InstrumentRequest: "instrument_request",
         UnitInfoRequest: "unit_info_request", RegisterAck: "register_ack", PlatformError: "error"}

# Text both formats carry faithfully: no surrogates, no C0 controls (XML 1.0), no U+FFFE/U+FFFF.
text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
               max_size=40)
code = st.text(string.ascii_letters + string.digits + "-_.|:", min_size=1, max_size=30)
finite = st.floats(allow_nan=False, allow_infinity=False)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
aware = st.builds(lambda d, tz: d.replace(tzinfo=tz),
                  st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)), offsets)
records = st.builds(
    UplinkRecord, enterprise_code=st.just("91440300MA5TEST01X"), record_key=code,
    revision=st.integers(1, 2**31 - 1), data_item_code=code,
    period=st.sampled_from(["15min", "hour", "day", "month"]), period_start=aware, value=finite,
    unit=st.text(string.ascii_letters + "^0123456789/", min_size=1, max_size=10),
    quality=st.sampled_from(["measured", "estimated", "manual"]), completeness=st.floats(0.0, 1.0),
    meter_codes=st.lists(code, max_size=3).map(tuple), computed_at=aware)
instruments = st.builds(
    InstrumentEntry, meter_code=code, name=text, carrier=code, instrument_type=code,
    accuracy_class=st.none() | code, calibration_date=st.none() | st.dates(date(1990, 1, 1), date(2200, 1, 1)),
    metering_level=st.none() | st.integers(1, 3), data_item_codes=st.lists(code, max_size=3).map(tuple))
acks = st.builds(RecordAck, record_key=code, revision=st.integers(1, 10**6), accepted=st.booleans(),
                 reason=st.none() | text)
messages = st.one_of(
    st.builds(TokenRequest, client_id=code, secret=text.filter(bool)),
    st.builds(TokenGrant, access_token=code, expires_in_s=st.integers(1, 10_000_000)),
    st.builds(DataRequest, upload_id=code, enterprise_code=st.just("91440300MA5TEST01X"),
              records=st.lists(records, min_size=1, max_size=4).map(tuple)),
    st.builds(DataResponse, acks=st.lists(acks, max_size=4).map(tuple)),
    st.builds(InstrumentRequest, upload_id=code, enterprise_code=code,
              entries=st.lists(instruments, max_size=3).map(tuple)),
    st.builds(UnitInfoRequest, upload_id=code, info=st.builds(
        UnitInfo, enterprise_code=code, name=text.filter(bool), industry_code=code, region_code=code, address=text,
        contact_name=text, contact_phone=text)),
    st.builds(RegisterAck, accepted=st.booleans(), reason=st.none() | text,
              rejected_meters=st.lists(st.tuples(code, text), max_size=2).map(tuple)),
    st.builds(PlatformError, code=code, message=text))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages)
def test_every_message_round_trips(profile: Any, message: Any) -> None:
    body = encode_body(profile, message)
    assert decode_body(profile, body, KINDS[type(message)]) == message


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("kind", sorted(set(KINDS.values())))
@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_give_a_decode_error_never_a_crash(profile: Any, kind: str, body: bytes) -> None:
    with contextlib.suppress(UplinkDecodeError):
        decode_body(profile, body, kind)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@settings(max_examples=100, deadline=None)
@given(message=messages, data=st.data())
def test_mutated_valid_bodies_give_a_decode_error_or_a_message(profile: Any, message: Any, data: st.DataObject) -> None:
    body = bytearray(encode_body(profile, message))
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(UplinkDecodeError):
        decode_body(profile, bytes(body), KINDS[type(message)])


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(status=st.integers(100, 599), body=st.binary(max_size=100))
def test_any_answer_to_a_data_request_is_acks_or_a_wire_error(profile: Any, status: int, body: bytes) -> None:
    record = UplinkRecord("E", "k", 1, "E01", "day", datetime(2026, 12, 1, tzinfo=UTC), 1.0, "kWh", "measured",
                          1.0, (), datetime(2026, 12, 2, tzinfo=UTC))
    with contextlib.suppress(UplinkWireError):
        assert len(decode_data_response(profile, status, body, [record])) == 1


def test_an_answer_that_leaves_out_a_record_is_resent() -> None:
    profile = PROFILES[0]
    sent = [UplinkRecord("E", f"k{i}", 1, "E01", "day", datetime(2026, 12, 1, tzinfo=UTC), 1.0, "kWh", "measured",
                         1.0, (), datetime(2026, 12, 2, tzinfo=UTC)) for i in range(2)]
    body = encode_body(profile, DataResponse((RecordAck("k0", 1, True),)))
    with pytest.raises(UplinkTransientError, match="1 of 2"):
        decode_data_response(profile, 200, body, sent)
    with pytest.raises(UplinkRequestRejected):
        decode_data_response(profile, 400, encode_body(profile, PlatformError("BAD_REQUEST", "no")), sent)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_text_the_format_cannot_carry_is_refused_on_encode(profile: Any) -> None:
    bad = UplinkRecord("E", "k\x00", 1, "E01", "day", datetime(2026, 12, 1, tzinfo=UTC), float("nan"), "kWh",
                       "measured", 1.0, (), datetime(2026, 12, 2, tzinfo=UTC))
    with pytest.raises(UplinkWireError):
        encode_data_request(profile, [bad], upload_id="u")


def test_xml_declaring_an_unknown_encoding_is_a_decode_error() -> None:
    # found by hypothesis (a mutated declaration): expat raised LookupError, which no caller expects
    body = b'<?xml version="1.0" encoding="Atf-8"?><root><common><type>login</type></common></root>'
    with pytest.raises(UplinkDecodeError, match="cannot be read"):
        decode_body(PROFILES[1], body, "token_request")


def test_xml_with_a_doctype_is_refused() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<root><common><type>login</type></common></root>")
    with pytest.raises(UplinkDecodeError, match="DOCTYPE"):
        decode_body(PROFILES[1], bomb, "token_request")


def test_the_json_schema_files_match_the_models() -> None:
    folder = PROFILES_DIR / "national-json"
    for name, schema in json_schemas().items():
        path = folder / f"{name}.schema.json"
        assert json.loads(path.read_text(encoding="utf-8")) == schema, (
            f"{path} is stale: regenerate with python -c 'from schemas.uplink_wire_json import json_schemas' …")


def test_every_profile_states_what_is_verified_and_what_is_assumed() -> None:
    assert {"national-json", "guangdong-2013"} <= set(profile_names())
    for name in profile_names():
        provenance = load_wire_profile(name).provenance
        assert any(text.startswith("verified:") for text in provenance.values())
        assert any(text.startswith("assumed:") for text in provenance.values())


def _raw(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROFILES_DIR / name / "wire.yaml").read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw.pop("paths"), "missing field 'paths'"),
    (lambda raw: raw.update(body_format="csv"), "body_format"),
    (lambda raw: raw["period_codes"].pop("day"), "period_codes"),
    (lambda raw: raw["quality_codes"].update(manual="0", measured="0"), "share one wire code"),
    (lambda raw: raw["provenance"].update(paths="probably"), "verified:, assumed:"),
    (lambda raw: raw["paths"].update(data="energy"), "paths.data"),
])
def test_a_broken_profile_names_what_to_fix(change: Any, message: str) -> None:
    raw = _raw("guangdong-2013")
    change(raw)
    with pytest.raises(UplinkProfileError, match=message):
        parse_wire_profile(raw, "wire.yaml")


def test_an_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UplinkProfileError, match="national-json"):
        load_wire_profile("nowhere")
