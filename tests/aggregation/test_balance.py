"""Balance per carrier: import + on-site generation − export on the supply side vs Σ level 2, every term kept.

The synthetic parks below are built from round monthly totals (600 MWh import, 100 MWh rooftop PV …); the
expected terms are those totals, never numbers read back from the code.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import psycopg
import pytest
import typer
from typer.testing import CliRunner

from aggregation._cli import report_app
from aggregation._intervals import INTERVALS_SCHEMA
from aggregation._jobs import AggregationJob
from aggregation._rollups import META_SCHEMA, balance_check, generation_rollup, group_rollup, meter_rollup
from aggregation._settings import AggregationSettings
from infra.db import SiteRecord
from tests.aggregation._seed import Meter, create_park, seed

SH = ZoneInfo("Asia/Shanghai")
OCT_START = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)
NOV_START = datetime(2026, 11, 1, tzinfo=SH).astimezone(UTC)
N_OCT = 31 * 96                                   # 15-minute intervals in October
Q = timedelta(minutes=15)


def per_interval(monthly_kwh: float) -> float:
    return monthly_kwh / N_OCT


def _meter(device: str, monthly: float, **kw: object) -> Meter:
    return Meter(device, per_interval=per_interval(monthly), register_max=1e9, rated_power_kw=10_000,
                 **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- pure Polars
def _meta(rows: list[tuple[int, int | None, str, str, str | None]]) -> pl.DataFrame:
    """(series_id, level, carrier, metric, role) of park ``p``."""
    return pl.DataFrame([(s, "p", "Asia/Shanghai", None, lvl, car, met, role) for s, lvl, car, met, role in rows],
                        schema=META_SCHEMA, orient="row")


def _intervals(series_id: int, per: float, n: int = 96) -> pl.DataFrame:
    start = datetime(2026, 10, 4, 16, tzinfo=UTC)
    return pl.DataFrame({"series_id": [series_id] * n, "ts": [start + k * Q for k in range(n)],
                         "energy": [per] * n, "quality": [0] * n, "flags": [0] * n,
                         "estimated_share": [0.0] * n, "coverage": [1.0] * n}, schema=INTERVALS_SCHEMA)


def _day_balance(meta: pl.DataFrame, per: dict[int, float]) -> pl.DataFrame:
    iv = pl.concat([_intervals(s, v) for s, v in per.items()])
    days = meter_rollup(iv, meta, "day", 900)
    groups = pl.concat([group_rollup(days, meta), generation_rollup(days, meta)])
    return balance_check(groups, alarm_pct=5.0)


def test_pv_behind_the_boundary_is_supply_not_a_negative_loss() -> None:
    meta = _meta([(1, 1, "electricity", "active_energy_import", "park_boundary"),
                  (2, 1, "electricity", "active_energy_export", "park_boundary"),
                  (3, None, "electricity", "generated_energy", "pv"),
                  (4, 2, "electricity", "active_energy_import", None),
                  (5, 2, "electricity", "active_energy_import", None)])
    # per day: import 96 x 6 = 576, export 96 x 0.5 = 48, PV 96 x 1 = 96, level 2 96 x (3 + 3.3) = 604.8
    row = _day_balance(meta, {1: 6.0, 2: 0.5, 3: 1.0, 4: 3.0, 5: 3.3}).row(0, named=True)
    assert row["level1_energy"] == pytest.approx(576.0)
    assert row["export_energy"] == pytest.approx(48.0)
    assert row["generation_energy"] == pytest.approx(96.0)
    assert row["supply_energy"] == pytest.approx(576.0 + 96.0 - 48.0)
    assert row["level2_energy"] == pytest.approx(604.8)
    assert row["difference"] == pytest.approx(624.0 - 604.8)
    assert row["difference_pct"] == pytest.approx(19.2 / 624.0 * 100)
    assert row["unit"] == "kWh"
    assert row["alarm"] is False                    # 3.08 % < 5 %


def test_generation_behind_a_level2_meter_is_not_counted_twice() -> None:
    # the level-2 energy-station meter is bidirectional: PV at level 3 below it is already netted in it
    meta = _meta([(1, 1, "electricity", "active_energy_import", "park_boundary"),
                  (2, 2, "electricity", "active_energy_import", "workshop"),
                  (3, 2, "electricity", "active_energy_import", "energy_station"),
                  (4, 2, "electricity", "active_energy_export", "energy_station"),
                  (5, 3, "electricity", "generated_energy", "pv")])
    row = _day_balance(meta, {1: 10.0, 2: 9.0, 3: 1.0, 4: 0.5, 5: 2.0}).row(0, named=True)
    assert row["generation_energy"] == 0.0
    assert row["level2_import_energy"] == pytest.approx(960.0)
    assert row["level2_export_energy"] == pytest.approx(48.0)
    assert row["level2_energy"] == pytest.approx(912.0)
    assert row["difference"] == pytest.approx(960.0 - 912.0)


def test_chp_heat_is_heat_supply_and_each_carrier_has_its_own_row() -> None:
    meta = _meta([(1, 1, "heat", "heat_energy", "park_boundary"),
                  (2, 2, "heat", "heat_energy", "chp"),           # CHP heat output: supply, not level-2 demand
                  (3, 2, "heat", "heat_energy", "process_heat"),
                  (4, 1, "gas", "gas_volume", "park_boundary"),
                  (5, 2, "gas", "gas_volume", None)])
    bal = _day_balance(meta, {1: 0.1, 2: 0.05, 3: 0.14, 4: 2.0, 5: 1.0})
    assert bal.get_column("carrier").to_list() == ["gas", "heat"]
    heat = bal.filter(pl.col("carrier") == "heat").row(0, named=True)
    assert (heat["unit"], heat["metric"]) == ("GJ", "heat_energy")
    assert heat["generation_energy"] == pytest.approx(96 * 0.05)
    assert heat["level2_energy"] == pytest.approx(96 * 0.14)
    assert heat["difference"] == pytest.approx(96 * 0.01)
    gas = bal.filter(pl.col("carrier") == "gas").row(0, named=True)
    assert gas["difference_pct"] == pytest.approx(50.0)
    assert gas["alarm"] is True


def test_no_supply_side_but_metered_demand_is_an_alarm() -> None:
    meta = _meta([(1, 1, "electricity", "active_energy_import", "park_boundary"),
                  (2, 2, "electricity", "active_energy_import", None)])
    row = _day_balance(meta, {1: 0.0, 2: 1.0}).row(0, named=True)
    assert row["difference_pct"] is None
    assert row["alarm"] is True


# ------------------------------------------------------------------------------------ real database
PV_PARK = [
    _meter("grid-in", 600_000.0, level=1, role="park_boundary"),
    _meter("pv-roof", 100_000.0, metric="generated_energy", role="pv", site="roof"),
    _meter("ws-a", 400_000.0, level=2, site="ws-a"),
    _meter("ws-b", 290_000.0, level=2, site="ws-b"),
    _meter("pv-ws-a", 5_000.0, metric="generated_energy", level=3, role="pv", site="ws-a"),
    Meter("gas-in", metric="gas_volume", per_interval=1_000.0 / N_OCT, level=1, role="park_boundary",
          register_max=1e9),
    Meter("gas-ws-a", metric="gas_volume", per_interval=960.0 / N_OCT, level=2, site="ws-a", register_max=1e9),
]


@pytest.fixture
def pv_park(database_url: str, db_conn: psycopg.Connection, park_id: str) -> str:
    """A park with 600 MWh import, 100 MWh rooftop PV self-consumed and 690 MWh of level-2 meters in October."""
    create_park(db_conn, park_id, [SiteRecord("roof"), SiteRecord("ws-a"), SiteRecord("ws-b")])
    seed(db_conn, park_id, PV_PARK, OCT_START, NOV_START)
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0.0)).run()
    return park_id


@pytest.mark.services
def test_synthetic_pv_park_month_balance_is_persisted_with_every_term(pv_park: str,
                                                                      db_conn: psycopg.Connection) -> None:
    row = db_conn.execute("""SELECT unit, level1_energy, generation_energy, export_energy, supply_energy,
                                    level2_import_energy, level2_export_energy, level2_energy, difference,
                                    difference_pct, alarm
                             FROM balance_checks WHERE park_id = %s AND grain = 'month' AND carrier = 'electricity'
                               AND period_start = %s""", (pv_park, OCT_START)).fetchone()
    assert row is not None
    unit, imp, gen, exp, supply, l2i, l2e, l2, diff, pct, alarm = row
    assert unit == "kWh"
    assert imp == pytest.approx(600_000.0, abs=1e-3)
    assert gen == pytest.approx(100_000.0, abs=1e-3)          # the level-3 PV behind ws-a is not added
    assert exp == 0.0
    assert supply == pytest.approx(700_000.0, abs=1e-3)
    assert (l2i, l2e) == (pytest.approx(690_000.0, abs=1e-3), 0.0)
    assert l2 == pytest.approx(690_000.0, abs=1e-3)
    assert diff == pytest.approx(10_000.0, abs=1e-3)          # +10 MWh of losses, not −90 MWh
    assert pct == pytest.approx(10_000 / 700_000 * 100, abs=1e-6)   # 1.43 %
    assert alarm is False
    gas = db_conn.execute("""SELECT unit, supply_energy, level2_energy, difference_pct FROM balance_checks
                             WHERE park_id = %s AND grain = 'month' AND carrier = 'gas'""", (pv_park,)).fetchone()
    assert gas == ("m3", pytest.approx(1000.0, abs=1e-6), pytest.approx(960.0, abs=1e-6), pytest.approx(4.0))
    days = db_conn.execute("""SELECT count(*), min(difference) FROM balance_checks
                              WHERE park_id = %s AND grain = 'day' AND carrier = 'electricity'""",
                           (pv_park,)).fetchone()
    assert days is not None
    assert days[0] == 31
    assert days[1] > 0                                          # no day shows a negative loss


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(report_app, name="report")
    return app


@pytest.mark.services
def test_report_balance_prints_every_term_at_kwh_resolution(pv_park: str, database_url: str) -> None:
    runner, url = CliRunner(), ["--database-url", database_url]
    res = runner.invoke(_app(), ["report", "balance", "--park", pv_park, "--period", "2026-10", *url],
                        env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    for text in ("level-1 import", "600,000.00", "on-site generation", "100,000.00", "= supply", "700,000.00",
                 "690,000.00", "10,000.00", "1.43 %", "electricity", "gas", "m3"):
        assert text in res.output, text

    res = runner.invoke(_app(), ["report", "balance", "--park", pv_park, "--period", "2026-10", "--format",
                                 "json", *url])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    elec = next(r for r in doc["rows"] if r["carrier"] == "electricity")
    assert elec["period"] == "2026-10-01"
    assert elec["supply_energy"] == pytest.approx(700_000.0, abs=1e-3)
    # full float precision: the JSON number is the stored double, not a rounded rendering
    assert elec["difference_pct"] == pytest.approx(10_000 / 700_000 * 100, rel=1e-9)
    assert elec["difference_pct"] != round(elec["difference_pct"], 6)

    res = runner.invoke(_app(), ["report", "balance", "--park", pv_park, "--grain", "day", "--limit", "3",
                                 "--format", "csv", *url])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len({r["period"] for r in rows}) == 3
    assert {r["carrier"] for r in rows} == {"electricity", "gas"}
    day = next(r for r in rows if r["carrier"] == "electricity")
    assert float(day["supply_energy"]) == pytest.approx(700_000.0 / 31, rel=1e-9)
