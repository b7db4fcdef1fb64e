"""Quarantine endpoints and key scopes: read keys list and show, only write keys replay.

The database tests run the real app wiring (PgKeyStore, PgQuarantine) on TimescaleDB; the contract test
fuzzes the three quarantine operations in memory with a write key and records to find.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from api import MemoryKeyStore, PgKeyStore, build_app
from api._cli import keys_app
from flex import DrService, MemoryRepository, ParkInfo
from ingest._quarantine import QuarantineEntry
from ingest._replay import MemoryQuarantine, PgQuarantine
from tests.api.fakes import FakeSettings
from tests.ingest.quarantine_seed import (
    BINARY,
    HOSTILE_JSON,
    RECEIVED,
    count_quarantine,
    count_readings,
    readings_message,
    register_park,
    seed,
)


def _app(keys, quarantine, *parks: str):
    repo = MemoryRepository()
    for park in parks:
        repo.add_park(ParkInfo(park, park))
    return build_app(DrService(repo), keys, FakeSettings(), quarantine)


@pytest.fixture
async def pg_api(database_url: str, park_id: str, db_conn: psycopg.Connection) -> AsyncIterator[dict]:
    """The app on the real database with a read key and a write key for the test's park, and seeded records."""
    register_park(db_conn, park_id)
    ids = seed(db_conn, park_id)
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Reader", [park_id])
    _, write_key = keys.create("Operator", [park_id], scopes={"read", "write"})
    app = _app(keys, PgQuarantine(database_url), park_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "ids": ids, "read": {"X-API-Key": read_key}, "write": {"X-API-Key": write_key}}


@pytest.mark.services
async def test_read_key_lists_and_shows_records_but_cannot_replay(pg_api: dict, park_id: str,
                                                                   db_conn: psycopg.Connection):
    client, ids, read = pg_api["client"], pg_api["ids"], pg_api["read"]
    base = f"/v1/parks/{park_id}/quarantine"

    page = (await client.get(base, headers=read)).json()
    assert page["total"] == 6
    assert [i["quarantine_id"] for i in page["items"]] == ids.all[::-1]
    oldest = page["items"][-1]
    assert oldest["raw_sha256"] == hashlib.sha256(readings_message("m-1", 3)).hexdigest()
    assert (oldest["replayable"], oldest["replay_outcome"]) == (True, None)

    async def selected(**params: str) -> list[int]:
        response = await client.get(base, params=params, headers=read)
        assert response.status_code == 200, response.text
        return sorted(i["quarantine_id"] for i in response.json()["items"])

    assert await selected(reason="unregistered") == sorted([ids.unregistered, ids.imported])
    assert await selected(source="import") == [ids.imported]
    assert await selected(replayable="false") == [ids.truncated]
    assert await selected(device_id="m-1") == sorted([ids.unregistered, ids.truncated])
    assert await selected(since=(RECEIVED + timedelta(seconds=5)).isoformat()) == [ids.binary]
    two = (await client.get(base, params={"limit": 2, "offset": 2}, headers=read)).json()
    assert (len(two["items"]), two["total"], two["next_offset"]) == (2, 6, 4)
    bad = await client.get(base, params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                           headers=read)
    assert bad.status_code == 422
    assert "until must be after since" in bad.json()["detail"]

    one = (await client.get(f"{base}/{ids.unregistered}", headers=read)).json()
    assert base64.b64decode(one["raw_base64"]) == readings_message("m-1", 3)
    assert one["raw_kind"] == "json"
    assert '"device": "m-1"' in one["raw_preview"]
    hostile = (await client.get(f"{base}/{ids.hostile}", headers=read)).json()
    assert base64.b64decode(hostile["raw_base64"]) == HOSTILE_JSON
    assert "\\u0000" in hostile["raw_preview"]
    assert "\x00" not in hostile["raw_preview"]
    binary = (await client.get(f"{base}/{ids.binary}", headers=read)).json()
    assert binary["raw_kind"] == "binary"
    assert base64.b64decode(binary["raw_base64"]) == BINARY
    truncated = (await client.get(f"{base}/{ids.truncated}", headers=read)).json()
    assert (truncated["raw_truncated"], truncated["raw_length"], len(base64.b64decode(truncated["raw_base64"]))) \
        == (True, 70_051, 65_536)

    missing = await client.get(f"{base}/999999999999", headers=read)
    assert missing.status_code == 404
    assert f"GET /v1/parks/{park_id}/quarantine" in missing.json()["detail"]
    other = await client.get("/v1/parks/someone-else/quarantine", headers=read)
    assert other.status_code == 403

    denied = await client.post(f"{base}/replay", json={"ids": [ids.unregistered]}, headers=read)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    problem = denied.json()
    assert "lacks the 'write' scope" in problem["detail"]
    assert "parkpulse api-keys create NAME --park PARK --scope write" in problem["detail"]
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    # a read key gets the scope answer even for a body it could not have sent correctly
    assert (await client.post(f"{base}/replay", json={"bogus": 1}, headers=read)).status_code == 403
    assert count_readings(db_conn, park_id) == 0


@pytest.mark.services
async def test_write_key_replays_exactly_once(pg_api: dict, park_id: str, db_conn: psycopg.Connection):
    client, ids, write = pg_api["client"], pg_api["ids"], pg_api["write"]
    url = f"/v1/parks/{park_id}/quarantine/replay"

    dry = await client.post(url, json={"dry_run": True}, headers=write)
    assert dry.status_code == 200, dry.text
    assert dry.json()["counts"]["stored"] == 2
    assert count_readings(db_conn, park_id) == 0

    first = (await client.post(url, json={}, headers=write)).json()
    assert first["counts"] == {"stored": 2, "rejected": 3, "not_replayable": 1, "error": 0}
    assert (first["stored"], first["duplicates"]) == (5, 0)
    by_id = {r["quarantine_id"]: r for r in first["results"]}
    assert by_id[ids.truncated]["detail"].startswith("raw bytes were truncated at capture (65,536 of 70,051 bytes")
    assert (by_id[ids.invalid]["outcome"], by_id[ids.invalid]["reason"]) == ("rejected", "invalid_json")
    assert count_readings(db_conn, park_id) == 5
    assert count_quarantine(db_conn, park_id) == 6

    again = (await client.post(url, json={"ids": [ids.unregistered, ids.imported]}, headers=write)).json()
    assert (again["stored"], again["duplicates"]) == (0, 5)
    shown = (await client.get(f"/v1/parks/{park_id}/quarantine/{ids.unregistered}", headers=write)).json()
    assert shown["replay_outcome"] == "stored"
    assert shown["replayed_at"] is not None
    pending = (await client.get(f"/v1/parks/{park_id}/quarantine", params={"outcome": "never"},
                                headers=write)).json()
    assert pending["total"] == 0

    unknown = await client.post(url, json={"ids": [ids.unregistered, 999999999999]}, headers=write)
    assert unknown.status_code == 404
    assert "999999999999" in unknown.json()["detail"]
    wrong_park = await client.post("/v1/parks/someone-else/quarantine/replay", json={}, headers=write)
    assert wrong_park.status_code == 403


@pytest.mark.services
def test_api_key_commands_store_and_show_scopes(database_url: str, park_id: str):
    env = {"PARKPULSE_DATABASE_URL": database_url, "COLUMNS": "250"}
    runner = CliRunner()
    created = runner.invoke(keys_app, ["create", "Ops", "--park", park_id, "--scope", "write"], env=env)
    assert created.exit_code == 0, created.output
    assert "scopes read, write" in created.output
    write_id = created.output.strip().splitlines()[-1].split("_")[1]
    plain = runner.invoke(keys_app, ["create", "Grid", "--park", park_id], env=env)
    assert plain.exit_code == 0, plain.output
    read_id = plain.output.strip().splitlines()[-1].split("_")[1]
    store = PgKeyStore(database_url)
    write_key, read_key = store.get(write_id), store.get(read_id)
    assert write_key is not None
    assert write_key.client.scopes == {"read", "write"}
    assert read_key is not None
    assert read_key.client.scopes == {"read"}
    listed = runner.invoke(keys_app, ["list"], env=env).output
    line = next(li for li in listed.splitlines() if write_id in li)
    assert "read, write" in line
    assert runner.invoke(keys_app, ["create", "X", "--park", park_id, "--scope", "admin"], env=env).exit_code == 2


async def test_a_key_without_read_scope_cannot_get():
    keys = MemoryKeyStore()
    _, write_only = keys.create("robot", ["park-a"], scopes={"write"})
    app = _app(keys, MemoryQuarantine(), "park-a")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"X-API-Key": write_only}) as client:
        response = await client.get("/v1/parks/park-a/quarantine")
        assert response.status_code == 403
        assert "lacks the 'read' scope" in response.json()["detail"]
        replay = await client.post("/v1/parks/park-a/quarantine/replay", json={"dry_run": True})
        assert replay.status_code == 200


# --- contract: the quarantine operations with a write key and records to find ------------------------------

_MEMORY = MemoryQuarantine()
for _n, _raw in enumerate([readings_message("m-1", 2), b'{"v": 1', BINARY], start=1):
    _MEMORY.add(QuarantineEntry(_n, RECEIVED, "mqtt", "parkpulse/v1/park-a/m-1/readings", "park-a", "m-1",
                                "unregistered", "x", 1, 0, len(_raw), hashlib.sha256(_raw).digest(), False, raw=_raw))
_KEYS = MemoryKeyStore()
_, _WRITE_KEY = _KEYS.create("ops", ["park-a"], scopes={"read", "write"})
_schema = schemathesis.openapi.from_asgi("/openapi.json", _app(_KEYS, _MEMORY, "park-a"),
                                         config=schemathesis.Config.from_dict({
                                             "checks": {"positive_data_acceptance": {
                                                 "expected-statuses": ["2xx", "403", "404", "422"]}},
                                             "generation": {"mode": "positive"}})).include(path_regex="quarantine")


@_schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_quarantine_operations_with_a_write_key(case):
    if "park_id" in (case.path_parameters or {}):
        case.path_parameters["park_id"] = "park-a"
    if "quarantine_id" in (case.path_parameters or {}):
        case.path_parameters["quarantine_id"] = 1
    # Both credential headers (the fuzzer may add either): the same key, so they never conflict.
    case.call_and_validate(headers={"X-API-Key": _WRITE_KEY, "Authorization": f"Bearer {_WRITE_KEY}"})
