"""The live M&V loop: fixes each event's baseline at notification and measures the event every interval.

:class:`LiveMv` is an async context manager running one named task (``live-mv``) that, every
``tick_s`` seconds, reads the boundary meters' counters for each running event, computes the delivered
reduction and the forecast (:mod:`vpp._live_mv`), stores them, and once the event is over stores the
final evaluation (flex's :func:`~flex.evaluate_event` on the fixed baseline, also saved as the flex
event result). The intake calls :meth:`LiveMv.on_event`, the dispatcher :meth:`LiveMv.set_plan`; the
VENs read :attr:`LiveMv.report_values`, which answers from memory and never blocks on the database.

Pre-event baselines (the load just before the event starts) cannot be known at notification when the
notice is shorter than the pre-event window; such a baseline is fixed once, as soon as that window has
been metered, and never recomputed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import polars as pl
import psycopg

from flex import Direction, DrService, DrStore, EventRequest, EventWindow, evaluate_event
from flex._baseline_method import BaselineMethod
from flex._events import EventPerformance
from flex._records import DrEvent, EventResult
from flex.errors import FlexError
from vpp._event_model import IntakeAction, IntakeResult, OptDecision
from vpp._live_mv import LivePerformance, fix_baseline, interval_demand_kw, live_performance, metered_frame
from vpp._live_mv_store import LiveMvStore, MvEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    """An event whose pre-event baseline window has not been metered yet."""

    event_id: str
    committed_kw: float
    cutoff: datetime


def _plan_at(plan: Mapping[datetime, float], ts: datetime) -> float | None:
    """The plan value of the plan interval containing ``ts`` (plans may be coarser than M&V intervals)."""
    starts = [t for t in plan if t <= ts]
    return plan[max(starts)] if starts else None


class LiveReportValues:
    """Live values for the VENs' reports (C1's ``ReportValues`` protocol), answered from memory."""

    def __init__(self, mv: LiveMv) -> None:
        """Read ``mv``'s caches."""
        self._mv = mv

    def _perf(self, dr_event_id: str | None) -> LivePerformance | None:
        return self._mv.performance.get(dr_event_id) if dr_event_id else None

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """The park's latest metered load (instantaneous, else the last complete interval's mean)."""
        del at
        perf = self._perf(dr_event_id)
        latest = self._mv.usage.get(park_id)
        if latest is not None:
            return latest
        done = [r.metered_kw for r in perf.intervals if r.complete and r.metered_kw is not None] if perf else []
        return done[-1] if done else None

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """The baseline fixed at notification for the interval containing ``at`` (None outside events)."""
        event = self._mv.events.get(dr_event_id) if dr_event_id else None
        if event is None or event.park_id != park_id:
            return None
        base = event.baseline.baseline_kw()
        step = timedelta(minutes=event.interval_minutes)
        when = at.astimezone(UTC)
        hits = [kw for ts, kw in base.items() if ts <= when < ts + step]
        if hits:
            return hits[0]
        return base[min(base)] if when < event.window.start else base[max(base)]

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Flexibility available in the event's direction for its remaining time (1 h outside events)."""
        del at
        return self._mv.available.get((park_id, dr_event_id))

    def delivered_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """The delivered reduction of the last complete interval at ``at``."""
        perf = self._perf(dr_event_id)
        if perf is None or self._mv.parks.get(dr_event_id or "") != park_id:
            return None
        done = [r.reduction_kw for r in perf.intervals if r.complete and r.ts <= at and r.reduction_kw is not None]
        return done[-1] if done else None


class LiveMv:
    """Live M&V of every event notified through the VPP loop (see the module docstring)."""

    def __init__(
        self,
        database_url: str,
        *,
        park_ids: Sequence[str] = (),
        tick_s: float = 5.0,
        settle: timedelta = timedelta(seconds=10),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``settle``: how long after an interval ends its readings are awaited before it counts."""
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.store = LiveMvStore(database_url)
        self._dr_store = DrStore(database_url)
        self.dr = DrService(self._dr_store, clock=self.clock)
        self.park_ids = tuple(park_ids)
        self.tick_s = tick_s
        self.settle = settle
        self.events: dict[str, MvEvent] = {}
        self.performance: dict[str, LivePerformance] = {}
        self.parks: dict[str, str] = {}  # event → park of every event measured by this process
        self.usage: dict[str, float] = {}
        self.available: dict[tuple[str, str | None], float] = {}
        self.report_values = LiveReportValues(self)
        self._plans: dict[str, dict[datetime, float]] = {}
        self._pending: dict[str, _Pending] = {}
        self._group: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Self:
        for event in await asyncio.to_thread(self.store.active_events):
            self.events[event.event_id] = event
            self.parks[event.event_id] = event.park_id
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._group.create_task(self._run(), name="live-mv")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        try:
            if self._group is not None:
                await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self.store.close()
            self._dr_store.close()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.tick)
            except (psycopg.Error, FlexError) as exc:  # a database hiccup skips one tick, never the loop
                logger.warning("live M&V tick failed (retrying next tick): %s", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick_s)

    # --- events ---------------------------------------------------------------------------------------------

    async def on_event(self, result: IntakeResult) -> None:
        """Intake listener: fix the baseline of a new event, refix a modified one, stop a cancelled one."""
        await asyncio.to_thread(self.accept, result)

    def accept(self, result: IntakeResult) -> MvEvent | None:
        """Synchronous :meth:`on_event` (for callers already on a worker thread)."""
        if result.action is IntakeAction.CANCELLED or result.opt is OptDecision.OPT_OUT:
            self.cancel(result.dr_event_id)
            return None
        if result.action not in (IntakeAction.NEW, IntakeAction.MODIFIED):
            return self.events.get(result.dr_event_id)
        event = self.dr.repo.get_event(result.dr_event_id)
        if event is None:
            logger.warning("live M&V: event %s is not registered in flex; not measured", result.dr_event_id)
            return None
        existing = self.events.get(event.event_id) or self.store.get_event(event.event_id)
        notified = existing.fixed_at if existing else (event.notified_at or result.event.received_at)
        method = self.dr.event_method(event)
        cutoff = notified.astimezone(UTC)
        if method.kind == "pre_event":
            cutoff = max(cutoff, event.start - timedelta(minutes=method.pre_event_gap_minutes))
        if cutoff + self.settle > self.clock():
            self._pending[event.event_id] = _Pending(event.event_id, result.committed_kw, cutoff)
            logger.info("live M&V: baseline of %s will be fixed at %s", event.event_id, cutoff.isoformat())
            return None
        return self._fix(event, method, result.committed_kw, cutoff)

    def _demand(self, event: DrEvent, method: BaselineMethod, window: EventWindow, cutoff: datetime) -> pl.DataFrame:
        """Interval demand of the intervals ended by ``cutoff``, on the method's grid.

        15-minute methods read flex's interval energy; finer ones the boundary meters' counters, where the
        counter value at ``cutoff`` itself is interpolated between the readings either side of it.
        """
        if method.interval_minutes == 15:
            start = DrService._history_start(window, [method])
            return self.dr.repo.park_demand(event.park_id, start, cutoff)
        step = timedelta(minutes=method.interval_minutes)
        span = timedelta(minutes=method.pre_event_minutes + method.pre_event_gap_minutes) + step
        start = window.start - span if method.kind == "pre_event" else window.start - timedelta(days=1)
        first = datetime.fromtimestamp(start.timestamp() // step.total_seconds() * step.total_seconds(), UTC)
        slots = [first + i * step for i in range(int((cutoff - first) / step))]
        demand = interval_demand_kw(self.store.counters(event.park_id, first, cutoff), slots, method.interval_minutes)
        return metered_frame(demand)

    def _fix(self, event: DrEvent, method: BaselineMethod, committed_kw: float, cutoff: datetime) -> MvEvent | None:
        park = self.dr.park(event.park_id)
        window = EventWindow(event.start, event.end)
        try:
            baseline = fix_baseline(
                self._demand(event, method, window, cutoff), window, method, notified_at=cutoff,
                timezone=park.timezone, calendar=self.dr.park_calendar(event.park_id),
                event_days=self.dr._event_days(park, window.start, event.event_id),
            )
        except FlexError as exc:
            logger.warning("live M&V: no baseline for event %s at notification: %s", event.event_id, exc)
            return None
        mv = MvEvent(event.event_id, event.park_id, cutoff, window, event.direction, committed_kw,
                     event.requested_kw, baseline)
        self.store.save_event(mv)
        self.events[mv.event_id] = mv
        self.parks[mv.event_id] = mv.park_id
        self._pending.pop(mv.event_id, None)
        logger.info("live M&V: baseline of %s fixed (%s, %d intervals)", mv.event_id, method.name,
                    baseline.profile.height)
        return mv

    def cancel(self, dr_event_id: str) -> None:
        """Stop measuring a cancelled or opted-out event (what was stored stays, marked cancelled)."""
        self._pending.pop(dr_event_id, None)
        self.events.pop(dr_event_id, None)
        self.performance.pop(dr_event_id, None)
        self.store.set_status(dr_event_id, "cancelled")

    def set_plan(self, dr_event_id: str, plan: Mapping[datetime, float]) -> None:
        """Dispatcher callback: the planned reduction (kW) from each plan interval's start."""
        self._plans[dr_event_id] = {t.astimezone(UTC): float(v) for t, v in plan.items()}

    # --- the loop -------------------------------------------------------------------------------------------

    def tick(self) -> list[LivePerformance]:
        """One pass: fix due baselines, measure every running event, finalize the ended ones."""
        now = self.clock().astimezone(UTC)
        for pending in list(self._pending.values()):
            if pending.cutoff + self.settle <= now:
                event = self.dr.repo.get_event(pending.event_id)
                fixed = None if event is None else self._fix(event, self.dr.event_method(event),
                                                             pending.committed_kw, pending.cutoff)
                if fixed is None and (event is None or event.end <= now):
                    self._pending.pop(pending.event_id, None)  # never measurable: stop trying
        out = [self._measure(event, now) for event in list(self.events.values()) if event.window.start <= now]
        self._refresh_parks(now)
        return out

    def _measure(self, event: MvEvent, now: datetime) -> LivePerformance:
        minutes = event.interval_minutes
        seen = min(now - self.settle, event.window.end)
        slots = event.window.slots(minutes)
        counters = self.store.counters(event.park_id, event.window.start, seen)
        metered = interval_demand_kw(counters, slots, minutes)
        plan = self._plans.get(event.event_id, {})
        planned = {ts: kw for ts in slots if (kw := _plan_at(plan, ts)) is not None}
        perf = live_performance(event.baseline.baseline_kw(), metered, planned, direction=event.direction,
                                committed_kw=event.committed_kw, interval_minutes=minutes, now=now - self.settle)
        self.performance[event.event_id] = perf
        if not perf.finished:
            self.store.save_live(event.event_id, perf)
            return perf
        request = EventRequest(event.window, event.direction, event.requested_kw or event.committed_kw or 1.0)
        final = evaluate_event(request, event.baseline, metered_frame(metered), self.dr.policy)
        self.store.save_live(event.event_id, perf, final=True, quality=(final.quality_ok, final.quality_reasons))
        self._save_flex_result(event, final, now)
        self.events.pop(event.event_id, None)
        logger.info("live M&V: event %s final: %.1f kWh delivered, %.1f kW average", event.event_id,
                    final.delivered_kwh, final.avg_reduction_kw)
        return perf

    def _save_flex_result(self, event: MvEvent, final: EventPerformance, now: datetime) -> None:
        """Store the final M&V as flex's event result, so the utility API's event result shows it."""
        b = event.baseline
        result = EventResult(
            event_id=event.event_id, evaluated_at=now, baseline_method=b.method.name,
            baseline_params=b.method.model_dump(mode="json"), delivered_kwh=final.delivered_kwh,
            duration_h=final.duration_h, avg_reduction_kw=final.avg_reduction_kw,
            min_reduction_kw=final.min_reduction_kw, max_reduction_kw=final.max_reduction_kw,
            ratio_requested=final.ratio_requested, ratio_declared=final.ratio_declared, band=final.band,
            estimated_share_event=final.estimated_share_event, estimated_share_baseline=final.estimated_share_baseline,
            missing_intervals=final.missing_intervals, quality_ok=final.quality_ok,
            quality_reasons=final.quality_reasons, baseline_days=final.baseline_days,
            adjustment={k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(b.adjustment).items()},
            warnings=b.warnings,
        )
        intervals = final.intervals.join(b.profile.select("ts", "baseline_unadjusted_kw"), on="ts", how="left")
        self.dr.repo.save_result(result, intervals.sort("ts"))

    def _refresh_parks(self, now: datetime) -> None:
        """Cache the parks' latest load and available flexibility for the report provider."""
        parks = set(self.park_ids) | {e.park_id for e in self.events.values()}
        for park_id in parks:
            usage = self.store.latest_power_kw(park_id, since=now - timedelta(minutes=2))
            if usage is None:
                self.usage.pop(park_id, None)
            else:
                self.usage[park_id] = usage
            try:
                flex = self.dr.current_flex_for_duration(park_id, 1.0, now=now)
            except FlexError:
                continue
            self.available[(park_id, None)] = flex.up_kw
        for event in self.events.values():
            hours = max((event.window.end - max(now, event.window.start)).total_seconds() / 3600.0, 1 / 60)
            try:
                flex = self.dr.current_flex_for_duration(event.park_id, hours, now=now)
            except FlexError:
                continue
            kw = flex.up_kw if event.direction is Direction.UP else flex.down_kw
            self.available[(event.park_id, event.event_id)] = kw
