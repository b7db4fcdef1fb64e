"""An in-memory park with history, an evaluated event and a scoped API key, served by the real app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fastapi import FastAPI

from api import MemoryKeyStore, build_app
from flex import (
    AssetRecord,
    Battery,
    BatteryState,
    Direction,
    DrService,
    EventWindow,
    MemoryRepository,
    ParkInfo,
)
from tests.flex.loadgen import build_load, local, window_overrides

EVENT_DAY = date(2026, 7, 15)
PARK = "park-a"
OTHER_PARK = "park-b"
EVENT_ID = "evt-1"
#: Routes on the operator's database (answer 503 on the in-memory app): fuzzed by test_contract_operator.py.
OPERATOR_PATHS = (r"^/v1/parks/\{park_id\}(/(registry|sites|devices|meter-events|readings|indicators|balance|"
                  r"factors|aggregate|declared|energy|reports|dr/calendar|alarms|targets|projection|vpp|uplink).*)?$")


@dataclass
class FakeSettings:
    """The ApiSettings fields the app reads."""

    key_cache_ttl_s: float = 60.0
    openadr_program_id: str | None = "prog-1"
    openadr_event_id: str | None = "avail-1"
    ven_name: str = "parkpulse-ven-test"


@dataclass
class FakeApi:
    """The app plus what tests need to call it."""

    app: FastAPI
    service: DrService
    keys: MemoryKeyStore
    key: str
    other_key: str


def fake_api() -> FakeApi:
    """Park A (workdays 1000 kW, 800 kW during the 07-15 event) with a battery; park B without data."""
    repo = MemoryRepository()
    load = build_load(date(2026, 5, 25), EVENT_DAY, lambda d: 600.0 if d.weekday() >= 5 else 1000.0,
                      overrides=window_overrides(EVENT_DAY, 14, 16, 800.0))
    repo.add_park(ParkInfo(PARK, "Park A"), load)
    repo.add_park(ParkInfo(OTHER_PARK, "Park B"))
    battery = Battery(asset_id="bess", capacity_kwh=1000, charge_power_max_kw=250, discharge_power_max_kw=250,
                      soc_min_pct=10, soc_max_pct=90, state=BatteryState(soc_pct=50, power_kw=0))
    repo.put_asset(PARK, AssetRecord(battery))
    service = DrService(repo, clock=lambda: local(EVENT_DAY, 18))
    service.register_event(PARK, EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16)), direction=Direction.UP,
                           requested_kw=250.0, event_id=EVENT_ID, program_id="prog-1")
    service.evaluate(EVENT_ID)
    keys = MemoryKeyStore()
    _, key = keys.create("Utility A", [PARK])
    _, other = keys.create("Utility B", [OTHER_PARK])
    return FakeApi(build_app(service, keys, FakeSettings()), service, keys, key, other)
