"""OpenADR 2.0b event (as openleadr parses ``oadrDistributeEvent``) → :class:`IncomingEvent`. Pure.

Which signal counts: an event may carry several signals; the first dispatchable one wins in the order
LOAD_DISPATCH, LOAD_CONTROL, SIMPLE, then price signals (informational). How its values are read:

* signal type ``level`` (SIMPLE, LOAD_DISPATCH level): SIMPLE levels 0-3, direction up;
* ``delta`` / ``x-loadControlLevelOffset``: a change of load in kW relative to normal: negative = shed
  (direction up, load reduction), positive = take more (direction down); the magnitude is the kW target;
* ``setpoint`` / ``x-loadControlSetpoint``: a park load setpoint in kW (direction up);
* price signals: informational; anything else (percent offsets, multipliers, capacity fractions) is
  ``unsupported`` and the intake opts out naming it.

Power values are converted to kW from the signal's item units and SI scale (``W`` with scale ``k`` is kW;
no item base means kW). Intervals without their own ``dtstart`` follow each other from the event's active
period start (2.0b sends them that way; openleadr fills dtstart in). Randomisation is the active period's
``tolerance.tolerate.startafter``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from vpp._event_model import EventInterval, EventSource, EventStatus, IncomingEvent, SignalKind

SIGNAL_ORDER: Final = ("LOAD_DISPATCH", "LOAD_CONTROL", "SIMPLE", "simple")
PRICE_SIGNALS: Final = frozenset({"ELECTRICITY_PRICE", "ENERGY_PRICE", "DEMAND_CHARGE", "BID_PRICE"})
_SCALE_TO_KW: Final[dict[str, float]] = {
    "p": 1e-15, "n": 1e-12, "micro": 1e-9, "m": 1e-6, "c": 1e-5, "d": 1e-4, "none": 1e-3,
    "k": 1.0, "M": 1e3, "G": 1e6, "T": 1e9,
}
_LEVEL_TYPES: Final = frozenset({"level"})
_DELTA_TYPES: Final = frozenset({"delta", "x-loadControlLevelOffset"})
_SETPOINT_TYPES: Final = frozenset({"setpoint", "x-loadControlSetpoint"})
_POWER_KEYS: Final = ("powerReal", "powerApparent", "powerReactive", "customUnit")


class Oadr2ParseError(ValueError):
    """The event is not a well-formed 2.0b event (missing id, no signal, no intervals)."""


def _aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise Oadr2ParseError(f"{what} is not a date-time: {value!r}")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _duration(value: Any, what: str) -> timedelta:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise Oadr2ParseError(f"{what} is not a non-negative duration: {value!r}")
    return value


def pick_signal(signals: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The signal the park acts on (see the module docstring)."""
    if not signals:
        raise Oadr2ParseError("event has no signals")
    for name in SIGNAL_ORDER:
        for signal in signals:
            if signal.get("signal_name") == name:
                return signal
    return signals[0]


def kw_factor(signal: Mapping[str, Any]) -> float:
    """Multiplier from the signal's item units to kW (1.0 when no power item base is given)."""
    measurement = signal.get("measurement")
    if isinstance(measurement, Mapping):  # openleadr's parsed form: {name, description, unit, scale}
        return _factor(measurement.get("unit"), measurement.get("scale"))
    for key in _POWER_KEYS:  # the raw itemBase form: {item_units, si_scale_code}
        item = signal.get(key)
        if isinstance(item, Mapping):
            return _factor(item.get("item_units"), item.get("si_scale_code"))
    return 1.0


def _factor(unit: Any, scale: Any) -> float:
    base = _SCALE_TO_KW.get(str(scale or "none"), 1e-3)
    return base * 1e3 if str(unit or "W") in ("kW", "kVA", "kVAR") else base


def signal_kind(signal: Mapping[str, Any]) -> SignalKind:
    """How the signal's values are read."""
    name, kind = str(signal.get("signal_name", "")), str(signal.get("signal_type", ""))
    if name in PRICE_SIGNALS or kind in ("price", "priceRelative", "priceMultiplier"):
        return SignalKind.PRICE
    if kind in _LEVEL_TYPES:
        return SignalKind.SIMPLE
    if kind in _DELTA_TYPES:
        return SignalKind.TARGET_KW
    if kind in _SETPOINT_TYPES:
        return SignalKind.SETPOINT_KW
    return SignalKind.UNSUPPORTED


def parse_intervals(signal: Mapping[str, Any], start: datetime, factor: float) -> tuple[EventInterval, ...]:
    """The signal's intervals in order (dtstart filled in from ``start`` where missing), values × ``factor``."""
    raw = signal.get("intervals") or []
    uids = [i.get("uid") for i in raw]
    ordered = sorted(raw, key=lambda i: int(i["uid"])) if all(isinstance(u, int) for u in uids) else list(raw)
    out: list[EventInterval] = []
    cursor = start
    for index, item in enumerate(ordered):
        duration = _duration(item.get("duration"), f"interval {index} duration")
        begin = _aware(item["dtstart"], f"interval {index} dtstart") if item.get("dtstart") else cursor
        payload = item.get("signal_payload")
        if isinstance(payload, bool) or not isinstance(payload, int | float) or not math.isfinite(payload):
            raise Oadr2ParseError(f"interval {index} payload is not a finite number: {payload!r}")
        out.append(EventInterval(begin, duration, float(payload) * factor, "kW"))
        cursor = begin + duration
    if not out:
        raise Oadr2ParseError("the event's signal has no intervals")
    return tuple(out)


def _values(signal: Mapping[str, Any], start: datetime, kind: SignalKind) -> tuple[tuple[EventInterval, ...], str]:
    """Intervals in the model's units and the event direction."""
    if kind is SignalKind.SIMPLE:
        levels = parse_intervals(signal, start, 1.0)
        return tuple(EventInterval(i.start, i.duration, i.value, "level") for i in levels), "up"
    if kind is SignalKind.PRICE or kind is SignalKind.UNSUPPORTED:
        values = parse_intervals(signal, start, 1.0)
        return tuple(EventInterval(i.start, i.duration, i.value, "price" if kind is SignalKind.PRICE else
                                   str(signal.get("signal_type", "?"))) for i in values), "up"
    intervals = parse_intervals(signal, start, kw_factor(signal))
    if kind is SignalKind.SETPOINT_KW:
        return intervals, "up"
    # delta: negative sheds (up), positive takes more (down); the model keeps the magnitude
    net = sum(i.value * i.duration.total_seconds() for i in intervals)
    direction = "down" if net > 0 else "up"
    return tuple(EventInterval(i.start, i.duration, abs(i.value), "kW") for i in intervals), direction


def json_safe(value: Any) -> Any:
    """The parsed event as plain JSON (datetimes ISO, durations in seconds) for the audit record."""
    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return obj.isoformat()
        if isinstance(obj, timedelta):
            return obj.total_seconds()
        return str(obj)

    return json.loads(json.dumps(value, default=default))


def parse_event(event: Mapping[str, Any], *, vtn_id: str, park_id: str, received_at: datetime) -> IncomingEvent:
    """Normalize one openleadr event dict; raises :class:`Oadr2ParseError` when it is malformed."""
    descriptor = event.get("event_descriptor") or {}
    event_id = descriptor.get("event_id")
    if not event_id:
        raise Oadr2ParseError("event has no event_id")
    period = event.get("active_period") or {}
    start = _aware(period.get("dtstart"), "active period dtstart")
    signals = event.get("event_signals") or []
    if isinstance(signals, Mapping):  # some payloads nest the list once more
        signals = signals.get("event_signals") or []
    signal = pick_signal(signals)
    kind = signal_kind(signal)
    intervals, direction = _values(signal, start, kind)
    tolerance = (period.get("tolerance") or {}).get("tolerate") or {}
    startafter = tolerance.get("startafter")
    status_word = str(descriptor.get("event_status") or "none")
    try:
        status = EventStatus(status_word)
    except ValueError:
        raise Oadr2ParseError(f"unknown event status {status_word!r}") from None
    by_type = event.get("targets_by_type") or {}
    resources = tuple(str(r) for r in (by_type.get("resource_id") or []))
    priority = descriptor.get("priority")
    return IncomingEvent(
        source=EventSource.OADR2, vtn_id=vtn_id, vtn_event_id=str(event_id),
        modification_number=int(descriptor.get("modification_number") or 0), status=status, park_id=park_id,
        signal_name=str(signal.get("signal_name", "")), signal_kind=kind, intervals=intervals,
        received_at=received_at.astimezone(UTC), program_id=descriptor.get("market_context"), direction=direction,
        randomization=startafter if isinstance(startafter, timedelta) else timedelta(0),
        response_required=event.get("response_required", "always") == "always",
        priority=int(priority) if isinstance(priority, int) else None,
        test_event=bool(descriptor.get("test_event")), target_resources=resources, raw=json_safe(dict(event)),
    )
