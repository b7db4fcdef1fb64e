"""Customer baseline load (CBL) engine: one parameterised method, every preset is a parameter set.

Given a park's interval demand, an event window and a :class:`BaselineMethod`, :func:`compute_baseline`
returns the counterfactual demand per interval (what the park would have drawn without the event), the
days it was built from, why every other day was rejected, and the day-of adjustment. The result is
reproducible from its inputs and carries enough audit detail for a utility's M&V review (GB/T 37016
asks for exactly that: baseline days, exclusions and adjustments stated).

Days are calendar days in the park's time zone; event intervals are mapped onto candidate days by their
wall-clock offset from local midnight, so an event from 23:00 to 01:00 works like any other.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import polars as pl

from flex._baseline_method import BaselineMethod, DaySelection
from flex._calendar import DayType, HolidayCalendar, load_holiday_calendar
from flex._series import IntervalSeries, Point, local_day_slots, local_midnight, park_zone, wall_to_utc
from flex.errors import CalendarCoverageError, InsufficientBaselineDataError, InvalidEventError

logger = logging.getLogger(__name__)

MAX_EVENT_HOURS = 24


@dataclass(frozen=True, slots=True)
class EventWindow:
    """An event's time window: UTC interval starts from ``start`` (inclusive) to ``end`` (exclusive)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for label, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise InvalidEventError(f"event {label} must be timezone-aware")
        if self.end <= self.start:
            raise InvalidEventError(f"event end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        if self.end - self.start > timedelta(hours=MAX_EVENT_HOURS):
            raise InvalidEventError(f"events longer than {MAX_EVENT_HOURS} h are not supported")

    @property
    def duration_h(self) -> float:
        """Event length in hours."""
        return (self.end - self.start).total_seconds() / 3600.0

    def slots(self, interval_minutes: int) -> list[datetime]:
        """UTC starts of the event's intervals; raises if the window is off the interval grid."""
        step = timedelta(minutes=interval_minutes)
        for label, value in (("start", self.start), ("end", self.end)):
            if value.timestamp() % step.total_seconds():
                raise InvalidEventError(f"event {label} {value.isoformat()} is not on the {interval_minutes}-min grid")
        start = self.start.astimezone(UTC)
        return [start + i * step for i in range(int((self.end - self.start) / step))]


@dataclass(frozen=True, slots=True)
class DayAudit:
    """Why a candidate day was used, eligible but not chosen, or excluded."""

    day: date
    day_type: DayType | None
    status: Literal["used", "not_selected", "excluded"]
    reason: str | None = None
    rank_value: float | None = None
    estimated_share: float | None = None


@dataclass(frozen=True, slots=True)
class AdjustmentResult:
    """The day-of adjustment as computed (raw) and as applied (after the cap)."""

    kind: str
    applied: bool
    ratio: float | None = None
    raw_ratio: float | None = None
    offset_kw: float | None = None
    raw_offset_kw: float | None = None
    capped: bool = False
    window_start: datetime | None = None
    window_end: datetime | None = None
    note: str | None = None


@dataclass(frozen=True)
class BaselineResult:
    """A computed baseline: per-interval profile plus everything needed to audit it."""

    method: BaselineMethod
    window: EventWindow
    event_day: date
    event_day_type: DayType
    reference_day: date
    profile: pl.DataFrame  # ts (UTC), baseline_unadjusted_kw, baseline_kw — sorted by ts
    days_used: tuple[date, ...]
    audit: tuple[DayAudit, ...]
    adjustment: AdjustmentResult
    estimated_share: float
    warnings: tuple[str, ...] = field(default=())

    def baseline_kw(self) -> dict[datetime, float]:
        """Adjusted baseline by UTC interval start."""
        return dict(zip(self.profile["ts"].to_list(), self.profile["baseline_kw"].to_list(), strict=True))


@dataclass(slots=True)
class _Candidate:
    day: date
    day_type: DayType
    recency: int
    values: list[Point]          # event-window points on that day
    window_values: list[Point]   # adjustment-window points (empty without adjustment)
    daily_max_kw: float
    daily_energy_kwh: float
    estimated_share: float

    @property
    def event_mean_kw(self) -> float:
        return sum(p.demand_kw for p in self.values) / len(self.values)


def _in_pool(day_type: DayType, working_pool: bool, method: BaselineMethod) -> bool:
    if day_type is DayType.ADJUSTED_WORKDAY and not method.adjusted_workday_is_workday:
        return False
    return day_type.is_working == working_pool


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else math.nan


class _DayScanner:
    """Walks candidate days back from the reference day and checks each one's eligibility."""

    def __init__(
        self,
        series: IntervalSeries,
        *,
        method: BaselineMethod,
        calendar: HolidayCalendar,
        zone: ZoneInfo,
        offsets: list[timedelta],
        window_offsets: list[timedelta],
        event_days: frozenset[date],
        working_pool: bool,
    ) -> None:
        self.series = series
        self.method = method
        self.calendar = calendar
        self.zone = zone
        self.offsets = offsets
        self.window_offsets = window_offsets
        self.event_days = event_days
        self.working_pool = working_pool
        self.audit: dict[date, DayAudit] = {}

    def _exclude(self, day: date, day_type: DayType | None, reason: str, est: float | None = None) -> None:
        self.audit[day] = DayAudit(day, day_type, "excluded", reason, estimated_share=est)

    def scan(self, reference: date, selection: DaySelection) -> Iterator[_Candidate]:
        """Eligible days, most recent first, within the selection's look-back."""
        recency = 0
        for back in range(1 + selection.skip_days, selection.lookback_days + 1):
            day = reference - timedelta(days=back)
            try:
                day_type = self.calendar.day_type(day)
            except CalendarCoverageError:
                self._exclude(day, None, "outside the public-holiday calendar")
                continue
            if not _in_pool(day_type, self.working_pool, self.method):
                pool = "working days" if self.working_pool else "weekend/holiday days"
                self._exclude(day, day_type, f"{day_type.value}, baseline uses {pool}")
                continue
            if self.method.exclude_event_days and day in self.event_days:
                self._exclude(day, day_type, "past event day")
                continue
            candidate = self._check_data(day, day_type, recency)
            if candidate is not None:
                recency += 1
                yield candidate

    def _check_data(self, day: date, day_type: DayType, recency: int) -> _Candidate | None:
        minutes = self.series.interval_minutes
        slots = local_day_slots(day, self.zone, minutes)
        points = [p for p in self.series.values(slots) if p is not None]
        if not points:
            self._exclude(day, day_type, "no data")
            return None
        missing_share = 1.0 - len(points) / len(slots)
        est = _mean(p.estimated_share for p in points)
        if missing_share > self.method.max_day_missing_share:
            self._exclude(day, day_type, f"{missing_share:.0%} of the day's intervals missing", est)
            return None
        if est > self.method.max_day_estimated_share:
            self._exclude(day, day_type, f"{est:.0%} of the day's data estimated", est)
            return None
        values = self.series.values([wall_to_utc(day, o, self.zone) for o in self.offsets])
        if any(v is None for v in values):
            self._exclude(day, day_type, "missing data in the event window", est)
            return None
        window = self.series.values([wall_to_utc(day, o, self.zone) for o in self.window_offsets])
        if any(v is None for v in window):
            self._exclude(day, day_type, "missing data in the adjustment window", est)
            return None
        hours = minutes / 60.0
        return _Candidate(
            day=day,
            day_type=day_type,
            recency=recency,
            values=[v for v in values if v is not None],
            window_values=[v for v in window if v is not None],
            daily_max_kw=max(p.demand_kw for p in points),
            daily_energy_kwh=sum(p.demand_kw for p in points) * hours,
            estimated_share=est,
        )


def _rank_value(candidate: _Candidate, selection: DaySelection) -> float:
    match selection.rank_by:
        case "event_window_mean_kw":
            return candidate.event_mean_kw
        case "daily_max_kw":
            return candidate.daily_max_kw
        case "daily_energy_kwh":
            return candidate.daily_energy_kwh
        case _:
            return -float(candidate.recency)


def _choose(candidates: list[_Candidate], selection: DaySelection) -> list[_Candidate]:
    """Pick ``n_used`` of the collected days by the selection's ranking (ties go to the more recent)."""
    n_used = min(selection.n_used, len(candidates))
    if selection.rank_by == "recency":
        return candidates[:n_used]
    if selection.keep == "highest":
        ranked = sorted(candidates, key=lambda c: (-_rank_value(c, selection), c.recency))
        return ranked[:n_used]
    ranked = sorted(candidates, key=lambda c: (_rank_value(c, selection), c.recency))
    drop = len(ranked) - n_used
    low = drop // 2
    return ranked[low : low + n_used]


def _collect(
    scanner: _DayScanner, reference: date, selection: DaySelection, method: BaselineMethod
) -> list[_Candidate]:
    days = scanner.scan(reference, selection)
    collected: list[_Candidate] = []
    for candidate in days:
        collected.append(candidate)
        if len(collected) == selection.n_days:
            break
    if method.low_usage_fraction is None or not collected:
        return collected
    # PJM rule: a day whose event-window usage is below the fraction of the candidates' average is
    # replaced by the next older eligible day (checked against the same reference average).
    threshold = method.low_usage_fraction * _mean(c.event_mean_kw for c in collected)
    kept = [c for c in collected if c.event_mean_kw >= threshold]
    for c in collected:
        if c.event_mean_kw < threshold:
            scanner._exclude(c.day, c.day_type, f"low usage: {c.event_mean_kw:.1f} kW < {threshold:.1f} kW")
    for candidate in days:
        if len(kept) == selection.n_days:
            break
        if candidate.event_mean_kw < threshold:
            scanner._exclude(candidate.day, candidate.day_type, "low usage")
            continue
        kept.append(candidate)
    return kept


def _offsets(slots: list[datetime], day: date, zone: ZoneInfo) -> list[timedelta]:
    midnight = local_midnight(day, zone)
    return [s.astimezone(zone).replace(tzinfo=None) - midnight.replace(tzinfo=None) for s in slots]


def _window_offsets(method: BaselineMethod, first_offset: timedelta) -> list[timedelta]:
    adj = method.adjustment
    if adj.kind == "none":
        return []
    step = timedelta(minutes=method.interval_minutes)
    end = first_offset - timedelta(hours=adj.gap_hours)
    start = end - timedelta(hours=adj.window_hours)
    n = int((end - start) / step)
    return [start + i * step for i in range(n)]


def _adjust(
    method: BaselineMethod,
    *,
    chosen: list[_Candidate],
    series: IntervalSeries,
    event_day: date,
    zone: ZoneInfo,
    window_offsets: list[timedelta],
) -> AdjustmentResult:
    adj = method.adjustment
    if adj.kind == "none":
        return AdjustmentResult(kind="none", applied=False)
    window_slots = [wall_to_utc(event_day, o, zone) for o in window_offsets]
    step = timedelta(minutes=method.interval_minutes)
    base = AdjustmentResult(
        kind=adj.kind, applied=False, window_start=window_slots[0], window_end=window_slots[-1] + step
    )
    actual = series.values(window_slots)
    if any(a is None for a in actual):
        return replace(base, note="missing actual data in the adjustment window")
    actual_kw = [a.demand_kw for a in actual if a is not None]
    base_kw = [_mean(c.window_values[i].demand_kw for c in chosen) for i in range(len(window_slots))]
    if adj.kind == "multiplicative":
        total_base = sum(base_kw)
        if total_base <= 0:
            return replace(base, note="baseline is zero in the adjustment window")
        raw = sum(actual_kw) / total_base
        ratio = raw
        if adj.min_ratio is not None:
            ratio = max(ratio, adj.min_ratio)
        if adj.max_ratio is not None:
            ratio = min(ratio, adj.max_ratio)
        return replace(base, applied=True, ratio=ratio, raw_ratio=raw, capped=ratio != raw)
    raw_offset = _mean(a - b for a, b in zip(actual_kw, base_kw, strict=True))
    offset = raw_offset
    if adj.max_offset_kw is not None:
        offset = max(-adj.max_offset_kw, min(adj.max_offset_kw, offset))
    return replace(base, applied=True, offset_kw=offset, raw_offset_kw=raw_offset, capped=offset != raw_offset)


def _profile(slots: list[datetime], unadjusted: list[float], adjustment: AdjustmentResult) -> pl.DataFrame:
    adjusted = list(unadjusted)
    if adjustment.applied and adjustment.ratio is not None:
        adjusted = [b * adjustment.ratio for b in unadjusted]
    elif adjustment.applied and adjustment.offset_kw is not None:
        adjusted = [b + adjustment.offset_kw for b in unadjusted]
    return pl.DataFrame(
        {"ts": slots, "baseline_unadjusted_kw": unadjusted, "baseline_kw": adjusted},
        schema={"ts": pl.Datetime("us", "UTC"), "baseline_unadjusted_kw": pl.Float64, "baseline_kw": pl.Float64},
    ).sort("ts")


def _pre_event_baseline(
    method: BaselineMethod, series: IntervalSeries, window: EventWindow, *, slots: list[datetime],
    event_day: date, day_type: DayType,
) -> BaselineResult:
    step = timedelta(minutes=method.interval_minutes)
    end = window.start.astimezone(UTC) - timedelta(minutes=method.pre_event_gap_minutes)
    n = method.pre_event_minutes // method.interval_minutes
    pre_slots = [end - (n - i) * step for i in range(n)]
    points = series.values(pre_slots)
    found = [p for p in points if p is not None]
    if len(found) < n:
        raise InsufficientBaselineDataError(
            method.name, n, len(found), f"pre-event intervals from {pre_slots[0].isoformat()} are missing"
        )
    level = _mean(p.demand_kw for p in found)
    adjustment = AdjustmentResult(kind="none", applied=False)
    return BaselineResult(
        method=method, window=window, event_day=event_day, event_day_type=day_type, reference_day=event_day,
        profile=_profile(slots, [level] * len(slots), adjustment), days_used=(), audit=(),
        adjustment=adjustment, estimated_share=_mean(p.estimated_share for p in found),
    )


def compute_baseline(
    load: pl.DataFrame | IntervalSeries,
    window: EventWindow,
    method: BaselineMethod,
    *,
    timezone: str = "Asia/Shanghai",
    calendar: HolidayCalendar | None = None,
    event_days: Iterable[date] = (),
    notice_day: date | None = None,
) -> BaselineResult:
    """Compute the baseline of ``window`` from the park's interval demand ``load``.

    ``event_days`` are local dates of the park's past DR events (excluded when the method says so);
    ``notice_day`` is the local date the event was notified (used by ``reference='notice_day'``
    methods). Raises :class:`InsufficientBaselineDataError` when too few days qualify, with the reasons.
    """
    cal = calendar or load_holiday_calendar()
    zone = park_zone(timezone)
    series = load if isinstance(load, IntervalSeries) else IntervalSeries(load, method.interval_minutes)
    slots = window.slots(method.interval_minutes)
    event_day = window.start.astimezone(zone).date()
    day_type = cal.day_type(event_day)
    warnings: list[str] = []
    if cal.is_provisional(event_day):
        warnings.append(f"the holiday calendar for {event_day.year} is provisional (notice not yet published)")
    if method.kind == "pre_event":
        return _pre_event_baseline(method, series, window, slots=slots, event_day=event_day, day_type=day_type)

    working = day_type.is_working and _in_pool(day_type, True, method)
    selection = method.selection_for(working)
    if selection is None:
        raise InsufficientBaselineDataError(
            method.name, 1, 0, f"the method defines no baseline for a {day_type.value} event day"
        )
    reference = event_day
    if method.reference == "notice_day":
        if notice_day is None:
            warnings.append("no notice day given; baseline days counted back from the event day")
        else:
            reference = min(notice_day, event_day)
    offsets = _offsets(slots, event_day, zone)
    window_offsets = _window_offsets(method, offsets[0])
    scanner = _DayScanner(
        series, method=method, calendar=cal, zone=zone, offsets=offsets, window_offsets=window_offsets,
        event_days=frozenset(event_days), working_pool=working or method.day_match == "workdays",
    )
    collected = _collect(scanner, reference, selection, method)
    if len(collected) < selection.min_days:
        counts = Counter(a.reason for a in scanner.audit.values() if a.status == "excluded")
        detail = "; ".join(f"{n} day(s): {r}" for r, n in counts.most_common(5)) or "no days in the look-back"
        raise InsufficientBaselineDataError(method.name, selection.min_days, len(collected), detail)
    if len(collected) < selection.n_days:
        warnings.append(f"only {len(collected)} of {selection.n_days} baseline days found")
    chosen = _choose(collected, selection)
    chosen_days = {c.day for c in chosen}
    audit = dict(scanner.audit)
    for c in collected:
        status: Literal["used", "not_selected"] = "used" if c.day in chosen_days else "not_selected"
        rank = None if selection.rank_by == "recency" else _rank_value(c, selection)
        audit[c.day] = DayAudit(c.day, c.day_type, status, None, rank, c.estimated_share)
    chosen.sort(key=lambda c: c.day, reverse=True)
    unadjusted = [_mean(c.values[i].demand_kw for c in chosen) for i in range(len(slots))]
    adjustment = _adjust(
        method, chosen=chosen, series=series, event_day=event_day, zone=zone, window_offsets=window_offsets
    )
    if adjustment.note:
        warnings.append(f"day-of adjustment not applied: {adjustment.note}")
    est = _mean(p.estimated_share for c in chosen for p in c.values)
    logger.debug("baseline %s for %s: days %s", method.name, window.start.isoformat(), sorted(chosen_days))
    return BaselineResult(
        method=method,
        window=window,
        event_day=event_day,
        event_day_type=day_type,
        reference_day=reference,
        profile=_profile(slots, unadjusted, adjustment),
        days_used=tuple(c.day for c in chosen),
        audit=tuple(sorted(audit.values(), key=lambda a: a.day, reverse=True)),
        adjustment=adjustment,
        estimated_share=est,
        warnings=tuple(warnings),
    )
