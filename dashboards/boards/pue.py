"""数据中心 PUE · Data-centre PUE: rolling 12-month PUE (the headline), daily and monthly interim PUE and an
hourly energy-based trend, all against the grade bands of the aggregation policy (GB 40879-2021 grades
1.20 / 1.30 / 1.50 and the Shenzhen rules 1.25 / 1.40).

PUE is energy-based (ISO/IEC 30134-2): facility kWh / IT kWh from cumulative registers, never averaged kW.
"""

from __future__ import annotations

from dashboards._context import BuildContext
from dashboards._model import Board, Format, Override, Panel, PanelKind, Row, SqlQuery
from dashboards._text import T
from dashboards.boards._common import DC_VAR, IN_DC, KWH, PARK, PARK_VAR, PERCENT

TS = Format.TIME_SERIES

ROLLING = f"""
SELECT DISTINCT ON (pr.site_id) pr.site_id, pr.pue AS pue_rolling_12m,
       pr.facility_kwh / nullif(pr.it_kwh, 0) AS pue_to_date, pr.months, pr.category, pr.grade
FROM pue_results pr
WHERE pr.park_id = {PARK} AND pr.grain = 'rolling_12m' AND pr.site_id {IN_DC}
ORDER BY pr.site_id, pr.period_start DESC"""

INTERIM = f"""
SELECT pr.period_start AS time, pr.site_id || ' · ' || pr.grain AS metric, pr.pue AS value
FROM pue_results pr
WHERE pr.park_id = {PARK} AND pr.grain IN ('day', 'month') AND pr.plausible AND pr.site_id {IN_DC}
  AND $__timeFilter(pr.period_start)
ORDER BY 1, 2"""

HOURLY = f"""
SELECT time, site AS metric,
       sum(energy) FILTER (WHERE role = 'dc_facility') / nullif(sum(energy) FILTER (WHERE role = 'dc_it'), 0) AS value
FROM (
  SELECT $__timeGroup(ie.ts, $__interval) AS time, d.site_id AS site, d.role, ie.energy
  FROM interval_energy ie JOIN series s USING (series_id) JOIN devices d USING (device_key)
  WHERE d.park_id = {PARK} AND d.role IN ('dc_facility', 'dc_it') AND s.metric = 'active_energy_import'
    AND d.site_id {IN_DC} AND $__timeFilter(ie.ts)) x
GROUP BY 1, 2
ORDER BY 1, 2"""

DETAIL = f"""
SELECT pr.site_id, pr.grain, pr.period_start, pr.facility_kwh, pr.it_kwh, pr.pue, pr.months, pr.category,
       pr.plausible, pr.grade, pr.estimated_share * 100 AS estimated_share_pct
FROM pue_results pr
WHERE pr.park_id = {PARK} AND pr.site_id {IN_DC} AND $__timeFilter(pr.period_start)
ORDER BY pr.period_start DESC, pr.site_id, pr.grain
LIMIT 500"""


def _legend(ctx: BuildContext) -> T:
    rules_zh = "\n".join(f"* {label}: **{threshold:.2f}**" for label, threshold in ctx.pue_rules)
    bands = " / ".join(f"{s.value:.2f}" for s in ctx.pue_steps if s.value is not None)
    return T(
        f"**分级色带** {bands}\n\n{ctx.pue_grade_scheme}\n\n{rules_zh}\n\n"
        "滚动 12 个月为主指标；不足 12 个月时显示至今累计值。"
        "类别 1/2/3 表示 IT 电量计量点（UPS 输出 / PDU 输出 / IT 设备输入）。",
        f"**Colour bands** {bands}\n\n{ctx.pue_grade_scheme}\n\n{rules_zh}\n\n"
        "The rolling 12 months is the headline; before 12 months the value to date is shown. Category 1/2/3 = "
        "where IT energy is metered (UPS output / PDU output / IT equipment input).")


def board(ctx: BuildContext) -> Board:
    """The PUE board."""
    bands = ctx.pue_steps
    headline = Row(T("主指标", "Headline"), (
        Panel(PanelKind.GAUGE, T("滚动 12 个月 PUE", "Rolling 12-month PUE"), (
            SqlQuery(ROLLING, ("site_id", "pue_rolling_12m", "pue_to_date", "months", "category", "grade"),
                     nullable=("pue_rolling_12m", "grade")),),
              description=T("ISO/IEC 30134-2 年度 PUE；不足 12 个月时为空",
                            "Annual PUE; empty before 12 months of data"),
              min=1.0, max=2.0, decimals=3, steps=bands, all_values=True, width=8, height=7, overrides=(
                  Override("pue_to_date", hidden=True), Override("months", hidden=True),
                  Override("grade", hidden=True))),
        Panel(PanelKind.STAT, T("至今累计 PUE", "PUE to date"), (
            SqlQuery(ROLLING, ("site_id", "pue_rolling_12m", "pue_to_date", "months", "category", "grade"),
                     nullable=("pue_rolling_12m", "grade")),),
              description=T("滚动窗口内已有月份的设施电量 / IT 电量",
                            "Facility kWh / IT kWh over the months available"),
              decimals=3, steps=bands, all_values=True, width=8, height=7, overrides=(
                  Override("pue_rolling_12m", hidden=True), Override("grade", hidden=True),
                  Override("months", display=T("月数", "Months"), decimals=0, unit="none"))),
        Panel(PanelKind.TEXT, T("分级与政策阈值", "Grades and policy thresholds"), text=_legend(ctx), width=8,
              height=7),
    ))
    trends = Row(T("趋势", "Trends"), (
        Panel(PanelKind.TIMESERIES, T("日/月 PUE（期间值）", "Daily and monthly interim PUE"),
              (SqlQuery(INTERIM, ("time", "metric", "value"), TS),),
              decimals=3, steps=bands, threshold_style="line+area", interval="1d", width=12, min=1.0),
        Panel(PanelKind.TIMESERIES, T("小时 PUE（能量法）", "Hourly PUE (energy-based)"),
              (SqlQuery(HOURLY, ("time", "metric", "value"), TS),),
              description=T("15 分钟区间电量按小时汇总：设施 / IT", "15-min interval energy per hour: facility / IT"),
              decimals=3, steps=bands, threshold_style="dashed", interval="1h", width=12, min=1.0),
    ))
    detail = Row(T("明细", "Detail"), (
        Panel(PanelKind.TABLE, T("PUE 结果", "PUE results"), (SqlQuery(DETAIL, (
            "site_id", "grain", "period_start", "facility_kwh", "it_kwh", "pue", "months", "category", "plausible",
            "grade", "estimated_share_pct"), nullable=("pue", "grade")),),
              width=24, height=9, overrides=(
                  Override("facility_kwh", display=T("设施电量", "Facility energy"), unit=KWH, decimals=1),
                  Override("it_kwh", display=T("IT 电量", "IT energy"), unit=KWH, decimals=1),
                  Override("pue", display=T("PUE", "PUE"), decimals=3, steps=bands, cell="color-background"),
                  Override("plausible", display=T("可信", "Plausible")),
                  Override("estimated_share_pct", display=T("估算占比", "Estimated share"), unit=PERCENT,
                           decimals=1))),
    ))
    return Board(
        uid="pp-pue", title=T("数据中心 PUE", "Data-centre PUE"),
        description=T("滚动 12 个月与期间 PUE 及分级", "Rolling 12-month and interim PUE with grade bands"),
        rows=(headline, trends, detail), variables=(PARK_VAR, DC_VAR), time_from="now-90d", refresh="15m",
        tags=("pue",))
