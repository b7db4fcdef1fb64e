"""虚拟电厂实时评估 · VPP live M&V: a row of the VPP & DR board showing each event while it runs.

Events received through the VPP loop are measured live (``schemas/sql/0016_vpp_live_mv.sql``): the baseline
fixed at notification, the dispatch plan and the metered demand per interval, and delivered ÷ committed.
Events registered by hand and evaluated afterwards have no plan; for them the curves fall back to flex's
evaluation (baseline and actual demand), so every DR event of the park shows on the same panels.
"""

from __future__ import annotations

from dashboards._context import BuildContext
from dashboards._model import Format, Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import T
from dashboards.boards._common import KW, KWH, PARK, PERCENT

TS = Format.TIME_SERIES


def _curves(ctx: BuildContext) -> str:
    baseline, metered = T("基线", "baseline").render(ctx.lang), T("实测", "metered").render(ctx.lang)
    planned = T("计划", "planned").render(ctx.lang)
    return f"""
SELECT time, metric, value FROM (
  SELECT i.ts AS time, i.event_id || ' · {baseline}' AS metric, i.baseline_kw AS value
  FROM vpp_mv_intervals i JOIN vpp_mv_events m USING (event_id)
  WHERE m.park_id = {PARK} AND $__timeFilter(i.ts)
  UNION ALL
  SELECT i.ts, i.event_id || ' · {metered}', i.metered_kw
  FROM vpp_mv_intervals i JOIN vpp_mv_events m USING (event_id)
  WHERE m.park_id = {PARK} AND $__timeFilter(i.ts) AND i.metered_kw IS NOT NULL
  UNION ALL
  SELECT i.ts, i.event_id || ' · {planned}', i.baseline_kw - CASE m.direction WHEN 'up' THEN 1 ELSE -1 END
         * coalesce(i.planned_kw, m.committed_kw)
  FROM vpp_mv_intervals i JOIN vpp_mv_events m USING (event_id)
  WHERE m.park_id = {PARK} AND $__timeFilter(i.ts) AND m.status <> 'cancelled'
  UNION ALL
  SELECT i.ts, e.event_id || ' · {baseline}', i.baseline_kw
  FROM dr_event_intervals i JOIN dr_events e USING (event_id)
  WHERE e.park_id = {PARK} AND $__timeFilter(i.ts)
    AND NOT EXISTS (SELECT 1 FROM vpp_mv_events m WHERE m.event_id = e.event_id)
  UNION ALL
  SELECT i.ts, e.event_id || ' · {metered}', i.actual_kw
  FROM dr_event_intervals i JOIN dr_events e USING (event_id)
  WHERE e.park_id = {PARK} AND $__timeFilter(i.ts) AND i.actual_kw IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM vpp_mv_events m WHERE m.event_id = e.event_id)) c
ORDER BY 1, 2"""


#: Per event: committed, delivered so far, forecast and delivered ÷ committed (live M&V, else flex's result).
EVENTS = f"""
SELECT e.event_id, e.start_at, e.end_at, coalesce(m.status, e.status) AS status,
       coalesce(m.committed_kw, e.declared_kw, e.requested_kw) AS committed_kw,
       coalesce(m.avg_reduction_kw, r.avg_reduction_kw) AS avg_reduction_kw,
       coalesce(m.delivered_kwh, r.delivered_kwh) AS delivered_kwh,
       m.forecast_kwh,
       100 * coalesce(m.avg_reduction_kw, r.avg_reduction_kw)
           / nullif(coalesce(m.committed_kw, e.declared_kw, e.requested_kw), 0) AS delivered_pct,
       m.as_of
FROM dr_events e
LEFT JOIN vpp_mv_events m USING (event_id)
LEFT JOIN dr_event_results r USING (event_id)
WHERE e.park_id = {PARK} AND e.start_at < $__timeTo() AND e.end_at > $__timeFrom()
ORDER BY e.start_at DESC"""

LATEST = f"""
SELECT 100 * coalesce(m.avg_reduction_kw, r.avg_reduction_kw)
           / nullif(coalesce(m.committed_kw, e.declared_kw, e.requested_kw), 0) AS delivered_pct,
       100 * m.forecast_kwh / nullif(m.committed_kw * extract(epoch FROM e.end_at - e.start_at) / 3600, 0)
         AS forecast_pct
FROM dr_events e
LEFT JOIN vpp_mv_events m USING (event_id)
LEFT JOIN dr_event_results r USING (event_id)
WHERE e.park_id = {PARK} AND e.start_at < $__timeTo() AND e.status <> 'cancelled'
ORDER BY e.start_at DESC
LIMIT 1"""


def live_row(ctx: BuildContext) -> Row:
    """The live M&V row of the VPP & DR board."""
    steps = ctx.dr_band_steps or (Step(None, "red"), Step(80, "orange"), Step(100, "green"))
    return Row(T("事件实时评估", "Events live"), (
        Panel(PanelKind.TIMESERIES, T("基线 vs 实测 vs 计划", "Baseline vs metered vs planned"),
              (SqlQuery(_curves(ctx), ("time", "metric", "value"), TS),),
              description=T("基线在通知时固定；计划 = 基线 − 计划削减", "Baseline fixed at notification; "
                            "planned = baseline − planned reduction"),
              unit=KW, width=16, height=9),
        Panel(PanelKind.STAT, T("最近事件 完成率", "Latest event, delivered ÷ committed"),
              (SqlQuery(LATEST, ("delivered_pct", "forecast_pct"), nullable=("delivered_pct", "forecast_pct")),),
              description=T("已完成时段的平均削减 ÷ 承诺削减；预测 = 已交付 + 剩余计划 × 迄今执行率",
                            "Average reduction of the ended intervals ÷ committed; forecast = delivered + the "
                            "remaining plan × how well it has been kept"),
              unit=PERCENT, decimals=0, steps=steps, width=8, height=9, overrides=(
                  Override("delivered_pct", display=T("已交付", "Delivered")),
                  Override("forecast_pct", display=T("预测", "Forecast")))),
        Panel(PanelKind.TABLE, T("事件执行（实时）", "Events, live"), (SqlQuery(EVENTS, (
            "event_id", "start_at", "end_at", "status", "committed_kw", "avg_reduction_kw", "delivered_kwh",
            "forecast_kwh", "delivered_pct", "as_of"),
            nullable=("committed_kw", "avg_reduction_kw", "delivered_kwh", "forecast_kwh", "delivered_pct",
                      "as_of")),),
              width=24, height=7, overrides=(
                  Override("committed_kw", display=T("承诺", "Committed"), unit=KW),
                  Override("avg_reduction_kw", display=T("平均削减", "Average reduction"), unit=KW, decimals=1),
                  Override("delivered_kwh", display=T("已交付电量", "Delivered"), unit=KWH, decimals=1),
                  Override("forecast_kwh", display=T("预测电量", "Forecast"), unit=KWH, decimals=1),
                  Override("delivered_pct", display=T("完成率", "Delivered ÷ committed"), unit=PERCENT,
                           decimals=0, steps=steps, cell="color-background"))),
    ))
