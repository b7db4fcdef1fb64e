"""Demand-response event measurement and verification (M&V), domain.md §3.3.

For every interval t of the event window: B_t is the (adjusted) baseline, A_t the metered demand and the
reduction R_t = B_t − A_t for load-reduction (削峰, ``up``) events, A_t − B_t for load-increase (填谷,
``down``) events. Delivered energy ΔE = Σ R_t·Δt, average reduction R_avg = ΔE / T_event (Jiangsu
style), minimum interval reduction R_min, and ratios against the requested and the declared power.
A data-quality gate (missing intervals, estimated share of the event window and of the baseline days,
baseline adjustment failures) decides whether the result may count as *verified* capacity; a failed gate
keeps the numbers but says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import polars as pl

from flex._baseline import BaselineResult, EventWindow
from flex._direction import Direction
from flex._policy import DrPolicy, load_policy
from flex._series import IntervalSeries
from flex.errors import InvalidEventError


@dataclass(frozen=True, slots=True)
class EventRequest:
    """What the utility asked for: window, direction, requested power and the park's declared power."""

    window: EventWindow
    direction: Direction
    requested_kw: float
    declared_kw: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.requested_kw) and self.requested_kw > 0):
            raise InvalidEventError(f"requested_kw must be a positive number, got {self.requested_kw}")
        if self.declared_kw is not None and not (math.isfinite(self.declared_kw) and self.declared_kw >= 0):
            raise InvalidEventError(f"declared_kw must be >= 0, got {self.declared_kw}")


@dataclass(frozen=True)
class EventPerformance:
    """Result of one event evaluation: per-interval table, totals, ratios and the quality verdict."""

    request: EventRequest
    baseline_method: str
    intervals: pl.DataFrame  # ts, baseline_kw, actual_kw (null if missing), reduction_kw, estimated_share
    delivered_kwh: float
    duration_h: float
    avg_reduction_kw: float
    min_reduction_kw: float | None
    max_reduction_kw: float | None
    ratio_requested: float
    ratio_declared: float | None
    band: str | None
    intervals_meeting_min: int | None
    estimated_share_event: float
    estimated_share_baseline: float
    missing_intervals: int
    baseline_days: tuple[date, ...]
    quality_ok: bool
    quality_reasons: tuple[str, ...] = field(default=())


def evaluate_event(
    request: EventRequest,
    baseline: BaselineResult,
    actual: pl.DataFrame | IntervalSeries,
    policy: DrPolicy | None = None,
) -> EventPerformance:
    """Evaluate an event against its baseline and the metered demand (see module docstring).

    Missing actual intervals deliver nothing (they count as zero reduction in ΔE, so R_avg is never
    flattered) and fail the quality gate.
    """
    pol = policy or load_policy()
    minutes = baseline.method.interval_minutes
    series = actual if isinstance(actual, IntervalSeries) else IntervalSeries(actual, minutes)
    slots = request.window.slots(minutes)
    if (request.window.start, request.window.end) != (baseline.window.start, baseline.window.end):
        raise InvalidEventError("the baseline was computed for a different window than the event")
    base_kw = baseline.baseline_kw()
    dt_h = minutes / 60.0
    sign = 1.0 if request.direction is Direction.UP else -1.0
    rows: list[tuple[datetime, float, float | None, float | None, float | None]] = []
    for ts in slots:
        b = base_kw[ts]
        point = series.get(ts)
        if point is None:
            rows.append((ts, b, None, None, None))
        else:
            rows.append((ts, b, point.demand_kw, sign * (b - point.demand_kw), point.estimated_share))
    reductions = [r[3] for r in rows if r[3] is not None]
    missing = len(rows) - len(reductions)
    duration_h = len(slots) * dt_h
    delivered_kwh = sum(reductions) * dt_h
    avg_kw = delivered_kwh / duration_h
    ratio_requested = avg_kw / request.requested_kw
    ratio_declared = avg_kw / request.declared_kw if request.declared_kw else None
    est_values = [r[4] for r in rows if r[4] is not None]
    est_event = sum(est_values) / len(est_values) if est_values else 1.0
    meeting = None
    if pol.min_interval_fraction is not None:
        floor_kw = pol.min_interval_fraction * request.requested_kw
        meeting = sum(1 for r in reductions if r >= floor_kw)

    reasons: list[str] = []
    dq = pol.data_quality
    if missing > dq.max_event_missing_intervals:
        reasons.append(f"{missing} event interval(s) have no metered data")
    if est_event > dq.max_event_estimated_share:
        reasons.append(f"event window {est_event:.0%} estimated > {dq.max_event_estimated_share:.0%} allowed")
    if baseline.estimated_share > dq.max_baseline_estimated_share:
        reasons.append(
            f"baseline data {baseline.estimated_share:.0%} estimated > {dq.max_baseline_estimated_share:.0%} allowed"
        )
    if baseline.method.adjustment.kind != "none" and not baseline.adjustment.applied:
        reasons.append(f"day-of adjustment could not be applied: {baseline.adjustment.note}")
    if meeting is not None and meeting < len(slots):
        share = f"{pol.min_interval_fraction:.0%}"
        reasons.append(f"only {meeting} of {len(slots)} intervals reached {share} of the request")

    frame = pl.DataFrame(
        rows,
        schema={
            "ts": pl.Datetime("us", "UTC"),
            "baseline_kw": pl.Float64,
            "actual_kw": pl.Float64,
            "reduction_kw": pl.Float64,
            "estimated_share": pl.Float64,
        },
        orient="row",
    ).sort("ts")
    return EventPerformance(
        request=request,
        baseline_method=baseline.method.name,
        intervals=frame,
        delivered_kwh=delivered_kwh,
        duration_h=duration_h,
        avg_reduction_kw=avg_kw,
        min_reduction_kw=min(reductions) if reductions else None,
        max_reduction_kw=max(reductions) if reductions else None,
        ratio_requested=ratio_requested,
        ratio_declared=ratio_declared,
        band=pol.band_for(ratio_requested),
        intervals_meeting_min=meeting,
        estimated_share_event=est_event,
        estimated_share_baseline=baseline.estimated_share,
        missing_intervals=missing,
        baseline_days=baseline.days_used,
        quality_ok=not reasons,
        quality_reasons=tuple(reasons),
    )


def event_window(start: datetime, duration: timedelta) -> EventWindow:
    """Convenience: the window starting at ``start`` lasting ``duration``."""
    return EventWindow(start, start + duration)
