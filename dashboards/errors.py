"""Errors raised by the dashboards package.

Hierarchy::

    DashboardError
    ├── MacroError              a Grafana SQL macro cannot be expanded (Grafana fails the query the same way)
    ├── InterpolationError      a template variable has no value or an unknown format
    ├── DashboardValidationError a generated dashboard breaks a rule (duplicate ids, unresolved references…)
    ├── DataFileError           a data file the boards read is malformed or inconsistent
    └── DeployError             pushing dashboards to Grafana failed
        ├── GrafanaUnavailableError  Grafana cannot be reached or answered 5xx (worth retrying)
        └── GrafanaAuthError         the token was rejected (401/403)
"""

from __future__ import annotations


class DashboardError(Exception):
    """Base class for every error of the ``dashboards`` package."""


class MacroError(DashboardError):
    """A macro in a panel query cannot be expanded; ``macro`` names it."""

    def __init__(self, macro: str, reason: str) -> None:
        super().__init__(f"{macro}: {reason}")
        self.macro = macro


class InterpolationError(DashboardError):
    """A template variable reference cannot be replaced; ``variable`` names it."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"${variable}: {reason}")
        self.variable = variable


class DashboardValidationError(DashboardError):
    """One or more dashboards break a rule; ``problems`` lists every violation found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid dashboards:\n  " + "\n  ".join(problems))
        self.problems = problems


class DataFileError(DashboardError):
    """A data file the boards read (targets, thresholds, factors) is malformed or inconsistent."""


class DeployError(DashboardError):
    """Pushing dashboards to Grafana failed."""


class GrafanaUnavailableError(DeployError):
    """Grafana could not be reached or answered with a server error (retrying may help)."""


class GrafanaAuthError(DeployError):
    """Grafana rejected the token (HTTP 401 or 403)."""
