"""虚拟电厂与需求响应 · VPP & DR: the flexibility band over the next 24 h, DR capacity as % of the annual
maximum demand (需求侧响应能力, target 3-5 %), DR events and their measured performance.

The 24-hour flexibility forecast is computed on request and never stored, so its panel reads the utility API
(``/v1/parks/{park}/flexibility/forecast``) through the Infinity datasource with a park-scoped API key; every
other panel reads the DR tables of ``schemas/sql/0003_dr.sql``.
"""

from __future__ import annotations

from dashboards._context import BuildContext
from dashboards._model import (
    Annotation,
    ApiColumn,
    ApiQuery,
    Board,
    Format,
    Override,
    Panel,
    PanelKind,
    Row,
    SqlQuery,
    Step,
)
from dashboards._text import T
from dashboards.boards._common import KW, KWH, PARK, PARK_VAR, PERCENT, custom_var
from dashboards.boards.vpp_live import live_row

TS = Format.TIME_SERIES
NEUTRAL = (Step(None, "text"),)


def _declared_duration(ctx: BuildContext) -> str:
    return (f"coalesce((SELECT st.declared_duration_h FROM dr_park_settings st WHERE st.park_id = {PARK}), "
            f"{ctx.dr_declared_duration_h!r})")


def _capacity_now(ctx: BuildContext) -> str:
    return f"""
SELECT h.declared_pct, h.verified_pct, h.declared_kw, h.verified_kw, h.annual_max_demand_kw
FROM dr_capacity_history h
WHERE h.park_id = {PARK} AND h.direction = 'up' AND h.duration_h = {_declared_duration(ctx)}
ORDER BY h.computed_at DESC
LIMIT 1"""


def _capacity_history(ctx: BuildContext) -> str:
    return f"""
SELECT h.computed_at AS time, h.declared_pct, h.verified_pct
FROM dr_capacity_history h
WHERE h.park_id = {PARK} AND h.direction = 'up' AND h.duration_h = {_declared_duration(ctx)}
  AND $__timeFilter(h.computed_at)
ORDER BY 1"""


EVENTS = f"""
SELECT e.event_id, e.start_at, e.end_at, e.direction, e.requested_kw, e.declared_kw, e.status,
       r.avg_reduction_kw, r.delivered_kwh, r.ratio_requested * 100 AS performance_pct, r.band, r.quality_ok,
       r.estimated_share_event * 100 AS estimated_share_pct, coalesce(r.baseline_method, e.baseline_method)
         AS baseline_method
FROM dr_events e LEFT JOIN dr_event_results r USING (event_id)
WHERE e.park_id = {PARK} AND e.start_at < $__timeTo() AND e.end_at > $__timeFrom()
ORDER BY e.start_at DESC"""


def _event_curves(ctx: BuildContext) -> str:
    baseline, actual = T("基线", "baseline").render(ctx.lang), T("实测", "actual").render(ctx.lang)
    return f"""
SELECT time, metric, value FROM (
  SELECT i.ts AS time, e.event_id || ' · {baseline}' AS metric, i.baseline_kw AS value
  FROM dr_event_intervals i JOIN dr_events e USING (event_id)
  WHERE e.park_id = {PARK} AND $__timeFilter(i.ts)
  UNION ALL
  SELECT i.ts, e.event_id || ' · {actual}', i.actual_kw
  FROM dr_event_intervals i JOIN dr_events e USING (event_id)
  WHERE e.park_id = {PARK} AND $__timeFilter(i.ts)) c
ORDER BY 1, 2"""


EVENT_MARKS = f"""
SELECT e.start_at AS time, e.end_at AS timeend,
       e.event_id || ' ' || e.direction || ' ' || round(e.requested_kw::numeric, 1) || ' kW' AS text,
       e.status || ',' || e.source AS tags
FROM dr_events e
WHERE e.park_id = {PARK} AND e.start_at < $__timeTo() AND e.end_at > $__timeFrom()
ORDER BY 1"""

ASSETS = f"""
SELECT a.asset_id, a.kind, a.site_id, a.device_id, a.enabled, a.state_at, a.updated_at
FROM flex_assets a
WHERE a.park_id = {PARK}
ORDER BY a.asset_id"""

FORECAST = ApiQuery(
    path="/v1/parks/${park}/flexibility/forecast", root_selector="slots",
    params=(("hours", "24"), ("duration_h", "${flex_duration}")),
    columns=(ApiColumn("slot_start", "time", "timestamp"), ApiColumn("up_kw", "up_kw", "number"),
             ApiColumn("down_kw", "down_kw", "number")))


def board(ctx: BuildContext) -> Board:
    """The VPP and DR board."""
    low, high = ctx.dr_target_pct
    target = (Step(None, "red"), Step(low, "orange"), Step(high, "green"))
    durations = tuple(f"{h:g}" for h in ctx.dr_durations_h)
    flex = Row(T("灵活性", "Flexibility"), (
        Panel(PanelKind.TIMESERIES, T("未来 24 小时灵活性区间", "Flexibility band, next 24 h"), (FORECAST,),
              description=T("上调（削峰，减少负荷）在轴上方，下调（填谷，增加负荷）在轴下方；按所选持续时长可持续的功率",
                            "Up (load reduction) above the axis, down (load increase) below; power sustainable "
                            "for the selected duration, within connection limits, derated"),
              unit=KW, width=16, height=9, time_from="+24h", fill_opacity=25, overrides=(
                  Override("up_kw", display=T("上调 削峰", "Up (reduce load)"), color="green"),
                  Override("down_kw", display=T("下调 填谷", "Down (increase load)"), color="blue",
                           negative_y=True))),
        Panel(PanelKind.STAT, T("需求侧响应能力", "DR capacity"), (SqlQuery(
            _capacity_now(ctx), ("declared_pct", "verified_pct", "declared_kw", "verified_kw", "annual_max_demand_kw"),
            nullable=("verified_pct", "verified_kw")),),
              description=T(f"占年最大 15 分钟负荷的百分比；国家目标 {low:g}–{high:g}%（申报 vs 经事件验证）",
                            f"% of the annual maximum 15-min demand; national target {low:g}-{high:g} % "
                            "(declared vs verified by event M&V)"),
              unit=PERCENT, decimals=1, steps=target, width=8, height=9, overrides=(
                  Override("declared_pct", display=T("申报", "Declared")),
                  Override("verified_pct", display=T("已验证", "Verified")),
                  Override("declared_kw", display=T("申报功率", "Declared"), unit=KW, steps=NEUTRAL),
                  Override("verified_kw", display=T("验证功率", "Verified"), unit=KW, steps=NEUTRAL),
                  Override("annual_max_demand_kw", display=T("年最大负荷", "Annual max demand"), unit=KW,
                           steps=NEUTRAL))),
    ))
    events = Row(T("需求响应事件", "DR events"), (
        Panel(PanelKind.TIMESERIES, T("DR 能力历史", "DR capacity history"),
              (SqlQuery(_capacity_history(ctx), ("time", "declared_pct", "verified_pct"), TS,
                        nullable=("verified_pct",)),),
              unit=PERCENT, steps=target, threshold_style="dashed", width=12, overrides=(
                  Override("declared_pct", display=T("申报", "Declared")),
                  Override("verified_pct", display=T("已验证", "Verified")))),
        Panel(PanelKind.TIMESERIES, T("事件基线与实测负荷", "Event baseline vs actual demand"),
              (SqlQuery(_event_curves(ctx), ("time", "metric", "value"), TS),),
              unit=KW, width=12),
        Panel(PanelKind.TABLE, T("事件与执行效果", "Events and their performance"), (SqlQuery(EVENTS, (
            "event_id", "start_at", "end_at", "direction", "requested_kw", "declared_kw", "status", "avg_reduction_kw",
            "delivered_kwh", "performance_pct", "band", "quality_ok", "estimated_share_pct", "baseline_method"),
            nullable=("declared_kw", "avg_reduction_kw", "delivered_kwh", "performance_pct", "band", "quality_ok",
                      "estimated_share_pct")),),
              description=T("执行率 = 平均削减 / 要求削减；色带为结算档位（dr_policy.yaml）",
                            "Performance = average reduction / requested; colours are the settlement bands"),
              width=24, height=9, overrides=(
                  Override("requested_kw", display=T("要求", "Requested"), unit=KW),
                  Override("declared_kw", display=T("申报", "Declared"), unit=KW),
                  Override("avg_reduction_kw", display=T("平均削减", "Average reduction"), unit=KW, decimals=1),
                  Override("delivered_kwh", display=T("削减电量", "Delivered"), unit=KWH, decimals=1),
                  Override("performance_pct", display=T("执行率", "Performance"), unit=PERCENT, decimals=0,
                           steps=ctx.dr_band_steps, cell="color-background"),
                  Override("estimated_share_pct", display=T("估算占比", "Estimated share"), unit=PERCENT,
                           decimals=1))),
    ))
    assets = Row(T("灵活性资源", "Flexible assets"), (
        Panel(PanelKind.TABLE, T("灵活性资源", "Flexible assets"), (SqlQuery(ASSETS, (
            "asset_id", "kind", "site_id", "device_id", "enabled", "state_at", "updated_at"),
            nullable=("site_id", "device_id", "state_at")),), width=24, height=6),
    ))
    return Board(
        uid="pp-vpp-dr", title=T("虚拟电厂与需求响应", "VPP and demand response"),
        description=T("灵活性预测、需求响应能力与事件评估", "Flexibility forecast, DR capacity and event M&V"),
        rows=(flex, events, live_row(ctx), assets),
        variables=(PARK_VAR, custom_var("flex_duration", T("持续时长 (h)", "Sustain duration (h)"), durations,
                                        default=f"{ctx.dr_declared_duration_h:g}")),
        time_from="now-7d", refresh="1m", tags=("vpp", "dr"),
        annotations=(Annotation(T("需求响应事件", "DR events"),
                                SqlQuery(EVENT_MARKS, ("time", "timeend", "text", "tags"), ref_id="Anno")),))
