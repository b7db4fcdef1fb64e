"""Errors raised by the aggregation package.

Hierarchy::

    AggregationError
    ├── RegistryError            the factor registry or policy file is malformed, or a factor is missing
    │   └── FactorNotFoundError  no factor for (kind, subject, region, year), even after the fallbacks
    ├── PeriodError              a reporting period string that cannot be parsed
    ├── DeclaredDataError        a declared-data import file is malformed (carries file, line, reason)
    ├── ConfigurationChangedError the stored job parameters differ from the settings (rebuild needed)
    └── StoreUnavailableError    the database cannot be reached (worth retrying)

Data-quality problems in meter readings are never exceptions: they become interval quality flags.
"""

from __future__ import annotations


class AggregationError(Exception):
    """Base class for every error of the ``aggregation`` package."""


class RegistryError(AggregationError):
    """The factor registry or the policy file is malformed, or a requested factor is missing."""


class FactorNotFoundError(RegistryError):
    """No factor matches the request, even after the region and vintage fallbacks."""

    def __init__(self, kind: str, subject: str, detail: str) -> None:
        super().__init__(f"no {kind} factor for {subject!r}: {detail}")
        self.kind = kind
        self.subject = subject


class PeriodError(AggregationError):
    """A reporting period that is not ``YYYY``, ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-YTD`` or ``YYYY-MM-YTD``."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid period {text!r}: {reason}")
        self.text = text
        self.reason = reason


class DeclaredDataError(AggregationError):
    """A declared-data import file is malformed; nothing of it was stored."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class ConfigurationChangedError(AggregationError):
    """The interval length (or another stored job parameter) changed since the last run."""


class StoreUnavailableError(AggregationError):
    """The database cannot be reached; the job can be retried, every write is idempotent."""
