"""Pure parts of dispatch: plan → commands per device and interval, and an intake result → interval targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flex._direction import Direction
from flex._plan import plan_dispatch
from flex._plan_model import EvEnvelope, EvSessionEnvelope, PlanInterval, PlanRequest, ProcessEnvelope, ThermalEnvelope
from schemas.commands import CommandAction
from tests.flex.test_plan import battery
from vpp._dispatch import event_intervals
from vpp._dispatch_commands import plan_commands, release_command
from vpp._event_model import (
    EventInterval,
    EventSource,
    EventStatus,
    IncomingEvent,
    IntakeAction,
    IntakeResult,
    OptDecision,
    SignalKind,
)

T0 = datetime(2026, 12, 5, 8, tzinfo=UTC)
Q = timedelta(minutes=15)


def test_each_kind_gets_its_action_one_command_per_interval_held_to_the_interval_end() -> None:
    ivs = tuple(PlanInterval(T0 + i * Q, T0 + (i + 1) * Q, 200.0) for i in range(2))
    hvac = ThermalEnvelope(asset_id="ahu", device_id="ahu-1", baseline_kw=(60.0, 60.0), cost_per_kwh=0.2,
                           max_change_kw=None, power_min_kw=30.0, power_max_kw=100.0, temp_c=24.0, temp_min_c=22.0,
                           temp_max_c=26.0, kwh_per_degc=10.0, mode_sign=1)
    session = EvSessionEnvelope("s", (22.0, 22.0), 0.0, 1, 20.0, (22.0, 22.0))
    ev = EvEnvelope(asset_id="ev", device_id="evse-1", baseline_kw=(22.0, 22.0), cost_per_kwh=0.1, max_change_kw=None,
                    charging_efficiency=1.0, sessions=(session,))
    press = ProcessEnvelope(asset_id="press", device_id="press-1", baseline_kw=(80.0, 80.0), cost_per_kwh=0.3,
                            max_change_kw=None, curtail_kw=(50.0, 50.0), increase_kw=(0.0, 0.0))
    idle = ProcessEnvelope(asset_id="idle", device_id="idle-1", baseline_kw=(10.0, 10.0), cost_per_kwh=0.3,
                           max_change_kw=0.0, curtail_kw=(10.0, 10.0), increase_kw=(0.0, 0.0))
    plan = plan_dispatch(PlanRequest(ivs, (battery(10.0, n=2), hvac, ev, press, idle)))
    cmds = plan_commands(plan, "ev-7")
    by_device: dict[str, list[tuple[CommandAction, float]]] = {}
    for c in cmds:
        by_device.setdefault(c.device_id, []).append((c.action, c.value))
        assert c.hold_until == ivs[c.interval_index or 0].end
        assert c.send_at == ivs[c.interval_index or 0].start
    assert set(by_device) == {"bess-1", "ahu-1", "evse-1", "press-1"}  # the excluded one keeps its own control
    assert [a for a, _ in by_device["bess-1"]] == [CommandAction.SET_ACTIVE_POWER] * 2
    assert [a for a, _ in by_device["evse-1"]] == [CommandAction.SET_POWER_LIMIT] * 2
    assert [v for _, v in by_device["evse-1"]] == [0.0, 0.0]  # no energy due: charging is paused
    assert [a for a, _ in by_device["press-1"]] == [CommandAction.SET_POWER_LIMIT] * 2
    temps = [v for a, v in by_device["ahu-1"] if a == CommandAction.SET_TEMPERATURE_SETPOINT]
    assert len(temps) == 2
    assert 24.0 < temps[0] <= temps[1] <= 26.0  # shedding lets the zone warm within the band
    assert sum(c.planned_kw for c in cmds if c.interval_index == 0) == pytest.approx(plan.response_kw[0])


def test_intervals_already_over_are_skipped_and_a_running_one_is_sent_now() -> None:
    ivs = tuple(PlanInterval(T0 + i * Q, T0 + (i + 1) * Q, 20.0) for i in range(3))
    plan = plan_dispatch(PlanRequest(ivs, (battery(50.0, n=3),)))
    now = T0 + Q + timedelta(minutes=5)
    cmds = plan_commands(plan, "ev", not_before=now)
    assert [(c.interval_index, c.send_at) for c in cmds] == [(1, now), (2, T0 + 2 * Q)]
    release = release_command("bess-1", "ev", now, "cancelled")
    assert (release.action, release.hold_until) == (CommandAction.RELEASE, None)
    assert release.reason == "DR event ev cancelled"


def _result(kind: SignalKind, values: list[float], *, committed: float = 150.0) -> IntakeResult:
    event = IncomingEvent(source=EventSource.OADR2, vtn_id="vtn", vtn_event_id="e1", modification_number=0,
                          status=EventStatus.FAR, park_id="park-a", signal_name="SIMPLE", signal_kind=kind,
                          intervals=tuple(EventInterval(T0 + i * Q, Q, v) for i, v in enumerate(values)),
                          received_at=T0 - timedelta(hours=1))
    return IntakeResult(dr_event_id="oadr2-e1", action=IntakeAction.NEW, opt=OptDecision.OPT_IN, event=event,
                        requested_kw=200.0, committed_kw=committed, start=T0, end=T0 + len(values) * Q,
                        direction=Direction.UP.value)


def test_targets_come_from_kw_signals_or_the_committed_kw() -> None:
    kw = event_intervals(_result(SignalKind.TARGET_KW, [120.0, 80.0]), step=Q)
    assert [iv.target_kw for iv in kw] == [120.0, 80.0]
    assert kw[1].start == T0 + Q
    assert kw[1].end == T0 + 2 * Q
    levels = event_intervals(_result(SignalKind.SIMPLE, [1.0, 0.0, 2.0]), step=Q)
    assert [iv.target_kw for iv in levels] == [150.0, 0.0, 150.0]
