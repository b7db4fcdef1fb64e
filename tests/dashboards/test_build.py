"""The generated dashboards: the five boards, both languages, thresholds taken from the policy data, the CLI."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from aggregation import CATALOGUE, default_policy
from dashboards import Format, Lang, PanelKind, SqlQuery, build_dashboards
from dashboards._cli import dashboards_app
from dashboards._context import build_context, load_indicator_table, values_sql
from flex import load_policy as load_dr_policy

CJK = re.compile(r"[\u4e00-\u9fff]")
BOARDS = {"pp-live", "pp-energy-carbon", "pp-targets", "pp-pue", "pp-vpp-dr", "pp-ingest-health"}


@pytest.fixture(scope="module")
def built():
    return build_dashboards([Lang.BI, Lang.ZH, Lang.EN])


def test_five_boards_in_each_language(built):
    uids = [b.uid for b in built]
    assert len(uids) == len(set(uids)) == 18
    assert {u for u in uids if not u.endswith(("-zh", "-en"))} == BOARDS
    for b in built:
        title = b.json["title"]
        if b.context.lang is Lang.EN:
            assert not CJK.search(title)
        else:
            assert CJK.search(title)
        if b.context.lang is Lang.BI:
            assert " · " in title
        assert b.json["schemaVersion"] == 41
        assert "id" not in b.json
        assert b.json["timezone"] == "Asia/Shanghai"


def test_variables_and_refresh(built):
    for b in built:
        names = [v["name"] for v in b.json["templating"]["list"]]
        assert names[0] == "park"
        assert all(v.get("allowCustomValue") is False for v in b.json["templating"]["list"] if v["type"] == "query")
    live = next(b for b in built if b.uid == "pp-live")
    assert live.json["refresh"] == "30s"
    assert [v["name"] for v in live.json["templating"]["list"]] == ["park", "building", "device"]


def test_every_query_is_scoped_to_the_park(built):
    unscoped = {(b.board.uid, p.title.en) for b in built if b.context.lang is Lang.EN for p in b.board.panels()
                for q in p.queries if isinstance(q, SqlQuery) and "${park:sqlstring}" not in q.sql}
    assert unscoped == {("pp-ingest-health", "Latest runs")}  # aggregation runs are not per park


def test_overrides_name_columns_the_queries_return(built):
    for b in (x for x in built if x.context.lang is Lang.EN):
        for panel in b.board.panels():
            columns = {c for q in panel.queries if isinstance(q, SqlQuery) for c in q.columns}
            long_format = "metric" in columns
            for override in panel.overrides:
                if panel.kind is PanelKind.TIMESERIES and (long_format or not columns):
                    continue  # series named by database values (carriers, roles) or by the API
                assert override.field in columns, f"{b.uid} {panel.title.en}: override {override.field}"


def test_time_series_queries_have_a_time_column(built):
    for b in built:
        for panel in b.board.panels():
            for q in panel.queries:
                if isinstance(q, SqlQuery) and q.format is Format.TIME_SERIES:
                    assert q.columns[0] == "time", panel.title.en
                    assert "ORDER BY 1" in q.sql, panel.title.en


def test_thresholds_come_from_the_policy_files():
    ctx = build_context(Lang.EN)
    policy = default_policy()
    edges = sorted(set(policy.pue.grade_limits) | {r.threshold for r in policy.pue.rules})
    assert edges == [1.20, 1.25, 1.30, 1.40, 1.50]
    assert [s.value for s in ctx.pue_steps] == [None, *edges]
    dr = load_dr_policy()
    assert ctx.dr_target_pct == (dr.national_target_pct_min, dr.national_target_pct_max) == (3, 5)
    # settlement bands on delivered/requested: < 50 % none, 50-80 partial, 80-120 full, >= 120 capped
    assert [(s.value, s.color) for s in ctx.dr_band_steps] == [
        (None, "red"), (50.0, "orange"), (80.0, "green"), (120.0, "blue")]


def test_table2_catalogue_and_targets():
    table = load_indicator_table()
    assert [r.row for r in table.table2] == list(range(1, 15))
    assert table.table2[8].name_zh == "公共建筑单位面积能耗"
    assert table.table2[8].unit == "MJ/m2"
    computed = {r.indicator for r in table.table2 if r.indicator}
    assert computed <= set(CATALOGUE)
    for park in table.targets.values():
        assert set(park.values) <= computed


def test_daily_co2_factors_are_the_registry_values():
    ctx = build_context(Lang.EN)
    factors = {(region, year): ef for region, year, ef in ctx.grid_factor_rows}
    assert factors[("national", 2023)] == 0.5306
    assert factors[("南方", 2023)] == 0.4042
    assert factors[("南方", 2021)] == 0.5568  # no 南方 2021 vintage: the registry falls back to national
    assert ctx.mwh_per_kwh == 0.001
    assert ctx.gas_ef_t_per_m3 == 0.002165
    assert ctx.heat_ef_t_per_gj == 0.11


def test_values_sql_quotes_and_types():
    assert values_sql("t", (("a", "text"), ("b", "double precision")), [("o'k", 1.5), (None, 2)]) == (
        "(VALUES ('o''k'::text, 1.5::double precision), (NULL::text, 2::double precision)) AS t(a, b)")
    assert values_sql("t", (("a", "text"),), []) == "(SELECT NULL::text AS a WHERE false) AS t"


def test_cli_build_writes_one_file_per_dashboard(tmp_path):
    result = CliRunner().invoke(dashboards_app, ["build", "--out", str(tmp_path), "--lang", "zh", "--lang", "en"])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 2 * len(BOARDS)
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert path.name == f"{data['uid']}.json"
    again = tmp_path / "again"
    CliRunner().invoke(dashboards_app, ["build", "--out", str(again), "--lang", "zh", "--lang", "en"])
    assert all((again / p.name).read_bytes() == p.read_bytes() for p in files)  # deterministic output


def test_every_public_name_resolves():
    import dashboards

    for name in dashboards.__all__:
        assert getattr(dashboards, name) is not None
    with pytest.raises(AttributeError):
        _ = dashboards.no_such_name
