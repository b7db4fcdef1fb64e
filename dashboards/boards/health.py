"""数据质量与接入健康 · Data quality & ingest health: ingest throughput and lag (from the ``reading_changes``
log every committed batch appends), quarantine by reason, offline devices, reading quality, completeness and
estimated share of interval energy, the level-1 vs level-2 balance and the aggregation job.

Throughput is counted in committed readings and commits per second: the database records batches, not MQTT
messages (the per-instance Prometheus endpoint of ``parkpulse ingest`` has message counts).
"""

from __future__ import annotations

from dashboards._context import BuildContext
from dashboards._model import Board, Format, Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import T
from dashboards.boards._common import (
    BUILDING_VAR,
    DEVICE_VAR,
    IN_DEVICE,
    PARK,
    PARK_LEVEL,
    PARK_VAR,
    PERCENT,
    SECONDS,
    steps_up,
)
from dashboards.boards.alarms import alarm_row
from dashboards.boards.uplink import uplink_row
from schemas import Quality

TS = Format.TIME_SERIES
_PARK_SERIES = f"JOIN series s USING (series_id) JOIN devices d USING (device_key) WHERE d.park_id = {PARK}"

THROUGHPUT = f"""
SELECT $__timeGroupAlias(rc.committed_at, $__interval),
       sum(rc.n_rows) / ($__interval_ms / 1000.0) AS readings_per_s,
       count(DISTINCT rc.committed_at) / ($__interval_ms / 1000.0) AS commits_per_s
FROM reading_changes rc {_PARK_SERIES} AND $__timeFilter(rc.committed_at)
GROUP BY 1
ORDER BY 1"""

LAG = f"""
SELECT $__timeGroupAlias(rc.committed_at, $__interval),
       avg(extract(epoch FROM rc.committed_at - rc.ts_max)) AS lag_avg_s,
       max(extract(epoch FROM rc.committed_at - rc.ts_max)) AS lag_max_s
FROM reading_changes rc {_PARK_SERIES} AND $__timeFilter(rc.committed_at)
GROUP BY 1
ORDER BY 1"""

QUARANTINE = f"""
SELECT $__timeGroup(q.received_at, $__interval) AS time, q.reason AS metric, count(*) AS value
FROM quarantine q
WHERE q.park_id = {PARK} AND $__timeFilter(q.received_at)
GROUP BY 1, 2
ORDER BY 1, 2"""

QUARANTINE_LATEST = f"""
SELECT q.received_at, q.reason, q.device_id, q.topic, q.n_rejected, q.n_accepted, left(q.detail, 300) AS detail
FROM quarantine q
WHERE q.park_id = {PARK} AND $__timeFilter(q.received_at)
ORDER BY q.received_at DESC
LIMIT 100"""

QUALITY = """
SELECT $__timeGroup(r.ts, $__interval) AS time, {label} AS metric, count(*) AS value
FROM readings r {park_series} AND d.device_id {in_device} AND $__timeFilter(r.ts)
GROUP BY 1, 2
ORDER BY 1, 2"""

ESTIMATED = f"""
SELECT $__timeGroupAlias(ie.ts, $__interval),
       100 * sum(ie.energy * ie.estimated_share) / nullif(sum(ie.energy), 0) AS estimated_share_pct,
       100 * avg(ie.coverage) AS coverage_pct
FROM interval_energy ie {_PARK_SERIES} AND d.device_id {IN_DEVICE} AND $__timeFilter(ie.ts)
GROUP BY 1
ORDER BY 1"""

COMPLETENESS = f"""
SELECT d.device_id, s.metric, sum(m.n_intervals) AS intervals, sum(m.n_expected) AS expected,
       100.0 * sum(m.n_intervals) / nullif(sum(m.n_expected), 0) AS completeness_pct,
       100.0 * sum(m.n_estimated) / nullif(sum(m.n_intervals), 0) AS estimated_pct
FROM meter_rollups m {_PARK_SERIES} AND m.grain = 'day' AND d.device_id {IN_DEVICE}
  AND m.period_start <= $__timeTo() AND m.period_start + interval '1 day' > $__timeFrom()
GROUP BY 1, 2
ORDER BY completeness_pct NULLS FIRST, 1, 2"""

BALANCE = f"""
SELECT b.period_start AS time, b.carrier || ' · ' || b.metric AS metric, b.difference_pct AS value
FROM balance_checks b
WHERE b.park_id = {PARK} AND b.grain = 'hour' AND b.difference_pct IS NOT NULL AND $__timeFilter(b.period_start)
ORDER BY 1, 2"""

AGGREGATION = f"""
SELECT
  (SELECT extract(epoch FROM now() - max(r.finished_at)) FROM aggregation_runs r
   WHERE r.status = 'ok' AND r.job IN ('aggregation', 'aggregation:' || {PARK})) AS since_last_run_s,
  (SELECT max(rc.change_id) FROM reading_changes rc)
    - (SELECT max(w.last_change_id) FROM aggregation_watermarks w
       WHERE w.job IN ('aggregation', 'aggregation:' || {PARK})) AS changes_pending"""

RUNS = """
SELECT r.started_at, r.job, r.status, extract(epoch FROM r.finished_at - r.started_at) AS duration_s, r.n_changes,
       r.n_series, r.n_intervals, r.n_rollups, r.n_indicators, r.estimated_share * 100 AS estimated_share_pct, r.detail
FROM aggregation_runs r
WHERE $__timeFilter(r.started_at)
ORDER BY r.started_at DESC
LIMIT 50"""


def _device_sql(ctx: BuildContext) -> tuple[str, str]:
    """(stat of device counts, table of offline or stale devices)."""
    warn, clock_alarm = ctx.display.freshness_warn_s.value, ctx.display.clock_offset_alarm_s.value
    stale = (f"(ds.online IS FALSE OR ds.last_reading_ts IS NULL"
             f" OR now() - ds.last_reading_ts > make_interval(secs => {warn!r}))")
    counts = f"""
SELECT count(*) AS devices, count(*) FILTER (WHERE {stale}) AS offline_or_stale,
       count(*) FILTER (WHERE abs(ds.clock_offset_s) > {clock_alarm!r}) AS clock_off
FROM devices d LEFT JOIN device_status ds USING (device_key)
WHERE d.park_id = {PARK}"""
    table = f"""
SELECT d.device_id, coalesce(d.site_id, '{PARK_LEVEL}') AS building, d.kind, ds.online, ds.last_seen_at,
       ds.last_reading_ts, extract(epoch FROM now() - ds.last_reading_ts) AS reading_age_s, ds.status_at
FROM devices d LEFT JOIN device_status ds USING (device_key)
WHERE d.park_id = {PARK} AND d.device_id {IN_DEVICE} AND {stale}
ORDER BY reading_age_s DESC NULLS FIRST, d.device_id"""
    return counts, table


def _quality_sql() -> str:
    cases = " ".join(f"WHEN {int(q)} THEN '{q.name.lower()}'" for q in Quality)
    return QUALITY.format(label=f"CASE r.quality {cases} ELSE 'code ' || r.quality END", park_series=_PARK_SERIES,
                          in_device=IN_DEVICE)


def board(ctx: BuildContext) -> Board:
    """The data-quality and ingest-health board."""
    d = ctx.display
    counts, offline = _device_sql(ctx)
    est = steps_up(d.estimated_share_warn_pct.value, d.estimated_share_alarm_pct.value)
    ingest = Row(T("接入", "Ingest"), (
        Panel(PanelKind.TIMESERIES, T("写入速率", "Write rate"), (SqlQuery(THROUGHPUT, (
            "time", "readings_per_s", "commits_per_s"), TS),),
              description=T("已提交读数与事务每秒（reading_changes）", "Committed readings and commits per second"),
              unit="reqps", interval="1m", width=8, overrides=(
                  Override("readings_per_s", display=T("读数/秒", "Readings/s"), unit="short"),
                  Override("commits_per_s", display=T("事务/秒", "Commits/s"), unit="short"))),
        Panel(PanelKind.TIMESERIES, T("测量到入库延迟", "Measurement-to-commit lag"), (SqlQuery(LAG, (
            "time", "lag_avg_s", "lag_max_s"), TS),),
              description=T("提交时间减批内最新读数时间；含设备端批量发送间隔", "Commit time minus the batch's newest "
                            "reading; includes the device's batching interval"),
              unit=SECONDS, interval="1m", width=8, steps=steps_up(d.lag_warn_s.value, d.lag_alarm_s.value),
              threshold_style="dashed", overrides=(
                  Override("lag_avg_s", display=T("平均",
                                                  "Average")), Override("lag_max_s", display=T("最大", "Max")))),
        Panel(PanelKind.TIMESERIES, T("隔离消息（按原因）", "Quarantined messages by reason"),
              (SqlQuery(QUARANTINE, ("time", "metric", "value"), TS),),
              unit="short", bars=True, stacked=True, interval="1m", width=8),
        Panel(PanelKind.TABLE, T("最近隔离消息", "Latest quarantined messages"), (SqlQuery(QUARANTINE_LATEST, (
            "received_at", "reason", "device_id", "topic", "n_rejected", "n_accepted", "detail"),
            nullable=("device_id", "topic")),), width=24, height=7),
    ))
    devices = Row(T("设备", "Devices"), (
        Panel(PanelKind.STAT, T("设备状态", "Device status"), (SqlQuery(counts, (
            "devices", "offline_or_stale", "clock_off")),), width=6, height=7, overrides=(
                Override("devices", display=T("设备数", "Devices")),
                Override("offline_or_stale", display=T("离线或过期", "Offline or stale"),
                         steps=(Step(None, "green"), Step(1, "red"))),
                Override("clock_off", display=T("时钟异常",
                                                "Clock off"), steps=(Step(None, "green"), Step(1, "orange"))))),
        Panel(PanelKind.TABLE, T("离线或过期设备", "Offline or stale devices"), (SqlQuery(offline, (
            "device_id", "building", "kind", "online", "last_seen_at", "last_reading_ts", "reading_age_s", "status_at"),
            nullable=("online", "last_seen_at", "last_reading_ts", "reading_age_s", "status_at")),),
              width=18, height=7, overrides=(
                  Override("reading_age_s", display=T("读数时长", "Reading age"), unit=SECONDS,
                           steps=steps_up(d.freshness_warn_s.value, d.freshness_alarm_s.value),
                           cell="color-background"),)),
    ))
    quality = Row(T("数据质量", "Data quality"), (
        Panel(PanelKind.TIMESERIES, T("读数质量", "Readings by quality"), (SqlQuery(_quality_sql(), (
            "time", "metric", "value"), TS),), unit="short", bars=True, stacked=True, interval="1m", width=8),
        Panel(PanelKind.TIMESERIES, T("估算占比与覆盖率", "Estimated share and coverage"), (SqlQuery(ESTIMATED, (
            "time", "estimated_share_pct", "coverage_pct"), TS),),
              description=T("15 分钟区间电量中 VEE 估算部分的占比", "Share of 15-min interval energy estimated by VEE"),
              unit=PERCENT, interval="15m", width=8, steps=est, threshold_style="dashed", overrides=(
                  Override("estimated_share_pct", display=T("估算占比", "Estimated share")),
                  Override("coverage_pct", display=T("覆盖率", "Coverage"), steps=(Step(None, "text"),)))),
        Panel(PanelKind.TIMESERIES, T("一级与二级计量差异", "Level-1 vs level-2 difference"),
              (SqlQuery(BALANCE, ("time", "metric", "value"), TS),),
              description=T("GB 17167：一级 − Σ二级（损耗与未计量负荷）", "GB 17167: level 1 minus the sum of level 2"),
              unit=PERCENT, interval="1h", width=8, threshold_style="dashed",
              steps=(Step(None, "green"), Step(ctx.balance_alarm_pct, "red"))),
        Panel(PanelKind.TABLE, T("完整性（按表计）", "Completeness per meter"), (SqlQuery(COMPLETENESS, (
            "device_id", "metric", "intervals", "expected", "completeness_pct", "estimated_pct")),),
              width=24, height=8, overrides=(
                  Override("completeness_pct", display=T("完整率", "Completeness"), unit=PERCENT, decimals=1,
                           steps=(Step(None, "red"), Step(95, "orange"), Step(99, "green")), cell="color-background"),
                  Override("estimated_pct", display=T("估算占比", "Estimated"), unit=PERCENT, decimals=1, steps=est,
                           cell="color-text"))),
    ))
    jobs = Row(T("聚合作业", "Aggregation job"), (
        Panel(PanelKind.STAT, T("聚合进度", "Aggregation progress"), (SqlQuery(AGGREGATION, (
            "since_last_run_s", "changes_pending"), nullable=("since_last_run_s", "changes_pending")),),
              width=6, height=7, overrides=(
                  Override("since_last_run_s", display=T("距上次成功运行", "Since last good run"), unit=SECONDS,
                           steps=steps_up(d.lag_warn_s.value, d.lag_alarm_s.value)),
                  Override("changes_pending", display=T("待处理变更", "Changes pending"), unit="short"))),
        Panel(PanelKind.TABLE, T("最近运行", "Latest runs"), (SqlQuery(RUNS, (
            "started_at", "job", "status", "duration_s", "n_changes", "n_series", "n_intervals", "n_rollups",
            "n_indicators", "estimated_share_pct", "detail"),
            nullable=("duration_s", "estimated_share_pct", "detail")),),
              width=18, height=7, overrides=(Override("duration_s", unit=SECONDS, decimals=2),)),
    ))
    return Board(
        uid="pp-ingest-health", title=T("数据质量与接入健康", "Data quality and ingest health"),
        description=T("告警、接入速率与延迟、隔离、离线设备、估算占比与完整性",
                      "Alarms, ingest rate and lag, quarantine, offline devices, estimated share and completeness"),
        rows=(alarm_row(ctx), ingest, devices, quality, jobs, uplink_row(ctx)),
        variables=(PARK_VAR, BUILDING_VAR, DEVICE_VAR),
        time_from="now-6h", refresh="30s", tags=("health",))
