"""The targets & 预警 dashboard: rendered in the three languages, every query run the way Grafana runs it on a
park with evaluated targets, and the panel values checked against the stored levels."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import psycopg
import pytest

from alarms._projection_store import build_report
from alarms._warning import load_warning_policy
from alarms._warning_store import evaluate_warnings
from dashboards import DEFAULT_TIMEZONE, BuiltBoard, Lang, SqlQuery
from dashboards._context import build_context
from dashboards._render import render_board
from dashboards.boards import targets
from tests.alarms.test_projection import History, _targets
from tests.dashboards.panels import frame_problems, run_board

CJK = re.compile(r"[\u4e00-\u9fff]")


def _built(lang: Lang) -> BuiltBoard:
    ctx = build_context(lang)
    board = targets.board(ctx)
    return BuiltBoard(board, ctx, render_board(board, lang, timezone=DEFAULT_TIMEZONE))


def test_board_renders_in_every_language_and_is_scoped_to_the_park():
    for lang in Lang:
        built = _built(lang)
        assert built.json["uid"] == "pp-targets" + lang.uid_suffix
        if lang is Lang.EN:
            assert not CJK.search(built.json["title"])
        for panel in built.board.panels():
            for q in panel.queries:
                assert isinstance(q, SqlQuery)
                assert "${park:sqlstring}" in q.sql


@pytest.mark.services
def test_every_query_returns_what_its_panel_reads(db_conn: psycopg.Connection, park_id: str):
    history = History()
    history.publish(db_conn, park_id)
    _targets(db_conn, park_id, energy_tce=round(history.expected_energy() * 1.02))
    policy = load_warning_policy()
    now = datetime.now(UTC)
    # evaluate as of today so the changes fall inside the board's time range, with 2026's targets and data
    report = build_report(db_conn, park_id, 2026, policy, as_of=date(2026, 7, 1))
    evaluate_warnings(db_conn, report, policy, now=now)
    for lang in Lang:
        runs = run_board(_built(lang), db_conn, park_id, now)
        problems = {r.panel.title.en: frame_problems(r) for r in runs}
        assert {title: p for title, p in problems.items() if p} == {}
        if lang is Lang.EN:
            by_title = {r.panel.title.en: r for r in runs}
            counts = dict(zip(by_title["Targets by level"].columns, by_title["Targets by level"].rows[0], strict=True))
            assert counts == {"red": 1, "yellow": 1, "green": 1}
            levels = by_title["Early warning per target"]
            rows = [dict(zip(levels.columns, r, strict=True)) for r in levels.rows]
            energy = next(r for r in rows if r["indicator"].startswith("total energy consumption"))
            assert (energy["level"], energy["severity"], energy["period"]) == ("yellow", 1, "2026")
            assert energy["ratio_pct"] == pytest.approx(100 / 1.02, rel=1e-3)
            pue = next(r for r in rows if r["subject"] == "site dc-1")
            assert (pue["level"], pue["severity"]) == ("red", 2)
            changes = by_title["Early-warning changes"]
            assert len(changes.rows) == 3
