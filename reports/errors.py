"""Errors raised by the reports package.

Hierarchy::

    ReportError
    ├── FontNotFoundError      no installed font can draw the report's Chinese text (says what to install)
    ├── UnknownParkError       the park is not registered
    └── ReportPeriodError      the requested month cannot be reported (malformed, or not started yet)

Missing *data* (no indicators published yet, no data centre, no balance) is never an exception: the
report shows "未计算 not computed" with the command that fills it in.
"""

from __future__ import annotations


class ReportError(Exception):
    """Base class for every error of the ``reports`` package."""


class FontNotFoundError(ReportError):
    """No installed font covers the Chinese characters the report needs (and has TrueType outlines)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"no CJK font found for the report ({detail}). Install one: `apt-get install fonts-wqy-microhei` "
            "on Debian/Ubuntu (`parkpulse report fonts --install` does it when run as root), or point "
            "PARKPULSE_REPORT_FONT_FILE at a TrueType font (.ttf/.ttc) that covers Simplified Chinese")
        self.detail = detail


class UnknownParkError(ReportError):
    """The park of a report request does not exist."""

    def __init__(self, park_id: str) -> None:
        super().__init__(f"unknown park {park_id!r}; list parks with `parkpulse registry park list` and check --park")
        self.park_id = park_id


class ReportPeriodError(ReportError):
    """A monthly report period that is not ``YYYY-MM`` or lies in the future."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid report period {text!r}: {reason}")
        self.text = text
        self.reason = reason
