"""End to end: simulator payloads → ingest's validation and store → aggregate → declared import → report CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from aggregation._cli import aggregate, register_import_commands, report_app
from aggregation._indicators import CATALOGUE
from infra.db import upsert_park
from ingest import Batch, ReadingStore
from simulators import DEFAULT_SCENARIO, load_scenario, publish_simulation

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")


class _Collect:
    """A simulator sink that keeps every message (the MQTT hop is ingest's own tests' business)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        self.messages.append((topic, payload))


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("aggregate")(aggregate)
    app.add_typer(report_app, name="report")
    imports = typer.Typer()
    register_import_commands(imports)
    app.add_typer(imports, name="import")
    return app


async def _simulate_and_ingest(database_url: str, park_id: str) -> None:
    scenario = load_scenario(DEFAULT_SCENARIO).with_overrides(park_id=park_id, sample_interval_s=300)
    with psycopg.connect(database_url, autocommit=True) as conn:
        upsert_park(conn, scenario.park_record(), scenario.site_records())
    sink = _Collect()
    now = datetime(2026, 10, 3, tzinfo=SH).astimezone(UTC)      # two whole local days: 1 and 2 October
    await publish_simulation(scenario, sink, duration="2d", speed=0, seed=7, now=now)
    store = ReadingStore(database_url)
    try:
        for i in range(0, len(sink.messages), 500):
            batch = Batch()
            for topic, payload in sink.messages[i:i + 500]:
                batch.add(topic, payload, received_at=datetime.now(UTC), ack=None)
            await store.write(batch)
    finally:
        await store.close()


async def test_simulated_park_to_indicator_report(database_url: str, db_conn: psycopg.Connection, park_id: str,
                                                  tmp_path: Path) -> None:
    await _simulate_and_ingest(database_url, park_id)
    runner = CliRunner()
    app = _cli()
    url = ["--database-url", database_url]
    res = runner.invoke(app, ["aggregate", "--rebuild", "--park", park_id, *url])
    assert res.exit_code == 0, res.output

    # the interval energy of the boundary meter sums to its register delta over the window
    sums = db_conn.execute("""
        SELECT (SELECT sum(energy) FROM interval_energy WHERE series_id = s.series_id),
               (SELECT max(value) - min(value) FROM readings WHERE series_id = s.series_id),
               (SELECT count(*) FROM interval_energy WHERE series_id = s.series_id)
        FROM series s JOIN devices d USING (device_key)
        WHERE d.park_id = %s AND d.device_id = 'm1-boundary' AND s.metric = 'active_energy_import'""",
                           (park_id,)).fetchone()
    assert sums is not None
    assert sums[0] == pytest.approx(sums[1], rel=1e-9)
    assert sums[2] == 2 * 96

    va = tmp_path / "value_added.csv"
    va.write_text("park_id,period,quantity,unit,source\n"
                  f"{park_id},2026-10,12000,万元,园区管委会统计月报\n", encoding="utf-8")
    res = runner.invoke(app, ["import", "value-added", str(va), *url])
    assert res.exit_code == 0, res.output
    assert "1 new" in res.output

    res = runner.invoke(app, ["report", "indicators", "--park", park_id, "--period", "2026-10", "--format", "json",
                              *url])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["timezone"] == "Asia/Shanghai"
    assert doc["declared_sources"] == ["园区管委会统计月报"]
    by_key = {(r["indicator"], r["variant"], r["subject"]): r for r in doc["results"]}
    reported = {r["indicator"] for r in doc["results"]}
    assert set(CATALOGUE) <= reported
    for r in doc["results"]:
        assert r["unit"]
        assert r["status"] in {"ok", "missing_input", "no_data", "data_error"}
    ei = by_key[("energy_intensity_va", "当量值", "")]
    assert ei["status"] == "ok"
    assert ei["value"] == pytest.approx(ei["numerator"] / 12000)
    assert ei["factor_vintages"]["coal_coefficient.electricity.calorific"] == "GB/T 2589-2020"
    co2 = by_key[("co2_intensity_va", "location", "")]
    assert co2["factor_vintages"]["grid_emission_factor.average.南方.2023"].startswith("MEE/NBS 2023")
    assert co2["estimated_share"] is not None
    pue = by_key[("pue", "category unknown", "data-centre")]
    assert 1.2 < pue["value"] < 1.6                       # the scenario's data centre runs at PUE 1.30-1.45
    assert doc["metered_completeness"] is not None

    res = runner.invoke(app, ["report", "indicators", "--park", park_id, "--period", "2026-10", "--format", "csv",
                              "--basis", "coal_equivalent", *url])
    assert res.exit_code == 0, res.output
    header, *lines = res.output.splitlines()
    assert header.startswith("park_id,period,")
    assert any(",energy_intensity_va,单位工业增加值综合能耗,等价值,True," in line for line in lines)

    wide = {"COLUMNS": "250"}
    res = runner.invoke(app, ["report", "indicators", "--park", park_id, "--period", "2026-Q4", *url], env=wide)
    assert res.exit_code == 0, res.output
    assert "单位工业增加值二氧化碳排放量" in res.output

    res = runner.invoke(app, ["report", "balance", "--park", park_id, "--grain", "day", *url], env=wide)
    assert res.exit_code == 0, res.output
    assert "active_energy_import" in res.output


def test_declared_import_rejects_bad_files_and_versions_changes(database_url: str, db_conn: psycopg.Connection,
                                                                park_id: str, tmp_path: Path) -> None:
    upsert_park(db_conn, load_scenario(DEFAULT_SCENARIO).with_overrides(park_id=park_id).park_record(), [])
    runner, app, url = CliRunner(), _cli(), ["--database-url", database_url]
    f = tmp_path / "areas.csv"
    f.write_text("park_id,period,kind,subject,quantity,unit,source\n"
                 f"{park_id},2026-01-01,roof_new_total,,10000,m2,规划许可\n"
                 f"{park_id},2026-01-01,roof_new_pv,,3000,m2,竣工验收\n", encoding="utf-8")
    assert runner.invoke(app, ["import", "areas", str(f), "--no-recompute", *url]).exit_code == 0
    f.write_text("park_id,period,kind,subject,quantity,unit,source\n"
                 f"{park_id},2026-01-01,roof_new_pv,,4000,m2,竣工验收(更正)\n", encoding="utf-8")
    res = runner.invoke(app, ["import", "areas", str(f), "--no-recompute", *url])
    assert "1 replaced" in res.output, res.output
    hist = db_conn.execute("SELECT quantity, source FROM declared_inputs_history WHERE park_id = %s",
                           (park_id,)).fetchall()
    assert hist == [(3000.0, "竣工验收")]
    bad = tmp_path / "bad.csv"
    bad.write_text("park_id,period,subject,quantity,unit,source\n"
                   f"{park_id},2026-10,diesel,5,kg,发票\n", encoding="utf-8")
    res = runner.invoke(app, ["import", "fuels", str(bad), *url])
    assert res.exit_code == 1
    assert "line 2" in res.output
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("park_id,period,quantity,unit,source\nno-such-park,2026-10,1,万元,x\n", encoding="utf-8")
    assert runner.invoke(app, ["import", "value-added", str(unknown), *url]).exit_code == 1


def test_factor_registry_listing() -> None:
    res = CliRunner().invoke(_cli(), ["report", "factors", "--kind", "grid_emission_factor"],
                             env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    assert "grid_emission_factor.average.南方.2023" in res.output
    assert "coal_coefficient" not in res.output
