"""In-memory :class:`flex.DrRepository` for unit tests, demos and API contract fuzzing."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import polars as pl

from flex._calendar import CalendarDay
from flex._capacity import DemandPeak, DrCapacity, EventRecord
from flex._direction import Direction
from flex._records import INTERVAL_SCHEMA, AssetRecord, DrEvent, DrSettings, EventResult, ParkInfo
from flex._series import DEMAND_KW, ESTIMATED_SHARE, TS
from flex.errors import InvalidEventError

_DEMAND_SCHEMA: dict[str, pl.DataType] = {
    TS: pl.Datetime("us", "UTC"), DEMAND_KW: pl.Float64(), ESTIMATED_SHARE: pl.Float64()
}


@dataclass
class MemoryRepository:
    """Everything in dicts; ``demand`` holds each park's boundary demand frame (flex._series shape)."""

    parks: dict[str, ParkInfo] = field(default_factory=dict)
    settings: dict[str, DrSettings] = field(default_factory=dict)
    assets: dict[str, dict[str, AssetRecord]] = field(default_factory=dict)
    demand: dict[str, pl.DataFrame] = field(default_factory=dict)
    events: dict[str, DrEvent] = field(default_factory=dict)
    results: dict[str, tuple[EventResult, pl.DataFrame]] = field(default_factory=dict)
    capacities: dict[str, list[DrCapacity]] = field(default_factory=dict)
    calendars: dict[str, dict[date, CalendarDay]] = field(default_factory=dict)

    def add_park(self, park: ParkInfo, demand: pl.DataFrame | None = None) -> None:
        """Register a park and (optionally) its demand series."""
        self.parks[park.park_id] = park
        if demand is not None:
            self.demand[park.park_id] = demand

    def list_parks(self, park_ids: Collection[str] | None, *, limit: int, offset: int) -> tuple[list[ParkInfo], int]:
        """Parks ordered by id, paginated."""
        ids = sorted(p for p in self.parks if park_ids is None or p in park_ids)
        return [self.parks[p] for p in ids[offset:offset + limit]], len(ids)

    def get_park(self, park_id: str) -> ParkInfo | None:
        """One park or None."""
        return self.parks.get(park_id)

    def get_settings(self, park_id: str) -> DrSettings:
        """Stored settings or defaults."""
        return self.settings.get(park_id, DrSettings())

    def put_settings(self, park_id: str, settings: DrSettings) -> None:
        """Replace settings."""
        self.settings[park_id] = settings

    def put_asset(self, park_id: str, record: AssetRecord) -> None:
        """Replace an asset."""
        self.assets.setdefault(park_id, {})[record.asset.asset_id] = record

    def list_assets(self, park_id: str, *, now: datetime) -> list[AssetRecord]:
        """Assets as stored (their state is taken as live)."""
        del now
        return [r for _, r in sorted(self.assets.get(park_id, {}).items())]

    def _demand(self, park_id: str, start: datetime, end: datetime) -> pl.DataFrame:
        frame = self.demand.get(park_id)
        if frame is None:
            return pl.DataFrame(schema=_DEMAND_SCHEMA)
        lo, hi = start.astimezone(UTC), end.astimezone(UTC)
        return frame.with_columns(pl.col(TS).dt.convert_time_zone("UTC")).filter(
            pl.col(TS) >= lo, pl.col(TS) < hi
        ).sort(TS)

    def park_demand(self, park_id: str, start: datetime, end: datetime) -> pl.DataFrame:
        """Demand rows in [start, end)."""
        return self._demand(park_id, start, end)

    def park_peak(self, park_id: str, start: datetime, end: datetime) -> DemandPeak | None:
        """Maximum demand in [start, end)."""
        frame = self._demand(park_id, start, end).sort(DEMAND_KW, TS, descending=[True, False])
        if frame.is_empty():
            return None
        return DemandPeak(float(frame[DEMAND_KW][0]), frame[TS][0], start, end)

    def create_event(self, event: DrEvent) -> DrEvent:
        """Store a new event."""
        if event.event_id in self.events:
            raise InvalidEventError(f"event {event.event_id!r} already exists")
        if event.park_id not in self.parks:
            raise InvalidEventError(f"park {event.park_id!r} does not exist")
        stored = replace(event, created_at=event.created_at or datetime.now(UTC))
        self.events[event.event_id] = stored
        return stored

    def get_event(self, event_id: str) -> DrEvent | None:
        """One event or None."""
        return self.events.get(event_id)

    def list_events(
        self, park_id: str, *, start: datetime | None, end: datetime | None, limit: int, offset: int,
        direction: Direction | None = None,
    ) -> tuple[list[DrEvent], int]:
        """Events overlapping [start, end) (optionally of one direction), newest first."""
        found = [
            e for e in self.events.values()
            if e.park_id == park_id and (start is None or e.end > start) and (end is None or e.start < end)
            and (direction is None or e.direction is direction)
        ]
        found.sort(key=lambda e: (-e.start.timestamp(), e.event_id))
        return found[offset:offset + limit], len(found)

    def save_result(self, result: EventResult, intervals: pl.DataFrame) -> None:
        """Replace an evaluation and mark the event evaluated."""
        self.results[result.event_id] = (result, intervals.select(list(INTERVAL_SCHEMA)))
        self.events[result.event_id] = replace(self.events[result.event_id], status="evaluated")

    def get_result(self, event_id: str) -> EventResult | None:
        """The evaluation or None."""
        found = self.results.get(event_id)
        return found[0] if found else None

    def get_intervals(self, event_id: str) -> pl.DataFrame:
        """The per-interval table (empty when not evaluated)."""
        found = self.results.get(event_id)
        return found[1] if found else pl.DataFrame(schema=INTERVAL_SCHEMA)

    def event_records(self, park_id: str) -> list[EventRecord]:
        """Evaluated events of a park, oldest first."""
        out = []
        for event_id, (res, _) in self.results.items():
            e = self.events[event_id]
            if e.park_id == park_id:
                out.append(EventRecord(event_id, e.start, res.duration_h, e.direction, e.requested_kw, e.declared_kw,
                                       res.avg_reduction_kw, res.quality_ok))
        return sorted(out, key=lambda r: r.start)

    def save_capacity(self, park_id: str, capacities: Sequence[DrCapacity]) -> None:
        """Append to the history."""
        self.capacities.setdefault(park_id, []).extend(capacities)

    def capacity_history(
        self, park_id: str, *, start: datetime | None, end: datetime | None, limit: int, offset: int
    ) -> tuple[list[DrCapacity], int]:
        """History in [start, end), newest first."""
        found = [
            c for c in self.capacities.get(park_id, [])
            if (start is None or c.as_of >= start) and (end is None or c.as_of < end)
        ]
        found.sort(key=lambda c: (-c.as_of.timestamp(), c.direction.value, c.duration_h))
        return found[offset:offset + limit], len(found)

    def calendar_days(self, park_id: str) -> list[CalendarDay]:
        """The park's own days, sorted by date."""
        return [d for _, d in sorted(self.calendars.get(park_id, {}).items())]

    def put_calendar_days(self, park_id: str, days: Sequence[CalendarDay], *, merge: bool = False) -> None:
        """Replace (or merge into) the park's days."""
        current = self.calendars.get(park_id, {}) if merge else {}
        self.calendars[park_id] = {**current, **{d.day: d for d in days}}

    def clear_calendar_days(self, park_id: str, *, year: int | None = None) -> int:
        """Delete the park's days (of one year, or all)."""
        current = self.calendars.get(park_id, {})
        kept = {k: v for k, v in current.items() if year is not None and k.year != year}
        self.calendars[park_id] = kept
        return len(current) - len(kept)
