"""园区实时总览 · Park live overview: power now by carrier and building, energy today, PV / storage / EV and
data freshness per device. Refreshes every 30 s; readings arrive per device every minute to 15 minutes.
"""

from __future__ import annotations

from dashboards._context import BuildContext
from dashboards._model import Board, Format, Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import T
from dashboards.boards._common import (
    BUILDING_VAR,
    CARRIERS,
    DEVICE_VAR,
    GJ,
    IN_BUILDING,
    IN_DEVICE,
    KW,
    KWH,
    M3,
    M3_PER_H,
    PARK,
    PARK_LEVEL,
    PARK_VAR,
    PERCENT,
    ROLES,
    SECONDS,
    display_overrides,
    local_today,
    steps_up,
)

TS = Format.TIME_SERIES
STATION_COLUMNS = ("pv_generated_kwh", "battery_charged_kwh", "battery_discharged_kwh", "ev_charged_kwh")

DEMAND_NOW = f"""
SELECT sum(last.value) AS park_demand_kw
FROM devices d JOIN series s USING (device_key)
CROSS JOIN LATERAL (
  SELECT r.value FROM readings r
  WHERE r.series_id = s.series_id AND $__timeFilter(r.ts)
  ORDER BY r.ts DESC LIMIT 1) last
WHERE d.park_id = {PARK} AND d.metering_level = 1 AND d.carrier = 'electricity' AND s.metric = 'active_power'"""

ENERGY_TODAY = f"""
SELECT
  sum(g.energy) FILTER (WHERE g.carrier = 'electricity' AND g.metric = 'active_energy_import') AS electricity_kwh,
  sum(g.energy) FILTER (WHERE g.carrier = 'gas' AND g.metric = 'gas_volume') AS gas_m3,
  sum(g.energy) FILTER (WHERE g.carrier = 'heat' AND g.metric = 'heat_energy') AS heat_gj
FROM group_rollups g JOIN parks p USING (park_id)
WHERE g.park_id = {PARK} AND g.grain = 'day' AND g.dimension = 'park' AND g.member = ''
  AND g.period_start = {local_today()}"""

STATION_TODAY = f"""
SELECT
  sum(ie.energy) FILTER (WHERE d.role = 'pv' AND s.metric = 'generated_energy') AS pv_generated_kwh,
  sum(ie.energy) FILTER (WHERE d.role = 'battery' AND s.metric = 'battery_charge_energy') AS battery_charged_kwh,
  sum(ie.energy) FILTER (WHERE d.role = 'battery' AND s.metric = 'battery_discharge_energy')
    AS battery_discharged_kwh,
  sum(ie.energy) FILTER (WHERE d.role = 'ev' AND s.metric = 'active_energy_import') AS ev_charged_kwh
FROM parks p JOIN devices d USING (park_id) JOIN series s USING (device_key) JOIN interval_energy ie USING (series_id)
WHERE p.park_id = {PARK} AND d.role IN ('pv', 'battery', 'ev') AND ie.ts >= {local_today()}"""

# Top metering level per carrier = the park boundary for that carrier (GB 17167 一级 where it exists).
POWER_BY_CARRIER = f"""
WITH top AS (
  SELECT d.device_key, d.carrier FROM devices d
  WHERE d.park_id = {PARK} AND d.metering_level = (
    SELECT min(d2.metering_level) FROM devices d2 WHERE d2.park_id = d.park_id AND d2.carrier = d.carrier))
SELECT time, carrier AS metric, sum(kw) AS value FROM (
  SELECT $__timeGroup(r.ts, $__interval) AS time, top.carrier, r.series_id, avg(r.value) AS kw
  FROM top JOIN series s USING (device_key) JOIN readings r USING (series_id)
  WHERE s.metric IN ('active_power', 'heat_power') AND $__timeFilter(r.ts)
  GROUP BY 1, 2, 3) b
GROUP BY 1, 2
ORDER BY 1, 2"""

GAS_FLOW = f"""
SELECT time, sum(flow) AS gas_flow_m3_per_h FROM (
  SELECT $__timeGroup(r.ts, $__interval) AS time, r.series_id, avg(r.value) AS flow
  FROM devices d JOIN series s USING (device_key) JOIN readings r USING (series_id)
  WHERE d.park_id = {PARK} AND s.metric = 'gas_flow' AND d.metering_level = (
    SELECT min(d2.metering_level) FROM devices d2 WHERE d2.park_id = d.park_id AND d2.carrier = 'gas')
    AND $__timeFilter(r.ts)
  GROUP BY 1, 2) b
GROUP BY 1
ORDER BY 1"""

POWER_BY_BUILDING = f"""
SELECT time, building AS metric, sum(kw) AS value FROM (
  SELECT $__timeGroup(r.ts, $__interval) AS time, coalesce(st.name, d.site_id, '{PARK_LEVEL}') AS building,
         r.series_id, avg(r.value) AS kw
  FROM devices d JOIN series s USING (device_key) JOIN readings r USING (series_id)
  LEFT JOIN sites st ON st.park_id = d.park_id AND st.site_id = d.site_id
  WHERE d.park_id = {PARK} AND d.carrier = 'electricity' AND d.metering_level = 2 AND s.metric = 'active_power'
    AND coalesce(d.site_id, '{PARK_LEVEL}') {IN_BUILDING} AND $__timeFilter(r.ts)
  GROUP BY 1, 2, 3) b
GROUP BY 1, 2
ORDER BY 1, 2"""

STATION_POWER = f"""
SELECT time, role AS metric, sum(kw) AS value FROM (
  SELECT $__timeGroup(r.ts, $__interval) AS time, d.role, r.series_id, avg(r.value) AS kw
  FROM devices d JOIN series s USING (device_key) JOIN readings r USING (series_id)
  WHERE d.park_id = {PARK} AND $__timeFilter(r.ts) AND (
    (d.role = 'pv' AND s.metric = 'generation_power') OR (d.role = 'battery' AND s.metric = 'battery_power')
    OR (d.role = 'ev' AND s.metric = 'active_power'))
  GROUP BY 1, 2, 3) b
GROUP BY 1, 2
ORDER BY 1, 2"""

BATTERY_SOC = f"""
SELECT last.ts AS time, d.device_id AS metric, last.value AS soc_pct
FROM devices d JOIN series s USING (device_key)
CROSS JOIN LATERAL (
  SELECT r.ts, r.value FROM readings r
  WHERE r.series_id = s.series_id AND $__timeFilter(r.ts)
  ORDER BY r.ts DESC LIMIT 1) last
WHERE d.park_id = {PARK} AND s.metric = 'state_of_charge'
ORDER BY 1, 2"""

EV_NOW = f"""
SELECT sum(last.value) FILTER (WHERE s.metric = 'ev_connected') AS evs_plugged_in,
       sum(last.value) FILTER (WHERE s.metric = 'ev_energy_requested') AS ev_energy_requested_kwh
FROM devices d JOIN series s USING (device_key)
CROSS JOIN LATERAL (
  SELECT r.value FROM readings r
  WHERE r.series_id = s.series_id AND $__timeFilter(r.ts)
  ORDER BY r.ts DESC LIMIT 1) last
WHERE d.park_id = {PARK} AND d.role = 'ev' AND s.metric IN ('ev_connected', 'ev_energy_requested')"""

FRESHNESS = f"""
SELECT d.device_id, coalesce(d.site_id, '{PARK_LEVEL}') AS building, d.kind, d.metering_level,
       ds.last_reading_ts, extract(epoch FROM now() - ds.last_reading_ts) AS reading_age_s,
       ds.last_seen_at, ds.online, ds.clock_offset_s, ds.backlog
FROM devices d LEFT JOIN device_status ds USING (device_key)
WHERE d.park_id = {PARK} AND d.device_id {IN_DEVICE}
ORDER BY reading_age_s DESC NULLS FIRST, d.device_id"""


def board(ctx: BuildContext) -> Board:
    """The live overview."""
    d = ctx.display
    fresh = steps_up(d.freshness_warn_s.value, d.freshness_alarm_s.value)
    clock = steps_up(d.clock_offset_warn_s.value, d.clock_offset_alarm_s.value)
    now = Row(T("当前", "Now"), (
        Panel(PanelKind.STAT, T("园区总功率", "Park demand now"), (SqlQuery(DEMAND_NOW, ("park_demand_kw",)),),
              description=T("一级（园区边界）电表的最新有功功率之和",
                            "Latest active power of the level-1 (boundary) meters"),
              unit=KW, decimals=1, width=4, height=5),
        Panel(PanelKind.STAT, T("今日用能", "Energy today"), (
            SqlQuery(ENERGY_TODAY, ("electricity_kwh", "gas_m3", "heat_gj"), nullable=("gas_m3", "heat_gj")),),
              description=T("园区本地日（parks.timezone）0 时起，来自 15 分钟区间电量",
                            "Since local midnight, from 15-min intervals"),
              decimals=1, width=8, height=5, overrides=(
                  Override("electricity_kwh", display=T("电", "Electricity"), unit=KWH),
                  Override("gas_m3", display=T("天然气", "Natural gas"), unit=M3),
                  Override("heat_gj", display=T("热", "Heat"), unit=GJ))),
        Panel(PanelKind.STAT, T("今日光伏、储能与充电", "PV, storage and EV today"), (
            SqlQuery(STATION_TODAY, STATION_COLUMNS, nullable=STATION_COLUMNS),),
              unit=KWH, decimals=1, width=8, height=5, overrides=(
                  Override("pv_generated_kwh", display=T("光伏发电", "PV generated")),
                  Override("battery_charged_kwh", display=T("储能充电", "Battery charged")),
                  Override("battery_discharged_kwh", display=T("储能放电", "Battery discharged")),
                  Override("ev_charged_kwh", display=T("充电桩", "EV charged")))),
        Panel(PanelKind.STAT, T("充电桩", "EV chargers"), (
            SqlQuery(EV_NOW, ("evs_plugged_in", "ev_energy_requested_kwh"), nullable=("evs_plugged_in",
                                                                                      "ev_energy_requested_kwh")),),
              width=4, height=5, overrides=(
                  Override("evs_plugged_in", display=T("在充车辆", "EVs plugged in"), decimals=0),
                  Override("ev_energy_requested_kwh", display=T("待充电量", "Energy still requested"), unit=KWH))),
    ))
    power = Row(T("功率", "Power"), (
        Panel(PanelKind.TIMESERIES, T("按能源载体的功率", "Power by carrier"),
              (SqlQuery(POWER_BY_CARRIER, ("time", "metric", "value"), TS),),
              description=T("每种能源最高计量级别的表计（园区边界）",
                            "Meters at each carrier's top metering level (the boundary)"),
              unit=KW, interval="1m", width=12, overrides=display_overrides(CARRIERS)),
        Panel(PanelKind.TIMESERIES, T("各楼宇功率", "Power by building"),
              (SqlQuery(POWER_BY_BUILDING, ("time", "metric", "value"), TS),),
              description=T("二级电表（次级用能单位）", "Level-2 electricity meters (sub-units)"),
              unit=KW, interval="1m", width=12, stacked=True, fill_opacity=30),
        Panel(PanelKind.TIMESERIES, T("光伏、储能与充电桩", "PV, battery and EV chargers"),
              (SqlQuery(STATION_POWER, ("time", "metric", "value"), TS),),
              description=T("储能：正为充电，负为放电", "Battery: positive = charging, negative = discharging"),
              unit=KW, interval="1m", width=12, overrides=display_overrides(ROLES)),
        Panel(PanelKind.TIMESERIES, T("天然气流量", "Natural gas flow"),
              (SqlQuery(GAS_FLOW, ("time", "gas_flow_m3_per_h"), TS),),
              unit=M3_PER_H, interval="1m", width=6,
              overrides=(Override("gas_flow_m3_per_h", display=T("天然气", "Natural gas")),)),
        Panel(PanelKind.GAUGE, T("储能 SOC", "Battery state of charge"),
              (SqlQuery(BATTERY_SOC, ("time", "metric", "soc_pct"), TS),),
              unit=PERCENT, min=0, max=100, width=6,
              steps=(Step(None, "red"), Step(20, "orange"), Step(40, "green"))),
    ))
    freshness = Row(T("数据新鲜度", "Data freshness"), (
        Panel(PanelKind.TABLE, T("设备数据新鲜度", "Data freshness per device"), (SqlQuery(FRESHNESS, (
            "device_id", "building", "kind", "metering_level", "last_reading_ts", "reading_age_s", "last_seen_at",
            "online", "clock_offset_s", "backlog"), nullable=("metering_level", "backlog")),),
              description=T("最新读数时间与距今时长；时钟偏差为设备发送时间减接收时间",
                            "Newest reading and its age; clock offset = device send time minus ingest receive time"),
              width=24, height=10, overrides=(
                  Override("reading_age_s", display=T("读数时长", "Reading age"), unit=SECONDS, steps=fresh,
                           cell="color-background"),
                  Override("clock_offset_s", display=T("时钟偏差", "Clock offset"), unit=SECONDS, steps=clock,
                           cell="color-text", decimals=2),
                  Override("device_id", display=T("设备", "Device")),
                  Override("building", display=T("楼宇", "Building")),
                  Override("last_reading_ts", display=T("最新读数", "Newest reading")),
                  Override("last_seen_at", display=T("最近消息", "Last message")),
                  Override("online", display=T("在线", "Online")))),
    ))
    return Board(
        uid="pp-live", title=T("园区实时总览", "Park live overview"),
        description=T("实时功率、今日用能、光伏储能充电与数据新鲜度",
                      "Live power, energy today, PV/storage/EV and data freshness"),
        rows=(now, power, freshness), variables=(PARK_VAR, BUILDING_VAR, DEVICE_VAR), time_from="now-6h",
        refresh="30s", tags=("live",))
