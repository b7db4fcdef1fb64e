"""Database adapter of meter events: record, void and list them, and load them for the jobs.

Recording and voiding run in one transaction with a ``reading_changes`` row for each register and time
range the event affects, so the next ``parkpulse aggregate`` recomputes those intervals, rollups and
indicators exactly as it does for late readings (:mod:`aggregation._changes`). The rows of
``meter_events`` are an audit trail: never edited, only voided (who, when, why) and superseded by a new
event that names the voided one in ``corrects``.

Checks that need data happen here: the park and device exist, the register (metric) is one the device
has, a naive time is read in the park's time zone (and the result says so), the time is not in the
future, and the registers agree with the readings around the event: an old meter's final register
below its last reading, or a new meter's initial register above its first reading, is refused with both
numbers.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import psycopg

from aggregation._bulk import Bulk
from aggregation._event_input import (
    EventInput,
    InvalidMeterEventError,
    MeterEventConflictError,
    MeterEventNotFoundError,
    check_fields,
)
from aggregation._meter_events import EVENTS_SCHEMA, RATIO_CHANGE, REPLACEMENT, effective_multipliers
from schemas import METRICS, MetricKind

logger = logging.getLogger(__name__)

CUMULATIVE: Final = tuple(sorted(m.name for m in METRICS.values() if m.kind is MetricKind.CUMULATIVE))
#: The register an event concerns when none is named and the device has no series yet.
_CARRIER_METRIC: Final = {"electricity": "active_energy_import", "gas": "gas_volume", "heat": "heat_energy",
                          "cooling": "cooling_energy", "water": "water_volume", "steam": "steam_mass"}
_FUTURE_SLACK: Final = timedelta(minutes=5)
_REGISTER_TOL: Final = 1e-6
_COLUMNS: Final = ("event_id, park_id, device_id, metric, kind, occurred_at, old_final, new_initial, old_multiplier, "
                   "new_multiplier, old_ratio, new_ratio, note, recorded_by, recorded_at, source, corrects, voided_at, "
                   "voided_by, void_reason")


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One row of ``meter_events``."""

    event_id: int
    park_id: str
    device_id: str
    metric: str
    kind: str
    occurred_at: datetime
    old_final: float | None
    new_initial: float | None
    old_multiplier: float | None
    new_multiplier: float | None
    old_ratio: str | None
    new_ratio: str | None
    note: str | None
    recorded_by: str
    recorded_at: datetime
    source: str
    corrects: int | None
    voided_at: datetime | None
    voided_by: str | None
    void_reason: str | None

    @property
    def live(self) -> bool:
        """Not voided: aggregation applies it."""
        return self.voided_at is None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (times as ISO 8601 UTC)."""
        out = asdict(self)
        for key in ("occurred_at", "recorded_at", "voided_at"):
            value = out[key]
            out[key] = value.astimezone(UTC).isoformat() if isinstance(value, datetime) else None
        return out


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What recording did: the events stored, notes for the operator, and the ranges queued for recompute."""

    events: list[RecordedEvent]
    notes: list[str] = field(default_factory=list)
    queued: int = 0                   # reading_changes rows written


@dataclass(frozen=True, slots=True)
class _Register:
    device_key: int
    carrier: str | None
    multiplier: float
    applied: bool
    series: dict[str, int]            # cumulative metric -> series id


def park_timezone(conn: psycopg.Connection[Any], park_id: str) -> ZoneInfo:
    """The park's time zone; :class:`MeterEventNotFoundError` (with the command to fix it) when unknown."""
    row = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park_id,)).fetchone()
    if row is None:
        raise MeterEventNotFoundError(f"park {park_id!r} is not registered; register it first with "
                                      f"`parkpulse registry park add {park_id}`")
    try:
        return ZoneInfo(str(row[0]))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _register(conn: psycopg.Connection[Any], park_id: str, device_id: str) -> _Register | None:
    row = conn.execute("""SELECT device_key, carrier, multiplier,
                                 COALESCE((metadata->>'multiplier_applied')::boolean, true)
                          FROM devices WHERE park_id = %s AND device_id = %s""", (park_id, device_id)).fetchone()
    if row is None:
        return None
    series = dict(conn.execute("SELECT metric, series_id FROM series WHERE device_key = %s AND metric = ANY(%s)",
                               (row[0], list(CUMULATIVE))).fetchall())
    return _Register(int(row[0]), row[1], float(row[2]), bool(row[3]), {str(k): int(v) for k, v in series.items()})


def _metric(ev: EventInput, reg: _Register) -> tuple[str | None, str | None]:
    """(metric, problem): the register the event concerns."""
    if ev.metric is not None:
        if ev.metric not in CUMULATIVE:
            return None, f"metric {ev.metric[:40]!r} is not a register; use one of {', '.join(CUMULATIVE)}"
        return ev.metric, None
    if len(reg.series) == 1 or "active_energy_import" in reg.series:
        return ("active_energy_import" if "active_energy_import" in reg.series else next(iter(reg.series))), None
    if reg.series:
        return None, (f"device {ev.device_id} has several registers ({', '.join(sorted(reg.series))}); "
                      "name the one concerned with --metric (or the metric column)")
    default = _CARRIER_METRIC.get(reg.carrier or "")
    if default is None:
        return None, (f"device {ev.device_id} has no register readings yet and no carrier; name the register "
                      "with --metric (or the metric column)")
    return default, None


def _aware(ev: EventInput, tz: ZoneInfo, notes: list[str]) -> datetime:
    if ev.occurred_at.tzinfo is not None:
        return ev.occurred_at.astimezone(UTC)
    at = ev.occurred_at.replace(tzinfo=tz)
    notes.append(f"{ev.where}: {ev.occurred_at.isoformat(sep=' ')} has no UTC offset; read as park time "
                 f"({tz.key}): {at.isoformat()} = {at.astimezone(UTC).isoformat()}")
    return at.astimezone(UTC)


def _neighbours(conn: psycopg.Connection[Any], series_id: int, at: datetime) -> tuple[Any, Any]:
    """The last good reading before ``at`` and the first after it: (ts, value) or None each.

    A reading exactly at ``at`` is replaced by the event's own register value in the arithmetic, so it is not
    the one to compare with.
    """
    before = conn.execute("""SELECT ts, value FROM readings WHERE series_id = %s AND ts < %s AND quality <> 3
                             ORDER BY ts DESC LIMIT 1""", (series_id, at)).fetchone()
    after = conn.execute("""SELECT ts, value FROM readings WHERE series_id = %s AND ts > %s AND quality <> 3
                            ORDER BY ts LIMIT 1""", (series_id, at)).fetchone()
    return before, after


def _register_problems(ev: EventInput, before: Any, after: Any, tz: ZoneInfo) -> list[str]:
    """The registers against the readings around the event."""
    out: list[str] = []

    def when(ts: datetime) -> str:
        return ts.astimezone(tz).isoformat(timespec="minutes")

    what = "the old meter's final register" if ev.kind == REPLACEMENT else "the register at the event"
    if ev.old_final is not None and before is not None and ev.old_final < before[1] - _REGISTER_TOL:
        out.append(f"{ev.where}: old_final {ev.old_final:.10g} is below the last reading before the event "
                   f"({before[1]:.10g} at {when(before[0])}); {what} cannot be lower: check the value and the time")
    if ev.kind == RATIO_CHANGE:
        if ev.old_final is not None and after is not None and ev.old_final > after[1] + _REGISTER_TOL:
            out.append(f"{ev.where}: old_final {ev.old_final:.10g} is above the first reading after the change "
                       f"({after[1]:.10g} at {when(after[0])}); the register does not go back: check the value "
                       "and the time")
    elif ev.new_initial is not None and after is not None and ev.new_initial > after[1] + _REGISTER_TOL:
        out.append(f"{ev.where}: new_initial {ev.new_initial:.10g} is above the first reading after the event "
                   f"({after[1]:.10g} at {when(after[0])}); the new register starts at or below its first reading: "
                   "check the value and the time")
    return out


def _ratio_notes(ev: EventInput, reg: _Register, previous: float | None) -> list[str]:
    if ev.kind != RATIO_CHANGE or ev.old_multiplier is None or ev.new_multiplier is None:
        return []
    if reg.applied:
        return [f"{ev.where}: device {ev.device_id} reports primary-side registers (its ratio is applied by the "
                f"device or edge agent), so deltas after the change are scaled by new/old = "
                f"{ev.new_multiplier / ev.old_multiplier:.6g}; if the device was reconfigured to the new ratio at "
                "the same moment, void this event instead"]
    in_force = previous if previous is not None else reg.multiplier
    if abs(in_force - ev.old_multiplier) > 1e-9 * max(1.0, in_force):
        return [f"{ev.where}: the old multiplier {ev.old_multiplier:g} differs from the one in force before "
                f"({in_force:g}); deltas before the change now use {ev.old_multiplier:g}"]
    return []


def _queue(conn: psycopg.Connection[Any], series_id: int | None, kind: str, at: datetime) -> int:
    """Write the ``reading_changes`` row that makes the next run recompute what the event touches."""
    if series_id is None:
        return 0
    lo = hi = at
    if kind == RATIO_CHANGE:
        # every delta up to the next change moves, and (for the first change) every one before it
        row = conn.execute(
            """SELECT (SELECT max(e.occurred_at) FROM meter_events e JOIN devices d
                         ON d.park_id = e.park_id AND d.device_id = e.device_id
                         JOIN series s ON s.device_key = d.device_key AND s.metric = e.metric
                       WHERE s.series_id = %(s)s AND e.kind = 'ratio_change' AND e.voided_at IS NULL
                         AND e.occurred_at < %(t)s),
                      (SELECT min(ts) FROM readings WHERE series_id = %(s)s),
                      (SELECT max(ts) FROM readings WHERE series_id = %(s)s)""", {"s": series_id, "t": at}).fetchone()
        if row is not None:
            lo = min(at, row[0] or row[1] or at)
            hi = max(at, row[2] or at)
    conn.execute("INSERT INTO reading_changes (series_id, ts_min, ts_max, n_rows) VALUES (%s, %s, %s, 0)",
                 (series_id, lo, hi))
    return 1


def _row_event(row: tuple[Any, ...]) -> RecordedEvent:
    return RecordedEvent(*row)


def _validate(conn: psycopg.Connection[Any], ev: EventInput, now: datetime, notes: list[str],
              corrects: int | None) -> tuple[EventInput, _Register | None, list[str]]:
    """The event with its metric and UTC time filled in, its register, and its problems."""
    problems = [f"{ev.where}: {p}" for p in check_fields(ev)]
    if problems:
        return ev, None, problems
    tz = park_timezone(conn, ev.park_id)
    reg = _register(conn, ev.park_id, ev.device_id)
    if reg is None:
        return ev, None, [f"{ev.where}: device {ev.device_id!r} is not registered in park {ev.park_id!r}; register "
                          f"it first with `parkpulse registry device add {ev.park_id} {ev.device_id}`"]
    metric, problem = _metric(ev, reg)
    if metric is None:
        return ev, reg, [f"{ev.where}: {problem}"]
    ev = replace(ev, metric=metric, occurred_at=_aware(ev, tz, notes))
    if ev.occurred_at > now + _FUTURE_SLACK:
        problems.append(f"{ev.where}: {ev.occurred_at.astimezone(tz).isoformat()} is in the future; record an event "
                        "once it has happened")
    clash = conn.execute("""SELECT event_id FROM meter_events WHERE park_id = %s AND device_id = %s AND metric = %s
                            AND occurred_at = %s AND voided_at IS NULL""",
                         (ev.park_id, ev.device_id, metric, ev.occurred_at)).fetchone()
    if clash is not None and clash[0] != corrects:
        problems.append(f"{ev.where}: event {clash[0]} is already recorded for {ev.device_id} {metric} at that time; "
                        f"correct it with `--corrects {clash[0]}` or void it first")
    series_id = reg.series.get(metric)
    if series_id is not None:
        before, after = _neighbours(conn, series_id, ev.occurred_at)
        problems.extend(_register_problems(ev, before, after, tz))
    previous = conn.execute("""SELECT new_multiplier FROM meter_events WHERE park_id = %s AND device_id = %s
                               AND metric = %s AND kind = 'ratio_change' AND voided_at IS NULL AND occurred_at < %s
                               ORDER BY occurred_at DESC LIMIT 1""",
                            (ev.park_id, ev.device_id, metric, ev.occurred_at)).fetchone()
    notes.extend(_ratio_notes(ev, reg, float(previous[0]) if previous else None))
    return ev, reg, problems


def record_events(conn: psycopg.Connection[Any], inputs: list[EventInput], *, recorded_by: str, source: str,
                  corrects: int | None = None, reason: str | None = None, now: datetime | None = None,
                  source_name: str | None = None) -> RecordResult:
    """Validate and store events, all or nothing, and queue the recomputation of what they affect.

    ``corrects`` (single event only) voids that event with ``reason`` in the same transaction: the new
    event replaces it. Raises :class:`InvalidMeterEventError` listing every problem (by CSV line for an
    import), :class:`MeterEventNotFoundError` for an unknown park or corrected event, and
    :class:`MeterEventConflictError` when the corrected event is already void.
    """
    if corrects is not None and len(inputs) != 1:
        raise InvalidMeterEventError(["a correction replaces exactly one event"], source_name)
    now = now or datetime.now(UTC)
    notes: list[str] = []
    problems: list[str] = []
    checked: list[tuple[EventInput, _Register]] = []
    seen: dict[tuple[str, str, str, datetime], str] = {}
    with conn.transaction():
        for ev in inputs:
            done, reg, found = _validate(conn, ev, now, notes, corrects)
            problems.extend(found)
            if reg is None or found or done.metric is None:
                continue
            key = (done.park_id, done.device_id, done.metric, done.occurred_at)
            if key in seen:
                problems.append(f"{done.where}: the same register and time as {seen[key]}; one event per instant")
            seen[key] = done.where
            checked.append((done, reg))
        if problems:
            raise InvalidMeterEventError(problems, source_name)
        if corrects is not None:
            old = void_event(conn, corrects, reason=reason or "corrected by a new event", voided_by=recorded_by,
                             park_id=inputs[0].park_id)
            if (old.device_id, old.metric) != (checked[0][0].device_id, checked[0][0].metric):
                raise InvalidMeterEventError([f"event {corrects} is for {old.device_id} {old.metric}, not "
                                              f"{checked[0][0].device_id} {checked[0][0].metric}; a correction "
                                              "concerns the same register"], source_name)
        stored: list[RecordedEvent] = []
        queued = 0
        for ev, reg in checked:
            row = conn.execute(
                f"""INSERT INTO meter_events (park_id, device_id, metric, kind, occurred_at, old_final, new_initial,
                                             old_multiplier, new_multiplier, old_ratio, new_ratio, note, recorded_by,
                                             source, corrects)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
                (ev.park_id, ev.device_id, ev.metric, ev.kind, ev.occurred_at, ev.old_final, ev.new_initial,
                 ev.old_multiplier, ev.new_multiplier, ev.old_ratio, ev.new_ratio, ev.note, recorded_by, source,
                 corrects)).fetchone()
            if row is None:  # INSERT … RETURNING always returns the row
                raise MeterEventNotFoundError("the database returned no row for the recorded event")
            stored.append(_row_event(row))
            queued += _queue(conn, reg.series.get(ev.metric or ""), ev.kind, ev.occurred_at)
    logger.info("recorded %d meter event(s) (%s, by %s); %d change range(s) queued", len(stored), source,
                recorded_by, queued)
    return RecordResult(stored, notes, queued)


def void_event(conn: psycopg.Connection[Any], event_id: int, *, reason: str, voided_by: str,
               park_id: str | None = None) -> RecordedEvent:
    """Void a live event (it stays in the audit trail) and queue the recomputation of what it affected.

    With ``park_id`` an event of another park is reported as not found (API keys are scoped to parks).
    """
    if not reason.strip():
        raise InvalidMeterEventError(["give a reason for voiding the event (it stays in the audit trail)"])
    with conn.transaction():
        row = conn.execute(f"SELECT {_COLUMNS} FROM meter_events WHERE event_id = %s FOR UPDATE",
                           (event_id,)).fetchone()
        if row is None or (park_id is not None and row[1] != park_id):
            where = f" in park {park_id}" if park_id else ""
            raise MeterEventNotFoundError(f"meter event {event_id} does not exist{where}; list the events with "
                                          "`parkpulse meter-event list PARK`")
        old = _row_event(row)
        if not old.live:
            raise MeterEventConflictError(f"meter event {event_id} was already voided at {old.voided_at} by "
                                          f"{old.voided_by} ({old.void_reason}); record a new event instead")
        row = conn.execute(f"""UPDATE meter_events SET voided_at = now(), voided_by = %s, void_reason = %s
                               WHERE event_id = %s RETURNING {_COLUMNS}""",
                           (voided_by, reason.strip(), event_id)).fetchone()
        if row is None:  # the row is locked above
            raise MeterEventNotFoundError(f"meter event {event_id} disappeared while being voided")
        reg = _register(conn, old.park_id, old.device_id)
        _queue(conn, reg.series.get(old.metric) if reg else None, old.kind, old.occurred_at)
    return _row_event(row)


def list_events(conn: psycopg.Connection[Any], park_id: str, *, device_id: str | None = None,
                include_void: bool = True) -> list[RecordedEvent]:
    """A park's events in time order (voided ones too unless ``include_void`` is false)."""
    park_timezone(conn, park_id)
    rows = conn.execute(f"""SELECT {_COLUMNS} FROM meter_events WHERE park_id = %s
                               AND (%s::text IS NULL OR device_id = %s::text)
                               AND (%s OR voided_at IS NULL)
                            ORDER BY occurred_at, event_id""",
                        (park_id, device_id, device_id, include_void)).fetchall()
    return [_row_event(r) for r in rows]


def load_series_events(bulk: Bulk, series_ids: pl.Series) -> pl.DataFrame:
    """Live events of the given series for the register arithmetic (:data:`EVENTS_SCHEMA`).

    The table is small (events are rare), so it is read whole and filtered here; ratio multipliers are
    turned into multipliers of the transported register (:func:`effective_multipliers`).
    """
    df = bulk.read("""
        SELECT s.series_id, e.occurred_at AS ts, e.kind, e.old_final, e.new_initial, e.old_multiplier,
               e.new_multiplier, COALESCE((d.metadata->>'multiplier_applied')::boolean, true) AS multiplier_applied
        FROM meter_events e
        JOIN devices d ON d.park_id = e.park_id AND d.device_id = e.device_id
        JOIN series s ON s.device_key = d.device_key AND s.metric = e.metric
        WHERE e.voided_at IS NULL""", pl.Schema({**EVENTS_SCHEMA, "multiplier_applied": pl.Boolean()}))
    df = df.filter(pl.col("series_id").is_in(series_ids.cast(pl.Int32()).implode()))
    if df.height == 0:
        return EVENTS_SCHEMA.to_frame()
    return effective_multipliers(df.select(EVENTS_SCHEMA.names()), df.select("series_id", "multiplier_applied")
                                 .unique("series_id"))
