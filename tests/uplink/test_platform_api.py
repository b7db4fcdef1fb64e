"""The uplink API (api/_uplink.py) on the real database: status, quality, rejects, instruments; scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api import PgKeyStore, build_app
from flex import DrService, MemoryRepository
from schemas.uplink_record import Period
from tests.api.fakes import FakeSettings
from tests.uplink._platform_helpers import SHANGHAI, day_record
from uplink._store import EndpointQueue, apply_acks, upsert_records

pytestmark = pytest.mark.services

PERIODS: tuple[Period, ...] = ("15min", "hour", "day", "month")
TODAY = datetime.now(SHANGHAI).date()


@pytest.fixture
async def api(database_url: str, park_id: str) -> AsyncIterator[dict[str, Any]]:
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Reader", [park_id, "not-registered-park"])
    _, other_key = keys.create("Other park", ["someone-else"])
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "other": {"X-API-Key": other_key}}


def _seed(database_url: str, park: str) -> tuple[str, str]:
    """Two endpoints: one has acked day 1 and rejected day 2's E99; the other acked nothing."""
    records = [day_record("01010001", 1, 10.0, park=park), day_record("01010001", 2, 11.0, park=park),
               day_record("E99", 2, 3.0, park=park)]
    city, province = f"city-{park[-8:]}", f"prov-{park[-8:]}"
    queues = [EndpointQueue(city, "national-json", park, PERIODS), EndpointQueue(province, "national-json", park,
                                                                                  PERIODS)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        upsert_records(conn, "national-json", records, queues)
        apply_acks(conn, city, [record_ack(records[0], True), record_ack(records[2], False, "数据项编码不存在")])
        conn.execute("""INSERT INTO uplink_quality_flags (park_id, profile, data_item_code, day, check_name, passed,
                                                          value, threshold, reason)
                        VALUES (%s, 'national-json', '01010001', %s, 'completeness', false, 0.5, 0.9,
                                'missing meter data: 48 of 96 intervals'),
                               (%s, 'national-json', '01010001', %s, 'alignment', true, 0, 1, NULL)""",
                     (park, TODAY - timedelta(days=1), park, TODAY - timedelta(days=1)))
    return city, province


def record_ack(record: Any, accepted: bool, reason: str | None = None) -> Any:
    from schemas.uplink_record import RecordAck
    return RecordAck(record.record_key, 1, accepted, reason)


async def test_status_shows_each_endpoint_backlog_acks_rejects_and_flagged_days(
        api: dict[str, Any], database_url: str, park_id: str) -> None:
    city, province = _seed(database_url, park_id)
    answer = await api["client"].get(f"/v1/parks/{park_id}/uplink/status", headers=api["read"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    by_name = {e["endpoint"]: e for e in body["endpoints"]}
    assert (by_name[city]["backlog"], by_name[city]["acked"], by_name[city]["rejected"]) == (1, 1, 1)
    assert (by_name[province]["backlog"], by_name[province]["acked"]) == (3, 0)
    assert by_name[province]["oldest_unacked_key"].endswith("2026-12-01T00:00:00+08:00")
    assert body["flagged_days_31d"] == 1


async def test_quality_lists_checks_with_reasons_and_filters_failed(
        api: dict[str, Any], database_url: str, park_id: str) -> None:
    _seed(database_url, park_id)
    url = f"/v1/parks/{park_id}/uplink/quality"
    every = (await api["client"].get(url, headers=api["read"])).json()["flags"]
    failed = (await api["client"].get(url, params={"failed_only": "true"}, headers=api["read"])).json()["flags"]
    assert sorted(f["check"] for f in every) == ["alignment", "completeness"]
    assert [(f["check"], f["reason"]) for f in failed] == [("completeness", "missing meter data: 48 of 96 intervals")]
    backwards = await api["client"].get(url, params={"from": "2026-12-05", "to": "2026-12-01"}, headers=api["read"])
    assert backwards.status_code == 422


async def test_rejects_keep_the_platforms_reason(api: dict[str, Any], database_url: str, park_id: str) -> None:
    city, _ = _seed(database_url, park_id)
    rejects = (await api["client"].get(f"/v1/parks/{park_id}/uplink/rejects", headers=api["read"])).json()["rejects"]
    assert [(r["endpoint"], r["reason"]) for r in rejects] == [(city, "数据项编码不存在")]
    assert "|E99|" in rejects[0]["record_key"]


async def test_instruments_of_a_park_without_meters_is_empty_and_an_unknown_profile_is_422(
        api: dict[str, Any], park_id: str) -> None:
    url = f"/v1/parks/{park_id}/uplink/instruments"
    empty = await api["client"].get(url, headers=api["read"])
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"park_id": park_id, "profile": "national-json", "instruments": []}
    assert (await api["client"].get(url, params={"profile": "nowhere"}, headers=api["read"])).status_code == 422


async def test_scope_and_unknown_park(api: dict[str, Any], park_id: str) -> None:
    client = api["client"]
    assert (await client.get(f"/v1/parks/{park_id}/uplink/status")).status_code == 401
    assert (await client.get(f"/v1/parks/{park_id}/uplink/status", headers=api["other"])).status_code == 403
    missing = await client.get("/v1/parks/not-registered-park/uplink/rejects", headers=api["read"])
    assert missing.status_code == 404
    assert "register it first" in missing.json()["detail"]
