"""A :class:`ReportValues` provider from flex alone, for a VEN run without live M&V.

``parkpulse vpp run`` (the whole loop) answers the reports from live M&V, whose baseline is fixed at
notification. ``parkpulse vpp ven2 run`` on its own still owes the VTN telemetry: metered park load from
the latest interval demand, available flexibility in the active event's direction (load reduction outside
events) for the next hour, and no baseline (None: the point is left out of the report).
"""

from __future__ import annotations

from datetime import datetime

from flex import Direction, DrService, FlexError


class FlexReportValues:
    """Usage and availability from flex's DrService (database reads; call it from a worker thread)."""

    def __init__(self, service: DrService) -> None:
        """Read through ``service``."""
        self.service = service

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Latest park load (None when the park has no recent demand)."""
        del dr_event_id
        try:
            return self.service.current_flex(park_id, now=at).park_load_kw
        except FlexError:
            return None

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Unknown without live M&V."""
        del park_id, dr_event_id, at
        return None

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Flexibility for one hour in the event's direction (up outside events)."""
        try:
            event = self.service.repo.get_event(dr_event_id) if dr_event_id else None
            flex = self.service.current_flex_for_duration(park_id, 1.0, now=at)
        except FlexError:
            return None
        return flex.down_kw if event is not None and event.direction is Direction.DOWN else flex.up_kw
