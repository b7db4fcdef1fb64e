"""Static checks of rendered dashboard JSON (pure): what Grafana would reject or silently break on.

* uids: present, at most 40 characters of ``[A-Za-z0-9_-]``, unique across the set; titles unique too
  (one folder);
* panels: ids unique per dashboard (rows and nested panels included), grid positions inside the 24 columns
  and not overlapping, target ``refId`` s unique per panel;
* datasources: every panel, target and query-variable reference names a provisioned datasource uid of the
  same plugin type;
* variables: names unique; every ``$var`` / ``${var}`` / ``[[var]]`` used in queries, URLs, titles and
  variable queries is defined (built-ins start with ``__``), and a variable query only uses variables defined
  before it;
* SQL: every ``$__macro(...)`` is one Grafana knows (expanded once with a dummy range and dummy values).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import yaml

from dashboards._macros import TimeRange, render_sql
from dashboards._variables import VariableState, interpolate, referenced_variables
from dashboards.errors import DashboardValidationError, MacroError

_UID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# Grafana accepts the legacy plugin id as an alias of the PostgreSQL datasource.
_TYPE_ALIASES: Final = {"postgres": "grafana-postgresql-datasource"}
_DUMMY_RANGE: Final = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))


def _canonical_type(plugin: str) -> str:
    return _TYPE_ALIASES.get(plugin, plugin)


def load_provisioned_datasources(directory: Path) -> dict[str, str]:
    """uid → plugin type of every datasource in a Grafana provisioning directory's YAML files."""
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.y*ml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for entry in document.get("datasources", []) or []:
            found[str(entry["uid"])] = _canonical_type(str(entry["type"]))
    return found


def _panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels", []) or []:
        yield panel
        yield from panel.get("panels", []) or []


def _overlaps(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def _check_datasource(where: str, ref: Any, datasources: Mapping[str, str], problems: list[str]) -> None:
    if not isinstance(ref, Mapping):
        problems.append(f"{where}: datasource reference missing or not an object")
        return
    uid, plugin = ref.get("uid"), ref.get("type")
    if uid not in datasources:
        problems.append(f"{where}: datasource uid {uid!r} is not provisioned ({', '.join(sorted(datasources))})")
    elif plugin is not None and _canonical_type(str(plugin)) != datasources[str(uid)]:
        problems.append(f"{where}: datasource {uid!r} is a {datasources[str(uid)]}, not a {plugin}")


def _texts(panel: Mapping[str, Any]) -> Iterator[str]:
    yield str(panel.get("title", ""))
    for target in panel.get("targets", []) or []:
        for key in ("rawSql", "url"):
            if isinstance(target.get(key), str):
                yield target[key]
        for param in (target.get("url_options") or {}).get("params", []) or []:
            yield str(param.get("value", ""))


def _dummy_states(variables: Sequence[Mapping[str, Any]]) -> dict[str, VariableState]:
    return {str(v["name"]): VariableState(str(v["name"]), "x", multi=bool(v.get("multi")),
                                          include_all=bool(v.get("includeAll")), options=("x",))
            for v in variables}


def _check_variables(where: str, dashboard: Mapping[str, Any], problems: list[str]) -> dict[str, VariableState]:
    variables = (dashboard.get("templating") or {}).get("list", []) or []
    names = [str(v.get("name")) for v in variables]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"{where}: variable {name!r} is defined twice")
    for index, variable in enumerate(variables):
        query = variable.get("query")
        text = query if isinstance(query, str) else str((query or {}).get("query", ""))
        for used in sorted(referenced_variables(text)):
            if used.startswith("__"):
                continue
            if used not in names:
                problems.append(f"{where}: variable {names[index]!r} uses undefined variable ${used}")
            elif names.index(used) >= index:
                problems.append(f"{where}: variable {names[index]!r} uses ${used}, which is defined after it")
    return _dummy_states(variables)


def _check_annotations(uid: str, dashboard: Mapping[str, Any], states: Mapping[str, VariableState],
                       datasources: Mapping[str, str], problems: list[str]) -> None:
    """SQL annotations follow the rules of panel queries; Grafana's built-in one is left alone."""
    for annotation in (dashboard.get("annotations") or {}).get("list", []) or []:
        if annotation.get("builtIn"):
            continue
        target = annotation.get("target") or {}
        pseudo = {"type": "annotation", "title": annotation.get("name", ""), "datasource": annotation.get("datasource"),
                  "targets": [{**target, "datasource": annotation.get("datasource")}]}
        _check_panel(f"{uid} annotation {annotation.get('name')!r}", pseudo, states, datasources, problems)


def _check_panel(where: str, panel: Mapping[str, Any], states: Mapping[str, VariableState],
                 datasources: Mapping[str, str], problems: list[str]) -> None:
    if panel.get("type") == "row":
        return
    targets = panel.get("targets", []) or []
    if targets or "datasource" in panel:
        _check_datasource(where, panel.get("datasource"), datasources, problems)
    ref_ids = [str(t.get("refId")) for t in targets]
    for ref_id in {r for r in ref_ids if ref_ids.count(r) > 1}:
        problems.append(f"{where}: refId {ref_id!r} used twice")
    for text in _texts(panel):
        for used in sorted(referenced_variables(text)):
            if not used.startswith("__") and used not in states:
                problems.append(f"{where}: uses undefined variable ${used}")
    for target in targets:
        tw = f"{where} target {target.get('refId')}"
        _check_datasource(tw, target.get("datasource"), datasources, problems)
        if "rawSql" in target:
            if not str(target["rawSql"]).strip():
                problems.append(f"{tw}: empty rawSql")
            if target.get("format") not in ("time_series", "table"):
                problems.append(f"{tw}: format must be time_series or table, got {target.get('format')!r}")
            scoped = {"__interval": "1m", "__interval_ms": "60000", "__from": "0", "__to": "0"}
            try:
                render_sql(interpolate(str(target["rawSql"]), states, scoped), _DUMMY_RANGE,
                           int(timedelta(minutes=1).total_seconds() * 1000))
            except MacroError as exc:
                problems.append(f"{tw}: {exc}")
        elif not target.get("url"):
            problems.append(f"{tw}: neither rawSql nor url")


def validate_dashboards(dashboards: Sequence[Mapping[str, Any]], datasources: Mapping[str, str]) -> list[str]:
    """Every rule violation found in ``dashboards`` (empty when all is well)."""
    problems: list[str] = []
    datasources = {uid: _canonical_type(t) for uid, t in datasources.items()}
    uids = [str(d.get("uid", "")) for d in dashboards]
    titles = [str(d.get("title", "")) for d in dashboards]
    for uid in {u for u in uids if uids.count(u) > 1}:
        problems.append(f"dashboard uid {uid!r} is used twice")
    for title in {t for t in titles if titles.count(t) > 1}:
        problems.append(f"dashboard title {title!r} is used twice")
    for dashboard, uid in zip(dashboards, uids, strict=True):
        if not _UID_RE.match(uid):
            problems.append(f"dashboard uid {uid!r} must be 1-40 characters of A-Z a-z 0-9 _ -")
        states = _check_variables(uid, dashboard, problems)
        _check_annotations(uid, dashboard, states, datasources, problems)
        ids: list[int] = []
        boxes: list[tuple[str, Mapping[str, int]]] = []
        for panel in _panels(dashboard):
            pid = panel.get("id")
            where = f"{uid} panel {pid} {panel.get('title', '')!r}"
            if not isinstance(pid, int) or pid <= 0:
                problems.append(f"{where}: id must be a positive integer")
            else:
                ids.append(pid)
            _check_grid(where, panel.get("gridPos") or {}, boxes, problems)
            _check_panel(where, panel, states, datasources, problems)
        for pid in {i for i in ids if ids.count(i) > 1}:
            problems.append(f"{uid}: panel id {pid} is used twice")
    return problems


def _check_grid(where: str, grid: Mapping[str, Any], boxes: list[tuple[str, Mapping[str, int]]],
                problems: list[str]) -> None:
    """Inside the 24-column grid and not on top of a panel placed before."""
    if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
        problems.append(f"{where}: gridPos incomplete")
        return
    if grid["w"] < 1 or grid["h"] < 1 or grid["x"] < 0 or grid["x"] + grid["w"] > 24:
        problems.append(f"{where}: gridPos {dict(grid)} outside the 24-column grid")
    for other_where, other in boxes:
        if _overlaps(grid, other):
            problems.append(f"{where}: overlaps {other_where}")
    boxes.append((where, grid))


def check_dashboards(dashboards: Sequence[Mapping[str, Any]], datasources: Mapping[str, str]) -> None:
    """Raise :class:`DashboardValidationError` listing every problem, if there is any."""
    problems = validate_dashboards(dashboards, datasources)
    if problems:
        raise DashboardValidationError(problems)
