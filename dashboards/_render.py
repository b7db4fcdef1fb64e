"""Render a :class:`~dashboards._model.Board` into Grafana dashboard JSON with grafana-foundation-sdk.

The SDK (``grafana-foundation-sdk``, Grafana 11.6 flavour) supplies the typed builders; it has no SQL query
builder, so :class:`SqlTarget` and :class:`InfinityTarget` are small ``Dataquery`` variants of our own.
Panel ids are numbered in layout order; positions come from the SDK's left-to-right packing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from grafana_foundation_sdk.builders import barchart, bargauge, gauge, stat, table, text, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    Dashboard,
    DashboardLink,
    FieldColor,
    QueryVariable,
    ThresholdsConfig,
    TimePicker,
)
from grafana_foundation_sdk.builders.dashboard import Row as RowBuilder
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.text import TextMode

from dashboards._model import (
    Annotation,
    ApiQuery,
    Board,
    Datasource,
    Override,
    Panel,
    PanelKind,
    Query,
    SqlQuery,
    Step,
    Variable,
    VariableKind,
)
from dashboards._text import Lang

REFRESH_INTERVALS: Final = ["10s", "30s", "1m", "5m", "15m", "1h"]
# Grafana's own annotations (alerts, manual notes), kept next to the boards' SQL annotations.
BUILTIN_ANNOTATION: Final = {
    "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
}
TAG: Final = "parkpulse"

AnyPanelBuilder = (timeseries.Panel | stat.Panel | gauge.Panel | table.Panel | barchart.Panel | bargauge.Panel
                   | text.Panel)


def ref(ds: Datasource) -> model.DataSourceRef:
    """The SDK reference to a provisioned datasource."""
    return model.DataSourceRef(type_val=ds.type, uid=ds.uid)


class _Target(cogvariants.Dataquery):
    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def to_json(self) -> dict[str, Any]:
        return self.payload


class SqlTarget(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw-SQL target of the PostgreSQL datasource (``rawSql``, ``format``, code editor)."""

    def __init__(self, query: SqlQuery) -> None:
        self._target = _Target(self.payload_of(query))

    @property
    def payload(self) -> dict[str, Any]:
        """The target as Grafana stores it."""
        return self._target.payload

    @staticmethod
    def payload_of(query: SqlQuery) -> dict[str, Any]:
        """Grafana's JSON of one SQL target."""
        return {
            "refId": query.ref_id, "datasource": ref(query.datasource).to_json(), "rawSql": query.sql.strip(),
            "format": query.format.value, "rawQuery": True, "editorMode": "code", "hide": query.hide,
        }

    def build(self) -> cogvariants.Dataquery:
        """The target."""
        return self._target


class InfinityTarget(cogbuilder.Builder[cogvariants.Dataquery]):
    """A JSON target of the Infinity datasource, parsed on the backend (so alerting and caching work)."""

    def __init__(self, query: ApiQuery) -> None:
        self._target = _Target({
            "refId": query.ref_id, "datasource": ref(query.datasource).to_json(), "type": "json",
            "source": "url", "parser": "backend", "format": query.format, "url": query.path,
            "url_options": {"method": "GET", "data": "",
                            "params": [{"key": k, "value": v} for k, v in query.params]},
            "root_selector": query.root_selector,
            "columns": [{"selector": c.selector, "text": c.text, "type": c.type} for c in query.columns],
            "filters": [],
        })

    def build(self) -> cogvariants.Dataquery:
        """The target."""
        return self._target


def _target(query: Query) -> cogbuilder.Builder[cogvariants.Dataquery]:
    return SqlTarget(query) if isinstance(query, SqlQuery) else InfinityTarget(query)


def _thresholds(steps: tuple[Step, ...]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=s.value, color=s.color) for s in steps])


def _override_properties(o: Override, lang: Lang) -> list[model.DynamicConfigValue]:
    props: list[model.DynamicConfigValue] = []
    if o.display is not None:
        props.append(model.DynamicConfigValue(id_val="displayName", value=o.display.render(lang)))
    if o.unit is not None:
        props.append(model.DynamicConfigValue(id_val="unit", value=o.unit))
    if o.decimals is not None:
        props.append(model.DynamicConfigValue(id_val="decimals", value=o.decimals))
    if o.color is not None:
        props.append(model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": o.color}))
    if o.steps:
        props.append(model.DynamicConfigValue(id_val="thresholds", value=_thresholds(o.steps).build().to_json()))
        props.append(model.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}))
    if o.cell is not None:
        props.append(model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": o.cell}))
    if o.hidden:
        props.append(model.DynamicConfigValue(id_val="custom.hidden", value=True))
    if o.negative_y:
        props.append(model.DynamicConfigValue(id_val="custom.transform", value="negative-Y"))
    return props


def _reduce(panel: Panel) -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs([panel.reducer]).values(panel.all_values)


def _timeseries(panel: Panel, lang: Lang) -> timeseries.Panel:
    ts = timeseries.Panel().line_width(1).show_points(common.VisibilityMode.NEVER)
    ts = ts.fill_opacity(panel.fill_opacity if panel.fill_opacity is not None else (80 if panel.bars else 10))
    if panel.bars:
        ts = ts.draw_style(common.GraphDrawStyle.BARS)
    if panel.stacked:
        ts = ts.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if panel.threshold_style:
        ts = ts.thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(
            common.GraphThresholdsStyleMode(panel.threshold_style)))
    return ts.legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True))


def _stat(panel: Panel, lang: Lang) -> stat.Panel:
    return (stat.Panel().reduce_options(_reduce(panel)).color_mode(common.BigValueColorMode.VALUE)
            .graph_mode(common.BigValueGraphMode.NONE).text_mode(common.BigValueTextMode.VALUE_AND_NAME))


def _gauge(panel: Panel, lang: Lang) -> gauge.Panel:
    return gauge.Panel().reduce_options(_reduce(panel)).show_threshold_markers(True).show_threshold_labels(True)


def _bargauge(panel: Panel, lang: Lang) -> bargauge.Panel:
    return bargauge.Panel().reduce_options(_reduce(panel)).display_mode(common.BarGaugeDisplayMode.GRADIENT)


def _table(panel: Panel, lang: Lang) -> table.Panel:
    tb = table.Panel().filterable(True)
    if panel.sort_by:
        tb = tb.sort_by([common_builders.TableSortByFieldState().display_name(panel.sort_by).desc(True)])
    return tb


def _barchart(panel: Panel, lang: Lang) -> barchart.Panel:
    bc = barchart.Panel().show_value(common.VisibilityMode.AUTO).fill_opacity(80)
    if panel.x_field:
        bc = bc.x_field(panel.x_field)
    if panel.stacked:
        bc = bc.stacking(common.StackingMode.NORMAL)
    return bc


def _text(panel: Panel, lang: Lang) -> text.Panel:
    return text.Panel().mode(TextMode.MARKDOWN).content(panel.text.render(lang) if panel.text else "")


_KINDS: Final[dict[PanelKind, Callable[[Panel, Lang], AnyPanelBuilder]]] = {
    PanelKind.TIMESERIES: _timeseries, PanelKind.STAT: _stat, PanelKind.GAUGE: _gauge,
    PanelKind.BARGAUGE: _bargauge, PanelKind.TABLE: _table, PanelKind.BARCHART: _barchart, PanelKind.TEXT: _text,
}


def _field_defaults(pb: AnyPanelBuilder, panel: Panel) -> AnyPanelBuilder:
    """Unit, decimals, range and thresholds of every field."""
    if panel.unit:
        pb = pb.unit(panel.unit)
    if panel.decimals is not None:
        pb = pb.decimals(panel.decimals)
    if panel.min is not None:
        pb = pb.min(panel.min)
    if panel.max is not None:
        pb = pb.max(panel.max)
    if panel.steps:
        pb = pb.thresholds(_thresholds(panel.steps))
        if panel.kind in (PanelKind.STAT, PanelKind.GAUGE, PanelKind.BARGAUGE):
            pb = pb.color_scheme(FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
    return pb


def panel_builder(panel: Panel, lang: Lang, panel_id: int) -> AnyPanelBuilder:
    """The complete SDK builder of one panel."""
    pb = _KINDS[panel.kind](panel, lang).id(panel_id).title(panel.title.render(lang)).span(panel.width)
    pb = _field_defaults(pb.height(panel.height), panel)
    if panel.description is not None:
        pb = pb.description(panel.description.render(lang))
    if panel.datasource is not None:
        pb = pb.datasource(ref(panel.datasource))
    for query in panel.queries:
        pb = pb.with_target(_target(query))
    if panel.interval:
        pb = pb.interval(panel.interval)
    if panel.max_data_points:
        pb = pb.max_data_points(panel.max_data_points)
    if panel.time_from:
        pb = pb.time_from(panel.time_from)
    for o in panel.overrides:
        pb = pb.override_by_name(o.field, _override_properties(o, lang))
    return pb


def variable_builder(variable: Variable, lang: Lang) -> QueryVariable | CustomVariable:
    """The SDK builder of one template variable."""
    label = variable.label.render(lang)
    if variable.kind is VariableKind.CUSTOM:
        cv = CustomVariable(variable.name).label(label).values(",".join(variable.values)).multi(variable.multi)
        first = variable.default or variable.values[0]
        cv = cv.current(model.VariableOption(selected=True, text=first, value=first))
        return cv.include_all(variable.include_all)
    if variable.datasource is None:
        raise ValueError(f"query variable {variable.name} has no datasource")
    qv = (QueryVariable(variable.name).label(label).datasource(ref(variable.datasource)).allow_custom_value(False)
          .query(variable.query.strip()).multi(variable.multi).include_all(variable.include_all)
          .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED if variable.refresh_on_time_range
                   else model.VariableRefresh.ON_DASHBOARD_LOAD)
          .sort(model.VariableSort.DISABLED))
    if variable.description is not None:
        qv = qv.description(variable.description.render(lang))
    if variable.all_value is not None:
        qv = qv.all_value(variable.all_value)
    if variable.include_all:
        qv = qv.current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    return qv


def render_board(board: Board, lang: Lang, *, timezone: str) -> dict[str, Any]:
    """Grafana dashboard JSON (a dict) for ``board`` in ``lang``; ``timezone`` is the dashboard time zone."""
    db = (Dashboard(board.title.render(lang)).uid(board.uid + lang.uid_suffix)
          .description(board.description.render(lang)).tags([TAG, *board.tags, f"lang-{lang.value}"])
          .timezone(timezone).time(board.time_from, "now").tooltip(model.DashboardCursorSync.CROSSHAIR)
          .timepicker(TimePicker().refresh_intervals(REFRESH_INTERVALS)).editable()
          .link(DashboardLink("ParkPulse").type(model.DashboardLinkType.DASHBOARDS).tags([TAG, f"lang-{lang.value}"])
                .as_dropdown(True).include_vars(True).keep_time(True)))
    if board.refresh:
        db = db.refresh(board.refresh)
    for variable in board.variables:
        db = db.with_variable(variable_builder(variable, lang))
    panel_id = 0
    for row in board.rows:
        panel_id += 1
        db = db.with_row(RowBuilder(row.title.render(lang)).id(panel_id).collapsed(False))
        for panel in row.panels:
            panel_id += 1
            db = db.with_panel(panel_builder(panel, lang, panel_id))
    rendered: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(db.build()))
    rendered.pop("id", None)  # provisioning assigns database ids
    # The SDK's annotation target is the built-in one; SQL annotations carry the same target as a panel query.
    rendered["annotations"] = {"list": [BUILTIN_ANNOTATION, *(annotation_json(a, lang) for a in board.annotations)]}
    return rendered


def annotation_json(annotation: Annotation, lang: Lang) -> dict[str, Any]:
    """One SQL annotation query (Grafana's annotation model for SQL datasources)."""
    return {"datasource": ref(annotation.query.datasource).to_json(), "enable": True, "hide": False,
            "iconColor": annotation.color, "name": annotation.name.render(lang),
            "target": SqlTarget(annotation.query).payload}
