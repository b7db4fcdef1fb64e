"""Alarms over the API on the real database: read keys list and show, only write keys acknowledge; other
parks' alarms stay out of reach; the acknowledgement lands in the history with the key that sent it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from alarms._evaluate import AlarmEvaluator
from api import PgKeyStore, build_app
from flex import DrService, MemoryRepository
from tests.aggregation._seed import Meter, create_series
from tests.api.fakes import FakeSettings

pytestmark = pytest.mark.services

NOW = datetime.now(UTC).replace(microsecond=0)


def _offline_alarm(database_url: str, conn: psycopg.Connection, park_id: str) -> int:
    """A meter silent for 20 min (limit 15): evaluate, return the alarm id."""
    create_series(conn, park_id, Meter("m1", metadata={"poll_interval_s": 60}))
    conn.execute("""INSERT INTO device_status (device_key, last_seen_at, last_reading_ts)
                    SELECT device_key, %s, %s FROM devices WHERE park_id = %s""",
                 (NOW - timedelta(minutes=20), NOW - timedelta(minutes=20), park_id))
    assert AlarmEvaluator(database_url).run([park_id], now=NOW).failed == {}
    row = conn.execute("SELECT alarm_id FROM alarms WHERE park_id = %s", (park_id,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def api(database_url: str, park_id: str, db_conn: psycopg.Connection) -> AsyncIterator[dict]:
    """The app on the real database, an offline alarm in the test's park, a read key and a write key."""
    alarm_id = _offline_alarm(database_url, db_conn, park_id)
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Reader", [park_id])
    _, write_key = keys.create("Duty desk", [park_id], scopes={"read", "write"})
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "alarm_id": alarm_id, "read": {"X-API-Key": read_key},
               "write": {"X-API-Key": write_key}}


async def test_read_key_lists_and_shows_write_key_acknowledges(api: dict, park_id: str) -> None:
    client, read, write, alarm_id = api["client"], api["read"], api["write"], api["alarm_id"]
    base = f"/v1/parks/{park_id}/alarms"

    page = (await client.get(base, headers=read)).json()
    assert (page["total"], [a["alarm_id"] for a in page["items"]]) == (1, [alarm_id])
    item = page["items"][0]
    assert (item["rule_id"], item["subject"], item["state"], item["severity"], item["unit"]) == (
        "device_offline", "m1", "open", "critical", "s")
    assert item["value"] == 20 * 60.0
    assert item["limit_value"] == 900.0
    assert item["history"] is None
    assert (await client.get(base, params={"state": "cleared"}, headers=read)).json()["total"] == 0
    assert (await client.get(base, params={"severity": "info"}, headers=read)).json()["total"] == 0
    assert (await client.get(base, params={"state": "bogus"}, headers=read)).status_code == 422

    one = (await client.get(f"{base}/{alarm_id}", headers=read)).json()
    assert [h["action"] for h in one["history"]] == ["raised"]

    denied = await client.post(f"{base}/{alarm_id}/ack", json={"comment": "on it"}, headers=read)
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    assert "lacks the 'write' scope" in denied.json()["detail"]
    # a read key gets 403 before its body is looked at
    assert (await client.post(f"{base}/{alarm_id}/ack", json={"bogus": 1}, headers=read)).status_code == 403
    assert (await client.post(f"{base}/{alarm_id}/ack", json={}, headers=write)).status_code == 422

    acked = await client.post(f"{base}/{alarm_id}/ack", json={"comment": "技术员已出发", "by": "王工"}, headers=write)
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["state"] == "acknowledged"
    assert body["acknowledged_by"].startswith("王工 (api key ")
    assert body["ack_comment"] == "技术员已出发"
    assert [(h["action"], h["comment"]) for h in body["history"]] == [("raised", None),
                                                                       ("acknowledged", "技术员已出发")]
    again = await client.post(f"{base}/{alarm_id}/ack", json={"comment": "again"}, headers=write)
    assert again.status_code == 409
    assert "acknowledged already" in again.json()["detail"]
    assert (await client.get(base, params={"state": "open"}, headers=read)).json()["total"] == 0
    assert (await client.get(base, headers=read)).json()["total"] == 1          # active = open or acknowledged


async def test_other_parks_alarms_are_out_of_reach(api: dict, park_id: str, database_url: str,
                                                   db_conn: psycopg.Connection) -> None:
    client, read, write = api["client"], api["read"], api["write"]
    other = f"{park_id}-x"
    db_conn.execute("INSERT INTO parks (park_id) VALUES (%s)", (other,))
    foreign = _offline_alarm(database_url, db_conn, other)
    # the key is not scoped to the other park
    assert (await client.get(f"/v1/parks/{other}/alarms", headers=read)).status_code == 403
    # and an alarm id of another park is not found through this park
    missing = await client.get(f"/v1/parks/{park_id}/alarms/{foreign}", headers=read)
    assert missing.status_code == 404
    assert f"GET /v1/parks/{park_id}/alarms?state=all" in missing.json()["detail"]
    ack = await client.post(f"/v1/parks/{park_id}/alarms/{foreign}/ack", json={"comment": "x"}, headers=write)
    assert ack.status_code == 404
    state = db_conn.execute("SELECT state FROM alarms WHERE alarm_id = %s", (foreign,)).fetchone()
    assert state == ("open",)
