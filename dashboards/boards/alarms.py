"""告警 · Alarms: the operational alarm list of a park (``alarms`` table, migration 0011), for the health board.

The list shows every alarm that is open or acknowledged, then those cleared inside the dashboard's time
range, most urgent first; when there is none it shows one "no alarms" row rather than Grafana's empty
"No data", so the operator sees that the evaluator has nothing to report. The counts panel gives the open
alarms per severity. Alarms are acknowledged with ``parkpulse alarms ack`` or the API, not from Grafana.
"""

from __future__ import annotations

from typing import Final

from dashboards._context import BuildContext
from dashboards._model import Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import Lang, T
from dashboards.boards._common import PARK

COLUMNS: Final = ("alarm_id", "state", "severity", "rule", "subject", "value", "limit_value", "unit", "raised_at",
                  "acknowledged_by", "message")
_STATE_RANK: Final = "CASE a.state WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END"
_SEVERITY_RANK: Final = "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"

COUNTS = f"""
SELECT count(*) FILTER (WHERE a.state = 'open' AND a.severity = 'critical') AS critical,
       count(*) FILTER (WHERE a.state = 'open' AND a.severity = 'warning') AS warning,
       count(*) FILTER (WHERE a.state = 'open' AND a.severity = 'info') AS info,
       count(*) FILTER (WHERE a.state = 'acknowledged') AS acknowledged
FROM alarms a
WHERE a.park_id = {PARK} AND a.state <> 'cleared'"""


def _message_sql(lang: Lang) -> str:
    if lang is Lang.ZH:
        return "a.message_zh"
    if lang is Lang.EN:
        return "a.message_en"
    return "a.message_zh || ' · ' || a.message_en"


def list_sql(lang: Lang) -> str:
    """Open and acknowledged alarms, then those cleared in the time range; one placeholder row when none."""
    none = T("无告警", "no alarms").render(lang).replace("'", "''")
    return f"""
WITH shown AS (
  SELECT a.alarm_id, a.state, a.severity, a.rule_id AS rule, a.subject, a.value, a.limit_value, a.unit,
         a.last_raised_at AS raised_at, a.acknowledged_by, {_message_sql(lang)} AS message,
         {_STATE_RANK} AS state_rank, {_SEVERITY_RANK} AS severity_rank
  FROM alarms a
  WHERE a.park_id = {PARK} AND (a.state <> 'cleared' OR $__timeFilter(a.cleared_at))
  ORDER BY state_rank, severity_rank, a.last_raised_at DESC
  LIMIT 200
)
SELECT {", ".join(COLUMNS)}
FROM (SELECT * FROM shown
      UNION ALL
      SELECT NULL::bigint, 'ok', 'info', '-', '-', NULL::double precision, NULL::double precision, '',
             NULL::timestamptz, NULL::text, '{none}', 0, 0
      WHERE NOT EXISTS (SELECT 1 FROM shown)) x
ORDER BY state_rank, severity_rank, raised_at DESC NULLS LAST"""


def alarm_row(ctx: BuildContext) -> Row:
    """The alarms row: open alarms by severity, and the alarm list."""
    severity_steps = (Step(None, "blue"),)
    return Row(T("告警", "Alarms"), (
        Panel(PanelKind.STAT, T("未处理告警", "Open alarms"), (SqlQuery(COUNTS, (
            "critical", "warning", "info", "acknowledged")),), width=6, height=8,
              description=T("已确认的告警在条件消失后自动清除", "Acknowledged alarms clear by themselves once their "
                            "condition is gone"),
              overrides=(
                  Override("critical", display=T("严重", "Critical"), steps=(Step(None, "green"), Step(1, "red"))),
                  Override("warning", display=T("警告", "Warning"), steps=(Step(None, "green"), Step(1, "orange"))),
                  Override("info", display=T("提示", "Info"), steps=severity_steps),
                  Override("acknowledged", display=T("已确认", "Acknowledged"), steps=(Step(None, "text"),)))),
        Panel(PanelKind.TABLE, T("告警列表", "Alarm list"), (SqlQuery(list_sql(ctx.lang), COLUMNS, nullable=(
            "alarm_id", "value", "limit_value", "raised_at", "acknowledged_by")),),
              description=T("确认：parkpulse alarms ack ID --by 姓名 --comment 说明",
                            "Acknowledge: parkpulse alarms ack ID --by NAME --comment TEXT"),
              width=18, height=8, overrides=(
                  Override("alarm_id", display=T("编号", "ID")),
                  Override("state", display=T("状态", "State")),
                  Override("severity", display=T("级别", "Severity")),
                  Override("rule", display=T("规则", "Rule")),
                  Override("subject", display=T("对象", "Subject")),
                  Override("value", display=T("测量值", "Value")),
                  Override("limit_value", display=T("限值", "Limit")),
                  Override("unit", display=T("单位", "Unit")),
                  Override("raised_at", display=T("告警时间", "Raised")),
                  Override("acknowledged_by", display=T("确认人", "Acknowledged by")),
                  Override("message", display=T("说明", "Message")))),
    ))
