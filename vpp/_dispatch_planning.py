"""What the planner needs about a park, read from the DR store: assets with live state, limits, present load.

The park's baseline load for the connection limits is its last metered boundary demand in the hour before
planning, held flat over the event (a forecast would be better; the dispatcher replans on every event
version). Without metered demand the connection limits cannot be checked and the plan says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import psycopg

from flex._direction import Direction
from flex._plan_assets import plan_envelopes, uniform_intervals
from flex._plan_model import PlanInterval, PlanRequest
from flex._store import DrStore
from vpp.errors import DispatchError


def load_request(database_url: str, park_id: str, direction: Direction, intervals: Sequence[PlanInterval], *,
                 now: datetime, overrides: Mapping[str, float]) -> tuple[PlanRequest, tuple[str, ...]]:
    """The plan request for ``park_id`` and the warnings about assets left out."""
    with DrStore(database_url, max_size=1) as store:
        park = store.get_park(park_id)
        if park is None:
            raise DispatchError(f"no park {park_id!r}; register it first (parkpulse registry park add {park_id})")
        records = store.list_assets(park_id, now=now)
        settings = store.get_settings(park_id)
        demand = store.park_demand(park_id, now - timedelta(hours=1), now)
    envelopes, warnings = plan_envelopes(records, intervals, now=now, overrides=overrides, timezone=park.timezone)
    baseline: tuple[float, ...] | None = None
    if demand.height > 0:
        last = demand.get_column("demand_kw").drop_nulls()
        if last.len() > 0:
            baseline = (float(last[-1]),) * len(intervals)
    request = PlanRequest(intervals=tuple(intervals), assets=envelopes, direction=direction,
                          park_baseline_kw=baseline, import_max_kw=settings.import_max_kw,
                          export_max_kw=settings.export_max_kw)
    return request, warnings


def stored_event_intervals(database_url: str, event_id: str, *,
                           step: timedelta) -> tuple[str, Direction, tuple[PlanInterval, ...]]:
    """(park, direction, intervals) of a stored event: the VTN's intervals of its version in force when it came
    through the VPP intake (kW targets, or the committed kW while a level is non-zero), else the flex DR
    event's window cut into ``step`` intervals at its requested kW."""
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            """SELECT park_id, direction, signal_kind, committed_kw, intervals FROM vpp_events
               WHERE dr_event_id = %s""", (event_id,)).fetchone()
    if row is not None and row[4]:
        park, direction, kind, committed, raw = row
        out = []
        for iv in raw:
            start = datetime.fromisoformat(iv["start"])
            value = float(iv["value"])
            target = max(0.0, value) if kind == "target_kw" else (float(committed) if value > 0 else 0.0)
            out.append(PlanInterval(start, start + timedelta(seconds=float(iv["duration_s"])), target))
        return park, Direction(direction), tuple(out)
    with DrStore(database_url, max_size=1) as store:
        event = store.get_event(event_id)
    if event is None:
        raise DispatchError(f"no DR event {event_id!r}; list them with `parkpulse vpp events list` or "
                            "`parkpulse dr events`")
    return event.park_id, event.direction, uniform_intervals(event.start, event.end, event.requested_kw, step=step)
