"""Run dashboard queries the way Grafana does: variables resolved by their own queries, browser-side
interpolation, ``$__interval`` from the panel's range and width, server-side macro expansion, then the
database. Checks the result the way Grafana's SQL datasource would read it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from dashboards import (
    BuiltBoard,
    Format,
    SqlQuery,
    TimeRange,
    VariableState,
    calculate_interval_ms,
    dashboard_range,
    format_interval,
    interpolate,
    panel_range,
    render_sql,
    state_from_rows,
)
from dashboards._model import Panel, PanelKind, VariableKind

DATASOURCE_TIME_INTERVAL = "15s"  # deploy/grafana/provisioning/datasources: jsonData.timeInterval
SCREEN_WIDTH_PX = 1920  # a panel's max data points default to its width in pixels


@dataclass(frozen=True)
class QueryRun:
    """One executed panel query."""

    panel: Panel
    query: SqlQuery
    sql: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _scoped(rng: TimeRange, interval_ms: int) -> dict[str, str]:
    return {"__interval": format_interval(interval_ms), "__interval_ms": str(interval_ms),
            "__from": str(int(rng.start.timestamp() * 1000)), "__to": str(int(rng.end.timestamp() * 1000))}


def resolve_variables(built: BuiltBoard, conn: psycopg.Connection, park_id: str, now: dt.datetime
                      ) -> dict[str, VariableState]:
    """Every variable's state as Grafana would load it: ``park`` selected, the others on "All" or default."""
    rng = dashboard_range(built.board.time_from, now)
    states: dict[str, VariableState] = {}
    for variable in built.board.variables:
        if variable.kind is VariableKind.CUSTOM:
            states[variable.name] = VariableState(variable.name, variable.default or variable.values[0],
                                                  options=variable.values)
            continue
        sql = render_sql(interpolate(variable.query, states, _scoped(rng, 60_000)), rng, 60_000)
        cur = conn.execute(sql)
        columns = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
        current = park_id if variable.name == "park" else None
        state = state_from_rows(variable.name, rows, columns, multi=variable.multi,
                                include_all=variable.include_all, all_value=variable.all_value, current=current)
        if variable.name == "park":
            assert park_id in state.options, "the park variable must list the test park"
        states[variable.name] = state
    return states


def run_board(built: BuiltBoard, conn: psycopg.Connection, park_id: str, now: dt.datetime) -> list[QueryRun]:
    """Execute every SQL query of every panel of ``built`` for ``park_id`` at ``now``."""
    states = resolve_variables(built, conn, park_id, now)
    dash_range = dashboard_range(built.board.time_from, now)
    targets = {(p["title"], t["refId"]): t for p in built.json["panels"] for t in p.get("targets", [])}
    runs = []
    for panel in built.board.panels():
        rng = panel_range(panel.time_from, dash_range, now)
        width_px = round(panel.width / 24 * SCREEN_WIDTH_PX)
        interval_ms = calculate_interval_ms(rng, panel.max_data_points or width_px,
                                            panel.interval or DATASOURCE_TIME_INTERVAL)
        for query in panel.queries:
            if not isinstance(query, SqlQuery):
                continue
            raw = targets[(panel.title.render(built.context.lang), query.ref_id)]["rawSql"]
            assert raw == query.sql.strip(), "the JSON must carry the spec's SQL"
            sql = render_sql(interpolate(raw, states, _scoped(rng, interval_ms)), rng, interval_ms)
            cur = conn.execute(sql)
            runs.append(QueryRun(panel, query, sql, [d.name for d in cur.description or ()], cur.fetchall()))
    annotations = {a["name"]: a for a in built.json["annotations"]["list"] if not a.get("builtIn")}
    interval_ms = calculate_interval_ms(dash_range, SCREEN_WIDTH_PX, DATASOURCE_TIME_INTERVAL)
    for annotation in built.board.annotations:
        raw = annotations[annotation.name.render(built.context.lang)]["target"]["rawSql"]
        assert raw == annotation.query.sql.strip()
        sql = render_sql(interpolate(raw, states, _scoped(dash_range, interval_ms)), dash_range, interval_ms)
        cur = conn.execute(sql)
        pseudo = Panel(PanelKind.TABLE, annotation.name, (annotation.query,))
        runs.append(QueryRun(pseudo, annotation.query, sql, [d.name for d in cur.description or ()], cur.fetchall()))
    return runs


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def frame_problems(run: QueryRun) -> list[str]:
    """What Grafana would fail on or show empty for this result (empty list: fine)."""
    q, problems = run.query, []
    if run.columns != list(q.columns):
        problems.append(f"columns {run.columns} != expected {list(q.columns)}")
        return problems
    if not run.rows:
        return ["no rows"]
    for index, name in enumerate(run.columns):
        if name not in q.nullable and all(row[index] is None for row in run.rows):
            problems.append(f"column {name} is NULL in every row")
    if q.format is Format.TIME_SERIES:
        t = run.columns.index("time")
        times = [row[t] for row in run.rows]
        if any(not isinstance(v, dt.datetime) for v in times):
            problems.append("time column has NULLs or non-timestamps")
        elif times != sorted(times):
            problems.append("rows are not sorted by time (Grafana's long-to-wide conversion rejects that)")
        for index, name in enumerate(run.columns):
            if name == "time":
                continue
            values = [row[index] for row in run.rows if row[index] is not None]
            if name == "metric" and not all(isinstance(v, str) for v in values):
                problems.append("metric column must be text")
            elif name != "metric" and not all(_is_number(v) for v in values):
                problems.append(f"value column {name} is not numeric")
    return problems
