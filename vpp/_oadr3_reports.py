"""OpenADR 3 reports during an event: when they are due and what they say (pure).

The event's ``reportDescriptors`` (parsed into ``IncomingEvent.report_request``) say how often: every
``frequency`` intervals (or ``numIntervals``, or once after the last interval). :func:`report_schedule`
groups the event's intervals accordingly; each group is due when its last interval ends. :func:`build_report`
fills one group with live values from a :class:`ReportValues` provider (live M&V): per interval ``USAGE``
(metered park load), ``BASELINE`` (fixed at notification) and ``DELTA_USAGE`` (usage − baseline: negative
is a delivered reduction), plus ``UP_/DOWN_REGULATION_AVAILABLE`` when asked, all in kW under one
``AGGREGATED_REPORT`` resource. Unknown (or non-finite) values are left out rather than invented; a report with nothing
known is not sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from vpp._event_model import EventInterval, IncomingEvent, ReportValues
from vpp._oadr3_parse import REPORT_KINDS

AGGREGATED: Final = "AGGREGATED_REPORT"
#: payload type → (readingType, units) of the report's payload descriptors.
_DESCRIPTORS: Final[dict[str, tuple[str, str]]] = {
    "USAGE": ("DIRECT_READ", "KW"),
    "DEMAND": ("DIRECT_READ", "KW"),
    "BASELINE": ("ESTIMATED", "KW"),
    "DELTA_USAGE": ("DIRECT_READ", "KW"),
    "UP_REGULATION_AVAILABLE": ("FORECAST", "KW"),
    "DOWN_REGULATION_AVAILABLE": ("FORECAST", "KW"),
}
DEFAULT_PAYLOADS: Final = ("USAGE", "BASELINE", "DELTA_USAGE")


@dataclass(frozen=True, slots=True)
class ReportDue:
    """One report: sent at ``due_at``, covering ``intervals`` (``index`` counts reports of the event)."""

    index: int
    due_at: datetime
    intervals: tuple[EventInterval, ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """Live values read for one event interval (kW; None when the provider did not know)."""

    usage_kw: float | None
    baseline_kw: float | None
    available_kw: float | None


def take_sample(values: ReportValues, park_id: str, dr_event_id: str, at: datetime) -> Sample:
    """Read the provider once for the interval starting at ``at`` (called as the interval ends)."""
    return Sample(values.usage_kw(park_id, dr_event_id, at), values.baseline_kw(park_id, dr_event_id, at),
                  values.available_kw(park_id, dr_event_id, at))


@dataclass(frozen=True, slots=True)
class SampledValues:
    """A :class:`ReportValues` answering from samples taken as each interval ended (keyed by its start), so a
    report covering several intervals shows each one's own values even when the live provider only knows
    the latest."""

    samples: Mapping[datetime, Sample]

    def usage_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Sampled usage of the interval starting at ``at``."""
        sample = self.samples.get(at)
        return sample.usage_kw if sample else None

    def baseline_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Sampled baseline of the interval starting at ``at``."""
        sample = self.samples.get(at)
        return sample.baseline_kw if sample else None

    def available_kw(self, park_id: str, dr_event_id: str | None, at: datetime) -> float | None:
        """Sampled availability of the interval starting at ``at``."""
        sample = self.samples.get(at)
        return sample.available_kw if sample else None


def iso(ts: datetime) -> str:
    """RFC 3339 UTC with a Z."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_duration(seconds: float) -> str:
    """Seconds as an ISO 8601 duration (``PT15M``, ``PT1H``, ``PT2.5S``) that the spec's pattern accepts."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or frac or text == "PT":
        text += f"{secs + frac:g}S"
    return text


def requested_payloads(event: IncomingEvent) -> tuple[str, ...]:
    """The report payload types the event asked for that ParkPulse can fill (the defaults when none named)."""
    if event.report_request is None:
        return ()
    asked: list[str] = []
    for descriptor in event.raw.get("reportDescriptors") or []:
        payload_type = descriptor.get("payloadType") if isinstance(descriptor, Mapping) else None
        if payload_type in REPORT_KINDS and payload_type not in asked:
            asked.append(payload_type)
    return tuple(asked) or DEFAULT_PAYLOADS


def report_schedule(event: IncomingEvent) -> tuple[ReportDue, ...]:
    """The reports the event asks for: consecutive groups of intervals spanning ``report_request.interval``."""
    if event.report_request is None or not event.intervals:
        return ()
    every = event.report_request.interval
    ordered = sorted(event.intervals, key=lambda i: i.start)
    groups: list[list[EventInterval]] = []
    group_start = ordered[0].start
    for interval in ordered:
        if not groups or interval.start >= group_start + every:
            groups.append([])
            group_start = interval.start
        groups[-1].append(interval)
    return tuple(ReportDue(n, max(i.end for i in g), tuple(g)) for n, g in enumerate(groups))


def _values(payload_type: str, usage: float | None, baseline: float | None,
            available: float | None) -> float | None:
    if payload_type in ("USAGE", "DEMAND"):
        return usage
    if payload_type == "BASELINE":
        return baseline
    if payload_type == "DELTA_USAGE":
        return None if usage is None or baseline is None else usage - baseline
    return available


def build_report(event: IncomingEvent, due: ReportDue, *, dr_event_id: str, client_name: str,
                 values: ReportValues, payloads: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The 3.0 ``report`` object for one due report, or None when no value is known for any interval."""
    payload_types = tuple(payloads) if payloads is not None else requested_payloads(event)
    if event.program_id is None or not payload_types:
        return None
    rows: list[dict[str, Any]] = []
    for interval in due.intervals:
        at = interval.start
        usage = values.usage_kw(event.park_id, dr_event_id, at)
        baseline = values.baseline_kw(event.park_id, dr_event_id, at)
        available = values.available_kw(event.park_id, dr_event_id, at)
        filled = [{"type": p, "values": [round(v, 3)]} for p in payload_types
                  if (v := _values(p, usage, baseline, available)) is not None and math.isfinite(v)]
        if filled:
            rows.append({"id": len(rows), "intervalPeriod": {
                "start": iso(interval.start), "duration": iso_duration(interval.duration.total_seconds())},
                "payloads": filled})
    if not rows:
        return None
    first = due.intervals[0]
    return {
        "objectType": "REPORT",
        "programID": event.program_id,
        "eventID": event.vtn_event_id,
        "clientName": client_name,
        "reportName": f"{event.park_id}_{event.vtn_event_id}_{due.index}",
        "payloadDescriptors": [
            {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": p,
             "readingType": _DESCRIPTORS[p][0], "units": _DESCRIPTORS[p][1]}
            for p in payload_types
        ],
        "resources": [{
            "resourceName": AGGREGATED,
            "intervalPeriod": {"start": iso(first.start),
                               "duration": iso_duration(first.duration.total_seconds())},
            "intervals": rows,
        }],
    }
