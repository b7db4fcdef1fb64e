"""``parkpulse vpp ven3 …`` (the OpenADR 3 VEN) and ``parkpulse vpp vtn3-sim`` (the OpenADR 3 VTN stand-in).

* ``vpp ven3 run`` runs the VEN into the event intake (``PARKPULSE_VEN3_*``); live reports need live M&V,
  so a deployment runs ``parkpulse vpp run`` with the oadr3 VEN instead, which wires both.
* ``vpp ven3 events [--json]`` reads the VTN's programs and events once and shows what the VEN makes of
  each (the normalized event, or why it would be ignored) without handing anything to the intake.
* ``vpp vtn3-sim --port N`` serves the spec-validating stand-in with one VEN client and prints its
  credentials and the business-logic client's, for demos and manual tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from vpp._oadr3_settings import Ven3Settings

console = Console()
ven3_app = typer.Typer(help="OpenADR 3 VEN: events from a VTN (polling + webhook subscriptions), reports.",
                       no_args_is_help=True)


def _settings() -> Ven3Settings:
    from pydantic import ValidationError  # noqa: PLC0415 (lazy: --help stays fast)

    from infra.logconfig import configure_logging  # noqa: PLC0415 (lazy: --help stays fast)
    from vpp._oadr3_settings import Ven3Settings  # noqa: PLC0415 (lazy: --help stays fast)

    try:
        settings = Ven3Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        console.print(f"[red]OpenADR 3 VEN configuration error (set PARKPULSE_VEN3_VTN_URL, _CLIENT_ID, "
                      f"_CLIENT_SECRET, _PARK_ID):[/red] {exc}")
        raise typer.Exit(code=2) from None
    configure_logging(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the VEN's own log
    return settings


@ven3_app.command("run")
def run() -> None:
    """Run the VEN until interrupted: events into the intake (opt in/out per the park's policy)."""
    from flex import DrService, DrStore  # noqa: PLC0415 (lazy: --help stays fast)
    from vpp._intake import DrCapabilities, EventIntake  # noqa: PLC0415 (lazy: --help stays fast)
    from vpp._intake_store import IntakeStore  # noqa: PLC0415 (lazy: --help stays fast)
    from vpp._oadr3_ven import Ven3  # noqa: PLC0415 (lazy: --help stays fast)

    settings = _settings()

    async def serve() -> None:
        with IntakeStore(settings.database_url) as store, DrStore(settings.database_url) as dr_store:
            intake = EventIntake(store, DrCapabilities(DrService(dr_store), store))
            async with Ven3(settings, intake) as ven:
                console.print(f"OpenADR 3 VEN {settings.ven_name} for park {settings.park_id} at "
                              f"{settings.vtn_url} (webhook {ven.webhook_url or 'off'}); Ctrl-C stops")
                await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        console.print("stopped")


def _summary(event: Any) -> dict[str, Any]:
    return {
        "vtn_event_id": event.vtn_event_id, "program_id": event.program_id, "version": event.modification_number,
        "status": event.status.value, "signal": event.signal_name, "kind": event.signal_kind.value,
        "direction": event.direction,
        "intervals": [{"start": i.start.isoformat(), "duration_s": i.duration.total_seconds(), "value": i.value,
                       "unit": i.unit} for i in event.intervals],
        "report_every_s": event.report_request.interval.total_seconds() if event.report_request else None,
    }


@ven3_app.command("events")
def events(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Read the VTN's events once and show how the VEN would read each (nothing is handed to the intake)."""
    from vpp._oadr3_client import Oadr3Client  # noqa: PLC0415 (lazy: --help stays fast)
    from vpp._oadr3_parse import addresses, parse_event  # noqa: PLC0415 (lazy: --help stays fast)
    from vpp.errors import Oadr3Error  # noqa: PLC0415 (lazy: --help stays fast)

    settings = _settings()

    async def read() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with Oadr3Client(settings.vtn_url, settings.client_id, settings.client_secret.get_secret_value(),
                               token_url=settings.token_url, scope=settings.scope) as client:
            for program in await client.programs():
                for obj in await client.events(str(program.get("id"))):
                    row: dict[str, Any] = {"vtn_event_id": obj.get("id"), "program": program.get("programName")}
                    try:
                        if not addresses(obj, ven_name=settings.ven_name, park_id=settings.park_id):
                            row["ignored"] = "targets another VEN or park"
                        else:
                            row |= _summary(parse_event(obj, vtn_id=settings.vtn_url, park_id=settings.park_id,
                                                        received_at=datetime.now(UTC), program=program))
                    except Oadr3Error as exc:
                        row["ignored"] = str(exc)
                    rows.append(row)
        return rows

    try:
        rows = asyncio.run(read())
    except Oadr3Error as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        detail = row.get("ignored") or f"{row['signal']} {[i['value'] for i in row['intervals']]} ({row['status']})"
        console.print(f"{row['vtn_event_id']} [{row['program']}]: {detail}")
    if not rows:
        console.print("the VTN has no events for this VEN")


def vtn3_sim(
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on")] = 8081,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    ven_client: Annotated[str, typer.Option(help="a VEN's client credentials, id:secret")] = "ven-1:ven-secret-1",
    no_subscriptions: Annotated[bool, typer.Option("--no-subscriptions",
                                                   help="act as a polling-only VTN")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the endpoints and credentials as JSON")] = False,
) -> None:
    """Serve the OpenADR 3 VTN stand-in (validates every request and response against the 3.0.1 spec)."""
    try:
        from simulators.openadr3_vtn import (  # noqa: PLC0415 (lazy: --help stays fast)
            BL_CLIENT_ID,
            BL_CLIENT_SECRET,
            VtnState,
            serve_vtn3,
        )
    except ImportError as exc:  # jsonschema-rs comes with the dev extra (schemathesis)
        console.print(f"[red]error:[/red] the VTN stand-in needs {exc.name}: pip install 'parkpulse[server,dev]'")
        raise typer.Exit(code=2) from None

    client_id, sep, secret = ven_client.partition(":")
    if not sep or not client_id or not secret:
        console.print("[red]error:[/red] --ven-client must be id:secret, e.g. ven-1:ven-secret-1")
        raise typer.Exit(code=2)
    state = VtnState(supports_subscriptions=not no_subscriptions)
    state.add_client(client_id, secret, "ven")
    info = {"vtn_url": f"http://{host}:{port}", "ven_client_id": client_id, "ven_client_secret": secret,
            "bl_client_id": BL_CLIENT_ID, "bl_client_secret": BL_CLIENT_SECRET,
            "subscriptions": not no_subscriptions}
    if as_json:
        typer.echo(json.dumps(info))
    else:
        console.print(f"OpenADR 3.0.1 VTN stand-in on {info['vtn_url']} (token: POST /auth/token); VEN client "
                      f"{client_id}, business logic {BL_CLIENT_ID}:{BL_CLIENT_SECRET}; Ctrl-C stops")
    try:
        asyncio.run(serve_vtn3(state, host=host, port=port))
    except KeyboardInterrupt:
        console.print("stopped")


def register(app: typer.Typer) -> None:
    """Add ``ven3 …`` and ``vtn3-sim`` to ``parkpulse vpp``."""
    app.add_typer(ven3_app, name="ven3")
    app.command("vtn3-sim")(vtn3_sim)
