"""The OpenADR 3 VEN against the spec-validating VTN stand-in, over real HTTP on 127.0.0.1.

Polling (a VTN without subscriptions), webhook notifications (a VTN with them), modification and
deletion, reports at the interval the event asks for (validated by the stand-in against the 3.0.1
document), token refresh, an event the VEN cannot read. The intake here records what it is handed and
answers like C1's intake (new/modified/cancelled/duplicate); tests with the real intake and database are
in test_oadr3_intake.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from simulators.openadr3_vtn import RunningVtn3, Vtn3Admin, VtnState, event_body, openadr3_spec, running_vtn3
from vpp._event_model import EventStatus, IncomingEvent, IntakeAction, IntakeResult, OptDecision
from vpp._oadr3_client import Oadr3Client
from vpp._oadr3_settings import Ven3Settings
from vpp._oadr3_ven import Ven3
from vpp.errors import Oadr3RequestError

VEN_ID, VEN_SECRET = "ven-park-a", "ven-secret-abcdefgh"
WAIT_S = 15.0


class RecordingIntake:
    """Records every version handed over; answers like the real intake (keyed by VTN event id)."""

    def __init__(self, opt: OptDecision = OptDecision.OPT_IN) -> None:
        self.versions: list[IncomingEvent] = []
        self.results: list[IntakeResult] = []
        self._latest: dict[str, IncomingEvent] = {}
        self.opt = opt

    async def accept_async(self, event: IncomingEvent) -> IntakeResult:
        self.versions.append(event)
        previous = self._latest.get(event.vtn_event_id)
        if event.status is EventStatus.CANCELLED:
            action = IntakeAction.CANCELLED
        elif previous is None:
            action = IntakeAction.NEW
        elif event.modification_number > previous.modification_number:
            action = IntakeAction.MODIFIED
        else:
            action = IntakeAction.DUPLICATE
        self._latest[event.vtn_event_id] = event
        kw = max((abs(i.value) for i in event.intervals), default=0.0)
        result = IntakeResult(f"dr-{event.vtn_event_id}", action, self.opt, event, kw,
                              kw if self.opt is OptDecision.OPT_IN else 0.0, start=event.start, end=event.end)
        self.results.append(result)
        return result

    def actions(self, vtn_event_id: str) -> list[IntakeAction]:
        return [r.action for r in self.results if r.event.vtn_event_id == vtn_event_id]


class ConstantValues:
    """Live values: the park uses 420 kW against a 600 kW baseline."""

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 420.0

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 600.0

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        return 50.0


class LatestOnlyValues(ConstantValues):
    """Like live M&V's provider: usage is the latest metered load whatever ``at`` asks (it rises 10 kW a read)."""

    def __init__(self) -> None:
        self.reads = 0

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        self.reads += 1
        return 400.0 + 10.0 * self.reads


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for something the other side does over the network."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not condition():  # noqa: ASYNC110 (changed over the network)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"gave up waiting for {what}")


@pytest.fixture
async def vtn() -> AsyncIterator[RunningVtn3]:
    state = VtnState()
    state.add_client(VEN_ID, VEN_SECRET, "ven")
    async with running_vtn3(state) as running:
        yield running


def settings_for(vtn: RunningVtn3, **overrides: object) -> Ven3Settings:
    base: dict[str, object] = {"vtn_url": vtn.base_url, "client_id": VEN_ID, "client_secret": VEN_SECRET,
                               "park_id": "park-a", "ven_name": "ven-park-a", "poll_interval_s": 0.2,
                               "poll_with_webhook_s": 3600.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.5}
    return Ven3Settings.model_validate({**base, **overrides})


def assert_spec_clean(vtn: RunningVtn3) -> None:
    assert vtn.state.rejected_requests == []
    assert vtn.state.response_problems == []


async def test_polling_picks_up_a_new_event_when_the_vtn_offers_no_subscriptions(vtn: RunningVtn3) -> None:
    vtn.state.supports_subscriptions = False
    intake = RecordingIntake()
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        async with Ven3(settings_for(vtn), intake) as ven:
            await until(lambda: ven.polls >= 1, "the first poll")
            assert ven.refused_subscriptions == {program["id"]}
            assert ven.subscriptions == {}
            start = datetime.now(UTC) + timedelta(hours=2)
            created = await admin.create_event(event_body(program["id"], start=start, step=timedelta(minutes=30),
                                                          values=[0.8], units="MW"))
            await until(lambda: len(intake.versions) == 1, "the polled event")
            polls = ven.polls
            await until(lambda: ven.polls >= polls + 2, "two more polls")
    assert [v["venName"] for v in vtn.state.objects["vens"].values()] == ["ven-park-a"]  # registered once
    assert ven.ven_id in vtn.state.objects["vens"]
    event = intake.versions[0]
    assert (event.vtn_event_id, event.program_id, event.park_id) == (created["id"], program["id"], "park-a")
    assert [(i.start.replace(microsecond=0), i.duration, i.value) for i in event.intervals] == [
        (start.replace(microsecond=0), timedelta(minutes=30), 800.0)]
    assert event.status is EventStatus.FAR
    assert event.vtn_id == vtn.base_url
    assert intake.actions(created["id"]) == [IntakeAction.NEW]  # later polls hand nothing over again
    assert_spec_clean(vtn)


async def test_a_webhook_subscription_delivers_creation_modification_and_deletion(vtn: RunningVtn3) -> None:
    intake = RecordingIntake()
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        async with Ven3(settings_for(vtn), intake) as ven:
            await until(lambda: ven.polls == 1, "the first poll, which subscribes")
            assert ven.subscriptions
            assert ven.webhook_url is not None
            body = event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1),
                              step=timedelta(minutes=15), values=[500.0, 400.0])
            created = await admin.create_event(body)
            await until(lambda: len(intake.versions) == 1, "the notified event")
            await admin.update_event(created["id"], {**body, "intervals": [
                {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [350.0]}]}]})
            await until(lambda: len(intake.versions) == 2, "the modification")
            await admin.delete_event(created["id"])
            await until(lambda: len(intake.versions) == 3, "the cancellation")
            assert ven.polls == 1  # everything came through the webhook
            assert ven.notifications == 3
        assert vtn.state.objects["subscriptions"] == {}  # the VEN unsubscribed on the way out
    first, modified, cancelled = intake.versions
    assert [i.value for i in first.intervals] == [500.0, 400.0]
    assert [i.value for i in modified.intervals] == [350.0]
    assert modified.modification_number > first.modification_number
    assert cancelled.status is EventStatus.CANCELLED
    assert cancelled.modification_number > modified.modification_number
    assert intake.actions(created["id"]) == [IntakeAction.NEW, IntakeAction.MODIFIED, IntakeAction.CANCELLED]
    assert all(status == 200 for _, status, _ in vtn.state.delivered)
    assert_spec_clean(vtn)


async def test_polling_sees_a_modification_and_a_deletion(vtn: RunningVtn3) -> None:
    intake = RecordingIntake()
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        body = event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1), step=timedelta(minutes=15),
                          values=[2], payload_type="SIMPLE", units=None)
        created = await admin.create_event(body)
        async with Ven3(settings_for(vtn, subscribe=False), intake) as ven:
            await until(lambda: len(intake.versions) == 1, "the polled event")
            await admin.update_event(created["id"], {**body, "intervals": [
                {"id": 0, "payloads": [{"type": "SIMPLE", "values": [3]}]}]})
            await until(lambda: len(intake.versions) == 2, "the polled modification")
            await admin.delete_event(created["id"])
            await until(lambda: len(intake.versions) == 3, "the vanished event")
            assert ven.webhook_url is None
            assert vtn.state.objects["subscriptions"] == {}
    assert [v.intervals[0].value for v in intake.versions[:2]] == [2.0, 3.0]
    assert intake.actions(created["id"]) == [IntakeAction.NEW, IntakeAction.MODIFIED, IntakeAction.CANCELLED]
    assert_spec_clean(vtn)


async def test_reports_are_posted_at_the_requested_interval_and_fit_the_spec(vtn: RunningVtn3) -> None:
    intake = RecordingIntake()
    values = LatestOnlyValues()
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        async with Ven3(settings_for(vtn), intake, values) as ven:
            await until(lambda: bool(ven.subscriptions), "the subscription")
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            created = await admin.create_event(event_body(
                program["id"], start=start, step=timedelta(seconds=1), values=[450.0, 450.0, 450.0, 450.0],
                report_every=2))
            await until(lambda: len(vtn.state.objects["reports"]) == 2, "two reports (every 2 intervals)")
        reports = await admin.reports(created["id"])
    assert len(reports) == 2
    usages: list[float] = []
    for report in sorted(reports, key=lambda r: r["reportName"]):
        assert openadr3_spec().schema_errors("report", report) == []
        assert report["programID"] == program["id"]
        assert report["clientName"] == "ven-park-a"
        rows = report["resources"][0]["intervals"]
        assert len(rows) == 2
        for row in rows:
            payloads = {p["type"]: p["values"][0] for p in row["payloads"]}
            assert payloads["BASELINE"] == 600.0
            assert payloads["DELTA_USAGE"] == payloads["USAGE"] - 600.0
            usages.append(payloads["USAGE"])
    assert usages == [410.0, 420.0, 430.0, 440.0]  # each interval sampled once, as it ended, in order
    starts = sorted(r["resources"][0]["intervals"][0]["intervalPeriod"]["start"] for r in reports)
    assert starts == [start.isoformat().replace("+00:00", "Z"),
                      (start + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")]
    assert_spec_clean(vtn)


async def test_an_opted_out_event_gets_no_reports(vtn: RunningVtn3) -> None:
    intake = RecordingIntake(OptDecision.OPT_OUT)
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        start = datetime.now(UTC) - timedelta(seconds=1)
        await admin.create_event(event_body(program["id"], start=start, step=timedelta(seconds=1), values=[1.0]))
        async with Ven3(settings_for(vtn, subscribe=False), intake, ConstantValues()) as ven:
            await until(lambda: len(intake.versions) == 1, "the event")
            assert await ven.report_due(datetime.now(UTC) + timedelta(seconds=5)) is None
    assert vtn.state.objects["reports"] == {}


async def test_an_unreadable_event_is_skipped_and_a_revoked_token_is_renewed(vtn: RunningVtn3) -> None:
    intake = RecordingIntake()
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        bad = await admin.create_event({"programID": program["id"], "intervals": [
            {"id": 0, "payloads": [{"type": "ALERT_FIRE", "values": ["evacuate"]}]}]})
        async with Ven3(settings_for(vtn, subscribe=False), intake) as ven:
            await until(lambda: bad["id"] in ven.rejected, "the unreadable event")
            vtn.state.revoke_tokens()
            good = await admin.create_event(event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1),
                                                       step=timedelta(minutes=15), values=[100.0]))
            await until(lambda: len(intake.versions) == 1, "the readable event after re-authentication")
    assert "no payload ParkPulse can act on" in ven.rejected[bad["id"]]
    assert intake.versions[0].vtn_event_id == good["id"]
    assert_spec_clean(vtn)


async def test_the_ven_backs_off_while_the_vtn_is_down_and_recovers() -> None:
    state = VtnState()
    state.add_client(VEN_ID, VEN_SECRET, "ven")
    intake = RecordingIntake()
    async with running_vtn3(state) as first:
        port = int(first.base_url.rsplit(":", 1)[1])
        settings = settings_for(first, subscribe=False)
    async with Ven3(settings, intake) as ven:  # nothing listens on the port now
        await asyncio.sleep(0.3)
        assert ven.polls == 0
        async with running_vtn3(state, port=port) as again, Vtn3Admin(again.base_url) as admin:
            program = await admin.create_program("capacity")
            await admin.create_event(event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1),
                                                step=timedelta(minutes=15), values=[100.0]))
            await until(lambda: len(intake.versions) == 1, "the event after the VTN came back")


async def test_a_report_off_the_spec_is_refused_by_the_stand_in(vtn: RunningVtn3) -> None:
    async with Oadr3Client(vtn.base_url, VEN_ID, VEN_SECRET) as client:
        with pytest.raises(Oadr3RequestError) as refused:
            await client.post_report({"programID": "p 1", "eventID": "e1", "clientName": "ven",
                                      "resources": [{"resourceName": "AGGREGATED_REPORT", "intervals": [
                                          {"id": 0, "payloads": [{"type": "USAGE", "values": [None]}]}]}]})
    assert refused.value.status == 400
    assert len(vtn.state.rejected_requests) == 1
    assert "programID" in vtn.state.rejected_requests[0]
    assert "values/0" in vtn.state.rejected_requests[0]
    assert vtn.state.objects["reports"] == {}


async def test_the_webhook_wants_the_bearer_token_and_the_ven_follows_only_its_programs(vtn: RunningVtn3) -> None:
    intake = RecordingIntake()
    async with Vtn3Admin(vtn.base_url) as admin:
        followed = await admin.create_program("capacity")
        other = await admin.create_program("pricing")
        async with Ven3(settings_for(vtn, program_names=("capacity",)), intake) as ven:
            await until(lambda: ven.polls == 1, "the first poll")
            assert set(ven.subscriptions) == {followed["id"]}
            assert ven.webhook_url is not None
            async with httpx.AsyncClient() as http:
                anonymous = await http.post(ven.webhook_url, json={"objectType": "EVENT"})
                subscription = vtn.state.objects["subscriptions"][ven.subscriptions[followed["id"]]]
                token = subscription["objectOperations"][0]["bearerToken"]
                garbage = await http.post(ven.webhook_url, content=b"{", headers={"Authorization": f"Bearer {token}"})
            assert anonymous.status_code == 403
            assert garbage.status_code == 400
            start = datetime.now(UTC) + timedelta(hours=1)
            await admin.create_event(event_body(other["id"], start=start, step=timedelta(minutes=15), values=[1.0]))
            mine = await admin.create_event(event_body(followed["id"], start=start, step=timedelta(minutes=15),
                                                       values=[2.0]))
            await until(lambda: len(intake.versions) == 1, "the followed program's event")
            ven.poll_now()
            await until(lambda: ven.polls == 2, "another poll")
    assert [v.vtn_event_id for v in intake.versions] == [mine["id"]]
    assert ven.notifications == 1


async def test_a_taken_webhook_port_fails_the_start_cleanly(vtn: RunningVtn3) -> None:
    async with Ven3(settings_for(vtn), RecordingIntake()) as first:
        assert first.webhook_url is not None
        port = int(first.webhook_url.split(":")[2].split("/")[0])
        second = Ven3(settings_for(vtn, webhook_port=port), RecordingIntake())
        with pytest.raises(OSError, match=str(port)):
            await second.__aenter__()
        assert second.client._http.is_closed
