"""Utility API behaviour: authentication and scoping, units, pagination, precise errors, OpenADR reports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api import payload_values
from api._keys import ApiClient, VerifiedKeyCache
from tests.api.fakes import EVENT_ID, OTHER_PARK, PARK, FakeApi, fake_api

BASELINE_QUERY = {"start": "2026-07-15T14:00:00+08:00", "end": "2026-07-15T16:00:00+08:00"}


@pytest.fixture
def fake() -> FakeApi:
    return fake_api()


@pytest.fixture
async def client(fake: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test",
                                 headers={"X-API-Key": fake.key}) as c:
        yield c


async def test_authentication_failures_are_401_with_a_challenge(fake: FakeApi):
    cases = [
        {},                                                     # no credentials
        {"X-API-Key": ""},                                      # empty
        {"X-API-Key": "not-a-key"},                             # malformed
        {"X-API-Key": fake.key[:-4] + "AAAA"},                  # wrong secret
        {"X-API-Key": "pp_abcdefabcdef_" + "x" * 43},           # unknown client
        {"Authorization": "Basic Zm9vOmJhcg=="},                # wrong scheme
        {"X-API-Key": fake.key, "Authorization": f"Bearer {fake.other_key}"},  # conflicting
    ]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://t") as bare:
        for headers in cases:
            response = await bare.get("/v1/parks", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["content-type"] == "application/problem+json"
            assert "WWW-Authenticate" in response.headers
            assert response.json()["status"] == 401
        assert (await bare.get("/v1/parks", headers={"X-API-Key": fake.key})).status_code == 200


async def test_bearer_works_and_scope_is_enforced(fake: FakeApi, client: httpx.AsyncClient):
    response = await client.get(f"/v1/parks/{PARK}", headers={"X-API-Key": "", "Authorization": ""})
    assert response.status_code == 401
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://t",
                                 headers={"Authorization": f"Bearer {fake.key}"}) as bearer:
        ok = await bearer.get(f"/v1/parks/{PARK}")
        assert ok.status_code == 200
        assert ok.json()["timezone"] == "Asia/Shanghai"
        # Another utility's park and a park that does not exist look the same: 403.
        for other in (OTHER_PARK, "no-such-park"):
            denied = await bearer.get(f"/v1/parks/{other}/dr-capacity")
            assert denied.status_code == 403
            assert other in denied.json()["detail"]
    listed = (await client.get("/v1/parks")).json()
    assert [p["park_id"] for p in listed["items"]] == [PARK]


async def test_revoked_and_expired_keys(fake: FakeApi, client: httpx.AsyncClient):
    client_id = fake.key.split("_")[1]
    fake.keys.revoke(client_id)
    # The verified-key cache keeps the old answer for its TTL; a fresh app state sees the revocation.
    fake.app.state.authenticator.cache = VerifiedKeyCache(ttl_s=60)
    assert (await client.get("/v1/parks")).status_code == 401
    expired = ApiClient("abcdef012345", "x", frozenset({PARK}), expires_at=datetime.now(UTC) - timedelta(days=1))
    fake.app.state.authenticator.cache.put("pp_abcdef012345_" + "y" * 43, expired)
    response = await client.get("/v1/parks", headers={"X-API-Key": "pp_abcdef012345_" + "y" * 43})
    assert response.status_code == 401
    assert response.json()["detail"] == "API key expired"


async def test_pagination(fake: FakeApi):
    _, both = fake.keys.create("Utility AB", [PARK, OTHER_PARK])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://t",
                                 headers={"X-API-Key": both}) as c:
        first = (await c.get("/v1/parks", params={"limit": 1})).json()
        assert (first["total"], first["next_offset"], first["items"][0]["park_id"]) == (2, 1, PARK)
        second = (await c.get("/v1/parks", params={"limit": 1, "offset": 1})).json()
        assert (second["next_offset"], second["items"][0]["park_id"]) == (None, OTHER_PARK)
        bad = await c.get("/v1/parks", params={"limit": 0})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["loc"] == ["query", "limit"]


async def test_baseline_endpoint_and_precise_errors(fake: FakeApi, client: httpx.AsyncClient):
    body = (await client.get(f"/v1/parks/{PARK}/baseline", params=BASELINE_QUERY)).json()
    assert body["method"]["name"] == "JIANGSU_5WD"
    assert [i["baseline_kw"] for i in body["intervals"]] == pytest.approx([1000.0] * 8)
    assert len(body["days_used"]) == 5
    assert body["unit"] == "kW"
    custom = await client.get(f"/v1/parks/{PARK}/baseline", params=BASELINE_QUERY | {
        "method": "CAISO_10IN10", "overrides": json.dumps({"workday": {"n_days": 8, "n_used": 8, "min_days": 5}}),
    })
    assert custom.status_code == 200
    assert custom.json()["method"]["name"] == "CAISO_10IN10.custom"
    assert len(custom.json()["days_used"]) == 8

    async def problem(params: dict[str, str], park: str = PARK) -> dict:
        response = await client.get(f"/v1/parks/{park}/baseline", params=params)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return response.json()

    assert "timezone" in (await problem({"start": "2026-07-15T14:00:00", "end": BASELINE_QUERY["end"]}))["detail"]
    assert "after start" in (await problem({"start": BASELINE_QUERY["end"], "end": BASELINE_QUERY["start"]}))["detail"]
    assert "24 hours" in (await problem({"start": "2026-07-13T14:00:00+08:00", "end": BASELINE_QUERY["end"]}))["detail"]
    assert "grid" in (await problem({"start": "2026-07-15T14:05:00+08:00", "end": BASELINE_QUERY["end"]}))["detail"]
    assert "JSON" in (await problem(BASELINE_QUERY | {"overrides": "{nope"}))["detail"]
    assert "n_used" in (await problem(BASELINE_QUERY | {"overrides": '{"workday": {"n_days": 2}}'}))["detail"]
    assert (await problem(BASELINE_QUERY | {"method": "NOPE"}))["errors"][0]["loc"] == ["query", "method"]


async def test_insufficient_data_is_a_precise_422(fake: FakeApi):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fake.app), base_url="http://t",
                                 headers={"X-API-Key": fake.other_key}) as c:
        response = await c.get(f"/v1/parks/{OTHER_PARK}/baseline", params=BASELINE_QUERY)
    assert response.status_code == 422
    assert response.json()["type"].endswith("/insufficient-data")
    assert "needs 5" in response.json()["detail"]


async def test_events_and_performance(client: httpx.AsyncClient):
    page = (await client.get(f"/v1/parks/{PARK}/events", params={"start": "2026-07-01T00:00:00Z"})).json()
    assert page["total"] == 1
    event = page["items"][0]
    perf = event["performance"]
    # Baseline 1000 kW, actual 800 kW for 2 h -> 200 kW average, 400 kWh; requested 250 -> 0.8.
    assert (perf["avg_reduction_kw"], perf["delivered_kwh"], perf["ratio_requested"]) == pytest.approx(
        (200.0, 400.0, 0.8))
    assert perf["quality_ok"] is True
    detail = (await client.get(f"/v1/parks/{PARK}/events/{EVENT_ID}")).json()
    assert [i["reduction_kw"] for i in detail["intervals"]] == pytest.approx([200.0] * 8)
    assert (await client.get(f"/v1/parks/{PARK}/events/nope")).status_code == 404
    empty = (await client.get(f"/v1/parks/{PARK}/events", params={"end": "2026-07-01T00:00:00Z"})).json()
    assert empty["total"] == 0


async def test_capacity_live_then_stored(fake: FakeApi, client: httpx.AsyncClient):
    live = (await client.get(f"/v1/parks/{PARK}/dr-capacity")).json()
    assert live["source"] == "live"
    # Verified 200 kW of a 1000 kW annual peak = 20 %; declared 2 h battery = 200 kW = 20 %.
    assert (live["up"]["verified_kw"], live["up"]["verified_pct"]) == pytest.approx((200.0, 20.0))
    assert (live["up"]["declared_kw"], live["up"]["declared_pct"]) == pytest.approx((200.0, 20.0))
    assert (live["target_pct_min"], live["target_pct_max"]) == (3.0, 5.0)
    assert (await client.get(f"/v1/parks/{PARK}/dr-capacity/history")).json()["total"] == 0
    fake.service.capacity(PARK)
    stored = (await client.get(f"/v1/parks/{PARK}/dr-capacity")).json()
    assert stored["source"] == "stored"
    history = (await client.get(f"/v1/parks/{PARK}/dr-capacity/history")).json()
    assert history["total"] == 1
    assert history["items"][0]["up"]["verified_kw"] == pytest.approx(200.0)


async def test_flexibility_and_forecast(client: httpx.AsyncClient):
    flex = (await client.get(f"/v1/parks/{PARK}/flexibility")).json()
    assert [d["duration_h"] for d in flex["durations"]] == [0.25, 1.0, 2.0, 4.0]
    assert flex["assets"][0]["asset_id"] == "bess"
    assert flex["assets"][0]["durations"][1]["up_kw"] == pytest.approx(250.0)
    forecast = (await client.get(f"/v1/parks/{PARK}/flexibility/forecast", params={"hours": 2, "duration_h": 1})).json()
    assert len(forecast["slots"]) == 8
    assert forecast["interval"] == "PT15M"


async def test_openadr_reports(client: httpx.AsyncClient):
    availability = (await client.get(f"/v1/parks/{PARK}/openadr/availability-report",
                                     params={"hours": 1, "duration_h": 2})).json()
    assert availability["objectType"] == "REPORT"
    assert (availability["programID"], availability["eventID"]) == ("prog-1", "avail-1")
    assert availability["resources"][0]["intervalPeriod"]["duration"] == "PT15M"
    assert payload_values(availability, "UP_REGULATION_AVAILABLE") == pytest.approx([200.0] * 4)
    report = (await client.get(f"/v1/parks/{PARK}/events/{EVENT_ID}/openadr-report")).json()
    assert report["eventID"] == EVENT_ID
    # 1000 kW baseline and 800 kW usage over 15 min -> 250 kWh and 200 kWh per interval.
    assert payload_values(report, "BASELINE") == pytest.approx([250.0] * 8)
    assert payload_values(report, "USAGE") == pytest.approx([200.0] * 8)
    assert payload_values(report, "DELTA_USAGE") == pytest.approx([-50.0] * 8)
    assert set(payload_values(report, "DATA_QUALITY")) == {"OK"}
    units = {d["payloadType"]: d.get("units") for d in report["payloadDescriptors"]}
    assert units == {"BASELINE": "KWH", "USAGE": "KWH", "DELTA_USAGE": "KWH", "DATA_QUALITY": None}


async def test_openapi_document(client: httpx.AsyncClient):
    spec = (await client.get("/openapi.json", headers={"X-API-Key": ""})).json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}
    assert "/v1/parks/{park_id}/openadr/availability-report" in spec["paths"]
    responses = spec["paths"]["/v1/parks/{park_id}/dr-capacity"]["get"]["responses"]
    assert {"200", "401", "403", "404", "422"} <= set(responses)


async def test_time_parameters_outside_2000_2100_are_422_not_500(client: httpx.AsyncClient):
    """Found by schemathesis: a year-1 window overflowed the baseline look-back arithmetic (a 500)."""
    far = {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:15:00Z"}
    response = await client.get(f"/v1/parks/{PARK}/baseline", params=far)
    assert response.status_code == 422, response.text
    assert "between 2000-01-01 and 2100-01-01" in response.json()["detail"]
    late = await client.get(f"/v1/parks/{PARK}/events", params={"start": "9999-12-31T00:00:00Z"})
    assert late.status_code == 422, late.text
    notice = await client.get(f"/v1/parks/{PARK}/baseline", params=BASELINE_QUERY | {"notice_date": "0001-01-01"})
    assert notice.status_code == 422, notice.text


async def test_capacity_by_event_and_method(client: httpx.AsyncClient):
    # The fake park: workdays 1000 kW, 800 kW during the 2 h event; every similar-day baseline is 1000 kW and
    # the 15 min before the event are 1000 kW too, so every method shows 200 kW = 20 % of the 1000 kW peak.
    plain = (await client.get(f"/v1/parks/{PARK}/dr-capacity")).json()
    assert plain["by_event"] is None
    body = (await client.get(f"/v1/parks/{PARK}/dr-capacity", params={"by_event": "true"})).json()
    assert body["up"]["verified_kw"] == pytest.approx(200.0)           # the summary stays
    table = body["by_event"]
    assert table["annual_max_demand_kw"] == pytest.approx(1000.0)
    (event,) = table["events"]
    assert (event["event_id"], event["direction"], event["direction_meaning"]) == (
        EVENT_ID, "up", "load reduction, 削峰")
    assert event["sets_verified"] is True
    by_method = {m["method"]: m for m in event["methods"]}
    assert set(by_method) == set(table["methods"])
    assert {"CAISO_10IN10", "JIANGSU_5WD", "JIANGSU_RT_15MIN", "BEIJING_TOP5OF10"} <= set(by_method)
    for name, m in by_method.items():
        assert (m["avg_reduction_kw"], m["pct_of_annual_max"], m["delivered_kwh"]) == pytest.approx(
            (200.0, 20.0, 400.0)), name
    assert [m for m in by_method.values() if m["evaluated_with"]] == [by_method["JIANGSU_5WD"]]
    only = (await client.get(f"/v1/parks/{PARK}/dr-capacity",
                             params={"by_event": "true", "method": ["JIANGSU_RT_15MIN"]})).json()
    assert [m["method"] for m in only["by_event"]["events"][0]["methods"]] == ["JIANGSU_RT_15MIN", "JIANGSU_5WD"]
    filling = (await client.get(f"/v1/parks/{PARK}/dr-capacity", params={"by_event": "true", "direction": "填谷"}))
    assert filling.json()["by_event"]["events"] == []


async def test_direction_aliases_in_queries(client: httpx.AsyncClient):
    base = f"/v1/parks/{PARK}/events"
    for word in ("up", "reduce", "削峰", "peak-shaving"):
        page = (await client.get(base, params={"direction": word})).json()
        assert [e["event_id"] for e in page["items"]] == [EVENT_ID], word
        assert page["items"][0]["direction_meaning"] == "load reduction, 削峰"
    for word in ("down", "increase", "填谷", "valley-filling"):
        assert (await client.get(base, params={"direction": word})).json()["total"] == 0, word
    bad = await client.get(base, params={"direction": "sideways"})
    assert bad.status_code == 422
    assert "direction" in bad.json()["detail"]
