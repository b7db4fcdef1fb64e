"""Report endpoints on the real database: per-meter energy JSON, and monthly files whose numbers match it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openpyxl
import psycopg
import pymupdf
import pytest

from api import PgKeyStore, build_app
from flex import DrService, MemoryRepository
from reports import _labels as lbl
from tests.api.fakes import FakeSettings
from tests.reports._park import build_park
from tests.reports.conftest import cjk_font  # noqa: F401 - the font fixture of the report tests

pytestmark = pytest.mark.services


@pytest.fixture
async def api(database_url: str, park_id: str, db_conn: psycopg.Connection) -> AsyncIterator[dict]:
    """The app on the real database, a read key for the test's park, and the park's October."""
    expected = build_park(db_conn, database_url, park_id)
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Energy manager", [park_id])
    settings = FakeSettings()
    app = build_app(DrService(MemoryRepository()), keys, settings, database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "expected": expected, "settings": settings}


async def test_energy_json_is_exact_and_the_workbook_agrees(api: dict, park_id: str, db_conn: psycopg.Connection):
    client, read = api["client"], api["read"]
    response = await client.get(f"/v1/parks/{park_id}/energy",
                                params={"from": "2026-10-01", "to": "2026-11-01", "grain": "month"}, headers=read)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert (doc["from"], doc["to"], doc["grain"], doc["timezone"]) == ("2026-10-01", "2026-11-01", "month",
                                                                       "Asia/Shanghai")
    energy = {r["device_id"]: r["energy"] for r in doc["rows"]}
    stored = dict(db_conn.execute("""SELECT d.device_id, m.energy FROM meter_rollups m JOIN series s USING (series_id)
                                     JOIN devices d USING (device_key) WHERE d.park_id = %s AND m.grain = 'month'""",
                                  (park_id,)).fetchall())
    assert energy == stored                                          # full precision through JSON
    for device, kwh in api["expected"].month_kwh.items():
        assert energy[device] == pytest.approx(kwh, rel=1e-9)
    main = next(r for r in doc["rows"] if r["device_id"] == "main")
    assert (main["quality"], main["n_intervals"], main["n_expected"], main["unit"]) == ("measured", 2976, 2976, "kWh")

    days = (await client.get(f"/v1/parks/{park_id}/energy", params={"from": "2026-10-01", "to": "2026-10-08",
                                                                     "device": "office"}, headers=read)).json()
    assert [r["period"] for r in days["rows"]] == [f"2026-10-0{d}" for d in range(1, 8)]
    assert all(r["energy"] == pytest.approx(960.0) for r in days["rows"])

    xlsx = await client.get(f"/v1/parks/{park_id}/reports/monthly/2026-10.xlsx", headers=read)
    assert xlsx.status_code == 200, xlsx.text
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert f'filename="{park_id}-2026-10.xlsx"' in xlsx.headers["content-disposition"]
    ws = openpyxl.load_workbook(io.BytesIO(xlsx.content))[lbl.SHEETS["meters"]]
    rows = list(ws.iter_rows(values_only=True))
    col = rows[0].index(lbl.column("energy", "unit"))
    in_file = {r[0]: r[col] for r in rows[1:] if r[0]}
    assert set(in_file) == set(energy)
    for device, value in energy.items():
        assert in_file[device] == pytest.approx(value, rel=1e-15)


@pytest.mark.usefixtures("cjk_font")
async def test_pdf_download_and_problems(api: dict, park_id: str):
    client, read = api["client"], api["read"]
    energy = (await client.get(f"/v1/parks/{park_id}/energy", params={"from": "2026-10-01", "to": "2026-11-01",
                                                                       "grain": "month"}, headers=read)).json()
    pdf = await client.get(f"/v1/parks/{park_id}/reports/monthly/2026-10.pdf", headers=read)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(page.get_text() for page in pymupdf.open(stream=pdf.content, filetype="pdf"))
    for row in energy["rows"]:
        assert lbl.human(row["energy"], row["unit"]) in text, row["device_id"]

    base = f"/v1/parks/{park_id}"
    bad_window = await client.get(f"{base}/energy", params={"from": "2026-10-05", "to": "2026-10-01"}, headers=read)
    assert bad_window.status_code == 422
    assert "must be after from" in bad_window.json()["detail"]
    assert (await client.get(f"{base}/energy", params={"from": "2026-10-05"}, headers=read)).status_code == 422
    bad_month = await client.get(f"{base}/reports/monthly/2026-13.pdf", headers=read)
    assert bad_month.status_code == 422
    assert "01..12" in bad_month.json()["detail"]
    assert (await client.get(f"{base}/reports/monthly/2026-10.csv", headers=read)).status_code == 422
    future = await client.get(f"{base}/reports/monthly/2099-01.xlsx", headers=read)
    assert (future.status_code, "not started" in future.json()["detail"]) == (422, True)
    assert (await client.get(f"{base}/reports/monthly/2026-10.pdf")).status_code == 401
    assert (await client.get("/v1/parks/someone-else/reports/monthly/2026-10.pdf", headers=read)).status_code == 403

    api["settings"].report_font_file = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    no_font = await client.get(f"{base}/reports/monthly/2026-10.pdf", headers=read)
    assert no_font.status_code == 503
    assert "apt-get install fonts-wqy-microhei" in no_font.json()["detail"]
    assert (await client.get(f"{base}/reports/monthly/2026-10.xlsx", headers=read)).status_code == 200
