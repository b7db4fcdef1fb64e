"""OpenADR 3 ``event`` objects → :class:`IncomingEvent` (pure; any JSON in, an event or a clear error out).

The 3.0.1 event has no status and (unlike later drafts) no modification number, so both are derived:

* **version**: ``modificationNumber`` when the VTN sends one, else ``modificationDateTime`` (else
  ``createdDateTime``) in whole seconds since 2020. The VTN stamps it on every change, so it only grows;
  the VEN separates two changes within one second with :func:`next_version`.
* **status**: from the intervals and the time the event was received (far, near within an hour, active,
  completed). Cancellation is a deletion; the VEN builds that version with :func:`cancelled_copy`.

Signals (the first payload type present, in this order of preference): ``IMPORT_CAPACITY_LIMIT`` and
``DISPATCH_SETPOINT`` are load setpoints in kW (reduce load: direction ``up``); ``EXPORT_CAPACITY_LIMIT`` caps
export, i.e. the load must stay above −limit (direction ``down``); ``DISPATCH_SETPOINT_RELATIVE`` is a change
in kW (negative = reduction); ``SIMPLE`` levels 0-3; ``PRICE`` / ``EXPORT_PRICE`` are informational. Units
come from the event's (or program's) payload descriptors: W, KW (default) or MW.

Interval timing: an interval's own ``intervalPeriod`` wins; otherwise it follows the event's period,
intervals laid end to end in ``id`` order (interval k starts at start + k × duration).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from vpp._event_model import (
    EventInterval,
    EventSource,
    EventStatus,
    IncomingEvent,
    ReportKind,
    ReportRequest,
    SignalKind,
)
from vpp.errors import Oadr3EventError

NEAR_WINDOW: Final = timedelta(hours=1)
VERSION_EPOCH: Final = datetime(2020, 1, 1, tzinfo=UTC)
#: payload type → (signal kind, direction, sign applied to the value); first match wins.
SIGNALS: Final[dict[str, tuple[SignalKind, str, float]]] = {
    "IMPORT_CAPACITY_LIMIT": (SignalKind.SETPOINT_KW, "up", 1.0),
    "DISPATCH_SETPOINT": (SignalKind.SETPOINT_KW, "up", 1.0),
    "EXPORT_CAPACITY_LIMIT": (SignalKind.SETPOINT_KW, "down", -1.0),
    "DISPATCH_SETPOINT_RELATIVE": (SignalKind.TARGET_KW, "up", -1.0),
    "SIMPLE": (SignalKind.SIMPLE, "up", 1.0),
    "PRICE": (SignalKind.PRICE, "up", 1.0),
    "EXPORT_PRICE": (SignalKind.PRICE, "up", 1.0),
}
_KW_PER_UNIT: Final = {"W": 0.001, "KW": 1.0, "MW": 1000.0}
#: report payload type → the live values it needs.
REPORT_KINDS: Final[dict[str, tuple[ReportKind, ...]]] = {
    "USAGE": (ReportKind.USAGE,),
    "DEMAND": (ReportKind.USAGE,),
    "BASELINE": (ReportKind.BASELINE,),
    "DELTA_USAGE": (ReportKind.USAGE, ReportKind.BASELINE),
    "UP_REGULATION_AVAILABLE": (ReportKind.AVAILABLE,),
    "DOWN_REGULATION_AVAILABLE": (ReportKind.AVAILABLE,),
}
_DURATION = re.compile(r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?"
                       r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: Any, where: str) -> timedelta:
    """An ISO 8601 duration as the spec writes it (``PT15M``, ``P1DT2H``); years and months are refused."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise Oadr3EventError(f"{where}: {text!r} is not an ISO 8601 duration such as PT15M")
    sign, years, months, days, unit, hours, minutes, seconds = match.groups()
    if years or months:
        raise Oadr3EventError(f"{where}: {text!r} uses years or months, which have no fixed length")
    total = timedelta(days=int(days or 0) * (7 if unit == "W" else 1), hours=int(hours or 0),
                      minutes=int(minutes or 0), seconds=float(seconds or 0))
    return -total if sign else total


def parse_datetime(text: Any, where: str) -> datetime:
    """An RFC 3339 date-time with an offset, as UTC."""
    if not isinstance(text, str):
        raise Oadr3EventError(f"{where}: expected an RFC 3339 date-time string, got {type(text).__name__}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Oadr3EventError(f"{where}: {text!r} is not an RFC 3339 date-time") from exc
    if value.tzinfo is None:
        raise Oadr3EventError(f"{where}: {text!r} has no UTC offset (write Z or +08:00)")
    return value.astimezone(UTC)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Oadr3EventError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Oadr3EventError(f"{where}: expected a JSON array, got {type(value).__name__}")
    return value


_OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _object_id(value: Any, where: str) -> str:
    """An ``objectID`` as the spec defines it (1-128 of letters, digits, ``_`` and ``-``)."""
    if not isinstance(value, str) or not _OBJECT_ID.match(value):
        raise Oadr3EventError(f"{where}: {value!r:.60} is not an OpenADR 3 objectID (1-128 of A-Z a-z 0-9 _ -)")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise Oadr3EventError(f"{where}: a {len(str(abs(value)))}-digit number is too large for a power or level")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Oadr3EventError(f"{where}: expected a finite number, got {value!r:.60}")
    return float(value)


def version_stamp(event: Mapping[str, Any]) -> tuple[int, datetime]:
    """What orders two versions of one event: (``modificationNumber`` or −1, modification or creation time)."""
    number = event.get("modificationNumber")
    explicit = number if isinstance(number, int) and not isinstance(number, bool) and number >= 0 else -1
    for name in ("modificationDateTime", "createdDateTime"):
        if event.get(name) is not None:
            return explicit, parse_datetime(event[name], f"event.{name}")
    return explicit, VERSION_EPOCH


def version_of(event: Mapping[str, Any]) -> int:
    """The event's version: ``modificationNumber``, else whole seconds from 2020 to the modification (or
    creation) time, which fits the intake's 32-bit column until 2088. Two modifications within one second
    are told apart by the VEN (:func:`next_version`)."""
    explicit, stamp = version_stamp(event)
    if explicit >= 0:
        return explicit
    return max(0, int((stamp - VERSION_EPOCH).total_seconds()))


def next_version(previous: IncomingEvent, event: IncomingEvent) -> IncomingEvent | None:
    """``event`` if it is newer than ``previous`` (its version raised above ``previous``'s when both fell in
    the same second), None when it is the same version or an older one."""
    if version_stamp(event.raw) <= version_stamp(previous.raw):
        return None
    if event.modification_number > previous.modification_number:
        return event
    return replace(event, modification_number=previous.modification_number + 1)


def addresses(event: Mapping[str, Any], *, ven_name: str, park_id: str) -> bool:
    """True when the event targets everyone (no targets), this VEN by name, or the park by any target type."""
    targets = _list(event.get("targets"), "event.targets")
    if not targets:
        return True
    for target in targets:
        values = {str(v) for v in _list(_mapping(target, "event.targets[]").get("values"), "targets[].values")}
        if (target.get("type") == "VEN_NAME" and ven_name in values) or park_id in values:
            return True
    return False


def _scale(event: Mapping[str, Any], program: Mapping[str, Any] | None, payload_type: str,
           kind: SignalKind) -> float:
    """kW per unit of the payload, from the first descriptor of that type (event first, then program)."""
    if kind in (SignalKind.SIMPLE, SignalKind.PRICE):
        return 1.0
    for source in (event, program or {}):
        for descriptor in _list(source.get("payloadDescriptors"), "payloadDescriptors"):
            if isinstance(descriptor, Mapping) and descriptor.get("payloadType") == payload_type:
                units = str(descriptor.get("units") or "KW").upper()
                if units not in _KW_PER_UNIT:
                    raise Oadr3EventError(f"payloadDescriptors: units {units!r} of {payload_type} are not "
                                          f"power (use one of {sorted(_KW_PER_UNIT)})")
                return _KW_PER_UNIT[units]
    return 1.0


def _signal_type(intervals: Sequence[Mapping[str, Any]]) -> str:
    present = {p.get("type") for i in intervals for p in _list(i.get("payloads"), "intervals[].payloads")
               if isinstance(p, Mapping)}
    for payload_type in SIGNALS:
        if payload_type in present:
            return payload_type
    raise Oadr3EventError(f"event.intervals: no payload ParkPulse can act on (found {sorted(map(str, present))}; "
                          f"expected one of {sorted(SIGNALS)})")


def _timing(event: Mapping[str, Any], interval: Mapping[str, Any], index: int,
            where: str) -> tuple[datetime, timedelta]:
    default = event.get("intervalPeriod")
    own = interval.get("intervalPeriod")
    if own is not None:
        period = _mapping(own, f"{where}.intervalPeriod")
        start = parse_datetime(period.get("start"), f"{where}.intervalPeriod.start")
        base = _mapping(default, "event.intervalPeriod") if default is not None else {}
        duration = parse_duration(period.get("duration", base.get("duration", "PT0S")),
                                  f"{where}.intervalPeriod.duration")
    elif default is not None:
        period = _mapping(default, "event.intervalPeriod")
        duration = parse_duration(period.get("duration", "PT0S"), "event.intervalPeriod.duration")
        start = parse_datetime(period.get("start"), "event.intervalPeriod.start") + index * duration
    else:
        raise Oadr3EventError(f"{where}: no intervalPeriod on the interval or the event")
    if duration <= timedelta(0):
        raise Oadr3EventError(f"{where}: duration must be positive (PT0S, 'unbounded', cannot be dispatched)")
    _ = start + duration  # the interval's end must be a representable time (OverflowError otherwise)
    return start, duration


def _value(interval: Mapping[str, Any], payload_type: str, where: str) -> float | None:
    for item in _list(interval.get("payloads"), f"{where}.payloads"):
        payload = _mapping(item, f"{where}.payloads[]")
        if payload.get("type") == payload_type:
            values = _list(payload.get("values"), f"{where}.payloads[{payload_type}].values")
            if not values:
                raise Oadr3EventError(f"{where}.payloads[{payload_type}].values: empty")
            return _number(values[0], f"{where}.payloads[{payload_type}].values[0]")
    return None


def _interval_id(interval: Mapping[str, Any]) -> int:
    number = interval.get("id")
    return number if isinstance(number, int) else 0


def _intervals(event: Mapping[str, Any], payload_type: str, kind: SignalKind, sign: float,
               scale: float) -> tuple[EventInterval, ...]:
    raw = [_mapping(i, f"event.intervals[{n}]") for n, i in enumerate(_list(event.get("intervals"), "event.intervals"))]
    ordered = sorted(raw, key=_interval_id)
    unit = {SignalKind.SIMPLE: "level", SignalKind.PRICE: "price"}.get(kind, "kW")
    out: list[EventInterval] = []
    for index, interval in enumerate(ordered):
        where = f"event.intervals[id={interval.get('id')}]"
        value = _value(interval, payload_type, where)
        if value is None:
            continue
        if kind is SignalKind.SIMPLE and value not in (0, 1, 2, 3):
            raise Oadr3EventError(f"{where}: SIMPLE level {value:g} is not one of 0, 1, 2, 3")
        start, duration = _timing(event, interval, index, where)
        out.append(EventInterval(start, duration, sign * value * scale + 0.0, unit))
    return tuple(out)


def _status(intervals: Sequence[EventInterval], now: datetime) -> EventStatus:
    start, end = min(i.start for i in intervals), max(i.end for i in intervals)
    if now >= end:
        return EventStatus.COMPLETED
    if now >= start:
        return EventStatus.ACTIVE
    return EventStatus.NEAR if start - now <= NEAR_WINDOW else EventStatus.FAR


def report_request(event: Mapping[str, Any], interval: timedelta) -> ReportRequest | None:
    """What the event's ``reportDescriptors`` ask for: kinds, and how often (``frequency`` intervals, or
    ``numIntervals``; −1 for both means one report after the last interval, i.e. ``interval`` × count)."""
    descriptors = [_mapping(d, "event.reportDescriptors[]")
                   for d in _list(event.get("reportDescriptors"), "event.reportDescriptors")]
    kinds: list[ReportKind] = []
    every = 0
    for descriptor in descriptors:
        for kind in REPORT_KINDS.get(str(descriptor.get("payloadType")), ()):
            if kind not in kinds:
                kinds.append(kind)
        frequency, count = descriptor.get("frequency", -1), descriptor.get("numIntervals", -1)
        step = frequency if isinstance(frequency, int) and frequency > 0 else count
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            every = min(every, step) if every else step
    if not kinds:
        return None
    total = len(_list(event.get("intervals"), "event.intervals"))
    return ReportRequest(interval=interval * (every or max(1, total)), kinds=tuple(kinds))


def parse_event(obj: Any, *, vtn_id: str, park_id: str, received_at: datetime,
                program: Mapping[str, Any] | None = None) -> IncomingEvent:
    """One OpenADR 3 event object as an :class:`IncomingEvent`; :class:`Oadr3EventError` names what is wrong."""
    try:
        return _parse_event(obj, vtn_id=vtn_id, park_id=park_id, received_at=received_at, program=program)
    except OverflowError as exc:  # year 9999 plus a duration, P99999999999D, 10**400 kW
        raise Oadr3EventError(f"event: a date, duration or value is out of range ({exc})") from exc


def _parse_event(obj: Any, *, vtn_id: str, park_id: str, received_at: datetime,
                 program: Mapping[str, Any] | None) -> IncomingEvent:
    event = _mapping(obj, "event")
    event_id = _object_id(event.get("id"), "event.id")
    program_id = _object_id(event.get("programID"), "event.programID")
    intervals_raw = [_mapping(i, "event.intervals[]") for i in _list(event.get("intervals"), "event.intervals")]
    if not intervals_raw:
        raise Oadr3EventError("event.intervals: the event has no intervals")
    payload_type = _signal_type(intervals_raw)
    kind, direction, sign = SIGNALS[payload_type]
    intervals = _intervals(event, payload_type, kind, sign, _scale(event, program, payload_type, kind))
    period = event.get("intervalPeriod")
    randomize = timedelta(0)
    if isinstance(period, Mapping) and period.get("randomizeStart") is not None:
        randomize = parse_duration(period["randomizeStart"], "event.intervalPeriod.randomizeStart")
    priority = event.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int) or priority < 0):
        raise Oadr3EventError(f"event.priority: expected a non-negative integer, got {priority!r:.40}")
    return IncomingEvent(
        source=EventSource.OADR3, vtn_id=vtn_id, vtn_event_id=event_id, modification_number=version_of(event),
        status=_status(intervals, received_at), park_id=park_id, signal_name=payload_type, signal_kind=kind,
        intervals=intervals, received_at=received_at, program_id=program_id, direction=direction,
        randomization=randomize, response_required=True,
        report_request=report_request(event, intervals[0].duration), priority=priority, raw=dict(event))


def cancelled_copy(event: IncomingEvent, *, received_at: datetime) -> IncomingEvent:
    """The version that tells the intake an event was deleted at the VTN: status cancelled, next version."""
    return replace(event, status=EventStatus.CANCELLED, modification_number=event.modification_number + 1,
                   received_at=received_at)
