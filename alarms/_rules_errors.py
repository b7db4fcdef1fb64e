"""Errors of the operational alarms (rules, evaluation, lifecycle).

Hierarchy::

    AlarmError
    ├── AlarmRulesError       a rules file, a per-park override or a --set assignment is invalid
    ├── AlarmNotFoundError    no alarm with that id (in that park)
    └── AlarmStateError       the transition asked for does not apply (acknowledge a cleared alarm …)

A rule whose inputs are missing (no contracted demand set, no data centre) is not an error: it is
evaluated as skipped, with a note saying what to set.
"""

from __future__ import annotations

from alarms.errors import AlarmsPackageError


class AlarmError(AlarmsPackageError):
    """Base class of every error of the operational alarms."""


class AlarmRulesError(AlarmError):
    """A rules file, a per-park override or a ``--set`` assignment is invalid.

    ``problems`` lists each problem with where it is (file, park, rule, field) and what to do.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class AlarmNotFoundError(AlarmError):
    """No alarm with that id (in that park)."""

    def __init__(self, alarm_id: int, park_id: str | None = None) -> None:
        where = f" in park {park_id!r}" if park_id else ""
        super().__init__(f"no alarm {alarm_id}{where}; list the alarms with `parkpulse alarms list --state all`")
        self.alarm_id = alarm_id
        self.park_id = park_id


class AlarmStateError(AlarmError):
    """The transition does not apply to the alarm's state (acknowledging a cleared one, twice …)."""

    def __init__(self, alarm_id: int, state: str, detail: str) -> None:
        super().__init__(f"alarm {alarm_id} is {state}: {detail}")
        self.alarm_id = alarm_id
        self.state = state
