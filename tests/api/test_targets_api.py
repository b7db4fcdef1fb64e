"""Targets and projection endpoints on the real database: scopes, versioning over PUT, the projection document,
and an OpenAPI contract fuzz of the three operations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from api import MemoryKeyStore, PgKeyStore, build_app
from flex import DrService, MemoryRepository
from tests.alarms.test_projection import History
from tests.api.fakes import FakeSettings

pytestmark = pytest.mark.services

ENERGY = {"indicator": "total_energy", "variant": "calorific", "year": 2026, "value": 1500, "unit": "tce",
          "source": "示范园区 碳达峰试点实施方案 2026", "source_kind": "seed_plan"}


@pytest.fixture
async def api(database_url: str, park_id: str) -> AsyncIterator[dict]:
    """The app on the real database with a read key and a read+write key for the test's park."""
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Reader", [park_id])
    _, write_key = keys.create("Energy manager", [park_id, "not-registered-park"], scopes={"read", "write"})
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "write": {"X-API-Key": write_key}}


async def test_read_key_reads_but_cannot_set_targets(api: dict, park_id: str):
    client, read, write = api["client"], api["read"], api["write"]
    url = f"/v1/parks/{park_id}/targets"
    empty = await client.get(url, headers=read)
    assert empty.status_code == 200, empty.text
    assert empty.json()["targets"] == []
    denied = await client.put(url, json={"targets": [ENERGY]}, headers=read)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert "lacks the 'write' scope" in denied.json()["detail"]
    assert (await client.put(url, json={"bogus": 1}, headers=read)).status_code == 403  # scope before body
    assert (await client.get(url)).status_code == 401
    assert (await client.get("/v1/parks/someone-else/targets", headers=write)).status_code == 403
    assert (await client.get(f"/v1/parks/{park_id}/projection", headers=read)).status_code == 200
    missing = await client.get("/v1/parks/not-registered-park/projection", headers=write)
    assert missing.status_code == 404
    assert "register it first" in missing.json()["detail"]


async def test_put_versions_targets_and_get_reads_them_as_of_a_day(api: dict, park_id: str):
    client, write = api["client"], api["write"]
    url = f"/v1/parks/{park_id}/targets"
    monthly = {**ENERGY, "month": 1, "value": 140}
    pue = {"indicator": "pue", "year": 2026, "value": 1.25, "unit": "1", "site": "dc-1",
           "source": "深圳 新建数据中心 PUE<1.25 (seed 002)", "source_kind": "provincial_allocation"}
    first = await client.put(url, json={"targets": [ENERGY, monthly, pue]}, headers=write)
    assert first.status_code == 200, first.text
    assert (first.json()["created"], first.json()["unchanged"]) == (3, 0)
    assert {r["valid_from"] for r in first.json()["results"]} == {"2026-01-01"}
    again = (await client.put(url, json={"targets": [ENERGY]}, headers=write)).json()
    assert (again["created"], again["unchanged"]) == (0, 1)
    tighter = (await client.put(url, json={"targets": [{**ENERGY, "value": 1400, "valid_from": "2026-07-01"}]},
                                headers=write)).json()
    old_id = next(r["target_id"] for r in first.json()["results"] if r["period"] == "2026")
    assert tighter["results"][0]["ended"] == [old_id]

    async def annual(as_of: str) -> float:
        doc = (await client.get(url, params={"year": 2026, "as_of": as_of}, headers=write)).json()
        return next(t["value"] for t in doc["targets"] if t["indicator"] == "total_energy" and t["month"] is None)

    assert await annual("2026-06-30") == 1500
    assert await annual("2026-07-01") == 1400
    history = (await client.get(url, params={"history": "true"}, headers=write)).json()
    assert [(t["value"], t["valid_to"]) for t in history["targets"]
            if t["period"] == "2026" and t["indicator"] == "total_energy"] == [
        (1500, "2026-07-01"), (1400, None)]
    pue_row = next(t for t in history["targets"] if t["indicator"] == "pue")
    assert (pue_row["subject_kind"], pue_row["subject"], pue_row["direction"], pue_row["recorded_by"]) == (
        "site", "dc-1", "cap", "api:Energy manager")

    bad = await client.put(url, json={"targets": [ENERGY, {**ENERGY, "unit": "kgce"}, {**pue, "site": None}]},
                           headers=write)
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert "targets[1]: unit 'kgce' does not match total_energy; write it in 'tce'" in detail
    assert "targets[2]: pue targets are set per site" in detail
    assert "nothing was stored" in detail
    assert (await client.put(url, json={"targets": [{**ENERGY, "value": -1}]}, headers=write)).status_code == 422
    unregistered = await client.put("/v1/parks/not-registered-park/targets", json={"targets": [ENERGY]},
                                    headers=write)
    assert unregistered.status_code == 404


async def test_projection_document(api: dict, park_id: str, db_conn: psycopg.Connection):
    client, write = api["client"], api["write"]
    history = History()
    history.publish(db_conn, park_id)
    expected = history.expected_energy()
    await client.put(f"/v1/parks/{park_id}/targets", json={"targets": [{**ENERGY, "value": round(expected * 0.9)}]},
                     headers=write)
    doc = (await client.get(f"/v1/parks/{park_id}/projection", params={"year": 2026, "as_of": "2026-07-01"},
                            headers=write)).json()
    assert (doc["year"], doc["as_of"], doc["data_through"], doc["timezone"]) == (2026, "2026-07-01", "2026-06",
                                                                                 "Asia/Shanghai")
    row = doc["rows"][0]
    assert row["projected"] == pytest.approx(expected)
    assert row["ratio"] == pytest.approx(expected / round(expected * 0.9))
    assert (row["level"], row["level_source"], row["kind"]) == ("red", "current ratio", "year-end")
    assert row["band_low"] < row["projected"] < row["band_high"]
    assert row["backtest_months"] == 17
    assert 0 < row["backtest_mape"] < 0.15
    assert "same month last year" in row["method"]
    assert row["to_date"] == pytest.approx(sum(v for m, v in history.energy.items() if m.year == 2026))
    bad = await client.get(f"/v1/parks/{park_id}/projection", params={"year": 1900}, headers=write)
    assert bad.status_code == 422


# ------------------------------------------------------------------------------------------------ contract
_PARK = f"contract-t-{uuid.uuid4().hex[:8]}"
_KEYS = MemoryKeyStore()
_, _KEY = _KEYS.create("Operator", [_PARK], scopes=("read", "write"))
_APP = build_app(DrService(MemoryRepository()), _KEYS, FakeSettings())
_schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422"]}},
     "generation": {"mode": "positive"}})).include(path_regex=r"^/v1/parks/\{park_id\}/(targets|projection)$")


@pytest.fixture(autouse=True)
def _contract_database(database_url: str) -> None:
    _APP.state.database_url = database_url
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id) VALUES (%s) ON CONFLICT DO NOTHING", (_PARK,))


@_schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_contract_of_the_targets_operations(case):
    case.path_parameters = {**(case.path_parameters or {}), "park_id": _PARK}
    case.call_and_validate(headers={"X-API-Key": _KEY})
