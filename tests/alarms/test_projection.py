"""Projection of target quantities: method, band and back-test on simulated history; levels stored and notified.

The pure tests build monthly series with a known trend. The database tests publish two years of simulated
monthly indicators for a park of their own (``indicator_results``, as the aggregation job would), compute the
expected projection in the test from the series themselves, and compare with the report, the CLI and the
stored 预警 levels and notifications.
"""

from __future__ import annotations

import json
import math
import random
from datetime import date

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from alarms._projection import BandParams, Partial, Quantity, add_months, backtest, days_in, percentile, project
from alarms._projection_render import method_lines, to_csv, to_json
from alarms._projection_store import build_report
from alarms._targets import validate_target
from alarms._targets_cli import report_projection
from alarms._targets_store import record_targets
from alarms._warning import load_warning_policy
from alarms._warning_store import evaluate_warnings

SEASON = [100, 92, 105, 110, 124, 138, 150, 147, 126, 112, 101, 108]  # tce per month, a southern park


def _months(year: int, values: list[float]) -> dict[date, float]:
    return {date(year, i + 1, 1): v for i, v in enumerate(values)}


# ------------------------------------------------------------------------------------------------ pure
def test_same_months_last_year_scaled_by_the_ytd_trend():
    last = _months(2025, SEASON)
    this = {date(2026, m, 1): SEASON[m - 1] * 1.08 for m in range(1, 6)}
    proj = project(Quantity({**last, **this}), 2026, date(2026, 6, 1))
    expected = sum(this.values()) + sum(SEASON[m - 1] * 1.08 for m in range(6, 13))
    assert proj.value == pytest.approx(expected)
    assert proj.to_date == pytest.approx(sum(this.values()))
    assert proj.methods == {"last_year_trend": 7}
    july = proj.month(date(2026, 7, 1))
    assert july is not None
    assert (july.kind, july.value) == ("forecast", pytest.approx(150 * 1.08))
    # the trend months of 2026 forecast exactly; 2025's months (no year-ago data) use the recent daily rate
    tested = {p.month: p for p in proj.backtest.points}
    assert all(tested[date(2026, m, 1)].forecast == pytest.approx(this[date(2026, m, 1)]) for m in range(2, 6))
    assert tested[date(2025, 2, 1)].method == "recent_rate"
    assert tested[date(2025, 2, 1)].forecast == pytest.approx(100 / 31 * 28)
    assert proj.low is not None
    assert proj.high is not None
    assert proj.low <= proj.value <= proj.high


def test_january_uses_the_trailing_twelve_months_trend():
    values = {**_months(2024, SEASON), **_months(2025, [v * 1.1 for v in SEASON])}
    proj = project(Quantity(values), 2026, date(2026, 1, 1))
    assert proj.value == pytest.approx(sum(v * 1.1 * 1.1 for v in SEASON))
    assert proj.methods == {"last_year_trend": 12}


def test_without_history_the_recent_daily_rate_and_then_the_running_month():
    values = {date(2026, 3, 1): 31.0, date(2026, 4, 1): 60.0, date(2026, 5, 1): 62.0}  # 1, 2, 2 per day
    proj = project(Quantity(values), 2026, date(2026, 6, 1))
    rate = (31 + 60 + 62) / (31 + 30 + 31)
    # January and February are closed months without data: filled with the same forecast, and flagged
    assert proj.value == pytest.approx(153 + rate * (365 - 31 - 30 - 31))
    assert [p.kind for p in proj.months[:2]] == ["filled", "filled"]
    fresh = project(Quantity({}), 2026, date(2026, 6, 1), Partial(30.0, None, 0.5))
    assert fresh.methods == {"current_rate": 12}
    assert fresh.value == pytest.approx(30 / 15 * 365)
    june = fresh.month(date(2026, 6, 1))
    assert june is not None
    assert (june.kind, june.value) == ("partial", pytest.approx(60.0))
    assert project(Quantity({}), 2026, date(2026, 6, 1)).missing is not None


def test_ratios_project_numerator_and_denominator_separately():
    energy = {**_months(2025, SEASON), **{date(2026, m, 1): SEASON[m - 1] * 1.05 for m in range(1, 7)}}
    value_added = {**_months(2025, [1000.0] * 12), **{date(2026, m, 1): 1200.0 for m in range(1, 7)}}
    proj = project(Quantity(energy, value_added), 2026, date(2026, 7, 1))
    e_total = sum(energy[date(2026, m, 1)] for m in range(1, 7)) + sum(SEASON[m - 1] * 1.05 for m in range(7, 13))
    assert proj.value == pytest.approx(e_total / (1200 * 12))
    # not the mean of monthly intensities, and not last year's intensity x a trend
    assert proj.value != pytest.approx(sum(SEASON) * 1.05 / 12 / 1000)


def test_band_comes_from_the_backtest_error_spread():
    assert percentile([0.0, 1.0, 2.0, 3.0], 0.5) == pytest.approx(1.5)
    rng = random.Random(3)
    values = {add_months(date(2024, 1, 1), i): SEASON[i % 12] * (1 + rng.uniform(-0.05, 0.05)) for i in range(30)}
    bt = backtest(Quantity(values), date(2026, 7, 1))
    lo, hi, how = bt.band(BandParams())
    ratios = sorted(p.actual / p.forecast - 1 for p in bt.points)
    assert (lo, hi) == (pytest.approx(min(percentile(ratios, 0.1), 0)), pytest.approx(max(percentile(ratios, 0.9), 0)))
    assert "p10..p90" in how
    few = backtest(Quantity({date(2026, 1, 1): 31.0, date(2026, 2, 1): 33.6}), date(2026, 3, 1))
    assert few.band(BandParams())[:2] == (pytest.approx(-0.2), pytest.approx(0.2))  # 28 forecast, 20 % more came
    none = backtest(Quantity({date(2026, 1, 1): 31.0}), date(2026, 2, 1))
    assert none.n == 0
    assert none.band(BandParams(default_relative=0.2))[:2] == (-0.2, 0.2)


# ------------------------------------------------------------------------------------------------ database
pytestmark_db = pytest.mark.services

CALORIFIC = "当量值"


def _publish(conn: psycopg.Connection, park: str, month: date, indicator: str, variant: str, *, value: float | None,
             unit: str, numerator: float | None = None, denominator: float | None = None, subject: str = "",
             completeness: float = 1.0) -> None:
    conn.execute("""
        INSERT INTO indicator_results (park_id, period, subject, indicator, variant, period_start, period_end, value,
                                       unit, numerator, denominator, estimated_share, completeness, status)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, 'ok')
        ON CONFLICT (park_id, period, subject, indicator, variant) DO UPDATE SET value = EXCLUDED.value,
            numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator,
            completeness = EXCLUDED.completeness, revision = indicator_results.revision + 1""",
                 (park, f"{month:%Y-%m}", subject, indicator, variant, month, add_months(month, 1), value, unit,
                  numerator, denominator, completeness))


class History:
    """Two years of simulated monthly actuals: 2025 with seasonality and noise, 2026 to June 6 % higher."""

    def __init__(self) -> None:
        rng = random.Random(15)
        self.energy = {date(2025, m, 1): SEASON[m - 1] * (1 + rng.uniform(-0.03, 0.03)) for m in range(1, 13)}
        for m in range(1, 7):
            self.energy[date(2026, m, 1)] = self.energy[date(2025, m, 1)] * 1.06 * (1 + rng.uniform(-0.03, 0.03))
        self.value_added = {month: 1000.0 if month.year == 2025 else 1100.0 for month in self.energy}
        self.facility = {date(2026, m, 1): 135_000.0 + 1000 * m for m in range(2, 7)}  # data centre since Feb
        self.it = {m: 100_000.0 for m in self.facility}

    def publish(self, conn: psycopg.Connection, park: str) -> None:
        for month, e in self.energy.items():
            _publish(conn, park, month, "total_energy", CALORIFIC, value=e, unit="tce")
            _publish(conn, park, month, "industrial_value_added", "declared", value=self.value_added[month],
                     unit="10^4 CNY")
        for month, fac in self.facility.items():
            _publish(conn, park, month, "pue", "category 2", value=fac / self.it[month], unit="1", numerator=fac,
                     denominator=self.it[month], subject="dc-1")

    def expected_energy(self, cutoff_month: int = 7) -> float:
        ytd = [date(2026, m, 1) for m in range(1, cutoff_month)]
        trend = sum(self.energy[m] for m in ytd) / sum(self.energy[date(2025, m.month, 1)] for m in ytd)
        rest = sum(self.energy[date(2025, m, 1)] * trend for m in range(cutoff_month, 13))
        return sum(self.energy[m] for m in ytd) + rest


def _targets(conn: psycopg.Connection, park: str, energy_tce: float) -> None:
    common = {"park_id": park, "year": 2026, "source": "示范园区 实施方案 2026", "source_kind": "seed_plan"}
    record_targets(conn, [
        validate_target(indicator="total_energy", value=energy_tce, unit="tce", **common),
        validate_target(indicator="energy_intensity_va", value=0.2, unit="tce/10^4 CNY", **common),
        validate_target(indicator="pue", value=1.25, unit="1", subject_kind="site", subject="dc-1", **common),
        validate_target(indicator="total_co2", value=5000, unit="tCO2", **common),
    ], recorded_by="test", today=date(2026, 1, 5))


@pytestmark_db
def test_projection_on_simulated_history(db_conn: psycopg.Connection, park_id: str):
    history = History()
    history.publish(db_conn, park_id)
    expected = history.expected_energy()
    _targets(db_conn, park_id, energy_tce=round(expected * 1.02))
    report = build_report(db_conn, park_id, 2026, load_warning_policy(), as_of=date(2026, 7, 1))
    rows = {r.key.indicator: r for r in report.rows}

    energy = rows["total_energy"]
    assert energy.value == pytest.approx(expected)
    assert energy.ratio == pytest.approx(expected / round(expected * 1.02))
    assert energy.level == "yellow"  # 0.98 of a cap: past 0.95
    assert energy.projection is not None
    bt = energy.projection.backtest
    assert bt.n == 17  # Feb 2025 … Jun 2026, each from the months before it
    assert bt.mape is not None
    assert bt.bias is not None
    print(f"\nback-test of the projection on simulated history ({bt.n} months): MAPE {bt.mape:.2%}, "
          f"bias {bt.bias:+.2%}")
    trend_errors = [abs(p.forecast - p.actual) / p.actual for p in bt.points if p.method == "last_year_trend"]
    assert len(trend_errors) == 5
    assert max(trend_errors) < 0.09  # two ±3 % noises and a ±3 % trend error at most
    assert 0 < bt.mape < 0.15  # the seasonal 2025 months, forecast from the recent daily rate, dominate
    assert energy.low is not None
    assert energy.high is not None
    assert energy.low < energy.value < energy.high

    intensity = rows["energy_intensity_va"]
    va_trend = 1100 / 1000
    va_total = 1100 * 6 + 1000 * va_trend * 6
    assert intensity.value == pytest.approx(expected / va_total)

    pue = rows["pue"]
    rate_f = sum(history.facility[date(2026, m, 1)] for m in (4, 5, 6)) / 91
    rate_it = sum(history.it[date(2026, m, 1)] for m in (4, 5, 6)) / 91
    fac = sum(history.facility.values()) + rate_f * 184 + rate_f * 31  # Jul..Dec forecast + January filled
    it = sum(history.it.values()) + rate_it * 184 + rate_it * 31
    assert pue.value == pytest.approx(fac / it)
    assert pue.level == "red"  # ~1.39 against 1.25
    co2 = rows["total_co2"]
    assert co2.value is None
    assert co2.note is not None
    assert "no published monthly total_co2" in co2.note

    lines = method_lines(report)
    assert any(f"MAPE {bt.mape:.1%}" in line and "same month last year" in line for line in lines)
    assert json.loads(to_json(report))["rows"][0]["backtest_months"] >= 0
    assert to_csv(report).splitlines()[0].startswith("indicator,name_zh")


@pytestmark_db
def test_partial_month_and_late_data_are_in_the_next_projection(db_conn: psycopg.Connection, park_id: str):
    history = History()
    history.publish(db_conn, park_id)
    _publish(db_conn, park_id, date(2026, 7, 1), "total_energy", CALORIFIC, value=70.0, unit="tce", completeness=0.45)
    policy = load_warning_policy()
    _targets(db_conn, park_id, energy_tce=2000)
    before = build_report(db_conn, park_id, 2026, policy, as_of=date(2026, 7, 15))
    e = next(r for r in before.rows if r.key.indicator == "total_energy")
    ytd = [date(2026, m, 1) for m in range(1, 7)]
    trend = sum(history.energy[m] for m in ytd) / sum(history.energy[date(2025, m.month, 1)] for m in ytd)
    july = 70.0 + history.energy[date(2025, 7, 1)] * trend * 0.55
    rest = sum(history.energy[date(2025, m, 1)] * trend for m in range(8, 13))
    assert e.value == pytest.approx(sum(history.energy[m] for m in ytd) + july + rest)
    assert e.projection is not None
    point = e.projection.month(date(2026, 7, 1))
    assert point is not None
    assert (point.kind, point.value) == ("partial", pytest.approx(july))
    # June is restated 20 % higher by late data: the next report starts from it
    june = date(2026, 6, 1)
    _publish(db_conn, park_id, june, "total_energy", CALORIFIC, value=history.energy[june] * 1.2, unit="tce")
    after = build_report(db_conn, park_id, 2026, policy, as_of=date(2026, 7, 15))
    e2 = next(r for r in after.rows if r.key.indicator == "total_energy")
    assert e2.value is not None
    assert e.value is not None
    assert e2.value > e.value + history.energy[date(2026, 6, 1)] * 0.2


@pytestmark_db
def test_levels_are_stored_changed_with_hysteresis_and_notified(db_conn: psycopg.Connection, park_id: str):
    history = History()
    history.publish(db_conn, park_id)
    expected = history.expected_energy()
    _targets(db_conn, park_id, energy_tce=round(expected * 1.02))
    policy = load_warning_policy()

    def evaluate(day: date) -> list[tuple[str, str | None, str, str]]:
        report = build_report(db_conn, park_id, 2026, policy, as_of=day)
        changes = evaluate_warnings(db_conn, report, policy)
        return sorted((c.key.indicator, c.previous, c.level, c.reason) for c in changes)

    assert evaluate(date(2026, 7, 1)) == [("energy_intensity_va", None, "green", "first"),
                                          ("pue", None, "red", "first"), ("total_energy", None, "yellow", "first")]
    assert evaluate(date(2026, 7, 1)) == []  # same data, same day: nothing changes, nothing is sent twice
    outbox = db_conn.execute("SELECT severity, title_zh, title_en, body_en FROM notification_outbox WHERE park_id = %s "
                             "ORDER BY severity", (park_id,)).fetchall()
    assert [o[0] for o in outbox] == ["critical", "warning"]  # a first green level is not worth a message
    assert "红色预警" in outbox[0][1]
    assert "数据中心电能使用效率 PUE" in outbox[0][1]
    assert "Target warning yellow" in outbox[1][2]
    assert "back-test MAPE" in outbox[1][3]
    # late data raises June so that the year-end lands 1 % over the target: past red by less than the margin.
    # The year-end is (S26 + bump) x (1 + R25 / S25): linear in this year's YTD sum.
    june = date(2026, 6, 1)
    s26 = sum(history.energy[date(2026, m, 1)] for m in range(1, 7))
    bump = s26 * (round(expected * 1.02) * 1.01 / expected - 1)
    _publish(db_conn, park_id, june, "total_energy", CALORIFIC, value=history.energy[june] + bump, unit="tce")
    report = build_report(db_conn, park_id, 2026, policy, as_of=date(2026, 7, 2))
    energy = next(r for r in report.rows if r.key.indicator == "total_energy")
    assert energy.ratio is not None
    assert 1.0 <= energy.ratio < 1.0 + policy.margin
    assert evaluate(date(2026, 7, 2)) == []
    assert evaluate(date(2026, 7, 3)) == []
    assert evaluate(date(2026, 7, 4)) == [("total_energy", "yellow", "red", "persistence")]
    state = db_conn.execute("SELECT level, pending_level, pending_count, ratio, backtest_n FROM target_warning_states "
                            "WHERE park_id = %s AND indicator = 'total_energy'", (park_id,)).fetchone()
    assert state is not None
    assert state[:3] == ("red", None, 0)
    assert state[3] == pytest.approx(energy.ratio, rel=1e-9)
    changes = db_conn.execute("SELECT from_level, to_level, reason, notification_key FROM target_warning_changes "
                              "WHERE park_id = %s AND indicator = 'total_energy' ORDER BY change_id",
                              (park_id,)).fetchall()
    assert [(c[0], c[1], c[2]) for c in changes] == [(None, "yellow", "first"), ("yellow", "red", "persistence")]
    assert all(c[3] is not None for c in changes)
    assert db_conn.execute("SELECT count(*) FROM notification_outbox WHERE park_id = %s", (park_id,)).fetchone() == (3,)


@pytestmark_db
def test_report_projection_cli_prints_the_method_and_backtest(database_url: str, db_conn: psycopg.Connection,
                                                               park_id: str):
    history = History()
    history.publish(db_conn, park_id)
    _targets(db_conn, park_id, energy_tce=2000)
    app = typer.Typer()
    report_app = typer.Typer()
    report_app.command("projection")(report_projection)
    app.add_typer(report_app, name="report")
    runner = CliRunner()
    base = ["report", "projection", "--park", park_id, "--year", "2026", "--as-of", "2026-07-01",
            "--database-url", database_url]
    table = runner.invoke(app, base, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "综合能耗" in table.output
    assert "back-test over 17 months" in table.output
    assert "MAPE" in table.output
    assert "same month last year x this year's YTD trend" in table.output
    data = json.loads(runner.invoke(app, [*base, "--format", "json"]).stdout)
    energy = next(r for r in data["rows"] if r["indicator"] == "total_energy")
    assert energy["projected"] == pytest.approx(history.expected_energy())
    assert energy["level_source"] == "current ratio"
    assert data["data_through"] == "2026-06"
    stored = json.loads(runner.invoke(app, [*base, "--format", "json", "--evaluate"]).stdout)
    energy = next(r for r in stored["rows"] if r["indicator"] == "total_energy")
    assert (energy["level_source"], energy["level"]) == ("stored", "green")
    csv_out = runner.invoke(app, [*base, "--format", "csv"]).output
    assert csv_out.count("\n") == 1 + len(data["rows"])
    missing = runner.invoke(app, ["report", "projection", "--park", "no-such-park-y", "--database-url", database_url])
    assert missing.exit_code == 1
    assert "register it first" in missing.output


def test_days_in_month():
    assert [days_in(date(2026, m, 1)) for m in (1, 2, 12)] == [31, 28, 31]
    assert math.isclose(sum(days_in(date(2026, m, 1)) for m in range(1, 13)), 365)


@pytestmark_db
def test_demo_helpers_set_targets_once_and_print_80_columns(db_conn: psycopg.Connection, park_id: str):
    from rich.console import Console

    from alarms._targets_demo import print_projection, set_demo_targets

    History().publish(db_conn, park_id)
    first = set_demo_targets(db_conn, park_id, year=2026)
    assert [r.status for r in first] == ["created"] * 4
    assert {r.target.year for r in first} == {2026}
    assert [r.status for r in set_demo_targets(db_conn, park_id, year=2026)] == ["unchanged"] * 4
    console = Console(record=True, width=80)
    report = print_projection(db_conn, park_id, console, as_of=date(2026, 7, 1))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "total_energy" in text
    assert "MAPE" in text
    energy = next(r for r in report.rows if r.key.indicator == "total_energy")
    assert energy.stored is not None  # evaluated and stored
    assert energy.ratio == pytest.approx(History().expected_energy() / 1000)


@pytestmark_db
def test_targets_evaluate_command_and_the_all_parks_hook(database_url: str, db_conn: psycopg.Connection,
                                                          park_id: str):
    from datetime import UTC, datetime

    from alarms._targets_cli import targets_app
    from alarms._warning_store import evaluate_parks

    history = History()
    history.publish(db_conn, park_id)
    _targets(db_conn, park_id, energy_tce=round(history.expected_energy() * 1.02))
    app = typer.Typer()
    app.add_typer(targets_app, name="targets")
    out = CliRunner().invoke(app, ["targets", "evaluate", park_id, "--as-of", "2026-07-01",
                                   "--database-url", database_url])
    assert out.exit_code == 0, out.output
    assert f"{park_id}: 3 level change(s)" in out.output
    assert "total_energy (calorific) 2026 park: — → yellow (first, ratio 0.980)" in out.output
    # the hook evaluates the park's current year as of now: its targets are 2026's, so only in 2026
    now = datetime(2026, 7, 2, 4, tzinfo=UTC)
    assert evaluate_parks(db_conn, load_warning_policy(), park_ids=[park_id], now=now) == {park_id: []}
    assert evaluate_parks(db_conn, load_warning_policy(), park_ids=[park_id],
                          now=datetime(2027, 1, 5, tzinfo=UTC)) == {}
