"""A modified, then deleted OpenADR 3 event through the closed VPP loop (the stand-in VTN's webhook).

Stand-in VTN → webhook notification → the OpenADR 3 VEN → intake → D1's plan → commands over Mosquitto → the
edge agent → Modbus simulator: the modification (60 → 120 kW) is replanned and the battery discharges harder;
the deletion cancels the event, the battery is released and live M&V stops. The event that runs to its end
(reports, M&V against the meter) is D2's tests/vpp/test_loop_e2e_oadr3.py.

Runs on the loop rig (tests/vpp/loop_rig.py) with one-minute intervals; tests/vpp/test_loop_scenarios.py runs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simulators.openadr3_vtn import RunningVtn3, Vtn3Admin, VtnState, event_body, running_vtn3
from tests.ingest.helpers import wait_until
from tests.vpp.loop_rig import (
    GUARD_S,
    INTERVAL,
    Loop,
    configure_park,
    next_start,
    running_park,
    wait_metered,
)
from tests.vpp.test_oadr3_ven import VEN_ID, VEN_SECRET, settings_for
from vpp._event_model import IntakeAction, IntakeResult, OptDecision
from vpp._intake import EventIntake
from vpp._oadr3_ven import Ven3


@contextlib.asynccontextmanager
async def oadr3_vtn() -> AsyncIterator[RunningVtn3]:
    """The OpenADR 3 stand-in with the VEN client of tests/vpp/test_oadr3_ven.py."""
    state = VtnState()
    state.add_client(VEN_ID, VEN_SECRET, "ven")
    async with running_vtn3(state) as running:
        yield running


def _factory(vtn: RunningVtn3, loop: Loop) -> Any:
    def build(intake: EventIntake, values: Any) -> Ven3:
        return Ven3(settings_for(vtn, park_id=loop.park, ven_name=f"ven-{loop.park[-8:]}"), intake, values)
    return build


def _shed(program_id: str, start: datetime, kw: float, n: int = 3) -> dict[str, Any]:
    """``kw`` less load for ``n`` one-minute intervals, a report after each interval."""
    return event_body(program_id, start=start, step=INTERVAL, values=[-kw] * n,
                      payload_type="DISPATCH_SETPOINT_RELATIVE", report_every=1)


async def _result(ven: Ven3, vtn_event_id: str, version: int = 0) -> IntakeResult:
    """The intake's answer to the VEN for (a version newer than ``version`` of) the VTN event."""
    def seen() -> bool:
        tracked = ven.events.get(vtn_event_id)
        return tracked is not None and tracked.event.modification_number > version
    assert await wait_until(seen, timeout=GUARD_S), f"the VEN never handed over {vtn_event_id}"
    return ven.events[vtn_event_id].result


async def scenario_oadr3_event_modified_then_deleted_is_replanned_then_released(
        vtn: RunningVtn3, database_url: str, mqtt_url: str, park_id: str, tmp_path: Path) -> None:
    configure_park(database_url, park_id)
    async with running_park(database_url, mqtt_url, park_id, tmp_path) as loop, loop.edge(), \
            Vtn3Admin(vtn.base_url) as admin:
        await wait_metered(loop, datetime.now(UTC))
        program = await admin.create_program("e2e-capacity")
        async with loop.service("oadr3", _factory(vtn, loop)) as service:
            ven: Ven3 = service.components["ven-oadr3"]
            assert await wait_until(lambda: bool(ven.subscriptions), timeout=GUARD_S)
            start = next_start()
            created = await admin.create_event(_shed(program["id"], start, 60.0))
            first = await _result(ven, created["id"])
            assert first.opt is OptDecision.OPT_IN

            # Modified before it starts: 120 kW instead of 60 kW — replanned, the battery discharges harder.
            await admin.update_event(created["id"], _shed(program["id"], start, 120.0))
            modified = await _result(ven, created["id"], first.event.modification_number)
            assert modified.dr_event_id == first.dr_event_id
            assert modified.requested_kw == pytest.approx(120.0)
            assert await wait_until(lambda: loop.battery.remote and loop.battery.setpoint_kw <= -100.0,
                                    timeout=GUARD_S + 60)

            # Deleted while it runs: cancelled, the dispatcher releases the battery, live M&V stops.
            await admin.delete_event(created["id"])
            tracked = ven.events[created["id"]]
            # The VEN records the intake's answer after every listener (dispatcher, live M&V) has run.
            assert await wait_until(lambda: tracked.result.action is IntakeAction.CANCELLED, timeout=GUARD_S)
            assert await wait_until(lambda: not loop.battery.remote, timeout=GUARD_S)
            assert await wait_until(lambda: ("release", "applied") in [
                (action, kind) for _, action, _, kind, _ in loop.command_log(first.dr_event_id)],
                timeout=GUARD_S, interval=0.5)  # the release's acknowledgement audited
            flex_status = loop.query("SELECT status FROM dr_events WHERE event_id = %s", (first.dr_event_id,))
            mv_status = loop.query("SELECT status, committed_kw FROM vpp_mv_events WHERE event_id = %s",
                                   (first.dr_event_id,))
    assert ven.notifications == 3  # created, updated, deleted: all through the webhook
    assert flex_status == [("cancelled",)]
    # Live M&V measures from the baseline fixed at the event's start; a deletion can arrive before that (no
    # row then) or after (the row is cancelled, with the modified commitment) — never left running.
    assert mv_status in ([], [("cancelled", pytest.approx(120.0))])
    assert vtn.state.rejected_requests == []
    assert vtn.state.response_problems == []
