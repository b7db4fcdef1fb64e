"""Static validation of the generated dashboards: ids, uids, datasource references, variables, macros."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboards import (
    DATASOURCES,
    DashboardValidationError,
    Lang,
    build_dashboards,
    check_dashboards,
    load_provisioned_datasources,
    validate_dashboards,
)

PROVISIONING = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "provisioning" / "datasources"


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return [b.json for b in build_dashboards([Lang.BI, Lang.ZH, Lang.EN])]


@pytest.fixture(scope="module")
def provisioned() -> dict[str, str]:
    return load_provisioned_datasources(PROVISIONING)


def test_provisioning_declares_the_datasources_the_boards_use(provisioned):
    assert provisioned == {ds.uid: ds.type for ds in DATASOURCES}


def test_generated_dashboards_are_valid_against_the_provisioning_files(dashboards, provisioned):
    assert len(dashboards) == 18  # 6 boards x (bilingual, zh, en)
    assert validate_dashboards(dashboards, provisioned) == []


def _first_sql_panel(dashboard: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in dashboard["panels"] if any("rawSql" in t for t in p.get("targets", [])))


def _problems(dashboards: list[dict[str, Any]], provisioned: dict[str, str],
              mutate: Callable[[dict[str, Any]], None]) -> list[str]:
    broken = copy.deepcopy(dashboards[:1])
    mutate(broken[0])
    return validate_dashboards(broken, provisioned)


def test_duplicate_panel_ids_are_reported(dashboards, provisioned):
    def mutate(d):
        d["panels"][2]["id"] = d["panels"][1]["id"]
    assert any("is used twice" in p for p in _problems(dashboards, provisioned, mutate))


def test_unknown_datasource_and_wrong_type_are_reported(dashboards, provisioned):
    def unknown(d):
        _first_sql_panel(d)["targets"][0]["datasource"] = {"type": "grafana-postgresql-datasource", "uid": "nope"}
    assert any("'nope' is not provisioned" in p for p in _problems(dashboards, provisioned, unknown))

    def wrong_type(d):
        _first_sql_panel(d)["datasource"] = {"type": "prometheus", "uid": "parkpulse-timescale"}
    assert any("not a prometheus" in p for p in _problems(dashboards, provisioned, wrong_type))


def test_undefined_and_misordered_variables_are_reported(dashboards, provisioned):
    def undefined(d):
        target = _first_sql_panel(d)["targets"][0]
        target["rawSql"] += " AND x = ${site:sqlstring}"
    assert any("undefined variable $site" in p for p in _problems(dashboards, provisioned, undefined))

    def misordered(d):
        d["templating"]["list"].reverse()  # park comes last, but building's query uses it
    assert any("defined after it" in p for p in _problems(dashboards, provisioned, misordered))


def test_unknown_macro_and_empty_sql_are_reported(dashboards, provisioned):
    def macro(d):
        _first_sql_panel(d)["targets"][0]["rawSql"] = "SELECT 1 WHERE $__timeFiltr(ts)"
    assert any("unknown macro" in p for p in _problems(dashboards, provisioned, macro))

    def empty(d):
        _first_sql_panel(d)["targets"][0]["rawSql"] = "  "
    assert any("empty rawSql" in p for p in _problems(dashboards, provisioned, empty))


def test_layout_and_uid_rules(dashboards, provisioned):
    def overlap(d):
        d["panels"][2]["gridPos"] = dict(d["panels"][1]["gridPos"])
    assert any("overlaps" in p for p in _problems(dashboards, provisioned, overlap))

    def too_wide(d):
        d["panels"][1]["gridPos"]["w"] = 30
    assert any("24-column" in p for p in _problems(dashboards, provisioned, too_wide))

    def bad_uid(d):
        d["uid"] = "park pulse/live"
    assert any("must be 1-40 characters" in p for p in _problems(dashboards, provisioned, bad_uid))

    twice = copy.deepcopy(dashboards[:2])
    twice[1]["uid"] = twice[0]["uid"]
    assert any("is used twice" in p for p in validate_dashboards(twice, provisioned))


def test_duplicate_ref_ids_are_reported(dashboards, provisioned):
    def duplicate(d):
        panel = _first_sql_panel(d)
        panel["targets"].append(copy.deepcopy(panel["targets"][0]))
    assert any("refId 'A' used twice" in p for p in _problems(dashboards, provisioned, duplicate))


def test_check_raises_with_every_problem(dashboards, provisioned):
    broken = copy.deepcopy(dashboards[:1])
    broken[0]["uid"] = "bad uid"
    broken[0]["panels"][2]["id"] = broken[0]["panels"][1]["id"]
    with pytest.raises(DashboardValidationError) as info:
        check_dashboards(broken, provisioned)
    assert len(info.value.problems) >= 2


def test_annotation_queries_are_checked(dashboards, provisioned):
    vpp = copy.deepcopy(next(d for d in dashboards if d["uid"] == "pp-vpp-dr"))
    annotations = vpp["annotations"]["list"]
    assert annotations[0]["builtIn"] == 1
    assert annotations[1]["target"]["rawSql"].startswith("SELECT e.start_at AS time, e.end_at AS timeend")
    annotations[1]["datasource"] = {"type": "grafana-postgresql-datasource", "uid": "nope"}
    annotations[1]["target"]["rawSql"] += " AND $__timeGroupp(x)"
    problems = validate_dashboards([vpp], provisioned)
    assert any("annotation" in p and "'nope' is not provisioned" in p for p in problems)
    assert any("annotation" in p and "unknown macro" in p for p in problems)
