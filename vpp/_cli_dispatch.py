"""``parkpulse vpp plan``, ``vpp commands list`` and ``vpp override set|clear|list``: dispatch from the shell.

``plan`` is a dry run: it plans a stored event against the park's assets and overrides as they are now and
prints the setpoints, without storing or sending anything. Heavy imports load inside the commands so
``parkpulse --help`` stays instant; every listing takes ``--json``.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from flex._plan_model import Plan
    from vpp._dispatch_settings import DispatchSettings

console = Console()
commands_app = typer.Typer(help="Setpoint commands sent to devices, with their acknowledgements (audit).",
                           no_args_is_help=True)
override_app = typer.Typer(help="Operator overrides: exclude a device from dispatch or cap it, until a time.",
                           no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
ParkOpt = Annotated[str, typer.Option("--park", help="park id")]


def _fail(message: str) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


def _settings() -> DispatchSettings:
    from infra.logconfig import configure_logging
    from vpp._dispatch_settings import DispatchSettings

    settings = DispatchSettings()  # type: ignore[call-arg]
    configure_logging(settings.log_level)
    return settings


def _dump(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v), indent=2,
                      ensure_ascii=False)


def plan_json(plan: Plan, park_id: str, event_id: str) -> dict[str, Any]:
    """The dry-run plan as JSON: per interval the target and response, per asset its powers and commands."""
    from vpp._dispatch_commands import plan_commands

    return {
        "park_id": park_id, "event_id": event_id, "method": plan.method, "direction": plan.direction.value,
        "committed_kw": plan.committed_kw, "shortfall_kwh": plan.shortfall_kwh, "warnings": list(plan.warnings),
        "intervals": [{"start": iv.start, "end": iv.end, "target_kw": iv.target_kw, "response_kw": r,
                       "shortfall_kw": s}
                      for iv, r, s in zip(plan.intervals, plan.response_kw, plan.shortfall_kw, strict=True)],
        "assets": [{"asset_id": s.asset_id, "kind": s.kind, "device_id": s.device_id, "power_kw": list(s.power_kw),
                    "baseline_kw": list(s.baseline_kw), "temp_c": list(s.temp_c) if s.temp_c else None}
                   for s in plan.schedules],
        "commands": [{"send_at": c.send_at, "device_id": c.device_id, "action": c.action.value, "value": c.value,
                      "hold_until": c.hold_until} for c in plan_commands(plan, event_id)],
    }


def plan(
    event: Annotated[str, typer.Option("--event", help="ParkPulse DR event id")],
    method: Annotated[str, typer.Option(help="lp (default) or greedy (the fallback, for comparison)")] = "lp",
    as_json: JsonOpt = False,
) -> None:
    """Dry run: plan a stored event with the park's assets and overrides as of now; nothing is sent."""
    import psycopg

    from flex._plan import plan_dispatch
    from flex.errors import FlexError
    from vpp._dispatch_planning import load_request, stored_event_intervals
    from vpp._dispatch_store import DispatchStore, override_caps
    from vpp.errors import VppError

    settings = _settings()
    now = datetime.now(UTC)
    step = timedelta(minutes=settings.vpp_dispatch_interval_minutes)
    try:
        park, direction, intervals = stored_event_intervals(settings.database_url, event, step=step)
        with DispatchStore(settings.database_url).connect() as conn:
            caps = override_caps(conn, park, now)
        request, warnings = load_request(settings.database_url, park, direction, intervals, now=now, overrides=caps)
        result = plan_dispatch(request, method=method)
    except (VppError, FlexError, psycopg.Error) as exc:
        raise _fail(str(exc)) from None
    doc = plan_json(result, park, event)
    doc["warnings"] = list(warnings) + doc["warnings"]
    if as_json:
        typer.echo(_dump(doc))
        return
    table = Table(title=f"{event} ({park}, {direction.value}, {result.method}): commits {result.committed_kw:.1f} kW")
    for col in ("interval start", "target kW", "planned kW", *(s.asset_id for s in result.schedules)):
        table.add_column(col, justify="right")
    for t, iv in enumerate(result.intervals):
        table.add_row(iv.start.isoformat(timespec="minutes"), f"{iv.target_kw:.1f}", f"{result.response_kw[t]:.1f}",
                      *(f"{s.power_kw[t]:.1f}" for s in result.schedules))
    console.print(table)
    for w in doc["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}")


@commands_app.command("list")
def list_commands_cmd(
    park: ParkOpt,
    event: Annotated[str | None, typer.Option("--event", help="only this DR event's commands")] = None,
    device: Annotated[str | None, typer.Option("--device", help="only this device's commands")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """A park's commands, newest first, each with its latest status (applied, rejected + reason, expired…)."""
    from vpp._dispatch_store import DispatchStore, list_commands
    from vpp.errors import VppError

    try:
        with DispatchStore(_settings().database_url).connect() as conn:
            rows = list_commands(conn, park, event_id=event, device_id=device, limit=limit)
    except VppError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(_dump([dataclasses.asdict(r) for r in rows]))
        return
    table = Table(title=f"commands of {park}")
    for col in ("issued", "device", "action", "value", "event", "status", "reason", "tries"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.issued_at.isoformat(timespec="seconds"), r.device_id, r.action, f"{r.value:g} {r.unit}",
                      r.event_id or "—", r.status, r.status_reason or "", str(r.attempts))
    console.print(table)


@override_app.command("set")
def override_set(
    *,
    park: ParkOpt,
    device: Annotated[str, typer.Option("--device", help="device id (as on its MQTT topics)")],
    until: Annotated[datetime, typer.Option("--until", help="end, ISO 8601 (e.g. 2026-12-05T18:00+08:00)")],
    reason: Annotated[str, typer.Option("--reason", help="why (kept in the audit trail)")],
    max_change_kw: Annotated[float, typer.Option(min=0, help="cap on the move from baseline; 0 = exclude")] = 0.0,
    by: Annotated[str, typer.Option(help="who sets it")] = "cli",
) -> None:
    """Exclude a device from dispatch (or cap it) until a time; it always wins over the planner."""
    from vpp._dispatch_store import DispatchStore, set_override
    from vpp.errors import VppError

    if until.tzinfo is None:
        raise _fail("--until needs a UTC offset, e.g. 2026-12-05T18:00+08:00 or …Z")
    try:
        with DispatchStore(_settings().database_url).connect() as conn:
            o = set_override(conn, park, device, max_change_kw=max_change_kw, valid_until=until, reason=reason,
                             created_by=by)
    except VppError as exc:
        raise _fail(str(exc)) from None
    what = "excluded from dispatch" if o.max_change_kw == 0 else f"capped at ±{o.max_change_kw:g} kW"
    console.print(f"override {o.override_id}: {device} {what} until {o.valid_until.isoformat()}")


@override_app.command("clear")
def override_clear(
    park: ParkOpt,
    override_id: Annotated[int, typer.Argument(help="override id (see `parkpulse vpp override list`)")],
    by: Annotated[str, typer.Option(help="who clears it")] = "cli",
) -> None:
    """End an override now (it stays in the audit trail)."""
    from vpp._dispatch_store import DispatchStore, clear_override
    from vpp.errors import VppError

    try:
        with DispatchStore(_settings().database_url).connect() as conn:
            o = clear_override(conn, park, override_id, cleared_by=by, at=datetime.now(UTC))
    except VppError as exc:
        raise _fail(str(exc)) from None
    console.print(f"override {o.override_id} on {o.device_id} cleared")


@override_app.command("list")
def override_list(
    park: ParkOpt,
    active: Annotated[bool, typer.Option("--active", help="only those in force now")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A park's overrides, newest first."""
    from vpp._dispatch_store import DispatchStore, list_overrides
    from vpp.errors import VppError

    now = datetime.now(UTC)
    try:
        with DispatchStore(_settings().database_url).connect() as conn:
            rows = list_overrides(conn, park, at=now if active else None)
    except VppError as exc:
        raise _fail(str(exc)) from None
    docs = [{"override_id": o.override_id, "device_id": o.device_id, "max_change_kw": o.max_change_kw,
             "valid_until": o.valid_until, "reason": o.reason, "created_by": o.created_by,
             "created_at": o.created_at, "cleared_at": o.cleared_at, "cleared_by": o.cleared_by,
             "active": o.active(now)} for o in rows]
    if as_json:
        typer.echo(_dump(docs))
        return
    table = Table(title=f"overrides of {park}")
    for col in ("id", "device", "cap kW", "until", "reason", "by", "state"):
        table.add_column(col)
    for o in rows:
        state = "active" if o.active(now) else ("cleared" if o.cleared_at else "ended")
        table.add_row(str(o.override_id), o.device_id, f"{o.max_change_kw:g}",
                      o.valid_until.isoformat(timespec="minutes"), o.reason, o.created_by, state)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this job's commands to ``app``."""
    app.command("plan")(plan)
    app.add_typer(commands_app, name="commands")
    app.add_typer(override_app, name="override")
