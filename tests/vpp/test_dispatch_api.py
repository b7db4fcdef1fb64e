"""The utility side of dispatch over the API and the CLI, on the real database: events, commitments, commands,
overrides with scoped keys, the dry-run plan, and an OpenAPI contract fuzz of the routes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from api import MemoryKeyStore, PgKeyStore, build_app
from flex import DrService, MemoryRepository
from flex._assets import Battery, BatteryState
from flex._direction import Direction
from flex._plan import plan_dispatch
from flex._plan_model import PlanInterval, PlanRequest
from flex._records import AssetRecord, DrEvent
from flex._store import DrStore
from parkpulse.cli import app as cli_app
from schemas.commands import CommandAction, build_command
from tests.api.fakes import FakeSettings
from tests.flex.test_plan import battery
from vpp._dispatch_store import log_command, record_command, record_plan

pytestmark = pytest.mark.services

T0 = datetime(2026, 12, 5, 8, tzinfo=UTC)


def _vpp_event(conn: psycopg.Connection, park: str, event_id: str, *, opt: str = "optIn") -> None:
    """A received event as the intake stores it (migration 0014)."""
    conn.execute(
        """INSERT INTO vpp_events (source, vtn_id, vtn_event_id, dr_event_id, park_id, modification_number, vtn_status,
               action, opt, opt_reason, signal_name, signal_kind, direction, requested_kw, committed_kw, start_at,
               end_at, intervals, first_received_at, received_at)
           VALUES ('oadr2', 'vtn', %s, %s, %s, 0, 'far', 'new', %s, %s, 'LOAD_DISPATCH', 'target_kw', 'up', 60, %s,
                   %s, %s, %s, %s, %s)""",
        (event_id, event_id, park, opt, None if opt == "optIn" else "below the park's minimum",
         60.0 if opt == "optIn" else 0.0, T0, T0 + timedelta(minutes=30),
         Jsonb([{"start": (T0 + i * timedelta(minutes=15)).isoformat(), "duration_s": 900.0, "value": 60.0,
                 "unit": "kW"} for i in range(2)]), T0 - timedelta(hours=1), T0 - timedelta(hours=1)),
    )


@pytest.fixture
def dispatched(database_url: str, park_id: str) -> str:
    """An opted-in event with a stored plan and two audited commands (one applied, one rejected)."""
    event = f"{park_id}-ev"
    ivs = tuple(PlanInterval(T0 + i * timedelta(minutes=15), T0 + (i + 1) * timedelta(minutes=15), 60.0)
                for i in range(2))
    plan = plan_dispatch(PlanRequest(ivs, (battery(100.0, n=2),)))
    with psycopg.connect(database_url, autocommit=True) as conn:
        _vpp_event(conn, park_id, event)
        _vpp_event(conn, park_id, f"{park_id}-out", opt="optOut")
        plan_id = record_plan(conn, park_id, event, plan, T0 - timedelta(minutes=30))
        for i, (status, reason) in enumerate((("applied", None), ("rejected", "out_of_range"))):
            msg = build_command(command_id=f"{event}-c{i}", park=park_id, device="bess-1",
                                action=CommandAction.SET_ACTIVE_POWER, value=-60.0, issued_at=ivs[i].start,
                                expires_at=ivs[i].start + timedelta(minutes=1), hold_until=ivs[i].end, event_id=event,
                                issued_by="test", reason=f"interval {i}")
            record_command(conn, msg, asset_id="bess", plan_id=plan_id, interval_start=ivs[i].start)
            log_command(conn, msg["command_id"], "sent", ivs[i].start)
            log_command(conn, msg["command_id"], status, ivs[i].start + timedelta(seconds=1), reason=reason,
                        applied_value=-60.0 if status == "applied" else None)
    return event


@pytest.fixture
async def api(database_url: str, park_id: str) -> AsyncIterator[dict[str, Any]]:
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Utility", [park_id])
    _, write_key = keys.create("Operator", [park_id], scopes={"read", "write"})
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "write": {"X-API-Key": write_key}}


async def test_a_utility_reads_events_commitments_and_commands(api: dict[str, Any], park_id: str,
                                                               dispatched: str) -> None:
    client, read = api["client"], api["read"]
    base = f"/v1/parks/{park_id}/vpp"
    events = (await client.get(f"{base}/events", headers=read)).json()["events"]
    assert {e["event_id"] for e in events} == {dispatched, f"{park_id}-out"}
    ev = next(e for e in events if e["event_id"] == dispatched)
    assert ev["plan"]["method"] == "lp"
    assert ev["plan"]["committed_kw"] == pytest.approx(60.0)
    detail = (await client.get(f"{base}/events/{dispatched}", headers=read)).json()
    assert [iv["planned_kw"] for iv in detail["plan_intervals"]] == pytest.approx([60.0, 60.0])
    assert detail["commands_by_status"] == {"applied": 1, "rejected": 1}
    commitments = {c["event_id"]: c for c in (await client.get(f"{base}/commitments", headers=read)).json()[
        "commitments"]}
    assert commitments[dispatched]["committed_kw"] == 60.0
    assert commitments[dispatched]["planned_kw"] == pytest.approx(60.0)
    out = commitments[f"{park_id}-out"]
    assert (out["opt"], out["opt_reason"], out["planned_kw"]) == ("optOut", "below the park's minimum", None)
    cmds = (await client.get(f"{base}/commands", params={"event_id": dispatched}, headers=read)).json()["commands"]
    assert sorted((c["status"], c["status_reason"]) for c in cmds) == [("applied", None), ("rejected", "out_of_range")]
    missing = await client.get(f"{base}/events/nope", headers=read)
    assert missing.status_code == 404
    assert "/vpp/events" in missing.json()["detail"]


async def test_overrides_need_the_write_scope(api: dict[str, Any], park_id: str) -> None:
    client, read, write = api["client"], api["read"], api["write"]
    url = f"/v1/parks/{park_id}/vpp/overrides"
    body = {"device_id": "bess-1", "until": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            "reason": "inverter fault"}
    assert (await client.post(url, json=body, headers=read)).status_code == 403
    created = await client.post(url, json=body, headers=write)
    assert created.status_code == 201, created.text
    o = created.json()
    assert (o["max_change_kw"], o["active"], o["created_by"]) == (0.0, True, "api:Operator")
    listed = (await client.get(url, params={"active": True}, headers=read)).json()["overrides"]
    assert [x["override_id"] for x in listed] == [o["override_id"]]
    past = await client.post(url, json=body | {"until": "2020-01-01T00:00:00Z"}, headers=write)
    assert past.status_code == 422
    assert "--until must be in the future" in past.json()["detail"]
    cleared = await client.delete(f"{url}/{o['override_id']}", headers=write)
    assert cleared.status_code == 200
    assert cleared.json()["active"] is False
    again = await client.delete(f"{url}/{o['override_id']}", headers=write)
    assert again.status_code == 404


def test_the_cli_plans_lists_and_overrides(database_url: str, park_id: str, dispatched: str) -> None:
    runner = CliRunner()
    now = datetime.now(UTC)
    with DrStore(database_url, max_size=1) as store:
        store.put_asset(park_id, AssetRecord(
            Battery(asset_id="bess", capacity_kwh=200, charge_power_max_kw=100, discharge_power_max_kw=100,
                    state=BatteryState(soc_pct=60, power_kw=0)), device_id="bess-1", state_at=now))
        store.create_event(DrEvent(event_id=f"{park_id}-dr", park_id=park_id, start=now + timedelta(hours=1),
                                   end=now + timedelta(hours=2), direction=Direction.UP, requested_kw=80.0))
    out = runner.invoke(cli_app, ["vpp", "plan", "--event", f"{park_id}-dr", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["method"], len(doc["intervals"]), doc["committed_kw"]) == ("lp", 4, pytest.approx(80.0))
    assert {c["device_id"] for c in doc["commands"]} == {"bess-1"}
    assert all(c["action"] == "set_active_power" and c["value"] == pytest.approx(-80.0) for c in doc["commands"])

    until = (now + timedelta(hours=3)).isoformat()
    set_out = runner.invoke(cli_app, ["vpp", "override", "set", "--park", park_id, "--device", "bess-1",
                                      "--until", until, "--reason", "maintenance"])
    assert set_out.exit_code == 0, set_out.output
    assert "excluded from dispatch" in set_out.output
    excluded = json.loads(runner.invoke(cli_app, ["vpp", "plan", "--event", f"{park_id}-dr", "--json"]).output)
    assert excluded["commands"] == []  # the override wins
    assert excluded["committed_kw"] == 0.0
    listed = json.loads(runner.invoke(cli_app, ["vpp", "override", "list", "--park", park_id, "--json"]).output)
    assert [o["device_id"] for o in listed] == ["bess-1"]
    cleared = runner.invoke(cli_app, ["vpp", "override", "clear", "--park", park_id, str(listed[0]["override_id"])])
    assert cleared.exit_code == 0, cleared.output
    again = runner.invoke(cli_app, ["vpp", "override", "clear", "--park", park_id, str(listed[0]["override_id"])])
    assert again.exit_code == 1
    assert "parkpulse vpp override list" in again.output

    cmds = json.loads(runner.invoke(cli_app, ["vpp", "commands", "list", "--park", park_id, "--event", dispatched,
                                              "--json"]).output)
    assert sorted(c["status"] for c in cmds) == ["applied", "rejected"]
    vtn_plan = json.loads(runner.invoke(cli_app, ["vpp", "plan", "--event", dispatched, "--json"]).output)
    assert [iv["target_kw"] for iv in vtn_plan["intervals"]] == [60.0, 60.0]  # the VTN's intervals
    unknown = runner.invoke(cli_app, ["vpp", "plan", "--event", "nope"])
    assert unknown.exit_code == 1
    assert "parkpulse vpp events list" in unknown.output


_PARK = f"contract-vpp-{uuid.uuid4().hex[:6]}"
_KEYS = MemoryKeyStore()
_, _KEY = _KEYS.create("Utility", [_PARK], scopes=("read", "write"))
_APP = build_app(DrService(MemoryRepository()), _KEYS, FakeSettings())
_schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422"]}},
     "generation": {"mode": "positive"}})).include(
    path_regex=r"/vpp/(events|events/\{event_id\}|commitments|commands|overrides|overrides/\{override_id\})$")


@pytest.fixture
def _contract_db(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id) VALUES (%s) ON CONFLICT DO NOTHING", (_PARK,))
    _APP.state.database_url = database_url


@pytest.mark.usefixtures("_contract_db")
@_schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_dispatch_routes_contract(case) -> None:  # type: ignore[no-untyped-def]
    case.path_parameters["park_id"] = _PARK
    case.call_and_validate(headers={"X-API-Key": _KEY})
