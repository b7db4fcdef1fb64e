"""The dispatcher against the real Mosquitto and TimescaleDB, with a test client acting as the devices.

Commands reach the device topics, acknowledgements are matched and audited, a missing acknowledgement is
resent until the command expires, a rejection is recorded with its reason, an operator override wins,
cancellation releases the devices, and the audit rows cannot be changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest

from flex._assets import Battery, BatteryState, Thermal, ThermalState
from flex._direction import Direction
from flex._plan_model import PlanInterval
from flex._records import AssetRecord
from flex._store import DrStore
from infra.settings import parse_mqtt_url
from schemas.commands import (
    AckStatus,
    CommandAction,
    CommandMessage,
    RejectCode,
    ack_topic,
    build_ack,
    decode_command,
    encode_ack,
)
from vpp._dispatch import Dispatcher
from vpp._dispatch_settings import DispatchSettings
from vpp._dispatch_store import DispatchStore, command_log, list_commands, set_override

WAIT_S = 20.0


@dataclass
class FakeDevices:
    """Subscribes to the park's command topics as the devices would and answers per ``behaviour``."""

    park_id: str
    behaviour: Callable[[CommandMessage], tuple[AckStatus, RejectCode | None] | None]
    received: list[CommandMessage] = field(default_factory=list)

    async def run(self, client: aiomqtt.Client) -> None:
        await client.subscribe(f"parkpulse/v1/{self.park_id}/+/cmd", qos=1)
        async for msg in client.messages:
            assert isinstance(msg.payload, bytes)
            command = decode_command(msg.payload)
            self.received.append(command)
            answer = self.behaviour(command)
            if answer is None:
                continue
            status, reason = answer
            ack = build_ack(command_id=command["command_id"], device=command["device"], status=status,
                            reason=reason, acked_at=datetime.now(UTC), unit=command["unit"],
                            applied_value=command["value"] if status == AckStatus.APPLIED else None)
            await client.publish(ack_topic(self.park_id, command["device"]), encode_ack(ack), qos=1)


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Poll until ``predicate`` holds; fails naming ``what`` after WAIT_S (a hang guard, not a timing check)."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def devices(mqtt_url: str, park_id: str,
                  behaviour: Callable[[CommandMessage], Any]) -> AsyncIterator[FakeDevices]:
    endpoint = parse_mqtt_url(mqtt_url)
    fake = FakeDevices(park_id, behaviour)
    async with aiomqtt.Client(endpoint.host, endpoint.port, identifier=f"dev-{uuid.uuid4().hex[:8]}",
                              username=endpoint.username, password=endpoint.password,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        task = asyncio.create_task(fake.run(client))
        await asyncio.sleep(0.2)  # the subscription is in place before anything is dispatched
        try:
            yield fake
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def apply_all(_: CommandMessage) -> tuple[AckStatus, RejectCode | None]:
    return AckStatus.APPLIED, None


@pytest.fixture
def assets(park_id: str, database_url: str) -> str:
    now = datetime.now(UTC)
    with DrStore(database_url, max_size=1) as store:
        store.put_asset(park_id, AssetRecord(
            Battery(asset_id="bess", capacity_kwh=100, charge_power_max_kw=100, discharge_power_max_kw=100,
                    state=BatteryState(soc_pct=50, power_kw=0)), device_id="bess-1", state_at=now))
        store.put_asset(park_id, AssetRecord(
            Thermal(asset_id="ahu", rated_power_kw=100, cop=3, thermal_capacitance_kwh_per_k=30, comfort_min_c=22,
                    comfort_max_c=26, max_shed_fraction=0.5, state=ThermalState(indoor_temp_c=24, power_kw=60)),
            device_id="ahu-1", state_at=now))
    return park_id


def settings(database_url: str, mqtt_url: str, **overrides: Any) -> DispatchSettings:
    values: dict[str, Any] = {"database_url": database_url, "mqtt_url": mqtt_url,
                              "vpp_dispatch_client_id": f"vpp-test-{uuid.uuid4().hex[:8]}",
                              "vpp_dispatch_tick_s": 0.05, "vpp_dispatch_resend_s": 0.3, "vpp_dispatch_expiry_s": 5.0}
    return DispatchSettings(**(values | overrides))


def intervals(n: int, seconds: float, target_kw: float, *, lead_s: float = 0.3) -> list[PlanInterval]:
    t0 = datetime.now(UTC) + timedelta(seconds=lead_s)
    step = timedelta(seconds=seconds)
    return [PlanInterval(t0 + i * step, t0 + (i + 1) * step, target_kw) for i in range(n)]


def commands(database_url: str, park_id: str, **kw: Any) -> list[Any]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return list_commands(conn, park_id, **kw)


async def test_commands_reach_the_devices_and_acks_are_audited(assets: str, database_url: str, mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        plan = await dispatcher.dispatch("ev-ok", park, Direction.UP, intervals(3, 0.5, 40.0))
        assert plan.method == "lp"
        assert plan.response_kw == pytest.approx((40.0,) * 3)
        await wait_for(lambda: dispatcher.acks_received >= 3, "three acknowledgements")
    got = [c for c in fake.received if c["device"] == "bess-1"]
    assert [c["action"] for c in got] == [CommandAction.SET_ACTIVE_POWER] * 3
    assert [c["value"] for c in got] == pytest.approx([-40.0] * 3)  # discharge = − (metering convention)
    assert all(c["event_id"] == "ev-ok" and c["hold_until"] is not None for c in got)
    assert not any(c["device"] == "ahu-1" for c in fake.received)  # the cheaper battery covers it alone
    rows = commands(database_url, park, event_id="ev-ok")
    assert len(rows) == 3
    assert {r.status for r in rows} == {"applied"}
    assert all(r.applied_value == pytest.approx(-40.0) and r.attempts == 1 for r in rows)


async def test_a_missing_ack_is_resent_until_the_command_expires(assets: str, database_url: str,
                                                                 mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, lambda _: None) as fake, \
            Dispatcher(settings(database_url, mqtt_url, vpp_dispatch_expiry_s=1.2)) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-silent", park, Direction.UP, intervals(1, 30.0, 20.0))
        await wait_for(lambda: bool(commands(database_url, park, event_id="ev-silent"))
                       and commands(database_url, park, event_id="ev-silent")[0].status == "expired", "expiry")
        assert dispatcher.outstanding == {}
    [row] = commands(database_url, park, event_id="ev-silent")
    with psycopg.connect(database_url, autocommit=True) as conn:
        kinds = [e["kind"] for e in command_log(conn, row.command_id)]
    assert kinds[0] == "sent"
    assert kinds[-1] == "expired"
    assert kinds.count("resent") >= 2
    copies = [c for c in fake.received if c["command_id"] == row.command_id]
    assert len(copies) == row.attempts >= 3  # the same id every time: the device applies it once


async def test_a_rejection_is_recorded_with_its_reason_and_not_retried(assets: str, database_url: str,
                                                                     mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, lambda _: (AckStatus.REJECTED, RejectCode.OUT_OF_RANGE)), \
            Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-reject", park, Direction.UP, intervals(1, 30.0, 20.0))
        await wait_for(lambda: dispatcher.acks_received >= 1, "the rejection")
        await asyncio.sleep(0.5)  # longer than resend_s: a rejected command must not be resent
    [row] = commands(database_url, park, event_id="ev-reject")
    assert (row.status, row.status_reason, row.attempts) == ("rejected", "out_of_range", 1)


async def test_an_operator_override_wins(assets: str, database_url: str, mqtt_url: str) -> None:
    park = assets
    with psycopg.connect(database_url, autocommit=True) as conn:
        set_override(conn, park, "bess-1", max_change_kw=0.0, valid_until=datetime.now(UTC) + timedelta(hours=1),
                     reason="battery maintenance", created_by="test")
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        plan = await dispatcher.dispatch("ev-override", park, Direction.UP, intervals(2, 0.5, 20.0))
        await wait_for(lambda: dispatcher.acks_received >= 2, "two acknowledgements")
    assert {c["device"] for c in fake.received} == {"ahu-1"}
    assert all(c["action"] == CommandAction.SET_TEMPERATURE_SETPOINT for c in fake.received)
    bess = next(s for s in plan.schedules if s.asset_id == "bess")
    assert bess.power_kw == bess.baseline_kw


async def test_an_override_set_after_planning_suppresses_the_next_command(assets: str, database_url: str,
                                                                         mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-late", park, Direction.UP, intervals(2, 1.5, 30.0, lead_s=0.0))
        await wait_for(lambda: dispatcher.acks_received >= 1, "the first acknowledgement")
        with psycopg.connect(database_url, autocommit=True) as conn:
            set_override(conn, park, "bess-1", max_change_kw=5.0, valid_until=datetime.now(UTC) + timedelta(hours=1),
                         reason="site manager", created_by="test")
        await wait_for(lambda: len(commands(database_url, park, event_id="ev-late")) >= 2, "the second command")
        await wait_for(lambda: commands(database_url, park, event_id="ev-late")[0].status == "suppressed",
                       "the suppression")
    assert len(fake.received) == 1


async def test_cancellation_releases_the_devices(assets: str, database_url: str, mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-cancel", park, Direction.UP, intervals(3, 5.0, 30.0, lead_s=0.0))
        await wait_for(lambda: dispatcher.acks_received >= 1, "the first acknowledgement")
        assert len(dispatcher.scheduled) == 2
        assert await dispatcher.cancel("ev-cancel") == 1
        await wait_for(lambda: dispatcher.acks_received >= 2, "the release acknowledgement")
        assert dispatcher.scheduled == []
    assert [c["action"] for c in fake.received] == [CommandAction.SET_ACTIVE_POWER, CommandAction.RELEASE]
    rows = commands(database_url, park, event_id="ev-cancel")
    assert sorted(r.action for r in rows) == ["release", "set_active_power"]


async def test_the_audit_trail_cannot_be_changed(assets: str, database_url: str, mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, apply_all), Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-audit", park, Direction.UP, intervals(1, 0.5, 10.0))
        await wait_for(lambda: dispatcher.acks_received >= 1, "the acknowledgement")
    [row] = commands(database_url, park, event_id="ev-audit")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sql in ("UPDATE vpp_commands SET value = 0 WHERE command_id = %s",
                    "DELETE FROM vpp_commands WHERE command_id = %s",
                    "UPDATE vpp_command_log SET kind = 'applied' WHERE command_id = %s",
                    "DELETE FROM vpp_command_log WHERE command_id = %s",
                    "DELETE FROM vpp_plans WHERE event_id = (SELECT event_id FROM vpp_commands WHERE command_id = %s)"):
            with pytest.raises(psycopg.errors.CheckViolation, match="audit trail"):
                conn.execute(sql, (row.command_id,))


def test_overrides_can_only_be_cleared_once(park_id: str, database_url: str) -> None:
    from vpp._dispatch_store import clear_override, list_overrides
    from vpp.errors import OverrideNotFoundError

    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        o = set_override(conn, park_id, "bess-1", max_change_kw=0, valid_until=now + timedelta(hours=1),
                         reason="maintenance", created_by="test")
        assert [x.override_id for x in list_overrides(conn, park_id, at=now + timedelta(seconds=1))] == [o.override_id]
        with pytest.raises(psycopg.errors.CheckViolation, match="only be cleared"):
            conn.execute("UPDATE vpp_overrides SET max_change_kw = 50 WHERE override_id = %s", (o.override_id,))
        cleared = clear_override(conn, park_id, o.override_id, cleared_by="test", at=now + timedelta(seconds=2))
        assert cleared.cleared_by == "test"
        with pytest.raises(OverrideNotFoundError, match="no live override"):
            clear_override(conn, park_id, o.override_id, cleared_by="test", at=now)
        assert list_overrides(conn, park_id, at=now + timedelta(seconds=3)) == []
    assert DispatchStore(database_url).database_url == database_url


async def test_intake_results_drive_the_dispatcher(assets: str, database_url: str, mqtt_url: str) -> None:
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

    park = assets
    t0 = datetime.now(UTC) + timedelta(seconds=1)
    event = IncomingEvent(source=EventSource.OADR2, vtn_id="vtn", vtn_event_id="e9", modification_number=0,
                          status=EventStatus.ACTIVE, park_id=park, signal_name="LOAD_DISPATCH",
                          signal_kind=SignalKind.TARGET_KW, received_at=t0,
                          intervals=tuple(EventInterval(t0 + i * timedelta(seconds=20), timedelta(seconds=20), 25.0)
                                          for i in range(3)))

    def result(action: IntakeAction, opt: OptDecision = OptDecision.OPT_IN) -> IntakeResult:
        return IntakeResult(dr_event_id="ev-intake", action=action, opt=opt, event=event, requested_kw=25.0,
                            committed_kw=25.0, start=t0, end=t0 + timedelta(seconds=60), direction="up")

    planned: list[dict[datetime, float]] = []
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url), on_plan=lambda _e, p: planned.append(p)) as dispatcher:
        await dispatcher.wait_connected()
        assert await dispatcher.on_event(result(IntakeAction.DUPLICATE)) is None
        plan = await dispatcher.on_event(result(IntakeAction.NEW))
        assert plan is not None
        assert list(planned[0].values()) == pytest.approx([25.0] * 3)
        await wait_for(lambda: dispatcher.acks_received >= 1, "the first acknowledgement")
        assert await dispatcher.on_event(result(IntakeAction.CANCELLED)) is None
        await wait_for(lambda: any(c["action"] == CommandAction.RELEASE for c in fake.received), "the release")
        assert await dispatcher.on_event(result(IntakeAction.MODIFIED, OptDecision.OPT_OUT)) is None
    assert fake.received[0]["event_id"] == "ev-intake"
    assert fake.received[0]["value"] == pytest.approx(-25.0)


async def test_a_modified_event_replans_and_releases_devices_no_longer_needed(assets: str, database_url: str,
                                                                             mqtt_url: str) -> None:
    park = assets
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url)) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-mod", park, Direction.UP, intervals(2, 5.0, 30.0, lead_s=0.0))
        await wait_for(lambda: dispatcher.acks_received >= 1, "the battery's first acknowledgement")
        with psycopg.connect(database_url, autocommit=True) as conn:
            set_override(conn, park, "bess-1", max_change_kw=0.0, valid_until=datetime.now(UTC) + timedelta(hours=1),
                         reason="fire alarm test", created_by="test")
        await dispatcher.dispatch("ev-mod", park, Direction.UP, intervals(2, 5.0, 20.0, lead_s=0.0))
        await wait_for(lambda: {(c["device"], c["action"]) for c in fake.received} >= {
            ("bess-1", CommandAction.RELEASE), ("ahu-1", CommandAction.SET_TEMPERATURE_SETPOINT)}, "the new plan")
    first = [c["action"] for c in fake.received if c["device"] == "bess-1"]
    assert first == [CommandAction.SET_ACTIVE_POWER, CommandAction.RELEASE]
    with psycopg.connect(database_url, autocommit=True) as conn:
        plans = conn.execute("SELECT count(*) FROM vpp_plans WHERE event_id = 'ev-mod' AND park_id = %s",
                             (park,)).fetchone()
    assert plans == (2,)


async def test_a_command_that_cannot_be_recorded_is_not_sent_until_it_is(assets: str, database_url: str,
                                                                        mqtt_url: str) -> None:
    from vpp.errors import DispatchStoreError

    class FlakyStore(DispatchStore):
        """The audit database refuses the next ``failures`` connections made while sending."""

        failures = 0

        @contextlib.contextmanager
        def connect(self) -> Iterator[psycopg.Connection[Any]]:
            if self.failures > 0:
                self.failures -= 1
                raise DispatchStoreError("the database is unreachable (test)")
            with super().connect() as conn:
                yield conn

    park = assets
    store = FlakyStore(database_url)
    async with devices(mqtt_url, park, apply_all) as fake, \
            Dispatcher(settings(database_url, mqtt_url), store=store) as dispatcher:
        await dispatcher.wait_connected()
        await dispatcher.dispatch("ev-flaky", park, Direction.UP, intervals(1, 30.0, 20.0, lead_s=0.5))
        store.failures = 3  # the plan is stored; recording the command fails three times
        await wait_for(lambda: dispatcher.acks_received >= 1, "the acknowledgement after the outage")
    assert store.failures == 0
    assert len(fake.received) == 1
    [row] = commands(database_url, park, event_id="ev-flaky")
    assert row.command_id == fake.received[0]["command_id"]
    assert row.status == "applied"
