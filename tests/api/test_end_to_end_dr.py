"""End to end: simulate a park whose battery, EV chargers and office chiller are dispatched for a DR event,
ingest and aggregate it, evaluate the event, and read declared/verified capacity and the event's
performance from the utility API and as OpenADR 3 reports delivered to a VTN.

Dispatch reaches the simulated assets through the scenario, exactly as an operator would configure it:
a discharge window in the battery's schedule (first matching window wins), a park-level cap on the sum of
the EV chargers' power, and a +2 K setpoint offset on the office chiller. The scenario's meter tree
carries each response to the level-1 boundary meter, so the reduction appears in the metered data, not in
a shortcut. A second park runs the same seeded simulation without the dispatch: the difference between
the two evaluations is the sum of the three assets' responses, each measured on its own sub-meter, plus
the boundary's transformer losses, whatever the other loads did meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from aggregation import AggregationJob, AggregationSettings
from api import PgKeyStore, VenClient, VtnConfig, build_app, event_report, payload_values
from flex import AssetRecord, Battery, Direction, DrService, DrSettings, DrStore, EvCharger, EventWindow, Thermal
from ingest import IngestService
from simulators import Scenario, SimulationReport, load_scenario, run_simulation
from tests.api.fakes import FakeSettings
from tests.api.vtn import CLIENT_ID, CLIENT_SECRET, running_vtn
from tests.ingest.helpers import count_readings, ingest_settings, wait_until

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
SIM_END = datetime(2026, 7, 15, 17, 0, tzinfo=SH)  # a Wednesday; the simulation covers 12:00-17:00
EVENT = EventWindow(datetime(2026, 7, 15, 15, 0, tzinfo=SH), datetime(2026, 7, 15, 16, 0, tzinfo=SH))
AFTER = EventWindow(EVENT.end, SIM_END)
BATTERY_KW = 150.0     # discharge setpoint during the event
EV_CAP_KW = 10.0       # cap on the sum of the park's four chargers
HVAC_OFFSET_C = 2.0    # chiller setpoint 26 -> 28 degC (the comfort band's upper edge)
CHARGERS = ("ev-dc-1", "ev-dc-2", "ev-ac-1", "ev-ac-2")
LOSS_FRACTION = 0.012  # demo_park.yaml: m1-boundary loss_fraction
# The boundary reduction and the summed sub-meter responses differ only by rounding: every meter publishes
# its power to 1 W and the registers integrate exactly that, so 0.01 kW over an hour is ample.
TOLERANCE_KW = 0.01


def _scenario(park_id: str, *, dispatch: bool) -> Scenario:
    scenario = load_scenario().with_overrides(park_id=park_id, extra_meters=0)
    data = scenario.model_dump(mode="python")
    if dispatch:
        for device in data["devices"]:
            if device["id"] == "bess-1":  # the event's dispatch, ahead of the daily schedule
                device["schedule"].insert(0, {"start": EVENT.start, "end": EVENT.end, "power_kw": -BATTERY_KW})
        data["dispatch"] = {
            "ev_chargers": [{"start": EVENT.start, "end": EVENT.end, "max_power_kw": EV_CAP_KW}],
            "hvac": [{"start": EVENT.start, "end": EVENT.end, "setpoint_offset_c": HVAC_OFFSET_C}],
        }
    return Scenario.model_validate(data)


async def _simulate(database_url: str, mqtt_url: str, db_conn, park_id: str, *, dispatch: bool) -> SimulationReport:
    scenario = _scenario(park_id, dispatch=dispatch)
    async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as ingest:
        await ingest.wait_subscribed()
        report = await run_simulation(scenario, mqtt_url, duration="5h", speed=0, seed=11, now=SIM_END)
        assert await wait_until(lambda: count_readings(db_conn, park_id) >= report.readings_published, timeout=120)
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id)).run()
    return report


def _stored(db_conn, park_id: str, device_id: str, metric: str, window: EventWindow) -> list[float]:
    """Stored readings of one series stamped in (start, end] (interval-end stamps), oldest first."""
    rows = db_conn.execute(
        """SELECT r.value FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND d.device_id = %s AND s.metric = %s AND r.ts > %s AND r.ts <= %s
           ORDER BY r.ts""", (park_id, device_id, metric, window.start, window.end)).fetchall()
    return [value for (value,) in rows]


def _mean(values: list[float]) -> float:
    assert len(values) == 60  # one reading per minute of the hour
    return sum(values) / len(values)


def _responses(db_conn, park_id: str, counterfactual: str) -> dict[str, float]:
    """Each dispatched asset's mean load reduction over the event, from its own stored sub-meter readings."""
    def reduction(device_id: str, metric: str) -> float:
        return (_mean(_stored(db_conn, counterfactual, device_id, metric, EVENT))
                - _mean(_stored(db_conn, park_id, device_id, metric, EVENT)))

    return {"battery": reduction("bess-1", "battery_power"),
            "ev": sum(reduction(c, "active_power") for c in CHARGERS),
            "hvac": reduction("hvac-office-1", "active_power")}


def _evaluate_without_dispatch(store: DrStore, park_id: str) -> float:
    service = DrService(store, clock=lambda: SIM_END)
    store.put_settings(park_id, DrSettings(baseline_method="JIANGSU_RT_15MIN"))
    event = service.register_event(park_id, EVENT, direction=Direction.UP, requested_kw=BATTERY_KW)
    return service.evaluate(event.event_id).avg_reduction_kw


async def test_simulated_dr_event_reaches_the_utility(database_url, mqtt_url, park_id, db_conn):
    counterfactual = f"{park_id[:50]}-cf"
    db_conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (counterfactual,))
    report = await _simulate(database_url, mqtt_url, db_conn, park_id, dispatch=True)
    free = await _simulate(database_url, mqtt_url, db_conn, counterfactual, dispatch=False)

    # Each asset answered its dispatch on its own sub-meter (stored readings, dispatched vs counterfactual).
    responses = _responses(db_conn, park_id, counterfactual)
    assert responses["battery"] == pytest.approx(BATTERY_KW, abs=1e-6)  # idle at 15:00 without the event
    assert responses["ev"] > 5.0     # the chargers wanted more than the cap
    assert responses["hvac"] > 30.0  # the chiller stopped until the zone reached 28 degC
    ev_total_kw = [sum(kw) for kw in zip(*(_stored(db_conn, park_id, c, "active_power", EVENT) for c in CHARGERS),
                                         strict=True)]
    assert max(ev_total_kw) <= EV_CAP_KW
    indoor_c = _stored(db_conn, park_id, "hvac-office-1", "indoor_temperature", EVENT)
    assert 27.0 < max(indoor_c) <= 26.0 + HVAC_OFFSET_C + 1e-6
    # Physical rebound after the event: the chiller pulls the zone back down, capped EVs catch up.
    rebound = {device: sum(_mean(_stored(db_conn, park, device, "active_power", AFTER)) * sign
                           for park, sign in ((park_id, 1), (counterfactual, -1)))
               for device in ("hvac-office-1", *CHARGERS)}
    assert rebound["hvac-office-1"] > 10.0
    assert sum(rebound[c] for c in CHARGERS) > 0.0
    # A car that left before it had caught up took the shortfall with it: the simulator reports it.
    assert sum(report.ev_unmet_energy_kwh.values()) > 0.0
    assert sum(free.ev_unmet_energy_kwh.values()) == 0.0

    # Boundary reduction = (1 + losses) x sum of the asset responses.
    expected_kw = (1 + LOSS_FRACTION) * sum(responses.values())
    with DrStore(database_url) as store:
        service = DrService(store, clock=lambda: SIM_END)
        store.put_settings(park_id, DrSettings(import_max_kw=4000, export_max_kw=0,
                                               baseline_method="JIANGSU_RT_15MIN", declared_duration_h=1))
        store.put_asset(park_id, AssetRecord(
            Battery(asset_id="bess-1", site_id="energy-station", capacity_kwh=500, charge_power_max_kw=250,
                    discharge_power_max_kw=250, charge_efficiency=0.95, discharge_efficiency=0.95,
                    soc_min_pct=10, soc_max_pct=95),
            device_id="bess-1"))
        store.put_asset(park_id, AssetRecord(EvCharger(asset_id="ev-dc-1", evse_max_kw=60), device_id="ev-dc-1",
                                             options={"ev_dwell_h": 4}))
        store.put_asset(park_id, AssetRecord(
            Thermal(asset_id="hvac-office-1", site_id="office", rated_power_kw=120, cop=4.5,
                    thermal_capacitance_kwh_per_k=120, comfort_min_c=24, comfort_max_c=28, max_shed_fraction=0.6),
            device_id="hvac-office-1"))
        event = service.register_event(park_id, EVENT, direction=Direction.UP, requested_kw=round(expected_kw),
                                       notified_at=EVENT.start - timedelta(hours=1), program_id="prog-sz")
        result = service.evaluate(event.event_id)
        assert result.quality_ok, result.quality_reasons
        assert result.delivered_kwh == pytest.approx(result.avg_reduction_kw * 1.0)
        # Same loads without the dispatch: their drift against the 14:45-15:00 baseline is measured there.
        drift_kw = _evaluate_without_dispatch(store, counterfactual)
        assert result.avg_reduction_kw - drift_kw == pytest.approx(expected_kw, abs=TOLERANCE_KW)
        up, _ = service.capacity(park_id)
        assert up.verified_kw == pytest.approx(result.avg_reduction_kw)
        assert up.declared_kw is not None
        assert up.declared_kw > 0  # live battery and chiller state from their readings at 17:00

        _, key = PgKeyStore(database_url).create("Shenzhen VPP operator", [park_id])
        app = build_app(service, PgKeyStore(database_url), FakeSettings(openadr_event_id="avail-sz"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     headers={"Authorization": f"Bearer {key}"}) as api:
            capacity = (await api.get(f"/v1/parks/{park_id}/dr-capacity")).json()
            assert capacity["source"] == "stored"
            assert capacity["up"]["verified_kw"] == pytest.approx(result.avg_reduction_kw)
            assert capacity["up"]["verified_pct"] == pytest.approx(
                result.avg_reduction_kw / capacity["annual_max_demand_kw"] * 100)
            assert capacity["up"]["declared_kw"] == pytest.approx(up.declared_kw)
            detail = (await api.get(f"/v1/parks/{park_id}/events/{event.event_id}")).json()
            assert detail["performance"]["avg_reduction_kw"] == pytest.approx(result.avg_reduction_kw)
            # The utility's view of the event, net of the counterfactual's drift, is the assets' sum.
            assert detail["performance"]["avg_reduction_kw"] - drift_kw == pytest.approx(expected_kw,
                                                                                        abs=TOLERANCE_KW)
            flexibility = (await api.get(f"/v1/parks/{park_id}/flexibility")).json()
            hvac = next(a for a in flexibility["assets"] if a["asset_id"] == "hvac-office-1")
            assert hvac["state_source"] == "readings"
            assert max(d["up_kw"] for d in hvac["durations"]) > 0  # the metered chiller offers flexibility
            assert len(detail["intervals"]) == 4
            oadr = (await api.get(f"/v1/parks/{park_id}/events/{event.event_id}/openadr-report")).json()
            assert oadr["programID"] == "prog-sz"
            availability = (await api.get(f"/v1/parks/{park_id}/openadr/availability-report",
                                          params={"hours": 1})).json()
            assert len(payload_values(availability, "UP_REGULATION_AVAILABLE")) == 4
            assert (await api.get(f"/v1/parks/{park_id}/dr-capacity", headers={"Authorization": ""})).status_code == 401

        # The same performance delivered to a VTN as an OpenADR 3 report.
        with running_vtn() as (url, vtn), VenClient(VtnConfig(url, CLIENT_ID, CLIENT_SECRET)) as ven:
            ven.post_report(event_report(store.get_intervals(event.event_id), program_id="prog-sz",
                                         event_id="vtn-event-1", client_name="sz-ven", park_id=park_id,
                                         local_event_id=event.event_id))
        baseline_kwh = payload_values(vtn.reports[0], "BASELINE")
        usage_kwh = payload_values(vtn.reports[0], "USAGE")
        delivered = sum(b - u for b, u in zip(baseline_kwh, usage_kwh, strict=True))
        assert delivered == pytest.approx(result.delivered_kwh, abs=0.01)
