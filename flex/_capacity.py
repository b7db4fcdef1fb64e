"""DR capacity: declared and verified kept apart, both as % of the park's annual maximum 15-min demand.

``declared`` is what the park's assets can sustain for the programme's duration (Σ flexibility after
connection limits and derating, 签约/申报能力); ``verified`` is what events proved (实际响应能力): the
max (or median) average reduction of recent events that passed the data-quality gate and lasted long
enough. ``DR_capacity_% = P_DR / P_max,annual × 100`` (domain.md §3.1), compared with the national
3-5 % target that the pilot guide's Table 1 row 9 (需求侧响应能力) measures.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from flex._direction import Direction
from flex._policy import DrPolicy, load_policy
from flex._series import DEMAND_KW, TS, local_midnight, park_zone, require_aware


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An evaluated event as capacity needs it: declared at the time versus delivered on average."""

    event_id: str
    start: datetime
    duration_h: float
    direction: Direction
    requested_kw: float
    declared_kw: float | None
    avg_reduction_kw: float
    quality_ok: bool


@dataclass(frozen=True, slots=True)
class DemandPeak:
    """The park's maximum 15-min demand over the basis period and when it happened."""

    demand_kw: float
    at: datetime
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True, slots=True)
class DrCapacity:
    """Declared and verified DR capacity of a park at ``as_of`` for one direction and duration."""

    as_of: datetime
    direction: Direction
    duration_h: float
    declared_kw: float | None
    verified_kw: float | None
    verified_event_id: str | None
    n_events: int
    derating_factor: float
    annual_max_demand_kw: float | None
    annual_max_demand_at: datetime | None
    declared_pct: float | None
    verified_pct: float | None
    target_pct_min: float
    target_pct_max: float


def _qualifying(records: Sequence[EventRecord], direction: Direction) -> list[EventRecord]:
    return sorted((r for r in records if r.direction is direction and r.quality_ok), key=lambda r: r.start)


def derating_factor(records: Sequence[EventRecord], direction: Direction, policy: DrPolicy | None = None) -> float:
    """Mean of min(1, delivered / declared) over the last N quality-checked events, clamped to policy bounds.

    Events without a declared figure are skipped; with none left the policy default applies.
    """
    pol = (policy or load_policy()).derating
    usable = [r for r in _qualifying(records, direction) if r.declared_kw]
    recent = usable[-pol.lookback_events:]
    if not recent:
        return pol.default_factor
    ratios = [min(1.0, max(0.0, r.avg_reduction_kw) / r.declared_kw) for r in recent if r.declared_kw]
    factor = sum(ratios) / len(ratios)
    return max(pol.min_factor, min(pol.max_factor, factor))


def verified_capacity(
    records: Sequence[EventRecord], *, as_of: datetime, direction: Direction, policy: DrPolicy | None = None
) -> tuple[float | None, str | None, int]:
    """(verified kW, the event that set it, number of qualifying events) within the policy's look-back."""
    pol = (policy or load_policy()).verified
    since = require_aware(as_of, "as_of") - timedelta(days=pol.lookback_days)
    events = [
        r for r in _qualifying(records, direction)
        if since <= r.start <= as_of and r.duration_h + 1e-9 >= pol.min_event_duration_h
    ]
    if not events:
        return None, None, 0
    if pol.statistic == "median":
        return max(0.0, statistics.median(r.avg_reduction_kw for r in events)), None, len(events)
    best = max(events, key=lambda r: (r.avg_reduction_kw, r.start))
    return max(0.0, best.avg_reduction_kw), best.event_id, len(events)


def annual_max_demand(
    load: pl.DataFrame, *, as_of: datetime, timezone: str = "Asia/Shanghai", basis: str = "trailing_365d"
) -> DemandPeak | None:
    """Maximum interval demand in the trailing 365 days up to ``as_of`` or in ``as_of``'s local calendar year."""
    end = require_aware(as_of, "as_of")
    if basis == "calendar_year":
        zone = park_zone(timezone)
        year = end.astimezone(zone).year
        start = local_midnight(datetime(year, 1, 1, tzinfo=zone).date(), zone).astimezone(UTC)
    else:
        start = end - timedelta(days=365)
    frame = (
        load.lazy()
        .select(pl.col(TS).dt.convert_time_zone("UTC"), pl.col(DEMAND_KW).cast(pl.Float64))
        .filter(pl.col(TS) >= start, pl.col(TS) < end, pl.col(DEMAND_KW).is_not_null())
        .sort(DEMAND_KW, TS, descending=[True, False])
        .head(1)
        .collect()
    )
    if frame.is_empty():
        return None
    ts, kw = frame.row(0)
    return DemandPeak(float(kw), ts, start, end)


def _pct(kw: float | None, peak: DemandPeak | None) -> float | None:
    if kw is None or peak is None or peak.demand_kw <= 0:
        return None
    return kw / peak.demand_kw * 100.0


def dr_capacity(
    *,
    as_of: datetime,
    declared_kw: float | None,
    records: Sequence[EventRecord],
    peak: DemandPeak | None,
    direction: Direction = Direction.UP,
    duration_h: float | None = None,
    policy: DrPolicy | None = None,
) -> DrCapacity:
    """Declared and verified capacity with their share of annual maximum demand (see module docstring).

    ``declared_kw`` is the park's flexibility for the programme duration, already derated (callers get
    it from :func:`flex.park_flex_at` with :func:`derating_factor`).
    """
    pol = policy or load_policy()
    verified_kw, event_id, n = verified_capacity(records, as_of=as_of, direction=direction, policy=pol)
    return DrCapacity(
        as_of=as_of,
        direction=direction,
        duration_h=duration_h if duration_h is not None else pol.declared_duration_h,
        declared_kw=declared_kw,
        verified_kw=verified_kw,
        verified_event_id=event_id,
        n_events=n,
        derating_factor=derating_factor(records, direction, pol),
        annual_max_demand_kw=peak.demand_kw if peak else None,
        annual_max_demand_at=peak.at if peak else None,
        declared_pct=_pct(declared_kw, peak),
        verified_pct=_pct(verified_kw, peak),
        target_pct_min=pol.national_target_pct_min,
        target_pct_max=pol.national_target_pct_max,
    )
