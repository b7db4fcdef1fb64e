"""Store 预警 levels: one hysteresis step per running target, level changes kept, each change notified.

:func:`evaluate_warnings` takes a :class:`alarms._projection_store.ProjectionReport` and, in one transaction,
steps the state of every target whose period is running (the year's annual targets and the running month's
monthly ones; a closed period's level is final and only shown), records each change in
``target_warning_changes`` and enqueues its bilingual notification in the same transaction
(:func:`alarms._notify.enqueue_notification`), so a message exists if and only if the change committed.

A first evaluation sets the level without hysteresis; it notifies only when that level is yellow or red.
:func:`evaluate_parks` runs it for every park with targets for its current year (cron, or after aggregation).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import psycopg

from alarms._notification import Notification, Severity
from alarms._notify import enqueue_notification
from alarms._projection_store import ProjectionReport, ProjectionRow, build_report
from alarms._targets import TARGET_INDICATORS, TargetKey
from alarms._targets_store import local_today, park_timezone
from alarms._warning import LEVEL_ZH, Level, Reason, WarningPolicy, WarningState, step

logger = logging.getLogger(__name__)

_SEVERITY: Final[dict[str, Severity]] = {"green": "info", "yellow": "warning", "red": "critical"}
_KEY_WHERE: Final = ("park_id = %s AND subject_kind = %s AND subject = %s AND indicator = %s AND variant = %s "
                     "AND year = %s AND month = %s")


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One stored level change and the notification enqueued with it (``None`` for a first green level)."""

    change_id: int
    key: TargetKey
    previous: Level | None
    level: Level
    reason: Reason
    ratio: float
    notification_key: str | None


def _key_params(k: TargetKey) -> tuple[Any, ...]:
    return (k.park_id, k.subject_kind, k.subject, k.indicator, k.variant, k.year, k.month)


def evaluate_warnings(conn: psycopg.Connection[Any], report: ProjectionReport, policy: WarningPolicy, *,
                      now: datetime | None = None) -> list[LevelChange]:
    """Step, store and notify the level of every running target of ``report`` (one evaluation on its day)."""
    at = now or datetime.now(UTC)
    changes: list[LevelChange] = []
    with conn.transaction():
        for row in report.rows:
            if not row.running or row.ratio is None or row.value is None:
                continue
            change = _evaluate_one(conn, report, row, policy, at)
            if change is not None:
                changes.append(change)
    for c in changes:
        logger.info("预警 %s %s %s: %s -> %s (%s, ratio %.3f)", c.key.park_id, c.key.indicator, c.key.period_label,
                    c.previous, c.level, c.reason, c.ratio)
    return changes


def evaluate_parks(conn: psycopg.Connection[Any], policy: WarningPolicy, *, park_ids: list[str] | None = None,
                   now: datetime | None = None) -> dict[str, list[LevelChange]]:
    """Evaluate every park that has live targets for its current local year (or ``park_ids``), one park per
    transaction; the hook to run after each aggregation run or once a day."""
    at = now or datetime.now(UTC)
    rows = conn.execute("""SELECT DISTINCT t.park_id FROM targets t JOIN parks p USING (park_id)
                           WHERE t.superseded_at IS NULL
                             AND t.year = extract(year FROM %s::timestamptz AT TIME ZONE p.timezone)::int
                             AND (%s::text[] IS NULL OR t.park_id = ANY(%s::text[]))
                           ORDER BY 1""", (at, park_ids, park_ids)).fetchall()
    out: dict[str, list[LevelChange]] = {}
    for (park_id,) in rows:
        report = build_report(conn, park_id, local_today(park_timezone(conn, park_id), at).year, policy, now=at)
        out[park_id] = evaluate_warnings(conn, report, policy, now=at)
    return out


def _evaluate_one(conn: psycopg.Connection[Any], report: ProjectionReport, row: ProjectionRow,
                  policy: WarningPolicy, at: datetime) -> LevelChange | None:
    k = row.key
    assert row.ratio is not None
    assert row.value is not None
    found = conn.execute(f"SELECT level, pending_level, pending_count, last_eval_day FROM target_warning_states "
                         f"WHERE {_KEY_WHERE} FOR UPDATE", _key_params(k)).fetchone()
    state = WarningState(found[0], found[1], found[2], found[3]) if found else None
    direction = TARGET_INDICATORS[k.indicator].direction
    result = step(state, row.ratio, policy.thresholds(k.indicator), direction, margin=policy.margin,
                  persistence_days=policy.persistence_days, day=report.as_of)
    s = result.state
    proj = row.projection
    bt = proj.backtest if proj is not None else None
    ratio = row.ratio  # a cap of 0 that is exceeded: +inf, stored as 'Infinity'
    conn.execute("""
        INSERT INTO target_warning_states (park_id, subject_kind, subject, indicator, variant, year, month, level,
            level_since, pending_level, pending_count, last_eval_day, target_id, target_value, unit, direction,
            projected_value, band_low, band_high, ratio, method, backtest_mape, backtest_bias, backtest_n,
            evaluated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (park_id, subject_kind, subject, indicator, variant, year, month) DO UPDATE SET
            level = EXCLUDED.level,
            level_since = CASE WHEN target_warning_states.level = EXCLUDED.level
                               THEN target_warning_states.level_since ELSE EXCLUDED.level_since END,
            pending_level = EXCLUDED.pending_level, pending_count = EXCLUDED.pending_count,
            last_eval_day = EXCLUDED.last_eval_day, target_id = EXCLUDED.target_id,
            target_value = EXCLUDED.target_value, unit = EXCLUDED.unit, direction = EXCLUDED.direction,
            projected_value = EXCLUDED.projected_value, band_low = EXCLUDED.band_low,
            band_high = EXCLUDED.band_high, ratio = EXCLUDED.ratio, method = EXCLUDED.method,
            backtest_mape = EXCLUDED.backtest_mape, backtest_bias = EXCLUDED.backtest_bias,
            backtest_n = EXCLUDED.backtest_n, evaluated_at = EXCLUDED.evaluated_at""",
                 (*_key_params(k), s.level, at, s.pending, s.count, s.day, row.version.target_id,
                  row.version.target.value, row.version.target.unit, direction, row.value, row.low, row.high, ratio,
                  proj.method_text if proj is not None else "", bt.mape if bt else None, bt.bias if bt else None,
                  bt.n if bt else 0, at))
    if result.reason is None:
        return None
    inserted = conn.execute("""
        INSERT INTO target_warning_changes (park_id, subject_kind, subject, indicator, variant, year, month,
            from_level, to_level, reason, ratio, projected_value, target_value, target_id, changed_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING change_id""",
                            (*_key_params(k), result.previous, s.level, result.reason, ratio, row.value,
                             row.version.target.value, row.version.target_id, at)).fetchone()
    assert inserted is not None
    change_id = int(inserted[0])
    notification_key = None
    if not (result.reason == "first" and s.level == "green"):
        notification_key = f"target-warning:{change_id}"
        enqueue_notification(conn, _notification(row, previous=result.previous, level=s.level,
                                                 dedupe_key=notification_key, at=at))
        conn.execute("UPDATE target_warning_changes SET notification_key = %s WHERE change_id = %s",
                     (notification_key, change_id))
    return LevelChange(change_id, k, result.previous, s.level, result.reason, ratio, notification_key)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.4g}"


def _notification(row: ProjectionRow, *, previous: Level | None, level: Level, dedupe_key: str,
                  at: datetime) -> Notification:
    """The bilingual message of one level change."""
    k, spec, t = row.key, TARGET_INDICATORS[row.key.indicator], row.version.target
    assert row.ratio is not None
    ratio = f"{row.ratio:.1%}" if math.isfinite(row.ratio) else "∞"
    subject_zh = "园区" if k.subject_kind == "park" else f"{'站点' if k.subject_kind == 'site' else '企业'} {k.subject}"
    what = "年末预计" if k.month == 0 else "月末预计"
    what_en = "year-end projection" if k.month == 0 else "month-end projection"
    band = f"{_fmt(row.low)} – {_fmt(row.high)}"
    proj = row.projection
    bt = proj.backtest if proj is not None else None
    mape = f"{bt.mape:.1%}" if bt is not None and bt.mape is not None else "—"
    was_zh = f"（原为{LEVEL_ZH[previous]}色）" if previous else ""
    was_en = f" (was {previous})" if previous else ""
    return Notification(
        park_id=k.park_id, dedupe_key=dedupe_key, severity=_SEVERITY[level],
        title_zh=f"{LEVEL_ZH[level]}色预警：{subject_zh} {spec.name_zh} {k.period_label} {what}为目标的 {ratio}",
        title_en=f"Target warning {level}: {k.subject_label} {spec.name_en} {k.period_label} {what_en} at {ratio} "
                 "of target",
        body_zh=(f"{subject_zh} {spec.name_zh}（{k.variant}）{k.period_label}：{what} {_fmt(row.value)} {t.unit}，"
                 f"区间 {band}，目标 {_fmt(t.value)} {t.unit}（{t.source}），比值 {ratio}，"
                 f"预警等级 {LEVEL_ZH[level]}色{was_zh}。预测方法：{proj.method_text_zh if proj else '—'}；"
                 f"回测误差 MAPE {mape}。"),
        body_en=(f"{k.subject_label} {spec.name_en} ({k.variant}) {k.period_label}: {what_en} {_fmt(row.value)} "
                 f"{t.unit}, band {band}, target {_fmt(t.value)} {t.unit} ({t.source}), ratio {ratio}, level "
                 f"{level}{was_en}. Method: {proj.method_text if proj else '—'}; back-test MAPE {mape}."),
        created_at=at,
        links={"projection": f"/v1/parks/{k.park_id}/projection?year={k.year}"})
