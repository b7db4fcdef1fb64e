"""DrStore against the real database: demand from interval_energy, assets with live state, events, capacity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from flex import (
    AssetRecord,
    Battery,
    ConnectionLimit,
    Direction,
    DrEvent,
    DrService,
    DrSettings,
    DrStore,
    EvCharger,
    EventWindow,
    InvalidEventError,
)
from tests.flex.dbseed import add_series, seed_park, write_interval_energy, write_readings
from tests.flex.loadgen import build_load, local, window_overrides

pytestmark = pytest.mark.services

EVENT_DAY = date(2026, 7, 15)


@pytest.fixture
def store(database_url: str) -> Iterator[DrStore]:
    with DrStore(database_url) as s:
        yield s


def test_park_demand_sums_level1_meters_and_requires_all_of_them(db_conn, store, park_id):
    # Two feeders (import) and a PV export register on level 1, plus a level-2 meter that must be ignored.
    # Feeder A 600 kW, feeder B 500 kW, export 100 kW -> 1000 kW. Feeder B misses 00:15 -> no row.
    seed_park(db_conn, park_id)
    a = add_series(db_conn, park_id, "feeder-a", "active_energy_import", "kWh", level=1)
    b = add_series(db_conn, park_id, "feeder-b", "active_energy_import", "kWh", level=1)
    x = add_series(db_conn, park_id, "feeder-a", "active_energy_export", "kWh", level=1)
    sub = add_series(db_conn, park_id, "workshop", "active_energy_import", "kWh", level=2)
    day = date(2026, 7, 1)
    write_interval_energy(db_conn, a, build_load(day, day, lambda d: 600.0))
    write_interval_energy(db_conn, b, build_load(day, day, lambda d: 500.0, missing={local(day, 0, 15)},
                                                 estimated={local(day, 1): 1.0}))
    write_interval_energy(db_conn, x, build_load(day, day, lambda d: 100.0))
    write_interval_energy(db_conn, sub, build_load(day, day, lambda d: 9999.0))
    frame = store.park_demand(park_id, local(day, 0), local(day, 2))
    assert frame["ts"].to_list()[:2] == [local(day, 0), local(day, 0, 30)]
    assert frame.height == 7
    assert frame["demand_kw"].to_list() == pytest.approx([1000.0] * 7)
    # Energy-weighted estimated share at 01:00: 500*0.25 of (600+500+100)*0.25 kWh -> 500/1200.
    est = dict(zip(frame["ts"].to_list(), frame["estimated_share"].to_list(), strict=True))
    assert est[local(day, 1)] == pytest.approx(500 / 1200)
    peak = store.park_peak(park_id, local(day, 0), local(day, 23))
    assert peak is not None
    assert peak.demand_kw == pytest.approx(1000.0)


def test_settings_and_assets_with_live_state_from_readings(db_conn, store, park_id):
    seed_park(db_conn, park_id, sites=["station"])
    settings = DrSettings(import_max_kw=2000, export_max_kw=0, baseline_method="CAISO_10IN10",
                          baseline_overrides={"workday": {"n_days": 8}}, declared_duration_h=1,
                          site_limits={"station": ConnectionLimit(500, 0)})
    store.put_settings(park_id, settings)
    assert store.get_settings(park_id) == settings

    now = datetime(2026, 7, 15, 2, 0, tzinfo=UTC)
    soc = add_series(db_conn, park_id, "bess-01", "state_of_charge", "%", kind="battery")
    power = add_series(db_conn, park_id, "bess-01", "battery_power", "kW", kind="battery")
    write_readings(db_conn, soc, [(now - timedelta(minutes=10), 55.0), (now - timedelta(minutes=1), 56.0)])
    write_readings(db_conn, power, [(now - timedelta(minutes=1), -30.0)])
    battery = Battery(asset_id="bess", site_id="station", capacity_kwh=400, charge_power_max_kw=100,
                      discharge_power_max_kw=100)
    store.put_asset(park_id, AssetRecord(battery, device_id="bess-01"))
    connected = add_series(db_conn, park_id, "ev-01", "ev_connected", "state", kind="ev_charger")
    need = add_series(db_conn, park_id, "ev-01", "ev_energy_requested", "kWh", kind="ev_charger")
    ev_power = add_series(db_conn, park_id, "ev-01", "active_power", "kW", kind="ev_charger")
    write_readings(db_conn, connected, [(now - timedelta(hours=3), 0.0), (now - timedelta(hours=2), 1.0),
                                        (now - timedelta(minutes=1), 1.0)])
    write_readings(db_conn, need, [(now - timedelta(minutes=1), 20.0)])
    write_readings(db_conn, ev_power, [(now - timedelta(minutes=1), 7.0)])
    store.put_asset(park_id, AssetRecord(EvCharger(asset_id="ev", evse_max_kw=7), device_id="ev-01",
                                         options={"ev_dwell_h": 8}))

    records = {r.asset.asset_id: r for r in store.list_assets(park_id, now=now)}
    live = records["bess"].asset
    assert isinstance(live, Battery)
    assert live.state is not None
    assert (live.state.soc_pct, live.state.power_kw) == (56.0, -30.0)
    assert records["bess"].state_source == "readings"
    ev = records["ev"].asset
    assert isinstance(ev, EvCharger)
    assert len(ev.sessions) == 1
    assert ev.sessions[0].plugged_in_at == now - timedelta(hours=2)
    assert ev.sessions[0].departure_at == now + timedelta(hours=6)
    # Much later the readings are stale: no state, no flexibility claimed.
    later = store.list_assets(park_id, now=now + timedelta(hours=3))
    assert next(r for r in later if r.asset.asset_id == "bess").state_source == "none"


def test_events_results_and_capacity_history(db_conn, store, park_id):
    # Seed 50 days of boundary demand (workdays 1000 kW, weekends 600) with an 800 kW event window,
    # then run the service over the real store: R_avg = 200 kW.
    seed_park(db_conn, park_id)
    meter = add_series(db_conn, park_id, "boundary", "active_energy_import", "kWh", level=1)
    load = build_load(date(2026, 5, 25), EVENT_DAY, lambda d: 600.0 if d.weekday() >= 5 else 1000.0,
                      overrides=window_overrides(EVENT_DAY, 14, 16, 800.0))
    write_interval_energy(db_conn, meter, load)
    service = DrService(store, clock=lambda: local(EVENT_DAY, 18))
    window = EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16))
    event = service.register_event(park_id, window, direction=Direction.UP, requested_kw=200.0, declared_kw=250.0,
                                   notified_at=local(EVENT_DAY, 9), source="test")
    assert store.get_event(event.event_id) == event
    with pytest.raises(InvalidEventError, match="already exists"):
        store.create_event(event)
    with pytest.raises(InvalidEventError, match="does not exist"):
        store.create_event(DrEvent("other", "no-such-park", event.start, event.end, Direction.UP, 1.0))
    result = service.evaluate(event.event_id)
    assert result.avg_reduction_kw == pytest.approx(200.0)
    assert result.quality_ok
    stored = store.get_result(event.event_id)
    assert stored is not None
    assert stored.baseline_days == result.baseline_days
    assert stored.avg_reduction_kw == pytest.approx(200.0)
    assert store.get_intervals(event.event_id)["reduction_kw"].to_list() == pytest.approx([200.0] * 8)
    events, total = store.list_events(park_id, start=None, end=None, limit=10, offset=0)
    assert total == 1
    assert events[0].status == "evaluated"
    assert store.event_records(park_id)[0].avg_reduction_kw == pytest.approx(200.0)

    up = service.capacity(park_id)[0]
    assert up.verified_kw == pytest.approx(200.0)
    assert up.verified_pct == pytest.approx(20.0)
    history, n = store.capacity_history(park_id, start=None, end=None, limit=10, offset=0)
    assert n == 2
    by_direction = {c.direction: c for c in history}
    assert by_direction[Direction.UP].verified_kw == pytest.approx(200.0)
    assert by_direction[Direction.DOWN].verified_kw is None
