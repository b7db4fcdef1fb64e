"""The indicator, balance and factor endpoints and the operator's aggregate and declared-data actions, on the
real database: an API-only operator goes from a seeded meter history to carbon by source.

The park: 600 MWh of grid import, 100 MWh of rooftop PV self-consumed behind the boundary, 690 MWh on the
level-2 meters and 1 000 m³ of gas in October 2026 (广东 → 南方 grid). Expected values are those totals
times the factors of domain.md, never numbers read back from the code.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from fastapi import HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation._declared import parse_declared_csv
from aggregation._factors import default_registry
from aggregation.errors import DeclaredDataError
from api import PgKeyStore, build_app
from api._indicators import _with_park_column
from flex import DrService, MemoryRepository, ParkInfo
from infra.db import SiteRecord
from tests.aggregation._seed import Meter, create_park, seed
from tests.api.fakes import FakeSettings

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
OCT_START = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)
NOV_START = datetime(2026, 11, 1, tzinfo=SH).astimezone(UTC)
N = 31 * 96


def _meter(device: str, monthly: float, **kw: object) -> Meter:
    return Meter(device, per_interval=monthly / N, register_max=1e9, rated_power_kw=10_000, **kw)  # type: ignore[arg-type]


METERS = [
    _meter("grid-in", 600_000.0, level=1, role="park_boundary"),
    _meter("pv-roof", 100_000.0, metric="generated_energy", role="pv", site="roof"),
    _meter("ws-a", 400_000.0, level=2, site="ws-a"),
    _meter("ws-b", 290_000.0, level=2, site="ws-b"),
    _meter("gas-in", 1_000.0, metric="gas_volume", level=1, role="park_boundary"),
]


@pytest.fixture
async def api(database_url: str, db_conn: psycopg.Connection, park_id: str) -> AsyncIterator[dict]:
    create_park(db_conn, park_id, [SiteRecord("roof"), SiteRecord("ws-a"), SiteRecord("ws-b")])
    seed(db_conn, park_id, METERS, OCT_START, NOV_START)
    keys = PgKeyStore(database_url)
    ghost = f"{park_id}-ghost"                                         # in the key's scope, not in the database
    _, read_key = keys.create("Reader", [park_id, ghost])
    _, write_key = keys.create("Operator", [park_id, ghost], scopes={"read", "write"})
    repo = MemoryRepository()
    repo.add_park(ParkInfo(park_id, park_id))
    app = build_app(DrService(repo), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test",
                                 timeout=120) as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "write": {"X-API-Key": write_key},
               "ghost": ghost}


async def test_an_api_only_operator_aggregates_declares_and_reads_carbon_by_source(api: dict, park_id: str) -> None:
    client, read, write = api["client"], api["read"], api["write"]
    base = f"/v1/parks/{park_id}"

    assert (await client.post(f"{base}/aggregate", headers=read)).status_code == 403
    res = await client.post(f"{base}/aggregate", headers=write)
    assert res.status_code == 200, res.text
    run = res.json()
    assert run["n_intervals"] == len(METERS) * N                        # the park's first run: its whole history
    assert run["n_indicators"] > 0
    again = (await client.post(f"{base}/aggregate", headers=write)).json()
    assert (again["n_changes"], again["n_intervals"]) == (0, 0)         # nothing new since

    # balance: PV self-consumed behind the boundary is supply, so the loss is +10 MWh, not -90 MWh
    res = await client.get(f"{base}/balance", params={"period": "2026-10"}, headers=read)
    assert res.status_code == 200, res.text
    rows = {r["carrier"]: r for r in res.json()["rows"]}
    assert set(rows) == {"electricity"}                                 # gas has no level-2 meter
    elec = rows["electricity"]
    assert elec["unit"] == "kWh"
    assert elec["import_energy"] == pytest.approx(600_000.0, abs=1e-3)
    assert elec["generation_energy"] == pytest.approx(100_000.0, abs=1e-3)
    assert elec["supply_energy"] == pytest.approx(700_000.0, abs=1e-3)
    assert elec["level2_energy"] == pytest.approx(690_000.0, abs=1e-3)
    assert elec["difference"] == pytest.approx(10_000.0, abs=1e-3)
    assert elec["difference_pct"] == pytest.approx(100 / 70, rel=1e-9)
    assert elec["alarm"] is False
    day = (await client.get(f"{base}/balance", params={"grain": "day", "limit": 2}, headers=read)).json()
    assert [r["period"] for r in day["rows"]] == ["2026-10-31", "2026-10-30"]

    # declared economics through the API only (the CLI's CSV, park_id column optional)
    csv_body = "period,quantity,unit,source\n2026-10,12000,万元,园区管委会统计月报\n"
    url = f"{base}/declared/value-added"
    assert (await client.post(url, content=csv_body, headers=read)).status_code == 403
    res = await client.post(url, content=csv_body, headers={**write, "Content-Type": "text/csv"})
    assert res.status_code == 200, res.text
    imported = res.json()
    assert (imported["inserted"], imported["replaced"], imported["months"]) == (1, 0, ["2026-10"])
    assert imported["republished_indicator_values"] > 0
    bad = "park_id,period,quantity,unit,source\n" f"{park_id},2026-13,5,万元,x\n{park_id},2026-10,-1,万元,\n"
    res = await client.post(url, content=bad, headers=write)
    assert res.status_code == 422
    detail = res.json()["detail"]
    assert "line 2" in detail
    assert "line 3" in detail
    assert "nothing stored" in detail
    other = "park_id,period,quantity,unit,source\nsomeone-else,2026-10,5,万元,x\n"
    res = await client.post(url, content=other, headers=write)
    assert res.status_code == 422
    assert "its own URL" in res.json()["detail"]
    assert (await client.post(f"{base}/declared/no-such-kind", content=csv_body, headers=write)).status_code == 422

    # indicators: by-source rows with their factors, adding up exactly to the totals
    res = await client.get(f"{base}/indicators", params={"period": "2026-10"}, headers=read)
    assert res.status_code == 200, res.text
    doc = res.json()
    results = {(r["indicator"], r["variant"]): r for r in doc["results"] if r["subject"] == ""}
    grid = results[("co2_by_source", "location:grid_electricity")]
    assert grid["value"] == pytest.approx(600 * 0.4042, rel=1e-9)      # PV is 0 tCO2: only the import counts
    factor = grid["factors"]["grid_emission_factor.average.南方.2023"]
    assert (factor["value"], factor["unit"]) == (0.4042, "tCO2/MWh")
    assert factor["vintage"].startswith("MEE/NBS 2023")
    assert factor["source"]
    assert results[("co2_by_source", "location:natural_gas")]["value"] == pytest.approx(1_000 * 0.002165, rel=1e-9)
    for method in ("location", "market"):
        parts = [r["value"] for (i, v), r in results.items() if i == "co2_by_source" and v.startswith(method + ":")]
        assert math.fsum(parts) == results[("total_co2", method)]["value"]
    for basis, label in (("calorific", "当量值"), ("coal_equivalent", "等价值")):
        parts = [r["value"] for (i, v), r in results.items() if i == "energy_by_source" and v.startswith(basis + ":")]
        assert math.fsum(parts) == results[("total_energy", label)]["value"]
    e_cal = 700 * 0.1229 + 1_000 * 0.0012143                            # electricity consumed 700 MWh + gas
    assert results[("total_energy", "当量值")]["value"] == pytest.approx(e_cal, rel=1e-9)
    intensity = results[("energy_intensity_va", "当量值")]
    assert (intensity["status"], intensity["denominator"]) == ("ok", 12_000)
    assert intensity["value"] == pytest.approx(e_cal / 12_000, rel=1e-9)
    assert doc["declared_sources"] == ["园区管委会统计月报"]
    assert any(w.startswith("FALLBACK grid_emission_factor.average.南方.2023") for w in doc["warnings"])
    assert any(n.startswith("FALLBACK") for n in grid["notes"])
    res = await client.get(f"{base}/indicators", params={"period": "2026-13"}, headers=read)
    assert res.status_code == 422


async def test_factors_in_effect_for_the_park_and_year(api: dict, park_id: str) -> None:
    client, read = api["client"], api["read"]
    res = await client.get(f"/v1/parks/{park_id}/factors", params={"year": 2026}, headers=read)
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["region_chain"] == ["广东", "南方", "national"]
    assert doc["factors_file"].startswith("aggregation/data/factors.yaml")
    loc = next(f for f in doc["factors"] if f["use"] == "CO2 grid electricity, location-based")
    assert (loc["region"], loc["year_requested"], loc["year_used"], loc["value"]) == ("南方", 2026, 2023, 0.4042)
    assert loc["warning"].startswith("FALLBACK")
    assert loc["warning"] in doc["warnings"]
    exact = (await client.get(f"/v1/parks/{park_id}/factors", params={"year": 2022}, headers=read)).json()
    loc = next(f for f in exact["factors"] if f["use"] == "CO2 grid electricity, location-based")
    assert (loc["year_used"], loc["value"], loc["warning"]) == (2022, 0.3869, None)


async def test_unknown_parks_and_bad_parameters(api: dict, park_id: str) -> None:
    client, read, write, ghost = api["client"], api["read"], api["write"], api["ghost"]
    for path in ("indicators?period=2026-10", "balance", "factors"):
        res = await client.get(f"/v1/parks/{ghost}/{path}", headers=read)
        assert res.status_code == 404, (path, res.text)
        assert "registry" in res.json()["detail"]
    assert (await client.post(f"/v1/parks/{ghost}/aggregate", headers=write)).status_code == 404
    assert (await client.get("/v1/parks/not-mine/balance", headers=read)).status_code == 403
    res = await client.get(f"/v1/parks/{park_id}/balance", params={"period": "October"}, headers=read)
    assert res.status_code == 422
    # an empty balance is an empty list, not an error
    res = await client.get(f"/v1/parks/{park_id}/balance", headers=read)
    assert (res.status_code, res.json()["rows"]) == (200, [])


# ------------------------------------------------------------------ the declared-data CSV parser, fuzzed
_cell = st.one_of(st.sampled_from(["p1", "2026-10", "2026-Q4", "2026-10-01/2026-11-01", "12000", "-1", "nan", "1e400",
                                   "万元", "m2", "t", "kWh", "diesel", "发票", "", "x,y", '"q"', "2026-13"]),
                  st.text(max_size=12))
_line = st.lists(_cell, min_size=0, max_size=9).map(",".join)
_header = st.sampled_from(["park_id,period,quantity,unit,source", "period,quantity,unit,source,subject",
                           "park_id,period,kind,subject,quantity,unit,source,note", "quantity", ""])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_header, lines=st.lists(_line, max_size=6), command=st.sampled_from(["value-added", "fuels", "areas",
                                                                                  "declared"]))
def test_any_declared_csv_is_rows_or_a_clear_error_naming_the_line(header: str, lines: list[str],
                                                                   command: str) -> None:
    text = "\n".join([header, *lines]) + "\n"
    refused: DeclaredDataError | HTTPException | None = None
    rows = []
    try:
        rows = parse_declared_csv(_with_park_column(text, "p1"), "request body", command, default_registry())
    except (DeclaredDataError, HTTPException) as exc:              # HTTPException: another park, or not CSV
        refused = exc
    if isinstance(refused, DeclaredDataError):
        assert refused.reason
        assert refused.line == 1 or "line " in refused.reason or "no data rows" in refused.reason
    elif isinstance(refused, HTTPException):
        assert refused.status_code == 422
        assert "CSV line" in str(refused.detail) or "not valid CSV" in str(refused.detail)
    else:
        assert rows
    for r in rows:
        assert r.park_id == "p1"
        assert math.isfinite(r.quantity)
        assert r.quantity >= 0
        assert r.source
