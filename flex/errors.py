"""Errors raised by the flexibility, baseline and demand-response core.

Hierarchy::

    FlexError
    ├── DataFileError                 a shipped or user data file (calendar, presets, policy) is malformed
    │   └── CalendarFileError         a park calendar file (CSV/YAML) or request body: names row and field
    ├── CalendarCoverageError         a date outside the years the holiday calendar covers
    ├── BaselineError
    │   ├── UnknownBaselineMethodError    no preset with that name
    │   ├── InvalidLoadDataError          the interval demand frame has the wrong shape, zone or grid
    │   └── InsufficientBaselineDataError too few eligible days (or pre-event intervals) for the method
    ├── EventError
    │   └── InvalidEventError         an event window or request that cannot be evaluated
    ├── AssetError                    asset parameters or state that contradict each other
    └── NotFoundError                 a park or event id the repository does not know

Data-quality problems of an otherwise computable event are *not* exceptions: the evaluation returns them
as ``quality_reasons`` so a utility sees the number together with why it must not be trusted.
"""

from __future__ import annotations

from datetime import date


class FlexError(Exception):
    """Base class for every error of the ``flex`` package."""


class DataFileError(FlexError):
    """A data file (holiday calendar, baseline presets, DR policy) does not match its schema."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"data file {path}: {reason}")
        self.path = path
        self.reason = reason


class CalendarFileError(DataFileError):
    """A park calendar (file or request body) has a bad row; ``row`` and ``field`` say where.

    ``row`` is the file line for CSV, the 1-based item number for YAML and JSON lists, None for the whole file.
    """

    def __init__(self, path: str, reason: str, *, row: int | None = None, field: str | None = None) -> None:
        where = "".join(p for p in (f", row {row}" if row is not None else "",
                                      f", field {field!r}" if field else "") if p)
        FlexError.__init__(self, f"calendar {path}{where}: {reason}")
        self.path = path
        self.reason = reason
        self.row = row
        self.field = field


class CalendarCoverageError(FlexError):
    """The holiday calendar has no data for the year of ``day``; extend the calendar file first."""

    def __init__(self, day: date, covered_years: tuple[int, ...]) -> None:
        super().__init__(
            f"the public-holiday calendar does not cover {day.isoformat()} (covered years: "
            f"{', '.join(map(str, covered_years)) or 'none'}); add that year to the calendar data file"
        )
        self.day = day
        self.covered_years = covered_years


class BaselineError(FlexError):
    """Base class for baseline problems."""


class UnknownBaselineMethodError(BaselineError):
    """No baseline preset has this name."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown baseline method {name!r}; known presets: {', '.join(known)}")
        self.name = name
        self.known = known


class InvalidLoadDataError(BaselineError):
    """The interval demand frame cannot be used (missing columns, naive timestamps, off-grid rows)."""


class InsufficientBaselineDataError(BaselineError):
    """Fewer eligible baseline days (or pre-event intervals) than the method requires."""

    def __init__(self, method: str, needed: int, found: int, detail: str) -> None:
        super().__init__(f"baseline {method}: needs {needed} eligible day(s) or interval(s), found {found}; {detail}")
        self.method = method
        self.needed = needed
        self.found = found
        self.detail = detail


class EventError(FlexError):
    """Base class for demand-response event problems."""


class InvalidEventError(EventError):
    """The event window, direction or requested power cannot be evaluated."""


class AssetError(FlexError):
    """Asset parameters or live state contradict each other (e.g. SOC bounds reversed)."""


class NotFoundError(FlexError):
    """A park or event id that the repository does not know."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class PlanError(FlexError):
    """A dispatch plan cannot be made: bad inputs (no intervals, bad targets) or the solver found no optimum."""
