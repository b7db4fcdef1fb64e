"""DR use cases over a repository: flexibility now and forecast, baselines, events, capacity, calendars.

This is the only place that combines storage with the pure core; the CLI and the utility API call it.
Times default to the injected clock so tests and simulations can run in simulated time. Every baseline of
a park (and so every evaluation and capacity figure) uses the national calendar with the park's own days
layered on top (:meth:`DrService.park_calendar`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from flex._baseline import BaselineResult, EventWindow, compute_baseline
from flex._baseline_method import BaselineMethod, baseline_presets, resolve_method
from flex._calendar import CalendarDay, HolidayCalendar, load_holiday_calendar
from flex._capacity import DemandPeak, DrCapacity, EventRecord, derating_factor, dr_capacity
from flex._direction import Direction
from flex._event_capacity import CapacityByEvent, EventCapacity, capacity_by_method
from flex._events import EventRequest, evaluate_event
from flex._flexibility import SLOT, ParkContext, ParkFlex, forecast_park_flex, park_flex_at
from flex._policy import DrPolicy, load_policy
from flex._records import AssetRecord, DrEvent, DrRepository, DrSettings, EventResult, ParkInfo
from flex._series import DEMAND_KW, TS, park_zone
from flex.errors import InvalidEventError, NotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CurrentFlex:
    """Flexibility of a park now, for each reporting duration, with the assets' state provenance."""

    park: ParkInfo
    as_of: datetime
    durations: tuple[ParkFlex, ...]
    assets: tuple[AssetRecord, ...]
    park_load_kw: float | None


def _floor_slot(t: datetime) -> datetime:
    seconds = SLOT.total_seconds()
    return datetime.fromtimestamp(t.astimezone(UTC).timestamp() // seconds * seconds, UTC)


class DrService:
    """DR operations for one repository, policy and holiday calendar."""

    def __init__(
        self,
        repo: DrRepository,
        *,
        policy: DrPolicy | None = None,
        calendar: HolidayCalendar | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``clock`` returns the current aware time (default: the system clock)."""
        self.repo = repo
        self.policy = policy or load_policy()
        self.calendar = calendar or load_holiday_calendar()
        base_clock = clock or (lambda: datetime.now(UTC))
        self.clock: Callable[[], datetime] = lambda: base_clock().astimezone(UTC)

    # --- parks -------------------------------------------------------------------------------------------

    def park(self, park_id: str) -> ParkInfo:
        """The park or :class:`NotFoundError`."""
        park = self.repo.get_park(park_id)
        if park is None:
            raise NotFoundError("park", park_id)
        return park

    # --- calendars ----------------------------------------------------------------------------------------

    def park_calendar(self, park_id: str) -> HolidayCalendar:
        """The national calendar with the park's own days on top (what the park's baselines use)."""
        return self.calendar.with_park_days(self.repo.calendar_days(park_id))

    def set_calendar(self, park_id: str, days: Sequence[CalendarDay], *, merge: bool = False) -> HolidayCalendar:
        """Replace the park's own days (``merge``: add or update only ``days``); returns the layered calendar."""
        self.park(park_id)
        self.repo.put_calendar_days(park_id, days, merge=merge)
        logger.info("calendar of park %s %s with %d day(s)", park_id, "merged" if merge else "replaced", len(days))
        return self.park_calendar(park_id)

    def clear_calendar(self, park_id: str, *, year: int | None = None) -> int:
        """Delete the park's own days (of one year, or all); returns how many were deleted."""
        self.park(park_id)
        return self.repo.clear_calendar_days(park_id, year=year)

    def _records(self, park_id: str) -> list[EventRecord]:
        return self.repo.event_records(park_id)

    def _context(
        self, park: ParkInfo, settings: DrSettings, records: Sequence[EventRecord], load: Sequence[float] | float | None
    ) -> ParkContext:
        return ParkContext(
            timezone=park.timezone,
            park_limit=settings.park_limit,
            park_load_kw=load,
            site_limits=settings.site_limits,
            derating_up=derating_factor(records, Direction.UP, self.policy),
            derating_down=derating_factor(records, Direction.DOWN, self.policy),
        )

    def _recent_load_kw(self, park_id: str, now: datetime) -> float | None:
        frame = self.repo.park_demand(park_id, now - timedelta(hours=2), now)
        return float(frame[DEMAND_KW][-1]) if frame.height else None

    def _load_profile(self, park_id: str, first_slot: datetime, n_slots: int) -> list[float] | None:
        """Load forecast per slot: the same slot one day earlier (persistence), gaps filled forward."""
        day_before = first_slot - timedelta(days=1)
        history = self.repo.park_demand(park_id, day_before, day_before + n_slots * SLOT)
        if history.is_empty():
            return None
        by_ts = dict(zip(history[TS].to_list(), history[DEMAND_KW].to_list(), strict=True))
        values: list[float] = []
        last = float(history[DEMAND_KW][0])
        for i in range(n_slots):
            last = float(by_ts.get(first_slot - timedelta(days=1) + i * SLOT, last))
            values.append(last)
        return values

    # --- flexibility -------------------------------------------------------------------------------------

    def current_flex(self, park_id: str, *, now: datetime | None = None) -> CurrentFlex:
        """Sustained up/down flexibility now for every reporting duration (limits and derating applied)."""
        park = self.park(park_id)
        at = (now or self.clock()).astimezone(UTC)
        settings = self.repo.get_settings(park_id)
        records = self._records(park_id)
        assets = self.repo.list_assets(park_id, now=at)
        load = self._recent_load_kw(park_id, at)
        ctx = self._context(park, settings, records, load)
        flexes = tuple(
            park_flex_at([r.asset for r in assets], at=at, duration_h=d, now=at, context=ctx)
            for d in self.policy.reporting_durations_h
        )
        return CurrentFlex(park, at, flexes, tuple(assets), load)

    def forecast_flex(
        self,
        park_id: str,
        *,
        now: datetime | None = None,
        n_slots: int = 96,
        durations_h: Sequence[float] | None = None,
    ) -> pl.DataFrame:
        """24-hour (by default) flexibility forecast in 15-min slots (see :func:`flex.forecast_park_flex`)."""
        park = self.park(park_id)
        at = (now or self.clock()).astimezone(UTC)
        settings = self.repo.get_settings(park_id)
        records = self._records(park_id)
        assets = self.repo.list_assets(park_id, now=at)
        profile = self._load_profile(park_id, _floor_slot(at), n_slots)
        load: Sequence[float] | float | None = profile if profile is not None else self._recent_load_kw(park_id, at)
        ctx = self._context(park, settings, records, load)
        return forecast_park_flex(
            [r.asset for r in assets], now=at, durations_h=durations_h or self.policy.reporting_durations_h,
            context=ctx, n_slots=n_slots,
        )

    # --- baselines and events ----------------------------------------------------------------------------

    def method_for(self, park_id: str, name: str | None, overrides: Mapping[str, Any] | None) -> BaselineMethod:
        """The park's configured method (or ``name``) with the park's and the call's overrides applied."""
        settings = self.repo.get_settings(park_id)
        if name is None:
            merged = {**settings.baseline_overrides, **(overrides or {})}
            return resolve_method(settings.baseline_method, merged or None)
        return resolve_method(name, overrides or None)

    @staticmethod
    def _history_start(window: EventWindow, methods: Sequence[BaselineMethod]) -> datetime:
        """Where demand must start for ``methods``' look-backs (plus two days for local-day edges)."""
        lookback = max((s.lookback_days for m in methods for s in (m.workday, m.non_workday) if s is not None),
                       default=1)
        return window.start - timedelta(days=lookback + 2)

    def _event_days(self, park: ParkInfo, before: datetime, exclude_id: str | None = None) -> set[date]:
        events, _ = self.repo.list_events(park.park_id, start=before - timedelta(days=400), end=before,
                                          limit=10_000, offset=0)
        zone = park_zone(park.timezone)
        days: set[date] = set()
        for e in events:
            if e.event_id == exclude_id or e.status == "cancelled":
                continue
            days.add(e.start.astimezone(zone).date())
            days.add((e.end - timedelta(microseconds=1)).astimezone(zone).date())
        return days

    def baseline(
        self,
        park_id: str,
        window: EventWindow,
        *,
        method: BaselineMethod,
        notice_day: date | None = None,
        exclude_event_id: str | None = None,
    ) -> BaselineResult:
        """Baseline of ``window`` from stored demand on the park's calendar, excluding its past event days."""
        park = self.park(park_id)
        demand = self.repo.park_demand(park_id, self._history_start(window, [method]), window.end)
        return compute_baseline(
            demand, window, method, timezone=park.timezone, calendar=self.park_calendar(park_id),
            event_days=self._event_days(park, window.start, exclude_event_id), notice_day=notice_day,
        )

    def register_event(
        self,
        park_id: str,
        window: EventWindow,
        *,
        direction: Direction,
        requested_kw: float,
        declared_kw: float | None = None,
        method: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        notified_at: datetime | None = None,
        event_id: str | None = None,
        source: str = "manual",
        program_id: str | None = None,
    ) -> DrEvent:
        """Register an event; without ``declared_kw`` the park's current derated flexibility for the
        event's duration is recorded as what it declared (so delivered/declared can be judged later)."""
        self.park(park_id)
        EventRequest(window, direction, requested_kw, declared_kw)  # validates the request
        resolved = self.method_for(park_id, method, overrides)
        if declared_kw is None:
            now = (notified_at or self.clock()).astimezone(UTC)
            flex = self.current_flex_for_duration(park_id, window.duration_h, now=now)
            declared_kw = flex.up_kw if direction is Direction.UP else flex.down_kw
        event = DrEvent(
            event_id=event_id or uuid.uuid4().hex,
            park_id=park_id,
            start=window.start.astimezone(UTC),
            end=window.end.astimezone(UTC),
            direction=direction,
            requested_kw=requested_kw,
            declared_kw=declared_kw,
            baseline_method=resolved.name,
            baseline_overrides=resolved.model_dump(mode="json"),  # frozen: later settings changes don't apply
            notified_at=notified_at,
            source=source,
            program_id=program_id,
        )
        return self.repo.create_event(event)

    def current_flex_for_duration(self, park_id: str, duration_h: float, *, now: datetime | None = None) -> ParkFlex:
        """Park flexibility for one arbitrary duration (limits and derating applied)."""
        park = self.park(park_id)
        at = (now or self.clock()).astimezone(UTC)
        settings = self.repo.get_settings(park_id)
        assets = self.repo.list_assets(park_id, now=at)
        ctx = self._context(park, settings, self._records(park_id), self._recent_load_kw(park_id, at))
        return park_flex_at([r.asset for r in assets], at=at, duration_h=duration_h, now=at, context=ctx)

    def event_method(self, event: DrEvent) -> BaselineMethod:
        """The method frozen at registration (full parameter set), else the named preset."""
        if event.baseline_overrides and "kind" in event.baseline_overrides:
            return BaselineMethod.model_validate(event.baseline_overrides)
        return resolve_method(event.baseline_method, event.baseline_overrides or None)

    def evaluate(self, event_id: str, *, now: datetime | None = None) -> EventResult:
        """Run M&V for a finished event and store the result (re-running replaces it)."""
        event = self.repo.get_event(event_id)
        if event is None:
            raise NotFoundError("event", event_id)
        if event.status == "cancelled":
            raise InvalidEventError(f"event {event_id} was cancelled")
        at = (now or self.clock()).astimezone(UTC)
        if at < event.end:
            raise InvalidEventError(f"event {event_id} ends at {event.end.isoformat()}; evaluate it afterwards")
        park = self.park(event.park_id)
        window = EventWindow(event.start, event.end)
        method = self.event_method(event)
        notice = event.notified_at.astimezone(park_zone(park.timezone)).date() if event.notified_at else None
        baseline = self.baseline(event.park_id, window, method=method, notice_day=notice, exclude_event_id=event_id)
        actual = self.repo.park_demand(event.park_id, window.start - timedelta(hours=1), window.end)
        request = EventRequest(window, event.direction, event.requested_kw, event.declared_kw)
        perf = evaluate_event(request, baseline, actual, self.policy)
        adjustment = {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(baseline.adjustment).items()
        }
        result = EventResult(
            event_id=event_id, evaluated_at=at, baseline_method=method.name,
            baseline_params=method.model_dump(mode="json"), delivered_kwh=perf.delivered_kwh,
            duration_h=perf.duration_h, avg_reduction_kw=perf.avg_reduction_kw,
            min_reduction_kw=perf.min_reduction_kw, max_reduction_kw=perf.max_reduction_kw,
            ratio_requested=perf.ratio_requested, ratio_declared=perf.ratio_declared, band=perf.band,
            estimated_share_event=perf.estimated_share_event, estimated_share_baseline=perf.estimated_share_baseline,
            missing_intervals=perf.missing_intervals, quality_ok=perf.quality_ok,
            quality_reasons=perf.quality_reasons, baseline_days=perf.baseline_days, adjustment=adjustment,
            warnings=baseline.warnings,
        )
        intervals = perf.intervals.join(
            baseline.profile.select("ts", "baseline_unadjusted_kw"), on="ts", how="left"
        ).sort("ts")
        self.repo.save_result(result, intervals)
        logger.info("event %s evaluated: %.1f kW average, quality %s", event_id, perf.avg_reduction_kw,
                    "ok" if perf.quality_ok else "; ".join(perf.quality_reasons))
        return result

    # --- capacity ----------------------------------------------------------------------------------------

    def capacity(self, park_id: str, *, now: datetime | None = None, persist: bool = True) -> list[DrCapacity]:
        """Declared and verified capacity (up and down) for the programme duration; appended to history."""
        park = self.park(park_id)
        at = (now or self.clock()).astimezone(UTC)
        settings = self.repo.get_settings(park_id)
        duration = settings.declared_duration_h or self.policy.declared_duration_h
        records = self._records(park_id)
        flex = self.current_flex_for_duration(park_id, duration, now=at)
        peak = self._annual_peak(park, at)
        out = [
            dr_capacity(as_of=at, declared_kw=flex.up_kw, records=records, peak=peak, direction=Direction.UP,
                        duration_h=duration, policy=self.policy),
            dr_capacity(as_of=at, declared_kw=flex.down_kw, records=records, peak=peak, direction=Direction.DOWN,
                        duration_h=duration, policy=self.policy),
        ]
        if persist:
            self.repo.save_capacity(park_id, out)
        return out

    def _annual_peak(self, park: ParkInfo, at: datetime) -> DemandPeak | None:
        if self.policy.annual_max_basis == "calendar_year":
            zone = park_zone(park.timezone)
            start = datetime(at.astimezone(zone).year, 1, 1, tzinfo=zone).astimezone(UTC)
        else:
            start = at - timedelta(days=365)
        return self.repo.park_peak(park.park_id, start, at)

    def capacity_by_event(
        self,
        park_id: str,
        *,
        now: datetime | None = None,
        methods: Sequence[str] | None = None,
        direction: Direction | None = None,
    ) -> CapacityByEvent:
        """Every evaluated event (newest first) under every baseline method: kW and % of annual max demand.

        ``methods`` defaults to every shipped preset; each event is also shown under the exact method its
        stored evaluation used (frozen at registration), which is the figure the capacity summary counts.
        Nothing is stored.
        """
        park = self.park(park_id)
        at = (now or self.clock()).astimezone(UTC)
        presets = baseline_presets()
        chosen = [resolve_method(m) for m in (methods if methods is not None else sorted(presets))]
        peak = self._annual_peak(park, at)
        calendar = self.park_calendar(park_id)
        records = [r for r in self._records(park_id) if r.start <= at]
        verified = {c.verified_event_id for c in (
            dr_capacity(as_of=at, declared_kw=None, records=records, peak=peak, direction=d, policy=self.policy)
            for d in Direction) if c.verified_event_id}
        events, _ = self.repo.list_events(park_id, start=None, end=at, limit=10_000, offset=0, direction=direction)
        zone = park_zone(park.timezone)
        rows: list[EventCapacity] = []
        for event in events:
            if event.status != "evaluated" or event.end > at:
                continue
            own = self.event_method(event)
            per_event = [own if m.name == own.name else m for m in chosen]
            if own.name not in {m.name for m in per_event}:
                per_event.append(own)
            window = EventWindow(event.start, event.end)
            demand = self.repo.park_demand(park_id, self._history_start(window, per_event), window.end)
            figures = capacity_by_method(
                EventRequest(window, event.direction, event.requested_kw, event.declared_kw), demand, per_event,
                evaluated_with=own.name, timezone=park.timezone, calendar=calendar,
                event_days=self._event_days(park, window.start, event.event_id),
                notice_day=event.notified_at.astimezone(zone).date() if event.notified_at else None,
                policy=self.policy, peak=peak,
            )
            rows.append(EventCapacity(event.event_id, event.start, event.end, event.direction, event.requested_kw,
                                      event.declared_kw, event.event_id in verified, figures))
        names = tuple(dict.fromkeys([m.name for m in chosen] + [f.method for r in rows for f in r.methods]))
        return CapacityByEvent(park_id, at, peak.demand_kw if peak else None, peak.at if peak else None, names,
                               tuple(rows))

    def latest_capacity(self, park_id: str) -> list[DrCapacity]:
        """The most recent stored computation (both directions), or a fresh one if none is stored."""
        history, _ = self.repo.capacity_history(park_id, start=None, end=None, limit=8, offset=0)
        if not history:
            return self.capacity(park_id)
        newest = history[0].as_of
        return [c for c in history if c.as_of == newest]
