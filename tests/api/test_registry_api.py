"""The registry API on the real database: a fresh write key bootstraps an empty park through the API alone;
read keys only read; the import is the CLI's file, validated first and reported line by line."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from api import MemoryKeyStore, PgKeyStore, build_app
from flex import DrService, MemoryRepository
from tests.api.fakes import FakeSettings
from tests.fixtures.services import unique_park_id

pytestmark = pytest.mark.services


@pytest.fixture
async def api(request: pytest.FixtureRequest, database_url: str,
              db_conn: psycopg.Connection) -> AsyncIterator[dict]:
    """The app on the real database, with a write key and a read key for a park that is not registered yet."""
    park_id = unique_park_id(request)
    keys = PgKeyStore(database_url)
    _, write_key = keys.create("Operator", [park_id], scopes={"read", "write"})
    _, read_key = keys.create("Reader", [park_id])
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "park": park_id, "write": {"X-API-Key": write_key}, "read": {"X-API-Key": read_key}}
    db_conn.execute("DELETE FROM parks WHERE park_id = %s", (park_id,))


async def test_a_write_key_bootstraps_a_park_sites_and_devices(api: dict, db_conn: psycopg.Connection):
    client, park, write = api["client"], api["park"], api["write"]
    base = f"/v1/parks/{park}"
    missing = await client.get(f"{base}/registry", headers=write)
    assert missing.status_code == 404
    assert "registry park" in missing.json()["detail"]

    created = await client.put(base, json={"name": "示范园", "province": "广东", "grid_region": "南方"}, headers=write)
    assert created.status_code == 201, created.text
    assert (created.json()["timezone"], created.json()["sites"]) == ("Asia/Shanghai", 0)
    replaced = await client.put(base, json={"name": "示范园", "auto_register": True}, headers=write)
    assert replaced.status_code == 200
    assert (replaced.json()["province"], replaced.json()["auto_register"]) == (None, True)  # PUT replaces

    site = await client.post(f"{base}/sites", json={"site_id": "ws-a", "kind": "workshop", "floor_area_m2": 12000,
                                                    "roof_area_m2": 9000}, headers=write)
    assert site.status_code == 201, site.text
    assert site.json()["roof_area_m2"] == 9000.0
    again = await client.post(f"{base}/sites", json={"site_id": "ws-a"}, headers=write)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    bad = await client.put(f"{base}/sites/ws-a", json={"kind": "castle"}, headers=write)
    assert bad.status_code == 422
    assert "workshop" in bad.json()["detail"]

    device = await client.put(f"{base}/devices/ws-a", json={"kind": "electricity_meter", "metering_level": 2,
                                                             "site_id": "ws-a", "multiplier": 40}, headers=write)
    assert device.status_code == 201, device.text
    assert device.json()["operator_fields"] == ["kind", "metering_level", "multiplier", "site_id"]
    nowhere = await client.post(f"{base}/devices", json={"device_id": "m2", "site_id": "nowhere"}, headers=write)
    assert nowhere.status_code == 404
    assert "nowhere" in nowhere.json()["detail"]
    # PUT states everything the operator says: what it leaves out goes back to the device
    device = await client.put(f"{base}/devices/ws-a", json={"metering_level": 2}, headers=write)
    assert (device.status_code, device.json()["multiplier"], device.json()["operator_fields"]) == \
        (200, 1.0, ["metering_level"])

    listed = (await client.get(f"{base}/devices", headers=api["read"])).json()
    assert (listed["total"], listed["items"][0]["device_id"], listed["items"][0]["registered_by"]) == \
        (1, "ws-a", "operator")
    sites = (await client.get(f"{base}/sites", headers=api["read"])).json()
    assert [(s["site_id"], s["devices"]) for s in sites["items"]] == [("ws-a", 0)]  # its site was handed back
    assert db_conn.execute("SELECT count(*) FROM devices WHERE park_id = %s", (park,)).fetchone() == (1,)


async def test_import_and_export_round_trip_through_the_api(api: dict):
    client, park, write = api["client"], api["park"], api["write"]
    base = f"/v1/parks/{park}/registry"
    sheet = ("record,park_id,site_id,device_id,kind,metering_level,role,floor_area_m2\n"
             f"park,{park},,,,,,\n"
             f"site,{park},ws-a,,workshop,,,12000\n"
             f"device,{park},ws-a,ws-a,electricity_meter,2,,\n"
             f"device,{park},,grid-in,electricity_meter,1,park_boundary,\n")
    csv_headers = {**write, "Content-Type": "text/csv"}
    dry = await client.post(f"{base}/import", params={"dry_run": "true"}, content=sheet, headers=csv_headers)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert dry.json()["counts"] == {"park": {"created": 1, "updated": 0, "unchanged": 0},
                                    "site": {"created": 1, "updated": 0, "unchanged": 0},
                                    "device": {"created": 2, "updated": 0, "unchanged": 0}}
    assert (await client.get(f"/v1/parks/{park}/registry", headers=write)).status_code == 404

    done = await client.post(f"{base}/import", content=sheet, headers=csv_headers)
    assert done.status_code == 200
    assert [c["entity_id"] for c in done.json()["changes"]] == [park, "ws-a", "grid-in", "ws-a"]

    for fmt, media in (("yaml", "application/yaml"), ("csv", "text/csv"), ("json", "application/json")):
        exported = await client.get(f"{base}/export", params={"format": fmt}, headers=api["read"])
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith(media)
        back = await client.post(f"{base}/import", content=exported.content, headers={**write, "Content-Type": media})
        assert back.status_code == 200, back.text
        assert back.json()["changes"] == []  # nothing to change: the export is the registry
    tree = yaml.safe_load((await client.get(f"{base}/export", headers=write)).text)
    assert tree["park"]["sites"][0]["devices"] == [{"device_id": "ws-a", "kind": "electricity_meter",
                                                    "metering_level": 2}]


async def test_a_bad_file_gets_every_problem_with_its_line(api: dict):
    client, park, write = api["client"], api["park"], api["write"]
    text = (f"park:\n  park_id: {park}\n  devices:\n"
            "    - {device_id: m1, metering_level: 7}\n    - {device_id: M2}\n")
    response = await client.post(f"/v1/parks/{park}/registry/import", content=text.encode(),
                                 headers={**write, "Content-Type": "application/yaml"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(4, "metering_level"), (5, "device_id")]
    assert "nothing was imported" in body["detail"]

    other = f"park:\n  park_id: {park}-other\n"
    response = await client.post(f"/v1/parks/{park}/registry/import", content=other,
                                 headers={**write, "Content-Type": "application/yaml"})
    assert response.status_code == 422
    assert f"/v1/parks/{park}-other/registry/import" in response.json()["detail"]
    response = await client.post(f"/v1/parks/{park}/registry/import", content=other,
                                 headers={**write, "Content-Type": "application/pdf"})
    assert response.status_code == 415


async def test_read_keys_read_and_other_parks_are_out_of_scope(api: dict):
    client, park, read, write = api["client"], api["park"], api["read"], api["write"]
    assert (await client.put(f"/v1/parks/{park}", json={}, headers=write)).status_code == 201
    assert (await client.get(f"/v1/parks/{park}/registry", headers=read)).status_code == 200
    for method, path, body in (("PUT", f"/v1/parks/{park}", {}), ("POST", f"/v1/parks/{park}/sites", {"site_id": "a"}),
                               ("PUT", f"/v1/parks/{park}/devices/m1", {})):
        denied = await client.request(method, path, json=body, headers=read)
        assert denied.status_code == 403
        assert "lacks the 'write' scope" in denied.json()["detail"]
    denied = await client.post(f"/v1/parks/{park}/registry/import", content="park:\n  park_id: x\n",
                               headers={**read, "Content-Type": "application/yaml"})
    assert denied.status_code == 403
    assert (await client.put("/v1/parks/someone-else", json={}, headers=write)).status_code == 403


# --- contract: every registry operation on the real database with a write key -----------------------------

_PARK = f"t-registry-contract-{uuid.uuid4().hex[:8]}"
_KEYS = MemoryKeyStore()
_, _KEY = _KEYS.create("ops", [_PARK], scopes={"read", "write"})


_APP = build_app(DrService(MemoryRepository()), _KEYS, FakeSettings())  # wired to the database below
_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=schemathesis.Config.from_dict({
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "415", "422"]}},
    "generation": {"mode": "positive"}})).include(tag="registry")


@pytest.fixture(scope="module")
def registry_app_on_db(database_url: str) -> Iterator[None]:
    """Point the contract app at the test database; remove the park its requests created afterwards."""
    _APP.state.database_url = database_url
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM parks WHERE park_id = %s", (_PARK,))


@_SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_registry_operations_keep_their_contract(case, registry_app_on_db):
    case.path_parameters = {**(case.path_parameters or {}), "park_id": _PARK}
    case.call_and_validate(headers={"X-API-Key": _KEY, "Authorization": f"Bearer {_KEY}"})
