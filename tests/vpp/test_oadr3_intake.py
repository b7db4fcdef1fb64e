"""The OpenADR 3 VEN into the real event intake (TimescaleDB): the stand-in's events become flex DR events,
modified and cancelled idempotently, and an event the park cannot meet is opted out with a reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from simulators.openadr3_vtn import RunningVtn3, Vtn3Admin, VtnState, event_body, running_vtn3
from tests.flex.dbseed import seed_park
from tests.vpp.test_intake import Harness, add_battery
from tests.vpp.test_oadr3_ven import VEN_ID, VEN_SECRET, settings_for, until
from vpp._event_model import IntakeAction, OptDecision
from vpp._intake import dr_event_id_for
from vpp._oadr3_ven import Ven3

pytestmark = pytest.mark.services


@pytest.fixture
def harness(database_url: str) -> Iterator[Harness]:
    h = Harness(database_url)
    yield h
    h.close()


@pytest.fixture
def park(db_conn: psycopg.Connection, park_id: str, harness: Harness) -> str:
    seed_park(db_conn, park_id)
    add_battery(harness.dr, park_id, at=datetime.now(UTC))  # about 200 kW of load reduction for an hour
    return park_id


@pytest.fixture
async def vtn() -> AsyncIterator[RunningVtn3]:
    state = VtnState()
    state.add_client(VEN_ID, VEN_SECRET, "ven")
    async with running_vtn3(state) as running:
        yield running


def _relative(program_id: str, start: datetime, kw: float) -> dict[str, object]:
    """A reduction of ``kw`` for two half hours (DISPATCH_SETPOINT_RELATIVE, negative = less load)."""
    return event_body(program_id, start=start, step=timedelta(minutes=30), values=[-kw, -kw],
                      payload_type="DISPATCH_SETPOINT_RELATIVE")


async def test_events_reach_the_intake_and_flex_modified_and_cancelled_once(
        vtn: RunningVtn3, harness: Harness, park: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        async with Ven3(settings_for(vtn, park_id=park), harness.intake) as ven:
            await until(lambda: bool(ven.subscriptions), "the subscription")
            created = await admin.create_event(_relative(program["id"], start, 80.0))
            await until(lambda: len(harness.heard) == 1, "the new event")
            await admin.update_event(created["id"], _relative(program["id"], start, 120.0))
            await until(lambda: len(harness.heard) == 2, "the modification")
            ven.poll_now()  # the poll sees the same version again: nothing new for the intake
            polls = ven.polls
            await until(lambda: ven.polls > polls, "a poll")
            await admin.delete_event(created["id"])
            await until(lambda: len(harness.heard) == 3, "the cancellation")
    dr_event_id = dr_event_id_for("oadr3", vtn.base_url, created["id"])
    assert [r.action for r in harness.heard] == [IntakeAction.NEW, IntakeAction.MODIFIED, IntakeAction.CANCELLED]
    assert {r.dr_event_id for r in harness.heard} == {dr_event_id}
    assert harness.heard[1].opt is OptDecision.OPT_IN
    assert harness.heard[1].requested_kw == pytest.approx(120.0)
    flex_event = harness.dr.get_event(dr_event_id)
    assert flex_event is not None
    assert flex_event.status == "cancelled"
    assert flex_event.start == start
    assert flex_event.source == "oadr3"
    assert flex_event.program_id == program["id"]
    assert flex_event.notified_at == harness.heard[0].event.received_at  # baseline fixed at the first notice


async def test_an_event_beyond_the_parks_flexibility_is_opted_out(
        vtn: RunningVtn3, harness: Harness, park: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        await admin.create_event(_relative(program["id"], start, 5000.0))
        async with Ven3(settings_for(vtn, park_id=park, subscribe=False), harness.intake):
            await until(lambda: len(harness.heard) == 1, "the event")
    result = harness.heard[0]
    assert result.opt is OptDecision.OPT_OUT
    assert result.opt_reason is not None
    assert "exceeds available flexibility" in result.opt_reason
    assert harness.dr.get_event(result.dr_event_id) is None
