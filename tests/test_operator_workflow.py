"""An energy manager's month, from an empty database to the monthly report files: once only through the
CLI, once only through the API (issue 12's "done when").

Both runs take the same files (tests/fixtures/operator_park.py): a registry file, a CSV meter history in
which meter ``ws-b`` was swapped mid-month, the swap as a meter event, and the month's declared value
added. The expected energies come from the generator's power profiles, not from the aggregation code; the
carbon figures are recomputed here from those energies and the factor each result row says it used.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pymupdf
import pytest

from tests.fixtures.fonts import cjk_font  # noqa: F401  (fixture)
from tests.fixtures.operator_park import (
    NEW_METER_INITIAL_KWH,
    PERIOD,
    VALUE_ADDED_1E4_CNY,
    OperatorPark,
    build_operator_park,
)

pytestmark = pytest.mark.services

PARK = "binjiang"
SWAP_DAY = "2026-10-14"
REL = 1e-9


def _parkpulse() -> str:
    exe = Path(sys.executable).with_name("parkpulse")
    return str(exe) if exe.exists() else shutil.which("parkpulse") or "parkpulse"


class Cli:
    """Runs ``parkpulse`` the way the operator does: a new process per command, settings from the env."""

    def __init__(self, database_url: str) -> None:
        self.env = {**os.environ, "PARKPULSE_DATABASE_URL": database_url, "COLUMNS": "160", "NO_COLOR": "1"}

    def __call__(self, *args: str) -> str:
        done = subprocess.run([_parkpulse(), *args], env=self.env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, f"parkpulse {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--format", "json"))


# --- independent expectations ------------------------------------------------------------------------


def _check_energy(month_rows: list[dict[str, Any]], swap_day_rows: list[dict[str, Any]], park: OperatorPark) -> None:
    by_key = {f"{r['device_id']}/{r['metric']}": r for r in month_rows}
    assert set(by_key) == set(park.energy_kwh)
    for key, expected in park.energy_kwh.items():
        assert by_key[key]["energy"] == pytest.approx(expected, rel=REL), key
        assert by_key[key]["estimated_share"] == 0, key
    assert by_key["ws-b/active_energy_import"]["quality"] == "replacement"
    assert by_key["ws-a/active_energy_import"]["quality"] == "measured"
    (day,) = swap_day_rows
    assert day["period"] == SWAP_DAY
    assert day["energy"] == pytest.approx(park.daily_ws_b_kwh[SWAP_DAY], rel=REL)
    assert day["quality"] == "replacement"
    assert "meter_replaced" in day["flag_names"]


def _check_balance(row: dict[str, Any], park: OperatorPark) -> None:
    imp = park.energy_kwh["grid-in/active_energy_import"]
    gen = park.energy_kwh["pv-roof/generated_energy"]
    exp = park.export_kwh
    level2 = park.energy_kwh["ws-a/active_energy_import"] + park.energy_kwh["ws-b/active_energy_import"]
    assert row["carrier"] == "electricity"
    assert row["import_energy"] == pytest.approx(imp, rel=REL)
    assert row["generation_energy"] == pytest.approx(gen, rel=REL)
    assert row["export_energy"] == pytest.approx(exp, rel=REL)
    assert row["level2_energy"] == pytest.approx(level2, rel=REL)
    assert row["difference"] == pytest.approx(imp + gen - exp - level2, rel=1e-6)
    assert row["difference"] > 0     # PV behind the boundary no longer shows as a negative loss
    assert row["difference_pct"] == pytest.approx(100 * (imp + gen - exp - level2) / (imp + gen - exp), rel=1e-6)


def _factor(row: dict[str, Any]) -> float:
    (factor,) = row["factors"].values()
    assert factor["vintage"], f"{row['variant']} names no factor vintage"
    return float(factor["value"])


def _check_carbon(rows: list[dict[str, Any]], park: OperatorPark) -> None:
    by = {(r["indicator"], r["variant"]): r for r in rows}
    activity = {"grid_electricity": (park.energy_kwh["grid-in/active_energy_import"] - park.export_kwh) / 1000,
                "natural_gas": park.energy_kwh["gas-main/gas_volume"],
                "purchased_heat": park.energy_kwh["heat-in/heat_energy"]}
    for method in ("location", "market"):
        total = 0.0
        for source, amount in activity.items():
            row = by[("co2_by_source", f"{method}:{source}")]
            assert row["value"] == pytest.approx(amount * _factor(row), rel=1e-9), f"{method}:{source}"
            total += row["value"]
        assert by[("total_co2", method)]["value"] == pytest.approx(total, rel=1e-9)
        assert by[("co2_intensity_va", method)]["value"] == pytest.approx(total / VALUE_ADDED_1E4_CNY, rel=1e-9)
    sources = {v.split(":", 1)[1] for (ind, v) in by if ind == "energy_by_source"}
    assert {"grid_electricity", "natural_gas", "purchased_heat"} <= sources


def _check_workbook(content: bytes, park: OperatorPark, ws_b_month_kwh: float, total_co2_t: float) -> None:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for c in row
             if c is not None]
    numbers = [c for c in cells if isinstance(c, int | float)]
    assert any(c == pytest.approx(ws_b_month_kwh, rel=1e-12) for c in numbers), "ws-b's month energy is missing"
    assert any(c == pytest.approx(total_co2_t, rel=1e-12) for c in numbers), "the CO2 total is missing"
    assert any(c == pytest.approx(park.energy_kwh["pv-roof/generated_energy"], rel=REL) for c in numbers)
    texts = " ".join(str(c) for c in cells)
    for needle in ("ws-b", "replacement", "二氧化碳"):
        assert needle in texts, needle


def _check_pdf(content: bytes, out_png: Path) -> None:
    doc = pymupdf.open(stream=content, filetype="pdf")
    text = "".join(page.get_text() for page in doc)
    for needle in ("月度报告", "Monthly", "ws-b", "replacement", "分来源", "Energy balance", "supply"):
        assert needle in text, needle
    pix = doc[0].get_pixmap(dpi=60)
    pix.save(out_png)
    assert pix.width > 300
    assert out_png.stat().st_size > 10_000


# --- the CLI path --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("cjk_font")
def test_empty_database_to_monthly_report_with_the_cli_only(scratch_database_url: str, tmp_path: Path) -> None:
    park = build_operator_park(PARK)
    files = park.write(tmp_path)
    cli = Cli(scratch_database_url)

    cli("db", "migrate")
    assert "devices: 6 created" in cli("registry", "import", str(files["registry"]))
    assert "20,839 stored" in cli("import", "readings", str(files["readings"]), "--park", PARK)
    cli("import", "value-added", str(files["value_added"]))
    cli("aggregate")
    before = cli.json("report", "energy", "--park", PARK, "--from", SWAP_DAY, "--to", "2026-10-15",
                      "--device", "ws-b")["rows"]
    assert before[0]["quality"] == "estimated"      # the swap looks like a reset until it is recorded

    assert "recorded event" in cli("meter-event", "import", str(files["events"]), "--park", PARK)
    listed = cli.json("meter-event", "list", PARK)
    assert listed[0]["kind"] == "replacement"
    assert listed[0]["new_initial"] == NEW_METER_INITIAL_KWH
    reports_dir = tmp_path / "reports"
    written = cli("aggregate", "--reports-dir", str(reports_dir))
    assert f"{PARK}-{PERIOD}.xlsx" in written
    assert f"{PARK}-{PERIOD}.pdf" in written

    month = cli.json("report", "energy", "--park", PARK, "--from", "2026-10-01", "--to", "2026-11-01",
                     "--grain", "month")["rows"]
    swap_day = cli.json("report", "energy", "--park", PARK, "--from", SWAP_DAY, "--to", "2026-10-15",
                        "--device", "ws-b")["rows"]
    _check_energy(month, swap_day, park)
    (balance,) = cli.json("report", "balance", "--park", PARK, "--period", PERIOD)["rows"]
    _check_balance(balance, park)
    indicators = cli.json("report", "indicators", "--park", PARK, "--period", PERIOD)["results"]
    _check_carbon(indicators, park)
    assert "FALLBACK" in cli("report", "factors", "--park", PARK, "--year", "2026")

    ws_b = next(r["energy"] for r in month if r["device_id"] == "ws-b")
    total = next(r["value"] for r in indicators if (r["indicator"], r["variant"]) == ("total_co2", "location"))
    cli("report", "monthly", "--park", PARK, "--period", PERIOD, "--format", "xlsx", "-o", str(tmp_path / "m.xlsx"))
    cli("report", "monthly", "--park", PARK, "--period", PERIOD, "--format", "pdf", "-o", str(tmp_path / "m.pdf"))
    for path in (tmp_path / "m.xlsx", reports_dir / f"{PARK}-{PERIOD}.xlsx"):
        _check_workbook(path.read_bytes(), park, ws_b, total)
    for path in (tmp_path / "m.pdf", reports_dir / f"{PARK}-{PERIOD}.pdf"):
        _check_pdf(path.read_bytes(), tmp_path / f"{path.stem}.png")


# --- the API path --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_server(scratch_database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Deployment, done once by an administrator: schema, one operator key, and ``parkpulse api`` running.

    Everything after this goes through HTTP.
    """
    cli = Cli(scratch_database_url)
    cli("db", "migrate")
    out = cli("api-keys", "create", "park operator", "--park", PARK, "--scope", "write")
    match = re.search(r"pp_[A-Za-z0-9_\-]+", out)
    assert match, out
    port = _free_port()
    env = {**cli.env, "PARKPULSE_API_PORT": str(port), "PARKPULSE_API_HOST": "127.0.0.1"}
    log_path = tmp_path / "api.log"
    log = log_path.open("wb")
    server = subprocess.Popen([_parkpulse(), "api"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, f"parkpulse api exited: {log_path.read_text()}"
            assert time.monotonic() < deadline, "parkpulse api did not start within 60 s"
            time.sleep(0.3)
        yield base, match.group(0)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.usefixtures("cjk_font")
def test_empty_database_to_monthly_report_with_the_api_only(api_server: tuple[str, str], tmp_path: Path) -> None:
    base, key = api_server
    park = build_operator_park(PARK)
    with httpx.Client(base_url=f"{base}/v1/parks/{PARK}", headers={"X-API-Key": key}, timeout=300) as api:
        _run_month_through_the_api(api, park, tmp_path)


def _run_month_through_the_api(api: httpx.Client, park: OperatorPark, tmp_path: Path) -> None:

    def ok(response: httpx.Response) -> Any:
        assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
        return response.json() if "json" in response.headers.get("content-type", "") else response.content

    ok(api.post("/registry/import", content=park.registry_yaml.encode(),
                headers={"Content-Type": "application/yaml"}))
    assert ok(api.get("/devices"))
    csv_body = {"Content-Type": "text/csv"}
    imported = ok(api.post("/readings/import", content=park.readings_csv.encode(), headers=csv_body))
    assert imported["stored"] == 20_839
    assert imported["rejected_rows"] == 0
    ok(api.post("/declared/value-added", content=park.value_added_csv.encode(), headers={"Content-Type": "text/csv"}))
    ok(api.post("/aggregate"))
    ok(api.post("/meter-events/import", content=park.events_csv.encode(), headers={"Content-Type": "text/csv"}))
    events = ok(api.get("/meter-events"))
    assert events
    ok(api.post("/aggregate"))

    month = ok(api.get("/energy", params={"from": "2026-10-01", "to": "2026-11-01", "grain": "month"}))["rows"]
    swap_day = ok(api.get("/energy", params={"from": SWAP_DAY, "to": "2026-10-15", "device": "ws-b"}))["rows"]
    _check_energy(month, swap_day, park)
    (balance,) = ok(api.get("/balance", params={"period": PERIOD}))["rows"]
    _check_balance(balance, park)
    indicators = ok(api.get("/indicators", params={"period": PERIOD}))["results"]
    _check_carbon(indicators, park)
    factors = ok(api.get("/factors", params={"year": 2026}))
    assert "FALLBACK" in json.dumps(factors, ensure_ascii=False)

    ws_b = next(r["energy"] for r in month if r["device_id"] == "ws-b")
    total = next(r["value"] for r in indicators if (r["indicator"], r["variant"]) == ("total_co2", "location"))
    _check_workbook(ok(api.get(f"/reports/monthly/{PERIOD}.xlsx")), park, ws_b, total)
    _check_pdf(ok(api.get(f"/reports/monthly/{PERIOD}.pdf")), tmp_path / "api.png")
