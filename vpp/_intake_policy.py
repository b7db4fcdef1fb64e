"""The park's intake policy and the pure decision: how many kW an event asks for, and opt in or out.

A utility's event says "level 2" or "shed 300 kW from 14:00 for an hour"; whether the park takes it on
depends on what the park can do (its flexibility envelope now, in the event's direction) and on rules the
park's operator set: a safety margin on the flexibility, a minimum notice, the days and hours the park
takes part in DR (its DR calendar). :func:`decide` turns an :class:`IncomingEvent` and a
:class:`ParkCapability` snapshot into a :class:`Decision` with no I/O, so every rule is unit-tested.

Signal mapping: SIMPLE levels 0-3 become ``level_fractions[level]`` × the park's available flexibility;
``target_kw`` values are the reduction (or increase) in kW; ``setpoint_kw`` values are a load cap, so the
reduction is ``current load − setpoint`` (never negative; for a down event the setpoint is a floor and the
increase is ``setpoint − load``); price signals ask for nothing. The event's ``requested_kw`` is the largest
interval value (the obligation the park must meet at its peak).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flex import Direction
from vpp._event_model import EventInterval, IncomingEvent, OptDecision, SignalKind

#: Default share of the park's available flexibility each SIMPLE level asks for (0 = normal operation).
DEFAULT_LEVEL_FRACTIONS: Final[dict[int, float]] = {0: 0.0, 1: 0.5, 2: 0.75, 3: 1.0}
_REASON_MAX: Final = 200


class IntakePolicy(BaseModel):
    """A park's rules for taking part in DR events (defaults apply when the park stores none).

    ``flex_margin``: the park opts in only when ``requested_kw <= available_kw × flex_margin`` (below 1 keeps
    headroom, e.g. 0.9). ``min_notice``: events starting sooner than this after notification are refused (0: no minimum,
    an event already running is taken for its remaining time).
    ``allowed_day_types``: the DR calendar (flex DayType values: workday, weekend, holiday, adjusted_workday);
    empty means every day. ``local_hours``: [from, to) local hours the park takes events in (None: any).
    ``max_duration``: longest event accepted (None: any).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    flex_margin: float = Field(default=1.0, gt=0, le=2)
    min_notice: timedelta = timedelta(0)
    level_fractions: Mapping[int, float] = Field(default_factory=lambda: dict(DEFAULT_LEVEL_FRACTIONS))
    allowed_day_types: tuple[str, ...] = ()
    local_hours: tuple[int, int] | None = None
    max_duration: timedelta | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        for level, share in self.level_fractions.items():
            if not 0 <= share <= 1:
                raise ValueError(f"level_fractions[{level}] must be between 0 and 1, got {share}")
        if self.local_hours is not None:
            start, end = self.local_hours
            if not (0 <= start < end <= 24):
                raise ValueError(f"local_hours must satisfy 0 <= from < to <= 24, got {self.local_hours}")
        return self


@dataclass(frozen=True, slots=True)
class ParkCapability:
    """What the park can do for one event, sampled at notification.

    ``available_kw``: sustained flexibility in the event's direction for the event's duration (limits and
    derating applied). ``load_kw``: latest park load (for setpoint signals). ``day_type``: the park
    calendar's type of the event's local start day; ``local_start_hour``/``local_end_hour`` the event's
    local hours (end may be 24). ``resources``: resource ids this park answers to (park id, asset ids).
    """

    park_id: str
    available_kw: float
    load_kw: float | None = None
    day_type: str | None = None
    local_start_hour: float | None = None
    local_end_hour: float | None = None
    resources: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Decision:
    """The intake's answer for one event version."""

    opt: OptDecision
    requested_kw: float
    committed_kw: float
    direction: Direction
    reason: str | None = None
    interval_kw: tuple[float, ...] = ()  # kW each interval asks for, in the event's interval order


def interval_kw(interval: EventInterval, kind: SignalKind, capability: ParkCapability | None,
                policy: IntakePolicy, direction: str = "up") -> float:
    """kW one interval asks for (≥ 0), per the signal kind (see the module docstring).

    A ``setpoint_kw`` is a cap on the park's load for an up event (reduce to it) and a floor for a down
    event (raise the load to it, e.g. an export limit as a negative floor).
    """
    if kind is SignalKind.SIMPLE:
        level = max(0, min(3, round(interval.value)))
        share = policy.level_fractions.get(level, DEFAULT_LEVEL_FRACTIONS[level])
        return share * (capability.available_kw if capability else 0.0)
    if kind is SignalKind.TARGET_KW:
        return max(0.0, abs(interval.value))
    if kind is SignalKind.SETPOINT_KW:
        if capability is None or capability.load_kw is None:
            return 0.0
        if direction == "down":
            return max(0.0, interval.value - capability.load_kw)
        return max(0.0, capability.load_kw - interval.value)
    return 0.0


def requested_kw(event: IncomingEvent, capability: ParkCapability | None, policy: IntakePolicy) -> float:
    """The event's obligation: the largest kW any of its intervals asks for."""
    return max((interval_kw(i, event.signal_kind, capability, policy, event.direction) for i in event.intervals),
               default=0.0)


def clip_reason(reason: str) -> str:
    """Reasons travel in XML/JSON responseDescription fields: one line, bounded length, no markup."""
    flat = " ".join(reason.replace("<", "(").replace(">", ")").replace("&", "and").split())
    return flat[:_REASON_MAX]


def _reasons(event: IncomingEvent, capability: ParkCapability, policy: IntakePolicy,
             wanted_kw: float) -> Iterator[str]:
    """Every rule the event breaks, in the order they are checked."""
    if event.target_resources and not (set(event.target_resources) & capability.resources):
        yield (f"unknown resource(s) {', '.join(sorted(event.target_resources))}: this VEN serves "
               f"{', '.join(sorted(capability.resources)) or capability.park_id}")
    start, end = event.start, event.end
    if start is None or end is None:
        yield "event has no intervals"
        return
    if end <= event.received_at:
        yield f"event already ended at {end.isoformat()}"
    notice = start - event.received_at
    if policy.min_notice > timedelta(0) and notice < policy.min_notice:
        yield (f"notice {notice.total_seconds() / 60:.0f} min is shorter than the park's minimum "
               f"{policy.min_notice.total_seconds() / 60:.0f} min")
    if policy.max_duration is not None and end - start > policy.max_duration:
        yield (f"duration {(end - start).total_seconds() / 3600:.2f} h exceeds the park's maximum "
               f"{policy.max_duration.total_seconds() / 3600:.2f} h")
    if policy.allowed_day_types and capability.day_type not in policy.allowed_day_types:
        yield (f"outside the park's DR calendar: {capability.day_type or 'unknown'} day "
               f"(takes part on {', '.join(policy.allowed_day_types)})")
    first_h, last_h = capability.local_start_hour, capability.local_end_hour
    if policy.local_hours is not None and first_h is not None and last_h is not None:
        low, high = policy.local_hours
        if first_h < low or last_h > high:
            yield (f"outside the park's DR hours {low:02d}:00-{high:02d}:00 local "
                   f"(event {first_h:05.2f}-{last_h:05.2f} h)")
    limit_kw = capability.available_kw * policy.flex_margin
    if wanted_kw > limit_kw + 1e-9:
        yield (f"requested {wanted_kw:.1f} kW exceeds available flexibility {capability.available_kw:.1f} kW "
               f"x margin {policy.flex_margin:g} = {limit_kw:.1f} kW")


def _refusal(event: IncomingEvent, capability: ParkCapability | None, policy: IntakePolicy,
             wanted_kw: float) -> str | None:
    """Why the park cannot take the event (the first rule it breaks), or None when it can."""
    if capability is None:
        return f"unknown park {event.park_id!r}: register the park in ParkPulse or fix the VEN's park id"
    return next(_reasons(event, capability, policy, wanted_kw), None)


def decide(event: IncomingEvent, capability: ParkCapability | None, policy: IntakePolicy) -> Decision:
    """Opt in (committing the requested kW) or opt out with a reason, per the park's policy."""
    direction = Direction(event.direction)
    if event.signal_kind is SignalKind.PRICE:
        return Decision(OptDecision.OPT_IN, 0.0, 0.0, direction, "price signal: informational, nothing dispatched")
    if event.signal_kind is SignalKind.UNSUPPORTED:
        return Decision(OptDecision.OPT_OUT, 0.0, 0.0, direction,
                        clip_reason(f"signal {event.signal_name} is not supported: send SIMPLE levels or kW targets"))
    per_interval = tuple(interval_kw(i, event.signal_kind, capability, policy, event.direction)
                         for i in event.intervals)
    wanted = max(per_interval, default=0.0)
    reason = _refusal(event, capability, policy, wanted)
    if reason is not None:
        return Decision(OptDecision.OPT_OUT, wanted, 0.0, direction, clip_reason(reason), per_interval)
    return Decision(OptDecision.OPT_IN, wanted, wanted, direction, None, per_interval)


def local_hours(start: datetime, end: datetime, zone: tzinfo) -> tuple[float, float]:
    """Local start and end hour of [start, end) in ``zone``; the end counts on from the start day (24 = midnight)."""
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    start_h = local_start.hour + local_start.minute / 60 + local_start.second / 3600
    end_h = local_end.hour + local_end.minute / 60 + local_end.second / 3600
    return start_h, end_h + 24 * (local_end.date() - local_start.date()).days
