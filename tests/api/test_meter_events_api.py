"""Meter events over the API on the real database: read keys list, write keys record, import and void;
recording queues the recomputation and the next aggregation run makes the swap exact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from aggregation._jobs import AggregationJob
from aggregation._quality import IntervalFlag as F
from aggregation._settings import AggregationSettings
from api import PgKeyStore, build_app
from flex import DrService, MemoryRepository
from tests.aggregation._seed import Meter, create_park, create_series, register_rows, write_readings
from tests.api.fakes import FakeSettings

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)
START = datetime(2026, 10, 13, tzinfo=SH)
SWAP = datetime(2026, 10, 14, 9, 30, tzinfo=SH)


@pytest.fixture
async def api(database_url: str, park_id: str, db_conn: psycopg.Connection) -> AsyncIterator[dict]:
    """The app on the real database, a park whose meter m1 was swapped at 09:30 on 14 October, and keys."""
    create_park(db_conn, park_id)
    meter = Meter("m1", per_interval=10.0, level=1, role="park_boundary", start_value=5_000.0)
    sid = create_series(db_conn, park_id, meter)
    old = [(t, v) for t, v in register_rows(meter, START, START + timedelta(days=2), Q) if t < SWAP]
    # the new meter starts at 0.2 at the swap and counts 10 per interval, first read at 09:45
    new = [(SWAP + k * Q, 0.2 + 10.0 * k) for k in range(1, 40)]
    write_readings(db_conn, sid, old + new)
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Reader", [park_id])
    _, write_key = keys.create("Energy manager", [park_id], scopes={"read", "write"})
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "write": {"X-API-Key": write_key},
               "old_last": old[-1][1], "sid": sid}


def _run(database_url: str, park_id: str) -> None:
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0)).run()


def _swap_interval(conn: psycopg.Connection, sid: int) -> tuple[float, int, int]:
    row = conn.execute("SELECT energy, quality, flags FROM interval_energy WHERE series_id = %s AND ts = %s",
                       (sid, SWAP - Q)).fetchone()
    assert row is not None
    return row


async def test_write_key_records_the_swap_and_the_next_run_makes_it_exact(
        api: dict, park_id: str, database_url: str, db_conn: psycopg.Connection) -> None:
    client, read, write = api["client"], api["read"], api["write"]
    base = f"/v1/parks/{park_id}/meter-events"
    _run(database_url, park_id)
    assert _swap_interval(db_conn, api["sid"])[1] == 1                      # estimated across the drop

    body = {"device_id": "m1", "kind": "replacement", "at": "2026-10-14T09:30:00+08:00",
            "old_final": api["old_last"] + 6.5, "new_initial": 0.2, "note": "WO-77"}
    refused = await client.post(base, json=body, headers=read)
    assert refused.status_code == 403
    assert "write" in refused.json()["detail"]
    res = await client.post(base, json=body, headers=write)
    assert res.status_code == 201, res.text
    out = res.json()
    assert out["queued"] == 1
    assert "aggregate" in out["next_step"]
    event = out["events"][0]
    assert (event["kind"], event["source"], event["metric"]) == ("replacement", "api", "active_energy_import")
    assert event["recorded_by"].startswith("Energy manager")
    assert datetime.fromisoformat(event["occurred_at"]) == SWAP.astimezone(UTC)

    _run(database_url, park_id)
    # [09:15, 09:30): old_final - the 09:15 reading = 6.5, exact, flagged; nothing after it moved
    energy, quality, flags = _swap_interval(db_conn, api["sid"])
    assert (energy, quality) == (pytest.approx(6.5), 0)
    assert flags & F.METER_REPLACED
    assert not flags & F.EPOCH_BREAK

    dup = await client.post(base, json=body, headers=write)
    assert dup.status_code == 409
    assert "already recorded" in dup.json()["detail"]
    listed = (await client.get(base, headers=read)).json()
    assert listed["total"] == 1
    assert listed["items"][0]["event_id"] == event["event_id"]

    # a correction voids the old event and records the new one in one step
    fixed = await client.post(base, json={**body, "old_final": api["old_last"] + 7.0, "corrects": event["event_id"],
                                          "reason": "final register misread"}, headers=write)
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["events"][0]["corrects"] == event["event_id"]
    items = (await client.get(base, headers=read)).json()["items"]
    assert [(i["event_id"] == event["event_id"], i["void_reason"]) for i in items] == [
        (True, "final register misread"), (False, None)]
    assert (await client.get(base, params={"include_void": "false"}, headers=read)).json()["total"] == 1
    _run(database_url, park_id)
    assert _swap_interval(db_conn, api["sid"])[0] == pytest.approx(7.0)

    void = await client.post(f"{base}/{fixed.json()['events'][0]['event_id']}/void", json={"reason": "test"},
                             headers=write)
    assert void.status_code == 200
    assert void.json()["voided_by"].startswith("Energy manager")
    again = await client.post(f"{base}/{fixed.json()['events'][0]['event_id']}/void", json={"reason": "x"},
                              headers=write)
    assert again.status_code == 409
    missing = await client.post(f"{base}/999999999/void", json={"reason": "x"}, headers=write)
    assert missing.status_code == 404


async def test_bad_events_are_422_with_the_reason_and_imports_are_all_or_nothing(
        api: dict, park_id: str, db_conn: psycopg.Connection) -> None:
    client, write = api["client"], api["write"]
    base = f"/v1/parks/{park_id}/meter-events"
    low = await client.post(base, json={"device_id": "m1", "kind": "replacement", "at": "2026-10-14T09:30:00+08:00",
                                        "old_final": 1.0, "new_initial": 0.2}, headers=write)
    assert low.status_code == 422
    assert "below the last reading before the event" in low.json()["detail"]
    unknown = await client.post(base, json={"device_id": "m9", "kind": "reset", "at": "2026-10-14T09:30:00+08:00"},
                                headers=write)
    assert unknown.status_code == 422
    assert "registry device add" in unknown.json()["detail"]
    naive = await client.post(base, json={"device_id": "m1", "kind": "ratio-change", "at": "2026-10-14T12:00:00",
                                          "old_ratio": "200/5", "new_ratio": "300/5"}, headers=write)
    assert naive.status_code == 201, naive.text
    assert any("read as park time (Asia/Shanghai)" in n for n in naive.json()["notes"])
    assert naive.json()["events"][0]["new_multiplier"] == pytest.approx(60.0)

    csv_body = ("device_id,kind,at,old_final,new_initial\n"
                f"m1,replacement,2026-10-14T09:30+08:00,{api['old_last'] + 6.5},0.2\n"
                "m1,reset,2026-10-14T14:00+08:00,1,0\n")
    bad = await client.post(f"{base}/import", content=csv_body.encode(), headers={**write, "Content-Type": "text/csv"})
    assert bad.status_code == 422
    assert "line 3: old_final 1 is below" in bad.json()["detail"]
    assert db_conn.execute("SELECT count(*) FROM meter_events WHERE park_id = %s AND kind <> 'ratio_change'",
                           (park_id,)).fetchone() == (0,)
    good = await client.post(f"{base}/import", content=csv_body.splitlines(keepends=True)[0].encode()
                             + csv_body.splitlines(keepends=True)[1].encode(),
                             headers={**write, "Content-Type": "text/csv"})
    assert good.status_code == 201, good.text
    assert good.json()["events"][0]["source"] == "import"
    other = await client.post(f"{base}/import", content=b"park_id,device_id,kind,at\nelsewhere,m1,reset,2026-10-14\n",
                              headers={**write, "Content-Type": "text/csv"})
    assert other.status_code == 422
    assert "not the park of this import" in other.json()["detail"]
