"""The normalized DR event model both OpenADR VENs produce and the intake, dispatcher and M&V consume.

OpenADR 2.0b (``oadrDistributeEvent``) and OpenADR 3 (``event`` objects) describe the same thing with
different words; each VEN translates what it receives into an :class:`IncomingEvent`, and everything
downstream sees only this model. The classes are frozen, slotted dataclasses with no I/O so that the
parsing and the intake decision stay pure and testable.

Conventions: every datetime is timezone-aware UTC; ``value`` of an interval is in ``unit`` (``kW`` for
load-dispatch/control targets, ``level`` for SIMPLE levels 0-3, ``fraction`` for a share of the park's
flexibility); ``raw`` is the payload as received (JSON-serialisable) and is stored for audit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class EventSource(StrEnum):
    """Which protocol delivered the event."""

    OADR2 = "oadr2"
    OADR3 = "oadr3"


class EventStatus(StrEnum):
    """The VTN's view of the event (OpenADR 2.0b eventStatus; OpenADR 3 maps onto it)."""

    NONE = "none"
    FAR = "far"
    NEAR = "near"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class SignalKind(StrEnum):
    """How the event's values are to be read.

    ``simple``: levels 0-3 (0 = normal, 3 = maximum response), mapped to a fraction of the park's flexibility
    by the intake policy. ``target_kw``: absolute reduction (or increase) in kW (2.0b LOAD_DISPATCH/delta,
    OpenADR 3 ``IMPORT_CAPACITY_LIMIT``-style targets converted by the VEN). ``setpoint_kw``: a load
    setpoint in kW (2.0b setpoint/x-loadControlSetpoint); the intake turns it into a reduction against
    the park's current load. ``price``: informational, never dispatched by itself. ``unsupported``: a signal
    the park cannot act on (e.g. percent offsets); opted out with the signal named.
    """

    SIMPLE = "simple"
    TARGET_KW = "target_kw"
    SETPOINT_KW = "setpoint_kw"
    PRICE = "price"
    UNSUPPORTED = "unsupported"  # a signal this park cannot act on: the intake opts out saying which


class IntakeAction(StrEnum):
    """What the intake did with an incoming event version."""

    NEW = "new"
    MODIFIED = "modified"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    STALE = "stale"  # a lower modification number than the one already stored: ignored


class OptDecision(StrEnum):
    """The answer the VEN sends back (2.0b optType; OpenADR 3 has no opt, the VEN reports instead)."""

    OPT_IN = "optIn"
    OPT_OUT = "optOut"


class ReportKind(StrEnum):
    """Live telemetry the VTN may ask for during an event."""

    USAGE = "usage"          # metered park load, kW (2.0b TELEMETRY_USAGE / READING "x-resourceStatus" etc.)
    BASELINE = "baseline"    # baseline fixed at notification, kW
    AVAILABLE = "available"  # flexibility still available in the event's direction, kW


@dataclass(frozen=True, slots=True)
class EventInterval:
    """One interval of the event's signal: ``value`` in ``unit`` from ``start`` for ``duration``."""

    start: datetime
    duration: timedelta
    value: float
    unit: str = "kW"

    @property
    def end(self) -> datetime:
        """When the interval stops."""
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """Telemetry the VTN asked for: which kinds, sampled and sent every ``interval``."""

    interval: timedelta
    kinds: tuple[ReportKind, ...] = (ReportKind.USAGE, ReportKind.BASELINE, ReportKind.AVAILABLE)


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One version of a DR event as a VEN received it (normalized across OpenADR 2.0b and 3)."""

    source: EventSource
    vtn_id: str
    vtn_event_id: str
    modification_number: int
    status: EventStatus
    park_id: str
    signal_name: str
    signal_kind: SignalKind
    intervals: tuple[EventInterval, ...]
    received_at: datetime
    program_id: str | None = None  # 2.0b marketContext, OpenADR 3 programID
    direction: str = "up"  # flex Direction value: up = load reduction, down = load increase
    randomization: timedelta = timedelta(0)  # start-after (2.0b tolerance.startafter)
    response_required: bool = True
    report_request: ReportRequest | None = None
    priority: int | None = None
    test_event: bool = False
    target_resources: tuple[str, ...] = ()  # resource ids the VTN targeted (empty: the whole VEN/park)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """The idempotency key: (source, vtn_id, vtn_event_id)."""
        return (self.source.value, self.vtn_id, self.vtn_event_id)

    @property
    def start(self) -> datetime | None:
        """Start of the first interval (None when the event has no intervals)."""
        return min((i.start for i in self.intervals), default=None)

    @property
    def end(self) -> datetime | None:
        """End of the last interval (None when the event has no intervals)."""
        return max((i.end for i in self.intervals), default=None)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What the intake made of one incoming event version.

    ``dr_event_id`` is the ParkPulse (flex) DR event id, stable across versions of the same VTN event.
    ``requested_kw`` is the kW the park is asked for (max over intervals); ``committed_kw`` what it opted in
    to (0 on opt-out); ``interval_kw`` the kW each interval asks for (empty for duplicates/stale/cancelled).
    ``opt_reason`` explains an opt-out in words a utility operator can act on.
    """

    dr_event_id: str
    action: IntakeAction
    opt: OptDecision
    event: IncomingEvent
    requested_kw: float
    committed_kw: float
    opt_reason: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    direction: str = "up"
    interval_kw: tuple[float, ...] = ()  # kW asked per interval of ``event.intervals`` (SIMPLE levels resolved)

    @property
    def changed(self) -> bool:
        """True when downstream (dispatcher, M&V) must act: new, modified or cancelled."""
        return self.action in (IntakeAction.NEW, IntakeAction.MODIFIED, IntakeAction.CANCELLED)


@runtime_checkable
class ReportValues(Protocol):
    """Live values the VENs put in their reports (implemented by live M&V, D2).

    Each method returns kW at ``at`` (UTC) or None when unknown; ``dr_event_id`` None asks for the park
    outside any event (availability reports between events).
    """

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Metered park load."""
        ...

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Baseline fixed at notification (None outside an event)."""
        ...

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Flexibility still available in the event's direction (or load reduction outside events)."""
        ...
