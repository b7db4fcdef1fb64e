"""OpenADR 2.0b event parsing: property tests over openleadr's own XML serializer and parser, and the
signal/interval rules (units, contiguous intervals, direction from delta signs, malformed events)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openleadr import objects
from openleadr.messaging import create_message, parse_message

from vpp._event_model import EventStatus, SignalKind
from vpp._oadr2_parse import Oadr2ParseError, kw_factor, parse_event, parse_intervals, pick_signal, signal_kind

T0 = datetime(2026, 7, 15, 6, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 7, 15, 5, 0, tzinfo=UTC)
SCALES = {"none": 1e-3, "k": 1.0, "M": 1e3}

durations = st.integers(min_value=60, max_value=4 * 3600).map(lambda s: timedelta(seconds=s))
payloads = st.floats(min_value=-5000, max_value=5000, allow_nan=False).map(lambda v: round(v, 3))


def _event(signals: list[Any], *, modification: int = 0, status: str = "far", resources: tuple[str, ...] = (),
           startafter: timedelta | None = None) -> Any:
    first = signals[0].intervals
    total = sum((i.duration for i in first), timedelta(0))
    targets = [objects.Target(ven_id="ven-1"), *(objects.Target(resource_id=r) for r in resources)]
    return objects.Event(
        event_descriptor=objects.EventDescriptor(event_id="evt-42", modification_number=modification,
                                                 market_context="http://program.test/dr", event_status=status,
                                                 created_date_time=RECEIVED, priority=1),
        active_period=objects.ActivePeriod(dtstart=T0, duration=total,
                                           tolerance={"startafter": startafter} if startafter else None),
        event_signals=signals, targets=targets, response_required="always")


def _intervals(durs: list[timedelta], values: list[float]) -> list[Any]:
    out, start = [], T0
    for uid, (d, v) in enumerate(zip(durs, values, strict=True)):
        out.append(objects.Interval(dtstart=start, duration=d, signal_payload=v, uid=uid))
        start += d
    return out


def _through_xml(event: Any) -> dict[str, Any]:
    """What openleadr's client hands on_event: the event serialised to 2.0b XML and parsed back."""
    _, payload = parse_message(create_message("oadrDistributeEvent", request_id="r", vtn_id="VTN", events=[event]))
    return dict(payload["events"][0])


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(min_value=1, max_value=5), scale=st.sampled_from(sorted(SCALES)),
       modification=st.integers(min_value=0, max_value=10_000))
def test_load_dispatch_delta_round_trips_through_openleadr_xml(data: st.DataObject, n: int, scale: str,
                                                                modification: int) -> None:
    durs = data.draw(st.lists(durations, min_size=n, max_size=n))
    values = data.draw(st.lists(payloads, min_size=n, max_size=n))
    signal = objects.EventSignal(intervals=_intervals(durs, values), signal_name="LOAD_DISPATCH",
                                 signal_type="delta", signal_id="s1",
                                 measurement=objects.Measurement(name="powerReal", description="RealPower",
                                                                 unit="W", scale=scale))
    raw = _through_xml(_event([signal], modification=modification))
    event = parse_event(raw, vtn_id="VTN", park_id="p1", received_at=RECEIVED)
    assert event.signal_kind is SignalKind.TARGET_KW
    assert event.modification_number == modification
    assert event.key == ("oadr2", "VTN", "evt-42")
    assert [i.duration for i in event.intervals] == durs
    assert [i.value for i in event.intervals] == pytest.approx([abs(v) * SCALES[scale] for v in values])
    assert all(i.unit == "kW" for i in event.intervals)
    for before, after in zip(event.intervals, event.intervals[1:], strict=False):
        assert before.end == after.start  # contiguous
    net = sum(v * d.total_seconds() for v, d in zip(values, durs, strict=True))
    assert event.direction == ("down" if net > 0 else "up")
    assert event.start == T0
    json.dumps(dict(event.raw))  # the audit copy is plain JSON


@settings(max_examples=40, deadline=None)
@given(levels=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=6),
       resources=st.lists(st.sampled_from(["bess", "hvac-1", "ev"]), max_size=2, unique=True),
       startafter=st.one_of(st.none(), st.integers(min_value=1, max_value=900).map(lambda s: timedelta(seconds=s))))
def test_simple_levels_targets_and_randomisation(levels: list[int], resources: list[str],
                                                 startafter: timedelta | None) -> None:
    intervals = _intervals([timedelta(minutes=15)] * len(levels), [float(v) for v in levels])
    signal = objects.EventSignal(intervals=intervals,
                                 signal_name="SIMPLE", signal_type="level", signal_id="s1")
    raw = _through_xml(_event([signal], resources=tuple(resources), startafter=startafter))
    event = parse_event(raw, vtn_id="VTN", park_id="p1", received_at=RECEIVED)
    assert event.signal_kind is SignalKind.SIMPLE
    assert [i.value for i in event.intervals] == [float(v) for v in levels]
    assert {i.unit for i in event.intervals} == {"level"}
    assert event.direction == "up"
    assert set(event.target_resources) == set(resources)
    assert event.randomization == (startafter or timedelta(0))
    assert event.program_id == "http://program.test/dr"


@given(durs=st.lists(durations, min_size=1, max_size=6), values=st.lists(payloads, min_size=6, max_size=6))
def test_intervals_without_dtstart_follow_each_other_from_the_period_start(durs: list[timedelta],
                                                                          values: list[float]) -> None:
    signal = {"intervals": [{"duration": d, "signal_payload": v, "uid": k}
                            for k, (d, v) in reversed(list(enumerate(zip(durs, values, strict=False))))]}
    intervals = parse_intervals(signal, T0, 1.0)
    assert [i.duration for i in intervals] == durs  # ordered by uid, not by arrival
    assert intervals[0].start == T0
    assert intervals[-1].end == T0 + sum(durs, timedelta(0))


def test_signal_choice_and_kinds() -> None:
    price = {"signal_name": "ELECTRICITY_PRICE", "signal_type": "price"}
    simple = {"signal_name": "SIMPLE", "signal_type": "level"}
    dispatch = {"signal_name": "LOAD_DISPATCH", "signal_type": "setpoint"}
    assert pick_signal([price, simple]) is simple
    assert pick_signal([price, simple, dispatch]) is dispatch
    assert signal_kind(price) is SignalKind.PRICE
    assert signal_kind(dispatch) is SignalKind.SETPOINT_KW
    assert signal_kind({"signal_name": "LOAD_CONTROL", "signal_type": "x-loadControlSetpoint"}) \
        is SignalKind.SETPOINT_KW
    assert signal_kind({"signal_name": "LOAD_CONTROL", "signal_type": "x-loadControlPercentOffset"}) \
        is SignalKind.UNSUPPORTED
    assert kw_factor({"powerReal": {"item_units": "W", "si_scale_code": "M"}}) == 1000.0
    assert kw_factor({}) == 1.0  # no item base: kW


def _valid() -> dict[str, Any]:
    return {"event_descriptor": {"event_id": "e", "modification_number": 1, "event_status": "active"},
            "active_period": {"dtstart": T0, "duration": timedelta(hours=1)},
            "event_signals": [{"signal_name": "LOAD_DISPATCH", "signal_type": "delta",
                               "intervals": [{"duration": timedelta(hours=1), "signal_payload": -10.0, "uid": 0}]}]}


def test_valid_minimal_event() -> None:
    event = parse_event(_valid(), vtn_id="V", park_id="p", received_at=RECEIVED)
    assert event.status is EventStatus.ACTIVE
    assert event.intervals[0].value == 10.0


@pytest.mark.parametrize(("path", "value", "message"), [
    (("event_descriptor", "event_id"), None, "no event_id"),
    (("event_signals",), [], "no signals"),
    (("event_descriptor", "event_status"), "paused", "unknown event status"),
    (("active_period", "dtstart"), "tomorrow", "not a date-time"),
])
def test_malformed_events_raise(path: tuple[str, ...], value: Any, message: str) -> None:
    raw = _valid()
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(Oadr2ParseError, match=message):
        parse_event(raw, vtn_id="V", park_id="p", received_at=RECEIVED)


@given(st.one_of(st.just(math.nan), st.just(math.inf), st.text(max_size=3), st.booleans(), st.none()))
def test_non_numeric_payloads_are_rejected(payload: Any) -> None:
    raw = _valid()
    raw["event_signals"][0]["intervals"][0]["signal_payload"] = payload
    with pytest.raises(Oadr2ParseError, match="payload"):
        parse_event(raw, vtn_id="V", park_id="p", received_at=RECEIVED)
