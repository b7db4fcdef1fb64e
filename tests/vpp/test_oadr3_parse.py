"""OpenADR 3 event → IncomingEvent (pure): signals, units, timing, versions, report requests; property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.openadr3_vtn import event_body, openadr3_spec
from vpp._event_model import EventSource, EventStatus, IncomingEvent, ReportKind, SignalKind
from vpp._oadr3_parse import (
    VERSION_EPOCH,
    addresses,
    cancelled_copy,
    next_version,
    parse_duration,
    parse_event,
    version_of,
)
from vpp._oadr3_reports import build_report, iso_duration, report_schedule
from vpp.errors import Oadr3EventError

T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)


def _event(**overrides: Any) -> dict[str, Any]:
    body = event_body("prog-1", start=T0, step=STEP, values=[500.0, 450.0])
    return {**body, "id": "event-7", "objectType": "EVENT", "createdDateTime": "2026-06-30T10:00:00Z",
            "modificationDateTime": "2026-06-30T10:05:00.250Z", **overrides}


def _parse_or_error(obj: Any) -> IncomingEvent | str:
    """The parsed event, or the message of the clear error (anything else propagates and fails the test)."""
    try:
        return _parse(obj)
    except Oadr3EventError as exc:
        return str(exc)


def _parse(obj: Any, *, at: datetime = T0 - timedelta(hours=3)) -> IncomingEvent:
    return parse_event(obj, vtn_id="http://vtn", park_id="park-a", received_at=at)


def test_an_import_capacity_limit_becomes_a_kw_setpoint_per_interval() -> None:
    event = _parse(_event())
    assert event.source is EventSource.OADR3
    assert event.vtn_event_id == "event-7"
    assert event.signal_kind is SignalKind.SETPOINT_KW
    assert event.direction == "up"
    assert [(i.start, i.duration, i.value, i.unit) for i in event.intervals] == [
        (T0, STEP, 500.0, "kW"), (T0 + STEP, STEP, 450.0, "kW")]
    assert event.status is EventStatus.FAR
    assert event.program_id == "prog-1"
    assert event.modification_number == int((datetime(2026, 6, 30, 10, 5, tzinfo=UTC) - VERSION_EPOCH).total_seconds())
    assert event.modification_number < 2**31  # the intake stores it in a 32-bit column
    assert event.report_request is not None
    assert event.report_request.interval == STEP
    assert set(event.report_request.kinds) == {ReportKind.USAGE, ReportKind.BASELINE}


def test_units_signals_and_status() -> None:
    mw = _event(payloadDescriptors=[{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "MW"}])
    assert [i.value for i in _parse(mw).intervals] == [500_000.0, 450_000.0]
    export = _event(intervals=[{"id": 0, "payloads": [{"type": "EXPORT_CAPACITY_LIMIT", "values": [100]}]}],
                    payloadDescriptors=None)
    parsed = _parse(export, at=T0 + timedelta(minutes=5))
    assert (parsed.direction, parsed.intervals[0].value, parsed.status) == ("down", -100.0, EventStatus.ACTIVE)
    simple = _event(intervals=[{"id": 0, "payloads": [{"type": "SIMPLE", "values": [2]}]}])
    parsed = _parse(simple, at=T0 - timedelta(minutes=30))
    assert (parsed.signal_kind, parsed.intervals[0].unit, parsed.status) == (SignalKind.SIMPLE, "level",
                                                                             EventStatus.NEAR)
    relative = _event(intervals=[{"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-40]}]}],
                      payloadDescriptors=None)
    assert _parse(relative).intervals[0].value == 40.0
    assert _parse(_event(), at=T0 + timedelta(hours=2)).status is EventStatus.COMPLETED


def test_an_interval_period_of_its_own_wins_and_explicit_versions_are_used() -> None:
    obj = _event(modificationNumber=3, intervals=[
        {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [1]}],
         "intervalPeriod": {"start": "2026-07-01T08:00:00+02:00", "duration": "PT1H"}},
        {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [2]}]}])
    event = _parse(obj)
    assert event.modification_number == 3
    assert [(i.start, i.duration, i.value) for i in event.intervals] == [(T0, STEP, 2.0),
                                                                          (T0, timedelta(hours=1), 1.0)]


@pytest.mark.parametrize(("change", "message"), [
    ({"intervals": []}, "no intervals"),
    ({"id": None}, "event.id"),
    ({"intervals": [{"id": 0, "payloads": [{"type": "ALERT_FIRE", "values": ["x"]}]}]}, "no payload"),
    ({"intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [7]}]}]}, "SIMPLE level 7"),
    ({"intervalPeriod": {"start": "2026-07-01T06:00:00", "duration": "PT15M"}}, "no UTC offset"),
    ({"intervalPeriod": {"start": "2026-07-01T06:00:00Z", "duration": "P1M"}}, "years or months"),
    ({"intervalPeriod": {"start": "2026-07-01T06:00:00Z", "duration": "PT0S"}}, "positive"),
    ({"payloadDescriptors": [{"payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KWH"}]}, "not power"),
])
def test_unusable_events_fail_with_a_message_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(Oadr3EventError, match=message):
        _parse(_event(**change))


def test_targets_version_and_cancellation() -> None:
    assert addresses(_event(), ven_name="v", park_id="park-a")
    assert addresses(_event(targets=[{"type": "VEN_NAME", "values": ["v"]}]), ven_name="v", park_id="x")
    assert addresses(_event(targets=[{"type": "GROUP", "values": ["park-a"]}]), ven_name="v", park_id="park-a")
    assert not addresses(_event(targets=[{"type": "VEN_NAME", "values": ["w"]}]), ven_name="v", park_id="p")
    assert version_of({"createdDateTime": "2020-01-01T00:00:01Z"}) == 1
    assert version_of({"createdDateTime": "1970-01-01T00:00:01Z"}) == 0
    event = _parse(_event())
    gone = cancelled_copy(event, received_at=T0)
    assert gone.status is EventStatus.CANCELLED
    assert gone.modification_number == event.modification_number + 1


def test_two_modifications_within_one_second_are_two_versions() -> None:
    first = _parse(_event(modificationDateTime="2026-06-30T10:05:00.100Z"))
    same_second = _parse(_event(modificationDateTime="2026-06-30T10:05:00.900Z"))
    assert first.modification_number == same_second.modification_number
    newer = next_version(first, same_second)
    assert newer is not None
    assert newer.modification_number == first.modification_number + 1
    assert next_version(newer, _parse(_event(modificationDateTime="2026-06-30T10:05:00.900Z"))) is None
    assert next_version(newer, first) is None  # older
    later = _parse(_event(modificationDateTime="2026-06-30T10:05:07Z"))
    assert next_version(newer, later) == later


class _Values:
    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 420.0 if at < T0 + STEP else None

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 600.0

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 80.0


def test_reports_follow_the_descriptors_and_validate_against_the_spec() -> None:
    event = _parse(_event(reportDescriptors=[{"payloadType": "DELTA_USAGE", "frequency": 2},
                                             {"payloadType": "USAGE"}, {"payloadType": "UP_REGULATION_AVAILABLE"}]))
    schedule = report_schedule(event)
    assert [(d.index, d.due_at, len(d.intervals)) for d in schedule] == [(0, T0 + 2 * STEP, 2)]
    report = build_report(event, schedule[0], dr_event_id="dr-1", client_name="ven", values=_Values())
    assert report is not None
    assert openadr3_spec().schema_errors("report", report) == []
    rows = report["resources"][0]["intervals"]
    assert rows[0]["payloads"] == [{"type": "DELTA_USAGE", "values": [-180.0]}, {"type": "USAGE", "values": [420.0]},
                                   {"type": "UP_REGULATION_AVAILABLE", "values": [80.0]}]
    assert rows[1]["payloads"] == [{"type": "UP_REGULATION_AVAILABLE", "values": [80.0]}]  # usage unknown: left out
    every_interval = _parse(_event())
    assert [d.due_at for d in report_schedule(every_interval)] == [T0 + STEP, T0 + 2 * STEP]
    assert report_schedule(_parse(_event(reportDescriptors=None))) == ()


@given(st.floats(min_value=0.001, max_value=10 * 86400, allow_nan=False))
def test_iso_durations_round_trip(seconds: float) -> None:
    seconds = round(seconds, 3)
    text = iso_duration(seconds)
    assert openadr3_spec().schema_errors("duration", text) == []
    assert parse_duration(text, "x").total_seconds() == pytest.approx(seconds, abs=1e-6)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
PAYLOAD_TYPES = st.sampled_from(["IMPORT_CAPACITY_LIMIT", "EXPORT_CAPACITY_LIMIT", "SIMPLE", "PRICE",
                                 "DISPATCH_SETPOINT_RELATIVE", "ALERT_OTHER", ""])
FIELD = st.sampled_from(["id", "programID", "intervals", "intervalPeriod", "payloadDescriptors", "targets",
                         "reportDescriptors", "priority", "modificationDateTime", "modificationNumber"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_arbitrary_json_gives_an_event_or_a_clear_error(obj: Any) -> None:
    event = _parse_or_error(obj)
    if isinstance(event, str):
        assert event.startswith(("event", "payloadDescriptors")), event
        return
    assert event.intervals


DURATIONS = st.sampled_from(["PT15M", "PT1H", "PT0.5S", "P1DT2H"]) | st.from_regex(
    r"\A-?P(\d{1,12}[DW])?(T(\d{1,12}H)?(\d{1,3}M)?(\d{1,3}(\.\d{1,3})?S)?)?\Z")
TIMES = (st.just("2026-07-01T06:00:00Z")
         | st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda t: t.isoformat())
         | st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"]))
NUMBERS = (st.integers(0, 3) | st.floats(-1e6, 1e6) | st.integers(0, 3) | st.integers() | st.floats()
           | st.sampled_from([10**400, True]))


@st.composite
def shaped_events(draw: st.DrawFn) -> dict[str, Any]:
    """Spec-shaped events with extreme times, durations and values, and some fields replaced by arbitrary JSON
    (the edge cases a VTN could send)."""
    values = draw(st.lists(NUMBERS, min_size=1, max_size=5))
    body = _event(intervals=[{"id": i, "payloads": [{"type": draw(PAYLOAD_TYPES), "values": [v]}]}
                             for i, v in enumerate(values)],
                  intervalPeriod={"start": draw(TIMES), "duration": draw(DURATIONS),
                                  "randomizeStart": draw(DURATIONS)})
    for name in draw(st.lists(FIELD, max_size=2, unique=True) | st.just([])):
        body[name] = draw(JSON)
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_events())
def test_spec_shaped_events_parse_consistently_or_fail_clearly(obj: dict[str, Any]) -> None:
    event = _parse_or_error(obj)
    if isinstance(event, str):
        assert event.startswith(("event", "payloadDescriptors")), event
        return
    assert event.intervals
    assert all(i.duration > timedelta(0) for i in event.intervals)
    assert event.vtn_event_id == obj["id"]
    assert event.program_id == obj["programID"]
    assert event.start is not None
    assert event.end is not None
    assert event.start < event.end
    if event.signal_kind is SignalKind.SIMPLE:
        assert {i.value for i in event.intervals} <= {0.0, 1.0, 2.0, 3.0}


class _Arbitrary:
    """Live values as a provider might answer: unknown, zero, negative, huge, not finite."""

    def __init__(self, usage: float | None, baseline: float | None, available: float | None) -> None:
        self.answers = (usage, baseline, available)

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return self.answers[0]

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return self.answers[1]

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return self.answers[2]


KW = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped_events(), KW, KW, KW,
       st.lists(st.sampled_from(["USAGE", "BASELINE", "DELTA_USAGE", "DEMAND", "UP_REGULATION_AVAILABLE",
                                 "OTHER"]), max_size=4))
def test_every_report_the_ven_builds_is_valid_against_the_spec(
        obj: dict[str, Any], usage: float | None, baseline: float | None, available: float | None,
        asked: list[str]) -> None:
    obj["reportDescriptors"] = [{"payloadType": p, "frequency": 1} for p in asked]
    event = _parse_or_error(obj)
    if isinstance(event, str):
        return
    for due in report_schedule(event):
        report = build_report(event, due, dr_event_id="dr-1", client_name="ven", values=_Arbitrary(
            usage, baseline, available))
        if report is not None:
            assert openadr3_spec().schema_errors("report", report) == []
