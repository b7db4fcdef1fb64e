"""The alarm lifecycle as a pure plan: what one evaluation of one rule does to the park's alarms.

States: ``open`` (raised) → ``acknowledged`` (who, with a comment) → ``cleared`` (the condition is gone).
For each subject where the rule's condition holds, :func:`plan_rule` decides:

* an alarm of that subject is open or acknowledged → *refresh* it (new value and message; a change of
  severity is recorded, and a rise to ``critical`` is notified);
* one cleared less than ``reopen_within_min`` ago → *re-open* it (flap suppression: no new alarm and no
  new notification);
* otherwise count the evaluation; once the condition has held for ``raise_after`` consecutive evaluations
  → *raise* a new alarm (notified).

Every open or acknowledged alarm of the rule whose subject no longer qualifies is *cleared*. A disabled rule
clears all of its alarms; a skipped one (inputs missing) changes nothing. :mod:`alarms._lifecycle_store`
carries the plan out in one transaction, with the notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from alarms._notification import Severity
from alarms._rules import Finding, Outcome, Skipped
from alarms._rules_model import Rule

State = Literal["open", "acknowledged", "cleared"]
STATES: Final[tuple[State, ...]] = ("open", "acknowledged", "cleared")
SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "critical": 2}
EVALUATOR: Final = "evaluator"


@dataclass(frozen=True, slots=True)
class LiveAlarm:
    """An alarm of the rule that is open or acknowledged."""

    alarm_id: int
    subject: str
    state: State
    severity: Severity


@dataclass(frozen=True, slots=True)
class ClearedAlarm:
    """The newest cleared alarm of a subject (a re-open candidate)."""

    alarm_id: int
    subject: str
    cleared_at: datetime


@dataclass(frozen=True, slots=True)
class Raise:
    """A new alarm."""

    finding: Finding


@dataclass(frozen=True, slots=True)
class Reopen:
    """A cleared alarm whose condition came back within ``reopen_within_min``."""

    alarm_id: int
    finding: Finding


@dataclass(frozen=True, slots=True)
class Refresh:
    """An open or acknowledged alarm whose condition still holds (new value, message, maybe severity)."""

    alarm_id: int
    finding: Finding
    severity_from: Severity
    severity_to: Severity

    @property
    def escalated(self) -> bool:
        """True when the alarm became critical: a notification goes out, escalation may follow."""
        return self.severity_to == "critical" and SEVERITY_RANK[self.severity_from] < SEVERITY_RANK["critical"]


@dataclass(frozen=True, slots=True)
class Clear:
    """An alarm whose condition is gone (or whose rule was disabled)."""

    alarm_id: int
    subject: str
    reason: str


@dataclass(slots=True)
class RulePlan:
    """Everything one evaluation of one rule changes, plus the pending counts to store."""

    rule_id: str
    raises: list[Raise] = field(default_factory=list)
    reopens: list[Reopen] = field(default_factory=list)
    refreshes: list[Refresh] = field(default_factory=list)
    clears: list[Clear] = field(default_factory=list)
    pending: dict[str, int] = field(default_factory=dict)   # subject → consecutive evaluations so far
    note: str | None = None                                 # why the rule was skipped

    @property
    def changed(self) -> bool:
        """True when an alarm is raised, re-opened, cleared or changes severity."""
        return bool(self.raises or self.reopens or self.clears
                    or any(r.severity_from != r.severity_to for r in self.refreshes))


def plan_rule(rule: Rule, outcome: Outcome | None, *, live: Mapping[str, LiveAlarm],
              cleared: Mapping[str, ClearedAlarm], pending: Mapping[str, int], now: datetime) -> RulePlan:
    """The transitions of one rule's evaluation (``outcome`` None: the rule is disabled).

    Args:
        rule: the rule in effect for the park.
        outcome: its condition's findings, or :class:`Skipped`, or None when the rule is disabled.
        live: the rule's open or acknowledged alarms by subject.
        cleared: the rule's newest cleared alarm by subject.
        pending: consecutive evaluations each subject's condition has held without an alarm yet.
        now: the evaluation instant (``as_of``).
    """
    plan = RulePlan(rule.id)
    if outcome is None:
        plan.clears = [Clear(a.alarm_id, s, "rule disabled") for s, a in sorted(live.items())]
        return plan
    if isinstance(outcome, Skipped):
        plan.note = outcome.note
        plan.pending = dict(pending)
        return plan
    window = timedelta(minutes=rule.reopen_within_min)
    held = {f.subject: f for f in outcome}
    for subject, finding in sorted(held.items()):
        alarm = live.get(subject)
        if alarm is not None:
            plan.refreshes.append(Refresh(alarm.alarm_id, finding, alarm.severity, rule.severity))
            continue
        last = cleared.get(subject)
        if last is not None and now - last.cleared_at < window:
            plan.reopens.append(Reopen(last.alarm_id, finding))
            continue
        hits = pending.get(subject, 0) + 1
        if hits >= rule.raise_after:
            plan.raises.append(Raise(finding))
        else:
            plan.pending[subject] = hits
    plan.clears = [Clear(a.alarm_id, s, "condition gone") for s, a in sorted(live.items()) if s not in held]
    return plan
