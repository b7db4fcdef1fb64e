"""Strict JSON in the payload decoders: duplicate keys, string-only timestamps, storable birth/status strings."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import BIRTH_ADAPTER, READINGS_ADAPTER, STATUS_ADAPTER, RejectReason, decode_readings, parse_topic
from schemas.payload import DecodedDeviceMessage, ValidationPolicy, decode_birth, decode_status
from tests.schemas.jsongen import Arr, Obj, RawNumber, scalars, trees, write_json, write_string

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
READINGS = parse_topic("parkpulse/v1/park-a/m-1/readings")
BIRTH = parse_topic("parkpulse/v1/park-a/m-1/birth")
STATUS = parse_topic("parkpulse/v1/park-a/m-1/status")
TS = "2026-11-20T07:59:00Z"
READING = f'{{"ts": "{TS}", "metric": "active_power", "value": 2.5, "unit": "kW"}}'


def readings_raw(*readings: str, head: str = '"v": 1, "device": "m-1", "seq": 7') -> bytes:
    return f'{{{head}, "readings": [{", ".join(readings) or READING}]}}'.encode()


def only_rejection(decoded):
    assert decoded.readings == []
    assert len(decoded.rejections) == 1
    return decoded.rejections[0]


def assert_clean(detail: str) -> None:
    """A detail must be storable as PostgreSQL text: no NUL, no other control character, no surrogate."""
    assert detail.isprintable(), repr(detail)
    detail.encode("utf-8")


# --- reject reasons ---------------------------------------------------------------------------------------

def test_new_reject_reasons_have_stable_codes():
    assert RejectReason.DUPLICATE_KEY == "duplicate_key"
    assert RejectReason.UNREGISTERED == "unregistered"
    assert RejectReason.STORE_ERROR == "store_error"
    assert RejectReason("duplicate_key") is RejectReason.DUPLICATE_KEY


# --- duplicate keys -----------------------------------------------------------------------------------------

def test_duplicate_top_level_key_is_rejected():
    raw = readings_raw(head='"v": 1, "device": "other", "device": "m-1", "seq": 7')
    rejection = only_rejection(decode_readings(READINGS, raw, now=NOW))
    assert rejection.reason is RejectReason.DUPLICATE_KEY
    assert rejection.index is None
    assert rejection.detail == "member name 'device' appears more than once in one object"


def test_duplicate_key_inside_a_reading_is_rejected():
    twice = f'{{"ts": "{TS}", "metric": "voltage_l1", "metric": "active_power", "value": 2.5, "unit": "kW"}}'
    decoded = decode_readings(READINGS, readings_raw(READING, twice), now=NOW)
    rejection = only_rejection(decoded)
    assert rejection.reason is RejectReason.DUPLICATE_KEY
    assert decoded.whole_message_rejected  # the document is ambiguous: no reading of it is trusted
    assert "'metric'" in rejection.detail


def test_duplicate_key_is_reported_before_schema_errors():
    bad = '{"ts": 5, "ts": 6, "metric": "nope", "value": "x", "unit": "kW"}'
    rejection = only_rejection(decode_readings(READINGS, readings_raw(READING, bad), now=NOW))
    assert rejection.reason is RejectReason.DUPLICATE_KEY


def test_duplicate_key_spelled_with_an_escape_is_rejected():
    raw = readings_raw(head=r'"v": 1, "seq": 7, "device": "m-1", "s\u0065q": 8')
    assert only_rejection(decode_readings(READINGS, raw, now=NOW)).reason is RejectReason.DUPLICATE_KEY


def test_numeric_string_seq_is_still_accepted():  # a lax field takes the detector's exact fallback path
    decoded = decode_readings(READINGS, readings_raw(head='"v": 1, "device": "m-1", "seq": "7"'), now=NOW)
    assert (decoded.rejections, decoded.seq, len(decoded.readings)) == ([], 7, 1)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v": 1, "device": "m-1", "kind": "meter", "kind": "inverter"}',
        b'{"v": 1, "device": "m-1", "kind": "meter", "agent": {"id": "gw-1", "id": "gw-2"}}',
        b'{"v": 1, "device": "m-1", "kind": "meter", "ports": [{"n": 1}, {"n": 2, "n": 3}]}',
        b'{"v": 1, "device": "m-1", "kind": "meter", "multiplier": "2", "multiplier": 3}',
        b'{"v": 1, "v": 2, "device": "m-1", "kind": "meter"}',  # also a schema violation: duplicate wins
    ],
)
def test_duplicate_key_in_birth_is_rejected(raw):
    decoded = decode_birth(BIRTH, raw)
    assert decoded.message is None
    assert decoded.rejection is not None
    assert decoded.rejection.reason is RejectReason.DUPLICATE_KEY


def test_duplicate_key_in_status_is_rejected():
    decoded = decode_status(STATUS, b'{"v": 1, "device": "m-1", "online": true, "online": false}')
    assert decoded.rejection is not None
    assert decoded.rejection.reason is RejectReason.DUPLICATE_KEY


# --- timestamps must be strings ---------------------------------------------------------------------------

@pytest.mark.parametrize("ts", ["1763625540", "1763625540.5", "true", '"1763625540"', '"-1.5e9"', "null"])
def test_numeric_ts_is_rejected_and_neighbours_kept(ts):
    bad = f'{{"ts": {ts}, "metric": "active_power", "value": 2.5, "unit": "kW"}}'
    decoded = decode_readings(READINGS, readings_raw(READING, bad), now=NOW)
    assert len(decoded.readings) == 1
    [rejection] = decoded.rejections
    assert (rejection.reason, rejection.index) == (RejectReason.SCHEMA_VIOLATION, 1)
    assert rejection.detail == "ts: Input should be an ISO-8601 date-time string with a UTC offset"


@pytest.mark.parametrize("sent_at", ["1763625540", "1763625540.25", '"1763625540"'])
def test_numeric_sent_at_is_rejected(sent_at):
    raw = readings_raw(head=f'"v": 1, "device": "m-1", "seq": 7, "sent_at": {sent_at}')
    rejection = only_rejection(decode_readings(READINGS, raw, now=NOW))
    assert rejection.reason is RejectReason.SCHEMA_VIOLATION
    assert rejection.detail.startswith("sent_at: Input should be an ISO-8601 date-time string")
    for decode, topic, body in ((decode_birth, BIRTH, '"kind": "meter"'), (decode_status, STATUS, '"online": true')):
        decoded = decode(topic, f'{{"v": 1, "device": "m-1", {body}, "sent_at": {sent_at}}}'.encode())
        assert decoded.rejection is not None
        assert decoded.rejection.reason is RejectReason.SCHEMA_VIOLATION
        assert "sent_at" in decoded.rejection.detail


def test_timestamp_rules_hold_for_python_input_too():
    message = {"v": 1, "device": "m-1", "seq": 1, "readings": [{"ts": TS, "metric": "active_power", "value": 1.0,
                                                                 "unit": "kW"}]}
    assert READINGS_ADAPTER.validate_python(message)["readings"][0]["ts"] == datetime(2026, 11, 20, 7, 59, tzinfo=UTC)
    as_datetime = {**message, "sent_at": NOW}
    assert READINGS_ADAPTER.validate_python(as_datetime)["sent_at"] == NOW
    with pytest.raises(ValidationError, match="ISO-8601"):
        READINGS_ADAPTER.validate_python({**message, "sent_at": 1763625540})
    with pytest.raises(ValidationError, match="timezone"):
        READINGS_ADAPTER.validate_python({**message, "sent_at": "2026-11-20T08:00:00"})


# --- strings PostgreSQL cannot store ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (rb'{"v": 1, "device": "m-1", "kind": "x\u0000"}', "kind contains a control character (U+0000)"),
        (rb'{"v": 1, "device": "m-1", "kind": "x", "agent\u0000": "gw"}', "key 'agent\\x00' contains"),
        (rb'{"v": 1, "device": "m-1", "kind": "x", "firmware": "1.2\n"}', "firmware contains a control character"),
        (rb'{"v": 1, "device": "m-1", "kind": "x", "role": "a\u001fb"}', "role contains a control character (U+001F)"),
        (rb'{"v": 1, "device": "m-1", "kind": "x", "profile": "\u0007"}', "profile contains"),
        (rb'{"v": 1, "device": "m-1", "kind": "x", "agent": {"tags": ["ok", "\u0000"]}}', "agent.tags[1] contains"),
        (rb'{"v": 1, "device": "m-1", "kind": "x", "agent": {"a\u0001": 1}}', "key 'a\\x01' in agent contains"),
    ],
)
def test_nul_and_control_characters_in_birth_are_rejected(raw, where):
    decoded = decode_birth(BIRTH, raw)
    assert decoded.rejection is not None
    assert decoded.rejection.reason is RejectReason.SCHEMA_VIOLATION
    assert where in decoded.rejection.detail
    assert "PostgreSQL cannot store" in decoded.rejection.detail
    assert_clean(decoded.rejection.detail)
    with pytest.raises(ValidationError, match="PostgreSQL cannot store"):  # the adapter ingest calls today
        BIRTH_ADAPTER.validate_json(raw)


def test_nul_in_status_extra_field_is_rejected():
    decoded = decode_status(STATUS, rb'{"v": 1, "device": "m-1", "online": false, "reason": "lost\u0000"}')
    assert decoded.rejection is not None
    assert decoded.rejection.reason is RejectReason.SCHEMA_VIOLATION
    assert "reason contains a control character (U+0000)" in decoded.rejection.detail


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"v": 1, "device": "m-1", "kind": "\ud800"}',
        rb'{"v": 1, "device": "m-1", "kind": "x", "note": "a\udc00b"}',
        rb'{"v": 1, "device": "m-1", "kind": "x", "\ud800\u0041": 1}',
    ],
)
def test_lone_surrogate_in_birth_json_is_rejected(raw):
    # The JSON parser itself refuses a lone surrogate escape, so the rejection is invalid_json; what matters
    # is that nothing unstorable gets through and the detail is clean.
    decoded = decode_birth(BIRTH, raw)
    assert decoded.rejection is not None
    assert decoded.rejection.reason is RejectReason.INVALID_JSON
    assert "surrogate" in decoded.rejection.detail or "hex escape" in decoded.rejection.detail
    assert_clean(decoded.rejection.detail)
    with pytest.raises(ValidationError):
        BIRTH_ADAPTER.validate_json(raw)


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"role": "r\ud800"}, "role"),
        ({"note": "\udfff"}, "note contains a surrogate code point (U+DFFF)"),
        ({"\ud800": 1}, "Input should be a valid string"),  # pydantic refuses such a key itself
        ({"agent": {"ids": ["gw", "\ud83d"]}}, "agent.ids[1] contains a surrogate code point (U+D83D)"),
    ],
)
def test_lone_surrogate_in_birth_python_input_is_rejected(extra, where):
    with pytest.raises(ValidationError) as info:
        BIRTH_ADAPTER.validate_python({"v": 1, "device": "m-1", "kind": "meter", **extra})
    assert where in str(info.value)
    with pytest.raises(ValidationError, match="surrogate"):
        STATUS_ADAPTER.validate_python({"v": 1, "device": "m-1", "online": True, "x": "\ud800"})


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (rf'{{"ts": "{TS}", "metric": "active_power\u0000", "value": 1, "unit": "kW"}}', RejectReason.UNKNOWN_METRIC),
        (rf'{{"ts": "{TS}", "metric": "\u0000", "value": 1, "unit": "kW"}}', RejectReason.UNKNOWN_METRIC),
        (rf'{{"ts": "{TS}", "metric": "active_power", "value": 1, "unit": "k\u0000W"}}', RejectReason.UNIT_MISMATCH),
        (rf'{{"ts": "{TS}", "metric": "active_power", "value": 1, "unit": "kW", "x\u0000": 1}}',
         RejectReason.SCHEMA_VIOLATION),
        (rf'{{"ts": "{TS}", "metric": "\ud800", "value": 1, "unit": "kW"}}', RejectReason.INVALID_JSON),
        (rf'{{"ts": "{TS}", "metric": "active_power", "value": 1, "unit": "\udc00"}}', RejectReason.INVALID_JSON),
    ],
)
def test_nul_or_surrogate_in_metric_or_unit_is_rejected_cleanly(reading, reason):
    decoded = decode_readings(READINGS, readings_raw(reading), now=NOW)
    assert [r.reason for r in decoded.rejections] == [reason]
    assert_clean(decoded.rejections[0].detail)
    assert_clean(decoded.summary())


# --- valid messages ---------------------------------------------------------------------------------------

def test_valid_messages_are_accepted_as_before():
    raw = json.dumps({"v": 1, "device": "m-1", "seq": 9, "sent_at": "2026-11-20T08:00:01+08:00", "readings": [
        {"ts": TS, "metric": "active_energy_import", "value": 1500, "unit": "Wh", "quality": "estimated"},
        {"ts": "2026-11-20 15:59:30.250+08:00", "metric": "active_power", "value": 2.0, "unit": "kW"},
        {"ts": "2026-11-20t07:59:59z", "metric": "voltage_l1", "value": 230.1, "unit": "V", "quality": "good"},
    ]}, ensure_ascii=True, indent=2).encode()
    decoded = decode_readings(READINGS, raw, now=NOW)
    assert decoded.rejections == []
    assert decoded.seq == 9
    assert decoded.sent_at == datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC)
    assert [(r.metric, r.ts, r.value, r.quality) for r in decoded.readings] == [
        ("active_energy_import", datetime(2026, 11, 20, 7, 59, tzinfo=UTC), 1.5, 1),
        ("active_power", datetime(2026, 11, 20, 7, 59, 30, 250000, tzinfo=UTC), 2.0, 0),
        ("voltage_l1", datetime(2026, 11, 20, 7, 59, 59, tzinfo=UTC), 230.1, 0),
    ]


def test_valid_birth_and_status_are_accepted_as_before():
    birth = {"v": 1, "device": "m-1", "kind": "electricity_meter", "carrier": "electricity", "metering_level": 2,
             "multiplier": 200.0, "register_max": 199999998.0, "firmware": None, "sent_at": "2026-11-20T08:00:00Z",
             "agent": "gw-1", "meta": {"名称": "1号变压器 \U0001f600", "tags": ["a", {"b": [1, 2.5, None]}],
                                       "note": ": \"quoted\" \\ /"}}
    for ensure_ascii in (True, False):
        raw = json.dumps(birth, ensure_ascii=ensure_ascii).encode()
        decoded = decode_birth(BIRTH, raw)
        assert decoded == DecodedDeviceMessage(BIRTH_ADAPTER.validate_json(raw))
        assert decoded.message is not None
        assert decoded.message["sent_at"] == NOW
        assert decoded.message["meta"] == birth["meta"]
    status = decode_status(STATUS, b'{"v": 1, "device": "m-1", "online": false, "reason": "connection_lost"}')
    assert status == DecodedDeviceMessage({"v": 1, "device": "m-1", "online": False, "reason": "connection_lost"})


@pytest.mark.parametrize(
    ("decode", "topic", "raw", "reason"),
    [
        (decode_birth, BIRTH, b'{"v": 1, "device": "m-2", "kind": "meter"}', RejectReason.DEVICE_MISMATCH),
        (decode_status, STATUS, b'{"v": 1, "device": "m-2", "online": true}', RejectReason.DEVICE_MISMATCH),
        (decode_birth, BIRTH, b'{"v": 1, "device": "m-1"}', RejectReason.SCHEMA_VIOLATION),
        (decode_birth, BIRTH, b'{"v": 1, "device": "m-1", "kind": ', RejectReason.INVALID_JSON),
        (decode_status, STATUS, b'\xff{}', RejectReason.INVALID_UTF8),
        (decode_status, STATUS, b" " * 2_000_000, RejectReason.OVERSIZED),
    ],
)
def test_birth_and_status_other_rejections(decode, topic, raw, reason):
    decoded = decode(topic, raw)
    assert decoded.message is None
    assert decoded.rejection is not None
    assert decoded.rejection.reason is reason
    assert_clean(decoded.rejection.detail)


def test_exported_json_schema_keeps_timestamps_as_date_time_strings():
    schema = READINGS_ADAPTER.json_schema()
    assert schema["$defs"]["ReadingIn"]["properties"]["ts"] == {"format": "date-time", "title": "Ts", "type": "string"}
    assert schema["properties"]["sent_at"]["format"] == "date-time"
    assert BIRTH_ADAPTER.json_schema()["properties"]["sent_at"]["type"] == "string"
    assert STATUS_ADAPTER.json_schema()["additionalProperties"] is True


# --- properties -------------------------------------------------------------------------------------------

_NAMES = ["ts", "metric", "value", "unit", "quality"]
_VALID_READING = st.fixed_dictionaries(
    {"ts": st.integers(0, 3000).map(lambda s: (NOW - timedelta(seconds=s)).isoformat()),
     "metric": st.sampled_from(["active_power", "voltage_l1", "active_energy_import"]),
     "value": st.floats(0, 1000)},
    optional={"quality": st.sampled_from(["good", "suspect"])},
).map(lambda r: {**r, "unit": {"active_power": "kW", "voltage_l1": "V", "active_energy_import": "kWh"}[r["metric"]]})


def _as_tree(value):
    if isinstance(value, dict):
        return Obj(tuple((k, _as_tree(v)) for k, v in value.items()))
    if isinstance(value, list):
        return Arr(tuple(_as_tree(v) for v in value))
    return value


@settings(max_examples=150)
@given(st.lists(_VALID_READING, min_size=1, max_size=6), st.booleans(), st.booleans(), st.data())
def test_readings_hot_path_flags_exactly_the_messages_with_a_repeated_name(readings, sent_at, seq_text, data):
    rnd = data.draw(st.randoms(use_true_random=False))
    envelope = {"v": 1, "device": "m-1", "seq": "7" if seq_text else 7}
    if sent_at:
        envelope["sent_at"] = NOW.isoformat()
    tree = _as_tree({**envelope, "readings": readings})  # readings last
    where = data.draw(st.sampled_from([None, -1, *range(len(readings))]))
    if where is not None:  # repeat a name, with a value that is itself valid: only the repetition is wrong
        pairs = tree.pairs if where == -1 else tree.pairs[-1][1].items[where].pairs
        name, value = data.draw(st.sampled_from([p for p in pairs if p[0] != "readings"]))
        twice = Obj((*pairs, (name, value)))
        if where == -1:
            tree = twice
        else:
            items = list(tree.pairs[-1][1].items)
            items[where] = twice
            tree = Obj((*tree.pairs[:-1], ("readings", Arr(tuple(items)))))
    decoded = decode_readings(READINGS, write_json(tree, rnd).encode(), now=NOW)
    if where is None:
        assert decoded.rejections == []
        assert len(decoded.readings) == len(readings)
    else:
        assert only_rejection(decoded).reason is RejectReason.DUPLICATE_KEY


def _nested(depth: int) -> object:
    value: object = Obj((("k", 1),))
    for i in range(depth):
        value = Arr((value,)) if i % 2 else Obj((("k", value),))
    return value


_WILD_JSON = (
    trees(unique=False, max_leaves=30)
    | st.integers(0, 400).map(_nested)
    | st.lists(st.tuples(st.text(max_size=3), scalars()), max_size=300).map(lambda ps: Obj(tuple(ps)))
)
_WILD_STRINGS = st.sampled_from(['"\\u0000"', '"\\ud800"', '"a\\udfff"', '"\\ud83d\\ude00"', '"\x00"', '"\\"'])


@settings(max_examples=150)
@given(_WILD_JSON, st.sampled_from(["ts", "metric", "unit", "value", "quality", "extra"]), _WILD_STRINGS,
       st.randoms(use_true_random=False))
def test_decoders_never_raise_on_arbitrary_json(value, field, wild, rnd):
    body = write_json(value, rnd)
    reading = {'"ts"': write_string(TS, rnd), '"metric"': '"active_power"', '"value"': "1.5", '"unit"': '"kW"'}
    odd = rnd.choice([body, wild, RawNumber("1e999").text, "-123456789012345678901234567890"])
    reading[wild if field == "extra" else f'"{field}"'] = odd  # "extra": an unknown key, spelled wildly
    reading_text = "{" + ", ".join(f"{k}: {v}" for k, v in reading.items()) + "}"
    documents = [
        body,
        readings_raw(body).decode(errors="surrogatepass"),
        readings_raw(READING, reading_text).decode(errors="surrogatepass"),
        f'{{"v": 1, "device": "m-1", "kind": {wild}, "x": {body}}}',
        f'{{"v": 1, "device": "m-1", "online": true, {wild}: {body}}}',
    ]
    for text in documents:
        raw = text.encode("utf-8", errors="surrogatepass")
        decoded = decode_readings(READINGS, raw, now=NOW)
        assert not (decoded.readings and decoded.whole_message_rejected)
        for rejection in decoded.rejections:
            assert_clean(rejection.detail)
        for decode, topic in ((decode_birth, BIRTH), (decode_status, STATUS)):
            outcome = decode(topic, raw)
            assert (outcome.message is None) != (outcome.rejection is None)
            if outcome.rejection is not None:
                assert_clean(outcome.rejection.detail)


@given(st.binary(max_size=2048))
def test_decoders_never_raise_on_arbitrary_bytes(raw):
    decoded = decode_readings(READINGS, raw, now=NOW, policy=ValidationPolicy(max_message_bytes=1024))
    assert decoded.readings == []
    for rejection in decoded.rejections:
        assert_clean(rejection.detail)
    for decode, topic in ((decode_birth, BIRTH), (decode_status, STATUS)):
        outcome = decode(topic, raw)
        assert outcome.message is None or isinstance(outcome.message, dict)
