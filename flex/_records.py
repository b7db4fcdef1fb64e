"""Stored DR records and the repository interface the services use (PostgreSQL and in-memory).

The service layer (:mod:`flex._service`) only talks to a :class:`DrRepository`; :class:`flex.DrStore`
implements it on PostgreSQL/TimescaleDB and :class:`flex.MemoryRepository` in memory for unit tests,
demos and API contract fuzzing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import polars as pl

from flex._assets import Asset
from flex._calendar import CalendarDay
from flex._capacity import DemandPeak, DrCapacity, EventRecord
from flex._direction import Direction
from flex._flexibility import ConnectionLimit


@dataclass(frozen=True, slots=True)
class ParkInfo:
    """A park as the DR features need it."""

    park_id: str
    name: str | None = None
    timezone: str = "Asia/Shanghai"
    province: str | None = None
    grid_region: str | None = None


@dataclass(frozen=True, slots=True)
class DrSettings:
    """A park's grid connection limits and programme choices (defaults when none are stored)."""

    import_max_kw: float | None = None
    export_max_kw: float | None = None
    baseline_method: str = "JIANGSU_5WD"
    baseline_overrides: Mapping[str, Any] = field(default_factory=dict)
    declared_duration_h: float | None = None
    site_limits: Mapping[str, ConnectionLimit] = field(default_factory=dict)

    @property
    def park_limit(self) -> ConnectionLimit | None:
        """The park boundary limit, or None when neither direction is limited."""
        if self.import_max_kw is None and self.export_max_kw is None:
            return None
        return ConnectionLimit(self.import_max_kw, self.export_max_kw)


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """A configured asset with its live state resolved (``asset.state`` None when unknown or stale)."""

    asset: Asset
    device_id: str | None = None
    state_at: datetime | None = None
    state_source: str = "none"  # readings | snapshot | none
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DrEvent:
    """A registered DR event."""

    event_id: str
    park_id: str
    start: datetime
    end: datetime
    direction: Direction
    requested_kw: float
    declared_kw: float | None = None
    baseline_method: str = "JIANGSU_5WD"
    baseline_overrides: Mapping[str, Any] = field(default_factory=dict)
    notified_at: datetime | None = None
    source: str = "manual"
    program_id: str | None = None
    status: str = "registered"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventResult:
    """The stored outcome of an event evaluation (the per-interval table is stored separately)."""

    event_id: str
    evaluated_at: datetime
    baseline_method: str
    baseline_params: Mapping[str, Any]
    delivered_kwh: float
    duration_h: float
    avg_reduction_kw: float
    min_reduction_kw: float | None
    max_reduction_kw: float | None
    ratio_requested: float
    ratio_declared: float | None
    band: str | None
    estimated_share_event: float
    estimated_share_baseline: float
    missing_intervals: int
    quality_ok: bool
    quality_reasons: tuple[str, ...]
    baseline_days: tuple[date, ...]
    adjustment: Mapping[str, Any]
    warnings: tuple[str, ...]


INTERVAL_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "baseline_kw": pl.Float64(),
    "baseline_unadjusted_kw": pl.Float64(),
    "actual_kw": pl.Float64(),
    "reduction_kw": pl.Float64(),
    "estimated_share": pl.Float64(),
}


class DrRepository(Protocol):
    """Storage the DR services need; every method is synchronous and short."""

    def list_parks(self, park_ids: Collection[str] | None, *, limit: int, offset: int) -> tuple[list[ParkInfo], int]:
        """Parks (optionally only ``park_ids``) ordered by id, and the total count."""
        ...

    def get_park(self, park_id: str) -> ParkInfo | None:
        """One park or None."""
        ...

    def get_settings(self, park_id: str) -> DrSettings:
        """The park's DR settings (defaults when none are stored)."""
        ...

    def put_settings(self, park_id: str, settings: DrSettings) -> None:
        """Create or replace the park's DR settings and site limits."""
        ...

    def put_asset(self, park_id: str, record: AssetRecord) -> None:
        """Create or replace an asset (its state, if given, becomes the snapshot)."""
        ...

    def list_assets(self, park_id: str, *, now: datetime) -> list[AssetRecord]:
        """Enabled assets with live state resolved at ``now``."""
        ...

    def park_demand(self, park_id: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Park boundary demand in [start, end): ts, demand_kw, estimated_share (see flex._series)."""
        ...

    def park_peak(self, park_id: str, start: datetime, end: datetime) -> DemandPeak | None:
        """Maximum interval demand in [start, end)."""
        ...

    def create_event(self, event: DrEvent) -> DrEvent:
        """Store a new event; raises :class:`flex.errors.InvalidEventError` if the id exists."""
        ...

    def get_event(self, event_id: str) -> DrEvent | None:
        """One event or None."""
        ...

    def list_events(
        self, park_id: str, *, start: datetime | None, end: datetime | None, limit: int, offset: int,
        direction: Direction | None = None,
    ) -> tuple[list[DrEvent], int]:
        """Events of a park overlapping [start, end) (optionally of one direction), newest first, and the total."""
        ...

    def save_result(self, result: EventResult, intervals: pl.DataFrame) -> None:
        """Store (replace) an evaluation and mark the event evaluated."""
        ...

    def get_result(self, event_id: str) -> EventResult | None:
        """The stored evaluation of an event, or None."""
        ...

    def get_intervals(self, event_id: str) -> pl.DataFrame:
        """Per-interval M&V table of an evaluated event (INTERVAL_SCHEMA)."""
        ...

    def event_records(self, park_id: str) -> list[EventRecord]:
        """All evaluated events of a park in the shape capacity needs."""
        ...

    def save_capacity(self, park_id: str, capacities: Sequence[DrCapacity]) -> None:
        """Append capacity computations to the history."""
        ...

    def capacity_history(
        self, park_id: str, *, start: datetime | None, end: datetime | None, limit: int, offset: int
    ) -> tuple[list[DrCapacity], int]:
        """Stored capacity computations, newest first, and the total count."""
        ...

    def calendar_days(self, park_id: str) -> list[CalendarDay]:
        """The park's own calendar days (layered over the national calendar), sorted by date."""
        ...

    def put_calendar_days(self, park_id: str, days: Sequence[CalendarDay], *, merge: bool = False) -> None:
        """Replace the park's calendar with ``days`` (``merge``: add or update only the given days)."""
        ...

    def clear_calendar_days(self, park_id: str, *, year: int | None = None) -> int:
        """Delete the park's days (of one local calendar year, or all); returns how many were deleted."""
        ...
