"""Domain results → response documents (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import polars as pl

from api._models import (
    AssetDurationOut,
    AssetFlexOut,
    BaselineIntervalOut,
    BaselineOut,
    CapacityDirectionOut,
    CapacityOut,
    DayAuditOut,
    DurationFlexOut,
    EventDetailOut,
    EventIntervalOut,
    EventOut,
    FlexibilityOut,
    ForecastOut,
    ForecastSlotOut,
    ParkOut,
    PerformanceOut,
)
from flex import BaselineResult, CurrentFlex, Direction, DrCapacity, DrEvent, EventResult, ParkInfo


def park_out(park: ParkInfo) -> ParkOut:
    """A park document."""
    return ParkOut(park_id=park.park_id, name=park.name, timezone=park.timezone, province=park.province,
                   grid_region=park.grid_region)


def flexibility_out(current: CurrentFlex) -> FlexibilityOut:
    """Current flexibility with the per-asset breakdown."""
    durations = [
        DurationFlexOut(duration_h=f.duration_h, up_kw=f.up_kw, down_kw=f.down_kw, up_sum_kw=f.up_sum_kw,
                        down_sum_kw=f.down_sum_kw, derating_up=f.derating_up, derating_down=f.derating_down,
                        limited_by=list(f.limited_by))
        for f in current.durations
    ]
    assets = []
    for record in current.assets:
        asset = record.asset
        per_duration = [
            AssetDurationOut(duration_h=f.duration_h, up_kw=a.up_kw, down_kw=a.down_kw, rebound_kwh=a.rebound_kwh)
            for f in current.durations for a in f.assets if a.asset_id == asset.asset_id
        ]
        source = record.state_source if record.state_source in ("readings", "snapshot") else "none"
        assets.append(AssetFlexOut(asset_id=asset.asset_id, kind=asset.kind, site_id=asset.site_id,
                                   state_source=source, state_at=record.state_at,  # type: ignore[arg-type]
                                   durations=per_duration))
    return FlexibilityOut(park_id=current.park.park_id, as_of=current.as_of, park_load_kw=current.park_load_kw,
                          durations=durations, assets=assets)


def forecast_out(park_id: str, generated_at: datetime, frame: pl.DataFrame) -> ForecastOut:
    """Forecast slots (sorted by slot, then duration)."""
    slots = [
        ForecastSlotOut(slot_start=s, duration_h=d, up_kw=u, down_kw=dn, rebound_kwh=r)
        for s, d, u, dn, r in frame.sort("slot_start", "duration_h").select(
            "slot_start", "duration_h", "up_kw", "down_kw", "rebound_kwh").iter_rows()
    ]
    return ForecastOut(park_id=park_id, generated_at=generated_at, slots=slots)


def _direction_out(c: DrCapacity | None) -> CapacityDirectionOut:
    if c is None:
        return CapacityDirectionOut(declared_kw=None, verified_kw=None, declared_pct=None, verified_pct=None,
                                    verified_event_id=None, n_events=0, derating_factor=1.0)
    return CapacityDirectionOut(declared_kw=c.declared_kw, verified_kw=c.verified_kw, declared_pct=c.declared_pct,
                                verified_pct=c.verified_pct, verified_event_id=c.verified_event_id,
                                n_events=c.n_events, derating_factor=c.derating_factor)


def capacity_out(park_id: str, capacities: Sequence[DrCapacity], source: str) -> CapacityOut:
    """Up and down capacity of one computation (``capacities`` share ``as_of`` and duration)."""
    by_dir = {c.direction: c for c in capacities}
    first = capacities[0]
    return CapacityOut(
        park_id=park_id, as_of=first.as_of, source=source, duration_h=first.duration_h,  # type: ignore[arg-type]
        annual_max_demand_kw=first.annual_max_demand_kw, annual_max_demand_at=first.annual_max_demand_at,
        target_pct_min=first.target_pct_min, target_pct_max=first.target_pct_max,
        up=_direction_out(by_dir.get(Direction.UP)), down=_direction_out(by_dir.get(Direction.DOWN)),
    )


def group_capacities(history: Sequence[DrCapacity]) -> list[list[DrCapacity]]:
    """History rows grouped by (as_of, duration), newest first."""
    groups: dict[tuple[datetime, float], list[DrCapacity]] = {}
    for c in history:
        groups.setdefault((c.as_of, c.duration_h), []).append(c)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1]), reverse=True)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def baseline_out(park_id: str, result: BaselineResult) -> BaselineOut:
    """A baseline with audit trail."""
    return BaselineOut(
        park_id=park_id,
        method=result.method.model_dump(mode="json"),
        start=result.window.start,
        end=result.window.end,
        event_day=result.event_day,
        event_day_type=result.event_day_type.value,
        days_used=sorted(result.days_used),
        audit=[DayAuditOut(day=a.day, day_type=a.day_type.value if a.day_type else None, status=a.status,
                           reason=a.reason, rank_value=a.rank_value, estimated_share=a.estimated_share)
               for a in result.audit],
        adjustment={k: _jsonable(v) for k, v in asdict(result.adjustment).items()},
        estimated_share=result.estimated_share,
        warnings=list(result.warnings),
        intervals=[BaselineIntervalOut(ts=t, baseline_kw=b, baseline_unadjusted_kw=u)
                   for t, u, b in result.profile.select("ts", "baseline_unadjusted_kw", "baseline_kw").iter_rows()],
    )


def performance_out(result: EventResult | None) -> PerformanceOut | None:
    """Performance summary of an evaluated event."""
    if result is None:
        return None
    return PerformanceOut(
        evaluated_at=result.evaluated_at, baseline_method=result.baseline_method,
        delivered_kwh=result.delivered_kwh, duration_h=result.duration_h, avg_reduction_kw=result.avg_reduction_kw,
        min_reduction_kw=result.min_reduction_kw, max_reduction_kw=result.max_reduction_kw,
        ratio_requested=result.ratio_requested, ratio_declared=result.ratio_declared, band=result.band,
        estimated_share_event=result.estimated_share_event, estimated_share_baseline=result.estimated_share_baseline,
        missing_intervals=result.missing_intervals, quality_ok=result.quality_ok,
        quality_reasons=list(result.quality_reasons), baseline_days=list(result.baseline_days),
        warnings=list(result.warnings),
    )


def event_out(event: DrEvent, result: EventResult | None) -> EventOut:
    """An event with its performance (if evaluated)."""
    return EventOut(
        event_id=event.event_id, park_id=event.park_id, start=event.start, end=event.end,
        direction=event.direction.value, requested_kw=event.requested_kw, declared_kw=event.declared_kw,
        baseline_method=event.baseline_method, status=event.status, source=event.source,
        program_id=event.program_id, notified_at=event.notified_at, performance=performance_out(result),
    )


def event_detail_out(event: DrEvent, result: EventResult | None, intervals: pl.DataFrame) -> EventDetailOut:
    """An event with performance and its per-interval table."""
    base = event_out(event, result)
    rows = [EventIntervalOut(ts=r[0], baseline_kw=r[1], baseline_unadjusted_kw=r[2], actual_kw=r[3],
                             reduction_kw=r[4], estimated_share=r[5])
            for r in intervals.sort("ts").select("ts", "baseline_kw", "baseline_unadjusted_kw", "actual_kw",
                                                 "reduction_kw", "estimated_share").iter_rows()]
    return EventDetailOut(**base.model_dump(), intervals=rows)
