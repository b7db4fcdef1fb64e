"""``parkpulse api`` (serve), ``parkpulse api-keys …`` (per-utility keys) and ``parkpulse ven …`` (OpenADR 3).

Mount with ``app.command("api")(serve)``, ``app.add_typer(keys_app, name="api-keys")`` and
``app.add_typer(ven_app, name="ven")``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.errors import KeyStoreError, VenError

if TYPE_CHECKING:
    from api._settings import ApiSettings, VenSettings
    from api._ven import VtnConfig

console = Console()
keys_app = typer.Typer(help="Per-utility API keys scoped to parks, with read/write scopes (stored hashed).",
                       no_args_is_help=True)
ven_app = typer.Typer(help="OpenADR 3 VEN: push ParkPulse reports to the configured VTN.", no_args_is_help=True)


def _api_settings() -> ApiSettings:
    from pydantic import ValidationError

    from api._settings import ApiSettings

    try:
        return ApiSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(code=2) from None


def serve(
    host: Annotated[str | None, typer.Option(help="listen address (default PARKPULSE_API_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (default PARKPULSE_API_PORT or 8080)")] = None,
) -> None:
    """Serve the utility API: read scope for data, write scope for operator actions (OpenAPI at /openapi.json)."""
    import uvicorn

    from api._app import create_app
    from infra.logconfig import configure_logging

    settings = _api_settings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level=settings.log_level.lower(), proxy_headers=False)


class Scope(StrEnum):
    """What a key may do (``api_clients.scopes``)."""

    READ = "read"    # every GET endpoint
    WRITE = "write"  # operator actions such as quarantine replay (includes read)


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Argument(help="the utility or aggregator")],
    park: Annotated[list[str], typer.Option("--park", help="park id the key may read (repeat)")],
    expires_days: Annotated[int | None, typer.Option(help="expire after this many days")] = None,
    scope: Annotated[list[Scope] | None, typer.Option(
        "--scope", help="read (GET endpoints, the default) or write (operator actions such as quarantine "
                        "replay; includes read); repeatable")] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a salted scrypt hash."""
    from api._keystore import PgKeyStore

    settings = _api_settings()
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    scopes = {Scope(s).value for s in scope or [Scope.READ]}
    if Scope.WRITE.value in scopes:
        scopes.add(Scope.READ.value)  # a key that may act must be able to look at what it acts on
    store = PgKeyStore(settings.database_url)
    unknown = store.unregistered_parks(park)
    if unknown and Scope.WRITE.value not in scopes:
        console.print(f"[red]error:[/red] unknown park(s) {', '.join(unknown)}: register them first (`parkpulse "
                      "registry park add PARK` or `parkpulse registry import FILE`), or create a key with --scope "
                      "write, which may register its park through the API (PUT /v1/parks/PARK)")
        raise typer.Exit(code=1)
    if unknown:
        console.print(f"note: park(s) {', '.join(unknown)} not registered yet; this key may register them with "
                      "PUT /v1/parks/PARK or POST /v1/parks/PARK/registry/import")
    try:
        client, key = store.create(name, park, expires_at=expires, scopes=scopes)
    except KeyStoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    console.print(f"client [bold]{client.client_id}[/bold] for {name}, parks {', '.join(sorted(client.park_ids))}, "
                  f"scopes {', '.join(sorted(client.scopes))}")
    console.print("API key (shown once, store it now):")
    typer.echo(key)


@keys_app.command("list")
def list_keys() -> None:
    """List API clients (never their keys)."""
    from api._keystore import PgKeyStore

    table = Table("client id", "name", "parks", "scopes", "expires", "revoked")
    for c in PgKeyStore(_api_settings().database_url).list_clients():
        table.add_row(c.client_id, c.name, ", ".join(sorted(c.park_ids)), ", ".join(sorted(c.scopes)),
                      f"{c.expires_at:%Y-%m-%d}" if c.expires_at else "—",
                      f"{c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "—")
    console.print(table)


@keys_app.command("revoke")
def revoke_key(client_id: str) -> None:
    """Revoke a client's key (effective within the API's key-cache TTL)."""
    from api._keystore import PgKeyStore

    try:
        PgKeyStore(_api_settings().database_url).revoke(client_id)
    except KeyStoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    console.print(f"revoked {client_id}")


def _ven() -> tuple[VenSettings, VtnConfig]:
    from pydantic import ValidationError

    from api._settings import VenSettings
    from api._ven import VtnConfig
    from infra.logconfig import configure_logging

    try:
        settings = VenSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        console.print(f"[red]VEN configuration error (PARKPULSE_VEN_*):[/red] {exc}")
        raise typer.Exit(code=2) from None
    configure_logging(settings.log_level)
    config = VtnConfig(base_url=settings.vtn_url, client_id=settings.client_id,
                       client_secret=settings.client_secret.get_secret_value(), token_url=settings.token_url,
                       scope=settings.scope, auth_method="post" if settings.auth_method == "post" else "basic",
                       timeout_s=settings.timeout_s)
    return settings, config


@ven_app.command("push-availability")
def push_availability(
    park_id: str,
    hours: Annotated[int, typer.Option(min=1, max=48, help="forecast horizon")] = 24,
    duration_h: Annotated[float | None, typer.Option(help="sustain duration (default: declared duration)")] = None,
) -> None:
    """POST an UP/DOWN_REGULATION_AVAILABLE forecast report to the VTN."""
    from api._openadr import availability_report
    from flex import DrService, DrStore, FlexError

    settings, config = _ven()
    with DrStore(settings.database_url) as store:
        service = DrService(store)
        try:
            configured = store.get_settings(park_id).declared_duration_h
            duration = duration_h or configured or service.policy.declared_duration_h
            frame = service.forecast_flex(park_id, n_slots=hours * 4, durations_h=[duration])
        except FlexError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from None
    report = availability_report(frame, duration_h=duration, program_id=settings.program_id,
                                 event_id=settings.event_id, client_name=settings.name, park_id=park_id)
    _post(config, report)


@ven_app.command("push-event")
def push_event(
    event_id: str,
    vtn_event_id: Annotated[str | None, typer.Option(help="VTN event id (default PARKPULSE_VEN_EVENT_ID)")] = None,
) -> None:
    """POST the BASELINE/USAGE report of an evaluated event to the VTN."""
    from api._openadr import event_report
    from flex import DrStore

    settings, config = _ven()
    with DrStore(settings.database_url) as store:
        event = store.get_event(event_id)
        intervals = store.get_intervals(event_id)
    if event is None or intervals.is_empty():
        console.print(f"[red]error:[/red] event {event_id} is unknown or not evaluated")
        raise typer.Exit(code=1)
    report = event_report(intervals, program_id=event.program_id or settings.program_id,
                          event_id=vtn_event_id or settings.event_id, client_name=settings.name,
                          park_id=event.park_id, local_event_id=event_id)
    _post(config, report)


def _post(config: VtnConfig, report: dict[str, object]) -> None:
    from api._ven import VenClient

    try:
        with VenClient(config) as ven:
            created = ven.post_report(report)
    except VenError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=1) from None
    console.print(f"delivered {report['reportName']} → {config.base_url} (id {created.get('id', '?')})")
