"""DR capacity per evaluated event and per baseline method (pure): what each method says the park delivered.

The capacity summary (:func:`flex.dr_capacity`) reports one verified figure: the best qualifying event under
the method each event was evaluated with. A utility reviewing a season, or a park choosing its programme's
baseline, needs the whole table: for every evaluated event and every baseline method, the average reduction
R_avg (kW) and its share of the annual maximum 15-min demand, ``DR_capacity_% = R_avg / P_max × 100``
(domain.md §3.1). A method that cannot be computed for an event (too few eligible days, no definition for
that day type) gets a row with the reason instead of a number, so gaps are visible rather than dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from flex._baseline import EventWindow, compute_baseline
from flex._baseline_method import BaselineMethod
from flex._calendar import HolidayCalendar
from flex._capacity import DemandPeak
from flex._direction import Direction
from flex._events import EventRequest, evaluate_event
from flex._policy import DrPolicy
from flex.errors import BaselineError, CalendarCoverageError, InvalidEventError


@dataclass(frozen=True, slots=True)
class MethodCapacity:
    """One event under one baseline method: the reduction it shows, or why it cannot say."""

    method: str
    avg_reduction_kw: float | None
    delivered_kwh: float | None
    pct_of_annual_max: float | None
    ratio_requested: float | None
    quality_ok: bool | None
    problem: str | None          # why there is no figure, or why it would not count as verified
    evaluated_with: bool         # the method of the event's stored evaluation (the one capacity uses)


@dataclass(frozen=True, slots=True)
class EventCapacity:
    """An evaluated event with its figure under every method."""

    event_id: str
    start: datetime
    end: datetime
    direction: Direction
    requested_kw: float
    declared_kw: float | None
    sets_verified: bool           # this event's stored result is the summary's verified capacity
    methods: tuple[MethodCapacity, ...]

    @property
    def duration_h(self) -> float:
        """Event length in hours."""
        return (self.end - self.start).total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class CapacityByEvent:
    """Every evaluated event of a park under every baseline method, as of ``as_of``."""

    park_id: str
    as_of: datetime
    annual_max_demand_kw: float | None
    annual_max_demand_at: datetime | None
    methods: tuple[str, ...]
    events: tuple[EventCapacity, ...]


def pct_of_peak(kw: float | None, peak: DemandPeak | None) -> float | None:
    """``kw`` as % of the annual maximum demand (None when either is unknown or the peak is not positive)."""
    if kw is None or peak is None or peak.demand_kw <= 0:
        return None
    return kw / peak.demand_kw * 100.0


def capacity_by_method(
    request: EventRequest,
    demand: pl.DataFrame,
    methods: Sequence[BaselineMethod],
    *,
    evaluated_with: str,
    timezone: str,
    calendar: HolidayCalendar,
    event_days: Iterable[date],
    notice_day: date | None,
    policy: DrPolicy,
    peak: DemandPeak | None,
) -> tuple[MethodCapacity, ...]:
    """Evaluate one event under each method against the same demand (baseline days and event window).

    ``demand`` must reach back far enough for the longest look-back of ``methods`` and cover the event.
    """
    window: EventWindow = request.window
    days = frozenset(event_days)
    out: list[MethodCapacity] = []
    for method in methods:
        try:
            baseline = compute_baseline(demand, window, method, timezone=timezone, calendar=calendar,
                                        event_days=days, notice_day=notice_day)
            perf = evaluate_event(request, baseline, demand, policy)
        except (BaselineError, CalendarCoverageError, InvalidEventError) as exc:
            out.append(MethodCapacity(method.name, None, None, None, None, None, str(exc),
                                      method.name == evaluated_with))
            continue
        out.append(MethodCapacity(
            method=method.name,
            avg_reduction_kw=perf.avg_reduction_kw,
            delivered_kwh=perf.delivered_kwh,
            pct_of_annual_max=pct_of_peak(perf.avg_reduction_kw, peak),
            ratio_requested=perf.ratio_requested,
            quality_ok=perf.quality_ok,
            problem="; ".join(perf.quality_reasons) or None,
            evaluated_with=method.name == evaluated_with,
        ))
    return tuple(out)
