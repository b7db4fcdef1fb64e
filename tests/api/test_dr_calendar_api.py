"""GET/PUT /v1/parks/{park_id}/dr/calendar on the real database: scopes, validation, and the baseline it moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import httpx
import psycopg
import pytest

from api import PgKeyStore, build_app
from flex import DrService, DrStore
from tests.api.fakes import FakeSettings
from tests.flex.dbseed import add_series, seed_park, write_interval_energy
from tests.flex.loadgen import build_load, local, window_overrides

pytestmark = pytest.mark.services

FIRST = date(2026, 5, 25)
EVENT_DAY = date(2026, 7, 15)
SHUTDOWN = date(2026, 7, 10)  # a Friday the park declares a holiday
BASELINE_QUERY = {"start": "2026-07-15T14:00:00+08:00", "end": "2026-07-15T15:00:00+08:00", "method": "JIANGSU_5WD"}


def level(day: date) -> float:
    return 600.0 if day.weekday() >= 5 else 1000.0 + 10.0 * (day - FIRST).days


def jiangsu_kw(holidays: set[date]) -> float:
    """Mean level of the 5 most recent weekdays before the event day that are not ``holidays``."""
    found, d = [], EVENT_DAY - timedelta(days=1)
    while len(found) < 5:
        if d.weekday() < 5 and d not in holidays:
            found.append(d)
        d -= timedelta(days=1)
    return sum(level(x) for x in found) / 5


@pytest.fixture
async def api(database_url: str, park_id: str, db_conn: psycopg.Connection) -> AsyncIterator[dict]:
    seed_park(db_conn, park_id)
    meter = add_series(db_conn, park_id, "boundary", "active_energy_import", "kWh", level=1)
    write_interval_energy(db_conn, meter, build_load(FIRST, EVENT_DAY, level,
                                                     overrides=window_overrides(EVENT_DAY, 14, 16, 700.0)))
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Utility", [park_id])
    _, write_key = keys.create("Operator", [park_id], scopes={"read", "write"})
    with DrStore(database_url) as store:
        app = build_app(DrService(store, clock=lambda: local(EVENT_DAY, 18)), keys, FakeSettings(),
                        database_url=database_url)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            yield {"client": client, "read": {"X-API-Key": read_key}, "write": {"X-API-Key": write_key}}


async def test_put_a_holiday_and_the_baseline_moves(api: dict, park_id: str):
    client, read, write = api["client"], api["read"], api["write"]
    url = f"/v1/parks/{park_id}/dr/calendar"

    async def baseline_kw() -> float:
        response = await client.get(f"/v1/parks/{park_id}/baseline", params=BASELINE_QUERY, headers=read)
        assert response.status_code == 200, response.text
        return response.json()["intervals"][0]["baseline_kw"]

    assert await baseline_kw() == pytest.approx(jiangsu_kw(set()))
    empty = (await client.get(url, params={"year": 2026}, headers=read)).json()
    assert empty["days"] == []
    assert empty["national_status"] == "official"
    assert {d["source"] for d in empty["effective"]} == {"national"}

    body = {"days": [{"date": SHUTDOWN.isoformat(), "kind": "holiday", "name": "年度检修"},
                     {"date": "2026-10-01", "kind": "workday", "name": "continuous process"}]}
    denied = await client.put(url, json=body, headers=read)
    assert denied.status_code == 403
    assert "lacks the 'write' scope" in denied.json()["detail"]
    saved = await client.put(url, json=body, params={"year": 2026}, headers=write)
    assert saved.status_code == 200, saved.text
    doc = saved.json()
    assert [d["date"] for d in doc["days"]] == [SHUTDOWN.isoformat(), "2026-10-01"]
    effective = {d["date"]: d for d in doc["effective"]}
    assert (effective[SHUTDOWN.isoformat()]["source"], effective[SHUTDOWN.isoformat()]["overrides"]) == (
        "park", "workday")
    assert (effective["2026-10-01"]["day_type"], effective["2026-10-01"]["overrides"]) == ("workday", "holiday")
    assert effective["2026-10-02"]["day_type_meaning"] == "holiday (放假)"

    assert await baseline_kw() == pytest.approx(jiangsu_kw({SHUTDOWN}))
    assert await baseline_kw() != pytest.approx(jiangsu_kw(set()))

    merged = await client.put(url, json={"days": [{"date": "2026-07-09", "kind": "holiday"}]},
                              params={"merge": "true"}, headers=write)
    assert len(merged.json()["days"]) == 3
    assert await baseline_kw() == pytest.approx(jiangsu_kw({SHUTDOWN, date(2026, 7, 9)}))
    cleared = await client.put(url, json={"days": []}, headers=write)
    assert cleared.json()["days"] == []
    assert await baseline_kw() == pytest.approx(jiangsu_kw(set()))


async def test_bad_calendars_are_422_naming_the_day(api: dict, park_id: str):
    client, write = api["client"], api["write"]
    url = f"/v1/parks/{park_id}/dr/calendar"
    duplicate = await client.put(url, json={"days": [{"date": "2026-08-03", "kind": "holiday"},
                                                     {"date": "2026-08-03", "kind": "workday"}]}, headers=write)
    assert duplicate.status_code == 422
    assert "row 2, field 'date': 2026-08-03 is already given in row 1" in duplicate.json()["detail"]
    bad_kind = await client.put(url, json={"days": [{"date": "2026-08-03", "kind": "vacation"}]}, headers=write)
    assert bad_kind.status_code == 422
    assert bad_kind.json()["errors"][0]["loc"] == ["body", "days", "0", "kind"]
    too_early = await client.put(url, json={"days": [{"date": "1999-12-31", "kind": "holiday"}]}, headers=write)
    assert too_early.status_code == 422
    assert "outside 2000-2099" in too_early.json()["detail"]
    control = await client.put(url, json={"days": [{"date": "2026-08-03", "kind": "holiday", "name": "a\u0007"}]},
                               headers=write)
    assert "control characters" in control.json()["detail"]
    assert (await client.get(url, headers=write)).json()["days"] == []   # nothing half-written
    other = await client.get("/v1/parks/someone-else/dr/calendar", headers=write)
    assert other.status_code == 403
    options = await client.options(url, headers=write)
    assert (options.status_code, options.headers["allow"]) == (405, "GET, PUT")
