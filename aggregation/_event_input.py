"""Meter events as the operator enters them: fields, ratios, times, the CSV import, and their errors.

Pure: nothing here reads the database. :func:`check_fields` applies the rules that need no data (which
values each kind requires, numbers finite and not negative); :mod:`aggregation._event_store` adds those
that do (the device exists, the time zone of a naive time, the readings around the event).

CSV import (``parkpulse meter-event import`` and ``POST …/meter-events/import``), header row required::

    park_id,device_id,kind,at,metric,old_final,new_initial,old_ratio,new_ratio,old_multiplier,new_multiplier,note

Only ``device_id``, ``kind`` and ``at`` are required columns (``park_id`` when no park is given on the
command line or in the URL). ``kind`` is ``replacement``, ``ratio_change`` (or ``ratio-change``) or
``reset``; registers are in the metric's canonical unit; ratios are written ``200/5`` or
``200/5x10000/100`` (CT x PT), or give the multipliers directly. One bad row rejects the whole file, and
every problem is listed with its line number.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from aggregation._meter_events import KINDS, RATIO_CHANGE, REPLACEMENT, RESET
from aggregation.errors import AggregationError
from schemas.topics import is_valid_id


class MeterEventError(AggregationError):
    """A meter event cannot be recorded, voided or found (base of the meter-event errors).

    Hierarchy (under :class:`aggregation.errors.AggregationError`)::

        MeterEventError
        ├── InvalidMeterEventError   bad fields, or data contradicting the event (problems listed by row)
        ├── MeterEventNotFoundError  no such park, device or event
        └── MeterEventConflictError  a live event already exists at that instant, or the event is already void
    """


class InvalidMeterEventError(MeterEventError):
    """The event (or rows of an import) is invalid; ``problems`` lists every one, nothing was stored."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        shown = "; ".join(problems[:20]) + (f" (+{len(problems) - 20} more)" if len(problems) > 20 else "")
        super().__init__(f"{source}: {shown}" if source else shown)
        self.problems = problems
        self.source = source


class MeterEventNotFoundError(MeterEventError):
    """The park, device or event named does not exist."""


class MeterEventConflictError(MeterEventError):
    """A live event already exists for that register and instant, or the event is already void."""


COLUMNS: Final = ("park_id", "device_id", "kind", "at", "metric", "old_final", "new_initial", "old_ratio",
                  "new_ratio", "old_multiplier", "new_multiplier", "note")
REQUIRED_COLUMNS: Final = ("device_id", "kind", "at")
MAX_NOTE_CHARS: Final = 2000
_RATIO_PART: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/\s*([0-9]+(?:\.[0-9]+)?))?\s*$")


@dataclass(frozen=True, slots=True)
class EventInput:
    """One event as entered. ``occurred_at`` may be naive: it is then read in the park's time zone."""

    park_id: str
    device_id: str
    kind: str
    occurred_at: datetime
    metric: str | None = None
    old_final: float | None = None
    new_initial: float | None = None
    old_multiplier: float | None = None
    new_multiplier: float | None = None
    old_ratio: str | None = None
    new_ratio: str | None = None
    note: str | None = None
    line: int | None = None           # where it came from (CSV line), for error messages

    @property
    def where(self) -> str:
        """``line N`` for an imported row, else the device."""
        return f"line {self.line}" if self.line is not None else f"event of {self.device_id}"


def normalise_kind(text: str) -> str:
    """``replacement``, ``ratio_change`` or ``reset`` from what a person types (``ratio-change``, ``Reset``)."""
    kind = text.strip().lower().replace("-", "_").replace(" ", "_")
    if kind not in KINDS:
        raise ValueError(f"kind {text.strip()[:40]!r} is not one of replacement, ratio-change, reset")
    return kind


def parse_ratio(text: str) -> float:
    """A CT x PT multiplier from ``"200/5"``, ``"200/5x10000/100"`` (CT and PT) or a plain ``"40"``.

    Raises ValueError saying what is accepted; the result is finite and > 0.
    """
    value = 1.0
    for part in re.split(r"[x×*]", text.strip().lower()):
        m = _RATIO_PART.match(part)
        if m is None:
            raise ValueError(f"ratio {text[:40]!r} is not like 200/5, 200/5x10000/100 or a multiplier such as 40")
        num = float(m.group(1))
        den = float(m.group(2)) if m.group(2) is not None else 1.0
        if num <= 0 or den <= 0:
            raise ValueError(f"ratio {text[:40]!r} has a zero term; both sides of a ratio are > 0")
        value *= num / den
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"ratio {text[:40]!r} does not give a finite multiplier > 0")
    return value


def parse_event_time(text: str) -> datetime:
    """An ISO 8601 time (``2026-10-14T09:30+08:00``, ``…Z``, or naive ``2026-10-14 09:30``).

    A naive result is read in the park's time zone by the store, which says so. Raises ValueError.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("the event time is empty; give it like 2026-10-14T09:30+08:00")
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"time {raw[:40]!r} is not ISO 8601; give it like 2026-10-14T09:30+08:00") from None


def _number(name: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {text[:40]!r}")
    return value


def complete(ev: EventInput) -> EventInput:
    """Apply the defaults: a reset clears to 0 unless told otherwise, and ratios give the multipliers.

    Raises ValueError when a ratio cannot be read or disagrees with a multiplier given with it.
    """
    updates: dict[str, float] = {}
    if ev.kind == RESET and ev.new_initial is None:
        updates["new_initial"] = 0.0
    for side in ("old", "new"):
        ratio: str | None = getattr(ev, f"{side}_ratio")
        given: float | None = getattr(ev, f"{side}_multiplier")
        if ratio:
            value = parse_ratio(ratio)
            if given is not None and not math.isclose(given, value, rel_tol=1e-9):
                raise ValueError(f"{side} ratio {ratio} gives multiplier {value:g}, but {side} multiplier {given:g} "
                                 "was also given; give one of them")
            updates[f"{side}_multiplier"] = value
    return replace(ev, **updates) if updates else ev  # type: ignore[arg-type]


def _ratio_problems(ev: EventInput) -> list[str]:
    problems: list[str] = []
    if ev.old_multiplier is None or ev.new_multiplier is None:
        problems.append("a ratio change needs the old and the new ratio (like 200/5 and 400/5) or multipliers")
    elif ev.old_multiplier <= 0 or ev.new_multiplier <= 0:
        problems.append("ratio multipliers must be > 0")
    elif math.isclose(ev.old_multiplier, ev.new_multiplier, rel_tol=1e-12):
        problems.append(f"the old and new multipliers are both {ev.old_multiplier:g}: nothing changed")
    if ev.new_initial is not None:
        problems.append("a ratio change keeps the same register: give the register at the change as old_final, "
                        "not new_initial")
    return problems


def check_fields(ev: EventInput) -> list[str]:
    """Problems with an event's own fields (no data needed); an empty list when it is complete."""
    problems: list[str] = []
    if not is_valid_id(ev.park_id):
        problems.append(f"park id {ev.park_id[:70]!r} is not valid (lower-case [a-z0-9][a-z0-9_-]{{0,63}})")
    if not is_valid_id(ev.device_id):
        problems.append(f"device id {ev.device_id[:70]!r} is not valid (lower-case [a-z0-9][a-z0-9_-]{{0,63}})")
    if ev.kind not in KINDS:
        return [*problems, f"kind {ev.kind[:40]!r} is not one of replacement, ratio-change, reset"]
    for name in ("old_final", "new_initial", "old_multiplier", "new_multiplier"):
        value: float | None = getattr(ev, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            problems.append(f"{name} must be a finite number >= 0, got {value!r}")
    if ev.kind == REPLACEMENT and (ev.old_final is None or ev.new_initial is None):
        problems.append("a replacement needs the old meter's final register (old_final) and the new meter's "
                        "initial register (new_initial), both read at the swap")
    if ev.kind == RATIO_CHANGE:
        problems.extend(_ratio_problems(ev))
    elif ev.old_multiplier is not None or ev.new_multiplier is not None:
        problems.append(f"ratios and multipliers belong to a ratio change, not a {ev.kind}")
    if ev.note is not None and len(ev.note) > MAX_NOTE_CHARS:
        problems.append(f"the note has {len(ev.note)} characters; keep it under {MAX_NOTE_CHARS}")
    return problems


def _row(rec: dict[str, str], park_id: str | None, line: int) -> EventInput:
    """One CSV record → :class:`EventInput`; raises ValueError naming the field."""
    park = rec.get("park_id") or park_id or ""
    if not park:
        raise ValueError("park_id is empty and no park was given for the file")
    if park_id is not None and rec.get("park_id") and rec["park_id"] != park_id:
        raise ValueError(f"park_id {rec['park_id'][:64]!r} is not the park of this import ({park_id!r})")
    if not rec.get("device_id"):
        raise ValueError("device_id is empty")
    kind = normalise_kind(rec.get("kind", ""))
    try:
        at = parse_event_time(rec.get("at", ""))
    except ValueError as exc:
        raise ValueError(f"at: {exc}") from None
    ev = EventInput(
        park_id=park, device_id=rec["device_id"], kind=kind, occurred_at=at, metric=rec.get("metric") or None,
        old_final=_number("old_final", rec.get("old_final", "")),
        new_initial=_number("new_initial", rec.get("new_initial", "")),
        old_multiplier=_number("old_multiplier", rec.get("old_multiplier", "")),
        new_multiplier=_number("new_multiplier", rec.get("new_multiplier", "")),
        old_ratio=rec.get("old_ratio") or None, new_ratio=rec.get("new_ratio") or None,
        note=rec.get("note") or None, line=line)
    return complete(ev)


def parse_events_csv(text: str, source_name: str, park_id: str | None = None) -> list[EventInput]:
    """Validate a meter-events CSV; raises :class:`InvalidMeterEventError` listing every problem by line.

    ``park_id`` (from the command line or URL) is used for rows without one; a row naming another park
    is refused, so a file cannot write into a park it was not imported for.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = [(h or "").strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise InvalidMeterEventError([f"line 1: the header is not CSV ({exc})"], source_name) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if park_id is None and "park_id" not in header:
        missing.append("park_id")
    if missing:
        raise InvalidMeterEventError([f"line 1: missing column(s) {', '.join(missing)}; the header is "
                                      f"{','.join(h[:30] for h in header[:20])!r}, expected "
                                      f"{','.join(COLUMNS)} (only {', '.join(REQUIRED_COLUMNS)} required)"],
                                     source_name)
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InvalidMeterEventError([f"line 1: unknown column(s) {', '.join(u[:30] for u in unknown[:5])}; "
                                      f"the columns are {','.join(COLUMNS)}"], source_name)
    rows: list[EventInput] = []
    problems: list[str] = []
    try:
        for raw in reader:
            line = reader.line_num
            if None in raw:
                problems.append(f"line {line}: more cells than columns")
                continue
            rec = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            if not any(rec.values()):
                continue
            try:
                ev = _row(rec, park_id, line)
            except ValueError as exc:
                problems.append(f"line {line}: {exc}")
                continue
            problems.extend(f"line {line}: {p}" for p in check_fields(ev))
            rows.append(ev)
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV ({exc})")
    if problems:
        raise InvalidMeterEventError(problems, source_name)
    if not rows:
        raise InvalidMeterEventError(["no data rows: add one row per event under the header"], source_name)
    return rows
