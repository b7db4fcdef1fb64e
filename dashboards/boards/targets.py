"""目标与预警 · Targets & 预警: the 预警 level of every evaluated target (green / yellow / red by the
year-end or month-end projection ÷ the target), with the projection band, method and back-test error, and the
history of level changes.

Reads what ``parkpulse targets evaluate`` stores (``target_warning_states``, ``target_warning_changes``,
migration 0010); the projection itself is computed on request by ``parkpulse report projection`` and
``GET /v1/parks/{park}/projection``. Levels are hysteresis-filtered (alarms/_warning.py), so the colour is
the stored level, not the colour of the last ratio.
"""

from __future__ import annotations

from alarms._targets import TARGET_INDICATORS
from alarms._warning import load_warning_policy
from dashboards._context import BuildContext, values_sql
from dashboards._model import Board, Override, Panel, PanelKind, Row, SqlQuery, Step
from dashboards._text import T
from dashboards.boards._common import PARK, PARK_VAR, PERCENT

#: Level → number, so table cells and stats can be coloured by thresholds.
SEVERITY_STEPS = (Step(None, "green"), Step(1, "yellow"), Step(2, "red"))


def _names(ctx: BuildContext) -> str:
    rows = [(spec.id, T(spec.name_zh, spec.name_en).render(ctx.lang)) for spec in TARGET_INDICATORS.values()]
    return values_sql("n", (("indicator", "text"), ("name", "text")), rows)


def _levels(ctx: BuildContext) -> str:
    return f"""
SELECT coalesce(n.name, s.indicator) || ' (' || s.variant || ')' AS indicator,
       CASE WHEN s.subject_kind = 'park' THEN '-' ELSE s.subject_kind || ' ' || s.subject END AS subject,
       CASE WHEN s.month = 0 THEN s.year::text ELSE s.year::text || '-' || lpad(s.month::text, 2, '0') END AS period,
       s.target_value, s.projected_value, s.band_low, s.band_high, s.unit, s.ratio * 100 AS ratio_pct,
       CASE s.level WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END AS severity, s.level,
       s.pending_level, s.pending_count, s.method, s.backtest_mape * 100 AS backtest_mape_pct, s.backtest_n,
       s.level_since, s.evaluated_at
FROM target_warning_states s LEFT JOIN {_names(ctx)} ON n.indicator = s.indicator
WHERE s.park_id = {PARK}
ORDER BY s.year DESC, severity DESC, s.indicator, s.month
LIMIT 200"""


COUNTS = f"""
SELECT count(*) FILTER (WHERE s.level = 'red') AS red, count(*) FILTER (WHERE s.level = 'yellow') AS yellow,
       count(*) FILTER (WHERE s.level = 'green') AS green
FROM target_warning_states s
WHERE s.park_id = {PARK}"""


def _changes(ctx: BuildContext) -> str:
    return f"""
SELECT c.changed_at, coalesce(n.name, c.indicator) || ' (' || c.variant || ')' AS indicator,
       CASE WHEN c.subject_kind = 'park' THEN '-' ELSE c.subject_kind || ' ' || c.subject END AS subject,
       CASE WHEN c.month = 0 THEN c.year::text ELSE c.year::text || '-' || lpad(c.month::text, 2, '0') END AS period,
       coalesce(c.from_level, '-') AS from_level, c.to_level,
       CASE c.to_level WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END AS severity, c.reason,
       c.ratio * 100 AS ratio_pct, c.projected_value, c.target_value
FROM target_warning_changes c LEFT JOIN {_names(ctx)} ON n.indicator = c.indicator
WHERE c.park_id = {PARK} AND $__timeFilter(c.changed_at)
ORDER BY c.changed_at DESC
LIMIT 500"""


def _legend() -> T:
    policy = load_warning_policy()
    cap, floor = policy.cap, policy.floor
    return T(
        f"**预警等级**（预计值 ÷ 目标）：上限类（综合能耗、CO₂、强度、PUE）黄 ≥ {cap.yellow:g}，红 ≥ {cap.red:g}；"
        f"下限类（非化石、可再生占比）黄 < {floor.yellow:g}，红 < {floor.red:g}。\n\n"
        f"滞回：超过阈值 {policy.margin:g} 以上立即变更，否则需连续 {policy.persistence_days} 天的评估。"
        "区间来自按园区自身历史的回测误差。",
        f"**Early-warning levels** (projected ÷ target): caps (energy, CO₂, intensities, PUE) yellow ≥ {cap.yellow:g}, "
        f"red ≥ {cap.red:g}; floors (non-fossil and renewable shares) yellow < {floor.yellow:g}, "
        f"red < {floor.red:g}.\n\nHysteresis: a level moves at once past a threshold by {policy.margin:g}, "
        f"otherwise after {policy.persistence_days} consecutive daily evaluations. The band comes from the "
        "back-test error on the park's own history.")


def board(ctx: BuildContext) -> Board:
    """The targets & 预警 board."""
    level_cols = ("indicator", "subject", "period", "target_value", "projected_value", "band_low", "band_high", "unit",
                  "ratio_pct", "severity", "level", "pending_level", "pending_count", "method", "backtest_mape_pct",
                  "backtest_n", "level_since", "evaluated_at")
    levels = Row(T("预警等级", "Early-warning levels"), (
        Panel(PanelKind.STAT, T("目标数（按等级）", "Targets by level"),
              (SqlQuery(COUNTS, ("red", "yellow", "green")),),
              decimals=0, width=8, height=6, overrides=(
                  Override("red", display=T("红", "red"), color="red"),
                  Override("yellow", display=T("黄", "yellow"), color="yellow"),
                  Override("green", display=T("绿", "green"), color="green"))),
        Panel(PanelKind.TEXT, T("等级规则", "How levels are set"), text=_legend(), width=16, height=6),
        Panel(PanelKind.TABLE, T("各目标预警", "Early warning per target"), (
            SqlQuery(_levels(ctx), level_cols,
                     nullable=("band_low", "band_high", "pending_level", "backtest_mape_pct")),),
              width=24, height=10, overrides=(
                  Override("indicator", display=T("指标", "Indicator")),
                  Override("subject", display=T("对象", "Subject")),
                  Override("period", display=T("期间", "Period")),
                  Override("target_value", display=T("目标", "Target"), decimals=3),
                  Override("projected_value", display=T("预计", "Projected"), decimals=3),
                  Override("band_low", display=T("区间下限", "Band low"), decimals=3),
                  Override("band_high", display=T("区间上限", "Band high"), decimals=3),
                  Override("unit", display=T("单位", "Unit")),
                  Override("ratio_pct", display=T("预计/目标", "Projected / target"), unit=PERCENT, decimals=1),
                  Override("severity", display=T("等级", "Level"), steps=SEVERITY_STEPS, cell="color-background",
                           decimals=0),
                  Override("level", hidden=True),
                  Override("pending_level", display=T("待定等级", "Pending level")),
                  Override("pending_count", display=T("待定天数", "Pending days"), decimals=0),
                  Override("method", display=T("预测方法", "Method")),
                  Override("backtest_mape_pct", display=T("回测 MAPE", "Back-test MAPE"), unit=PERCENT, decimals=1),
                  Override("backtest_n", display=T("回测月数", "Back-test months"), decimals=0),
                  Override("level_since", display=T("等级起始", "Level since")),
                  Override("evaluated_at", display=T("评估时间", "Evaluated at")))),
    ))
    history = Row(T("等级变更历史", "Level changes"), (
        Panel(PanelKind.TABLE, T("预警变更", "Early-warning changes"), (SqlQuery(_changes(ctx), (
            "changed_at", "indicator", "subject", "period", "from_level", "to_level", "severity", "reason", "ratio_pct",
            "projected_value", "target_value")),),
              width=24, height=9, overrides=(
                  Override("changed_at", display=T("时间", "Changed at")),
                  Override("severity", display=T("新等级", "New level"), steps=SEVERITY_STEPS, cell="color-background",
                           decimals=0),
                  Override("ratio_pct", display=T("预计/目标", "Projected / target"), unit=PERCENT, decimals=1),
                  Override("projected_value", display=T("预计", "Projected"), decimals=3),
                  Override("target_value", display=T("目标", "Target"), decimals=3))),
    ))
    return Board(
        uid="pp-targets", title=T("目标与预警", "Targets & early warnings"),
        description=T("双控目标的年末/月末预计与预警等级", "Year-end and month-end projections against targets, "
                                                    "with early-warning levels"),
        rows=(levels, history), variables=(PARK_VAR,), time_from="now-1y", refresh="15m",
        tags=("targets", "early-warning"))
