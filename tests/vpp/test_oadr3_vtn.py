"""The OpenADR 3 VTN stand-in: spec-validated requests and responses, scopes, webhook notifications.

Real HTTP on 127.0.0.1 (uvicorn for the stand-in, aiohttp for the webhook receiver).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web

from simulators.openadr3_vtn import (
    RunningVtn3,
    Vtn3Admin,
    Vtn3Error,
    VtnState,
    event_body,
    openadr3_spec,
    running_vtn3,
    to_json_schema,
)

VEN_ID, VEN_SECRET = "ven-1", "ven-secret-1234567890"


@pytest.fixture
async def vtn() -> AsyncIterator[RunningVtn3]:
    state = VtnState()
    state.add_client(VEN_ID, VEN_SECRET, "ven")
    async with running_vtn3(state) as running:
        yield running


async def _ven_token(http: httpx.AsyncClient, base: str) -> str:
    answer = await http.post(f"{base}/auth/token", data={"grant_type": "client_credentials",
                                                         "client_id": VEN_ID, "client_secret": VEN_SECRET})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_nullable_becomes_a_null_type_and_openapi_keywords_go() -> None:
    converted = to_json_schema({"type": "string", "nullable": True, "example": "x",
                                "items": {"discriminator": {"propertyName": "t"}, "type": "object"}})
    assert converted == {"type": ["string", "null"], "items": {"type": "object"}}


def test_the_vendored_document_is_openadr_3_0_1_and_validates_its_own_examples() -> None:
    spec = openadr3_spec()
    assert spec.version == "3.0.1"
    good = event_body("program-1", start=datetime(2026, 7, 1, 6, tzinfo=UTC), step=timedelta(minutes=15),
                      values=[500.0, 450.0])
    assert spec.schema_errors("event", good) == []
    bad = {**good, "intervals": [{"id": "first", "payloads": [{"type": "SIMPLE"}]}]}
    problems = spec.schema_errors("event", bad)
    assert any("intervals/0/id" in p for p in problems)
    assert any("values" in p for p in problems)


async def test_business_logic_writes_events_and_a_ven_reads_them(vtn: RunningVtn3) -> None:
    async with Vtn3Admin(vtn.base_url) as admin, httpx.AsyncClient() as http:
        program = await admin.create_program("capacity-2026")
        event = await admin.create_event(event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1),
                                                    step=timedelta(minutes=15), values=[300.0]))
        headers = {"Authorization": f"Bearer {await _ven_token(http, vtn.base_url)}"}
        listed = (await http.get(f"{vtn.base_url}/events", params={"programID": program["id"]},
                                 headers=headers)).json()
        assert [e["id"] for e in listed] == [event["id"]]
        assert listed[0]["objectType"] == "EVENT"
        assert listed[0]["modificationDateTime"]
        refused = await http.post(f"{vtn.base_url}/events", json=event_body(
            program["id"], start=datetime.now(UTC), step=timedelta(minutes=15), values=[1.0]), headers=headers)
        assert refused.status_code == 403  # a VEN has no write_events scope
    assert vtn.state.response_problems == []


async def test_an_invalid_request_is_rejected_with_a_problem(vtn: RunningVtn3) -> None:
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("p")
        with pytest.raises(Vtn3Error, match="400"):
            await admin.create_event({"programID": program["id"], "intervals": [{"id": 0, "payloads": [
                {"type": "IMPORT_CAPACITY_LIMIT", "values": [{"not": "a point"}]}]}]})
        with pytest.raises(Vtn3Error, match="400"):
            await admin.call("GET", "/events?limit=500")
    assert len(vtn.state.rejected_requests) == 2
    assert "values/0" in vtn.state.rejected_requests[0]
    assert vtn.state.objects["events"] == {}


async def test_token_endpoint_validates_the_form_and_the_credentials(vtn: RunningVtn3) -> None:
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{vtn.base_url}/auth/token", data={"grant_type": "client_credentials"})
        wrong = await http.post(f"{vtn.base_url}/auth/token", data={
            "grant_type": "client_credentials", "client_id": VEN_ID, "client_secret": "nope"})
        basic = await http.post(f"{vtn.base_url}/auth/token", data={"grant_type": "client_credentials"},
                                auth=(VEN_ID, VEN_SECRET))
        anonymous = await http.get(f"{vtn.base_url}/programs")
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_client"
    assert basic.status_code == 200
    assert basic.json()["token_type"] == "Bearer"
    assert anonymous.status_code == 403
    assert vtn.state.response_problems == []


async def test_subscribers_get_validated_notifications_of_create_update_delete(vtn: RunningVtn3) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def callback(request: web.Request) -> web.Response:
        received.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/cb", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with Vtn3Admin(vtn.base_url) as admin, httpx.AsyncClient() as http:
            program = await admin.create_program("p")
            headers = {"Authorization": f"Bearer {await _ven_token(http, vtn.base_url)}"}
            sub = await http.post(f"{vtn.base_url}/subscriptions", headers=headers, json={
                "clientName": "ven-1", "programID": program["id"], "objectOperations": [{
                    "objects": ["EVENT"], "operations": ["CREATE", "UPDATE", "DELETE"],
                    "callbackUrl": f"http://127.0.0.1:{port}/cb", "bearerToken": "tok"}]})
            assert sub.status_code == 201, sub.text
            body = event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1),
                              step=timedelta(minutes=15), values=[200.0])
            created = await admin.create_event(body)
            await admin.update_event(created["id"], {**body, "intervals": [
                {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [150.0]}]}]})
            await admin.delete_event(created["id"])
            async with asyncio.timeout(10):
                while len(received) < 3:  # noqa: ASYNC110 (changed over the network)
                    await asyncio.sleep(0.02)
    finally:
        await runner.cleanup()
    assert sorted(n["operation"] for _, n in received) == ["DELETE", "POST", "PUT"]
    assert {auth for auth, _ in received} == {"Bearer tok"}
    assert all(openadr3_spec().callback_errors(n) == [] for _, n in received)
    assert vtn.state.response_problems == []


async def test_a_polling_only_vtn_refuses_subscriptions(vtn: RunningVtn3) -> None:
    vtn.state.supports_subscriptions = False
    async with Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("p")
        with pytest.raises(Vtn3Error, match="403"):
            await admin.call("POST", "/subscriptions", {
                "clientName": "x", "programID": program["id"], "objectOperations": [{
                    "objects": ["EVENT"], "operations": ["CREATE"], "callbackUrl": "http://127.0.0.1:9/cb"}]})
