"""用能与碳排放 · Energy & carbon: daily and monthly energy and CO₂, and the pilot-park indicators of
seed 001 表2 against the park's 2025 / 2030 targets.

Published numbers (monthly CO₂, indicators) come from ``indicator_results`` (aggregation). The daily CO₂ panel
is an estimate labelled as such: level-1 daily energy x the factor registry's factors (location-based grid
average by province → grid region → national, the year's latest vintage), rendered into the SQL at build time.
"""

from __future__ import annotations

from dashboards._context import BuildContext, values_sql
from dashboards._model import Board, Format, Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import T
from dashboards.boards._common import BUILDING_VAR, GJ, IN_BUILDING, KWH, M3, PARK, PARK_VAR, PERCENT, TCO2

TS = Format.TIME_SERIES


def _energy_by_carrier(grain: str) -> str:
    return f"""
SELECT g.period_start AS time,
  sum(g.energy) FILTER (WHERE g.carrier = 'electricity' AND g.metric = 'active_energy_import') AS electricity_kwh,
  sum(g.energy) FILTER (WHERE g.carrier = 'gas' AND g.metric = 'gas_volume') AS gas_m3,
  sum(g.energy) FILTER (WHERE g.carrier = 'heat' AND g.metric = 'heat_energy') AS heat_gj
FROM group_rollups g
WHERE g.park_id = {PARK} AND g.grain = '{grain}' AND g.dimension = 'park' AND g.member = ''
  AND $__timeFilter(g.period_start)
GROUP BY 1
ORDER BY 1"""


DAILY_BY_BUILDING = f"""
SELECT g.period_start AS time, g.member AS metric, g.energy AS value
FROM group_rollups g
WHERE g.park_id = {PARK} AND g.grain = 'day' AND g.dimension = 'site' AND g.carrier = 'electricity'
  AND g.metric = 'active_energy_import' AND g.member {IN_BUILDING} AND $__timeFilter(g.period_start)
ORDER BY 1, 2"""

MONTHLY_CO2 = f"""
SELECT ir.period_start::timestamp AT TIME ZONE p.timezone AS time, ir.variant AS metric, ir.value AS value
FROM indicator_results ir JOIN parks p USING (park_id)
WHERE ir.park_id = {PARK} AND ir.indicator = 'total_co2' AND ir.subject = '' AND ir.period ~ '^[0-9]{{4}}-[0-9]{{2}}$'
  AND $__timeFilter(ir.period_start::timestamp AT TIME ZONE p.timezone)
ORDER BY 1, 2"""

CARBON_PER_ENERGY = f"""
SELECT DISTINCT ON (ir.park_id) ir.period, ir.value AS carbon_per_energy, ir.variant
FROM indicator_results ir
WHERE ir.park_id = {PARK} AND ir.indicator = 'carbon_per_energy' AND ir.headline AND ir.subject = ''
ORDER BY ir.park_id, ir.period_end DESC, ir.period DESC"""


def _daily_co2(ctx: BuildContext) -> str:
    factors = values_sql("f", (("region", "text"), ("year", "int"), ("ef", "double precision")), ctx.grid_factor_rows)
    first, last = ctx.grid_factor_years
    return f"""
WITH f AS (SELECT * FROM {factors}),
days AS (
  SELECT g.period_start,
    sum(g.energy) FILTER (WHERE g.carrier = 'electricity' AND g.metric = 'active_energy_import') AS import_kwh,
    sum(g.energy) FILTER (WHERE g.carrier = 'electricity' AND g.metric = 'active_energy_export') AS export_kwh,
    sum(g.energy) FILTER (WHERE g.carrier = 'gas' AND g.metric = 'gas_volume') AS gas_m3,
    sum(g.energy) FILTER (WHERE g.carrier = 'heat' AND g.metric = 'heat_energy') AS heat_gj
  FROM group_rollups g
  WHERE g.park_id = {PARK} AND g.grain = 'day' AND g.dimension = 'level' AND g.member = '1'
    AND $__timeFilter(g.period_start)
  GROUP BY 1)
SELECT days.period_start AS time,
  greatest(coalesce(days.import_kwh, 0) - coalesce(days.export_kwh, 0), 0) * {ctx.mwh_per_kwh!r} * coalesce(
    (SELECT f.ef FROM f WHERE f.region = p.province AND f.year = y.year),
    (SELECT f.ef FROM f WHERE f.region = p.grid_region AND f.year = y.year),
    (SELECT f.ef FROM f WHERE f.region = 'national' AND f.year = y.year)) AS electricity_tco2,
  coalesce(days.gas_m3, 0) * {ctx.gas_ef_t_per_m3!r} AS gas_tco2,
  coalesce(days.heat_gj, 0) * {ctx.heat_ef_t_per_gj!r} AS heat_tco2
FROM days CROSS JOIN parks p
CROSS JOIN LATERAL (SELECT least(greatest(
  extract(year FROM days.period_start AT TIME ZONE p.timezone)::int, {first}), {last}) AS year) y
WHERE p.park_id = {PARK}
ORDER BY 1"""


def _table2(ctx: BuildContext) -> str:
    lang = ctx.lang
    rows = [(r.row, T(r.name_zh, r.name_en).render(lang), r.unit, r.indicator, r.better,
             r.reference.value if r.reference else None) for r in ctx.indicators.table2]
    t2 = values_sql("t2", (("row_no", "int"), ("indicator_name", "text"), ("unit", "text"), ("indicator", "text"),
                           ("better", "text"), ("reference", "double precision")), rows)
    targets = [(park, indicator, by_year.get("2025"), by_year.get("2030"))
               for park, t in sorted(ctx.indicators.targets.items()) for indicator, by_year in sorted(t.values.items())]
    tg = values_sql("tg", (("park_id", "text"), ("indicator", "text"), ("target_2025", "double precision"),
                           ("target_2030", "double precision")), targets)
    label = {k: v.render(lang) for k, v in {
        "not_metered": T("非计量指标", "not metered"), "missing": T("缺少数据", "missing input"),
        "no_target": T("无目标", "no target"), "met": T("达标", "on target"), "not_met": T("未达标", "off target"),
    }.items()}
    return f"""
WITH t2 AS (SELECT * FROM {t2}),
tg AS (SELECT * FROM {tg} WHERE tg.park_id = {PARK}),
latest AS (
  SELECT DISTINCT ON (ir.indicator) ir.indicator, ir.period, ir.value, ir.status, ir.estimated_share
  FROM indicator_results ir
  WHERE ir.park_id = {PARK} AND ir.subject = '' AND ir.headline
  ORDER BY ir.indicator, (ir.period ~ '^[0-9]{{4}}$' OR ir.period ~ '-YTD$') DESC, ir.period_end DESC, ir.period DESC)
SELECT t2.row_no, t2.indicator_name, t2.unit, l.period, l.value, tg.target_2025, tg.target_2030, t2.reference,
  CASE
    WHEN t2.indicator IS NULL THEN '{label["not_metered"]}'
    WHEN l.value IS NULL THEN '{label["missing"]}'
    WHEN nt.target IS NULL THEN '{label["no_target"]}'
    WHEN (t2.better = 'lower' AND l.value <= nt.target) OR (t2.better = 'higher' AND l.value >= nt.target)
      THEN '{label["met"]}'
    ELSE '{label["not_met"]}' END AS status,
  l.estimated_share * 100 AS estimated_share_pct
FROM t2 LEFT JOIN latest l ON l.indicator = t2.indicator LEFT JOIN tg ON tg.indicator = t2.indicator
CROSS JOIN LATERAL (SELECT CASE WHEN extract(year FROM now()) <= 2025 THEN coalesce(tg.target_2025, tg.target_2030)
                                ELSE tg.target_2030 END AS target) nt
ORDER BY t2.row_no"""


_CARRIER_FIELDS = (
    Override("electricity_kwh", display=T("电", "Electricity"), unit=KWH),
    Override("gas_m3", display=T("天然气", "Natural gas"), unit=M3),
    Override("heat_gj", display=T("热", "Heat"), unit=GJ),
)


def board(ctx: BuildContext) -> Board:
    """The energy and carbon board."""
    low, high = ctx.carbon_per_energy_limits[0], ctx.carbon_per_energy_limits[-1]
    energy = Row(T("用能", "Energy"), (
        Panel(PanelKind.TIMESERIES, T("日用电量（按楼宇）", "Daily electricity by building"),
              (SqlQuery(DAILY_BY_BUILDING, ("time", "metric", "value"), TS),),
              description=T("园区本地日；二级及以下电表按次级用能单位汇总",
                            "Park-local days; meters summed per sub-unit"),
              unit=KWH, bars=True, stacked=True, interval="1d", width=12),
        Panel(PanelKind.TIMESERIES, T("日用能（按能源）", "Daily energy by carrier"),
              (SqlQuery(_energy_by_carrier("day"), ("time", "electricity_kwh", "gas_m3", "heat_gj"), TS,
                        nullable=("gas_m3", "heat_gj")),),
              bars=True, interval="1d", width=12, overrides=_CARRIER_FIELDS),
        Panel(PanelKind.TIMESERIES, T("月用能（近 12 个月）", "Monthly energy, last 12 months"),
              (SqlQuery(_energy_by_carrier("month"), ("time", "electricity_kwh", "gas_m3", "heat_gj"), TS,
                        nullable=("gas_m3", "heat_gj")),),
              bars=True, interval="1d", width=24, time_from="1y", overrides=_CARRIER_FIELDS),
    ))
    carbon = Row(T("二氧化碳", "CO₂"), (
        Panel(PanelKind.TIMESERIES, T("日二氧化碳排放（估算，基于位置）", "Daily CO₂ (estimate, location-based)"),
              (SqlQuery(_daily_co2(ctx), ("time", "electricity_tco2", "gas_tco2", "heat_tco2"), TS),),
              description=T("一级计量日用能 × 因子库排放因子（电网平均因子：省 → 区域 → 全国）；月度发布值为准",
                            "Level-1 daily energy x registry factors (grid average: province, region, national); "
                            "the published monthly figures are authoritative"),
              unit=TCO2, decimals=2, bars=True, stacked=True, interval="1d", width=12, overrides=(
                  Override("electricity_tco2", display=T("外购电力", "Purchased electricity")),
                  Override("gas_tco2", display=T("天然气", "Natural gas")),
                  Override("heat_tco2", display=T("外购热力", "Purchased heat")))),
        Panel(PanelKind.TIMESERIES, T("月度二氧化碳排放（已发布）", "Monthly CO₂ (published)"),
              (SqlQuery(MONTHLY_CO2, ("time", "metric", "value"), TS),),
              description=T("基于位置与基于市场两种口径（indicator_results）",
                            "Location- and market-based (indicator_results)"),
              unit=TCO2, decimals=2, bars=True, interval="1d", width=8, time_from="1y"),
        Panel(PanelKind.STAT, T("单位能耗碳排放", "CO₂ per unit of energy"),
              (SqlQuery(CARBON_PER_ENERGY, ("period", "carbon_per_energy", "variant")),),
              description=T("零碳园区核心指标，阈值见 aggregation 策略文件", "Zero-carbon park core indicator"),
              unit="suffix: tCO₂/tce", decimals=3, width=4,
              steps=(Step(None, "green"), Step(low, "orange"), Step(high, "red"))),
    ))
    table2 = Row(T("试点园区参考指标（表2）", "Pilot-park reference indicators (Table 2)"), (
        Panel(PanelKind.TABLE, T("表2 指标与 2025/2030 目标", "Table 2 indicators against 2025/2030 targets"),
              (SqlQuery(_table2(ctx), ("row_no", "indicator_name", "unit", "period", "value", "target_2025",
                                       "target_2030", "reference", "status", "estimated_share_pct"),
                        nullable=("period", "value", "target_2025", "target_2030", "estimated_share_pct")),),
              description=T("指标名称与单位依据 seed 001 表2；目标来自园区实施方案"
                            "（dashboards/data/indicators.yaml）；参考值为省级(近)零碳园区指标",
                            "Names and units per seed 001 Table 2; targets from the park's plan "
                            "(dashboards/data/indicators.yaml); references from the provincial zero-carbon table"),
              width=24, height=14, decimals=3, overrides=(
                  Override("row_no", display=T("序号", "Row"), decimals=0),
                  Override("indicator_name", display=T("指标", "Indicator")),
                  Override("unit", display=T("单位", "Unit")),
                  Override("period", display=T("期间", "Period")),
                  Override("value", display=T("当前值", "Value")),
                  Override("target_2025", display=T("2025 目标", "2025 target")),
                  Override("target_2030", display=T("2030 目标", "2030 target")),
                  Override("reference", display=T("参考值", "Reference")),
                  Override("status", display=T("状态", "Status")),
                  Override("estimated_share_pct", display=T("估算占比", "Estimated share"), unit=PERCENT,
                           decimals=1))),
    ))
    return Board(
        uid="pp-energy-carbon", title=T("用能与碳排放", "Energy and carbon"),
        description=T("日/月用能与二氧化碳，试点园区参考指标与目标",
                      "Daily/monthly energy and CO₂; Table 2 indicators and targets"),
        rows=(energy, carbon, table2), variables=(PARK_VAR, BUILDING_VAR), time_from="now-30d", refresh="15m",
        tags=("energy", "carbon"))
