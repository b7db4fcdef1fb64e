"""The OpenADR 2.0b VEN against a real openleadr VTN (OpenADRServer on 127.0.0.1) and the real database:
registration, event delivery and opt-in, modification, duplicate delivery, cancellation, opt-out with a
reason reaching the VTN, and telemetry reports arriving at the VTN."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openleadr import OpenADRServer, hooks, utils

from tests.flex.dbseed import seed_park
from tests.vpp.test_intake import Harness, add_battery
from vpp._event_model import IntakeAction, IntakeResult, OptDecision
from vpp._oadr2 import Oadr2Ven
from vpp._oadr2_settings import Oadr2Settings

pytestmark = [
    pytest.mark.services,
    # openleadr 0.5.36 keys its aiohttp app with plain strings
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

WAIT_S = 30.0  # a guard against hangs, not a performance assertion

#: Every message the VTNs of this module handled: (message type, payload). openleadr's hooks are global.
HANDLED: list[tuple[str, dict[str, Any]]] = []


async def _capture(message_type: str, payload: dict[str, Any]) -> None:
    HANDLED.append((message_type, payload))


hooks.register("before_handle", _capture)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Vtn:
    """A real openleadr VTN with what it saw."""

    server: Any
    url: str
    vtn_id: str
    ven_ids: dict[str, str] = field(default_factory=dict)  # ven_name -> ven_id
    report_values: list[tuple[datetime, float]] = field(default_factory=list)  # every value reported

    def opt_future(self) -> asyncio.Future[str]:
        return asyncio.get_running_loop().create_future()

    def created_events(self, ven_id: str) -> list[dict[str, Any]]:
        return [r for t, p in HANDLED if t == "oadrCreatedEvent" and p.get("ven_id") == ven_id
                for r in p["event_responses"]]


@pytest.fixture
async def vtn(park_id: str) -> AsyncIterator[Vtn]:
    async with openleadr_vtn(park_id) as state:
        yield state


@contextlib.asynccontextmanager
async def openleadr_vtn(park_id: str) -> AsyncIterator[Vtn]:
    """A real openleadr VTN on a free port for the park's VENs, stopped when the block ends."""
    port = free_port()
    vtn_id = f"VTN_{park_id[-8:]}".upper()
    server = OpenADRServer(vtn_id=vtn_id, http_host="127.0.0.1", http_port=port,
                           requested_poll_freq=timedelta(seconds=1), show_fingerprint=False)
    state = Vtn(server, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", vtn_id)

    async def on_create_party_registration(registration_info: dict[str, Any]) -> tuple[str, str]:
        name = registration_info["ven_name"]
        ven_id = state.ven_ids.setdefault(name, f"ven-{name}")
        return ven_id, f"reg-{name}"

    async def on_register_report(ven_id: str, resource_id: str, measurement: str, unit: str, scale: str,
                                 min_sampling_interval: timedelta, max_sampling_interval: timedelta) -> Any:
        del ven_id, resource_id, measurement, unit, scale, max_sampling_interval
        return state.report_values.extend, min_sampling_interval  # the fastest rate the VEN offers

    server.add_handler("on_create_party_registration", on_create_party_registration)
    server.add_handler("on_register_report", on_register_report)
    await server.run()
    try:
        yield state
    finally:
        await server.stop()


class Values:
    """A ReportValues provider with fixed numbers per event (the live M&V provider is D2's)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        self.asked.append(("usage", dr_event_id))
        return 812.5

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 900.0 if dr_event_id else None

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 150.25


@pytest.fixture
def harness(database_url: str, db_conn: psycopg.Connection, park_id: str) -> Iterator[Harness]:
    seed_park(db_conn, park_id)
    h = Harness(database_url)
    add_battery(h.dr, park_id, at=datetime.now(UTC))
    yield h
    h.close()


def settings_for(vtn: Vtn, database_url: str, park_id: str, name: str = "ven-a") -> Oadr2Settings:
    return Oadr2Settings(database_url=database_url, vtn_url=vtn.url, park_id=park_id, ven_name=name,
                         poll_interval=timedelta(seconds=1), report_min_interval=timedelta(seconds=1),
                         register_backoff_initial_s=0.2, register_backoff_max_s=1.0)


def dispatch_event(server: Any, ven_id: str | None, kw: float, future: asyncio.Future[str], *,
                   start_in: timedelta = timedelta(hours=1)) -> str:
    """A one-hour LOAD_DISPATCH shed of ``kw`` (delta -kw) in two intervals, starting ``start_in`` from now."""
    assert ven_id is not None, "the VEN is not registered"
    start = datetime.now(UTC).replace(microsecond=0) + start_in
    return str(server.add_event(
        ven_id=ven_id, signal_name="LOAD_DISPATCH", signal_type="delta",
        intervals=[{"dtstart": start, "duration": timedelta(minutes=30), "signal_payload": -kw},
                   {"dtstart": start + timedelta(minutes=30), "duration": timedelta(minutes=30),
                    "signal_payload": -kw}],
        callback=future, market_context="http://parkpulse.test/program"))


async def test_registration_event_opt_in_modification_duplicate_and_cancellation(vtn, harness, database_url,
                                                                                 park_id):
    heard: list[IntakeResult] = []
    harness.intake.add_listener(heard.append)
    settings = settings_for(vtn, database_url, park_id)
    async with Oadr2Ven(settings, harness.intake) as ven:
        await ven.wait_registered(WAIT_S)
        assert ven.ven_id == vtn.ven_ids["ven-a"]
        assert ven.vtn_id == vtn.vtn_id
        opted = vtn.opt_future()
        event_id = dispatch_event(vtn.server, ven.ven_id, 80.0, opted)
        assert await asyncio.wait_for(opted, WAIT_S) == "optIn"
        result = ven.last_result(event_id)
        assert result is not None
        assert result.action is IntakeAction.NEW
        flex_event = harness.dr.get_event(result.dr_event_id)
        assert flex_event is not None
        assert flex_event.requested_kw == pytest.approx(80.0)

        # The VTN modifies the event (modification number up): the same ParkPulse event is updated.
        event = utils.find_by(vtn.server.events[ven.ven_id], "event_descriptor.event_id", event_id)
        for interval in event.event_signals[0].intervals:
            interval["signal_payload"] = -120.0
        utils.increment_event_modification_number(event)
        modified = vtn.opt_future()
        vtn.server.event_callbacks[event_id] = (event, modified)
        vtn.server.events_updated[ven.ven_id] = True
        assert await asyncio.wait_for(modified, WAIT_S) == "optIn"
        flex_event = harness.dr.get_event(result.dr_event_id)
        assert flex_event is not None
        assert flex_event.requested_kw == pytest.approx(120.0)
        assert harness.store.list_events(park_id)[1] == 1

    # A new VEN process (same identity) gets the same event again on its initial sync: a duplicate, no effect.
    before = len(heard)
    async with Oadr2Ven(settings, harness.intake) as ven:
        await ven.wait_registered(WAIT_S)
        for _ in range(int(WAIT_S * 10)):
            if ven.last_result(event_id) is not None:
                break
            await asyncio.sleep(0.1)
        again = ven.last_result(event_id)
        assert again is not None
        assert again.action is IntakeAction.DUPLICATE
        assert len(heard) == before

        # Cancellation: the flex event is cancelled and the listeners are told.
        cancelled = vtn.opt_future()
        event = utils.find_by(vtn.server.events[ven.ven_id], "event_descriptor.event_id", event_id)
        vtn.server.event_callbacks[event_id] = (event, cancelled)
        vtn.server.cancel_event(ven.ven_id, event_id)
        await asyncio.wait_for(cancelled, WAIT_S)
        flex_event = harness.dr.get_event(result.dr_event_id)
        assert flex_event is not None
        assert flex_event.status == "cancelled"
        assert heard[-1].action is IntakeAction.CANCELLED
    stored = harness.store.versions(result.dr_event_id)
    assert [v.action for v in stored] == ["new", "modified", "duplicate", "cancelled"]


async def test_event_the_park_cannot_meet_is_opted_out_with_the_reason_at_the_vtn(vtn, harness, database_url,
                                                                                   park_id):
    async with Oadr2Ven(settings_for(vtn, database_url, park_id, "ven-b"), harness.intake) as ven:
        await ven.wait_registered(WAIT_S)
        available = harness.available_up_kw(park_id, datetime.now(UTC), 1.0)
        opted = vtn.opt_future()
        event_id = dispatch_event(vtn.server, ven.ven_id, available * 3, opted)
        assert await asyncio.wait_for(opted, WAIT_S) == "optOut"
        for _ in range(int(WAIT_S * 10)):
            responses = [r for r in vtn.created_events(ven.ven_id) if r["event_id"] == event_id]
            if responses:
                break
            await asyncio.sleep(0.1)
        assert responses[0]["opt_type"] == "optOut"
        assert "exceeds available flexibility" in responses[0]["response_description"]
        result = ven.last_result(event_id)
        assert result is not None
        assert result.opt is OptDecision.OPT_OUT
        assert harness.dr.get_event(result.dr_event_id) is None

        # A signal the park cannot act on (percent offsets) is refused naming it.
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        odd = vtn.opt_future()
        odd_id = vtn.server.add_event(
            ven_id=ven.ven_id, signal_name="LOAD_CONTROL", signal_type="x-loadControlPercentOffset",
            intervals=[{"dtstart": start, "duration": timedelta(hours=1), "signal_payload": -20.0}], callback=odd)
        assert await asyncio.wait_for(odd, WAIT_S) == "optOut"
        for _ in range(int(WAIT_S * 10)):
            responses = [r for r in vtn.created_events(ven.ven_id) if r["event_id"] == odd_id]
            if responses:
                break
            await asyncio.sleep(0.1)
        assert "signal LOAD_CONTROL is not supported" in responses[0]["response_description"]


async def test_telemetry_reports_registered_and_values_reach_the_vtn(vtn, harness, database_url, park_id):
    values = Values()
    async with Oadr2Ven(settings_for(vtn, database_url, park_id, "ven-c"), harness.intake, values) as ven:
        await ven.wait_registered(WAIT_S)
        opted = vtn.opt_future()
        dispatch_event(vtn.server, ven.ven_id, 50.0, opted, start_in=timedelta(seconds=-1))  # active now
        assert await asyncio.wait_for(opted, WAIT_S) == "optIn"
        for _ in range(int(WAIT_S * 10)):
            if len(vtn.report_values) >= 3 and any(e for _, e in values.asked):
                break
            await asyncio.sleep(0.1)
        ven_id = ven.ven_id
    registered = vtn.server.registered_reports[ven_id]
    descriptions = {rd["r_id"]: rd for report in registered for rd in report["report_descriptions"]}
    assert set(descriptions) == {f"{park_id}-usage", f"{park_id}-baseline", f"{park_id}-available"}
    assert {rd["report_type"] for rd in descriptions.values()} == {"usage", "baseline",
                                                                    "upRegulationCapacityAvailable"}
    received = [value for _, value in vtn.report_values]
    assert 812.5 in received
    assert 150.25 in received
    assert 900.0 in received


class NoValues(Values):
    """The park's meters are offline: no value for any report point."""

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        self.asked.append(("usage", dr_event_id))
        return None

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return None


async def test_no_values_send_no_empty_report_then_values_flow_again(vtn, harness, database_url, park_id):
    values = NoValues()
    async with Oadr2Ven(settings_for(vtn, database_url, park_id, "ven-e"), harness.intake, values) as ven:
        await ven.wait_registered(WAIT_S)
        for _ in range(int(WAIT_S * 10)):
            if len(values.asked) >= 3:   # three samplings at the 1 s rate
                break
            await asyncio.sleep(0.1)
        assert len(values.asked) >= 3
        ven_id = ven.ven_id
        updates = [p for t, p in HANDLED if t == "oadrUpdateReport" and p.get("ven_id") == ven_id]
        assert updates == []
        assert vtn.report_values == []
        values.usage_kw = Values().usage_kw  # type: ignore[method-assign]  # the meters are back
        for _ in range(int(WAIT_S * 10)):
            if vtn.report_values:
                break
            await asyncio.sleep(0.1)
    assert [v for _, v in vtn.report_values][:1] == [812.5]
    updates = [p for t, p in HANDLED if t == "oadrUpdateReport" and p.get("ven_id") == ven_id]
    assert updates
    assert all(report["intervals"] for update in updates for report in update["reports"])


async def test_cli_ven2_run_registers_answers_events_and_stops_on_interrupt(vtn, harness, database_url, park_id):
    env = {**os.environ, "PARKPULSE_DATABASE_URL": database_url, "PARKPULSE_VEN2_VTN_URL": vtn.url,
           "PARKPULSE_VEN2_PARK_ID": park_id, "PARKPULSE_VEN2_VEN_NAME": "ven-cli", "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("parkpulse")), "vpp", "ven2", "run", "--poll-s", "1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []

    async def read_output() -> None:
        async for line in stdout:
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_output())
    try:
        for _ in range(int(WAIT_S * 10)):
            if "ven-cli" in vtn.ven_ids and process.returncode is None:
                break
            await asyncio.sleep(0.1)
        opted = vtn.opt_future()
        event_id = dispatch_event(vtn.server, vtn.ven_ids["ven-cli"], 30.0, opted)
        assert await asyncio.wait_for(opted, WAIT_S) == "optIn"
        # the VTN may see the opt-in before a loaded machine lets the CLI print its registration line
        for _ in range(int(WAIT_S * 10)):
            if any("registered with" in line for line in lines):
                break
            await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), WAIT_S)
        await asyncio.wait_for(reader, WAIT_S)
    output = "".join(lines)
    assert process.returncode == 0, output
    assert "registered with" in output, output
    assert "stopped" in output, output
    stored = harness.store.list_events(park_id)[0]
    assert [e.vtn_event_id for e in stored] == [event_id]
