"""Live M&V against the real database: baseline fixed at notification from the meters' counters, live
delivery every interval, the report values, and the final result stored in flex agreeing with the meters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from flex import Direction, DrService, DrStore, EventRequest, EventWindow, evaluate_event
from flex._records import DrSettings
from tests.fixtures.services import unique_park_id
from tests.flex.dbseed import add_series, seed_park, write_readings
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
from vpp._live_mv import metered_frame
from vpp._live_mv_service import LiveMv

T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
END = T0 + timedelta(minutes=5)


def _power_kw(ts: datetime) -> float:
    """1000 kW before the event, 700 kW during its first three minutes, then 800 kW."""
    if ts < T0:
        return 1000.0
    return 700.0 if ts < T0 + timedelta(minutes=3) else 800.0


def _counter(start: datetime, end: datetime, period_s: int = 10) -> list[tuple[datetime, float]]:
    out, kwh, ts = [], 5000.0, start
    while ts <= end:
        out.append((ts, kwh))
        kwh += _power_kw(ts) * period_s / 3600.0
        ts += timedelta(seconds=period_s)
    return out


@pytest.fixture
def park(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    park_id = unique_park_id(request)
    with psycopg.connect(database_url, autocommit=True) as conn:
        seed_park(conn, park_id)
        series = add_series(conn, park_id, "meter-1", "active_energy_import", "kWh", level=1)
        write_readings(conn, series, _counter(T0 - timedelta(minutes=20), END + timedelta(minutes=2)))
    store = DrStore(database_url)
    store.put_settings(park_id, DrSettings(baseline_method="JIANGSU_RT_15MIN",
                                           baseline_overrides={"interval_minutes": 1, "pre_event_minutes": 5}))
    store.close()
    return park_id


def _result(park_id: str, event_id: str, action: IntakeAction = IntakeAction.NEW) -> IntakeResult:
    incoming = IncomingEvent(
        source=EventSource.OADR2, vtn_id="vtn", vtn_event_id=event_id, modification_number=0,
        status=EventStatus.FAR, park_id=park_id, signal_name="LOAD_DISPATCH", signal_kind=SignalKind.TARGET_KW,
        intervals=(EventInterval(T0, END - T0, 300.0),), received_at=T0 - timedelta(minutes=2),
    )
    return IntakeResult(event_id, action, OptDecision.OPT_IN, incoming, 300.0, 300.0, start=T0, end=END)


def _register(database_url: str, park_id: str, event_id: str) -> None:
    store = DrStore(database_url)
    DrService(store).register_event(park_id, EventWindow(T0, END), direction=Direction.UP, requested_kw=300.0,
                                    declared_kw=300.0, notified_at=T0 - timedelta(minutes=2), event_id=event_id,
                                    source="oadr2")
    store.close()


def test_live_then_final_mv_from_the_meters(database_url: str, park: str) -> None:
    event_id = f"{park}-e1"
    _register(database_url, park, event_id)
    now = [T0 - timedelta(minutes=2)]
    mv = LiveMv(database_url, park_ids=[park], clock=lambda: now[0])
    try:
        assert mv.accept(_result(park, event_id)) is None  # pre-event window not metered yet: pending
        now[0] = T0 + timedelta(seconds=15)
        mv.tick()
        fixed = mv.events[event_id]
        assert fixed.fixed_at == T0
        assert list(fixed.baseline.baseline_kw().values()) == pytest.approx([1000.0] * 5)
        mv.set_plan(event_id, {T0: 300.0})

        now[0] = T0 + timedelta(minutes=3, seconds=15)
        (perf,) = mv.tick()
        assert perf.completed_intervals == 3
        assert perf.missing_intervals == 0
        assert perf.delivered_kwh == pytest.approx(15.0, abs=0.01)  # 3 min × 300 kW
        assert perf.forecast_kwh == pytest.approx(25.0, abs=0.01)   # on plan so far: 2 more minutes × 300 kW
        values = mv.report_values
        at = T0 + timedelta(minutes=3, seconds=10)
        assert values.baseline_kw(park, event_id, at) == pytest.approx(1000.0)
        assert values.delivered_kw(park, event_id, at) == pytest.approx(300.0, abs=0.5)
        assert values.baseline_kw(park, None, at) is None
        stored = mv.store.get_event(event_id)
        assert stored is not None
        assert stored.status == "active"
        assert stored.delivered_kwh == pytest.approx(15.0, abs=0.01)

        now[0] = END + timedelta(seconds=15)
        (final,) = mv.tick()
        assert final.finished
        # 3 min at 300 kW + 2 min at 200 kW = 15 + 6.67 kWh; the forecast had assumed the plan held
        assert final.delivered_kwh == pytest.approx(15.0 + 200.0 * 2 / 60, abs=0.01)
        stored = mv.store.get_event(event_id)
        assert stored is not None
        assert stored.status == "final"
        assert stored.quality_ok is not None
        result = mv.dr.repo.get_result(event_id)
        assert result is not None
        assert result.delivered_kwh == pytest.approx(final.delivered_kwh)
        rows = mv.store.intervals(event_id)
        metered = {r.ts: r.metered_kw for r in rows if r.metered_kw is not None}
        expected = evaluate_event(EventRequest(stored.window, Direction.UP, 300.0), stored.baseline,
                                  metered_frame(metered))
        assert expected.delivered_kwh == pytest.approx(result.delivered_kwh)
        assert [r.metered_kw for r in rows] == pytest.approx([700.0, 700.0, 700.0, 800.0, 800.0], abs=0.01)
        assert event_id not in mv.events
    finally:
        mv.store.close()
        mv._dr_store.close()


def test_cancelled_event_stops_being_measured(database_url: str, park: str) -> None:
    event_id = f"{park}-e2"
    _register(database_url, park, event_id)
    now = [T0 + timedelta(minutes=1)]
    mv = LiveMv(database_url, clock=lambda: now[0])
    try:
        assert mv.accept(_result(park, event_id)) is not None
        mv.accept(_result(park, event_id, IntakeAction.CANCELLED))
        assert mv.tick() == []
        stored = mv.store.get_event(event_id)
        assert stored is not None
        assert stored.status == "cancelled"
    finally:
        mv.store.close()
        mv._dr_store.close()


def test_service_runs_and_shuts_down_cleanly(database_url: str, park: str) -> None:
    async def scenario() -> None:
        async with LiveMv(database_url, park_ids=[park], tick_s=0.05) as mv:
            await asyncio.sleep(0.2)
            assert [t.get_name() for t in asyncio.all_tasks() if t.get_name() == "live-mv"] == ["live-mv"]
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "live-mv"]
        del mv

    asyncio.run(scenario())
