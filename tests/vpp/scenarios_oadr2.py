"""The closed VPP loop end to end against a real openleadr VTN (OpenADR 2.0b).

VTN → C1's VEN → intake → D1's plan → commands over Mosquitto → the edge agent → Modbus simulator (the
battery discharges) → the edge agent's readings → ingest → TimescaleDB → live M&V → reports back to the
VTN. After the event the M&V result must match what the boundary meter saw. Also: a cancelled and a
modified event, the edge agent offline during an event, and a command the device rejects.

Each scenario runs a real event of 2-3 one-minute intervals; tests/vpp/test_loop_scenarios.py runs them all at once.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openleadr import utils

from tests.ingest.helpers import wait_until
from tests.vpp.loop_rig import (
    BESS,
    GUARD_S,
    INTERVAL,
    Loop,
    configure_park,
    next_start,
    performance,
    running_park,
    wait_metered,
)
from tests.vpp.test_oadr2_ven import Vtn, settings_for
from vpp._intake import EventIntake
from vpp._oadr2 import Oadr2Ven

COMMITTED_KW = 100.0


def _add_event(vtn: Vtn, ven_id: str, start: datetime, n: int, kw: float,
               future: asyncio.Future[str]) -> str:
    return str(vtn.server.add_event(
        ven_id=ven_id, signal_name="LOAD_DISPATCH", signal_type="delta",
        intervals=[{"dtstart": start + i * INTERVAL, "duration": INTERVAL, "signal_payload": -kw} for i in range(n)],
        callback=future, market_context="http://parkpulse.test/program"))


def _ven(vtn: Vtn, loop: Loop, name: str) -> Any:
    def build(intake: EventIntake, values: Any) -> Oadr2Ven:
        return Oadr2Ven(settings_for(vtn, loop.database_url, loop.park, name), intake, values)
    return build


async def _final(loop: Loop, event_id: str, end: datetime) -> dict[str, Any]:
    """Wait (in real time) until live M&V has finalized the event; return its performance document."""
    await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
    row: list[Any] = []

    def final() -> bool:
        got = loop.query("SELECT status FROM vpp_mv_events WHERE event_id = %s", (event_id,))
        row[:] = got
        return bool(got) and got[0][0] == "final"

    assert await wait_until(final, timeout=GUARD_S), f"live M&V of {event_id} not final: {row}"
    return performance(loop, event_id)


def _check_against_the_meter(loop: Loop, doc: dict[str, Any]) -> None:
    """Every interval's metered kW is what the boundary meter's own power readings say, and the delivered
    energy is baseline − metered summed over the event."""
    hours = doc["baseline"]["interval_minutes"] / 60.0
    total = 0.0
    for row in doc["intervals"]:
        ts = datetime.fromisoformat(row["ts"])
        seen = loop.mean_power_kw(ts, ts + INTERVAL)
        assert seen is not None
        assert row["metered_kw"] == pytest.approx(seen, rel=0.02, abs=3.0)
        assert row["reduction_kw"] == pytest.approx(row["baseline_kw"] - row["metered_kw"])
        total += row["reduction_kw"] * hours
    assert doc["delivered_kwh"] == pytest.approx(total)
    assert doc["missing_intervals"] == 0


def _actions(loop: Any, event_id: str) -> list[tuple[str, str]]:
    """(action, status) of every command of the event, as audited."""
    return [(action, kind) for _, action, _, kind, _ in loop.command_log(event_id)]


async def scenario_openleadr_event_sheds_load_and_mv_matches_the_meters(vtn, database_url, mqtt_url, park_id,
                                                                   tmp_path: Path) -> None:
    configure_park(database_url, park_id)
    async with running_park(database_url, mqtt_url, park_id, tmp_path) as loop, loop.edge():
        metered_from = await wait_metered(loop, datetime.now(UTC))
        async with loop.service("oadr2", _ven(vtn, loop, "ven-e2e")) as service:
            ven = service.components["ven-oadr2"]
            await ven.wait_registered(GUARD_S)
            start = next_start(metered_from=metered_from)
            opted = vtn.opt_future()
            vtn_event_id = _add_event(vtn, ven.ven_id, start, 3, COMMITTED_KW, opted)
            assert await asyncio.wait_for(opted, GUARD_S) == "optIn"
            result = ven.last_result(vtn_event_id)
            assert result is not None
            event_id = result.dr_event_id

            # The battery takes the setpoint once the event starts and the park's load drops.
            assert await wait_until(lambda: loop.battery.remote and loop.battery.setpoint_kw <= -50.0,
                                    timeout=GUARD_S + 60)
            # the device acknowledged: the dispatcher audits the ack just after the battery applied it
            def applied() -> bool:
                return any(device == BESS and kind == "applied" for device, _, _, kind, _ in loop.command_log(event_id))
            assert await wait_until(applied, timeout=GUARD_S, interval=0.5), loop.command_log(event_id)
            doc = await _final(loop, event_id, start + 3 * INTERVAL)
            values = list(vtn.report_values)
            assert doc["status"] == "final"
            assert doc["committed_kw"] == pytest.approx(COMMITTED_KW)
            assert doc["baseline"]["fixed_at"] == start.isoformat()  # pre-event baseline: fixed once metered
            _check_against_the_meter(loop, doc)
            for row in doc["intervals"]:
                assert row["metered_kw"] < row["baseline_kw"] - 0.5 * COMMITTED_KW  # the metered load dropped
            assert 0.7 <= doc["delivered_ratio"] <= 1.3
            # Live reports reached the VTN with the live M&V numbers (the baseline fixed at notification among them).
            baseline = doc["intervals"][0]["baseline_kw"]
            assert any(v == pytest.approx(baseline) for _, v in values), values
            # The final M&V is also flex's evaluation of the event.
            stored = loop.query("SELECT delivered_kwh FROM dr_event_results WHERE event_id = %s", (event_id,))
            assert stored[0][0] == pytest.approx(doc["delivered_kwh"])


async def scenario_modified_then_cancelled_event(vtn, database_url, mqtt_url, park_id, tmp_path: Path) -> None:
    configure_park(database_url, park_id)
    async with running_park(database_url, mqtt_url, park_id, tmp_path) as loop, loop.edge():
        metered_from = await wait_metered(loop, datetime.now(UTC))
        async with loop.service("oadr2", _ven(vtn, loop, "ven-mod")) as service:
            ven = service.components["ven-oadr2"]
            await ven.wait_registered(GUARD_S)
            start = next_start(metered_from=metered_from)
            opted = vtn.opt_future()
            vtn_event_id = _add_event(vtn, ven.ven_id, start, 3, 60.0, opted)
            assert await asyncio.wait_for(opted, GUARD_S) == "optIn"
            result = ven.last_result(vtn_event_id)
            assert result is not None
            event_id = result.dr_event_id

            # Modified before it starts: 120 kW instead of 60 kW — replanned, M&V commits the new figure.
            event = utils.find_by(vtn.server.events[ven.ven_id], "event_descriptor.event_id", vtn_event_id)
            for interval in event.event_signals[0].intervals:
                interval["signal_payload"] = -120.0
            utils.increment_event_modification_number(event)
            modified = vtn.opt_future()
            vtn.server.event_callbacks[vtn_event_id] = (event, modified)
            vtn.server.events_updated[ven.ven_id] = True
            assert await asyncio.wait_for(modified, GUARD_S) == "optIn"
            assert await wait_until(lambda: loop.battery.remote and loop.battery.setpoint_kw <= -100.0,
                                    timeout=GUARD_S + 60)

            assert await wait_until(lambda: bool(loop.query(
                "SELECT 1 FROM vpp_mv_events WHERE event_id = %s AND status = 'active'", (event_id,))),
                timeout=GUARD_S)  # live M&V is measuring it

            # Cancelled while it runs: the battery is released and live M&V stops.
            cancelled = vtn.opt_future()
            vtn.server.event_callbacks[vtn_event_id] = (event, cancelled)
            vtn.server.cancel_event(ven.ven_id, vtn_event_id)
            await asyncio.wait_for(cancelled, GUARD_S)
            assert await wait_until(lambda: not loop.battery.remote, timeout=GUARD_S)
            assert await wait_until(lambda: ("release", "applied") in _actions(loop, event_id), timeout=GUARD_S,
                                    interval=0.5), _actions(loop, event_id)  # the release's ack audited
            status = loop.query("SELECT status, committed_kw FROM vpp_mv_events WHERE event_id = %s", (event_id,))
    assert status == [("cancelled", pytest.approx(120.0))]


async def scenario_edge_offline_commands_expire_and_mv_stays_honest(vtn, database_url, mqtt_url,
                                                               park_id, tmp_path: Path) -> None:
    configure_park(database_url, park_id)
    async with running_park(database_url, mqtt_url, park_id, tmp_path) as loop:
        async with loop.edge():
            metered_from = await wait_metered(loop, datetime.now(UTC))
        # The edge agent is gone: no readings, no command handling. The VEN still accepts the event.
        async with loop.service("oadr2", _ven(vtn, loop, "ven-off")) as service:
            ven = service.components["ven-oadr2"]
            await ven.wait_registered(GUARD_S)
            start = next_start(timedelta(seconds=20), metered_from=metered_from)
            opted = vtn.opt_future()
            vtn_event_id = _add_event(vtn, ven.ven_id, start, 2, COMMITTED_KW, opted)
            assert await asyncio.wait_for(opted, GUARD_S) == "optIn"
            result = ven.last_result(vtn_event_id)
            assert result is not None
            event_id = result.dr_event_id
            assert await wait_until(lambda: any(kind == "expired" for *_, kind, _ in loop.command_log(event_id)),
                                    timeout=GUARD_S + 90)
            await asyncio.sleep(max(0.0, (start + 2 * INTERVAL - datetime.now(UTC)).total_seconds() + 8))
            rows = loop.query("SELECT status, delivered_kwh, missing_intervals FROM vpp_mv_events "
                              "WHERE event_id = %s", (event_id,))
    assert not loop.battery.remote  # nothing reached the device
    assert all(kind in ("sent", "resent", "expired") for *_, kind, _ in loop.command_log(event_id))
    # No readings, no baseline: live M&V claims nothing rather than inventing a reduction.
    assert rows == [] or rows[0][1] in (None, 0.0)


async def scenario_a_command_the_device_rejects_delivers_nothing(vtn, database_url, mqtt_url, park_id,
                                                             tmp_path: Path) -> None:
    configure_park(database_url, park_id)
    async with running_park(database_url, mqtt_url, park_id, tmp_path) as loop, \
            loop.edge(limits={BESS: {"set_active_power": {"minimum": -10.0, "maximum": 10.0}}}):
        metered_from = await wait_metered(loop, datetime.now(UTC))
        async with loop.service("oadr2", _ven(vtn, loop, "ven-rej")) as service:
            ven = service.components["ven-oadr2"]
            await ven.wait_registered(GUARD_S)
            start = next_start(metered_from=metered_from)
            opted = vtn.opt_future()
            vtn_event_id = _add_event(vtn, ven.ven_id, start, 2, COMMITTED_KW, opted)
            assert await asyncio.wait_for(opted, GUARD_S) == "optIn"
            result = ven.last_result(vtn_event_id)
            assert result is not None
            event_id = result.dr_event_id
            assert await wait_until(lambda: any(kind == "rejected" for *_, kind, _ in loop.command_log(event_id)),
                                    timeout=GUARD_S + 60)
            doc = await _final(loop, event_id, start + 2 * INTERVAL)
    rejected = [(device, reason) for device, _, _, kind, reason in loop.command_log(event_id) if kind == "rejected"]
    assert rejected[0] == (BESS, "out_of_range")
    assert not loop.battery.remote
    _check_against_the_meter(loop, doc)
    assert abs(doc["avg_reduction_kw"]) < 0.3 * COMMITTED_KW  # the load did not drop, and M&V says so
