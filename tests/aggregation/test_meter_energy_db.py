"""Per-meter energy on the real database, through the query and through `parkpulse report energy`.

A park of three meters for October (Asia/Shanghai): constant registers, one 1.5 h reading gap (estimated
linearly) and one interval flagged with a recorded meter replacement. The expectations come from the
register increments the test wrote, not from the aggregation code.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from aggregation._jobs import AggregationJob
from aggregation._meter_energy import energy_window, load_meter_energy
from aggregation._settings import AggregationSettings
from reports._cli import register_report_commands
from tests.aggregation._seed import Meter, create_park, create_series, register_rows, seed, write_readings

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)
OCT = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)
NOV = datetime(2026, 11, 1, tzinfo=SH).astimezone(UTC)
GAP = (datetime(2026, 10, 5, 10, 15, tzinfo=SH), datetime(2026, 10, 5, 11, 15, tzinfo=SH))   # readings removed
SWAP_INTERVAL = datetime(2026, 10, 14, 10, 0, tzinfo=SH).astimezone(UTC)


def build(conn: psycopg.Connection, database_url: str, park_id: str) -> dict[str, int]:
    create_park(conn, park_id)
    ids = seed(conn, park_id, [Meter("main", per_interval=41.0, level=1, role="park_boundary", rated_power_kw=4000),
                               Meter("ws", per_interval=20.0, level=2, rated_power_kw=1600),
                               Meter("gas", metric="gas_volume", per_interval=2.5, level=1)], OCT, NOV)
    office = Meter("office", per_interval=10.0, level=2, rated_power_kw=600)
    ids["office"] = create_series(conn, park_id, office)
    rows = [(t, v) for t, v in register_rows(office, OCT, NOV, Q) if not GAP[0] <= t <= GAP[1]]
    write_readings(conn, ids["office"], rows)
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0)).run()
    # a recorded meter replacement marks its interval (the meter-event code sets this bit)
    conn.execute("UPDATE interval_energy SET flags = flags | 8192 WHERE series_id = %s AND ts = %s",
                 (ids["ws"], SWAP_INTERVAL))
    return ids


def test_daily_and_monthly_energy_with_quality(database_url: str, db_conn: psycopg.Connection, park_id: str):
    build(db_conn, database_url, park_id)
    month = load_meter_energy(db_conn, park_id, "Asia/Shanghai",
                              energy_window(date(2026, 10, 1), date(2026, 11, 1), "month"))
    by_device = {r.device_id: r for r in month}
    assert sorted(by_device) == ["gas", "main", "office", "ws"]
    assert by_device["main"].energy == pytest.approx(41.0 * 31 * 96)
    assert (by_device["main"].n_intervals, by_device["main"].n_expected) == (2976, 2976)
    assert (by_device["main"].quality, by_device["main"].unit) == ("measured", "kWh")
    assert by_device["gas"].energy == pytest.approx(2.5 * 2976)
    assert (by_device["gas"].unit, by_device["gas"].carrier) == ("m3", "gas")
    # the gap: 6 intervals (10:00-11:30) rebuilt linearly from the bracketing registers, 10 kWh each
    office = by_device["office"]
    assert office.energy == pytest.approx(10.0 * 2976)
    assert office.estimated_energy == pytest.approx(60.0)
    assert office.estimated_share == pytest.approx(60.0 / (10.0 * 2976))
    assert office.quality == "estimated"
    assert "gap_linear" in office.flag_names
    assert by_device["ws"].quality == "replacement"
    assert "meter_replaced" in by_device["ws"].flag_names

    days = load_meter_energy(db_conn, park_id, "Asia/Shanghai",
                             energy_window(date(2026, 10, 4), date(2026, 10, 16), "day"), device_id="office")
    assert [r.period for r in days] == [f"2026-10-{d:02d}" for d in range(4, 16)]
    fifth = next(r for r in days if r.period == "2026-10-05")
    assert (fifth.energy, fifth.estimated_energy) == (pytest.approx(960.0), pytest.approx(60.0))
    assert all(r.quality == "measured" for r in days if r.period != "2026-10-05")
    ws = load_meter_energy(db_conn, park_id, "Asia/Shanghai",
                           energy_window(date(2026, 10, 13), date(2026, 10, 16), "day"), device_id="ws")
    assert [r.quality for r in ws] == ["measured", "replacement", "measured"]


def _cli() -> typer.Typer:
    app = typer.Typer()
    register_report_commands(app)
    return app


def test_cli_json_and_csv_keep_full_precision(database_url: str, db_conn: psycopg.Connection, park_id: str,
                                              tmp_path):
    build(db_conn, database_url, park_id)
    stored = dict(db_conn.execute("""
        SELECT d.device_id, m.energy FROM meter_rollups m JOIN series s USING (series_id) JOIN devices d
        USING (device_key) WHERE d.park_id = %s AND m.grain = 'month'""", (park_id,)).fetchall())
    runner = CliRunner()
    base = ["energy", "--park", park_id, "--from", "2026-10-01", "--to", "2026-11-01", "--grain", "month",
            "--database-url", database_url]
    result = runner.invoke(_cli(), [*base, "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["park_id"], doc["grain"], doc["from"], doc["to"]) == (park_id, "month", "2026-10-01", "2026-11-01")
    assert {r["device_id"]: r["energy"] for r in doc["rows"]} == stored        # bit-exact floats

    out = tmp_path / "energy.csv"
    result = runner.invoke(_cli(), [*base, "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["device_id"]: float(r["energy"]) for r in rows} == stored
    ws = next(r for r in rows if r["device_id"] == "ws")
    assert (ws["quality"], "meter_replaced" in ws["flag_names"].split(";")) == ("replacement", True)

    table = runner.invoke(_cli(), [*base[:-2], "--database-url", database_url], env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.output
    assert f"{41.0 * 2976:,.1f} kWh" in table.stdout                          # rounded for people

    bad = runner.invoke(_cli(), [*base[:4], "2026-10-05", *base[5:]])
    assert bad.exit_code == 1
    assert "first days of months" in bad.output
    unknown = runner.invoke(_cli(), ["energy", "--park", "no-such-park", "--from", "2026-10-01", "--to",
                                     "2026-10-02", "--database-url", database_url])
    assert unknown.exit_code == 1
    assert "parkpulse registry park list" in unknown.output
