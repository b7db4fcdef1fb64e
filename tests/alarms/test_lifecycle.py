"""The lifecycle plan of one rule's evaluation, as a pure function: raise, hold for M evaluations, refresh,
escalate, re-open within the flap window, clear, disable, skip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alarms._lifecycle import ClearedAlarm, LiveAlarm, plan_rule
from alarms._rules import Finding, Skipped
from alarms._rules_model import load_rules, override_rule

NOW = datetime(2026, 10, 14, 12, 0, tzinfo=UTC)
RULE = load_rules().rule("device_offline")
assert RULE is not None


def _f(subject: str, value: float = 1.0) -> Finding:
    return Finding(subject, value, 0.5, "s", f"{subject} en", f"{subject} zh")


def test_first_evaluation_raises_and_clears_what_is_gone():
    live = {"m-old": LiveAlarm(7, "m-old", "acknowledged", "critical")}
    plan = plan_rule(RULE, [_f("m1"), _f("m2")], live=live, cleared={}, pending={}, now=NOW)
    assert [r.finding.subject for r in plan.raises] == ["m1", "m2"]
    assert [(c.alarm_id, c.reason) for c in plan.clears] == [(7, "condition gone")]
    assert plan.pending == {}
    assert plan.changed


def test_one_open_alarm_per_subject_is_refreshed_not_raised_again():
    live = {"m1": LiveAlarm(3, "m1", "open", "critical")}
    plan = plan_rule(RULE, [_f("m1", 9.0)], live=live, cleared={}, pending={}, now=NOW)
    assert plan.raises == []
    assert plan.clears == []
    assert [(r.alarm_id, r.finding.value, r.escalated) for r in plan.refreshes] == [(3, 9.0, False)]
    assert not plan.changed


def test_condition_must_hold_for_raise_after_evaluations():
    rule = override_rule(RULE, {"raise_after": 3}, "test")
    pending: dict[str, int] = {}
    for expected_hits in (1, 2):
        plan = plan_rule(rule, [_f("m1")], live={}, cleared={}, pending=pending, now=NOW)
        assert plan.raises == []
        assert plan.pending == {"m1": expected_hits}
        pending = plan.pending
    # the condition lapses once: the count starts again
    lapsed = plan_rule(rule, [], live={}, cleared={}, pending=pending, now=NOW)
    assert lapsed.pending == {}
    plan = plan_rule(rule, [_f("m1")], live={}, cleared={}, pending={"m1": 2}, now=NOW)
    assert [r.finding.subject for r in plan.raises] == ["m1"]
    assert plan.pending == {}


def test_flap_suppression_reopens_a_recently_cleared_alarm():
    window = timedelta(minutes=RULE.reopen_within_min)
    recent = {"m1": ClearedAlarm(11, "m1", NOW - window + timedelta(seconds=1))}
    plan = plan_rule(RULE, [_f("m1")], live={}, cleared=recent, pending={}, now=NOW)
    assert [(r.alarm_id, r.finding.subject) for r in plan.reopens] == [(11, "m1")]
    assert plan.raises == []
    old = {"m1": ClearedAlarm(11, "m1", NOW - window)}
    plan = plan_rule(RULE, [_f("m1")], live={}, cleared=old, pending={}, now=NOW)
    assert plan.reopens == []
    assert [r.finding.subject for r in plan.raises] == ["m1"]


def test_a_rule_raised_to_critical_escalates_its_open_alarms():
    warning = override_rule(RULE, {"severity": "warning"}, "test")
    live = {"m1": LiveAlarm(3, "m1", "open", "warning")}
    plan = plan_rule(RULE, [_f("m1")], live=live, cleared={}, pending={}, now=NOW)
    assert [(r.severity_from, r.severity_to, r.escalated) for r in plan.refreshes] == [("warning", "critical", True)]
    assert plan.changed
    down = plan_rule(warning, [_f("m1")], live={"m1": LiveAlarm(3, "m1", "open", "critical")}, cleared={},
                     pending={}, now=NOW)
    assert [(r.severity_to, r.escalated) for r in down.refreshes] == [("warning", False)]


def test_disabled_rule_clears_and_skipped_rule_changes_nothing():
    live = {"m1": LiveAlarm(3, "m1", "open", "critical")}
    disabled = plan_rule(RULE, None, live=live, cleared={}, pending={"m2": 1}, now=NOW)
    assert [(c.alarm_id, c.reason) for c in disabled.clears] == [(3, "rule disabled")]
    assert disabled.pending == {}
    skipped = plan_rule(RULE, Skipped("no data"), live=live, cleared={}, pending={"m2": 1}, now=NOW)
    assert (skipped.clears, skipped.raises, skipped.pending, skipped.note) == ([], [], {"m2": 1}, "no data")
