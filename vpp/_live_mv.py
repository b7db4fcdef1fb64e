"""Live measurement and verification of a running DR event: the pure core.

Three rules make the live figures honest and let them end exactly where flex's after-the-fact M&V ends:

* the baseline is fixed at notification: :func:`fix_baseline` computes it with flex's baseline engine from
  demand metered *before* ``notified_at`` only, and it is stored and never recomputed;
* an interval counts once it has ended; a completed interval without metered demand delivers nothing
  (as in :func:`flex.evaluate_event`), so missing data never flatters the result;
* the forecast of the event's final performance is what was delivered so far plus what the dispatch plan
  promises for the remaining intervals, scaled by how well the park has kept its plan so far.

Metered demand per interval comes from the boundary meters' energy counters, interpolated linearly at the
interval boundaries (:func:`interval_demand_kw`), so event intervals of a minute work as well as 15 minutes.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from flex import Direction
from flex._baseline import BaselineResult, EventWindow, compute_baseline
from flex._baseline_method import BaselineMethod
from flex._calendar import HolidayCalendar
from flex._series import DEMAND_KW, ESTIMATED_SHARE, TS, park_zone

#: One energy counter of a boundary meter: +1 import register, −1 export register, with (ts, kWh) readings.
Counter = tuple[float, Sequence[tuple[datetime, float]]]


@dataclass(frozen=True, slots=True)
class LiveInterval:
    """One event interval as live M&V sees it (kW are interval means; None = not known yet / missing)."""

    ts: datetime
    baseline_kw: float
    metered_kw: float | None
    planned_kw: float | None
    reduction_kw: float | None
    complete: bool


@dataclass(frozen=True, slots=True)
class LivePerformance:
    """The event's performance at ``as_of``: per-interval table, what was delivered, and the forecast."""

    as_of: datetime
    interval_minutes: int
    committed_kw: float
    intervals: tuple[LiveInterval, ...]
    delivered_kwh: float
    planned_kwh_so_far: float
    completed_intervals: int
    missing_intervals: int
    forecast_kwh: float
    duration_h: float

    @property
    def avg_reduction_kw(self) -> float:
        """Delivered energy over the completed part of the event (0 before the first interval ends)."""
        hours = self.completed_intervals * self.interval_minutes / 60.0
        return self.delivered_kwh / hours if hours else 0.0

    @property
    def forecast_avg_kw(self) -> float:
        """Forecast average reduction over the whole event."""
        return self.forecast_kwh / self.duration_h

    @property
    def forecast_ratio(self) -> float | None:
        """Forecast average reduction ÷ committed reduction (None when nothing was committed)."""
        return self.forecast_avg_kw / self.committed_kw if self.committed_kw > 0 else None

    @property
    def delivered_ratio(self) -> float | None:
        """Average reduction so far ÷ committed (None when nothing was committed or nothing ended yet)."""
        if self.committed_kw <= 0 or not self.completed_intervals:
            return None
        return self.avg_reduction_kw / self.committed_kw

    @property
    def finished(self) -> bool:
        """True when every interval of the event has ended."""
        return self.completed_intervals == len(self.intervals)

    def at(self, when: datetime) -> LiveInterval | None:
        """The interval containing ``when`` (None outside the event)."""
        step = timedelta(minutes=self.interval_minutes)
        for row in self.intervals:
            if row.ts <= when < row.ts + step:
                return row
        return None


def demand_before(demand: pl.DataFrame, notified_at: datetime, interval_minutes: int) -> pl.DataFrame:
    """The rows of a demand frame whose interval had ended by ``notified_at`` (what was known then)."""
    cutoff = notified_at.astimezone(UTC) - timedelta(minutes=interval_minutes)
    return demand.filter(pl.col(TS) <= cutoff)


def fix_baseline(
    demand: pl.DataFrame,
    window: EventWindow,
    method: BaselineMethod,
    *,
    notified_at: datetime,
    timezone: str,
    calendar: HolidayCalendar | None = None,
    event_days: Iterable[date] = (),
) -> BaselineResult:
    """The event's baseline as it stands at notification: flex's engine on the demand known by then.

    Demand metered after ``notified_at`` is dropped before the engine sees it, so a baseline fixed
    now and one recomputed tomorrow from the same store are identical. Raises flex's
    :class:`~flex.errors.InsufficientBaselineDataError` when the data before notification cannot carry it.
    """
    known = demand_before(demand, notified_at, method.interval_minutes)
    notice_day = notified_at.astimezone(park_zone(timezone)).date()
    return compute_baseline(known, window, method, timezone=timezone, calendar=calendar, event_days=event_days,
                            notice_day=notice_day)


def _counter_at(readings: Sequence[tuple[datetime, float]], when: datetime) -> float | None:
    """A counter's value at ``when``, linear between the readings around it (None when not bracketed)."""
    times = [r[0] for r in readings]
    i = bisect.bisect_left(times, when)
    if i < len(times) and times[i] == when:
        return readings[i][1]
    if i == 0 or i == len(times):
        return None
    (t0, v0), (t1, v1) = readings[i - 1], readings[i]
    if v1 < v0:  # register reset or wrap between the two readings: the boundary value is unknowable
        return None
    share = (when - t0) / (t1 - t0)
    return v0 + share * (v1 - v0)


def interval_demand_kw(counters: Sequence[Counter], slots: Sequence[datetime],
                       interval_minutes: int) -> dict[datetime, float]:
    """Mean boundary demand (+ import) per interval from the meters' energy counters.

    ``counters`` are (sign, readings sorted by time). An interval is returned only when every counter has
    readings on both sides of both of its boundaries; anything less is a missing interval, never a zero.
    """
    step = timedelta(minutes=interval_minutes)
    hours = interval_minutes / 60.0
    ordered = [(sign, sorted(readings)) for sign, readings in counters]
    out: dict[datetime, float] = {}
    if not ordered:
        return out
    for ts in slots:
        total = 0.0
        for sign, readings in ordered:
            start, end = _counter_at(readings, ts), _counter_at(readings, ts + step)
            if start is None or end is None or end < start:
                break
            total += sign * (end - start)
        else:
            out[ts] = total / hours
    return out


def live_performance(
    baseline_kw: Mapping[datetime, float],
    metered_kw: Mapping[datetime, float],
    planned_kw: Mapping[datetime, float],
    *,
    direction: Direction,
    committed_kw: float,
    interval_minutes: int,
    now: datetime,
) -> LivePerformance:
    """Delivered reduction per interval against the fixed baseline, the totals so far and the forecast.

    Reduction is baseline − metered for load reduction (``up``), metered − baseline for load increase.
    Planned reduction of an interval with no plan entry defaults to ``committed_kw``. The forecast adds
    the remaining intervals' plan, scaled by delivered ÷ planned so far (1 before any interval ended).
    """
    step = timedelta(minutes=interval_minutes)
    hours = interval_minutes / 60.0
    sign = 1.0 if direction is Direction.UP else -1.0
    now = now.astimezone(UTC)
    rows: list[LiveInterval] = []
    delivered = planned_done = planned_left = 0.0
    completed = missing = 0
    for ts in sorted(baseline_kw):
        base = baseline_kw[ts]
        plan = planned_kw.get(ts, committed_kw)
        done = ts + step <= now
        metered = metered_kw.get(ts)
        reduction = None if metered is None else sign * (base - metered)
        if done:
            completed += 1
            planned_done += plan * hours
            if reduction is None:
                missing += 1
            else:
                delivered += reduction * hours
        else:
            planned_left += plan * hours
        rows.append(LiveInterval(ts, base, metered, planned_kw.get(ts), reduction, done))
    keep_rate = delivered / planned_done if planned_done > 0 else 1.0
    if not math.isfinite(keep_rate):
        keep_rate = 1.0
    return LivePerformance(
        as_of=now,
        interval_minutes=interval_minutes,
        committed_kw=committed_kw,
        intervals=tuple(rows),
        delivered_kwh=delivered,
        planned_kwh_so_far=planned_done,
        completed_intervals=completed,
        missing_intervals=missing,
        forecast_kwh=delivered + planned_left * max(keep_rate, 0.0),
        duration_h=len(rows) * hours,
    )


def metered_frame(metered_kw: Mapping[datetime, float]) -> pl.DataFrame:
    """Metered interval demand in flex's series shape (for :func:`flex.evaluate_event`)."""
    items = sorted(metered_kw.items())
    return pl.DataFrame(
        {TS: [t for t, _ in items], DEMAND_KW: [v for _, v in items], ESTIMATED_SHARE: [0.0] * len(items)},
        schema={TS: pl.Datetime("us", "UTC"), DEMAND_KW: pl.Float64, ESTIMATED_SHARE: pl.Float64},
    )
