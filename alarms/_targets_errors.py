"""Errors of targets, projections and 预警 levels.

Hierarchy::

    TargetError
    ├── InvalidTargetError    a target that cannot be stored (unknown indicator, wrong unit, variant or year …)
    ├── TargetFileError       a targets import file is malformed (carries file, row, field and what to do)
    ├── ThresholdsError       the 预警 thresholds file is unreadable or inconsistent
    └── UnknownParkError      the park is not registered

A target quantity that cannot be projected (no actuals yet, no value added declared) is not an error: the
projection row says so and names the import or the data it needs.
"""

from __future__ import annotations

from alarms.errors import AlarmsPackageError


class TargetError(AlarmsPackageError):
    """Base class of every error of targets, projections and 预警 levels."""


class InvalidTargetError(TargetError):
    """A target that cannot be stored; ``problems`` names each field and what to write instead."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TargetFileError(TargetError):
    """A targets import file (CSV or YAML) is malformed; nothing of it was stored."""

    def __init__(self, file: str, row: int | None, field: str | None, reason: str) -> None:
        where = file if row is None else f"{file} row {row}"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.row = row
        self.field = field
        self.reason = reason


class ThresholdsError(TargetError):
    """The 预警 thresholds file cannot be used; the message names the file, the field and the fix."""


class UnknownParkError(TargetError):
    """The park is not registered."""

    def __init__(self, park_id: str) -> None:
        super().__init__(f"no park {park_id!r}; register it first (parkpulse registry park add {park_id})")
        self.park_id = park_id
