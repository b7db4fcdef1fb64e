"""``parkpulse meter-event``: record meter replacements, CT/PT ratio changes and confirmed resets.

Mounted in :mod:`parkpulse._server_cli`. Each command records or voids events in one transaction and
queues the affected ranges in the change log; the next ``parkpulse aggregate`` recomputes the intervals,
rollups and indicators there (indicators are restated with a new revision). Heavy modules (psycopg,
Polars) are imported inside the commands so ``--help`` stays instant.
"""

# ruff: noqa: PLC0415  (commands import their modules lazily so --help stays instant, as in every _cli.py)

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import tzinfo

    from aggregation._event_store import RecordedEvent, RecordResult

meter_events_app = typer.Typer(
    help="Meter events: replacements, CT/PT ratio changes and confirmed resets (exact energy across them).",
    no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[str | None, typer.Option("--database-url", help="Database URL (default: settings)")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who records it (default: your user name)")]
_NEXT = "run `parkpulse aggregate` to recompute the affected intervals, rollups and indicators"


def _user(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser() or "operator"
    except (OSError, KeyError):
        return "operator"


def _connect(database_url: str | None) -> Any:
    import psycopg

    from infra.settings import ServiceSettings

    url = database_url or ServiceSettings().database_url  # type: ignore[call-arg]
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise typer.BadParameter(f"cannot reach the database ({exc}); start it with `parkpulse services up` "
                                 "or set PARKPULSE_DATABASE_URL", param_hint="--database-url") from None


def _fail(exc: Exception) -> NoReturn:
    from aggregation._event_input import InvalidMeterEventError

    if isinstance(exc, InvalidMeterEventError):
        err_console.print(f"[red]error[/]: nothing was recorded{f' from {exc.source}' if exc.source else ''}:",
                          highlight=False)
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
    else:
        err_console.print(f"[red]error[/]: {exc}", highlight=False)
    raise typer.Exit(1)


def _describe(ev: RecordedEvent, tz: tzinfo) -> str:
    at = ev.occurred_at.astimezone(tz).isoformat(sep=" ", timespec="minutes")
    if ev.kind == "ratio_change":
        detail = (f"multiplier {ev.old_multiplier:g} → {ev.new_multiplier:g}"
                  + (f" (ratio {ev.old_ratio} → {ev.new_ratio})" if ev.old_ratio and ev.new_ratio else "")
                  + (f", register at the change {ev.old_final!r}" if ev.old_final is not None else ""))
    else:
        old = "last reading" if ev.old_final is None else repr(ev.old_final)
        detail = f"old final {old}, new initial {ev.new_initial!r}"
    return f"event {ev.event_id}: {ev.kind} of {ev.device_id} ({ev.metric}) at {at}: {detail}"


def _report(result: RecordResult, zones: Mapping[str, tzinfo]) -> None:
    for ev in result.events:
        console.print(f"recorded {_describe(ev, zones[ev.park_id])}", highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False, soft_wrap=True)
    if result.queued:
        console.print(f"{result.queued} change range(s) queued; {_NEXT}", highlight=False)
    else:
        console.print("no readings of that register yet: the events apply when they arrive", highlight=False)


@meter_events_app.command("add")
def add(
    park_id: Annotated[str, typer.Argument(help="A registered park")],
    device_id: Annotated[str, typer.Argument(help="A registered device of the park")],
    *,
    kind: Annotated[str, typer.Option(help="replacement, ratio-change or reset")],
    at: Annotated[str, typer.Option(help="When it happened, ISO 8601 (2026-10-14T09:30+08:00); without an offset "
                                         "it is read in the park's time zone")],
    metric: Annotated[str | None, typer.Option(help="The register (default: the device's energy register)")] = None,
    old_final: Annotated[float | None, typer.Option(
        help="Old meter's final register at the swap (replacement; reset: the register just before the clear; "
             "ratio change: the register at the change, if read)")] = None,
    new_initial: Annotated[float | None, typer.Option(
        help="New meter's initial register (replacement; reset: the value cleared to, default 0)")] = None,
    old_ratio: Annotated[str | None, typer.Option(help="Ratio before a ratio change: 200/5 or 200/5x10000/100")] = None,
    new_ratio: Annotated[str | None, typer.Option(help="Ratio after a ratio change: 400/5 …")] = None,
    old_multiplier: Annotated[float | None, typer.Option(help="Or the multiplier before, e.g. 40")] = None,
    new_multiplier: Annotated[float | None, typer.Option(help="Or the multiplier after, e.g. 80")] = None,
    note: Annotated[str | None, typer.Option(help="Work order, seal numbers …")] = None,
    corrects: Annotated[int | None, typer.Option(help="Void this event and record this one in its place")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the corrected event is voided (with --corrects)")] = None,
    by: ByOption = None,
    database_url: DbOption = None,
) -> None:
    """Record one meter event; the next `parkpulse aggregate` recomputes the energy across it exactly."""
    from aggregation._event_input import EventInput, MeterEventError, complete, normalise_kind, parse_event_time
    from aggregation._event_store import park_timezone, record_events

    try:
        ev = complete(EventInput(park_id, device_id, normalise_kind(kind), parse_event_time(at), metric, old_final,
                                 new_initial, old_multiplier, new_multiplier, old_ratio, new_ratio, note))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with _connect(database_url) as conn:
        try:
            result = record_events(conn, [ev], recorded_by=_user(by), source="cli", corrects=corrects, reason=reason)
            zones = {park_id: park_timezone(conn, park_id)}
        except MeterEventError as exc:
            _fail(exc)
    _report(result, zones)


@meter_events_app.command("list")
def list_(
    park_id: Annotated[str, typer.Argument(help="A registered park")],
    *,
    device: Annotated[str | None, typer.Option(help="Only this device")] = None,
    live_only: Annotated[bool, typer.Option("--live-only", help="Hide voided events")] = False,
    fmt: Annotated[Literal["table", "json"], typer.Option("--format", help="table or json")] = "table",
    database_url: DbOption = None,
) -> None:
    """A park's meter events in time order, voided ones included (the audit trail)."""
    from aggregation._event_input import MeterEventError
    from aggregation._event_store import list_events, park_timezone

    with _connect(database_url) as conn:
        try:
            events = list_events(conn, park_id, device_id=device, include_void=not live_only)
            tz = park_timezone(conn, park_id)
        except MeterEventError as exc:
            _fail(exc)
    if fmt == "json":
        typer.echo(json.dumps([e.to_json() for e in events], ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    table = Table("id", "device", "kind", f"at ({tz.key})", "values", "status", title=f"meter events of {park_id}")
    for e in events:
        if e.kind == "ratio_change":
            values = f"×{e.old_multiplier:g} → ×{e.new_multiplier:g}"
        else:
            values = f"{'last reading' if e.old_final is None else repr(e.old_final)} → {e.new_initial!r}"
        status = (f"void ({e.void_reason})" if not e.live else f"corrects {e.corrects}" if e.corrects else "live")
        table.add_row(str(e.event_id), f"{e.device_id} {e.metric}", e.kind,
                      e.occurred_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), values, status)
    console.print(table)
    if not events:
        console.print(f"no meter events in park {park_id}; record one with `parkpulse meter-event add`")
    else:
        console.print("who recorded each event and when: --format json", style="dim")


@meter_events_app.command("void")
def void(
    event_id: Annotated[int, typer.Argument(help="The event id (see `parkpulse meter-event list`)", min=1)],
    *,
    reason: Annotated[str, typer.Option(help="Why it is void (kept in the audit trail)")],
    park: Annotated[str | None, typer.Option(help="Refuse unless the event is in this park")] = None,
    by: ByOption = None,
    database_url: DbOption = None,
) -> None:
    """Void an event (kept for the audit trail); the next `parkpulse aggregate` recomputes without it."""
    from aggregation._event_input import MeterEventError
    from aggregation._event_store import park_timezone, void_event

    with _connect(database_url) as conn:
        try:
            ev = void_event(conn, event_id, reason=reason, voided_by=_user(by), park_id=park)
            tz = park_timezone(conn, ev.park_id)
        except MeterEventError as exc:
            _fail(exc)
    console.print(f"voided {_describe(ev, tz)}; {_NEXT}", highlight=False, soft_wrap=True)


@meter_events_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(
        help="CSV: park_id,device_id,kind,at,metric,old_final,new_initial,old_ratio,new_ratio,old_multiplier,"
             "new_multiplier,note (device_id, kind, at required)", exists=True, dir_okay=False)],
    *,
    park: Annotated[str | None, typer.Option(help="Park of rows without a park_id (and the only park allowed)")
                    ] = None,
    by: ByOption = None,
    database_url: DbOption = None,
) -> None:
    """Record many events from a CSV file, all or nothing; every bad row is listed with its line number."""
    from aggregation._event_input import MeterEventError, parse_events_csv
    from aggregation._event_store import park_timezone, record_events

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {file} as UTF-8 text: {exc}", param_hint="FILE") from None
    with _connect(database_url) as conn:
        try:
            inputs = parse_events_csv(text, str(file), park)
            result = record_events(conn, inputs, recorded_by=_user(by), source="import", source_name=str(file))
            zones: dict[str, tzinfo] = {p: park_timezone(conn, p) for p in {e.park_id for e in result.events}}
        except MeterEventError as exc:
            _fail(exc)
    _report(result, zones)
