"""上传 · Uplink: what the park owes the energy online-monitoring platforms, for the health board.

Reads the uplink queues and quality flags (migration 0013): a stat of the park's backlog, acknowledged and
rejected records and the days of the last 31 with a failed quality check; one table row per platform
endpoint (backlog, oldest unacknowledged period, last acknowledgement, last transport error); the records
the platforms rejected with their reasons; and the flagged days with each check's reason. Tables show one
placeholder row when empty rather than Grafana's "No data", so "nothing to report" is visible as such.
"""

from __future__ import annotations

from typing import Final

from dashboards._context import BuildContext
from dashboards._model import Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import Lang, T
from dashboards.boards._common import PARK

_OF_PARK: Final = f"""uplink_deliveries d
JOIN uplink_records r ON r.profile = d.profile AND r.record_key = d.record_key
WHERE r.park_id = {PARK}"""
_RECENT_DAY: Final = "(now() - interval '31 days')::date"

COUNTS: Final = f"""
SELECT count(*) FILTER (WHERE d.state IN ('pending', 'sent')) AS backlog,
       count(*) FILTER (WHERE d.state = 'acked') AS acked,
       count(*) FILTER (WHERE d.state = 'rejected') AS rejected,
       (SELECT count(DISTINCT q.day) FROM uplink_quality_flags q
        WHERE q.park_id = {PARK} AND NOT q.passed AND q.day >= {_RECENT_DAY}) AS flagged_days
FROM {_OF_PARK}"""

ENDPOINT_COLUMNS: Final = ("endpoint", "profile", "backlog", "acked", "rejected", "oldest_unacked", "last_acked_at",
                           "last_error")
REJECT_COLUMNS: Final = ("endpoint", "record_key", "revision", "reason", "rejected_at")
FLAG_COLUMNS: Final = ("day", "data_item_code", "check_name", "value", "threshold", "reason")


def _placeholder(text: T, lang: Lang) -> str:
    return text.render(lang).replace("'", "''")


def endpoints_sql(lang: Lang) -> str:
    """One row per endpoint holding the park's records; a placeholder row when there is none."""
    none = _placeholder(T("未配置上传端点", "no platform endpoint configured"), lang)
    return f"""
WITH per AS (
  SELECT d.endpoint, d.profile,
         count(*) FILTER (WHERE d.state IN ('pending', 'sent')) AS backlog,
         count(*) FILTER (WHERE d.state = 'acked') AS acked,
         count(*) FILTER (WHERE d.state = 'rejected') AS rejected,
         min(d.period_start) FILTER (WHERE d.state IN ('pending', 'sent')) AS oldest_unacked,
         max(d.acked_at) AS last_acked_at,
         (array_agg(d.last_error ORDER BY d.last_attempt_at DESC NULLS LAST)
            FILTER (WHERE d.last_error IS NOT NULL AND d.state IN ('pending', 'sent')))[1] AS last_error
  FROM {_OF_PARK}
  GROUP BY d.endpoint, d.profile
)
SELECT {", ".join(ENDPOINT_COLUMNS)}
FROM (SELECT * FROM per
      UNION ALL
      SELECT '{none}', '-', 0, 0, 0, NULL::timestamptz, NULL::timestamptz, NULL::text
      WHERE NOT EXISTS (SELECT 1 FROM per)) x
ORDER BY backlog DESC, endpoint"""


def rejects_sql(lang: Lang) -> str:
    """The latest 100 rejected records with the platform's reason; a placeholder row when there is none."""
    none = _placeholder(T("无被拒记录", "no rejected records"), lang)
    return f"""
WITH shown AS (
  SELECT d.endpoint, d.record_key, d.revision, d.platform_reason AS reason, d.rejected_at
  FROM {_OF_PARK} AND d.state = 'rejected'
  ORDER BY d.rejected_at DESC NULLS LAST
  LIMIT 100
)
SELECT {", ".join(REJECT_COLUMNS)}
FROM (SELECT * FROM shown
      UNION ALL
      SELECT '-', '{none}', 0, NULL::text, NULL::timestamptz WHERE NOT EXISTS (SELECT 1 FROM shown)) x
ORDER BY rejected_at DESC NULLS LAST"""


def flags_sql(lang: Lang) -> str:
    """Failed quality checks of the last 31 days, newest first; a placeholder row when all passed."""
    none = _placeholder(T("近 31 天无质量问题", "no flagged day in the last 31 days"), lang)
    return f"""
WITH shown AS (
  SELECT q.day, q.data_item_code, q.check_name, q.value, q.threshold, q.reason
  FROM uplink_quality_flags q
  WHERE q.park_id = {PARK} AND NOT q.passed AND q.day >= {_RECENT_DAY}
  ORDER BY q.day DESC, q.data_item_code, q.check_name
  LIMIT 200
)
SELECT {", ".join(FLAG_COLUMNS)}
FROM (SELECT * FROM shown
      UNION ALL
      SELECT NULL::date, '-', '-', NULL::double precision, NULL::double precision, '{none}'
      WHERE NOT EXISTS (SELECT 1 FROM shown)) x
ORDER BY day DESC NULLS LAST, data_item_code"""


def uplink_row(ctx: BuildContext) -> Row:
    """The uplink row: counts, endpoints, rejects, flagged days."""
    zero_green = (Step(None, "green"), Step(1, "orange"))
    return Row(T("上传（能耗在线监测平台）", "Uplink (energy monitoring platforms)"), (
        Panel(PanelKind.STAT, T("上传队列", "Uplink queue"), (SqlQuery(COUNTS, (
            "backlog", "acked", "rejected", "flagged_days")),), width=6, height=8,
              description=T("积压 = 未确认记录；平台拒收的记录保留原因，不阻塞队列",
                            "Backlog = records not yet acknowledged; rejected records keep the platform's "
                            "reason and never block the queue"),
              overrides=(
                  Override("backlog", display=T("积压", "Backlog"), steps=(Step(None, "green"), Step(200, "orange"))),
                  Override("acked", display=T("已确认", "Acknowledged"), steps=(Step(None, "text"),)),
                  Override("rejected", display=T("被拒", "Rejected"), steps=zero_green),
                  Override("flagged_days", display=T("质量问题天数 (31 天)", "Flagged days (31 d)"),
                           steps=zero_green))),
        Panel(PanelKind.TABLE, T("上传端点", "Platform endpoints"), (SqlQuery(endpoints_sql(ctx.lang),
                                                                         ENDPOINT_COLUMNS, nullable=(
            "oldest_unacked", "last_acked_at", "last_error")),),
              description=T("parkpulse uplink status", "parkpulse uplink status"), width=18, height=8,
              overrides=(
                  Override("endpoint", display=T("端点", "Endpoint")),
                  Override("profile", display=T("规范", "Profile")),
                  Override("backlog", display=T("积压", "Backlog")),
                  Override("acked", display=T("已确认", "Acknowledged")),
                  Override("rejected", display=T("被拒", "Rejected")),
                  Override("oldest_unacked", display=T("最早未确认时段", "Oldest unacknowledged")),
                  Override("last_acked_at", display=T("最近确认", "Last acknowledged")),
                  Override("last_error", display=T("最近错误", "Last error")))),
        Panel(PanelKind.TABLE, T("平台拒收记录", "Rejected by the platform"), (SqlQuery(
            rejects_sql(ctx.lang), REJECT_COLUMNS, nullable=("reason", "rejected_at")),),
              description=T("修正映射或数据后将以新版本重发", "Fixed mappings or data are re-sent as a new revision"),
              width=12, height=8, overrides=(
                  Override("endpoint", display=T("端点", "Endpoint")),
                  Override("record_key", display=T("记录", "Record")),
                  Override("revision", display=T("版本", "Revision")),
                  Override("reason", display=T("平台原因", "Platform's reason")),
                  Override("rejected_at", display=T("拒收时间", "Rejected at")))),
        Panel(PanelKind.TABLE, T("数据质量问题（按天）", "Flagged days"), (SqlQuery(
            flags_sql(ctx.lang), FLAG_COLUMNS, nullable=("day", "value", "threshold")),),
              description=T("完整率 ≥ 90 %、日月一致 ≤ 5 %、时标对齐", "Completeness >= 90 %, daily vs monthly "
                            "within 5 %, timestamp alignment"),
              width=12, height=8, overrides=(
                  Override("day", display=T("日期", "Day")),
                  Override("data_item_code", display=T("数据项", "Data item")),
                  Override("check_name", display=T("检查", "Check")),
                  Override("value", display=T("值", "Value"), decimals=3),
                  Override("threshold", display=T("阈值", "Threshold")),
                  Override("reason", display=T("原因", "Reason")))),
    ))
