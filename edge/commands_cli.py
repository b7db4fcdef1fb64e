"""CLI of the edge's command handling: the audit log and the site override (safe while the agent runs).

Mounted by ``parkpulse.cli``::

    parkpulse edge-commands list --config edge.yaml [--device bess-1] [--limit 50] [--json]
    parkpulse edge-override set --config edge.yaml [--device bess-1] --reason "PCS maintenance" [--by alice]
    parkpulse edge-override clear --config edge.yaml [--device bess-1]
    parkpulse edge-override show --config edge.yaml [--json]

Without ``--device`` the override covers every device of the agent. The running agent reads the override
for every command it receives, so it takes effect at once; commands are then rejected ``override_active``.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edge.commands_store import ALL_DEVICES, CommandAudit
from edge.config import load_config
from edge.errors import CommandAuditError, ConfigError

edge_commands_app = typer.Typer(help="Setpoint commands this edge agent received and what it answered.",
                                no_args_is_help=True)
edge_override_app = typer.Typer(help="Local override: put devices under site control (commands are refused).",
                                no_args_is_help=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", exists=True, dir_okay=False, readable=True, help="The agent's edge.yaml."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _audit(config: Path, device: str | None) -> CommandAudit:

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.secho(f"edge commands: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    known = {d.id for d in cfg.devices}
    if device is not None and device not in known:
        typer.secho(f"edge commands: no device {device!r} in {config} (devices: {', '.join(sorted(known))})",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    return CommandAudit(cfg.commands.audit_file(cfg.outbox.path))


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"edge commands: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


@edge_commands_app.command("list")
def list_commands(
    config: ConfigOption,
    device: Annotated[str | None, typer.Option(help="Only this device's commands.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest commands (newest first): action, value, who sent it, and the ack (applied or why not)."""

    audit = _audit(config, device)
    try:
        rows = audit.commands(device=device, limit=limit)
    except CommandAuditError as exc:
        raise _fail(exc) from None
    finally:
        audit.close()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no commands received yet")
        return
    for r in rows:
        value = "" if r.value is None or r.action == "release" else f" {r.value:g}"
        outcome = r.status or "no ack yet"
        if r.reason:
            outcome += f" {r.reason}"
        if r.applied_value is not None:
            outcome += f" ({r.applied_value:g})"
        again = f" x{r.deliveries}" if r.deliveries > 1 else ""
        typer.echo(f"{r.received_at}  {r.device:<16} {r.command_id or '-':<36} {r.action or '?'}{value}  "
                   f"-> {outcome}{again}  by {r.issued_by or '-'}{'  ' + r.detail if r.detail else ''}")


@edge_override_app.command("set")
def set_override(
    config: ConfigOption,
    reason: Annotated[str, typer.Option(help="Why (shown in every rejected command's ack).")],
    device: Annotated[str | None, typer.Option(help="One device; default: every device of the agent.")] = None,
    by: Annotated[str | None, typer.Option(help="Who sets it (default: the login name).")] = None,
) -> None:
    """Put a device (or all) under local control: the agent refuses commands until the override is cleared."""

    audit = _audit(config, device)
    try:
        audit.set_override(device or ALL_DEVICES, reason=reason, by=by or getpass.getuser(), at=datetime.now(UTC))
    except CommandAuditError as exc:
        raise _fail(exc) from None
    finally:
        audit.close()
    typer.echo(f"override set for {device or 'every device'}: {reason}")


@edge_override_app.command("clear")
def clear_override(
    config: ConfigOption,
    device: Annotated[str | None, typer.Option(help="One device; default: the agent-wide override.")] = None,
    by: Annotated[str | None, typer.Option(help="Who clears it (default: the login name).")] = None,
) -> None:
    """Hand a device (or all) back to remote control."""

    audit = _audit(config, device)
    try:
        cleared = audit.clear_override(device or ALL_DEVICES, by=by or getpass.getuser(), at=datetime.now(UTC))
    except CommandAuditError as exc:
        raise _fail(exc) from None
    finally:
        audit.close()
    if not cleared:
        typer.secho(f"no override was set for {device or 'every device'}; `parkpulse edge-override show` lists them",
                    fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
    typer.echo(f"override cleared for {device or 'every device'}")


@edge_override_app.command("show")
def show_overrides(config: ConfigOption, as_json: JsonOption = False) -> None:
    """The overrides in force (set here or by ``commands.override`` / ``override_devices`` in edge.yaml)."""

    audit = _audit(config, None)
    cfg = load_config(config)
    try:
        found: list[dict[str, Any]] = [{"device": o.device, "reason": o.reason, "set_by": o.set_by, "set_at": o.set_at}
                 for o in audit.overrides()]
    except CommandAuditError as exc:
        raise _fail(exc) from None
    finally:
        audit.close()
    found += [{"device": d, "reason": "edge.yaml", "set_by": "edge.yaml", "set_at": None}
              for d in (["*"] if cfg.commands.override else cfg.commands.override_devices)]
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for o in found or [{"device": "-", "reason": "no override in force", "set_by": "", "set_at": ""}]:
        typer.echo(f"{o['device']:<16} {o['reason']}  {o['set_by'] or ''} {o['set_at'] or ''}".rstrip())


__all__ = ["edge_commands_app", "edge_override_app"]
