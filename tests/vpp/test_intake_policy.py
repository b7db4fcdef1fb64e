"""The intake's pure decision: kW asked per signal kind, opt in/out per the park's policy, reason text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from vpp._event_model import EventInterval, EventSource, EventStatus, IncomingEvent, OptDecision, SignalKind
from vpp._intake_policy import IntakePolicy, ParkCapability, clip_reason, decide, local_hours, requested_kw

RECEIVED = datetime(2026, 7, 15, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
START = RECEIVED + timedelta(hours=5)  # 14:00 local
kw = st.floats(min_value=0, max_value=10_000, allow_nan=False)


def event(values: list[float], kind: SignalKind = SignalKind.TARGET_KW, *, start: datetime = START,
          resources: tuple[str, ...] = (), direction: str = "up") -> IncomingEvent:
    intervals = tuple(EventInterval(start + k * timedelta(minutes=15), timedelta(minutes=15), v)
                      for k, v in enumerate(values))
    return IncomingEvent(EventSource.OADR2, "V", "e", 0, EventStatus.FAR, "p", "LOAD_DISPATCH", kind, intervals,
                         RECEIVED, direction=direction, target_resources=resources)


def capability(available: float, **kwargs: object) -> ParkCapability:
    return ParkCapability("p", available, resources=frozenset({"p", "bess"}), **kwargs)  # type: ignore[arg-type]


@given(values=st.lists(kw, min_size=1, max_size=8), available=kw,
       margin=st.floats(min_value=0.1, max_value=2.0))
def test_opt_in_exactly_when_the_peak_fits_the_flexibility_times_margin(values, available, margin):
    decision = decide(event(values), capability(available), IntakePolicy(flex_margin=margin))
    assert decision.requested_kw == pytest.approx(max(values))
    fits = max(values) <= available * margin + 1e-9
    assert (decision.opt is OptDecision.OPT_IN) == fits
    assert decision.committed_kw == (decision.requested_kw if fits else 0.0)
    assert (decision.reason is None) == fits


@given(levels=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8), available=kw)
def test_simple_levels_ask_for_a_monotone_share_of_available(levels, available):
    policy = IntakePolicy()
    asked = requested_kw(event([float(v) for v in levels], SignalKind.SIMPLE), capability(available), policy)
    assert asked == pytest.approx(policy.level_fractions[max(levels)] * available)
    shares = [policy.level_fractions[level] for level in range(4)]
    assert shares == sorted(shares)
    assert decide(event([float(v) for v in levels], SignalKind.SIMPLE), capability(available),
                  policy).opt is OptDecision.OPT_IN  # a level never asks for more than there is


@given(load=kw, setpoints=st.lists(kw, min_size=1, max_size=4))
def test_setpoint_asks_for_the_load_above_it(load, setpoints):
    asked = requested_kw(event(setpoints, SignalKind.SETPOINT_KW), capability(1e9, load_kw=load), IntakePolicy())
    assert asked == pytest.approx(max(max(load - s, 0.0) for s in setpoints))
    floors = requested_kw(event(setpoints, SignalKind.SETPOINT_KW, direction="down"), capability(1e9, load_kw=load),
                          IntakePolicy())
    assert floors == pytest.approx(max(max(s - load, 0.0) for s in setpoints))  # a down event's setpoint is a floor


def test_policy_rules_give_reasons_in_order() -> None:
    cap = capability(500.0, day_type="holiday", local_start_hour=14.0, local_end_hour=15.0)
    assert decide(event([100.0]), cap, IntakePolicy()).opt is OptDecision.OPT_IN
    day = decide(event([100.0]), cap, IntakePolicy(allowed_day_types=("workday",)))
    assert day.reason == "outside the park's DR calendar: holiday day (takes part on workday)"
    hours = decide(event([100.0]), cap, IntakePolicy(local_hours=(8, 12)))
    assert hours.reason is not None
    assert hours.reason.startswith("outside the park's DR hours 08:00-12:00")
    long = decide(event([100.0] * 8), cap, IntakePolicy(max_duration=timedelta(hours=1)))
    assert long.reason is not None
    assert long.reason.startswith("duration 2.00 h exceeds")
    notice = decide(event([100.0]), cap, IntakePolicy(min_notice=timedelta(hours=6)))
    assert notice.reason == "notice 300 min is shorter than the park's minimum 360 min"
    over = decide(event([100.0], start=RECEIVED - timedelta(hours=2)), cap, IntakePolicy())
    assert over.reason is not None
    assert over.reason.startswith("event already ended")
    unknown = decide(event([100.0], resources=("chiller-9",)), cap, IntakePolicy())
    assert unknown.reason == "unknown resource(s) chiller-9: this VEN serves bess, p"
    assert decide(event([100.0], resources=("bess",)), cap, IntakePolicy()).opt is OptDecision.OPT_IN
    assert decide(event([1.0]), None, IntakePolicy()).reason == (
        "unknown park 'p': register the park in ParkPulse or fix the VEN's park id")


def test_price_and_unsupported_signals() -> None:
    price = decide(event([0.12], SignalKind.PRICE), capability(10.0), IntakePolicy())
    assert (price.opt, price.committed_kw) == (OptDecision.OPT_IN, 0.0)
    odd = decide(event([-20.0], SignalKind.UNSUPPORTED), capability(10.0), IntakePolicy())
    assert odd.opt is OptDecision.OPT_OUT
    assert odd.reason is not None
    assert "not supported" in odd.reason


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="level_fractions"):
        IntakePolicy(level_fractions={1: 1.5})
    with pytest.raises(ValidationError, match="local_hours"):
        IntakePolicy(local_hours=(12, 8))
    assert IntakePolicy.model_validate(IntakePolicy(min_notice=timedelta(minutes=5)).model_dump(mode="json")) \
        == IntakePolicy(min_notice=timedelta(minutes=5))


@given(st.text(max_size=500))
def test_reasons_are_one_bounded_line_without_markup(text: str) -> None:
    clipped = clip_reason(text)
    assert len(clipped) <= 200
    assert not set(clipped) & {"<", ">", "&", "\n", "\r", "\t"}


def test_local_hours_cross_midnight() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert local_hours(START, START + timedelta(hours=1), zone) == (14.0, 15.0)
    late = datetime(2026, 7, 15, 15, 0, tzinfo=UTC)  # 23:00 local
    assert local_hours(late, late + timedelta(hours=2), zone) == (23.0, 25.0)
