"""Event intake against the real database: idempotency by (source, vtn, event id), modification numbers,
cancellation, opt-out reasons from the park's policy, audit of every version, listeners."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flex import AssetRecord, Battery, BatteryState, Direction, DrService, DrStore
from tests.flex.dbseed import seed_park
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
from vpp._intake import DrCapabilities, EventIntake, dr_event_id_for
from vpp._intake_policy import IntakePolicy
from vpp._intake_store import IntakeStore

pytestmark = pytest.mark.services


def add_battery(dr: DrStore, park_id: str, *, at: datetime, discharge_kw: float = 200.0) -> None:
    """A 400 kWh battery at 80 % SoC, idle: up flexibility = min(discharge_kw, energy / duration)."""
    battery = Battery(asset_id="bess", capacity_kwh=400, charge_power_max_kw=discharge_kw,
                      discharge_power_max_kw=discharge_kw, state=BatteryState(soc_pct=80, power_kw=0))
    dr.put_asset(park_id, AssetRecord(battery, device_id="bess-01", state_at=at))


class Harness:
    """The intake over the real stores, with the listener calls it made."""

    def __init__(self, database_url: str) -> None:
        self.dr = DrStore(database_url)
        self.store = IntakeStore(database_url)
        self.service = DrService(self.dr)
        self.intake = EventIntake(self.store, DrCapabilities(self.service, self.store))
        self.heard: list[IntakeResult] = []
        self.intake.add_listener(self.heard.append)

    def available_up_kw(self, park_id: str, at: datetime, duration_h: float) -> float:
        return self.service.current_flex_for_duration(park_id, duration_h, now=at).up_kw

    def close(self) -> None:
        self.store.close()
        self.dr.close()


@pytest.fixture
def harness(database_url: str) -> Iterator[Harness]:
    h = Harness(database_url)
    yield h
    h.close()


@pytest.fixture
def park(db_conn: psycopg.Connection, park_id: str, harness: Harness) -> str:
    seed_park(db_conn, park_id)
    add_battery(harness.dr, park_id, at=datetime.now(UTC))
    return park_id


def make_event(park_id: str, *, vtn_event_id: str = "evt-1", modification: int = 0, kw: float = 100.0,
               status: EventStatus = EventStatus.FAR, notice: timedelta = timedelta(hours=2),
               duration: timedelta = timedelta(hours=1), kind: SignalKind = SignalKind.TARGET_KW,
               received_at: datetime | None = None, vtn_id: str | None = None) -> IncomingEvent:
    """An event from a VTN of this park's own (keys never collide between tests)."""
    vtn_id = vtn_id or f"VTN-{park_id}"
    received = received_at or datetime.now(UTC).replace(microsecond=0)
    start = received + notice
    half = duration / 2
    return IncomingEvent(
        source=EventSource.OADR2, vtn_id=vtn_id, vtn_event_id=vtn_event_id, modification_number=modification,
        status=status, park_id=park_id, signal_name="LOAD_DISPATCH", signal_kind=kind,
        intervals=(EventInterval(start, half, kw * 0.5), EventInterval(start + half, half, kw)),
        received_at=received, program_id="prog-1", raw={"event_id": vtn_event_id, "mod": modification},
    )


def versions(db_conn: psycopg.Connection, event: IncomingEvent) -> list[tuple[int, str]]:
    rows = db_conn.execute(
        """SELECT modification_number, action FROM vpp_event_versions WHERE source = %s AND vtn_id = %s
           AND vtn_event_id = %s ORDER BY version_id""", event.key).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def test_new_event_registers_a_flex_event_with_the_baseline_fixed_at_notification(harness, park, db_conn):
    event = make_event(park, kw=120.0)
    result = harness.intake.accept(event)
    assert (result.action, result.opt, result.opt_reason) == (IntakeAction.NEW, OptDecision.OPT_IN, None)
    assert result.dr_event_id == dr_event_id_for("oadr2", f"VTN-{park}", "evt-1")
    assert result.requested_kw == pytest.approx(120.0)  # the largest interval value
    assert result.interval_kw == pytest.approx((60.0, 120.0))
    stored = harness.store.get(result.dr_event_id)
    assert stored is not None
    assert [i["kw"] for i in stored.intervals] == pytest.approx([60.0, 120.0])
    flex_event = harness.dr.get_event(result.dr_event_id)
    assert flex_event is not None
    assert flex_event.park_id == park
    assert (flex_event.start, flex_event.end) == (event.start, event.end)
    assert flex_event.notified_at == event.received_at
    assert flex_event.direction is Direction.UP
    assert flex_event.requested_kw == pytest.approx(120.0)
    assert flex_event.declared_kw == pytest.approx(harness.available_up_kw(park, event.received_at, 1.0))
    assert flex_event.source == "oadr2"
    assert flex_event.program_id == "prog-1"
    assert harness.heard == [result]
    assert versions(db_conn, event) == [(0, "new")]


def test_duplicate_is_a_no_op_and_stale_is_ignored(harness, park, db_conn):
    first = harness.intake.accept(make_event(park, modification=3, kw=80.0))
    before = harness.dr.get_event(first.dr_event_id)
    again = harness.intake.accept(make_event(park, modification=3, kw=999.0))  # same version, even if altered
    assert again.action is IntakeAction.DUPLICATE
    assert (again.opt, again.committed_kw) == (first.opt, first.committed_kw)
    older = harness.intake.accept(make_event(park, modification=1, kw=5.0))
    assert older.action is IntakeAction.STALE
    assert harness.dr.get_event(first.dr_event_id) == before
    assert harness.heard == [first]  # listeners hear only the change
    assert versions(db_conn, make_event(park)) == [(3, "new"), (3, "duplicate"), (1, "stale")]
    events, total = harness.store.list_events(park)
    assert total == 1
    assert events[0].modification_number == 3


def test_higher_modification_updates_the_same_event(harness, park, db_conn):
    first = harness.intake.accept(make_event(park, modification=0, kw=60.0))
    later = make_event(park, modification=1, kw=90.0, notice=timedelta(hours=3))
    modified = harness.intake.accept(later)
    assert modified.action is IntakeAction.MODIFIED
    assert modified.dr_event_id == first.dr_event_id
    flex_event = harness.dr.get_event(first.dr_event_id)
    assert flex_event is not None
    assert flex_event.requested_kw == pytest.approx(90.0)
    assert flex_event.start == later.start
    assert flex_event.notified_at == first.event.received_at  # baseline stays fixed at the first notification
    _events, total = harness.dr.list_events(park, start=None, end=None, limit=10, offset=0)
    assert total == 1
    assert [r.action for r in harness.heard] == [IntakeAction.NEW, IntakeAction.MODIFIED]


def test_cancellation_marks_the_flex_event_cancelled_and_tells_listeners(harness, park):
    first = harness.intake.accept(make_event(park, modification=0))
    cancelled = harness.intake.accept(make_event(park, modification=1, status=EventStatus.CANCELLED))
    assert cancelled.action is IntakeAction.CANCELLED
    flex_event = harness.dr.get_event(first.dr_event_id)
    assert flex_event is not None
    assert flex_event.status == "cancelled"
    assert harness.heard[-1].action is IntakeAction.CANCELLED
    stored = harness.store.get(first.dr_event_id)
    assert stored is not None
    assert stored.vtn_status == "cancelled"


def test_event_beyond_the_parks_flexibility_is_opted_out_with_the_reason(harness, park):
    received = datetime.now(UTC).replace(microsecond=0)
    available = harness.available_up_kw(park, received, 1.0)
    result = harness.intake.accept(make_event(park, kw=available * 1.5, received_at=received))
    assert result.opt is OptDecision.OPT_OUT
    assert result.committed_kw == 0
    assert result.opt_reason is not None
    assert "exceeds available flexibility" in result.opt_reason
    assert harness.dr.get_event(result.dr_event_id) is None  # nothing committed, nothing registered
    # The park can no longer meet a modified event it had accepted: opted out, flex event cancelled.
    ok = harness.intake.accept(make_event(park, vtn_event_id="evt-2", kw=available * 0.5, received_at=received))
    assert ok.opt is OptDecision.OPT_IN
    worse = harness.intake.accept(make_event(park, vtn_event_id="evt-2", modification=1, kw=available * 2,
                                             received_at=received))
    assert (worse.action, worse.opt) == (IntakeAction.MODIFIED, OptDecision.OPT_OUT)
    flex_event = harness.dr.get_event(ok.dr_event_id)
    assert flex_event is not None
    assert flex_event.status == "cancelled"


def test_park_policy_short_notice_and_margin_and_unknown_park(harness, park):
    harness.store.put_policy(park, IntakePolicy(min_notice=timedelta(minutes=30), flex_margin=0.5))
    short = harness.intake.accept(make_event(park, notice=timedelta(minutes=10)))
    assert short.opt is OptDecision.OPT_OUT
    assert short.opt_reason is not None
    assert "notice 10 min is shorter than the park's minimum 30 min" in short.opt_reason
    received = datetime.now(UTC).replace(microsecond=0)
    available = harness.available_up_kw(park, received, 1.0)
    margin = harness.intake.accept(make_event(park, vtn_event_id="m", kw=available * 0.75, received_at=received))
    assert margin.opt is OptDecision.OPT_OUT
    assert "margin 0.5" in (margin.opt_reason or "")
    unknown = harness.intake.accept(make_event(f"{park}-missing", vtn_event_id="u"))
    assert unknown.opt is OptDecision.OPT_OUT
    assert "unknown park" in (unknown.opt_reason or "")
    assert harness.store.get(unknown.dr_event_id) is not None  # recorded for the utility's question "why"


def test_simple_levels_map_to_a_share_of_available_flexibility(harness, park):
    received = datetime.now(UTC).replace(microsecond=0)
    available = harness.available_up_kw(park, received, 1.0)
    level2 = replace(make_event(park, kind=SignalKind.SIMPLE, kw=2.0, received_at=received),
                     intervals=(EventInterval(received + timedelta(hours=1), timedelta(hours=1), 2.0, "level"),))
    result = harness.intake.accept(level2)
    assert result.opt is OptDecision.OPT_IN
    assert result.committed_kw == pytest.approx(0.75 * available)
    assert result.interval_kw == pytest.approx((0.75 * available,))


def test_every_version_is_stored_raw_and_versions_are_listed(harness, park):
    harness.intake.accept(make_event(park, modification=0))
    harness.intake.accept(make_event(park, modification=0))
    last = harness.intake.accept(make_event(park, modification=2))
    stored = harness.store.versions(last.dr_event_id)
    assert [(v.modification_number, v.action) for v in stored] == [(0, "new"), (0, "duplicate"), (2, "modified")]
    assert stored[2].raw == {"event_id": "evt-1", "mod": 2}


async def test_async_listeners_are_awaited(harness, park):
    heard: list[str] = []

    async def listener(result: IntakeResult) -> None:
        heard.append(result.dr_event_id)

    harness.intake.add_listener(listener)
    result = await harness.intake.accept_async(make_event(park))
    assert heard == [result.dr_event_id]
    with pytest.raises(TypeError, match="accept_async"):
        harness.intake.accept(make_event(park, modification=1))


def test_concurrent_deliveries_of_one_version_record_it_once(harness, park, db_conn):
    event = make_event(park, modification=0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(harness.intake.accept_sync, [event] * 4))
    assert sorted(r.action.value for r in results) == ["duplicate", "duplicate", "duplicate", "new"]
    assert len({r.dr_event_id for r in results}) == 1
    events, total = harness.dr.list_events(park, start=None, end=None, limit=10, offset=0)
    assert total == 1
    assert events[0].requested_kw == pytest.approx(100.0)
    assert sorted(a for _, a in versions(db_conn, event)) == ["duplicate", "duplicate", "duplicate", "new"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=8))
def test_any_delivery_order_ends_at_the_highest_version_with_one_change_per_new_maximum(harness, park, deliveries):
    vtn_event_id = f"prop-{uuid.uuid4().hex[:10]}"
    heard_before = len(harness.heard)
    actions = [harness.intake.accept(make_event(park, vtn_event_id=vtn_event_id, modification=m,
                                                kw=10.0 + m)).action for m in deliveries]
    maxima = [m for k, m in enumerate(deliveries) if all(m > p for p in deliveries[:k])]
    assert len(harness.heard) - heard_before == len(maxima)  # listeners hear each new maximum once
    assert actions.count(IntakeAction.NEW) == 1
    assert actions.count(IntakeAction.MODIFIED) == len(maxima) - 1
    assert actions.count(IntakeAction.DUPLICATE) == sum(
        1 for k, m in enumerate(deliveries) if m in deliveries[:k] and all(m >= p for p in deliveries[:k]))
    stored = harness.store.get(dr_event_id_for("oadr2", f"VTN-{park}", vtn_event_id))
    assert stored is not None
    assert stored.modification_number == max(deliveries)
    flex_event = harness.dr.get_event(stored.dr_event_id)
    assert flex_event is not None
    assert flex_event.requested_kw == pytest.approx(10.0 + max(deliveries))
    assert len(harness.store.versions(stored.dr_event_id)) == len(deliveries)
