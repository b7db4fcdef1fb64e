"""Incremental evaluation of the operational alarm rules (``parkpulse alarms evaluate``, after ``aggregate``).

A run judges the parks that are *due*: those with readings in the change log between the alarms' watermark
and the aggregation's (so the aggregates the rules read are already recomputed), a new last will or status
message, a changed rule override, and every park not judged for ``alarms_recheck_minutes`` (time alone
makes a device silent). Each park is evaluated in one transaction under a per-park advisory lock: its rules
(file + overrides), their conditions (:mod:`alarms._rules`), the lifecycle plan (:mod:`alarms._lifecycle`)
and its writes and notifications (:mod:`alarms._lifecycle_store`). Only a run over all due parks advances
the watermark; one that failed for a park leaves it, so the next run judges that park again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb

from alarms import _evaluate_inputs as inputs
from alarms._lifecycle import plan_rule
from alarms._lifecycle_store import AppliedChange, apply_plan, clear_alarm, load_overrides, load_state, lock_park
from alarms._rules import (
    Outcome,
    contracted_demand,
    counter_anomaly,
    data_gap,
    device_offline,
    estimated_share,
    meter_balance,
    pue_limit,
    uplink_backlog,
)
from alarms._rules_errors import AlarmError, AlarmRulesError
from alarms._rules_model import (
    ContractedDemandRule,
    CounterAnomalyRule,
    DataGapRule,
    DeviceOfflineRule,
    EstimatedShareRule,
    MeterBalanceRule,
    PueLimitRule,
    Rule,
    RulesFile,
    UplinkBacklogRule,
    effective_rules,
    load_rules,
)

logger = logging.getLogger(__name__)

WATERMARK_JOB: Final = "alarms"


@dataclass(frozen=True, slots=True)
class ParkResult:
    """One park's evaluation: what changed, which rules were skipped and why, alarms still open."""

    park_id: str
    as_of: datetime
    changes: tuple[AppliedChange, ...]
    notes: dict[str, str]
    n_live: int


@dataclass(slots=True)
class EvaluationReport:
    """A run: the parks judged, the watermark reached, the failures and how long it took."""

    parks: list[ParkResult] = field(default_factory=list)
    watermark: int | None = None
    failed: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def count(self, action: str) -> int:
        """How many alarms the run raised, re-opened, cleared … (``action`` of :class:`AppliedChange`)."""
        return sum(1 for p in self.parks for c in p.changes if c.action == action)

    def summary(self) -> str:
        """One line: parks, raised, re-opened, cleared, live, failures, time."""
        live = sum(p.n_live for p in self.parks)
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (f"alarms: {len(self.parks)} park(s) evaluated, {self.count('raised')} raised, "
                f"{self.count('reopened')} re-opened, {self.count('cleared')} cleared, {live} open or acknowledged"
                f"{failed}, {self.elapsed_s:.2f} s")


class _Inputs:
    """The park's inputs, each read once per evaluation and only when an enabled rule needs it."""

    def __init__(self, conn: psycopg.Connection[Any], park_id: str, tz: ZoneInfo, step_s: int) -> None:
        self.conn, self.park_id, self.tz, self.step_s = conn, park_id, tz, step_s
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _get(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def anchor(self) -> datetime | None:
        found: datetime | None = self._get(("anchor",), lambda: inputs.data_anchor(self.conn, self.park_id,
                                                                                    self.step_s))
        return found

    def judge(self, rule: Rule, now: datetime) -> Outcome:  # noqa: PLR0911  (one return per rule kind)
        """The rule's condition on this park's data."""
        c, park, tz, anchor = self.conn, self.park_id, self.tz, self.anchor()
        match rule:
            case DeviceOfflineRule():
                return device_offline(rule.params, self._get(("devices",), lambda: inputs.devices(c, park)), now, tz)
            case DataGapRule() | EstimatedShareRule():
                days = rule.params.lookback_days
                rows = [] if anchor is None else self._get(
                    ("days", days), lambda: inputs.meter_days(c, park, anchor, days, tz))
                if isinstance(rule, DataGapRule):
                    return data_gap(rule.params, rows, anchor, tz)
                return estimated_share(rule.params, rows, anchor, tz)
            case CounterAnomalyRule():
                p = rule.params
                flagged = [] if anchor is None else self._get(
                    ("flags", p.lookback_hours, p.mask),
                    lambda: inputs.flagged_intervals(c, park, anchor, p.lookback_hours, p.mask))
                return counter_anomaly(p, flagged, anchor, tz)
            case MeterBalanceRule():
                b = rule.params
                return meter_balance(b, inputs.balance_rows(c, park, b.grain, b.lookback_periods), tz)
            case PueLimitRule():
                return pue_limit(rule.params, inputs.pue_days(c, park, rule.params.window_days))
            case ContractedDemandRule():
                d = rule.params
                energy = {} if anchor is None or d.contracted_demand_kw is None else inputs.level1_import(
                    c, park, anchor, d.lookback_hours)
                return contracted_demand(d, energy, tz)
            case UplinkBacklogRule():
                return uplink_backlog(rule.params)
        raise AssertionError(f"no condition for rule kind {rule.kind!r}")  # pragma: no cover


def evaluate_park(conn: psycopg.Connection[Any], park_id: str, rules_file: RulesFile, now: datetime,
                  default_interval_s: int = 900) -> ParkResult | None:
    """Judge every rule of one park and carry out the lifecycle, in one transaction; None for an unknown park."""
    with conn.transaction():
        tz = inputs.park_timezone(conn, park_id)
        if tz is None:
            return None
        lock_park(conn, park_id)
        notes: dict[str, str] = {}
        try:
            rules = effective_rules(rules_file, park_id, load_overrides(conn, park_id))
        except AlarmRulesError as exc:
            notes["overrides"] = (f"the park's rule overrides are ignored until fixed ({exc}); change them with "
                                  f"`parkpulse alarms rules --park {park_id} --set …` or `--reset RULE`")
            rules = effective_rules(rules_file, park_id, {})
        ctx = _Inputs(conn, park_id, tz, inputs.interval_s(conn, park_id, default_interval_s))
        live, cleared, pending = load_state(conn, park_id)
        changes: list[AppliedChange] = []
        for rule in rules:
            outcome = ctx.judge(rule, now) if rule.enabled else None
            plan = plan_rule(rule, outcome, live=live.get(rule.id, {}), cleared=cleared.get(rule.id, {}),
                             pending=pending.get(rule.id, {}), now=now)
            if plan.note:
                notes[rule.id] = plan.note
            changes.extend(apply_plan(conn, park_id, rule, plan, now))
        known = {r.id for r in rules}
        for rule_id, by_subject in sorted(live.items()):
            if rule_id in known:
                continue
            for subject, alarm in sorted(by_subject.items()):
                severity = clear_alarm(conn, alarm.alarm_id, "rule removed from the rules file", now)
                if severity is not None:
                    changes.append(AppliedChange(alarm.alarm_id, rule_id, subject, "cleared", severity, False))
        conn.execute("DELETE FROM alarm_pending WHERE park_id = %s AND NOT (rule_id = ANY(%s))",
                     (park_id, sorted(known)))
        row = conn.execute("SELECT count(*) FROM alarms WHERE park_id = %s AND state <> 'cleared'",
                           (park_id,)).fetchone()
        conn.execute(
            """INSERT INTO alarm_evaluations (park_id, evaluated_at, as_of, notes) VALUES (%s, now(), %s, %s)
               ON CONFLICT (park_id) DO UPDATE SET evaluated_at = now(), as_of = EXCLUDED.as_of,
                   notes = EXCLUDED.notes""", (park_id, now, Jsonb(notes)))
    return ParkResult(park_id, now, tuple(changes), notes, int(row[0]) if row else 0)


def change_log_position(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(alarms' watermark, aggregation's): changes up to the latter are already in the aggregates."""
    row = conn.execute("SELECT last_change_id FROM alarm_watermark WHERE job = %s", (WATERMARK_JOB,)).fetchone()
    low = int(row[0]) if row else 0
    agg = conn.execute("SELECT max(last_change_id) FROM aggregation_watermarks").fetchone()
    high = int(agg[0]) if agg and agg[0] is not None else 0
    if high == 0:  # nothing aggregated yet: the device rules still see every change
        last = conn.execute("SELECT max(change_id) FROM reading_changes").fetchone()
        high = int(last[0]) if last and last[0] is not None else 0
    return low, max(low, high)


def due_parks(conn: psycopg.Connection[Any], low: int, high: int, now: datetime, recheck: timedelta) -> list[str]:
    """Parks with changes since their last evaluation, or not judged for ``recheck``."""
    rows = conn.execute(
        """SELECT p.park_id FROM parks p LEFT JOIN alarm_evaluations e USING (park_id)
           WHERE e.park_id IS NULL OR e.as_of < %(stale)s
              OR p.park_id IN (SELECT DISTINCT d.park_id FROM reading_changes rc
                               JOIN series s USING (series_id) JOIN devices d USING (device_key)
                               WHERE rc.change_id > %(low)s AND rc.change_id <= %(high)s)
              OR EXISTS (SELECT 1 FROM devices d JOIN device_status ds USING (device_key)
                         WHERE d.park_id = p.park_id AND ds.status_at > e.evaluated_at)
              OR EXISTS (SELECT 1 FROM alarm_rule_overrides o
                         WHERE o.park_id = p.park_id AND o.updated_at > e.evaluated_at)
           ORDER BY p.park_id""", {"stale": now - recheck, "low": low, "high": high}).fetchall()
    return [r[0] for r in rows]


class AlarmEvaluator:
    """Evaluates the due parks (or the parks asked for) against one rules file."""

    def __init__(self, database_url: str, rules: RulesFile | None = None, *, recheck_minutes: float = 15.0,
                 interval_minutes: int = 15) -> None:
        self.database_url = database_url
        self.rules = rules or load_rules()
        self.recheck = timedelta(minutes=recheck_minutes)
        self.interval_s = interval_minutes * 60

    @classmethod
    def from_settings(cls, database_url: str | None = None, rules_file: Path | None = None) -> AlarmEvaluator:
        """An evaluator configured from :class:`~alarms._evaluate_settings.AlarmSettings`."""
        from alarms._evaluate_settings import AlarmSettings  # noqa: PLC0415  (pydantic-settings on first use)

        settings = AlarmSettings(database_url=database_url) if database_url else AlarmSettings()  # type: ignore[call-arg]
        return cls(settings.database_url, load_rules(rules_file or settings.alarms_rules_file),
                   recheck_minutes=settings.alarms_recheck_minutes,
                   interval_minutes=settings.aggregation_interval_minutes)

    def run(self, park_ids: Sequence[str] | None = None, now: datetime | None = None) -> EvaluationReport:
        """Evaluate ``park_ids`` (all due parks when None) as of ``now`` (default: the clock)."""
        started = time.monotonic()
        as_of = (now or datetime.now(UTC)).astimezone(UTC)
        report = EvaluationReport()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            low, high = change_log_position(conn)
            parks = list(park_ids) if park_ids is not None else due_parks(conn, low, high, as_of, self.recheck)
            for park_id in parks:
                try:
                    result = evaluate_park(conn, park_id, self.rules, as_of, self.interval_s)
                except (psycopg.errors.DataError, psycopg.errors.IntegrityError, AlarmError) as exc:
                    logger.exception("alarms: evaluating park %s failed", park_id)
                    report.failed[park_id] = str(exc)
                    continue
                if result is None:
                    report.failed[park_id] = f"unknown park {park_id!r}: register it with `parkpulse registry`"
                    continue
                report.parks.append(result)
            if park_ids is None and not report.failed:
                conn.execute(
                    """INSERT INTO alarm_watermark (job, last_change_id) VALUES (%s, %s)
                       ON CONFLICT (job) DO UPDATE SET
                           last_change_id = GREATEST(alarm_watermark.last_change_id, EXCLUDED.last_change_id),
                           updated_at = now()""", (WATERMARK_JOB, high))
                report.watermark = high
        report.elapsed_s = time.monotonic() - started
        logger.info("%s", report.summary())
        return report


def change_lines(report: EvaluationReport) -> list[str]:
    """One line per alarm raised, re-opened, cleared or escalated, then the summary."""
    lines = [f"alarm {c.alarm_id} {c.action}: {p.park_id} {c.rule_id} {c.subject} ({c.severity})"
             + (", notification queued" if c.notified else "")
             for p in report.parks for c in p.changes]
    lines.extend(f"alarms: park {park} not evaluated: {why}" for park, why in sorted(report.failed.items()))
    lines.append(report.summary())
    return lines


def after_aggregate(database_url: str, reports_dir: Path | None = None) -> list[str]:
    """Hook for ``parkpulse aggregate``: evaluate the due parks; one line per alarm change and a summary.

    Has the signature of ``aggregation._cli.AFTER_RUN`` hooks (``reports_dir`` is ignored). Never raises
    for an alarm problem: a failure becomes a line, so the aggregation run it follows still succeeds.
    """
    del reports_dir
    try:
        return change_lines(AlarmEvaluator.from_settings(database_url).run())
    except AlarmError as exc:
        return [f"alarms: not evaluated ({exc})"]
    except psycopg.OperationalError as exc:
        return [f"alarms: not evaluated, the database is unavailable ({exc}); run `parkpulse alarms evaluate`"]
