"""The ``parkpulse`` command line: one sub-command per service or job.

The edge commands (``edge``, ``edge-outbox``, ``edge-discover``, ``protocol-sim``, ``simulate``, ``schema``)
work in every install. The server's commands come from :mod:`parkpulse._server_cli` when the server packages are
installed; in the slim edge install they are listed as stand-ins that name the install command. Heavy
imports happen inside the commands so ``parkpulse --help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edge._cli import edge_command, edge_discover_command, edge_outbox_command
from edge.commands_cli import edge_commands_app, edge_override_app
from parkpulse._install import SERVER_HINT, missing_server_package, mount_stand_ins, server_installed
from simulators import simulate
from simulators.protocol._cli import protocol_sim_command

app = typer.Typer(name="parkpulse", help="ParkPulse: energy and carbon metering for industrial parks.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
schema_app = typer.Typer(help="Message contracts.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.command("simulate")(simulate)
app.command("edge")(edge_command)
app.command("edge-outbox")(edge_outbox_command)
app.command("edge-discover")(edge_discover_command)
app.add_typer(edge_commands_app, name="edge-commands")
app.add_typer(edge_override_app, name="edge-override")
app.command("protocol-sim")(protocol_sim_command)

if server_installed():
    from parkpulse._server_cli import register_server_commands

    register_server_commands(app)
else:
    mount_stand_ins(app)


@schema_app.command("export")
def schema_export(
    out: Annotated[Path | None, typer.Option(help="Directory for one JSON Schema file per payload")] = None,
) -> None:
    """Print (or write) the JSON Schema of every MQTT payload, for device vendors."""
    from schemas import payload_json_schemas

    schemas = payload_json_schemas()
    if out is None:
        typer.echo(json.dumps(schemas, indent=2, ensure_ascii=False))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        path = out / f"parkpulse-{name}-v1.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point: a missing server package is a message with the fix, not a traceback."""
    try:
        app()
    except ModuleNotFoundError as exc:
        package = missing_server_package(exc)
        if package is None:
            raise
        print(f"this command needs {package}, which the edge install does not have; install the server with: "
              f"{SERVER_HINT}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
