"""CO₂ and 综合能耗 by source: the published rows, their factors, and totals that add up exactly.

Expected values are hand arithmetic on the inputs (see tests/aggregation/test_indicators.py for the same
park): activity x the factor of domain.md, never numbers read back from the code.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation._amounts import Amount, DeclaredTotals, IndicatorInputs
from aggregation._factors import FactorRegistry, default_registry
from aggregation._indicators import IndicatorResult, compute_indicators
from aggregation._jobs import AggregationJob
from aggregation._periods import parse_period
from aggregation._policy import default_policy
from aggregation._settings import AggregationSettings
from infra.db import SiteRecord
from tests.aggregation._seed import Meter, create_park, seed

REG, POLICY = default_registry(), default_policy()


def inputs(period: str = "2026-10", **over: object) -> IndicatorInputs:
    base: dict[str, object] = dict(
        park_id="p", period=parse_period(period), province="广东",
        grid_import_kwh=Amount(100_000, 10_000), grid_export_kwh=Amount(10_000), pv_generation_kwh=Amount(30_000),
        gas_m3=Amount(10_000), heat_purchased_gj=Amount(500),
        declared=DeclaredTotals(value_added_10k_cny=5_000, fuels={"diesel": 10.0}, green_certificates=20,
                                green_trade_mwh=30, process_emissions_t=50),
    )
    base.update(over)
    return IndicatorInputs(**base)  # type: ignore[arg-type]


def rows(results: list[IndicatorResult], indicator: str, prefix: str) -> dict[str, IndicatorResult]:
    return {r.variant.removeprefix(prefix + ":"): r for r in results
            if r.indicator == indicator and r.variant.startswith(prefix + ":")}


def total(results: list[IndicatorResult], indicator: str, variant: str) -> float:
    found = [r for r in results if r.indicator == indicator and r.variant == variant]
    assert len(found) == 1
    value = found[0].value
    assert value is not None
    return value


# electricity consumed 120 MWh = 100 MWh from the grid + 20 MWh of PV self-consumed (30 generated, 10 exported)
ENERGY_CAL = {"grid_electricity": 100 * 0.1229, "onsite_electricity": 20 * 0.1229, "natural_gas": 10_000 * 0.0012143,
              "purchased_heat": 500 * 0.03412, "fuel:diesel": 10 * 1.4571}
ENERGY_EQ = {**ENERGY_CAL, "grid_electricity": 100 * 0.3007, "onsite_electricity": 20 * 0.3007}
COMMON = {"natural_gas": 10_000 * 0.002165, "fuel:diesel": 10 * 3.145, "purchased_heat": 500 * 0.11,
          "process_emissions": 50.0}
CO2_LOC = {"grid_electricity": 90 * 0.4042, **COMMON}          # 100 - 10 MWh net purchase x 南方 2023
CO2_MKT = {"grid_electricity": (90 - 50) * 0.6096, **COMMON}   # 30 MWh trades + 20 certificates off


def test_every_source_with_its_activity_and_factor() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    for indicator, prefix, unit, expected in (("co2_by_source", "location", "tCO2", CO2_LOC),
                                              ("co2_by_source", "market", "tCO2", CO2_MKT),
                                              ("energy_by_source", "calorific", "tce", ENERGY_CAL),
                                              ("energy_by_source", "coal_equivalent", "tce", ENERGY_EQ)):
        got = rows(res, indicator, prefix)
        assert set(got) == set(expected), (indicator, prefix)
        for source, value in expected.items():
            r = got[source]
            assert r.value == pytest.approx(value), (indicator, prefix, source)
            assert (r.unit, r.headline) == (unit, False)
    loc = rows(res, "co2_by_source", "location")
    assert loc["grid_electricity"].numerator == pytest.approx(90.0)            # activity, MWh
    grid = loc["grid_electricity"].factors["grid_emission_factor.average.南方.2023"]
    assert (grid["value"], grid["unit"]) == (0.4042, "tCO2/MWh")
    assert grid["vintage"].startswith("MEE/NBS 2023")
    assert grid["source"]
    mkt = rows(res, "co2_by_source", "market")["grid_electricity"].factors
    assert set(mkt) == {"grid_emission_factor.excl_market_nonfossil.national.2023",
                        "certificate_energy.green_certificate"}
    assert "fuel_emission_factor.diesel" in loc["fuel:diesel"].factors
    assert rows(res, "energy_by_source", "coal_equivalent")["grid_electricity"].factors[
        "coal_coefficient.electricity.coal_equivalent.2022"]["value"] == 0.3007
    # the estimated part of the grid import (10 MWh of 100) follows the grid line only
    assert loc["grid_electricity"].estimated_share == pytest.approx(10 / 90)


def test_sources_add_up_exactly_to_the_published_totals() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    for indicator, prefix, total_indicator, variant, expected in (
            ("co2_by_source", "location", "total_co2", "location", CO2_LOC),
            ("co2_by_source", "market", "total_co2", "market", CO2_MKT),
            ("energy_by_source", "calorific", "total_energy", "当量值", ENERGY_CAL),
            ("energy_by_source", "coal_equivalent", "total_energy", "等价值", ENERGY_EQ)):
        parts = [r.value or 0.0 for r in rows(res, indicator, prefix).values()]
        assert math.fsum(parts) == total(res, total_indicator, variant)            # exactly, not approx
        assert total(res, total_indicator, variant) == pytest.approx(sum(expected.values()))


@settings(max_examples=60, deadline=None)
@given(imp=st.floats(0, 1e7), exp=st.floats(0, 1e6), pv=st.floats(0, 1e6), gas=st.floats(0, 1e6),
       heat=st.floats(0, 1e5), heat_out=st.floats(0, 1e5), diesel=st.floats(0, 1e3), certs=st.floats(0, 1e4),
       water=st.floats(0, 1e5), est=st.floats(0, 1))
def test_by_source_rows_always_sum_to_the_totals(imp: float, exp: float, pv: float, gas: float, heat: float,
                                                 heat_out: float, diesel: float, certs: float, water: float,
                                                 est: float) -> None:
    inp = inputs(grid_import_kwh=Amount(imp, imp * est), grid_export_kwh=Amount(exp), pv_generation_kwh=Amount(pv),
                 gas_m3=Amount(gas), heat_purchased_gj=Amount(heat), water_m3=Amount(water),
                 declared=DeclaredTotals(fuels={"diesel": diesel}, green_certificates=certs, heat_exported_gj=heat_out))
    res = compute_indicators(inp, REG, POLICY.indicators)
    for indicator, prefix, total_indicator, variant in (("co2_by_source", "location", "total_co2", "location"),
                                                        ("co2_by_source", "market", "total_co2", "market"),
                                                        ("energy_by_source", "calorific", "total_energy", "当量值"),
                                                        ("energy_by_source", "coal_equivalent", "total_energy",
                                                         "等价值")):
        parts = rows(res, indicator, prefix)
        assert "grid_electricity" in parts
        value = total(res, total_indicator, variant)
        fsum = math.fsum(r.value or 0.0 for r in parts.values())
        assert value == max(fsum, 0.0)
        for r in parts.values():
            assert r.estimated_share is None or 0.0 <= r.estimated_share <= 1.0


def _registry_with(tmp_path: Path, kind: str, subject: str, value: float) -> FactorRegistry:
    raw = yaml.safe_load(Path("aggregation/data/factors.yaml").read_text(encoding="utf-8"))
    for row in raw["factors"]:
        if row["kind"] == kind and row["subject"] == subject:
            row["value"] = value
    path = tmp_path / "programme_factors.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return FactorRegistry.from_file(path)


def test_zero_emission_purchased_heat_is_accepted_and_drops_out_of_the_total(tmp_path: Path) -> None:
    waste_heat = _registry_with(tmp_path, "heat_emission_factor", "heat", 0.0)
    res = compute_indicators(inputs(), waste_heat, POLICY.indicators)
    assert rows(res, "co2_by_source", "location")["purchased_heat"].value == 0.0
    assert total(res, "total_co2", "location") == pytest.approx(sum(CO2_LOC.values()) - 55.0)
    # the heat still counts in 综合能耗: only its CO2 factor is zero
    assert rows(res, "energy_by_source", "calorific")["purchased_heat"].value == pytest.approx(17.06)


def test_a_year_beyond_the_newest_vintage_is_a_visible_fallback_note() -> None:
    res = compute_indicators(inputs("2026-10"), REG, POLICY.indicators)
    grid = rows(res, "co2_by_source", "location")["grid_electricity"]
    assert any(n.startswith("FALLBACK grid_emission_factor.average.南方.2023") and "2026" in n for n in grid.notes)
    co2 = next(r for r in res if r.indicator == "total_co2" and r.variant == "location")
    assert any(n.startswith("FALLBACK") for n in co2.notes)
    eq = next(r for r in res if r.indicator == "total_energy" and r.variant == "等价值")
    assert any("coal_coefficient.electricity.coal_equivalent.2022" in n for n in eq.notes)
    cal = next(r for r in res if r.indicator == "total_energy" and r.variant == "当量值")
    assert not any(n.startswith("FALLBACK") for n in cal.notes)      # 当量值 has no vintage
    # 2022: every dated factor has a 2022 vintage, so nothing falls back
    res_2022 = compute_indicators(inputs("2022-10"), REG, POLICY.indicators)
    assert not [n for r in res_2022 for n in r.notes if n.startswith("FALLBACK")]


# ---------------------------------------------------------------------------------- real database
SH = ZoneInfo("Asia/Shanghai")
OCT_START = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)
NOV_START = datetime(2026, 11, 1, tzinfo=SH).astimezone(UTC)
N = 31 * 96


@pytest.mark.services
def test_published_by_source_rows_sum_to_the_stored_totals(database_url: str, db_conn: psycopg.Connection,
                                                           park_id: str) -> None:
    create_park(db_conn, park_id, [SiteRecord("ws")])
    seed(db_conn, park_id, [
        Meter("grid-in", per_interval=300_000 / N, level=1, role="park_boundary", register_max=1e9),
        Meter("pv", metric="generated_energy", per_interval=40_000 / N, role="pv", register_max=1e9),
        Meter("ws", per_interval=330_000 / N, level=2, site="ws", register_max=1e9),
        Meter("gas-in", metric="gas_volume", per_interval=5_000 / N, level=1, role="park_boundary", register_max=1e9),
        Meter("heat-in", metric="heat_energy", per_interval=200 / N, level=1, role="park_boundary", register_max=1e9),
    ], OCT_START, NOV_START)
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0.0)).run()
    stored = db_conn.execute("""SELECT indicator, variant, value, unit, headline, factor_vintages
                                FROM indicator_results WHERE park_id = %s AND period = '2026-10' AND subject = ''""",
                             (park_id,)).fetchall()
    by = {(i, v): (value, unit, headline, fv) for i, v, value, unit, headline, fv in stored}
    for method in ("location", "market"):
        parts = [value for (i, v), (value, *_) in by.items() if i == "co2_by_source" and v.startswith(method + ":")]
        assert math.fsum(parts) == by[("total_co2", method)][0]
    for basis, label in (("calorific", "当量值"), ("coal_equivalent", "等价值")):
        parts = [value for (i, v), (value, *_) in by.items() if i == "energy_by_source" and v.startswith(basis + ":")]
        assert math.fsum(parts) == by[("total_energy", label)][0]
    value, unit, headline, fv = by[("co2_by_source", "location:grid_electricity")]
    assert (unit, headline) == ("tCO2", False)
    assert value == pytest.approx(300 * 0.4042, rel=1e-9)            # 300 MWh x 南方 2023
    assert fv["grid_emission_factor.average.南方.2023"]["value"] == 0.4042
    assert by[("co2_by_source", "location:natural_gas")][0] == pytest.approx(5_000 * 0.002165, rel=1e-9)
    assert by[("co2_by_source", "location:purchased_heat")][0] == pytest.approx(200 * 0.11, rel=1e-9)
    assert by[("energy_by_source", "calorific:onsite_electricity")][0] == pytest.approx(40 * 0.1229, rel=1e-9)
    assert by[("energy_by_source", "coal_equivalent:grid_electricity")][0] == pytest.approx(300 * 0.3007, rel=1e-9)


@pytest.mark.services
def test_report_indicators_shows_sources_in_every_format(database_url: str, db_conn: psycopg.Connection,
                                                         park_id: str) -> None:
    import csv
    import io
    import json

    import typer
    from typer.testing import CliRunner

    from aggregation._cli import report_app

    create_park(db_conn, park_id, [SiteRecord("ws")])
    seed(db_conn, park_id, [
        Meter("grid-in", per_interval=100_000 / N, level=1, role="park_boundary", register_max=1e9),
        Meter("ws", per_interval=95_000 / N, level=2, site="ws", register_max=1e9),
        Meter("gas-in", metric="gas_volume", per_interval=2_000 / N, level=1, role="park_boundary", register_max=1e9),
    ], OCT_START, NOV_START)
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0.0)).run()
    app = typer.Typer()
    app.add_typer(report_app, name="report")
    base = ["report", "indicators", "--park", park_id, "--period", "2026-10", "--database-url", database_url]
    runner = CliRunner()

    res = runner.invoke(app, [*base, "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    grid = next(r for r in doc["results"] if r["indicator"] == "co2_by_source"
                and r["variant"] == "market:grid_electricity")
    factor = grid["factors"]["grid_emission_factor.excl_market_nonfossil.national.2023"]
    assert (factor["value"], factor["unit"]) == (0.6096, "tCO2/MWh")
    assert grid["value"] == pytest.approx(100 * 0.6096, rel=1e-9)
    assert any(w.startswith("FALLBACK grid_emission_factor") for w in doc["warnings"])

    res = runner.invoke(app, [*base, "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = list(csv.DictReader(io.StringIO(res.output)))
    gas = next(r for r in lines if r["indicator"] == "energy_by_source" and r["variant"] == "calorific:natural_gas")
    assert float(gas["value"]) == pytest.approx(2_000 * 0.0012143, rel=1e-9)
    assert "coal_coefficient.natural_gas.calorific=0.0012143 tce/m3 [GB/T 2589-2020;" in gas["factors"]

    res = runner.invoke(app, base, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "by source" in res.output
    assert "grid_electricity" in res.output
    assert "natural_gas" in res.output
    assert f"{100 * 0.4042:,.3f}" in res.output                     # 40.420 tCO2 location-based
    assert "warning: FALLBACK" in res.output
